#include "neurons/run.h"

#include <algorithm>
#include <climits>
#include <filesystem>

#include "io/atomic_file.h"
#include "io/json_file.h"
#include "io/npy.h"
#include "util/error.h"

namespace mmn {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json parse_json_file(const fs::path& p) {
  if (!fs::exists(p)) fail(p.string(), ": no such file");
  return parse_json(read_file(p.string()), p.string());
}

// The integer at obj[key] in [lo, hi]; floats, huge numbers and other types
// are refused naming the file (a cast would be undefined or truncate).
int64_t int_field(const json& obj, const char* key, int64_t lo, int64_t hi, const fs::path& file,
                  const std::string& where = "") {
  if (!obj.contains(key)) fail(file.string(), ": ", where, "missing \"", key, "\"");
  if (auto v = json_int(obj[key], lo, hi)) return *v;
  fail(file.string(), ": ", where, "\"", key, "\" is ", describe_json(obj[key]), ", not an integer in [", lo, ", ",
       hi, "]");
}

// A list of token ids (or permutation entries): integers in the int32 range.
template <class T>
std::vector<T> int_list(const json& obj, const char* key, bool required, const fs::path& file) {
  if (!obj.contains(key) && !required) return {};
  if (!obj.contains(key)) fail(file.string(), ": missing \"", key, "\"");
  const json& a = obj[key];
  if (!a.is_array()) fail(file.string(), ": \"", key, "\" is ", describe_json(a), ", not a list of integers");
  std::vector<T> out;
  out.reserve(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    auto v = json_int(a[i], INT32_MIN, INT32_MAX);
    if (!v) fail(file.string(), ": ", key, "[", i, "] is ", describe_json(a[i]), ", not a 32-bit integer");
    out.push_back(static_cast<T>(*v));
  }
  return out;
}

std::string string_field(const json& obj, const char* key, const fs::path& file, const std::string& where = "") {
  if (!obj.contains(key) || !obj[key].is_string())
    fail(file.string(), ": ", where, "\"", key, "\" is missing or not a string");
  return obj[key].get<std::string>();
}

RunImage read_result(const fs::path& d) {
  const fs::path rp = d / "result.json";
  const json r = parse_json_file(rp);
  if (!r.is_object()) fail(rp.string(), ": not a find result (expected a JSON object)");
  RunImage im;
  im.dir = d.string();
  im.id = r.contains("id") ? string_field(r, "id", rp) : d.filename().string();
  im.image = string_field(r, "image", rp);
  im.caption = string_field(r, "caption", rp);
  im.generated_ids = int_list<int32_t>(r, "generated_ids", true, rp);
  im.prompt_ids = int_list<int32_t>(r, "prompt_ids", false, rp);
  im.permutation = int_list<int64_t>(r, "permutation", false, rp);
  if (!r.contains("nouns") || !r["nouns"].is_array()) fail(rp.string(), ": \"nouns\" is missing or not a list");
  for (const json& n : r["nouns"]) {
    if (!n.is_object()) fail(rp.string(), ": a noun entry is ", describe_json(n), ", not an object");
    RunConcept c;
    c.word = string_field(n, "word", rp, "noun: ");
    c.lemma = n.contains("lemma") ? string_field(n, "lemma", rp, "noun '" + c.word + "': ") : c.word;
    c.token_id = static_cast<int32_t>(int_field(n, "token_id", INT32_MIN, INT32_MAX, rp, "noun '" + c.word + "': "));
    c.step = static_cast<int>(int_field(n, "step", 0, INT32_MAX, rp, "noun '" + c.word + "': "));
    if (c.step >= static_cast<int>(im.generated_ids.size()) || im.generated_ids[c.step] != c.token_id)
      fail(rp.string(), ": noun '", c.word, "' has step ", c.step, " but generated_ids does not hold its token there");
    im.concepts.push_back(std::move(c));
  }
  return im;
}

std::vector<NeuronEntry> read_neurons(const fs::path& p, size_t n_concepts, int layers, int64_t units) {
  NpyArray a = read_npy(p.string());
  if (a.shape.size() != 3 || a.shape[2] != 3 || static_cast<size_t>(a.shape[0]) != n_concepts)
    fail(p.string(), ": expected shape [", n_concepts, ", k, 3] (one row of (layer, unit, score) per neuron)");
  std::vector<float> v = a.as_f32();
  std::vector<NeuronEntry> out(v.size() / 3);
  for (size_t i = 0; i < out.size(); ++i) {
    const float l = v[3 * i], u = v[3 * i + 1];
    if (!(l >= 0 && l < layers && u >= 0 && u < static_cast<float>(units) && l == static_cast<int>(l) &&
          u == static_cast<int>(u)))
      fail(p.string(), ": neuron ", i, " (", l, ", ", u, ") is not a neuron of a ", layers, "×", units, " model");
    out[i] = {static_cast<int>(l), static_cast<int>(u), v[3 * i + 2]};
  }
  return out;
}

}  // namespace

json read_run_json(const std::string& dir) {
  const fs::path p = fs::path(dir) / "run.json";
  if (!fs::exists(p)) fail(p.string(), ": no such file (not a find run)");
  json j = parse_json(read_file(p.string()), p.string());
  if (!j.is_object()) fail(p.string(), ": expected a JSON object, not ", describe_json(j), " (not a find run)");
  return j;
}

RunData load_run(const std::string& dir) {
  RunData run;
  run.dir = dir;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail(dir, ": run directory not found");
  const fs::path info_path = fs::path(dir) / "run.json";
  run.info = read_run_json(dir);
  if (!run.info.contains("options") || !run.info.contains("layers") || !run.info.contains("units_per_layer") ||
      !run.info.contains("model") || !run.info["model"].is_string() ||
      (run.info.contains("vision_tower") && !run.info["vision_tower"].is_string()))
    fail(info_path.string(), ": missing model, layers, units_per_layer or options (not a find run)");
  // Normalised to plain integers so RunData's accessors never narrow a float or a huge number.
  run.info["layers"] = int_field(run.info, "layers", 1, kMaxLayers, info_path);
  run.info["units_per_layer"] = int_field(run.info, "units_per_layer", 1, INT32_MAX, info_path);
  if (!run.info["options"].is_object()) fail(info_path.string(), ": \"options\" is not an object");
  if (run.info.contains("family") && !run.info["family"].is_string())
    fail(info_path.string(), ": \"family\" is not a string");
  if (run.info.contains("model_fingerprint") && !run.info["model_fingerprint"].is_string())
    fail(info_path.string(), ": \"model_fingerprint\" is not a string");
  const int L = run.layers();
  const int64_t I = run.units_per_layer();
  std::vector<fs::path> dirs;
  for (auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && fs::exists(e.path() / "result.json")) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  for (auto& d : dirs) {
    RunImage im = read_result(d);
    if (!im.concepts.empty()) {
      std::vector<NeuronEntry> all = read_neurons(d / "neurons.npy", im.concepts.size(), L, I);
      const size_t k = all.size() / im.concepts.size();
      for (size_t c = 0; c < im.concepts.size(); ++c)
        im.concepts[c].neurons.assign(all.begin() + c * k, all.begin() + (c + 1) * k);
      if (fs::exists(d / "gradient.npy")) {
        std::vector<NeuronEntry> g = read_neurons(d / "gradient.npy", im.concepts.size(), L, I);
        const size_t kg = g.size() / im.concepts.size();
        for (size_t c = 0; c < im.concepts.size(); ++c)
          im.concepts[c].gradient.assign(g.begin() + c * kg, g.begin() + (c + 1) * kg);
      }
    }
    if (fs::exists(d / "image_acts.npy")) im.image_acts = (d / "image_acts.npy").string();
    run.images.push_back(std::move(im));
  }
  return run;
}

void check_run_matches_model(const RunData& run, const VisionLanguageModel& model) {
  const LlamaConfig& c = model.decoder().config();
  const std::string family = run.info.value("family", "");
  if (family != model.family() || run.layers() != c.n_layers || run.units_per_layer() != c.intermediate)
    fail((fs::path(run.dir) / "run.json").string(), ": made with another model (", family, ", ", run.layers(), "×",
         run.units_per_layer(), " FFN neurons) than ", model.dir(), " (", model.family(), ", ", c.n_layers, "×",
         c.intermediate, ")");
  const std::string fp = run.info.value("model_fingerprint", "");
  if (!fp.empty() && fp != model_fingerprint(model))
    fail((fs::path(run.dir) / "run.json").string(), ": made with another model (weights fingerprint ", fp, ", ",
         model.dir(), " has ", model_fingerprint(model), ")");
}

}  // namespace mmn
