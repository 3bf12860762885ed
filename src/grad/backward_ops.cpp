#include "grad/backward_ops.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/convert.h"
#include "kernels/linear.h"
#include "kernels/threading.h"

namespace mmn {

namespace {

// Contiguous band [b0, b1) of n for thread t of T, rounded to multiples of 16.
void band(int64_t n, int t, int T, int64_t* b0, int64_t* b1) {
  *b0 = t == 0 ? 0 : std::min(n, (n * t / T) / 16 * 16);
  *b1 = t + 1 == T ? n : std::min(n, (n * (t + 1) / T) / 16 * 16);
}

// Rows of W converted per tile when the weight is not fp32 (about 1 MiB of fp32).
int64_t tile_rows(int64_t cols) { return std::max<int64_t>(16, ((1 << 18) / std::max<int64_t>(cols, 1)) / 16 * 16); }

}  // namespace

void linear_backward(const float* x, const float* dy, int64_t M, const Weight& W, float* dx, float* dW, float* db) {
  init_threads();
  const int64_t N = W.rows, K = W.cols;
  if (M <= 0) return;
  if (dx) {
    // dx[:, band] += dy · W[:, band]: threads own disjoint column bands of dx.
#pragma omp parallel num_threads(num_threads()) if (M * N * K > (1 << 20))
    {
      int64_t k0, k1;
      band(K, omp_get_thread_num(), omp_get_num_threads(), &k0, &k1);
      const int64_t nk = k1 - k0;
      if (nk > 0) {
        if (W.dtype == DType::F32) {
          const float* w = static_cast<const float*>(W.data);
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, nk, N, 1.f, dy, N, w + k0, K, 1.f, dx + k0, K);
        } else {
          const int64_t tn = tile_rows(nk);
          std::vector<float> buf(static_cast<size_t>(std::min(tn, N) * nk));
          for (int64_t n0 = 0; n0 < N; n0 += tn) {
            const int64_t nb = std::min(tn, N - n0);
            for (int64_t r = 0; r < nb; ++r)
              weight_row_f32(W, n0 + r, k0, nk, buf.data() + r * nk);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, nk, nb, 1.f, dy + n0, N, buf.data(), nk, 1.f,
                        dx + k0, K);
          }
        }
      }
    }
  }
  if (dW) {
    // dW[band, :] += dy[:, band]ᵀ · x: threads own disjoint row bands of dW.
#pragma omp parallel num_threads(num_threads()) if (M * N * K > (1 << 20))
    {
      int64_t n0, n1;
      band(N, omp_get_thread_num(), omp_get_num_threads(), &n0, &n1);
      if (n1 > n0)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n1 - n0, K, M, 1.f, dy + n0, N, x, K, 1.f, dW + n0 * K, K);
    }
  }
  if (db)
    for (int64_t m = 0; m < M; ++m) {
      const float* r = dy + m * N;
      for (int64_t n = 0; n < N; ++n) db[n] += r[n];
    }
}

void embedding_backward(const int32_t* ids, int64_t n, const float* dy, int64_t D, float* dE) {
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0) continue;
    float* e = dE + static_cast<int64_t>(ids[i]) * D;
    const float* g = dy + i * D;
    for (int64_t d = 0; d < D; ++d) e[d] += g[d];
  }
}

void layer_norm_backward(const float* x, const float* w, float eps, int64_t rows, int64_t D, const float* dy, float* dx,
                         float* dw, float* db) {
  std::vector<float> xhat(D), g(D);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * D;
    const float* dyr = dy + r * D;
    // The same statistics as the forward (double accumulation, fp32 result).
    double mean = 0;
    for (int64_t d = 0; d < D; ++d) mean += xr[d];
    mean /= static_cast<double>(D);
    double var = 0;
    for (int64_t d = 0; d < D; ++d) var += (xr[d] - mean) * (xr[d] - mean);
    var /= static_cast<double>(D);
    const float m = static_cast<float>(mean);
    const float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
    double sg = 0, sgx = 0;
    for (int64_t d = 0; d < D; ++d) {
      xhat[d] = (xr[d] - m) * inv;
      g[d] = dyr[d] * w[d];
      sg += g[d];
      sgx += static_cast<double>(g[d]) * xhat[d];
      if (dw) dw[d] += dyr[d] * xhat[d];
      if (db) db[d] += dyr[d];
    }
    const float mg = static_cast<float>(sg / static_cast<double>(D));
    const float mgx = static_cast<float>(sgx / static_cast<double>(D));
    float* dxr = dx + r * D;
    for (int64_t d = 0; d < D; ++d) dxr[d] += inv * (g[d] - mg - xhat[d] * mgx);
  }
}

void rms_norm_backward(const float* x, const float* w, float eps, int64_t rows, int64_t D, const float* dy, float* dx,
                       float* dw) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * D;
    const float* dyr = dy + r * D;
    float ss = 0.f;
    for (int64_t d = 0; d < D; ++d) ss += xr[d] * xr[d];
    const float inv = 1.f / std::sqrt(ss / static_cast<float>(D) + eps);
    double sgx = 0;
    for (int64_t d = 0; d < D; ++d) {
      sgx += static_cast<double>(dyr[d]) * w[d] * xr[d];
      if (dw) dw[d] += dyr[d] * xr[d] * inv;
    }
    // y = w ⊙ x · inv, ∂inv/∂x = −inv³ x / D.
    const float c = static_cast<float>(sgx) * inv * inv * inv / static_cast<float>(D);
    float* dxr = dx + r * D;
    for (int64_t d = 0; d < D; ++d) dxr[d] += dyr[d] * w[d] * inv - c * xr[d];
  }
}

void rope_backward(const Rope& rope, float* dx, int64_t rows, int n_heads, int64_t pos0) {
  const int hd = rope.head_dim, half = hd / 2;
  std::vector<float> c(half), s(half);
  for (int64_t r = 0; r < rows; ++r) {
    const float p = static_cast<float>(pos0 + r);
    for (int j = 0; j < half; ++j) {
      const float f = p * rope.inv_freq[j];  // the forward's angles exactly
      c[j] = static_cast<float>(std::cos(static_cast<double>(f)));
      s[j] = static_cast<float>(std::sin(static_cast<double>(f)));
    }
    for (int h = 0; h < n_heads; ++h) {
      float* v = dx + (r * n_heads + h) * hd;
      for (int j = 0; j < half; ++j) {
        const float a = v[j], b = v[j + half];
        v[j] = a * c[j] + b * s[j];
        v[j + half] = b * c[j] - a * s[j];
      }
    }
  }
}

void attention_backward(const float* q, int64_t Sq, int64_t q_pos0, const float* k, const float* v, int64_t Sk,
                        int64_t kv_stride, int nh, int nkv, int hd, float scale, bool causal, const float* dout,
                        float* dq, float* dk, float* dv) {
  init_threads();
  const int group = nh / nkv;
  const int64_t q_stride = static_cast<int64_t>(nh) * hd;
  // One kv head per task: its q heads all add into the same dk/dv columns.
#pragma omp parallel num_threads(num_threads()) if (Sq * Sk * hd * nh > (1 << 18))
  {
    std::vector<float> P, dP;
#pragma omp for schedule(dynamic, 1)
    for (int g = 0; g < nkv; ++g) {
      const float* kh = k + g * hd;
      const float* vh = v + g * hd;
      float* dkh = dk + g * hd;
      float* dvh = dv + g * hd;
      P.resize(static_cast<size_t>(Sq * Sk));
      dP.resize(static_cast<size_t>(Sq * Sk));
      for (int h = g * group; h < (g + 1) * group; ++h) {
        const float* qh = q + h * hd;
        const float* doh = dout + h * hd;
        float* dqh = dq + h * hd;
        // P = softmax(scale · Q Kᵀ) as in the forward.
        sgemm_1t(true, Sq, Sk, hd, scale, qh, q_stride, kh, kv_stride, 0.f, P.data(), Sk);
        masked_softmax_rows(P.data(), Sq, Sk, q_pos0, causal);
        // dV += Pᵀ dO; dP = dO Vᵀ.
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Sk, hd, Sq, 1.f, P.data(), Sk, doh, q_stride, 1.f, dvh,
                    kv_stride);
        sgemm_1t(true, Sq, Sk, hd, 1.f, doh, q_stride, vh, kv_stride, 0.f, dP.data(), Sk);
        // dS = P ⊙ (dP − Σ_j P dP), then scaled: the gradient of the pre-scale product.
        for (int64_t i = 0; i < Sq; ++i) {
          const float* p = P.data() + i * Sk;
          float* d = dP.data() + i * Sk;
          double dot = 0;
          for (int64_t j = 0; j < Sk; ++j) dot += static_cast<double>(p[j]) * d[j];
          const float fd = static_cast<float>(dot);
          for (int64_t j = 0; j < Sk; ++j) d[j] = scale * p[j] * (d[j] - fd);
        }
        // dQ += dS K; dK += dSᵀ Q.
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Sq, hd, Sk, 1.f, dP.data(), Sk, kh, kv_stride, 1.f, dqh,
                    q_stride);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Sk, hd, Sq, 1.f, dP.data(), Sk, qh, q_stride, 1.f, dkh,
                    kv_stride);
      }
    }
  }
}

void silu_backward(const float* pre, const float* dy, float* dx, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float s = 1.f / (1.f + std::exp(-pre[i]));
    dx[i] += dy[i] * s * (1.f + pre[i] * (1.f - s));
  }
}

void gelu_erf_backward(const float* pre, const float* dy, float* dx, int64_t n) {
  constexpr float kInvSqrt2 = 0.70710678118654752f, kInvSqrt2Pi = 0.39894228040143268f;
  for (int64_t i = 0; i < n; ++i) {
    const float x = pre[i];
    const float cdf = 0.5f * (1.f + std::erf(x * kInvSqrt2));
    dx[i] += dy[i] * (cdf + x * kInvSqrt2Pi * std::exp(-0.5f * x * x));
  }
}

void quick_gelu_backward(const float* pre, const float* dy, float* dx, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float s = 1.f / (1.f + std::exp(-1.702f * pre[i]));
    dx[i] += dy[i] * s * (1.f + 1.702f * pre[i] * (1.f - s));
  }
}

void activation_backward(Activation a, const float* pre, const float* dy, float* dx, int64_t n) {
  switch (a) {
    case Activation::QuickGelu: return quick_gelu_backward(pre, dy, dx, n);
    case Activation::GeluErf: return gelu_erf_backward(pre, dy, dx, n);
    case Activation::Silu: return silu_backward(pre, dy, dx, n);
  }
}

void swiglu_backward(const float* gate, const float* up, const float* dy, float* dgate, float* dup, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float s = 1.f / (1.f + std::exp(-gate[i]));
    const float a = gate[i] * s;
    dup[i] += dy[i] * a;
    dgate[i] += dy[i] * up[i] * s * (1.f + gate[i] * (1.f - s));
  }
}

double softmax_cross_entropy(const float* logits, int64_t rows, int64_t V, const int32_t* targets, float scale,
                             float* dlogits) {
  double loss = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* z = logits + r * V;
    float mx = -INFINITY;
    for (int64_t j = 0; j < V; ++j) mx = std::max(mx, z[j]);
    double sum = 0;
    for (int64_t j = 0; j < V; ++j) sum += std::exp(static_cast<double>(z[j] - mx));
    const double lse = mx + std::log(sum);
    loss += lse - z[targets[r]];
    if (dlogits) {
      float* g = dlogits + r * V;
      for (int64_t j = 0; j < V; ++j) g[j] = scale * static_cast<float>(std::exp(z[j] - lse));
      g[targets[r]] -= scale;
    }
  }
  return loss;
}

}  // namespace mmn
