// How a command's --model becomes a checkpoint directory: a path, a repo id in the
// local Hugging Face cache, or (when omitted) the bundled shapes model.
#pragma once
#include <string>

namespace mmn::cli {

// `given` when non-empty: a local directory stays a path; a Hugging Face repo
// id (ORG/NAME, or ORG/NAME@REVISION) resolves offline to its snapshot in the
// local hub cache (io/hf_cache.h). Else the bundled model: $MMN_MODEL, then
// models/shapes-llava next to the source tree or the binary's install prefix.
std::string resolve_model_dir(const std::string& given);

}  // namespace mmn::cli
