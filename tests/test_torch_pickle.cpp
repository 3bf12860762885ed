// Pickled PyTorch checkpoints (torch.save zip format): the golden .bin copies
// load to exactly the bytes of their safetensors twins, and damaged or hostile
// files (built here by patching copies of the golden files) end in one-line
// errors naming the file, never in execution or a crash.
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <set>

#include "io/safetensors.h"
#include "io/torch_pickle.h"
#include "test_util.h"
#include "util/error.h"

namespace fs = std::filesystem;
using mmn::SafetensorsCheckpoint;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void spit(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

fs::path model(const std::string& name) { return mmn::test::golden("llava1/models/" + name); }
fs::path projector_bin() { return model("tiny-llava1-a-f32-bin") / "mm_projector.bin"; }

// Replaces the single occurrence of `from` (same length as `to`, or `to` is
// padded with `pad`): edits must keep every ZIP offset valid.
void patch(std::string& bytes, const std::string& from, std::string to, char pad = '.') {
  size_t at = bytes.find(from);
  ASSERT_NE(at, std::string::npos) << "pattern not found";
  ASSERT_EQ(bytes.find(from, at + 1), std::string::npos) << "pattern not unique";
  ASSERT_LE(to.size(), from.size());
  to.resize(from.size(), pad);
  bytes.replace(at, from.size(), to);
}

void put_le(std::string& bytes, size_t at, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) bytes[at + i] = static_cast<char>(v >> (8 * i));
}

// The message of the mmn::Error `f` throws; fails the test when it throws
// nothing, something else, or a message of more than one line.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const mmn::Error& e) {
    std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << "multi-line error: " << m;
    return m;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-mmn::Error: " << e.what();
    return "";
  }
  ADD_FAILURE() << "no error thrown";
  return "";
}

#define EXPECT_CONTAINS(text, part) \
  EXPECT_NE(std::string(text).find(part), std::string::npos) << "'" << (text) << "' lacks '" << (part) << "'"

// A scratch directory removed at the end of each test.
class TorchPickleBad : public ::testing::Test {
 protected:
  void SetUp() override {
    if (mmn::test::shared_dir().empty()) return;
    dir_ = mmn::test::temp_dir("torch-pickle");
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  // Writes `bytes` as dir_/name and returns the error of opening it.
  std::string open_error(const std::string& bytes, const std::string& name = "bad.bin") {
    fs::path p = dir_ / name;
    spit(p, bytes);
    std::string m = error_of([&] { SafetensorsCheckpoint::open(p.string()); });
    EXPECT_CONTAINS(m, p.string());
    return m;
  }
  fs::path dir_;
};

void expect_same_tensors(const SafetensorsCheckpoint& bin, const SafetensorsCheckpoint& st) {
  ASSERT_EQ(bin.tensors().size(), st.tensors().size());
  for (auto& [name, ref] : st.tensors()) {
    ASSERT_TRUE(bin.has(name)) << name;
    const mmn::TensorRef& b = bin.get(name);
    EXPECT_EQ(b.dtype, ref.dtype) << name;
    EXPECT_EQ(b.shape, ref.shape) << name;
    ASSERT_EQ(b.nbytes, ref.nbytes) << name;
    EXPECT_EQ(std::memcmp(b.data, ref.data, ref.nbytes), 0) << name << " differs";
  }
}

}  // namespace

// ---------------------------------------------------------------- golden equality

struct Twin {
  const char* bin;
  const char* safetensors;
};

class TorchPickleGolden : public ::testing::TestWithParam<Twin> {};

TEST_P(TorchPickleGolden, EveryTensorEqualsSafetensorsByteForByte) {
  MMN_REQUIRE_SHARED();
  auto bin = SafetensorsCheckpoint::open(model(GetParam().bin).string());
  auto st = SafetensorsCheckpoint::open(model(GetParam().safetensors).string());
  expect_same_tensors(bin, st);
  for (auto& [name, ref] : bin.tensors()) EXPECT_EQ(fs::path(ref.file).extension(), ".bin") << name;
}

INSTANTIATE_TEST_SUITE_P(Models, TorchPickleGolden,
                         ::testing::Values(Twin{"tiny-llava1-a-f32-bin", "tiny-llava1-a-f32"},
                                           Twin{"tiny-llava1-a-clip-bin", "tiny-llava1-a-clip"}),
                         [](const auto& info) { return std::string(info.index ? "clip" : "llm"); });

TEST(TorchPickle, ProjectorFileAloneHoldsTheProjector) {
  MMN_REQUIRE_SHARED();
  auto bin = SafetensorsCheckpoint::open(projector_bin().string());
  auto st = SafetensorsCheckpoint::open(model("tiny-llava1-a-f32").string());
  ASSERT_EQ(bin.tensors().size(), 2u);
  for (auto& [name, ref] : bin.tensors()) {
    const mmn::TensorRef& s = st.get(name);
    EXPECT_EQ(ref.shape, s.shape);
    ASSERT_EQ(ref.nbytes, s.nbytes);
    EXPECT_EQ(std::memcmp(ref.data, s.data, s.nbytes), 0) << name;
  }
}

TEST_F(TorchPickleBad, ProjectorFileSuppliesTensorsTheMainFileLacks) {
  MMN_REQUIRE_SHARED();
  fs::copy_file(model("tiny-llava1-a-clip-bin") / "pytorch_model.bin", dir_ / "pytorch_model.bin");
  fs::copy_file(projector_bin(), dir_ / "mm_projector.bin");
  auto ck = SafetensorsCheckpoint::open(dir_.string());
  auto clip = SafetensorsCheckpoint::open(model("tiny-llava1-a-clip").string());
  EXPECT_EQ(ck.tensors().size(), clip.tensors().size() + 2);
  EXPECT_TRUE(ck.has("model.mm_projector.weight"));
  EXPECT_EQ(ck.files().size(), 2u);
}

TEST_F(TorchPickleBad, SafetensorsPreferredOverBin) {
  MMN_REQUIRE_SHARED();
  fs::copy_file(model("tiny-llava1-a-clip") / "model.safetensors", dir_ / "model.safetensors");
  fs::copy_file(projector_bin(), dir_ / "pytorch_model.bin");
  auto ck = SafetensorsCheckpoint::open(dir_.string());
  EXPECT_FALSE(ck.has("model.mm_projector.weight"));
  for (auto& [name, ref] : ck.tensors()) EXPECT_EQ(fs::path(ref.file).extension(), ".safetensors") << name;
}

// ---------------------------------------------------------------- hostile and damaged files

TEST_F(TorchPickleBad, ForbiddenGlobalsAreRefusedNotExecuted) {
  MMN_REQUIRE_SHARED();
  const std::string golden = slurp(projector_bin());
  struct Case {
    std::string from, to, named;
  };
  const Case cases[] = {
      {"ccollections\nOrderedDict\n", "cos\nsystem\n", "os.system"},
      {"ctorch._utils\n_rebuild_tensor_v2\n", "cbuiltins\neval\n", "builtins.eval"},
      {"ctorch\nFloatStorage\n", "ctorch\nload\n", "torch.load"},
  };
  for (const auto& c : cases) {
    std::string bytes = golden;
    patch(bytes, c.from, c.to);
    std::string m = open_error(bytes);
    EXPECT_CONTAINS(m, "pickle refers to global " + c.named + ", which is not allowed");
  }
}

TEST_F(TorchPickleBad, TruncatedArchive) {
  MMN_REQUIRE_SHARED();
  const std::string golden = slurp(projector_bin());
  for (size_t len : {size_t{0}, size_t{3}, size_t{21}, size_t{200}, golden.size() / 2, golden.size() - 1,
                     golden.size() - 30}) {
    std::string m = open_error(golden.substr(0, len));
    EXPECT_TRUE(m.find("truncated") != std::string::npos || m.find("empty") != std::string::npos ||
                m.find("not a ZIP") != std::string::npos)
        << len << ": " << m;
  }
}

TEST_F(TorchPickleBad, CompressedEntry) {
  MMN_REQUIRE_SHARED();
  const std::string golden = slurp(projector_bin());
  // data.pkl is the first entry: its local header opens the file and its
  // central header is the first "PK\1\2".
  const size_t central = golden.find("PK\x01\x02");
  ASSERT_NE(central, std::string::npos);
  for (size_t method_at : {size_t{8}, central + 10}) {
    std::string bytes = golden;
    put_le(bytes, method_at, 8, 2);  // deflate
    std::string m = open_error(bytes);
    EXPECT_CONTAINS(m, "entry mm_projector/data.pkl is compressed (method 8)");
  }
}

TEST_F(TorchPickleBad, StorageShorterThanItClaims) {
  MMN_REQUIRE_SHARED();
  std::string bytes = slurp(projector_bin());
  patch(bytes, std::string("cpuq\x06K\x20t", 8), std::string("cpuq\x06K\x40t", 8));  // numel 32 → 64
  EXPECT_CONTAINS(open_error(bytes), "storage 0 is shorter than it claims: 128 bytes for 64 F32 elements");
}

TEST_F(TorchPickleBad, TensorOutsideItsStorage) {
  MMN_REQUIRE_SHARED();
  const std::string golden = slurp(projector_bin());
  const std::string bias_view("QK\x00K\x20\x85", 6);  // storage offset 0, size (32,)
  for (const std::string& to : {std::string("QK\x00K\x21\x85", 6), std::string("QK\x01K\x20\x85", 6)}) {
    std::string bytes = golden;
    patch(bytes, bias_view, to);
    EXPECT_CONTAINS(open_error(bytes), "tensor model.mm_projector.bias is not within its storage");
  }
}

TEST_F(TorchPickleBad, StridedTensor) {
  MMN_REQUIRE_SHARED();
  std::string bytes = slurp(projector_bin());
  patch(bytes, std::string("K\x30K\x01\x86", 5), std::string("K\x01K\x20\x86", 5));  // stride (48, 1) → (1, 32)
  EXPECT_CONTAINS(open_error(bytes), "tensor model.mm_projector.weight is not contiguous");
}

TEST_F(TorchPickleBad, OffsetsPastTheEnd) {
  MMN_REQUIRE_SHARED();
  const std::string golden = slurp(projector_bin());
  const size_t central = golden.find("PK\x01\x02");
  {
    std::string bytes = golden;  // data.pkl's local header offset past the end
    put_le(bytes, central + 42, golden.size() + 100, 4);
    EXPECT_CONTAINS(open_error(bytes), "entry mm_projector/data.pkl has no local header");
  }
  {
    std::string bytes = golden;  // data.pkl's sizes past the end
    put_le(bytes, central + 20, 1u << 30, 4);
    put_le(bytes, central + 24, 1u << 30, 4);
    EXPECT_CONTAINS(open_error(bytes), "entry mm_projector/data.pkl runs past the end of the archive");
  }
  {
    std::string bytes = golden;  // the ZIP64 record's central-directory offset past the end
    const size_t eocd64 = golden.rfind("PK\x06\x06");
    ASSERT_NE(eocd64, std::string::npos);
    put_le(bytes, eocd64 + 48, uint64_t{1} << 40, 8);
    EXPECT_CONTAINS(open_error(bytes), "central directory runs past the end of the file");
  }
}

TEST_F(TorchPickleBad, UnknownOpcode) {
  MMN_REQUIRE_SHARED();
  std::string bytes = slurp(projector_bin());
  // NEWFALSE (requires_grad of the first tensor) → 'S' (text STRING, never written by torch.save).
  bytes[bytes.find('\x89')] = 'S';
  EXPECT_CONTAINS(open_error(bytes), "unsupported pickle opcode 0x53");
}

TEST_F(TorchPickleBad, LegacyFormat) {
  MMN_REQUIRE_SHARED();
  // The pre-1.6 format starts with a pickled magic number.
  const std::string legacy("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15);
  spit(dir_ / "pytorch_model.bin", legacy);
  std::string m = error_of([&] { SafetensorsCheckpoint::open(dir_.string()); });
  EXPECT_CONTAINS(m, (dir_ / "pytorch_model.bin").string());
  EXPECT_CONTAINS(m, "legacy torch.save format is not supported; re-save with torch ≥ 1.6");
}

TEST_F(TorchPickleBad, ShardMissingFromTheDirectoryOrTheIndex) {
  MMN_REQUIRE_SHARED();
  const fs::path src = model("tiny-llava1-a-f32-bin");
  for (const char* f : {"pytorch_model-00001-of-00002.bin", "pytorch_model.bin.index.json"})
    fs::copy_file(src / f, dir_ / f);
  // Shard 2 is listed but absent.
  std::string m = error_of([&] { SafetensorsCheckpoint::open(dir_.string()); });
  EXPECT_CONTAINS(m, (dir_ / "pytorch_model-00002-of-00002.bin").string());
  // The index promises a tensor no shard holds.
  fs::copy_file(src / "pytorch_model-00002-of-00002.bin", dir_ / "pytorch_model-00002-of-00002.bin");
  std::string index = slurp(src / "pytorch_model.bin.index.json");
  const std::string norm = "\"model.norm.weight\"";
  index.replace(index.find(norm), norm.size(), "\"model.ghost.weight\": \"pytorch_model-00002-of-00002.bin\", " + norm);
  spit(dir_ / "pytorch_model.bin.index.json", index);
  m = error_of([&] { SafetensorsCheckpoint::open(dir_.string()); });
  EXPECT_CONTAINS(m, "missing tensor model.ghost.weight (listed in pytorch_model.bin.index.json)");
}

TEST_F(TorchPickleBad, TensorNamedTwiceAcrossFiles) {
  MMN_REQUIRE_SHARED();
  fs::copy_file(projector_bin(), dir_ / "a.bin");
  fs::copy_file(projector_bin(), dir_ / "b.bin");
  spit(dir_ / "pytorch_model.bin.index.json",
       R"({"weight_map": {"model.mm_projector.bias": "a.bin", "model.mm_projector.weight": "b.bin"}})");
  std::string m = error_of([&] { SafetensorsCheckpoint::open(dir_.string()); });
  EXPECT_CONTAINS(m, (dir_ / "b.bin").string());
  EXPECT_CONTAINS(m, "also appears in " + (dir_ / "a.bin").string());
}

// ---------------------------------------------------------------- robustness

// Random byte flips (anywhere, or inside data.pkl where they reach the
// interpreter) and truncations must end in mmn::Error or a valid result.
TEST(TorchPickle, FuzzedArchivesNeverCrash) {
  MMN_REQUIRE_SHARED();
  std::mt19937_64 rng(20240601);
  int errors = 0, loaded = 0;
  for (const fs::path& file : {projector_bin(), model("tiny-llava1-a-clip-bin") / "pytorch_model.bin"}) {
    const std::string golden = slurp(file);
    const auto* gb = reinterpret_cast<const uint8_t*>(golden.data());
    mmn::ZipEntry pkl;
    for (auto& e : mmn::read_zip_directory(file.string(), gb, golden.size()))
      if (e.name.ends_with("/data.pkl")) pkl = e;
    ASSERT_GT(pkl.size, 0u);
    for (int it = 0; it < 1000; ++it) {
      std::string bytes = golden;
      switch (rng() % 4) {
        case 0:  // truncate
          bytes.resize(rng() % bytes.size());
          break;
        case 1:  // flip bytes anywhere
          for (int k = 0, n = 1 + rng() % 8; k < n; ++k) bytes[rng() % bytes.size()] = static_cast<char>(rng());
          break;
        case 2:  // flip bytes of the pickle
          for (int k = 0, n = 1 + rng() % 4; k < n; ++k)
            bytes[pkl.data_offset + rng() % pkl.size] = static_cast<char>(rng());
          break;
        case 3:  // flip bytes of the ZIP directories at the end
          for (int k = 0, n = 1 + rng() % 4; k < n; ++k)
            bytes[bytes.size() - 1 - rng() % std::min<size_t>(bytes.size(), 600)] = static_cast<char>(rng());
          break;
      }
      // An exactly sized heap copy, so a read past the end is a real overread.
      std::vector<uint8_t> buf(bytes.begin(), bytes.end());
      try {
        for (auto& t : mmn::parse_torch_checkpoint("fuzz.bin", buf.data(), buf.size()))
          ASSERT_LE(t.offset + t.nbytes, buf.size()) << t.name;
        ++loaded;
      } catch (const mmn::Error& e) {
        ASSERT_EQ(std::string(e.what()).find('\n'), std::string::npos);
        ++errors;
      }
    }
  }
  EXPECT_GT(errors, 0);
  EXPECT_GT(loaded, 0);  // many flips land in weight bytes and change nothing structural
}
