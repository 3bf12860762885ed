// Building blocks shared by every family: linear layers with optional bias,
// LayerNorm weights, and the pre-LN ViT encoder layer (CLIP, EVA, …). Their
// tensors are named and bound by layout walks (layout.h).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "tensor/weight.h"

namespace mmn {

// Bounds on the sizes a config may declare, checked before anything is sized
// from them (a hostile config must not make us allocate before the checkpoint
// is consulted): far above any released model.
constexpr int64_t kMaxLayers = 4096;         // per stack
constexpr int64_t kMaxWidth = 1 << 20;       // hidden / intermediate sizes
constexpr int64_t kMaxHeads = 4096;
constexpr int64_t kMaxVocabulary = 1 << 24;  // the tokenizers' id bound

enum class Activation { QuickGelu, GeluErf, Silu };
// Parses a config's hidden_act ("quick_gelu", "gelu", "silu"); throws naming the file.
Activation parse_activation(const std::string& name, const std::string& where);
const char* activation_name(Activation a);  // the config spelling parse_activation reads
void apply_activation(Activation a, float* x, int64_t n);

struct LinearW {
  Weight w;
  std::vector<float> b;  // empty: no bias
  void operator()(const float* x, int64_t M, float* y) const;
  int64_t out() const { return w.rows; }
  int64_t in() const { return w.cols; }
};

struct NormW {
  std::vector<float> w, b;  // b empty for RMSNorm
};

enum class QkvLayout {
  Separate,        // q, k, v: three linears
  Fused,           // one linear whose outputs are q | k | v (EVA's qkv)
  FusedHeadMajor,  // one linear whose outputs are (head, {q, k, v}, hd) (mPLUG-Owl2's query_key_value)
};

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
  // Fused layouts use qkv instead of q/k/v.
  QkvLayout qkv_layout = QkvLayout::Separate;
  LinearW qkv;
  int heads = 1;
  float eps = 1e-5f;
  Activation act = Activation::QuickGelu;
  void forward(float* x, int64_t rows, VitLayerTape* tape = nullptr) const;
};

// Slices rows [r0, r0 + n) of a linear layer (e.g. q | k | v of a fused qkv); no copy.
LinearW slice_rows(const LinearW& fused, int64_t r0, int64_t n);

}  // namespace mmn
