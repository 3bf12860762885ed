#include "kernels/gemm.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "kernels/convert.h"
#include "kernels/matmul_drivers.h"
#include "kernels/threading.h"
#include "util/error.h"

namespace mmn {

namespace {

// The generic GEMV: plain C++, for CPUs without AVX2.
struct Generic {
  template <DType D, int M>
  static void rows(const float* x, const Weight& W, const float* bias, float* y, int64_t n0, int64_t n1) {
    const int64_t K = W.cols, N = W.rows;
    thread_local std::vector<float> deq;  // an int8 row dequantized
    if constexpr (D == DType::I8) deq.resize(static_cast<size_t>(K));
    for (int64_t n = n0; n < n1; ++n) {
      const uint8_t* w = W.row_ptr(n);
      if constexpr (D == DType::I8) {
        weight_row_f32(W, n, 0, K, deq.data());
        w = reinterpret_cast<const uint8_t*>(deq.data());
      }
      float out[M] = {};
      for (int64_t k = 0; k < K; ++k) {
        const float wv = load_f32(D == DType::I8 ? DType::F32 : D, w, k);
        for (int m = 0; m < M; ++m) out[m] += wv * x[m * K + k];
      }
      for (int m = 0; m < M; ++m) y[m * N + n] = out[m] + (bias ? bias[n] : 0.f);
    }
  }
};

// The generic path (no AVX2): the weight converted tile by tile to fp32 and
// multiplied with OpenBLAS sgemm, one tile per thread.
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
        for (int64_t r = 0; r < nb; ++r) weight_row_f32(W, n0 + r, 0, K, buf.data() + r * K);
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

void gemm_xwt(const float* x, int64_t M, const Weight& W, const float* bias, float* y, Isa isa) {
  init_threads();
  if (!isa_supported(isa)) fail("internal: ", isa_name(isa), " kernels requested on a CPU without them");
  // Small products are not worth waking the other threads for.
  const int nt = static_cast<double>(M) * W.rows * W.cols < 1e6 ? 1 : num_threads();
  switch (isa) {
    case Isa::Avx512: return gemm_detail::gemm_avx512(x, M, W, bias, y, nt);
    case Isa::Avx2: return gemm_detail::gemm_avx2(x, M, W, bias, y, nt);
    case Isa::Generic: return gemm_tiled(x, M, W, bias, y);
  }
}

void gemm_xwt(const float* x, int64_t M, const Weight& W, const float* bias, float* y) {
  gemm_xwt(x, M, W, bias, y, active_isa());
}

bool gemm_bf16_supported() { return cpu_features().avx512_bf16 && isa_supported(Isa::Avx512); }

void gemm_xwt_bf16(const float* x, int64_t M, const Weight& W, const float* bias, float* y) {
  init_threads();
  if (!gemm_bf16_supported()) fail("internal: the bf16 GEMM requested on a CPU without AVX-512 BF16");
  const int nt = static_cast<double>(M) * W.rows * W.cols < 1e6 ? 1 : num_threads();
  gemm_detail::gemm_avx512bf16(x, M, W, bias, y, nt);
}

int64_t gemv_max_rows() { return gemm_detail::kGemvMaxRows; }

void gemv_xwt(const float* x, int64_t M, const Weight& W, const float* bias, float* y, Isa isa) {
  init_threads();
  if (!isa_supported(isa)) fail("internal: ", isa_name(isa), " kernels requested on a CPU without them");
  if (M < 1 || M > gemm_detail::kGemvMaxRows) fail("internal: GEMV of ", M, " rows");
  // Small weights are not worth waking other threads for.
  const int nt = W.nbytes() * static_cast<size_t>(M) < (size_t{1} << 18) ? 1 : num_threads();
  switch (isa) {
    case Isa::Avx512:
      // Int8 with VNNI: x quantized per block of 32 and integer dot products,
      // measured 1.25-1.7x faster than dequantize + FMA on this project's
      // machine (bench_int8; README "Int8 weights" has the agreement cost).
      if (W.dtype == DType::I8 && cpu_features().avx512_vnni)
        return gemm_detail::gemv_avx512_q8_vnni(x, M, W, bias, y, nt);
      return gemm_detail::gemv_avx512(x, M, W, bias, y, nt);
    case Isa::Avx2: return gemm_detail::gemv_avx2(x, M, W, bias, y, nt);
    case Isa::Generic: return gemm_detail::gemv_banded<Generic>(x, M, W, bias, y, nt);
  }
}

void gemv_xwt(const float* x, int64_t M, const Weight& W, const float* bias, float* y) {
  gemv_xwt(x, M, W, bias, y, active_isa());
}

}  // namespace mmn
