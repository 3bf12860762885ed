// Row-wise fp32 operators of the transformer blocks.
#pragma once
#include <cstdint>
#include <vector>

namespace mmn {

// y = w ⊙ x / sqrt(mean(x²) + eps), per row of width D. y may alias x.
void rms_norm(const float* x, const float* w, float eps, int64_t rows, int64_t D, float* y);
// y = (x − mean)/sqrt(var + eps) ⊙ w + b, per row. y may alias x.
void layer_norm(const float* x, const float* w, const float* b, float eps, int64_t rows, int64_t D, float* y);

void silu_inplace(float* x, int64_t n);
void gelu_erf_inplace(float* x, int64_t n);
void quick_gelu_inplace(float* x, int64_t n);
void add_inplace(float* y, const float* x, int64_t n);  // y += x
void mul_inplace(float* y, const float* x, int64_t n);  // y *= x

// Rotary position embedding, rotate-half convention (dim d pairs with d + hd/2),
// inv_freq[j] = theta^(−2j/hd), computed in fp32 like the reference.
struct Rope {
  int head_dim = 0;
  std::vector<float> inv_freq;
  Rope() = default;
  Rope(int head_dim, double theta);
  // x: [rows, n_heads, head_dim]; row r has absolute position pos0 + r.
  void apply(float* x, int64_t rows, int n_heads, int64_t pos0) const;
};

// Row-wise softmax of scores [Sq, Sk] in place; with causal, row i sees keys
// 0..q_pos0 + i and the rest are set to 0 (the attention probabilities).
void masked_softmax_rows(float* scores, int64_t Sq, int64_t Sk, int64_t q_pos0, bool causal);

// Multi-head attention with grouped K/V heads.
//   q: [Sq, nh, hd] (query rows at absolute positions q_pos0 + i)
//   k, v: [Sk, nkv, hd] (key rows at positions 0..Sk−1), row stride kv_stride floats
//   out: [Sq, nh, hd]
// causal: query i sees keys with position <= q_pos0 + i. scale multiplies q·k.
void attention(const float* q, int64_t Sq, int64_t q_pos0, const float* k, const float* v, int64_t Sk,
               int64_t kv_stride, int nh, int nkv, int hd, float scale, bool causal, float* out);

}  // namespace mmn
