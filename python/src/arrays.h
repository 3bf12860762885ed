// Between the engine's buffers and numpy: arrays that take over a buffer the
// engine filled (no copy), read-only views on the mapped checkpoint, images in
// and out, JSON to Python objects. Only conversions live here, no maths.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/image.h"
#include "io/safetensors.h"

namespace mmn::py_bind {

namespace py = pybind11;

// A numpy array that owns `v` (moved, not copied), C order with `shape`.
py::array owned_array(std::vector<float>&& v, const std::vector<py::ssize_t>& shape);
py::array owned_array(std::vector<uint8_t>&& v, const std::vector<py::ssize_t>& shape);
py::array owned_array(std::vector<int64_t>&& v, const std::vector<py::ssize_t>& shape);

// An image argument: a path (str or os.PathLike), PNG/JPEG bytes (bytes,
// bytearray, memoryview) or an HxWx3 uint8 numpy array. Read while the GIL is
// held; decoded by load(), which needs no Python and runs with the GIL released.
class ImageArg {
 public:
  explicit ImageArg(py::handle obj);
  ImageU8 load() const;
  const std::string& name() const { return name_; }  // the path, "<bytes>" or "<array>"
  bool is_path() const { return kind_ == Kind::Path; }

 private:
  enum class Kind { Path, Bytes, Array } kind_;
  std::string name_, bytes_;
  ImageU8 pixels_;
};

// An HxWx3 uint8 array that owns the image's pixels (moved).
py::array image_array(ImageU8&& img);

// A stored tensor as numpy without a copy: float32 and float16 as they are,
// bf16 as uint16 (its bit pattern), read-only, kept alive by `owner`.
// transpose_2d: the [cols, rows] view of a 2-D tensor (strides swapped, still no copy).
// to_f32: a float32 copy instead (bf16 and f16 converted; float32 still a view).
py::array tensor_array(const TensorRef& t, bool transpose_2d, bool to_f32, py::handle owner);

// JSON as Python objects (dict, list, str, int, float, bool, None), through the json module.
py::object json_to_py(const std::string& dumped);

}  // namespace mmn::py_bind
