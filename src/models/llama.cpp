#include "models/llama.h"

#include <cmath>
#include <cstring>

#include "kernels/convert.h"
#include "kernels/linear.h"
#include "util/error.h"

namespace mmn {

LlamaConfig LlamaConfig::from_json(const JsonFile& j) {
  // Defaults are transformers' LlamaConfig defaults: real checkpoints (e.g.
  // llava-hf/llava-1.5-7b-hf's text_config) rely on them.
  LlamaConfig c;
  c.hidden = j.get_int("hidden_size", 4096);
  c.intermediate = j.get_int("intermediate_size", 11008);
  c.n_layers = static_cast<int>(j.get_int("num_hidden_layers", 32));
  c.n_heads = static_cast<int>(j.get_int("num_attention_heads", 32));
  c.n_kv_heads = static_cast<int>(j.get_int("num_key_value_heads", c.n_heads));
  c.vocab = j.get_int("vocab_size", 32000);
  c.rms_eps = static_cast<float>(j.get_double("rms_norm_eps", 1e-6));
  c.rope_theta = j.get_double("rope_theta", 10000.0);
  c.max_positions = j.get_int("max_position_embeddings", 2048);
  c.tie_word_embeddings = j.get_bool("tie_word_embeddings", false);
  if (j.get_string("hidden_act", "silu") != "silu") j.fail_key("hidden_act", "must be \"silu\" for a LLaMA decoder");
  if (j.has("rope_scaling") && !j.json()["rope_scaling"].is_null())
    j.fail_key("rope_scaling", "is set; RoPE scaling is not supported");
  if (c.hidden <= 0 || c.intermediate <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 || c.vocab <= 0)
    fail(j.path(), ": language model sizes must be positive");
  if (c.hidden > kMaxWidth || c.intermediate > kMaxWidth || c.n_layers > kMaxLayers || c.n_heads > kMaxHeads ||
      c.vocab > kMaxVocabulary)
    fail(j.path(), ": language model sizes are implausibly large (limits: ", kMaxLayers, " layers, width ", kMaxWidth,
         ", ", kMaxHeads, " heads, vocabulary ", kMaxVocabulary, ")");
  if (c.hidden % c.n_heads != 0) fail(j.path(), ": hidden_size is not a multiple of num_attention_heads");
  if (c.n_heads % c.n_kv_heads != 0) fail(j.path(), ": num_attention_heads is not a multiple of num_key_value_heads");
  c.head_dim = static_cast<int>(c.hidden / c.n_heads);
  if (c.head_dim % 2) fail(j.path(), ": head dimension must be even for RoPE");
  return c;
}

void KVCache::init(const LlamaConfig& c, int64_t cap) {
  len = 0;
  capacity = cap;
  width = static_cast<int64_t>(c.n_kv_heads) * c.head_dim;
  k.assign(c.n_layers, std::vector<float>(static_cast<size_t>(cap * width)));
  v.assign(c.n_layers, std::vector<float>(static_cast<size_t>(cap * width)));
}

const LlamaNames kLlavaHfLlamaNames = {"language_model.model.", "language_model.lm_head.weight"};
const LlamaNames kLlamaTopLlamaNames = {"model.", "lm_head.weight", false, true};
const LlamaNames kOwl2LlamaNames = {"model.", "lm_head.weight", true, true};

LlamaDecoder::LlamaDecoder(const LlamaConfig& cfg, const LlamaNames& names, bool tie_lm_head)
    : cfg_(cfg), names_(&names), tie_lm_head_(tie_lm_head), rope_(cfg.head_dim, cfg.rope_theta) {
  layers_.resize(cfg.n_layers);
  for (LlamaLayer& L : layers_) L.multiway = names.multiway;
}

void LlamaDecoder::walk(LayoutWalk& w) {
  const LlamaConfig& c = cfg_;
  const std::string prefix = names_->prefix;
  const int64_t D = c.hidden, I = c.intermediate, KV = static_cast<int64_t>(c.n_kv_heads) * c.head_dim;
  const int depth = c.n_layers;
  w.matrix({prefix + "embed_tokens.weight", {c.vocab, D}, TensorRole::Embedding}, embed_);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = prefix + "layers." + std::to_string(l) + ".";
    LlamaLayer& L = layers_[l];
    const std::string text = L.multiway ? ".multiway.0" : "", visual = ".multiway.1";
    walk_rms_norm(w, p + "input_layernorm" + text, L.ln1, D);
    walk_rms_norm(w, p + "post_attention_layernorm" + text, L.ln2, D);
    walk_linear(w, p + "self_attn.q_proj", L.q, {D, D});
    walk_linear(w, p + "self_attn.k_proj" + text, L.k, {KV, D});
    walk_linear(w, p + "self_attn.v_proj" + text, L.v, {KV, D});
    if (names_->rotary_buffers) {
      std::vector<float> unread;
      TensorDesc t{p + "self_attn.rotary_emb.inv_freq", {c.head_dim / 2}, TensorRole::Rotary};
      t.used = false;
      w.vector(t, unread);
    }
    if (L.multiway) {
      walk_rms_norm(w, p + "input_layernorm" + visual, L.ln1_visual, D);
      walk_rms_norm(w, p + "post_attention_layernorm" + visual, L.ln2_visual, D);
      walk_linear(w, p + "self_attn.k_proj" + visual, L.k_visual, {KV, D});
      walk_linear(w, p + "self_attn.v_proj" + visual, L.v_visual, {KV, D});
    }
    walk_linear(w, p + "self_attn.o_proj", L.o, {D, D, false, true, depth});
    walk_linear(w, p + "mlp.gate_proj", L.gate, {I, D});
    walk_linear(w, p + "mlp.up_proj", L.up, {I, D});
    walk_linear(w, p + "mlp.down_proj", L.down, {D, I, false, true, depth});
  }
  walk_rms_norm(w, prefix + "norm", norm_, D);
  if (tie_lm_head_) lm_head_ = embed_;
  else {
    TensorDesc t{names_->lm_head, {c.vocab, D}, TensorRole::Weight, D};
    t.unembedding = true;
    w.matrix(t, lm_head_);
  }
}

void LlamaDecoder::embed(const int32_t* ids, int64_t n, float* out) const {
  const int64_t D = cfg_.hidden;
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= embed_.rows) fail("token id ", ids[i], " is outside the vocabulary (", embed_.rows, ")");
    weight_row_f32(embed_, ids[i], 0, D, out + i * D);
  }
}

namespace {

// RMSNorm with a per-row choice between the text and visual weights.
void norm_rows(const float* x, const std::vector<float>& w, const std::vector<float>* w_visual, const uint8_t* visual,
               float eps, int64_t rows, int64_t D, float* y) {
  if (!w_visual || !visual) return rms_norm(x, w.data(), eps, rows, D, y);
  for (int64_t r = 0; r < rows; ++r)
    rms_norm(x + r * D, (visual[r] ? *w_visual : w).data(), eps, 1, D, y + r * D);
}

// y = lin(x) for text rows, lin_visual(x) for visual rows.
void project_rows(const LinearW& lin, const LinearW* lin_visual, const uint8_t* visual, const float* x, int64_t rows,
                  float* y) {
  lin(x, rows, y);
  if (!lin_visual || !visual) return;
  const int64_t D = lin.in(), N = lin.out();
  std::vector<int64_t> idx;
  for (int64_t r = 0; r < rows; ++r)
    if (visual[r]) idx.push_back(r);
  if (idx.empty()) return;
  std::vector<float> xs(idx.size() * D), ys(idx.size() * N);
  for (size_t i = 0; i < idx.size(); ++i) std::memcpy(&xs[i * D], x + idx[i] * D, D * sizeof(float));
  (*lin_visual)(xs.data(), static_cast<int64_t>(idx.size()), ys.data());
  for (size_t i = 0; i < idx.size(); ++i) std::memcpy(y + idx[i] * N, &ys[i * N], N * sizeof(float));
}

}  // namespace

void LlamaDecoder::forward(float* x, int64_t rows, KVCache& cache, int step, const CaptureSet& cap,
                           const uint8_t* visual, LlamaTape* tape, int first_layer) const {
  const int64_t D = cfg_.hidden, I = cfg_.intermediate;
  const int nh = cfg_.n_heads, nkv = cfg_.n_kv_heads, hd = cfg_.head_dim;
  const int64_t pos0 = cache.len;
  if (pos0 + rows > cache.capacity)
    fail("sequence of ", pos0 + rows, " tokens exceeds the KV cache capacity ", cache.capacity);
  if (first_layer < 0 || first_layer > cfg_.n_layers) fail("internal: first layer ", first_layer, " out of range");
  if (tape) {
    if (pos0 != 0 || first_layer != 0) fail("internal: a recorded forward must start at position 0 and layer 0");
    tape->rows = rows;
    tape->layers.assign(cfg_.n_layers, {});
  }
  std::vector<float> h(rows * D), q(rows * D), att(rows * D);
  std::vector<float> g(rows * I), u(rows * I);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  auto emit = [&](Hook hk, int l, int64_t width, float* data) {
    if (cap.any(hk, l)) cap.emit(hk, l, step, pos0, rows, width, data);
  };
  for (int l = first_layer; l < cfg_.n_layers; ++l) {
    const LlamaLayer& L = layers_[l];
    const bool mw = L.multiway && visual;
    LlamaLayerTape* T = tape ? &tape->layers[l] : nullptr;
    if (T && mw) fail("internal: recording a forward through modality-adaptive layers is not supported");
    if (T) T->x.assign(x, x + rows * D);
    emit(Hook::ResidPre, l, D, x);
    norm_rows(x, L.ln1, mw ? &L.ln1_visual : nullptr, visual, cfg_.rms_eps, rows, D, h.data());
    emit(Hook::Ln1, l, D, h.data());
    L.q(h.data(), rows, q.data());
    rope_.apply(q.data(), rows, nh, pos0);
    float* kc = cache.k[l].data() + pos0 * cache.width;
    float* vc = cache.v[l].data() + pos0 * cache.width;
    project_rows(L.k, mw ? &L.k_visual : nullptr, visual, h.data(), rows, kc);
    rope_.apply(kc, rows, nkv, pos0);
    project_rows(L.v, mw ? &L.v_visual : nullptr, visual, h.data(), rows, vc);
    attention(q.data(), rows, pos0, cache.k[l].data(), cache.v[l].data(), pos0 + rows, cache.width, nh, nkv, hd,
              scale, /*causal=*/true, att.data());
    if (T) {
      T->h1 = h, T->q = q, T->att = att;
      T->k.assign(kc, kc + rows * cache.width);
      T->v.assign(vc, vc + rows * cache.width);
    }
    L.o(att.data(), rows, h.data());
    emit(Hook::AttnOut, l, D, h.data());
    add_inplace(x, h.data(), rows * D);
    emit(Hook::ResidMid, l, D, x);
    if (T) T->x_mid.assign(x, x + rows * D);
    norm_rows(x, L.ln2, mw ? &L.ln2_visual : nullptr, visual, cfg_.rms_eps, rows, D, h.data());
    emit(Hook::Ln2, l, D, h.data());
    L.gate(h.data(), rows, g.data());
    emit(Hook::MlpPre, l, I, g.data());
    L.up(h.data(), rows, u.data());
    emit(Hook::MlpPreLinear, l, I, u.data());
    if (T) T->h2 = h, T->gate = g, T->up = u;
    silu_inplace(g.data(), rows * I);
    emit(Hook::MlpAct, l, I, g.data());
    mul_inplace(g.data(), u.data(), rows * I);
    emit(Hook::MlpPost, l, I, g.data());
    if (T) T->post = g;
    L.down(g.data(), rows, h.data());
    emit(Hook::MlpOut, l, D, h.data());
    add_inplace(x, h.data(), rows * D);
    emit(Hook::ResidPost, l, D, x);
  }
  cache.len = pos0 + rows;
}

void LlamaDecoder::final_norm(const float* x, int64_t rows, float* y) const {
  rms_norm(x, norm_.data(), cfg_.rms_eps, rows, cfg_.hidden, y);
}

void LlamaDecoder::logits(const float* y, int64_t rows, float* out) const { linear(y, rows, lm_head_, nullptr, out); }

}  // namespace mmn
