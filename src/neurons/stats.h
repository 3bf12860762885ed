// Small statistics for reporting experiments: means with percentile-bootstrap
// 95% confidence intervals, paired differences and ratios of means. Seeded,
// so a report is reproducible bit for bit.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

namespace mmn {

struct Estimate {
  double mean = 0, lo = 0, hi = 0;  // point estimate and 95% percentile-bootstrap interval
  int64_t n = 0;                    // sample size (0: undefined, all fields 0)
};

constexpr int kBootstrapResamples = 2000;

// Mean of x with a percentile bootstrap over its elements.
Estimate bootstrap_mean(const std::vector<double>& x, uint64_t seed, int resamples = kBootstrapResamples);
// Paired difference mean(a − b): a[i] and b[i] belong to the same unit (image, noun).
Estimate bootstrap_paired_diff(const std::vector<double>& a, const std::vector<double>& b, uint64_t seed,
                               int resamples = kBootstrapResamples);
// Ratio of means mean(a) / mean(b), resampling the pairs (a[i], b[i]) together.
Estimate bootstrap_ratio(const std::vector<double>& a, const std::vector<double>& b, uint64_t seed,
                         int resamples = kBootstrapResamples);

nlohmann::json to_json(const Estimate& e);
// "−2.91 [−3.20, −2.60]" with the given decimals.
std::string format_estimate(const Estimate& e, int decimals = 2);

// A stream of well-mixed 64-bit seeds from a base seed and a list of keys
// (SplitMix64 of a running hash): results do not depend on evaluation order.
uint64_t mix_seed(uint64_t base, std::initializer_list<uint64_t> keys);
uint64_t hash_string(const std::string& s);

}  // namespace mmn
