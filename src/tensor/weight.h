// A 2-D weight matrix as the kernels see it: row-major [rows, cols] in its
// stored dtype, usually pointing into the mmapped checkpoint. Kernels convert
// tiles to fp32 on the fly; no full fp32 copy of a weight is ever made.
//
// Int8 weights (mmneuron quantize, models/quantize.h): dtype I8, values q
// [rows, cols] plus `scales`, F16 [rows, q8_blocks(cols)], one per block of
// kQ8Block consecutive columns; element (r, c) is q[r, c] · scale[r, c / 32].
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace mmn {

// Columns (input features) per int8 scale.
inline constexpr int64_t kQ8Block = 32;
inline int64_t q8_blocks(int64_t cols) { return (cols + kQ8Block - 1) / kQ8Block; }

struct Weight {
  DType dtype = DType::F32;
  int64_t rows = 0;  // out features of a Linear
  int64_t cols = 0;  // in features of a Linear
  const void* data = nullptr;
  const uint16_t* scales = nullptr;  // I8 only: F16 bits [rows, q8_blocks(cols)]

  static Weight from(const TensorRef& t);  // 2-D tensors; other ranks flatten to [dim0, rest]
  // An int8 weight from its values and scale tensor; checks both (dtype,
  // shape), failing with one line naming the file and tensor.
  static Weight quantized(const TensorRef& q, const TensorRef& scale);
  size_t elem_size() const { return dtype_size(dtype); }
  size_t nbytes() const { return static_cast<size_t>(rows) * cols * elem_size(); }
  const uint8_t* row_ptr(int64_t r) const { return static_cast<const uint8_t*>(data) + r * cols * elem_size(); }
  const uint16_t* row_scales(int64_t r) const { return scales + r * q8_blocks(cols); }
  // Rows [r0, r0 + n) as a Weight of their own (a view; scales follow).
  Weight slice_rows(int64_t r0, int64_t n) const;
};

// W[r, c0 .. c0 + n) as fp32 (int8 dequantized), for reads outside the
// kernels (value vectors, unembedding rows, training copies).
void weight_row_f32(const Weight& W, int64_t r, int64_t c0, int64_t n, float* dst);
// One element W[r, c] as fp32.
float weight_at(const Weight& W, int64_t r, int64_t c);
// Column c of W ([rows] floats), e.g. a down_proj value vector.
void weight_column_f32(const Weight& W, int64_t c, float* dst);

// Quantizes one row of n weights into int8 values q[n] and F16 scales
// s[q8_blocks(n)] (see models/quantize.h for the rule and its error bound).
void quantize_row_q8(const float* w, int64_t n, int8_t* q, uint16_t* s);

// Float vector from a 1-D (or any) stored tensor, converted to fp32 (biases, norms).
std::vector<float> to_f32(const TensorRef& t);

}  // namespace mmn
