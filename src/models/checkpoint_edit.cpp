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
#include "models/checkpoint_dir.h"
#include "util/error.h"

namespace mmn {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

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
