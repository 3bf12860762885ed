// Matrix products against stored-dtype weights, accumulating in fp32.
//  - few rows (decode): a streaming GEMV that reads bf16/f16/f32 directly;
//  - many rows (prefill, vision): the blocked GEMM that converts the weight to
//    fp32 while packing it.
// Both are kernels/gemm.h, for the instruction set the CPU reports.
#pragma once
#include <cstdint>

#include "tensor/weight.h"

namespace mmn {

// y[M, W.rows] = x[M, W.cols] · Wᵀ (+ bias[W.rows] when non-null). x, y row-major, contiguous.
// The model's products: bf16 for many rows under Compute::Bf16 (kernels/compute.h).
void linear(const float* x, int64_t M, const Weight& W, const float* bias, float* y);
// The same, always fp32 whatever the compute mode (analysis such as the logit
// lens of neuron explanations, which is not part of the model's forward).
void linear_exact(const float* x, int64_t M, const Weight& W, const float* bias, float* y);

// y[M, W.cols] = x[M, W.rows] · W. Used to project through a weight "backwards"
// (e.g. W_downᵀ U[t] for scores).
void matmul_xw(const float* x, int64_t M, const Weight& W, float* y);

// Plain fp32 C[M,N] = alpha · A[M,K] · op(B) + beta · C, row-major with leading dims,
// B is [N,K] when trans_b, else [K,N]. Single-threaded (callers parallelise).
void sgemm_1t(bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
              const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace mmn
