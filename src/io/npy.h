// NumPy .npy (format v1/v2/v3, C order) reading and writing for float32,
// int64, int32 and uint8 arrays — the exchange format of the golden
// references and of `caption --dump`.
//
// Limits (docs/limits.md): rank at most 32, every dimension at most 2^40 and
// the element count at most 2^40; the data must be present in the file.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mmn {

struct NpyArray {
  std::string dtype;            // numpy descr, e.g. "<f4", "<i8", "|u1"
  std::vector<int64_t> shape;
  std::vector<char> data;       // raw little-endian bytes, C order
  std::string path;             // the file it came from, for error messages

  int64_t numel() const;
  std::vector<float> as_f32() const;     // converts <f4/<f8
  std::vector<int64_t> as_i64() const;   // converts integer dtypes
  std::vector<uint8_t> as_u8() const;
};

NpyArray read_npy(const std::string& path);
// The same from bytes already in memory; `path` names them in errors.
NpyArray parse_npy(const std::string& bytes, const std::string& path);

// The bytes of a .npy file (format 1.0, C order) holding `bytes` bytes of
// `data` as dtype `descr` (any numpy descr, e.g. "<f4", "<U7") and `shape`;
// the caller makes the data match. For containers such as .npz.
std::string npy_bytes(const std::string& descr, const void* data, size_t bytes, const std::vector<int64_t>& shape);

// Atomic writers.
void write_npy(const std::string& path, const float* data, const std::vector<int64_t>& shape);
void write_npy(const std::string& path, const uint8_t* data, const std::vector<int64_t>& shape);
void write_npy(const std::string& path, const int64_t* data, const std::vector<int64_t>& shape);
void write_npy(const std::string& path, const int32_t* data, const std::vector<int64_t>& shape);

}  // namespace mmn
