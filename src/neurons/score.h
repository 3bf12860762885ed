// The paper's gradient-free contribution score (method.md §3):
//   score_{l,i}(t) = a_{l,i}(j*) · (W_down[:, i] · U[t])
// with W_downᵀ U[t] computed on the fly, one pass over each W_down for all
// target tokens at once — never the d_ff × V table.
#pragma once
#include <cstdint>
#include <vector>

#include "models/llama.h"

namespace mmn {

// proj[t][l·I + i] = W_down_l[:, i] · u_t, where u_t = U[tokens[t]] (optionally
// multiplied elementwise by the final RMSNorm weight: fold_norm_gain).
std::vector<std::vector<float>> token_unembed_proj(const LlamaDecoder& dec, const std::vector<int32_t>& tokens,
                                                   bool fold_norm_gain = false);

struct RankedNeuron {
  int layer;
  int unit;
  float score;
};

// Top-k of a flat [L·I] score array: descending score, ties by (layer, unit) ascending.
std::vector<RankedNeuron> top_k(const std::vector<float>& scores, int64_t units_per_layer, int64_t k);

// Top tokens of a neuron's value vector through the logit lens: top-n of
// U · W_down_l[:, i] over rows [0, vocab_limit).
std::vector<std::pair<int32_t, float>> logit_lens(const LlamaDecoder& dec, int layer, int unit, int n,
                                                  int64_t vocab_limit);

}  // namespace mmn
