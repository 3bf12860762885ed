#include "neurons/run.h"

#include <algorithm>
#include <filesystem>

#include "io/atomic_file.h"
#include "io/npy.h"
#include "util/error.h"

namespace mmn {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json parse_json_file(const fs::path& p) {
  if (!fs::exists(p)) fail(p.string(), ": no such file");
  try {
    return json::parse(read_file(p.string()));
  } catch (const json::exception&) {
    fail(p.string(), ": not valid JSON");
  }
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

RunData load_run(const std::string& dir) {
  RunData run;
  run.dir = dir;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail(dir, ": run directory not found");
  const fs::path info_path = fs::path(dir) / "run.json";
  if (!fs::exists(info_path)) fail(info_path.string(), ": no such file (not a find run)");
  run.info = parse_json_file(info_path);
  if (!run.info.is_object() || !run.info.contains("options") || !run.info["layers"].is_number_integer() ||
      !run.info["units_per_layer"].is_number_integer() || !run.info["model"].is_string())
    fail(info_path.string(), ": missing model, layers, units_per_layer or options (not a find run)");
  const int L = run.layers();
  const int64_t I = run.units_per_layer();
  if (L <= 0 || I <= 0) fail(info_path.string(), ": layers and units_per_layer must be positive");
  std::vector<fs::path> dirs;
  for (auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && fs::exists(e.path() / "result.json")) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  for (auto& d : dirs) {
    const fs::path rp = d / "result.json";
    json r = parse_json_file(rp);
    RunImage im;
    im.dir = d.string();
    try {
      im.id = r.value("id", d.filename().string());
      im.image = r.at("image").get<std::string>();
      im.caption = r.at("caption").get<std::string>();
      im.generated_ids = r.at("generated_ids").get<std::vector<int32_t>>();
      im.prompt_ids = r.value("prompt_ids", std::vector<int32_t>{});
      im.permutation = r.value("permutation", std::vector<int64_t>{});
      for (auto& n : r.at("nouns")) {
        RunConcept c;
        c.word = n.at("word").get<std::string>();
        c.lemma = n.value("lemma", c.word);
        c.token_id = n.at("token_id").get<int32_t>();
        c.step = n.at("step").get<int>();
        if (c.step < 0 || c.step >= static_cast<int>(im.generated_ids.size()) || im.generated_ids[c.step] != c.token_id)
          fail(rp.string(), ": noun '", c.word, "' has step ", c.step, " but generated_ids does not hold its token there");
        im.concepts.push_back(std::move(c));
      }
    } catch (const json::exception& e) {
      fail(rp.string(), ": not a find result (", e.what(), ")");
    }
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
