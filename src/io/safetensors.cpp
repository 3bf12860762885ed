#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "io/atomic_file.h"
#include "io/json_file.h"
#include "io/torch_pickle.h"
#include "util/error.h"

namespace mmn {

namespace fs = std::filesystem;
using nlohmann::json;

const char* dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F64: return "F64";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::I16: return "I16";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::BOOL: return "BOOL";
  }
  return "?";
}

DType parse_dtype(const std::string& s, const std::string& file) {
  static const std::pair<const char*, DType> table[] = {
      {"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16}, {"F64", DType::F64},
      {"I64", DType::I64}, {"I32", DType::I32}, {"I16", DType::I16},   {"I8", DType::I8},
      {"U8", DType::U8},   {"BOOL", DType::BOOL}};
  for (auto& [name, d] : table)
    if (s == name) return d;
  fail(file, ": unsupported tensor dtype '", s, "'");
}

int64_t TensorRef::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

static std::string shape_to_str(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

std::string TensorRef::shape_str() const { return shape_to_str(shape); }

size_t TensorSpec::nbytes() const {
  size_t n = dtype_size(dtype);
  for (auto d : shape) n *= static_cast<size_t>(d);
  return n;
}

// Read-only private mapping of a whole file.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) : path_(path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(path, ": cannot open: ", std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      fail(path, ": not a regular file");
    }
    size_ = static_cast<size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
      if (p == MAP_FAILED) {
        int e = errno;
        ::close(fd);
        fail(path, ": mmap failed: ", std::strerror(e));
      }
      data_ = static_cast<const uint8_t*>(p);
      // Decode streams every weight once per token, so how the mapping is
      // translated matters: read in through this mapping with MADV_HUGEPAGE,
      // the page cache holds the file in 2 MiB folios mapped whole, and a 7B
      // checkpoint streamed at 40–44 GB/s here instead of 19–24 GB/s without
      // it. Only a hint: without transparent huge pages for files it fails
      // and nothing changes. (Pages already cached keep their folio size.)
      ::madvise(p, size_, MADV_HUGEPAGE);
    }
    ::close(fd);
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

SafetensorsHeader parse_safetensors_header(const std::string& file, const uint8_t* bytes, size_t size) {
  if (size < 8) fail(file, ": truncated safetensors file (", size, " bytes, no header length)");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(bytes[i]) << (8 * i);
  if (n > size - 8) fail(file, ": header length ", n, " runs past the end of the file (", size, " bytes)");
  if (n > (uint64_t{100} << 20)) fail(file, ": header length ", n, " is implausibly large");
  std::string_view text(reinterpret_cast<const char*>(bytes + 8), n);
  check_json_depth(text, file + ": header");
  json h;
  try {
    h = json::parse(text);
  } catch (const json::parse_error& e) {
    std::string why = e.what();
    if (why.find("UTF-8") != std::string::npos || why.find("utf-8") != std::string::npos)
      fail(file, ": header is not valid UTF-8");
    fail(file, ": header is not valid JSON");
  } catch (const json::exception&) {
    fail(file, ": header is not valid JSON (a number is out of range)");  // out_of_range.406: 1e999
  }
  if (!h.is_object()) fail(file, ": header is not a JSON object");
  SafetensorsHeader out;
  out.data_start = 8 + n;
  const uint64_t data_size = size - out.data_start;
  for (auto& [name, v] : h.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) fail(file, ": __metadata__ is not an object");
      for (auto& [k, mv] : v.items())
        if (mv.is_string()) out.metadata[k] = mv.get<std::string>();
      continue;
    }
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      fail(file, ": tensor ", name, " lacks dtype/shape/data_offsets");
    const json& dt = v["dtype"];
    const json& sh = v["shape"];
    const json& off = v["data_offsets"];
    if (!dt.is_string()) fail(file, ": tensor ", name, " has a non-string dtype");
    SafetensorsHeader::Entry e;
    e.name = name;
    e.dtype = parse_dtype(dt.get<std::string>(), file + ": tensor " + name);
    if (!sh.is_array()) fail(file, ": tensor ", name, " has a non-array shape");
    uint64_t numel = 1;
    for (auto& d : sh) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) fail(file, ": tensor ", name, " has a bad shape entry");
      int64_t dv = d.get<int64_t>();
      if (dv > 0 && numel > (uint64_t{1} << 50) / static_cast<uint64_t>(dv))
        fail(file, ": tensor ", name, " shape is implausibly large");
      numel *= static_cast<uint64_t>(dv);
      e.shape.push_back(dv);
    }
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail(file, ": tensor ", name, " has malformed data_offsets");
    e.begin = off[0].get<uint64_t>();
    e.end = off[1].get<uint64_t>();
    if (e.begin > e.end || e.end > data_size)
      fail(file, ": tensor ", name, " data_offsets [", e.begin, ", ", e.end, "] out of range (data section is ",
           data_size, " bytes)");
    if (e.end - e.begin != numel * dtype_size(e.dtype))
      fail(file, ": tensor ", name, " has ", e.end - e.begin, " bytes but dtype ", dtype_name(e.dtype), " and shape ",
           shape_to_str(e.shape), " need ", numel * dtype_size(e.dtype));
    out.entries.push_back(std::move(e));
  }
  // Tensors must not share bytes. Empty tensors own none, so they are left
  // out: compared with their neighbour in begin order, one lying inside a
  // larger tensor would hide an overlap between that tensor and the next.
  std::vector<const SafetensorsHeader::Entry*> order;
  for (auto& e : out.entries)
    if (e.begin != e.end) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < order.size(); ++i)
    if (order[i]->begin < order[i - 1]->end)
      fail(file, ": tensors ", order[i - 1]->name, " and ", order[i]->name, " have overlapping data_offsets");
  return out;
}

namespace {

// The files that make up a checkpoint and the tensors its index promises.
struct CheckpointLayout {
  std::vector<std::string> files;
  std::map<std::string, std::string> expected_file;  // tensor → shard (sharded only)
  std::string index_name;                            // for messages
  std::string extra;                                 // mm_projector.bin beside a .bin checkpoint
};

// An index (model.safetensors.index.json or pytorch_model.bin.index.json):
// weight_map lists each tensor's shard, a plain file name inside `dir`.
void read_index(const fs::path& dir, const fs::path& index, CheckpointLayout& out) {
  const json j = parse_json(read_file(index.string()), index.string());
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    fail(index.string(), ": missing \"weight_map\" object");
  std::set<std::string> seen;
  for (auto& [name, f] : j["weight_map"].items()) {
    if (!f.is_string()) fail(index.string(), ": weight_map entry ", name, " is not a file name");
    std::string shard = f.get<std::string>();
    if (shard.find('/') != std::string::npos || shard.find("..") != std::string::npos)
      fail(index.string(), ": weight_map entry ", name, " names a path outside the checkpoint");
    std::string full = (dir / shard).string();
    out.expected_file[name] = full;
    if (seen.insert(full).second) out.files.push_back(full);
  }
  if (out.files.empty()) fail(index.string(), ": weight_map is empty");
  out.index_name = index.filename().string();
}

// Safetensors wins over pickled PyTorch files when a directory holds both.
CheckpointLayout find_layout(const std::string& path) {
  CheckpointLayout out;
  std::error_code ec;
  if (!fs::is_directory(path, ec)) {
    if (!fs::exists(path, ec)) fail(path, ": no such checkpoint");
    out.files.push_back(path);
    return out;
  }
  const fs::path dir(path);
  for (const char* stem : {"model.safetensors", "pytorch_model.bin"}) {
    if (fs::exists(dir / stem)) {
      out.files.push_back((dir / stem).string());
    } else if (fs::exists(dir / (std::string(stem) + ".index.json"))) {
      read_index(dir, dir / (std::string(stem) + ".index.json"), out);
    } else {
      continue;
    }
    // LLaVA repositories ship the projector separately too (for training).
    if (std::string(stem) == "pytorch_model.bin" && fs::exists(dir / "mm_projector.bin"))
      out.extra = (dir / "mm_projector.bin").string();
    return out;
  }
  fail(path, ": no model.safetensors, model.safetensors.index.json, pytorch_model.bin or "
       "pytorch_model.bin.index.json");
}

// A .bin/.pt/.pth file, or any non-.safetensors file that starts like a ZIP.
bool is_torch_file(const std::string& path, const MappedFile& m) {
  std::string ext = fs::path(path).extension().string();
  if (ext == ".safetensors") return false;
  if (ext == ".bin" || ext == ".pt" || ext == ".pth") return true;
  return looks_like_torch_file(m.data(), m.size());
}

// The tensors of one mapped file, whichever format it is in.
std::vector<TensorRef> file_tensors(const std::string& f, const MappedFile& m,
                                    std::map<std::string, std::string>* metadata) {
  std::vector<TensorRef> out;
  auto add = [&](const std::string& name, DType dt, const std::vector<int64_t>& shape, uint64_t off, uint64_t n) {
    TensorRef r;
    r.name = name;
    r.file = f;
    r.dtype = dt;
    r.shape = shape;
    r.data = m.data() + off;
    r.nbytes = n;
    r.file_offset = off;
    out.push_back(std::move(r));
  };
  if (is_torch_file(f, m)) {
    for (auto& e : parse_torch_checkpoint(f, m.data(), m.size())) add(e.name, e.dtype, e.shape, e.offset, e.nbytes);
  } else {
    SafetensorsHeader h = parse_safetensors_header(f, m.data(), m.size());
    if (metadata) *metadata = h.metadata;
    for (auto& e : h.entries) add(e.name, e.dtype, e.shape, h.data_start + e.begin, e.end - e.begin);
  }
  return out;
}

}  // namespace

SafetensorsCheckpoint SafetensorsCheckpoint::open(const std::string& path) {
  SafetensorsCheckpoint ck;
  ck.path_ = path;
  CheckpointLayout layout = find_layout(path);
  auto add_file = [&](const std::string& f, std::shared_ptr<MappedFile> m, std::vector<TensorRef> refs) {
    for (auto& r : refs) {
      if (r.nbytes > 0 && reinterpret_cast<uintptr_t>(r.data) % dtype_size(r.dtype) != 0) {
        auto copy = std::make_shared<std::vector<uint64_t>>((r.nbytes + 7) / 8);
        std::memcpy(copy->data(), r.data, r.nbytes);
        r.data = copy->data();
        ck.copies_.push_back(std::move(copy));
      }
      if (ck.tensors_.count(r.name)) fail(f, ": tensor ", r.name, " also appears in ", ck.tensors_[r.name].file);
      std::string name = r.name;
      ck.tensors_.emplace(name, std::move(r));
    }
    ck.maps_.push_back(std::move(m));
  };
  for (const auto& f : layout.files) {
    auto m = std::make_shared<MappedFile>(f);
    auto refs = file_tensors(f, *m, ck.maps_.empty() ? &ck.metadata_ : nullptr);
    add_file(f, std::move(m), std::move(refs));
  }
  for (auto& [name, f] : layout.expected_file) {
    auto it = ck.tensors_.find(name);
    if (it == ck.tensors_.end()) fail(f, ": missing tensor ", name, " (listed in ", layout.index_name, ")");
  }
  if (!layout.extra.empty()) {
    // Usually every projector tensor is in the main checkpoint too (then the
    // file is redundant and skipped); otherwise it supplies them, and a
    // tensor in both places is the usual "also appears" error.
    auto m = std::make_shared<MappedFile>(layout.extra);
    auto refs = file_tensors(layout.extra, *m, nullptr);
    bool redundant = std::all_of(refs.begin(), refs.end(), [&](const TensorRef& r) { return ck.tensors_.count(r.name); });
    if (!redundant) add_file(layout.extra, std::move(m), std::move(refs));
  }
  return ck;
}

const TensorRef& SafetensorsCheckpoint::get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail(path_, ": missing tensor ", name);
  return it->second;
}

const TensorRef& SafetensorsCheckpoint::get(const std::string& name, const std::vector<int64_t>& shape) const {
  const TensorRef& r = get(name);
  if (r.shape != shape)
    fail(r.file, ": tensor ", name, " has shape ", r.shape_str(), ", expected ", shape_to_str(shape),
         " from config.json");
  return r;
}

std::vector<std::pair<std::string, std::vector<std::string>>> SafetensorsCheckpoint::files() const {
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  for (auto& m : maps_) {
    std::vector<std::string> names;
    for (auto& [n, r] : tensors_)
      if (r.file == m->path()) names.push_back(n);
    out.emplace_back(m->path(), std::move(names));
  }
  return out;
}

size_t SafetensorsCheckpoint::total_bytes() const {
  size_t n = 0;
  for (auto& m : maps_) n += m->size();
  return n;
}

void SafetensorsCheckpoint::release_pages(const TensorRef& t) const {
  const auto* p = static_cast<const uint8_t*>(t.data);
  for (const auto& m : maps_) {
    if (!m->data() || p < m->data() || p + t.nbytes > m->data() + m->size()) continue;
    const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    // Only whole pages inside the tensor: its neighbours may still be in use.
    const uintptr_t lo = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
    const uintptr_t hi = (reinterpret_cast<uintptr_t>(p) + t.nbytes) / page * page;
    if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
    return;
  }
}

void write_safetensors(const std::string& path, const std::vector<TensorSpec>& specs,
                       const std::map<std::string, std::string>& metadata,
                       const std::function<void(const TensorSpec&, std::FILE*)>& fill) {
  // Header keys are written in the order given; data follows in the same order.
  uint64_t off = 0;
  std::string body = "{";
  bool first = true;
  auto add = [&](const std::string& k, const json& v) {
    body += (first ? "" : ",") + json(k).dump() + ":" + v.dump();
    first = false;
  };
  if (!metadata.empty()) add("__metadata__", json(metadata));
  for (auto& s : specs) {
    uint64_t n = s.nbytes();
    add(s.name, json{{"dtype", dtype_name(s.dtype)}, {"shape", s.shape}, {"data_offsets", {off, off + n}}});
    off += n;
  }
  body += "}";
  while ((8 + body.size()) % 8) body += ' ';
  write_stream_atomic(path, [&](std::FILE* f) {
    uint8_t len[8];
    uint64_t n = body.size();
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
    if (std::fwrite(len, 1, 8, f) != 8 || std::fwrite(body.data(), 1, body.size(), f) != body.size())
      fail(path, ": write failed");
    for (auto& s : specs) {
      long before = std::ftell(f);
      fill(s, f);
      long after = std::ftell(f);
      if (after - before != static_cast<long>(s.nbytes()))
        fail(path, ": internal error: tensor ", s.name, " wrote ", after - before, " bytes, expected ", s.nbytes());
    }
  });
  // A file a process has written stays cached in the small folios of the
  // write path, and a mapping of it streams at half the rate of one read in
  // through the mapping (see MappedFile). The pages are clean (synced), so
  // dropping them costs one read from disk at the next load.
  drop_from_page_cache(path);
}

}  // namespace mmn
