#include "models/mplug_owl2.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "kernels/ops.h"
#include "util/error.h"

namespace mmn {

std::vector<float> sincos_1d(int64_t dim, const std::vector<float>& positions) {
  const int64_t half = dim / 2;
  std::vector<float> omega(half);
  for (int64_t j = 0; j < half; ++j)
    omega[j] = 1.0f / std::pow(10000.0f, static_cast<float>(j) / static_cast<float>(half));
  std::vector<float> out(positions.size() * 2 * half);
  for (size_t p = 0; p < positions.size(); ++p)
    for (int64_t j = 0; j < half; ++j) {
      const float a = positions[p] * omega[j];
      out[p * 2 * half + j] = std::sin(a);
      out[p * 2 * half + half + j] = std::cos(a);
    }
  return out;
}

std::vector<float> sincos_2d_with_cls(int64_t dim, int grid) {
  const int64_t half = dim / 2;
  std::vector<float> cols, rows;
  for (int r = 0; r < grid; ++r)
    for (int c = 0; c < grid; ++c) {
      cols.push_back(static_cast<float>(c));
      rows.push_back(static_cast<float>(r));
    }
  const std::vector<float> ec = sincos_1d(half, cols), er = sincos_1d(half, rows);
  std::vector<float> out((1 + static_cast<int64_t>(grid) * grid) * dim, 0.0f);
  for (size_t i = 0; i < cols.size(); ++i) {
    std::memcpy(out.data() + (1 + i) * dim, ec.data() + i * half, half * sizeof(float));
    std::memcpy(out.data() + (1 + i) * dim + half, er.data() + i * half, half * sizeof(float));
  }
  return out;
}

namespace {

// A nested config object, or an empty one (all defaults) when absent.
JsonFile sub_or_empty(const JsonFile& j, const std::string& key) {
  if (j.has(key)) return j.sub(key);
  return JsonFile(j.path(), nlohmann::json::object(), key + ".");
}

constexpr float kTorchLnEps = 1e-5f;  // nn.LayerNorm's default: norm1, normk, norm2

}  // namespace

MplugOwl2Model::MplugOwl2Model(const JsonFile& config, bool tie_lm_head) {
  const LlamaConfig tcfg = LlamaConfig::from_json(config);
  const JsonFile vis = sub_or_empty(config, "visual_config");
  const JsonFile vj = sub_or_empty(vis, "visual_model");
  const JsonFile aj = sub_or_empty(vis, "visual_abstractor");
  const VitConfig vc = VitConfig::from_json(vj, owl2_vision_defaults());

  // visual_abstractor with MplugOwlVisualAbstractorConfig's defaults.
  a_hidden_ = aj.get_int("hidden_size", 1024);
  a_inter_ = aj.get_int("intermediate_size", 2816);
  const int La = static_cast<int>(aj.get_int("num_hidden_layers", 6));
  a_heads_ = static_cast<int>(aj.get_int("num_attention_heads", 16));
  n_queries_ = aj.get_int("num_learnable_queries", 64);
  ffn_eps_ = static_cast<float>(aj.get_double("layer_norm_eps", 1e-6));
  if (a_hidden_ <= 0 || a_inter_ <= 0 || La <= 0 || a_heads_ <= 0 || n_queries_ <= 0)
    fail(aj.path(), ": visual_abstractor sizes must be positive");
  if (a_hidden_ > kMaxWidth || a_inter_ > kMaxWidth || La > kMaxLayers || a_heads_ > kMaxHeads || n_queries_ > 4096)
    fail(aj.path(), ": visual_abstractor sizes are implausibly large");
  if (a_hidden_ % a_heads_) fail(aj.path(), ": visual_abstractor hidden_size is not a multiple of num_attention_heads");
  if (a_hidden_ != vc.hidden || aj.get_int("encoder_hidden_size", vc.hidden) != vc.hidden)
    aj.fail_key("hidden_size", "and encoder_hidden_size must equal the vision hidden_size " + std::to_string(vc.hidden));
  if (aj.get_int("grid_size", vc.grid()) != vc.grid())
    aj.fail_key("grid_size", "must be image_size / patch_size = " + std::to_string(vc.grid()));
  alayers_.resize(La);

  vision_ = VitTower(vc, kOwl2VitNames);
  input_size_ = vc.image_size;
  decoder_ = std::make_unique<LlamaDecoder>(tcfg, kOwl2LlamaNames, tie_lm_head);
}

void MplugOwl2Model::walk(LayoutWalk& w) {
  const int64_t Ha = a_hidden_, Ia = a_inter_, Dv = vision_.hidden(), D = decoder_->config().hidden;
  vision_.walk(w, "model.vision_model.");
  const std::string a = "model.visual_abstractor.";
  w.vector({a + "query_embeds", {1, n_queries_, Ha}, TensorRole::Learned}, query_embeds_);
  w.vector({a + "vit_eos", {1, 1, D}, TensorRole::Embedding}, vit_eos_);
  walk_linear(w, a + "visual_fc", visual_fc_, {D, Ha, true});
  for (size_t l = 0; l < alayers_.size(); ++l) {
    const std::string p = a + "encoder.layers." + std::to_string(l) + ".crossattention.";
    AbstractorLayer& L = alayers_[l];
    walk_norm(w, p + "norm1", L.norm1, Ha, true);
    walk_norm(w, p + "normk", L.normk, Ha, true);
    walk_linear(w, p + "attention.query", L.q, {Ha, Ha, true});
    walk_linear(w, p + "attention.key", L.k, {Ha, Dv, true});
    walk_linear(w, p + "attention.value", L.v, {Ha, Dv, true});
    walk_linear(w, p + "output.out_proj", L.out_proj, {Ha, Ha, true});
    walk_norm(w, p + "output.norm2", L.norm2, Ha, true);
    walk_linear(w, p + "output.mlp.w1", L.w1, {Ia, Ha, true});
    walk_linear(w, p + "output.mlp.w3", L.w3, {Ia, Ha, true});
    walk_linear(w, p + "output.mlp.w2", L.w2, {Ha, Ia, true});
    walk_norm(w, p + "output.mlp.ffn_ln", L.ffn_ln, Ia, true);
  }
  decoder_->walk(w);
}

std::unique_ptr<MplugOwl2Model> MplugOwl2Model::load(const std::string& dir, const JsonFile& config) {
  namespace fs = std::filesystem;
  const ImageProcessorConfig proc = load_image_processor_config((fs::path(dir) / "preprocessor_config.json").string());
  SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(dir);
  const bool tie = config.get_bool("tie_word_embeddings", false) && !ck.has(kOwl2LlamaNames.lm_head);
  auto m = std::make_unique<MplugOwl2Model>(config, tie);
  m->dir_ = dir;
  m->image_processor_ = proc;
  m->ck_ = std::move(ck);
  LoadWalk w(m->ck_);
  m->walk(w);
  // The abstractor's sin-cos position terms are computed, not stored; sized
  // only now that the checkpoint has confirmed the config's sizes.
  std::vector<float> qpos(m->n_queries_);
  for (int64_t i = 0; i < m->n_queries_; ++i) qpos[i] = static_cast<float>(i);
  m->q_pos_ = sincos_1d(m->a_hidden_, qpos);
  m->k_pos_ = sincos_2d_with_cls(m->a_hidden_, m->vision_.config().grid());
  m->load_tokenizer(dir);
  m->load_eos(m->tokenizer_->eos_id());
  return m;
}

std::string MplugOwl2Model::prompt(const PromptText& p) const {
  return "USER: <|image|>" + p.query + " ASSISTANT:" + (p.prefix.empty() ? "" : " " + p.prefix);
}

std::vector<float> MplugOwl2Model::encode_image(const PreprocessedImage& px, Trace* trace) const {
  const int64_t T = vision_.tokens(), Dv = vision_.hidden(), H = a_hidden_, NQ = n_queries_, n = NQ + T;
  const int hd = static_cast<int>(H / a_heads_);
  std::vector<float> all;
  const std::vector<float> img = vision_.forward_last(px.pixel_values.data(), trace ? &all : nullptr);

  std::vector<float> x = query_embeds_, layer_outs;
  std::vector<float> kv_in(n * H), tmp(n * H), q(NQ * H), k(n * H), val(n * H), ctx(NQ * H);
  std::vector<float> mid(NQ * alayers_.front().w1.out()), gate(mid.size());
  for (const AbstractorLayer& L : alayers_) {
    // Queries attend to themselves and to the image: keys/values over cat(norm1(x), normk(img)).
    layer_norm(x.data(), L.norm1.w.data(), L.norm1.b.data(), kTorchLnEps, NQ, H, kv_in.data());
    layer_norm(img.data(), L.normk.w.data(), L.normk.b.data(), kTorchLnEps, T, H, kv_in.data() + NQ * H);
    std::memcpy(tmp.data(), kv_in.data(), NQ * H * sizeof(float));
    add_inplace(tmp.data(), q_pos_.data(), NQ * H);
    L.q(tmp.data(), NQ, q.data());
    std::memcpy(tmp.data() + NQ * H, kv_in.data() + NQ * H, T * H * sizeof(float));
    add_inplace(tmp.data() + NQ * H, k_pos_.data(), T * H);
    L.k(tmp.data(), n, k.data());
    L.v(kv_in.data(), n, val.data());
    attention(q.data(), NQ, 0, k.data(), val.data(), n, H, a_heads_, a_heads_, hd,
              1.0f / std::sqrt(static_cast<float>(hd)), /*causal=*/false, ctx.data());
    // t = norm1(x) + out_proj(ctx): the residual is the normalised queries.
    L.out_proj(ctx.data(), NQ, x.data());
    add_inplace(x.data(), kv_in.data(), NQ * H);
    // x = t + w2(ffn_ln(silu(w1(norm2(t))) · w3(norm2(t)))).
    layer_norm(x.data(), L.norm2.w.data(), L.norm2.b.data(), kTorchLnEps, NQ, H, tmp.data());
    L.w1(tmp.data(), NQ, gate.data());
    L.w3(tmp.data(), NQ, mid.data());
    silu_inplace(gate.data(), static_cast<int64_t>(gate.size()));
    mul_inplace(gate.data(), mid.data(), static_cast<int64_t>(gate.size()));
    layer_norm(gate.data(), L.ffn_ln.w.data(), L.ffn_ln.b.data(), ffn_eps_, NQ, L.w1.out(), gate.data());
    L.w2(gate.data(), NQ, tmp.data());
    add_inplace(x.data(), tmp.data(), NQ * H);
    if (trace) layer_outs.insert(layer_outs.end(), x.begin(), x.end());
  }
  const int64_t D = decoder_->config().hidden;
  std::vector<float> feats((NQ + 1) * D);
  visual_fc_(x.data(), NQ, feats.data());
  std::memcpy(feats.data() + NQ * D, vit_eos_.data(), D * sizeof(float));
  if (trace) {
    trace->add("pixel_values", {1, 3, px.height, px.width}, px.pixel_values);
    trace->add("vision_hidden_states", {vision_.config().layers + 1, T, Dv}, std::move(all));
    trace->add("vision_last_hidden_state", {T, Dv}, img);
    trace->add("abstractor_q_pos_embed", {NQ, H}, q_pos_);
    trace->add("abstractor_k_pos_embed", {T, H}, k_pos_);
    trace->add("abstractor_layer_outputs", {static_cast<int64_t>(alayers_.size()), NQ, H}, std::move(layer_outs));
    trace->add("image_features", {NQ + 1, D}, feats);
  }
  return feats;
}

PromptInputs MplugOwl2Model::build_inputs(const PromptText& p, const std::vector<float>& feats, Trace* trace) const {
  std::vector<int32_t> ids = tokenizer_->encode_image_chunks(prompt(p), "<|image|>", kImageTokenId);
  PromptInputs in = splice_image(*decoder_, std::move(ids), kImageTokenId, feats, image_tokens(), dir_);
  if (trace) {
    trace->add("llm_inputs_embeds_prefill", {in.seq_len, decoder_->config().hidden}, in.embeds);
    trace->add_ints("modality_indicators", {in.seq_len}, std::vector<int64_t>(in.visual.begin(), in.visual.end()));
  }
  return in;
}

}  // namespace mmn
