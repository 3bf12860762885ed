// mPLUG-Owl2 in its own checkpoint layout (MAGAer13/mplug-owl2-llama2-7b):
// CLIP-style ViT-L/14 at 448 px (head-major fused qkv, pre- and
// post-LayerNorm), the visual abstractor (learnable queries with fixed sin-cos
// position terms, SwiGLU MLP with an inner LayerNorm, vit_eos), the NQ + 1
// visual tokens spliced at <|image|>, and the modality-adaptive LLaMA-2
// (multiway norms and k/v projections for the visual rows).
#pragma once
#include <memory>

#include "models/vit.h"
#include "models/vlm.h"

namespace mmn {

struct AbstractorLayer {
  NormW norm1, normk, norm2, ffn_ln;
  LinearW q, k, v, out_proj, w1, w2, w3;
};

class MplugOwl2Model : public VisionLanguageModel {
 public:
  static std::unique_ptr<MplugOwl2Model> load(const std::string& dir, const JsonFile& config);
  // Sized from config.json; walk() then binds the tensors.
  MplugOwl2Model(const JsonFile& config, bool tie_lm_head);
  // Every tensor of the checkpoint, in checkpoint order.
  void walk(LayoutWalk& w);

  std::string family() const override { return "mplug-owl2"; }
  // "USER: <|image|>{query} ASSISTANT: {prefix}" (conversation template mplug_owl2).
  std::string prompt(const PromptText& p) const override;
  std::vector<float> encode_image(const PreprocessedImage& px, Trace* trace) const override;
  int64_t image_tokens() const override { return n_queries_ + 1; }
  int grid_side() const override { return 0; }
  PromptInputs build_inputs(const PromptText& p, const std::vector<float>& image_features,
                            Trace* trace) const override;

  static constexpr int32_t kImageTokenId = -200;  // IMAGE_TOKEN_INDEX of tokenizer_image_token

 private:
  VitTower vision_;
  int64_t n_queries_ = 0, a_hidden_ = 0, a_inter_ = 0;
  int a_heads_ = 1;
  float ffn_eps_ = 1e-6f;
  std::vector<float> query_embeds_;  // [NQ, Ha]
  std::vector<float> q_pos_, k_pos_; // [NQ, Ha], [1 + Np, Ha], computed at load
  std::vector<AbstractorLayer> alayers_;
  LinearW visual_fc_;                // [D, Ha]
  std::vector<float> vit_eos_;       // [D]
};

// MAE-style fixed sin-cos position terms, in float32 as the reference's numpy:
// row p of the 1-D table is [sin(p·ω), cos(p·ω)], ω_j = 10000^(−j/(dim/2)).
std::vector<float> sincos_1d(int64_t dim, const std::vector<float>& positions);
// [1 + g², dim]: a zero row (CLS), then per grid cell (row-major) the 1-D
// terms of its column (first half) and of its row (second half).
std::vector<float> sincos_2d_with_cls(int64_t dim, int grid);

}  // namespace mmn
