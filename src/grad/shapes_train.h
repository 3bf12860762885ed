// Training a small LLaVA-1.5 (the real architecture and Hugging Face layout,
// tiny sizes) to caption the shapes world (data/shapes.h), and evaluating it
// through the ordinary inference path (load_model + generate).
//
// An output directory is always a loadable checkpoint: config.json,
// preprocessor_config.json, generation_config.json, the tokenizer files and
// model.safetensors (F32), plus train_state.safetensors (AdamW moments, step),
// train_log.jsonl, loss.svg and, after evaluation, eval.json.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mmn {

// Model sizes by preset name: "small" (default, 64×64 images with 8×8 patches
// → 64 image tokens) and "tiny" (tests: 32×32 images, 16 image tokens).
struct ShapesModelShape {
  int image = 64, patch = 8;
  int v_hidden = 128, v_inter = 512, v_layers = 4, v_heads = 4;  // CLIP ViT; feature layer −2
  int t_hidden = 128, t_inter = 352, t_layers = 4, t_heads = 4, t_kv = 2;  // LLaMA, GQA
  int vocab_pieces = 512;  // SentencePiece vocabulary bound (bytes and characters take ~300)
};
ShapesModelShape shapes_model_preset(const std::string& name);
std::vector<std::string> shapes_model_presets();

struct TrainOptions {
  std::string out;
  std::string preset = "small";
  int64_t steps = 14000;
  int batch = 16;
  float lr = 1.5e-3f;
  float min_lr_ratio = 0.05f;  // cosine floor, relative to lr
  int64_t warmup = 300;
  float weight_decay = 0.05f;
  float clip = 1.0f;           // global gradient-norm clip
  uint64_t seed = 1;           // training scene stream and initialisation
  int64_t checkpoint_every = 200;
  bool resume = false;
  bool show_progress = true;
  int64_t stop_at = -1;        // end this session after this step (checkpointed), as an interruption would
};

struct TrainSummary {
  int64_t start_step = 0, steps = 0;
  double first_loss = 0, last_loss = 0;  // mean per caption token, averaged over the first/last logged steps
  double seconds = 0;                    // training time, all sessions together
};

// Trains (or resumes) into opt.out. Throws mmn::Error for bad options or files.
TrainSummary train_shapes_llava(const TrainOptions& opt);

// Learning rate at a step: linear warm-up, then cosine decay to min_lr_ratio·lr.
float shapes_lr(const TrainOptions& opt, int64_t step);

// The scenes evaluation uses by default: a stream training never draws from.
constexpr uint64_t kShapesHeldOutSeed = 0x5A5E5EEDull;

struct EvalOptions {
  std::string model;
  int64_t n = 200;
  uint64_t seed = kShapesHeldOutSeed;
  int max_new_tokens = 48;
  std::string out_json;  // written atomically when non-empty
  bool show_progress = true;
};

struct EvalResult {
  int64_t n = 0, objects = 0;
  double exact = 0;         // share of captions equal to the ground truth
  double nouns_image = 0;   // share of captions whose shape words (in order) equal the ground truth's
  double nouns_object = 0;  // share of objects whose shape word (k-th shape word ↔ k-th object) is right
  double objects_all = 0;   // share of objects with shape, colour, size and position right
  double parsed = 0;        // share of captions that follow the grammar
  struct Example {
    std::string truth, generated;
  };
  std::vector<Example> examples;  // the first few, and every mistake up to a limit
};

EvalResult evaluate_shapes_llava(const EvalOptions& opt);

}  // namespace mmn
