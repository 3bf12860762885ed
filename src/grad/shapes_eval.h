// Held-out evaluation of a shapes LLaVA through the ordinary inference path
// (load_model + greedy generate), for either world version: the model's
// shapes_world.json says which (data/shapes.h).
//
// Version 2 adds the grounded questions (each held-out scene's four, one per
// type: position, colour, count, where; exact answer match) and the planted
// co-occurrence: the ghost rate (captions that name "a small green star in
// the center") on trigger scenes, where training taught it, and on the other
// held-out scenes, where it never appeared; and the share of captions naming
// a shape the scene lacks, on both. Trigger scenes are rare (about 2%), so
// they are collected separately: the first `n_trigger` of the held-out stream
// after the n regular scenes (whose own trigger scenes count too).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mmn {

// The scenes evaluation uses by default: a stream training never draws from.
constexpr uint64_t kShapesHeldOutSeed = 0x5A5E5EEDull;

struct EvalOptions {
  std::string model;
  int64_t n = 200;
  int64_t n_trigger = 100;  // v2: trigger scenes for the hallucination rates
  uint64_t seed = kShapesHeldOutSeed;
  int max_new_tokens = 64;
  std::string out_json;  // written atomically when non-empty
  bool show_progress = true;
};

struct EvalResult {
  int world = 1;
  int64_t n = 0, objects = 0;
  double exact = 0;         // share of captions equal to the ground truth
  double nouns_image = 0;   // share of captions whose shape words (in order) equal the ground truth's
  double nouns_object = 0;  // share of objects whose shape word (k-th shape word ↔ k-th object) is right
  double objects_all = 0;   // share of objects with shape, colour, size and position right
  double parsed = 0;        // share of captions that follow the grammar
  // Version 2.
  int64_t non_trigger = 0;           // of the n held-out scenes
  double exact_non_trigger = 0;      // exact caption match on them
  std::map<std::string, double> answers;  // grounded accuracy by query type
  std::map<std::string, int64_t> asked;   // questions by query type
  double answers_all = 0;            // over every grounded question
  int64_t trigger = 0;               // trigger scenes evaluated
  double ghost_trigger = 0, ghost_other = 0;    // share of captions naming the ghost
  double absent_trigger = 0, absent_other = 0;  // share naming a shape the scene lacks
  struct Example {
    std::string query, truth, generated;
  };
  std::vector<Example> examples;  // the first few, and every mistake up to a limit
};

EvalResult evaluate_shapes_llava(const EvalOptions& opt);

}  // namespace mmn
