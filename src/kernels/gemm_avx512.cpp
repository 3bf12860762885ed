// AVX-512 kernels of the exact GEMM (kernels/matmul_drivers.h). Compiled with
// -mavx512f -mavx512bw -mavx512vl -mfma -mf16c; called only when the CPU
// reports them.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

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

// 16 consecutive int8 weights of row r from column k (k a multiple of 16, so
// all 16 share one scale), dequantized to fp32.
inline __m512 load16_q8(const Weight& W, int64_t r, int64_t k) {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(W.row_ptr(r) + k));
  const __m512 d = _mm512_set1_ps(_cvtsh_ss(W.row_scales(r)[k / kQ8Block]));
  return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), d);
}

struct Avx512 {
  static constexpr int MR = 12, NR = 32;

  // GEMV band: y[m, n] for n in [n0, n1), all M rows.
  template <DType D, int M>
  static void rows(const float* x, const Weight& W, const float* bias, float* y, int64_t n0, int64_t n1) {
    if constexpr (D == DType::I8) return rows_q8<M>(x, W, bias, y, n0, n1);
    const int64_t K = W.cols, N = W.rows;
    for (int64_t n = n0; n < n1; ++n) {
      const uint8_t* w = W.row_ptr(n);
      // Two independent accumulator chains per row hide the FMA latency.
      __m512 acc[M], acc2[M];
      for (int m = 0; m < M; ++m) acc[m] = acc2[m] = _mm512_setzero_ps();
      int64_t k = 0;
      for (; k + 32 <= K; k += 32) {
        _mm_prefetch(reinterpret_cast<const char*>(w) + k * dtype_size(D) + kGemvPrefetchBytes, _MM_HINT_T0);
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

  // The int8 GEMV band: each block of 32 weights is dequantized once
  // (q · scale, in registers) and serves all M rows with fp32 FMAs.
  template <int M>
  static void rows_q8(const float* x, const Weight& W, const float* bias, float* y, int64_t n0, int64_t n1) {
    const int64_t K = W.cols, N = W.rows;
    for (int64_t n = n0; n < n1; ++n) {
      const int8_t* w = reinterpret_cast<const int8_t*>(W.row_ptr(n));
      const uint16_t* s = W.row_scales(n);
      __m512 acc[M], acc2[M];
      for (int m = 0; m < M; ++m) acc[m] = acc2[m] = _mm512_setzero_ps();
      int64_t k = 0;
      for (; k + 32 <= K; k += 32) {
        _mm_prefetch(reinterpret_cast<const char*>(w) + k + kGemvPrefetchBytes, _MM_HINT_T0);
        const __m512 d = _mm512_set1_ps(_cvtsh_ss(s[k / kQ8Block]));
        const __m512i q = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k)));
        const __m512 w0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(_mm512_castsi512_si256(q))), d);
        const __m512 w1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(q, 1))), d);
        for (int m = 0; m < M; ++m) {
          acc[m] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + m * K + k), acc[m]);
          acc2[m] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + m * K + k + 16), acc2[m]);
        }
      }
      float out[M];
      for (int m = 0; m < M; ++m) out[m] = _mm512_reduce_add_ps(_mm512_add_ps(acc[m], acc2[m]));
      for (; k < K; ++k) {  // the last, partial block
        const float wv = static_cast<float>(w[k]) * _cvtsh_ss(s[k / kQ8Block]);
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
          if (d == DType::I8)  // k0 + k is a multiple of 16 (kKC is), so 16 columns share a scale
            for (int j = 0; j < 16; ++j) r[j] = load16_q8(W, n0 + h * 16 + j, k0 + k);
          else
            for (int j = 0; j < 16; ++j) r[j] = load16(d, W.row_ptr(n0 + h * 16 + j), k0 + k);
          transpose16(r);
          for (int t = 0; t < 16; ++t) _mm512_store_ps(dst + (k + t) * NR + h * 16, r[t]);
        }
    }
    pack_w_scalar<NR>(W, n0, rows, k0, k, kc, dst);  // the k tail, or a narrow panel
  }
};

// ---- int8 GEMV with AVX-512 VNNI (vpdpbusd), llama.cpp's Q8_0·Q8_0 scheme.
//
// x is quantized like the weight, per block of 32 along K: dx = max|x|/127
// (fp32), xq = round(x/dx). Then Σ_k x·w over a block ≈ dx·dw·Σ xq·q, an
// integer dot product. vpdpbusd multiplies unsigned by signed bytes, so x is
// stored as u = xq + 128 ∈ [1, 255] and the offset removed afterwards:
//   Σ u·q = Σ xq·q + 128·Σ q,
// with Σ q itself a vpdpbusd of a vector of ones against q. One 64-byte load
// holds two blocks: int32 lanes 0–7 sum block b, lanes 8–15 block b+1 (each
// lane four consecutive bytes), so the scales are applied per 8-lane half.
// Only the multiple-of-64 part of K takes this path; the rest (at most 63
// columns) is dequantized and multiplied in fp32 with the unquantized x.
// Agreement cost: x is rounded to 8 bits per block (relative error up to
// 1/254 of the block's largest |x| per element), where the FMA path is exact
// in fp32 against the dequantized weight.
struct QuantizedRows {
  std::vector<uint8_t> u;  // [M][K64]: xq + 128
  std::vector<float> d;    // [M][K64/64][16]: dx of the two blocks, each spread over its 8 lanes
};

void quantize_rows_q8(const float* x, int64_t M, int64_t K, int64_t K64, QuantizedRows& out) {
  out.u.resize(static_cast<size_t>(M * K64));
  out.d.resize(static_cast<size_t>(M * (K64 / 64) * 16));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t b = 0; b < K64 / kQ8Block; ++b) {
      const float* xb = x + m * K + b * kQ8Block;
      float amax = 0.f;
      for (int j = 0; j < kQ8Block; ++j) amax = std::max(amax, std::fabs(xb[j]));
      const float d = amax / 127.f, inv = d > 0.f ? 1.f / d : 0.f;
      uint8_t* ub = out.u.data() + m * K64 + b * kQ8Block;
      for (int j = 0; j < kQ8Block; ++j)
        ub[j] = static_cast<uint8_t>(std::clamp(std::nearbyint(xb[j] * inv), -127.f, 127.f) + 128.f);
      float* dv = out.d.data() + (m * (K64 / 64) + b / 2) * 16 + (b % 2) * 8;
      for (int j = 0; j < 8; ++j) dv[j] = d;
    }
}

template <int M>
__attribute__((target("avx512vnni"))) void rows_q8_vnni(const float* x, const QuantizedRows& xq, const Weight& W,
                                                        const float* bias, float* y, int64_t n0, int64_t n1) {
  const int64_t K = W.cols, N = W.rows, K64 = K / 64 * 64;
  const __m512i ones = _mm512_set1_epi8(1);
  // Lanes 0–7 take scale 0, lanes 8–15 scale 1.
  const __m512i spread = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  for (int64_t n = n0; n < n1; ++n) {
    const int8_t* w = reinterpret_cast<const int8_t*>(W.row_ptr(n));
    const uint16_t* s = W.row_scales(n);
    __m512 acc[M];
    for (int m = 0; m < M; ++m) acc[m] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K64; k += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(w) + k + kGemvPrefetchBytes, _MM_HINT_T0);
      const __m512i q = _mm512_loadu_si512(w + k);
      const __m512i offset = _mm512_slli_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, q), 7);
      uint32_t two;
      std::memcpy(&two, s + k / kQ8Block, 4);
      const __m512 dw = _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(two)))));
      for (int m = 0; m < M; ++m) {
        const __m512i u = _mm512_loadu_si512(xq.u.data() + m * K64 + k);
        const __m512i dot = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), u, q), offset);
        const __m512 scale = _mm512_mul_ps(dw, _mm512_loadu_ps(xq.d.data() + (m * (K64 / 64) + k / 64) * 16));
        acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc[m]);
      }
    }
    float out[M];
    for (int m = 0; m < M; ++m) out[m] = _mm512_reduce_add_ps(acc[m]);
    for (int64_t k = K64; k < K; ++k) {
      const float wv = static_cast<float>(w[k]) * _cvtsh_ss(s[k / kQ8Block]);
      for (int m = 0; m < M; ++m) out[m] += wv * x[m * K + k];
    }
    const float b = bias ? bias[n] : 0.f;
    for (int m = 0; m < M; ++m) y[m * N + n] = out[m] + b;
  }
}

}  // namespace

void gemv_avx512_q8_vnni(const float* x, int64_t M, const Weight& W, const float* bias, float* y, int threads) {
  const int64_t K = W.cols, N = W.rows, K64 = K / 64 * 64;
  QuantizedRows xq;  // shared by the threads below (M·K bytes: small)
  quantize_rows_q8(x, M, K, K64, xq);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t n0 = N * t / nt, n1 = N * (t + 1) / nt;
    switch (M) {
      case 1: rows_q8_vnni<1>(x, xq, W, bias, y, n0, n1); break;
      case 2: rows_q8_vnni<2>(x, xq, W, bias, y, n0, n1); break;
      case 3: rows_q8_vnni<3>(x, xq, W, bias, y, n0, n1); break;
      case 4: rows_q8_vnni<4>(x, xq, W, bias, y, n0, n1); break;
      case 5: rows_q8_vnni<5>(x, xq, W, bias, y, n0, n1); break;
      case 6: rows_q8_vnni<6>(x, xq, W, bias, y, n0, n1); break;
      case 7: rows_q8_vnni<7>(x, xq, W, bias, y, n0, n1); break;
      default: rows_q8_vnni<8>(x, xq, W, bias, y, n0, n1); break;
    }
  }
}

void gemm_avx512(const float* x, int64_t M, const Weight& W, const float* bias, float* y, int threads) {
  gemm_blocked<Avx512>(x, M, W, bias, y, threads);
}

void gemv_avx512(const float* x, int64_t M, const Weight& W, const float* bias, float* y, int threads) {
  gemv_banded<Avx512>(x, M, W, bias, y, threads);
}

}  // namespace mmn::gemm_detail
