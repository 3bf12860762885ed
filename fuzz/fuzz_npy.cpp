// .npy arrays: header parsing and every conversion the readers use.
#include "fuzz_common.h"
#include "io/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mmn;
  fuzz::expect_only_errors([&] {
    NpyArray a = parse_npy({reinterpret_cast<const char*>(data), size}, "fuzz.npy");
    fuzz::check(a.data.size() <= size, "array larger than the file");
    for (auto* conv : {+[](const NpyArray& x) { (void)x.as_f32(); }, +[](const NpyArray& x) { (void)x.as_i64(); },
                       +[](const NpyArray& x) { (void)x.as_u8(); }})
      fuzz::expect_only_errors([&] { conv(a); });
  });
  return 0;
}
