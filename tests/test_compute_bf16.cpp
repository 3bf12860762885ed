// --compute bf16: the bf16 GEMM against a plain reference computed from
// bf16-rounded inputs with fp32-exact products (only the summation order may
// differ, so the tolerance is that of an fp32 sum), on shapes that are not
// multiples of any blocking; thread-count independence; linear()'s dispatch;
// the CLI option; and, on the golden tiny models, the agreement with the
// exact path within documented tolerances.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <vector>

#include "io/atomic_file.h"
#include "io/npy.h"
#include "kernels/compute.h"
#include "kernels/convert.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm.h"
#include "kernels/linear.h"
#include "test_util.h"
#include "util/error.h"

using namespace mmn;
using namespace mmn::test;
namespace fs = std::filesystem;

namespace {

#define REQUIRE_BF16()                                                                                     \
  do {                                                                                                     \
    if (!gemm_bf16_supported()) GTEST_SKIP() << "the CPU does not report AVX-512 BF16: " << cpu_summary(); \
  } while (0)

float round_bf16(float v) { return bf16_to_f32(f32_to_bf16(v)); }

struct Case {
  std::vector<float> x, bias, w_values;  // w_values: what the stored weight holds, as fp32
  std::vector<uint16_t> half;
  Weight w;
};

Case make_case(DType d, int64_t M, int64_t N, int64_t K, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  Case c;
  c.x.resize(static_cast<size_t>(M * K));
  c.bias.resize(static_cast<size_t>(N));
  c.w_values.resize(static_cast<size_t>(N * K));
  for (float& v : c.x) v = nd(rng);
  for (float& v : c.bias) v = nd(rng);
  for (float& v : c.w_values) v = nd(rng);
  if (d != DType::F32) {
    c.half.resize(c.w_values.size());
    convert_from_f32(d, c.w_values.data(), c.half.data(), N * K);
    convert_to_f32(d, c.half.data(), c.w_values.data(), N * K);
  }
  c.w = Weight{d, N, K, d == DType::F32 ? static_cast<const void*>(c.w_values.data()) : c.half.data()};
  return c;
}

// max |y − ref| / (Σ_k |x·w| + |bias|): ref in double from the inputs as the
// kernel must see them (rounded to bf16 when `bf16`).
double relative_error(const Case& c, const std::vector<float>& y, int64_t M, int64_t N, int64_t K, bool bf16,
                      bool with_bias) {
  double worst = 0;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double ref = with_bias ? c.bias[n] : 0, mag = with_bias ? std::fabs(c.bias[n]) : 0;
      for (int64_t k = 0; k < K; ++k) {
        const float xv = c.x[m * K + k], wv = c.w_values[n * K + k];
        const double p = bf16 ? static_cast<double>(round_bf16(xv)) * round_bf16(wv) : static_cast<double>(xv) * wv;
        ref += p;
        mag += std::fabs(p);
      }
      worst = std::max(worst, std::fabs(y[m * N + n] - ref) / (mag + 1e-30));
    }
  return worst;
}

}  // namespace

TEST(ComputeBf16, ParsesTheModeNames) {
  EXPECT_EQ(parse_compute("exact"), Compute::Exact);
  EXPECT_EQ(parse_compute("bf16"), Compute::Bf16);
  EXPECT_STREQ(compute_name(Compute::Bf16), "bf16");
  EXPECT_THROW(parse_compute("fp16"), UsageError);
  EXPECT_THROW(parse_compute("BF16"), UsageError);
  // Availability follows the CPU: Bf16 falls back to Exact exactly where the reason is non-empty.
  EXPECT_EQ(compute_available(Compute::Bf16), bf16_unavailable_reason().empty());
  EXPECT_EQ(set_compute(Compute::Bf16), compute_available(Compute::Bf16) ? Compute::Bf16 : Compute::Exact);
  EXPECT_EQ(set_compute(Compute::Exact), Compute::Exact);
  EXPECT_EQ(compute_mode(), Compute::Exact);
}

TEST(ComputeBf16, GemmMatchesBf16ReferenceOnOddShapes) {
  REQUIRE_BF16();
  const int64_t Ms[] = {9, 10, 11, 12, 13, 25};
  // N across the 32-column panels and 256-column blocks; K odd, K < 32, K across the 256 K blocks.
  const int64_t NKs[][2] = {{1, 1}, {17, 5}, {31, 31}, {33, 32}, {47, 33}, {64, 300}, {100, 257}, {290, 513}};
  for (DType d : {DType::F32, DType::BF16, DType::F16})
    for (const auto& nk : NKs)
      for (int64_t M : Ms) {
        const int64_t N = nk[0], K = nk[1];
        const Case c = make_case(d, M, N, K, static_cast<uint32_t>(M * 1000 + N * 7 + K));
        std::vector<float> y(static_cast<size_t>(M * N), NAN), y0(y.size(), NAN);
        gemm_xwt_bf16(c.x.data(), M, c.w, c.bias.data(), y.data());
        gemm_xwt_bf16(c.x.data(), M, c.w, nullptr, y0.data());
        // fp32 sums of K exact products: error ≲ K·2⁻²⁴ of Σ|x·w|.
        const double tol = 1e-6 + K * 1.2e-7;
        const std::string what = std::string(dtype_name(d)) + " M=" + std::to_string(M) + " N=" + std::to_string(N) +
                                 " K=" + std::to_string(K);
        EXPECT_LT(relative_error(c, y, M, N, K, true, true), tol) << what;
        EXPECT_LT(relative_error(c, y0, M, N, K, true, false), tol) << what << " no bias";
        // And the inputs really were rounded: against the fp32 product the
        // error is that of bf16 (2⁻⁹ per input), far above an fp32 sum's.
        if (d != DType::BF16 && K >= 31) {
          EXPECT_GT(relative_error(c, y0, M, N, K, false, false), 1e-4) << what;
        }
      }
}

TEST(ComputeBf16, RoundsToNearestEven) {
  REQUIRE_BF16();
  // 1 + 2⁻⁸ lies halfway between bf16 1 and 1 + 2⁻⁷: nearest even is 1. 1 + 3·2⁻⁸
  // lies halfway between 1 + 2⁻⁷ and 1 + 2⁻⁶: nearest even is 1 + 2⁻⁶. Truncation
  // would give 1 + 2⁻⁷ for the second. K = 2 packs x element by element, K = 34
  // with the vector conversion (32 at a time).
  const int64_t M = 9;
  for (int64_t K : {2, 34})
    for (DType d : {DType::F32, DType::BF16}) {
      const float halfway[2] = {1.f + 1.f / 256, 1.f + 3.f / 256};
      std::vector<float> x(static_cast<size_t>(M * K), 0.f), w_f32(static_cast<size_t>(K), 0.f);
      for (int64_t m = 0; m < M; ++m) x[m * K] = halfway[m % 2];
      w_f32[0] = 1.f;
      std::vector<uint16_t> w_bf16(static_cast<size_t>(K));
      convert_from_f32(DType::BF16, w_f32.data(), w_bf16.data(), K);
      const Weight w{d, 1, K, d == DType::F32 ? static_cast<const void*>(w_f32.data()) : w_bf16.data()};
      std::vector<float> y(static_cast<size_t>(M));
      gemm_xwt_bf16(x.data(), M, w, nullptr, y.data());
      for (int64_t m = 0; m < M; ++m)
        EXPECT_EQ(y[m], m % 2 ? 1.f + 1.f / 64 : 1.f) << dtype_name(d) << " K=" << K << " row " << m;
    }
}

TEST(ComputeBf16, GemmDoesNotDependOnThreadCount) {
  REQUIRE_BF16();
  const int64_t M = 37, N = 700, K = 601;
  for (DType d : {DType::F32, DType::BF16}) {
    const Case c = make_case(d, M, N, K, 11);
    std::vector<float> y1(static_cast<size_t>(M * N)), y2(y1.size());
    gemm_detail::gemm_avx512bf16(c.x.data(), M, c.w, c.bias.data(), y1.data(), 1);
    gemm_detail::gemm_avx512bf16(c.x.data(), M, c.w, c.bias.data(), y2.data(), 2);
    EXPECT_EQ(y1, y2) << dtype_name(d);
  }
}

TEST(ComputeBf16, LinearUsesBf16OnlyAboveTheGemvRows) {
  REQUIRE_BF16();
  const int64_t N = 45, K = 70, M = gemv_max_rows() + 1;
  const Case c = make_case(DType::BF16, M, N, K, 5);
  std::vector<float> got(static_cast<size_t>(M * N)), want(got.size());
  ASSERT_EQ(set_compute(Compute::Bf16), Compute::Bf16);
  // Many rows: the bf16 GEMM.
  linear(c.x.data(), M, c.w, c.bias.data(), got.data());
  gemm_xwt_bf16(c.x.data(), M, c.w, c.bias.data(), want.data());
  EXPECT_EQ(got, want);
  // linear_exact ignores the mode.
  linear_exact(c.x.data(), M, c.w, c.bias.data(), got.data());
  gemm_xwt(c.x.data(), M, c.w, c.bias.data(), want.data());
  EXPECT_EQ(got, want);
  // Decode rows: the exact GEMV.
  const int64_t rows = gemv_max_rows();
  std::vector<float> g8(static_cast<size_t>(rows * N)), w8(g8.size());
  linear(c.x.data(), rows, c.w, c.bias.data(), g8.data());
  gemv_xwt(c.x.data(), rows, c.w, c.bias.data(), w8.data());
  EXPECT_EQ(g8, w8);
  set_compute(Compute::Exact);
  linear(c.x.data(), M, c.w, c.bias.data(), got.data());
  gemm_xwt(c.x.data(), M, c.w, c.bias.data(), want.data());
  EXPECT_EQ(got, want);
}

// ---- The CLI option --------------------------------------------------------

TEST(ComputeBf16, CliRefusesAnUnknownMode) {
  for (const char* cmd : {"caption", "find", "perturb", "probe", "groundtruth", "edit", "eval-edit"}) {
    std::string out;
    const int rc = run_cmd(binary() + " " + cmd + " --compute fp16", &out);
    EXPECT_EQ(rc, 2) << cmd << ": " << out;
    EXPECT_EQ(out.rfind("error: ", 0), 0u) << cmd << ": " << out;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << cmd << ": " << out;
    EXPECT_NE(out.find("--compute"), std::string::npos) << cmd << ": " << out;
  }
}

namespace {

// `caption --dump` of the bundled model on one of its images, returning the log (stderr and stdout).
std::string caption_dump(const std::string& compute, const fs::path& out, const std::string& env = "") {
  std::string log;
  const std::string cmd = env + binary() + " caption --model " + bundled_model() + " --image " +
                          (fs::path(MMN_SOURCE_DIR) / "assets" / "scenes" / "images" / "000001.png").string() +
                          " --max-new-tokens 4 --compute " + compute + " --dump " + out.string();
  EXPECT_EQ(run_cmd(cmd, &log), 0) << cmd << "\n" << log;
  return log;
}

double max_abs_diff(const fs::path& a, const fs::path& b) {
  const std::vector<float> x = read_npy(a.string()).as_f32(), y = read_npy(b.string()).as_f32();
  EXPECT_EQ(x.size(), y.size()) << a;
  double d = 0;
  for (size_t i = 0; i < std::min(x.size(), y.size()); ++i) d = std::max(d, std::fabs(static_cast<double>(x[i]) - y[i]));
  return d;
}

}  // namespace

TEST(ComputeBf16, FallsBackToExactWithOneLineWhereUnavailable) {
  // MMN_ISA=avx2 turns AVX-512 off, as on a CPU without AVX-512 BF16.
  if (!isa_supported(Isa::Avx2)) GTEST_SKIP() << "no AVX2 on this CPU: " << cpu_summary();
  const fs::path exact = temp_dir("bf16-fallback-exact"), fallback = temp_dir("bf16-fallback-bf16");
  const std::string log_exact = caption_dump("exact", exact, "MMN_ISA=avx2 ");
  const std::string log = caption_dump("bf16", fallback, "MMN_ISA=avx2 ");
  ASSERT_FALSE(testing::Test::HasFailure());
  // Exactly one line names the option, and says the exact path runs; the exact run has none.
  auto lines_naming = [](const std::string& text) {
    std::vector<std::string> v;
    std::istringstream is(text);
    for (std::string line; std::getline(is, line);)
      if (line.find("--compute bf16") != std::string::npos) v.push_back(line);
    return v;
  };
  const std::vector<std::string> named = lines_naming(log);
  ASSERT_EQ(named.size(), 1u) << log;
  EXPECT_NE(named[0].find("running the exact path"), std::string::npos) << named[0];
  EXPECT_TRUE(lines_naming(log_exact).empty()) << log_exact;
  EXPECT_EQ(max_abs_diff(exact / "logits_steps.npy", fallback / "logits_steps.npy"), 0.0);
  fs::remove_all(exact);
  fs::remove_all(fallback);
}

TEST(ComputeBf16, UsageErrorPrintsOnlyTheErrorNotTheFallbackWarning) {
  if (!isa_supported(Isa::Avx2)) GTEST_SKIP() << "no AVX2 on this CPU: " << cpu_summary();
  // find with two image sources fails its usage check before any model loads.
  std::string log;
  const std::string img = (fs::path(MMN_SOURCE_DIR) / "assets" / "scenes" / "images" / "000001.png").string();
  const std::string cmd = "MMN_ISA=avx2 " + binary() + " find --model " + bundled_model() + " --image " + img +
                          " --images " + fs::path(img).parent_path().string() + " --compute bf16 --out " +
                          temp_dir("bf16-usage").string();
  EXPECT_NE(run_cmd(cmd, &log), 0) << cmd << "\n" << log;
  EXPECT_NE(log.find("exactly one of --image"), std::string::npos) << log;
  EXPECT_EQ(log.find("--compute bf16"), std::string::npos) << "the fallback warning came before the usage error:\n"
                                                           << log;
}

TEST(ComputeBf16, BundledModelLogitsCloseToExact) {
  REQUIRE_BF16();
  const fs::path exact = temp_dir("bf16-bundled-exact"), bf16 = temp_dir("bf16-bundled-bf16");
  caption_dump("exact", exact);
  const std::string log = caption_dump("bf16", bf16);
  ASSERT_FALSE(testing::Test::HasFailure());
  EXPECT_EQ(log.find("--compute bf16"), std::string::npos) << "warned on a CPU that has AVX-512 BF16:\n" << log;
  const std::vector<float> ref = read_npy((exact / "logits_prefill_last.npy").string()).as_f32();
  double maxref = 0;
  for (float v : ref) maxref = std::max(maxref, std::fabs(static_cast<double>(v)));
  const double err = max_abs_diff(exact / "logits_prefill_last.npy", bf16 / "logits_prefill_last.npy");
  // Documented in README "Speed": bf16 inputs carry 2⁻⁹ relative error each;
  // measured ≤ 0.2% of max|logit| on the bundled model's scenes, bounded here at 1%.
  EXPECT_LT(err, 0.01 * maxref) << "max|Δlogit| " << err << " of max|logit| " << maxref;
  EXPECT_GT(err, 0.0) << "bf16 changed nothing: the bf16 GEMM did not run";
  fs::remove_all(exact);
  fs::remove_all(bf16);
}

TEST(ComputeBf16, FindRecordsTheModeAndRefusesToResumeInAnother) {
  REQUIRE_BF16();
  const fs::path out = temp_dir("bf16-find-resume");
  const std::string base = binary() + " find --image " +
                           (fs::path(MMN_SOURCE_DIR) / "assets" / "scenes" / "images" / "000001.png").string() +
                           " --out " + out.string() + " --top-k 10 --quiet --compute ";
  std::string log;
  ASSERT_EQ(run_cmd(base + "bf16", &log), 0) << log;
  const nlohmann::json run = nlohmann::json::parse(read_file((out / "run.json").string()));
  EXPECT_EQ(run["options"]["compute"], "bf16");
  EXPECT_EQ(run_cmd(base + "bf16", &log), 0) << "resuming in the same mode: " << log;
  EXPECT_NE(run_cmd(base + "exact", &log), 0) << log;
  EXPECT_NE(log.find("different options"), std::string::npos) << log;
  fs::remove_all(out);
}

// ---- Agreement with the exact path on the golden tiny models ---------------

namespace {

struct FindOut {
  nlohmann::json result;
  std::vector<std::set<std::pair<int, int>>> tops;  // per ranked entry: its top-k (layer, unit)
};

FindOut run_find(const std::string& model, const std::string& image, const std::string& compute) {
  const fs::path out = temp_dir("bf16-find-" + model + "-" + compute);
  std::string log;
  const std::string cmd = binary() + " find --model " + golden_model(model).string() + " --image " +
                          golden("images/" + image + ".png").string() + " --out " + out.string() +
                          " --tokens all --top-k 100 --report 1 --max-new-tokens 8 --quiet --compute " + compute;
  EXPECT_EQ(run_cmd(cmd, &log), 0) << cmd << "\n" << log;
  FindOut r;
  if (testing::Test::HasFailure()) return r;
  r.result = nlohmann::json::parse(read_file((out / image / "result.json").string()));
  const NpyArray a = read_npy((out / image / "neurons.npy").string());
  const std::vector<float> v = a.as_f32();
  for (int64_t i = 0; i < a.shape[0]; ++i) {
    std::set<std::pair<int, int>> s;
    for (int64_t j = 0; j < a.shape[1]; ++j)
      s.insert({static_cast<int>(v[(i * a.shape[1] + j) * 3]), static_cast<int>(v[(i * a.shape[1] + j) * 3 + 1])});
    r.tops.push_back(std::move(s));
  }
  fs::remove_all(out);
  return r;
}

}  // namespace

class Bf16Golden : public ::testing::TestWithParam<std::string> {};

// Documented in README "Speed" (measured there on all three images: ≤ 2.7% and
// min overlap 0.98): the prefill's last logits within 5% of max|logit|, and per
// generated token (up to the first token the two modes generate differently)
// at least 90 of the exact top-100 neurons also in the bf16 top-100, 95 on average.
TEST_P(Bf16Golden, AgreesWithExactWithinDocumentedTolerance) {
  MMN_REQUIRE_SHARED();
  REQUIRE_BF16();
  const std::string model = GetParam(), image = "landscape_80x60";
  double worst_logit = 0, maxref = 0;
  {
    const fs::path e = temp_dir("bf16-golden-exact-" + model), b = temp_dir("bf16-golden-bf16-" + model);
    for (const auto& [dir, compute] : {std::pair{e, "exact"}, std::pair{b, "bf16"}}) {
      std::string log;
      const std::string cmd = binary() + " caption --model " + golden_model(model).string() + " --image " +
                              golden("images/" + image + ".png").string() + " --max-new-tokens 1 --compute " +
                              compute + " --dump " + dir.string();
      ASSERT_EQ(run_cmd(cmd, &log), 0) << cmd << "\n" << log;
    }
    for (float v : read_npy((e / "logits_prefill_last.npy").string()).as_f32())
      maxref = std::max(maxref, std::fabs(static_cast<double>(v)));
    worst_logit = max_abs_diff(e / "logits_prefill_last.npy", b / "logits_prefill_last.npy");
    fs::remove_all(e);
    fs::remove_all(b);
  }
  EXPECT_GT(worst_logit, 0.0) << "bf16 changed nothing: the bf16 GEMM did not run";
  EXPECT_LT(worst_logit, 0.05 * maxref) << "max|Δlogit| " << worst_logit << " of max|logit| " << maxref;

  const FindOut e = run_find(model, image, "exact"), b = run_find(model, image, "bf16");
  ASSERT_FALSE(testing::Test::HasFailure());
  const auto& ge = e.result["generated_ids"];
  const auto& gb = b.result["generated_ids"];
  size_t agree = 0;
  while (agree < std::min(ge.size(), gb.size()) && ge[agree] == gb[agree]) ++agree;
  EXPECT_GE(agree, 1u) << "the first generated token differs";
  double sum = 0, worst = 1;
  int n = 0;
  for (size_t i = 0; i < e.result["nouns"].size(); ++i) {
    const auto& ne = e.result["nouns"][i];
    if (ne["step"].get<size_t>() >= agree) continue;
    ASSERT_LT(i, b.tops.size());
    ASSERT_EQ(b.result["nouns"][i]["step"], ne["step"]);
    size_t common = 0;
    for (const auto& p : e.tops[i]) common += b.tops[i].count(p);
    const double ov = static_cast<double>(common) / static_cast<double>(e.tops[i].size());
    sum += ov;
    worst = std::min(worst, ov);
    ++n;
  }
  ASSERT_GT(n, 0);
  EXPECT_GE(worst, 0.90) << n << " tokens compared";
  EXPECT_GE(sum / n, 0.95) << n << " tokens compared";
  std::printf("[ %s ] max|Δlogit| %.3g (%.3g of max|logit|); %zu/%zu tokens agree; top-100 overlap min %.2f mean %.3f\n",
              model.c_str(), worst_logit, worst_logit / maxref, agree, ge.size(), worst, sum / n);
}

INSTANTIATE_TEST_SUITE_P(EveryFamily, Bf16Golden,
                         ::testing::Values("tiny-llava-a-f32", "tiny-llava-c-f16", "tiny-iblip-a-f32", "tiny-owl2-a-f32"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& c : n)
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });
