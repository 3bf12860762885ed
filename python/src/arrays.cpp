#include "arrays.h"

#include "kernels/convert.h"
#include "util/error.h"

namespace mmn::py_bind {

namespace {
template <class T>
py::array own(std::vector<T>&& v, const std::vector<py::ssize_t>& shape) {
  auto* heap = new std::vector<T>(std::move(v));
  py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(shape, heap->data(), owner);
}
}  // namespace

py::array owned_array(std::vector<float>&& v, const std::vector<py::ssize_t>& shape) { return own(std::move(v), shape); }
py::array owned_array(std::vector<uint8_t>&& v, const std::vector<py::ssize_t>& shape) { return own(std::move(v), shape); }
py::array owned_array(std::vector<int64_t>&& v, const std::vector<py::ssize_t>& shape) { return own(std::move(v), shape); }

ImageArg::ImageArg(py::handle obj) {
  if (py::isinstance<py::bytes>(obj) || py::isinstance<py::bytearray>(obj) || py::isinstance<py::memoryview>(obj)) {
    kind_ = Kind::Bytes;
    name_ = "<bytes>";
    bytes_ = py::bytes(py::module_::import("builtins").attr("bytes")(obj)).cast<std::string>();
  } else if (py::isinstance<py::str>(obj) || py::hasattr(obj, "__fspath__")) {
    kind_ = Kind::Path;
    name_ = py::str(py::module_::import("os").attr("fspath")(obj)).cast<std::string>();
  } else if (py::isinstance<py::array>(obj)) {
    kind_ = Kind::Array;
    name_ = "<array>";
    auto a = py::reinterpret_borrow<py::array>(obj);
    if (!a.dtype().is(py::dtype::of<uint8_t>()) || a.ndim() != 3 || a.shape(2) != 3)
      fail("image array: expected an HxWx3 uint8 array (RGB), got dtype ", py::str(a.dtype()).cast<std::string>(),
           " and shape ", py::str(obj.attr("shape")).cast<std::string>());
    auto c = py::array_t<uint8_t, py::array::c_style>::ensure(a);
    pixels_ = image_from_rgb(c.data(), c.shape(0), c.shape(1), "image array");
  } else {
    fail("image: expected a path, PNG/JPEG bytes or an HxWx3 uint8 numpy array, got ",
         py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
  }
}

ImageU8 ImageArg::load() const {
  switch (kind_) {
    case Kind::Path: return load_image(name_);
    case Kind::Bytes: return decode_image(bytes_, name_);
    case Kind::Array: return pixels_;
  }
  return pixels_;
}

py::array image_array(ImageU8&& img) {
  const py::ssize_t h = img.height, w = img.width;
  return owned_array(std::move(img.rgb), {h, w, 3});
}

py::array tensor_array(const TensorRef& t, bool transpose_2d, bool to_f32, py::handle owner) {
  std::vector<py::ssize_t> shape(t.shape.begin(), t.shape.end());
  if (transpose_2d && shape.size() != 2) fail("tensor ", t.name, " is not 2-D: ", t.shape_str());
  py::array out;
  if (to_f32 && t.dtype != DType::F32) {
    if (t.dtype != DType::BF16 && t.dtype != DType::F16)
      fail("tensor ", t.name, ": cannot convert ", dtype_name(t.dtype), " to float32");
    std::vector<float> v(static_cast<size_t>(t.numel()));
    convert_to_f32(t.dtype, t.data, v.data(), t.numel());
    out = owned_array(std::move(v), shape);
  } else {
    py::dtype dt;
    switch (t.dtype) {
      case DType::F32: dt = py::dtype("float32"); break;
      case DType::F16: dt = py::dtype("float16"); break;
      case DType::BF16: dt = py::dtype("uint16"); break;  // numpy has no bfloat16: the bits as uint16
      case DType::F64: dt = py::dtype("float64"); break;
      case DType::I64: dt = py::dtype("int64"); break;
      case DType::I32: dt = py::dtype("int32"); break;
      case DType::I16: dt = py::dtype("int16"); break;
      case DType::I8: dt = py::dtype("int8"); break;
      case DType::U8: dt = py::dtype("uint8"); break;
      case DType::BOOL: dt = py::dtype("bool"); break;
    }
    std::vector<py::ssize_t> strides(shape.size());
    py::ssize_t s = static_cast<py::ssize_t>(dtype_size(t.dtype));
    for (size_t i = shape.size(); i-- > 0;) {
      strides[i] = s;
      s *= shape[i];
    }
    out = py::array(dt, shape, strides, t.data, owner);
    out.attr("setflags")(py::arg("write") = false);  // the mapping is read-only
  }
  if (transpose_2d) out = out.attr("T");  // a view: strides swapped
  return out;
}

py::object json_to_py(const std::string& dumped) { return py::module_::import("json").attr("loads")(dumped); }

}  // namespace mmn::py_bind
