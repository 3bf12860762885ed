// Ground-truth check of the method on the shapes world (data/shapes.h): for
// each shape noun of a held-out scene's caption, does the averaged activation
// map of the noun's top neurons fall on that object, and on that object rather
// than on the others?
//
// Units are (scene, noun) pairs whose noun names a shape present in the scene.
// For each method (the paper's score, the gradient baseline, uniform random
// neurons, random neurons from the score top-n's layers) the map is the raw
// mean of the n neurons' patch maps, upsampled bilinearly to the image:
//   IoU          of the mask of pixels strictly above the map's 95th percentile
//                with the named object's true mask (every object of that shape);
//   selectivity  (mean map inside the named object − mean map inside the other
//                objects) / std of the map over the whole image, on scenes with
//                ≥ 2 objects of different shapes (0 for a constant map);
//   named wins   1 when the named object's mean beats every other object's
//                mean (each object of another shape on its own), else 0.
// Random methods average each unit's values over their draws. References:
// chance (a uniformly random mask of the p95 mask's size, analytic), the
// all-objects oracle (the union of every object's mask: knows where the
// objects are, not which is named) and the patch-resolution ceiling (the
// truth averaged per patch, upsampled and thresholded — at the 95th percentile
// like the methods, and at its best threshold). Means carry bootstrap 95% CIs
// over units; paired differences are per unit.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/patch_labels.h"  // patch_average
#include "models/vlm.h"
#include "neurons/find.h"
#include "neurons/stats.h"

namespace mmn {

class WordNet;

struct GroundTruthOptions {
  int64_t scenes = 40;
  uint64_t seed = 0x5A5E5EEDull;  // the held-out scene stream
  int top = 10;                    // neurons averaged into the map
  ActivationVariant activation = ActivationVariant::Act;
  bool gradient = true;            // also evaluate the gradient baseline
  int draws = 5;                   // random neuron sets per unit (uniform and layer-matched)
  uint64_t random_seed = 7;        // random neurons and bootstrap resamples
  bool show_progress = false;
};

// One method's per-unit values and their summaries. Vectors are indexed by
// unit (GroundTruthReport::units); selectivity and wins hold NaN on units of
// scenes without a second, differently shaped object.
struct GroundTruthMethod {
  std::string method;  // "score", "gradient", "uniform", "layer-matched" (per layer: "layer-random")
  double mean_iou = 0;
  int64_t concepts = 0;  // units
  std::vector<double> iou, selectivity, wins;
  Estimate iou_ci, selectivity_ci, wins_ci;  // wins_ci: share of multi-object units won
};

struct GroundTruthUnit {
  int64_t scene = 0;
  std::string noun;
  int objects = 0;      // in the scene
  bool multi = false;   // the scene has another object of a different shape
};

struct GroundTruthLayer {
  int layer = 0;
  GroundTruthMethod score;   // top-n of the score ranking among this layer's neurons
  GroundTruthMethod random;  // n random neurons of this layer (draws)
  Estimate diff_iou, diff_selectivity;  // score − random, paired
  double top_share = 0;      // share of the global score top-n neurons that sit in this layer
};

struct GroundTruthDiff {
  std::string a, b;
  Estimate iou, selectivity;  // mean(a − b) over the same units
};

struct GroundTruthReport {
  std::vector<GroundTruthMethod> methods;  // score first
  std::vector<GroundTruthUnit> units;
  int64_t scenes = 0, concepts = 0, multi_units = 0;
  int64_t skipped_not_shape = 0, skipped_absent = 0;  // nouns that are no shape / a shape not in the scene
  double chance_iou = 0;  // expected IoU of a random mask of the same size
  // References, per unit and summarised.
  std::vector<double> chance, oracle, ceiling_p95, ceiling_best, chance_wins;
  Estimate chance_ci, oracle_ci, ceiling_p95_ci, ceiling_best_ci, chance_wins_ci;
  std::vector<GroundTruthLayer> layers;
  std::vector<GroundTruthDiff> diffs;
};

// Throws NothingDone when no caption of the scenes names a shape its scene
// shows (a model that never says a shape: nothing to measure).
GroundTruthReport evaluate_ground_truth(const VisionLanguageModel& model, const WordNet& wordnet,
                                        const GroundTruthOptions& opt);

// Everything in the report (summaries, not per-unit vectors) plus the options.
nlohmann::json ground_truth_json(const GroundTruthReport& rep, const GroundTruthOptions& opt,
                                 const std::string& model_dir);

// ---- Pieces, exposed for tests ----

// Expected IoU of a uniformly random mask of `mask_px` pixels out of `total_px`
// with a truth of `area` pixels (E|A∩M| = a·m/N in the IoU formula).
double chance_iou(double area, double mask_px, double total_px);

// IoU of the union of all object masks with the named object's truth.
double all_objects_oracle_iou(const std::vector<std::vector<uint8_t>>& object_masks, const std::vector<uint8_t>& truth);

struct PatchCeiling {
  double iou_p95 = 0;   // mask strictly above the 95th percentile, as the methods do
  double iou_best = 0;  // best over every threshold "strictly above t"
};
// The patch-resolution ceiling: patch_average, upsample_bilinear back to the
// image, threshold. Not a strict bound for every map a model could produce,
// but the best a map that knew the object exactly at patch resolution gets.
PatchCeiling patch_ceiling(const std::vector<uint8_t>& truth, int width, int height, int grid);

// Best IoU with truth of a mask {map > t} over all thresholds t.
double best_threshold_iou(const std::vector<float>& map, const std::vector<uint8_t>& truth);

struct Selectivity {
  double value = 0;  // (mean in named − mean in the other objects' union) / std(map)
  bool wins = false; // named mean > every other object's mean
};
// `others` are the masks of the objects of other shapes (at least one).
Selectivity map_selectivity(const std::vector<float>& map, const std::vector<uint8_t>& named,
                            const std::vector<std::vector<uint8_t>>& others);

}  // namespace mmn
