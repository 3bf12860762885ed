// Writing torch.save checkpoints (io/torch_save.h): what the writer produces
// reads back through the project's own reader byte for byte, and, checked
// independently with Python's zipfile/zlib/pickle (when python3 is present),
// has correct CRCs, stored entries, a pickle that pickletools reads and that
// unpickles (with stand-ins for the torch globals) to the expected state
// dict. Sharding follows transformers' naming and index; failures leave
// nothing behind.
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "io/torch_pickle.h"
#include "io/torch_save.h"
#include "test_util.h"
#include "util/error.h"

namespace fs = std::filesystem;
using mmn::DType;
using mmn::SafetensorsCheckpoint;
using mmn::TensorSpec;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The bytes tensor `name` holds in these tests: a hash of its name and the
// byte's index (0/1 for BOOL).
std::string tensor_bytes(const TensorSpec& s) {
  std::string b(s.nbytes(), '\0');
  uint64_t h = 1469598103934665603ull;
  for (char c : s.name) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  for (size_t i = 0; i < b.size(); ++i) {
    uint64_t x = (h + i) * 0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
    b[i] = static_cast<char>(s.dtype == DType::BOOL ? (x >> 7) & 1 : x >> 11);
  }
  return b;
}

// A fill that writes tensor_bytes in uneven chunks (and checks ftell works).
void fill_pattern(const TensorSpec& s, std::FILE* out) {
  EXPECT_EQ(std::ftell(out), 0) << s.name;
  std::string b = tensor_bytes(s);
  size_t at = 0, chunk = 1;
  while (at < b.size()) {
    size_t n = std::min(chunk, b.size() - at);
    ASSERT_EQ(std::fwrite(b.data() + at, 1, n, out), n);
    at += n;
    chunk = chunk * 3 + 7;
  }
  EXPECT_EQ(std::ftell(out), static_cast<long>(b.size())) << s.name;
}

// Every dtype, ranks 0 to 3, empty tensors, dimensions that need each
// pickle integer width (BININT1/2, BININT, LONG1), a non-ASCII name.
std::vector<TensorSpec> mixed_specs() {
  return {
      {"model.layers.0.mlp.up_proj.weight", DType::F32, {3, 4, 5}},
      {"half", DType::F16, {7}},
      {"bf16.matrix", DType::BF16, {2, 3}},
      {"logit_scale", DType::F32, {}},
      {"empty", DType::F32, {0}},
      {"empty.rank3", DType::BF16, {2, 0, 3}},
      {"embeddings.position_ids", DType::I64, {1, 6}},
      {"i32", DType::I32, {4}},
      {"i16", DType::I16, {3, 1}},
      {"i8", DType::I8, {5}},
      {"u8", DType::U8, {9}},
      {"flag", DType::BOOL, {4}},
      {"f64", DType::F64, {2, 2}},
      {"wide", DType::F16, {300, 2}},
      {"long", DType::U8, {70001}},
      {"huge.but.empty", DType::F32, {0, 2147483649, 2}},
      {"\xc3\xbcnicode.weight", DType::F32, {2}},
  };
}

std::vector<int64_t> strides_of(const std::vector<int64_t>& shape) {
  std::vector<int64_t> st(shape.size());
  int64_t s = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    st[d] = s;
    s *= std::max<int64_t>(shape[d], 1);
  }
  return st;
}

const char* storage_name(DType d) {
  switch (d) {
    case DType::F32: return "FloatStorage";
    case DType::F16: return "HalfStorage";
    case DType::BF16: return "BFloat16Storage";
    case DType::F64: return "DoubleStorage";
    case DType::I64: return "LongStorage";
    case DType::I32: return "IntStorage";
    case DType::I16: return "ShortStorage";
    case DType::I8: return "CharStorage";
    case DType::U8: return "ByteStorage";
    case DType::BOOL: return "BoolStorage";
  }
  return "?";
}

// The mmn::Error message of f (fails the test when it throws nothing or something else).
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const mmn::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-mmn::Error: " << e.what();
    return "";
  }
  ADD_FAILURE() << "no error thrown";
  return "";
}

#define EXPECT_CONTAINS(text, part) \
  EXPECT_NE(std::string(text).find(part), std::string::npos) << "'" << (text) << "' lacks '" << (part) << "'"

bool have_python() { return mmn::test::run_cmd("python3 -c 'import zipfile, pickletools, zlib, json'") == 0; }

#define REQUIRE_PYTHON()                                                                     \
  do {                                                                                       \
    if (!have_python()) GTEST_SKIP() << "python3 is not available; skipping the independent check"; \
  } while (0)

// Independent reading with Python's standard library only: zipfile (CRCs via
// testzip, stored entries, names), pickletools, and pickle with stand-ins
// for the torch globals (anything else is refused). Prints a JSON summary.
const char* kPythonCheck = R"PY(
import collections, io, json, pickle, pickletools, sys, zipfile, zlib
path = sys.argv[1]
z = zipfile.ZipFile(path)
raw = open(path, 'rb')
def local(info):  # the local header, whose extra field differs from the central one
    raw.seek(info.header_offset)
    h = raw.read(30)
    nlen, xlen = int.from_bytes(h[26:28], 'little'), int.from_bytes(h[28:30], 'little')
    sizes = {int.from_bytes(h[18:22], 'little'), int.from_bytes(h[22:26], 'little')}
    ok = (h[:4] == b'PK\x03\x04' and int.from_bytes(h[14:18], 'little') == info.CRC and
          sizes <= {info.file_size, 0xFFFFFFFF} and len(sizes) == 1 and
          raw.read(nlen) == info.filename.encode() and int.from_bytes(h[6:8], 'little') & 8 == 0)
    return dict(data_at=info.header_offset + 30 + nlen + xlen, local_ok=ok)
infos = z.infolist()
prefix = infos[0].filename.split('/')[0]
pkl = z.read(prefix + '/data.pkl')
pickletools.dis(pkl, out=io.StringIO())
def rebuild(storage, offset, size, stride, requires_grad, hooks):
    return dict(storage=storage, offset=offset, size=list(size), stride=list(stride),
                requires_grad=requires_grad, hooks_type=type(hooks).__name__, hooks_len=len(hooks))
class Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ('collections', 'OrderedDict'):
            return collections.OrderedDict
        if (module, name) == ('torch._utils', '_rebuild_tensor_v2'):
            return rebuild
        if module == 'torch' and name.endswith('Storage'):
            return 'torch.' + name
        raise pickle.UnpicklingError('global %s.%s' % (module, name))
    def persistent_load(self, pid):
        kind, typ, key, location, numel = pid
        data = z.read(prefix + '/data/' + key)
        return dict(kind=kind, type=typ, key=key, location=location, numel=numel,
                    nbytes=len(data), crc=zlib.crc32(data))
sd = Unpickler(io.BytesIO(pkl)).load()
out = dict(
    prefix=prefix,
    root_type=type(sd).__name__,
    entries=[dict(name=i.filename, method=i.compress_type, size=i.file_size, **local(i)) for i in infos],
    version=z.read(prefix + '/version').decode(),
    byteorder=z.read(prefix + '/byteorder').decode(),
    serialization_id=z.read(prefix + '/.data/serialization_id').decode(),
    tensors=[dict(name=k, **v) for k, v in sd.items()])
print(json.dumps(out))
)PY";

// Runs kPythonCheck on `file`; the parsed summary (a failed check fails the test).
nlohmann::json python_check(const fs::path& dir, const fs::path& file) {
  fs::path script = dir / "check_torch_save.py";
  std::ofstream(script) << kPythonCheck;
  std::string out;
  int rc = mmn::test::run_cmd("python3 '" + script.string() + "' '" + file.string() + "'", &out);
  EXPECT_EQ(rc, 0) << out;
  if (rc != 0) return {};
  // The summary is the last line (nothing else should be printed).
  size_t nl = out.find_last_of('\n', out.size() >= 2 ? out.size() - 2 : 0);
  return nlohmann::json::parse(nl == std::string::npos ? out : out.substr(nl + 1));
}

// A scratch directory removed at the end of each test.
class TorchSave : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = mmn::test::temp_dir("torch-save"); }
  void TearDown() override { fs::remove_all(dir_); }

  // The file's tensors through the project's reader, checked against specs and tensor_bytes.
  void expect_reads_back(const fs::path& file, const std::vector<TensorSpec>& specs) {
    std::string bytes = slurp(file);
    auto entries =
        mmn::parse_torch_checkpoint(file.string(), reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    ASSERT_EQ(entries.size(), specs.size());
    for (size_t i = 0; i < specs.size(); ++i) {
      const TensorSpec& s = specs[i];
      EXPECT_EQ(entries[i].name, s.name);
      EXPECT_EQ(entries[i].dtype, s.dtype) << s.name;
      EXPECT_EQ(entries[i].shape, s.shape) << s.name;
      ASSERT_EQ(entries[i].nbytes, s.nbytes()) << s.name;
      EXPECT_EQ(bytes.substr(entries[i].offset, entries[i].nbytes), tensor_bytes(s)) << s.name;
      if (s.nbytes()) {
        EXPECT_EQ(entries[i].offset % 64, 0u) << s.name << " is not 64-byte aligned";
      }
    }
  }

  // Everything kPythonCheck reports about a file written from specs.
  void expect_python_agrees(const fs::path& file, const std::vector<TensorSpec>& specs, const std::string& prefix) {
    nlohmann::json j = python_check(dir_, file);
    if (j.is_null()) return;
    EXPECT_EQ(j["prefix"], prefix);
    EXPECT_EQ(j["root_type"], "OrderedDict");
    EXPECT_EQ(j["version"], "3\n");
    EXPECT_EQ(j["byteorder"], "little");
    std::string sid = j["serialization_id"];
    EXPECT_EQ(sid.size(), 20u);
    EXPECT_EQ(sid.find_first_not_of("0123456789"), std::string::npos) << sid;
    // Entry order and layout as torch writes them.
    std::vector<std::string> names = {prefix + "/data.pkl", prefix + "/byteorder"};
    for (size_t k = 0; k < specs.size(); ++k) names.push_back(prefix + "/data/" + std::to_string(k));
    names.push_back(prefix + "/version");
    names.push_back(prefix + "/.data/serialization_id");
    ASSERT_EQ(j["entries"].size(), names.size());
    for (size_t k = 0; k < names.size(); ++k) {
      const auto& e = j["entries"][k];
      EXPECT_EQ(e["name"], names[k]);
      EXPECT_EQ(e["method"], 0) << names[k] << " is not stored";
      EXPECT_EQ(e["data_at"].get<uint64_t>() % 64, 0u) << names[k] << " is not 64-byte aligned";
      EXPECT_EQ(e["local_ok"], true) << names[k] << ": local header disagrees with the central directory";
    }
    ASSERT_EQ(j["tensors"].size(), specs.size());
    for (size_t k = 0; k < specs.size(); ++k) {
      const TensorSpec& s = specs[k];
      const auto& t = j["tensors"][k];
      EXPECT_EQ(t["name"], s.name);
      EXPECT_EQ(t["size"].get<std::vector<int64_t>>(), s.shape) << s.name;
      EXPECT_EQ(t["stride"].get<std::vector<int64_t>>(), strides_of(s.shape)) << s.name;
      EXPECT_EQ(t["offset"], 0) << s.name;
      EXPECT_EQ(t["requires_grad"], false) << s.name;
      EXPECT_EQ(t["hooks_type"], "OrderedDict") << s.name;
      EXPECT_EQ(t["hooks_len"], 0) << s.name;
      const auto& st = t["storage"];
      EXPECT_EQ(st["kind"], "storage");
      EXPECT_EQ(st["type"], std::string("torch.") + storage_name(s.dtype)) << s.name;
      EXPECT_EQ(st["key"], std::to_string(k));
      EXPECT_EQ(st["location"], "cpu");
      EXPECT_EQ(st["numel"].get<uint64_t>(), s.nbytes() / mmn::dtype_size(s.dtype)) << s.name;
      EXPECT_EQ(st["nbytes"].get<uint64_t>(), s.nbytes()) << s.name;
      std::string b = tensor_bytes(s);
      EXPECT_EQ(st["crc"].get<uint32_t>(), mmn::crc32(b.data(), b.size())) << s.name;
    }
  }

  fs::path dir_;
};

}  // namespace

// ---------------------------------------------------------------- CRC-32

TEST(TorchSaveCrc, KnownVectors) {
  EXPECT_EQ(mmn::crc32("123456789", 9), 0xCBF43926u);
  EXPECT_EQ(mmn::crc32("", 0), 0u);
  EXPECT_EQ(mmn::crc32("a", 1), 0xE8B7BE43u);
  const char* fox = "The quick brown fox jumps over the lazy dog";
  EXPECT_EQ(mmn::crc32(fox, std::strlen(fox)), 0x414FA339u);
}

TEST(TorchSaveCrc, ChunkedEqualsWholeAndBitwiseReference) {
  std::string data(10007, '\0');
  uint32_t x = 12345;
  for (auto& c : data) c = static_cast<char>((x = x * 1103515245u + 12345u) >> 16);
  // The textbook bit-at-a-time definition.
  uint32_t ref = 0xFFFFFFFFu;
  for (unsigned char c : data) {
    ref ^= c;
    for (int k = 0; k < 8; ++k) ref = (ref & 1) ? 0xEDB88320u ^ (ref >> 1) : ref >> 1;
  }
  ref = ~ref;
  EXPECT_EQ(mmn::crc32(data.data(), data.size()), ref);
  for (size_t split : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{9}, size_t{4096}, data.size()}) {
    uint32_t c = mmn::crc32_update(0, data.data(), split);
    c = mmn::crc32_update(c, data.data() + split, data.size() - split);
    EXPECT_EQ(c, ref) << "split at " << split;
  }
}

// ---------------------------------------------------------------- round trip

TEST_F(TorchSave, RoundTripThroughTheReader) {
  auto specs = mixed_specs();
  fs::path p = dir_ / "pytorch_model.bin";
  mmn::write_torch_checkpoint(p.string(), specs, fill_pattern);
  expect_reads_back(p, specs);
  // The ZIP layout: torch's entry names and order, data on 64-byte boundaries.
  std::string bytes = slurp(p);
  auto zip = mmn::read_zip_directory(p.string(), reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  ASSERT_EQ(zip.size(), specs.size() + 4);
  EXPECT_EQ(zip[0].name, "pytorch_model/data.pkl");
  EXPECT_EQ(zip[1].name, "pytorch_model/byteorder");
  EXPECT_EQ(bytes.substr(zip[1].data_offset, zip[1].size), "little");
  EXPECT_EQ(zip[2].name, "pytorch_model/data/0");
  EXPECT_EQ(zip[zip.size() - 2].name, "pytorch_model/version");
  EXPECT_EQ(bytes.substr(zip[zip.size() - 2].data_offset, zip[zip.size() - 2].size), "3\n");
  EXPECT_EQ(zip.back().name, "pytorch_model/.data/serialization_id");
  for (auto& z : zip) EXPECT_EQ(z.data_offset % 64, 0u) << z.name;
}

TEST_F(TorchSave, OpensAsACheckpointDirectory) {
  auto specs = mixed_specs();
  mmn::write_torch_checkpoint((dir_ / "pytorch_model.bin").string(), specs, fill_pattern);
  auto ck = SafetensorsCheckpoint::open(dir_.string());
  ASSERT_EQ(ck.tensors().size(), specs.size());
  for (auto& s : specs) {
    ASSERT_TRUE(ck.has(s.name)) << s.name;
    const mmn::TensorRef& r = ck.get(s.name, s.shape);
    EXPECT_EQ(r.dtype, s.dtype) << s.name;
    ASSERT_EQ(r.nbytes, s.nbytes()) << s.name;
    std::string b = tensor_bytes(s);
    EXPECT_EQ(std::memcmp(r.data, b.data(), b.size()), 0) << s.name;
  }
}

TEST_F(TorchSave, OutputIsReproducible) {
  auto specs = mixed_specs();
  mmn::write_torch_checkpoint((dir_ / "a.bin").string(), specs, fill_pattern);
  mmn::write_torch_checkpoint((dir_ / "b" / "a.bin").string(), specs, fill_pattern);
  EXPECT_EQ(slurp(dir_ / "a.bin"), slurp(dir_ / "b" / "a.bin"));
}

TEST_F(TorchSave, ArchiveFolderIsNamedAfterTheFile) {
  std::vector<TensorSpec> specs = {{"w", DType::F32, {2}}};
  for (auto [file, prefix] : {std::pair{"mm_projector.bin", "mm_projector/"},
                              std::pair{"pytorch_model-00001-of-00003.bin", "pytorch_model-00001-of-00003/"},
                              std::pair{"x.tar.pt", "x/"}, std::pair{".hidden.bin", "archive/"},
                              std::pair{"we ird.bin", "archive/"}}) {
    fs::path p = dir_ / file;
    mmn::write_torch_checkpoint(p.string(), specs, fill_pattern);
    std::string bytes = slurp(p);
    auto zip = mmn::read_zip_directory(p.string(), reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    EXPECT_EQ(zip.at(0).name, std::string(prefix) + "data.pkl") << file;
    expect_reads_back(p, specs);
  }
}

TEST_F(TorchSave, EmptyStateDict) {
  fs::path p = dir_ / "pytorch_model.bin";
  mmn::write_torch_checkpoint(p.string(), {}, fill_pattern);
  expect_reads_back(p, {});
  if (have_python()) expect_python_agrees(p, {}, "pytorch_model");
}

// More than one SETITEMS batch of 1000, the last batch a single SETITEM.
TEST_F(TorchSave, ThousandsOfTensors) {
  std::vector<TensorSpec> specs;
  for (int i = 0; i < 2001; ++i) specs.push_back({"t." + std::to_string(i), i % 2 ? DType::F16 : DType::F32, {i % 5}});
  fs::path p = dir_ / "many.bin";
  mmn::write_torch_checkpoint(p.string(), specs, fill_pattern);
  expect_reads_back(p, specs);
  if (have_python()) expect_python_agrees(p, specs, "many");
}

// ---------------------------------------------------------------- independent checks

TEST_F(TorchSave, PythonZipfileAndPickleAgree) {
  REQUIRE_PYTHON();
  auto specs = mixed_specs();
  fs::path p = dir_ / "pytorch_model.bin";
  mmn::write_torch_checkpoint(p.string(), specs, fill_pattern);
  expect_python_agrees(p, specs, "pytorch_model");
  // The extracted data.pkl through `python3 -m pickletools` as a command.
  std::string bytes = slurp(p);
  auto zip = mmn::read_zip_directory(p.string(), reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  std::ofstream(dir_ / "data.pkl", std::ios::binary) << bytes.substr(zip[0].data_offset, zip[0].size);
  std::string out;
  ASSERT_EQ(mmn::test::run_cmd("python3 -m pickletools '" + (dir_ / "data.pkl").string() + "'", &out), 0) << out;
  EXPECT_CONTAINS(out, "highest protocol among opcodes = 2");
  EXPECT_CONTAINS(out, "GLOBAL     'collections OrderedDict'");
  EXPECT_CONTAINS(out, "GLOBAL     'torch._utils _rebuild_tensor_v2'");
  EXPECT_CONTAINS(out, "BINPERSID");
  EXPECT_CONTAINS(out, "LONG1      2147483649");
}

// ZIP64 fields (normally only past 4 GiB) forced at small sizes and offsets:
// both readers must follow them.
TEST_F(TorchSave, Zip64FieldsAreReadable) {
  auto specs = mixed_specs();
  for (uint64_t from : {uint64_t{1}, uint64_t{64}, uint64_t{5000}}) {
    fs::path p = dir_ / ("z64-" + std::to_string(from) + ".bin");
    mmn::detail::write_torch_checkpoint(p.string(), specs, fill_pattern, from);
    expect_reads_back(p, specs);
    if (have_python()) expect_python_agrees(p, specs, p.stem().string());
  }
}

// Info-ZIP's `unzip -t` (when installed) checks every CRC and local header too.
TEST_F(TorchSave, UnzipTestsClean) {
  if (mmn::test::run_cmd("unzip -v") != 0) GTEST_SKIP() << "unzip is not installed";
  auto specs = mixed_specs();
  for (uint64_t from : {uint64_t{0xFFFFFFFF}, uint64_t{1}}) {
    fs::path p = dir_ / ("u" + std::to_string(from) + ".bin");
    mmn::detail::write_torch_checkpoint(p.string(), specs, fill_pattern, from);
    std::string out;
    EXPECT_EQ(mmn::test::run_cmd("unzip -t '" + p.string() + "'", &out), 0) << out;
    EXPECT_CONTAINS(out, "No errors detected");
  }
}

TEST_F(TorchSave, TorchLoadsIt) {
  if (mmn::test::run_cmd("python3 -c 'import torch'") != 0) GTEST_SKIP() << "python3 with torch is not available";
  auto specs = mixed_specs();
  fs::path p = dir_ / "pytorch_model.bin";
  mmn::write_torch_checkpoint(p.string(), specs, fill_pattern);
  std::ofstream(dir_ / "load.py") << R"PY(
import json, sys, torch, zlib
try:
    sd = torch.load(sys.argv[1], map_location='cpu', weights_only=True)
except TypeError:  # torch < 1.13
    sd = torch.load(sys.argv[1], map_location='cpu')
out = []
for k, t in sd.items():
    s = t.untyped_storage() if hasattr(t, 'untyped_storage') else t.storage().untyped()
    out.append([k, str(t.dtype), list(t.shape), list(t.stride()), zlib.crc32(bytes(s.tolist()))])
print('JSON ' + json.dumps(out))
)PY";
  std::string out;
  ASSERT_EQ(mmn::test::run_cmd("python3 '" + (dir_ / "load.py").string() + "' '" + p.string() + "'", &out), 0) << out;
  size_t at = out.rfind("JSON ");
  ASSERT_NE(at, std::string::npos) << out;
  auto j = nlohmann::json::parse(out.substr(at + 5));
  const std::map<DType, std::string> torch_dtype = {
      {DType::F32, "torch.float32"}, {DType::F16, "torch.float16"}, {DType::BF16, "torch.bfloat16"},
      {DType::F64, "torch.float64"}, {DType::I64, "torch.int64"},   {DType::I32, "torch.int32"},
      {DType::I16, "torch.int16"},   {DType::I8, "torch.int8"},     {DType::U8, "torch.uint8"},
      {DType::BOOL, "torch.bool"}};
  ASSERT_EQ(j.size(), specs.size());
  for (size_t k = 0; k < specs.size(); ++k) {
    EXPECT_EQ(j[k][0], specs[k].name);
    EXPECT_EQ(j[k][1], torch_dtype.at(specs[k].dtype)) << specs[k].name;
    EXPECT_EQ(j[k][2].get<std::vector<int64_t>>(), specs[k].shape) << specs[k].name;
    EXPECT_EQ(j[k][3].get<std::vector<int64_t>>(), strides_of(specs[k].shape)) << specs[k].name;
    std::string b = tensor_bytes(specs[k]);
    EXPECT_EQ(j[k][4].get<uint32_t>(), mmn::crc32(b.data(), b.size())) << specs[k].name;
  }
}

// ---------------------------------------------------------------- shards

TEST(TorchSaveShards, PlanFollowsTransformers) {
  auto mk = [](std::vector<size_t> sizes) {
    std::vector<TensorSpec> s;
    for (size_t i = 0; i < sizes.size(); ++i) s.push_back({"t" + std::to_string(i), DType::U8, {int64_t(sizes[i])}});
    return s;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(mmn::torch_shard_name(0, 3), "pytorch_model-00001-of-00003.bin");
  EXPECT_EQ(mmn::plan_torch_shards({}, 10), V{});
  EXPECT_EQ(mmn::plan_torch_shards(mk({5, 5}), 10), (V{"pytorch_model.bin", "pytorch_model.bin"}));
  EXPECT_EQ(mmn::plan_torch_shards(mk({5, 5, 9}), 0), V(3, "pytorch_model.bin"));
  // 4+4 | 4+4 | 9 (alone, though over the limit) | 1
  EXPECT_EQ(mmn::plan_torch_shards(mk({4, 4, 4, 4, 9, 1}), 8),
            (V{"pytorch_model-00001-of-00004.bin", "pytorch_model-00001-of-00004.bin",
               "pytorch_model-00002-of-00004.bin", "pytorch_model-00002-of-00004.bin",
               "pytorch_model-00003-of-00004.bin", "pytorch_model-00004-of-00004.bin"}));
  // An oversized first tensor: its own shard.
  EXPECT_EQ(mmn::plan_torch_shards(mk({20, 1}), 8),
            (V{"pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"}));
}

TEST_F(TorchSave, ShardedWriteOpensAsOneCheckpoint) {
  std::vector<TensorSpec> specs;
  for (int i = 0; i < 10; ++i) specs.push_back({"model.layers." + std::to_string(i) + ".w", DType::F32, {25, 10}});
  specs.push_back({"model.mm_projector.weight", DType::BF16, {8, 4}});
  specs.push_back({"model.mm_projector.bias", DType::BF16, {8}});
  std::vector<std::string> called;
  auto files = mmn::write_torch_sharded(dir_.string(), specs, 2500, [&](const TensorSpec& s, std::FILE* out) {
    called.push_back(s.name);
    fill_pattern(s, out);
  });
  ASSERT_EQ(called.size(), specs.size());
  for (size_t i = 0; i < specs.size(); ++i) EXPECT_EQ(called[i], specs[i].name) << "fill order";
  std::vector<std::string> expected;
  for (int k = 0; k < 5; ++k) expected.push_back(mmn::torch_shard_name(k, 5));
  expected.push_back("pytorch_model.bin.index.json");
  EXPECT_EQ(files, expected);
  EXPECT_FALSE(fs::exists(dir_ / "pytorch_model.bin"));

  auto index = nlohmann::json::parse(slurp(dir_ / "pytorch_model.bin.index.json"));
  uint64_t total = 0;
  for (auto& s : specs) total += s.nbytes();
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  EXPECT_EQ(index["weight_map"].size(), specs.size());
  EXPECT_EQ(index["weight_map"]["model.layers.0.w"], "pytorch_model-00001-of-00005.bin");
  EXPECT_EQ(index["weight_map"]["model.layers.9.w"], "pytorch_model-00005-of-00005.bin");
  EXPECT_EQ(index["weight_map"]["model.mm_projector.bias"], "pytorch_model-00005-of-00005.bin");

  // LLaVA also ships the projector alone, beside the shards.
  std::vector<TensorSpec> projector(specs.end() - 2, specs.end());
  mmn::write_torch_checkpoint((dir_ / "mm_projector.bin").string(), projector, fill_pattern);
  expect_reads_back(dir_ / "mm_projector.bin", projector);

  auto ck = SafetensorsCheckpoint::open(dir_.string());
  ASSERT_EQ(ck.tensors().size(), specs.size());
  for (auto& s : specs) {
    ASSERT_TRUE(ck.has(s.name)) << s.name;
    const mmn::TensorRef& r = ck.get(s.name, s.shape);
    EXPECT_EQ(fs::path(r.file).filename(), index["weight_map"][s.name].get<std::string>());
    std::string b = tensor_bytes(s);
    ASSERT_EQ(r.nbytes, b.size());
    EXPECT_EQ(std::memcmp(r.data, b.data(), b.size()), 0) << s.name;
  }
  if (have_python()) {
    std::vector<TensorSpec> first(specs.begin(), specs.begin() + 2);
    expect_python_agrees(dir_ / files[0], first, "pytorch_model-00001-of-00005");
  }
}

TEST_F(TorchSave, SingleShardIsPytorchModelBinWithoutIndex) {
  std::vector<TensorSpec> specs = {{"a", DType::F32, {3}}, {"b", DType::F16, {2, 2}}};
  auto files = mmn::write_torch_sharded(dir_.string(), specs, uint64_t{1} << 30, fill_pattern);
  EXPECT_EQ(files, std::vector<std::string>{"pytorch_model.bin"});
  EXPECT_FALSE(fs::exists(dir_ / "pytorch_model.bin.index.json"));
  expect_reads_back(dir_ / "pytorch_model.bin", specs);
}

// The golden checkpoint (real torch.save shards) rewritten by the writer loads to the same tensors.
TEST_F(TorchSave, GoldenCheckpointRewritten) {
  MMN_REQUIRE_SHARED();
  auto src = SafetensorsCheckpoint::open(mmn::test::golden("llava1/models/tiny-llava1-a-f32-bin").string());
  std::vector<TensorSpec> specs;
  for (auto& [name, r] : src.tensors()) specs.push_back({name, r.dtype, r.shape});
  mmn::write_torch_sharded(dir_.string(), specs, 4 << 20, [&](const TensorSpec& s, std::FILE* out) {
    const mmn::TensorRef& r = src.get(s.name);
    ASSERT_EQ(std::fwrite(r.data, 1, r.nbytes, out), r.nbytes);
  });
  auto ck = SafetensorsCheckpoint::open(dir_.string());
  ASSERT_EQ(ck.tensors().size(), src.tensors().size());
  for (auto& [name, r] : src.tensors()) {
    const mmn::TensorRef& w = ck.get(name, r.shape);
    EXPECT_EQ(w.dtype, r.dtype);
    ASSERT_EQ(w.nbytes, r.nbytes);
    EXPECT_EQ(std::memcmp(w.data, r.data, r.nbytes), 0) << name;
  }
}

// ---------------------------------------------------------------- failures

std::vector<std::string> leftovers(const fs::path& dir) {
  std::vector<std::string> out;
  for (auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp-") != std::string::npos) out.push_back(e.path().string());
  return out;
}

TEST_F(TorchSave, FillThatThrowsLeavesNothing) {
  auto specs = mixed_specs();
  fs::path p = dir_ / "pytorch_model.bin";
  int calls = 0;
  auto throwing = [&](const TensorSpec& s, std::FILE* out) {
    if (++calls == 3) {
      std::fwrite("partial", 1, 7, out);  // buffered in the stream when the exception leaves
      throw mmn::Error("boom");
    }
    fill_pattern(s, out);
  };
  EXPECT_EQ(error_of([&] { mmn::write_torch_checkpoint(p.string(), specs, throwing); }), "boom");
  EXPECT_FALSE(fs::exists(p));
  EXPECT_TRUE(leftovers(dir_).empty());

  // An earlier file at the path survives a failed rewrite untouched.
  mmn::write_torch_checkpoint(p.string(), specs, fill_pattern);
  std::string before = slurp(p);
  calls = 0;
  EXPECT_EQ(error_of([&] { mmn::write_torch_checkpoint(p.string(), specs, throwing); }), "boom");
  EXPECT_EQ(slurp(p), before);
  EXPECT_TRUE(leftovers(dir_).empty());
}

TEST_F(TorchSave, WrongByteCountIsAnError) {
  std::vector<TensorSpec> specs = {{"a", DType::F32, {3}}, {"short.one", DType::F32, {4}}};
  fs::path p = dir_ / "x.bin";
  for (int extra : {-1, 1}) {
    std::string m = error_of([&] {
      mmn::write_torch_checkpoint(p.string(), specs, [&](const TensorSpec& s, std::FILE* out) {
        std::string b = tensor_bytes(s);
        if (s.name == "short.one") b.resize(b.size() + extra, 'x');
        std::fwrite(b.data(), 1, b.size(), out);
      });
    });
    EXPECT_CONTAINS(m, "short.one");
    EXPECT_CONTAINS(m, p.string());
    EXPECT_FALSE(fs::exists(p));
    EXPECT_TRUE(leftovers(dir_).empty());
  }
}

TEST_F(TorchSave, BadSpecsAreRefused) {
  fs::path p = dir_ / "x.bin";
  EXPECT_CONTAINS(error_of([&] {
                    mmn::write_torch_checkpoint(p.string(), {{"a", DType::F32, {1}}, {"a", DType::F16, {1}}},
                                                fill_pattern);
                  }),
                  "appears twice");
  EXPECT_CONTAINS(error_of([&] { mmn::write_torch_checkpoint(p.string(), {{"a", DType::F32, {-1}}}, fill_pattern); }),
                  "negative");
  EXPECT_CONTAINS(error_of([&] { mmn::write_torch_checkpoint(p.string(), {{"", DType::F32, {1}}}, fill_pattern); }),
                  "empty name");
  EXPECT_FALSE(fs::exists(p));
}

// Real ZIP64 (an entry over 4 GiB, entries past 4 GiB): writes ~4.3 GB, so
// only with MMN_TEST_LARGE=1.
TEST_F(TorchSave, LargeZip64) {
  const char* on = std::getenv("MMN_TEST_LARGE");
  if (!on || std::string(on) != "1") GTEST_SKIP() << "set MMN_TEST_LARGE=1 to write a 4.3 GB checkpoint";
  std::vector<TensorSpec> specs = {{"small.before", DType::F32, {5}},
                                   {"big", DType::U8, {(int64_t{1} << 32) + 1000}},
                                   {"small.after", DType::BF16, {3, 3}}};
  fs::path p = dir_ / "pytorch_model.bin";
  std::vector<char> chunk(size_t{1} << 22);
  for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<char>(i * 31 + 7);
  mmn::write_torch_checkpoint(p.string(), specs, [&](const TensorSpec& s, std::FILE* out) {
    if (s.name != "big") return fill_pattern(s, out);
    for (size_t left = s.nbytes(); left;) {
      size_t n = std::min(left, chunk.size());
      ASSERT_EQ(std::fwrite(chunk.data(), 1, n, out), n);
      left -= n;
    }
  });
  auto ck = SafetensorsCheckpoint::open(p.string());
  for (const char* name : {"small.before", "small.after"}) {
    const TensorSpec& s = specs[name[6] == 'b' ? 0 : 2];
    const mmn::TensorRef& r = ck.get(name, s.shape);
    std::string b = tensor_bytes(s);
    EXPECT_EQ(std::memcmp(r.data, b.data(), b.size()), 0) << name;
  }
  const mmn::TensorRef& big = ck.get("big");
  ASSERT_EQ(big.nbytes, specs[1].nbytes());
  EXPECT_GT(ck.get("small.after").file_offset, uint64_t{1} << 32);
  const auto* d = static_cast<const uint8_t*>(big.data);
  size_t last = big.nbytes - 1;
  EXPECT_EQ(d[last], static_cast<uint8_t>((last % chunk.size()) * 31 + 7));
  if (have_python()) {
    std::string out;
    EXPECT_EQ(mmn::test::run_cmd("python3 -c \"import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); "
                                 "r = z.testzip(); print(r); sys.exit(r is not None)\" '" + p.string() + "'",
                                 &out),
              0)
        << out;
  }
}
