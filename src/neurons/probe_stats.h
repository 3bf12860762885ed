// The statistics of `mmneuron probe` (neurons/probe.h), on plain arrays so
// that tests can check them against hand-computed cases.
#pragma once
#include <cstdint>
#include <vector>

namespace mmn {

// One-vs-rest AUROC of a single feature for every class: for class c, the
// probability that a random row of class c has a higher value than a random
// row of another class, ties counting one half (Mann–Whitney U / (n_c·n_rest),
// with mid-ranks). x has n values with stride `stride` (x[i·stride]); labels
// are 0..classes−1. NaN for a class with no rows or no other rows.
std::vector<double> one_vs_rest_auroc(const float* x, int64_t n, int64_t stride, const std::vector<int>& labels,
                                      int classes);

// A linear probe: one-vs-rest ridge regression on standardised features
// (mean and standard deviation of the training rows; a constant feature
// stays 0) onto ±1 class targets, each class's intercept its mean target;
// prediction is the class with the highest output.
struct RidgeProbe {
  int classes = 0;
  int64_t dim = 0;
  std::vector<double> mean, scale;  // [dim]
  std::vector<double> w;            // [dim, classes]
  std::vector<double> bias;         // [classes]
  double lambda = 0;

  // Fits on rows [n, dim] (row-major) with the given penalty.
  static RidgeProbe fit(const std::vector<float>& x, const std::vector<int>& y, int64_t dim, int classes,
                        double lambda);
  int predict(const float* row) const;
  double accuracy(const std::vector<float>& x, const std::vector<int>& y) const;
};

// Fits with the penalty chosen by two-fold cross-validation on the training
// rows (folds: even and odd rows) among lambda = n·{1e-4, 1e-3, 1e-2, 0.1, 1}.
RidgeProbe fit_ridge_probe_cv(const std::vector<float>& x, const std::vector<int>& y, int64_t dim, int classes);

// Share of the rows in the largest class of `train`, measured on `test`
// (the accuracy of always answering the training majority).
double majority_accuracy(const std::vector<int>& train, const std::vector<int>& test, int classes,
                         int* majority_class = nullptr);

}  // namespace mmn
