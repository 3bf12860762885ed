// Hooks that intervene, and prefix reuse: an ablation through the hook equals
// the caption of a checkpoint whose down_proj columns were zeroed on disk (all
// golden families), a σ-perturbation equals a checkpoint with the perturbed
// value vectors written out, the named-point hooks modify what flows on, and a
// pass resumed from a clean pass at layer l0 is bit-identical to a full one.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>

#include "golden_models.h"
#include "io/image.h"
#include "io/npy.h"
#include "models/generate.h"
#include "models/intervention.h"
#include "models/vlm.h"
#include "test_util.h"
#include "util/error.h"

namespace fs = std::filesystem;
using namespace mmn;
using namespace mmn::test;

namespace {

struct Captioned {
  std::vector<int32_t> ids;
  std::vector<std::vector<float>> logits;
};

PromptInputs inputs_for(const VisionLanguageModel& m, const std::string& image) {
  ImageU8 img = load_image(golden("images/" + image + ".png").string());
  return m.build_inputs(PromptText{}, m.encode_image(m.preprocess(img), nullptr), nullptr);
}

Captioned caption(const VisionLanguageModel& m, const PromptInputs& in, std::vector<CaptureSink*> sinks, int max_new = 8) {
  GenerateOptions g;
  g.max_new_tokens = max_new;
  g.keep_step_logits = true;
  g.sinks = std::move(sinks);
  GenerateResult r = generate(m, in, g);
  return {r.generated, r.step_logits};
}

// Every logit within tol·max|ref| (the golden tolerance), same ids.
void expect_same_caption(const Captioned& ref, const Captioned& got, double tol) {
  ASSERT_EQ(ref.ids, got.ids);
  ASSERT_EQ(ref.logits.size(), got.logits.size());
  for (size_t s = 0; s < ref.logits.size(); ++s) {
    double mx = 0;
    for (float v : ref.logits[s]) mx = std::max(mx, std::fabs(static_cast<double>(v)));
    for (size_t i = 0; i < ref.logits[s].size(); ++i)
      ASSERT_LE(std::fabs(static_cast<double>(ref.logits[s][i]) - got.logits[s][i]), tol * mx)
          << "step " << s << " logit " << i;
  }
}

// The checkpoint tensor that holds layer l's down_proj weight.
std::string down_tensor_name(const VisionLanguageModel& m, int l) {
  for (auto& [name, t] : m.checkpoint().tensors())
    if (t.data == m.decoder().layer(l).down.w.data) return name;
  ADD_FAILURE() << "no tensor for layer " << l << " down_proj";
  return "";
}

// A copy of golden model `name` whose weights pass through edit(tensor name, bytes).
fs::path edited_copy(const std::string& name, const std::string& tag,
                     const std::function<void(const std::string&, const TensorRef&, std::vector<uint8_t>&)>& edit) {
  fs::path dir = copy_golden_model(name, tag);
  const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(golden("models/" + name).string());
  std::vector<TensorSpec> specs;
  for (const auto& [n, t] : ck.tensors()) specs.push_back({n, t.dtype, t.shape});
  fs::remove(dir / "model.safetensors");
  write_safetensors((dir / "model.safetensors").string(), specs, {{"format", "pt"}},
                    [&](const TensorSpec& s, std::FILE* f) {
                      const TensorRef& t = ck.get(s.name);
                      std::vector<uint8_t> bytes(static_cast<const uint8_t*>(t.data),
                                                 static_cast<const uint8_t*>(t.data) + t.nbytes);
                      edit(s.name, t, bytes);
                      std::fwrite(bytes.data(), 1, bytes.size(), f);
                    });
  return dir;
}

// The neurons the tests touch: a few units spread over the layers.
std::vector<NeuronRef> some_neurons(const LlamaConfig& c) {
  std::vector<NeuronRef> out;
  for (int l = 0; l < c.n_layers; ++l)
    for (int64_t u : {int64_t{1}, c.intermediate / 2, c.intermediate - 1}) out.push_back({l, static_cast<int>(u)});
  return out;
}

class GoldenFamilies : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenFamilies, AblationHookEqualsZeroedCheckpoint) {
  MMN_REQUIRE_SHARED();
  const std::string name = GetParam();
  auto m = load_model(golden("models/" + name).string());
  const LlamaConfig& c = m->decoder().config();
  const std::vector<NeuronRef> ns = some_neurons(c);
  std::map<std::string, int> layer_of;
  for (int l = 0; l < c.n_layers; ++l) layer_of[down_tensor_name(*m, l)] = l;
  fs::path zeroed = edited_copy(name, "ablate", [&](const std::string& n, const TensorRef& t, std::vector<uint8_t>& b) {
    auto it = layer_of.find(n);
    if (it == layer_of.end()) return;
    const size_t es = dtype_size(t.dtype);
    for (auto& nr : ns)
      if (nr.layer == it->second)
        for (int64_t d = 0; d < c.hidden; ++d) std::memset(&b[(d * c.intermediate + nr.unit) * es], 0, es);  // ±0 is 0 in f32/f16/bf16
  });
  auto z = load_model(zeroed.string());
  for (const char* image : {"landscape_80x60", "tiny_10x10"}) {
    PromptInputs in = inputs_for(*m, image);
    NeuronIntervention iv(c.n_layers, c.hidden, c.intermediate);
    for (auto& nr : ns) iv.ablate(nr);
    Captioned hooked = caption(*m, in, {&iv});
    Captioned ref = caption(*z, inputs_for(*z, image), {});
    expect_same_caption(ref, hooked, 2e-5);
    // The intervention really changes something on these models.
    Captioned clean = caption(*m, in, {});
    EXPECT_NE(clean.logits[0], hooked.logits[0]);
  }
  fs::remove_all(zeroed);
}

TEST_P(GoldenFamilies, SigmaPerturbationEqualsRewrittenValueVectors) {
  MMN_REQUIRE_SHARED();
  const std::string name = GetParam();
  auto m = load_model(golden("models/" + name).string());
  const LlamaConfig& c = m->decoder().config();
  if (m->decoder().layer(0).down.w.dtype != DType::F32)
    GTEST_SKIP() << name << " stores f16 value vectors: a σ-perturbed one cannot be written exactly";
  NeuronIntervention iv(c.n_layers, c.hidden, c.intermediate);
  std::mt19937_64 rng(11);
  const std::vector<NeuronRef> ns = some_neurons(c);
  for (auto& nr : ns) iv.add_noise(nr, 0.5f, rng);
  iv.scale(ns[0], 3.f);  // compose a scale with the noise: v ← 3v + δ
  std::map<std::string, int> layer_of;
  for (int l = 0; l < c.n_layers; ++l) layer_of[down_tensor_name(*m, l)] = l;
  fs::path edited = edited_copy(name, "sigma", [&](const std::string& n, const TensorRef& t, std::vector<uint8_t>& b) {
    auto it = layer_of.find(n);
    if (it == layer_of.end()) return;
    float* w = reinterpret_cast<float*>(b.data());
    for (auto& nr : iv.neurons()) {
      if (nr.layer != it->second) continue;
      const std::vector<float> delta = iv.delta(nr);
      for (int64_t d = 0; d < c.hidden; ++d) {
        float& v = w[d * c.intermediate + nr.unit];
        v = iv.scale_of(nr) * v + delta[d];
      }
    }
  });
  auto e = load_model(edited.string());
  PromptInputs in = inputs_for(*m, "portrait_48x72");
  const Captioned hooked = caption(*m, in, {&iv});
  expect_same_caption(caption(*e, inputs_for(*e, "portrait_48x72"), {}), hooked, 2e-5);
  EXPECT_NE(caption(*m, in, {}).logits[0], hooked.logits[0]);  // the perturbation is not a no-op
  fs::remove_all(edited);
}

TEST_P(GoldenFamilies, PrefixReuseIsBitIdentical) {
  MMN_REQUIRE_SHARED();
  auto m = load_model(golden("models/" + GetParam()).string());
  const LlamaConfig& c = m->decoder().config();
  PromptInputs in = inputs_for(*m, "landscape_80x60");
  const Captioned clean = caption(*m, in, {}, 6);
  const std::vector<int32_t> forced(clean.ids.begin(), clean.ids.end() - 1);
  std::vector<int> layers;
  for (int l = 1; l < c.n_layers; ++l) layers.push_back(l);
  ForcedOptions co;
  co.keep_resid = layers;
  ForcedPass base = forced_pass(*m, in, forced, co);
  // The batched clean pass predicts what generation produced.
  for (size_t j = 0; j < clean.ids.size(); ++j) {
    double mx = 0;
    for (float v : clean.logits[j]) mx = std::max(mx, std::fabs(static_cast<double>(v)));
    for (size_t i = 0; i < clean.logits[j].size(); i += 7)
      ASSERT_NEAR(base.logits[j][i], clean.logits[j][i], 2e-5 * mx) << j;
  }
  for (int l0 = 1; l0 < c.n_layers; ++l0) {
    NeuronIntervention iv(c.n_layers, c.hidden, c.intermediate);
    std::mt19937_64 rng(l0);
    iv.add_noise({l0, 3}, 4.f, rng);
    iv.ablate({c.n_layers - 1, 0});
    ASSERT_EQ(iv.lowest_layer(), l0);
    ForcedOptions full, resumed;
    full.sinks = resumed.sinks = {&iv};
    full.extra_capacity = resumed.extra_capacity = 6;
    resumed.reuse = &base;
    resumed.first_layer = l0;
    ForcedPass a = forced_pass(*m, in, forced, full), b = forced_pass(*m, in, forced, resumed);
    ASSERT_EQ(a.logits, b.logits) << "l0 = " << l0;  // bit for bit
    EXPECT_EQ(greedy_from_forced(*m, a, {&iv}, 6), greedy_from_forced(*m, b, {&iv}, 6));
  }
}

INSTANTIATE_TEST_SUITE_P(All, GoldenFamilies,
                         ::testing::Values("tiny-llava-a-f32", "tiny-llava-c-f16", "tiny-iblip-a-f32", "tiny-owl2-a-f32"),
                         ParamName());

TEST(NamedHooks, ModifyingAPointFlowsOnAndDecodeStepsSeeHooks) {
  MMN_REQUIRE_SHARED();
  auto m = load_model(golden("models/tiny-llava-a-f32").string());
  const LlamaConfig& c = m->decoder().config();
  PromptInputs in = inputs_for(*m, "tiny_10x10");
  // Zeroing hook_mlp_out of a layer = ablating every neuron of that layer.
  const int l = c.n_layers - 1;
  FunctionHooks zero_out;
  std::vector<int> steps_seen;
  zero_out.add(Hook::MlpOut, l, [&](const CaptureEvent& e) {
    std::memset(e.data, 0, static_cast<size_t>(e.rows * e.width) * sizeof(float));
    steps_seen.push_back(e.step);
    if (e.step > 0) {
      EXPECT_EQ(e.rows, 1);  // the KV cache is on: one row per decode step
    }
  });
  NeuronIntervention all(c.n_layers, c.hidden, c.intermediate);
  for (int64_t u = 0; u < c.intermediate; ++u) all.ablate({l, static_cast<int>(u)});
  const Captioned a = caption(*m, in, {&zero_out}), b = caption(*m, in, {&all});
  expect_same_caption(a, b, 1e-6);
  ASSERT_EQ(steps_seen.size(), a.ids.size());  // prefill + every decode step but the last token's
  for (size_t s = 0; s < steps_seen.size(); ++s) EXPECT_EQ(steps_seen[s], static_cast<int>(s));
  // Recorders after an intervention see the modified rows.
  FunctionHooks observe;
  bool zero_seen = true;
  observe.add(Hook::MlpOut, l, [&](const CaptureEvent& e) {
    for (int64_t i = 0; i < e.rows * e.width; ++i) zero_seen &= e.data[i] == 0.f;
  });
  caption(*m, in, {&zero_out, &observe});
  EXPECT_TRUE(zero_seen);
}

TEST(HookNames, OneTableParsesAndPrintsEveryPoint) {
  const std::vector<std::string> names = all_hook_names(3);
  EXPECT_EQ(names.size(), 3u * 11 + 1);
  for (auto& n : names) {
    Hook h;
    int layer;
    ASSERT_TRUE(parse_hook_name(n, &h, &layer)) << n;
    EXPECT_EQ(hook_name(h, layer), n);
  }
  Hook h;
  int layer;
  EXPECT_FALSE(parse_hook_name("blocks.0.mlp.hook_nope", &h, &layer));
  EXPECT_FALSE(parse_hook_name("blocks.x.hook_resid_pre", &h, &layer));
  EXPECT_THROW(parse_hook_name_or_fail("blocks.3.hook_resid_pre", 3, &h, &layer), Error);
  EXPECT_THROW(parse_hook_name_or_fail("resid", 3, &h, &layer), Error);
}

TEST(NeuronList, ParsesAndChecksRanges) {
  auto ns = parse_neuron_list("0:1,2:350", 4, 352);
  ASSERT_EQ(ns.size(), 2u);
  EXPECT_EQ(ns[1].layer, 2);
  EXPECT_EQ(ns[1].unit, 350);
  EXPECT_THROW(parse_neuron_list("4:0", 4, 352), Error);
  EXPECT_THROW(parse_neuron_list("0:352", 4, 352), Error);
  EXPECT_THROW(parse_neuron_list("0-1", 4, 352), Error);
  EXPECT_THROW(parse_neuron_list("", 4, 352), Error);
  NeuronIntervention iv(4, 8, 16);
  std::mt19937_64 rng(1);
  EXPECT_THROW(iv.add_noise({0, 0}, -1.f, rng), Error);
  EXPECT_THROW(iv.ablate({0, 16}), Error);
}

TEST(CaptionCli, AblateAndHookDump) {
  MMN_REQUIRE_SHARED();
  const std::string model = golden("models/tiny-llava-a-f32").string(), img = golden("images/tiny_10x10.png").string();
  fs::path dir = temp_dir("hookdump");
  std::string out;
  ASSERT_EQ(run_cmd(binary() + " caption --model " + model + " --image " + img +
                        " --max-new-tokens 4 --hook blocks.1.mlp.hook_post --hook ln_final.hook_normalized --hook-dir " +
                        dir.string() + " --ablate 1:3,0:7 --json",
                    &out),
            0)
      << out;
  NpyArray post = read_npy((dir / "blocks.1.mlp.hook_post.npy").string());
  auto m = load_model(model);
  const LlamaConfig& c = m->decoder().config();
  ASSERT_EQ(post.shape.size(), 2u);
  EXPECT_EQ(post.shape[1], c.intermediate);
  std::vector<float> v = post.as_f32();
  for (int64_t r = 0; r < post.shape[0]; ++r) EXPECT_EQ(v[r * c.intermediate + 3], 0.f) << r;  // ablated
  NpyArray fin = read_npy((dir / "ln_final.hook_normalized.npy").string());
  EXPECT_EQ(fin.shape[1], c.hidden);
  EXPECT_EQ(fin.shape[0], post.shape[0]);  // the same rows: prompt + decode steps
  expect_one_line_error(binary() + " caption --model " + model + " --image " + img + " --hook blocks.1.mlp.hook_nope --hook-dir " +
                            dir.string(),
                        {"unknown hook point 'blocks.1.mlp.hook_nope'"});
  expect_one_line_error(binary() + " caption --model " + model + " --image " + img + " --hook blocks.99.hook_resid_pre --hook-dir " +
                            dir.string(),
                        {"layer 99 is out of range"});
  expect_one_line_error(binary() + " caption --model " + model + " --image " + img + " --ablate 0:99999",
                        {"unit 99999 is out of range"});
  expect_one_line_error(binary() + " caption --model " + model + " --image " + img + " --hook blocks.0.hook_resid_pre",
                        {"--hook needs --hook-dir"});
  fs::remove_all(dir);
}

}  // namespace
