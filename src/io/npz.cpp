#include "io/npz.h"

#include <algorithm>
#include <set>

#include "io/atomic_file.h"
#include "io/npy.h"
#include "io/torch_save.h"
#include "util/error.h"

namespace mmn {

namespace {

constexpr uint16_t kVersion = 20;          // ZIP 2.0: stored entries
constexpr uint16_t kDosDate1980 = 0x0021;  // 1980-01-01, time 00:00:00

void put16(std::string& b, uint16_t v) {
  b += static_cast<char>(v & 0xff);
  b += static_cast<char>(v >> 8);
}
void put32(std::string& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b += static_cast<char>((v >> (8 * i)) & 0xff);
}

}  // namespace

std::string npz_bytes(const std::vector<NpzMember>& members) {
  struct Rec {
    std::string name;
    uint32_t crc, size, offset;
  };
  std::vector<Rec> recs;
  std::set<std::string> seen;
  std::string out;
  auto fits = [](uint64_t v) { return v < 0xFFFFFFFFull; };
  for (const NpzMember& m : members) {
    if (m.name.empty()) fail("npz: an array needs a name");
    if (!seen.insert(m.name).second) fail("npz: array '", m.name, "' is given twice");
    const std::string name = m.name + ".npy";
    if (name.size() > 0xFFFF) fail("npz: array name '", m.name.substr(0, 64), "…' is too long");
    if (!fits(out.size()) || !fits(m.npy.size())) fail("npz: archives of 4 GiB or more are not supported");
    Rec r{name, crc32(m.npy.data(), m.npy.size()), static_cast<uint32_t>(m.npy.size()),
          static_cast<uint32_t>(out.size())};
    put32(out, 0x04034b50);  // local file header
    put16(out, kVersion);
    put16(out, 0);  // flags
    put16(out, 0);  // stored
    put16(out, 0);  // time
    put16(out, kDosDate1980);
    put32(out, r.crc);
    put32(out, r.size);  // compressed = uncompressed
    put32(out, r.size);
    put16(out, static_cast<uint16_t>(name.size()));
    put16(out, 0);  // no extra field
    out += name;
    out += m.npy;
    recs.push_back(std::move(r));
  }
  const uint64_t cd_at = out.size();
  for (const Rec& r : recs) {
    put32(out, 0x02014b50);  // central directory entry
    put16(out, kVersion);    // made by (MS-DOS attributes)
    put16(out, kVersion);    // needed
    put16(out, 0);
    put16(out, 0);
    put16(out, 0);
    put16(out, kDosDate1980);
    put32(out, r.crc);
    put32(out, r.size);
    put32(out, r.size);
    put16(out, static_cast<uint16_t>(r.name.size()));
    put16(out, 0);  // extra
    put16(out, 0);  // comment
    put16(out, 0);  // disk
    put16(out, 0);  // internal attributes
    put32(out, 0);  // external attributes
    put32(out, r.offset);
    out += r.name;
  }
  const uint64_t cd_size = out.size() - cd_at;
  if (!fits(cd_at) || !fits(out.size()) || recs.size() >= 0xFFFF)
    fail("npz: archives of 4 GiB or 65535 arrays or more are not supported");
  put32(out, 0x06054b50);  // end of central directory
  put16(out, 0);
  put16(out, 0);
  put16(out, static_cast<uint16_t>(recs.size()));
  put16(out, static_cast<uint16_t>(recs.size()));
  put32(out, static_cast<uint32_t>(cd_size));
  put32(out, static_cast<uint32_t>(cd_at));
  put16(out, 0);  // comment
  return out;
}

void write_npz(const std::string& path, const std::vector<NpzMember>& members) {
  write_file_atomic(path, npz_bytes(members));
}

std::vector<uint32_t> utf8_code_points(const std::string& s) {
  constexpr uint32_t kBad = 0xFFFD;
  std::vector<uint32_t> out;
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const uint8_t c = static_cast<uint8_t>(s[i]);
    if (c < 0x80) {
      out.push_back(c);
      ++i;
      continue;
    }
    int len;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4, cp = c & 0x07, min = 0x10000;
    } else {
      out.push_back(kBad);  // a continuation byte, an overlong lead or past U+10FFFF
      ++i;
      continue;
    }
    int k = 1;
    for (; k < len && i + k < n && (static_cast<uint8_t>(s[i + k]) & 0xC0) == 0x80; ++k)
      cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3F);
    if (k < len || cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      out.push_back(kBad);
      i += k;  // the bytes read so far form one bad sequence
      continue;
    }
    out.push_back(cp);
    i += len;
  }
  return out;
}

std::string npy_unicode(const std::vector<std::string>& utf8) {
  std::vector<std::vector<uint32_t>> cps;
  size_t width = 1;  // numpy's '<U0' is not a valid array dtype for loading back as text
  for (const std::string& s : utf8) {
    cps.push_back(utf8_code_points(s));
    width = std::max(width, cps.back().size());
  }
  std::string data(utf8.size() * width * 4, '\0');
  for (size_t i = 0; i < cps.size(); ++i)
    for (size_t j = 0; j < cps[i].size(); ++j)
      for (int b = 0; b < 4; ++b) data[(i * width + j) * 4 + b] = static_cast<char>((cps[i][j] >> (8 * b)) & 0xff);
  return npy_bytes("<U" + std::to_string(width), data.data(), data.size(), {static_cast<int64_t>(utf8.size())});
}

}  // namespace mmn
