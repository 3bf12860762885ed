// LLaMA SentencePiece tokenizer with Hugging Face (transformers 4.37, slow
// LlamaTokenizer) semantics. See tokenizer.h for the interface.
//
// What HF does, and what this file reproduces:
//  * Added tokens (added_tokens_decoder, added_tokens.json and every special
//    token) are matched literally, leftmost-longest; only the text between
//    them goes through SentencePiece.
//  * legacy = true (also when absent/null): the model is used as shipped, so
//    SentencePiece puts its dummy "▁" in front of every segment.
//  * legacy = false: the model is loaded with normalizer_spec.add_dummy_prefix
//    = false, "▁" is prepended to the whole text (after turning any literal
//    "▁" into a space), and a segment that starts with "▁"/" " is encoded as
//    unk_token + segment with the unk pieces dropped, which keeps its leading
//    "▁" without adding another. Net effect: one "▁" at the start of the text
//    and none after an added token such as <image>.
//  * decode = PreTrainedTokenizer._decode + LlamaTokenizer.convert_tokens_to_string.
#include "io/tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <array>
#include <climits>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <unordered_map>

#include "io/atomic_file.h"
#include "io/json_file.h"
#include "util/error.h"

namespace mmn {
namespace {

using json = nlohmann::json;
constexpr const char* kSpiece = "\xE2\x96\x81";  // "▁" (U+2581)
// Added-token ids must be below 2^24 (docs/limits.md): real vocabularies stay
// under 300k, and the vocabulary size (largest id + 1) must fit int32_t
// without overflow while embedding tables sized by it stay allocatable.
constexpr int64_t kMaxTokenId = (int64_t{1} << 24) - 1;

bool file_exists(const std::string& path) { return std::ifstream(path).good(); }

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size())
    s.replace(pos, from.size(), to);
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

// --- Minimal protobuf wire format: just enough to clear add_dummy_prefix. ---

struct Reader {
  const std::string& buf;
  size_t pos = 0;
  bool ok = true;

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos >= buf.size()) break;
      uint8_t b = static_cast<uint8_t>(buf[pos++]);
      v |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    ok = false;
    return 0;
  }
  // Skips the payload of a field with the given wire type; false when malformed.
  bool skip(uint32_t wire) {
    switch (wire) {
      case 0: varint(); return ok;
      case 1: return advance(8);
      case 2: { uint64_t n = varint(); return ok && advance(n); }
      case 5: return advance(4);
      default: return false;  // groups (3/4) do not occur in ModelProto
    }
  }
  bool advance(uint64_t n) {
    if (n > buf.size() - pos) return false;
    pos += n;
    return true;
  }
};

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

// Copies a message's fields except field `drop`; false when malformed.
bool copy_without_field(const std::string& msg, uint32_t drop, std::string& out) {
  Reader r{msg};
  while (r.pos < msg.size()) {
    size_t start = r.pos;
    uint64_t key = r.varint();
    if (!r.ok) return false;
    uint32_t field = uint32_t(key >> 3), wire = uint32_t(key & 7);
    if (field == 0 || !r.skip(wire)) return false;
    if (field != drop) out.append(msg, start, r.pos - start);
  }
  return true;
}

// Returns the serialized ModelProto with normalizer_spec (field 3) carrying
// add_dummy_prefix (its field 3) = false, like HF's legacy=false loading.
std::string without_dummy_prefix(const std::string& model, const std::string& path) {
  std::string normalizer;  // concatenated normalizer_spec payloads (protobuf merges them)
  std::string rest;
  Reader r{model};
  while (r.pos < model.size()) {
    size_t start = r.pos;
    uint64_t key = r.varint();
    uint32_t field = uint32_t(key >> 3), wire = uint32_t(key & 7);
    if (!r.ok || field == 0) fail(path, ": not a SentencePiece model (bad protobuf)");
    if (field == 3 && wire == 2) {
      uint64_t n = r.varint();
      if (!r.ok || !r.advance(n)) fail(path, ": not a SentencePiece model (bad protobuf)");
      normalizer.append(model, r.pos - n, n);
    } else {
      if (!r.skip(wire)) fail(path, ": not a SentencePiece model (bad protobuf)");
      rest.append(model, start, r.pos - start);
    }
  }
  std::string spec;
  if (!copy_without_field(normalizer, 3, spec))
    fail(path, ": not a SentencePiece model (bad normalizer_spec)");
  put_varint(spec, (3u << 3) | 0);  // add_dummy_prefix, varint
  put_varint(spec, 0);              // = false
  put_varint(rest, (3u << 3) | 2);  // normalizer_spec, length-delimited
  put_varint(rest, spec.size());
  rest += spec;
  return rest;
}

// A special-token entry of tokenizer_config.json / special_tokens_map.json:
// a string, an AddedToken-like object with "content", or null.
std::optional<std::string> token_content(const json& v, const std::string& path, const std::string& key) {
  if (v.is_null()) return std::nullopt;
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  fail(path, ": \"", key, "\" must be a string or an object with \"content\"");
}

bool bool_field(const json& j, const char* key, bool dflt, const std::string& path) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  if (!j[key].is_boolean()) fail(path, ": \"", key, "\" must be a boolean");
  return j[key].get<bool>();
}

}  // namespace

struct Tokenizer::Impl {
  struct Added {
    std::string content;
    bool lstrip = false, rstrip = false;
  };

  sentencepiece::SentencePieceProcessor sp;
  bool legacy = true;
  bool add_bos = true, add_eos = false;
  bool clean_up_spaces = false;
  std::optional<std::string> bos, eos, unk, pad;
  std::vector<std::string> additional;
  std::unordered_map<std::string, int32_t> added_enc;  // matched literally in text
  std::unordered_map<int32_t, Added> added_dec;
  std::set<std::string> special;  // HF all_special_tokens
  std::set<int32_t> special_ids;  // HF all_special_ids
  int32_t base_size = 0, total_size = 0;
  size_t unk_len = 0;             // HF unk_token_length (legacy=false only)

  std::array<bool, 256> added_first{};  // first bytes of added tokens
  size_t added_max_len = 0;

  void add_token(const std::string& content, int32_t id, bool lstrip = false, bool rstrip = false) {
    if (content.empty()) return;
    added_first[static_cast<uint8_t>(content[0])] = true;
    added_max_len = std::max(added_max_len, content.size());
    added_enc[content] = id;
    added_dec[id] = Added{content, lstrip, rstrip};
    total_size = std::max(total_size, id + 1);
  }

  std::vector<std::string> sp_encode(const std::string& text) const {
    std::vector<std::string> pieces;
    auto st = sp.Encode(text, &pieces);
    if (!st.ok()) fail("sentencepiece encode failed: ", st.ToString());
    return pieces;
  }

  std::string sp_decode(const std::vector<std::string>& pieces) const {
    std::string out;
    if (pieces.empty()) return out;
    auto st = sp.Decode(pieces, &out);
    if (!st.ok()) fail("sentencepiece decode failed: ", st.ToString());
    return out;
  }

  // LlamaTokenizer._tokenize: one segment between added tokens.
  std::vector<std::string> tokenize_segment(const std::string& seg) const {
    if (legacy || !(starts_with(seg, kSpiece) || starts_with(seg, " "))) return sp_encode(seg);
    auto pieces = sp_encode(*unk + seg);
    if (pieces.size() >= unk_len) pieces.erase(pieces.begin(), pieces.begin() + unk_len);
    return pieces;
  }

  // PreTrainedTokenizer.tokenize: split on added tokens (leftmost-longest),
  // honour their lstrip/rstrip, SentencePiece in between.
  std::vector<std::string> split_and_tokenize(const std::string& text) const {
    struct Part { std::string text; bool added; };
    std::vector<Part> parts;
    size_t seg_start = 0, i = 0;
    while (i < text.size()) {
      size_t best = 0;
      if (added_first[static_cast<uint8_t>(text[i])]) {
        for (size_t len = std::min(added_max_len, text.size() - i); len > 0; --len) {
          if (added_enc.count(text.substr(i, len))) { best = len; break; }
        }
      }
      if (best == 0) { ++i; continue; }
      if (i > seg_start) parts.push_back({text.substr(seg_start, i - seg_start), false});
      parts.push_back({text.substr(i, best), true});
      i += best;
      seg_start = i;
    }
    if (seg_start < text.size()) parts.push_back({text.substr(seg_start), false});

    // lstrip/rstrip of an added token eat the whitespace of its neighbours.
    auto ws = std::string(" \t\n\r\f\v");
    for (size_t k = 0; k < parts.size(); ++k) {
      if (!parts[k].added) continue;
      const Added& a = added_dec.at(added_enc.at(parts[k].text));
      if (a.rstrip && k + 1 < parts.size() && !parts[k + 1].added) {
        auto& s = parts[k + 1].text;
        s.erase(0, std::min(s.size(), s.find_first_not_of(ws)));
      }
      if (a.lstrip && k > 0 && !parts[k - 1].added) {
        auto& s = parts[k - 1].text;
        auto last = s.find_last_not_of(ws);
        s.erase(last == std::string::npos ? 0 : last + 1);
      }
    }

    std::vector<std::string> tokens;
    for (const auto& p : parts) {
      if (p.text.empty()) continue;
      if (p.added) {
        tokens.push_back(p.text);
      } else {
        auto seg = tokenize_segment(p.text);
        tokens.insert(tokens.end(), seg.begin(), seg.end());
      }
    }
    return tokens;
  }

  // LlamaTokenizer.tokenize.
  std::vector<std::string> tokenize(const std::string& text) const {
    if (legacy || text.empty()) return split_and_tokenize(text);
    std::string t = text;
    replace_all(t, kSpiece, " ");
    auto tokens = split_and_tokenize(kSpiece + t);
    if (tokens.size() > 1 && tokens[0] == kSpiece && special.count(tokens[1])) tokens.erase(tokens.begin());
    return tokens;
  }

  int32_t token_to_id(const std::string& tok) const {
    auto it = added_enc.find(tok);
    return it != added_enc.end() ? it->second : sp.PieceToId(tok);
  }

  std::string id_to_token(int32_t id) const {
    auto it = added_dec.find(id);
    if (it != added_dec.end()) return it->second.content;
    if (id < 0 || id >= base_size) fail("token id ", id, " is outside the vocabulary (size ", total_size, ")");
    return sp.IdToPiece(id);
  }

  // LlamaTokenizer.convert_tokens_to_string.
  std::string tokens_to_string(std::vector<std::string> tokens) const {
    if (starts_with(tokens[0], kSpiece)) tokens[0].erase(0, 3);
    std::string out;
    std::vector<std::string> cur;
    bool prev_special = false;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (special.count(tokens[i])) {
        if (!prev_special && i != 0 && legacy) out += ' ';
        out += sp_decode(cur) + tokens[i];
        cur.clear();
        prev_special = true;
      } else {
        cur.push_back(tokens[i]);
        prev_special = false;
      }
    }
    return out + sp_decode(cur);
  }
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::string& model_dir) {
  auto impl = std::make_unique<Impl>();
  Impl& t = *impl;
  const std::string model_path = model_dir + "/tokenizer.model";
  const std::string config_path = model_dir + "/tokenizer_config.json";
  const std::string map_path = model_dir + "/special_tokens_map.json";
  const std::string added_path = model_dir + "/added_tokens.json";

  // tokenizer_config.json: legacy flag, BOS/EOS switches, special tokens.
  json cfg = read_json_object_if_exists(config_path).value_or(json::object());
  t.legacy = bool_field(cfg, "legacy", true, config_path);  // HF: None means legacy
  t.add_bos = bool_field(cfg, "add_bos_token", true, config_path);
  t.add_eos = bool_field(cfg, "add_eos_token", false, config_path);
  t.clean_up_spaces = bool_field(cfg, "clean_up_tokenization_spaces", false, config_path);
  if (cfg.contains("sp_model_kwargs") && !cfg["sp_model_kwargs"].is_null()) {
    const json& kw = cfg["sp_model_kwargs"];
    if (!kw.is_object()) fail(config_path, ": \"sp_model_kwargs\" must be an object");
    // Only sampling changes what encode produces; that is not reproducible.
    if (bool_field(kw, "enable_sampling", false, config_path))
      fail(config_path, ": sp_model_kwargs.enable_sampling=true is not supported");
  }

  // Special tokens: LlamaTokenizer defaults, then tokenizer_config.json, then
  // special_tokens_map.json (which HF lets override the config).
  t.bos = "<s>";
  t.eos = "</s>";
  t.unk = "<unk>";
  auto take_specials = [&](const json& j, const std::string& path) {
    const std::pair<const char*, std::optional<std::string>*> keys[] = {
        {"bos_token", &t.bos}, {"eos_token", &t.eos}, {"unk_token", &t.unk}, {"pad_token", &t.pad}};
    for (auto& [key, dst] : keys)
      if (j.contains(key)) *dst = token_content(j[key], path, key);
    if (j.contains("additional_special_tokens")) {
      const json& a = j["additional_special_tokens"];
      if (!a.is_array() && !a.is_null()) fail(path, ": \"additional_special_tokens\" must be a list");
      t.additional.clear();
      if (a.is_array())
        for (const json& v : a)
          if (auto c = token_content(v, path, "additional_special_tokens")) t.additional.push_back(*c);
    }
  };
  take_specials(cfg, config_path);
  if (auto m = read_json_object_if_exists(map_path)) take_specials(*m, map_path);
  if (!t.unk) fail(config_path, ": no unk_token");

  // SentencePiece model, rewritten without the dummy prefix for legacy=false.
  if (!file_exists(model_path)) fail(model_path, ": tokenizer model not found");
  std::string proto = read_file(model_path);
  if (!t.legacy) proto = without_dummy_prefix(proto, model_path);
  auto st = t.sp.LoadFromSerializedProto(proto);
  if (!st.ok()) fail(model_path, ": cannot load SentencePiece model (", st.ToString(), ")");
  t.base_size = t.total_size = t.sp.GetPieceSize();
  if (t.base_size <= 0) fail(model_path, ": SentencePiece model has no pieces");

  // Added tokens: tokenizer_config.json's added_tokens_decoder, then added_tokens.json.
  if (cfg.contains("added_tokens_decoder")) {
    const json& dec = cfg["added_tokens_decoder"];
    if (!dec.is_object()) fail(config_path, ": \"added_tokens_decoder\" must be an object");
    for (auto& [key, v] : dec.items()) {
      int32_t id;
      try {
        size_t used = 0;
        long long parsed = std::stoll(key, &used);
        if (used != key.size() || parsed < 0) throw std::invalid_argument(key);
        if (parsed > kMaxTokenId) throw std::out_of_range(key);
        id = int32_t(parsed);
      } catch (const std::out_of_range&) {
        fail(config_path, ": added_tokens_decoder id ", key.substr(0, 40), " is beyond the token-id limit ", kMaxTokenId);
      } catch (const std::exception&) {
        fail(config_path, ": added_tokens_decoder key \"", key, "\" is not a token id");
      }
      auto content = v.is_object() ? token_content(v, config_path, "added_tokens_decoder") : std::nullopt;
      if (!content) fail(config_path, ": added_tokens_decoder[", key, "] has no \"content\"");
      t.add_token(*content, id, bool_field(v, "lstrip", false, config_path),
                  bool_field(v, "rstrip", false, config_path));
    }
  }
  if (auto added = read_json_object_if_exists(added_path)) {
    for (auto& [content, v] : added->items()) {
      const auto id = json_int(v, 0, kMaxTokenId);
      if (!id) fail(added_path, ": id of \"", content, "\" must be an integer in [0, ", kMaxTokenId, "], not ", describe_json(v));
      if (!t.added_enc.count(content)) t.add_token(content, int32_t(*id));
    }
  }

  // Every special token is an added token too (HF adds them at init): its
  // SentencePiece id when the piece exists, otherwise a new id at the end.
  std::vector<std::string> specials;
  for (const auto* s : {&t.bos, &t.eos, &t.unk, &t.pad})
    if (*s) specials.push_back(**s);
  specials.insert(specials.end(), t.additional.begin(), t.additional.end());
  for (const auto& s : specials) {
    t.special.insert(s);
    if (t.added_enc.count(s)) continue;
    int32_t id = t.sp.PieceToId(s);
    if (t.sp.IdToPiece(id) != s) id = t.total_size;
    t.add_token(s, id);
  }
  for (const auto& s : t.special) t.special_ids.insert(t.token_to_id(s));

  if (!t.legacy) t.unk_len = t.sp_encode(*t.unk).size();
  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(const std::string& text, bool add_bos) const {
  std::vector<int32_t> ids;
  if (add_bos && impl_->bos) ids.push_back(bos_id());
  for (const auto& tok : impl_->tokenize(text)) ids.push_back(impl_->token_to_id(tok));
  if (add_bos && impl_->add_eos && impl_->eos) ids.push_back(eos_id());
  return ids;
}

std::vector<std::string> Tokenizer::tokenize(const std::string& text) const { return impl_->tokenize(text); }

std::vector<int32_t> Tokenizer::encode_image_chunks(const std::string& text, const std::string& marker,
                                                    int32_t marker_id) const {
  // prompt.split(marker), each non-empty chunk tokenized with the default
  // special tokens, empty chunks as [].
  std::vector<std::vector<int32_t>> chunks;
  for (size_t start = 0;;) {
    size_t end = marker.empty() ? std::string::npos : text.find(marker, start);
    std::string chunk = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    chunks.push_back(chunk.empty() ? std::vector<int32_t>{} : encode(chunk));
    if (end == std::string::npos) break;
    start = end + marker.size();
  }
  // Keep the first chunk's BOS; drop the first id of every later chunk.
  size_t offset = 0;
  std::vector<int32_t> ids;
  if (!chunks[0].empty() && impl_->bos && chunks[0][0] == bos_id()) {
    offset = 1;
    ids.push_back(chunks[0][0]);
  }
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (i > 0) ids.push_back(marker_id);
    if (chunks[i].size() > offset) ids.insert(ids.end(), chunks[i].begin() + offset, chunks[i].end());
  }
  return ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  const Impl& t = *impl_;
  std::vector<std::string> tokens;
  for (int32_t id : ids) {
    if (skip_special_tokens && t.special_ids.count(id)) continue;
    tokens.push_back(t.id_to_token(id));
  }
  // Added tokens that are not special ("legacy added tokens") stand alone,
  // everything else is decoded by runs; the runs are joined with spaces.
  auto stands_alone = [&](const std::string& tok) {
    auto it = t.added_enc.find(tok);
    if (it == t.added_enc.end()) return false;
    if (!t.special.count(tok)) return true;
    return it->second >= t.base_size &&
           std::find(t.additional.begin(), t.additional.end(), tok) != t.additional.end();
  };
  std::vector<std::string> subs;
  std::vector<std::string> cur;
  for (const auto& tok : tokens) {
    if (stands_alone(tok)) {
      if (!cur.empty()) {
        std::string s = t.tokens_to_string(cur);
        if (!s.empty()) subs.push_back(s);
        cur.clear();
      }
      subs.push_back(tok);
    } else {
      cur.push_back(tok);
    }
  }
  if (!cur.empty()) subs.push_back(t.tokens_to_string(cur));
  std::string text;
  for (size_t i = 0; i < subs.size(); ++i) text += (i ? " " : "") + subs[i];
  if (t.clean_up_spaces) {
    // PreTrainedTokenizerBase.clean_up_tokenization.
    for (const auto& [from, to] : std::initializer_list<std::pair<const char*, const char*>>{
             {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
             {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}})
      replace_all(text, from, to);
  }
  return text;
}

std::string Tokenizer::piece(int32_t id) const { return impl_->id_to_token(id); }

std::optional<int32_t> Tokenizer::token_id(const std::string& piece) const {
  auto it = impl_->added_enc.find(piece);
  if (it != impl_->added_enc.end()) return it->second;
  int32_t id = impl_->sp.PieceToId(piece);
  if (id < 0 || id >= impl_->base_size || impl_->sp.IdToPiece(id) != piece) return std::nullopt;
  return id;
}

int32_t Tokenizer::base_vocab_size() const { return impl_->base_size; }
int32_t Tokenizer::vocab_size() const { return impl_->total_size; }
bool Tokenizer::is_added(int32_t id) const { return id >= impl_->base_size && id < impl_->total_size; }
int32_t Tokenizer::bos_id() const { return impl_->bos ? impl_->token_to_id(*impl_->bos) : -1; }
int32_t Tokenizer::eos_id() const { return impl_->eos ? impl_->token_to_id(*impl_->eos) : -1; }
bool Tokenizer::add_bos_token() const { return impl_->add_bos; }
bool Tokenizer::legacy() const { return impl_->legacy; }

}  // namespace mmn
