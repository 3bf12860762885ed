// Shared by the libFuzzer harnesses (fuzz/fuzz_*.cpp).
//
// Contract: a harness feeds the bytes to a real parsing entry point, and the
// only acceptable failure is mmn::Error (one line naming the file). Any other
// exception escapes LLVMFuzzerTestOneInput, terminates, and libFuzzer records
// the input as a crash, like sanitizer reports, timeouts and allocations over
// -malloc_limit_mb.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.h"

namespace mmn::fuzz {

// Runs f; mmn::Error is the expected outcome for bad input.
template <class F>
int expect_only_errors(F&& f) {
  try {
    f();
  } catch (const mmn::Error& e) {
    if (std::string_view(e.what()).empty()) {
      std::fprintf(stderr, "finding: mmn::Error with an empty message\n");
      std::abort();
    }
  }
  return 0;
}

// Aborts (a finding) when a parser broke its own contract.
inline void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "finding: %s\n", what);
    std::abort();
  }
}

// One scratch directory per fuzzing process, removed at exit.
inline const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/mmn-fuzz-XXXXXX";
    if (!::mkdtemp(tmpl.data())) {
      std::perror("mkdtemp");
      std::abort();
    }
    static std::filesystem::path keep = tmpl;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(keep, ec);
    });
    return keep;
  }();
  return dir;
}

// A fresh, empty directory under scratch() for this input.
inline std::filesystem::path fresh_dir(const std::string& name) {
  const std::filesystem::path d = scratch() / name;
  std::error_code ec;
  std::filesystem::remove_all(d, ec);
  std::filesystem::create_directories(d);
  return d;
}

inline void write_bytes(const std::filesystem::path& p, std::string_view bytes) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Multi-file inputs: the parts are separated by lines holding only "@@@@"
// ("\n@@@@\n"), so seeds stay readable text files. Missing parts are absent
// (std::nullopt-like: `present` false), which exercises optional files.
struct Part {
  bool present = false;
  std::string_view bytes;
};
inline std::vector<Part> split_parts(const uint8_t* data, size_t size, size_t n) {
  static constexpr std::string_view kSep = "\n@@@@\n";
  std::string_view all(reinterpret_cast<const char*>(data), size);
  std::vector<Part> parts(n);
  for (size_t i = 0; i < n; ++i) {
    const size_t at = i + 1 < n ? all.find(kSep) : std::string_view::npos;
    parts[i] = {true, all.substr(0, at)};
    if (at == std::string_view::npos) break;
    all.remove_prefix(at + kSep.size());
  }
  return parts;
}

// Writes a part to dir/name when present (an absent part leaves no file).
inline void write_part(const std::filesystem::path& dir, const char* name, const Part& p) {
  if (p.present) write_bytes(dir / name, p.bytes);
}

// The bundled tiny checkpoint, the valid neighbour of fuzzed files.
inline std::filesystem::path bundled_model() { return std::filesystem::path(MMN_SOURCE_DIR) / "models/shapes-llava"; }

}  // namespace mmn::fuzz
