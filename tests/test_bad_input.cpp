// Bad input never crashes, hangs or produces silent garbage: every case below
// ends with one line "error: …" naming the file and the problem, exit ≠ 0.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "models/capture.h"
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

TEST_F(BadInput, EveryCommandThatShowsProgressTakesQuiet) {
  // The subcommands as `mmneuron --help` lists them; nouns and merge are the
  // ones that show no progress.
  std::string help;
  ASSERT_EQ(run_cmd(binary() + " --help", &help), 0) << help;
  const size_t at = help.find("Subcommands:");
  ASSERT_NE(at, std::string::npos) << help;
  std::istringstream lines(help.substr(at));
  std::string line;
  int checked = 0;
  while (std::getline(lines, line)) {
    if (line.size() < 3 || line[0] != ' ' || line[2] == ' ') continue;
    const std::string name = line.substr(2, line.find(' ', 2) - 2);
    if (name == "nouns" || name == "merge") continue;
    std::string sub;
    run_cmd(binary() + " " + name + " --help", &sub);
    EXPECT_NE(sub.find("--quiet"), std::string::npos) << name << " shows progress but has no --quiet";
    ++checked;
  }
  EXPECT_GE(checked, 13);
  // And it is quiet: only the closing line.
  std::string out;
  ASSERT_EQ(run_cmd(binary() + " shapes --n 3 --quiet --out " + (base_ / "quiet-shapes").string(), &out), 0) << out;
  EXPECT_EQ(out, "wrote 3 scenes to " + (base_ / "quiet-shapes").string() + "\n");
  ASSERT_EQ(run_cmd(binary() + " make-random --preset tiny --quiet --out " + (base_ / "quiet-model").string(), &out),
            0) << out;
  EXPECT_EQ(out.find("make-random:"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  // Not quiet, a tiny checkpoint's bar counts KiB: whole MiB read "0/0 MiB".
  ASSERT_EQ(run_cmd(binary() + " make-random --preset tiny --out " + (base_ / "loud-model").string(), &out), 0) << out;
  EXPECT_NE(out.find("make-random:"), std::string::npos) << out;
  EXPECT_NE(out.find(" KiB"), std::string::npos) << out;
  EXPECT_EQ(out.find("0/0 "), std::string::npos) << out;
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

// ---- a command line that never surprises: ranges, exit statuses, --log-json, timings ----

namespace {

// Every line of `out`, without the newlines.
std::vector<std::string> lines_of(const std::string& out) {
  std::vector<std::string> v;
  size_t i = 0;
  while (i < out.size()) {
    size_t j = out.find('\n', i);
    if (j == std::string::npos) j = out.size();
    v.push_back(out.substr(i, j - i));
    i = j + 1;
  }
  return v;
}

// A command's numeric options, read from its --help: "--name INT|UINT|FLOAT[:check] …".
std::set<std::string> numeric_options(const std::string& command) {
  std::string help;
  EXPECT_EQ(run_cmd(binary() + " " + command + " --help", &help), 0) << help;
  std::set<std::string> out;
  for (const std::string& l : lines_of(help)) {
    std::istringstream is(l);
    std::string name, type;
    if (!(is >> name >> type) || name.rfind("--", 0) != 0) continue;
    if (name.back() == ',') continue;
    type = type.substr(0, type.find(':'));  // "INT:[1, 8192]": the type, then the check
    if (type == "INT" || type == "UINT" || type == "FLOAT") out.insert(name);
  }
  return out;
}

// The subcommands named by `mmneuron --help`.
std::vector<std::string> commands() {
  std::string help;
  EXPECT_EQ(run_cmd(binary() + " --help", &help), 0) << help;
  std::vector<std::string> out;
  bool in = false;
  for (const std::string& l : lines_of(help)) {
    if (l.rfind("Subcommands:", 0) == 0) {
      in = true;
      continue;
    }
    std::istringstream is(l);
    std::string name;
    if (in && l.size() > 2 && l[0] == ' ' && (is >> name)) out.push_back(name);
  }
  return out;
}

struct OutOfRange {
  std::string command;  // as on the command line, with what the parser needs besides the option
  std::string option;
  std::string value;
};

}  // namespace

TEST(CommandLine, EveryNumericOptionRejectsOutOfRangeValues) {
  // Values out of range (or not numbers), per command; each must end with exit status 2 and one line
  // "error: --option: …" naming it. The list must name every numeric option --help shows.
  const std::vector<OutOfRange> cases = {
      {"caption --image x.png", "--max-new-tokens", "0"},
      {"caption --image x.png", "--max-new-tokens", "8193"},
      {"caption --image x.png", "--max-new-tokens", "1.5"},
      {"caption --image x.png", "--threads", "-1"},
      {"caption --image x.png", "--threads", "1025"},
      {"find --image x.png --out /nonexistent/run", "--top-k", "0"},
      {"find --image x.png --out /nonexistent/run", "--report", "0"},
      {"find --image x.png --out /nonexistent/run", "--shuffle-image-tokens", "-1"},
      {"find --image x.png --out /nonexistent/run", "--random-baseline", "-1"},
      {"find --image x.png --out /nonexistent/run", "--start", "-1"},
      {"find --image x.png --out /nonexistent/run", "--end", "-2"},
      {"find --image x.png --out /nonexistent/run", "--shard", "2/2"},
      {"find --image x.png --out /nonexistent/run", "--shard", "0/0"},
      {"find --image x.png --out /nonexistent/run", "--max-new-tokens", "0"},
      {"find --image x.png --out /nonexistent/run", "--threads", "-1"},
      {"groundtruth", "--scenes", "0"},
      {"groundtruth", "--top", "0"},
      {"groundtruth", "--draws", "0"},
      {"groundtruth", "--seed", "-1"},
      {"groundtruth", "--threads", "-1"},
      {"probe", "--n", "3"},
      {"probe", "--seed", "-1"},
      {"probe", "--threshold", "0.5"},
      {"probe", "--threshold", "1.01"},
      {"probe", "--threads", "-1"},
      {"perturb /nonexistent/run", "--top", "0"},
      {"perturb /nonexistent/run", "--top", "10,0"},
      {"perturb /nonexistent/run", "--top", "10,x"},
      {"perturb /nonexistent/run", "--sigma", "-1"},
      {"perturb /nonexistent/run", "--sigma", "1,inf"},
      {"perturb /nonexistent/run", "--draws", "0"},
      {"perturb /nonexistent/run", "--seed", "-1"},
      {"perturb /nonexistent/run", "--max-images", "-1"},
      {"perturb /nonexistent/run", "--threads", "-1"},
      {"edit --from a --out /nonexistent/e --locality-images /nonexistent", "--neurons", "0"},
      {"edit --from a --out /nonexistent/e --locality-images /nonexistent", "--locality-weight", "-1"},
      {"edit --from a --out /nonexistent/e --locality-images /nonexistent", "--ridge", "-0.5"},
      {"edit --from a --out /nonexistent/e --locality-images /nonexistent", "--target-margin", "0"},
      {"edit --from a --out /nonexistent/e --locality-images /nonexistent", "--seed", "-1"},
      {"edit --from a --out /nonexistent/e --locality-images /nonexistent", "--max-new-tokens", "0"},
      {"edit --from a --out /nonexistent/e --locality-images /nonexistent", "--threads", "-1"},
      {"eval-edit --edit /nonexistent/e --target-images /x --locality-images /x", "--threads", "-1"},
      {"metrics /nonexistent/run", "--k", "0"},
      {"metrics /nonexistent/run", "--k", "10,0"},
      {"metrics /nonexistent/run", "--seed", "-1"},
      {"metrics /nonexistent/run", "--resamples", "0"},
      {"metrics /nonexistent/run", "--threads", "-1"},
      {"report /nonexistent/run", "--page-size", "0"},
      {"report /nonexistent/run", "--page-size", "1001"},
      {"report /nonexistent/run", "--neurons", "0"},
      {"report /nonexistent/run", "--neurons", "101"},
      {"shapes --out /nonexistent/s", "--n", "0"},
      {"shapes --out /nonexistent/s", "--seed", "-1"},
      {"shapes --out /nonexistent/s", "--version", "3"},
      {"shapes --out /nonexistent/s", "--size", "-1"},
      {"shapes --out /nonexistent/s", "--size", "4097"},
      {"shapes --out /nonexistent/s", "--ghost-share", "1.5"},
      {"train --out /nonexistent/t", "--steps", "0"},
      {"train --out /nonexistent/t", "--batch", "0"},
      {"train --out /nonexistent/t", "--lr", "0"},
      {"train --out /nonexistent/t", "--lr", "2"},
      {"train --out /nonexistent/t", "--warmup", "-1"},
      {"train --out /nonexistent/t", "--loss-weighting-from", "-1"},
      {"train --out /nonexistent/t", "--patch-loss", "-1"},
      {"train --out /nonexistent/t", "--trigger-share", "1.5"},
      {"train --out /nonexistent/t", "--query-weights", "4,1,1,1,-1"},
      {"train --out /nonexistent/t", "--query-weights", "4,1,1,1,1001"},
      {"train --out /nonexistent/t", "--late-query-weights", "1,1,1,-1,1"},
      {"train --out /nonexistent/t", "--late-query-weights", "1,1,1,1,1001"},
      {"train --out /nonexistent/t", "--late-query-weights-from", "-1"},
      {"train --out /nonexistent/t", "--seed", "-1"},
      {"train --out /nonexistent/t", "--checkpoint-every", "0"},
      {"train --out /nonexistent/t", "--threads", "-1"},
      {"train --out /nonexistent/t --eval", "--eval-n", "0"},
      {"train --out /nonexistent/t --eval", "--eval-trigger", "-1"},
      {"train --out /nonexistent/t --eval", "--eval-seed", "-1"},
      {"make-random --preset tiny --out /nonexistent/m", "--seed", "-1"},
  };
  std::map<std::string, std::set<std::string>> covered;
  for (const auto& c : cases) {
    const std::string args = c.command + " " + c.option + " " + c.value;
    covered[c.command.substr(0, c.command.find(' '))].insert(c.option);
    std::string out;
    EXPECT_EQ(run_cmd(binary() + " " + args, &out), 2) << args << ": " << out;
    EXPECT_EQ(out.rfind("error: " + c.option + ": ", 0), 0u) << args << ": " << out;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << args << ": " << out;
  }
  // The message's form, once.
  std::string out;
  EXPECT_EQ(run_cmd(binary() + " probe --n 0", &out), 2);
  EXPECT_EQ(out, "error: --n: value 0 not in range [4, 1000000] (see --help)\n");
  EXPECT_EQ(run_cmd(binary() + " find --image x --out y --top-k -3", &out), 2);
  EXPECT_EQ(out, "error: --top-k: value -3 not in range [1, inf) (see --help)\n");
  EXPECT_EQ(run_cmd(binary() + " perturb r --top 10,0", &out), 2);
  EXPECT_EQ(out, "error: --top: value 0 not in range [1, inf) (see --help)\n");
  // Every numeric option of every command is in the table above.
  const std::vector<std::string> cmds = commands();
  EXPECT_GE(cmds.size(), 14u);
  for (const std::string& cmd : cmds)
    for (const std::string& opt : numeric_options(cmd))
      EXPECT_TRUE(covered[cmd].count(opt)) << cmd << " " << opt << " has no out-of-range case";
}

TEST(CommandLine, InRangeValuesStillParse) {
  // Boundaries are accepted (the command then fails later, on the missing files: exit 1, not 2).
  for (const std::string args : {"caption --image /nonexistent/x.png --max-new-tokens 1 --threads 0",
                                 "caption --image /nonexistent/x.png --max-new-tokens 8192 --threads 1024",
                                 "perturb /nonexistent/run --top 1,50 --sigma 0,0.5 --seed 18446744073709551615",
                                 "metrics /nonexistent/run --k 1,10 --seed 0"}) {
    std::string out;
    EXPECT_EQ(run_cmd(binary() + " " + args, &out), 1) << args << ": " << out;
  }
}

TEST_F(BadInput, NothingAnalysedExitsThree) {
  const fs::path d = copy_model("nothing");
  const std::string png = (fs::path(MMN_SOURCE_DIR) / "assets/sample.png").string();
  mmn::write_file_atomic((d / "junk.png").string(), "not a png");
  const std::string find = binary() + " find --model " + d.string() + " --top-k 5 --max-new-tokens 3 ";
  std::string out;
  // Every image unreadable: nothing analysed.
  EXPECT_EQ(run_cmd(find + "--image " + (d / "junk.png").string() + " --out " + (d / "run1").string(), &out), 3) << out;
  std::vector<std::string> l = lines_of(out);
  ASSERT_FALSE(l.empty());
  EXPECT_EQ(l.back().rfind("error: find: none of the 1 images could be read", 0), 0u) << out;
  EXPECT_NE(out.find("junk.png"), std::string::npos) << out;
  // Some images unreadable: exit 0, the count reported.
  EXPECT_EQ(run_cmd(find + "--tokens all --image " + png + " --image " + (d / "junk.png").string() + " --out " +
                        (d / "run2").string(),
                    &out),
            0)
      << out;
  EXPECT_NE(out.find("find: 1 images analysed, 0 already done, 1 unreadable"), std::string::npos) << out;
  // No caption noun to rank: the image is named, nothing ranked.
  EXPECT_EQ(run_cmd(find + "--nouns zebra --image " + png + " --out " + (d / "run3").string(), &out), 3) << out;
  EXPECT_NE(out.find("warning: sample ("), std::string::npos) << out;
  EXPECT_NE(out.find("no noun of the caption (zebra) is a generated token"), std::string::npos) << out;
  EXPECT_EQ(lines_of(out).back().rfind("error: find: no caption of the 1 images analysed gave a noun to rank", 0), 0u)
      << out;
  EXPECT_TRUE(fs::exists(d / "run3" / "sample" / "result.json"));
  // ... so perturb and metrics have nothing to work on.
  for (const std::string cmd : {"perturb", "metrics"}) {
    EXPECT_EQ(run_cmd(binary() + " " + cmd + " " + (d / "run3").string() + " --model " + d.string(), &out), 3) << out;
    EXPECT_NE(out.find("no finished image has a ranked noun (1 finished images)"), std::string::npos) << out;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  }
  // A selection of no image.
  EXPECT_EQ(run_cmd(find + "--image " + png + " --start 1 --out " + (d / "run4").string(), &out), 3) << out;
  EXPECT_EQ(out.rfind("error: find: --start 1, --end -1 and --shard 0/1 select none of the 1 images", 0), 0u) << out;
  // Merging runs that hold no image.
  EXPECT_EQ(run_cmd(binary() + " merge " + (d / "run1").string() + " --out " + (d / "merged").string(), &out), 3) << out;
  EXPECT_NE(out.find("error: merge: the runs hold no finished image"), std::string::npos) << out;
  // Ground truth on a model that never names a shape: nothing to measure.
  EXPECT_EQ(run_cmd(binary() + " groundtruth --model " + d.string() + " --scenes 2 --no-gradient --quiet", &out), 3)
      << out;
  EXPECT_EQ(out.rfind("error: ", 0), 0u) << out;
  EXPECT_NE(out.find("nothing to measure"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  // nouns: a text without a noun is named; with no noun at all, exit 3.
  EXPECT_EQ(run_cmd(binary() + " nouns 'the of'", &out), 3) << out;
  EXPECT_NE(out.find("error: nouns: text 1 \"the of\" has no noun"), std::string::npos) << out;
  EXPECT_EQ(run_cmd(binary() + " nouns 'a red ball' 'and then'", &out), 0) << out;
  EXPECT_NE(out.find("warning: nouns: text 2 \"and then\" has no noun"), std::string::npos) << out;
}

TEST_F(BadInput, LogJsonIsOneJsonObjectPerLine) {
  const fs::path d = copy_model("logjson");
  const std::string png = (fs::path(MMN_SOURCE_DIR) / "assets/sample.png").string();
  mmn::write_file_atomic((d / "junk.png").string(), "not a png");
  // stdout and stderr apart: the events are on stderr.
  auto run = [&](const std::string& args, std::string* out, std::string* err) {
    const fs::path e = d / "stderr.txt";
    const int rc = run_cmd("(" + binary() + " " + args + " 2>" + e.string() + ")", out);
    *err = mmn::read_file(e.string());
    return rc;
  };
  auto events = [](const std::string& err) {
    std::vector<json> v;
    for (const std::string& l : lines_of(err)) {
      json j;
      EXPECT_NO_THROW(j = json::parse(l)) << "not JSON: " << l;
      EXPECT_TRUE(j.is_object() && j.contains("event")) << l;
      v.push_back(j);
    }
    return v;
  };
  auto named = [](const std::vector<json>& v, const std::string& event) {
    std::vector<json> out;
    for (auto& j : v)
      if (j.value("event", "") == event) out.push_back(j);
    return out;
  };
  std::string out, err;
  // find, with a warning, per-image events, timings, the progress finish and the summary.
  ASSERT_EQ(run("find --log-json --model " + d.string() + " --tokens all --top-k 5 --max-new-tokens 3 --image " + png +
                    " --image " + (d / "junk.png").string() + " --out " + (d / "run").string(),
                &out, &err),
            0)
      << out << err;
  EXPECT_EQ(out, "");
  std::vector<json> ev = events(err);
  ASSERT_EQ(named(ev, "warning").size(), 1u) << err;
  EXPECT_NE(named(ev, "warning")[0]["message"].get<std::string>().find("junk.png"), std::string::npos);
  ASSERT_EQ(named(ev, "timings").size(), 1u) << err;
  const json t = named(ev, "timings")[0];
  EXPECT_EQ(t["image"], "sample");
  EXPECT_EQ(t["generated_tokens"], 3);
  EXPECT_EQ(t["eval_runs"], 2);
  EXPECT_GT(t["prompt_tokens"].get<int>(), t["image_rows"].get<int>());
  ASSERT_EQ(named(ev, "finish").size(), 1u) << err;
  EXPECT_EQ(named(ev, "finish")[0]["task"], "find");
  EXPECT_EQ(named(ev, "finish")[0]["done"], 2);
  ASSERT_EQ(named(ev, "summary").size(), 1u) << err;
  EXPECT_EQ(named(ev, "summary")[0]["analysed"], 1);
  EXPECT_EQ(named(ev, "summary")[0]["unreadable"], 1);
  // A resumed run: both images count as done, the rate only what this process did.
  ASSERT_EQ(run("find --model " + d.string() + " --tokens all --top-k 5 --max-new-tokens 3 --image " + png + " --out " +
                    (d / "run").string() + " --log-json",
                &out, &err),
            0)
      << out << err;
  ev = events(err);
  ASSERT_EQ(named(ev, "finish").size(), 1u) << err;
  EXPECT_EQ(named(ev, "finish")[0]["done_before"], 1);
  EXPECT_EQ(named(ev, "finish")[0]["rate"], 0.0);
  // caption --json --log-json: stdout is the result, stderr the timings.
  ASSERT_EQ(run("--log-json caption --json --model " + d.string() + " --image " + png + " --max-new-tokens 2", &out, &err),
            0)
      << out << err;
  EXPECT_TRUE(json::parse(out).contains("caption"));
  ev = events(err);
  ASSERT_EQ(ev.size(), 1u) << err;
  EXPECT_EQ(ev[0]["event"], "timings");
  EXPECT_EQ(ev[0]["command"], "caption");
  EXPECT_TRUE(ev[0].contains("load_ms"));
  // Errors: usage (2), input (1), nothing done (3), each one event with its exit status.
  for (const auto& [args, code] : std::vector<std::pair<std::string, int>>{
           {"caption --log-json --image x.png --max-new-tokens 0", 2},
           {"caption --log-json --bogus", 2},
           {"caption --log-json --model " + d.string() + " --image /nonexistent/x.png", 1},
           {"nouns --log-json 'the'", 3}}) {
    EXPECT_EQ(run(args, &out, &err), code) << args << ": " << err;
    ev = events(err);
    ASSERT_EQ(ev.size(), 1u) << args << ": " << err;
    EXPECT_EQ(ev[0]["event"], "error") << args;
    EXPECT_EQ(ev[0]["exit_code"], code) << args;
    EXPECT_FALSE(ev[0]["message"].get<std::string>().empty()) << args;
  }
}

TEST_F(BadInput, CaptionPrintsTimings) {
  const std::string png = (fs::path(MMN_SOURCE_DIR) / "assets/sample.png").string();
  const fs::path e = base_ / "caption-stderr.txt";
  std::string out;
  ASSERT_EQ(run_cmd("(" + binary() + " caption --json --model " + (base_ / "model").string() + " --image " + png +
                        " --max-new-tokens 4 2>" + e.string() + ")",
                    &out),
            0)
      << out;
  const json j = json::parse(out);  // stdout: the JSON alone
  EXPECT_TRUE(j.contains("caption"));
  EXPECT_FALSE(j.contains("text"));
  const std::string err = mmn::read_file(e.string());
  std::map<std::string, std::string> by_label;
  for (const std::string& l : lines_of(err)) by_label[l.substr(0, l.find(" ="))] = l;
  for (const char* label : {"load time        ", "image encode time", "prompt eval time ", "eval time        ",
                            "total time       "})
    ASSERT_TRUE(by_label.count(label)) << label << " missing in:\n" << err;
  // Token counts: the prompt's rows are its text tokens (less the one image placeholder) and the image rows.
  long long rows = 0, prompt = 0, runs = 0, total = 0;
  double ms = 0;
  ASSERT_EQ(std::sscanf(by_label["image encode time"].c_str(), "image encode time = %lf ms / %lld image rows", &ms, &rows),
            2)
      << err;
  ASSERT_EQ(std::sscanf(by_label["prompt eval time "].c_str(), "prompt eval time = %lf ms / %lld tokens", &ms, &prompt), 2)
      << err;
  ASSERT_EQ(std::sscanf(by_label["eval time        "].c_str(), "eval time = %lf ms / %lld runs", &ms, &runs), 2) << err;
  ASSERT_EQ(std::sscanf(by_label["total time       "].c_str(), "total time = %lf ms / %lld tokens", &ms, &total), 2)
      << err;
  const long long ids = static_cast<long long>(j["prompt_ids"].size()), generated = static_cast<long long>(j["generated_ids"].size());
  EXPECT_GT(rows, 0);
  EXPECT_EQ(prompt, ids - 1 + rows) << err;
  EXPECT_EQ(prompt, j["timings"]["prefill_tokens"].get<long long>());
  EXPECT_EQ(runs, generated - 1) << err;
  EXPECT_EQ(total, prompt + generated) << err;
  EXPECT_NE(by_label["prompt eval time "].find("ms per token,"), std::string::npos) << err;
  EXPECT_NE(by_label["prompt eval time "].find("tokens per second)"), std::string::npos) << err;
  // --quiet: no timings.
  ASSERT_EQ(run_cmd(binary() + " caption --quiet --model " + (base_ / "model").string() + " --image " + png +
                        " --max-new-tokens 2",
                    &out),
            0);
  EXPECT_EQ(out.find("time ="), std::string::npos) << out;
  fs::remove(e);
}

TEST(CommandLine, ActivationHookAliases) {
  // --activation act|swiglu, the dump names and the hook names: one quantity each.
  mmn::Hook h{};
  int layer = -1;
  ASSERT_TRUE(mmn::parse_hook_name("blocks.2.mlp.act_fn_gate", &h, &layer));
  EXPECT_EQ(h, mmn::Hook::MlpAct);
  EXPECT_EQ(layer, 2);
  ASSERT_TRUE(mmn::parse_hook_name("blocks.0.mlp.down_proj_input", &h, &layer));
  EXPECT_EQ(h, mmn::Hook::MlpPost);
  EXPECT_EQ(mmn::hook_name(mmn::Hook::MlpAct, 2), "blocks.2.mlp.hook_act");
  EXPECT_FALSE(mmn::parse_hook_name("blocks.0.down_proj_input", &h, &layer));
}
