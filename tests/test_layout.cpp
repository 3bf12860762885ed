// The one layout description per family (models/layout.h) against real
// checkpoints: every golden checkpoint holds exactly the tensors its family's
// walk names, with the shapes it names; and make-random, which writes what
// the walk names, produces checkpoints every command loads, in both formats.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

#include "io/json_file.h"
#include "io/safetensors.h"
#include "models/layout.h"
#include "models/random_checkpoint.h"
#include "models/vlm.h"
#include "test_util.h"

namespace mmn {
namespace {

namespace fs = std::filesystem;
using test::golden_model;

// Compares a checkpoint's tensors with a layout: every used tensor present
// with its shape (rank-3 [1, 1, D] vs [D] is a real difference, so exact);
// every stored tensor described, except those `extra` accepts.
void expect_matches(const SafetensorsCheckpoint& ck, const std::vector<TensorDesc>& layout,
                    const std::function<bool(const std::string&)>& extra) {
  std::set<std::string> described;
  for (const TensorDesc& t : layout) {
    described.insert(t.name);
    if (!t.used && !ck.has(t.name)) continue;
    ASSERT_TRUE(ck.has(t.name)) << "the checkpoint lacks " << t.name;
    EXPECT_EQ(ck.get(t.name).shape, t.shape) << t.name;
  }
  for (const auto& [name, ref] : ck.tensors())
    if (!described.count(name)) EXPECT_TRUE(extra(name)) << "not in the layout: " << name;
}

class LayoutGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(LayoutGolden, CheckpointHoldsExactlyTheDescribedTensors) {
  MMN_REQUIRE_SHARED();
  const fs::path dir = golden_model(GetParam());
  const JsonFile config = JsonFile::load((dir / "config.json").string());
  std::optional<JsonFile> tower_config;
  fs::path tower_dir;
  if (config.has("mm_vision_tower")) {  // the original LLaVA layout: the tower lies beside the checkpoint
    tower_dir = dir.parent_path() / (config.get_string("mm_vision_tower") + (GetParam().ends_with("-bin") ? "-bin" : ""));
    tower_config = JsonFile::load((tower_dir / "config.json").string());
  }
  const CheckpointLayout layout = describe_checkpoint(config, tower_config ? &*tower_config : nullptr);
  ASSERT_FALSE(layout.tensors.empty());
  expect_matches(SafetensorsCheckpoint::open(dir.string()), layout.tensors, [](const std::string&) { return false; });
  if (tower_config) {
    ASSERT_FALSE(layout.tower_tensors.empty());
    // A CLIPModel: its text half, projections, logit scale and position-id
    // buffers are never read.
    expect_matches(SafetensorsCheckpoint::open(tower_dir.string()), layout.tower_tensors, [](const std::string& n) {
      return n.rfind("text_model.", 0) == 0 || n == "visual_projection.weight" || n == "text_projection.weight" ||
             n == "logit_scale" || n == "vision_model.embeddings.position_ids";
    });
  } else {
    EXPECT_TRUE(layout.tower_tensors.empty());
  }
}

INSTANTIATE_TEST_SUITE_P(All, LayoutGolden,
                         ::testing::Values("tiny-llava-a-f32", "tiny-llava-c-f16", "tiny-iblip-a-f32", "tiny-owl2-a-f32",
                                           "tiny-llava1-a-f32", "tiny-llava1-a-f32-bin"),
                         test::ParamName());

TEST(Layout, RolesAndInitialisationHints) {
  MMN_REQUIRE_SHARED();
  const JsonFile config = JsonFile::load((golden_model("tiny-llava-a-f32") / "config.json").string());
  std::map<std::string, TensorDesc> by_name;
  for (const TensorDesc& t : describe_checkpoint(config).tensors) by_name[t.name] = t;
  const TensorDesc& down = by_name.at("language_model.model.layers.0.mlp.down_proj.weight");
  EXPECT_EQ(down.role, TensorRole::Weight);
  EXPECT_TRUE(down.residual);
  EXPECT_EQ(down.depth, config.sub("text_config").get_int("num_hidden_layers"));
  EXPECT_EQ(down.fan_in, config.sub("text_config").get_int("intermediate_size"));
  EXPECT_FALSE(by_name.at("language_model.model.layers.0.mlp.up_proj.weight").residual);
  EXPECT_EQ(by_name.at("language_model.model.embed_tokens.weight").role, TensorRole::Embedding);
  EXPECT_EQ(by_name.at("language_model.model.norm.weight").role, TensorRole::Norm);
  EXPECT_EQ(by_name.at("vision_tower.vision_model.pre_layrnorm.bias").role, TensorRole::NormBias);
  // LLaVA reads a hidden state before CLIP's post_layernorm: stored, never read.
  EXPECT_FALSE(by_name.at("vision_tower.vision_model.post_layernorm.weight").used);
  EXPECT_TRUE(by_name.at("vision_tower.vision_model.pre_layrnorm.weight").used);
}

// make-random writes what the walk names; the result loads and captions.
class LayoutMakeRandom : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(LayoutMakeRandom, WritesALoadableCheckpoint) {
  const auto& [preset, format] = GetParam();
  const fs::path out = fs::temp_directory_path() / ("mmn_layout_" + preset + "_" + format);
  fs::remove_all(out);
  std::string log;
  ASSERT_EQ(test::run_cmd(test::binary() + " make-random --preset " + preset + " --dtype f32 --format " + format +
                              " --out " + out.string(),
                          &log),
            0)
      << log;
  EXPECT_EQ(fs::exists(out / "model.safetensors"), format == "safetensors");
  EXPECT_EQ(fs::exists(out / "pytorch_model.bin"), format == "bin");
  auto model = load_model(out.string());
  const JsonFile config = JsonFile::load((out / "config.json").string());
  std::optional<JsonFile> tower;
  if (config.has("mm_vision_tower"))
    tower = JsonFile::load((out / config.get_string("mm_vision_tower") / "config.json").string());
  const CheckpointLayout layout = describe_checkpoint(config, tower ? &*tower : nullptr);
  expect_matches(model->checkpoint(), layout.tensors, [](const std::string&) { return false; });
  // Every command path runs on it: a caption through the whole model.
  ASSERT_EQ(test::run_cmd(test::binary() + " caption --model " + out.string() + " --image " +
                              (fs::path(MMN_SOURCE_DIR) / "assets" / "sample.png").string() + " --max-new-tokens 3",
                          &log),
            0)
      << log;
  fs::remove_all(out);
}

INSTANTIATE_TEST_SUITE_P(All, LayoutMakeRandom,
                         ::testing::Combine(::testing::Values("tiny", "tiny-llava-v1", "tiny-instructblip", "tiny-owl2"),
                                            ::testing::Values("safetensors", "bin")),
                         test::TupleParamName());

}  // namespace
}  // namespace mmn
