// The exact-path kernels against a plain double-precision reference: every
// kernel family this CPU supports, every stored dtype, shapes that are not
// multiples of any blocking (M = 1…13, K < 32, N across panel edges), and
// results that do not depend on the thread count.
#include <gtest/gtest.h>

#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/convert.h"
#include "kernels/cpu_features.h"
#include "kernel_reference.h"
#include "kernels/gemm.h"
#include "kernels/linear.h"

using namespace mmn;
using namespace mmn::test;

namespace {

struct StoredWeight {
  std::vector<float> f32;      // the values the kernels must see (after rounding to the dtype)
  std::vector<uint16_t> half;  // bf16 / f16 storage
  Weight w;
};

StoredWeight make_weight(DType d, int64_t N, int64_t K, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  StoredWeight s;
  s.f32.resize(static_cast<size_t>(N * K));
  for (float& v : s.f32) v = nd(rng);
  if (d != DType::F32) {
    s.half.resize(s.f32.size());
    convert_from_f32(d, s.f32.data(), s.half.data(), N * K);
    convert_to_f32(d, s.half.data(), s.f32.data(), N * K);
  }
  s.w = Weight{d, N, K, d == DType::F32 ? static_cast<const void*>(s.f32.data()) : s.half.data()};
  return s;
}

__attribute__((target("f16c"))) float f16c_to_f32(uint16_t h) { return _cvtsh_ss(h); }
__attribute__((target("f16c"))) uint16_t f16c_from_f32(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace

// The portable half conversions (what a build without -march=native uses)
// give F16C's bits: every half, and floats across every rounding boundary.
TEST(Kernels, PortableHalfConversionsMatchF16c) {
  if (!cpu_features().f16c) GTEST_SKIP() << "no F16C on this CPU to compare with: " << cpu_summary();
  for (uint32_t h = 0; h < 65536; ++h) {
    const float want = f16c_to_f32(static_cast<uint16_t>(h)), got = f16_to_f32_portable(static_cast<uint16_t>(h));
    if (std::isnan(want)) EXPECT_TRUE(std::isnan(got)) << std::hex << h;
    else ASSERT_EQ(bits_of(got), bits_of(want)) << std::hex << "half 0x" << h;
  }
  std::vector<uint32_t> xs;
  for (uint64_t u = 0; u < (uint64_t{1} << 32); u += 4093) xs.push_back(static_cast<uint32_t>(u));
  // Every half's neighbourhood: the value, the midpoint to the next, and one ulp of fp32 either side.
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    const uint32_t lo = bits_of(f16c_to_f32(static_cast<uint16_t>(h)));
    const uint32_t mid = bits_of(0.5f * (float_of(lo) + f16c_to_f32(static_cast<uint16_t>(h + 1))));
    for (uint32_t v : {lo, mid - 1, mid, mid + 1})
      for (uint32_t sign : {0u, 0x80000000u}) xs.push_back(v | sign);
  }
  for (uint32_t v : {0x7f800000u, 0x477fe000u, 0x477ff000u, 0x477fefffu, 0x33000000u, 0x33000001u, 0x32ffffffu})
    xs.push_back(v);
  for (uint32_t x : xs) {
    const float f = float_of(x);
    const uint16_t want = f16c_from_f32(f), got = f32_to_f16_portable(f);
    if (std::isnan(f)) EXPECT_TRUE((got & 0x7c00u) == 0x7c00u && (got & 0x3ffu)) << std::hex << x;
    else ASSERT_EQ(got, want) << std::hex << "float bits 0x" << x;
  }
}

TEST(Kernels, CpuFeaturesAreConsistent) {
  const CpuFeatures& c = cpu_features();
  EXPECT_TRUE(isa_supported(Isa::Generic));
  if (isa_supported(Isa::Avx512)) {
    EXPECT_TRUE(c.avx512f && c.avx512bw && c.fma);
  }
  EXPECT_TRUE(isa_supported(active_isa()));
  EXPECT_FALSE(cpu_summary().empty());
  EXPECT_EQ(parse_isa("avx2"), Isa::Avx2);
  EXPECT_THROW(parse_isa("sse9"), std::exception);
}

TEST(Kernels, GemmMatchesReferenceOnOddShapes) {
  const int64_t Ms[] = {1, 2, 3, 5, 6, 7, 8, 9, 12, 13, 25};
  const int64_t NKs[][2] = {{1, 1}, {17, 5}, {31, 31}, {33, 32}, {47, 33}, {64, 300}, {100, 257}, {290, 513}};
  for (Isa isa : supported_isas())
    for (DType d : {DType::F32, DType::BF16, DType::F16})
      for (const auto& nk : NKs)
        for (int64_t M : Ms) {
          const int64_t N = nk[0], K = nk[1];
          const StoredWeight w = make_weight(d, N, K, static_cast<uint32_t>(N * 131 + K));
          std::vector<float> x(static_cast<size_t>(M * K)), bias(static_cast<size_t>(N));
          std::mt19937 rng(static_cast<uint32_t>(M + 7));
          std::uniform_real_distribution<float> u(-1.f, 1.f);
          for (float& v : x) v = u(rng);
          for (float& v : bias) v = u(rng);
          std::vector<float> y(static_cast<size_t>(M * N), NAN);
          gemm_xwt(x.data(), M, w.w, bias.data(), y.data(), isa);
          // fp32 sums of K terms: error ≲ K·2⁻²⁴ relative to Σ|x·w|.
          EXPECT_LT(relative_error(x, w.f32, bias, y, M, N, K), 1e-6 + K * 1.2e-7)
              << isa_name(isa) << " " << dtype_name(d) << " M=" << M << " N=" << N << " K=" << K;
          std::vector<float> y0(static_cast<size_t>(M * N), NAN);
          gemm_xwt(x.data(), M, w.w, nullptr, y0.data(), isa);
          EXPECT_LT(relative_error(x, w.f32, {}, y0, M, N, K), 1e-6 + K * 1.2e-7) << isa_name(isa) << " no bias";
        }
}

TEST(Kernels, GemmDoesNotDependOnThreadCount) {
  const int64_t M = 37, N = 700, K = 600;
  const StoredWeight w = make_weight(DType::BF16, N, K, 9);
  std::vector<float> x(static_cast<size_t>(M * K));
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(static_cast<float>(i));
  using Fn = void (*)(const float*, int64_t, const Weight&, const float*, float*, int);
  std::vector<std::pair<Isa, Fn>> fns;
  if (isa_supported(Isa::Avx512)) fns.push_back({Isa::Avx512, gemm_detail::gemm_avx512});
  if (isa_supported(Isa::Avx2)) fns.push_back({Isa::Avx2, gemm_detail::gemm_avx2});
  if (fns.empty()) GTEST_SKIP() << "no vector kernels on this CPU: " << cpu_summary();
  for (auto [isa, fn] : fns) {
    std::vector<float> y1(static_cast<size_t>(M * N)), y2(y1.size());
    fn(x.data(), M, w.w, nullptr, y1.data(), 1);
    fn(x.data(), M, w.w, nullptr, y2.data(), 2);
    EXPECT_EQ(y1, y2) << isa_name(isa);
  }
}

TEST(Kernels, LinearUsesTheGemmForManyRows) {
  // linear() switches from the GEMV to the GEMM above 8 rows; both agree.
  const int64_t N = 45, K = 70;
  const StoredWeight w = make_weight(DType::BF16, N, K, 3);
  std::vector<float> x(static_cast<size_t>(9 * K));
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::cos(0.3f * static_cast<float>(i));
  std::vector<float> y9(static_cast<size_t>(9 * N)), y1(static_cast<size_t>(N));
  linear(x.data(), 9, w.w, nullptr, y9.data());
  for (int64_t m = 0; m < 9; ++m) {
    linear(x.data() + m * K, 1, w.w, nullptr, y1.data());
    for (int64_t n = 0; n < N; ++n) EXPECT_NEAR(y9[m * N + n], y1[n], 1e-5f * K) << m << "," << n;
  }
}

TEST(Kernels, GemvMatchesReferenceForEveryRowCount) {
  const int64_t NKs[][2] = {{1, 1}, {7, 5}, {33, 31}, {40, 33}, {65, 300}, {300, 1030}};
  for (Isa isa : supported_isas())
    for (DType d : {DType::F32, DType::BF16, DType::F16})
      for (const auto& nk : NKs)
        for (int64_t M = 1; M <= gemv_max_rows(); ++M) {
          const int64_t N = nk[0], K = nk[1];
          const StoredWeight w = make_weight(d, N, K, static_cast<uint32_t>(N * 7 + K));
          std::vector<float> x(static_cast<size_t>(M * K)), bias(static_cast<size_t>(N));
          for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.7f * static_cast<float>(i));
          for (size_t i = 0; i < bias.size(); ++i) bias[i] = std::cos(static_cast<float>(i));
          std::vector<float> y(static_cast<size_t>(M * N), NAN);
          gemv_xwt(x.data(), M, w.w, bias.data(), y.data(), isa);
          EXPECT_LT(relative_error(x, w.f32, bias, y, M, N, K), 1e-6 + K * 1.2e-7)
              << isa_name(isa) << " " << dtype_name(d) << " M=" << M << " N=" << N << " K=" << K;
        }
}
