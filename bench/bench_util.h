// Timing helpers shared by the benchmarks.
#pragma once
#include <immintrin.h>
#include <omp.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <vector>

#include "kernels/cpu_features.h"

namespace mmn::bench {

// Sum of the floats in bytes [0, n / 64 · 64) of p, streamed by one thread
// with the widest loads the CPU reports (target attributes: the benchmarks
// build without -march=native too), so a bandwidth probe measures memory,
// not the instruction set.
__attribute__((target("avx512f"))) inline float stream_sum_avx512(const char* p, size_t n) {
  __m512 acc = _mm512_setzero_ps();
  for (size_t b = 0; b + 64 <= n; b += 64) acc = _mm512_add_ps(acc, _mm512_loadu_ps(reinterpret_cast<const float*>(p + b)));
  return _mm512_reduce_add_ps(acc);
}
__attribute__((target("avx2"))) inline float stream_sum_avx2(const char* p, size_t n) {
  __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
  for (size_t i = 0; i + 64 <= n; i += 64) {
    a = _mm256_add_ps(a, _mm256_loadu_ps(reinterpret_cast<const float*>(p + i)));
    b = _mm256_add_ps(b, _mm256_loadu_ps(reinterpret_cast<const float*>(p + i + 32)));
  }
  alignas(32) float s[8];
  _mm256_store_ps(s, _mm256_add_ps(a, b));
  return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}
inline float stream_sum_sse2(const char* p, size_t n) {
  __m128 a = _mm_setzero_ps(), b = _mm_setzero_ps(), c = _mm_setzero_ps(), d = _mm_setzero_ps();
  for (size_t i = 0; i + 64 <= n; i += 64) {
    const float* f = reinterpret_cast<const float*>(p + i);
    a = _mm_add_ps(a, _mm_loadu_ps(f)), b = _mm_add_ps(b, _mm_loadu_ps(f + 4));
    c = _mm_add_ps(c, _mm_loadu_ps(f + 8)), d = _mm_add_ps(d, _mm_loadu_ps(f + 12));
  }
  alignas(16) float s[4];
  _mm_store_ps(s, _mm_add_ps(_mm_add_ps(a, b), _mm_add_ps(c, d)));
  return s[0] + s[1] + s[2] + s[3];
}
inline float stream_sum(const char* p, size_t n) {
  const CpuFeatures& c = cpu_features();
  return c.avx512f ? stream_sum_avx512(p, n) : c.avx2 ? stream_sum_avx2(p, n) : stream_sum_sse2(p, n);
}

// The buffer of a bandwidth probe (free with std::free): 2 MiB aligned and
// asking for transparent huge pages, since with 4 KiB pages the same probe
// read anywhere between 37 and 77 GB/s on this project's machine, run to run.
inline float* probe_buffer(size_t floats) {
  const size_t bytes = (floats * sizeof(float) + (size_t{2} << 20) - 1) / (size_t{2} << 20) * (size_t{2} << 20);
  void* p = std::aligned_alloc(size_t{2} << 20, bytes);
  if (p) ::madvise(p, bytes, MADV_HUGEPAGE);
  return static_cast<float*>(p);
}

// Streams [p, p + n) once with `threads` threads, each its own contiguous band.
inline float stream_sum_parallel(const char* p, size_t n, int threads) {
  float total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
  {
    const size_t t = static_cast<size_t>(omp_get_thread_num()), T = static_cast<size_t>(omp_get_num_threads());
    const size_t b0 = n / 64 * t / T * 64, b1 = n / 64 * (t + 1) / T * 64;
    total += stream_sum(p + b0, b1 - b0);
  }
  return total;
}

using Clock = std::chrono::steady_clock;

inline double secs(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

}  // namespace mmn::bench
