// End-to-end InstructBLIP (Hugging Face InstructBlipForConditionalGeneration)
// against the reference outputs of transformers 4.37.2: `mmneuron caption
// --dump` on the tiny checkpoint for all three images, every array the
// reference wrote compared (2e-5 of max|ref|; ids and images exact). Then the
// layout-specific bad inputs, and the random presets.
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

const char* kModel = "tiny-iblip-a-f32";

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

class InstructBlipGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(InstructBlipGolden, CaptionDumpMatchesReference) {
  MMN_REQUIRE_SHARED();
  const std::string image = GetParam();
  fs::path out = temp_dir(std::string("iblip-") + image);
  std::string log;
  ASSERT_EQ(run_cmd(caption_cmd(golden(std::string("models/") + kModel), image, "--dump " + out.string()), &log), 0)
      << log;
  compare_case_dirs(out, golden(std::string("cases/") + kModel + "/" + image), 2e-5);
  // BlipImageProcessor has no crop step: no cropped image is written.
  EXPECT_FALSE(fs::exists(out / "image_cropped_uint8.npy"));
  fs::remove_all(out);
}

INSTANTIATE_TEST_SUITE_P(AllImages, InstructBlipGolden,
                         ::testing::Values("landscape_80x60", "portrait_48x72", "tiny_10x10"));

TEST(InstructBlipBadInput, MissingQFormerTokenizer) {
  MMN_REQUIRE_SHARED();
  fs::path d = copy_model("noqtok");
  fs::remove_all(d / "qformer_tokenizer");
  expect_error(d, {"qformer_tokenizer"});
  fs::remove_all(d);
}

TEST(InstructBlipBadInput, MissingQFormerVocab) {
  MMN_REQUIRE_SHARED();
  fs::path d = copy_model("noqvocab");
  fs::remove(d / "qformer_tokenizer" / "vocab.txt");
  expect_error(d, {"qformer_tokenizer/vocab.txt"});
  fs::remove_all(d);
}

TEST(InstructBlipBadInput, WrongNumberOfQueryTokens) {
  MMN_REQUIRE_SHARED();
  fs::path d = copy_model("nquery");
  nlohmann::json cfg = nlohmann::json::parse(mmn::read_file((d / "config.json").string()));
  cfg["num_query_tokens"] = 5;
  mmn::write_file_atomic((d / "config.json").string(), cfg.dump(2));
  expect_error(d, {"model.safetensors", "query_tokens", "[1, 4, 48]", "[1, 5, 48]"});
  fs::remove_all(d);
}

TEST(InstructBlipBadInput, MissingCrossAttentionTensor) {
  MMN_REQUIRE_SHARED();
  fs::path d = copy_model("nocross");
  drop_tensor(d, "qformer.encoder.layer.1.crossattention.attention.key.weight");
  expect_error(d, {d.string(), "missing tensor qformer.encoder.layer.1.crossattention.attention.key.weight"});
  fs::remove_all(d);
}

TEST(InstructBlipBadInput, BadCrossAttentionFrequency) {
  MMN_REQUIRE_SHARED();
  fs::path d = copy_model("xfreq");
  nlohmann::json cfg = nlohmann::json::parse(mmn::read_file((d / "config.json").string()));
  cfg["qformer_config"]["cross_attention_frequency"] = 0;
  mmn::write_file_atomic((d / "config.json").string(), cfg.dump(2));
  expect_error(d, {"config.json", "qformer_config"});
  fs::remove_all(d);
}

TEST(InstructBlipRandom, TinyPresetCaptions) {
  fs::path d = temp_dir("iblip-random");
  std::string log;
  ASSERT_EQ(run_cmd(binary() + " make-random --preset tiny-instructblip --dtype bf16 --out " + (d / "m").string(), &log),
            0)
      << log;
  ASSERT_TRUE(fs::exists(d / "m" / "qformer_tokenizer" / "vocab.txt"));
  ASSERT_EQ(run_cmd(binary() + " caption --model " + (d / "m").string() + " --image " +
                        (fs::path(MMN_SOURCE_DIR) / "assets/sample.png").string() + " --max-new-tokens 4 --json --quiet",
                    &log),
            0)
      << log;
  const nlohmann::json j = nlohmann::json::parse(log.substr(log.find('{')));
  const auto ids = j["prompt_ids"].get<std::vector<int>>();
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], 2);  // BOS "</s>", as Salesforce's tokenizer
  fs::remove_all(d);
}
