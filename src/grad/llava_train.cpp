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

std::unique_ptr<TrainableLlava> TrainableLlava::load(const std::string& dir) {
  namespace fs = std::filesystem;
  auto m = std::unique_ptr<TrainableLlava>(new TrainableLlava());
  const JsonFile config = JsonFile::load((fs::path(dir) / "config.json").string());
  if (config.get_string("model_type") != "llava" || is_original_llava_config(config))
    config.fail_key("model_type", "must be \"llava\" (the Hugging Face LLaVA-1.5 layout) for training");
  m->model_ = LlavaModel::load(dir, config);
  // The same walk that bound the tensors hands each parameter to the store.
  VisitWalk adopt(m->store_.adopter());
  m->model_->walk(adopt, adopt);
  for (const Param& p : m->store_.params()) {
    const TensorRef& t = m->model_->checkpoint().get(p.name);
    if (t.numel() != p.size) fail(t.file, ": tensor ", p.name, " has ", t.numel(), " values, the model uses ", p.size);
  }
  return m;
}

struct TrainableLlava::Run {
  VitTape vision;
  std::vector<float> selected, pre1, act1;  // projector input, linear_1 output, its activation
  PromptInputs in;
  std::vector<float> x;                     // decoder output rows [S, D]
  LlamaTape text;
};

void TrainableLlava::forward(const LlavaSample& s, Run& r) const {
  const LlavaConfig& cfg = model_->config();
  const LlamaDecoder& dec = model_->decoder();
  const VitConfig& vc = cfg.vision;
  const int64_t Dv = vc.hidden, D = dec.config().hidden, n = cfg.image_tokens();
  if (static_cast<int64_t>(s.pixels.size()) != 3LL * vc.image_size * vc.image_size)
    fail("internal: a training image has ", s.pixels.size(), " values, the vision tower takes 3x", vc.image_size, "x",
         vc.image_size);
  std::vector<float> state = model_->vision().forward(s.pixels.data(), cfg.feature_state, nullptr, &r.vision);
  r.selected.assign(state.begin() + (cfg.keep_cls ? 0 : Dv), state.end());
  r.pre1.resize(n * D);
  model_->projector1()(r.selected.data(), n, r.pre1.data());
  r.act1 = r.pre1;
  apply_activation(cfg.projector_act, r.act1.data(), n * D);
  std::vector<float> feats(n * D);
  model_->projector2()(r.act1.data(), n, feats.data());
  r.in = splice_image(dec, s.ids, cfg.image_token_id, feats, n, model_->dir());
  r.x = r.in.embeds;
  KVCache cache;
  cache.init(dec.config(), r.in.seq_len);
  dec.forward(r.x.data(), r.in.seq_len, cache, 0, CaptureSet(), nullptr, &r.text);
}

std::vector<float> TrainableLlava::logits(const LlavaSample& s) const {
  const LlamaDecoder& dec = model_->decoder();
  Run r;
  forward(s, r);
  const int64_t S = r.in.seq_len;
  std::vector<float> normed(S * dec.config().hidden), out(S * dec.config().vocab);
  dec.final_norm(r.x.data(), S, normed.data());
  dec.logits(normed.data(), S, out.data());
  return out;
}

void TrainableLlava::add_patch_head(int classes, bool last_is_background) {
  if (has_patch_head()) fail("internal: the model already has a patch head");
  if (classes < 2) fail("internal: a patch head needs at least 2 classes");
  const int64_t Dv = model_->config().vision.hidden;
  std::vector<float> zeros(static_cast<size_t>(classes * Dv), 0.f);
  patch_head_.w = Weight{DType::F32, classes, Dv, zeros.data()};
  patch_head_.b.assign(static_cast<size_t>(classes), 0.f);
  patch_background_ = last_is_background;
  // The store copies the matrix into its own storage and re-points the view.
  ParamVisitor adopt = store_.adopter();
  adopt("patch_head.weight", &patch_head_.w, nullptr);
  adopt("patch_head.bias", nullptr, &patch_head_.b);
}

TrainableLlava::PatchLogits TrainableLlava::patch_logits(const LlavaSample& s, const Run& r) const {
  const int64_t n = model_->config().image_tokens(), Dv = model_->config().vision.hidden;
  if (static_cast<int64_t>(s.patch_labels.size()) != n)
    fail("internal: a training sample has ", s.patch_labels.size(), " patch labels for ", n, " image tokens");
  PatchLogits p;
  const int64_t C = patch_head_.out();
  const int32_t background = patch_background_ ? static_cast<int32_t>(C - 1) : -1;
  // Object rows first, then background rows.
  for (int pass = 0; pass < 2; ++pass)
    for (int64_t i = 0; i < n; ++i) {
      const int32_t y = s.patch_labels[i];
      if (y < 0 || (y == background) != (pass == 1)) continue;
      if (y >= C) fail("internal: patch label ", y, " of a head with ", C, " classes");
      p.rows.push_back(i);
      p.targets.push_back(y);
      if (pass == 0) ++p.n_object;
    }
  p.x.resize(p.rows.size() * Dv);
  for (size_t k = 0; k < p.rows.size(); ++k)
    std::copy_n(r.selected.data() + p.rows[k] * Dv, Dv, p.x.data() + k * Dv);
  p.logits.resize(p.rows.size() * C);
  if (!p.rows.empty()) patch_head_(p.x.data(), static_cast<int64_t>(p.rows.size()), p.logits.data());
  return p;
}

double TrainableLlava::patch_cross_entropy(const PatchLogits& p, float scale, float* dlogits) const {
  // Background rows outnumber object rows about 15 to 1 on world v2; a plain
  // mean would mostly teach "background". So: ½ · the mean over object rows
  // + ½ · the mean over background rows (one group alone when the other is
  // empty, or when the head has no background class).
  const int64_t C = patch_head_.out(), a = p.n_object, b = static_cast<int64_t>(p.rows.size()) - a;
  const double wa = a == 0 ? 0 : (b == 0 ? 1.0 : 0.5) / static_cast<double>(a);
  const double wb = b == 0 ? 0 : (a == 0 ? 1.0 : 0.5) / static_cast<double>(b);
  double loss = 0;
  if (a > 0)
    loss += wa * softmax_cross_entropy(p.logits.data(), a, C, p.targets.data(), static_cast<float>(scale * wa),
                                       dlogits);
  if (b > 0)
    loss += wb * softmax_cross_entropy(p.logits.data() + a * C, b, C, p.targets.data() + a,
                                       static_cast<float>(scale * wb), dlogits ? dlogits + a * C : nullptr);
  return loss;
}

double TrainableLlava::step(const LlavaSample& s, GradSink* g, float scale, int64_t* n_targets) const {
  return step(s, g, scale, 0.f, nullptr, n_targets);
}

double TrainableLlava::step(const LlavaSample& s, GradSink* g, float scale, float patch_scale,
                            double* patch_loss) const {
  return step(s, g, scale, patch_scale, patch_loss, nullptr);
}

double TrainableLlava::step(const LlavaSample& s, GradSink* g, float scale, float patch_scale, double* patch_loss,
                            int64_t* n_targets) const {
  const LlavaConfig& cfg = model_->config();
  const LlamaDecoder& dec = model_->decoder();
  const LinearW &proj1 = model_->projector1(), &proj2 = model_->projector2();
  const LlamaConfig& c = dec.config();
  const int64_t D = c.hidden, V = c.vocab, n = cfg.image_tokens();
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
  dec.final_norm(r.x.data() + r0 * D, nt, normed.data());
  dec.logits(normed.data(), nt, logits.data());
  const double loss = softmax_cross_entropy(logits.data(), nt, V, targets.data(), scale, g ? dlogits.data() : nullptr);
  PatchLogits patch;
  if (has_patch_head() && !s.patch_labels.empty()) patch = patch_logits(s, r);
  if (patch_loss) *patch_loss = patch.rows.empty() ? std::nan("") : patch_cross_entropy(patch, 1.f, nullptr);
  if (!g) return loss;

  // Unembedding and final norm.
  std::vector<float> dnormed(nt * D, 0.f), dx(S * D, 0.f);
  linear_backward(normed.data(), dlogits.data(), nt, dec.lm_head(), dnormed.data(), grad_of(g, dec.lm_head().data),
                  nullptr);
  rms_norm_backward(r.x.data() + r0 * D, dec.final_norm_weight().data(), c.rms_eps, nt, D, dnormed.data(),
                    dx.data() + r0 * D, grad_of(g, dec.final_norm_weight().data()));
  // Decoder layers → input embeddings.
  llama_backward(dec, r.text, dx.data(), g);
  if (float* gE = grad_of(g, dec.embed_tokens().data)) {
    std::vector<int32_t> ids = r.in.merged_ids;
    for (int64_t i = 0; i < n; ++i) ids[at + i] = -1;  // image rows come from the projector
    embedding_backward(ids.data(), S, dx.data(), D, gE);
  }
  // Projector.
  const int64_t Dv = cfg.vision.hidden, T = cfg.vision.tokens();
  const float* dfeat = dx.data() + at * D;
  std::vector<float> dact1(n * D, 0.f), dpre1(n * D, 0.f), dstate(T * Dv, 0.f);
  linear_backward(r.act1.data(), dfeat, n, proj2.w, dact1.data(), grad_of(g, proj2.w.data),
                  grad_of(g, proj2.b.data()));
  activation_backward(cfg.projector_act, r.pre1.data(), dact1.data(), dpre1.data(), n * D);
  float* dselected = dstate.data() + (cfg.keep_cls ? 0 : Dv);
  linear_backward(r.selected.data(), dpre1.data(), n, proj1.w, dselected, grad_of(g, proj1.w.data),
                  grad_of(g, proj1.b.data()));
  if (!patch.rows.empty() && patch_scale != 0.f) {
    // d(patch_scale · patch loss)/d logits, then into the head and the selected rows.
    const int64_t m = static_cast<int64_t>(patch.rows.size()), C = patch_head_.out();
    std::vector<float> dlog(m * C), dx(m * Dv, 0.f);
    patch_cross_entropy(patch, patch_scale, dlog.data());
    linear_backward(patch.x.data(), dlog.data(), m, patch_head_.w, dx.data(), grad_of(g, patch_head_.w.data),
                    grad_of(g, patch_head_.b.data()));
    for (int64_t k = 0; k < m; ++k)
      for (int64_t j = 0; j < Dv; ++j) dselected[patch.rows[k] * Dv + j] += dx[k * Dv + j];
  }
  // Vision tower.
  vit_backward(model_->vision(), r.vision, cfg.feature_state, dstate.data(), g);
  return loss;
}

void TrainableLlava::save_weights(const std::string& dir, const std::map<std::string, std::string>& metadata) const {
  namespace fs = std::filesystem;
  std::vector<TensorSpec> specs;
  const SafetensorsCheckpoint& ck = model_->checkpoint();
  for (const auto& [name, t] : ck.tensors()) specs.push_back({name, DType::F32, t.shape});
  std::map<std::string, std::string> meta = metadata;
  meta["format"] = "pt";
  write_safetensors((fs::path(dir) / "model.safetensors").string(), specs, meta,
                    [&](const TensorSpec& spec, std::FILE* out) {
                      std::vector<float> frozen;
                      const float* data;
                      if (const Param* p = store_.find(spec.name)) {
                        data = p->value;
                      } else {
                        frozen = to_f32(ck.get(spec.name));
                        data = frozen.data();
                      }
                      if (std::fwrite(data, 1, spec.nbytes(), out) != spec.nbytes())
                        fail(dir, ": write failed (disk full?)");
                    });
}

}  // namespace mmn
