// model.safetensors.index.json beside two small valid shards: the index's
// weight_map decides which files are opened and which tensors must exist.
#include "fuzz_common.h"
#include "io/safetensors.h"

namespace {

// A shard holding one F32 tensor `name` of n elements.
std::string shard(const std::string& name, int n) {
  std::string header = "{\"" + name + "\":{\"dtype\":\"F32\",\"shape\":[" + std::to_string(n) +
                       "],\"data_offsets\":[0," + std::to_string(4 * n) + "]}}";
  while ((8 + header.size()) % 8) header += ' ';
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return out + header + std::string(4 * n, '\0');
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mmn;
  static const std::string a = shard("a.weight", 3), b = shard("b.weight", 5);
  fuzz::expect_only_errors([&] {
    const auto dir = fuzz::fresh_dir("index");
    fuzz::write_bytes(dir / "a.safetensors", a);
    fuzz::write_bytes(dir / "b.safetensors", b);
    fuzz::write_bytes(dir / "model.safetensors.index.json", {reinterpret_cast<const char*>(data), size});
    SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(dir.string());
    for (auto& [name, t] : ck.tensors()) fuzz::check(t.nbytes == static_cast<size_t>(t.numel()) * 4, "bad tensor size");
  });
  return 0;
}
