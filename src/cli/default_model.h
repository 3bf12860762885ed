// The model a command uses when --model is omitted: the bundled shapes model.
#pragma once
#include <string>

namespace mmn::cli {

// `given` when non-empty; else the bundled model: $MMN_MODEL, then
// models/shapes-llava next to the source tree or the binary's install prefix.
std::string resolve_model_dir(const std::string& given);

}  // namespace mmn::cli
