// LLaVA-1.5 in the Hugging Face LlavaForConditionalGeneration layout
// (llava-hf/llava-1.5-7b-hf): CLIP vision tower, feature layer and select
// strategy from config.json, 2-layer GELU projector, LLaMA decoder.
#pragma once
#include <memory>

#include "models/clip.h"
#include "models/vlm.h"

namespace mmn {

// What config.json says about a LLaVA checkpoint (shared by inference and training).
struct LlavaConfig {
  ClipVisionConfig vision;
  LlamaConfig text;
  int feature_state = 0;    // index into the vision hidden states (vision_feature_layer)
  bool keep_cls = false;    // vision_feature_select_strategy "full"
  Activation projector_act = Activation::GeluErf;
  int32_t image_token_id = 32000;
  int64_t image_tokens() const { return vision.patches() + (keep_cls ? 1 : 0); }
  static LlavaConfig from_json(const JsonFile& config);
};

class LlavaModel : public VisionLanguageModel {
 public:
  static std::unique_ptr<LlavaModel> load(const std::string& dir, const JsonFile& config);

  std::string family() const override { return "llava"; }
  std::string prompt(const PromptText& p) const override;
  std::vector<float> encode_image(const PreprocessedImage& px, Trace* trace) const override;
  int64_t image_tokens() const override { return cfg_.image_tokens(); }
  int grid_side() const override { return grid_; }
  PromptInputs build_inputs(const PromptText& p, const std::vector<float>& image_features,
                            Trace* trace) const override;

 private:
  std::unique_ptr<ClipVisionTower> vision_;
  LlavaConfig cfg_;
  LinearW proj1_, proj2_;
  int grid_ = 0;
};

// Splices image features into the embedded prompt at the single placeholder id.
// Shared by the families whose prompt carries one image placeholder token.
PromptInputs splice_image(const LlamaDecoder& dec, std::vector<int32_t> ids, int32_t placeholder,
                          const std::vector<float>& image_features, int64_t n_image, const std::string& what);

}  // namespace mmn
