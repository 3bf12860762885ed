// Building blocks shared by every family: linear layers with optional bias,
// LayerNorm weights, and the pre-LN ViT encoder layer (CLIP, EVA, …).
#pragma once
#include <functional>
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

// Visits one parameter by its checkpoint name: a matrix as a Weight view (which
// the visitor may re-point, e.g. at an fp32 buffer it trains), or a vector as
// the fp32 copy a block owns (updated in place). Exactly one of the two is set.
using ParamVisitor = std::function<void(const std::string& name, Weight* matrix, std::vector<float>* vector)>;
void visit_linear(const std::string& name, LinearW& l, const ParamVisitor& f);  // NAME.weight (+ NAME.bias)
void visit_norm(const std::string& name, NormW& n, const ParamVisitor& f);      // NAME.weight (+ NAME.bias)

// The intermediates of one VitLayer forward that a backward pass (grad/) needs,
// all [rows, ·]. Recorded only when a forward is handed a tape.
struct VitLayerTape {
  std::vector<float> x, h1, q, k, v, att, x_mid, h2, pre_act, act;
};

// Pre-LN transformer encoder layer with unmasked multi-head attention:
// x += out(attn(ln1(x))); x += fc2(act(fc1(ln2(x)))).
struct VitLayer {
  NormW ln1, ln2;
  LinearW q, k, v, o, fc1, fc2;
  // Instead of q/k/v: one fused projection whose outputs are laid out head-major,
  // (head, {q, k, v}, hd), as mPLUG-Owl2's query_key_value. Unused when empty.
  LinearW qkv_head_major;
  int heads = 1;
  float eps = 1e-5f;
  Activation act = Activation::QuickGelu;
  void forward(float* x, int64_t rows, VitLayerTape* tape = nullptr) const;
};

// A ViT image encoder: patch embedding (optional bias), class token, learned
// positions, optional pre-LayerNorm, pre-LN layers, optional post-LayerNorm
// (InstructBLIP's EVA ViT, mPLUG-Owl2's ViT-L). Families fill the parts.
struct VitTower {
  int image_size = 0, patch = 0;
  float eps = 1e-6f;                // pre/post LayerNorm
  Weight patch_w;                   // [Dv, 3·p·p], (c, ky, kx)
  std::vector<float> patch_b;       // [Dv] or empty
  std::vector<float> cls, pos;      // [Dv], [1 + P, Dv]
  NormW pre_ln, post_ln;            // w empty: absent
  std::vector<VitLayer> layers;
  int64_t hidden() const { return patch_w.rows; }
  int64_t tokens() const { return 1 + static_cast<int64_t>(image_size / patch) * (image_size / patch); }
  // pixels CHW [3, S, S] → the last state after post_ln [1 + P, Dv]. all_states
  // (optional) receives [L + 1, 1 + P, Dv]: the encoder input, then each layer's output.
  std::vector<float> forward(const float* pixels, std::vector<float>* all_states) const;
};

// Slices rows [r0, r0 + n) of a linear layer (e.g. q | k | v of a fused qkv); no copy.
LinearW slice_rows(const LinearW& fused, int64_t r0, int64_t n);

}  // namespace mmn
