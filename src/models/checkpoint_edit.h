// A knowledge edit (ValueEdit) turned into a real checkpoint, and back.
//
// export_value_edit writes OUT, a complete checkpoint directory in the
// source's layout, format and dtype, that any loader (mmneuron or the
// reference implementation) reads as an ordinary model:
//   * every file of the source directory, recursively (config, tokenizer,
//     sub-directories such as qformer_tokenizer/, the shard index, every
//     .safetensors shard), is copied byte for byte (symlinks are followed:
//     their content is copied);
//   * in the shard(s) holding the edited down_proj tensors, exactly the bytes
//     of the edited columns are replaced by e.edited. Headers are untouched,
//     so every other tensor, and every other byte, is identical;
//   * OUT/mmneuron_edit.json records the edit (its info, neurons, the patched
//     tensors and the source directory). Loaders ignore it.
// revert_value_edit does the inverse on an exported directory: it copies it
// with the edited columns restored from e.original and without
// mmneuron_edit.json, so the result is bit for bit the source checkpoint (if
// the source itself was an export and had its own mmneuron_edit.json, that
// file's exact text is kept inside ours and restored).
//
// Streaming: files are copied through a fixed-size buffer and patched on the
// fly, so a 14 GB checkpoint needs a few MiB of memory.
//
// Atomicity: everything is written into a staging directory beside OUT,
// "OUT.tmp-<pid>-<random>" (each file there itself written as temp + rename
// and fsync'ed), which is renamed to OUT only once complete. An interrupted
// export therefore leaves at most a ".tmp-" directory, never a directory
// named OUT that looks complete. On any error the staging directory is
// removed. With force, an existing OUT is first renamed aside
// ("OUT.old-<pid>-<random>"), the staging directory renamed into place, then
// the old one removed.
//
// Refusals (one-line mmn::Error naming the directory):
//   * OUT is the input directory, lies inside it, contains it (force would
//     delete it), or is the same inode (a symlink to it): "refusing to
//     export onto the source model" / "refusing to revert onto the edited model";
//   * OUT exists and is non-empty without force, or exists and is not a directory;
//   * export: the source does not match the edit (family, shapes, dtype,
//     fingerprint) or its bytes at the edited columns are not e.original;
//   * revert: the input's bytes at the edited columns are not e.edited
//     (not the export of this edit).
// The input directory is only ever read.
#pragma once
#include <string>

#include "models/value_edit.h"
#include "models/vlm.h"

namespace mmn {

// Name of the file recording the edit inside an exported checkpoint.
inline constexpr const char* kExportedEditFile = "mmneuron_edit.json";

// Writes the checkpoint of `source` with edit `e` applied into out_dir (see above).
void export_value_edit(const VisionLanguageModel& source, const ValueEdit& e, const std::string& out_dir, bool force);

// Writes the export `edited_model_dir` of edit `e` with the edit undone into
// out_dir: bit for bit the source checkpoint the edit was exported from.
void revert_value_edit(const ValueEdit& e, const std::string& edited_model_dir, const std::string& out_dir, bool force);

}  // namespace mmn
