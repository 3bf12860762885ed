#include "models/clip.h"

#include <cstring>

#include "kernels/linear.h"
#include "kernels/ops.h"
#include "util/error.h"

namespace mmn {

ClipVisionConfig ClipVisionConfig::from_json(const JsonFile& j) {
  // Defaults are transformers' CLIPVisionConfig defaults, which real
  // checkpoints' vision_config relies on for the keys it leaves out.
  ClipVisionConfig c;
  c.hidden = j.get_int("hidden_size", 768);
  c.intermediate = j.get_int("intermediate_size", 3072);
  c.layers = static_cast<int>(j.get_int("num_hidden_layers", 12));
  c.heads = static_cast<int>(j.get_int("num_attention_heads", 12));
  c.image_size = static_cast<int>(j.get_int("image_size", 224));
  c.patch = static_cast<int>(j.get_int("patch_size", 32));
  c.eps = static_cast<float>(j.get_double("layer_norm_eps", 1e-5));
  c.act = parse_activation(j.get_string("hidden_act", "quick_gelu"), j.path());
  if (c.hidden <= 0 || c.layers <= 0 || c.heads <= 0 || c.patch <= 0 || c.image_size < c.patch)
    fail(j.path(), ": vision_config sizes must be positive");
  if (c.hidden % c.heads) fail(j.path(), ": vision hidden_size is not a multiple of num_attention_heads");
  if (c.image_size % c.patch) fail(j.path(), ": vision image_size is not a multiple of patch_size");
  return c;
}

std::vector<float> image_to_patches(const float* chw, int size, int p) {
  const int g = size / p;
  const int64_t K = 3LL * p * p;
  std::vector<float> out(static_cast<size_t>(g) * g * K);
  for (int py = 0; py < g; ++py)
    for (int px = 0; px < g; ++px) {
      float* row = out.data() + (static_cast<int64_t>(py) * g + px) * K;
      for (int c = 0; c < 3; ++c)
        for (int ky = 0; ky < p; ++ky)
          std::memcpy(row + (c * p + ky) * p, chw + (static_cast<int64_t>(c) * size + py * p + ky) * size + px * p,
                      p * sizeof(float));
    }
  return out;
}

std::unique_ptr<ClipVisionTower> ClipVisionTower::load(const SafetensorsCheckpoint& ck, const ClipVisionConfig& cfg,
                                                       const std::string& prefix) {
  auto t = std::make_unique<ClipVisionTower>();
  t->cfg_ = cfg;
  const int64_t D = cfg.hidden, P = cfg.patches();
  t->patch_ = Weight::from(ck.get(prefix + "embeddings.patch_embedding.weight", {D, 3, cfg.patch, cfg.patch}));
  t->cls_ = to_f32(ck.get(prefix + "embeddings.class_embedding", {D}));
  t->pos_ = to_f32(ck.get(prefix + "embeddings.position_embedding.weight", {P + 1, D}));
  t->pre_ln_ = NormW::load(ck, prefix + "pre_layrnorm", D, true);
  for (int l = 0; l < cfg.layers; ++l) {
    const std::string p = prefix + "encoder.layers." + std::to_string(l) + ".";
    VitLayer L;
    L.ln1 = NormW::load(ck, p + "layer_norm1", D, true);
    L.ln2 = NormW::load(ck, p + "layer_norm2", D, true);
    L.q = LinearW::load(ck, p + "self_attn.q_proj", D, D, true);
    L.k = LinearW::load(ck, p + "self_attn.k_proj", D, D, true);
    L.v = LinearW::load(ck, p + "self_attn.v_proj", D, D, true);
    L.o = LinearW::load(ck, p + "self_attn.out_proj", D, D, true);
    L.fc1 = LinearW::load(ck, p + "mlp.fc1", cfg.intermediate, D, true);
    L.fc2 = LinearW::load(ck, p + "mlp.fc2", D, cfg.intermediate, true);
    L.heads = cfg.heads;
    L.eps = cfg.eps;
    L.act = cfg.act;
    t->layers_.push_back(std::move(L));
  }
  return t;
}

void ClipVisionTower::visit_params(const std::string& prefix, const ParamVisitor& f) {
  f(prefix + "embeddings.patch_embedding.weight", &patch_, nullptr);
  f(prefix + "embeddings.class_embedding", nullptr, &cls_);
  f(prefix + "embeddings.position_embedding.weight", nullptr, &pos_);
  visit_norm(prefix + "pre_layrnorm", pre_ln_, f);
  for (size_t l = 0; l < layers_.size(); ++l) {
    const std::string p = prefix + "encoder.layers." + std::to_string(l) + ".";
    VitLayer& L = layers_[l];
    visit_norm(p + "layer_norm1", L.ln1, f);
    visit_norm(p + "layer_norm2", L.ln2, f);
    visit_linear(p + "self_attn.q_proj", L.q, f);
    visit_linear(p + "self_attn.k_proj", L.k, f);
    visit_linear(p + "self_attn.v_proj", L.v, f);
    visit_linear(p + "self_attn.out_proj", L.o, f);
    visit_linear(p + "mlp.fc1", L.fc1, f);
    visit_linear(p + "mlp.fc2", L.fc2, f);
  }
}

std::vector<float> ClipVisionTower::forward(const float* pixels, int state, std::vector<float>* all_states,
                                            ClipTape* tape) const {
  const int64_t D = cfg_.hidden, P = cfg_.patches(), T = P + 1;
  std::vector<float> patches = image_to_patches(pixels, cfg_.image_size, cfg_.patch);
  std::vector<float> x(T * D);
  linear(patches.data(), P, patch_, nullptr, x.data() + D);
  std::memcpy(x.data(), cls_.data(), D * sizeof(float));
  add_inplace(x.data(), pos_.data(), T * D);
  if (tape) {
    tape->patches = std::move(patches);
    tape->embed = x;
    tape->layers.clear();
  }
  layer_norm(x.data(), pre_ln_.w.data(), pre_ln_.b.data(), cfg_.eps, T, D, x.data());
  if (all_states) {
    all_states->clear();
    all_states->insert(all_states->end(), x.begin(), x.end());
  }
  std::vector<float> selected = state == 0 ? x : std::vector<float>();
  const int n_run = all_states ? static_cast<int>(layers_.size()) : state;
  for (int l = 0; l < n_run; ++l) {
    layers_[l].forward(x.data(), T, tape ? &tape->layers.emplace_back() : nullptr);
    if (all_states) all_states->insert(all_states->end(), x.begin(), x.end());
    if (l + 1 == state) selected = x;
  }
  return selected;
}

}  // namespace mmn
