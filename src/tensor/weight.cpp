#include "tensor/weight.h"

#include "kernels/convert.h"
#include "util/error.h"

namespace mmn {

Weight Weight::from(const TensorRef& t) {
  if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
    fail(t.file, ": tensor ", t.name, " has dtype ", dtype_name(t.dtype), ", expected F32, F16 or BF16");
  Weight w;
  w.dtype = t.dtype;
  w.rows = t.shape.empty() ? 1 : t.shape[0];
  w.cols = w.rows ? t.numel() / w.rows : 0;
  w.data = t.data;
  return w;
}

std::vector<float> to_f32(const TensorRef& t) {
  if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
    fail(t.file, ": tensor ", t.name, " has dtype ", dtype_name(t.dtype), ", expected F32, F16 or BF16");
  std::vector<float> v(t.numel());
  convert_to_f32(t.dtype, t.data, v.data(), t.numel());
  return v;
}

}  // namespace mmn
