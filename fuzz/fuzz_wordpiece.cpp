// The WordPiece (BERT) tokenizer directory.
// Input: parts separated by "\n@@@@\n" (fuzz_common.h): vocab.txt,
//   tokenizer_config.json, special_tokens_map.json, added_tokens.json, text.
#include "fuzz_common.h"
#include "io/wordpiece.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mmn;
  auto parts = fuzz::split_parts(data, size, 5);
  fuzz::expect_only_errors([&] {
    const auto dir = fuzz::fresh_dir("wp");
    fuzz::write_part(dir, "vocab.txt", parts[0]);
    fuzz::write_part(dir, "tokenizer_config.json", parts[1]);
    fuzz::write_part(dir, "special_tokens_map.json", parts[2]);
    fuzz::write_part(dir, "added_tokens.json", parts[3]);
    WordPieceTokenizer tok = WordPieceTokenizer::load_dir(dir.string());
    fuzz::check(tok.vocab_size() > 0 && tok.vocab_size() <= (1 << 24) + 16, "vocabulary size beyond the documented limit");
    const std::string text(parts[4].bytes.substr(0, 256));
    for (int32_t id : tok.encode(text)) {
      fuzz::check(id >= 0 && id < tok.vocab_size(), "encode produced an id outside the vocabulary");
      (void)tok.piece(id);
    }
  });
  return 0;
}
