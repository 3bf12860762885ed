// Tokenizer tests: the golden prompts/generations of every case, HF's legacy
// and non-legacy paths, round trips, error handling, and the Q-Former's BERT
// WordPiece tokenizer.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "io/npy.h"
#include "io/tokenizer.h"
#include "io/tokenizer_train.h"
#include "io/wordpiece.h"
#include "test_util.h"
#include "util/error.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using mmn::Tokenizer;
using mmn::WordPieceTokenizer;

namespace {

json read_json(const fs::path& p) {
  std::ifstream f(p);
  return json::parse(f);
}

void write_text(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary);
  f << s;
}

std::vector<int32_t> ids_of(const json& j) { return j.get<std::vector<int32_t>>(); }

// Temp dirs made by this file, removed when the test program exits.
fs::path scratch_dir(const std::string& tag) {
  struct Registry {
    std::vector<fs::path> dirs;
    ~Registry() {
      std::error_code ec;
      for (const auto& d : dirs) fs::remove_all(d, ec);
    }
  };
  static Registry registry;
  registry.dirs.push_back(mmn::test::temp_dir(tag));
  return registry.dirs.back();
}

// A copy of a golden model's tokenizer files in a fresh temp dir, so a test
// can edit or break them.
fs::path tokenizer_copy(const std::string& model, const std::string& tag) {
  fs::path src = mmn::test::golden("models/" + model);
  fs::path dst = scratch_dir("tok-" + tag);
  for (const char* f : {"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"})
    if (fs::exists(src / f)) fs::copy_file(src / f, dst / f);
  return dst;
}

// tokenizer_copy with tokenizer_config.json "legacy" set (or removed when null).
fs::path with_legacy(const std::string& model, const json& legacy) {
  fs::path dir = tokenizer_copy(model, "legacy");
  json cfg = read_json(dir / "tokenizer_config.json");
  if (legacy.is_null()) cfg.erase("legacy");
  else cfg["legacy"] = legacy;
  write_text(dir / "tokenizer_config.json", cfg.dump(2));
  return dir;
}

// Expects Tokenizer::load(dir) to throw one-line mmn::Error naming `file`.
void expect_load_error(const fs::path& dir, const std::string& file) {
  try {
    Tokenizer::load(dir.string());
    ADD_FAILURE() << "no error for " << dir;
  } catch (const mmn::Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(file), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

std::vector<fs::path> golden_cases() {
  std::vector<fs::path> cases;
  for (const auto& model : fs::directory_iterator(mmn::test::golden("cases")))
    for (const auto& c : fs::directory_iterator(model.path()))
      if (fs::exists(c.path() / "summary.json")) cases.push_back(c.path());
  std::sort(cases.begin(), cases.end());
  return cases;
}

const Tokenizer& cached(const std::string& model) {
  static std::map<std::string, Tokenizer> cache;
  auto it = cache.find(model);
  if (it == cache.end())
    it = cache.emplace(model, Tokenizer::load(mmn::test::golden("models/" + model).string())).first;
  return it->second;
}

}  // namespace

// Every golden case: prompt -> input_ids/input_pieces, generated ids -> text.
TEST(Tokenizer, GoldenCases) {
  MMN_REQUIRE_SHARED();
  auto cases = golden_cases();
  ASSERT_GE(cases.size(), 12u);
  for (const auto& dir : cases) {
    SCOPED_TRACE(dir.string());
    json s = read_json(dir / "summary.json");
    const std::string model = s["model"];
    const Tokenizer& tok = cached(model);
    const std::string prompt = s["prompt"];
    const auto want = ids_of(s["input_ids"]);
    const auto want_pieces = s["input_pieces"].get<std::vector<std::string>>();
    ASSERT_EQ(want.size(), want_pieces.size());

    // The .npy holds the same ids as summary.json.
    auto npy = mmn::read_npy((dir / "input_ids.npy").string()).as_i64();
    EXPECT_EQ(std::vector<int32_t>(npy.begin(), npy.end()), want);

    // mPLUG-Owl2 marks the image with a negative id that is not a token.
    const json& img = s["image_token"];
    const bool placeholder = img.contains("id") && img["id"].get<int>() < 0;
    std::vector<int32_t> got;
    if (placeholder) {
      const int32_t marker_id = img["id"];
      const std::string marker = want_pieces.at(img["index_in_input_ids"].get<size_t>());
      got = tok.encode_image_chunks(prompt, marker, marker_id);
    } else {
      got = tok.encode(prompt);
    }
    EXPECT_EQ(got, want);
    for (size_t i = 0; i < want.size(); ++i) {
      if (want[i] < 0) continue;
      EXPECT_EQ(tok.piece(want[i]), want_pieces[i]) << "at " << i;
    }
    if (!placeholder) {
      // tokenize() gives the pieces after the BOS.
      auto pieces = tok.tokenize(prompt);
      EXPECT_EQ(pieces, std::vector<std::string>(want_pieces.begin() + 1, want_pieces.end()));
    }

    // Generated tokens decode like HF decode(skip_special_tokens=True).
    const json& gen = s["generation"];
    const auto gen_ids = ids_of(gen["generated_ids"]);
    const auto gen_pieces = gen["generated_pieces"].get<std::vector<std::string>>();
    for (size_t i = 0; i < gen_ids.size(); ++i) EXPECT_EQ(tok.piece(gen_ids[i]), gen_pieces[i]);
    EXPECT_EQ(tok.decode(gen_ids), gen["generated_text"].get<std::string>());
    if (gen.contains("full_text_decoded")) {
      auto all = want;
      all.insert(all.end(), gen_ids.begin(), gen_ids.end());
      EXPECT_EQ(tok.decode(all, /*skip_special_tokens=*/false), gen["full_text_decoded"].get<std::string>());
    }

    // What a legacy tokenizer would have produced.
    if (s.contains("input_ids_if_legacy_tokenizer")) {
      ASSERT_FALSE(tok.legacy());
      Tokenizer legacy = Tokenizer::load(with_legacy(model, true).string());
      EXPECT_TRUE(legacy.legacy());
      EXPECT_EQ(legacy.encode(prompt), ids_of(s["input_ids_if_legacy_tokenizer"]));
      EXPECT_EQ(legacy.decode(gen_ids), gen["generated_text"].get<std::string>());
    }
  }
}

// The README asserts that legacy=true and legacy=false agree on the
// InstructBLIP and mPLUG-Owl2 prompts; check both directions.
TEST(Tokenizer, LegacyFlagAgreesWhereTheReadmeSaysSo) {
  MMN_REQUIRE_SHARED();
  for (const char* model : {"tiny-iblip-a-f32", "tiny-owl2-a-f32"}) {
    SCOPED_TRACE(model);
    json s = read_json(mmn::test::golden(std::string("cases/") + model + "/tiny_10x10/summary.json"));
    const std::string prompt = s["prompt"];
    const auto want = ids_of(s["input_ids"]);
    const bool was_legacy = cached(model).legacy();
    Tokenizer flipped = Tokenizer::load(with_legacy(model, !was_legacy).string());
    EXPECT_EQ(flipped.legacy(), !was_legacy);
    if (std::string(model).find("owl2") != std::string::npos)
      EXPECT_EQ(flipped.encode_image_chunks(prompt, "<|image|>", -200), want);
    else
      EXPECT_EQ(flipped.encode(prompt), want);
  }
}

// Absent "legacy" means legacy=true in transformers 4.37.
TEST(Tokenizer, MissingLegacyMeansLegacy) {
  MMN_REQUIRE_SHARED();
  Tokenizer tok = Tokenizer::load(with_legacy("tiny-llava-a-f32", nullptr).string());
  EXPECT_TRUE(tok.legacy());
  json s = read_json(mmn::test::golden("cases/tiny-llava-a-f32/landscape_80x60/summary.json"));
  EXPECT_EQ(tok.encode(s["prompt"].get<std::string>()), ids_of(s["input_ids_if_legacy_tokenizer"]));
}

// The example of LlamaTokenizer's docstring: "Hello <s>." with both flags.
TEST(Tokenizer, SpecialTokenInTextBothModes) {
  MMN_REQUIRE_SHARED();
  const Tokenizer& modern = cached("tiny-llava-a-f32");
  EXPECT_EQ(modern.encode("Hello <s>."), (std::vector<int32_t>{1, 15043, 29871, 1, 29889}));
  Tokenizer legacy = Tokenizer::load(with_legacy("tiny-llava-a-f32", true).string());
  EXPECT_EQ(legacy.encode("Hello <s>."), (std::vector<int32_t>{1, 15043, 29871, 1, 869}));
  // A leading special token drops the prepended "▁".
  EXPECT_EQ(modern.tokenize("<s>Hi").front(), "<s>");
  // add_bos=false, empty text.
  EXPECT_EQ(modern.encode("", true), (std::vector<int32_t>{1}));
  EXPECT_TRUE(modern.encode("", false).empty());
  EXPECT_EQ(modern.encode("An image of", false), (std::vector<int32_t>{530, 1967, 310}));
}

TEST(Tokenizer, VocabularyAndSpecialIds) {
  MMN_REQUIRE_SHARED();
  const Tokenizer& llava = cached("tiny-llava-a-f32");
  EXPECT_EQ(llava.base_vocab_size(), 32000);
  EXPECT_EQ(llava.vocab_size(), 32002);
  EXPECT_EQ(llava.bos_id(), 1);
  EXPECT_EQ(llava.eos_id(), 2);
  EXPECT_TRUE(llava.add_bos_token());
  EXPECT_EQ(llava.token_id("<image>"), 32000);
  EXPECT_EQ(llava.token_id("<pad>"), 32001);
  EXPECT_EQ(llava.token_id("▁the"), 278);
  EXPECT_EQ(llava.token_id("<0x0A>"), 13);
  EXPECT_EQ(llava.token_id("<unk>"), 0);
  EXPECT_EQ(llava.token_id("definitely-not-a-piece"), std::nullopt);
  EXPECT_EQ(llava.token_id(""), std::nullopt);
  EXPECT_EQ(llava.piece(32000), "<image>");
  EXPECT_EQ(llava.piece(29871), "▁");
  EXPECT_TRUE(llava.is_added(32000));
  EXPECT_TRUE(llava.is_added(32001));
  EXPECT_FALSE(llava.is_added(31999));
  EXPECT_THROW(llava.piece(32002), mmn::Error);
  EXPECT_THROW(llava.piece(-200), mmn::Error);
  EXPECT_THROW(llava.decode({1, 32005}), mmn::Error);

  // InstructBLIP: bos = eos = unk = "</s>" (id 2), [PAD] = 32000.
  const Tokenizer& iblip = cached("tiny-iblip-a-f32");
  EXPECT_TRUE(iblip.legacy());
  EXPECT_EQ(iblip.bos_id(), 2);
  EXPECT_EQ(iblip.eos_id(), 2);
  EXPECT_EQ(iblip.vocab_size(), 32001);
  EXPECT_EQ(iblip.token_id("[PAD]"), 32000);
  EXPECT_EQ(iblip.encode("An image of", true).front(), 2);
  EXPECT_EQ(iblip.decode({2, 530, 1967, 310, 32000}), "An image of");
  // "<s>" is not special there: it stays in the text, standing alone.
  EXPECT_EQ(iblip.decode({530, 1, 1967}), "An <s> image");

  // mPLUG-Owl2: plain LLaMA-2 tokenizer without added tokens.
  const Tokenizer& owl = cached("tiny-owl2-a-f32");
  EXPECT_EQ(owl.vocab_size(), 32000);
  EXPECT_FALSE(owl.is_added(31999));
  EXPECT_EQ(owl.bos_id(), 1);
  EXPECT_EQ(owl.token_id("<|image|>"), std::nullopt);
}

TEST(Tokenizer, DecodeSkipsSpecialsAndSpacesAddedTokens) {
  MMN_REQUIRE_SHARED();
  const Tokenizer& tok = cached("tiny-llava-a-f32");
  auto ids = tok.encode("USER: <image>\nHi</s>");
  EXPECT_EQ(ids.back(), 2);
  // HF joins non-special added tokens with spaces; specials vanish.
  EXPECT_EQ(tok.decode(ids), "USER:  <image> \nHi");
  EXPECT_EQ(tok.decode(ids, false), "<s> USER:  <image> \nHi</s>");
  EXPECT_EQ(tok.decode({}), "");
  EXPECT_EQ(tok.decode({1, 2, 32001}), "");
}

// Realistic sentences survive encode -> decode, in both modes.
TEST(Tokenizer, RoundTrip) {
  MMN_REQUIRE_SHARED();
  const std::vector<std::string> texts = {
      "A man riding a horse on the beach at sunset.",
      "Describe the image in few words.",
      "Two dogs  play\tin the snow;\nthen they rest.",
      "Ünïcödé façade, naïve café — 東京タワー, Москва, Ελλάδα.",
      "Emoji 🦙🚀 and rare bytes: \u00a0\u2028 ok",
      "Numbers 3.14159, $1,000 and 50% off!",
      "code: `int main() { return 0; }` // done",
  };
  const Tokenizer& modern = cached("tiny-llava-a-f32");
  Tokenizer legacy = Tokenizer::load(with_legacy("tiny-llava-a-f32", true).string());
  for (const auto& t : texts) {
    SCOPED_TRACE(t);
    auto ids = modern.encode(t);
    EXPECT_EQ(ids.front(), 1);
    for (int32_t id : ids) EXPECT_TRUE(id >= 0 && id < 32000);
    EXPECT_EQ(modern.decode(ids), t);
    EXPECT_EQ(legacy.decode(legacy.encode(t)), t);
  }
  // Leading spaces survive legacy=false; legacy=true loses one, because HF
  // strips the first "▁" and SentencePiece strips its dummy prefix again.
  const std::string padded = "   leading and trailing spaces   ";
  EXPECT_EQ(modern.decode(modern.encode(padded)), padded);
  EXPECT_EQ(legacy.decode(legacy.encode(padded)), padded.substr(1));
  // legacy=false reads a literal "▁" as a space.
  EXPECT_EQ(modern.encode("\u2581a\u2581b"), modern.encode(" a b"));
  EXPECT_EQ(modern.decode(modern.encode("\u2581a\u2581b")), " a b");
  // Byte fallback: a character absent from the vocabulary becomes <0x..> bytes.
  auto ids = modern.encode("🦙", false);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(modern.piece(ids.back()).rfind("<0x", 0), 0u);
  EXPECT_EQ(modern.decode(ids), "🦙");
}

// train_sentencepiece feeds the trainer from memory: the same sentences give
// the same bytes (no temporary path recorded in the proto), and a line break
// inside a sentence splits it as the trainer's own file reader would.
TEST(Tokenizer, TrainedModelIsDeterministic) {
  const std::vector<std::string> corpus = {"a red circle on the left", "a blue square on the right",
                                           "a green star\nin the center", "a red circle and a blue square"};
  const std::string one = mmn::train_sentencepiece(corpus, 40, /*byte_fallback=*/false);
  const std::string two = mmn::train_sentencepiece(corpus, 40, /*byte_fallback=*/false);
  EXPECT_EQ(one, two);
  EXPECT_EQ(one.find("mmn-spm"), std::string::npos);
  EXPECT_EQ(one.find(std::filesystem::temp_directory_path().string()), std::string::npos);
  std::vector<std::string> split = corpus;
  split[2] = "a green star";
  split.insert(split.begin() + 3, "in the center");
  EXPECT_EQ(mmn::train_sentencepiece(split, 40, false), one);
  EXPECT_THROW(mmn::train_sentencepiece({}, 40, false), mmn::Error);
}

TEST(Tokenizer, ImageChunksEdgeCases) {
  MMN_REQUIRE_SHARED();
  const Tokenizer& tok = cached("tiny-owl2-a-f32");
  // Leading marker: the empty first chunk has no BOS, so later chunks keep theirs.
  auto ids = tok.encode_image_chunks("<|image|>Hi", "<|image|>", -200);
  EXPECT_EQ(ids.front(), -200);
  EXPECT_EQ(ids.at(1), 1);
  // Two markers, one BOS.
  ids = tok.encode_image_chunks("A<|image|>B<|image|>C", "<|image|>", -200);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 1);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), -200), 2);
  // No marker: plain encode.
  EXPECT_EQ(tok.encode_image_chunks("Hello world", "<|image|>", -200), tok.encode("Hello world"));
}

TEST(Tokenizer, Errors) {
  MMN_REQUIRE_SHARED();
  // Missing tokenizer.model.
  fs::path dir = tokenizer_copy("tiny-llava-a-f32", "missing");
  fs::remove(dir / "tokenizer.model");
  expect_load_error(dir, "tokenizer.model");
  expect_load_error(dir / "no-such-dir", "tokenizer.model");

  // Corrupt tokenizer.model (random bytes), in both modes.
  for (bool legacy : {false, true}) {
    dir = with_legacy("tiny-llava-a-f32", legacy);
    std::mt19937 rng(1234 + legacy);
    std::string junk(4096, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    write_text(dir / "tokenizer.model", junk);
    expect_load_error(dir, "tokenizer.model");
    write_text(dir / "tokenizer.model", "");
    expect_load_error(dir, "tokenizer.model");
  }

  // Malformed added_tokens.json.
  dir = tokenizer_copy("tiny-llava-a-f32", "added");
  write_text(dir / "added_tokens.json", "{\"<image>\": 32000,");
  expect_load_error(dir, "added_tokens.json");
  write_text(dir / "added_tokens.json", "{\"<image>\": \"x\"}");
  expect_load_error(dir, "added_tokens.json");
  write_text(dir / "added_tokens.json", "[1, 2]");
  expect_load_error(dir, "added_tokens.json");

  // Malformed tokenizer_config.json.
  dir = tokenizer_copy("tiny-llava-a-f32", "config");
  write_text(dir / "tokenizer_config.json", "{\"legacy\": false");
  expect_load_error(dir, "tokenizer_config.json");
  write_text(dir / "tokenizer_config.json", "{\"legacy\": \"no\"}");
  expect_load_error(dir, "tokenizer_config.json");
  write_text(dir / "tokenizer_config.json", "{\"added_tokens_decoder\": {\"abc\": {\"content\": \"<x>\"}}}");
  expect_load_error(dir, "tokenizer_config.json");
  write_text(dir / "tokenizer_config.json", "{\"bos_token\": 5}");
  expect_load_error(dir, "tokenizer_config.json");

  // Malformed special_tokens_map.json.
  dir = tokenizer_copy("tiny-llava-a-f32", "map");
  write_text(dir / "special_tokens_map.json", "not json");
  expect_load_error(dir, "special_tokens_map.json");

  // Only tokenizer.model present: LlamaTokenizer defaults (legacy, <s>/</s>).
  dir = tokenizer_copy("tiny-llava-a-f32", "bare");
  for (const char* f : {"tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"})
    fs::remove(dir / f);
  Tokenizer bare = Tokenizer::load(dir.string());
  EXPECT_TRUE(bare.legacy());
  EXPECT_EQ(bare.vocab_size(), 32000);
  ASSERT_TRUE(bare.token_id("▁Hi"));
  EXPECT_EQ(bare.encode("Hi"), (std::vector<int32_t>{1, *bare.token_id("▁Hi")}));
}

// --- Q-Former BERT WordPiece tokenizer ---

namespace {
const WordPieceTokenizer& qformer_tokenizer() {
  static WordPieceTokenizer tok =
      WordPieceTokenizer::load_dir(mmn::test::golden("models/tiny-iblip-a-f32/qformer_tokenizer").string());
  return tok;
}
std::vector<std::string> pieces(const WordPieceTokenizer& t, const std::vector<int32_t>& ids) {
  std::vector<std::string> out;
  for (int32_t id : ids) out.push_back(t.piece(id));
  return out;
}
}  // namespace

TEST(WordPiece, GoldenQFormerIds) {
  MMN_REQUIRE_SHARED();
  const auto& tok = qformer_tokenizer();
  for (const char* image : {"landscape_80x60", "portrait_48x72", "tiny_10x10"}) {
    fs::path dir = mmn::test::golden(std::string("cases/tiny-iblip-a-f32/") + image);
    json s = read_json(dir / "summary.json");
    auto npy = mmn::read_npy((dir / "qformer_input_ids.npy").string()).as_i64();
    std::vector<int32_t> want(npy.begin(), npy.end());
    EXPECT_EQ(want, ids_of(s["qformer_input_ids"]));
    auto got = tok.encode(s["prompt"].get<std::string>());
    EXPECT_EQ(got, want);
    EXPECT_EQ(pieces(tok, got), s["qformer_input_pieces"].get<std::vector<std::string>>());
  }
  EXPECT_EQ(tok.vocab_size(), 30523);
  EXPECT_EQ(tok.token_id("[DEC]"), 30522);
  EXPECT_EQ(tok.cls_id(), 101);
  EXPECT_EQ(tok.sep_id(), 102);
}

TEST(WordPiece, BasicTokenizerRules) {
  MMN_REQUIRE_SHARED();
  const auto& tok = qformer_tokenizer();
  auto words = [&](const std::string& text) {
    auto ids = tok.encode(text, /*add_special_tokens=*/false);
    return pieces(tok, ids);
  };
  using V = std::vector<std::string>;
  // Lowercase, accents stripped (NFD), punctuation split.
  EXPECT_EQ(words("Héllo, WORLD!"), (V{"hello", ",", "world", "!"}));
  EXPECT_EQ(words("Crème Brûlée"), words("creme brulee"));
  EXPECT_EQ(words("creme brulee"), (V{"cr", "##eme", "br", "##ule", "##e"}));
  // CJK characters become separate words.
  EXPECT_EQ(words("東京"), (V{"東", "京"}));
  // Control characters vanish, odd whitespace separates.
  EXPECT_EQ(words("a\x01" "b\u00a0c\td"), (V{"ab", "c", "d"}));
  // WordPiece continuation pieces.
  EXPECT_EQ(words("unaffable"), (V{"una", "##ffa", "##ble"}));
  // Unknown characters and over-long words give [UNK].
  EXPECT_EQ(words("\U0001F999"), (V{"[UNK]"}));
  EXPECT_EQ(words(std::string(101, 'a')), (V{"[UNK]"}));
  // Special tokens are kept literally.
  EXPECT_EQ(words("[CLS] hi [SEP]"), (V{"[CLS]", "hi", "[SEP]"}));
  EXPECT_EQ(tok.encode(""), (std::vector<int32_t>{101, 102}));
  // HF lowercases one character at a time before the BasicTokenizer, so a
  // final capital sigma becomes "σ", not "ς".
  EXPECT_EQ(words("ΟΔΟΣ"), words("οδοσ"));
  EXPECT_NE(words("ΟΔΟΣ"), words("οδος"));
  // Full-case lowering of U+0130 gives "i" + U+0307, whose mark is stripped.
  EXPECT_EQ(words("\u0130stanbul"), words("istanbul"));
  // Hangul syllables decompose into jamo when accents are stripped.
  EXPECT_EQ(words("\uD55C"), words("\u1112\u1161\u11AB"));
}

TEST(WordPiece, Errors) {
  MMN_REQUIRE_SHARED();
  EXPECT_THROW(WordPieceTokenizer::load("/nonexistent/vocab.txt", true), mmn::Error);
  fs::path dir = scratch_dir("wp");
  write_text(dir / "vocab.txt", "[PAD]\nhello\n");
  try {
    WordPieceTokenizer::load((dir / "vocab.txt").string(), true);
    ADD_FAILURE() << "vocab without [UNK]/[CLS]/[SEP] accepted";
  } catch (const mmn::Error& e) {
    EXPECT_NE(std::string(e.what()).find("vocab.txt"), std::string::npos);
  }
  fs::copy_file(mmn::test::golden("models/tiny-iblip-a-f32/qformer_tokenizer/vocab.txt"), dir / "v2.txt");
  fs::create_directories(dir / "q");
  fs::copy_file(dir / "v2.txt", dir / "q" / "vocab.txt");
  write_text(dir / "q" / "added_tokens.json", "{\"[DEC]\": ");
  try {
    WordPieceTokenizer::load_dir((dir / "q").string());
    ADD_FAILURE() << "malformed added_tokens.json accepted";
  } catch (const mmn::Error& e) {
    EXPECT_NE(std::string(e.what()).find("added_tokens.json"), std::string::npos);
  }
}
