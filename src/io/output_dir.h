// The directories commands write into. A command never writes into a
// non-empty directory that is not its own output (which it may resume or
// extend) unless the user passes --force: a typo in --out must not scatter
// files among someone's data or replace them.
#pragma once
#include <string>

namespace mmn {

// Checks that `dir` may receive `what` (e.g. "find run"): it does not exist,
// or is an empty directory, or holds `own_marker` (a file only this kind of
// output has; "" when the output is never resumed), or force is set.
// Otherwise throws: "<dir>: is not empty and is not a <what> (use --force to
// write into it anyway)", or "<dir>: exists and is not a directory".
void check_output_dir(const std::string& dir, bool force, const std::string& what, const std::string& own_marker = "");

}  // namespace mmn
