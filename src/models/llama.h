// The LLaMA decoder (Vicuna, LLaMA-2): RMSNorm, rotate-half RoPE, grouped-query
// attention, SwiGLU MLP, KV cache. Every family's language model is this one
// decoder; mPLUG-Owl2's modality-adaptive layers are an optional second set of
// norms and k/v projections chosen per row.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "io/json_file.h"
#include "io/safetensors.h"
#include "kernels/ops.h"
#include "models/blocks.h"
#include "models/capture.h"
#include "models/layout.h"

namespace mmn {

struct LlamaConfig {
  int64_t hidden = 0, intermediate = 0, vocab = 0;
  int n_layers = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0;
  float rms_eps = 1e-6f;
  double rope_theta = 10000.0;
  int64_t max_positions = 4096;
  bool tie_word_embeddings = false;  // no lm_head tensor: unembed with embed_tokens
  // Reads a LLaMA config object (text_config of LLaVA, or the top level).
  static LlamaConfig from_json(const JsonFile& j);
};

struct LlamaLayer {
  std::vector<float> ln1, ln2;  // input_layernorm, post_attention_layernorm
  LinearW q, k, v, o, gate, up, down;
  // Modality-adaptive variant (mPLUG-Owl2): used for rows flagged visual.
  bool multiway = false;
  std::vector<float> ln1_visual, ln2_visual;
  LinearW k_visual, v_visual;
};

// The intermediates of one decoder layer's forward that a backward pass (grad/)
// needs, all [rows, ·]: q and k after RoPE, gate = gate_proj output (before
// SiLU), post = SiLU(gate) ⊙ up (down_proj input).
struct LlamaLayerTape {
  std::vector<float> x, h1, q, k, v, att, x_mid, h2, gate, up, post;
};
struct LlamaTape {
  int64_t rows = 0;
  std::vector<LlamaLayerTape> layers;
};

// Cached keys/values of one sequence: [capacity, n_kv·hd] per layer.
struct KVCache {
  int64_t len = 0, capacity = 0, width = 0;
  std::vector<std::vector<float>> k, v;
  void init(const LlamaConfig& c, int64_t capacity);
};

// Where a family keeps its LLaMA decoder's tensors.
struct LlamaNames {
  const char* prefix;   // layers, embed_tokens and norm live under it
  const char* lm_head;  // full name of the unembedding
  // mPLUG-Owl2's modality-adaptive layout: input/post_attention_layernorm and
  // k/v_proj are NAME.multiway.0 (text) and NAME.multiway.1 (visual).
  bool multiway = false;
  // Each layer stores self_attn.rotary_emb.inv_freq (transformers ≤ 4.31 saved
  // RoPE's buffer): listed, never read (RoPE is recomputed from rope_theta).
  bool rotary_buffers = false;
};
extern const LlamaNames kLlavaHfLlamaNames;  // LlavaForConditionalGeneration, InstructBLIP
extern const LlamaNames kLlamaTopLlamaNames;  // a LlamaForCausalLM at the top level (original LLaVA)
extern const LlamaNames kOwl2LlamaNames;     // MPLUGOwl2LlamaForCausalLM

class LlamaDecoder {
 public:
  // Sized from the config; walk() then binds the tensors. tie_lm_head: the
  // unembedding is embed_tokens (tie_word_embeddings and no lm_head tensor).
  LlamaDecoder(const LlamaConfig& cfg, const LlamaNames& names, bool tie_lm_head);
  // Every tensor of the decoder, in checkpoint order.
  void walk(LayoutWalk& w);

  const LlamaConfig& config() const { return cfg_; }
  LlamaLayer& layer(int l) { return layers_[l]; }
  const LlamaLayer& layer(int l) const { return layers_[l]; }
  const Weight& embed_tokens() const { return embed_; }
  const Weight& lm_head() const { return lm_head_; }
  const std::vector<float>& final_norm_weight() const { return norm_; }
  const Rope& rope() const { return rope_; }
  // Every parameter under its checkpoint name, for code that updates weights in place (training).
  void visit_params(const ParamVisitor& f) {
    VisitWalk w(f);
    walk(w);
  }

  // Embedding rows for token ids → out [n, D]. Throws on ids outside the vocabulary.
  void embed(const int32_t* ids, int64_t n, float* out) const;

  // Runs all layers over rows x [rows, D] (in place → last layer's residual
  // output) at positions cache.len .. cache.len + rows − 1, appending to the
  // cache. visual: optional per-row flags for multiway layers. step labels the
  // capture events (0 = prefill). tape (optional, for backward passes) records
  // the intermediates of a forward over a whole sequence (cache.len == 0).
  // first_layer > 0 resumes a pass (prefix reuse): x then holds the residual
  // stream entering layer first_layer, the cache already holds these rows'
  // keys and values for the layers below it, and only layers ≥ first_layer run
  // (and emit hook events).
  void forward(float* x, int64_t rows, KVCache& cache, int step, const CaptureSet& cap,
               const uint8_t* visual = nullptr, LlamaTape* tape = nullptr, int first_layer = 0) const;

  // Final RMSNorm of rows (y may alias x).
  void final_norm(const float* x, int64_t rows, float* y) const;
  // logits [rows, vocab] = lm_head · y for normalised rows y.
  void logits(const float* y, int64_t rows, float* out) const;

 private:
  LlamaConfig cfg_;
  const LlamaNames* names_;
  bool tie_lm_head_ = false;
  Weight embed_, lm_head_;
  std::vector<float> norm_;
  std::vector<LlamaLayer> layers_;
  Rope rope_;
};

}  // namespace mmn
