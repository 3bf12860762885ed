#include "grad/model_backward.h"

#include <cmath>
#include <vector>

#include "grad/backward_ops.h"
#include "util/error.h"

namespace mmn {

namespace {

// Parameter gradients of a linear layer in sink g (weight, bias).
void linear_bw(const LinearW& lin, const float* x, const float* dy, int64_t M, float* dx, GradSink* g) {
  linear_backward(x, dy, M, lin.w, dx, grad_of(g, lin.w.data), lin.b.empty() ? nullptr : grad_of(g, lin.b.data()));
}

}  // namespace

void vit_layer_backward(const VitLayer& L, const VitLayerTape& t, int64_t rows, float* dx, GradSink* g) {
  const int64_t D = L.o.out(), I = L.fc1.out();
  const int hd = static_cast<int>(D / L.heads);
  // MLP branch: x2 = x1 + fc2(act(fc1(ln2(x1)))).
  std::vector<float> dact(rows * I, 0.f), dpre(rows * I, 0.f), dh(rows * D, 0.f);
  linear_bw(L.fc2, t.act.data(), dx, rows, dact.data(), g);
  activation_backward(L.act, t.pre_act.data(), dact.data(), dpre.data(), rows * I);
  linear_bw(L.fc1, t.h2.data(), dpre.data(), rows, dh.data(), g);
  layer_norm_backward(t.x_mid.data(), L.ln2.w.data(), L.eps, rows, D, dh.data(), dx, grad_of(g, L.ln2.w.data()),
                      grad_of(g, L.ln2.b.data()));
  // Attention branch: x1 = x + o(attn(q, k, v)), q/k/v = proj(ln1(x)).
  std::vector<float> datt(rows * D, 0.f), dq(rows * D, 0.f), dk(rows * D, 0.f), dv(rows * D, 0.f);
  linear_bw(L.o, t.att.data(), dx, rows, datt.data(), g);
  attention_backward(t.q.data(), rows, 0, t.k.data(), t.v.data(), rows, D, L.heads, L.heads, hd,
                     1.0f / std::sqrt(static_cast<float>(hd)), /*causal=*/false, datt.data(), dq.data(), dk.data(),
                     dv.data());
  std::fill(dh.begin(), dh.end(), 0.f);
  if (L.qkv_layout != QkvLayout::Separate) {
    // Gather the three gradients back into the fused layout: (head, {q, k, v}, hd)
    // for head-major, q | k | v otherwise (one "head" of width D).
    const bool head_major = L.qkv_layout == QkvLayout::FusedHeadMajor;
    const int groups = head_major ? L.heads : 1;
    const int64_t w = head_major ? hd : D;
    std::vector<float> dfused(rows * 3 * D);
    for (int64_t r = 0; r < rows; ++r)
      for (int hh = 0; hh < groups; ++hh) {
        float* dst = dfused.data() + r * 3 * D + static_cast<int64_t>(hh) * 3 * w;
        const int64_t src = r * D + static_cast<int64_t>(hh) * w;
        std::copy(dq.begin() + src, dq.begin() + src + w, dst);
        std::copy(dk.begin() + src, dk.begin() + src + w, dst + w);
        std::copy(dv.begin() + src, dv.begin() + src + w, dst + 2 * w);
      }
    linear_bw(L.qkv, t.h1.data(), dfused.data(), rows, dh.data(), g);
  } else {
    linear_bw(L.q, t.h1.data(), dq.data(), rows, dh.data(), g);
    linear_bw(L.k, t.h1.data(), dk.data(), rows, dh.data(), g);
    linear_bw(L.v, t.h1.data(), dv.data(), rows, dh.data(), g);
  }
  layer_norm_backward(t.x.data(), L.ln1.w.data(), L.eps, rows, D, dh.data(), dx, grad_of(g, L.ln1.w.data()),
                      grad_of(g, L.ln1.b.data()));
}

void vit_backward(const VitTower& tower, const VitTape& tape, int state, const float* dstate, GradSink* g) {
  const VitConfig& c = tower.config();
  const int64_t D = c.hidden, P = c.patches(), T = P + 1;
  if (state < 0 || state > static_cast<int>(tape.layers.size()))
    fail("internal: the tape holds ", tape.layers.size(), " vision layers, backward needs ", state);
  std::vector<float> dx(dstate, dstate + T * D);
  for (int l = state - 1; l >= 0; --l) vit_layer_backward(tower.layer(l), tape.layers[l], T, dx.data(), g);
  // x = pre_layernorm(embed) (when the tower has one), embed = [cls; patches · Wᵀ + b] + pos.
  std::vector<float> de(T * D, 0.f);
  const NormW& ln = tower.pre_layernorm();
  if (ln.w.empty()) de = dx;
  else
    layer_norm_backward(tape.embed.data(), ln.w.data(), c.eps, T, D, dx.data(), de.data(), grad_of(g, ln.w.data()),
                        grad_of(g, ln.b.data()));
  if (float* gp = grad_of(g, tower.position_embedding().data()))
    for (int64_t i = 0; i < T * D; ++i) gp[i] += de[i];
  if (float* gc = grad_of(g, tower.class_embedding().data()))
    for (int64_t i = 0; i < D; ++i) gc[i] += de[i];
  float* gw = grad_of(g, tower.patch_embedding().data);
  float* gb = tower.patch_bias().empty() ? nullptr : grad_of(g, tower.patch_bias().data());
  if (gw || gb) linear_backward(tape.patches.data(), de.data() + D, P, tower.patch_embedding(), nullptr, gw, gb);
}

void llama_backward(const LlamaDecoder& dec, const LlamaTape& tape, float* dx, GradSink* g,
                    const std::function<void(int layer, const float* dpost)>& on_mlp_grad) {
  const LlamaConfig& c = dec.config();
  const int64_t rows = tape.rows, D = c.hidden, I = c.intermediate;
  const int nh = c.n_heads, nkv = c.n_kv_heads, hd = c.head_dim;
  const int64_t KV = static_cast<int64_t>(nkv) * hd;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  if (static_cast<int>(tape.layers.size()) != c.n_layers) fail("internal: the decoder tape is incomplete");
  std::vector<float> dpost(rows * I), dgate(rows * I), dup(rows * I), dh(rows * D), datt(rows * D), dq(rows * D),
      dk(rows * KV), dv(rows * KV);
  for (int l = c.n_layers - 1; l >= 0; --l) {
    const LlamaLayer& L = dec.layer(l);
    const LlamaLayerTape& t = tape.layers[l];
    // MLP: x2 = x1 + down(SiLU(gate(h2)) ⊙ up(h2)), h2 = rms(x1).
    std::fill(dpost.begin(), dpost.end(), 0.f);
    std::fill(dgate.begin(), dgate.end(), 0.f);
    std::fill(dup.begin(), dup.end(), 0.f);
    std::fill(dh.begin(), dh.end(), 0.f);
    linear_bw(L.down, t.post.data(), dx, rows, dpost.data(), g);
    if (on_mlp_grad) on_mlp_grad(l, dpost.data());
    swiglu_backward(t.gate.data(), t.up.data(), dpost.data(), dgate.data(), dup.data(), rows * I);
    linear_bw(L.gate, t.h2.data(), dgate.data(), rows, dh.data(), g);
    linear_bw(L.up, t.h2.data(), dup.data(), rows, dh.data(), g);
    rms_norm_backward(t.x_mid.data(), L.ln2.data(), c.rms_eps, rows, D, dh.data(), dx, grad_of(g, L.ln2.data()));
    // Attention: x1 = x + o(attn(rope(q(h1)), rope(k(h1)), v(h1))), h1 = rms(x).
    std::fill(datt.begin(), datt.end(), 0.f);
    std::fill(dq.begin(), dq.end(), 0.f);
    std::fill(dk.begin(), dk.end(), 0.f);
    std::fill(dv.begin(), dv.end(), 0.f);
    std::fill(dh.begin(), dh.end(), 0.f);
    linear_bw(L.o, t.att.data(), dx, rows, datt.data(), g);
    attention_backward(t.q.data(), rows, 0, t.k.data(), t.v.data(), rows, KV, nh, nkv, hd, scale, /*causal=*/true,
                       datt.data(), dq.data(), dk.data(), dv.data());
    rope_backward(dec.rope(), dq.data(), rows, nh, 0);
    rope_backward(dec.rope(), dk.data(), rows, nkv, 0);
    linear_bw(L.q, t.h1.data(), dq.data(), rows, dh.data(), g);
    linear_bw(L.k, t.h1.data(), dk.data(), rows, dh.data(), g);
    linear_bw(L.v, t.h1.data(), dv.data(), rows, dh.data(), g);
    rms_norm_backward(t.x.data(), L.ln1.data(), c.rms_eps, rows, D, dh.data(), dx, grad_of(g, L.ln1.data()));
  }
}

}  // namespace mmn
