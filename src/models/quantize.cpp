#include "models/quantize.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <set>

#include "io/atomic_file.h"
#include "io/json_file.h"
#include "models/checkpoint_dir.h"
#include "tensor/weight.h"
#include "util/error.h"

namespace mmn {

namespace fs = std::filesystem;
using nlohmann::json;

void check_quantization(const SafetensorsCheckpoint& ck, const TensorRef& t) {
  const auto it = ck.metadata().find(kQuantizationKey);
  if (it == ck.metadata().end())
    fail(t.file, ": tensor ", t.name, " has a scale tensor but the file's metadata names no quantization type (expected \"",
         kQuantizationKey, "\": \"", kQ8Type, "\")");
  if (it->second != kQ8Type)
    fail(t.file, ": unknown quantization type \"", it->second, "\" in the metadata (tensor ", t.name,
         "); this mmneuron reads ", kQ8Type);
}

bool is_quantized(const VisionLanguageModel& model) {
  const LlamaDecoder& dec = model.decoder();
  for (int l = 0; l < dec.config().n_layers; ++l)
    if (dec.layer(l).down.w.dtype == DType::I8 || dec.layer(l).up.w.dtype == DType::I8) return true;
  return false;
}

void refuse_quantized(const VisionLanguageModel& model, const std::string& what) {
  if (is_quantized(model)) fail(model.dir(), ": quantized checkpoint: ", what, " the unquantized model");
}

namespace {

// The tensors to quantize: the used 2-D linear weights of the main checkpoint
// (a separate vision tower directory is neither read nor copied here).
std::set<std::string> quantizable(const VisionLanguageModel& m) {
  const JsonFile config = JsonFile::load((fs::path(m.dir()) / "config.json").string());
  std::optional<JsonFile> tower;
  if (!m.vision_tower_dir().empty()) tower = JsonFile::load((fs::path(m.vision_tower_dir()) / "config.json").string());
  std::set<std::string> out;
  for (const TensorDesc& t : describe_checkpoint(config, tower ? &*tower : nullptr).tensors)
    if (t.used && t.role == TensorRole::Weight && t.shape.size() == 2 && !t.unembedding) out.insert(t.name);
  return out;
}

}  // namespace

QuantizeSummary quantize_checkpoint(const VisionLanguageModel& source, const QuantizeOptions& opt) {
  const SafetensorsCheckpoint& ck = source.checkpoint();
  const fs::path src = source.dir(), out = output_path(opt.out);
  if (ck.metadata().count(kQuantizationKey) || is_quantized(source))
    fail(src.string(), ": already quantized; quantize the original model");
  std::vector<TreeEntry> tree;
  list_tree(src, "", 0, tree);
  check_output(src, tree, out, opt.force, "refusing to write the quantized model onto the source model");

  // The weight files are rewritten (and a shard index, which gains the scale
  // tensors); everything else is copied as it is.
  std::set<std::string> rewritten;
  for (const auto& [file, names] : ck.files()) {
    const fs::path f(file);
    if (f.extension() != ".safetensors" || fs::canonical(f.parent_path()) != fs::canonical(src))
      fail(file, ": quantize reads safetensors checkpoints with their files in the model directory (convert this one "
                 "to safetensors first)");
    rewritten.insert(f.filename().string());
  }
  const bool sharded = fs::exists(src / "model.safetensors.index.json");
  if (sharded) rewritten.insert("model.safetensors.index.json");
  std::erase_if(tree, [&](const TreeEntry& t) { return !t.is_dir && rewritten.count(t.rel.string()); });

  const std::set<std::string> todo = quantizable(source);
  QuantizeSummary sum;
  sum.fingerprint = model_fingerprint(source);
  uint64_t total = 0, done = 0;
  for (const std::string& n : todo) {
    if (!ck.has(n)) fail(src.string(), ": missing tensor ", n);
    total += ck.get(n).nbytes;
  }
  std::map<std::string, std::string> meta = ck.metadata();
  meta[kQuantizationKey] = kQ8Type;
  meta[kQuantizedFromKey] = sum.fingerprint;

  Staging staging(out);
  copy_tree(src, tree, staging.path(), {}, [](NeuronRef) {});
  json weight_map = json::object();
  for (const auto& [file, names_by_name] : ck.files()) {
    // Tensors in their stored order, each quantized one followed by its scales.
    std::vector<const TensorRef*> refs;
    for (const std::string& n : names_by_name) refs.push_back(&ck.get(n));
    std::sort(refs.begin(), refs.end(), [](auto* a, auto* b) { return a->file_offset < b->file_offset; });
    std::vector<TensorSpec> specs;
    std::map<std::string, const TensorRef*> by_spec;
    for (const TensorRef* t : refs) {
      const std::string fname = fs::path(file).filename().string();
      weight_map[t->name] = fname;
      if (!todo.count(t->name)) {
        specs.push_back({t->name, t->dtype, t->shape});
        by_spec[t->name] = t;
        ++sum.kept;
        continue;
      }
      if (t->dtype != DType::F32 && t->dtype != DType::F16 && t->dtype != DType::BF16)
        fail(t->file, ": tensor ", t->name, " has dtype ", dtype_name(t->dtype), ", expected F32, F16 or BF16");
      specs.push_back({t->name, DType::I8, t->shape});
      specs.push_back({t->name + kQ8ScaleSuffix, DType::F16, {t->shape[0], q8_blocks(t->shape[1])}});
      by_spec[t->name] = t;
      weight_map[t->name + kQ8ScaleSuffix] = fname;
      ++sum.quantized;
    }
    std::vector<uint16_t> scales;  // of the tensor just written, for its _scale spec next
    const fs::path dst = staging.path() / fs::path(file).filename();
    write_safetensors(dst.string(), specs, meta, [&](const TensorSpec& s, std::FILE* f) {
      auto it = by_spec.find(s.name);
      if (it == by_spec.end()) {  // a scale tensor: its weight was written just before
        if (std::fwrite(scales.data(), 2, scales.size(), f) != scales.size()) fail(dst.string(), ": write failed");
        return;
      }
      const TensorRef& t = *it->second;
      if (s.dtype != DType::I8) {
        if (std::fwrite(t.data, 1, t.nbytes, f) != t.nbytes) fail(dst.string(), ": write failed");
        ck.release_pages(t);
        return;
      }
      const Weight w = Weight::from(t);
      const int64_t nb = q8_blocks(w.cols);
      scales.assign(static_cast<size_t>(w.rows * nb), 0);
      std::vector<float> row(static_cast<size_t>(w.cols));
      std::vector<int8_t> q(static_cast<size_t>(w.cols));
      for (int64_t r = 0; r < w.rows; ++r) {
        weight_row_f32(w, r, 0, w.cols, row.data());
        quantize_row_q8(row.data(), w.cols, q.data(), scales.data() + r * nb);
        if (std::fwrite(q.data(), 1, q.size(), f) != q.size()) fail(dst.string(), ": write failed");
        if (opt.progress && (r + 1) % 1024 == 0) opt.progress(done + (r + 1) * w.cols * w.elem_size(), total);
      }
      ck.release_pages(t);  // read once: keep the RSS to what is being quantized
      done += t.nbytes;
      if (opt.progress) opt.progress(done, total);
    });
    sum.bytes_in += fs::file_size(file);
    sum.bytes_out += fs::file_size(dst);
  }
  if (sharded) {
    const std::string index = (src / "model.safetensors.index.json").string();
    json j = parse_json(read_file(index), index);
    j["weight_map"] = weight_map;
    if (!j.contains("metadata") || !j["metadata"].is_object()) j["metadata"] = json::object();
    j["metadata"]["total_size"] = sum.bytes_out;
    write_file_atomic((staging.path() / "model.safetensors.index.json").string(), j.dump(2) + "\n");
  }
  const json record = {{"tool", "mmneuron quantize"},
                       {"version", MMN_VERSION},
                       {"type", kQ8Type},
                       {"block", kQ8Block},
                       {"scale_dtype", "F16"},
                       {"source", {{"dir", fs::canonical(src).string()},
                                   {"fingerprint", sum.fingerprint},
                                   {"family", source.family()}}},
                       {"quantized_tensors", sum.quantized},
                       {"kept_tensors", sum.kept},
                       {"bytes_in", sum.bytes_in},
                       {"bytes_out", sum.bytes_out}};
  write_file_atomic((staging.path() / kQuantizeRecordFile).string(), record.dump(1) + "\n");
  staging.commit();
  return sum;
}

}  // namespace mmn
