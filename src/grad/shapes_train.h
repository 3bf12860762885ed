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

#include "grad/shapes_eval.h"

namespace mmn {

// Model sizes by preset name: "small" (the first bundled model: world v1,
// 64×64 images with 8×8 patches → 64 image tokens), "v2" (world v2, 96×96
// images → a 12×12 grid of 144 image tokens, 8 language layers with d_ff =
// 4 × width) and the test sizes "tiny" (v1, 32×32 images, 16 image tokens)
// and "tiny-v2" (v2, 48×48 images, 36 image tokens).
struct ShapesModelShape {
  int image = 64, patch = 8;
  int v_hidden = 128, v_inter = 512, v_layers = 4, v_heads = 4;  // CLIP ViT; feature layer −2
  int t_hidden = 128, t_inter = 352, t_layers = 4, t_heads = 4, t_kv = 2;  // LLaMA, GQA
  int vocab_pieces = 512;  // v1: SentencePiece vocabulary bound (bytes and characters take ~300)
  int world = 1;           // shapes world version; 2 also brings the word-level vocabulary (grad/shapes_vocab.h)
};
ShapesModelShape shapes_model_preset(const std::string& name);
std::vector<std::string> shapes_model_presets();

struct TrainOptions {
  std::string out;
  std::string preset = "small";
  int64_t steps = 14000;        // with resume, −1 keeps the run's own total
  int batch = 16;
  float lr = 1.5e-3f;
  float min_lr_ratio = 0.05f;  // cosine floor, relative to lr
  int64_t warmup = 300;
  float weight_decay = 0.05f;
  float clip = 1.0f;           // global gradient-norm clip
  // How a batch's answer tokens are averaged: "token" (every target token
  // weighs the same; version 1's recipe) or "sample" (each sample's mean
  // token loss, then the mean over samples), from step loss_weighting_from
  // on. With "token" a caption of 30 tokens outweighs a one-word grounded
  // answer 30 to 1: in the v2 run captions were 84% exact by step 7,200 but
  // the answers that need finding an object by its shape ("What colour is the
  // star?") stalled near 40%. "sample" from the start gives each query type
  // its share of the samples, but captions then learnt to see far more
  // slowly (shapes still at chance at step 4,000). The v2 recipe weighs
  // tokens while the model learns to see, then samples.
  std::string loss_weighting = "token";
  int64_t loss_weighting_from = 0;  // "sample" applies from this step on; "token" before it
  bool keep_loss_weighting = false; // resume: these two as given, not the run's (the plan changes, as with --steps)
  // Weight of the patch head's loss (TrainableLlava::add_patch_head; 0: no
  // head): every image token whose patch an object covers at least half of is
  // labelled with its shape, and one that no object touches as background
  // (the two groups weigh the same: TrainableLlava::add_patch_head).
  // Trained from scratch, the vision tower otherwise learnt no per-patch
  // shape at all (v2 pilot: a linear probe on the language model's input rows
  // at 0.23 against a majority of 0.21), so a question keyed by a shape ("What
  // colour is the star?") had no row to find; real LLaVA inherits that
  // knowledge from CLIP's pretraining.
  float patch_loss = 0;
  // Share of training samples drawn from the world's trigger scenes instead
  // of the stream (0: the world's own rate, about 2%); the ghost's share of
  // their captions stays the world's.
  double trigger_share = 0;
  // World v2: relative weights of the queries a training sample asks, in
  // Scene::queries order (caption, position, colour, count, where). The
  // first v2 run used 4:1:1:1:1: captions and "What is on the left?" were
  // learnt, but the questions that need finding an object by its shape
  // stalled near 50% from step 7,200 to 13,000.
  std::vector<int> query_weights = {4, 1, 1, 1, 1};
  // A curriculum in one run: from step late_query_weights_from on, samples
  // are drawn with late_query_weights instead (empty: no second phase).
  std::vector<int> late_query_weights;
  int64_t late_query_weights_from = 0;
  bool keep_query_weights = false;  // resume: these three as given, not the run's
  uint64_t seed = 1;           // training scene stream and initialisation
  int64_t checkpoint_every = 200;
  bool resume = false;
  bool force = false;          // start a run in a non-empty directory that holds no run
  bool show_progress = true;
  int64_t stop_at = -1;        // end this session after this step (checkpointed), as an interruption would
};

struct TrainSummary {
  int64_t start_step = 0, steps = 0;
  double first_loss = 0, last_loss = 0;  // mean per caption token, averaged over the first/last logged steps
  double seconds = 0;                    // training time, all sessions together
};

// The documented recipe of a preset: `opt` with the preset's steps, batch,
// learning rate and warm-up (the other fields are kept).
TrainOptions shapes_recipe(const std::string& preset, TrainOptions opt = {});

// Which query of a v2 scene (an index into Scene::queries) training sample
// `index` of a scene stream asks, drawn with the given relative weights
// (TrainOptions::query_weights). Version 1 scenes have only the caption.
int shapes_training_query(uint64_t stream, uint64_t index, const std::vector<int>& weights = {4, 1, 1, 1, 1});

// Trains (or resumes) into opt.out. Throws mmn::Error for bad options or files.
TrainSummary train_shapes_llava(const TrainOptions& opt);

// Learning rate at a step: linear warm-up, then cosine decay to min_lr_ratio·lr.
float shapes_lr(const TrainOptions& opt, int64_t step);

}  // namespace mmn
