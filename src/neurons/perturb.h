// The causal test of method.md §5: perturb a noun's top-N neurons (zero their
// value vectors, or add σ·ε to them, ε ~ N(0, I)) and ask whether the model
// still says the noun — against N random neurons, drawn uniformly over all
// layers (the reference's control) and layer-matched to the top-N (Schwettmann
// et al.'s fairer control).
//
// For every (image, noun) of a find run and every condition:
//   - teacher-forced on the original caption: log p(noun) and the logit margin
//     (noun logit − best other logit) at j*, the row that predicts the noun;
//   - free greedy regeneration: does the noun's token still appear, did the
//     caption change, did it change anywhere but at the noun's own step.
// Each intervened pass starts from the clean pass at the lowest touched layer
// (prefix reuse, models/generate.h) unless reuse is off; both give the same
// numbers bit for bit.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/intervention.h"
#include "neurons/run.h"
#include "neurons/stats.h"

namespace mmn {

struct PerturbOptions {
  std::vector<int> tops = {10, 50};   // N values
  bool zero = false;                  // ablate (set when no sigma is given)
  std::vector<float> sigmas;          // σ values of the additive perturbation
  bool random_uniform = true, random_layer = true;
  int draws = 5;                      // random sets (and noise draws) per condition
  uint64_t seed = 0;
  bool reuse = true;                  // prefix reuse
  int64_t max_images = 0;             // 0 = all
  bool show_progress = false;
  NeuronIntervention* base = nullptr;  // applied to every pass, clean included (an edit), or null
};

// One intervened (or clean) pass.
struct PerturbOutcome {
  double logprob = 0, margin = 0;     // teacher-forced at j*
  bool survives = true, changed = false, rest_changed = false;
  std::vector<int32_t> generated;
};

struct PerturbCondition {
  std::string set;   // "top", "uniform", "layer"
  int n = 0;
  std::string mode;  // "zero" or "sigma"
  float sigma = 0;
  std::vector<PerturbOutcome> draws;
};

struct PerturbItem {
  std::string image_id, word;
  int32_t token_id = 0;
  int step = 0;
  PerturbOutcome clean;
  bool clean_reproduced = true;       // the batched clean pass' greedy choices equal the run's caption
  std::vector<PerturbCondition> conditions;
};

struct PerturbReport {
  std::vector<PerturbItem> items;
  double seconds = 0;
  int64_t passes = 0;                 // intervened passes run
};

// Runs every condition; `run` must come from `model` (checked by the caller).
PerturbReport run_perturbation(const VisionLanguageModel& model, const RunData& run, const PerturbOptions& opt);

// The same-condition key used in summaries: "top N zero", "layer N σ=1".
std::string condition_label(const PerturbCondition& c);

// Summary statistics: per condition, the mean change of the margin and log p
// (after − before), the rate at which the noun disappears and the rest of the
// caption changes, each with bootstrap CIs over (image, noun) items; and
// paired differences top − random (and the ratio of margin drops).
nlohmann::json summarize_perturbation(const PerturbReport& rep, uint64_t seed);
nlohmann::json perturbation_to_json(const PerturbReport& rep, const Tokenizer& tok, const PerturbOptions& opt);

}  // namespace mmn
