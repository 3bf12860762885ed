#include "io/hf_cache.h"

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "util/error.h"

namespace mmn {

namespace fs = std::filesystem;

namespace {

// An environment variable, or "" when unset or empty (huggingface_hub treats
// an empty value as unset, and so must we to find the same cache).
std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

// "~/x" → "$HOME/x": huggingface_hub expands user paths in these variables.
fs::path expand_home(const std::string& p) {
  if ((p == "~" || p.rfind("~/", 0) == 0) && !env("HOME").empty()) return fs::path(env("HOME")) / p.substr(p == "~" ? 1 : 2);
  return fs::path(p);
}

// One part of ORG/NAME by the Hub's own rules: letters, digits, '-', '_', '.';
// no leading '-' or '.'; no ".." (path escape) and no "--" (it is the
// separator inside the cache folder name, so it would make names ambiguous).
bool valid_id_part(const std::string& s) {
  if (s.empty() || s.size() > 96 || s.front() == '-' || s.front() == '.') return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  return s.find("..") == std::string::npos && s.find("--") == std::string::npos;
}

// A revision becomes a path under refs/ (branch names such as "refs/pr/1" may
// hold '/'), so it must not be able to leave that folder.
bool valid_revision(const std::string& r) {
  if (r.empty() || r.front() == '/') return false;
  for (char c : r)
    if (std::isspace(static_cast<unsigned char>(c)) || std::iscntrl(static_cast<unsigned char>(c))) return false;
  for (const auto& part : fs::path(r))
    if (part == ".." || part == "." || part.empty()) return false;
  return r.back() != '/';
}

bool is_hex(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

std::string download_command(const std::string& repo, const std::string& revision) {
  std::string cmd = "huggingface-cli download " + repo;
  if (revision != "main") cmd += " --revision " + revision;
  return cmd;
}

// The commit hash a ref file holds (huggingface_hub writes it without a
// newline, but a hand-made cache may have one).
std::string read_ref(const fs::path& ref_file) {
  std::ifstream in(ref_file);
  std::string hash;
  if (!in || !(in >> hash)) fail(ref_file.string(), ": cannot read the commit hash of this Hugging Face cache ref");
  return hash;
}

}  // namespace

std::string hub_cache_dir() {
  if (std::string v = env("HF_HUB_CACHE"); !v.empty()) return expand_home(v).string();
  if (std::string v = env("HF_HOME"); !v.empty()) return (expand_home(v) / "hub").string();
  if (std::string v = env("XDG_CACHE_HOME"); !v.empty()) return (expand_home(v) / "huggingface" / "hub").string();
  if (std::string v = env("HOME"); !v.empty()) return (fs::path(v) / ".cache" / "huggingface" / "hub").string();
  fail("cannot locate the Hugging Face cache: none of HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME, HOME is set");
}

bool looks_like_repo_id(const std::string& s) {
  if (s.empty() || s.front() == '/' || s.front() == '.' || s.front() == '~') return false;
  const size_t slash = s.find('/');
  if (slash == 0 || slash == std::string::npos || slash + 1 == s.size()) return false;
  if (s.find('/', slash + 1) != std::string::npos) return false;
  std::error_code ec;
  return !fs::exists(s, ec);
}

std::string resolve_hf_repo(const std::string& repo_id, const std::string& revision) {
  const size_t slash = repo_id.find('/');
  const std::string org = slash == std::string::npos ? "" : repo_id.substr(0, slash);
  const std::string name = slash == std::string::npos ? "" : repo_id.substr(slash + 1);
  if (!valid_id_part(org) || !valid_id_part(name))
    fail("'", repo_id, "' is not a valid Hugging Face repo id (expected ORG/NAME of letters, digits, '-', '_', '.')");
  if (!valid_revision(revision)) fail("'", revision, "' is not a valid revision for ", repo_id);

  const fs::path cache = hub_cache_dir();
  const fs::path repo_dir = cache / ("models--" + org + "--" + name);
  std::error_code ec;
  if (!fs::is_directory(repo_dir, ec))
    fail(repo_id, " is not in the Hugging Face cache (", cache.string(), "); download it first: ",
         download_command(repo_id, revision));

  fs::path snapshot;
  const fs::path ref_file = repo_dir / "refs" / revision;
  if (fs::is_regular_file(ref_file, ec)) {
    snapshot = repo_dir / "snapshots" / read_ref(ref_file);
    if (!fs::is_directory(snapshot, ec))
      fail(ref_file.string(), " points at snapshot ", snapshot.filename().string(),
           ", which is missing from the cache; download it again: ", download_command(repo_id, revision));
  } else if (is_hex(revision) && fs::is_directory(repo_dir / "snapshots" / revision, ec)) {
    snapshot = repo_dir / "snapshots" / revision;  // a commit hash given directly
  } else {
    fail(repo_id, " has no revision '", revision, "' in the Hugging Face cache (no ", ref_file.string(),
         "); download it first: ", download_command(repo_id, revision));
  }
  // exists() follows the blobs/ symlink, so a dangling link (blob deleted or a
  // partial download) is caught here, not as a confusing load error later.
  if (!fs::exists(snapshot / "config.json", ec))
    fail((snapshot / "config.json").string(), ": missing from the cached snapshot of ", repo_id,
         " (incomplete download?); download it again: ", download_command(repo_id, revision));
  return snapshot.string();
}

std::string resolve_model_arg(const std::string& given) {
  std::error_code ec;
  if (fs::is_directory(given, ec)) return given;
  const size_t at = given.find('@');
  const std::string repo = given.substr(0, at);
  if (!looks_like_repo_id(repo)) return given;
  return at == std::string::npos ? resolve_hf_repo(repo) : resolve_hf_repo(repo, given.substr(at + 1));
}

}  // namespace mmn
