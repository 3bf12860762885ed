#include "kernels/ops.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "kernels/linear.h"
#include "kernels/threading.h"

namespace mmn {

void rms_norm(const float* x, const float* w, float eps, int64_t rows, int64_t D, float* y) {
#pragma omp parallel for if (rows * D > 65536) num_threads(num_threads())
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * D;
    float* yr = y + r * D;
    float ss = 0.f;
    for (int64_t d = 0; d < D; ++d) ss += xr[d] * xr[d];
    const float inv = 1.f / std::sqrt(ss / static_cast<float>(D) + eps);
    for (int64_t d = 0; d < D; ++d) yr[d] = w[d] * (xr[d] * inv);
  }
}

void layer_norm(const float* x, const float* w, const float* b, float eps, int64_t rows, int64_t D, float* y) {
#pragma omp parallel for if (rows * D > 65536) num_threads(num_threads())
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * D;
    float* yr = y + r * D;
    double mean = 0;
    for (int64_t d = 0; d < D; ++d) mean += xr[d];
    mean /= static_cast<double>(D);
    double var = 0;
    for (int64_t d = 0; d < D; ++d) var += (xr[d] - mean) * (xr[d] - mean);
    var /= static_cast<double>(D);
    const float m = static_cast<float>(mean);
    const float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
    for (int64_t d = 0; d < D; ++d) yr[d] = (xr[d] - m) * inv * w[d] + (b ? b[d] : 0.f);
  }
}

void silu_inplace(float* x, int64_t n) {
#pragma omp parallel for if (n > 65536) num_threads(num_threads())
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (1.f + std::exp(-x[i]));
}

void gelu_erf_inplace(float* x, int64_t n) {
#pragma omp parallel for if (n > 65536) num_threads(num_threads())
  for (int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.f + std::erf(x[i] * 0.70710678118654752f));
}

void quick_gelu_inplace(float* x, int64_t n) {
#pragma omp parallel for if (n > 65536) num_threads(num_threads())
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (1.f + std::exp(-1.702f * x[i]));
}

void add_inplace(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void mul_inplace(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] *= x[i];
}

Rope::Rope(int hd, double theta) : head_dim(hd), inv_freq(hd / 2) {
  for (int j = 0; j < hd / 2; ++j)
    inv_freq[j] = 1.0f / std::pow(static_cast<float>(theta), static_cast<float>(2 * j) / static_cast<float>(hd));
}

void Rope::apply(float* x, int64_t rows, int n_heads, int64_t pos0) const {
  const int half = head_dim / 2;
#pragma omp parallel for if (rows > 64) num_threads(num_threads())
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<float> c(half), s(half);
    const float p = static_cast<float>(pos0 + r);
    for (int j = 0; j < half; ++j) {
      const float f = p * inv_freq[j];  // fp32 product, as the reference
      c[j] = static_cast<float>(std::cos(static_cast<double>(f)));
      s[j] = static_cast<float>(std::sin(static_cast<double>(f)));
    }
    for (int h = 0; h < n_heads; ++h) {
      float* v = x + (r * n_heads + h) * head_dim;
      for (int j = 0; j < half; ++j) {
        const float a = v[j], b = v[j + half];
        v[j] = a * c[j] - b * s[j];
        v[j + half] = b * c[j] + a * s[j];
      }
    }
  }
}

void masked_softmax_rows(float* scores, int64_t Sq, int64_t Sk, int64_t q_pos0, bool causal) {
  for (int64_t i = 0; i < Sq; ++i) {
    float* s = scores + i * Sk;
    const int64_t visible = causal ? std::min<int64_t>(Sk, q_pos0 + i + 1) : Sk;
    float mx = -INFINITY;
    for (int64_t j = 0; j < visible; ++j) mx = std::max(mx, s[j]);
    float sum = 0.f;
    for (int64_t j = 0; j < visible; ++j) {
      s[j] = std::exp(s[j] - mx);
      sum += s[j];
    }
    const float inv = 1.f / sum;
    for (int64_t j = 0; j < visible; ++j) s[j] *= inv;
    for (int64_t j = visible; j < Sk; ++j) s[j] = 0.f;
  }
}

void attention(const float* q, int64_t Sq, int64_t q_pos0, const float* k, const float* v, int64_t Sk,
               int64_t kv_stride, int nh, int nkv, int hd, float scale, bool causal, float* out) {
  const int group = nh / nkv;
  const int64_t q_stride = static_cast<int64_t>(nh) * hd;
  const int nt = static_cast<double>(Sq) * Sk * hd * nh < 1e6 ? 1 : num_threads();
#pragma omp parallel num_threads(nt)
  {
    std::vector<float> scores;
#pragma omp for schedule(dynamic, 1)
    for (int h = 0; h < nh; ++h) {
      const int kvh = h / group;
      const float* qh = q + h * hd;
      const float* kh = k + kvh * hd;
      const float* vh = v + kvh * hd;
      float* oh = out + h * hd;
      scores.resize(static_cast<size_t>(Sq * Sk));
      // scores = scale · Q Kᵀ
      sgemm_1t(true, Sq, Sk, hd, scale, qh, q_stride, kh, kv_stride, 0.f, scores.data(), Sk);
      masked_softmax_rows(scores.data(), Sq, Sk, q_pos0, causal);
      // out = P V
      sgemm_1t(false, Sq, hd, Sk, 1.f, scores.data(), Sk, vh, kv_stride, 0.f, oh, q_stride);
    }
  }
}

}  // namespace mmn
