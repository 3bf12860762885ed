#include "io/npz.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "io/atomic_file.h"
#include "io/npy.h"
#include "io/zip_writer.h"
#include "util/error.h"

namespace mmn {

namespace {
// Sizes and offsets that do not fit 32 bits go in ZIP64 fields (numpy reads them).
constexpr uint64_t kZip64From = 0xFFFFFFFFu;
}  // namespace

std::string npz_bytes(const std::vector<NpzMember>& members) {
  std::set<std::string> seen;
  for (const NpzMember& m : members) {
    if (m.name.empty()) fail("npz: an array needs a name");
    if (!seen.insert(m.name).second) fail("npz: array '", m.name, "' is given twice");
  }
  // torch.save's ZIP writer onto a memory stream (it seeks back to patch each CRC).
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* f = open_memstream(&buf, &len);
  if (!f) fail("npz: cannot open a memory stream");
  try {
    ZipWriter zip(f, "npz", kZip64From);
    for (const NpzMember& m : members) zip.add(m.name + ".npy", m.npy);
    zip.finish();
  } catch (...) {
    std::fclose(f);
    std::free(buf);
    throw;
  }
  std::fclose(f);
  std::string out(buf, len);
  std::free(buf);
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
