#include "neurons/groundtruth.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <set>

#include "data/patch_labels.h"
#include "data/shapes.h"
#include "neurons/heatmap.h"
#include "neurons/random_neurons.h"
#include "util/error.h"
#include "util/progress.h"

namespace mmn {

namespace {

constexpr double kPercentile = 95.0;  // the method's mask threshold (method.md §4)
const double kNaN = std::numeric_limits<double>::quiet_NaN();

// What one unit's maps are judged against.
struct UnitTruth {
  std::vector<uint8_t> named;                  // every object of the noun's shape
  std::vector<std::vector<uint8_t>> others;    // each object of another shape
  int64_t area = 0;
};

// One map's verdict on one unit; selectivity and wins are NaN without other objects.
struct MapEval {
  double iou = 0, selectivity = kNaN, wins = kNaN;
};

// The raw mean of the neurons' patch maps, upsampled to the image.
std::vector<float> mean_map(const VisionLanguageModel& model, const ImageFindResult& r,
                            const std::vector<NeuronEntry>& neurons, ActivationVariant v) {
  const int g = model.grid_side();
  const int64_t P = r.image_tokens;
  std::vector<float> maps = neuron_image_maps(model, r, neurons, v);
  std::vector<double> acc(P, 0.0);
  for (size_t n = 0; n < neurons.size(); ++n)
    for (int64_t p = 0; p < P; ++p) acc[p] += maps[n * P + p];
  std::vector<float> mean(P);
  for (int64_t p = 0; p < P; ++p) mean[p] = static_cast<float>(acc[p] / static_cast<double>(neurons.size()));
  const ImageU8& img = r.image.cropped;
  return upsample_bilinear(mean.data(), g, g, img.height, img.width);
}

MapEval eval_map(const std::vector<float>& up, const UnitTruth& t) {
  MapEval e;
  e.iou = mask_iou(mask_above_percentile(up, kPercentile), t.named);
  if (!t.others.empty()) {
    const Selectivity s = map_selectivity(up, t.named, t.others);
    e.selectivity = s.value;
    e.wins = s.wins ? 1.0 : 0.0;
  }
  return e;
}

// The mean verdict over `draws` random neuron sets (draw(rng) makes one).
MapEval eval_random(const VisionLanguageModel& model, const ImageFindResult& r, ActivationVariant v,
                    const UnitTruth& t, int draws, uint64_t seed,
                    const std::function<std::vector<NeuronEntry>(std::mt19937_64&)>& draw) {
  MapEval sum{0, t.others.empty() ? kNaN : 0.0, t.others.empty() ? kNaN : 0.0};
  for (int k = 0; k < draws; ++k) {
    std::mt19937_64 rng(mix_seed(seed, {static_cast<uint64_t>(k)}));
    const MapEval e = eval_map(mean_map(model, r, draw(rng), v), t);
    sum.iou += e.iou;
    sum.selectivity += e.selectivity;
    sum.wins += e.wins;
  }
  const double d = static_cast<double>(draws);
  return {sum.iou / d, sum.selectivity / d, sum.wins / d};
}

std::vector<NeuronEntry> as_entries(const std::vector<NeuronRef>& ns) {
  std::vector<NeuronEntry> out;
  for (auto& n : ns) out.push_back({n.layer, n.unit, 0.f});
  return out;
}

// n distinct neurons, uniform over all layers.
std::vector<NeuronEntry> draw_uniform(int n, int64_t L, int64_t I, std::mt19937_64& rng) {
  return as_entries(draw_uniform_neurons(n, static_cast<int>(L), I, rng));
}

// One distinct random neuron in the layer of each neuron of `like`, never one of them (Schwettmann et al.).
std::vector<NeuronEntry> draw_layer_matched(const std::vector<NeuronEntry>& like, int64_t I, std::mt19937_64& rng) {
  std::vector<NeuronRef> refs;
  for (auto& n : like) refs.push_back({n.layer, n.unit});
  return as_entries(draw_layer_matched_neurons(refs, I, rng));
}

// n distinct random neurons of one layer.
std::vector<NeuronEntry> draw_in_layer(int layer, int n, int64_t I, std::mt19937_64& rng) {
  return draw_layer_matched(std::vector<NeuronEntry>(static_cast<size_t>(n), NeuronEntry{layer, 0, 0.f}), I, rng);
}

// The first n of a ranking whose neurons sit in `layer`.
std::vector<NeuronEntry> top_in_layer(const std::vector<NeuronEntry>& ranked, int layer, int n) {
  std::vector<NeuronEntry> out;
  for (const NeuronEntry& e : ranked)
    if (e.layer == layer && static_cast<int>(out.size()) < n) out.push_back(e);
  return out;
}

GroundTruthMethod named_method(const std::string& name) {
  GroundTruthMethod m;
  m.method = name;
  return m;
}

void add(GroundTruthMethod& m, const MapEval& e) {
  m.iou.push_back(e.iou);
  m.selectivity.push_back(e.selectivity);
  m.wins.push_back(e.wins);
}

// The finite entries of x (selectivity and wins are NaN off multi-object scenes).
std::vector<double> defined(const std::vector<double>& x) {
  std::vector<double> out;
  for (double v : x)
    if (std::isfinite(v)) out.push_back(v);
  return out;
}

uint64_t key(const std::string& s) { return hash_string(s); }

void summarise(GroundTruthMethod& m, uint64_t seed, const std::string& tag) {
  m.iou_ci = bootstrap_mean(m.iou, mix_seed(seed, {key(tag), key(m.method), key("iou")}));
  m.selectivity_ci = bootstrap_mean(defined(m.selectivity), mix_seed(seed, {key(tag), key(m.method), key("sel")}));
  m.wins_ci = bootstrap_mean(defined(m.wins), mix_seed(seed, {key(tag), key(m.method), key("wins")}));
  m.mean_iou = m.iou_ci.mean;
  m.concepts = static_cast<int64_t>(m.iou.size());
}

// Paired mean(a − b) over the units where both are defined.
Estimate paired(const std::vector<double>& a, const std::vector<double>& b, uint64_t seed) {
  std::vector<double> x, y;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::isfinite(a[i]) && std::isfinite(b[i])) {
      x.push_back(a[i]);
      y.push_back(b[i]);
    }
  return bootstrap_paired_diff(x, y, seed);
}

const GroundTruthMethod* find_method(const GroundTruthReport& rep, const std::string& name) {
  for (const auto& m : rep.methods)
    if (m.method == name) return &m;
  return nullptr;
}

bool is_shape(const std::string& w) { return is_shape_word(w); }

// The unit's truth: the noun's objects against the differently shaped ones.
UnitTruth unit_truth(const Scene& sc, const std::string& noun) {
  UnitTruth t;
  t.named.assign(sc.masks.empty() ? 0 : sc.masks[0].size(), 0);
  for (size_t o = 0; o < sc.objects.size(); ++o) {
    if (sc.objects[o].shape == noun)
      for (size_t p = 0; p < t.named.size(); ++p) t.named[p] |= sc.masks[o][p];
    else
      t.others.push_back(sc.masks[o]);
  }
  for (auto v : t.named) t.area += v;
  return t;
}

nlohmann::json method_json(const GroundTruthMethod& m) {
  return {{"method", m.method},
          {"units", m.iou.size()},
          {"iou", to_json(m.iou_ci)},
          {"selectivity", to_json(m.selectivity_ci)},
          {"named_wins", to_json(m.wins_ci)}};
}

}  // namespace

double chance_iou(double area, double mask_px, double total_px) {
  const double inter = area * mask_px / total_px;
  const double uni = area + mask_px - inter;
  return uni > 0 ? inter / uni : 0.0;
}

double all_objects_oracle_iou(const std::vector<std::vector<uint8_t>>& object_masks, const std::vector<uint8_t>& truth) {
  std::vector<uint8_t> all(truth.size(), 0);
  for (const auto& m : object_masks) {
    if (m.size() != truth.size()) fail("internal: object mask of ", m.size(), " pixels, truth of ", truth.size());
    for (size_t p = 0; p < all.size(); ++p) all[p] |= m[p];
  }
  return mask_iou(all, truth);
}

double best_threshold_iou(const std::vector<float>& map, const std::vector<uint8_t>& truth) {
  if (map.size() != truth.size() || map.empty()) fail("internal: best_threshold_iou of mismatched sizes");
  std::vector<size_t> order(map.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return map[a] > map[b]; });
  int64_t area = 0;
  for (auto v : truth) area += v ? 1 : 0;
  // {map > t} is always the top j pixels with j at the end of a run of ties.
  double best = 0;
  int64_t taken = 0, inter = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    ++taken;
    inter += truth[order[i]] ? 1 : 0;
    if (i + 1 < order.size() && map[order[i + 1]] == map[order[i]]) continue;
    const int64_t uni = area + taken - inter;
    if (uni > 0) best = std::max(best, static_cast<double>(inter) / static_cast<double>(uni));
  }
  return best;
}

PatchCeiling patch_ceiling(const std::vector<uint8_t>& truth, int width, int height, int grid) {
  std::vector<float> avg = patch_average(truth, width, height, grid);
  std::vector<float> up = upsample_bilinear(avg.data(), grid, grid, height, width);
  return {mask_iou(mask_above_percentile(up, kPercentile), truth), best_threshold_iou(up, truth)};
}

Selectivity map_selectivity(const std::vector<float>& map, const std::vector<uint8_t>& named,
                            const std::vector<std::vector<uint8_t>>& others) {
  if (others.empty()) fail("internal: selectivity needs another object");
  auto region_mean = [&](const std::vector<uint8_t>& m) {
    if (m.size() != map.size()) fail("internal: selectivity mask of ", m.size(), " pixels, map of ", map.size());
    double s = 0;
    int64_t n = 0;
    for (size_t p = 0; p < map.size(); ++p)
      if (m[p]) s += map[p], ++n;
    if (n == 0) fail("internal: selectivity of an empty object mask");
    return s / static_cast<double>(n);
  };
  std::vector<uint8_t> rest(map.size(), 0);
  for (const auto& o : others)
    for (size_t p = 0; p < rest.size() && p < o.size(); ++p) rest[p] |= o[p];
  double mean = 0, sq = 0;
  for (float v : map) mean += v;
  mean /= static_cast<double>(map.size());
  for (float v : map) sq += (v - mean) * (v - mean);
  const double sd = std::sqrt(sq / static_cast<double>(map.size()));
  const double in_named = region_mean(named);
  Selectivity s;
  // A constant map prefers nothing: selectivity 0, no win.
  s.value = sd > 0 ? (in_named - region_mean(rest)) / sd : 0.0;
  s.wins = sd > 0;
  for (const auto& o : others) s.wins = s.wins && in_named > region_mean(o);
  return s;
}

GroundTruthReport evaluate_ground_truth(const VisionLanguageModel& model, const WordNet& wordnet,
                                        const GroundTruthOptions& opt) {
  if (model.grid_side() <= 0) fail(model.dir(), ": the ground-truth check needs a model with a patch grid");
  const LlamaConfig& c = model.decoder().config();
  const int64_t L = c.n_layers, I = c.intermediate;
  // The per-layer breakdown takes the top n of a single layer.
  if (opt.top < 1 || opt.top > I) fail_usage("--top must be between 1 and ", I, " (the neurons of one layer)");
  if (opt.scenes < 1) fail_usage("--scenes must be at least 1");
  if (opt.draws < 1) fail_usage("--draws must be at least 1");
  const int n = opt.top;
  const ShapesOptions so = shapes_world_of_model(model.dir(), model.input_size());  // the world it learned
  FindOptions fo;
  fo.top_k = L * I;  // the whole ranking, for the per-layer top n
  fo.heatmaps = true;
  fo.activation = opt.activation;
  fo.also_gradient = opt.gradient;

  GroundTruthReport rep;
  for (const char* m : {"score", "uniform", "layer-matched", "gradient"})
    if (opt.gradient || std::string(m) != "gradient") rep.methods.push_back(named_method(m));
  for (int l = 0; l < L; ++l) {
    GroundTruthLayer lr;
    lr.layer = l;
    lr.score = named_method("score");
    lr.random = named_method("layer-random");
    rep.layers.push_back(std::move(lr));
  }
  std::vector<int64_t> top_layers(L, 0);
  std::unique_ptr<Progress> bar;
  if (opt.show_progress) bar = std::make_unique<Progress>("ground truth", opt.scenes, "scenes");
  for (int64_t s = 0; s < opt.scenes; ++s) {
    Scene sc = make_scene(opt.seed, static_cast<uint64_t>(s), so);
    ImageFindResult r = find_neurons(model, &wordnet, sc.image, fo);
    const ImageU8& img = r.image.cropped;
    if (img.width != sc.image.width || img.height != sc.image.height)
      fail(model.dir(), ": the model's input (", img.width, "x", img.height, ") is not the scene size");
    for (const ConceptResult& cr : r.concepts) {
      UnitTruth t = unit_truth(sc, cr.lemma);
      if (t.area == 0) {
        // Not a shape ("left"), or a shape the caption names but the scene lacks.
        ++(is_shape(cr.lemma) ? rep.skipped_absent : rep.skipped_not_shape);
        continue;
      }
      rep.units.push_back({s, cr.lemma, static_cast<int>(sc.objects.size()), !t.others.empty()});
      const uint64_t unit_seed = mix_seed(opt.random_seed, {static_cast<uint64_t>(s), key(cr.lemma)});
      const std::vector<NeuronEntry> top(cr.neurons.begin(), cr.neurons.begin() + n);
      std::vector<NeuronEntry> grad_top;
      if (opt.gradient) grad_top.assign(cr.gradient_neurons.begin(), cr.gradient_neurons.begin() + n);
      for (const NeuronEntry& e : top) ++top_layers[e.layer];
      for (auto& m : rep.methods) {
        if (m.method == "score")
          add(m, eval_map(mean_map(model, r, top, opt.activation), t));
        else if (m.method == "gradient")
          add(m, eval_map(mean_map(model, r, grad_top, opt.activation), t));
        else if (m.method == "uniform")
          add(m, eval_random(model, r, opt.activation, t, opt.draws, mix_seed(unit_seed, {key("uniform")}),
                             [&](std::mt19937_64& g) { return draw_uniform(n, L, I, g); }));
        else
          add(m, eval_random(model, r, opt.activation, t, opt.draws, mix_seed(unit_seed, {key("layer-matched")}),
                             [&](std::mt19937_64& g) { return draw_layer_matched(top, I, g); }));
      }
      for (auto& lr : rep.layers) {
        add(lr.score, eval_map(mean_map(model, r, top_in_layer(cr.neurons, lr.layer, n), opt.activation), t));
        add(lr.random, eval_random(model, r, opt.activation, t, opt.draws,
                                   mix_seed(unit_seed, {key("layer"), static_cast<uint64_t>(lr.layer)}),
                                   [&](std::mt19937_64& g) { return draw_in_layer(lr.layer, n, I, g); }));
      }
      // References. The p95 mask holds 5% of the pixels.
      const double N = static_cast<double>(t.named.size());
      rep.chance.push_back(chance_iou(static_cast<double>(t.area), 0.05 * N, N));
      rep.oracle.push_back(all_objects_oracle_iou(sc.masks, t.named));
      const PatchCeiling pc = patch_ceiling(t.named, img.width, img.height, model.grid_side());
      rep.ceiling_p95.push_back(pc.iou_p95);
      rep.ceiling_best.push_back(pc.iou_best);
      // Exchangeable object means: the named one is highest with probability 1/(objects compared).
      rep.chance_wins.push_back(t.others.empty() ? kNaN : 1.0 / static_cast<double>(t.others.size() + 1));
    }
    ++rep.scenes;
    if (bar) bar->update(s + 1);
  }
  if (bar) bar->finish();
  if (rep.units.empty())
    fail_nothing_done(model.dir(), ": in ", rep.scenes, " scenes no caption named a shape that its scene shows (",
                      rep.skipped_not_shape, " other nouns, ", rep.skipped_absent,
                      " shapes not in the scene): nothing to measure");

  rep.concepts = static_cast<int64_t>(rep.units.size());
  for (const auto& u : rep.units) rep.multi_units += u.multi ? 1 : 0;
  const uint64_t bs = mix_seed(opt.random_seed, {key("bootstrap")});
  for (auto& m : rep.methods) summarise(m, bs, "method");
  rep.chance_ci = bootstrap_mean(rep.chance, mix_seed(bs, {key("chance")}));
  rep.oracle_ci = bootstrap_mean(rep.oracle, mix_seed(bs, {key("oracle")}));
  rep.ceiling_p95_ci = bootstrap_mean(rep.ceiling_p95, mix_seed(bs, {key("ceiling_p95")}));
  rep.ceiling_best_ci = bootstrap_mean(rep.ceiling_best, mix_seed(bs, {key("ceiling_best")}));
  rep.chance_wins_ci = bootstrap_mean(defined(rep.chance_wins), mix_seed(bs, {key("chance_wins")}));
  rep.chance_iou = rep.chance_ci.mean;
  const double total_top = static_cast<double>(n) * static_cast<double>(std::max<int64_t>(rep.concepts, 1));
  for (auto& lr : rep.layers) {
    const std::string tag = "layer" + std::to_string(lr.layer);
    summarise(lr.score, bs, tag);
    summarise(lr.random, bs, tag);
    lr.diff_iou = paired(lr.score.iou, lr.random.iou, mix_seed(bs, {key(tag), key("diff_iou")}));
    lr.diff_selectivity =
        paired(lr.score.selectivity, lr.random.selectivity, mix_seed(bs, {key(tag), key("diff_sel")}));
    lr.top_share = static_cast<double>(top_layers[lr.layer]) / total_top;
  }
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"score", "uniform"}, {"score", "layer-matched"}, {"score", "gradient"}, {"gradient", "layer-matched"}};
  for (const auto& [a, b] : pairs) {
    const GroundTruthMethod *ma = find_method(rep, a), *mb = find_method(rep, b);
    if (!ma || !mb) continue;
    const uint64_t ds = mix_seed(bs, {key("diff"), key(a), key(b)});
    rep.diffs.push_back({a, b, paired(ma->iou, mb->iou, mix_seed(ds, {key("iou")})),
                         paired(ma->selectivity, mb->selectivity, mix_seed(ds, {key("sel")}))});
  }
  return rep;
}

nlohmann::json ground_truth_json(const GroundTruthReport& rep, const GroundTruthOptions& opt,
                                 const std::string& model_dir) {
  using nlohmann::json;
  json j;
  j["model"] = model_dir;
  j["options"] = {{"scenes", opt.scenes},
                  {"scene_seed", opt.seed},
                  {"top", opt.top},
                  {"activation", activation_variant_name(opt.activation)},
                  {"gradient", opt.gradient},
                  {"draws", opt.draws},
                  {"random_seed", opt.random_seed},
                  {"mask_percentile", kPercentile},
                  {"bootstrap_resamples", kBootstrapResamples}};
  j["definitions"] = {
      {"unit", "a (scene, noun) pair whose noun names a shape present in the scene"},
      {"map", "raw mean of the n neurons' patch maps, upsampled bilinearly to the image"},
      {"iou", "IoU of the map's pixels strictly above its 95th percentile with every object of the named shape"},
      {"selectivity",
       "(mean map inside the named objects - mean map inside the objects of other shapes) / std of the map over "
       "the image; units of scenes with another, differently shaped object only; 0 for a constant map"},
      {"named_wins", "share of those units where the named objects' mean map exceeds each other object's mean"},
      {"random", "uniform: n distinct neurons from all layers; layer-matched: one random neuron in the layer of "
                 "each score top-n neuron; each unit's values are averaged over the draws"},
      {"chance", "expected IoU of a uniformly random mask of 5% of the pixels; named_wins: 1/(objects compared)"},
      {"all_objects_oracle", "IoU of the union of every object's mask with the named objects' mask"},
      {"patch_ceiling", "the named mask averaged per patch, upsampled bilinearly, thresholded strictly above its "
                        "95th percentile (p95) or at the best threshold (best)"},
      {"per_layer", "score: top n of the score ranking among one layer's neurons; random: n random neurons of "
                    "that layer; top_share: share of the global score top-n neurons in the layer"},
      {"paired_differences", "mean over units of (a - b), bootstrap 95% CI over units"}};
  j["counts"] = {{"scenes", rep.scenes},
                 {"units", rep.concepts},
                 {"multi_object_units", rep.multi_units},
                 {"skipped_not_a_shape", rep.skipped_not_shape},
                 {"skipped_shape_not_in_scene", rep.skipped_absent}};
  j["methods"] = json::array();
  for (const auto& m : rep.methods) {
    json mj = method_json(m);
    if (m.method == "uniform" || m.method == "layer-matched") mj["draws"] = opt.draws;
    j["methods"].push_back(mj);
  }
  j["references"] = {{"chance", {{"iou", to_json(rep.chance_ci)}, {"named_wins", to_json(rep.chance_wins_ci)}}},
                     {"all_objects_oracle", {{"iou", to_json(rep.oracle_ci)}}},
                     {"patch_ceiling_p95", {{"iou", to_json(rep.ceiling_p95_ci)}}},
                     {"patch_ceiling_best", {{"iou", to_json(rep.ceiling_best_ci)}}}};
  j["per_layer"] = json::array();
  for (const auto& lr : rep.layers)
    j["per_layer"].push_back({{"layer", lr.layer},
                              {"top_share", lr.top_share},
                              {"score", method_json(lr.score)},
                              {"random", method_json(lr.random)},
                              {"diff_iou", to_json(lr.diff_iou)},
                              {"diff_selectivity", to_json(lr.diff_selectivity)}});
  j["paired_differences"] = json::array();
  for (const auto& d : rep.diffs)
    j["paired_differences"].push_back(
        {{"a", d.a}, {"b", d.b}, {"iou", to_json(d.iou)}, {"selectivity", to_json(d.selectivity)}});
  return j;
}

}  // namespace mmn
