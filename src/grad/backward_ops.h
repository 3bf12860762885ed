// Reverse-mode kernels for the operators of kernels/ (linear, ops). Each takes
// what its forward saw and the gradient of its output, and ACCUMULATES (+=)
// into the gradients it writes, so callers zero them once and residual
// branches simply add up. Weights may be stored in any dtype the forward reads
// (F32/F16/BF16); parameter gradients are always fp32.
#pragma once
#include <cstdint>

#include "kernels/ops.h"
#include "models/blocks.h"
#include "tensor/weight.h"

namespace mmn {

// Forward: y[M, N] = x[M, K] · Wᵀ + b, W = [N, K].
//   dx[M, K] += dy · W          (skipped when dx is null)
//   dW[N, K] += dyᵀ · x         (skipped when dW is null; x may then be null too)
//   db[N]    += Σ_m dy[m, :]    (skipped when db is null)
void linear_backward(const float* x, const float* dy, int64_t M, const Weight& W, float* dx, float* dW, float* db);

// Forward: out[i, :] = E[ids[i], :]. dE[ids[i], :] += dy[i, :] (rows with a negative id are skipped).
void embedding_backward(const int32_t* ids, int64_t n, const float* dy, int64_t D, float* dE);

// Forward: y = (x − mean)/sqrt(var + eps) ⊙ w + b per row (kernels/ops.h layer_norm).
// dx += ∂L/∂x; dw, db (nullable) += parameter gradients.
void layer_norm_backward(const float* x, const float* w, float eps, int64_t rows, int64_t D, const float* dy, float* dx,
                         float* dw, float* db);

// Forward: y = w ⊙ x / sqrt(mean(x²) + eps) per row (kernels/ops.h rms_norm).
void rms_norm_backward(const float* x, const float* w, float eps, int64_t rows, int64_t D, const float* dy, float* dx,
                       float* dw);

// RoPE is a rotation per (position, pair): its backward rotates the gradient
// back. dx: [rows, n_heads, head_dim], in place (gradient of the rotated
// tensor on entry, of the unrotated one on return).
void rope_backward(const Rope& rope, float* dx, int64_t rows, int n_heads, int64_t pos0);

// Forward: kernels/ops.h attention (same argument meaning). The probabilities
// are recomputed from q and k. dq [Sq, nh, hd] (stride nh·hd), dk and dv
// [Sk, nkv, hd] (stride kv_stride) += gradients; dout is [Sq, nh, hd].
void attention_backward(const float* q, int64_t Sq, int64_t q_pos0, const float* k, const float* v, int64_t Sk,
                        int64_t kv_stride, int nh, int nkv, int hd, float scale, bool causal, const float* dout,
                        float* dq, float* dk, float* dv);

// Elementwise activations: dx += dy ⊙ f'(pre), pre = the activation's input.
void silu_backward(const float* pre, const float* dy, float* dx, int64_t n);
void gelu_erf_backward(const float* pre, const float* dy, float* dx, int64_t n);
void quick_gelu_backward(const float* pre, const float* dy, float* dx, int64_t n);
void activation_backward(Activation a, const float* pre, const float* dy, float* dx, int64_t n);

// Forward: out = SiLU(gate) ⊙ up. dgate, dup += gradients.
void swiglu_backward(const float* gate, const float* up, const float* dy, float* dgate, float* dup, int64_t n);

// Softmax cross-entropy of logits [rows, V] against targets[rows]. Returns the
// summed loss Σ −log softmax(logits)[target] (in double); writes (not
// accumulates) dlogits = scale · (softmax − onehot) when dlogits is non-null.
double softmax_cross_entropy(const float* logits, int64_t rows, int64_t V, const int32_t* targets, float scale,
                             float* dlogits);

}  // namespace mmn
