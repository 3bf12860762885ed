// The bf16 compute GEMM (--compute bf16): x and W rounded to bf16 (round to
// nearest even, as torch does), products by AVX-512 BF16 vdpbf16ps, fp32
// accumulation. Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512bf16
// -mfma -mf16c (GCC 12's -march=native leaves BF16 off on this project's
// CPUs); called only when CPUID reports AVX-512 BF16 (kernels/gemm.h).
//
// The blocking driver is the exact path's (kernels/matmul_drivers.h): same
// K/N blocks, one thread per output element, so results do not depend on the
// thread count. Packing differs: vdpbf16ps multiplies *pairs* along k, so x
// panels hold [depth][MR] and W panels [depth][NR] 32-bit words, each word the
// bf16 pair (k even in the low half, k + 1 in the high half; an odd K is
// padded with a zero). The driver's buffers are float-typed; the words in them
// are only ever read and written as uint32_t.
#include <immintrin.h>

#include <algorithm>

// GCC 12 warns inside its own _mm512_undefined_ps (`__m512 __Y = __Y;`,
// GCC bug 105593) wherever the transpose's unpacks are inlined.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "kernels/avx512_transpose.h"
#include "kernels/convert.h"
#include "kernels/gemm.h"
#include "kernels/matmul_drivers.h"

namespace mmn::gemm_detail {

namespace {

// Element k of a stored-dtype row as bf16 (bf16 copied; f32 and f16 rounded).
inline uint32_t bf16_at(DType d, const uint8_t* row, int64_t k) {
  if (d == DType::BF16) return reinterpret_cast<const uint16_t*>(row)[k];
  return f32_to_bf16(load_f32(d, row, k));
}

// 16 bf16 pairs (k, k + 1 … k + 30, k + 31) of a stored-dtype row, one per 32-bit lane.
inline __m512 load16_pairs(DType d, const uint8_t* row, int64_t k) {
  if (d == DType::BF16) return _mm512_castsi512_ps(_mm512_loadu_si512(reinterpret_cast<const uint16_t*>(row) + k));
  __m512 lo, hi;
  if (d == DType::F32) {
    const float* f = reinterpret_cast<const float*>(row) + k;
    lo = _mm512_loadu_ps(f);
    hi = _mm512_loadu_ps(f + 16);
  } else {
    const uint16_t* h = reinterpret_cast<const uint16_t*>(row) + k;
    lo = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h)));
    hi = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + 16)));
  }
  // Words 0–15 from `lo`, 16–31 from `hi`: consecutive k, so lane j is the pair (2j, 2j + 1).
  return _mm512_castsi512_ps(reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)));
}

struct Avx512Bf16 {
  static constexpr int MR = 12, NR = 32;
  static constexpr int64_t kPerElem = 2;

  // x rows [m0, m0 + MR) × k [k0, k0 + kc) → words dst[kp·MR + i]; rows past M and an odd k tail padded with zeros.
  static void pack_x(const float* x, int64_t M, int64_t K, int64_t m0, int64_t k0, int64_t kc, float* dst_f) {
    uint32_t* dst = reinterpret_cast<uint32_t*>(dst_f);
    const int64_t rows = std::min<int64_t>(MR, M - m0), depth = (kc + 1) / 2;
    for (int64_t i = 0; i < rows; ++i) {
      const float* src = x + (m0 + i) * K + k0;
      int64_t k = 0;
      for (; k + 32 <= kc; k += 32) {
        alignas(64) uint32_t w[16];
        const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + k + 16), _mm512_loadu_ps(src + k));
        _mm512_store_si512(w, reinterpret_cast<__m512i>(v));
        for (int j = 0; j < 16; ++j) dst[(k / 2 + j) * MR + i] = w[j];
      }
      for (; k < kc; k += 2) {
        const uint32_t lo = f32_to_bf16(src[k]), hi = k + 1 < kc ? f32_to_bf16(src[k + 1]) : 0;
        dst[(k / 2) * MR + i] = lo | hi << 16;
      }
    }
    for (int64_t i = rows; i < MR; ++i)
      for (int64_t p = 0; p < depth; ++p) dst[p * MR + i] = 0;
  }

  // W rows [n0, n0 + rows) × k [k0, k0 + kc) → words dst[kp·NR + j]: 16 rows ×
  // 16 pairs are loaded row-wise and transposed in registers (as 32-bit
  // elements); the k tail and narrow panels element by element.
  static void pack_w(const Weight& W, int64_t n0, int64_t rows, int64_t k0, int64_t kc, float* dst_f) {
    const DType d = W.dtype;
    int64_t k = 0;
    if (rows == NR) {
      for (; k + 32 <= kc; k += 32)
        for (int h = 0; h < 2; ++h) {
          __m512 r[16];
          for (int j = 0; j < 16; ++j) r[j] = load16_pairs(d, W.row_ptr(n0 + h * 16 + j), k0 + k);
          transpose16(r);
          for (int t = 0; t < 16; ++t) _mm512_store_ps(dst_f + (k / 2 + t) * NR + h * 16, r[t]);
        }
    }
    uint32_t* dst = reinterpret_cast<uint32_t*>(dst_f);
    for (int64_t j = 0; j < NR; ++j) {
      const uint8_t* row = j < rows ? W.row_ptr(n0 + j) : nullptr;
      for (int64_t kk = k; kk < kc; kk += 2) {
        const uint32_t lo = row ? bf16_at(d, row, k0 + kk) : 0;
        const uint32_t hi = row && kk + 1 < kc ? bf16_at(d, row, k0 + kk + 1) : 0;
        dst[(kk / 2) * NR + j] = lo | hi << 16;
      }
    }
  }

  // C[12, 32] (+)= Σ over `depth` k-pairs of xp · wp: per pair two weight
  // vectors (16 columns × a pair each) and one broadcast pair of x per row;
  // 24 accumulators (27 of the 32 registers), as in the fp32 kernel.
  static void micro(int64_t depth, const float* xp_f, const float* wp_f, float* c, int64_t ldc, bool acc) {
    const uint32_t* xp = reinterpret_cast<const uint32_t*>(xp_f);
    const uint32_t* wp = reinterpret_cast<const uint32_t*>(wp_f);
    __m512 c0[MR], c1[MR];
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      c0[i] = acc ? _mm512_loadu_ps(c + i * ldc) : _mm512_setzero_ps();
      c1[i] = acc ? _mm512_loadu_ps(c + i * ldc + 16) : _mm512_setzero_ps();
    }
    for (int64_t p = 0; p < depth; ++p) {
      const __m512bh b0 = reinterpret_cast<__m512bh>(_mm512_load_si512(wp));
      const __m512bh b1 = reinterpret_cast<__m512bh>(_mm512_load_si512(wp + 16));
#pragma GCC unroll 12
      for (int i = 0; i < MR; ++i) {
        // The broadcast as the last operand, where vdpbf16ps takes it straight from memory ({1to16}).
        const __m512bh a = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(xp[i])));
        c0[i] = _mm512_dpbf16_ps(c0[i], b0, a);
        c1[i] = _mm512_dpbf16_ps(c1[i], b1, a);
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
};

}  // namespace

void gemm_avx512bf16(const float* x, int64_t M, const Weight& W, const float* bias, float* y, int threads) {
  gemm_blocked<Avx512Bf16>(x, M, W, bias, y, threads);
}

}  // namespace mmn::gemm_detail
