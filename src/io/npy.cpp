#include "io/npy.h"

#include <cstring>

#include "io/atomic_file.h"
#include "util/error.h"

namespace mmn {

namespace {

size_t dtype_size(const std::string& d, const std::string& path) {
  if (d.size() < 3) fail(path, ": unsupported npy dtype '", d, "'");
  if (d[0] == '>') fail(path, ": big-endian npy arrays are not supported");
  return static_cast<size_t>(std::stoi(d.substr(2)));
}

std::string header_for(const std::string& descr, const std::vector<int64_t>& shape) {
  std::string s = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i) {
    s += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) s += ",";
    if (i + 1 < shape.size()) s += " ";
  }
  s += "), }";
  size_t total = 10 + s.size() + 1;
  size_t pad = (64 - total % 64) % 64;
  s.append(pad, ' ');
  s += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  uint16_t len = static_cast<uint16_t>(s.size());
  out.push_back(static_cast<char>(len & 0xff));
  out.push_back(static_cast<char>(len >> 8));
  return out + s;
}

void write_raw(const std::string& path, const std::string& descr, const void* data, size_t bytes,
               const std::vector<int64_t>& shape) {
  std::string h = header_for(descr, shape);
  write_stream_atomic(path, [&](std::FILE* f) {
    if (std::fwrite(h.data(), 1, h.size(), f) != h.size() ||
        (bytes && std::fwrite(data, 1, bytes, f) != bytes))
      fail(path, ": write failed");
  });
}

int64_t count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

}  // namespace

int64_t NpyArray::numel() const { return count(shape); }

std::vector<float> NpyArray::as_f32() const {
  std::vector<float> out(numel());
  if (dtype == "<f4") {
    std::memcpy(out.data(), data.data(), out.size() * 4);
  } else if (dtype == "<f8") {
    const double* p = reinterpret_cast<const double*>(data.data());
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(p[i]);
  } else {
    fail("npy: cannot convert dtype ", dtype, " to float32");
  }
  return out;
}

std::vector<int64_t> NpyArray::as_i64() const {
  std::vector<int64_t> out(numel());
  for (size_t i = 0; i < out.size(); ++i) {
    if (dtype == "<i8") std::memcpy(&out[i], data.data() + 8 * i, 8);
    else if (dtype == "<i4") { int32_t v; std::memcpy(&v, data.data() + 4 * i, 4); out[i] = v; }
    else if (dtype == "|u1") out[i] = static_cast<uint8_t>(data[i]);
    else fail("npy: cannot convert dtype ", dtype, " to int64");
  }
  return out;
}

std::vector<uint8_t> NpyArray::as_u8() const {
  if (dtype != "|u1") fail("npy: expected uint8 array, got ", dtype);
  return std::vector<uint8_t>(data.begin(), data.end());
}

NpyArray read_npy(const std::string& path) {
  std::string bytes = read_file(path);
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) fail(path, ": not a .npy file");
  int major = static_cast<uint8_t>(bytes[6]);
  size_t hlen, off;
  if (major == 1) {
    hlen = static_cast<uint8_t>(bytes[8]) | (static_cast<uint8_t>(bytes[9]) << 8);
    off = 10;
  } else {
    if (bytes.size() < 12) fail(path, ": truncated .npy header");
    hlen = 0;
    for (int i = 0; i < 4; ++i) hlen |= static_cast<size_t>(static_cast<uint8_t>(bytes[8 + i])) << (8 * i);
    off = 12;
  }
  if (off + hlen > bytes.size()) fail(path, ": truncated .npy header");
  std::string h = bytes.substr(off, hlen);
  NpyArray a;
  auto field = [&](const std::string& key) {
    auto p = h.find("'" + key + "'");
    if (p == std::string::npos) fail(path, ": npy header lacks '", key, "'");
    return h.find(':', p) + 1;
  };
  size_t p = field("descr");
  size_t q1 = h.find('\'', p), q2 = h.find('\'', q1 + 1);
  a.dtype = h.substr(q1 + 1, q2 - q1 - 1);
  p = field("fortran_order");
  if (h.compare(h.find_first_not_of(' ', p), 4, "True") == 0) fail(path, ": Fortran-order npy not supported");
  p = field("shape");
  size_t l = h.find('(', p), r = h.find(')', l);
  std::string dims = h.substr(l + 1, r - l - 1);
  size_t i = 0;
  while (i < dims.size()) {
    while (i < dims.size() && (dims[i] == ' ' || dims[i] == ',')) ++i;
    if (i >= dims.size()) break;
    size_t j = i;
    while (j < dims.size() && isdigit(static_cast<unsigned char>(dims[j]))) ++j;
    if (j == i) fail(path, ": bad shape in npy header");
    a.shape.push_back(std::stoll(dims.substr(i, j - i)));
    i = j;
  }
  size_t need = static_cast<size_t>(a.numel()) * dtype_size(a.dtype, path);
  if (bytes.size() - off - hlen < need) fail(path, ": truncated .npy data");
  a.data.assign(bytes.begin() + off + hlen, bytes.begin() + off + hlen + need);
  return a;
}

void write_npy(const std::string& path, const float* d, const std::vector<int64_t>& s) {
  write_raw(path, "<f4", d, count(s) * 4, s);
}
void write_npy(const std::string& path, const uint8_t* d, const std::vector<int64_t>& s) {
  write_raw(path, "|u1", d, count(s), s);
}
void write_npy(const std::string& path, const int64_t* d, const std::vector<int64_t>& s) {
  write_raw(path, "<i8", d, count(s) * 8, s);
}
void write_npy(const std::string& path, const int32_t* d, const std::vector<int64_t>& s) {
  write_raw(path, "<i4", d, count(s) * 4, s);
}

}  // namespace mmn
