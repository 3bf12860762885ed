// The SentencePiece tokenizer directory: tokenizer_config.json,
// special_tokens_map.json and added_tokens.json from the input beside the
// bundled tokenizer.model (or a fuzzed one), then encode/decode of text.
// Input: parts separated by "\n@@@@\n" (fuzz_common.h):
//   tokenizer_config.json, special_tokens_map.json, added_tokens.json, text,
//   tokenizer.model (when absent or empty: the bundled model's).
#include "fuzz_common.h"
#include "io/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mmn;
  auto parts = fuzz::split_parts(data, size, 5);
  fuzz::expect_only_errors([&] {
    const auto dir = fuzz::fresh_dir("tok");
    fuzz::write_part(dir, "tokenizer_config.json", parts[0]);
    fuzz::write_part(dir, "special_tokens_map.json", parts[1]);
    fuzz::write_part(dir, "added_tokens.json", parts[2]);
    if (parts[4].present && !parts[4].bytes.empty())
      fuzz::write_part(dir, "tokenizer.model", parts[4]);
    else
      std::filesystem::copy_file(fuzz::bundled_model() / "tokenizer.model", dir / "tokenizer.model");
    Tokenizer tok = Tokenizer::load(dir.string());
    fuzz::check(tok.vocab_size() >= tok.base_vocab_size() && tok.vocab_size() <= (1 << 24) + 16,
                "vocabulary size beyond the documented limit");
    const std::string text(parts[3].bytes.substr(0, 256));
    std::vector<int32_t> ids = tok.encode(text);
    for (int32_t id : ids) fuzz::check(id >= 0 && id < tok.vocab_size(), "encode produced an id outside the vocabulary");
    (void)tok.decode(ids, false);
    (void)tok.decode(ids, true);
    (void)tok.tokenize(text);
    (void)tok.encode_image_chunks(text, "<|image|>", -200);
    fuzz::expect_only_errors([&] { (void)tok.piece(tok.vocab_size() - 1); });
  });
  return 0;
}
