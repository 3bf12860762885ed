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

ojson neuron_list(const std::vector<NeuronEntry>& ns) {
  ojson out = ojson::array();
  for (auto& n : ns) out.push_back({{"layer", n.layer}, {"unit", n.unit}, {"score", n.score}});
  return out;
}

std::string safe_name(const std::string& w) {
  std::string s;
  for (char c : w) s += isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return s.empty() ? "token" : s;
}

// Heatmaps of one concept: the top-5 neurons' maps and the averaged maps over
// the top {1,10,50,100,500,1000}, each as a titled JET figure on the noun's
// shared absolute scale, a binary 95th-percentile mask and that mask over the
// model's input image, plus the raw grid maps in maps.npy.
void write_heatmaps(const fs::path& dir, const VisionLanguageModel& model, const FindOptions& opt,
                    const std::string& image_id, const ImageFindResult& r, const ConceptResult& cr) {
  const int g = model.grid_side();
  const int64_t P = r.image_tokens;
  const size_t n_all = std::min<size_t>(cr.neurons.size(), 1000);
  std::vector<NeuronEntry> top(cr.neurons.begin(), cr.neurons.begin() + n_all);
  std::vector<float> maps = neuron_image_maps(model, r, top, opt.activation);

  struct Map {
    std::string name;
    std::string label;  // the figure's second title line
    std::vector<float> values;
    json meta;
  };
  std::vector<Map> all;
  for (size_t i = 0; i < std::min<size_t>(5, n_all); ++i) {
    const std::string id = "L" + std::to_string(top[i].layer) + " U" + std::to_string(top[i].unit);
    all.push_back({"neuron" + std::to_string(i + 1) + "_L" + std::to_string(top[i].layer) + "_U" +
                       std::to_string(top[i].unit),
                   "rank " + std::to_string(i + 1) + ": " + id + "  score " + format_value(top[i].score),
                   std::vector<float>(maps.begin() + i * P, maps.begin() + (i + 1) * P),
                   {{"rank", i + 1}, {"layer", top[i].layer}, {"unit", top[i].unit}}});
  }
  for (int k : {1, 10, 50, 100, 500, 1000}) {
    if (static_cast<size_t>(k) > n_all) break;
    std::vector<float> m(P, 0.f);
    for (int i = 0; i < k; ++i)
      for (int64_t p = 0; p < P; ++p) m[p] += maps[i * P + p];
    for (auto& v : m) v /= static_cast<float>(k);
    all.push_back({"mean_top" + std::to_string(k), "mean of top " + std::to_string(k), std::move(m), {{"top", k}}});
  }
  // One absolute scale for all of the noun's maps, 0 .. their largest value,
  // so a weak or silent neuron looks weak or silent beside the strong ones.
  float hi = 0.f;
  for (const Map& m : all)
    for (float v : m.values) hi = std::max(hi, v);

  std::vector<float> raw;  // [n_maps, P]
  json index = json::array();
  const ImageU8& base = r.image.cropped;
  const std::string head = image_id + "  \"" + cr.word + "\"  step " + std::to_string(cr.step);
  for (Map& m : all) {
    raw.insert(raw.end(), m.values.begin(), m.values.end());
    const auto [lo_it, hi_it] = std::minmax_element(m.values.begin(), m.values.end());
    const std::vector<std::string> title = {
        head, m.label, "map min " + format_value(*lo_it) + "  max " + format_value(*hi_it)};
    m.meta["name"] = m.name;
    m.meta["min"] = *lo_it;
    m.meta["max"] = *hi_it;
    m.meta["scale"] = {0.0f, hi};
    const fs::path stem = dir / m.name;
    if (g > 0) {
      write_png(stem.string() + ".png", heatmap_figure(base, m.values.data(), g, g, hi, title, "shared scale of this noun"));
      const std::vector<uint8_t> mask =
          mask_above_percentile(upsample_bilinear(m.values.data(), g, g, base.height, base.width), 95.0);
      write_mask_png(stem.string() + "_mask.png", mask, base.width, base.height);
      write_png(stem.string() + "_mask_overlay.png", mask_image(base, mask));
    } else {
      write_png(stem.string() + ".png", titled_figure(bar_chart(m.values, 480, 200), title));
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
  // Explanations only for the reported neurons, all concepts at once.
  const size_t report = static_cast<size_t>(opt.report);
  std::vector<std::pair<int, int>> ids;
  for (auto& cr : r.concepts)
    for (size_t i = 0; i < std::min(report, cr.neurons.size()); ++i) ids.emplace_back(cr.neurons[i].layer, cr.neurons[i].unit);
  std::vector<std::vector<int32_t>> tops = explainer.explain(ids);

  ojson nouns = ojson::array();
  std::vector<float> flat;
  size_t k = 0;
  for (auto& cr : r.concepts) {
    ojson ns = ojson::array();
    for (size_t i = 0; i < cr.neurons.size(); ++i) {
      const NeuronEntry& n = cr.neurons[i];
      flat.insert(flat.end(), {static_cast<float>(n.layer), static_cast<float>(n.unit), n.score});
      if (i >= report) continue;
      ojson toks = ojson::array(), tok_ids = ojson::array();
      for (int32_t t : tops[k]) {
        toks.push_back(explainer.token_text(t));
        tok_ids.push_back(t);
      }
      ++k;
      ns.push_back({{"layer", n.layer}, {"unit", n.unit}, {"score", n.score}, {"top_tokens", toks},
                    {"top_token_ids", tok_ids}});
    }
    ojson entry = {{"word", cr.word}, {"token_id", cr.token_id}, {"step", cr.step}, {"neurons", ns},
                   {"lemma", cr.lemma}};
    if (opt.random_baseline > 0) {
      entry["random_uniform"] = neuron_list(cr.random_uniform);
      entry["random_layer_matched"] = neuron_list(cr.random_layer_matched);
    }
    nouns.push_back(entry);
  }
  ojson res = {{"image", item.image_path},
              {"caption", r.caption},
              {"generated_ids", r.generated_ids},
              {"generated_pieces", caption_pieces(model.tokenizer(), r.generated_ids)},
              {"nouns", nouns},
              {"skipped_nouns", r.skipped_nouns},
              {"id", item.id},
              {"prompt_ids", r.prompt_ids},
              {"timings", {{"prefill_s", r.prefill_s}, {"decode_s", r.decode_s}, {"score_s", r.score_s}}}};
  if (!item.caption.empty()) res["reference_caption"] = item.caption;
  if (!r.permutation.empty()) res["permutation"] = r.permutation;

  if (!r.concepts.empty()) {
    write_npy((dir / "neurons.npy").string(), flat.data(),
              {static_cast<int64_t>(r.concepts.size()), static_cast<int64_t>(r.concepts[0].neurons.size()), 3});
    write_neurons_npz(dir / "neurons.npz", r);
  }
  if (opt.also_gradient && !r.concepts.empty()) {
    // The gradient baseline's top-k in the neurons.npy format, for `metrics`.
    std::vector<float> g;
    for (auto& cr : r.concepts)
      for (auto& n : cr.gradient_neurons) g.insert(g.end(), {static_cast<float>(n.layer), static_cast<float>(n.unit), n.score});
    write_npy((dir / "gradient.npy").string(), g.data(),
              {static_cast<int64_t>(r.concepts.size()), static_cast<int64_t>(r.concepts[0].gradient_neurons.size()), 3});
  }
  if (!r.image_acts.empty()) {
    const LlamaConfig& c = model.decoder().config();
    write_npy((dir / "image_acts.npy").string(), r.image_acts.data(), {2, c.n_layers, c.intermediate});
  }
  if (opt.heatmaps) {
    write_png((dir / "input.png").string(), r.image.cropped);
    for (auto& cr : r.concepts) {
      fs::path hd = dir / "heatmaps" / (std::to_string(cr.step) + "_" + safe_name(cr.word));
      fs::create_directories(hd);
      write_heatmaps(hd, model, opt, item.id, r, cr);
    }
  }
  // result.ojson last: its presence marks the image finished.
  write_file_atomic((dir / "result.json").string(), res.dump(1) + "\n");
}

}  // namespace mmn::cli
