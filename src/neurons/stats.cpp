#include "neurons/stats.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include "util/error.h"
#include "util/hash.h"

namespace mmn {

namespace {

uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Percentile interval of statistic(indices) over resamples of n units.
template <class Stat>
Estimate bootstrap(int64_t n, double point, uint64_t seed, int resamples, Stat stat) {
  Estimate e;
  e.n = n;
  e.mean = e.lo = e.hi = point;
  if (n < 2 || resamples < 1) return e;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> pick(0, n - 1);
  std::vector<double> stats;
  stats.reserve(static_cast<size_t>(resamples));
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int b = 0; b < resamples; ++b) {
    for (auto& i : idx) i = pick(rng);
    const double s = stat(idx);
    if (std::isfinite(s)) stats.push_back(s);
  }
  if (stats.empty()) return e;
  std::sort(stats.begin(), stats.end());
  auto q = [&](double p) {
    const double pos = p * static_cast<double>(stats.size() - 1);
    const size_t i = static_cast<size_t>(pos);
    const double f = pos - static_cast<double>(i);
    return i + 1 < stats.size() ? stats[i] * (1 - f) + stats[i + 1] * f : stats[i];
  };
  e.lo = q(0.025);
  e.hi = q(0.975);
  return e;
}

double mean_of(const std::vector<double>& x) {
  double s = 0;
  for (double v : x) s += v;
  return x.empty() ? 0 : s / static_cast<double>(x.size());
}

}  // namespace

Estimate bootstrap_mean(const std::vector<double>& x, uint64_t seed, int resamples) {
  if (x.empty()) return {};
  return bootstrap(static_cast<int64_t>(x.size()), mean_of(x), seed, resamples, [&](const std::vector<int64_t>& idx) {
    double s = 0;
    for (int64_t i : idx) s += x[i];
    return s / static_cast<double>(idx.size());
  });
}

Estimate bootstrap_paired_diff(const std::vector<double>& a, const std::vector<double>& b, uint64_t seed,
                               int resamples) {
  if (a.size() != b.size()) fail("internal: paired samples of different sizes");
  std::vector<double> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return bootstrap_mean(d, seed, resamples);
}

Estimate bootstrap_ratio(const std::vector<double>& a, const std::vector<double>& b, uint64_t seed, int resamples) {
  if (a.size() != b.size()) fail("internal: paired samples of different sizes");
  if (a.empty()) return {};
  const double mb = mean_of(b);
  const double point = mb != 0 ? mean_of(a) / mb : NAN;
  Estimate e = bootstrap(static_cast<int64_t>(a.size()), point, seed, resamples, [&](const std::vector<int64_t>& idx) {
    double sa = 0, sb = 0;
    for (int64_t i : idx) sa += a[i], sb += b[i];
    return sb != 0 ? sa / sb : NAN;
  });
  return e;
}

nlohmann::json to_json(const Estimate& e) {
  auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  return {{"mean", num(e.mean)}, {"ci95", {num(e.lo), num(e.hi)}}, {"n", e.n}};
}

std::string format_estimate(const Estimate& e, int decimals) {
  if (e.n == 0 || !std::isfinite(e.mean)) return "n/a";
  char buf[96];
  std::snprintf(buf, sizeof buf, "%.*f [%.*f, %.*f]", decimals, e.mean, decimals, e.lo, decimals, e.hi);
  return buf;
}

uint64_t mix_seed(uint64_t base, std::initializer_list<uint64_t> keys) {
  uint64_t h = splitmix(base);
  for (uint64_t k : keys) h = splitmix(h ^ splitmix(k));
  return h;
}

uint64_t hash_string(const std::string& s) { return fnv1a(s.data(), s.size()); }

}  // namespace mmn
