#include "models/instructblip.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "kernels/convert.h"
#include "kernels/ops.h"
#include "util/error.h"

namespace mmn {

namespace {

void walk_attention(LayoutWalk& w, const std::string& p, BertAttention& a, int64_t H, int64_t ctx_width) {
  walk_linear(w, p + "attention.query", a.q, {H, H, true});
  walk_linear(w, p + "attention.key", a.k, {H, ctx_width, true});
  walk_linear(w, p + "attention.value", a.v, {H, ctx_width, true});
  walk_linear(w, p + "output.dense", a.dense, {H, H, true});
  walk_norm(w, p + "output.LayerNorm", a.ln, H, true);
}

void walk_ffn(LayoutWalk& w, const std::string& in, const std::string& out, BertFfn& f, int64_t H, int64_t I) {
  walk_linear(w, in + ".dense", f.in, {I, H, true});
  walk_linear(w, out + ".dense", f.out, {H, I, true});
  walk_norm(w, out + ".LayerNorm", f.ln, H, true);
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

InstructBlipModel::InstructBlipModel(const JsonFile& config, bool tie_lm_head) {
  const VitConfig vc = VitConfig::from_json(config.sub("vision_config"), eva_vision_defaults());
  const JsonFile qj = config.sub("qformer_config");
  const JsonFile tj = config.sub("text_config");
  if (tj.get_string("model_type", "llama") != "llama")
    tj.fail_key("model_type", "is '" + tj.get_string("model_type") + "'; only LLaMA (Vicuna) language models are supported");
  const LlamaConfig tcfg = LlamaConfig::from_json(tj);

  // qformer_config with InstructBlipQFormerConfig's defaults.
  q_hidden_ = qj.get_int("hidden_size", 768);
  q_inter_ = qj.get_int("intermediate_size", 3072);
  const int Lq = static_cast<int>(qj.get_int("num_hidden_layers", 12));
  q_vocab_ = qj.get_int("vocab_size", 30522);
  const int64_t cross_freq = qj.get_int("cross_attention_frequency", 2);
  q_heads_ = static_cast<int>(qj.get_int("num_attention_heads", 12));
  q_max_pos_ = qj.get_int("max_position_embeddings", 512);
  q_eps_ = static_cast<float>(qj.get_double("layer_norm_eps", 1e-12));
  q_act_ = parse_activation(qj.get_string("hidden_act", "gelu"), qj.path());
  if (qj.get_string("position_embedding_type", "absolute") != "absolute")
    qj.fail_key("position_embedding_type", "must be \"absolute\"");
  if (q_hidden_ <= 0 || q_inter_ <= 0 || Lq <= 0 || q_vocab_ <= 0 || q_heads_ <= 0 || q_max_pos_ <= 0 || cross_freq <= 0)
    fail(qj.path(), ": qformer_config sizes must be positive");
  if (q_hidden_ > kMaxWidth || q_inter_ > kMaxWidth || Lq > kMaxLayers || q_heads_ > kMaxHeads || q_vocab_ > kMaxVocabulary ||
      q_max_pos_ > (1 << 16))
    fail(qj.path(), ": qformer_config sizes are implausibly large");
  if (q_hidden_ % q_heads_) fail(qj.path(), ": qformer hidden_size is not a multiple of num_attention_heads");
  n_query_ = config.get_int("num_query_tokens", 32);
  if (n_query_ <= 0 || n_query_ > 4096) config.fail_key("num_query_tokens", "must be in [1, 4096]");
  qlayers_.resize(Lq);
  for (int l = 0; l < Lq; ++l) qlayers_[l].has_cross = l % cross_freq == 0;

  vision_ = VitTower(vc, kEvaVitNames);
  input_size_ = vc.image_size;
  decoder_ = std::make_unique<LlamaDecoder>(tcfg, kLlavaHfLlamaNames, tie_lm_head);
  // The language model generates with text_config's EOS (1 in the real
  // checkpoint); transformers 4.37 never reads generation_config.json here.
  eos_ids_ = {static_cast<int32_t>(tj.get_int("eos_token_id", 2))};
}

void InstructBlipModel::walk(LayoutWalk& w) {
  const int64_t Hq = q_hidden_, Dv = vision_.hidden();
  vision_.walk(w, "vision_model.");
  w.vector({"query_tokens", {1, n_query_, Hq}, TensorRole::Learned}, query_tokens_);
  const std::string q = "qformer.";
  w.matrix({q + "embeddings.word_embeddings.weight", {q_vocab_, Hq}, TensorRole::Learned}, word_emb_);
  w.vector({q + "embeddings.position_embeddings.weight", {q_max_pos_, Hq}, TensorRole::Learned}, pos_emb_);
  walk_norm(w, q + "embeddings.layernorm", emb_ln_, Hq, true);
  for (size_t l = 0; l < qlayers_.size(); ++l) {
    const std::string p = q + "encoder.layer." + std::to_string(l) + ".";
    QFormerLayer& L = qlayers_[l];
    walk_attention(w, p + "attention.", L.self, Hq, Hq);
    if (L.has_cross) walk_attention(w, p + "crossattention.", L.cross, Hq, Dv);
    walk_ffn(w, p + "intermediate", p + "output", L.text, Hq, q_inter_);
    walk_ffn(w, p + "intermediate_query", p + "output_query", L.query, Hq, q_inter_);
  }
  walk_linear(w, "language_projection", lang_proj_, {decoder_->config().hidden, Hq, true});
  decoder_->walk(w);
}

std::unique_ptr<InstructBlipModel> InstructBlipModel::load(const std::string& dir, const JsonFile& config) {
  namespace fs = std::filesystem;
  const ImageProcessorConfig proc = load_image_processor_config((fs::path(dir) / "preprocessor_config.json").string());
  SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(dir);
  const bool tie = config.sub("text_config").get_bool("tie_word_embeddings", false) && !ck.has(kLlavaHfLlamaNames.lm_head);
  auto m = std::make_unique<InstructBlipModel>(config, tie);
  m->dir_ = dir;
  m->image_processor_ = proc;
  m->ck_ = std::move(ck);
  LoadWalk w(m->ck_);
  m->walk(w);
  m->load_tokenizer(dir);
  const fs::path qdir = fs::path(dir) / "qformer_tokenizer";
  std::error_code ec;
  if (!fs::is_directory(qdir, ec))
    fail(qdir.string(), ": missing (InstructBLIP's Q-Former tokenizer directory with vocab.txt)");
  m->qtok_ = std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::load_dir(qdir.string()));
  if (m->qtok_->vocab_size() > m->q_vocab_)
    fail(qdir.string(), ": Q-Former tokenizer has ", m->qtok_->vocab_size(),
         " tokens but the Q-Former's vocabulary is ", m->q_vocab_);
  return m;
}

std::string InstructBlipModel::prompt(const PromptText& p) const {
  return p.prefix.empty() ? p.query : p.query + " " + p.prefix;
}

std::vector<float> InstructBlipModel::encode_image(const PreprocessedImage& px, Trace* trace) const {
  std::vector<float> all;
  std::vector<float> out = vision_.forward_last(px.pixel_values.data(), trace ? &all : nullptr);
  if (trace) {
    const int64_t T = vision_.tokens(), Dv = vision_.hidden();
    trace->add("pixel_values", {1, 3, px.height, px.width}, px.pixel_values);
    trace->add("vision_hidden_states", {vision_.config().layers + 1, T, Dv}, std::move(all));
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
    weight_row_f32(word_emb_, ids[i], 0, H, row);
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
