// CLIP vision transformer (LLaVA's vision tower): patch embedding without
// bias, class token, learned positions, pre_layrnorm, pre-LN encoder layers.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "io/json_file.h"
#include "io/safetensors.h"
#include "models/blocks.h"

namespace mmn {

struct ClipVisionConfig {
  int64_t hidden = 0, intermediate = 0;
  int layers = 0, heads = 0, image_size = 0, patch = 0;
  float eps = 1e-5f;
  Activation act = Activation::QuickGelu;
  int64_t patches() const { return static_cast<int64_t>(image_size / patch) * (image_size / patch); }
  static ClipVisionConfig from_json(const JsonFile& j);
};

// What a backward pass through the tower (grad/) needs; recorded only when a
// forward is handed one.
struct ClipTape {
  std::vector<float> patches;         // [P, 3·p·p] patch_embedding input
  std::vector<float> embed;           // [1 + P, Dv] pre_layrnorm input
  std::vector<VitLayerTape> layers;   // the layers that ran, in order
};

class ClipVisionTower {
 public:
  // prefix: e.g. "vision_tower.vision_model.".
  static std::unique_ptr<ClipVisionTower> load(const SafetensorsCheckpoint& ck, const ClipVisionConfig& cfg,
                                               const std::string& prefix);
  const ClipVisionConfig& config() const { return cfg_; }

  // pixels: CHW [3, S, S]. Returns hidden state number `state` ([1 + P, Dv];
  // 0 = pre_layrnorm output, i = after layer i − 1), running only the layers it
  // needs — unless all_states is given, which receives all [L + 1, 1 + P, Dv].
  std::vector<float> forward(const float* pixels, int state, std::vector<float>* all_states,
                             ClipTape* tape = nullptr) const;

  // The parts, for backward passes (grad/).
  const Weight& patch_embedding() const { return patch_; }
  const NormW& pre_layernorm() const { return pre_ln_; }
  const std::vector<float>& class_embedding() const { return cls_; }
  const std::vector<float>& position_embedding() const { return pos_; }
  const VitLayer& layer(int l) const { return layers_[l]; }
  // Every parameter under its checkpoint name (prefix as given to load), for code
  // that updates weights in place (training).
  void visit_params(const std::string& prefix, const ParamVisitor& f);

 private:
  ClipVisionConfig cfg_;
  Weight patch_;                 // [Dv, 3·p·p]
  std::vector<float> cls_, pos_; // [Dv], [1 + P, Dv]
  NormW pre_ln_;
  std::vector<VitLayer> layers_;
};

// Rearranges a CHW image into patch rows [P, 3·p·p] ordered (c, ky, kx), patches row-major.
std::vector<float> image_to_patches(const float* chw, int size, int patch);

}  // namespace mmn
