// AVX-512 kernels of the exact GEMM (kernels/matmul_drivers.h). Compiled with
// -mavx512f -mavx512bw -mavx512vl -mfma -mf16c; called only when the CPU
// reports them.
#include <immintrin.h>

#include "kernels/avx512_transpose.h"
#include "kernels/convert.h"
#include "kernels/gemm.h"
#include "kernels/matmul_drivers.h"

namespace mmn::gemm_detail {

namespace {

// 16 consecutive elements of a stored-dtype row, as fp32.
inline __m512 load16(DType d, const uint8_t* row, int64_t k) {
  if (d == DType::F32) return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + k);
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(reinterpret_cast<const uint16_t*>(row) + k));
  if (d == DType::BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  return _mm512_cvtph_ps(h);
}

// How far ahead of the current position the GEMV prefetches (elements).
constexpr int64_t kPrefetchElems = 1024;

struct Avx512 {
  static constexpr int MR = 12, NR = 32;

  // GEMV band: y[m, n] for n in [n0, n1), all M rows.
  template <DType D, int M>
  static void rows(const float* x, const Weight& W, const float* bias, float* y, int64_t n0, int64_t n1) {
    const int64_t K = W.cols, N = W.rows;
    for (int64_t n = n0; n < n1; ++n) {
      const uint8_t* w = W.row_ptr(n);
      // Two independent accumulator chains per row hide the FMA latency.
      __m512 acc[M], acc2[M];
      for (int m = 0; m < M; ++m) acc[m] = acc2[m] = _mm512_setzero_ps();
      int64_t k = 0;
      for (; k + 32 <= K; k += 32) {
        // Hardware prefetchers stop at 4 KiB page boundaries, and mmapped
        // checkpoints live in 4 KiB pages: fetch well ahead ourselves.
        _mm_prefetch(reinterpret_cast<const char*>(w) + (k + kPrefetchElems) * dtype_size(D), _MM_HINT_T0);
        const __m512 w0 = load16(D, w, k), w1 = load16(D, w, k + 16);
        for (int m = 0; m < M; ++m) {
          acc[m] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + m * K + k), acc[m]);
          acc2[m] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + m * K + k + 16), acc2[m]);
        }
      }
      for (; k + 16 <= K; k += 16) {
        const __m512 wv = load16(D, w, k);
        for (int m = 0; m < M; ++m) acc[m] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + m * K + k), acc[m]);
      }
      float out[M];
      for (int m = 0; m < M; ++m) out[m] = _mm512_reduce_add_ps(_mm512_add_ps(acc[m], acc2[m]));
      for (; k < K; ++k) {
        const float wv = load_f32(D, w, k);
        for (int m = 0; m < M; ++m) out[m] += wv * x[m * K + k];
      }
      const float b = bias ? bias[n] : 0.f;
      for (int m = 0; m < M; ++m) y[m * N + n] = out[m] + b;
    }
  }

  // C[12, 32] (+)= xp[kc][12] · wp[kc][32]: 24 accumulators, two weight
  // vectors and a broadcast per step (27 of the 32 registers).
  static void micro(int64_t kc, const float* xp, const float* wp, float* c, int64_t ldc, bool acc) {
    __m512 c0[MR], c1[MR];
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      c0[i] = acc ? _mm512_loadu_ps(c + i * ldc) : _mm512_setzero_ps();
      c1[i] = acc ? _mm512_loadu_ps(c + i * ldc + 16) : _mm512_setzero_ps();
    }
    for (int64_t k = 0; k < kc; ++k) {
      const __m512 b0 = _mm512_load_ps(wp), b1 = _mm512_load_ps(wp + 16);
#pragma GCC unroll 12
      for (int i = 0; i < MR; ++i) {
        const __m512 a = _mm512_set1_ps(xp[i]);
        c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
        c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
      }
      xp += MR;
      wp += NR;
    }
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      _mm512_storeu_ps(c + i * ldc, c0[i]);
      _mm512_storeu_ps(c + i * ldc + 16, c1[i]);
    }
  }

  // W rows [n0, n0 + rows) × k [k0, k0 + kc) → dst[k·32 + j], converted to
  // fp32: 16×16 blocks are loaded row-wise and transposed in registers.
  static void pack_w(const Weight& W, int64_t n0, int64_t rows, int64_t k0, int64_t kc, float* dst) {
    const DType d = W.dtype;
    int64_t k = 0;
    if (rows == NR) {
      for (; k + 16 <= kc; k += 16)
        for (int h = 0; h < 2; ++h) {
          __m512 r[16];
          for (int j = 0; j < 16; ++j) r[j] = load16(d, W.row_ptr(n0 + h * 16 + j), k0 + k);
          transpose16(r);
          for (int t = 0; t < 16; ++t) _mm512_store_ps(dst + (k + t) * NR + h * 16, r[t]);
        }
    }
    pack_w_scalar<NR>(W, n0, rows, k0, k, kc, dst);  // the k tail, or a narrow panel
  }
};

}  // namespace

void gemm_avx512(const float* x, int64_t M, const Weight& W, const float* bias, float* y, int threads) {
  gemm_blocked<Avx512>(x, M, W, bias, y, threads);
}

void gemv_avx512(const float* x, int64_t M, const Weight& W, const float* bias, float* y, int threads) {
  gemv_banded<Avx512>(x, M, W, bias, y, threads);
}

}  // namespace mmn::gemm_detail
