// How a command's --model becomes a checkpoint directory: a path, a repo id in the
// local Hugging Face cache, or (when omitted) the bundled shapes model.
#pragma once
#include <memory>
#include <string>

#include "models/vlm.h"

namespace mmn::cli {

// `given` when non-empty: a local directory stays a path; a Hugging Face repo
// id (ORG/NAME, or ORG/NAME@REVISION) resolves offline to its snapshot in the
// local hub cache (io/hf_cache.h). Else the bundled model: $MMN_MODEL, then
// models/shapes-llava next to the source tree or the binary's install prefix.
std::string resolve_model_dir(const std::string& given);

// The model a command works on: --model (`given`) when set, with --vision-tower;
// else `recorded_dir` (the model a run or an edit was made with, "" = none →
// the bundled model) with --vision-tower, else the tower recorded with it.
std::unique_ptr<VisionLanguageModel> load_cli_model(const std::string& given, const std::string& vision_tower,
                                                    const std::string& recorded_dir = "",
                                                    const std::string& recorded_tower = "");

}  // namespace mmn::cli
