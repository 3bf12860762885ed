// The gradient baseline's ∂y/∂(down_proj input) against finite differences:
// scaling W_down[:, i] by (1 + ε) moves y by ε·Σ_p post[p, i]·∂y/∂post[p, i].
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "io/image.h"
#include "models/generate.h"
#include "models/vlm.h"
#include "neurons/find.h"
#include "neurons/gradient.h"
#include "tensor/weight.h"
#include "test_util.h"

using namespace mmn;
using namespace mmn::test;

namespace {

// Logit of `token` at the last row of prompt + prefix (teacher forced).
double logit(const VisionLanguageModel& m, const PromptInputs& in, const std::vector<int32_t>& prefix, int32_t token) {
  const LlamaDecoder& dec = m.decoder();
  const LlamaConfig& c = dec.config();
  const int64_t D = c.hidden, rows = in.seq_len + static_cast<int64_t>(prefix.size());
  std::vector<float> x(rows * D);
  std::copy(in.embeds.begin(), in.embeds.end(), x.begin());
  dec.embed(prefix.data(), static_cast<int64_t>(prefix.size()), x.data() + in.seq_len * D);
  KVCache cache;
  cache.init(c, rows);
  CaptureSet none;
  dec.forward(x.data(), rows, cache, 0, none);
  std::vector<float> y(D), l(c.vocab);
  dec.final_norm(x.data() + (rows - 1) * D, 1, y.data());
  dec.logits(y.data(), 1, l.data());
  return l[token];
}

}  // namespace

TEST(GradientBaseline, MlpGradientsMatchFiniteDifferences) {
  MMN_REQUIRE_SHARED();
  auto model = load_model(golden("models/tiny-llava-a-f32").string());
  PreprocessedImage px = model->preprocess(load_image(golden("images/landscape_80x60.png").string()));
  PromptInputs in = model->build_inputs({}, model->encode_image(px, nullptr), nullptr);
  GenerateOptions g;
  g.max_new_tokens = 3;
  const std::vector<int32_t> gen = generate(*model, in, g).generated;
  const int step = 2;
  const LlamaConfig& c = model->decoder().config();
  const int64_t I = c.intermediate;
  std::vector<std::vector<double>> analytic(c.n_layers, std::vector<double>(I, 0.0));
  std::vector<float> attr_check(c.n_layers * I, -INFINITY);
  visit_mlp_gradients(*model, in, gen, step, [&](int l, const float* post, const float* dpost) {
    const int64_t rows = in.seq_len + step;
    for (int64_t p = 0; p < rows; ++p)
      for (int64_t i = 0; i < I; ++i) {
        analytic[l][i] += static_cast<double>(post[p * I + i]) * dpost[p * I + i];
        if (p >= in.image_pos0 && p < in.image_pos0 + in.image_tokens)
          attr_check[l * I + i] = std::max(attr_check[l * I + i], post[p * I + i] * dpost[p * I + i]);
      }
  });
  EXPECT_EQ(gradient_attribution(*model, in, gen, step), attr_check);

  const std::vector<int32_t> prefix(gen.begin(), gen.begin() + step);
  for (int l = 0; l < c.n_layers; ++l)
    for (int64_t i : {int64_t{3}, int64_t{77}, I - 1}) {
      Weight& W = model->decoder().layer(l).down.w;  // [D, I], F32 in this checkpoint
      const Weight saved = W;
      std::vector<float> copy(static_cast<const float*>(W.data), static_cast<const float*>(W.data) + W.rows * W.cols);
      auto with_scale = [&](double s) {
        std::vector<float> m = copy;
        for (int64_t d = 0; d < W.rows; ++d) m[d * W.cols + i] = static_cast<float>(copy[d * W.cols + i] * s);
        W.data = m.data();
        const double y = logit(*model, in, prefix, gen[step]);
        W = saved;
        return y;
      };
      const double eps = 1e-2;
      const double fd = (with_scale(1 + eps) - with_scale(1 - eps)) / (2 * eps);
      EXPECT_NEAR(analytic[l][i], fd, 2e-3 + 1e-2 * std::fabs(fd)) << "layer " << l << " unit " << i;
      EXPECT_GT(std::fabs(fd), 1e-4) << "a vanishing derivative checks nothing";
    }
}

TEST(GradientBaseline, FindMethodGradientRanksByAttribution) {
  MMN_REQUIRE_SHARED();
  auto model = load_model(golden("models/tiny-llava-a-f32").string());
  ImageU8 img = load_image(golden("images/portrait_48x72.png").string());
  FindOptions o;
  o.all_tokens = true;
  o.max_new_tokens = 2;
  o.top_k = 20;
  o.also_gradient = true;
  ImageFindResult r = find_neurons(*model, nullptr, img, o);
  FindOptions og = o;
  og.also_gradient = false;
  og.method = RankMethod::Gradient;
  ImageFindResult rg = find_neurons(*model, nullptr, img, og);
  ASSERT_EQ(r.concepts.size(), 2u);
  for (size_t k = 0; k < 2; ++k) {
    ASSERT_EQ(rg.concepts[k].neurons.size(), 20u);
    for (size_t j = 0; j < 20; ++j) {
      EXPECT_EQ(rg.concepts[k].neurons[j].layer, r.concepts[k].gradient_neurons[j].layer);
      EXPECT_EQ(rg.concepts[k].neurons[j].unit, r.concepts[k].gradient_neurons[j].unit);
      if (j) EXPECT_GE(rg.concepts[k].neurons[j - 1].score, rg.concepts[k].neurons[j].score);
    }
  }
}

// neuron_image_maps multiplies all of a layer's listed neurons at once; each
// map must equal that neuron's own activation over the image rows, computed
// here one neuron at a time in double precision from the stored weights.
TEST(ImageMaps, BatchedPerLayerEqualsEachNeuronAlone) {
  MMN_REQUIRE_SHARED();
  for (const char* name : {"tiny-llava-c-f16", "tiny-owl2-a-f32"}) {
    SCOPED_TRACE(name);
    auto model = load_model(golden_model(name).string());
    ImageU8 img = load_image(golden("images/portrait_48x72.png").string());
    FindOptions o;
    o.all_tokens = true;
    o.max_new_tokens = 1;
    o.top_k = 5;
    o.heatmaps = true;
    const ImageFindResult r = find_neurons(*model, nullptr, img, o);
    const LlamaDecoder& dec = model->decoder();
    const int64_t D = dec.config().hidden, P = r.image_tokens, L = dec.config().n_layers;
    const int64_t I = dec.layer(0).gate.w.rows;
    // Several layers, out of order, a repeat, and the first and last units.
    std::vector<NeuronEntry> neurons = {{static_cast<int>(L - 1), 3, 0}, {0, 0, 0}, {static_cast<int>(L - 1), 0, 0},
                                        {0, static_cast<int>(I - 1), 0}, {0, 0, 0}, {static_cast<int>(L / 2), 7, 0}};
    for (ActivationVariant v : {ActivationVariant::SwiGLU, ActivationVariant::Act}) {
      const std::vector<float> maps = neuron_image_maps(*model, r, neurons, v);
      ASSERT_EQ(maps.size(), neurons.size() * P);
      std::vector<float> wg(D), wu(D);
      for (size_t n = 0; n < neurons.size(); ++n) {
        const LlamaLayer& Lr = dec.layer(neurons[n].layer);
        weight_row_f32(Lr.gate.w, neurons[n].unit, 0, D, wg.data());
        weight_row_f32(Lr.up.w, neurons[n].unit, 0, D, wu.data());
        for (int64_t p = 0; p < P; ++p) {
          const float* h = r.image_ffn_inputs.data() + neurons[n].layer * P * D + p * D;
          double g = 0, u = 0;
          for (int64_t d = 0; d < D; ++d) g += static_cast<double>(h[d]) * wg[d], u += static_cast<double>(h[d]) * wu[d];
          double want = g / (1 + std::exp(-g));
          if (v == ActivationVariant::SwiGLU) want *= u;
          const int64_t orig = r.permutation.empty() ? p : r.permutation[p];
          EXPECT_NEAR(maps[n * P + orig], want, 1e-5 * (1 + std::fabs(want))) << "neuron " << n << " row " << p;
        }
      }
    }
  }
}
