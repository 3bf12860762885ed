// The loops every instruction set's kernels share: a banded GEMV for a few
// rows (decode) and a blocked GEMM (prefill). Included by the gemm_<isa>.cpp
// translation units, each compiled for its instruction set, and by gemm.cpp
// for the generic GEMV.
//
// GEMM: y[M, N] = x[M, K] · Wᵀ with W [N, K] row-major (a Linear's weight). In BLIS
// terms the vector dimension is N (output features, NR per micro-tile) and
// the broadcast dimension is M (tokens, MR per micro-tile):
//   for each K block of KC:        x packed into MR-row panels [KC][MR]  (all M; read from L2/L3)
//     for each N block of NB (one task per thread at a time):
//       W packed into NR-column panels [KC][NR], converted to fp32    (NB·KC·4 B: stays in L2)
//       for each x panel (MR rows, in L1):
//         for each W panel: micro-kernel C[MR, NR] += xp · wp
// Each output element is summed by one thread, over K in order, so the
// result does not depend on the thread count.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "kernels/convert.h"
#include "tensor/weight.h"

namespace mmn::gemm_detail {

// Rows of x the GEMV handles together: each weight row loaded once serves all.
constexpr int64_t kGemvMaxRows = 8;

// How far ahead of the current position in a weight row the GEMV prefetches.
// Hardware prefetchers stop at 4 KiB page boundaries, and checkpoints are
// file mappings, often in 4 KiB pages: fetching two pages ahead starts the
// next page's translation early. Measured on a 7B bf16 checkpoint mapping
// (2 threads): 8 KiB ahead streamed 10–50% more than 2 KiB ahead.
constexpr int64_t kGemvPrefetchBytes = 8192;

// GEMV: y[M, N] = x[M, K] · Wᵀ (+ bias) for M ≤ kGemvMaxRows, reading the
// stored dtype directly. Threads take contiguous bands of W's rows, so each
// streams its share of the weight once. T::template rows<D, M>(x, W, bias, y,
// n0, n1) computes the band [n0, n1) for all M rows. Int8 weights (D = I8)
// carry per-block scales (tensor/weight.h).
template <class T, DType D>
void gemv_band(const float* x, int64_t M, const Weight& W, const float* bias, float* y, int64_t n0, int64_t n1) {
  switch (M) {
    case 1: return T::template rows<D, 1>(x, W, bias, y, n0, n1);
    case 2: return T::template rows<D, 2>(x, W, bias, y, n0, n1);
    case 3: return T::template rows<D, 3>(x, W, bias, y, n0, n1);
    case 4: return T::template rows<D, 4>(x, W, bias, y, n0, n1);
    case 5: return T::template rows<D, 5>(x, W, bias, y, n0, n1);
    case 6: return T::template rows<D, 6>(x, W, bias, y, n0, n1);
    case 7: return T::template rows<D, 7>(x, W, bias, y, n0, n1);
    default: return T::template rows<D, 8>(x, W, bias, y, n0, n1);
  }
}

template <class T>
void gemv_banded(const float* x, int64_t M, const Weight& W, const float* bias, float* y, int threads) {
  const int64_t N = W.rows;
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t n0 = N * t / nt, n1 = N * (t + 1) / nt;
    switch (W.dtype) {
      case DType::F32: gemv_band<T, DType::F32>(x, M, W, bias, y, n0, n1); break;
      case DType::BF16: gemv_band<T, DType::BF16>(x, M, W, bias, y, n0, n1); break;
      case DType::I8: gemv_band<T, DType::I8>(x, M, W, bias, y, n0, n1); break;
      default: gemv_band<T, DType::F16>(x, M, W, bias, y, n0, n1); break;
    }
  }
}

constexpr int64_t kKC = 256;  // K block: an x panel is MR·KC·4 B (12 KiB at MR = 12) in L1
constexpr int64_t kNB = 256;  // N block: its packed W is NB·KC·4 B = 256 KiB in L2

// A 64-byte aligned scratch buffer that only grows (one per thread, reused).
struct Scratch {
  float* p = nullptr;
  size_t n = 0;
  ~Scratch() { std::free(p); }
  float* get(size_t count) {
    if (count > n) {
      std::free(p);
      n = (count + 15) / 16 * 16;
      p = static_cast<float*>(std::aligned_alloc(64, n * sizeof(float)));
      if (!p) throw std::bad_alloc();
    }
    return p;
  }
};

// x rows [m0, m0 + MR) × k [k0, k0 + kc) → dst[k·MR + i]; rows past M are zero.
template <int MR>
void pack_x(const float* x, int64_t M, int64_t K, int64_t m0, int64_t k0, int64_t kc, float* dst) {
  const int64_t rows = std::min<int64_t>(MR, M - m0);
  for (int64_t i = 0; i < rows; ++i) {
    const float* src = x + (m0 + i) * K + k0;
    for (int64_t k = 0; k < kc; ++k) dst[k * MR + i] = src[k];
  }
  for (int64_t i = rows; i < MR; ++i)
    for (int64_t k = 0; k < kc; ++k) dst[k * MR + i] = 0.f;
}

// Columns k ∈ [k_from, kc) of an NR-column W panel, element by element
// (what the vector packers leave: the k tail, or a panel of fewer than NR
// rows, whose missing columns are zero).
template <int NR>
void pack_w_scalar(const Weight& W, int64_t n0, int64_t rows, int64_t k0, int64_t k_from, int64_t kc, float* dst) {
  for (int64_t j = 0; j < NR; ++j) {
    const uint8_t* row = j < rows ? W.row_ptr(n0 + j) : nullptr;
    if (row && W.dtype == DType::I8)
      for (int64_t k = k_from; k < kc; ++k) dst[k * NR + j] = weight_at(W, n0 + j, k0 + k);
    else
      for (int64_t k = k_from; k < kc; ++k) dst[k * NR + j] = row ? load_f32(W.dtype, row, k0 + k) : 0.f;
  }
}

// Kernels that pack several k into one 4-byte element (bf16: a pair of k per
// 32-bit word) say so with T::kPerElem and their own T::pack_x; the packed
// depth of kc values of k is then ⌈kc / kPerElem⌉ elements.
template <class T>
constexpr int64_t k_per_elem() {
  if constexpr (requires { T::kPerElem; }) return T::kPerElem;
  else return 1;
}
template <class T>
void pack_x_panel(const float* x, int64_t M, int64_t K, int64_t m0, int64_t k0, int64_t kc, float* dst) {
  if constexpr (requires { T::pack_x(x, M, K, m0, k0, kc, dst); }) T::pack_x(x, M, K, m0, k0, kc, dst);
  else pack_x<T::MR>(x, M, K, m0, k0, kc, dst);
}

// Traits T: MR, NR; T::micro(depth, xp, wp, c, ldc, accumulate) for a full
// MR×NR tile; T::pack_w(W, n0, rows, k0, kc, dst) for one NR-column panel
// [depth][NR] (columns past `rows` zero); optionally kPerElem and pack_x (above).
template <class T>
void gemm_blocked(const float* x, int64_t M, const Weight& W, const float* bias, float* y, int threads) {
  constexpr int MR = T::MR, NR = T::NR;
  constexpr int64_t KP = k_per_elem<T>();
  static_assert(kKC % KP == 0, "K blocks must start on a packed element");
  auto depth = [](int64_t kc) { return (kc + KP - 1) / KP; };
  const int64_t N = W.rows, K = W.cols;
  if (M <= 0 || N <= 0) return;
  if (K == 0) {
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) y[m * N + n] = bias ? bias[n] : 0.f;
    return;
  }
  const int64_t panels = (M + MR - 1) / MR, kblocks = (K + kKC - 1) / kKC, nblocks = (N + kNB - 1) / kNB;
  static thread_local Scratch xs;
  float* xp = xs.get(static_cast<size_t>(panels * MR * depth(K)));
  // Slab kb starts after kb full blocks; panel p of a slab of kc columns at p·depth(kc)·MR.
  auto slab = [&](int64_t kb) { return xp + kb * depth(kKC) * panels * MR; };
  const int nt = static_cast<int>(std::min<int64_t>(threads, std::max(nblocks, panels)));
#pragma omp parallel num_threads(nt)
  {
#pragma omp for schedule(static)
    for (int64_t p = 0; p < panels; ++p)
      for (int64_t kb = 0; kb < kblocks; ++kb) {
        const int64_t k0 = kb * kKC, kc = std::min(kKC, K - k0);
        pack_x_panel<T>(x, M, K, p * MR, k0, kc, slab(kb) + p * depth(kc) * MR);
      }
    static thread_local Scratch ws;
    float* wp = ws.get(static_cast<size_t>(kNB * depth(kKC)));
    alignas(64) float tile[MR * NR];
#pragma omp for schedule(dynamic, 1)
    for (int64_t nb = 0; nb < nblocks; ++nb) {
      const int64_t n0 = nb * kNB, nw = std::min(kNB, N - n0), wpanels = (nw + NR - 1) / NR;
      for (int64_t kb = 0; kb < kblocks; ++kb) {
        const int64_t k0 = kb * kKC, kc = std::min(kKC, K - k0), kd = depth(kc);
        const bool acc = kb > 0;
        for (int64_t q = 0; q < wpanels; ++q)
          T::pack_w(W, n0 + q * NR, std::min<int64_t>(NR, nw - q * NR), k0, kc, wp + q * kd * NR);
        for (int64_t p = 0; p < panels; ++p) {
          const float* xpp = slab(kb) + p * kd * MR;
          const int64_t m0 = p * MR, mr = std::min<int64_t>(MR, M - m0);
          for (int64_t q = 0; q < wpanels; ++q) {
            const int64_t c0 = n0 + q * NR, nr = std::min<int64_t>(NR, nw - q * NR);
            float* c = y + m0 * N + c0;
            if (mr == MR && nr == NR) {
              T::micro(kd, xpp, wp + q * kd * NR, c, N, acc);
              continue;
            }
            // An edge tile: through a full-size tile, then only the valid part.
            if (acc)
              for (int64_t i = 0; i < MR; ++i)
                for (int64_t j = 0; j < NR; ++j) tile[i * NR + j] = i < mr && j < nr ? c[i * N + j] : 0.f;
            T::micro(kd, xpp, wp + q * kd * NR, tile, NR, acc);
            for (int64_t i = 0; i < mr; ++i) std::memcpy(c + i * N, tile + i * NR, static_cast<size_t>(nr) * 4);
          }
        }
      }
      if (bias)
        for (int64_t m = 0; m < M; ++m)
          for (int64_t j = 0; j < nw; ++j) y[m * N + n0 + j] += bias[n0 + j];
    }
  }
}

}  // namespace mmn::gemm_detail
