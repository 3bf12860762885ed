// NumPy .npz archives as numpy.savez writes them: a ZIP of stored
// (uncompressed) entries, one `<name>.npy` per array, written with
// io/zip_writer.h (the writer of torch.save checkpoints); read back with
// io/torch_pickle.h's read_zip_directory and parse_npy (or numpy.load).
// Entries keep the order given; the same arrays give the same bytes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mmn {

struct NpzMember {
  std::string name;  // array name; the entry is "<name>.npy"
  std::string npy;   // the member's .npy bytes (npy_bytes)
};

// The archive's bytes. Throws mmn::Error on an empty or duplicate name.
std::string npz_bytes(const std::vector<NpzMember>& members);

// Writes npz_bytes(members) to path atomically.
void write_npz(const std::string& path, const std::vector<NpzMember>& members);

// .npy bytes of a 1-D numpy unicode array ('<U n', n = the longest string in
// code points, at least 1): each string as n little-endian UCS-4 code points,
// zero-padded. Strings are UTF-8; an invalid sequence becomes U+FFFD.
std::string npy_unicode(const std::vector<std::string>& utf8);

// The code points of a UTF-8 string, invalid sequences (bad lead or
// continuation bytes, overlong forms, surrogates, values past U+10FFFF, a
// truncated end) each becoming U+FFFD.
std::vector<uint32_t> utf8_code_points(const std::string& s);

}  // namespace mmn
