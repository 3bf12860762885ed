#include "neurons/probe_stats.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "util/error.h"

namespace mmn {

std::vector<double> one_vs_rest_auroc(const float* x, int64_t n, int64_t stride, const std::vector<int>& labels,
                                      int classes) {
  if (static_cast<int64_t>(labels.size()) != n)
    fail("internal: AUROC of ", n, " values with ", labels.size(), " labels");
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return x[a * stride] < x[b * stride]; });
  // Mid-ranks (1-based): a run of ties shares the mean of its ranks.
  std::vector<double> rank_sum(static_cast<size_t>(classes), 0.0), count(static_cast<size_t>(classes), 0.0);
  for (int64_t i = 0; i < n;) {
    int64_t j = i;
    while (j + 1 < n && x[order[j + 1] * stride] == x[order[i] * stride]) ++j;
    const double mid = 0.5 * static_cast<double>(i + j) + 1.0;
    for (int64_t k = i; k <= j; ++k) {
      const int c = labels[static_cast<size_t>(order[k])];
      if (c < 0 || c >= classes) fail("internal: label ", c, " outside 0..", classes - 1);
      rank_sum[c] += mid;
      count[c] += 1;
    }
    i = j + 1;
  }
  std::vector<double> out(static_cast<size_t>(classes), std::numeric_limits<double>::quiet_NaN());
  for (int c = 0; c < classes; ++c) {
    const double p = count[c], q = static_cast<double>(n) - p;
    if (p > 0 && q > 0) out[c] = (rank_sum[c] - p * (p + 1) / 2) / (p * q);
  }
  return out;
}

namespace {

// Solves (A) X = B in place for symmetric positive definite A [d, d] and B
// [d, k] (Cholesky; A is overwritten by its factor).
void cholesky_solve(std::vector<double>& A, std::vector<double>& B, int64_t d, int64_t k) {
  for (int64_t j = 0; j < d; ++j) {
    double s = A[j * d + j];
    for (int64_t p = 0; p < j; ++p) s -= A[j * d + p] * A[j * d + p];
    if (!(s > 0)) fail("internal: the ridge system is not positive definite");
    const double l = std::sqrt(s);
    A[j * d + j] = l;
    for (int64_t i = j + 1; i < d; ++i) {
      double t = A[i * d + j];
      for (int64_t p = 0; p < j; ++p) t -= A[i * d + p] * A[j * d + p];
      A[i * d + j] = t / l;
    }
  }
  for (int64_t c = 0; c < k; ++c) {
    for (int64_t i = 0; i < d; ++i) {  // L y = b
      double t = B[i * k + c];
      for (int64_t p = 0; p < i; ++p) t -= A[i * d + p] * B[p * k + c];
      B[i * k + c] = t / A[i * d + i];
    }
    for (int64_t i = d - 1; i >= 0; --i) {  // Lᵀ x = y
      double t = B[i * k + c];
      for (int64_t p = i + 1; p < d; ++p) t -= A[p * d + i] * B[p * k + c];
      B[i * k + c] = t / A[i * d + i];
    }
  }
}

}  // namespace

RidgeProbe RidgeProbe::fit(const std::vector<float>& x, const std::vector<int>& y, int64_t dim, int classes,
                           double lambda) {
  const int64_t n = static_cast<int64_t>(y.size());
  if (n < 1 || dim < 1 || static_cast<int64_t>(x.size()) != n * dim)
    fail("internal: a ridge probe of mismatched sizes");
  RidgeProbe r;
  r.classes = classes, r.dim = dim, r.lambda = lambda;
  r.mean.assign(dim, 0.0);
  r.scale.assign(dim, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t f = 0; f < dim; ++f) r.mean[f] += x[i * dim + f];
  for (double& m : r.mean) m /= static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t f = 0; f < dim; ++f) {
      const double d = x[i * dim + f] - r.mean[f];
      r.scale[f] += d * d;
    }
  for (double& s : r.scale) s = s > 0 ? 1.0 / std::sqrt(s / static_cast<double>(n)) : 0.0;
  std::vector<double> z(static_cast<size_t>(n * dim)), t(static_cast<size_t>(n * classes));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t f = 0; f < dim; ++f) z[i * dim + f] = (x[i * dim + f] - r.mean[f]) * r.scale[f];
  r.bias.assign(classes, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int c = 0; c < classes; ++c) {
      const double v = y[i] == c ? 1.0 : -1.0;
      t[i * classes + c] = v;
      r.bias[c] += v / static_cast<double>(n);
    }
  for (int64_t i = 0; i < n; ++i)
    for (int c = 0; c < classes; ++c) t[i * classes + c] -= r.bias[c];
  // (ZᵀZ + λI) W = Zᵀ T.
  std::vector<double> A(static_cast<size_t>(dim * dim));
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, dim, dim, n, 1.0, z.data(), dim, z.data(), dim, 0.0, A.data(),
              dim);
  for (int64_t f = 0; f < dim; ++f) A[f * dim + f] += lambda;
  r.w.assign(static_cast<size_t>(dim * classes), 0.0);
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, dim, classes, n, 1.0, z.data(), dim, t.data(), classes, 0.0,
              r.w.data(), classes);
  cholesky_solve(A, r.w, dim, classes);
  return r;
}

int RidgeProbe::predict(const float* row) const {
  int best = 0;
  double best_v = -std::numeric_limits<double>::infinity();
  for (int c = 0; c < classes; ++c) {
    double v = bias[c];
    for (int64_t f = 0; f < dim; ++f) v += (row[f] - mean[f]) * scale[f] * w[f * classes + c];
    if (v > best_v) best_v = v, best = c;
  }
  return best;
}

double RidgeProbe::accuracy(const std::vector<float>& x, const std::vector<int>& y) const {
  if (y.empty()) return std::numeric_limits<double>::quiet_NaN();
  int64_t right = 0;
  for (size_t i = 0; i < y.size(); ++i) right += predict(x.data() + static_cast<int64_t>(i) * dim) == y[i];
  return static_cast<double>(right) / static_cast<double>(y.size());
}

RidgeProbe fit_ridge_probe_cv(const std::vector<float>& x, const std::vector<int>& y, int64_t dim, int classes) {
  const int64_t n = static_cast<int64_t>(y.size());
  std::vector<float> xs[2];
  std::vector<int> ys[2];
  for (int64_t i = 0; i < n; ++i) {
    xs[i % 2].insert(xs[i % 2].end(), x.begin() + i * dim, x.begin() + (i + 1) * dim);
    ys[i % 2].push_back(y[i]);
  }
  double best = -1, best_lambda = 1.0 * static_cast<double>(n);
  if (!ys[0].empty() && !ys[1].empty())
    for (double f : {1e-4, 1e-3, 1e-2, 1e-1, 1.0}) {
      const double lambda = f * static_cast<double>(n);
      double acc = 0;
      for (int k = 0; k < 2; ++k)  // penalties scale with the rows they fit
        acc += RidgeProbe::fit(xs[k], ys[k], dim, classes, lambda / 2).accuracy(xs[1 - k], ys[1 - k]) / 2;
      if (acc > best) best = acc, best_lambda = lambda;
    }
  return RidgeProbe::fit(x, y, dim, classes, best_lambda);
}

double majority_accuracy(const std::vector<int>& train, const std::vector<int>& test, int classes,
                         int* majority_class) {
  std::vector<int64_t> count(static_cast<size_t>(classes), 0);
  for (int c : train) ++count[c];
  const int m = static_cast<int>(std::max_element(count.begin(), count.end()) - count.begin());
  if (majority_class) *majority_class = m;
  if (test.empty()) return std::numeric_limits<double>::quiet_NaN();
  return static_cast<double>(std::count(test.begin(), test.end(), m)) / static_cast<double>(test.size());
}

}  // namespace mmn
