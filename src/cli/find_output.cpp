#include "cli/find_output.h"

#include <algorithm>
#include <filesystem>

#include "io/atomic_file.h"
#include "io/image.h"
#include "io/npy.h"
#include "io/npz.h"
#include "kernels/compute.h"
#include "models/generate.h"
#include "neurons/heatmap.h"
#include "neurons/find_result.h"
#include "neurons/heatmap_figure.h"
#include "neurons/run.h"
#include "util/error.h"

namespace mmn::cli {

namespace fs = std::filesystem;
using nlohmann::json;
// result.json keeps the field order of method.md §7.
using ojson = nlohmann::ordered_json;

RunInfo make_run_info(const VisionLanguageModel& model, const FindOptions& opt, const std::string& model_dir) {
  RunInfo info;
  std::error_code ec;
  fs::path abs = fs::weakly_canonical(model_dir, ec);
  json o = {{"top_k", opt.top_k},
            {"report", opt.report},
            {"activation", activation_variant_name(opt.activation)},
            {"method", opt.method == RankMethod::Gradient ? "gradient" : "score"},
            {"fold_norm_gain", opt.fold_norm_gain},
            {"tokens", opt.all_tokens ? "all" : "nouns"},
            {"nouns", opt.nouns},
            {"heatmaps", opt.heatmaps},
            {"shuffle_image_tokens", opt.shuffle_seed ? json(*opt.shuffle_seed) : json(nullptr)},
            {"random_baseline", opt.random_baseline},
            {"gradient_baseline", opt.also_gradient},
            {"max_new_tokens", opt.max_new_tokens},
            {"query", opt.prompt.query},
            {"prefix", opt.prompt.prefix},
            {"explain_tokens", opt.explain_tokens},
            // The mode in effect (exact where bf16 fell back): runs of different modes must not be mixed.
            {"compute", compute_name(compute_mode())}};
  const LlamaConfig& c = model.decoder().config();
  info.json = {{"tool", "mmneuron"},
               {"version", MMN_VERSION},
               {"model", ec ? model_dir : abs.string()},
               {"model_fingerprint", model_fingerprint(model)},
               {"family", model.family()},
               {"layers", c.n_layers},
               {"units_per_layer", c.intermediate},
               {"image_tokens", model.image_tokens()},
               {"grid_side", model.grid_side()},
               {"options", o}};
  if (!model.vision_tower_dir().empty()) info.json["vision_tower"] = model.vision_tower_dir();
  return info;
}

void check_or_write_run_json(const std::string& run_dir, const RunInfo& info, int shard_i, int shard_n) {
  const fs::path p = fs::path(run_dir) / "run.json";
  json want = info.json;
  want["shard"] = std::to_string(shard_i) + "/" + std::to_string(shard_n);
  if (fs::exists(p)) {
    json have = read_run_json(run_dir);
    // Runs written before --compute existed were exact.
    if (have.contains("options") && have["options"].is_object() && !have["options"].contains("compute"))
      have["options"]["compute"] = compute_name(Compute::Exact);
    for (const char* key : {"model", "options", "shard"})
      if (!have.contains(key) || have[key] != want[key])
        fail(p.string(), ": this run was made with a different ", key, " (", have.value(key, json()).dump(),
             "); use another --out to change settings");
    return;
  }
  write_file_atomic(p.string(), want.dump(2) + "\n");
}

namespace {

// Heatmaps of one concept (concept_maps): each map as a titled JET figure on
// the noun's shared absolute scale, a binary 95th-percentile mask and that
// mask over the model's input image, plus the raw grid maps in maps.npy.
void write_heatmaps(const fs::path& dir, const VisionLanguageModel& model, const FindOptions& opt,
                    const std::string& image_id, const ImageFindResult& r, const ConceptResult& cr) {
  const int g = model.grid_side();
  const int64_t P = r.image_tokens;
  const ConceptMaps cm = concept_maps(model, opt, r, cr);
  std::vector<float> raw;  // [n_maps, P]
  json index = json::array();
  const ImageU8& base = r.image.cropped;
  const std::string head = image_id + "  \"" + cr.word + "\"  step " + std::to_string(cr.step);
  for (const ConceptMap& m : cm.maps) {
    raw.insert(raw.end(), m.values.begin(), m.values.end());
    const std::vector<std::string> title = {
        head, m.label, "map min " + format_value(m.meta["min"].get<float>()) + "  max " + format_value(m.meta["max"].get<float>())};
    const fs::path stem = dir / m.name;
    if (g > 0) {
      write_png(stem.string() + ".png", heatmap_figure(base, m.values.data(), g, g, cm.scale, title, "shared scale of this noun"));
      const std::vector<uint8_t> mask =
          mask_above_percentile(upsample_bilinear(m.values.data(), g, g, base.height, base.width), 95.0);
      write_mask_png(stem.string() + "_mask.png", mask, base.width, base.height);
      write_png(stem.string() + "_mask_overlay.png", mask_image(base, mask));
    } else {
      write_png(stem.string() + ".png", bar_figure(m.values, 480, 200, title, "image token"));
    }
    index.push_back(m.meta);
  }
  const int64_t n_maps = static_cast<int64_t>(raw.size()) / P;
  if (g > 0)
    write_npy((dir / "maps.npy").string(), raw.data(), {n_maps, g, g});
  else
    write_npy((dir / "maps.npy").string(), raw.data(), {n_maps, P});
  write_file_atomic((dir / "maps.json").string(), index.dump(2) + "\n");
}

// RUN/<id>/neurons.npz: neurons.npy's top-k split into labelled arrays, with
// the nouns they belong to.
void write_neurons_npz(const fs::path& path, const ImageFindResult& r) {
  const int64_t n = static_cast<int64_t>(r.concepts.size());
  const int64_t k = static_cast<int64_t>(r.concepts[0].neurons.size());
  std::vector<int32_t> layer, unit, token_id, step;
  std::vector<float> score;
  std::vector<std::string> words;
  for (const ConceptResult& cr : r.concepts) {
    for (const NeuronEntry& e : cr.neurons) {
      layer.push_back(e.layer);
      unit.push_back(static_cast<int32_t>(e.unit));
      score.push_back(e.score);
    }
    words.push_back(cr.word);
    token_id.push_back(cr.token_id);
    step.push_back(cr.step);
  }
  auto i32 = [](const std::vector<int32_t>& v, std::vector<int64_t> shape) {
    return npy_bytes("<i4", v.data(), v.size() * 4, shape);
  };
  write_npz(path.string(), {{"layer", i32(layer, {n, k})},
                            {"unit", i32(unit, {n, k})},
                            {"score", npy_bytes("<f4", score.data(), score.size() * 4, {n, k})},
                            {"words", npy_unicode(words)},
                            {"token_id", i32(token_id, {n})},
                            {"step", i32(step, {n})}});
}

}  // namespace

void write_image_outputs(const std::string& dir_s, const DatasetItem& item, const VisionLanguageModel& model,
                         const FindOptions& opt, const ImageFindResult& r, Explainer& explainer) {
  const fs::path dir(dir_s);
  fs::create_directories(dir);
  // Temp files of an earlier, interrupted attempt at this image.
  for (auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().filename().string().find(".tmp-") != std::string::npos) {
      std::error_code ec;
      fs::remove(e.path(), ec);
    }
  const ojson res = find_result_json(model, opt, r, explainer, item.image_path, item.id, item.caption);
  if (!r.concepts.empty()) {
    write_npy((dir / "neurons.npy").string(), neuron_table(r).data(),
              {static_cast<int64_t>(r.concepts.size()), static_cast<int64_t>(r.concepts[0].neurons.size()), 3});
    write_neurons_npz(dir / "neurons.npz", r);
  }
  if (opt.also_gradient && !r.concepts.empty()) {
    // The gradient baseline's top-k in the neurons.npy format, for `metrics`.
    write_npy((dir / "gradient.npy").string(), neuron_table(r, true).data(),
              {static_cast<int64_t>(r.concepts.size()), static_cast<int64_t>(r.concepts[0].gradient_neurons.size()), 3});
  }
  if (!r.image_acts.empty()) {
    const LlamaConfig& c = model.decoder().config();
    write_npy((dir / "image_acts.npy").string(), r.image_acts.data(), {2, c.n_layers, c.intermediate});
  }
  if (opt.heatmaps) {
    write_png((dir / "input.png").string(), r.image.cropped);
    for (auto& cr : r.concepts) {
      fs::path hd = dir / "heatmaps" / concept_dir_name(cr);
      fs::create_directories(hd);
      write_heatmaps(hd, model, opt, item.id, r, cr);
    }
  }
  // result.ojson last: its presence marks the image finished.
  write_file_atomic((dir / "result.json").string(), res.dump(1) + "\n");
}

}  // namespace mmn::cli
