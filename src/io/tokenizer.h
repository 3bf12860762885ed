// LLaMA-family tokenizer: SentencePiece (tokenizer.model) plus the added tokens
// of added_tokens.json / tokenizer_config.json, reproducing Hugging Face's slow
// LlamaTokenizer (including `legacy: false`, where no "▁" is inserted after an
// added token such as <image>).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mmn {

class Tokenizer {
 public:
  // Loads tokenizer.model, added_tokens.json and tokenizer_config.json /
  // special_tokens_map.json from a checkpoint directory. Throws mmn::Error
  // naming the file when the tokenizer is missing or malformed.
  static Tokenizer load(const std::string& model_dir);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Tokenizes text exactly like HF tokenizer(text).input_ids: added tokens
  // matched literally, the pieces between them through SentencePiece, BOS
  // first when add_bos (tokenizer_config add_bos_token decides the default),
  // EOS last when add_bos and tokenizer_config add_eos_token are both true.
  std::vector<int32_t> encode(const std::string& text, bool add_bos) const;
  std::vector<int32_t> encode(const std::string& text) const { return encode(text, add_bos_token()); }

  // mPLUG-Owl2's `tokenizer_image_token`: splits text at every `marker`
  // (e.g. "<|image|>", not a token of that tokenizer), encodes each non-empty
  // chunk with the default special tokens, keeps only the first chunk's BOS and
  // joins the chunks with `marker_id` (e.g. -200).
  std::vector<int32_t> encode_image_chunks(const std::string& text, const std::string& marker,
                                           int32_t marker_id) const;

  // The pieces encode() maps to ids, without BOS/EOS (HF tokenizer.tokenize).
  std::vector<std::string> tokenize(const std::string& text) const;

  // Decodes like HF decode(ids, skip_special_tokens). Throws mmn::Error for an
  // id outside the vocabulary.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = true) const;

  std::string piece(int32_t id) const;          // "▁word", "<image>", "<0x0A>", …; throws if out of range
  std::optional<int32_t> token_id(const std::string& piece) const;  // exact piece or added token
  int32_t base_vocab_size() const;              // SentencePiece pieces (added tokens excluded)
  int32_t vocab_size() const;                   // including added tokens
  bool is_added(int32_t id) const;              // ids beyond the SentencePiece model
  int32_t bos_id() const;
  int32_t eos_id() const;
  bool add_bos_token() const;
  bool legacy() const;                          // tokenizer_config "legacy" (absent/null = true)

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mmn
