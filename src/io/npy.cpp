#include "io/npy.h"

#include <cctype>
#include <cstring>

#include "io/atomic_file.h"
#include "util/error.h"

namespace mmn {

namespace {

constexpr size_t kMaxRank = 32;
constexpr int64_t kMaxDim = int64_t{1} << 40;
constexpr int64_t kMaxNumel = int64_t{1} << 40;

// Item size of a little-endian (or byte-sized) numpy descr such as "<f4" or
// "|u1"; the conversions below decide which kinds they can read.
size_t descr_size(const std::string& d, const std::string& path) {
  if (!d.empty() && d[0] == '>') fail(path, ": big-endian npy arrays are not supported");
  const bool order_ok = d.size() == 3 && (d[0] == '<' || d[0] == '|' || d[0] == '=');
  const bool kind_ok = d.size() == 3 && (d[1] == 'f' || d[1] == 'i' || d[1] == 'u' || d[1] == 'b');
  const bool size_ok = d.size() == 3 && (d[2] == '1' || d[2] == '2' || d[2] == '4' || d[2] == '8');
  if (!order_ok || !kind_ok || !size_ok) fail(path, ": unsupported npy dtype '", d, "'");
  return static_cast<size_t>(d[2] - '0');
}

// The header is a Python dict literal, e.g.
//   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
// parsed strictly: the three keys, string / bool / tuple-of-int values.
class HeaderParser {
 public:
  HeaderParser(const std::string& h, const std::string& path) : h_(h), path_(path) {}

  void parse(NpyArray& a) {
    bool have_descr = false, have_order = false, have_shape = false;
    expect('{');
    while (true) {
      skip_ws();
      if (peek() == '}') break;
      const std::string key = quoted();
      expect(':');
      if (key == "descr") {
        a.dtype = quoted();
        have_descr = true;
      } else if (key == "fortran_order") {
        if (word("True")) fail(path_, ": Fortran-order npy not supported");
        if (!word("False")) bad("fortran_order is not True or False");
        have_order = true;
      } else if (key == "shape") {
        shape(a.shape);
        have_shape = true;
      } else {
        bad("unknown key '" + key + "'");
      }
      skip_ws();
      if (peek() == ',') ++i_;
      else if (peek() != '}') bad("expected ',' or '}'");
    }
    if (!have_descr || !have_order || !have_shape) fail(path_, ": npy header lacks descr, fortran_order or shape");
  }

 private:
  [[noreturn]] void bad(const std::string& why) const { fail(path_, ": bad npy header (", why, ")"); }
  char peek() const { return i_ < h_.size() ? h_[i_] : '\0'; }
  void skip_ws() {
    while (i_ < h_.size() && (h_[i_] == ' ' || h_[i_] == '\t' || h_[i_] == '\n')) ++i_;
  }
  void expect(char c) {
    skip_ws();
    if (peek() != c) bad(std::string("expected '") + c + "'");
    ++i_;
  }
  bool word(const char* w) {
    skip_ws();
    const size_t n = std::strlen(w);
    if (h_.compare(i_, n, w) != 0) return false;
    i_ += n;
    return true;
  }
  std::string quoted() {
    skip_ws();
    const char q = peek();
    if (q != '\'' && q != '"') bad("expected a quoted string");
    const size_t end = h_.find(q, i_ + 1);
    if (end == std::string::npos) bad("unterminated string");
    std::string s = h_.substr(i_ + 1, end - i_ - 1);
    i_ = end + 1;
    return s;
  }
  void shape(std::vector<int64_t>& out) {
    expect('(');
    while (true) {
      skip_ws();
      if (peek() == ')') break;
      if (!std::isdigit(static_cast<unsigned char>(peek()))) bad("shape holds something that is not a size");
      int64_t d = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        d = d * 10 + (h_[i_++] - '0');
        if (d > kMaxDim) fail(path_, ": npy dimension larger than 2^40");
      }
      if (out.size() == kMaxRank) fail(path_, ": npy array has more than ", kMaxRank, " dimensions");
      out.push_back(d);
      skip_ws();
      if (peek() == ',') ++i_;
      else if (peek() != ')') bad("expected ',' or ')' in shape");
    }
    ++i_;
  }

  const std::string& h_;
  const std::string& path_;
  size_t i_ = 0;
};

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

// Shapes from files are validated by parse_npy (product at most 2^40), so
// this product cannot overflow.
int64_t count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

}  // namespace

std::string npy_bytes(const std::string& descr, const void* data, size_t bytes, const std::vector<int64_t>& shape) {
  std::string out = header_for(descr, shape);
  if (bytes) out.append(static_cast<const char*>(data), bytes);
  return out;
}

int64_t NpyArray::numel() const { return count(shape); }

std::vector<float> NpyArray::as_f32() const {
  std::vector<float> out(numel());
  if (out.empty()) {
    if (dtype != "<f4" && dtype != "<f8") fail(path, ": cannot convert npy dtype ", dtype, " to float32");
    return out;  // no memcpy: an empty vector's data() may be null
  }
  if (dtype == "<f4") {
    std::memcpy(out.data(), data.data(), out.size() * 4);
  } else if (dtype == "<f8") {
    for (size_t i = 0; i < out.size(); ++i) {
      double v;
      std::memcpy(&v, data.data() + 8 * i, 8);
      out[i] = static_cast<float>(v);
    }
  } else {
    fail(path, ": cannot convert npy dtype ", dtype, " to float32");
  }
  return out;
}

std::vector<int64_t> NpyArray::as_i64() const {
  if (dtype != "<i8" && dtype != "<i4" && dtype != "|u1")
    fail(path, ": cannot convert npy dtype ", dtype, " to int64");
  std::vector<int64_t> out(numel());
  for (size_t i = 0; i < out.size(); ++i) {
    if (dtype == "<i8") std::memcpy(&out[i], data.data() + 8 * i, 8);
    else if (dtype == "<i4") { int32_t v; std::memcpy(&v, data.data() + 4 * i, 4); out[i] = v; }
    else out[i] = static_cast<uint8_t>(data[i]);
  }
  return out;
}

std::vector<uint8_t> NpyArray::as_u8() const {
  if (dtype != "|u1") fail(path, ": expected a uint8 npy array, got ", dtype);
  return std::vector<uint8_t>(data.begin(), data.end());
}

NpyArray read_npy(const std::string& path) { return parse_npy(read_file(path), path); }

NpyArray parse_npy(const std::string& bytes, const std::string& path) {
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) fail(path, ": not a .npy file");
  const int major = static_cast<uint8_t>(bytes[6]);
  size_t hlen, off;
  if (major == 1) {
    hlen = static_cast<uint8_t>(bytes[8]) | (static_cast<uint8_t>(bytes[9]) << 8);
    off = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) fail(path, ": truncated .npy header");
    hlen = 0;
    for (int i = 0; i < 4; ++i) hlen |= static_cast<size_t>(static_cast<uint8_t>(bytes[8 + i])) << (8 * i);
    off = 12;
  } else {
    fail(path, ": unsupported .npy format version ", major);
  }
  if (hlen > bytes.size() - off) fail(path, ": truncated .npy header");
  NpyArray a;
  a.path = path;
  HeaderParser(bytes.substr(off, hlen), path).parse(a);
  const size_t item = descr_size(a.dtype, path);
  int64_t n = 1;
  for (int64_t d : a.shape) {
    if (d != 0 && n > kMaxNumel / d) fail(path, ": npy shape has more than 2^40 elements");
    n *= d;
  }
  const size_t avail = bytes.size() - off - hlen;
  if (static_cast<uint64_t>(n) > avail / item) fail(path, ": truncated .npy data (", n, " elements of ", item,
                                                       " bytes declared, ", avail, " bytes present)");
  const size_t need = static_cast<size_t>(n) * item;
  a.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(off + hlen),
                bytes.begin() + static_cast<std::ptrdiff_t>(off + hlen + need));
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
