// Regressions of the parser bugs the fuzzers (fuzz/) found or issue 10 named:
// each hostile input must end in one mmn::Error naming the file and the
// problem (the exact fragment is checked), or be handled without UB. The
// limits themselves are documented in docs/limits.md.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "io/atomic_file.h"
#include "io/dataset.h"
#include "io/image.h"
#include "io/json_file.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "io/tokenizer.h"
#include "io/wordpiece.h"
#include "neurons/merge.h"
#include "neurons/run.h"
#include "tensor/weight.h"
#include "test_util.h"
#include "util/error.h"

namespace fs = std::filesystem;
using namespace mmn::test;

namespace {

class ParserLimits : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = temp_dir("limits"); }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& rel, const std::string& bytes) {
    const fs::path p = dir_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << bytes;
    return p.string();
  }

  // f must throw mmn::Error whose one-line message contains `fragment` (and
  // `file`, when given).
  static void expect_error(const std::function<void()>& f, const std::string& fragment, const std::string& file = "") {
    try {
      f();
      ADD_FAILURE() << "no error; expected '" << fragment << "'";
    } catch (const mmn::Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(fragment), std::string::npos) << "expected '" << fragment << "' in: " << what;
      if (!file.empty()) {
        EXPECT_NE(what.find(file), std::string::npos) << "expected the file in: " << what;
      }
      EXPECT_EQ(what.find('\n'), std::string::npos) << "not one line: " << what;
    }
  }

  fs::path dir_;
};

std::string nested(int depth) { return std::string(depth, '[') + "0" + std::string(depth, ']'); }

std::string npy(const std::string& descr, const std::string& shape, const std::string& payload = "") {
  std::string h = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  h += std::string((64 - (10 + h.size() + 1) % 64) % 64, ' ') + "\n";
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(h.size() & 0xff);
  out += static_cast<char>(h.size() >> 8);
  return out + h + payload;
}

// A safetensors file; `pad_to` = the data section's start modulo 8.
std::string safetensors(std::string header, const std::string& data, int pad_to = 0) {
  while ((8 + header.size()) % 8 != static_cast<size_t>(pad_to)) header += ' ';
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return out + header + data;
}

std::string f32(float v) { return std::string(reinterpret_cast<const char*>(&v), 4); }

// A PNG signature and IHDR (the CRC is not checked before the size limits).
std::string png_header(uint32_t w, uint32_t h, int depth = 16, int color = 6) {
  auto be = [](uint32_t v) {
    return std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
  };
  return std::string("\x89PNG\r\n\x1a\n", 8) + be(13) + "IHDR" + be(w) + be(h) + char(depth) + char(color) +
         std::string(3, '\0') + be(0);
}

const char* kRun = R"({"model": "m", "family": "llava", "layers": 4, "units_per_layer": 8, "options": {}, "version": "1"})";
const char* kResult = R"({"image": "a.png", "caption": "a cat", "generated_ids": [5, 7],
                          "nouns": [{"word": "cat", "token_id": 7, "step": 1}]})";

}  // namespace

// ---- JSON: depth, numbers

TEST_F(ParserLimits, JsonNestedTooDeep) {
  const std::string p = write("deep.json", "{\"a\": " + nested(100000) + "}");
  expect_error([&] { mmn::JsonFile::load(p); }, "JSON nested deeper than 256 levels", p);
  EXPECT_NO_THROW(mmn::check_json_depth(nested(256), "x"));
  expect_error([&] { mmn::check_json_depth(nested(257), "x"); }, "x: JSON nested deeper than 256 levels");
  // Brackets inside strings do not count.
  EXPECT_NO_THROW(mmn::check_json_depth("[\"" + std::string(1000, '[') + "\\\"\"]", "x"));
}

TEST_F(ParserLimits, JsonNumberBeyondDouble) {
  const std::string p = write("config.json", R"({"model_type": "llava", "x": 1e999})");
  expect_error([&] { mmn::JsonFile::load(p); }, "not valid JSON (a number is out of range)", p);
}

TEST_F(ParserLimits, JsonFileIntegersAreStrict) {
  const std::string p = write("config.json", R"({"a": 4.5, "b": 1e300, "c": 4294967300, "d": 4096.0, "e": -7,
                                                "f": 18446744073709551615, "g": "7"})");
  const mmn::JsonFile j = mmn::JsonFile::load(p);
  expect_error([&] { j.get_int("a"); }, "key a is not an integer", p);
  expect_error([&] { j.get_int("b"); }, "key b is 1e+300, out of range (a 32-bit integer is expected)", p);
  expect_error([&] { j.get_int("c"); }, "key c is 4294967300, out of range", p);
  EXPECT_EQ(j.get_int("d"), 4096);
  EXPECT_EQ(j.get_int("e"), -7);
  expect_error([&] { j.get_int("f"); }, "key f is 18446744073709551615, out of range", p);
  expect_error([&] { j.get_int("g"); }, "key g is not an integer", p);
}

// ---- npy

TEST_F(ParserLimits, NpyShapeProductOverflows) {
  expect_error([&] { mmn::parse_npy(npy("<f4", "(4294967296, 4294967296, 16)", f32(1)), "big.npy"); },
               "big.npy: npy shape has more than 2^40 elements");
}

TEST_F(ParserLimits, NpyDimensionWithTooManyDigits) {
  expect_error([&] { mmn::parse_npy(npy("<f4", "(99999999999999999999999,)"), "d.npy"); },
               "d.npy: npy dimension larger than 2^40");
}

TEST_F(ParserLimits, NpyUnparsableDtype) {
  expect_error([&] { mmn::parse_npy(npy("<fX", "(1,)", f32(1)), "t.npy"); }, "t.npy: unsupported npy dtype '<fX'");
}

TEST_F(ParserLimits, NpyTruncatedData) {
  expect_error([&] { mmn::parse_npy(npy("<f4", "(100,)", f32(1)), "t.npy"); }, "t.npy: truncated .npy data");
}

TEST_F(ParserLimits, NpyEmptyArrayConverts) {
  const mmn::NpyArray a = mmn::parse_npy(npy("<f4", "(0, 3)"), "e.npy");
  EXPECT_TRUE(a.as_f32().empty());  // used to memcpy into a null pointer
  expect_error([&] { a.as_i64(); }, "e.npy: cannot convert npy dtype <f4 to int64");
}

// ---- safetensors

TEST_F(ParserLimits, SafetensorsEmptyTensor) {
  const std::string p = write("e.safetensors", safetensors(R"({"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})", ""));
  mmn::SafetensorsCheckpoint ck = mmn::SafetensorsCheckpoint::open(p);
  EXPECT_TRUE(mmn::to_f32(ck.get("e")).empty());  // used to memcpy into a null pointer
}

TEST_F(ParserLimits, SafetensorsOverlapHiddenBehindEmptyTensor) {
  const std::string h = R"({"A":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                        R"("E":{"dtype":"F32","shape":[0],"data_offsets":[8,8]},)"
                        R"("C":{"dtype":"F32","shape":[4],"data_offsets":[12,28]}})";
  const std::string bytes = safetensors(h, std::string(28, '\0'));
  expect_error([&] { mmn::parse_safetensors_header("o.safetensors", reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()); },
               "o.safetensors: tensors A and C have overlapping data_offsets");
}

TEST_F(ParserLimits, SafetensorsMisalignedTensorIsCopied) {
  // The data section starts at an odd offset: the BF16 tensor is misaligned in
  // the mapping, and reading it as uint16_t there would be undefined.
  const std::string bf16_one("\x80\x3f", 2);
  const std::string p = write("m.safetensors", safetensors(R"({"b":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]}})",
                                                           bf16_one + bf16_one + bf16_one, 1));
  mmn::SafetensorsCheckpoint ck = mmn::SafetensorsCheckpoint::open(p);
  const mmn::TensorRef& t = ck.get("b");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 2, 0u);
  EXPECT_EQ(mmn::to_f32(t), (std::vector<float>{1.f, 1.f, 1.f}));
}

TEST_F(ParserLimits, SafetensorsHeaderNumberBeyondDouble) {
  const std::string p = write("n.safetensors", safetensors(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,7e5589]}})", f32(1)));
  expect_error([&] { mmn::SafetensorsCheckpoint::open(p); }, "header is not valid JSON (a number is out of range)", p);
}

TEST_F(ParserLimits, SafetensorsHeaderNestedTooDeep) {
  const std::string p = write("d.safetensors", safetensors("{\"__metadata__\":{\"x\":" + nested(300) + "}}", ""));
  expect_error([&] { mmn::SafetensorsCheckpoint::open(p); }, "header: JSON nested deeper than 256 levels", p);
}

// ---- tokenizers

TEST_F(ParserLimits, AddedTokenIdNearInt32Max) {
  const fs::path d = dir_ / "tok";
  fs::create_directories(d);
  fs::copy_file(fs::path(bundled_model()) / "tokenizer.model", d / "tokenizer.model");
  write("tok/added_tokens.json", R"({"<x>": 2147483647})");
  expect_error([&] { mmn::Tokenizer::load(d.string()); }, "id of \"<x>\" must be an integer in [0, 16777215], not 2147483647",
               "added_tokens.json");
  write("tok/added_tokens.json", R"({"<x>": 1e20})");
  expect_error([&] { mmn::Tokenizer::load(d.string()); }, "must be an integer in [0, 16777215], not 1e+20");
}

TEST_F(ParserLimits, AddedTokensDecoderIdNearInt32Max) {
  const fs::path d = dir_ / "tok";
  fs::create_directories(d);
  fs::copy_file(fs::path(bundled_model()) / "tokenizer.model", d / "tokenizer.model");
  write("tok/tokenizer_config.json", R"({"added_tokens_decoder": {"2147483646": {"content": "<y>"}}})");
  expect_error([&] { mmn::Tokenizer::load(d.string()); },
               "added_tokens_decoder id 2147483646 is beyond the token-id limit 16777215", "tokenizer_config.json");
}

TEST_F(ParserLimits, WordPieceAddedTokenIdNearInt32Max) {
  write("wp/vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n");
  write("wp/added_tokens.json", R"({"[DEC]": 2147483647})");
  expect_error([&] { mmn::WordPieceTokenizer::load_dir((dir_ / "wp").string()); },
               "id of \"[DEC]\" must be an integer in [0, 16777215], not 2147483647", "added_tokens.json");
  write("wp/added_tokens.json", "{}");
  write("wp/tokenizer_config.json", R"({"added_tokens_decoder": {"99999999999999999999": {"content": "[X]"}}})");
  expect_error([&] { mmn::WordPieceTokenizer::load_dir((dir_ / "wp").string()); },
               "id of \"[X]\" must be in [0, 16777215]", "tokenizer_config.json");
}

// ---- datasets

TEST_F(ParserLimits, DatasetNonStringCaptions) {
  const std::string l = write("d.jsonl", "{\"image\": \"a.png\"}\n{\"image\": \"b.png\", \"caption\": 5}\n");
  expect_error([&] { mmn::load_dataset(l, ""); }, "d.jsonl: line 2: \"caption\" is 5, not a string");
  const std::string one = write("one.json", R"({"image": "a.png", "caption": {"text": "x"}})");
  expect_error([&] { mmn::load_dataset(one, ""); }, "one.json: \"caption\" is an object, not a string");
  const std::string sbu = write("sbu.json", R"({"image_urls": ["a.jpg", "b.jpg"], "captions": ["ok", 7]})");
  expect_error([&] { mmn::load_dataset(sbu, ""); }, "sbu.json: captions[1] is 7, not a string");
  const std::string nul = write("null.jsonl", "{\"image\": \"a.png\", \"caption\": null}\n");
  EXPECT_EQ(mmn::load_dataset(nul, "").at(0).caption, "");  // null: no caption
}

TEST_F(ParserLimits, DatasetNumberBeyondDouble) {
  const std::string l = write("n.jsonl", "{\"image\": \"a.png\"}\n{\"image\": \"b.png\", \"n\": 1e999}\n");
  expect_error([&] { mmn::load_dataset(l, ""); }, "n.jsonl: line 2 is not valid JSON");
}

// ---- run folders and merge

TEST_F(ParserLimits, RunJsonOfTheWrongType) {
  write("run/run.json", "[1, 2]");
  expect_error([&] { mmn::load_run((dir_ / "run").string()); }, "run.json: expected a JSON object, not an array (not a find run)");
}

TEST_F(ParserLimits, RunJsonFloatsWhereIntegersBelong) {
  write("run/run.json", R"({"model": "m", "layers": 1e300, "units_per_layer": 8, "options": {}})");
  expect_error([&] { mmn::load_run((dir_ / "run").string()); }, "\"layers\" is 1e+300, not an integer in [1, 4096]", "run.json");
  write("run/run.json", R"({"model": "m", "layers": 4, "units_per_layer": 1099511627776, "options": {}})");
  expect_error([&] { mmn::load_run((dir_ / "run").string()); }, "\"units_per_layer\" is 1099511627776, not an integer in [1, 2147483647]");
}

TEST_F(ParserLimits, RunResultFloatTokenId) {
  write("run/run.json", kRun);
  write("run/img/result.json", R"({"image": "a.png", "caption": "c", "generated_ids": [5],
                                   "nouns": [{"word": "cat", "token_id": 1e300, "step": 0}]})");
  expect_error([&] { mmn::load_run((dir_ / "run").string()); },
               "noun 'cat': \"token_id\" is 1e+300, not an integer in [-2147483648, 2147483647]", "result.json");
  write("run/img/result.json", R"({"image": "a.png", "caption": "c", "generated_ids": [1e30], "nouns": []})");
  expect_error([&] { mmn::load_run((dir_ / "run").string()); }, "generated_ids[0] is 1e+30, not a 32-bit integer");
}

TEST_F(ParserLimits, MergeRunJsonOfTheWrongType) {
  write("a/run.json", kRun);
  write("b/run.json", "[{\"model\": \"m\"}]");
  expect_error([&] { mmn::merge_runs({(dir_ / "a").string(), (dir_ / "b").string()}, (dir_ / "out").string()); },
               "run.json: expected a JSON object, not an array (not a find run)", (dir_ / "b").string());
}

TEST_F(ParserLimits, MergeShardNotAString) {
  write("a/run.json", kRun);
  write("b/run.json", R"({"model": "m", "family": "llava", "layers": 4, "units_per_layer": 8, "options": {}, "version": "1", "shard": 1})");
  expect_error([&] { mmn::merge_runs({(dir_ / "a").string(), (dir_ / "b").string()}, (dir_ / "out").string()); },
               "\"shard\" is 1, not a string");
}

TEST_F(ParserLimits, MergeDeeplyNestedOptions) {
  // Comparing two such option trees used to recurse once per level.
  const std::string deep = R"({"model": "m", "options": )" + nested(100000) + "}";
  write("a/run.json", deep);
  write("b/run.json", deep);
  expect_error([&] { mmn::merge_runs({(dir_ / "a").string(), (dir_ / "b").string()}, (dir_ / "out").string()); },
               "JSON nested deeper than 256 levels", "run.json");
}

TEST_F(ParserLimits, MergeKeepsWorking) {
  write("a/run.json", kRun);
  write("b/run.json", kRun);
  write("a/img/result.json", kResult);
  write("b/img/result.json", kResult);
  const mmn::MergeSummary s = mmn::merge_runs({(dir_ / "a").string(), (dir_ / "b").string()}, (dir_ / "out").string());
  EXPECT_EQ(s.new_images, 1);
  EXPECT_EQ(s.images, 1u);
  EXPECT_TRUE(fs::exists(dir_ / "out" / "img" / "result.json"));
}

// ---- images and preprocessing

TEST_F(ParserLimits, PngDeclaringMorePixelsThanItsDataCanHold) {
  // 8192 x 8192 RGBA16 (512 MiB of raw rows) from a few bytes: refused before
  // any pixel buffer is allocated.
  const std::string p = write("big.png", png_header(8192, 8192) + std::string(64, '\0'));
  expect_error([&] { mmn::load_image(p); }, "truncated PNG (8192x8192 pixels declared, more than its", p);
}

TEST_F(ParserLimits, ImageTooLarge) {
  const std::string p = write("huge.png", png_header(16384, 16384) + std::string(64, '\0'));
  expect_error([&] { mmn::load_image(p); }, "PNG image too large (16384x16384; limit 16384 px per side and 67108864 pixels)", p);
}

TEST_F(ParserLimits, JpegDeclaringGigapixelsFromFewBytes) {
  // Seeds of fuzz/corpus (made by fuzz/jpeg_seeds.c): a baseline and a
  // progressive JPEG whose SOF says 8192 x 8192 but whose data covers 16 x 16.
  for (const char* name : {"nasty-baseline-8192sq-tiny.jpg", "nasty-progressive-8192sq-tiny.jpg"}) {
    const std::string p = (fs::path(MMN_SOURCE_DIR) / "fuzz/corpus/fuzz_image" / name).string();
    expect_error([&] { mmn::load_image(p); }, "JPEG", p);
  }
}

TEST_F(ParserLimits, PreprocessorSizeLimit) {
  write("pre/preprocessor_config.json", R"({"size": 8192, "crop_size": 224})");
  expect_error([&] { mmn::load_image_processor_config((dir_ / "pre").string()); },
               "key 'size': 8192 is larger than the 4096-pixel limit", "preprocessor_config.json");
  write("pre/preprocessor_config.json", R"({"size": {"shortest_edge": 18446744073709551615}})");
  expect_error([&] { mmn::load_image_processor_config((dir_ / "pre").string()); },
               "is larger than the 4096-pixel limit", "preprocessor_config.json");
}

TEST_F(ParserLimits, PreprocessSliverImage) {
  mmn::ImageU8 img;
  img.width = 1, img.height = 4096;
  img.rgb.assign(size_t(4096) * 3, 0);
  mmn::ImageProcessorConfig cfg;
  cfg.size_short = 4096;
  expect_error([&] { mmn::preprocess_image(img, cfg); },
               "a 1x4096 image resized to shortest edge 4096 would be 16777216 px long (limit 16384)");
}

TEST_F(ParserLimits, ResizeBeyondPixelLimit) {
  mmn::ImageU8 img;
  img.width = img.height = 1;
  img.rgb.assign(3, 0);
  expect_error([&] { mmn::resize_bicubic(img, 16384, 16384); }, "exceeds the 67108864-pixel limit");
}
