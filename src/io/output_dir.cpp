#include "io/output_dir.h"

#include <filesystem>

#include "util/error.h"

namespace mmn {

void check_output_dir(const std::string& dir, bool force, const std::string& what, const std::string& own_marker) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return;
  if (!fs::is_directory(dir, ec)) fail(dir, ": exists and is not a directory");
  if (fs::is_empty(dir, ec)) return;
  if (!own_marker.empty() && fs::exists(fs::path(dir) / own_marker, ec)) return;
  if (!force) fail(dir, ": is not empty and is not a ", what, " (use --force to write into it anyway)");
}

}  // namespace mmn
