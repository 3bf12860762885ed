// LLaVA in two checkpoint layouts, one model:
//  - LLaVA-1.5 in the Hugging Face LlavaForConditionalGeneration layout
//    (llava-hf/llava-1.5-7b-hf): CLIP tower inside the checkpoint, feature
//    layer and select strategy from config.json, 2-layer GELU projector;
//  - the original haotian-liu/LLaVA v1.0.2 layout (the paper's
//    liuhaotian/llava-llama-2-13b-chat-lightning-preview, `LlavaLlamaForCausalLM`
//    with `mm_vision_tower` at the top of config.json): LLaMA keys at top level,
//    the CLIP tower a separate CLIPModel checkpoint named by mm_vision_tower,
//    one linear projector, the llava_llama_2 prompt tokenized per chunk.
// Both feed the same LLaMA decoder.
#pragma once
#include <memory>

#include "models/vit.h"
#include "models/vlm.h"

namespace mmn {

// What config.json says about a LLaVA checkpoint (shared by inference and training).
struct LlavaConfig {
  VitConfig vision;
  LlamaConfig text;
  int feature_state = 0;    // index into the vision hidden states (vision_feature_layer)
  bool keep_cls = false;    // vision_feature_select_strategy "full"
  Activation projector_act = Activation::GeluErf;
  int32_t image_token_id = 32000;
  bool original_layout = false;  // haotian-liu/LLaVA v1.0.2 (one linear projector, llava_llama_2 prompt)
  int64_t image_tokens() const { return vision.patches() + (keep_cls ? 1 : 0); }
  static LlavaConfig from_json(const JsonFile& config);
  // The original layout: LLaMA keys at top level, the tower's CLIPModel config.json apart.
  static LlavaConfig from_original_json(const JsonFile& config, const JsonFile& tower_config);
};

// True for the original LLaVA layout's config.json (mm_vision_tower at the top level).
bool is_original_llava_config(const JsonFile& config);

// Where the original layout's vision tower lives: `given` (--vision-tower) when set;
// else an absolute path, <checkpoint>/<value>, <checkpoint>/../<value>, for "org/name"
// also <checkpoint>/../<name>; else a one-line error suggesting --vision-tower.
std::string resolve_vision_tower(const std::string& checkpoint_dir, const std::string& value, const std::string& given);

// Where each layout keeps its tensors (beyond the ViT and LLaMA tables).
struct LlavaNames {
  const char* tower_prefix;  // the CLIP vision model, in the checkpoint or the separate tower
  const char* projector1;    // the (first) projector linear
  const char* projector2;    // the second, after the activation; nullptr: one linear
  const LlamaNames* llama;
};
extern const LlavaNames kLlavaHfNames;        // LlavaForConditionalGeneration
extern const LlavaNames kLlavaOriginalNames;  // LlavaLlamaForCausalLM (v1.0.2) + CLIPModel tower

class LlavaModel : public VisionLanguageModel {
 public:
  static std::unique_ptr<LlavaModel> load(const std::string& dir, const JsonFile& config, const LoadOptions& opt = {});
  // Sized from the config; walk() then binds the tensors.
  LlavaModel(const LlavaConfig& cfg, bool tie_lm_head);
  // Every tensor, in checkpoint order: those of the checkpoint, and those of the
  // separate vision tower checkpoint (the original layout; for the Hugging Face
  // layout the tower is in the checkpoint and both walks are the same).
  void walk(LayoutWalk& checkpoint, LayoutWalk& tower);

  // The parts, for training (grad/).
  const LlavaConfig& config() const { return cfg_; }
  const VitTower& vision() const { return vision_; }
  const LinearW& projector1() const { return proj1_; }
  const LinearW& projector2() const { return proj2_; }

  std::string family() const override { return cfg_.original_layout ? "llava-v1" : "llava"; }
  std::string prompt(const PromptText& p) const override;
  std::vector<float> encode_image(const PreprocessedImage& px, Trace* trace) const override;
  int64_t image_tokens() const override { return cfg_.image_tokens(); }
  int grid_side() const override { return grid_; }
  PromptInputs build_inputs(const PromptText& p, const std::vector<float>& image_features,
                            Trace* trace) const override;

 private:
  LlavaConfig cfg_;
  const LlavaNames* names_;
  VitTower vision_;
  LinearW proj1_, proj2_;  // proj2_ empty in the original layout (one linear)
  SafetensorsCheckpoint tower_ck_;  // the original layout's separate tower checkpoint
  int grid_ = 0;
};

}  // namespace mmn
