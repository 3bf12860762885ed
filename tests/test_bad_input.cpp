// Bad input never crashes, hangs or produces silent garbage: every case below
// ends with one line "error: …" naming the file and the problem, exit ≠ 0.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "test_util.h"
#include "util/error.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace mmn::test;

namespace {

// A tiny random checkpoint made once for the suite; each test copies it.
class BadInput : public ::testing::Test {
 protected:
  static fs::path base_;
  static void SetUpTestSuite() {
    base_ = temp_dir("bad-base");
    std::string log;
    ASSERT_EQ(run_cmd(binary() + " make-random --preset tiny --dtype f32 --out " + (base_ / "model").string(), &log),
              0)
        << log;
  }
  static void TearDownTestSuite() { fs::remove_all(base_); }

  fs::path copy_model(const std::string& tag) {
    fs::path d = temp_dir("bad-" + tag);
    fs::copy(base_ / "model", d, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
    dirs_.push_back(d);
    return d;
  }
  void TearDown() override {
    for (auto& d : dirs_) fs::remove_all(d);
  }

  // Runs caption on `model` with `image`; expects a one-line error containing `needle`.
  void expect_error(const fs::path& model, const std::string& needle, const std::string& image = "",
                    const std::string& extra = "") {
    const std::string img = image.empty() ? (fs::path(MMN_SOURCE_DIR) / "assets/sample.png").string() : image;
    std::string out;
    int rc = run_cmd(binary() + " caption --model " + model.string() + " --image " + img + " " + extra + " --max-new-tokens 2", &out);
    EXPECT_NE(rc, 0) << out;
    EXPECT_EQ(out.rfind("error: ", 0), 0u) << out;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << "not one line: " << out;
    EXPECT_NE(out.find(needle), std::string::npos) << "expected '" << needle << "' in: " << out;
  }

  // Splits model.safetensors into (header JSON, data bytes).
  static std::pair<json, std::string> split(const fs::path& file) {
    std::string b = mmn::read_file(file.string());
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<uint8_t>(b[i])) << (8 * i);
    return {json::parse(b.substr(8, n)), b.substr(8 + n)};
  }
  static void join(const fs::path& file, const std::string& header, const std::string& data) {
    std::string out(8, '\0');
    uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    mmn::write_file_atomic(file.string(), out + header + data);
  }

  std::vector<fs::path> dirs_;
};
fs::path BadInput::base_;

const char* kEmbed = "language_model.model.embed_tokens.weight";

}  // namespace

TEST_F(BadInput, TruncatedSafetensors) {
  fs::path d = copy_model("trunc");
  fs::path f = d / "model.safetensors";
  fs::resize_file(f, fs::file_size(f) / 2);
  expect_error(d, "model.safetensors");
}

TEST_F(BadInput, FileShorterThanHeaderLength) {
  fs::path d = copy_model("short");
  mmn::write_file_atomic((d / "model.safetensors").string(), std::string("\x05\x00", 2));
  expect_error(d, "truncated");
}

TEST_F(BadInput, HeaderLengthPastEnd) {
  fs::path d = copy_model("hlen");
  fs::path f = d / "model.safetensors";
  std::string b = mmn::read_file(f.string());
  uint64_t n = b.size() + 100;
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  mmn::write_file_atomic(f.string(), b);
  expect_error(d, "header length");
}

TEST_F(BadInput, DataOffsetsOutOfRange) {
  fs::path d = copy_model("range");
  auto [h, data] = split(d / "model.safetensors");
  h[kEmbed]["data_offsets"][1] = data.size() + 4096;
  join(d / "model.safetensors", h.dump(), data);
  expect_error(d, "out of range");
}

TEST_F(BadInput, DataOffsetsOverlap) {
  fs::path d = copy_model("overlap");
  auto [h, data] = split(d / "model.safetensors");
  // Point the final norm at the first bytes of the embedding table.
  auto& e = h[kEmbed]["data_offsets"];
  uint64_t b = e[0].get<uint64_t>();
  auto& norm = h["language_model.model.norm.weight"];
  uint64_t len = norm["data_offsets"][1].get<uint64_t>() - norm["data_offsets"][0].get<uint64_t>();
  norm["data_offsets"] = {b, b + len};
  join(d / "model.safetensors", h.dump(), data);
  expect_error(d, "overlapping");
}

TEST_F(BadInput, SizeDisagreesWithDtypeAndShape) {
  fs::path d = copy_model("nbytes");
  auto [h, data] = split(d / "model.safetensors");
  h[kEmbed]["dtype"] = "F16";
  join(d / "model.safetensors", h.dump(), data);
  expect_error(d, "need");
}

TEST_F(BadInput, ShapeDisagreesWithConfig) {
  fs::path d = copy_model("cfgshape");
  json c = json::parse(mmn::read_file((d / "config.json").string()));
  c["text_config"]["intermediate_size"] = 161;
  mmn::write_file_atomic((d / "config.json").string(), c.dump());
  expect_error(d, "expected [161, 64]");
}

TEST_F(BadInput, MissingTensor) {
  fs::path d = copy_model("missing");
  auto [h, data] = split(d / "model.safetensors");
  h.erase("language_model.model.layers.1.mlp.down_proj.weight");
  join(d / "model.safetensors", h.dump(), data);
  expect_error(d, "missing tensor language_model.model.layers.1.mlp.down_proj.weight");
}

TEST_F(BadInput, HeaderNotJson) {
  fs::path d = copy_model("notjson");
  auto [h, data] = split(d / "model.safetensors");
  std::string text = h.dump();
  text[0] = '[';
  join(d / "model.safetensors", text, data);
  expect_error(d, "not valid JSON");
}

TEST_F(BadInput, HeaderNotUtf8) {
  fs::path d = copy_model("utf8");
  auto [h, data] = split(d / "model.safetensors");
  std::string text = h.dump();
  const std::string key = "\"__metadata__\":{\"format\":\"pt";
  auto p = text.find("pt\"");
  ASSERT_NE(p, std::string::npos);
  text[p] = static_cast<char>(0xff);
  join(d / "model.safetensors", text, data);
  expect_error(d, "UTF-8");
}

TEST_F(BadInput, UnsupportedDtype) {
  fs::path d = copy_model("dtype");
  auto [h, data] = split(d / "model.safetensors");
  h[kEmbed]["dtype"] = "F8_E4M3";
  join(d / "model.safetensors", h.dump(), data);
  expect_error(d, "unsupported tensor dtype");
}

TEST_F(BadInput, MissingConfigKey) {
  fs::path d = copy_model("nokey");
  json c = json::parse(mmn::read_file((d / "config.json").string()));
  c.erase("model_type");
  mmn::write_file_atomic((d / "config.json").string(), c.dump());
  expect_error(d, "missing key model_type");
}

TEST_F(BadInput, MissingSubConfig) {
  fs::path d = copy_model("nosub");
  json c = json::parse(mmn::read_file((d / "config.json").string()));
  c.erase("vision_config");
  mmn::write_file_atomic((d / "config.json").string(), c.dump());
  expect_error(d, "missing key vision_config");
}

TEST_F(BadInput, ConfigKeyWrongType) {
  fs::path d = copy_model("keytype");
  json c = json::parse(mmn::read_file((d / "config.json").string()));
  c["text_config"]["hidden_size"] = "sixty-four";
  mmn::write_file_atomic((d / "config.json").string(), c.dump());
  expect_error(d, "text_config.hidden_size is not an integer");
}

TEST_F(BadInput, ConfigNotJson) {
  fs::path d = copy_model("cfgjson");
  mmn::write_file_atomic((d / "config.json").string(), "{\"model_type\": ");
  expect_error(d, "config.json: not valid JSON");
}

TEST_F(BadInput, MissingModelDir) { expect_error(base_ / "does-not-exist", "does-not-exist"); }

TEST_F(BadInput, MissingTokenizer) {
  fs::path d = copy_model("notok");
  fs::remove(d / "tokenizer.model");
  expect_error(d, "tokenizer.model");
}

TEST_F(BadInput, CorruptTokenizer) {
  fs::path d = copy_model("badtok");
  mmn::write_file_atomic((d / "tokenizer.model").string(), "this is not a sentencepiece model");
  expect_error(d, "tokenizer.model");
}

TEST_F(BadInput, MissingImage) { expect_error(base_ / "model", "nope.png", "/nonexistent/nope.png"); }

TEST_F(BadInput, EmptyImage) {
  fs::path d = copy_model("emptyimg");
  mmn::write_file_atomic((d / "empty.png").string(), "");
  expect_error(d, "empty.png", (d / "empty.png").string());
}

TEST_F(BadInput, CorruptImage) {
  fs::path d = copy_model("corruptimg");
  mmn::write_file_atomic((d / "junk.jpg").string(), std::string(300, 'x'));
  expect_error(d, "junk.jpg", (d / "junk.jpg").string());
}

TEST_F(BadInput, TruncatedImage) {
  fs::path d = copy_model("truncimg");
  std::string png = mmn::read_file((fs::path(MMN_SOURCE_DIR) / "assets/sample.png").string());
  mmn::write_file_atomic((d / "half.png").string(), png.substr(0, png.size() / 2));
  expect_error(d, "half.png", (d / "half.png").string());
}

TEST_F(BadInput, CliUnknownOptionAndBadValues) {
  for (const std::string args : {"caption --bogus", "caption --model x --image y --max-new-tokens many",
                                 "caption --image y", "frobnicate", "make-random --preset huge --out /tmp/x",
                                 "make-random --preset tiny --dtype f8 --out /tmp/x"}) {
    std::string out;
    int rc = run_cmd(binary() + " " + args, &out);
    EXPECT_NE(rc, 0) << args << ": " << out;
    EXPECT_EQ(out.rfind("error: ", 0), 0u) << args << ": " << out;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << args << ": " << out;
  }
}

TEST_F(BadInput, CommandsRefuseANonEmptyOutWithoutForce) {
  // A directory of someone's files: make-random, shapes, train and find leave it alone without --force.
  const fs::path d = base_ / "someones-data";
  fs::create_directories(d);
  mmn::write_file_atomic((d / "notes.txt").string(), "mine");
  for (const std::string args : {"make-random --preset tiny --dtype f32 --out ", "shapes --n 2 --out ",
                                 "train --preset tiny --steps 1 --out "}) {
    std::string out;
    EXPECT_NE(run_cmd(binary() + " " + args + d.string(), &out), 0) << args;
    EXPECT_EQ(out.rfind("error: " + d.string() + ": is not empty and is not a ", 0), 0u) << args << ": " << out;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  }
  EXPECT_EQ(std::distance(fs::directory_iterator(d), fs::directory_iterator()), 1);
  std::string out;
  ASSERT_EQ(run_cmd(binary() + " shapes --n 2 --force --out " + d.string(), &out), 0) << out;
  EXPECT_EQ(mmn::read_file((d / "notes.txt").string()), "mine");
  ASSERT_EQ(run_cmd(binary() + " make-random --preset tiny --dtype f32 --out " + (base_ / "fresh").string(), &out), 0)
      << out;
  EXPECT_NE(run_cmd(binary() + " make-random --preset tiny --dtype f32 --out " + (base_ / "fresh").string(), &out), 0)
      << "a second write over the same checkpoint needs --force";
}

TEST_F(BadInput, InputsAreNeverModified) {
  fs::path d = copy_model("ro");
  auto before = mmn::read_file((d / "model.safetensors").string());
  std::string out;
  ASSERT_EQ(run_cmd(binary() + " caption --model " + d.string() + " --image " +
                        (fs::path(MMN_SOURCE_DIR) / "assets/sample.png").string() + " --max-new-tokens 3",
                    &out),
            0)
      << out;
  EXPECT_EQ(before, mmn::read_file((d / "model.safetensors").string()));
}

TEST(Safetensors, HeaderParsingRejectsLies) {
  auto parse = [](const std::string& header, size_t data_bytes) {
    std::string b(8, '\0');
    uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    b += header + std::string(data_bytes, '\0');
    return mmn::parse_safetensors_header("x.safetensors", reinterpret_cast<const uint8_t*>(b.data()), b.size());
  };
  EXPECT_NO_THROW(parse(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8));
  EXPECT_THROW(parse(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4), mmn::Error);
  EXPECT_THROW(parse(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 12), mmn::Error);
  EXPECT_THROW(parse(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}})", 8), mmn::Error);
  EXPECT_THROW(parse(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8), mmn::Error);
  EXPECT_THROW(parse(R"({"a":{"dtype":"F32","shape":[2]}})", 8), mmn::Error);
  EXPECT_THROW(parse(R"([1,2])", 8), mmn::Error);
  EXPECT_THROW(parse(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                     R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                     12),
               mmn::Error);
  try {
    parse(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,800]}})", 8);
    FAIL();
  } catch (const mmn::Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.safetensors"), std::string::npos);
  }
}

TEST(Safetensors, ShardedIndex) {
  fs::path d = temp_dir("sharded");
  auto write = [&](const std::string& name, const std::string& tensor) {
    std::string header = "{\"" + tensor + R"(":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
    std::string b(8, '\0');
    for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    float v[2] = {1.5f, -2.f};
    mmn::write_file_atomic((d / name).string(), b + header + std::string(reinterpret_cast<char*>(v), 8));
  };
  write("model-00001-of-00002.safetensors", "a");
  write("model-00002-of-00002.safetensors", "b");
  json idx = {{"weight_map", {{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00002-of-00002.safetensors"}}}};
  mmn::write_file_atomic((d / "model.safetensors.index.json").string(), idx.dump());
  auto ck = mmn::SafetensorsCheckpoint::open(d.string());
  ASSERT_TRUE(ck.has("a") && ck.has("b"));
  EXPECT_EQ(static_cast<const float*>(ck.get("b").data)[0], 1.5f);
  // An index naming a tensor its shard lacks is an error naming the shard.
  idx["weight_map"]["c"] = "model-00002-of-00002.safetensors";
  mmn::write_file_atomic((d / "model.safetensors.index.json").string(), idx.dump());
  EXPECT_THROW(mmn::SafetensorsCheckpoint::open(d.string()), mmn::Error);
  fs::remove_all(d);
}
