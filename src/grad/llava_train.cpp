#include "grad/llava_train.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "grad/backward_ops.h"
#include "grad/model_backward.h"
#include "io/json_file.h"
#include "kernels/convert.h"
#include "util/error.h"

namespace mmn {

namespace {
const char* kVisionPrefix = "vision_tower.vision_model.";
const char* kTextPrefix = "language_model.model.";
const char* kLmHead = "language_model.lm_head.weight";
const char* kProj1 = "multi_modal_projector.linear_1";
const char* kProj2 = "multi_modal_projector.linear_2";
}  // namespace

std::unique_ptr<TrainableLlava> TrainableLlava::load(const std::string& dir) {
  namespace fs = std::filesystem;
  auto m = std::unique_ptr<TrainableLlava>(new TrainableLlava());
  m->dir_ = dir;
  JsonFile config = JsonFile::load((fs::path(dir) / "config.json").string());
  if (config.get_string("model_type") != "llava") config.fail_key("model_type", "must be \"llava\" for training");
  m->cfg_ = LlavaConfig::from_json(config);
  const ClipVisionConfig& vcfg = m->cfg_.vision;
  const LlamaConfig& tcfg = m->cfg_.text;

  m->proc_ = load_image_processor_config((fs::path(dir) / "preprocessor_config.json").string());
  m->ck_ = SafetensorsCheckpoint::open(dir);
  m->vision_ = ClipVisionTower::load(m->ck_, vcfg, kVisionPrefix);
  m->proj1_ = LinearW::load(m->ck_, kProj1, tcfg.hidden, vcfg.hidden, true);
  m->proj2_ = LinearW::load(m->ck_, kProj2, tcfg.hidden, tcfg.hidden, true);
  m->dec_ = LlamaDecoder::load(m->ck_, tcfg, kTextPrefix, kLmHead);
  m->tok_ = std::make_unique<Tokenizer>(Tokenizer::load(dir));

  ParamVisitor adopt = m->store_.adopter();
  m->vision_->visit_params(kVisionPrefix, adopt);
  visit_linear(kProj1, m->proj1_, adopt);
  visit_linear(kProj2, m->proj2_, adopt);
  m->dec_->visit_params(kTextPrefix, kLmHead, adopt);
  for (const Param& p : m->store_.params()) {
    const TensorRef& t = m->ck_.get(p.name);
    if (t.numel() != p.size) fail(t.file, ": tensor ", p.name, " has ", t.numel(), " values, the model uses ", p.size);
  }
  return m;
}

struct TrainableLlava::Run {
  ClipTape vision;
  std::vector<float> selected, pre1, act1;  // projector input, linear_1 output, its activation
  PromptInputs in;
  std::vector<float> x;                     // decoder output rows [S, D]
  LlamaTape text;
};

void TrainableLlava::forward(const LlavaSample& s, Run& r) const {
  const ClipVisionConfig& vc = vision_->config();
  const int64_t Dv = vc.hidden, D = dec_->config().hidden, n = cfg_.image_tokens();
  if (static_cast<int64_t>(s.pixels.size()) != 3LL * vc.image_size * vc.image_size)
    fail("internal: a training image has ", s.pixels.size(), " values, the vision tower takes 3x", vc.image_size, "x",
         vc.image_size);
  std::vector<float> state = vision_->forward(s.pixels.data(), cfg_.feature_state, nullptr, &r.vision);
  r.selected.assign(state.begin() + (cfg_.keep_cls ? 0 : Dv), state.end());
  r.pre1.resize(n * D);
  proj1_(r.selected.data(), n, r.pre1.data());
  r.act1 = r.pre1;
  apply_activation(cfg_.projector_act, r.act1.data(), n * D);
  std::vector<float> feats(n * D);
  proj2_(r.act1.data(), n, feats.data());
  r.in = splice_image(*dec_, s.ids, cfg_.image_token_id, feats, n, dir_);
  r.x = r.in.embeds;
  KVCache cache;
  cache.init(dec_->config(), r.in.seq_len);
  dec_->forward(r.x.data(), r.in.seq_len, cache, 0, CaptureSet(), nullptr, &r.text);
}

std::vector<float> TrainableLlava::logits(const LlavaSample& s) const {
  Run r;
  forward(s, r);
  const int64_t S = r.in.seq_len;
  std::vector<float> normed(S * dec_->config().hidden), out(S * dec_->config().vocab);
  dec_->final_norm(r.x.data(), S, normed.data());
  dec_->logits(normed.data(), S, out.data());
  return out;
}

double TrainableLlava::step(const LlavaSample& s, GradSink* g, float scale, int64_t* n_targets) const {
  const LlamaConfig& c = dec_->config();
  const int64_t D = c.hidden, V = c.vocab, n = cfg_.image_tokens();
  Run r;
  forward(s, r);
  const int64_t S = r.in.seq_len, at = r.in.image_pos0;
  if (s.target_from <= at || s.target_from >= static_cast<int64_t>(s.ids.size()))
    fail("internal: the targets of a training sample must follow the image and be non-empty");
  // Merged row of ids[target_from]; rows r0 .. S−2 predict the targets.
  const int64_t m0 = s.target_from - 1 + n, r0 = m0 - 1, nt = S - m0;
  if (n_targets) *n_targets = nt;
  std::vector<int32_t> targets(r.in.merged_ids.begin() + m0, r.in.merged_ids.end());
  std::vector<float> normed(nt * D), logits(nt * V), dlogits(g ? nt * V : 0);
  dec_->final_norm(r.x.data() + r0 * D, nt, normed.data());
  dec_->logits(normed.data(), nt, logits.data());
  const double loss = softmax_cross_entropy(logits.data(), nt, V, targets.data(), scale, g ? dlogits.data() : nullptr);
  if (!g) return loss;

  // Unembedding and final norm.
  std::vector<float> dnormed(nt * D, 0.f), dx(S * D, 0.f);
  linear_backward(normed.data(), dlogits.data(), nt, dec_->lm_head(), dnormed.data(), grad_of(g, dec_->lm_head().data),
                  nullptr);
  rms_norm_backward(r.x.data() + r0 * D, dec_->final_norm_weight().data(), c.rms_eps, nt, D, dnormed.data(),
                    dx.data() + r0 * D, grad_of(g, dec_->final_norm_weight().data()));
  // Decoder layers → input embeddings.
  llama_backward(*dec_, r.text, dx.data(), g);
  if (float* gE = grad_of(g, dec_->embed_tokens().data)) {
    std::vector<int32_t> ids = r.in.merged_ids;
    for (int64_t i = 0; i < n; ++i) ids[at + i] = -1;  // image rows come from the projector
    embedding_backward(ids.data(), S, dx.data(), D, gE);
  }
  // Projector.
  const int64_t Dv = vision_->config().hidden, T = vision_->config().patches() + 1;
  const float* dfeat = dx.data() + at * D;
  std::vector<float> dact1(n * D, 0.f), dpre1(n * D, 0.f), dstate(T * Dv, 0.f);
  linear_backward(r.act1.data(), dfeat, n, proj2_.w, dact1.data(), grad_of(g, proj2_.w.data),
                  grad_of(g, proj2_.b.data()));
  activation_backward(cfg_.projector_act, r.pre1.data(), dact1.data(), dpre1.data(), n * D);
  linear_backward(r.selected.data(), dpre1.data(), n, proj1_.w, dstate.data() + (cfg_.keep_cls ? 0 : Dv),
                  grad_of(g, proj1_.w.data), grad_of(g, proj1_.b.data()));
  // Vision tower.
  clip_backward(*vision_, r.vision, cfg_.feature_state, dstate.data(), g);
  return loss;
}

void TrainableLlava::save_weights(const std::string& dir, const std::map<std::string, std::string>& metadata) const {
  namespace fs = std::filesystem;
  std::vector<TensorSpec> specs;
  for (const auto& [name, t] : ck_.tensors()) specs.push_back({name, DType::F32, t.shape});
  std::map<std::string, std::string> meta = metadata;
  meta["format"] = "pt";
  write_safetensors((fs::path(dir) / "model.safetensors").string(), specs, meta,
                    [&](const TensorSpec& spec, std::FILE* out) {
                      std::vector<float> frozen;
                      const float* data;
                      if (const Param* p = store_.find(spec.name)) {
                        data = p->value;
                      } else {
                        frozen = to_f32(ck_.get(spec.name));
                        data = frozen.data();
                      }
                      if (std::fwrite(data, 1, spec.nbytes(), out) != spec.nbytes())
                        fail(dir, ": write failed (disk full?)");
                    });
}

}  // namespace mmn
