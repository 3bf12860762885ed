#include "io/torch_pickle.h"

#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>

#include "util/error.h"

namespace mmn {

const TorchStorageType kTorchStorageTypes[10] = {
    {"FloatStorage", DType::F32}, {"HalfStorage", DType::F16}, {"BFloat16Storage", DType::BF16},
    {"DoubleStorage", DType::F64}, {"LongStorage", DType::I64}, {"IntStorage", DType::I32},
    {"ShortStorage", DType::I16}, {"CharStorage", DType::I8},   {"ByteStorage", DType::U8},
    {"BoolStorage", DType::BOOL}};

const char* torch_storage_name(DType d) {
  for (const auto& k : kTorchStorageTypes)
    if (k.dtype == d) return k.name;
  fail("internal: dtype ", static_cast<int>(d), " has no torch storage type");
}
namespace {

// Limits (see the header): hostile input must cost bounded time and memory.
constexpr size_t kMaxPickleBytes = size_t{256} << 20;
constexpr size_t kMaxStack = size_t{1} << 20;
constexpr size_t kMaxMemo = size_t{1} << 20;
constexpr size_t kMaxValues = size_t{2} << 20;
constexpr size_t kMaxMarks = 4096;
constexpr size_t kMaxEntries = size_t{1} << 20;
constexpr size_t kMaxRank = 64;
constexpr uint64_t kMaxNumel = uint64_t{1} << 50;
constexpr size_t kMaxGlobalName = 256;

uint64_t le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

// Names taken from the file go into one-line messages: keep them printable.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 200)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > 200) out += "...";
  return out;
}

// ---------------------------------------------------------------- ZIP

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEocdSig = 0x06054b50,
                   kEocd64Sig = 0x06064b50, kLocator64Sig = 0x07064b50;

struct CentralDir {
  uint64_t entries = 0, size = 0, offset = 0;
};

// The end-of-central-directory record sits in the last 22 + 65535 bytes (it
// may be followed by a comment); search backwards for its signature.
size_t find_eocd(const std::string& file, const uint8_t* b, size_t size) {
  if (size < 22) fail(file, ": truncated ZIP archive (", size, " bytes, no end-of-central-directory record)");
  size_t lowest = size > 22 + 65535 ? size - 22 - 65535 : 0;
  for (size_t pos = size - 22;; --pos) {
    if (le(b + pos, 4) == kEocdSig && pos + 22 + le(b + pos + 20, 2) <= size) return pos;
    if (pos == lowest) break;
  }
  fail(file, ": truncated ZIP archive (no end-of-central-directory record)");
}

// ZIP64 (torch.save always writes it): the locator just before the classic
// record points at the 64-bit record, whose counts and offsets win.
CentralDir read_eocd(const std::string& file, const uint8_t* b, size_t size) {
  size_t pos = find_eocd(file, b, size);
  CentralDir cd{le(b + pos + 10, 2), le(b + pos + 12, 4), le(b + pos + 16, 4)};
  bool saturated = cd.entries == 0xFFFF || cd.size == 0xFFFFFFFF || cd.offset == 0xFFFFFFFF;
  if (pos >= 20 && le(b + pos - 20, 4) == kLocator64Sig) {
    uint64_t off = le(b + pos - 20 + 8, 8);
    if (off > pos - 20 || pos - 20 - off < 56 || le(b + off, 4) != kEocd64Sig)
      fail(file, ": corrupt ZIP64 end-of-central-directory record");
    cd = {le(b + off + 32, 8), le(b + off + 40, 8), le(b + off + 48, 8)};
  } else if (saturated) {
    fail(file, ": ZIP64 archive without a ZIP64 end-of-central-directory locator");
  } else if (le(b + pos + 4, 2) != 0 || le(b + pos + 6, 2) != 0) {
    fail(file, ": multi-volume ZIP archives are not supported");
  }
  if (cd.offset > size || cd.size > size - cd.offset)
    fail(file, ": truncated ZIP archive (central directory runs past the end of the file)");
  if (cd.entries > kMaxEntries || cd.entries * 46 > cd.size)
    fail(file, ": corrupt ZIP central directory (", cd.entries, " entries in ", cd.size, " bytes)");
  return cd;
}

struct CentralEntry {
  std::string name;
  uint64_t method = 0, flags = 0, csize = 0, usize = 0, local = 0;
};

// Fields saturated at 0xFFFFFFFF are given in the ZIP64 extra field (id 1), in
// the fixed order uncompressed size, compressed size, local header offset.
void apply_zip64_extra(const std::string& file, CentralEntry& e, const uint8_t* x, size_t n) {
  for (size_t p = 0; p + 4 <= n;) {
    uint64_t id = le(x + p, 2), len = le(x + p + 2, 2);
    if (len > n - p - 4) fail(file, ": entry ", printable(e.name), " has a malformed extra field");
    if (id == 1) {
      size_t q = p + 4, end = q + len;
      for (uint64_t* f : {&e.usize, &e.csize, &e.local}) {
        if (*f != 0xFFFFFFFF) continue;
        if (end - q < 8) fail(file, ": entry ", printable(e.name), " has a short ZIP64 extra field");
        *f = le(x + q, 8);
        q += 8;
      }
    }
    p += 4 + len;
  }
}

CentralEntry read_central_entry(const std::string& file, const uint8_t* b, size_t& p, size_t end) {
  if (end - p < 46 || le(b + p, 4) != kCentralSig) fail(file, ": corrupt ZIP central directory at byte ", p);
  CentralEntry e;
  e.flags = le(b + p + 8, 2);
  e.method = le(b + p + 10, 2);
  e.csize = le(b + p + 20, 4);
  e.usize = le(b + p + 24, 4);
  size_t nlen = le(b + p + 28, 2), xlen = le(b + p + 30, 2), clen = le(b + p + 32, 2);
  e.local = le(b + p + 42, 4);
  if (end - p - 46 < nlen + xlen + clen) fail(file, ": corrupt ZIP central directory at byte ", p);
  e.name.assign(reinterpret_cast<const char*>(b + p + 46), nlen);
  apply_zip64_extra(file, e, b + p + 46 + nlen, xlen);
  p += 46 + nlen + xlen + clen;
  return e;
}

// Checks the entry can be memory-mapped as is and finds its first data byte
// through the local header (whose extra field may differ from the central one).
ZipEntry locate_entry(const std::string& file, const uint8_t* b, size_t size, const CentralEntry& e) {
  std::string name = printable(e.name);
  if (e.flags & 1) fail(file, ": entry ", name, " is encrypted");
  if (e.local > size || size - e.local < 30 || le(b + e.local, 4) != kLocalSig)
    fail(file, ": entry ", name, " has no local header at byte ", e.local, " (truncated or corrupt archive)");
  uint64_t local_method = le(b + e.local + 8, 2);
  if (e.method != 0 || local_method != 0)
    fail(file, ": entry ", name, " is compressed (method ", e.method ? e.method : local_method,
         "); only stored entries can be memory-mapped");
  if (e.csize != e.usize) fail(file, ": entry ", name, " is stored but its sizes disagree");
  size_t nlen = le(b + e.local + 26, 2), xlen = le(b + e.local + 28, 2);
  uint64_t data = e.local + 30 + nlen + xlen;
  if (data > size || e.csize > size - data)
    fail(file, ": entry ", name, " runs past the end of the archive (truncated file?)");
  if (std::string_view(reinterpret_cast<const char*>(b + e.local + 30), nlen) != e.name)
    fail(file, ": entry ", name, ": local header names a different entry");
  return {e.name, data, e.csize};
}

// ---------------------------------------------------------------- pickle values

// Objects the interpreter can build. They live in an arena owned by the
// Unpickler and refer to each other by raw pointer, so a pickle that makes a
// cycle (a list holding itself) neither leaks nor recurses on destruction.
struct Value;

enum class Kind { None, Bool, Int, Float, Str, Tuple, List, Dict, Global, Storage, Tensor };
enum class Callable { OrderedDict, RebuildTensor, RebuildParameter, StorageType };

struct TensorArgs {
  const Value* storage = nullptr;
  int64_t offset = 0;
  std::vector<int64_t> size, stride;
};

struct Value {
  Kind kind = Kind::None;
  int64_t i = 0;                 // Int, Bool
  std::string s;                 // Str; Global's "module.name"; Storage's key
  std::vector<Value*> items;     // Tuple, List; Dict as key, value, key, value, …
  Callable callable{};           // Global
  DType dtype = DType::F32;      // Global (storage type), Storage
  uint64_t numel = 0;            // Storage: elements declared
  uint64_t offset = 0;           // Storage: byte offset of its entry in the archive
  std::unique_ptr<TensorArgs> tensor;  // Tensor
};

// The archive's entries by name, and the "<prefix>/" its storages live under.
struct Archive {
  std::string file;
  std::string prefix;
  std::map<std::string, ZipEntry> entries;
};

class Unpickler {
 public:
  Unpickler(const Archive& ar, const uint8_t* p, size_t n) : ar_(ar), p_(p), n_(n) {
    pkl_ = ar.prefix + "data.pkl";
  }
  Value* run();

 private:
  [[noreturn]] void bad(const std::string& what) const {
    fail(ar_.file, ": ", pkl_, ": ", what, " at byte ", op_at_);
  }
  const uint8_t* take(size_t k) {
    if (n_ - pos_ < k) fail(ar_.file, ": ", pkl_, " ends inside an opcode at byte ", op_at_, " (truncated pickle)");
    const uint8_t* q = p_ + pos_;
    pos_ += k;
    return q;
  }
  Value* make(Kind k) {
    if (arena_.size() >= kMaxValues) bad("too many pickle objects");
    arena_.emplace_back();
    arena_.back().kind = k;
    return &arena_.back();
  }
  void push(Value* v) {
    if (stack_.size() >= kMaxStack) bad("pickle stack too deep");
    stack_.push_back(v);
  }
  Value* pop() {
    if (stack_.size() <= floor()) bad("pickle stack underflow");
    Value* v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Value* top() {
    if (stack_.size() <= floor()) bad("pickle stack underflow");
    return stack_.back();
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<Value*> pop_mark() {
    if (marks_.empty()) bad("pickle has no MARK to pop to");
    std::vector<Value*> items(stack_.begin() + static_cast<std::ptrdiff_t>(marks_.back()), stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  Value* make_int(int64_t v) {
    Value* x = make(Kind::Int);
    x->i = v;
    return x;
  }
  Value* make_str(size_t len) {
    const uint8_t* q = take(len);
    Value* x = make(Kind::Str);
    x->s.assign(reinterpret_cast<const char*>(q), len);
    return x;
  }
  Value* make_seq(Kind k, std::vector<Value*> items) {
    Value* x = make(k);
    x->items = std::move(items);
    return x;
  }
  std::string read_line();
  void memo_put(uint64_t idx);
  Value* memo_get(uint64_t idx);
  Value* global(const std::string& module, const std::string& name);
  Value* persistent_load(const Value* pid);
  Value* reduce(const Value* fn, const Value* args);
  Value* rebuild_tensor(const Value* args);
  void build(Value* obj);
  void set_items(const std::vector<Value*>& kv);
  bool step();

  const Archive& ar_;
  std::string pkl_;
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0, op_at_ = 0;
  std::deque<Value> arena_;
  std::vector<Value*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Value*> memo_;
  Value* result_ = nullptr;
};

std::string Unpickler::read_line() {
  size_t start = pos_;
  while (pos_ < n_ && p_[pos_] != '\n') {
    if (pos_ - start > kMaxGlobalName) bad("GLOBAL name too long");
    ++pos_;
  }
  if (pos_ == n_) fail(ar_.file, ": ", pkl_, " ends inside GLOBAL at byte ", op_at_, " (truncated pickle)");
  std::string line(reinterpret_cast<const char*>(p_ + start), pos_ - start);
  ++pos_;
  return line;
}

void Unpickler::memo_put(uint64_t idx) {
  if (memo_.size() >= kMaxMemo && !memo_.count(idx)) bad("pickle memo too large");
  memo_[idx] = top();
}

Value* Unpickler::memo_get(uint64_t idx) {
  auto it = memo_.find(idx);
  if (it == memo_.end()) bad("pickle reads memo slot " + std::to_string(idx) + ", which was never written");
  return it->second;
}

// The allow-list: nothing outside it is ever looked up, let alone called.
Value* Unpickler::global(const std::string& module, const std::string& name) {
  Value* g = make(Kind::Global);
  g->s = module + "." + name;
  if (module == "collections" && name == "OrderedDict") {
    g->callable = Callable::OrderedDict;
  } else if (module == "torch._utils" && name == "_rebuild_tensor_v2") {
    g->callable = Callable::RebuildTensor;
  } else if (module == "torch._utils" && name == "_rebuild_parameter") {
    g->callable = Callable::RebuildParameter;
  } else {
    const TorchStorageType* st = nullptr;
    for (auto& k : kTorchStorageTypes)
      if (module == "torch" && name == k.name) st = &k;
    if (!st) fail(ar_.file, ": pickle refers to global ", printable(g->s), ", which is not allowed");
    g->callable = Callable::StorageType;
    g->dtype = st->dtype;
  }
  return g;
}

// ('storage', torch.XStorage, key, location, numel) → the bytes of data/<key>.
Value* Unpickler::persistent_load(const Value* pid) {
  const auto& t = pid->items;
  if (pid->kind != Kind::Tuple || t.size() != 5 || t[0]->kind != Kind::Str || t[0]->s != "storage" ||
      t[1]->kind != Kind::Global || t[1]->callable != Callable::StorageType || t[2]->kind != Kind::Str ||
      t[4]->kind != Kind::Int || t[4]->i < 0)
    bad("persistent id is not ('storage', type, key, location, numel)");
  const std::string key = printable(t[2]->s);
  auto it = ar_.entries.find(ar_.prefix + "data/" + t[2]->s);
  if (it == ar_.entries.end())
    fail(ar_.file, ": storage ", key, " (entry ", printable(ar_.prefix), "data/", key, ") is missing from the archive");
  uint64_t numel = static_cast<uint64_t>(t[4]->i);
  DType dt = t[1]->dtype;
  if (numel > kMaxNumel || numel * dtype_size(dt) > it->second.size)
    fail(ar_.file, ": storage ", key, " is shorter than it claims: ", it->second.size, " bytes for ", numel, " ",
         dtype_name(dt), " elements of ", dtype_size(dt), " bytes");
  Value* s = make(Kind::Storage);
  s->s = t[2]->s;
  s->dtype = dt;
  s->numel = numel;
  s->offset = it->second.data_offset;
  return s;
}

// Checks the argument types only: the tensor's name (needed for a useful
// message) is known once it is stored in the state dict, so layout and
// bounds are checked there.
Value* Unpickler::rebuild_tensor(const Value* args) {
  const auto& a = args->items;
  auto ints = [&](const Value* v, std::vector<int64_t>& out) {
    if (v->kind != Kind::Tuple || v->items.size() > kMaxRank) return false;
    for (const Value* d : v->items) {
      if (d->kind != Kind::Int) return false;
      out.push_back(d->i);
    }
    return true;
  };
  auto t = std::make_unique<TensorArgs>();
  if (a.size() < 6 || a.size() > 7 || a[0]->kind != Kind::Storage || a[1]->kind != Kind::Int ||
      !ints(a[2], t->size) || !ints(a[3], t->stride) || t->size.size() != t->stride.size())
    bad("_rebuild_tensor_v2 called with malformed arguments");
  t->storage = a[0];
  t->offset = a[1]->i;
  Value* x = make(Kind::Tensor);
  x->tensor = std::move(t);
  return x;
}

Value* Unpickler::reduce(const Value* fn, const Value* args) {
  if (fn->kind != Kind::Global) bad("REDUCE on something that is not an allowed global");
  if (args->kind != Kind::Tuple) bad("REDUCE arguments are not a tuple");
  switch (fn->callable) {
    case Callable::OrderedDict:
      if (!args->items.empty()) bad("OrderedDict called with arguments");
      return make(Kind::Dict);
    case Callable::RebuildTensor:
      return rebuild_tensor(args);
    case Callable::RebuildParameter:
      // _rebuild_parameter(data, requires_grad, backward_hooks): the data is the tensor.
      if (args->items.size() != 3 || args->items[0]->kind != Kind::Tensor)
        bad("_rebuild_parameter called with malformed arguments");
      return args->items[0];
    case Callable::StorageType:
      break;
  }
  fail(ar_.file, ": pickle calls ", printable(fn->s), ", which is not allowed");
}

// BUILD sets Python state (an OrderedDict's _metadata, a tensor's attributes);
// none of it changes which bytes a tensor holds, so it is dropped.
void Unpickler::build(Value* obj) {
  if (obj->kind != Kind::Dict && obj->kind != Kind::Tensor) bad("BUILD on an object that is not a dict or tensor");
}

void Unpickler::set_items(const std::vector<Value*>& kv) {
  Value* d = top();
  if (d->kind != Kind::Dict) bad("SETITEM(S) on something that is not a dict");
  if (kv.size() % 2) bad("SETITEMS with an odd number of items");
  d->items.insert(d->items.end(), kv.begin(), kv.end());
}

// Executes one opcode; false after STOP.
bool Unpickler::step() {
  op_at_ = pos_;
  uint8_t op = *take(1);
  switch (op) {
    case 0x80: take(1); break;                       // PROTO
    case 0x95: take(8); break;                       // FRAME: framing only
    case '}': push(make(Kind::Dict)); break;         // EMPTY_DICT
    case ')': push(make(Kind::Tuple)); break;        // EMPTY_TUPLE
    case ']': push(make(Kind::List)); break;         // EMPTY_LIST
    case '(':                                        // MARK
      if (marks_.size() >= kMaxMarks) bad("pickle MARKs nested too deeply");
      marks_.push_back(stack_.size());
      break;
    case 't': push(make_seq(Kind::Tuple, pop_mark())); break;  // TUPLE
    case 'l': push(make_seq(Kind::List, pop_mark())); break;   // LIST
    case 'd': {                                                 // DICT
      auto kv = pop_mark();
      if (kv.size() % 2) bad("DICT with an odd number of items");
      push(make_seq(Kind::Dict, std::move(kv)));
      break;
    }
    case 0x85: case 0x86: case 0x87: {  // TUPLE1/2/3
      std::vector<Value*> items(op - 0x84);
      for (size_t k = items.size(); k-- > 0;) items[k] = pop();
      push(make_seq(Kind::Tuple, std::move(items)));
      break;
    }
    case 'c': {  // GLOBAL
      std::string module = read_line();
      std::string name = read_line();
      push(global(module, name));
      break;
    }
    case 0x93: {  // STACK_GLOBAL
      Value* name = pop();
      Value* module = pop();
      if (name->kind != Kind::Str || module->kind != Kind::Str) bad("STACK_GLOBAL on non-strings");
      push(global(module->s, name->s));
      break;
    }
    case 'q': memo_put(*take(1)); break;             // BINPUT
    case 'r': memo_put(le(take(4), 4)); break;       // LONG_BINPUT
    case 0x94: memo_put(memo_.size()); break;        // MEMOIZE
    case 'h': push(memo_get(*take(1))); break;       // BINGET
    case 'j': push(memo_get(le(take(4), 4))); break; // LONG_BINGET
    case 'J': push(make_int(static_cast<int32_t>(le(take(4), 4)))); break;  // BININT
    case 'K': push(make_int(*take(1))); break;                              // BININT1
    case 'M': push(make_int(static_cast<int64_t>(le(take(2), 2)))); break;  // BININT2
    case 0x8a: {  // LONG1: n-byte little-endian two's complement
      size_t len = *take(1);
      if (len > 8) bad("LONG1 wider than 8 bytes");
      uint64_t v = le(take(len), static_cast<int>(len));
      if (len > 0 && len < 8 && (v >> (8 * len - 1)) & 1) v |= ~uint64_t{0} << (8 * len);
      push(make_int(static_cast<int64_t>(v)));
      break;
    }
    case 'X': case 'T': push(make_str(le(take(4), 4))); break;  // BINUNICODE, BINSTRING
    case 0x8c: case 'U': push(make_str(*take(1))); break;       // SHORT_BINUNICODE, SHORT_BINSTRING
    case 0x88: case 0x89: {                                     // NEWTRUE, NEWFALSE
      Value* b = make(Kind::Bool);
      b->i = op == 0x88;
      push(b);
      break;
    }
    case 'N': push(make(Kind::None)); break;   // NONE
    case 'G': take(8); push(make(Kind::Float)); break;  // BINFLOAT: the value is never needed
    case 'Q': push(persistent_load(pop())); break;      // BINPERSID
    case 'R': {                                         // REDUCE
      Value* args = pop();
      Value* fn = pop();
      push(reduce(fn, args));
      break;
    }
    case 'b': pop(); build(top()); break;  // BUILD
    case 's': {                            // SETITEM
      Value* v = pop();
      Value* k = pop();
      set_items({k, v});
      break;
    }
    case 'u': set_items(pop_mark()); break;  // SETITEMS
    case 'a': case 'e': {                    // APPEND, APPENDS
      std::vector<Value*> items = op == 'a' ? std::vector<Value*>{pop()} : pop_mark();
      Value* l = top();
      if (l->kind != Kind::List) bad("APPEND on something that is not a list");
      l->items.insert(l->items.end(), items.begin(), items.end());
      break;
    }
    case '0': pop(); break;          // POP
    case '1': pop_mark(); break;     // POP_MARK
    case '2': push(top()); break;    // DUP
    case '.':                        // STOP
      result_ = pop();
      return false;
    default: {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02x", op);
      fail(ar_.file, ": unsupported pickle opcode ", hex, " at byte ", op_at_, " of ", printable(pkl_));
    }
  }
  return true;
}

Value* Unpickler::run() {
  while (step()) {
  }
  return result_;
}

// ---------------------------------------------------------------- state dict

bool contiguous(const TensorArgs& t) {
  int64_t expected = 1;
  for (size_t d = t.size.size(); d-- > 0;) {
    if (t.size[d] != 1 && t.stride[d] != expected) return false;
    expected *= t.size[d];
  }
  return true;
}

TorchTensorEntry to_entry(const std::string& file, const std::string& name, const TensorArgs& t) {
  const Value& st = *t.storage;
  TorchTensorEntry e;
  e.name = name;
  e.dtype = st.dtype;
  uint64_t numel = 1;
  for (int64_t d : t.size) {
    if (d < 0) fail(file, ": tensor ", printable(name), " has a negative size");
    if (d > 0 && numel > kMaxNumel / static_cast<uint64_t>(d))
      fail(file, ": tensor ", printable(name), " shape is implausibly large");
    numel *= static_cast<uint64_t>(d);
  }
  e.shape = t.size;
  if (numel > 0 && !contiguous(t)) fail(file, ": tensor ", printable(name), " is not contiguous (strided views are not supported)");
  if (t.offset < 0 || static_cast<uint64_t>(t.offset) > st.numel || numel > st.numel - static_cast<uint64_t>(t.offset))
    fail(file, ": tensor ", printable(name), " is not within its storage (elements [", t.offset, ", ",
         static_cast<uint64_t>(t.offset) + numel, ") of storage ", printable(st.s), ", which has ", st.numel, ")");
  size_t es = dtype_size(st.dtype);
  e.offset = st.offset + static_cast<uint64_t>(t.offset) * es;
  e.nbytes = numel * es;
  return e;
}

std::vector<TorchTensorEntry> state_dict(const std::string& file, const std::string& pkl, const Value* root) {
  if (!root || root->kind != Kind::Dict) fail(file, ": ", pkl, " does not hold a state dict (a dict of tensors)");
  std::vector<TorchTensorEntry> out;
  std::set<std::string> seen;
  for (size_t k = 0; k + 1 < root->items.size(); k += 2) {
    const Value* key = root->items[k];
    const Value* v = root->items[k + 1];
    if (key->kind != Kind::Str) fail(file, ": ", pkl, " has a state-dict key that is not a string");
    if (v->kind != Kind::Tensor) fail(file, ": state-dict entry ", printable(key->s), " is not a tensor");
    if (!seen.insert(key->s).second) fail(file, ": tensor ", printable(key->s), " appears twice in ", pkl);
    out.push_back(to_entry(file, key->s, *v->tensor));
  }
  return out;
}

Archive open_archive(const std::string& file, const uint8_t* b, size_t size) {
  Archive ar;
  ar.file = file;
  for (auto& z : read_zip_directory(file, b, size)) ar.entries.emplace(z.name, z);
  // torch.save names the archive's root folder after the file (or "archive"):
  // find it from the one top-level data.pkl.
  for (auto& [name, z] : ar.entries) {
    size_t slash = name.find('/');
    if (slash == std::string::npos || name.substr(slash + 1) != "data.pkl") continue;
    if (!ar.prefix.empty()) fail(file, ": archive holds more than one data.pkl");
    ar.prefix = name.substr(0, slash + 1);
  }
  if (ar.prefix.empty()) fail(file, ": ZIP archive has no <name>/data.pkl entry (not a torch.save file)");
  auto bo = ar.entries.find(ar.prefix + "byteorder");
  if (bo != ar.entries.end() &&
      std::string_view(reinterpret_cast<const char*>(b + bo->second.data_offset), bo->second.size) != "little")
    fail(file, ": checkpoint is not little-endian (byteorder entry); only little-endian storages are supported");
  return ar;
}

}  // namespace

std::vector<ZipEntry> read_zip_directory(const std::string& file, const uint8_t* b, size_t size) {
  CentralDir cd = read_eocd(file, b, size);
  std::vector<ZipEntry> out;
  std::set<std::string> names;
  size_t p = cd.offset, end = cd.offset + cd.size;
  for (uint64_t k = 0; k < cd.entries; ++k) {
    CentralEntry e = read_central_entry(file, b, p, end);
    if (!names.insert(e.name).second) fail(file, ": ZIP entry ", printable(e.name), " appears twice");
    out.push_back(locate_entry(file, b, size, e));
  }
  return out;
}

bool looks_like_torch_file(const uint8_t* b, size_t size) { return size >= 4 && le(b, 4) == kLocalSig; }

std::vector<TorchTensorEntry> parse_torch_checkpoint(const std::string& file, const uint8_t* b, size_t size) {
  if (size == 0) fail(file, ": empty file");
  if (!looks_like_torch_file(b, size)) {
    // Before 1.6, torch.save wrote consecutive pickles, starting with PROTO (0x80).
    if (b[0] == 0x80)
      fail(file, ": not a ZIP archive: legacy torch.save format is not supported; re-save with torch ≥ 1.6");
    fail(file, ": not a ZIP archive (truncated, or not a torch.save file)");
  }
  Archive ar = open_archive(file, b, size);
  const ZipEntry& pkl = ar.entries.at(ar.prefix + "data.pkl");
  if (pkl.size > kMaxPickleBytes) fail(file, ": ", printable(pkl.name), " is larger than ", kMaxPickleBytes, " bytes");
  Unpickler u(ar, b + pkl.data_offset, pkl.size);
  return state_dict(file, printable(pkl.name), u.run());
}

}  // namespace mmn
