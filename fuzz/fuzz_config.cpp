// config.json (and generation_config.json) of a checkpoint: every typed
// getter of JsonFile over the whole document, then load_model on a folder
// holding the fuzzed config beside the bundled tiny model's other files.
// Input: parts separated by "\n@@@@\n" (fuzz_common.h): config.json,
//   generation_config.json (absent: none).
#include "fuzz_common.h"
#include "io/json_file.h"
#include "models/vlm.h"

namespace {

// Every getter on every key, recursing into objects: each either returns or
// throws mmn::Error naming the file.
void walk(const mmn::JsonFile& j) {
  for (auto& item : j.json().items()) {
    const std::string key = item.key();  // (clang 14 cannot capture structured bindings)
    const nlohmann::json& v = item.value();
    mmn::fuzz::expect_only_errors([&] { (void)j.get_int(key); });
    mmn::fuzz::expect_only_errors([&] { (void)j.get_double(key); });
    mmn::fuzz::expect_only_errors([&] { (void)j.get_string(key); });
    mmn::fuzz::expect_only_errors([&] { (void)j.get_bool(key); });
    if (v.is_object()) walk(j.sub(key));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mmn;
  namespace fs = std::filesystem;
  auto parts = fuzz::split_parts(data, size, 2);
  fuzz::expect_only_errors([&] {
    const auto dir = fuzz::fresh_dir("model");
    for (auto& e : fs::directory_iterator(fuzz::bundled_model())) {
      const std::string name = e.path().filename().string();
      if (name != "config.json" && name != "generation_config.json") fs::create_symlink(e.path(), dir / name);
    }
    fuzz::write_part(dir, "config.json", parts[0]);
    fuzz::write_part(dir, "generation_config.json", parts[1]);
    const JsonFile config = JsonFile::load((dir / "config.json").string());
    walk(config);
    auto model = load_model(dir.string());
    fuzz::check(model->decoder().config().n_layers > 0, "a model without layers was loaded");
  });
  return 0;
}
