// Exporting a knowledge edit as a checkpoint and reverting it: only the edited
// down_proj column bytes change, the export loads, the revert is bit for bit
// the source, and bad outputs are refused without touching anything.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "golden_models.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "kernels/convert.h"
#include "models/checkpoint_edit.h"
#include "models/value_edit.h"
#include "models/vlm.h"
#include "test_util.h"
#include "util/error.h"

namespace {

namespace fs = std::filesystem;
using namespace mmn;
using namespace mmn::test;
using nlohmann::json;

// ---------------------------------------------------------------- sources

// Golden model `name`, copied (real files, writable) to dest.
void copy_golden(const std::string& name, const fs::path& dest) {
  fs::copy(golden("models/" + name), dest, fs::copy_options::recursive);
  for (const auto& e : fs::recursive_directory_iterator(dest))
    fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
  fs::permissions(dest, fs::perms::owner_write, fs::perm_options::add);
}

// tiny-llava-a-f32 split into two shards plus model.safetensors.index.json;
// layer l's down_proj goes to shard l % 2 so edits of two layers touch both.
void write_sharded(const fs::path& dest) {
  copy_golden("tiny-llava-a-f32", dest);
  fs::remove(dest / "model.safetensors");
  const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(golden("models/tiny-llava-a-f32").string());
  const std::string shard_name[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
  std::vector<TensorSpec> specs[2];
  json weight_map = json::object();
  const std::regex down(R"(layers\.(\d+)\.mlp\.down_proj\.weight$)");
  int i = 0;
  size_t total = 0;
  for (const auto& [n, t] : ck.tensors()) {
    std::smatch mt;
    const int s = std::regex_search(n, mt, down) ? std::stoi(mt[1]) % 2 : i++ % 2;
    specs[s].push_back({n, t.dtype, t.shape});
    weight_map[n] = shard_name[s];
    total += t.nbytes;
  }
  for (int s = 0; s < 2; ++s)
    write_safetensors((dest / shard_name[s]).string(), specs[s], {{"format", "pt"}},
                      [&](const TensorSpec& sp, std::FILE* f) {
                        const TensorRef& t = ck.get(sp.name);
                        std::fwrite(t.data, 1, t.nbytes, f);
                      });
  write_file_atomic((dest / "model.safetensors.index.json").string(),
                    json{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}.dump(2));
}

void make_random_bf16(const fs::path& dest) {
  std::string out;
  const std::string cmd = binary() + " make-random --preset tiny --dtype bf16 --out " + dest.string() +
                          " --tokenizer-from " + golden("models/tiny-llava-a-f32").string();
  ASSERT_EQ(run_cmd(cmd, &out), 0) << out;
}

// Writes the source checkpoint of a test variant into dest.
void prepare_source(const std::string& variant, const fs::path& dest) {
  if (variant == "random-bf16") make_random_bf16(dest);
  else if (variant == "sharded-llava-a-f32") write_sharded(dest);
  else copy_golden(variant, dest);
}

// ---------------------------------------------------------------- snapshots

struct FileState {
  std::string bytes;
  fs::file_time_type mtime;
};
// Every regular file under dir (following symlinks), by relative path.
using Snapshot = std::map<std::string, FileState>;

Snapshot snapshot(const fs::path& dir) {
  Snapshot s;
  for (const auto& e : fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink))
    if (fs::is_regular_file(e.path()))
      s[e.path().lexically_relative(dir).string()] = {read_file(e.path().string()), fs::last_write_time(e.path())};
  return s;
}

std::set<std::string> names(const Snapshot& s) {
  std::set<std::string> out;
  for (auto& [n, f] : s) out.insert(n);
  return out;
}

// Same files with the same bytes (mtimes too when `mtimes`).
void expect_same_tree(const Snapshot& want, const Snapshot& got, bool mtimes, const std::string& what) {
  EXPECT_EQ(names(want), names(got)) << what;
  for (auto& [n, f] : want) {
    auto it = got.find(n);
    if (it == got.end()) continue;
    EXPECT_TRUE(f.bytes == it->second.bytes) << what << ": " << n << " differs";
    if (mtimes) {
      EXPECT_TRUE(f.mtime == it->second.mtime) << what << ": " << n << " was touched";
    }
  }
}

// Staging (.tmp-) or set-aside (.old-) leftovers anywhere under dir.
std::vector<std::string> leftovers(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.find(".tmp-") != std::string::npos || n.find(".old-") != std::string::npos) out.push_back(e.path().string());
  }
  return out;
}

// ---------------------------------------------------------------- the edit

const TensorRef& down_tensor(const VisionLanguageModel& m, int l) {
  for (auto& [name, t] : m.checkpoint().tensors())
    if (t.data == m.decoder().layer(l).down.w.data) return t;
  throw std::runtime_error("no tensor for down_proj of layer " + std::to_string(l));
}

// Neurons in the first, last and middle layers, plus the neighbour column of the first.
std::vector<NeuronRef> pick_neurons(const VisionLanguageModel& m) {
  const LlamaConfig& c = m.decoder().config();
  const int I = static_cast<int>(c.intermediate);
  std::vector<NeuronRef> ns;
  const int layers[3] = {0, c.n_layers - 1, c.n_layers / 2};
  for (int k = 0; k < 3; ++k) {
    NeuronRef n{layers[k], (3 + 11 * k) % I};
    if (std::find(ns.begin(), ns.end(), n) == ns.end()) ns.push_back(n);
  }
  ns.push_back({0, 4 % I});  // adjacent to neuron 0:3: neighbouring bytes in every row
  return ns;
}

// new column = old + 0.25·(1.5 + sin(…)): a change visible in every dtype.
ValueEdit make_edit(const VisionLanguageModel& m, const std::vector<NeuronRef>& ns, float scale = 0.25f) {
  const int64_t D = m.decoder().config().hidden;
  const DType dt = m.decoder().layer(0).down.w.dtype;
  std::vector<float> cols;
  std::vector<float> old(D);
  for (size_t k = 0; k < ns.size(); ++k) {
    const std::vector<uint8_t> bytes = read_value_column(m, ns[k]);
    convert_to_f32(dt, bytes.data(), old.data(), D);
    for (int64_t d = 0; d < D; ++d) cols.push_back(old[d] + scale * (1.5f + std::sin(0.7f * d + k)));
  }
  return make_value_edit(m, ns, cols, {{"from", "cat"}, {"to", "dog"}, {"rule", "test"}});
}

// The source's files with e.edited written at each edited element, computed
// from the headers (independently of the exporter); *changed gets the patched files.
Snapshot expected_export(const VisionLanguageModel& m, const ValueEdit& e, const Snapshot& src,
                         std::set<std::string>* changed) {
  Snapshot want = src;
  const size_t es = dtype_size(e.dtype), col = e.d_model * es;
  for (size_t k = 0; k < e.neurons.size(); ++k) {
    const TensorRef& t = down_tensor(m, e.neurons[k].layer);
    const std::string f = fs::path(t.file).filename().string();
    std::string& bytes = want.at(f).bytes;
    const SafetensorsHeader h =
        parse_safetensors_header(f, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    const auto& en = *std::find_if(h.entries.begin(), h.entries.end(), [&](auto& x) { return x.name == t.name; });
    for (int64_t d = 0; d < e.d_model; ++d)
      std::memcpy(&bytes[h.data_start + en.begin + (d * e.d_ff + e.neurons[k].unit) * es], &e.edited[k * col + d * es], es);
    changed->insert(f);
  }
  return want;
}

// Runs fn, which must throw one line containing `needle`.
void expect_refusal(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected '" << needle << "'";
  } catch (const Error& err) {
    const std::string what = err.what();
    EXPECT_NE(what.find(needle), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << "not one line: " << what;
  }
}

class EditExport : public ::testing::TestWithParam<std::string> {};

TEST_P(EditExport, OnlyEditedColumnsChangeAndRevertRestoresTheSource) {
  MMN_REQUIRE_SHARED();
  const fs::path work = temp_dir("edit-export"), src = work / "source", out = work / "edited", rev = work / "reverted";
  prepare_source(GetParam(), src);
  if (HasFatalFailure()) return;
  const Snapshot before = snapshot(src);
  auto m = load_model(src.string());
  const ValueEdit e = make_edit(*m, pick_neurons(*m));
  const size_t col = e.d_model * dtype_size(e.dtype);
  for (size_t k = 0; k < e.neurons.size(); ++k)
    ASSERT_NE(std::memcmp(&e.original[k * col], &e.edited[k * col], col), 0) << "edit changes nothing";

  export_value_edit(*m, e, out.string(), false);

  // Every file identical except exactly the edited column bytes; the record added.
  std::set<std::string> changed;
  Snapshot want = expected_export(*m, e, before, &changed);
  Snapshot got = snapshot(out);
  ASSERT_TRUE(got.count(kExportedEditFile));
  const json record = json::parse(got.at(kExportedEditFile).bytes);
  got.erase(kExportedEditFile);
  expect_same_tree(want, got, false, "export");
  for (auto& [n, f] : before)
    EXPECT_EQ(f.bytes != got[n].bytes, changed.count(n) == 1) << n << ": only the edited shards may differ";
  if (GetParam() == "sharded-llava-a-f32") {
    EXPECT_EQ(changed.size(), 2u) << "the edit should touch both shards";
  }
  EXPECT_EQ(record.at("source").at("dir").get<std::string>(), fs::canonical(src).string());
  EXPECT_EQ(record.at("neurons").size(), e.neurons.size());
  EXPECT_EQ(record.at("edit").at("to").get<std::string>(), "dog");

  // The export loads, and its value vectors are the edited ones.
  {
    auto x = load_model(out.string());
    for (size_t k = 0; k < e.neurons.size(); ++k) {
      const std::vector<uint8_t> c = read_value_column(*x, e.neurons[k]);
      EXPECT_EQ(std::memcmp(c.data(), &e.edited[k * col], col), 0) << e.neurons[k].layer << ":" << e.neurons[k].unit;
    }
  }

  // Revert: bit for bit the source, without the record.
  revert_value_edit(e, out.string(), rev.string(), false);
  expect_same_tree(before, snapshot(rev), false, "revert");

  expect_same_tree(before, snapshot(src), true, "source after export and revert");
  EXPECT_EQ(leftovers(work), std::vector<std::string>{});
  fs::remove_all(work);
}

TEST_P(EditExport, RefusesBadOutputsAndForeignModels) {
  MMN_REQUIRE_SHARED();
  const fs::path work = temp_dir("edit-export-bad"), holder = work / "holder", src = holder / "source";
  fs::create_directories(holder);
  prepare_source(GetParam(), src);
  if (HasFatalFailure()) return;
  const Snapshot before = snapshot(src);
  auto m = load_model(src.string());
  const ValueEdit e = make_edit(*m, pick_neurons(*m));
  const char* onto_source = "refusing to export onto the source model";

  // Onto the source: itself, spelled with a trailing slash, inside it, through
  // a symlink, or a directory holding it (force would delete it).
  expect_refusal([&] { export_value_edit(*m, e, src.string(), true); }, onto_source);
  expect_refusal([&] { export_value_edit(*m, e, src.string() + "/", true); }, onto_source);
  expect_refusal([&] { export_value_edit(*m, e, (src / "sub").string(), true); }, onto_source);
  EXPECT_FALSE(fs::exists(src / "sub"));
  fs::create_directory_symlink(src, work / "link");
  expect_refusal([&] { export_value_edit(*m, e, (work / "link").string(), true); }, onto_source);
  expect_refusal([&] { export_value_edit(*m, e, holder.string(), true); }, onto_source);

  // An existing output: refused unless empty or forced; a file is never replaced.
  fs::create_directories(work / "busy");
  write_file_atomic((work / "busy" / "keep.txt").string(), "mine");
  expect_refusal([&] { export_value_edit(*m, e, (work / "busy").string(), false); }, "already exists");
  EXPECT_TRUE(fs::exists(work / "busy" / "keep.txt"));
  write_file_atomic((work / "plain").string(), "x");
  expect_refusal([&] { export_value_edit(*m, e, (work / "plain").string(), true); }, "not a directory");
  fs::create_directories(work / "empty");
  export_value_edit(*m, e, (work / "empty").string(), false);
  EXPECT_TRUE(fs::exists(work / "empty" / kExportedEditFile));
  export_value_edit(*m, e, (work / "busy").string(), true);
  EXPECT_FALSE(fs::exists(work / "busy" / "keep.txt"));
  const fs::path out = work / "busy";
  const Snapshot exported = snapshot(out);

  // An edit whose original bytes are not this model's, and an already edited source.
  ValueEdit foreign = e;
  foreign.original[foreign.original.size() / 2] ^= 1;
  expect_refusal([&] { export_value_edit(*m, foreign, (work / "foreign").string(), false); }, "another model");
  {
    auto x = load_model(out.string());
    ValueEdit same_fp = e;
    same_fp.model_fingerprint.clear();  // get past the fingerprint to the column check
    expect_refusal([&] { export_value_edit(*x, same_fp, (work / "twice").string(), false); }, "another model");
    expect_refusal([&] { export_value_edit(*x, e, (work / "twice").string(), false); }, "another model");
  }
  EXPECT_FALSE(fs::exists(work / "foreign"));
  EXPECT_FALSE(fs::exists(work / "twice"));

  // Revert: of a model that is not the export of this edit, onto its input.
  expect_refusal([&] { revert_value_edit(e, src.string(), (work / "rv").string(), false); },
                 "not the export of this edit");
  EXPECT_FALSE(fs::exists(work / "rv"));
  const char* onto_input = "refusing to revert onto the edited model";
  expect_refusal([&] { revert_value_edit(e, out.string(), out.string(), true); }, onto_input);
  expect_refusal([&] { revert_value_edit(e, out.string(), (out / "sub").string(), true); }, onto_input);
  expect_refusal([&] { revert_value_edit(e, out.string(), work.string(), true); }, onto_input);  // holds it
  write_file_atomic((work / "taken" / "x").string(), "x");
  expect_refusal([&] { revert_value_edit(e, out.string(), (work / "taken").string(), false); }, "already exists");

  // Nothing was written into the source or the export, and nothing left behind.
  expect_same_tree(before, snapshot(src), true, "source");
  expect_same_tree(exported, snapshot(out), true, "export");
  EXPECT_EQ(leftovers(work), std::vector<std::string>{});
  fs::remove_all(work);
}

// An export of an export reverts to the first export, its record included.
TEST(EditExportStacked, RevertOfASecondEditRestoresTheFirstExport) {
  MMN_REQUIRE_SHARED();
  const fs::path work = temp_dir("edit-export-stack"), src = work / "source";
  prepare_source("tiny-llava-c-f16", src);
  auto m = load_model(src.string());
  const ValueEdit e1 = make_edit(*m, pick_neurons(*m));
  export_value_edit(*m, e1, (work / "one").string(), false);
  const Snapshot one = snapshot(work / "one");
  auto m1 = load_model((work / "one").string());
  const ValueEdit e2 = make_edit(*m1, {{0, 3}, {0, 9}}, -0.125f);  // overlaps e1 at 0:3
  export_value_edit(*m1, e2, (work / "two").string(), false);
  revert_value_edit(e2, (work / "two").string(), (work / "one-again").string(), false);
  expect_same_tree(one, snapshot(work / "one-again"), false, "revert of the second edit");
  revert_value_edit(e1, (work / "one-again").string(), (work / "zero").string(), false);
  expect_same_tree(snapshot(src), snapshot(work / "zero"), false, "revert of both edits");
  EXPECT_EQ(leftovers(work), std::vector<std::string>{});
  fs::remove_all(work);
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, EditExport,
                         ::testing::Values("tiny-llava-a-f32", "tiny-llava-c-f16", "tiny-iblip-a-f32", "tiny-owl2-a-f32",
                                           "random-bf16", "sharded-llava-a-f32"),
                         [](const ::testing::TestParamInfo<std::string>& p) {
                           std::string n = p.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

}  // namespace
