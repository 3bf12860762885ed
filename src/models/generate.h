// Greedy generation with the KV cache on; capture sinks see every prefill row
// and every decode step.
#pragma once
#include <vector>

#include "models/vlm.h"

namespace mmn {

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

}  // namespace mmn

namespace mmn {
// The caption text of generated ids. Ids the tokenizer does not know (a
// model's vocabulary is often padded past the tokenizer's) decode to nothing.
std::string caption_text(const Tokenizer& tok, const std::vector<int32_t>& ids);
}  // namespace mmn
