// Scalar and vector conversion between the stored dtypes and fp32.
#pragma once
#include <cstdint>
#include <cstring>

#include "io/safetensors.h"

namespace mmn {

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round-to-nearest-even, NaN kept quiet.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// IEEE half precision: F16C where the build targets it, else the portable
// versions below (which give the same bits; NaN comes back quiet).
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);  // round to nearest even
float f16_to_f32_portable(uint16_t h);
uint16_t f32_to_f16_portable(float f);

// Element i of a stored-dtype array (F32/F16/BF16), as fp32.
inline float load_f32(DType dtype, const void* base, int64_t i) {
  if (dtype == DType::F32) return static_cast<const float*>(base)[i];
  const uint16_t h = static_cast<const uint16_t*>(base)[i];
  return dtype == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
}

// dst[i] = float(src[i]) for n elements of the given stored dtype (F32/F16/BF16).
void convert_to_f32(DType dtype, const void* src, float* dst, int64_t n);
// dst (stored dtype) = src (fp32), rounding to nearest even.
void convert_from_f32(DType dtype, const float* src, void* dst, int64_t n);

}  // namespace mmn
