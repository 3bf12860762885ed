// Reading a finished find run (RUN/run.json, RUN/<id>/result.json and
// RUN/<id>/neurons.npy) for the commands that analyse it: perturb, metrics.
// Every problem is a one-line error naming the file.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "neurons/find.h"

namespace mmn {

struct RunConcept {
  std::string word, lemma;
  int32_t token_id = 0;
  int step = 0;                        // index among generated_ids predicted at j*
  std::vector<NeuronEntry> neurons;    // the run's top-k, ranked (from neurons.npy)
  std::vector<NeuronEntry> gradient;   // gradient-baseline top-k when the run has it (gradient.npy)
};

struct RunImage {
  std::string id, dir, image;          // image: the path find read
  std::string caption;
  std::vector<int32_t> prompt_ids, generated_ids;
  std::vector<int64_t> permutation;    // empty unless the run shuffled image tokens
  std::vector<RunConcept> concepts;
  std::string image_acts;              // path of image_acts.npy when find wrote it, else empty
};

struct RunData {
  std::string dir;
  nlohmann::json info;                 // run.json
  std::vector<RunImage> images;        // finished images, sorted by id
  std::string model() const { return info.value("model", ""); }
  // The separate vision tower the run's model was loaded with ("" = none).
  std::string vision_tower() const { return info.value("vision_tower", ""); }
  int layers() const { return info.value("layers", 0); }
  int64_t units_per_layer() const { return info.value("units_per_layer", int64_t{0}); }
  const nlohmann::json& options() const { return info.at("options"); }
};

// Reads a run; images without result.json (unfinished or failed) are skipped.
// Limits (docs/limits.md): layers in [1, 65536], units_per_layer in
// [1, 2^31), token ids and steps in the int32 range.
RunData load_run(const std::string& dir);

// DIR/run.json parsed and checked to be a JSON object (shared with merge).
// Throws "DIR/run.json: no such file (not a find run)", "…: not valid JSON",
// "…: expected a JSON object (not a find run)".
nlohmann::json read_run_json(const std::string& dir);

// Refuses (one-line error) a run made with another model than `model`:
// compares the family and the language-model shape recorded in run.json.
void check_run_matches_model(const RunData& run, const VisionLanguageModel& model);

}  // namespace mmn
