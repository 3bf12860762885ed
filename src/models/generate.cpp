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

bool is_eos(const VisionLanguageModel& model, int32_t id) {
  return std::find(model.eos_ids().begin(), model.eos_ids().end(), id) != model.eos_ids().end();
}

// Greedy decode steps: `logits` predict the next token; each chosen token is
// appended to `generated` and, unless it ends the caption, fed back as one
// row (capture step = its index + 1). Returns the number of rows run.
int decode_greedy(const VisionLanguageModel& model, KVCache& cache, const CaptureSet& cap, std::vector<float> logits,
                  int max_new_tokens, bool stop_at_eos, std::vector<int32_t>& generated,
                  std::vector<std::vector<float>>* step_logits) {
  const LlamaDecoder& dec = model.decoder();
  const int64_t D = dec.config().hidden;
  std::vector<float> x(D), normed(D);
  int rows = 0;
  while (static_cast<int>(generated.size()) < max_new_tokens) {
    const int32_t next = argmax(logits);
    generated.push_back(next);
    if (step_logits) step_logits->push_back(logits);
    if ((is_eos(model, next) && stop_at_eos) || static_cast<int>(generated.size()) == max_new_tokens) break;
    const int step = static_cast<int>(generated.size());
    dec.embed(&next, 1, x.data());
    dec.forward(x.data(), 1, cache, step, cap);
    dec.final_norm(x.data(), 1, normed.data());
    if (cap.any(Hook::FinalNorm, -1)) cap.emit(Hook::FinalNorm, -1, step, cache.len - 1, 1, D, normed.data());
    dec.logits(normed.data(), 1, logits.data());
    ++rows;
  }
  return rows;
}
}  // namespace

ModelInput prepare_input(const VisionLanguageModel& model, const ImageU8& img, const PromptText& text, Trace* trace) {
  ModelInput r;
  auto t0 = std::chrono::steady_clock::now();
  r.image = model.preprocess(img);
  std::vector<float> feats = model.encode_image(r.image, trace);
  r.encode_s = seconds_since(t0);
  r.in = model.build_inputs(text, feats, trace);
  return r;
}

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
  r.decode_tokens = decode_greedy(model, cache, cap, logits, opt.max_new_tokens, opt.stop_at_eos, r.generated,
                                  opt.keep_step_logits ? &r.step_logits : nullptr);
  r.decode_s = seconds_since(t1);
  return r;
}

namespace {
// Keeps the residual stream entering chosen layers, for later passes to resume from.
class ResidKeeper : public CaptureSink {
 public:
  ResidKeeper(std::vector<std::vector<float>>& out, const std::vector<int>& layers, int n_layers) : out_(out) {
    want_.assign(static_cast<size_t>(n_layers), 0);
    for (int l : layers) {
      if (l < 0 || l >= n_layers) fail("internal: cannot keep the residual of layer ", l);
      want_[l] = 1;
    }
  }
  bool wants(Hook h, int layer) const override { return h == Hook::ResidPre && layer >= 0 && want_[layer]; }
  void capture(const CaptureEvent& e) override { out_[e.layer].assign(e.data, e.data + e.rows * e.width); }

 private:
  std::vector<std::vector<float>>& out_;
  std::vector<uint8_t> want_;
};
}  // namespace

ForcedPass forced_pass(const VisionLanguageModel& model, const PromptInputs& in, const std::vector<int32_t>& forced,
                       const ForcedOptions& opt) {
  const LlamaDecoder& dec = model.decoder();
  const LlamaConfig& c = dec.config();
  const int64_t D = c.hidden, V = c.vocab, S = in.seq_len, F = static_cast<int64_t>(forced.size()), R = S + F;
  const int l0 = opt.first_layer;
  ForcedPass p;
  p.prompt_rows = S;
  p.forced = forced;
  p.first_layer = l0;
  p.resid.assign(static_cast<size_t>(c.n_layers), {});
  p.cache.init(c, R + std::max(opt.extra_capacity, 0));

  std::vector<float> x;
  if (l0 == 0) {
    x.resize(static_cast<size_t>(R * D));
    std::copy(in.embeds.begin(), in.embeds.end(), x.begin());
    if (F) dec.embed(forced.data(), F, x.data() + S * D);
  } else {
    const ForcedPass* b = opt.reuse;
    if (!b || b->prompt_rows != S || b->forced != forced)
      fail("internal: prefix reuse needs a pass over the same prompt and forced ids");
    if (l0 >= c.n_layers || b->first_layer > 0 || b->resid[l0].empty())
      fail("internal: the reused pass did not keep the residual entering layer ", l0);
    x = b->resid[l0];
    for (int l = 0; l < l0; ++l) {
      std::copy(b->cache.k[l].begin(), b->cache.k[l].begin() + R * p.cache.width, p.cache.k[l].begin());
      std::copy(b->cache.v[l].begin(), b->cache.v[l].begin() + R * p.cache.width, p.cache.v[l].begin());
    }
  }
  std::vector<CaptureSink*> sinks = opt.sinks;
  ResidKeeper keeper(p.resid, opt.keep_resid, c.n_layers);
  if (!opt.keep_resid.empty()) sinks.push_back(&keeper);
  CaptureSet cap;
  cap.reset(sinks, c.n_layers);
  std::vector<uint8_t> visual;
  if (!in.visual.empty()) {
    visual.assign(static_cast<size_t>(R), 0);
    std::copy(in.visual.begin(), in.visual.end(), visual.begin());
  }
  dec.forward(x.data(), R, p.cache, 0, cap, visual.empty() ? nullptr : visual.data(), nullptr, l0);
  // Rows S−1 … R−1 predict the tokens after the prompt.
  std::vector<float> normed(static_cast<size_t>((F + 1) * D)), logits(static_cast<size_t>((F + 1) * V));
  dec.final_norm(x.data() + (S - 1) * D, F + 1, normed.data());
  if (cap.any(Hook::FinalNorm, -1)) cap.emit(Hook::FinalNorm, -1, 0, S - 1, F + 1, D, normed.data());
  dec.logits(normed.data(), F + 1, logits.data());
  for (int64_t j = 0; j <= F; ++j) p.logits.emplace_back(logits.begin() + j * V, logits.begin() + (j + 1) * V);
  return p;
}

std::vector<int32_t> greedy_from_forced(const VisionLanguageModel& model, ForcedPass& p,
                                        const std::vector<CaptureSink*>& sinks, int max_new_tokens, bool stop_at_eos) {
  const LlamaConfig& c = model.decoder().config();
  const int64_t F = static_cast<int64_t>(p.forced.size());
  std::vector<int32_t> out;
  int64_t j = 0;
  // Reuse the forced rows while the greedy choice agrees with them.
  for (; j <= F && static_cast<int>(out.size()) < max_new_tokens; ++j) {
    const int32_t next = argmax(p.logits[j]);
    if (j < F && next == p.forced[j]) {
      out.push_back(next);
      if (is_eos(model, next) && stop_at_eos) return out;
      continue;
    }
    break;
  }
  if (static_cast<int>(out.size()) >= max_new_tokens) return out;
  // Diverged (or ran past the forced ids) at step j: its logits are row S + j − 1's.
  p.cache.len = p.prompt_rows + j;
  if (p.cache.len + (max_new_tokens - static_cast<int64_t>(out.size())) > p.cache.capacity)
    fail("internal: the forced pass has no KV room for ", max_new_tokens, " new tokens");
  CaptureSet cap;
  cap.reset(sinks, c.n_layers);
  decode_greedy(model, p.cache, cap, p.logits[j], max_new_tokens, stop_at_eos, out, nullptr);
  return out;
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

std::vector<std::string> caption_pieces(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  static const std::string kSpiece = "\xe2\x96\x81";  // "▁"
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (int32_t id : ids) {
    std::string text = caption_text(tok, {id});  // "" for unknown and special ids
    std::string piece;
    try {
      piece = tok.piece(id);
    } catch (const Error&) {
      out.push_back(text);  // unknown to the tokenizer
      continue;
    }
    // decode() drops the "▁" that starts its first piece: restore it as a space
    // (a lone "▁" decodes to nothing; a special token stays empty).
    const bool word_start = piece.compare(0, kSpiece.size(), kSpiece) == 0;
    const bool special = text.empty() && !tok.decode({id}, false).empty();
    if (word_start && !special && (text.empty() || text[0] != ' ')) text = " " + text;
    out.push_back(std::move(text));
  }
  return out;
}
}  // namespace mmn

namespace mmn {
nlohmann::json caption_json(const Tokenizer& tok, const ModelInput& input, const GenerateResult& gen, double load_s) {
  nlohmann::json j;
  j["prompt_ids"] = input.in.prompt_ids;
  j["generated_ids"] = gen.generated;
  j["caption"] = caption_text(tok, gen.generated);
  j["timings"] = {{"load_s", load_s},           {"image_encode_s", input.encode_s},
                  {"prefill_s", gen.prefill_s}, {"prefill_tokens", gen.prefill_tokens},
                  {"decode_s", gen.decode_s},   {"decode_tokens", gen.decode_tokens}};
  return j;
}
}  // namespace mmn
