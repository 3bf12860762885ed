// End-to-end mPLUG-Owl2 (MAGAer13/mplug-owl2-llama2-7b layout, its own modeling
// code under transformers 4.31) against the reference outputs: `mmneuron
// caption --dump` on the tiny checkpoint for all three images, every array the
// reference wrote compared (3e-5 of max|ref|; ids, modality indicators and
// images exact). Then the layout-specific bad inputs, and the random preset.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "golden_compare.h"
#include "golden_models.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace mmn::test;

namespace {

const char* kModel = "tiny-owl2-a-f32";

std::string caption_cmd(const fs::path& model, const std::string& image, const std::string& extra = "") {
  return binary() + " caption --model " + model.string() + " --image " + golden("images/" + image + ".png").string() +
         " --max-new-tokens 8 " + extra;
}

fs::path copy_model(const std::string& tag, bool copy_weights = false) {
  return copy_golden_model(kModel, tag, copy_weights);
}

void drop_tensor(const fs::path& dir, const std::string& drop) { mmn::test::drop_tensor(kModel, dir, drop); }

void expect_error(const fs::path& model, const std::vector<std::string>& needles) {
  expect_one_line_error(caption_cmd(model, "tiny_10x10"), needles);
}

}  // namespace

class Owl2Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Owl2Golden, CaptionDumpMatchesReference) {
  MMN_REQUIRE_SHARED();
  // The README's square-resize pixels are a reference for another path, not the model input.
  expect_caption_dump_matches(kModel, GetParam(), 3e-5, {"pixel_values_readme_square_resize"});
}

INSTANTIATE_TEST_SUITE_P(AllImages, Owl2Golden, ::testing::Values("landscape_80x60", "portrait_48x72", "tiny_10x10"));

TEST(Owl2BadInput, MissingMultiwayTensor) {
  MMN_REQUIRE_SHARED();
  for (const std::string name : {"model.layers.1.self_attn.k_proj.multiway.1.weight",
                                 "model.layers.0.post_attention_layernorm.multiway.0.weight"}) {
    fs::path d = copy_model("multiway");
    drop_tensor(d, name);
    expect_error(d, {d.string(), "missing tensor " + name});
    fs::remove_all(d);
  }
}

TEST(Owl2BadInput, WrongNumberOfQueries) {
  MMN_REQUIRE_SHARED();
  fs::path d = copy_model("nquery");
  nlohmann::json cfg = nlohmann::json::parse(mmn::read_file((d / "config.json").string()));
  cfg["visual_config"]["visual_abstractor"]["num_learnable_queries"] = 64;
  mmn::write_file_atomic((d / "config.json").string(), cfg.dump(2));
  expect_error(d, {"model.safetensors", "query_embeds", "[1, 8, 32]", "[1, 64, 32]"});
  fs::remove_all(d);
}

TEST(Owl2BadInput, AbstractorGridMismatch) {
  MMN_REQUIRE_SHARED();
  fs::path d = copy_model("grid");
  nlohmann::json cfg = nlohmann::json::parse(mmn::read_file((d / "config.json").string()));
  cfg["visual_config"]["visual_abstractor"]["grid_size"] = 4;
  mmn::write_file_atomic((d / "config.json").string(), cfg.dump(2));
  expect_error(d, {"config.json", "visual_config.visual_abstractor.grid_size"});
  fs::remove_all(d);
}

TEST(Owl2Random, TinyPresetCaptions) {
  fs::path d = temp_dir("owl2-random");
  std::string log;
  ASSERT_EQ(run_cmd(binary() + " make-random --preset tiny-owl2 --dtype bf16 --out " + (d / "m").string(), &log), 0)
      << log;
  ASSERT_EQ(run_cmd(binary() + " caption --model " + (d / "m").string() + " --image " +
                        (fs::path(MMN_SOURCE_DIR) / "assets/sample.png").string() + " --max-new-tokens 4 --json --quiet",
                    &log),
            0)
      << log;
  const nlohmann::json j = nlohmann::json::parse(log.substr(log.find('{')));
  const auto ids = j["prompt_ids"].get<std::vector<int>>();
  EXPECT_EQ(std::count(ids.begin(), ids.end(), -200), 1);  // one <|image|> marker
  fs::remove_all(d);
}
