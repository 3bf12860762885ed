#include "models/vit.h"

#include <cstring>

#include "kernels/linear.h"
#include "kernels/ops.h"
#include "util/error.h"

namespace mmn {

VitConfig VitConfig::from_json(const JsonFile& j, const VitConfig& d) {
  VitConfig c;
  c.hidden = j.get_int("hidden_size", d.hidden);
  c.intermediate = j.get_int("intermediate_size", d.intermediate);
  c.layers = static_cast<int>(j.get_int("num_hidden_layers", d.layers));
  c.heads = static_cast<int>(j.get_int("num_attention_heads", d.heads));
  c.image_size = static_cast<int>(j.get_int("image_size", d.image_size));
  c.patch = static_cast<int>(j.get_int("patch_size", d.patch));
  c.eps = static_cast<float>(j.get_double("layer_norm_eps", d.eps));
  c.act = parse_activation(j.get_string("hidden_act", activation_name(d.act)), j.path());
  c.qkv_bias = j.get_bool("qkv_bias", d.qkv_bias);
  if (c.hidden <= 0 || c.intermediate <= 0 || c.layers <= 0 || c.heads <= 0 || c.patch <= 0 || c.image_size < c.patch)
    fail(j.path(), ": vision config sizes must be positive");
  if (c.hidden > kMaxWidth || c.intermediate > kMaxWidth || c.layers > kMaxLayers || c.heads > kMaxHeads ||
      c.image_size > 4096)
    fail(j.path(), ": vision config sizes are implausibly large (limits: ", kMaxLayers, " layers, width ", kMaxWidth,
         ", ", kMaxHeads, " heads, image_size 4096)");
  if (c.hidden % c.heads) fail(j.path(), ": vision hidden_size is not a multiple of num_attention_heads");
  if (c.image_size % c.patch) fail(j.path(), ": vision image_size is not a multiple of patch_size");
  return c;
}

VitConfig clip_vision_defaults() { return {768, 3072, 12, 12, 224, 32, 1e-5f, Activation::QuickGelu, true}; }
VitConfig eva_vision_defaults() { return {1408, 6144, 39, 16, 224, 14, 1e-6f, Activation::GeluErf, true}; }
VitConfig owl2_vision_defaults() { return {1024, 4096, 24, 16, 448, 14, 1e-6f, Activation::QuickGelu, true}; }

// clang-format off
const VitNames kClipVitNames = {
    "embeddings.class_embedding", false, "embeddings.patch_embedding", false,
    "embeddings.position_embedding.weight", false, "pre_layrnorm", "encoder.layers.",
    "layer_norm1", "layer_norm2", QkvLayout::Separate, "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
    "self_attn.out_proj", "mlp.fc1", "mlp.fc2", "post_layernorm", false};
const VitNames kEvaVitNames = {
    "embeddings.class_embedding", true, "embeddings.patch_embedding", true,
    "embeddings.position_embedding", true, nullptr, "encoder.layers.",
    "layer_norm1", "layer_norm2", QkvLayout::Fused, "self_attn.qkv", nullptr, nullptr,
    "self_attn.projection", "mlp.fc1", "mlp.fc2", "post_layernorm", true};
const VitNames kOwl2VitNames = {
    "embeddings.cls_token", true, "embeddings.patch_embed", false,
    "embeddings.position_embedding", true, "embeddings.pre_layernorm", "encoder.layers.",
    "input_layernorm", "post_attention_layernorm", QkvLayout::FusedHeadMajor, "self_attn.query_key_value", nullptr,
    nullptr, "self_attn.dense", "mlp.fc1", "mlp.fc2", "post_layernorm", true};
// clang-format on

VitTower::VitTower(const VitConfig& cfg, const VitNames& names) : cfg_(cfg), names_(&names) {
  layers_.resize(cfg.layers);
  for (VitLayer& L : layers_) {
    L.heads = cfg.heads;
    L.eps = cfg.eps;
    L.act = cfg.act;
    L.qkv_layout = names.qkv;
  }
}

void VitTower::walk(LayoutWalk& w, const std::string& prefix) {
  const VitNames& n = *names_;
  const int64_t D = cfg_.hidden, T = cfg_.tokens(), p = cfg_.patch;
  auto shape = [](bool three_d, std::vector<int64_t> s) {
    if (three_d) s.insert(s.begin(), s.size() == 1 ? 2 : 1, 1);
    return s;
  };
  w.vector({prefix + n.cls, shape(n.cls_3d, {D}), TensorRole::Learned}, cls_);
  w.matrix({prefix + n.patch + ".weight", {D, 3, p, p}, TensorRole::Weight, 3 * p * p}, patch_.w);
  if (n.patch_bias) w.vector({prefix + n.patch + ".bias", {D}, TensorRole::Bias}, patch_.b);
  w.vector({prefix + n.pos, shape(n.pos_3d, {T, D}), TensorRole::Learned}, pos_);
  if (n.pre_ln) walk_norm(w, prefix + n.pre_ln, pre_ln_, D, true);
  const int depth = cfg_.layers;
  for (int l = 0; l < cfg_.layers; ++l) {
    const std::string lp = prefix + n.layer + std::to_string(l) + ".";
    VitLayer& L = layers_[l];
    walk_norm(w, lp + n.ln1, L.ln1, D, true);
    walk_norm(w, lp + n.ln2, L.ln2, D, true);
    if (n.qkv == QkvLayout::Separate) {
      walk_linear(w, lp + n.q, L.q, {D, D, true});
      walk_linear(w, lp + n.k, L.k, {D, D, true});
      walk_linear(w, lp + n.v, L.v, {D, D, true});
    } else {
      walk_linear(w, lp + n.q, L.qkv, {3 * D, D, n.qkv == QkvLayout::FusedHeadMajor || cfg_.qkv_bias});
    }
    walk_linear(w, lp + n.out, L.o, {D, D, true, true, depth});
    walk_linear(w, lp + n.fc1, L.fc1, {cfg_.intermediate, D, true});
    walk_linear(w, lp + n.fc2, L.fc2, {D, cfg_.intermediate, true, true, depth});
  }
  NormW& post = post_ln_;
  TensorDesc wt{prefix + n.post_ln + ".weight", {D}, TensorRole::Norm};
  TensorDesc bs{prefix + n.post_ln + ".bias", {D}, TensorRole::NormBias};
  wt.used = bs.used = n.post_ln_used;
  w.vector(wt, post.w);
  w.vector(bs, post.b);
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

std::vector<float> VitTower::forward(const float* pixels, int state, std::vector<float>* all_states,
                                     VitTape* tape) const {
  const int64_t D = cfg_.hidden, P = cfg_.patches(), T = P + 1;
  if (state < 0 || state > cfg_.layers) fail("internal: vision hidden state ", state, " out of range");
  std::vector<float> patches = image_to_patches(pixels, cfg_.image_size, cfg_.patch);
  std::vector<float> x(T * D);
  linear(patches.data(), P, patch_.w, patch_.b.empty() ? nullptr : patch_.b.data(), x.data() + D);
  std::memcpy(x.data(), cls_.data(), D * sizeof(float));
  add_inplace(x.data(), pos_.data(), T * D);
  if (tape) {
    tape->patches = std::move(patches);
    tape->embed = x;
    tape->layers.clear();
  }
  if (!pre_ln_.w.empty()) layer_norm(x.data(), pre_ln_.w.data(), pre_ln_.b.data(), cfg_.eps, T, D, x.data());
  if (all_states) all_states->assign(x.begin(), x.end());
  std::vector<float> selected = state == 0 ? x : std::vector<float>();
  const int n_run = all_states ? cfg_.layers : state;
  for (int l = 0; l < n_run; ++l) {
    layers_[l].forward(x.data(), T, tape ? &tape->layers.emplace_back() : nullptr);
    if (all_states) all_states->insert(all_states->end(), x.begin(), x.end());
    if (l + 1 == state) selected = x;
  }
  return selected;
}

std::vector<float> VitTower::forward_last(const float* pixels, std::vector<float>* all_states) const {
  std::vector<float> x = forward(pixels, cfg_.layers, all_states);
  if (post_ln_.w.empty()) fail("internal: this vision tower has no post-LayerNorm");
  layer_norm(x.data(), post_ln_.w.data(), post_ln_.b.data(), cfg_.eps, cfg_.tokens(), cfg_.hidden, x.data());
  return x;
}

}  // namespace mmn
