#include "grad/shapes_vocab.h"


#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "data/shapes.h"
#include "io/atomic_file.h"
#include "io/tokenizer.h"
#include "io/tokenizer_train.h"
#include "util/error.h"

namespace mmn {

namespace fs = std::filesystem;

namespace {

constexpr const char* kSpace = "\xE2\x96\x81";  // "▁", SentencePiece's escaped space
constexpr const char* kImage = "<image>";

// The LLaVA-1.5 template of LlavaModel::prompt, which training and inference
// use; the sample text is the prompt, a space and the answer.
std::string llava15_text(const std::string& query, const std::string& prefix, const std::string& answer) {
  return "USER: <image>\n" + query + " ASSISTANT: " + prefix + " " + answer;
}

// --- A minimal protobuf writer/reader: enough to replace the pieces of a
// SentencePiece ModelProto (field 1, repeated message {piece = 1, score = 2,
// type = 3}) and keep every other field as the trainer wrote it.

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

bool get_varint(const std::string& b, size_t& pos, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64 && pos < b.size(); shift += 7) {
    const uint8_t c = static_cast<uint8_t>(b[pos++]);
    *v |= static_cast<uint64_t>(c & 0x7f) << shift;
    if (!(c & 0x80)) return true;
  }
  return false;
}

struct Field {
  uint32_t number = 0;
  std::string raw;      // the whole field, key included
  std::string payload;  // length-delimited fields only
};

std::vector<Field> read_fields(const std::string& b) {
  std::vector<Field> out;
  size_t pos = 0;
  while (pos < b.size()) {
    const size_t start = pos;
    uint64_t key = 0, v = 0;
    Field f;
    if (!get_varint(b, pos, &key)) fail("internal: SentencePiece wrote a malformed model");
    f.number = static_cast<uint32_t>(key >> 3);
    switch (key & 7) {
      case 0:
        if (!get_varint(b, pos, &v)) fail("internal: SentencePiece wrote a malformed model");
        break;
      case 1: pos += 8; break;
      case 5: pos += 4; break;
      case 2:
        if (!get_varint(b, pos, &v) || v > b.size() - pos) fail("internal: SentencePiece wrote a malformed model");
        f.payload = b.substr(pos, v);
        pos += v;
        break;
      default: fail("internal: SentencePiece wrote a malformed model");
    }
    if (pos > b.size()) fail("internal: SentencePiece wrote a malformed model");
    f.raw = b.substr(start, pos - start);
    out.push_back(std::move(f));
  }
  return out;
}

enum PieceType { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4 };

int piece_type(const std::string& payload) {
  for (const Field& f : read_fields(payload))
    if (f.number == 3) {
      size_t pos = 1;
      uint64_t v = 0;
      get_varint(f.raw, pos, &v);
      return static_cast<int>(v);
    }
  return kNormal;
}

std::string user_piece(const std::string& piece) {
  std::string m;
  put_varint(m, (1u << 3) | 2);
  put_varint(m, piece.size());
  m += piece;
  put_varint(m, (2u << 3) | 5);  // score 0.0f
  m.append(4, '\0');
  put_varint(m, (3u << 3) | 0);
  put_varint(m, kUserDefined);
  std::string f;
  put_varint(f, (1u << 3) | 2);
  put_varint(f, m.size());
  return f + m;
}

// The trained model with its pieces replaced: <unk>, <s>, </s> as trained,
// then `pieces` as USER_DEFINED.
std::string with_pieces(const std::string& proto, const std::vector<std::string>& pieces) {
  std::string specials, rest;
  for (const Field& f : read_fields(proto)) {
    if (f.number != 1) {
      rest += f.raw;
      continue;
    }
    const int t = piece_type(f.payload);
    if (t == kUnknown || t == kControl) specials += f.raw;
  }
  std::string out = specials;
  for (const std::string& p : pieces) out += user_piece(p);
  return out + rest;
}

// The trainer gives the specs (BPE, identity normalisation, no byte fallback,
// <unk>/<s>/</s> = 0/1/2); its pieces are replaced.
std::string trained_specs(const std::vector<std::string>& texts) {
  std::vector<std::string> lines = texts;
  for (std::string& t : lines) std::replace(t.begin(), t.end(), '\n', ' ');  // lines are sentences
  return train_sentencepiece(lines, 1000, /*byte_fallback=*/false);
}

bool is_word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// Every piece the tokenizer might cut the texts into: each word with and
// without a leading "▁", each other character alone and after "▁", and "▁".
std::set<std::string> candidate_pieces(const std::vector<std::string>& texts) {
  std::set<std::string> out = {kSpace};
  for (const std::string& text : texts) {
    size_t i = 0;
    while (i < text.size()) {
      if (text.compare(i, std::strlen(kImage), kImage) == 0) {
        i += std::strlen(kImage);
      } else if (is_word_char(text[i])) {
        size_t j = i;
        while (j < text.size() && is_word_char(text[j])) ++j;
        out.insert(text.substr(i, j - i));
        out.insert(kSpace + text.substr(i, j - i));
        i = j;
      } else if (text[i] != ' ') {
        out.insert(std::string(1, text[i]));
        out.insert(kSpace + std::string(1, text[i]));
        ++i;
      } else {
        ++i;
      }
    }
  }
  return out;
}

void write_tokenizer(const std::string& dir, const std::string& specs, const std::vector<std::string>& pieces) {
  const std::string proto = with_pieces(specs, pieces);
  const int32_t base = 3 + static_cast<int32_t>(pieces.size());
  write_hf_tokenizer(dir, proto, {{kImage, base}, {"<pad>", base + 1}});
}

}  // namespace

std::vector<std::string> shapes_world_texts(int version) {
  if (version != 2) fail("internal: the word-level vocabulary is for world version 2");
  const ShapesVocab& v = shapes_vocab(2);
  std::vector<std::string> out;
  // Captions: eight passes over the nine cells rotate every shape, colour and
  // size through every cell phrase; cells are listed 4 + 4 + 1 per caption.
  for (size_t pass = 0; pass < 8; ++pass) {
    std::vector<ShapeObject> objs(9);
    for (size_t i = 0; i < 9; ++i) {
      objs[i].shape = v.shapes[(i + pass) % v.shapes.size()];
      objs[i].color = v.colors[(3 * i + pass) % v.colors.size()];
      objs[i].size = v.sizes[(i + pass) % v.sizes.size()];
      objs[i].position = v.positions[i];
    }
    for (auto [from, to] : {std::pair{0, 4}, {4, 8}, {8, 9}})
      out.push_back(llava15_text(kShapesCaptionQuery, kShapesCaptionPrefix,
                                 shapes_caption_v2({objs.begin() + from, objs.begin() + to})));
  }
  for (size_t c = 0; c < v.phrases.size(); ++c) {
    ShapeObject o;
    o.shape = v.shapes[c % v.shapes.size()], o.color = v.colors[c % v.colors.size()], o.size = v.sizes[c % 2];
    for (const std::string& answer : {shapes_object_phrase(o), std::string("nothing")})
      out.push_back(llava15_text("What is " + v.phrases[c] + "?", kShapesAnswerPrefix, answer));
  }
  for (size_t k = 0; k < v.shapes.size(); ++k) {
    for (const std::string& answer : {v.colors[k % v.colors.size()], std::string("none")})
      out.push_back(llava15_text("What colour is the " + v.shapes[k] + "?", kShapesAnswerPrefix, answer));
    for (const char* n : {"zero", "one", "two", "three", "four"})
      out.push_back(llava15_text("How many " + v.plurals[k] + "?", kShapesAnswerPrefix, n));
    for (const std::string& answer : {v.phrases[k], std::string("nowhere")})
      out.push_back(llava15_text("Where is the " + v.shapes[k] + "?", kShapesAnswerPrefix, answer));
  }
  return out;
}

void write_word_level_tokenizer(const std::string& dir, const std::vector<std::string>& texts) {
  const std::string specs = trained_specs(texts);
  const std::set<std::string> candidates = candidate_pieces(texts);
  std::vector<std::string> pieces(candidates.begin(), candidates.end());
  // Twice: with every candidate, then with the ones the texts used. Dropping
  // a piece that was never matched changes no longest match.
  for (int round = 0; round < 2; ++round) {
    write_tokenizer(dir, specs, pieces);
    const Tokenizer tok = Tokenizer::load(dir);
    std::vector<int64_t> uses(static_cast<size_t>(tok.vocab_size()), 0);
    for (const std::string& t : texts) {
      const std::vector<int32_t> ids = tok.encode(t);
      for (int32_t id : ids) {
        if (id == 0) fail("internal: the world text \"", t, "\" has a word the vocabulary lacks");
        ++uses[static_cast<size_t>(id)];
      }
      // The answer, after the prompt, decodes back to itself.
      const size_t cut = t.rfind(kShapesCaptionPrefix) != std::string::npos
                             ? t.rfind(kShapesCaptionPrefix) + std::strlen(kShapesCaptionPrefix)
                             : t.rfind(kShapesAnswerPrefix) + std::strlen(kShapesAnswerPrefix);
      const std::vector<int32_t> head = tok.encode(t.substr(0, cut));
      if (head.size() >= ids.size() || !std::equal(head.begin(), head.end(), ids.begin()))
        fail("internal: the tokens of \"", t, "\" do not extend its prompt's");
      std::string back = tok.decode({ids.begin() + static_cast<std::ptrdiff_t>(head.size()), ids.end()});
      if (back != t.substr(cut + 1) && back != t.substr(cut))
        fail("internal: \"", t.substr(cut + 1), "\" decodes back as \"", back, "\"");
    }
    std::vector<std::string> used;
    for (size_t k = 0; k < pieces.size(); ++k)
      if (uses[3 + k] > 0) used.push_back(pieces[k]);
    if (round == 1 && used.size() != pieces.size()) fail("internal: the word-level vocabulary did not settle");
    pieces = std::move(used);
  }
}

}  // namespace mmn
