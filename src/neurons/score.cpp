#include "neurons/score.h"

#include <algorithm>
#include <numeric>

#include "kernels/convert.h"
#include "kernels/linear.h"
#include "util/error.h"

namespace mmn {

std::vector<std::vector<float>> token_unembed_proj(const LlamaDecoder& dec, const std::vector<int32_t>& tokens,
                                                   bool fold_norm_gain) {
  const LlamaConfig& c = dec.config();
  const int64_t D = c.hidden, I = c.intermediate, T = static_cast<int64_t>(tokens.size());
  std::vector<float> u(T * D);
  for (int64_t t = 0; t < T; ++t) {
    if (tokens[t] < 0 || tokens[t] >= dec.lm_head().rows) fail("token id ", tokens[t], " is outside the vocabulary");
    weight_row_f32(dec.lm_head(), tokens[t], 0, D, u.data() + t * D);
    if (fold_norm_gain)
      for (int64_t d = 0; d < D; ++d) u[t * D + d] *= dec.final_norm_weight()[d];
  }
  std::vector<std::vector<float>> out(T, std::vector<float>(c.n_layers * I));
  std::vector<float> y(T * I);
  for (int l = 0; l < c.n_layers; ++l) {
    matmul_xw(u.data(), T, dec.layer(l).down.w, y.data());
    for (int64_t t = 0; t < T; ++t) std::copy(y.begin() + t * I, y.begin() + (t + 1) * I, out[t].begin() + l * I);
  }
  return out;
}

std::vector<RankedNeuron> top_k(const std::vector<float>& scores, int64_t I, int64_t k) {
  const int64_t n = static_cast<int64_t>(scores.size());
  k = std::min(k, n);
  std::vector<int64_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  // Flat index order equals (layer, unit) order, so it breaks ties.
  auto better = [&](int64_t a, int64_t b) { return scores[a] > scores[b] || (scores[a] == scores[b] && a < b); };
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), better);
  std::vector<RankedNeuron> out;
  out.reserve(k);
  for (int64_t j = 0; j < k; ++j)
    out.push_back({static_cast<int>(idx[j] / I), static_cast<int>(idx[j] % I), scores[idx[j]]});
  return out;
}

std::vector<std::pair<int32_t, float>> logit_lens(const LlamaDecoder& dec, int layer, int unit, int n,
                                                  int64_t vocab_limit) {
  const LlamaConfig& c = dec.config();
  const Weight& W = dec.layer(layer).down.w;  // [D, I]
  std::vector<float> col(c.hidden);
  weight_column_f32(W, unit, col.data());  // dequantized when W is int8
  Weight U = dec.lm_head();
  U.rows = std::min<int64_t>(U.rows, vocab_limit);
  std::vector<float> logits(U.rows);
  linear(col.data(), 1, U, nullptr, logits.data());
  std::vector<int32_t> idx(logits.size());
  std::iota(idx.begin(), idx.end(), 0);
  n = static_cast<int>(std::min<int64_t>(n, U.rows));
  std::partial_sort(idx.begin(), idx.begin() + n, idx.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  std::vector<std::pair<int32_t, float>> out;
  for (int j = 0; j < n; ++j) out.emplace_back(idx[j], logits[idx[j]]);
  return out;
}

}  // namespace mmn
