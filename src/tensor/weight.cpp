#include "tensor/weight.h"

#include <algorithm>
#include <cmath>

#include "kernels/convert.h"
#include "util/error.h"

namespace mmn {

Weight Weight::from(const TensorRef& t) {
  if (t.dtype == DType::I8)
    fail(t.file, ": tensor ", t.name, " is int8 but the checkpoint has no scale tensor ", t.name, "_scale for it");
  if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
    fail(t.file, ": tensor ", t.name, " has dtype ", dtype_name(t.dtype), ", expected F32, F16 or BF16");
  Weight w;
  w.dtype = t.dtype;
  w.rows = t.shape.empty() ? 1 : t.shape[0];
  w.cols = w.rows ? t.numel() / w.rows : 0;
  w.data = t.data;
  return w;
}

Weight Weight::quantized(const TensorRef& q, const TensorRef& s) {
  if (q.dtype != DType::I8) fail(q.file, ": tensor ", q.name, " has a scale tensor but dtype ", dtype_name(q.dtype), ", expected I8");
  if (q.shape.size() != 2) fail(q.file, ": int8 tensor ", q.name, " has shape ", q.shape_str(), ", expected 2-D");
  const std::vector<int64_t> want{q.shape[0], q8_blocks(q.shape[1])};
  if (s.dtype != DType::F16) fail(s.file, ": scale tensor ", s.name, " has dtype ", dtype_name(s.dtype), ", expected F16");
  if (s.shape != want)
    fail(s.file, ": scale tensor ", s.name, " has shape ", s.shape_str(), ", expected [", want[0], ", ", want[1],
         "] (one per ", kQ8Block, " columns of ", q.name, " ", q.shape_str(), ")");
  Weight w;
  w.dtype = DType::I8;
  w.rows = q.shape[0];
  w.cols = q.shape[1];
  w.data = q.data;
  w.scales = static_cast<const uint16_t*>(s.data);
  return w;
}

Weight Weight::slice_rows(int64_t r0, int64_t n) const {
  Weight w = *this;
  w.data = row_ptr(r0);
  if (scales) w.scales = row_scales(r0);
  w.rows = n;
  return w;
}

void weight_row_f32(const Weight& W, int64_t r, int64_t c0, int64_t n, float* dst) {
  if (W.dtype != DType::I8) return convert_to_f32(W.dtype, W.row_ptr(r) + c0 * W.elem_size(), dst, n);
  const int8_t* q = reinterpret_cast<const int8_t*>(W.row_ptr(r));
  const uint16_t* s = W.row_scales(r);
  for (int64_t c = c0; c < c0 + n;) {
    const int64_t b = c / kQ8Block, end = std::min(c0 + n, (b + 1) * kQ8Block);
    const float d = f16_to_f32(s[b]);
    for (; c < end; ++c) *dst++ = static_cast<float>(q[c]) * d;
  }
}

float weight_at(const Weight& W, int64_t r, int64_t c) {
  if (W.dtype != DType::I8) return load_f32(W.dtype, W.row_ptr(r), c);
  return static_cast<float>(reinterpret_cast<const int8_t*>(W.row_ptr(r))[c]) * f16_to_f32(W.row_scales(r)[c / kQ8Block]);
}

void weight_column_f32(const Weight& W, int64_t c, float* dst) {
  for (int64_t r = 0; r < W.rows; ++r) dst[r] = weight_at(W, r, c);
}

void quantize_row_q8(const float* w, int64_t n, int8_t* q, uint16_t* s) {
  for (int64_t b = 0; b * kQ8Block < n; ++b) {
    const int64_t c0 = b * kQ8Block, c1 = std::min(n, c0 + kQ8Block);
    float amax = 0.f;
    for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(w[c]));
    if (!std::isfinite(amax)) fail("quantize: a weight is not finite (", amax, ")");
    // d = amax/127 rounded up to an F16 value, so |w/d| ≤ 127 and no q clips.
    const float d = amax / 127.f;
    uint16_t h = f32_to_f16(d);
    if (f16_to_f32(h) < d) ++h;  // positive F16 bit patterns are ordered like their values
    const float dq = f16_to_f32(h);
    if (!std::isfinite(dq)) fail("quantize: a weight block's scale ", d, " overflows F16");
    s[b] = h;
    for (int64_t c = c0; c < c1; ++c) {
      // |w/dq| ≤ 127 up to the division's rounding; the clamp only guards that.
      const float r = dq > 0.f ? std::round(w[c] / dq) : 0.f;
      q[c] = static_cast<int8_t>(std::clamp(r, -127.f, 127.f));
    }
  }
}

std::vector<float> to_f32(const TensorRef& t) {
  if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
    fail(t.file, ": tensor ", t.name, " has dtype ", dtype_name(t.dtype), ", expected F32, F16 or BF16");
  std::vector<float> v(t.numel());
  convert_to_f32(t.dtype, t.data, v.data(), t.numel());
  return v;
}

}  // namespace mmn
