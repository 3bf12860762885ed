// A 2-D weight matrix as the kernels see it: row-major [rows, cols] in its
// stored dtype, usually pointing into the mmapped checkpoint. Kernels convert
// tiles to fp32 on the fly; no full fp32 copy of a weight is ever made.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace mmn {

struct Weight {
  DType dtype = DType::F32;
  int64_t rows = 0;  // out features of a Linear
  int64_t cols = 0;  // in features of a Linear
  const void* data = nullptr;

  static Weight from(const TensorRef& t);  // 2-D tensors; other ranks flatten to [dim0, rest]
  size_t elem_size() const { return dtype_size(dtype); }
  size_t nbytes() const { return static_cast<size_t>(rows) * cols * elem_size(); }
  const uint8_t* row_ptr(int64_t r) const { return static_cast<const uint8_t*>(data) + r * cols * elem_size(); }
};

// Float vector from a 1-D (or any) stored tensor, converted to fp32 (biases, norms).
std::vector<float> to_f32(const TensorRef& t);

}  // namespace mmn
