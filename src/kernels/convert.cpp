#include "kernels/convert.h"

#include <immintrin.h>

#include <cmath>

#include "util/error.h"

namespace mmn {

float f16_to_f32_portable(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13) | (man ? 0x400000u : 0u);  // ±inf, or NaN made quiet
  } else if (exp != 0) {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);  // normal: the exponent rebiased
  } else {
    // Zero or subnormal: man · 2⁻²⁴, exact in fp32.
    const float f = static_cast<float>(man) * 0x1p-24f;
    std::memcpy(&bits, &f, 4);
    bits |= sign;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_f16_portable(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const auto sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;
  if (x > 0x7f800000u) return sign | 0x7e00u | static_cast<uint16_t>((x >> 13) & 0x3ffu);  // NaN, quiet
  // 65520 (halfway between the largest half, 65504, and 2¹⁶) and up round to inf.
  if (x >= 0x477ff000u) return sign | 0x7c00u;
  if (x >= 0x38800000u) {  // a normal half (≥ 2⁻¹⁴): rebias, then round the 13 dropped bits to nearest even
    uint32_t r = x - ((127u - 15u) << 23);
    r += 0xfffu + ((r >> 13) & 1u);
    return sign | static_cast<uint16_t>(r >> 13);
  }
  // Subnormal or zero: the nearest even multiple of 2⁻²⁴ (the scaling is exact; 1024 is the smallest normal).
  std::memcpy(&f, &x, 4);
  return sign | static_cast<uint16_t>(std::nearbyint(f * 0x1p24f));
}

#ifdef __F16C__
float f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }
uint16_t f32_to_f16(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }
#else
float f16_to_f32(uint16_t h) { return f16_to_f32_portable(h); }
uint16_t f32_to_f16(float f) { return f32_to_f16_portable(f); }
#endif

void convert_to_f32(DType dtype, const void* src, float* dst, int64_t n) {
  // An empty tensor converts into an empty vector, whose data() may be null;
  // memcpy with a null pointer is undefined even for zero bytes.
  if (n <= 0) return;
  switch (dtype) {
    case DType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::BF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      int64_t i = 0;
#ifdef __AVX512F__
      for (; i + 16 <= n; i += 16) {
        __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i));
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16)));
      }
#endif
      for (; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::F16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      int64_t i = 0;
#ifdef __AVX512F__
      for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i))));
#endif
      for (; i < n; ++i) dst[i] = f16_to_f32(s[i]);
      return;
    }
    default:
      fail("internal: cannot convert dtype ", dtype_name(dtype), " to float32");
  }
}

void convert_from_f32(DType dtype, const float* src, void* dst, int64_t n) {
  if (n <= 0) return;  // as in convert_to_f32: src/dst may be null
  switch (dtype) {
    case DType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::BF16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
      return;
    }
    case DType::F16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
      return;
    }
    default:
      fail("internal: cannot convert float32 to dtype ", dtype_name(dtype));
  }
}

}  // namespace mmn
