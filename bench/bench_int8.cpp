// Decode GEMV and prefill GEMM on int8 weights (mmneuron quantize) against
// bf16 and fp32 weights of the same LLaMA-7B shapes, and the two int8 GEMVs
// of AVX-512: int8 → fp32 in registers then FMA (exact against the
// dequantized weight) and AVX-512 VNNI vpdpbusd on x quantized per block of
// 32 (llama.cpp's Q8_0·Q8_0; what gemv_xwt runs where the CPU has VNNI). Also the machine's
// streaming read bandwidth, which bounds every GEMV. Fastest of --reps runs.
//
//   ./build/bench/bench_int8 [--threads N] [--reps R]
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "kernels/convert.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm.h"
#include "kernels/threading.h"
#include "tensor/weight.h"

using namespace mmn;
using namespace mmn::bench;

namespace {

// The fastest of `reps` runs: on a machine shared with other work (this
// project's, where a training job keeps priority) a descheduled thread adds
// whole time slices to a run, so the minimum is the kernel's own time.
double time_median(int reps, const std::function<void()>& f) {
  f();  // warm
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    f();
    t.push_back(secs(t0));
  }
  return *std::min_element(t.begin(), t.end());
}

// GB/s of a streaming sum over `bytes` with all threads.
double read_bandwidth(size_t bytes, int reps) {
  std::vector<uint64_t> buf(bytes / 8, 1);
  volatile uint64_t sink = 0;
  const double s = time_median(reps, [&] {
    uint64_t total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static)
    for (size_t i = 0; i < buf.size(); ++i) total += buf[i];
    sink = total;
  });
  (void)sink;
  return bytes / s / 1e9;
}

struct Shapes {
  int64_t N, K;
  const char* name;
};

}  // namespace

int main(int argc, char** argv) {
  int threads = 0, reps = 31;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
  }
  init_threads(threads);
  const int nt = num_threads();
  std::printf("cpu: %s, %d threads\n", cpu_summary().c_str(), nt);
  std::printf("streaming read bandwidth (1 GiB): %.1f GB/s\n\n", read_bandwidth(size_t{1} << 30, 5));
  const bool vnni = isa_supported(Isa::Avx512) && cpu_features().avx512_vnni;
  for (Shapes sh : {Shapes{11008, 4096, "gate/up [11008, 4096]"}, Shapes{4096, 11008, "down [4096, 11008]"}}) {
    const int64_t N = sh.N, K = sh.K;
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.f, 0.02f);
    std::vector<float> wf(static_cast<size_t>(N * K));
    for (float& v : wf) v = nd(rng);
    std::vector<uint16_t> wb(wf.size());
    convert_from_f32(DType::BF16, wf.data(), wb.data(), N * K);
    std::vector<int8_t> q(wf.size());
    std::vector<uint16_t> sc(static_cast<size_t>(N * q8_blocks(K)));
    for (int64_t n = 0; n < N; ++n) quantize_row_q8(&wf[n * K], K, &q[n * K], &sc[n * q8_blocks(K)]);
    const Weight W32{DType::F32, N, K, wf.data()}, W16{DType::BF16, N, K, wb.data()},
        W8{DType::I8, N, K, q.data(), sc.data()};
    std::printf("%s\n", sh.name);
    std::printf("  %-34s %5s %10s %10s\n", "kernel", "M", "ms", "GB/s(W)");
    for (int64_t M : {1, 4, 8}) {
      std::vector<float> x(static_cast<size_t>(M * K)), y(static_cast<size_t>(M * N)), yv(y.size());
      for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.01f * static_cast<float>(i));
      auto row = [&](const char* what, const Weight& w, const std::function<void()>& f) {
        const double s = time_median(reps, f);
        const double bytes = static_cast<double>(w.nbytes()) + (w.scales ? N * q8_blocks(K) * 2.0 : 0.0);
        std::printf("  %-34s %5lld %10.3f %10.1f\n", what, static_cast<long long>(M), s * 1e3, bytes / s / 1e9);
      };
      row("gemv fp32", W32, [&] { gemv_xwt(x.data(), M, W32, nullptr, y.data()); });
      row("gemv bf16", W16, [&] { gemv_xwt(x.data(), M, W16, nullptr, y.data()); });
      row("gemv int8 (dequant + FMA)", W8, [&] { gemm_detail::gemv_avx512(x.data(), M, W8, nullptr, y.data(), nt); });
      if (isa_supported(Isa::Avx2))
        row("gemv int8 avx2 (dequant + FMA)", W8, [&] { gemv_xwt(x.data(), M, W8, nullptr, y.data(), Isa::Avx2); });
      if (vnni) {
        row("gemv int8 VNNI (x to int8)", W8, [&] { gemm_detail::gemv_avx512_q8_vnni(x.data(), M, W8, nullptr, yv.data(), nt); });
        // The cost in agreement of quantizing x: against the exact product with the dequantized weight.
        gemm_detail::gemv_avx512(x.data(), M, W8, nullptr, y.data(), nt);
        double worst = 0, mag = 0;
        for (size_t i = 0; i < y.size(); ++i) {
          worst = std::max(worst, static_cast<double>(std::fabs(yv[i] - y[i])));
          mag = std::max(mag, static_cast<double>(std::fabs(y[i])));
        }
        std::printf("  %-34s %5lld  max |VNNI - FMA| = %.2e (max |y| %.2e)\n", "", static_cast<long long>(M), worst, mag);
      }
    }
    {  // prefill: the blocked GEMM, int8 dequantized while packing
      const int64_t M = 128;
      std::vector<float> x(static_cast<size_t>(M * K)), y(static_cast<size_t>(M * N));
      for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.01f * static_cast<float>(i));
      const double flops = 2.0 * M * N * K;
      for (auto [what, w] : {std::pair{"gemm fp32", &W32}, std::pair{"gemm bf16", &W16}, std::pair{"gemm int8", &W8}}) {
        const double s = time_median(std::max(3, reps / 3), [&] { gemm_xwt(x.data(), M, *w, nullptr, y.data()); });
        std::printf("  %-34s %5lld %10.3f %10.1f GFLOP/s\n", what, static_cast<long long>(M), s * 1e3, flops / s / 1e9);
      }
    }
    std::printf("\n");
  }
  return 0;
}
