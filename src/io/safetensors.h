// Safetensors checkpoints, memory-mapped and bounds-checked.
// Tensors stay in their stored dtype inside the mapping; nothing is copied.
// A sharded checkpoint (model.safetensors.index.json) is presented as one map.
#pragma once
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mmn {

enum class DType { F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL };

// Inline and constexpr: the kernels' inner loops call it with a constant
// dtype, and an out-of-line call there cost the decode GEMV half its speed.
constexpr size_t dtype_size(DType d) {
  switch (d) {
    case DType::F64: case DType::I64: return 8;
    case DType::F32: case DType::I32: return 4;
    case DType::F16: case DType::BF16: case DType::I16: return 2;
    case DType::I8: case DType::U8: case DType::BOOL: return 1;
  }
  return 0;
}
const char* dtype_name(DType d);  // safetensors spelling: "F32", "BF16", …
DType parse_dtype(const std::string& s, const std::string& file);  // throws naming file

// A view of one stored tensor: where it lives and how it is laid out.
struct TensorRef {
  std::string name;
  std::string file;  // the .safetensors (or .bin) file it lives in (for error messages)
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;
  uint64_t file_offset = 0;  // where the bytes start in `file` (either format), for in-place patching
  int64_t numel() const;
  std::string shape_str() const;  // "[64, 160]"
};

class MappedFile;

// One or more mapped .safetensors files with a merged name → tensor index.
class SafetensorsCheckpoint {
 public:
  // `path` is a directory (model.safetensors or model.safetensors.index.json
  // inside) or a single .safetensors file. Pickled PyTorch checkpoints load the
  // same way (io/torch_pickle.h): a directory with pytorch_model.bin or
  // pytorch_model.bin.index.json (+ shards), and mm_projector.bin when it adds
  // tensors the main files lack, or a single .bin/.pt/.pth file. Safetensors
  // is preferred when a directory holds both. A tensor whose bytes are not
  // aligned to its element size (legal in both formats, though writers align)
  // is copied to aligned memory; all others stay in the mapping.
  static SafetensorsCheckpoint open(const std::string& path);

  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // Throws "DIR: missing tensor NAME" when absent.
  const TensorRef& get(const std::string& name) const;
  // As get(), and checks the shape: "FILE: tensor NAME has shape [..], expected [..]".
  const TensorRef& get(const std::string& name, const std::vector<int64_t>& shape) const;
  const std::map<std::string, TensorRef>& tensors() const { return tensors_; }
  const std::string& path() const { return path_; }
  // Metadata of the first file's "__metadata__" (string → string).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // The distinct files and the tensor names each holds (for writing edited copies).
  std::vector<std::pair<std::string, std::vector<std::string>>> files() const;
  size_t total_bytes() const;
  // Drops this process's page mappings of a tensor's bytes (madvise
  // MADV_DONTNEED on the whole pages inside it), so a pass that reads every
  // tensor once (quantize) does not count the whole checkpoint in its RSS.
  // The bytes stay valid: the next read maps them again from the page cache.
  // Does nothing for a tensor held in an aligned copy.
  void release_pages(const TensorRef& t) const;

 private:
  std::string path_;
  std::vector<std::shared_ptr<MappedFile>> maps_;
  // Aligned copies of tensors whose bytes are not aligned for their dtype in
  // the file (the kernels read them as float/uint16_t arrays).
  std::vector<std::shared_ptr<std::vector<uint64_t>>> copies_;
  std::map<std::string, TensorRef> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Parses and validates one file's header against its size (exposed for tests).
struct SafetensorsHeader {
  size_t data_start = 0;  // byte offset of the data section
  std::map<std::string, std::string> metadata;
  struct Entry { std::string name; DType dtype; std::vector<int64_t> shape; uint64_t begin, end; };
  std::vector<Entry> entries;
};
SafetensorsHeader parse_safetensors_header(const std::string& file, const uint8_t* bytes, size_t size);

// Streams a safetensors file: the header first (names, dtypes, shapes in
// order), then each tensor's bytes through a callback, so huge checkpoints are
// written with bounded memory. Atomic (temp file + rename).
struct TensorSpec {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  size_t nbytes() const;
};
// fill(spec, out) must write exactly spec.nbytes() bytes of that tensor.
void write_safetensors(const std::string& path, const std::vector<TensorSpec>& specs,
                       const std::map<std::string, std::string>& metadata,
                       const std::function<void(const TensorSpec&, std::FILE*)>& fill);

}  // namespace mmn
