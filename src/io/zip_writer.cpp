#include "io/zip_writer.h"

#include <sys/types.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "io/torch_save.h"
#include "util/error.h"

namespace mmn {

void put16(std::string& s, uint64_t v) {
  for (int i = 0; i < 2; ++i) s += static_cast<char>(v >> (8 * i));
}
void put32(std::string& s, uint64_t v) {
  for (int i = 0; i < 4; ++i) s += static_cast<char>(v >> (8 * i));
}
void put64(std::string& s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s += static_cast<char>(v >> (8 * i));
}

namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEocdSig = 0x06054b50,
                   kEocd64Sig = 0x06064b50, kLocator64Sig = 0x07064b50;
constexpr uint64_t kAlign = 64;             // torch's data alignment
constexpr uint16_t kPaddingId = 0x4246;     // "FB", torch's padding extra field
constexpr uint16_t kFlagUtf8 = 0x0800;      // names are UTF-8 (ours are ASCII)
constexpr uint16_t kDosTime = 0, kDosDate = (1 << 5) | 1;  // 1980-01-01 00:00
constexpr uint16_t kVersion = 20, kVersion64 = 45;        // 2.0; 4.5 for ZIP64

// State of one streamed entry: fill() writes through a glibc cookie stream
// whose write hook feeds the CRC and forwards to the archive.
struct CrcSink {
  std::FILE* out = nullptr;
  uint32_t crc = 0;
  uint64_t count = 0;
  int error = 0;
};

ssize_t sink_write(void* cookie, const char* buf, size_t n) {
  auto* s = static_cast<CrcSink*>(cookie);
  if (n == 0) return 0;
  if (std::fwrite(buf, 1, n, s->out) != n) {
    s->error = errno ? errno : EIO;
    return 0;  // glibc: 0 means error
  }
  s->crc = crc32_update(s->crc, buf, n);
  s->count += n;
  return static_cast<ssize_t>(n);
}

// Only "where am I" is supported (ftell); real seeking would break the CRC.
int sink_seek(void* cookie, off64_t* pos, int whence) {
  auto* s = static_cast<CrcSink*>(cookie);
  if ((whence == SEEK_CUR && *pos == 0) || (whence == SEEK_SET && *pos == static_cast<off64_t>(s->count))) {
    *pos = static_cast<off64_t>(s->count);
    return 0;
  }
  errno = ESPIPE;
  return -1;
}

}  // namespace

void ZipWriter::add(const std::string& name, std::string_view bytes) {
  uint64_t at = begin(name, bytes.size());
  write(bytes.data(), bytes.size());
  uint32_t crc = crc32(bytes.data(), bytes.size());
  patch_crc(at, crc);
  recs_.push_back({name, at, bytes.size(), crc});
}

// write(out) must put exactly `size` bytes into out; `what` names the
// tensor in messages.
void ZipWriter::add_streamed(const std::string& name, uint64_t size, const std::string& what,
                  const std::function<void(std::FILE*)>& write) {
  uint64_t at = begin(name, size);
  uint64_t data_at = tell();
  CrcSink sink;
  sink.out = f_;
  std::vector<char> buf(size_t{1} << 16);
  {
    cookie_io_functions_t io{};
    io.write = sink_write;
    io.seek = sink_seek;
    std::FILE* c = fopencookie(&sink, "w", io);
    if (!c) fail(path_, ": cannot open a stream for tensor ", what, ": ", std::strerror(errno));
    // Closes (and so flushes) the stream however write() ends, before `buf` goes.
    struct Closer {
      std::FILE*& c;
      ~Closer() {
        if (c) std::fclose(c);
      }
    } closer{c};
    std::setvbuf(c, buf.data(), _IOFBF, buf.size());
    write(c);
    std::FILE* done = c;
    c = nullptr;
    int rc = std::fclose(done);
    if (sink.error) fail(path_, ": write failed (disk full?): ", std::strerror(sink.error));
    if (rc != 0) fail(path_, ": write failed for tensor ", what, ": ", std::strerror(errno));
  }
  if (std::ferror(f_)) fail(path_, ": write failed (disk full?)");
  uint64_t written = tell() - data_at;
  if (sink.count != size || written != size)
    fail(path_, ": internal error: tensor ", what, " wrote ", sink.count, " bytes, expected ", size);
  patch_crc(at, sink.crc);
  recs_.push_back({name, at, size, sink.crc});
}

// The central directory, then the ZIP64 end record and locator, then the classic end record.
void ZipWriter::finish() {
  uint64_t cd_at = tell();
  std::string cd;
  for (const Rec& r : recs_) {
    bool big = r.size >= z64_, far = r.header >= z64_;
    std::string extra;
    if (big || far) {
      put16(extra, 1);
      put16(extra, (big ? 16 : 0) + (far ? 8 : 0));
      if (big) {
        put64(extra, r.size);  // uncompressed
        put64(extra, r.size);  // compressed
      }
      if (far) put64(extra, r.header);
    }
    put32(cd, kCentralSig);
    put16(cd, kVersion64);  // made by (MS-DOS attributes, version 4.5)
    put16(cd, big || far ? kVersion64 : kVersion);
    put16(cd, kFlagUtf8);
    put16(cd, 0);  // stored
    put16(cd, kDosTime);
    put16(cd, kDosDate);
    put32(cd, r.crc);
    put32(cd, big ? 0xFFFFFFFFu : r.size);
    put32(cd, big ? 0xFFFFFFFFu : r.size);
    put16(cd, r.name.size());
    put16(cd, extra.size());
    put16(cd, 0);  // comment
    put16(cd, 0);  // disk
    put16(cd, 0);  // internal attributes
    put32(cd, 0);  // external attributes
    put32(cd, far ? 0xFFFFFFFFu : r.header);
    cd += r.name;
    cd += extra;
  }
  write(cd.data(), cd.size());
  uint64_t eocd64_at = tell();
  uint64_t n = recs_.size(), cd_size = cd.size();
  std::string end;
  put32(end, kEocd64Sig);
  put64(end, 44);  // size of the rest of this record
  put16(end, kVersion64);
  put16(end, kVersion64);
  put32(end, 0);  // this disk
  put32(end, 0);  // disk of the central directory
  put64(end, n);
  put64(end, n);
  put64(end, cd_size);
  put64(end, cd_at);
  put32(end, kLocator64Sig);
  put32(end, 0);
  put64(end, eocd64_at);
  put32(end, 1);  // disks in all
  put32(end, kEocdSig);
  put16(end, 0);
  put16(end, 0);
  put16(end, std::min<uint64_t>(n, 0xFFFF));
  put16(end, std::min<uint64_t>(n, 0xFFFF));
  put32(end, cd_size >= z64_ ? 0xFFFFFFFFu : cd_size);
  put32(end, cd_at >= z64_ ? 0xFFFFFFFFu : cd_at);
  put16(end, 0);  // comment
  write(end.data(), end.size());
}

uint64_t ZipWriter::tell() {
  off_t at = ftello(f_);
  if (at < 0) fail(path_, ": cannot tell the write position: ", std::strerror(errno));
  return static_cast<uint64_t>(at);
}

void ZipWriter::write(const void* p, size_t n) {
  if (n && std::fwrite(p, 1, n, f_) != n) fail(path_, ": write failed (disk full?): ", std::strerror(errno));
}

void ZipWriter::seek(uint64_t at) {
  if (fseeko(f_, static_cast<off_t>(at), SEEK_SET) != 0) fail(path_, ": cannot seek: ", std::strerror(errno));
}

// The local header with the size known up front and CRC 0 (patched once the
// data is written). Sizes ≥ the ZIP64 threshold go in a ZIP64 extra field;
// torch's "FB" padding field then puts the data on a 64-byte boundary.
uint64_t ZipWriter::begin(const std::string& name, uint64_t size) {
  if (name.size() > 0xFFFF) fail(path_, ": internal error: entry name too long");
  uint64_t at = tell();
  bool big = size >= z64_;
  std::string extra;
  if (big) {
    put16(extra, 1);
    put16(extra, 16);
    put64(extra, size);
    put64(extra, size);
  }
  uint64_t data_at = at + 30 + name.size() + extra.size() + 4;
  uint64_t pad = (kAlign - data_at % kAlign) % kAlign;
  put16(extra, kPaddingId);
  put16(extra, pad);
  extra.append(pad, 'Z');
  std::string h;
  put32(h, kLocalSig);
  put16(h, big ? kVersion64 : kVersion);
  put16(h, kFlagUtf8);
  put16(h, 0);  // stored
  put16(h, kDosTime);
  put16(h, kDosDate);
  put32(h, 0);  // CRC-32, patched
  put32(h, big ? 0xFFFFFFFFu : size);
  put32(h, big ? 0xFFFFFFFFu : size);
  put16(h, name.size());
  put16(h, extra.size());
  h += name;
  h += extra;
  write(h.data(), h.size());
  return at;
}

void ZipWriter::patch_crc(uint64_t header, uint32_t crc) {
  uint64_t end = tell();
  std::string b;
  put32(b, crc);
  seek(header + 14);
  write(b.data(), b.size());
  seek(end);
}
}  // namespace mmn
