#include "kernels/linear.h"

#include <cblas.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "kernels/convert.h"
#include "kernels/threading.h"

namespace mmn {

namespace {

// Rows of x handled together by the GEMV kernel: each weight row loaded once
// serves all of them.
constexpr int64_t kGemvMaxRows = 8;

template <DType D>
using ElemT = std::conditional_t<D == DType::F32, float, uint16_t>;
// How far ahead of the current position the GEMV prefetches (elements).
constexpr int64_t kPrefetchElems = 1024;

#ifdef __AVX512F__
template <DType D>
inline __m512 load16(const void* base, int64_t i) {
  if constexpr (D == DType::F32) {
    return _mm512_loadu_ps(static_cast<const float*>(base) + i);
  } else if constexpr (D == DType::BF16) {
    __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(base) + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
  } else {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(base) + i)));
  }
}
#endif

template <DType D>
inline float load1(const void* base, int64_t i) {
  if constexpr (D == DType::F32) return static_cast<const float*>(base)[i];
  else if constexpr (D == DType::BF16) return bf16_to_f32(static_cast<const uint16_t*>(base)[i]);
  else return f16_to_f32(static_cast<const uint16_t*>(base)[i]);
}

// y[m, n] for n in [n0, n1), m < M <= kGemvMaxRows.
template <DType D, int M>
void gemv_rows(const float* x, const Weight& W, const float* bias, float* y, int64_t n0, int64_t n1) {
  const int64_t K = W.cols;
  const int64_t N = W.rows;
  for (int64_t n = n0; n < n1; ++n) {
    const void* w = W.row_ptr(n);
    float out[M];
#ifdef __AVX512F__
    // Two independent accumulator chains per row hide the FMA latency.
    __m512 acc[M], acc2[M];
    for (int m = 0; m < M; ++m) acc[m] = acc2[m] = _mm512_setzero_ps();
    int64_t k = 0;
    const char* wb = static_cast<const char*>(w);
    for (; k + 32 <= K; k += 32) {
      // Hardware prefetchers stop at 4 KiB page boundaries, and mmapped
      // checkpoints live in 4 KiB pages: fetch well ahead ourselves.
      _mm_prefetch(wb + (k + kPrefetchElems) * sizeof(ElemT<D>), _MM_HINT_T0);
      __m512 w0 = load16<D>(w, k), w1 = load16<D>(w, k + 16);
      for (int m = 0; m < M; ++m) {
        acc[m] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + m * K + k), acc[m]);
        acc2[m] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + m * K + k + 16), acc2[m]);
      }
    }
    for (; k + 16 <= K; k += 16) {
      __m512 wv = load16<D>(w, k);
      for (int m = 0; m < M; ++m) acc[m] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + m * K + k), acc[m]);
    }
    for (int m = 0; m < M; ++m) out[m] = _mm512_reduce_add_ps(_mm512_add_ps(acc[m], acc2[m]));
#else
    for (int m = 0; m < M; ++m) out[m] = 0.f;
    int64_t k = 0;
#endif
    for (; k < K; ++k) {
      float wv = load1<D>(w, k);
      for (int m = 0; m < M; ++m) out[m] += wv * x[m * K + k];
    }
    const float b = bias ? bias[n] : 0.f;
    for (int m = 0; m < M; ++m) y[m * N + n] = out[m] + b;
  }
}

template <DType D>
void gemv_dispatch(const float* x, int64_t M, const Weight& W, const float* bias, float* y, int64_t n0, int64_t n1) {
  switch (M) {
    case 1: return gemv_rows<D, 1>(x, W, bias, y, n0, n1);
    case 2: return gemv_rows<D, 2>(x, W, bias, y, n0, n1);
    case 3: return gemv_rows<D, 3>(x, W, bias, y, n0, n1);
    case 4: return gemv_rows<D, 4>(x, W, bias, y, n0, n1);
    case 5: return gemv_rows<D, 5>(x, W, bias, y, n0, n1);
    case 6: return gemv_rows<D, 6>(x, W, bias, y, n0, n1);
    case 7: return gemv_rows<D, 7>(x, W, bias, y, n0, n1);
    default: return gemv_rows<D, 8>(x, W, bias, y, n0, n1);
  }
}

void gemv(const float* x, int64_t M, const Weight& W, const float* bias, float* y) {
  const int64_t N = W.rows;
  // Small weights are not worth waking other threads for.
  const int nt = W.nbytes() * static_cast<size_t>(M) < (size_t{1} << 18) ? 1 : num_threads();
  // Contiguous row blocks per thread: each streams its share of the weight once.
#pragma omp parallel num_threads(nt)
  {
    int t = omp_get_thread_num();
    int T = omp_get_num_threads();
    int64_t n0 = N * t / T, n1 = N * (t + 1) / T;
    switch (W.dtype) {
      case DType::F32: gemv_dispatch<DType::F32>(x, M, W, bias, y, n0, n1); break;
      case DType::BF16: gemv_dispatch<DType::BF16>(x, M, W, bias, y, n0, n1); break;
      default: gemv_dispatch<DType::F16>(x, M, W, bias, y, n0, n1); break;
    }
  }
}

// Rows of W per tile: about 2 MiB of fp32, at least 64 rows (narrower tiles
// starve sgemm), a multiple of 16.
int64_t tile_rows(int64_t K) { return std::max<int64_t>(64, ((1 << 19) / std::max<int64_t>(K, 1)) / 16 * 16); }

void gemm_tiled(const float* x, int64_t M, const Weight& W, const float* bias, float* y) {
  const int64_t N = W.rows, K = W.cols;
  const int64_t tn = tile_rows(K);
  const int64_t ntiles = (N + tn - 1) / tn;
  const int nt = static_cast<double>(M) * N * K < 1e6 ? 1 : num_threads();
#pragma omp parallel num_threads(nt)
  {
    thread_local std::vector<float> buf;
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < ntiles; ++t) {
      int64_t n0 = t * tn, nb = std::min(tn, N - n0);
      const float* wt;
      if (W.dtype == DType::F32) {
        wt = reinterpret_cast<const float*>(W.row_ptr(n0));
      } else {
        buf.resize(static_cast<size_t>(tn * K));
        convert_to_f32(W.dtype, W.row_ptr(n0), buf.data(), nb * K);
        wt = buf.data();
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, nb, K, 1.f, x, K, wt, K, 0.f, y + n0, N);
      if (bias)
        for (int64_t m = 0; m < M; ++m)
          for (int64_t j = 0; j < nb; ++j) y[m * N + n0 + j] += bias[n0 + j];
    }
  }
}

}  // namespace

void linear(const float* x, int64_t M, const Weight& W, const float* bias, float* y) {
  init_threads();
  if (M <= 0) return;
  if (M <= kGemvMaxRows) return gemv(x, M, W, bias, y);
  gemm_tiled(x, M, W, bias, y);
}

void matmul_xw(const float* x, int64_t M, const Weight& W, float* y) {
  init_threads();
  const int64_t D = W.rows, I = W.cols;
  // Split the output columns across threads; each streams its column band of W
  // row by row (a contiguous read) and accumulates y[:, band].
  const int nt = W.nbytes() * static_cast<size_t>(M) < (size_t{1} << 18) ? 1 : num_threads();
#pragma omp parallel num_threads(nt)
  {
    int t = omp_get_thread_num(), T = omp_get_num_threads();
    int64_t c0 = (I * t / T) / 16 * 16, c1 = t + 1 == T ? I : (I * (t + 1) / T) / 16 * 16;
    int64_t nc = c1 - c0;
    std::vector<float> row(static_cast<size_t>(std::max<int64_t>(nc, 0)));
    for (int64_t m = 0; m < M; ++m)
      for (int64_t c = c0; c < c1; ++c) y[m * I + c] = 0.f;
    if (nc > 0) {
      for (int64_t d = 0; d < D; ++d) {
        convert_to_f32(W.dtype, W.row_ptr(d) + c0 * W.elem_size(), row.data(), nc);
        for (int64_t m = 0; m < M; ++m) {
          const float a = x[m * D + d];
          float* yr = y + m * I + c0;
          for (int64_t c = 0; c < nc; ++c) yr[c] += a * row[c];
        }
      }
    }
  }
}

void sgemm_1t(bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
              const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  init_threads();
  cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta,
              C, ldc);
}

}  // namespace mmn
