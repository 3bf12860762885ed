// FNV-1a, 64 bit: a cheap, stable identity for bytes (model fingerprints,
// seeds from names). Not cryptographic.
#pragma once
#include <cstddef>
#include <cstdint>

namespace mmn {

constexpr uint64_t kFnvOffsetBasis = 1469598103934665603ull;

// Continues hash `h` over n bytes at p.
inline uint64_t fnv1a(const void* p, size_t n, uint64_t h = kFnvOffsetBasis) {
  const auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

}  // namespace mmn
