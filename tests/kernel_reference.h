// What the kernel tests compare against: the instruction sets this CPU runs,
// and a double-precision reference of y = x·Wᵀ + bias.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/cpu_features.h"

namespace mmn::test {

inline std::vector<Isa> supported_isas() {
  std::vector<Isa> v;
  for (Isa i : {Isa::Generic, Isa::Avx2, Isa::Avx512})
    if (isa_supported(i)) v.push_back(i);
  return v;
}

// max |y − ref| / (Σ_k |x·w| + |bias| + tiny) over the outputs, where ref is
// the product in double with the weight as the kernels should read it (w,
// [N, K] fp32: converted or dequantized): the rounding of fp32 sums,
// independent of the values' scale.
inline double relative_error(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& bias,
                             const std::vector<float>& y, int64_t M, int64_t N, int64_t K) {
  double worst = 0;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double ref = bias.empty() ? 0 : bias[n], mag = bias.empty() ? 0 : std::fabs(bias[n]);
      for (int64_t k = 0; k < K; ++k) {
        ref += static_cast<double>(x[m * K + k]) * w[n * K + k];
        mag += std::fabs(static_cast<double>(x[m * K + k]) * w[n * K + k]);
      }
      worst = std::max(worst, std::fabs(y[m * N + n] - ref) / (mag + 1e-30));
    }
  return worst;
}

}  // namespace mmn::test
