#include "cli/default_model.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

#include "cli/option_checks.h"
#include "io/hf_cache.h"
#include "util/error.h"

namespace mmn::cli {

std::string resolve_model_dir(const std::string& given) {
  namespace fs = std::filesystem;
  if (!given.empty()) return resolve_model_arg(given);
  if (const char* env = std::getenv("MMN_MODEL")) return env;
  std::vector<fs::path> candidates = {fs::path(MMN_SOURCE_ROOT) / "models" / "shapes-llava"};
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n > 0) {
    const fs::path exe(std::string(buf, static_cast<size_t>(n)));
    candidates.push_back(exe.parent_path().parent_path() / "models" / "shapes-llava");
    candidates.push_back(exe.parent_path().parent_path() / "share" / "mmneuron" / "models" / "shapes-llava");
  }
  for (auto& c : candidates)
    if (fs::exists(c / "config.json")) return c.string();
  fail("no --model given and the bundled model (models/shapes-llava) was not found; set MMN_MODEL or pass --model");
}

std::unique_ptr<VisionLanguageModel> load_cli_model(const std::string& given, const std::string& vision_tower,
                                                    const std::string& recorded_dir, const std::string& recorded_tower) {
  report_compute_fallback();  // now that the command's usage checks have passed
  if (!given.empty() || recorded_dir.empty()) return load_model(resolve_model_dir(given), LoadOptions{vision_tower});
  return load_model(recorded_dir, LoadOptions{vision_tower.empty() ? recorded_tower : vision_tower});
}

}  // namespace mmn::cli
