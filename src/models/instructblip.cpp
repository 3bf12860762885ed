#include "models/instructblip.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "kernels/convert.h"
#include "kernels/ops.h"
#include "util/error.h"

namespace mmn {

namespace {

// vision_config with InstructBlipVisionConfig's defaults (EVA ViT-g).
struct EvaConfig {
  int64_t hidden, intermediate;
  int layers, heads, image_size, patch;
  float eps;
  Activation act;
  bool qkv_bias;
};

EvaConfig eva_config(const JsonFile& j) {
  EvaConfig c;
  c.hidden = j.get_int("hidden_size", 1408);
  c.intermediate = j.get_int("intermediate_size", 6144);
  c.layers = static_cast<int>(j.get_int("num_hidden_layers", 39));
  c.heads = static_cast<int>(j.get_int("num_attention_heads", 16));
  c.image_size = static_cast<int>(j.get_int("image_size", 224));
  c.patch = static_cast<int>(j.get_int("patch_size", 14));
  c.eps = static_cast<float>(j.get_double("layer_norm_eps", 1e-6));
  c.act = parse_activation(j.get_string("hidden_act", "gelu"), j.path());
  c.qkv_bias = j.get_bool("qkv_bias", true);
  if (c.hidden <= 0 || c.intermediate <= 0 || c.layers <= 0 || c.heads <= 0 || c.patch <= 0 || c.image_size < c.patch)
    fail(j.path(), ": vision_config sizes must be positive");
  if (c.hidden % c.heads) fail(j.path(), ": vision hidden_size is not a multiple of num_attention_heads");
  if (c.image_size % c.patch) fail(j.path(), ": vision image_size is not a multiple of patch_size");
  return c;
}

BertAttention load_attention(const SafetensorsCheckpoint& ck, const std::string& p, int64_t H, int64_t ctx_width) {
  BertAttention a;
  a.q = LinearW::load(ck, p + "attention.query", H, H, true);
  a.k = LinearW::load(ck, p + "attention.key", H, ctx_width, true);
  a.v = LinearW::load(ck, p + "attention.value", H, ctx_width, true);
  a.dense = LinearW::load(ck, p + "output.dense", H, H, true);
  a.ln = NormW::load(ck, p + "output.LayerNorm", H, true);
  return a;
}

BertFfn load_ffn(const SafetensorsCheckpoint& ck, const std::string& in, const std::string& out, int64_t H, int64_t I) {
  BertFfn f;
  f.in = LinearW::load(ck, in + ".dense", I, H, true);
  f.out = LinearW::load(ck, out + ".dense", H, I, true);
  f.ln = NormW::load(ck, out + ".LayerNorm", H, true);
  return f;
}

// x [rows, H] ← ln(dense(attn(q(x), k(ctx), v(ctx))) + x), unmasked.
void attend(const BertAttention& a, float* x, int64_t rows, const float* ctx, int64_t ctx_rows, int heads, float eps) {
  const int64_t H = a.q.out();
  const int hd = static_cast<int>(H / heads);
  std::vector<float> q(rows * H), k(ctx_rows * H), v(ctx_rows * H), att(rows * H), h(rows * H);
  a.q(x, rows, q.data());
  a.k(ctx, ctx_rows, k.data());
  a.v(ctx, ctx_rows, v.data());
  attention(q.data(), rows, 0, k.data(), v.data(), ctx_rows, H, heads, heads, hd,
            1.0f / std::sqrt(static_cast<float>(hd)), /*causal=*/false, att.data());
  a.dense(att.data(), rows, h.data());
  add_inplace(h.data(), x, rows * H);
  layer_norm(h.data(), a.ln.w.data(), a.ln.b.data(), eps, rows, H, x);
}

// x [rows, H] ← ln(out(act(in(x))) + x).
void feed_forward(const BertFfn& f, float* x, int64_t rows, Activation act, float eps) {
  const int64_t H = f.out.out();
  std::vector<float> mid(rows * f.in.out()), h(rows * H);
  f.in(x, rows, mid.data());
  apply_activation(act, mid.data(), static_cast<int64_t>(mid.size()));
  f.out(mid.data(), rows, h.data());
  add_inplace(h.data(), x, rows * H);
  layer_norm(h.data(), f.ln.w.data(), f.ln.b.data(), eps, rows, H, x);
}

}  // namespace

std::unique_ptr<InstructBlipModel> InstructBlipModel::load(const std::string& dir, const JsonFile& config) {
  namespace fs = std::filesystem;
  auto m = std::make_unique<InstructBlipModel>();
  m->dir_ = dir;
  const EvaConfig vc = eva_config(config.sub("vision_config"));
  const JsonFile qj = config.sub("qformer_config");
  const JsonFile tj = config.sub("text_config");
  if (tj.get_string("model_type", "llama") != "llama")
    tj.fail_key("model_type", "is '" + tj.get_string("model_type") + "'; only LLaMA (Vicuna) language models are supported");
  const LlamaConfig tcfg = LlamaConfig::from_json(tj);

  // qformer_config with InstructBlipQFormerConfig's defaults.
  const int64_t Hq = qj.get_int("hidden_size", 768), Iq = qj.get_int("intermediate_size", 3072);
  const int Lq = static_cast<int>(qj.get_int("num_hidden_layers", 12));
  const int64_t Vq = qj.get_int("vocab_size", 30522);
  const int64_t cross_freq = qj.get_int("cross_attention_frequency", 2);
  m->q_heads_ = static_cast<int>(qj.get_int("num_attention_heads", 12));
  m->q_max_pos_ = qj.get_int("max_position_embeddings", 512);
  m->q_eps_ = static_cast<float>(qj.get_double("layer_norm_eps", 1e-12));
  m->q_act_ = parse_activation(qj.get_string("hidden_act", "gelu"), qj.path());
  if (qj.get_string("position_embedding_type", "absolute") != "absolute")
    qj.fail_key("position_embedding_type", "must be \"absolute\"");
  if (Hq <= 0 || Iq <= 0 || Lq <= 0 || Vq <= 0 || m->q_heads_ <= 0 || m->q_max_pos_ <= 0 || cross_freq <= 0)
    fail(qj.path(), ": qformer_config sizes must be positive");
  if (Hq % m->q_heads_) fail(qj.path(), ": qformer hidden_size is not a multiple of num_attention_heads");
  m->q_hidden_ = Hq;
  m->n_query_ = config.get_int("num_query_tokens", 32);
  if (m->n_query_ <= 0) config.fail_key("num_query_tokens", "must be positive");

  m->image_processor_ = load_image_processor_config((fs::path(dir) / "preprocessor_config.json").string());
  m->ck_ = SafetensorsCheckpoint::open(dir);
  const SafetensorsCheckpoint& ck = m->ck_;

  // EVA ViT: patch embedding with bias, no pre-LayerNorm, fused q|k|v, post_layernorm.
  const std::string v = "vision_model.";
  const int64_t Dv = vc.hidden, P = static_cast<int64_t>(vc.image_size / vc.patch) * (vc.image_size / vc.patch);
  VitTower& t = m->vision_;
  t.image_size = vc.image_size;
  m->input_size_ = vc.image_size;
  t.patch = vc.patch;
  t.eps = vc.eps;
  t.patch_w = Weight::from(ck.get(v + "embeddings.patch_embedding.weight", {Dv, 3, vc.patch, vc.patch}));
  t.patch_b = to_f32(ck.get(v + "embeddings.patch_embedding.bias", {Dv}));
  t.cls = to_f32(ck.get(v + "embeddings.class_embedding", {1, 1, Dv}));
  t.pos = to_f32(ck.get(v + "embeddings.position_embedding", {1, P + 1, Dv}));
  t.post_ln = NormW::load(ck, v + "post_layernorm", Dv, true);
  for (int l = 0; l < vc.layers; ++l) {
    const std::string p = v + "encoder.layers." + std::to_string(l) + ".";
    VitLayer L;
    L.ln1 = NormW::load(ck, p + "layer_norm1", Dv, true);
    L.ln2 = NormW::load(ck, p + "layer_norm2", Dv, true);
    const LinearW qkv = LinearW::load(ck, p + "self_attn.qkv", 3 * Dv, Dv, vc.qkv_bias);
    L.q = slice_rows(qkv, 0, Dv);
    L.k = slice_rows(qkv, Dv, Dv);
    L.v = slice_rows(qkv, 2 * Dv, Dv);
    L.o = LinearW::load(ck, p + "self_attn.projection", Dv, Dv, true);
    L.fc1 = LinearW::load(ck, p + "mlp.fc1", vc.intermediate, Dv, true);
    L.fc2 = LinearW::load(ck, p + "mlp.fc2", Dv, vc.intermediate, true);
    L.heads = vc.heads;
    L.eps = vc.eps;
    L.act = vc.act;
    t.layers.push_back(std::move(L));
  }

  // Q-Former.
  m->query_tokens_ = to_f32(ck.get("query_tokens", {1, m->n_query_, Hq}));
  const std::string q = "qformer.";
  m->word_emb_ = Weight::from(ck.get(q + "embeddings.word_embeddings.weight", {Vq, Hq}));
  m->pos_emb_ = to_f32(ck.get(q + "embeddings.position_embeddings.weight", {m->q_max_pos_, Hq}));
  m->emb_ln_ = NormW::load(ck, q + "embeddings.layernorm", Hq, true);
  for (int l = 0; l < Lq; ++l) {
    const std::string p = q + "encoder.layer." + std::to_string(l) + ".";
    QFormerLayer L;
    L.self = load_attention(ck, p + "attention.", Hq, Hq);
    L.has_cross = l % cross_freq == 0;
    if (L.has_cross) L.cross = load_attention(ck, p + "crossattention.", Hq, Dv);
    L.text = load_ffn(ck, p + "intermediate", p + "output", Hq, Iq);
    L.query = load_ffn(ck, p + "intermediate_query", p + "output_query", Hq, Iq);
    m->qlayers_.push_back(std::move(L));
  }
  m->lang_proj_ = LinearW::load(ck, "language_projection", tcfg.hidden, Hq, true);
  m->decoder_ = LlamaDecoder::load(ck, tcfg, "language_model.model.", "language_model.lm_head.weight");

  m->tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::load(dir));
  if (m->tokenizer_->vocab_size() > tcfg.vocab)
    fail(dir, ": tokenizer has ", m->tokenizer_->vocab_size(), " tokens but the model's vocabulary is ", tcfg.vocab);
  const fs::path qdir = fs::path(dir) / "qformer_tokenizer";
  std::error_code ec;
  if (!fs::is_directory(qdir, ec))
    fail(qdir.string(), ": missing (InstructBLIP's Q-Former tokenizer directory with vocab.txt)");
  m->qtok_ = std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::load_dir(qdir.string()));
  if (m->qtok_->vocab_size() > Vq)
    fail(qdir.string(), ": Q-Former tokenizer has ", m->qtok_->vocab_size(),
         " tokens but the Q-Former's vocabulary is ", Vq);
  // The language model generates with text_config's EOS (1 in the real
  // checkpoint); transformers 4.37 never reads generation_config.json here.
  m->eos_ids_ = {static_cast<int32_t>(tj.get_int("eos_token_id", 2))};
  return m;
}

std::string InstructBlipModel::prompt(const PromptText& p) const {
  return p.prefix.empty() ? p.query : p.query + " " + p.prefix;
}

std::vector<float> InstructBlipModel::encode_image(const PreprocessedImage& px, Trace* trace) const {
  std::vector<float> all;
  std::vector<float> out = vision_.forward(px.pixel_values.data(), trace ? &all : nullptr);
  if (trace) {
    const int64_t T = vision_.tokens(), Dv = vision_.hidden();
    trace->add("pixel_values", {1, 3, px.height, px.width}, px.pixel_values);
    trace->add("vision_hidden_states", {static_cast<int64_t>(vision_.layers.size()) + 1, T, Dv}, std::move(all));
    trace->add("vision_last_hidden_state", {T, Dv}, out);
  }
  return out;
}

std::vector<float> InstructBlipModel::qformer(const std::vector<float>& image_embeds, const std::vector<int32_t>& ids,
                                              std::vector<float>* all_states) const {
  const int64_t H = q_hidden_, Q = n_query_, Tq = static_cast<int64_t>(ids.size()), n = Q + Tq;
  const int64_t img_rows = vision_.tokens();
  if (static_cast<int64_t>(image_embeds.size()) != img_rows * vision_.hidden())
    fail("internal: InstructBLIP image embeddings have the wrong size");
  if (Tq > q_max_pos_)
    fail("the Q-Former instruction has ", Tq, " tokens, more than its ", q_max_pos_, " positions");
  std::vector<float> x(n * H);
  std::memcpy(x.data(), query_tokens_.data(), Q * H * sizeof(float));
  for (int64_t i = 0; i < Tq; ++i) {
    if (ids[i] < 0 || ids[i] >= word_emb_.rows)
      fail("Q-Former token id ", ids[i], " is outside its vocabulary (", word_emb_.rows, ")");
    float* row = x.data() + (Q + i) * H;
    convert_to_f32(word_emb_.dtype, word_emb_.row_ptr(ids[i]), row, H);
    add_inplace(row, pos_emb_.data() + i * H, H);
  }
  layer_norm(x.data(), emb_ln_.w.data(), emb_ln_.b.data(), q_eps_, n, H, x.data());
  if (all_states) all_states->assign(x.begin(), x.end());
  for (const QFormerLayer& L : qlayers_) {
    attend(L.self, x.data(), n, x.data(), n, q_heads_, q_eps_);  // over queries and instruction together
    float* qrows = x.data();
    if (L.has_cross) attend(L.cross, qrows, Q, image_embeds.data(), img_rows, q_heads_, q_eps_);
    feed_forward(L.query, qrows, Q, q_act_, q_eps_);
    if (Tq > 0) feed_forward(L.text, x.data() + Q * H, Tq, q_act_, q_eps_);
    if (all_states) all_states->insert(all_states->end(), x.begin(), x.end());
  }
  x.resize(Q * H);
  return x;
}

PromptInputs InstructBlipModel::build_inputs(const PromptText& p, const std::vector<float>& image_embeds,
                                             Trace* trace) const {
  const std::string text = prompt(p);
  const std::vector<int32_t> qids = qtok_->encode(text);
  std::vector<float> states;
  std::vector<float> qout = qformer(image_embeds, qids, trace ? &states : nullptr);
  const int64_t Q = n_query_, H = q_hidden_, D = decoder_->config().hidden;
  std::vector<float> feats(Q * D);
  lang_proj_(qout.data(), Q, feats.data());

  // [Q image features; embed(BOS "</s>" + text)]: no placeholder, image first.
  PromptInputs in;
  in.prompt_ids = tokenizer_->encode(text);
  const int64_t n_text = static_cast<int64_t>(in.prompt_ids.size());
  in.seq_len = Q + n_text;
  in.image_pos0 = 0;
  in.image_tokens = Q;
  in.merged_ids.assign(Q, -1);
  in.merged_ids.insert(in.merged_ids.end(), in.prompt_ids.begin(), in.prompt_ids.end());
  in.visual.assign(in.seq_len, 0);
  std::fill(in.visual.begin(), in.visual.begin() + Q, 1);
  in.embeds.resize(in.seq_len * D);
  std::memcpy(in.embeds.data(), feats.data(), feats.size() * sizeof(float));
  decoder_->embed(in.prompt_ids.data(), n_text, in.embeds.data() + Q * D);

  if (trace) {
    trace->add_ints("qformer_input_ids", {static_cast<int64_t>(qids.size())},
                    std::vector<int64_t>(qids.begin(), qids.end()));
    trace->add("qformer_hidden_states", {static_cast<int64_t>(qlayers_.size()) + 1, Q + static_cast<int64_t>(qids.size()), H},
               std::move(states));
    trace->add("qformer_query_output", {Q, H}, std::move(qout));
    trace->add("image_features", {Q, D}, std::move(feats));
    trace->add("llm_inputs_embeds_prefill", {in.seq_len, D}, in.embeds);
  }
  return in;
}

}  // namespace mmn
