// Int8 (q8_0-block32) weights: the quantizer's bound, the int8 GEMV/GEMM of
// every kernel family against a plain reference on the dequantized weight,
// `mmneuron quantize` round trips on the golden models and on a make-random
// model of every family, and its refusals.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "golden_models.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "kernels/convert.h"
#include "kernels/cpu_features.h"
#include "kernel_reference.h"
#include "kernels/gemm.h"
#include "kernels/linear.h"
#include "models/quantize.h"
#include "models/vlm.h"
#include "test_util.h"

using namespace mmn;
using namespace mmn::test;
namespace fs = std::filesystem;

namespace {

struct Q8Weight {
  std::vector<int8_t> q;
  std::vector<uint16_t> s;
  std::vector<float> deq;  // q · scale: what every kernel must multiply by
  Weight w;
};

Q8Weight make_q8(int64_t N, int64_t K, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> f(static_cast<size_t>(N * K));
  for (float& v : f) v = nd(rng);
  Q8Weight o;
  o.q.resize(f.size());
  o.s.resize(static_cast<size_t>(N * q8_blocks(K)));
  for (int64_t n = 0; n < N; ++n) quantize_row_q8(&f[n * K], K, &o.q[n * K], &o.s[n * q8_blocks(K)]);
  o.w = Weight{DType::I8, N, K, o.q.data(), o.s.data()};
  o.deq.resize(f.size());
  for (int64_t n = 0; n < N; ++n) weight_row_f32(o.w, n, 0, K, &o.deq[n * K]);
  return o;
}

const int64_t kShapes[][2] = {{1, 1}, {7, 5}, {33, 31}, {17, 32}, {31, 33}, {45, 70}, {19, 100}, {65, 300}, {33, 515}};

}  // namespace

TEST(Int8, QuantizeRowKeepsTheBound) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (float mag : {0.f, 1e-9f, 3e-6f, 1e-3f, 0.02f, 1.f, 300.f}) {
    const int64_t n = 77;  // two full blocks and a partial one
    std::vector<float> w(n);
    for (float& v : w) v = mag * nd(rng);
    std::vector<int8_t> q(n);
    std::vector<uint16_t> s(q8_blocks(n));
    quantize_row_q8(w.data(), n, q.data(), s.data());
    for (int64_t c = 0; c < n; ++c) {
      const int64_t b = c / kQ8Block;
      float amax = 0;
      for (int64_t j = b * kQ8Block; j < std::min(n, (b + 1) * kQ8Block); ++j) amax = std::max(amax, std::fabs(w[j]));
      const float d = f16_to_f32(s[b]);
      EXPECT_GE(d, amax / 127.f) << mag;  // rounded up: no value clips
      EXPECT_LE(std::abs(int(q[c])), 127);
      EXPECT_LE(std::fabs(w[c] - q[c] * d), 0.5f * d * (1 + 1e-5f)) << "mag " << mag << " c " << c;
    }
  }
  // A block of zeros has scale 0 and values 0.
  std::vector<float> z(40, 0.f);
  std::vector<int8_t> q(40, 1);
  std::vector<uint16_t> s(2, 1);
  quantize_row_q8(z.data(), 40, q.data(), s.data());
  EXPECT_EQ(s[0], 0);
  EXPECT_EQ(q[3], 0);
}

TEST(Int8, GemmAndGemvMatchReferenceOnOddShapes) {
  for (Isa isa : supported_isas())
    for (auto [N, K] : kShapes) {
      const Q8Weight w = make_q8(N, K, static_cast<uint32_t>(N * 1000 + K));
      std::vector<float> bias(static_cast<size_t>(N));
      for (int64_t n = 0; n < N; ++n) bias[n] = 0.1f * static_cast<float>(n % 7) - 0.3f;
      for (int64_t M : {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 25}) {
        std::vector<float> x(static_cast<size_t>(M * K));
        for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i) + 0.1f * M);
        const double tol = 1e-6 + K * 1.2e-7;
        std::vector<float> y(static_cast<size_t>(M * N), NAN);
        gemm_xwt(x.data(), M, w.w, bias.data(), y.data(), isa);
        EXPECT_LT(relative_error(x, w.deq, bias, y, M, N, K), tol) << isa_name(isa) << " gemm M" << M << " N" << N << " K" << K;
        if (M <= gemv_max_rows()) {
          std::fill(y.begin(), y.end(), NAN);
          // The exact GEMV of each family (gemv_xwt takes the VNNI one on
          // int8 where the CPU has it: tested against its own bound below).
          if (isa == Isa::Avx512) gemm_detail::gemv_avx512(x.data(), M, w.w, bias.data(), y.data(), 2);
          else gemv_xwt(x.data(), M, w.w, bias.data(), y.data(), isa);
          EXPECT_LT(relative_error(x, w.deq, bias, y, M, N, K), tol) << isa_name(isa) << " gemv M" << M << " N" << N << " K" << K;
        }
      }
    }
}

// The VNNI GEMV quantizes x per block of 32 (dx = max|x|/127), so each
// block's sum may move by at most Σ_k |w_k|·dx/2: that bound, not fp32 rounding.
TEST(Int8, VnniGemvWithinTheActivationRoundingBound) {
  if (!isa_supported(Isa::Avx512) || !cpu_features().avx512_vnni) GTEST_SKIP() << "no AVX-512 VNNI: " << cpu_summary();
  for (auto [N, K] : kShapes)
    for (int64_t M : {1, 2, 5, 8}) {
      const Q8Weight w = make_q8(N, K, static_cast<uint32_t>(7 * N + K));
      std::vector<float> x(static_cast<size_t>(M * K)), y(static_cast<size_t>(M * N), NAN);
      for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i)) * (1 + (i % 11));
      gemv_xwt(x.data(), M, w.w, nullptr, y.data(), Isa::Avx512);  // the dispatch picks VNNI
      const int64_t K64 = K / 64 * 64;
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
          double ref = 0, bound = 1e-5, mag = 0;
          for (int64_t b = 0; b * kQ8Block < K; ++b) {
            double amax = 0, wsum = 0;
            for (int64_t k = b * kQ8Block; k < std::min(K, (b + 1) * kQ8Block); ++k) {
              amax = std::max(amax, std::fabs(double(x[m * K + k])));
              wsum += std::fabs(w.deq[n * K + k]);
              ref += double(x[m * K + k]) * w.deq[n * K + k];
              mag += std::fabs(double(x[m * K + k]) * w.deq[n * K + k]);
            }
            if ((b + 1) * kQ8Block <= K64) bound += wsum * amax / 127 / 2;
          }
          bound += mag * (1e-6 + K * 1.2e-7);
          ASSERT_LE(std::fabs(y[m * N + n] - ref), bound) << "M" << M << " N" << N << " K" << K << " at " << m << "," << n;
        }
    }
}

TEST(Int8, RowSlicesAndBackwardProductsDequantize) {
  const int64_t N = 37, K = 70, M = 3;
  const Q8Weight w = make_q8(N, K, 11);
  std::vector<float> x(M * K), y(M * 5), xd(M * N), yb(M * K);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::cos(0.2f * static_cast<float>(i));
  gemm_xwt(x.data(), M, w.w.slice_rows(30, 5), nullptr, y.data());  // rows 30..34: their own scales (exact path)
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < 5; ++n) {
      double ref = 0;
      for (int64_t k = 0; k < K; ++k) ref += double(x[m * K + k]) * w.deq[(30 + n) * K + k];
      EXPECT_NEAR(y[m * 5 + n], ref, 1e-4);
    }
  for (size_t i = 0; i < xd.size(); ++i) xd[i] = std::sin(0.3f * static_cast<float>(i));
  matmul_xw(xd.data(), M, w.w, yb.data());  // y = x · W, as the scores project through down_proj
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k) {
      double ref = 0;
      for (int64_t n = 0; n < N; ++n) ref += double(xd[m * N + n]) * w.deq[n * K + k];
      EXPECT_NEAR(yb[m * K + k], ref, 1e-4);
    }
  std::vector<float> col(N);
  weight_column_f32(w.w, 33, col.data());
  for (int64_t n = 0; n < N; ++n) EXPECT_EQ(col[n], w.deq[n * K + 33]);
}

TEST(Int8, KernelsDoNotDependOnThreadCount) {
  const int64_t N = 700, K = 600;
  const Q8Weight w = make_q8(N, K, 9);
  using Fn = void (*)(const float*, int64_t, const Weight&, const float*, float*, int);
  std::vector<std::pair<Isa, Fn>> gemms, gemvs;
  if (isa_supported(Isa::Avx512)) gemms.push_back({Isa::Avx512, gemm_detail::gemm_avx512});
  if (isa_supported(Isa::Avx2)) gemms.push_back({Isa::Avx2, gemm_detail::gemm_avx2});
  if (isa_supported(Isa::Avx512)) gemvs.push_back({Isa::Avx512, gemm_detail::gemv_avx512});
  if (isa_supported(Isa::Avx2)) gemvs.push_back({Isa::Avx2, gemm_detail::gemv_avx2});
  if (isa_supported(Isa::Avx512) && cpu_features().avx512_vnni)
    gemvs.push_back({Isa::Avx512, gemm_detail::gemv_avx512_q8_vnni});
  if (gemms.empty()) GTEST_SKIP() << "no vector kernels on this CPU: " << cpu_summary();
  for (auto [fns, M] : {std::pair{gemms, int64_t{37}}, std::pair{gemvs, int64_t{3}}}) {
    std::vector<float> x(static_cast<size_t>(M * K));
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(static_cast<float>(i));
    for (auto [isa, fn] : fns) {
      std::vector<float> y1(static_cast<size_t>(M * N)), y2(y1.size());
      fn(x.data(), M, w.w, nullptr, y1.data(), 1);
      fn(x.data(), M, w.w, nullptr, y2.data(), 2);
      EXPECT_EQ(y1, y2) << isa_name(isa) << " M" << M;
    }
  }
}

// ---------------------------------------------------------------- quantize on real checkpoints

namespace {

std::string quantize_cmd(const fs::path& in, const fs::path& out, const std::string& extra = "") {
  return binary() + " quantize --quiet --model " + in.string() + " --out " + out.string() + " " + extra;
}

// Every tensor of `orig` is in `quant`: int8 + scales within the Q8 bound, or
// the same bytes; returns how many were quantized.
int check_round_trip(const fs::path& orig_dir, const fs::path& quant_dir) {
  const SafetensorsCheckpoint a = SafetensorsCheckpoint::open(orig_dir.string());
  const SafetensorsCheckpoint b = SafetensorsCheckpoint::open(quant_dir.string());
  EXPECT_EQ(b.metadata().at(kQuantizationKey), kQ8Type);
  EXPECT_EQ(b.metadata().at(kQuantizedFromKey).size(), 16u);
  int quantized = 0;
  for (const auto& [name, t] : a.tensors()) {
    if (!b.has(name)) {
      ADD_FAILURE() << name << " missing";
      continue;
    }
    const TensorRef& u = b.get(name);
    EXPECT_EQ(u.shape, t.shape) << name;
    if (!b.has(name + kQ8ScaleSuffix)) {
      EXPECT_EQ(u.dtype, t.dtype) << name;
      EXPECT_TRUE(u.nbytes == t.nbytes && std::memcmp(u.data, t.data, t.nbytes) == 0) << name << " changed";
      continue;
    }
    ++quantized;
    EXPECT_NE(name.find(".weight"), std::string::npos);
    EXPECT_EQ(name.find("lm_head"), std::string::npos) << "the unembedding is kept";
    EXPECT_EQ(name.find("embed_tokens"), std::string::npos) << "embeddings are kept";
    const Weight wq = Weight::quantized(u, b.get(name + kQ8ScaleSuffix));
    const Weight wo = Weight::from(t);
    std::vector<float> ro(wo.cols), rq(wo.cols);
    for (int64_t r = 0; r < wo.rows; ++r) {
      weight_row_f32(wo, r, 0, wo.cols, ro.data());
      weight_row_f32(wq, r, 0, wq.cols, rq.data());
      for (int64_t c = 0; c < wo.cols; ++c) {
        const float d = f16_to_f32(wq.row_scales(r)[c / kQ8Block]);
        if (!(std::fabs(ro[c] - rq[c]) <= 0.5f * d * (1 + 1e-5f))) {
          ADD_FAILURE() << name << " [" << r << ", " << c << "]: " << ro[c] << " vs " << rq[c] << " (scale " << d << ")";
          return quantized;
        }
      }
    }
  }
  EXPECT_EQ(b.tensors().size(), a.tensors().size() + quantized);
  for (const char* f : {"config.json", "tokenizer.model", "preprocessor_config.json"})
    if (fs::exists(orig_dir / f)) {
      EXPECT_EQ(read_file((orig_dir / f).string()), read_file((quant_dir / f).string())) << f;
    }
  return quantized;
}

}  // namespace

TEST(Int8, QuantizeRoundTripOnGoldenModels) {
  MMN_REQUIRE_SHARED();
  for (const std::string name : {"tiny-llava-a-f32", "tiny-llava-c-f16", "tiny-iblip-a-f32", "tiny-owl2-a-f32"}) {
    const fs::path out = temp_dir("q8-" + name) / "q8";
    std::string log;
    ASSERT_EQ(run_cmd(quantize_cmd(golden_model(name), out), &log), 0) << log;
    EXPECT_GT(check_round_trip(golden_model(name), out), 0) << name;
    // Loads as an ordinary model, its decoder on int8 weights, the unembedding kept.
    const auto m = load_model(out.string());
    EXPECT_EQ(m->decoder().layer(0).down.w.dtype, DType::I8);
    EXPECT_NE(m->decoder().lm_head().dtype, DType::I8);
    EXPECT_TRUE(is_quantized(*m));
    std::string cap;
    EXPECT_EQ(run_cmd(binary() + " caption --model " + out.string() + " --image " +
                          golden("images/landscape_80x60.png").string() + " --max-new-tokens 4",
                      &cap),
              0)
        << cap;
    fs::remove_all(out.parent_path());
  }
}

// make-random of every family → quantize → caption and find run on it.
TEST(Int8, QuantizedRandomModelsOfEveryFamilyRun) {
  const fs::path base = temp_dir("q8-families");
  const std::string img = (fs::path(MMN_SOURCE_DIR) / "assets/sample.png").string();
  fs::create_directories(base / "images");
  fs::copy_file(img, base / "images" / "a.png");
  for (const std::string preset : {"tiny", "tiny-llava-v1", "tiny-instructblip", "tiny-owl2"}) {
    const fs::path m = base / preset, q = base / (preset + "-q8");
    std::string log;
    ASSERT_EQ(run_cmd(binary() + " make-random --preset " + preset + " --dtype bf16 --out " + m.string(), &log), 0) << log;
    ASSERT_EQ(run_cmd(quantize_cmd(m, q), &log), 0) << preset << ": " << log;
    EXPECT_GT(check_round_trip(m, q), 0) << preset;
    EXPECT_EQ(run_cmd(binary() + " caption --model " + q.string() + " --image " + img + " --max-new-tokens 3", &log), 0)
        << preset << ": " << log;
    EXPECT_EQ(run_cmd(binary() + " find --model " + q.string() + " --images " + (base / "images").string() + " --out " +
                          (base / (preset + "-run")).string() + " --tokens all --top-k 5 --max-new-tokens 3",
                      &log),
              0)
        << preset << ": " << log;
  }
  fs::remove_all(base);
}

class Int8BadInput : public ::testing::Test {
 protected:
  static fs::path base_;
  static void SetUpTestSuite() {
    base_ = temp_dir("q8-bad");
    std::string log;
    ASSERT_EQ(run_cmd(binary() + " make-random --preset tiny --dtype f16 --out " + (base_ / "model").string(), &log), 0)
        << log;
    ASSERT_EQ(run_cmd(quantize_cmd(base_ / "model", base_ / "q8"), &log), 0) << log;
  }
  static void TearDownTestSuite() { fs::remove_all(base_); }

  // A copy of the quantized model whose model.safetensors is rewritten by `change`
  // (which may edit each spec and the metadata).
  static fs::path broken(const std::string& tag, const std::function<void(TensorSpec&)>& change_spec,
                         const std::function<void(std::map<std::string, std::string>&)>& change_meta = {}) {
    const fs::path d = base_ / tag;
    fs::copy(base_ / "q8", d, fs::copy_options::recursive);
    const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open((base_ / "q8").string());
    std::vector<TensorSpec> specs;
    std::vector<const TensorRef*> refs;
    for (const auto& [n, t] : ck.tensors()) refs.push_back(&t);
    std::sort(refs.begin(), refs.end(), [](auto* a, auto* b) { return a->file_offset < b->file_offset; });
    std::map<std::string, const TensorRef*> src;
    for (const TensorRef* t : refs) {
      TensorSpec s{t->name, t->dtype, t->shape};
      change_spec(s);
      src[s.name] = t;
      specs.push_back(s);
    }
    std::map<std::string, std::string> meta = ck.metadata();
    if (change_meta) change_meta(meta);
    fs::remove(d / "model.safetensors");
    write_safetensors((d / "model.safetensors").string(), specs, meta, [&](const TensorSpec& s, std::FILE* f) {
      const TensorRef& t = *src.at(s.name);
      std::vector<uint8_t> bytes(s.nbytes(), 0);
      std::memcpy(bytes.data(), t.data, std::min(bytes.size(), t.nbytes));
      std::fwrite(bytes.data(), 1, bytes.size(), f);
    });
    return d;
  }
  static std::string caption(const fs::path& m) {
    return binary() + " caption --model " + m.string() + " --image " +
           (fs::path(MMN_SOURCE_DIR) / "assets/sample.png").string() + " --max-new-tokens 2";
  }
};
fs::path Int8BadInput::base_;

const char* kScale = "language_model.model.layers.1.mlp.down_proj.weight_scale";

TEST_F(Int8BadInput, WrongScaleShape) {
  const fs::path d = broken("shape", [](TensorSpec& s) {
    if (s.name == kScale) s.shape[1] += 1;
  });
  expect_one_line_error(caption(d), {"model.safetensors", kScale, "has shape", "expected"});
}

TEST_F(Int8BadInput, WrongScaleDtype) {
  const fs::path d = broken("dtype", [](TensorSpec& s) {
    if (s.name == kScale) s.dtype = DType::F32;
  });
  expect_one_line_error(caption(d), {"model.safetensors", kScale, "dtype F32, expected F16"});
}

TEST_F(Int8BadInput, UnknownQuantizationType) {
  const fs::path d = broken("type", [](TensorSpec&) {}, [](auto& m) { m[kQuantizationKey] = "q4_k"; });
  expect_one_line_error(caption(d), {"model.safetensors", "unknown quantization type \"q4_k\"", "tensor "});
}

TEST_F(Int8BadInput, Int8TensorWithoutScales) {
  const fs::path d = broken("noscale", [](TensorSpec& s) {
    if (s.name == kScale) s.name = "unrelated_extra_tensor";
  });
  expect_one_line_error(caption(d), {"model.safetensors", "down_proj.weight is int8", "no scale tensor"});
}

TEST_F(Int8BadInput, QuantizeRefusals) {
  const fs::path model = base_ / "model";
  // --out exists and is not empty: refused without --force, replaced with it.
  fs::create_directories(base_ / "taken");
  write_file_atomic((base_ / "taken" / "mine.txt").string(), "keep me");
  expect_one_line_error(quantize_cmd(model, base_ / "taken"), {"taken", "already exists", "--force"});
  EXPECT_TRUE(fs::exists(base_ / "taken" / "mine.txt"));
  std::string log;
  EXPECT_EQ(run_cmd(quantize_cmd(model, base_ / "taken", "--force"), &log), 0) << log;
  EXPECT_TRUE(fs::exists(base_ / "taken" / kQuantizeRecordFile));
  EXPECT_FALSE(fs::exists(base_ / "taken" / "mine.txt"));
  // --model missing, or not a model directory.
  expect_one_line_error(quantize_cmd(base_ / "nonexistent", base_ / "o1"), {"nonexistent", "not found"});
  expect_one_line_error(binary() + " quantize --out " + (base_ / "o2").string(), {"--model"});
  // Onto the source, or a model that is already quantized.
  expect_one_line_error(quantize_cmd(model, model, "--force"), {"refusing", "source model"});
  expect_one_line_error(quantize_cmd(base_ / "q8", base_ / "o3"), {"already quantized"});
  EXPECT_FALSE(fs::exists(base_ / "o1"));
  EXPECT_FALSE(fs::exists(base_ / "o3"));
  // Editing value vectors needs the unquantized model.
  expect_one_line_error(binary() + " edit --model " + (base_ / "q8").string() + " --from the --to a --image " +
                            (fs::path(MMN_SOURCE_DIR) / "assets/sample.png").string() + " --locality-images " +
                            (fs::path(MMN_SOURCE_DIR) / "assets/scenes/images").string() + " --out " +
                            (base_ / "edit").string(),
                        {"quantized checkpoint: edit the unquantized model"});
}
