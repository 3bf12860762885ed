#include "io/torch_save.h"

#include <sys/types.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>

#include "io/atomic_file.h"
#include "io/torch_pickle.h"
#include "io/zip_writer.h"
#include "util/error.h"
#include "util/hash.h"

namespace mmn {

namespace fs = std::filesystem;

// ---------------------------------------------------------------- CRC-32

namespace {

// t[0] is the classic byte-at-a-time table; t[k][b] is the CRC of byte b
// followed by k zero bytes, so eight bytes are folded in with eight lookups.
struct CrcTables {
  uint32_t t[8][256];
};

const CrcTables& crc_tables() {
  static const CrcTables tables = [] {
    CrcTables c{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t v = i;
      for (int k = 0; k < 8; ++k) v = (v & 1) ? 0xEDB88320u ^ (v >> 1) : v >> 1;
      c.t[0][i] = v;
    }
    for (uint32_t i = 0; i < 256; ++i)
      for (int k = 1; k < 8; ++k) c.t[k][i] = (c.t[k - 1][i] >> 8) ^ c.t[0][c.t[k - 1][i] & 0xff];
    return c;
  }();
  return tables;
}

inline uint32_t load_le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

}  // namespace

uint32_t crc32_update(uint32_t crc, const void* data, size_t n) {
  const auto& t = crc_tables().t;
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = ~crc;
  for (; n >= 8; n -= 8, p += 8) {
    uint32_t lo = c ^ load_le32(p), hi = load_le32(p + 4);
    c = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^ t[3][hi & 0xff] ^
        t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
  }
  for (; n > 0; --n, ++p) c = t[0][(c ^ *p) & 0xff] ^ (c >> 8);
  return ~c;
}

namespace {

uint64_t numel(const TensorSpec& s) {
  uint64_t n = 1;
  for (int64_t d : s.shape) n *= static_cast<uint64_t>(d);
  return n;
}

// torch's contiguous strides: each dimension's stride is the product of the
// later sizes, counting a 0 size as 1 (so [2, 0, 3] → [3, 3, 1]).
std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> st(shape.size());
  int64_t s = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    st[d] = s;
    s *= std::max<int64_t>(shape[d], 1);
  }
  return st;
}

// torch.save names the archive's folder after the file, up to its first dot.
// Names that would need escaping fall back to torch's "archive".
std::string archive_prefix(const std::string& path) {
  std::string base = fs::path(path).filename().string();
  std::string stem = base.substr(0, base.find('.'));
  bool plain = !stem.empty() && stem.size() <= 200 && std::all_of(stem.begin(), stem.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
  return (plain ? stem : std::string("archive")) + "/";
}

void check_specs(const std::string& path, const std::vector<TensorSpec>& specs) {
  std::set<std::string_view> seen;
  for (const auto& s : specs) {
    if (s.name.empty()) fail(path, ": a tensor has an empty name");
    if (!seen.insert(s.name).second) fail(path, ": tensor ", s.name, " appears twice");
    if (s.shape.size() > 64) fail(path, ": tensor ", s.name, " has rank ", s.shape.size(), " (at most 64)");
    // Bounds the strides too (a 0 size counts as 1 there), so nothing overflows.
    uint64_t n = 1;
    for (int64_t d : s.shape) {
      if (d < 0) fail(path, ": tensor ", s.name, " has a negative dimension");
      uint64_t m = static_cast<uint64_t>(std::max<int64_t>(d, 1));
      if (n > (uint64_t{1} << 50) / m) fail(path, ": tensor ", s.name, " has an implausibly large shape");
      n *= m;
    }
  }
}

// ---------------------------------------------------------------- pickle

// Emits the protocol-2 opcodes Python's pickler would for the same objects.
// Only objects used more than once (globals, the constant strings) are
// memoized, which keeps the memo tiny however many tensors there are.
class Pickler {
 public:
  std::string out;

  void op(uint8_t c) { out += static_cast<char>(c); }
  uint32_t memoize() {
    uint32_t i = memo_++;
    if (i < 256) {
      op('q');  // BINPUT
      op(static_cast<uint8_t>(i));
    } else {
      op('r');  // LONG_BINPUT
      put32(out, i);
    }
    return i;
  }
  void get(uint32_t i) {
    if (i < 256) {
      op('h');  // BINGET
      op(static_cast<uint8_t>(i));
    } else {
      op('j');  // LONG_BINGET
      put32(out, i);
    }
  }
  void integer(int64_t v) {
    if (v >= 0 && v <= 0xff) {
      op('K');  // BININT1
      op(static_cast<uint8_t>(v));
    } else if (v >= 0 && v <= 0xffff) {
      op('M');  // BININT2
      put16(out, static_cast<uint64_t>(v));
    } else if (v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max()) {
      op('J');  // BININT
      put32(out, static_cast<uint64_t>(v));
    } else {
      // LONG1: the shortest little-endian two's complement form.
      std::string b;
      int64_t x = v;
      for (;;) {
        uint8_t byte = static_cast<uint8_t>(x & 0xff);
        b += static_cast<char>(byte);
        int64_t rest = x >> 8;  // arithmetic
        if ((rest == 0 && !(byte & 0x80)) || (rest == -1 && (byte & 0x80))) break;
        x = rest;
      }
      op(0x8a);
      op(static_cast<uint8_t>(b.size()));
      out += b;
    }
  }
  void str(std::string_view s) {
    op('X');  // BINUNICODE
    put32(out, s.size());
    out += s;
  }
  void global(std::string_view module, std::string_view name) {
    op('c');  // GLOBAL
    out += module;
    out += '\n';
    out += name;
    out += '\n';
  }
  void int_tuple(const std::vector<int64_t>& v) {
    if (v.empty()) return op(')');  // EMPTY_TUPLE
    if (v.size() > 3) op('(');      // MARK
    for (int64_t x : v) integer(x);
    op(v.size() > 3 ? 't' : static_cast<uint8_t>(0x84 + v.size()));  // TUPLE or TUPLE1/2/3
  }
  // Pushes the object named `key`: built by make() and memoized the first
  // time, fetched from the memo after.
  template <class Make>
  void cached(const std::string& key, Make make) {
    auto it = cache_.find(key);
    if (it != cache_.end()) return get(it->second);
    make();
    cache_[key] = memoize();
  }

 private:
  uint32_t memo_ = 0;
  std::map<std::string, uint32_t> cache_;
};

// OrderedDict([(name, _rebuild_tensor_v2(storage_k, 0, shape, stride, False, OrderedDict())), …])
// with persistent ids ('storage', torch.XStorage, "k", 'cpu', numel).
std::string state_dict_pickle(const std::vector<TensorSpec>& specs) {
  Pickler p;
  p.op(0x80);  // PROTO 2
  p.op(2);
  p.cached("OrderedDict", [&] { p.global("collections", "OrderedDict"); });
  p.op(')');
  p.op('R');  // REDUCE: OrderedDict()
  p.memoize();
  constexpr size_t kBatch = 1000;  // Python's SETITEMS batch size
  for (size_t i = 0; i < specs.size(); i += kBatch) {
    size_t end = std::min(specs.size(), i + kBatch);
    if (end - i > 1) p.op('(');
    for (size_t k = i; k < end; ++k) {
      const TensorSpec& s = specs[k];
      p.str(s.name);
      p.cached("rebuild", [&] { p.global("torch._utils", "_rebuild_tensor_v2"); });
      p.op('(');
      p.op('(');
      p.cached("'storage'", [&] { p.str("storage"); });
      p.cached(torch_storage_name(s.dtype), [&] { p.global("torch", torch_storage_name(s.dtype)); });
      p.str(std::to_string(k));
      p.cached("'cpu'", [&] { p.str("cpu"); });
      p.integer(static_cast<int64_t>(numel(s)));
      p.op('t');
      p.op('Q');  // BINPERSID
      p.integer(0);
      p.int_tuple(s.shape);
      p.int_tuple(contiguous_strides(s.shape));
      p.op(0x89);  // NEWFALSE: requires_grad
      p.cached("OrderedDict", [] {});  // memoized above
      p.op(')');
      p.op('R');  // backward hooks: OrderedDict()
      p.op('t');
      p.op('R');
    }
    p.op(end - i > 1 ? 'u' : 's');  // SETITEMS / SETITEM
  }
  p.op('.');
  return p.out;
}

// torch writes a random id; ours is a hash of the specs, so that output is reproducible.
std::string serialization_id(const std::vector<TensorSpec>& specs) {
  uint64_t h = kFnvOffsetBasis;
  for (const auto& s : specs) {
    h = fnv1a(s.name.data(), s.name.size() + 1, h);
    int d = static_cast<int>(s.dtype);
    h = fnv1a(&d, sizeof d, h);
    for (int64_t x : s.shape) h = fnv1a(&x, sizeof x, h);
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020llu", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

// ---------------------------------------------------------------- API

namespace detail {

void write_torch_checkpoint(const std::string& path, const std::vector<TensorSpec>& specs,
                            const std::function<void(const TensorSpec&, std::FILE*)>& fill, uint64_t zip64_from) {
  check_specs(path, specs);
  const std::string pkl = state_dict_pickle(specs);
  const std::string prefix = archive_prefix(path);
  const std::string sid = serialization_id(specs);
  write_stream_atomic(path, [&](std::FILE* f) {
    ZipWriter zip(f, path, zip64_from);
    zip.add(prefix + "data.pkl", pkl);
    zip.add(prefix + "byteorder", "little");
    for (size_t k = 0; k < specs.size(); ++k)
      zip.add_streamed(prefix + "data/" + std::to_string(k), specs[k].nbytes(), specs[k].name,
                       [&](std::FILE* out) { fill(specs[k], out); });
    zip.add(prefix + "version", "3\n");
    zip.add(prefix + ".data/serialization_id", sid);
    zip.finish();
  });
  drop_from_page_cache(path);  // as write_safetensors does
}

}  // namespace detail

void write_torch_checkpoint(const std::string& path, const std::vector<TensorSpec>& specs,
                            const std::function<void(const TensorSpec&, std::FILE*)>& fill) {
  detail::write_torch_checkpoint(path, specs, fill, 0xFFFFFFFFu);
}

std::string torch_shard_name(size_t index, size_t count) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "pytorch_model-%05zu-of-%05zu.bin", index + 1, count);
  return buf;
}

std::vector<std::string> plan_torch_shards(const std::vector<TensorSpec>& specs, uint64_t max_bytes) {
  std::vector<size_t> shard(specs.size());
  size_t k = 0;
  uint64_t used = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    uint64_t n = specs[i].nbytes();
    if (max_bytes && i > 0 && used + n > max_bytes) {
      ++k;
      used = 0;
    }
    shard[i] = k;
    used += n;
  }
  const size_t count = k + 1;
  std::vector<std::string> out;
  out.reserve(specs.size());
  for (size_t s : shard) out.push_back(count == 1 ? "pytorch_model.bin" : torch_shard_name(s, count));
  return out;
}

void write_torch_index(const std::string& dir, const std::vector<TensorSpec>& specs,
                       const std::vector<std::string>& shard_of) {
  const std::string path = (fs::path(dir) / "pytorch_model.bin.index.json").string();
  if (shard_of.size() != specs.size())
    fail(path, ": internal error: ", shard_of.size(), " shard names for ", specs.size(), " tensors");
  uint64_t total = 0;
  nlohmann::json map = nlohmann::json::object();
  for (size_t i = 0; i < specs.size(); ++i) {
    total += specs[i].nbytes();
    map[specs[i].name] = shard_of[i];
  }
  nlohmann::json j = {{"metadata", {{"total_size", total}}}, {"weight_map", map}};
  write_file_atomic(path, j.dump(2) + "\n");
}

std::vector<std::string> write_torch_sharded(const std::string& dir, const std::vector<TensorSpec>& specs,
                                             uint64_t max_bytes,
                                             const std::function<void(const TensorSpec&, std::FILE*)>& fill) {
  std::vector<std::string> shard_of = plan_torch_shards(specs, max_bytes);
  std::vector<std::string> files;
  if (specs.empty()) {
    write_torch_checkpoint((fs::path(dir) / "pytorch_model.bin").string(), specs, fill);
    return {"pytorch_model.bin"};
  }
  // Shards are contiguous runs of specs.
  for (size_t i = 0; i < specs.size();) {
    size_t j = i;
    while (j < specs.size() && shard_of[j] == shard_of[i]) ++j;
    std::vector<TensorSpec> part(specs.begin() + static_cast<std::ptrdiff_t>(i),
                                 specs.begin() + static_cast<std::ptrdiff_t>(j));
    write_torch_checkpoint((fs::path(dir) / shard_of[i]).string(), part, fill);
    files.push_back(shard_of[i]);
    i = j;
  }
  if (files.size() > 1) {
    write_torch_index(dir, specs, shard_of);
    files.push_back("pytorch_model.bin.index.json");
  }
  return files;
}

}  // namespace mmn
