// End-to-end InstructBLIP (Hugging Face InstructBlipForConditionalGeneration)
// against the reference outputs of transformers 4.37.2: `mmneuron caption
// --dump` on the tiny checkpoint for all three images, every array the
// reference wrote compared (2e-5 of max|ref|; ids and images exact). Then the
// layout-specific bad inputs, and the random presets.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "golden_compare.h"
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

// A copy of the golden model (the weights symlinked unless asked) to break.
fs::path copy_model(const std::string& tag, bool copy_weights = false) {
  fs::path d = temp_dir("iblip-" + tag);
  for (const auto& e : fs::directory_iterator(golden(std::string("models/") + kModel))) {
    const fs::path to = d / e.path().filename();
    if (e.path().filename() == "model.safetensors" && !copy_weights) fs::create_symlink(e.path(), to);
    else fs::copy(e.path(), to, fs::copy_options::recursive);
  }
  for (const auto& e : fs::recursive_directory_iterator(d))
    if (!e.is_symlink()) fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
  return d;
}

// Rewrites <dir>/model.safetensors without the tensor `drop`.
void drop_tensor(const fs::path& dir, const std::string& drop) {
  const mmn::SafetensorsCheckpoint ck = mmn::SafetensorsCheckpoint::open(golden(std::string("models/") + kModel).string());
  std::vector<mmn::TensorSpec> specs;
  for (const auto& [name, t] : ck.tensors())
    if (name != drop) specs.push_back({name, t.dtype, t.shape});
  ASSERT_EQ(specs.size() + 1, ck.tensors().size()) << drop;
  fs::remove(dir / "model.safetensors");
  mmn::write_safetensors((dir / "model.safetensors").string(), specs, {{"format", "pt"}},
                         [&](const mmn::TensorSpec& s, std::FILE* f) {
                           const mmn::TensorRef& t = ck.get(s.name);
                           std::fwrite(t.data, 1, t.nbytes, f);
                         });
}

// caption must fail with one line "error: …" containing every needle.
void expect_error(const fs::path& model, const std::vector<std::string>& needles) {
  std::string out;
  const int rc = run_cmd(caption_cmd(model, "tiny_10x10"), &out);
  EXPECT_NE(rc, 0) << out;
  EXPECT_EQ(out.rfind("error: ", 0), 0u) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << "not one line: " << out;
  for (const auto& n : needles) EXPECT_NE(out.find(n), std::string::npos) << "expected '" << n << "' in: " << out;
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
                        (fs::path(MMN_SOURCE_DIR) / "assets/sample.png").string() + " --max-new-tokens 4 --json",
                    &log),
            0)
      << log;
  const nlohmann::json j = nlohmann::json::parse(log.substr(log.find('{')));
  const auto ids = j["prompt_ids"].get<std::vector<int>>();
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], 2);  // BOS "</s>", as Salesforce's tokenizer
  fs::remove_all(d);
}
