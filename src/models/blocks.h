// Building blocks shared by every family: linear layers with optional bias,
// LayerNorm weights, and the pre-LN ViT encoder layer (CLIP, EVA, …).
#pragma once
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "tensor/weight.h"

namespace mmn {

enum class Activation { QuickGelu, GeluErf, Silu };
// Parses a config's hidden_act ("quick_gelu", "gelu", "silu"); throws naming the file.
Activation parse_activation(const std::string& name, const std::string& where);
void apply_activation(Activation a, float* x, int64_t n);

struct LinearW {
  Weight w;
  std::vector<float> b;  // empty: no bias
  // Loads NAME.weight [out, in] (+ NAME.bias [out] when with_bias).
  static LinearW load(const SafetensorsCheckpoint& ck, const std::string& name, int64_t out, int64_t in,
                      bool with_bias);
  void operator()(const float* x, int64_t M, float* y) const;
  int64_t out() const { return w.rows; }
  int64_t in() const { return w.cols; }
};

struct NormW {
  std::vector<float> w, b;  // b empty for RMSNorm
  static NormW load(const SafetensorsCheckpoint& ck, const std::string& name, int64_t dim, bool with_bias);
};

// Pre-LN transformer encoder layer with unmasked multi-head attention:
// x += out(attn(ln1(x))); x += fc2(act(fc1(ln2(x)))).
struct VitLayer {
  NormW ln1, ln2;
  LinearW q, k, v, o, fc1, fc2;
  int heads = 1;
  float eps = 1e-5f;
  Activation act = Activation::QuickGelu;
  void forward(float* x, int64_t rows) const;
};

// Slices rows [r0, r0 + n) of a linear layer (e.g. q | k | v of a fused qkv); no copy.
LinearW slice_rows(const LinearW& fused, int64_t r0, int64_t n);

}  // namespace mmn
