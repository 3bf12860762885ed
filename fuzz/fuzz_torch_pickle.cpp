// torch.save archives: the ZIP directory and the restricted unpickler on the
// bytes in memory (every tensor they report must lie inside the archive),
// then the file through SafetensorsCheckpoint::open (mapping, aligned copies)
// with every float tensor converted the way the models read it.
#include "fuzz_common.h"
#include "io/torch_pickle.h"
#include "tensor/weight.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mmn;
  fuzz::expect_only_errors([&] {
    for (auto& z : read_zip_directory("fuzz.bin", data, size))
      fuzz::check(z.data_offset <= size && z.size <= size - z.data_offset, "ZIP entry outside the archive");
  });
  bool parsed = false;
  fuzz::expect_only_errors([&] {
    for (auto& e : parse_torch_checkpoint("fuzz.bin", data, size)) {
      fuzz::check(e.offset <= size && e.nbytes <= size - e.offset, "tensor outside the archive");
      uint64_t numel = 1;
      for (int64_t d : e.shape) numel *= static_cast<uint64_t>(d);
      fuzz::check(e.nbytes == numel * dtype_size(e.dtype), "nbytes disagrees with the shape");
    }
    parsed = true;
  });
  if (!parsed) return 0;  // the file path would fail the same way
  fuzz::expect_only_errors([&] {
    const auto f = fuzz::scratch() / "pytorch_model.bin";
    fuzz::write_bytes(f, {reinterpret_cast<const char*>(data), size});
    SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(f.string());
    for (auto& [name, t] : ck.tensors())
      if (t.dtype == DType::F32 || t.dtype == DType::F16 || t.dtype == DType::BF16) (void)to_f32(t);
  });
  return 0;
}
