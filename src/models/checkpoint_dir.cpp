#include "models/checkpoint_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>
#include <set>

#include "io/atomic_file.h"
#include "util/error.h"

namespace mmn {

namespace fs = std::filesystem;

namespace {

bool is_within(const fs::path& inner, const fs::path& outer) {
  auto [a, b] = std::mismatch(outer.begin(), outer.end(), inner.begin(), inner.end());
  return a == outer.end();
}

std::string unique_suffix() {
  std::random_device rd;
  return std::to_string(::getpid()) + "-" + std::to_string(rd() % 1000000);
}

void fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // best effort: the data files themselves are fsync'ed
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

// ---------------------------------------------------------------- copying

// Streams src into dst (atomically), applying the sorted patches on the way and
// checking each still finds its expected bytes (the file may change meanwhile).
void copy_file_patched(const fs::path& src, const fs::path& dst, const std::vector<Patch>& patches,
                       const MismatchFn& mismatch) {
  std::FILE* in = std::fopen(src.c_str(), "rb");
  if (!in) fail(src.string(), ": cannot open: ", std::strerror(errno));
  try {
    write_stream_atomic(dst.string(), [&](std::FILE* out) {
      std::vector<uint8_t> buf(8 << 20);
      uint64_t pos = 0;
      size_t next = 0;  // first patch not yet fully applied
      for (;;) {
        const size_t got = std::fread(buf.data(), 1, buf.size(), in);
        if (got == 0) break;
        const uint64_t end = pos + got;
        for (size_t k = next; k < patches.size() && patches[k].offset < end; ++k) {
          const Patch& p = patches[k];
          const uint64_t lo = std::max(p.offset, pos), hi = std::min(p.offset + p.n, end);
          if (std::memcmp(&buf[lo - pos], p.expect + (lo - p.offset), hi - lo) != 0) mismatch(p.neuron);
          std::memcpy(&buf[lo - pos], p.replace + (lo - p.offset), hi - lo);
          if (p.offset + p.n <= end) next = k + 1;  // patches do not overlap, so done ones form a prefix
        }
        if (std::fwrite(buf.data(), 1, got, out) != got) fail(dst.string(), ": write failed: ", std::strerror(errno));
        pos = end;
      }
      if (std::ferror(in)) fail(src.string(), ": read failed");
      if (next != patches.size()) fail(src.string(), ": file ends before the edited columns");
    });
  } catch (...) {
    std::fclose(in);
    throw;
  }
  std::fclose(in);
  drop_from_page_cache(dst.string());  // so the next load maps it in large folios (io/safetensors.cpp)
}

// Every file and directory under root (following symlinks, whose content is what a loader reads).
void list_tree(const fs::path& root, const fs::path& rel, int depth, std::vector<TreeEntry>& out) {
  if (depth > 32) fail((root / rel).string(), ": directories nested too deep (a symlink loop?)");
  std::error_code ec;
  fs::directory_iterator it(root / rel, ec);
  if (ec) fail((root / rel).string(), ": cannot list the directory (", ec.message(), ")");
  for (const auto& de : it) {
    const fs::path r = rel / de.path().filename();
    const fs::file_status st = fs::status(de.path(), ec);
    if (fs::is_directory(st)) {
      out.push_back({r, true});
      list_tree(root, r, depth + 1, out);
    } else if (fs::is_regular_file(st)) {
      out.push_back({r, false});
    } else {
      fail(de.path().string(), ": not a regular file or directory (cannot copy it)");
    }
  }
}

// Copies the listed tree into dst, patching top-level files named in `patches`.
void copy_tree(const fs::path& src, const std::vector<TreeEntry>& tree, const fs::path& dst, const PatchMap& patches,
               const MismatchFn& mismatch) {
  static const std::vector<Patch> none;
  std::set<std::string> patched;
  for (const TreeEntry& t : tree) {
    if (t.is_dir) {
      std::error_code ec;
      fs::create_directories(dst / t.rel, ec);
      if (ec) fail((dst / t.rel).string(), ": cannot create the directory (", ec.message(), ")");
      continue;
    }
    const bool top = !t.rel.has_parent_path();
    auto it = top ? patches.find(t.rel.string()) : patches.end();
    copy_file_patched(src / t.rel, dst / t.rel, it == patches.end() ? none : it->second, mismatch);
    if (it != patches.end()) patched.insert(it->first);
  }
  for (const auto& [name, ps] : patches)
    if (!patched.count(name)) fail((src / name).string(), ": shard holding the edited columns was not found");
}

// The output path as given, absolute and without a trailing slash (so a
// symlink named OUT is replaced itself, never its target).
fs::path output_path(const std::string& out_dir) {
  fs::path p = fs::absolute(out_dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p;
}

// Refuses an output that is, holds, or lies within the input, or that exists
// without force. `refusal` is the one-line reason for the first case.
void check_output(const fs::path& in, const std::vector<TreeEntry>& tree, const fs::path& out, bool force,
                  const std::string& refusal) {
  std::error_code ec;
  const fs::path in_c = fs::canonical(in, ec);
  if (ec) fail(in.string(), ": cannot resolve the path (", ec.message(), ")");
  const fs::path out_c = fs::weakly_canonical(out, ec);
  if (ec) fail(out.string(), ": cannot resolve the path (", ec.message(), ")");
  const bool exists = fs::exists(fs::symlink_status(out, ec));
  if (out_c == in_c || is_within(out_c, in_c) || is_within(in_c, out_c) || (exists && fs::equivalent(out, in, ec)))
    fail(out.string(), ": ", refusal, " (", in.string(), ")");
  // A file of the input reached through a symlink into OUT would be lost with it.
  for (const TreeEntry& t : tree)
    if (is_within(fs::weakly_canonical(in / t.rel, ec), out_c))
      fail(out.string(), ": ", refusal, " (", (in / t.rel).string(), " lives there)");
  if (!exists) return;
  if (!fs::is_directory(out, ec)) fail(out.string(), ": exists and is not a directory");
  if (!force && !fs::is_empty(out, ec)) fail(out.string(), ": already exists and is not empty (use --force to overwrite)");
}

Staging::Staging(const fs::path& out) : out_(out) {
  std::error_code ec;
  fs::create_directories(out.parent_path(), ec);
  if (ec) fail(out.parent_path().string(), ": cannot create the output's parent directory (", ec.message(), ")");
  path_ = out.parent_path() / (out.filename().string() + ".tmp-" + unique_suffix());
  if (!fs::create_directory(path_, ec) || ec) fail(path_.string(), ": cannot create the staging directory");
}

Staging::~Staging() {
  std::error_code ec;
  if (!committed_) fs::remove_all(path_, ec);
}

void Staging::commit() {
  fsync_dir(path_);
  std::error_code ec;
  fs::path old;
  if (fs::exists(fs::symlink_status(out_, ec))) {
    old = out_.parent_path() / (out_.filename().string() + ".old-" + unique_suffix());
    fs::rename(out_, old, ec);
    if (ec) fail(out_.string(), ": cannot move the existing directory aside (", ec.message(), ")");
  }
  fs::rename(path_, out_, ec);
  if (ec) {
    std::error_code ec2;
    if (!old.empty()) fs::rename(old, out_, ec2);
    fail(out_.string(), ": cannot rename the finished checkpoint into place (", ec.message(), ")");
  }
  committed_ = true;
  fsync_dir(out_.parent_path());
  if (!old.empty()) fs::remove_all(old, ec);
}

}  // namespace mmn
