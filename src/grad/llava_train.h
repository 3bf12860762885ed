// A LLaVA-1.5 checkpoint (Hugging Face layout) opened for training: the
// inference engine's own LlavaModel, whose parameters (named by its layout
// walk) a ParamStore takes over as fp32. Forward passes record tapes; backward
// passes walk them. The assembly mirrors LlavaModel::encode_image /
// build_inputs, and tests check that both give the same logits.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "grad/params.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "io/tokenizer.h"
#include "models/llama.h"
#include "models/llava.h"

namespace mmn {

// One training example: preprocessed pixels and the token ids of the prompt
// (with one image placeholder) followed by the answer; the loss covers the ids
// from `target_from` on (each predicted from the rows before it).
struct LlavaSample {
  std::vector<float> pixels;  // CHW [3, S, S]
  std::vector<int32_t> ids;
  int64_t target_from = 0;
  // Optional, for the patch head: per image token a class, or −1 (none).
  std::vector<int32_t> patch_labels;
};

class TrainableLlava {
 public:
  // Opens the checkpoint directory (config.json, preprocessor_config.json,
  // tokenizer, model.safetensors) and copies every parameter into fp32.
  static std::unique_ptr<TrainableLlava> load(const std::string& dir);

  // Forward (and, when g is non-null, backward) over one sample. Returns the
  // summed cross-entropy over its targets; gradients of scale × that sum are
  // added to g. n_targets (optional) receives the number of targets.
  double step(const LlavaSample& s, GradSink* g, float scale, int64_t* n_targets = nullptr) const;

  // A patch head: a linear classifier on the vision features the projector
  // reads (one row per image token), trained with the model as a stand-in
  // for the pretraining that gives real CLIP patches their meaning. Its
  // parameters ("patch_head.weight" [classes, vision hidden], zero-initialised,
  // and "patch_head.bias") join the store but not the checkpoint. With
  // last_is_background, class classes − 1 is the background's and the loss
  // weighs object and background rows as two equal groups. Call before
  // gradient buffers or an optimizer are laid out over the store.
  void add_patch_head(int classes, bool last_is_background = false);
  bool has_patch_head() const { return !patch_head_.b.empty(); }
  // With a patch head and labels in s, step() also adds the gradient of
  // patch_scale × (the patch loss: the mean cross-entropy over the labelled
  // image tokens, by groups with a background class) and
  // returns that loss in *patch_loss (NaN when nothing is labelled).
  double step(const LlavaSample& s, GradSink* g, float scale, float patch_scale, double* patch_loss) const;

  // Logits [rows, V] of every row of the merged sequence (tests: compare with
  // the inference path).
  std::vector<float> logits(const LlavaSample& s) const;

  // Writes model.safetensors (F32) into dir atomically: every tensor of the
  // source checkpoint, trained ones with their current values; metadata is
  // added to {"format": "pt"}.
  void save_weights(const std::string& dir, const std::map<std::string, std::string>& metadata = {}) const;

  ParamStore& params() { return store_; }
  const ParamStore& params() const { return store_; }
  const Tokenizer& tokenizer() const { return model_->tokenizer(); }
  const ImageProcessorConfig& image_processor() const { return model_->image_processor(); }
  const LlamaDecoder& decoder() const { return model_->decoder(); }
  int32_t image_token_id() const { return model_->config().image_token_id; }
  int64_t image_tokens() const { return model_->config().image_tokens(); }
  const std::string& dir() const { return model_->dir(); }

 private:
  struct Run;  // the tapes and intermediates of one forward
  double step(const LlavaSample& s, GradSink* g, float scale, float patch_scale, double* patch_loss,
              int64_t* n_targets) const;
  void forward(const LlavaSample& s, Run& r) const;

  // The labelled image tokens' vision features [rows, vision hidden], their
  // patch-head logits [rows, classes], targets and image-token indices.
  struct PatchLogits {
    std::vector<float> x, logits;
    int64_t n_object = 0;  // rows [0, n_object) are objects', the rest background
    std::vector<int32_t> targets;
    std::vector<int64_t> rows;
  };
  PatchLogits patch_logits(const LlavaSample& s, const Run& r) const;
  // The patch loss of p; adds scale × its gradient to dlogits (when non-null).
  double patch_cross_entropy(const PatchLogits& p, float scale, float* dlogits) const;

  std::unique_ptr<LlavaModel> model_;
  ParamStore store_;
  LinearW patch_head_;  // b empty: no patch head
  bool patch_background_ = false;
};

}  // namespace mmn
