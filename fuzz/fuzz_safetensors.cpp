// Safetensors files: the header parser on the bytes in memory, then the whole
// file through SafetensorsCheckpoint::open (mapping, alignment) and every
// tensor converted to fp32 the way the models read biases and norms.
#include "fuzz_common.h"
#include "io/safetensors.h"
#include "tensor/weight.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mmn;
  fuzz::expect_only_errors([&] {
    SafetensorsHeader h = parse_safetensors_header("fuzz.safetensors", data, size);
    for (auto& e : h.entries) fuzz::check(e.begin <= e.end && h.data_start + e.end <= size, "tensor outside the file");
  });
  fuzz::expect_only_errors([&] {
    const auto f = fuzz::scratch() / "model.safetensors";
    fuzz::write_bytes(f, {reinterpret_cast<const char*>(data), size});
    SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(f.string());
    for (auto& [name, t] : ck.tensors()) {
      fuzz::check(t.nbytes == static_cast<size_t>(t.numel()) * dtype_size(t.dtype), "nbytes disagrees with the shape");
      if (t.dtype == DType::F32 || t.dtype == DType::F16 || t.dtype == DType::BF16) {
        std::vector<float> v = to_f32(t);
        Weight w = Weight::from(t);
        fuzz::check(w.nbytes() == t.nbytes, "Weight covers other bytes than the tensor");
      }
    }
  });
  return 0;
}
