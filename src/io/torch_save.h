// Writing PyTorch checkpoints as `torch.save` (≥ 1.6) does: the counterpart
// of io/torch_pickle.h, and the pickled twin of write_safetensors.
//
// A file is a ZIP archive of stored (uncompressed) entries under one folder
// named after the file (`pytorch_model-00001-of-00003.bin` → folder
// `pytorch_model-00001-of-00003/`, or `archive/` when the name has unusual
// characters), in the order torch writes them:
//   <prefix>/data.pkl                 pickle (protocol 2) of the state dict
//   <prefix>/byteorder                "little"
//   <prefix>/data/0, data/1, …        one storage per tensor, raw little-endian
//   <prefix>/version                  "3\n"
//   <prefix>/.data/serialization_id   20 decimal digits (derived from the specs)
// Every entry's data starts on a 64-byte boundary (padding in the local
// header's extra field, id "FB", as torch does), so loaders can map tensors
// in place. The state dict is a collections.OrderedDict name → tensor built by
// torch._utils._rebuild_tensor_v2(storage, 0, shape, contiguous strides,
// False, OrderedDict()), in spec order; storages are torch.<X>Storage.
//
// Tensor bytes are streamed: each local header is written with the size known
// from the spec, the bytes go through a CRC-32 as fill() writes them, and the
// CRC is patched into the local header afterwards (the file is a regular
// file, so seeking back is fine; no data descriptors). Memory stays bounded
// whatever the checkpoint size. ZIP64 fields are used for every size or
// offset ≥ 0xFFFFFFFF; the ZIP64 end-of-central-directory record is always
// written (torch does too). Output is atomic (io/atomic_file.h) and, for the
// same specs and bytes, byte-for-byte reproducible (fixed 1980-01-01 times).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace mmn {

// CRC-32 (ISO-HDLC / zlib / ZIP: reflected polynomial 0xEDB88320), table
// driven (slicing by 8). Start with crc = 0 and feed consecutive chunks:
// crc32_update(crc32_update(0, a, n), b, m) == CRC of a followed by b.
uint32_t crc32_update(uint32_t crc, const void* data, size_t n);
inline uint32_t crc32(const void* data, size_t n) { return crc32_update(0, data, n); }

// Writes a torch.save-compatible archive at `path` (atomically; parent
// directories are created). fill(spec, out) is called once per spec, in
// order, and must write exactly spec.nbytes() bytes to `out` (a stream that
// only supports writing and ftell). Every dtype of DType is supported
// (F32 → FloatStorage, F16 → HalfStorage, BF16 → BFloat16Storage,
// F64 → DoubleStorage, I64 → LongStorage, I32 → IntStorage, I16 → ShortStorage,
// I8 → CharStorage, U8 → ByteStorage, BOOL → BoolStorage). Throws mmn::Error
// (and leaves nothing at `path`, nor a temp file) on duplicate or empty
// names, negative dimensions, a fill that writes the wrong number of bytes,
// write errors, or whatever fill throws.
void write_torch_checkpoint(const std::string& path, const std::vector<TensorSpec>& specs,
                            const std::function<void(const TensorSpec&, std::FILE*)>& fill);

// Hugging Face shard naming: torch_shard_name(0, 3) == "pytorch_model-00001-of-00003.bin".
std::string torch_shard_name(size_t index, size_t count);

// Splits specs, in order, into shards the way transformers' save_pretrained
// does: a tensor starts a new shard when adding it would take the current
// (non-empty) shard's tensor bytes past max_bytes; a tensor larger than
// max_bytes gets a shard of its own. Returns each spec's file name:
// "pytorch_model.bin" for all when everything fits in one shard (or
// max_bytes == 0, meaning no limit), else torch_shard_name(k, n).
std::vector<std::string> plan_torch_shards(const std::vector<TensorSpec>& specs, uint64_t max_bytes);

// Writes <dir>/pytorch_model.bin.index.json (atomically):
//   {"metadata": {"total_size": <sum of nbytes()>}, "weight_map": {name: shard_of[i]}}
// with keys sorted and 2-space indentation, as transformers writes it.
// shard_of[i] is specs[i]'s file name (plan_torch_shards' result).
void write_torch_index(const std::string& dir, const std::vector<TensorSpec>& specs,
                       const std::vector<std::string>& shard_of);

// plan_torch_shards + one write_torch_checkpoint per shard (each in spec
// order, fill called once per spec overall, in spec order) + the index when
// there is more than one shard. A single shard is <dir>/pytorch_model.bin
// with no index, as transformers does. Returns the file names written
// (shards, then the index when written), relative to dir.
std::vector<std::string> write_torch_sharded(const std::string& dir, const std::vector<TensorSpec>& specs,
                                             uint64_t max_bytes,
                                             const std::function<void(const TensorSpec&, std::FILE*)>& fill);

namespace detail {
// write_torch_checkpoint with the ZIP64 threshold lowered to `zip64_from`
// (sizes and offsets ≥ it are written as ZIP64 fields): lets tests exercise
// the ZIP64 encoding without writing 4 GiB. The public function uses 0xFFFFFFFF.
void write_torch_checkpoint(const std::string& path, const std::vector<TensorSpec>& specs,
                            const std::function<void(const TensorSpec&, std::FILE*)>& fill, uint64_t zip64_from);
}  // namespace detail

}  // namespace mmn
