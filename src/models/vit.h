// The one ViT image encoder of every family (CLIP for LLaVA, EVA for
// InstructBLIP, mPLUG-Owl2's ViT-L): patch embedding, class token, learned
// positions, optional pre-LayerNorm, pre-LN encoder layers, post-LayerNorm.
// What differs between families is data: the config defaults of their
// transformers config class and the tensor names (one VitNames table each).
#pragma once
#include <string>
#include <vector>

#include "io/json_file.h"
#include "models/blocks.h"
#include "models/layout.h"

namespace mmn {

struct VitConfig {
  int64_t hidden = 0, intermediate = 0;
  int layers = 0, heads = 0, image_size = 0, patch = 0;
  float eps = 1e-5f;
  Activation act = Activation::QuickGelu;
  bool qkv_bias = true;  // fused qkv only (EVA's config key)
  int grid() const { return patch > 0 ? image_size / patch : 0; }
  int64_t patches() const { return static_cast<int64_t>(grid()) * grid(); }
  int64_t tokens() const { return patches() + 1; }
  // Reads a vision config object; keys it leaves out take `defaults` (the
  // family's transformers config class defaults, which real checkpoints rely on).
  static VitConfig from_json(const JsonFile& j, const VitConfig& defaults);
};

// transformers' CLIPVisionConfig, InstructBlipVisionConfig (EVA ViT-g) and
// MplugOwlVisionConfig (ViT-L/14 at 448) defaults.
VitConfig clip_vision_defaults();
VitConfig eva_vision_defaults();
VitConfig owl2_vision_defaults();

// A family's ViT tensor names, relative to the tower's prefix.
struct VitNames {
  const char* cls;        // class token
  bool cls_3d;            // stored [1, 1, D] (else [D])
  const char* patch;      // patch convolution (NAME.weight [D, 3, p, p])
  bool patch_bias;
  const char* pos;        // position table, full tensor name
  bool pos_3d;            // stored [1, T, D] (else [T, D])
  const char* pre_ln;     // nullptr: none
  const char* layer;      // layer l is under layer + "l."
  const char* ln1, *ln2;
  QkvLayout qkv;
  const char* q, *k, *v;  // Separate: the three; fused: q names the fused linear
  const char* out, *fc1, *fc2;
  const char* post_ln;
  bool post_ln_used;      // false: stored, never applied (LLaVA reads a hidden state before it)
};
extern const VitNames kClipVitNames;  // transformers CLIPVisionModel (LLaVA, both layouts)
extern const VitNames kEvaVitNames;   // InstructBlipVisionModel
extern const VitNames kOwl2VitNames;  // mPLUG-Owl2's MplugOwlVisionModel

// What a backward pass through the tower (grad/) needs; recorded only when a
// forward is handed one.
struct VitTape {
  std::vector<float> patches;        // [P, 3·p·p] patch_embedding input
  std::vector<float> embed;          // [1 + P, Dv] pre-LayerNorm input
  std::vector<VitLayerTape> layers;  // the layers that ran, in order
};

class VitTower {
 public:
  VitTower() = default;
  // Sized from the config; walk() then binds the tensors.
  VitTower(const VitConfig& cfg, const VitNames& names);
  // Every tensor of the tower under `prefix` (e.g. "vision_tower.vision_model.").
  void walk(LayoutWalk& w, const std::string& prefix);

  const VitConfig& config() const { return cfg_; }
  int64_t hidden() const { return cfg_.hidden; }
  int64_t tokens() const { return cfg_.tokens(); }

  // pixels: CHW [3, S, S]. Returns hidden state number `state` ([1 + P, Dv];
  // 0 = the encoder input after the pre-LayerNorm, i = after layer i − 1; no
  // post-LayerNorm), running only the layers it needs — unless all_states is
  // given, which receives all [L + 1, 1 + P, Dv].
  std::vector<float> forward(const float* pixels, int state, std::vector<float>* all_states,
                             VitTape* tape = nullptr) const;
  // The last hidden state with the post-LayerNorm applied (last_hidden_state).
  std::vector<float> forward_last(const float* pixels, std::vector<float>* all_states) const;

  // The parts, for backward passes (grad/).
  const Weight& patch_embedding() const { return patch_.w; }
  const std::vector<float>& patch_bias() const { return patch_.b; }  // empty: none
  const NormW& pre_layernorm() const { return pre_ln_; }
  const std::vector<float>& class_embedding() const { return cls_; }
  const std::vector<float>& position_embedding() const { return pos_; }
  const VitLayer& layer(int l) const { return layers_[l]; }

 private:
  VitConfig cfg_;
  const VitNames* names_ = nullptr;
  LinearW patch_;                 // [Dv, 3·p·p] (+ bias)
  std::vector<float> cls_, pos_;  // [Dv], [1 + P, Dv]
  NormW pre_ln_, post_ln_;        // w empty: absent
  std::vector<VitLayer> layers_;
};

// Rearranges a CHW image into patch rows [P, 3·p·p] ordered (c, ky, kx), patches row-major.
std::vector<float> image_to_patches(const float* chw, int size, int patch);

}  // namespace mmn
