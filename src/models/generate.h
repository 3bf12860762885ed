// Greedy generation with the KV cache on; capture sinks see every prefill row
// and every decode step.
#pragma once
#include <nlohmann/json.hpp>
#include <vector>

#include "models/vlm.h"

namespace mmn {

// The most new tokens one caption may ask for: the KV cache is allocated for
// all of them up front.
constexpr int kMaxNewTokens = 8192;

// An image made ready for the language model: preprocessed, encoded and
// spliced into the prompt (what caption, find and the Python module run first).
struct ModelInput {
  PreprocessedImage image;  // the model's input image
  PromptInputs in;
  double encode_s = 0;      // preprocessing, the vision tower and the projector
};
// trace (optional) records the encoder's intermediates (caption --dump).
ModelInput prepare_input(const VisionLanguageModel& model, const ImageU8& img, const PromptText& text,
                         Trace* trace = nullptr);

struct GenerateOptions {
  int max_new_tokens = 50;
  bool stop_at_eos = true;
  bool keep_step_logits = false;      // fills GenerateResult::step_logits
  bool keep_final_norm_prefill = false;
  std::vector<CaptureSink*> sinks;
};

struct GenerateResult {
  std::vector<int32_t> generated;            // new ids (EOS included when produced)
  std::vector<std::vector<float>> step_logits;  // [T][V] logits predicting generated[j]
  std::vector<float> final_norm_prefill;     // [S, D] when asked
  int64_t prefill_tokens = 0;
  double prefill_s = 0, decode_s = 0;
  int decode_tokens = 0;
};

// Runs prefill over in.embeds then greedy decode steps. Step j's logits
// predict generated[j]; capture events of step j come from the row that
// produced them (prefill rows for j = 0, the j-th decode row otherwise).
GenerateResult generate(const VisionLanguageModel& model, const PromptInputs& in, const GenerateOptions& opt);

// A teacher-forced pass: the prompt followed by given ids (e.g. a caption),
// all rows in one batch, with the logits of every row that predicts a token
// after the prompt. It can be kept and reused: a pass whose interventions
// touch only layers ≥ l0 computes exactly the same layers < l0, so it resumes
// from a clean pass's residual stream at l0 and its keys/values below l0
// (prefix reuse).
struct ForcedPass {
  int64_t prompt_rows = 0;                 // S
  std::vector<int32_t> forced;             // F ids fed after the prompt
  KVCache cache;                           // rows S + F of every layer (room for more)
  std::vector<std::vector<float>> logits;  // [F + 1][V]: logits[j] predicts the j-th token after the prompt
  std::vector<std::vector<float>> resid;   // [L][(S + F)·D] residual entering layer l, where kept (else empty)
  int first_layer = 0;                     // the layer this pass started at
};

struct ForcedOptions {
  std::vector<CaptureSink*> sinks;  // see every computed row (layers ≥ first_layer), all labelled step 0
  std::vector<int> keep_resid;      // layers whose entering residual to keep for later reuse
  const ForcedPass* reuse = nullptr;  // a pass over the same prompt and ids to resume from…
  int first_layer = 0;                // …at this layer (kept in reuse->resid); 0 = run everything
  int extra_capacity = 0;             // KV room for decode steps after the forced ids
};

ForcedPass forced_pass(const VisionLanguageModel& model, const PromptInputs& in, const std::vector<int32_t>& forced,
                       const ForcedOptions& opt);

// The greedy caption continuing a forced pass: rows of the pass are reused as
// long as the greedy choice equals the forced id, then decoding goes on one
// row at a time (all layers, with the sinks) until EOS or max_new_tokens.
// Leaves p.cache at the end of the caption. Returns the generated ids.
std::vector<int32_t> greedy_from_forced(const VisionLanguageModel& model, ForcedPass& p,
                                        const std::vector<CaptureSink*>& sinks, int max_new_tokens,
                                        bool stop_at_eos = true);

}  // namespace mmn

namespace mmn {
// The caption text of generated ids. Ids the tokenizer does not know (a
// model's vocabulary is often padded past the tokenizer's) decode to nothing.
std::string caption_text(const Tokenizer& tok, const std::vector<int32_t>& ids);

// The text each generated id contributes, one string per id: the id decoded
// alone, with the word-start marker "▁" shown as the space it stands for
// (caption_text drops it only at the start of the caption). Special tokens
// (EOS, …) and ids the tokenizer does not know give "", as in caption_text.
// For a caption of ordinary pieces, caption_text(ids) is the concatenation
// with its first leading space removed (and, for tokenizers that clean up
// spaces, " ." → "." and the like applied).
std::vector<std::string> caption_pieces(const Tokenizer& tok, const std::vector<int32_t>& ids);

// What `caption --json` prints: {"prompt_ids", "generated_ids", "caption",
// "timings": {"load_s", "image_encode_s", "prefill_s", "prefill_tokens",
// "decode_s", "decode_tokens"}}.
nlohmann::json caption_json(const Tokenizer& tok, const ModelInput& input, const GenerateResult& gen, double load_s);
}  // namespace mmn
