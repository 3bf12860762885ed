// A 16×16 transpose of 32-bit elements in zmm registers, shared by the AVX-512
// packers (fp32 values in gemm_avx512.cpp, bf16 pairs in gemm_avx512bf16.cpp).
// Include only from translation units compiled with -mavx512f. Internal
// linkage (static): units built with different -m flags must not share one
// out-of-line copy, or the linker could hand the exact path a copy compiled
// with instructions its CPU lacks.
#pragma once
#include <immintrin.h>

namespace mmn::gemm_detail {

// In-register transpose of a 16×16 fp32 block: r[i] holds row i, afterwards column i.
// Pairs of rows interleave (unpack), then pairs of pairs (as 64-bit), then the
// 128-bit lanes are gathered in two rounds of shuffle_f32x4.
static inline void transpose16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int a = 0; a < 8; ++a) {
    t[2 * a] = _mm512_unpacklo_ps(r[2 * a], r[2 * a + 1]);
    t[2 * a + 1] = _mm512_unpackhi_ps(r[2 * a], r[2 * a + 1]);
  }
  // u[4g + c], lane L: column 4L + c of rows 4g..4g+3.
  for (int g = 0; g < 4; ++g) {
    const __m512d lo = _mm512_castps_pd(t[4 * g]), hi = _mm512_castps_pd(t[4 * g + 1]);
    const __m512d lo2 = _mm512_castps_pd(t[4 * g + 2]), hi2 = _mm512_castps_pd(t[4 * g + 3]);
    u[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo, lo2));
    u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo, lo2));
    u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(hi, hi2));
    u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(hi, hi2));
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 v = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88), w = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xdd);
    const __m512 v2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88),
                 w2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xdd);
    r[c] = _mm512_shuffle_f32x4(v, v2, 0x88);
    r[8 + c] = _mm512_shuffle_f32x4(v, v2, 0xdd);
    r[4 + c] = _mm512_shuffle_f32x4(w, w2, 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(w, w2, 0xdd);
  }
}

}  // namespace mmn::gemm_detail
