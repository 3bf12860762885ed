#include "models/checkpoint_edit.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "io/atomic_file.h"
#include "io/json_file.h"
#include "util/error.h"

namespace mmn {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// One stored element of an edited column: `n` bytes at `offset` in its file
// that must read `expect` and become `replace`.
struct Patch {
  uint64_t offset;
  const uint8_t* expect;
  const uint8_t* replace;
  size_t n;
  NeuronRef neuron;
};
// Top-level file name (shards never live in sub-directories) → its patches, by offset.
using PatchMap = std::map<std::string, std::vector<Patch>>;
// Called with the neuron whose stored bytes are not the expected ones; throws.
using MismatchFn = std::function<void(NeuronRef)>;

// ---------------------------------------------------------------- locating columns

// Layer l's down_proj as stored: the checkpoint tensor the decoder's weight maps.
const TensorRef& down_tensor(const VisionLanguageModel& m, int l) {
  const void* data = m.decoder().layer(l).down.w.data;
  for (const auto& [name, t] : m.checkpoint().tensors())
    if (t.data == data) return t;
  fail(m.dir(), ": layer ", l, " down_proj is not a stored tensor of the checkpoint (cannot export its edit)");
}

void check_edit_fits(const ValueEdit& e, const VisionLanguageModel& m) {
  const LlamaConfig& c = m.decoder().config();
  if (e.family != m.family() || e.n_layers != c.n_layers || e.d_model != c.hidden || e.d_ff != c.intermediate)
    fail(m.dir(), ": the edit was made for another model (", e.family, ", ", e.n_layers, " layers, d_model ", e.d_model,
         ", d_ff ", e.d_ff, ")");
  const size_t col = static_cast<size_t>(e.d_model) * dtype_size(e.dtype);
  if (e.original.size() != e.neurons.size() * col || e.edited.size() != e.neurons.size() * col)
    fail("internal: edit column bytes do not match its neurons and dtype");
  std::set<std::pair<int, int>> seen;
  for (const NeuronRef n : e.neurons) {
    if (n.layer < 0 || n.layer >= c.n_layers || n.unit < 0 || n.unit >= c.intermediate)
      fail(m.dir(), ": edit neuron ", n.layer, ":", n.unit, " is outside the model");
    if (!seen.insert({n.layer, n.unit}).second) fail("edit: neuron ", n.layer, ":", n.unit, " is listed twice");
    if (m.decoder().layer(n.layer).down.w.dtype != e.dtype)
      fail(m.dir(), ": layer ", n.layer, " stores ", dtype_name(m.decoder().layer(n.layer).down.w.dtype),
           " value vectors but the edit was made for ", dtype_name(e.dtype));
  }
}

// The byte patches turning columns `expect` into `replace` in m's files, and
// (for the record) which tensor of which file each edited layer lives in.
PatchMap column_patches(const VisionLanguageModel& m, const ValueEdit& e, const std::vector<uint8_t>& expect,
                        const std::vector<uint8_t>& replace, json* tensors) {
  const size_t es = dtype_size(e.dtype), col = static_cast<size_t>(e.d_model) * es;
  PatchMap out;
  std::set<int> recorded;
  for (size_t k = 0; k < e.neurons.size(); ++k) {
    const NeuronRef n = e.neurons[k];
    const TensorRef& t = down_tensor(m, n.layer);
    if (t.dtype != e.dtype || t.shape != std::vector<int64_t>{e.d_model, e.d_ff})
      fail(t.file, ": tensor ", t.name, " is ", dtype_name(t.dtype), " ", t.shape_str(), ", not the [", e.d_model, ", ",
           e.d_ff, "] ", dtype_name(e.dtype), " down_proj the edit expects");
    // Patching a stored zip entry of a pickled .bin would leave its CRC-32 stale, which torch.load checks.
    const std::string ext = fs::path(t.file).extension().string();
    if (ext != ".safetensors")
      fail(t.file, ": exporting an edit into a pickled checkpoint is not supported (its zip CRCs would go stale); "
                   "convert the model to safetensors first");
    const std::string key = fs::path(t.file).filename().string();
    const uint64_t base = t.file_offset;
    for (int64_t d = 0; d < e.d_model; ++d) {
      const uint64_t off = base + (static_cast<uint64_t>(d) * e.d_ff + n.unit) * es;
      out[key].push_back({off, &expect[k * col + d * es], &replace[k * col + d * es], es, n});
    }
    if (recorded.insert(n.layer).second)
      tensors->push_back({{"layer", n.layer}, {"tensor", t.name}, {"file", key}});
  }
  for (auto& [f, ps] : out) std::sort(ps.begin(), ps.end(), [](auto& a, auto& b) { return a.offset < b.offset; });
  return out;
}

// Checks, before anything is written, that every patch finds its expected bytes.
void verify_patches(const fs::path& dir, const PatchMap& patches, const MismatchFn& mismatch) {
  for (const auto& [name, ps] : patches) {
    const std::string file = (dir / name).string();
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(file, ": cannot open: ", std::strerror(errno));
    uint8_t buf[16];
    for (const Patch& p : ps) {
      const bool ok = p.n <= sizeof buf && ::pread(fd, buf, p.n, static_cast<off_t>(p.offset)) == static_cast<ssize_t>(p.n);
      if (!ok || std::memcmp(buf, p.expect, p.n) != 0) {
        ::close(fd);
        if (!ok) fail(file, ": cannot read the bytes of neuron ", p.neuron.layer, ":", p.neuron.unit);
        mismatch(p.neuron);
      }
    }
    ::close(fd);
  }
}

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
}

// Every file and directory under root (following symlinks, whose content is what a loader reads).
struct TreeEntry {
  fs::path rel;
  bool is_dir;
};
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

// ---------------------------------------------------------------- output directory

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

// A directory beside OUT that becomes OUT only when commit() is called; removed otherwise.
class Staging {
 public:
  explicit Staging(const fs::path& out) : out_(out) {
    std::error_code ec;
    fs::create_directories(out.parent_path(), ec);
    if (ec) fail(out.parent_path().string(), ": cannot create the output's parent directory (", ec.message(), ")");
    path_ = out.parent_path() / (out.filename().string() + ".tmp-" + unique_suffix());
    if (!fs::create_directory(path_, ec) || ec) fail(path_.string(), ": cannot create the staging directory");
  }
  ~Staging() {
    std::error_code ec;
    if (!committed_) fs::remove_all(path_, ec);
  }
  Staging(const Staging&) = delete;
  Staging& operator=(const Staging&) = delete;
  const fs::path& path() const { return path_; }

  // Renames the finished directory into place (an existing OUT, allowed by
  // force, is moved aside first and removed after).
  void commit() {
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

 private:
  fs::path out_, path_;
  bool committed_ = false;
};

json edit_record(const VisionLanguageModel& source, const ValueEdit& e, const json& tensors) {
  json neurons = json::array();
  for (const NeuronRef n : e.neurons) neurons.push_back({n.layer, n.unit});
  return {{"tool", "mmneuron export-edit"},
          {"version", MMN_VERSION},
          {"source", {{"dir", fs::canonical(source.dir()).string()},
                      {"fingerprint", e.model_fingerprint},
                      {"family", e.family},
                      {"layers", e.n_layers},
                      {"d_model", e.d_model},
                      {"d_ff", e.d_ff},
                      {"dtype", dtype_name(e.dtype)}}},
          {"neurons", neurons},
          {"tensors", tensors},
          {"weights_changed", static_cast<int64_t>(e.neurons.size()) * e.d_model},
          {"edit", e.info}};
}

}  // namespace

void export_value_edit(const VisionLanguageModel& source, const ValueEdit& e, const std::string& out_dir, bool force) {
  const fs::path src = source.dir(), out = output_path(out_dir);
  std::vector<TreeEntry> tree;
  list_tree(src, "", 0, tree);
  check_output(src, tree, out, force, "refusing to export onto the source model");
  check_edit_fits(e, source);
  if (!e.model_fingerprint.empty()) {
    const std::string fp = model_fingerprint(source);
    if (fp != e.model_fingerprint)
      fail(src.string(), ": the edit was made for another model (weights fingerprint ", e.model_fingerprint, ", this one has ",
           fp, ")");
  }
  json tensors = json::array();
  const PatchMap patches = column_patches(source, e, e.original, e.edited, &tensors);
  const MismatchFn mismatch = [&](NeuronRef n) {
    fail(src.string(), ": neuron ", n.layer, ":", n.unit,
         " does not hold the value vector the edit was made from (the edit belongs to another model, or this one is already edited)");
  };
  verify_patches(src, patches, mismatch);

  // A source that is itself an export keeps its record inside ours, so revert restores it exactly.
  json record = edit_record(source, e, tensors);
  std::erase_if(tree, [](const TreeEntry& t) { return t.rel == kExportedEditFile; });
  if (fs::exists(src / kExportedEditFile)) record["source_edit_file"] = read_file((src / kExportedEditFile).string());

  Staging staging(out);
  copy_tree(src, tree, staging.path(), patches, mismatch);
  write_file_atomic((staging.path() / kExportedEditFile).string(), record.dump(1) + "\n");
  staging.commit();
}

void revert_value_edit(const ValueEdit& e, const std::string& edited_model_dir, const std::string& out_dir, bool force) {
  const fs::path in = edited_model_dir, out = output_path(out_dir);
  std::error_code ec;
  if (!fs::is_directory(in, ec)) fail(in.string(), ": edited model directory not found");
  std::vector<TreeEntry> tree;
  list_tree(in, "", 0, tree);
  check_output(in, tree, out, force, "refusing to revert onto the edited model");
  const std::unique_ptr<VisionLanguageModel> m = load_model(in.string());
  check_edit_fits(e, *m);
  json tensors = json::array();
  const PatchMap patches = column_patches(*m, e, e.edited, e.original, &tensors);
  const MismatchFn mismatch = [&](NeuronRef n) {
    fail(in.string(), ": neuron ", n.layer, ":", n.unit,
         " does not hold the edited value vector (not the export of this edit)");
  };
  verify_patches(in, patches, mismatch);

  // Our record goes; the source's own record (if it was an export itself) comes back.
  std::erase_if(tree, [](const TreeEntry& t) { return t.rel == kExportedEditFile; });
  std::string previous;
  bool has_previous = false;
  if (fs::exists(in / kExportedEditFile)) {
    try {
      const json j = parse_json(read_file((in / kExportedEditFile).string()), (in / kExportedEditFile).string());
      if (j.contains("source_edit_file") && j["source_edit_file"].is_string()) {
        previous = j["source_edit_file"].get<std::string>();
        has_previous = true;
      }
    } catch (const json::exception&) {
      fail((in / kExportedEditFile).string(), ": not valid JSON");
    }
  }

  Staging staging(out);
  copy_tree(in, tree, staging.path(), patches, mismatch);
  if (has_previous) write_file_atomic((staging.path() / kExportedEditFile).string(), previous);
  staging.commit();
}

}  // namespace mmn
