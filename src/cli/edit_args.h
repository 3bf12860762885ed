// `--edit EDIT` (repeatable) on caption, find, perturb and eval-edit: the
// edits are checked against the model and applied at run time through one
// NeuronIntervention (several edits compose by adding their deltas).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/intervention.h"
#include "models/vlm.h"

namespace mmn::cli {

// Null when `edits` is empty.
std::unique_ptr<NeuronIntervention> load_edits(const VisionLanguageModel& model, const std::vector<std::string>& edits);

// The image paths of --image F…, --images DIR or --dataset FILE (exactly one of them).
std::vector<std::string> image_paths(const std::vector<std::string>& images, const std::string& images_dir,
                                     const std::string& dataset, const std::string& images_root, const char* what);

}  // namespace mmn::cli
