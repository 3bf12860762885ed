// Shared helpers for the test suite: locating ../shared, reading golden arrays,
// running the CLI binary and comparing float arrays with the golden tolerance.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <tuple>

namespace mmn::test {

// ../shared beside the checkout (or $MMN_SHARED). Empty when absent.
inline std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("MMN_SHARED")) return env;
  std::filesystem::path p = std::filesystem::path(MMN_SOURCE_DIR).parent_path() / "shared";
  if (std::filesystem::exists(p / "golden")) return p;
  return {};
}

inline bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

// Skips the test (or fails it under CI=true) when ../shared is absent.
#define MMN_REQUIRE_SHARED()                                                        \
  do {                                                                              \
    if (::mmn::test::shared_dir().empty()) {                                        \
      if (::mmn::test::in_ci()) FAIL() << "CI=true but ../shared/golden is absent"; \
      GTEST_SKIP() << "../shared/golden is absent; skipping golden comparison";     \
    }                                                                               \
  } while (0)

inline std::filesystem::path golden(const std::string& rel) { return shared_dir() / "golden" / rel; }

// Golden checkpoints and cases by model name: the original-LLaVA-layout ones
// (tiny-llava1-*) live apart, under golden/llava1/.
inline std::string golden_group(const std::string& model) {
  return model.rfind("tiny-llava1-", 0) == 0 ? "llava1/" : "";
}
inline std::filesystem::path golden_model(const std::string& model) { return golden(golden_group(model) + "models/" + model); }
inline std::filesystem::path golden_case(const std::string& model, const std::string& image) {
  // The .bin copy of a checkpoint shares the cases of its safetensors twin.
  std::string m = model;
  if (m.size() > 4 && m.compare(m.size() - 4, 4, "-bin") == 0) m.resize(m.size() - 4);
  return golden(golden_group(model) + "cases/" + m + "/" + image);
}

// Runs a shell command, returns its exit status; stdout+stderr captured into *out.
inline int run_cmd(const std::string& cmd, std::string* out = nullptr) {
  std::string full = cmd + " 2>&1";
  FILE* f = popen(full.c_str(), "r");
  if (!f) return -1;
  std::string buf;
  char tmp[4096];
  size_t n;
  while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) buf.append(tmp, n);
  int st = pclose(f);
  if (out) *out = buf;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

inline std::string binary() { return MMN_BINARY; }

// The bundled shapes model (models/shapes-llava).
inline std::string bundled_model() { return (std::filesystem::path(MMN_SOURCE_DIR) / "models" / "shapes-llava").string(); }

// A gtest parameter name from a string parameter ("tiny-llava-a-f32" → "tiny_llava_a_f32").
// The same for a (model, image) tuple parameter: "tiny-llava-a-f32_tiny_10x10" → "tiny_llava_a_f32_tiny_10x10".
struct TupleParamName {
  template <class Info>
  std::string operator()(const Info& info) const {
    std::string n = std::get<0>(info.param) + "_" + std::get<1>(info.param);
    for (auto& c : n)
      if (!isalnum(static_cast<unsigned char>(c))) c = '_';
    return n;
  }
};

struct ParamName {
  template <class Info>
  std::string operator()(const Info& info) const {
    std::string n = info.param;
    for (auto& c : n)
      if (!isalnum(static_cast<unsigned char>(c))) c = '_';
    return n;
  }
};

// A fresh temporary directory, removed by the caller if wanted.
inline std::filesystem::path temp_dir(const std::string& tag) {
  auto base = std::filesystem::temp_directory_path() /
              ("mmn-test-" + tag + "-" + std::to_string(::getpid()) + "-" +
               std::to_string(std::rand()));
  std::filesystem::create_directories(base);
  return base;
}

}  // namespace mmn::test
