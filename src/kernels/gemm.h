// The prefill GEMM against stored-dtype weights, exact in fp32: y[M, N] =
// x[M, K] · Wᵀ (+ bias), W [N, K] in F32, BF16 or F16, accumulated in fp32.
// Own cache-blocked kernels (GotoBLAS/BLIS structure) convert the weight to
// fp32 while packing it, so there is no separate conversion pass and no
// dependence on a BLAS library's table of CPU models. One kernel family per
// instruction set, chosen at run time from CPUID (kernels/cpu_features.h).
#pragma once
#include <cstdint>

#include "kernels/cpu_features.h"
#include "tensor/weight.h"

namespace mmn {

// With `isa`'s kernels (it must be supported; Generic converts tiles and calls
// OpenBLAS sgemm). Threads: num_threads(), over blocks of output columns, so
// every output element is summed by one thread in a fixed order and results do
// not depend on the thread count.
void gemm_xwt(const float* x, int64_t M, const Weight& W, const float* bias, float* y, Isa isa);
// With the active kernel family.
void gemm_xwt(const float* x, int64_t M, const Weight& W, const float* bias, float* y);

// The same product for at most gemv_max_rows() rows (decode): a streaming
// GEMV that reads the stored dtype directly, each weight row loaded once for
// all rows; threads take contiguous bands of W's rows. Int8 weights on a CPU
// with AVX-512 VNNI take gemv_avx512_q8_vnni (x rounded to int8 per block).
void gemv_xwt(const float* x, int64_t M, const Weight& W, const float* bias, float* y, Isa isa);
void gemv_xwt(const float* x, int64_t M, const Weight& W, const float* bias, float* y);
int64_t gemv_max_rows();

// The bf16 compute GEMM (--compute bf16, kernels/compute.h): x and W rounded
// to bf16 (nearest even), AVX-512 BF16 dot products, fp32 accumulation; bias
// added in fp32. Threads and thread-count independence as gemm_xwt. Only where
// gemm_bf16_supported() (the CPU reports AVX-512 BF16 and AVX-512).
bool gemm_bf16_supported();
void gemm_xwt_bf16(const float* x, int64_t M, const Weight& W, const float* bias, float* y);

namespace gemm_detail {
// Per instruction set (translation units compiled for it; call only when
// isa_supported says so).
void gemm_avx512(const float* x, int64_t M, const Weight& W, const float* bias, float* y, int threads);
void gemm_avx2(const float* x, int64_t M, const Weight& W, const float* bias, float* y, int threads);
void gemv_avx512(const float* x, int64_t M, const Weight& W, const float* bias, float* y, int threads);
void gemm_avx512bf16(const float* x, int64_t M, const Weight& W, const float* bias, float* y, int threads);
void gemv_avx2(const float* x, int64_t M, const Weight& W, const float* bias, float* y, int threads);
// Int8 GEMV with x quantized to int8 per block of 32 and vpdpbusd dot
// products (needs AVX-512 VNNI; see gemm_avx512.cpp): what gemv_xwt runs on
// int8 weights where the CPU has VNNI (faster than gemv_avx512's dequantize +
// FMA, which is exact in fp32 against the dequantized weight; this is not).
void gemv_avx512_q8_vnni(const float* x, int64_t M, const Weight& W, const float* bias, float* y, int threads);
}  // namespace gemm_detail

}  // namespace mmn
