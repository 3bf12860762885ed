// Offline lookup of Hugging Face repo ids ("llava-hf/llava-1.5-7b-hf") in the
// local hub cache that huggingface_hub / huggingface-cli fill:
//   <cache>/models--ORG--NAME/refs/<revision>      a file holding a commit hash
//   <cache>/models--ORG--NAME/snapshots/<hash>/…   files, symlinked into blobs/
//   <cache>/models--ORG--NAME/blobs/<sha>          the bytes
// Nothing here touches the network: a repo that is not cached is an error that
// tells the user which download command to run.
#pragma once
#include <string>

namespace mmn {

// The hub cache directory, in huggingface_hub's order: $HF_HUB_CACHE, else
// $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
// ~/.cache/huggingface/hub. Empty variables count as unset; a leading "~/" is
// expanded. Throws mmn::Error when none of them (not even $HOME) is set.
std::string hub_cache_dir();

// True when `s` has the shape ORG/NAME (one '/', both parts non-empty), does
// not start with '/', '.' or '~', and is not an existing path. It says "the
// user meant a repo id", not "a valid one": resolve_hf_repo checks validity.
bool looks_like_repo_id(const std::string& s);

// The snapshot directory of `repo_id` at `revision` (a ref name such as
// "main", or a commit hash present under snapshots/). Checks the snapshot
// holds config.json. Throws mmn::Error (one line) for an invalid id, a repo
// absent from the cache (naming the `huggingface-cli download` command), a
// missing ref, a ref pointing at a missing snapshot, or a missing config.json.
std::string resolve_hf_repo(const std::string& repo_id, const std::string& revision = "main");

// What a model argument (the CLI's --model, Python's mmneuron.load) names: an
// existing directory stays a path; a value that reads as a repo id, optionally
// "REPO@REVISION" (repo ids cannot hold '@', so the first one splits),
// resolves to its snapshot in the local cache, offline. Anything else is
// returned unchanged, so the loader's own errors name it.
std::string resolve_model_arg(const std::string& given);

}  // namespace mmn
