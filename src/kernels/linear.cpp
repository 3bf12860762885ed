#include "kernels/linear.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "kernels/compute.h"
#include "kernels/convert.h"
#include "kernels/gemm.h"
#include "kernels/threading.h"

namespace mmn {

void linear(const float* x, int64_t M, const Weight& W, const float* bias, float* y) {
  // Decode stays exact under --compute bf16: the GEMV is bound by reading the
  // weights, so bf16 products would buy no time, only error.
  if (M > gemv_max_rows() && compute_mode() == Compute::Bf16) return gemm_xwt_bf16(x, M, W, bias, y);
  linear_exact(x, M, W, bias, y);
}

void linear_exact(const float* x, int64_t M, const Weight& W, const float* bias, float* y) {
  init_threads();
  if (M <= 0) return;
  if (M <= gemv_max_rows()) return gemv_xwt(x, M, W, bias, y);
  gemm_xwt(x, M, W, bias, y);
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
        weight_row_f32(W, d, c0, nc, row.data());
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
