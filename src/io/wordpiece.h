// BERT WordPiece tokenizer (the InstructBLIP Q-Former's bert-base-uncased
// tokenizer), reproducing Hugging Face's slow BertTokenizer (transformers
// 4.37): special/added tokens matched literally, BasicTokenizer (clean text,
// CJK characters as words, lowercase + accent stripping when uncased,
// punctuation split), then greedy longest-match-first WordPiece with "##".
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mmn {

class WordPieceTokenizer {
 public:
  // vocab.txt (one token per line, id = line number) with BERT's default
  // special tokens. Throws mmn::Error naming the file when unreadable or when
  // [UNK]/[CLS]/[SEP] are missing.
  static WordPieceTokenizer load(const std::string& vocab_path, bool do_lower_case = true);
  // A tokenizer directory: vocab.txt plus tokenizer_config.json (do_lower_case,
  // strip_accents, tokenize_chinese_chars, special tokens), special_tokens_map.json
  // and added_tokens.json when present (e.g. InstructBLIP's [DEC] = 30522).
  static WordPieceTokenizer load_dir(const std::string& dir);

  WordPieceTokenizer(WordPieceTokenizer&&) noexcept;
  WordPieceTokenizer& operator=(WordPieceTokenizer&&) noexcept;
  ~WordPieceTokenizer();

  // HF tokenizer(text).input_ids: [CLS] tokens [SEP] when add_special_tokens.
  std::vector<int32_t> encode(const std::string& text, bool add_special_tokens = true) const;
  // The tokens encode() maps to ids ("hello", "##ing", "[UNK]", …).
  std::vector<std::string> tokenize(const std::string& text) const;

  std::string piece(int32_t id) const;  // throws mmn::Error when out of range
  std::optional<int32_t> token_id(const std::string& token) const;
  int32_t vocab_size() const;  // vocab.txt plus added tokens
  int32_t cls_id() const;
  int32_t sep_id() const;
  int32_t unk_id() const;
  int32_t pad_id() const;  // -1 when there is no pad token

 private:
  struct Impl;
  explicit WordPieceTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mmn
