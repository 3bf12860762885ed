// Breaking copies of the golden checkpoints for the bad-input tests of each family.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "test_util.h"

namespace mmn::test {

// A writable copy of golden model `name` (the weights symlinked unless copy_weights).
inline std::filesystem::path copy_golden_model(const std::string& name, const std::string& tag,
                                               bool copy_weights = false) {
  namespace fs = std::filesystem;
  fs::path d = temp_dir(name + "-" + tag);
  for (const auto& e : fs::directory_iterator(golden("models/" + name))) {
    const fs::path to = d / e.path().filename();
    if (e.path().filename() == "model.safetensors" && !copy_weights) fs::create_symlink(e.path(), to);
    else fs::copy(e.path(), to, fs::copy_options::recursive);
  }
  for (const auto& e : fs::recursive_directory_iterator(d))
    if (!e.is_symlink()) fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
  return d;
}

// Rewrites <dir>/model.safetensors as golden model `name`'s without tensor `drop`.
inline void drop_tensor(const std::string& name, const std::filesystem::path& dir, const std::string& drop) {
  const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(golden("models/" + name).string());
  std::vector<TensorSpec> specs;
  for (const auto& [n, t] : ck.tensors())
    if (n != drop) specs.push_back({n, t.dtype, t.shape});
  ASSERT_EQ(specs.size() + 1, ck.tensors().size()) << drop;
  std::filesystem::remove(dir / "model.safetensors");
  write_safetensors((dir / "model.safetensors").string(), specs, {{"format", "pt"}},
                    [&](const TensorSpec& s, std::FILE* f) {
                      const TensorRef& t = ck.get(s.name);
                      std::fwrite(t.data, 1, t.nbytes, f);
                    });
}

// The command must fail with one line "error: …" containing every needle.
inline void expect_one_line_error(const std::string& cmd, const std::vector<std::string>& needles) {
  std::string out;
  const int rc = run_cmd(cmd, &out);
  EXPECT_NE(rc, 0) << out;
  EXPECT_EQ(out.rfind("error: ", 0), 0u) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << "not one line: " << out;
  for (const auto& n : needles) EXPECT_NE(out.find(n), std::string::npos) << "expected '" << n << "' in: " << out;
}

}  // namespace mmn::test
