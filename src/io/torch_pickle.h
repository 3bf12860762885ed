// PyTorch checkpoints as `torch.save` (≥ 1.6) writes them: a ZIP archive of
// stored (uncompressed) entries, `<prefix>/data.pkl` (a pickle of the state
// dict) and `<prefix>/data/<key>` (raw little-endian storage bytes).
//
// The pickle is *interpreted*, never executed: only the opcodes torch.save
// emits are understood, and only a fixed list of globals may be named
// (collections.OrderedDict, torch._utils._rebuild_tensor_v2,
// torch._utils._rebuild_parameter and the torch.*Storage types). Anything
// else is an mmn::Error naming the file. Tensors are returned as byte ranges
// of the archive, so the caller can map the file once and point into it.
//
// Limits (each an error when exceeded, so hostile input costs bounded work):
//   data.pkl at most 256 MiB; pickle stack and memo at most 1 Mi entries each;
//   MARK nesting at most 4096; LONG1 at most 8 bytes; tensor rank at most 64;
//   a tensor's element count at most 2^50; at most 1 Mi archive entries.
// Not checked: the ZIP CRCs (checking them would read every weight byte).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace mmn {

// One stored ZIP entry: where its bytes lie in the archive.
struct ZipEntry {
  std::string name;
  uint64_t data_offset = 0;  // of the entry's first byte, from the archive's start
  uint64_t size = 0;
};

// Reads the end-of-central-directory record (ZIP64 when present), the central
// directory and each local header; every entry must be stored (method 0) and
// lie inside the archive. `file` is only used in error messages.
std::vector<ZipEntry> read_zip_directory(const std::string& file, const uint8_t* bytes, size_t size);

// One tensor of a torch.save state dict, in pickle order.
struct TorchTensorEntry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t offset = 0;  // byte offset from the archive's start
  uint64_t nbytes = 0;
};

// Parses a whole torch.save archive (already in memory / mapped) into its
// tensors. Each must be C-contiguous and lie within its storage; the storage
// entry must hold all the elements it declares.
std::vector<TorchTensorEntry> parse_torch_checkpoint(const std::string& file, const uint8_t* bytes, size_t size);

// The torch.*Storage types and their dtypes: the globals a checkpoint may name
// (reading) and the ones the writer names (io/torch_save.h).
struct TorchStorageType {
  const char* name;  // "FloatStorage"
  DType dtype;
};
extern const TorchStorageType kTorchStorageTypes[10];
const char* torch_storage_name(DType d);  // throws for a dtype without one

// True when the first bytes look like a torch.save file (ZIP, or a legacy
// pickle, which parse_torch_checkpoint then refuses with a clear message).
bool looks_like_torch_file(const uint8_t* bytes, size_t size);

}  // namespace mmn
