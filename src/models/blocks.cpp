#include "models/blocks.h"

#include <cmath>

#include "kernels/linear.h"
#include "kernels/ops.h"
#include "util/error.h"

namespace mmn {

Activation parse_activation(const std::string& name, const std::string& where) {
  if (name == "quick_gelu") return Activation::QuickGelu;
  if (name == "gelu") return Activation::GeluErf;
  if (name == "silu" || name == "swish") return Activation::Silu;
  fail(where, ": unsupported hidden_act '", name, "'");
}

void apply_activation(Activation a, float* x, int64_t n) {
  switch (a) {
    case Activation::QuickGelu: return quick_gelu_inplace(x, n);
    case Activation::GeluErf: return gelu_erf_inplace(x, n);
    case Activation::Silu: return silu_inplace(x, n);
  }
}

LinearW LinearW::load(const SafetensorsCheckpoint& ck, const std::string& name, int64_t out, int64_t in,
                      bool with_bias) {
  LinearW l;
  l.w = Weight::from(ck.get(name + ".weight", {out, in}));
  if (with_bias) l.b = to_f32(ck.get(name + ".bias", {out}));
  return l;
}

void LinearW::operator()(const float* x, int64_t M, float* y) const {
  linear(x, M, w, b.empty() ? nullptr : b.data(), y);
}

NormW NormW::load(const SafetensorsCheckpoint& ck, const std::string& name, int64_t dim, bool with_bias) {
  NormW n;
  n.w = to_f32(ck.get(name + ".weight", {dim}));
  if (with_bias) n.b = to_f32(ck.get(name + ".bias", {dim}));
  return n;
}

LinearW slice_rows(const LinearW& fused, int64_t r0, int64_t n) {
  LinearW l;
  l.w = fused.w;
  l.w.data = fused.w.row_ptr(r0);
  l.w.rows = n;
  if (!fused.b.empty()) l.b.assign(fused.b.begin() + r0, fused.b.begin() + r0 + n);
  return l;
}

void VitLayer::forward(float* x, int64_t rows) const {
  const int64_t D = q.in();
  const int hd = static_cast<int>(D / heads);
  std::vector<float> h(rows * D), qb(rows * D), kb(rows * D), vb(rows * D), att(rows * D);
  layer_norm(x, ln1.w.data(), ln1.b.data(), eps, rows, D, h.data());
  q(h.data(), rows, qb.data());
  k(h.data(), rows, kb.data());
  v(h.data(), rows, vb.data());
  attention(qb.data(), rows, 0, kb.data(), vb.data(), rows, D, heads, heads, hd,
            1.0f / std::sqrt(static_cast<float>(hd)), /*causal=*/false, att.data());
  o(att.data(), rows, h.data());
  add_inplace(x, h.data(), rows * D);
  layer_norm(x, ln2.w.data(), ln2.b.data(), eps, rows, D, h.data());
  std::vector<float> mid(rows * fc1.out());
  fc1(h.data(), rows, mid.data());
  apply_activation(act, mid.data(), static_cast<int64_t>(mid.size()));
  fc2(mid.data(), rows, h.data());
  add_inplace(x, h.data(), rows * D);
}

}  // namespace mmn
