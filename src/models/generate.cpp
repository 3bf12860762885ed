#include "models/generate.h"

#include <algorithm>
#include <chrono>

#include "util/error.h"

namespace mmn {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int32_t argmax(const std::vector<float>& v) {
  // First maximum, as torch.argmax.
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}
}  // namespace

GenerateResult generate(const VisionLanguageModel& model, const PromptInputs& in, const GenerateOptions& opt) {
  const LlamaDecoder& dec = model.decoder();
  const LlamaConfig& c = dec.config();
  const int64_t D = c.hidden;
  GenerateResult r;
  CaptureSet cap;
  cap.reset(opt.sinks, c.n_layers);
  KVCache cache;
  cache.init(c, in.seq_len + std::max(opt.max_new_tokens, 1));

  auto t0 = std::chrono::steady_clock::now();
  std::vector<float> x = in.embeds;
  dec.forward(x.data(), in.seq_len, cache, 0, cap, in.visual.data());
  std::vector<float> normed(D), logits(c.vocab);
  const bool all_norm = opt.keep_final_norm_prefill || cap.any(Hook::FinalNorm, -1);
  if (all_norm) {
    std::vector<float> all(in.seq_len * D);
    dec.final_norm(x.data(), in.seq_len, all.data());
    if (cap.any(Hook::FinalNorm, -1)) cap.emit(Hook::FinalNorm, -1, 0, 0, in.seq_len, D, all.data());
    std::copy(all.end() - D, all.end(), normed.begin());
    if (opt.keep_final_norm_prefill) r.final_norm_prefill = std::move(all);
  } else {
    dec.final_norm(x.data() + (in.seq_len - 1) * D, 1, normed.data());
  }
  dec.logits(normed.data(), 1, logits.data());
  r.prefill_tokens = in.seq_len;
  r.prefill_s = seconds_since(t0);

  auto t1 = std::chrono::steady_clock::now();
  for (int step = 0; step < opt.max_new_tokens; ++step) {
    const int32_t next = argmax(logits);
    r.generated.push_back(next);
    if (opt.keep_step_logits) r.step_logits.push_back(logits);
    const bool eos = std::find(model.eos_ids().begin(), model.eos_ids().end(), next) != model.eos_ids().end();
    if ((eos && opt.stop_at_eos) || step + 1 == opt.max_new_tokens) break;
    dec.embed(&next, 1, x.data());
    dec.forward(x.data(), 1, cache, step + 1, cap);
    dec.final_norm(x.data(), 1, normed.data());
    if (cap.any(Hook::FinalNorm, -1)) cap.emit(Hook::FinalNorm, -1, step + 1, cache.len - 1, 1, D, normed.data());
    dec.logits(normed.data(), 1, logits.data());
    ++r.decode_tokens;
  }
  r.decode_s = seconds_since(t1);
  return r;
}

}  // namespace mmn

namespace mmn {
std::string caption_text(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  std::vector<int32_t> known;
  for (int32_t id : ids) {
    if (id < 0 || id >= tok.vocab_size()) continue;
    if (id >= tok.base_vocab_size()) {
      try {
        tok.piece(id);  // a gap between the pieces and the added tokens
      } catch (const Error&) {
        continue;
      }
    }
    known.push_back(id);
  }
  return tok.decode(known);
}
}  // namespace mmn
