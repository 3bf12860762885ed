// Kernel micro-benchmarks (Google Benchmark): our stored-dtype linear against
// OpenBLAS sgemm on LLaMA-7B shapes, and a streaming-read bandwidth probe.
// Compare the counters within one run: achieved GFLOP/s ÷ sgemm GFLOP/s for
// prefill shapes, weight GB/s ÷ bandwidth GB/s for decode (M = 1).
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cstdlib>
#include <vector>

#include "bench_util.h"
#include "kernels/convert.h"
#include "kernels/linear.h"
#include "kernels/threading.h"

extern "C" void openblas_set_num_threads(int);

namespace {

using namespace mmn;

struct Mat {
  std::vector<uint16_t> bf16;
  Weight w;
  Mat(int64_t rows, int64_t cols) : bf16(rows * cols) {
    for (size_t i = 0; i < bf16.size(); ++i) bf16[i] = f32_to_bf16(static_cast<float>((i * 2654435761u) % 1000) * 1e-3f - 0.5f);
    w = {DType::BF16, rows, cols, bf16.data()};
  }
};

// args: M, N (rows of W), K
void BM_LinearBf16(benchmark::State& st) {
  const int64_t M = st.range(0), N = st.range(1), K = st.range(2);
  init_threads();
  Mat W(N, K);
  std::vector<float> x(M * K, 0.01f), y(M * N);
  for (auto _ : st) {
    linear(x.data(), M, W.w, nullptr, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * M * N * K, benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1000);
  st.counters["weightGB/s"] = benchmark::Counter(2.0 * N * K, benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
}

void BM_OpenBlasSgemm(benchmark::State& st) {
  const int64_t M = st.range(0), N = st.range(1), K = st.range(2);
  init_threads();
  std::vector<float> w(N * K, 0.02f), x(M * K, 0.01f), y(M * N);
  openblas_set_num_threads(num_threads());
  for (auto _ : st) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.f, x.data(), K, w.data(), K, 0.f, y.data(), N);
    benchmark::DoNotOptimize(y.data());
  }
  openblas_set_num_threads(1);
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * M * N * K, benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1000);
}

void BM_ReadBandwidth(benchmark::State& st) {
  init_threads();
  const size_t n = size_t{1} << 28;  // 1 GiB of floats
  float* buf = bench::probe_buffer(n);
  for (size_t i = 0; i < n; ++i) buf[i] = 1.f;
  for (auto _ : st) {
    const float total = bench::stream_sum_parallel(reinterpret_cast<const char*>(buf), n * 4, num_threads());
    benchmark::DoNotOptimize(total);
  }
  std::free(buf);
  st.counters["GB/s"] =
      benchmark::Counter(n * 4.0, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

// LLaMA-7B: q/o (4096×4096), gate/up (11008×4096), down (4096×11008); prefill M = 600, decode M = 1.
#define SHAPES(B, M) \
  B->Args({M, 4096, 4096})->Args({M, 11008, 4096})->Args({M, 4096, 11008})->Unit(benchmark::kMillisecond)->UseRealTime()
BENCHMARK(BM_LinearBf16)->Apply([](benchmark::internal::Benchmark* b) { SHAPES(b, 1); SHAPES(b, 600); });
BENCHMARK(BM_OpenBlasSgemm)->Apply([](benchmark::internal::Benchmark* b) { SHAPES(b, 600); });
BENCHMARK(BM_ReadBandwidth)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
