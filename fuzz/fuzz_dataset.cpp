// Dataset files (SBU-style JSON or JSON lines) as `find --dataset` reads them.
#include "fuzz_common.h"
#include "io/dataset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mmn;
  fuzz::expect_only_errors([&] {
    const auto f = fuzz::scratch() / "dataset.jsonl";
    fuzz::write_bytes(f, {reinterpret_cast<const char*>(data), size});
    auto items = load_dataset(f.string(), "/images");
    fuzz::check(!items.empty(), "a dataset without images was accepted");
    for (auto& it : items) fuzz::check(!it.id.empty() && it.id.find('/') == std::string::npos, "unsafe image id");
    (void)select_items(items, 0, -1, 0, 1);
  });
  return 0;
}
