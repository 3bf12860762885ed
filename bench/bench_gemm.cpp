// Prefill GEMM throughput against the machine's own limits, in one run:
// the measured fp32 FMA peak (and the AVX-512 BF16 dot-product peak where the
// CPU reports it), then, on LLaMA-7B prefill shapes (M tokens × the q/o,
// gate/up and down projections) and the CLIP ViT-L/14 shapes of the vision
// tower, our exact kernels for every instruction set the CPU has (bf16
// weights, converted while packing), the generic path (bf16 tiles converted,
// then OpenBLAS), the bf16 compute path (--compute bf16, where the CPU has
// AVX-512 BF16), OpenBLAS sgemm on fp32 weights and oneDNN's fp32 matmul.
// Medians of --reps runs; every rate is also given as a share of both peaks.
//
//   ./build/bench/bench_gemm [--threads N] [--reps R] [--m M]
#include <cblas.h>
#include <immintrin.h>
#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "bench_util.h"
#include "kernels/convert.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm.h"
#include "kernels/threading.h"

extern "C" void openblas_set_num_threads(int);

using namespace mmn;
using namespace mmn::bench;

namespace {

// Independent FMA chains, enough to cover latency × ports; returns flops done.
__attribute__((target("avx512f,fma"))) double fma_loop_avx512(int64_t iters) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512 a = _mm512_set1_ps(0.9999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t t = 0; t < iters; ++t)
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  float s[16];
  __m512 sum = acc[0];
  for (int i = 1; i < 12; ++i) sum = _mm512_add_ps(sum, acc[i]);
  _mm512_storeu_ps(s, sum);
  if (s[0] == 12345.f) std::puts("");  // keep the loop
  return iters * 12.0 * 16 * 2;
}

__attribute__((target("avx2,fma"))) double fma_loop_avx2(int64_t iters) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  const __m256 a = _mm256_set1_ps(0.9999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t t = 0; t < iters; ++t)
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  float s[8];
  __m256 sum = acc[0];
  for (int i = 1; i < 12; ++i) sum = _mm256_add_ps(sum, acc[i]);
  _mm256_storeu_ps(s, sum);
  if (s[0] == 12345.f) std::puts("");
  return iters * 12.0 * 8 * 2;
}

// vdpbf16ps: 16 lanes × 2 products × 2 flops per instruction.
__attribute__((target("avx512f,avx512bf16"))) double dpbf16_loop(int64_t iters) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x3380);
  for (int64_t t = 0; t < iters; ++t)
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  float s[16];
  __m512 sum = acc[0];
  for (int i = 1; i < 12; ++i) sum = _mm512_add_ps(sum, acc[i]);
  _mm512_storeu_ps(s, sum);
  if (s[0] == 12345.f) std::puts("");
  return iters * 12.0 * 16 * 4;
}

// All threads run the loop at once; flops per second over the slowest. A
// peak is the best of the runs, after one unmeasured run: the median of three
// short cold runs read 255 GFLOP/s where our own GEMM then reached 338.
double peak(const std::function<double(int64_t)>& loop, int threads, int reps) {
  std::vector<double> rates;
  for (int r = 0; r < reps + 1; ++r) {
    double flops = 0;
    const auto t0 = Clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : flops)
    flops += loop(50'000'000);
    if (r) rates.push_back(flops / secs(t0));
  }
  return *std::max_element(rates.begin(), rates.end());
}

double time_median(const std::function<void()>& f, int reps) {
  f();  // warm: page faults, packing buffers, oneDNN's JIT
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    f();
    t.push_back(secs(t0));
  }
  return median(t);
}

struct Shape {
  const char* name;
  int64_t M, N, K;
};

}  // namespace

int main(int argc, char** argv) {
  int threads = 0, reps = 5;
  int64_t m_llm = 600, m_vit = 577;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--m")) m_llm = std::atoll(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: %s [--threads N] [--reps R] [--m M]\n", argv[0]);
      return 2;
    }
  }
  init_threads(threads);
  const int T = num_threads();
  const CpuFeatures& cf = cpu_features();
  std::printf("cpu: %s; threads %d; medians of %d\n", cpu_summary().c_str(), T, reps);
  const double fp32_peak = isa_supported(Isa::Avx512) ? peak(fma_loop_avx512, T, reps)
                           : isa_supported(Isa::Avx2) ? peak(fma_loop_avx2, T, reps)
                                                      : 0;
  std::printf("fp32 FMA peak: %.1f GFLOP/s\n", fp32_peak / 1e9);
  // The AVX2 kernel's own ceiling (256-bit FMAs), to read its rows against.
  if (isa_supported(Isa::Avx512) && isa_supported(Isa::Avx2))
    std::printf("fp32 FMA peak with 256-bit vectors (the AVX2 kernel's): %.1f GFLOP/s\n",
                peak(fma_loop_avx2, T, reps) / 1e9);
  const double bf16_peak = cf.avx512_bf16 ? peak(dpbf16_loop, T, reps) : 0;
  if (cf.avx512_bf16) std::printf("bf16 dot-product peak (vdpbf16ps): %.1f GFLOP/s\n", bf16_peak / 1e9);
  else std::printf("bf16 dot-product peak: the CPU does not report AVX-512 BF16\n");

  const Shape shapes[] = {{"7B q/o", m_llm, 4096, 4096},        {"7B gate/up", m_llm, 11008, 4096},
                          {"7B down", m_llm, 4096, 11008},      {"ViT-L qkvo", m_vit, 1024, 1024},
                          {"ViT-L fc1", m_vit, 4096, 1024},     {"ViT-L fc2", m_vit, 1024, 4096}};
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  std::printf("\n| shape | M×N×K | path | weights | median s | GFLOP/s | ÷ fp32 peak | ÷ bf16 peak |\n"
              "|---|---|---|---|---|---|---|---|\n");
  for (const Shape& s : shapes) {
    const double flops = 2.0 * s.M * s.N * s.K;
    std::vector<float> x(static_cast<size_t>(s.M * s.K)), w32(static_cast<size_t>(s.N * s.K)),
        y(static_cast<size_t>(s.M * s.N));
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    for (size_t i = 0; i < w32.size(); ++i) w32[i] = static_cast<float>((i * 40503u) % 1000) * 1e-3f - 0.5f;
    std::vector<uint16_t> wb(w32.size());
    convert_from_f32(DType::BF16, w32.data(), wb.data(), static_cast<int64_t>(w32.size()));
    const Weight Wb{DType::BF16, s.N, s.K, wb.data()};
    auto row = [&](const char* path, const char* wt, double sec) {
      std::printf("| %s | %lld×%lld×%lld | %s | %s | %.4f | %.1f | %.2f | %.2f |\n", s.name,
                  static_cast<long long>(s.M), static_cast<long long>(s.N), static_cast<long long>(s.K), path, wt, sec,
                  flops / sec / 1e9, fp32_peak > 0 ? flops / sec / fp32_peak : 0.0,
                  bf16_peak > 0 ? flops / sec / bf16_peak : 0.0);
      std::fflush(stdout);
    };
    for (Isa isa : {Isa::Avx512, Isa::Avx2, Isa::Generic})
      if (isa_supported(isa)) {
        const std::string path = std::string("mmneuron ") + isa_name(isa);
        row(path.c_str(), "bf16", time_median([&] { gemm_xwt(x.data(), s.M, Wb, nullptr, y.data(), isa); }, reps));
      }
    // --compute bf16: x and W rounded to bf16, vdpbf16ps, fp32 sums.
    if (gemm_bf16_supported())
      row("mmneuron bf16 compute", "bf16", time_median([&] { gemm_xwt_bf16(x.data(), s.M, Wb, nullptr, y.data()); }, reps));
    openblas_set_num_threads(T);
    row("OpenBLAS sgemm", "fp32", time_median([&] {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s.M, s.N, s.K, 1.f, x.data(), s.K, w32.data(), s.K,
                      0.f, y.data(), s.N);
        }, reps));
    openblas_set_num_threads(1);
    {
      using md = dnnl::memory::desc;
      using dt = dnnl::memory::data_type;
      using tag = dnnl::memory::format_tag;
      const md a({s.M, s.K}, dt::f32, tag::ab), b({s.K, s.N}, dt::f32, tag::ba), c({s.M, s.N}, dt::f32, tag::ab);
      const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), eng);
      dnnl::matmul mm(pd);
      dnnl::memory am(a, eng, x.data()), bm(b, eng, w32.data()), cm(c, eng, y.data());
      row("oneDNN matmul", "fp32", time_median([&] {
            mm.execute(strm, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
            strm.wait();
          }, reps));
    }
  }
  return 0;
}
