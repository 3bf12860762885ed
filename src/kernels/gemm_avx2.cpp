// AVX2 kernels of the exact GEMM (kernels/matmul_drivers.h), for CPUs without
// AVX-512. Compiled with -mavx2 -mfma -mf16c; called only when the CPU
// reports them.
#include <immintrin.h>

#include "kernels/convert.h"
#include "kernels/gemm.h"
#include "kernels/matmul_drivers.h"

namespace mmn::gemm_detail {

namespace {

inline __m256 load8(DType d, const uint8_t* row, int64_t k) {
  if (d == DType::F32) return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + k);
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(row) + k));
  if (d == DType::BF16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  return _mm256_cvtph_ps(h);
}

// 8 consecutive int8 weights of row r from column k (k a multiple of 8, so
// all 8 share one scale), dequantized to fp32.
inline __m256 load8_q8(const Weight& W, int64_t r, int64_t k) {
  const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(W.row_ptr(r) + k));
  const __m256 d = _mm256_set1_ps(_cvtsh_ss(W.row_scales(r)[k / kQ8Block]));
  return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d);
}

// In-register transpose of an 8×8 fp32 block (r[i]: row i, afterwards column i).
inline void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int a = 0; a < 4; ++a) {
    t[2 * a] = _mm256_unpacklo_ps(r[2 * a], r[2 * a + 1]);
    t[2 * a + 1] = _mm256_unpackhi_ps(r[2 * a], r[2 * a + 1]);
  }
  // u[4g + c], lane L: column 4L + c of rows 4g..4g+3.
  for (int g = 0; g < 2; ++g) {
    const __m256d lo = _mm256_castps_pd(t[4 * g]), hi = _mm256_castps_pd(t[4 * g + 1]);
    const __m256d lo2 = _mm256_castps_pd(t[4 * g + 2]), hi2 = _mm256_castps_pd(t[4 * g + 3]);
    u[4 * g + 0] = _mm256_castpd_ps(_mm256_unpacklo_pd(lo, lo2));
    u[4 * g + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(lo, lo2));
    u[4 * g + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(hi, hi2));
    u[4 * g + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(hi, hi2));
  }
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
    r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
  }
}


struct Avx2 {
  static constexpr int MR = 6, NR = 16;

  // GEMV band: y[m, n] for n in [n0, n1), all M rows.
  template <DType D, int M>
  static void rows(const float* x, const Weight& W, const float* bias, float* y, int64_t n0, int64_t n1) {
    const int64_t K = W.cols, N = W.rows;
    for (int64_t n = n0; n < n1; ++n) {
      const uint8_t* w = W.row_ptr(n);
      __m256 acc[M], acc2[M];
      for (int m = 0; m < M; ++m) acc[m] = acc2[m] = _mm256_setzero_ps();
      int64_t k = 0;
      for (; k + 16 <= K; k += 16) {
        _mm_prefetch(reinterpret_cast<const char*>(w) + k * dtype_size(D) + kGemvPrefetchBytes, _MM_HINT_T0);
        __m256 w0, w1;
        if constexpr (D == DType::I8) {  // 16 columns from a multiple of 16: one scale
          w0 = load8_q8(W, n, k);
          w1 = load8_q8(W, n, k + 8);
        } else {
          w0 = load8(D, w, k);
          w1 = load8(D, w, k + 8);
        }
        for (int m = 0; m < M; ++m) {
          acc[m] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + m * K + k), acc[m]);
          acc2[m] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + m * K + k + 8), acc2[m]);
        }
      }
      float out[M];
      for (int m = 0; m < M; ++m) {
        // Horizontal sum of the 8 lanes.
        const __m256 s = _mm256_add_ps(acc[m], acc2[m]);
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        h = _mm_add_ss(h, _mm_movehdup_ps(h));
        out[m] = _mm_cvtss_f32(h);
      }
      for (; k < K; ++k) {
        float wv;
        if constexpr (D == DType::I8) wv = weight_at(W, n, k);
        else wv = load_f32(D, w, k);
        for (int m = 0; m < M; ++m) out[m] += wv * x[m * K + k];
      }
      const float b = bias ? bias[n] : 0.f;
      for (int m = 0; m < M; ++m) y[m * N + n] = out[m] + b;
    }
  }

  // C[6, 16] (+)= xp[kc][6] · wp[kc][16]: 12 accumulators, two weight vectors
  // and a broadcast (15 of the 16 registers).
  static void micro(int64_t kc, const float* xp, const float* wp, float* c, int64_t ldc, bool acc) {
    __m256 c0[MR], c1[MR];
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      c0[i] = acc ? _mm256_loadu_ps(c + i * ldc) : _mm256_setzero_ps();
      c1[i] = acc ? _mm256_loadu_ps(c + i * ldc + 8) : _mm256_setzero_ps();
    }
    for (int64_t k = 0; k < kc; ++k) {
      const __m256 b0 = _mm256_load_ps(wp), b1 = _mm256_load_ps(wp + 8);
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) {
        const __m256 a = _mm256_broadcast_ss(xp + i);
        c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
        c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
      }
      xp += MR;
      wp += NR;
    }
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      _mm256_storeu_ps(c + i * ldc, c0[i]);
      _mm256_storeu_ps(c + i * ldc + 8, c1[i]);
    }
  }

  static void pack_w(const Weight& W, int64_t n0, int64_t rows, int64_t k0, int64_t kc, float* dst) {
    const DType d = W.dtype;
    int64_t k = 0;
    if (rows == NR) {
      for (; k + 8 <= kc; k += 8)
        for (int h = 0; h < 2; ++h) {
          __m256 r[8];
          if (d == DType::I8)  // k0 + k is a multiple of 8: 8 columns share a scale
            for (int j = 0; j < 8; ++j) r[j] = load8_q8(W, n0 + h * 8 + j, k0 + k);
          else
            for (int j = 0; j < 8; ++j) r[j] = load8(d, W.row_ptr(n0 + h * 8 + j), k0 + k);
          transpose8(r);
          for (int t = 0; t < 8; ++t) _mm256_store_ps(dst + (k + t) * NR + h * 8, r[t]);
        }
    }
    pack_w_scalar<NR>(W, n0, rows, k0, k, kc, dst);  // the k tail, or a narrow panel
  }
};

}  // namespace

void gemm_avx2(const float* x, int64_t M, const Weight& W, const float* bias, float* y, int threads) {
  gemm_blocked<Avx2>(x, M, W, bias, y, threads);
}

void gemv_avx2(const float* x, int64_t M, const Weight& W, const float* bias, float* y, int threads) {
  gemv_banded<Avx2>(x, M, W, bias, y, threads);
}

}  // namespace mmn::gemm_detail
