// The paper's own LLaVA layout (haotian-liu/LLaVA v1.0.2, `LlavaLlamaForCausalLM`,
// a separate CLIPModel vision tower found beside the checkpoint, one linear
// projector, the llava_llama_2 prompt tokenized per chunk) against the
// reference outputs of the original code: `caption --dump` on all three images,
// every array compared (ids exact, floats within 2e-5·max|ref|).
#include <gtest/gtest.h>

#include <filesystem>

#include "golden_compare.h"
#include "golden_models.h"
#include "io/atomic_file.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace mmn::test;

// The same checkpoint from safetensors and from pickled .bin shards (+ mm_projector.bin).
class Llava1Golden : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(Llava1Golden, CaptionDumpMatchesReference) {
  MMN_REQUIRE_SHARED();
  expect_caption_dump_matches(std::get<0>(GetParam()), std::get<1>(GetParam()), 2e-5);
}

INSTANTIATE_TEST_SUITE_P(AllCases, Llava1Golden,
                         ::testing::Combine(::testing::Values("tiny-llava1-a-f32", "tiny-llava1-a-f32-bin"),
                                            ::testing::Values("landscape_80x60", "portrait_48x72", "tiny_10x10")),
                         TupleParamName());

TEST(Llava1Layout, VisionTowerLookupAndConfigErrors) {
  MMN_REQUIRE_SHARED();
  const std::string img = golden("images/tiny_10x10.png").string();
  // A copy without its tower beside it: a one-line error that suggests --vision-tower; with it, it runs.
  const fs::path dir = temp_dir("llava1");
  fs::copy(golden_model("tiny-llava1-a-f32"), dir / "ckpt", fs::copy_options::recursive);
  for (auto& e : fs::recursive_directory_iterator(dir)) fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
  expect_one_line_error(binary() + " caption --model " + (dir / "ckpt").string() + " --image " + img,
                        {"vision tower 'tiny-llava1-a-clip' not found", "--vision-tower"});
  std::string out;
  ASSERT_EQ(run_cmd(binary() + " caption --model " + (dir / "ckpt").string() + " --vision-tower " +
                        golden_model("tiny-llava1-a-clip").string() + " --image " + img + " --max-new-tokens 2",
                    &out),
            0)
      << out;
  // A run made with --vision-tower records it; commands working on the run load the same model.
  const fs::path images = dir / "images", run = dir / "run";
  fs::create_directories(images);
  fs::copy_file(img, images / "a.png");
  ASSERT_EQ(run_cmd(binary() + " find --quiet --model " + (dir / "ckpt").string() + " --vision-tower " +
                        golden_model("tiny-llava1-a-clip").string() + " --images " + images.string() + " --out " +
                        run.string() + " --tokens all --top-k 50 --max-new-tokens 2",
                    &out),
            0)
      << out;
  EXPECT_NE(mmn::read_file((run / "run.json").string()).find("tiny-llava1-a-clip"), std::string::npos);
  ASSERT_EQ(run_cmd(binary() + " perturb " + run.string() + " --quiet --top 5 --draws 1 --random uniform", &out), 0)
      << out;
  // mm_use_im_patch_token true adds a random token in the original code: refused.
  std::string cfg = mmn::read_file((dir / "ckpt" / "config.json").string());
  const std::string key = "\"mm_use_im_patch_token\": false";
  ASSERT_NE(cfg.find(key), std::string::npos);
  cfg.replace(cfg.find(key), key.size(), "\"mm_use_im_patch_token\": true");
  mmn::write_file_atomic((dir / "ckpt" / "config.json").string(), cfg);
  expect_one_line_error(binary() + " caption --model " + (dir / "ckpt").string() + " --vision-tower " +
                            golden_model("tiny-llava1-a-clip").string() + " --image " + img,
                        {"mm_use_im_patch_token"});
  fs::remove_all(dir);
}
