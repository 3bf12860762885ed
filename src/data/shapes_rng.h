// The shapes world's random numbers: splitmix64, a small counter-based
// generator that gives the same numbers on every platform (std::
// distributions do not), so a seed names the same scenes everywhere. Shared
// by both versions of the world (data/shapes.cpp, data/shapes_v2.cpp).
#pragma once
#include <algorithm>
#include <cstdint>

namespace mmn::shapes_detail {

inline uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

struct Rng {
  uint64_t state;
  uint64_t next() { return mix(state++); }
  int below(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
};

struct Rgb {
  int r, g, b;
};

// c with each channel moved by a draw in [−spread, spread] (r, g, b in that order), clamped.
inline Rgb jittered(Rgb c, int spread, Rng& rng) {
  c.r = std::clamp(c.r + rng.below(2 * spread + 1) - spread, 0, 255);
  c.g = std::clamp(c.g + rng.below(2 * spread + 1) - spread, 0, 255);
  c.b = std::clamp(c.b + rng.below(2 * spread + 1) - spread, 0, 255);
  return c;
}

}  // namespace mmn::shapes_detail
