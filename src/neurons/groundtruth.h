// Ground-truth check of the method on the shapes world (data/shapes.h): for
// each shape noun of a held-out scene's caption, does the averaged activation
// map of the noun's top neurons fall on that object? Reported as the IoU of the
// 95th-percentile mask with the object's true pixel mask, for the paper's
// score, the gradient baseline and random neurons.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "models/vlm.h"
#include "neurons/find.h"

namespace mmn {

class WordNet;

struct GroundTruthOptions {
  int64_t scenes = 40;
  uint64_t seed = 0x5A5E5EEDull;  // the held-out scene stream
  int top = 10;                    // neurons averaged into the map
  ActivationVariant activation = ActivationVariant::Act;
  bool gradient = true;            // also evaluate the gradient baseline
  uint64_t random_seed = 7;
  bool show_progress = false;
};

struct GroundTruthMethod {
  std::string method;  // "score", "gradient", "random"
  double mean_iou = 0;
  int64_t concepts = 0;
};

struct GroundTruthReport {
  std::vector<GroundTruthMethod> methods;
  int64_t scenes = 0, concepts = 0;
  double chance_iou = 0;  // expected IoU of a random mask of the same size
};

GroundTruthReport evaluate_ground_truth(const VisionLanguageModel& model, const WordNet& wordnet,
                                        const GroundTruthOptions& opt);

}  // namespace mmn
