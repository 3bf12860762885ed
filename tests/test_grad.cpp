// Gradients against central finite differences: every backward kernel of
// grad/backward_ops.h on its own, then a whole tiny LLaVA model's loss with
// respect to parameters of each part (vision tower, projector, decoder).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <random>

#include "grad/backward_ops.h"
#include "grad/llava_train.h"
#include "kernels/convert.h"
#include "kernels/linear.h"
#include "kernels/ops.h"
#include "models/generate.h"
#include "models/random_checkpoint.h"
#include "models/vlm.h"
#include "test_util.h"
#include "util/error.h"

using namespace mmn;

namespace {

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Σ r ⊙ y in double: the scalar whose gradient w.r.t. y is r.
double dot(const std::vector<float>& r, const std::vector<float>& y) {
  double s = 0;
  for (size_t i = 0; i < y.size(); ++i) s += static_cast<double>(r[i]) * y[i];
  return s;
}

// Compares analytic[i] with (f(x + eps e_i) − f(x − eps e_i)) / 2eps on up to
// `count` coordinates of x (all when count <= 0).
void check(const char* what, std::vector<float>& x, const std::vector<float>& analytic, const std::function<double()>& f,
           int count = 0, float eps = 1e-3f, double atol = 2e-3, double rtol = 2e-2) {
  ASSERT_EQ(x.size(), analytic.size()) << what;
  std::vector<size_t> idx(x.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  if (count > 0 && static_cast<size_t>(count) < idx.size()) {
    std::mt19937 rng(7);
    std::shuffle(idx.begin(), idx.end(), rng);
    idx.resize(count);
  }
  int bad = 0;
  for (size_t i : idx) {
    const float x0 = x[i];
    x[i] = x0 + eps;
    const double fp = f();
    x[i] = x0 - eps;
    const double fm = f();
    x[i] = x0;
    const double num = (fp - fm) / (2.0 * eps);
    if (std::fabs(num - analytic[i]) > atol + rtol * std::fabs(num) && bad++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: analytic " << analytic[i] << ", numeric " << num;
  }
}

Weight f32_weight(const std::vector<float>& w, int64_t rows, int64_t cols) {
  Weight W;
  W.dtype = DType::F32;
  W.rows = rows;
  W.cols = cols;
  W.data = w.data();
  return W;
}

}  // namespace

TEST(Grad, LinearF32) {
  for (int64_t M : {3, 12}) {  // the GEMV and the GEMM forward paths
    const int64_t N = 6, K = 7;
    std::vector<float> x = randn(M * K, 1), w = randn(N * K, 2, 0.5f), b = randn(N, 3), r = randn(M * N, 4);
    auto f = [&] {
      std::vector<float> y(M * N);
      linear(x.data(), M, f32_weight(w, N, K), b.data(), y.data());
      return dot(r, y);
    };
    std::vector<float> dx(M * K, 0.f), dw(N * K, 0.f), db(N, 0.f);
    linear_backward(x.data(), r.data(), M, f32_weight(w, N, K), dx.data(), dw.data(), db.data());
    check("linear dx", x, dx, f);
    check("linear dW", w, dw, f);
    check("linear db", b, db, f);
  }
}

TEST(Grad, LinearLargeThreaded) {
  // Large enough for the threaded column/row bands.
  const int64_t M = 40, N = 130, K = 260;
  std::vector<float> x = randn(M * K, 5), w = randn(N * K, 6, 0.1f), r = randn(M * N, 7);
  auto f = [&] {
    std::vector<float> y(M * N);
    linear(x.data(), M, f32_weight(w, N, K), nullptr, y.data());
    return dot(r, y);
  };
  std::vector<float> dx(M * K, 0.f), dw(N * K, 0.f);
  linear_backward(x.data(), r.data(), M, f32_weight(w, N, K), dx.data(), dw.data(), nullptr);
  // Linear in each input: finite differences are exact up to rounding.
  check("linear dx", x, dx, f, 60, 1e-2f, 2e-3, 1e-3);
  check("linear dW", w, dw, f, 60, 1e-2f, 2e-3, 1e-3);
}

TEST(Grad, LinearStoredDtypes) {
  // Weights stored as bf16/f16: input gradients through the stored values; the
  // fp32 weight gradient does not depend on the weight.
  const int64_t M = 9, N = 40, K = 24;
  std::vector<float> x = randn(M * K, 8), w = randn(N * K, 9, 0.3f), r = randn(M * N, 10);
  for (DType dt : {DType::BF16, DType::F16}) {
    std::vector<uint16_t> stored(N * K);
    convert_from_f32(dt, w.data(), stored.data(), N * K);
    Weight W{dt, N, K, stored.data()};
    auto f = [&] {
      std::vector<float> y(M * N);
      linear(x.data(), M, W, nullptr, y.data());
      return dot(r, y);
    };
    std::vector<float> dx(M * K, 0.f), dw(N * K, 0.f);
    linear_backward(x.data(), r.data(), M, W, dx.data(), dw.data(), nullptr);
    check("stored linear dx", x, dx, f, 0, 1e-2f, 2e-3, 1e-3);
    std::vector<float> dw_ref(N * K, 0.f);
    linear_backward(x.data(), r.data(), M, f32_weight(w, N, K), nullptr, dw_ref.data(), nullptr);
    for (int64_t i = 0; i < N * K; ++i) ASSERT_NEAR(dw[i], dw_ref[i], 1e-4f);
  }
}

TEST(Grad, Embedding) {
  const int64_t V = 5, D = 4;
  std::vector<float> E = randn(V * D, 11);
  std::vector<int32_t> ids = {3, 1, 3, -1, 0};
  std::vector<float> r = randn(ids.size() * D, 12);
  auto f = [&] {
    double s = 0;
    for (size_t i = 0; i < ids.size(); ++i)
      if (ids[i] >= 0)
        for (int64_t d = 0; d < D; ++d) s += static_cast<double>(r[i * D + d]) * E[ids[i] * D + d];
    return s;
  };
  std::vector<float> dE(V * D, 0.f);
  embedding_backward(ids.data(), static_cast<int64_t>(ids.size()), r.data(), D, dE.data());
  check("embedding", E, dE, f);
}

TEST(Grad, LayerNorm) {
  const int64_t R = 4, D = 16;
  std::vector<float> x = randn(R * D, 13, 2.f), w = randn(D, 14), b = randn(D, 15), r = randn(R * D, 16);
  for (auto& v : x) v += 0.7f;
  auto f = [&] {
    std::vector<float> y(R * D);
    layer_norm(x.data(), w.data(), b.data(), 1e-5f, R, D, y.data());
    return dot(r, y);
  };
  std::vector<float> dx(R * D, 0.f), dw(D, 0.f), db(D, 0.f);
  layer_norm_backward(x.data(), w.data(), 1e-5f, R, D, r.data(), dx.data(), dw.data(), db.data());
  check("layer_norm dx", x, dx, f);
  check("layer_norm dw", w, dw, f);
  check("layer_norm db", b, db, f);
}

TEST(Grad, RmsNorm) {
  const int64_t R = 3, D = 16;
  std::vector<float> x = randn(R * D, 17, 1.5f), w = randn(D, 18), r = randn(R * D, 19);
  auto f = [&] {
    std::vector<float> y(R * D);
    rms_norm(x.data(), w.data(), 1e-6f, R, D, y.data());
    return dot(r, y);
  };
  std::vector<float> dx(R * D, 0.f), dw(D, 0.f);
  rms_norm_backward(x.data(), w.data(), 1e-6f, R, D, r.data(), dx.data(), dw.data());
  check("rms_norm dx", x, dx, f);
  check("rms_norm dw", w, dw, f);
}

TEST(Grad, Rope) {
  const int64_t R = 5;
  const int H = 3, hd = 8;
  Rope rope(hd, 10000.0);
  std::vector<float> x = randn(R * H * hd, 20), r = randn(R * H * hd, 21);
  auto f = [&] {
    std::vector<float> y = x;
    rope.apply(y.data(), R, H, 7);
    return dot(r, y);
  };
  std::vector<float> dx = r;
  rope_backward(rope, dx.data(), R, H, 7);
  check("rope", x, dx, f);
}

TEST(Grad, Attention) {
  struct Case {
    int64_t Sq, q_pos0, Sk;
    int nh, nkv;
    bool causal;
  };
  // Causal GQA over a whole sequence, causal queries after a cached prefix, and unmasked MHA.
  for (const Case& c : {Case{6, 0, 6, 4, 2, true}, Case{3, 4, 7, 2, 1, true}, Case{5, 0, 5, 2, 2, false}}) {
    const int hd = 4;
    const int64_t qw = c.nh * hd, kw = c.nkv * hd;
    std::vector<float> q = randn(c.Sq * qw, 22), k = randn(c.Sk * kw, 23), v = randn(c.Sk * kw, 24),
                       r = randn(c.Sq * qw, 25);
    const float scale = 0.5f;
    auto f = [&] {
      std::vector<float> o(c.Sq * qw);
      attention(q.data(), c.Sq, c.q_pos0, k.data(), v.data(), c.Sk, kw, c.nh, c.nkv, hd, scale, c.causal, o.data());
      return dot(r, o);
    };
    std::vector<float> dq(q.size(), 0.f), dk(k.size(), 0.f), dv(v.size(), 0.f);
    attention_backward(q.data(), c.Sq, c.q_pos0, k.data(), v.data(), c.Sk, kw, c.nh, c.nkv, hd, scale, c.causal,
                       r.data(), dq.data(), dk.data(), dv.data());
    SCOPED_TRACE("Sq=" + std::to_string(c.Sq) + " causal=" + std::to_string(c.causal));
    check("attention dq", q, dq, f);
    check("attention dk", k, dk, f);
    check("attention dv", v, dv, f);
  }
}

TEST(Grad, Activations) {
  const int64_t n = 40;
  std::vector<float> x = randn(n, 26, 2.f), r = randn(n, 27);
  for (Activation a : {Activation::GeluErf, Activation::QuickGelu, Activation::Silu}) {
    auto f = [&] {
      std::vector<float> y = x;
      apply_activation(a, y.data(), n);
      return dot(r, y);
    };
    std::vector<float> dx(n, 0.f);
    activation_backward(a, x.data(), r.data(), dx.data(), n);
    check("activation", x, dx, f);
  }
}

TEST(Grad, SwiGlu) {
  const int64_t n = 30;
  std::vector<float> g = randn(n, 28, 2.f), u = randn(n, 29), r = randn(n, 30);
  auto f = [&] {
    std::vector<float> a = g;
    silu_inplace(a.data(), n);
    mul_inplace(a.data(), u.data(), n);
    return dot(r, a);
  };
  std::vector<float> dg(n, 0.f), du(n, 0.f);
  swiglu_backward(g.data(), u.data(), r.data(), dg.data(), du.data(), n);
  check("swiglu dgate", g, dg, f);
  check("swiglu dup", u, du, f);
}

TEST(Grad, SoftmaxCrossEntropy) {
  const int64_t R = 3, V = 7;
  std::vector<float> z = randn(R * V, 31, 2.f);
  std::vector<int32_t> t = {2, 0, 6};
  auto f = [&] { return 0.5 * softmax_cross_entropy(z.data(), R, V, t.data(), 1.f, nullptr); };
  std::vector<float> dz(R * V);
  const double loss = softmax_cross_entropy(z.data(), R, V, t.data(), 0.5f, dz.data());
  EXPECT_GT(loss, 0.0);
  check("cross-entropy", z, dz, f);
}

// --- whole model ---

namespace {

// A tiny random LLaVA (make-random's "tiny" preset, f32) written once per run.
const std::filesystem::path& tiny_llava() {
  struct Dir {
    std::filesystem::path path = test::temp_dir("grad-llava");
    Dir() {
      RandomCheckpointOptions o;
      o.preset = "tiny";
      o.dtype = DType::F32;
      o.seed = 3;
      o.out = path.string();
      write_random_checkpoint(o);
    }
    ~Dir() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static Dir dir;
  return dir.path;
}

ImageU8 test_image(int size) {
  ImageU8 img;
  img.width = img.height = size;
  img.rgb.resize(static_cast<size_t>(size) * size * 3);
  for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = static_cast<uint8_t>((i * 37 + i / 7) % 251);
  return img;
}

LlavaSample tiny_sample(const TrainableLlava& m, const VisionLanguageModel& ref) {
  LlavaSample s;
  s.pixels = preprocess_image(test_image(56), m.image_processor()).pixel_values;
  s.ids = m.tokenizer().encode(ref.prompt(PromptText{}));
  s.target_from = static_cast<int64_t>(s.ids.size());
  for (int32_t id : m.tokenizer().encode(" a big red circle", false)) s.ids.push_back(id);
  s.ids.push_back(m.tokenizer().eos_id());
  return s;
}

}  // namespace

TEST(Grad, TrainableLlavaMatchesInference) {
  // The training assembly gives the inference engine's logits for the same prompt.
  auto m = TrainableLlava::load(tiny_llava().string());
  auto ref = load_model(tiny_llava().string());
  LlavaSample s;
  PreprocessedImage px = ref->preprocess(test_image(56));
  s.pixels = px.pixel_values;
  s.ids = m->tokenizer().encode(ref->prompt(PromptText{}));
  std::vector<float> got = m->logits(s);

  PromptInputs in = ref->build_inputs(PromptText{}, ref->encode_image(px, nullptr), nullptr);
  const LlamaConfig& c = ref->decoder().config();
  KVCache cache;
  cache.init(c, in.seq_len);
  std::vector<float> x = in.embeds, want(in.seq_len * c.vocab);
  ref->decoder().forward(x.data(), in.seq_len, cache, 0, CaptureSet(), in.visual.data());
  ref->decoder().final_norm(x.data(), in.seq_len, x.data());
  ref->decoder().logits(x.data(), in.seq_len, want.data());
  ASSERT_EQ(got.size(), want.size());
  double maxref = 0, maxdiff = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    maxref = std::max(maxref, std::fabs(static_cast<double>(want[i])));
    maxdiff = std::max(maxdiff, std::fabs(static_cast<double>(got[i]) - want[i]));
  }
  EXPECT_LE(maxdiff, 1e-5 * maxref);
}

TEST(Grad, WholeTinyLlava) {
  auto m = TrainableLlava::load(tiny_llava().string());
  auto ref = load_model(tiny_llava().string());
  const LlavaSample s = tiny_sample(*m, *ref);
  GradBuffer g(m->params());
  int64_t nt = 0;
  const double loss = m->step(s, &g, 1.f, &nt);
  EXPECT_GT(nt, 3);
  EXPECT_NEAR(loss, m->step(s, nullptr, 1.f), 1e-9 * std::fabs(loss));
  auto f = [&] { return m->step(s, nullptr, 1.f); };
  // Parameters from every part of the model; on each, the coordinates with the
  // largest gradients plus a few random ones.
  const char* names[] = {
      "vision_tower.vision_model.embeddings.patch_embedding.weight",
      "vision_tower.vision_model.embeddings.class_embedding",
      "vision_tower.vision_model.embeddings.position_embedding.weight",
      "vision_tower.vision_model.pre_layrnorm.weight",
      "vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight",
      "vision_tower.vision_model.encoder.layers.0.layer_norm1.bias",
      "vision_tower.vision_model.encoder.layers.0.mlp.fc1.bias",
      "multi_modal_projector.linear_1.weight",
      "multi_modal_projector.linear_2.bias",
      "language_model.model.embed_tokens.weight",
      "language_model.model.layers.0.self_attn.k_proj.weight",
      "language_model.model.layers.0.self_attn.v_proj.weight",
      "language_model.model.layers.1.input_layernorm.weight",
      "language_model.model.layers.1.mlp.gate_proj.weight",
      "language_model.model.layers.2.mlp.down_proj.weight",
      "language_model.model.norm.weight",
      "language_model.lm_head.weight",
  };
  for (const char* name : names) {
    SCOPED_TRACE(name);
    const Param* p = m->params().find(name);
    ASSERT_NE(p, nullptr);
    const float* an = g.data().data() + p->offset;
    std::vector<int64_t> idx(p->size);
    for (int64_t i = 0; i < p->size; ++i) idx[i] = i;
    std::partial_sort(idx.begin(), idx.begin() + 3, idx.end(),
                      [&](int64_t a, int64_t b) { return std::fabs(an[a]) > std::fabs(an[b]); });
    std::mt19937 rng(11);
    for (int k = 0; k < 3; ++k) idx[3 + k] = std::uniform_int_distribution<int64_t>(0, p->size - 1)(rng);
    double scale = 0;
    for (int k = 0; k < 6; ++k) scale = std::max(scale, std::fabs(static_cast<double>(an[idx[k]])));
    EXPECT_GT(scale, 0.0) << "no gradient reaches " << name;
    for (int k = 0; k < 6; ++k) {
      float* v = p->value + idx[k];
      const float v0 = *v, eps = 2e-3f;
      *v = v0 + eps;
      const double fp = f();
      *v = v0 - eps;
      const double fm = f();
      *v = v0;
      const double num = (fp - fm) / (2.0 * eps);
      EXPECT_NEAR(an[idx[k]], num, 2.5e-3 + 1e-2 * std::fabs(num))
          << name << "[" << idx[k] << "]";
    }
  }
}

TEST(Grad, PatchHeadLoss) {
  // The patch head's gradient (into the head and through the vision tower)
  // against central differences of scale × LM loss + patch_scale × patch loss.
  auto m = TrainableLlava::load(tiny_llava().string());
  auto ref = load_model(tiny_llava().string());
  m->add_patch_head(3, true);  // class 2 is the background
  EXPECT_THROW(m->add_patch_head(3), mmn::Error);
  LlavaSample s = tiny_sample(*m, *ref);
  const int64_t n = m->image_tokens();
  for (int64_t i = 0; i < n; ++i) s.patch_labels.push_back(i % 4 == 3 ? -1 : static_cast<int32_t>(i % 3));
  // A zero head predicts uniformly: the patch loss starts at ln 3.
  double patch = 0;
  m->step(s, nullptr, 1.f, 0.f, &patch);
  EXPECT_NEAR(patch, std::log(3.0), 1e-6);
  // Move the head off zero so that gradients reach the vision tower.
  Param* head = m->params().find("patch_head.weight");
  ASSERT_NE(head, nullptr);
  std::mt19937 rng(5);
  for (int64_t i = 0; i < head->size; ++i) head->value[i] = std::normal_distribution<float>(0.f, 0.3f)(rng);
  const float ps = 0.7f;
  auto f = [&] {
    double p = 0;
    const double lm = m->step(s, nullptr, 1.f, ps, &p);
    return lm + ps * p;
  };
  GradBuffer g(m->params());
  m->step(s, &g, 1.f, ps, &patch);
  for (const char* name : {"patch_head.weight", "patch_head.bias",
                           "vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight",
                           "vision_tower.vision_model.embeddings.patch_embedding.weight"}) {
    SCOPED_TRACE(name);
    const Param* p = m->params().find(name);
    ASSERT_NE(p, nullptr);
    const float* an = g.data().data() + p->offset;
    for (int64_t k : {int64_t{0}, p->size / 3, p->size - 1}) {
      float* v = p->value + k;
      const float v0 = *v, eps = 2e-3f;
      *v = v0 + eps;
      const double fp = f();
      *v = v0 - eps;
      const double fm = f();
      *v = v0;
      const double num = (fp - fm) / (2.0 * eps);
      EXPECT_NEAR(an[k], num, 2.5e-3 + 1e-2 * std::fabs(num)) << name << "[" << k << "]";
    }
  }
  // Without labels the head does nothing and reports no loss.
  s.patch_labels.clear();
  m->step(s, nullptr, 1.f, ps, &patch);
  EXPECT_TRUE(std::isnan(patch));
}
