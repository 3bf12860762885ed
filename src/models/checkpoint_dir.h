// Writing a checkpoint directory derived from another (an exported edit, a
// quantized copy), shared by models/checkpoint_edit and models/quantize:
// the source's file tree listed (symlinks followed), every file copied
// byte for byte or with byte patches applied, into a staging directory
// beside OUT that is renamed into place only when complete (see
// checkpoint_edit.h for the atomicity and refusal rules).
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "models/intervention.h"

namespace mmn {

// One stored element of an edited column: `n` bytes at `offset` in its file
// that must read `expect` and become `replace`.
struct Patch {
  uint64_t offset;
  const uint8_t* expect;
  const uint8_t* replace;
  size_t n;
  NeuronRef neuron;
};
// Top-level file name (shards never live in sub-directories) → its patches, by offset.
using PatchMap = std::map<std::string, std::vector<Patch>>;
// Called with the neuron whose stored bytes are not the expected ones; throws.
using MismatchFn = std::function<void(NeuronRef)>;


// Streams src into dst (atomically), applying the sorted patches on the way and
// checking each still finds its expected bytes (the file may change meanwhile).
void copy_file_patched(const std::filesystem::path& src, const std::filesystem::path& dst,
                       const std::vector<Patch>& patches, const MismatchFn& mismatch);

// Every file and directory under root (following symlinks, whose content is what a loader reads).
struct TreeEntry {
  std::filesystem::path rel;
  bool is_dir;
};
void list_tree(const std::filesystem::path& root, const std::filesystem::path& rel, int depth,
               std::vector<TreeEntry>& out);

// Copies the listed tree into dst, patching top-level files named in `patches`.
void copy_tree(const std::filesystem::path& src, const std::vector<TreeEntry>& tree, const std::filesystem::path& dst,
               const PatchMap& patches, const MismatchFn& mismatch);

// The output path as given, absolute and without a trailing slash (so a
// symlink named OUT is replaced itself, never its target).
std::filesystem::path output_path(const std::string& out_dir);

// Refuses an output that is, holds, or lies within the input, or that exists
// without force. `refusal` is the one-line reason for the first case.
void check_output(const std::filesystem::path& in, const std::vector<TreeEntry>& tree,
                  const std::filesystem::path& out, bool force, const std::string& refusal);

// A directory beside OUT that becomes OUT only when commit() is called; removed otherwise.
class Staging {
 public:
  explicit Staging(const std::filesystem::path& out);
  ~Staging();
  Staging(const Staging&) = delete;
  Staging& operator=(const Staging&) = delete;
  const std::filesystem::path& path() const { return path_; }
  // Renames the finished directory into place (an existing OUT, allowed by
  // force, is moved aside first and removed after).
  void commit();

 private:
  std::filesystem::path out_, path_;
  bool committed_ = false;
};

}  // namespace mmn
