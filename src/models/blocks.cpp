#include "models/blocks.h"

#include <algorithm>
#include <cmath>
#include <cstring>

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

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::QuickGelu: return "quick_gelu";
    case Activation::GeluErf: return "gelu";
    case Activation::Silu: return "silu";
  }
  return "?";
}

void apply_activation(Activation a, float* x, int64_t n) {
  switch (a) {
    case Activation::QuickGelu: return quick_gelu_inplace(x, n);
    case Activation::GeluErf: return gelu_erf_inplace(x, n);
    case Activation::Silu: return silu_inplace(x, n);
  }
}

void LinearW::operator()(const float* x, int64_t M, float* y) const {
  linear(x, M, w, b.empty() ? nullptr : b.data(), y);
}

LinearW slice_rows(const LinearW& fused, int64_t r0, int64_t n) {
  LinearW l;
  l.w = fused.w.slice_rows(r0, n);
  if (!fused.b.empty()) l.b.assign(fused.b.begin() + r0, fused.b.begin() + r0 + n);
  return l;
}

void VitLayer::forward(float* x, int64_t rows, VitLayerTape* tape) const {
  const int64_t D = o.out();
  const int hd = static_cast<int>(D / heads);
  std::vector<float> h(rows * D), qb(rows * D), kb(rows * D), vb(rows * D), att(rows * D);
  if (tape) tape->x.assign(x, x + rows * D);
  layer_norm(x, ln1.w.data(), ln1.b.data(), eps, rows, D, h.data());
  if (qkv_layout == QkvLayout::FusedHeadMajor) {
    std::vector<float> fused(rows * 3 * D);
    qkv(h.data(), rows, fused.data());
    for (int64_t r = 0; r < rows; ++r)
      for (int hh = 0; hh < heads; ++hh) {
        const float* src = fused.data() + r * 3 * D + static_cast<int64_t>(hh) * 3 * hd;
        const int64_t dst = r * D + static_cast<int64_t>(hh) * hd;
        std::copy(src, src + hd, qb.data() + dst);
        std::copy(src + hd, src + 2 * hd, kb.data() + dst);
        std::copy(src + 2 * hd, src + 3 * hd, vb.data() + dst);
      }
  } else if (qkv_layout == QkvLayout::Fused) {
    // Row slices of the fused weight (views, no copy of the matrix).
    slice_rows(qkv, 0, D)(h.data(), rows, qb.data());
    slice_rows(qkv, D, D)(h.data(), rows, kb.data());
    slice_rows(qkv, 2 * D, D)(h.data(), rows, vb.data());
  } else {
    q(h.data(), rows, qb.data());
    k(h.data(), rows, kb.data());
    v(h.data(), rows, vb.data());
  }
  attention(qb.data(), rows, 0, kb.data(), vb.data(), rows, D, heads, heads, hd,
            1.0f / std::sqrt(static_cast<float>(hd)), /*causal=*/false, att.data());
  if (tape) tape->h1 = h, tape->q = qb, tape->k = kb, tape->v = vb, tape->att = att;
  o(att.data(), rows, h.data());
  add_inplace(x, h.data(), rows * D);
  if (tape) tape->x_mid.assign(x, x + rows * D);
  layer_norm(x, ln2.w.data(), ln2.b.data(), eps, rows, D, h.data());
  std::vector<float> mid(rows * fc1.out());
  fc1(h.data(), rows, mid.data());
  if (tape) tape->h2 = h, tape->pre_act = mid;
  apply_activation(act, mid.data(), static_cast<int64_t>(mid.size()));
  if (tape) tape->act = mid;
  fc2(mid.data(), rows, h.data());
  add_inplace(x, h.data(), rows * D);
}

}  // namespace mmn
