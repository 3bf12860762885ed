// Stored (uncompressed) ZIP archives written front to back onto a FILE*, in
// torch.save's layout: every entry's data on a 64-byte boundary behind an "FB"
// padding extra field, ZIP64 fields for sizes and offsets past a threshold and
// always the ZIP64 end records, UTF-8 names, fixed 1980-01-01 timestamps (so the
// same entries give the same bytes). torch.load, numpy.load and Python's
// zipfile read them; io/torch_pickle.h's read_zip_directory reads them back.
#pragma once
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace mmn {

// Little-endian appends, the byte order of ZIP and of pickles.
void put16(std::string& s, uint64_t v);
void put32(std::string& s, uint64_t v);
void put64(std::string& s, uint64_t v);

class ZipWriter {
 public:
  // f: open for writing (and seeking: each CRC is patched into its local
  // header); path names it in messages; sizes and offsets >= zip64_from use ZIP64.
  ZipWriter(std::FILE* f, const std::string& path, uint64_t zip64_from) : f_(f), path_(path), z64_(zip64_from) {}

  void add(const std::string& name, std::string_view bytes);
  // write(out) must put exactly `size` bytes into out; `what` names the entry in messages.
  void add_streamed(const std::string& name, uint64_t size, const std::string& what,
                    const std::function<void(std::FILE*)>& write);
  // The central directory, then the ZIP64 end record and locator, then the classic end record.
  void finish();

 private:
  struct Rec {
    std::string name;
    uint64_t header, size;
    uint32_t crc;
  };
  uint64_t tell();
  void write(const void* p, size_t n);
  void seek(uint64_t at);
  uint64_t begin(const std::string& name, uint64_t size);
  void patch_crc(uint64_t header, uint32_t crc);

  std::FILE* f_;
  std::string path_;
  uint64_t z64_;
  std::vector<Rec> recs_;
};

}  // namespace mmn
