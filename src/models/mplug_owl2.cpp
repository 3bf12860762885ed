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

std::unique_ptr<MplugOwl2Model> MplugOwl2Model::load(const std::string& dir, const JsonFile& config) {
  namespace fs = std::filesystem;
  auto m = std::make_unique<MplugOwl2Model>();
  m->dir_ = dir;
  const LlamaConfig tcfg = LlamaConfig::from_json(config);
  const JsonFile vis = sub_or_empty(config, "visual_config");
  const JsonFile vj = sub_or_empty(vis, "visual_model");
  const JsonFile aj = sub_or_empty(vis, "visual_abstractor");

  // visual_model with MplugOwlVisionConfig's defaults (ViT-L/14 at 448).
  const int64_t Dv = vj.get_int("hidden_size", 1024), Iv = vj.get_int("intermediate_size", 4096);
  const int Lv = static_cast<int>(vj.get_int("num_hidden_layers", 24));
  const int heads = static_cast<int>(vj.get_int("num_attention_heads", 16));
  const int S = static_cast<int>(vj.get_int("image_size", 448)), p = static_cast<int>(vj.get_int("patch_size", 14));
  const float veps = static_cast<float>(vj.get_double("layer_norm_eps", 1e-6));
  const Activation vact = parse_activation(vj.get_string("hidden_act", "quick_gelu"), vj.path());
  if (Dv <= 0 || Iv <= 0 || Lv <= 0 || heads <= 0 || p <= 0 || S < p)
    fail(vj.path(), ": visual_model sizes must be positive");
  if (Dv % heads) fail(vj.path(), ": visual_model hidden_size is not a multiple of num_attention_heads");
  if (S % p) fail(vj.path(), ": visual_model image_size is not a multiple of patch_size");
  const int grid = S / p;
  const int64_t Np = static_cast<int64_t>(grid) * grid;

  // visual_abstractor with MplugOwlVisualAbstractorConfig's defaults.
  const int64_t Ha = aj.get_int("hidden_size", 1024), Ia = aj.get_int("intermediate_size", 2816);
  const int La = static_cast<int>(aj.get_int("num_hidden_layers", 6));
  m->a_heads_ = static_cast<int>(aj.get_int("num_attention_heads", 16));
  m->n_queries_ = aj.get_int("num_learnable_queries", 64);
  m->ffn_eps_ = static_cast<float>(aj.get_double("layer_norm_eps", 1e-6));
  if (Ha <= 0 || Ia <= 0 || La <= 0 || m->a_heads_ <= 0 || m->n_queries_ <= 0)
    fail(aj.path(), ": visual_abstractor sizes must be positive");
  if (Ha % m->a_heads_) fail(aj.path(), ": visual_abstractor hidden_size is not a multiple of num_attention_heads");
  if (Ha != Dv || aj.get_int("encoder_hidden_size", Dv) != Dv)
    aj.fail_key("hidden_size", "and encoder_hidden_size must equal the vision hidden_size " + std::to_string(Dv));
  if (aj.get_int("grid_size", grid) != grid)
    aj.fail_key("grid_size", "must be image_size / patch_size = " + std::to_string(grid));
  m->a_hidden_ = Ha;

  m->image_processor_ = load_image_processor_config((fs::path(dir) / "preprocessor_config.json").string());
  m->ck_ = SafetensorsCheckpoint::open(dir);
  const SafetensorsCheckpoint& ck = m->ck_;

  // Vision tower: no patch bias, pre_layernorm, head-major query_key_value, post_layernorm.
  const std::string v = "model.vision_model.";
  VitTower& t = m->vision_;
  t.image_size = S;
  m->input_size_ = S;
  t.patch = p;
  t.eps = veps;
  t.patch_w = Weight::from(ck.get(v + "embeddings.patch_embed.weight", {Dv, 3, p, p}));
  t.cls = to_f32(ck.get(v + "embeddings.cls_token", {1, 1, Dv}));
  t.pos = to_f32(ck.get(v + "embeddings.position_embedding", {1, Np + 1, Dv}));
  t.pre_ln = NormW::load(ck, v + "embeddings.pre_layernorm", Dv, true);
  t.post_ln = NormW::load(ck, v + "post_layernorm", Dv, true);
  for (int l = 0; l < Lv; ++l) {
    const std::string lp = v + "encoder.layers." + std::to_string(l) + ".";
    VitLayer L;
    L.ln1 = NormW::load(ck, lp + "input_layernorm", Dv, true);
    L.ln2 = NormW::load(ck, lp + "post_attention_layernorm", Dv, true);
    L.qkv_head_major = LinearW::load(ck, lp + "self_attn.query_key_value", 3 * Dv, Dv, true);
    L.o = LinearW::load(ck, lp + "self_attn.dense", Dv, Dv, true);
    L.fc1 = LinearW::load(ck, lp + "mlp.fc1", Iv, Dv, true);
    L.fc2 = LinearW::load(ck, lp + "mlp.fc2", Dv, Iv, true);
    L.heads = heads;
    L.eps = veps;
    L.act = vact;
    t.layers.push_back(std::move(L));
  }

  // Visual abstractor. The sin-cos position terms are not in the checkpoint.
  const std::string a = "model.visual_abstractor.";
  const int64_t D = tcfg.hidden;
  m->query_embeds_ = to_f32(ck.get(a + "query_embeds", {1, m->n_queries_, Ha}));
  m->vit_eos_ = to_f32(ck.get(a + "vit_eos", {1, 1, D}));
  m->visual_fc_ = LinearW::load(ck, a + "visual_fc", D, Ha, true);
  for (int l = 0; l < La; ++l) {
    const std::string lp = a + "encoder.layers." + std::to_string(l) + ".crossattention.";
    AbstractorLayer L;
    L.norm1 = NormW::load(ck, lp + "norm1", Ha, true);
    L.normk = NormW::load(ck, lp + "normk", Ha, true);
    L.q = LinearW::load(ck, lp + "attention.query", Ha, Ha, true);
    L.k = LinearW::load(ck, lp + "attention.key", Ha, Dv, true);
    L.v = LinearW::load(ck, lp + "attention.value", Ha, Dv, true);
    L.out_proj = LinearW::load(ck, lp + "output.out_proj", Ha, Ha, true);
    L.norm2 = NormW::load(ck, lp + "output.norm2", Ha, true);
    L.w1 = LinearW::load(ck, lp + "output.mlp.w1", Ia, Ha, true);
    L.w3 = LinearW::load(ck, lp + "output.mlp.w3", Ia, Ha, true);
    L.w2 = LinearW::load(ck, lp + "output.mlp.w2", Ha, Ia, true);
    L.ffn_ln = NormW::load(ck, lp + "output.mlp.ffn_ln", Ia, true);
    m->alayers_.push_back(std::move(L));
  }
  std::vector<float> qpos(m->n_queries_);
  for (int64_t i = 0; i < m->n_queries_; ++i) qpos[i] = static_cast<float>(i);
  m->q_pos_ = sincos_1d(Ha, qpos);
  m->k_pos_ = sincos_2d_with_cls(Ha, grid);

  m->decoder_ = LlamaDecoder::load(ck, tcfg, "model.", "lm_head.weight", /*multiway=*/true);
  m->tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::load(dir));
  if (m->tokenizer_->vocab_size() > tcfg.vocab)
    fail(dir, ": tokenizer has ", m->tokenizer_->vocab_size(), " tokens but the model's vocabulary is ", tcfg.vocab);
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
  const std::vector<float> img = vision_.forward(px.pixel_values.data(), trace ? &all : nullptr);

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
    trace->add("vision_hidden_states", {static_cast<int64_t>(vision_.layers.size()) + 1, T, Dv}, std::move(all));
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
