// Training a LLaMA-style SentencePiece tokenizer (BPE, byte fallback, split
// digits, <unk>/<s>/</s> = 0/1/2) and writing it in the Hugging Face layout.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace mmn {

// Returns the serialized tokenizer.model. vocab_size is an upper bound: the
// trainer stops earlier when the corpus has fewer merges to offer. Each
// sentence is one line of the corpus (a newline inside one splits it in
// two, as in a corpus file). The same sentences give the same bytes.
// byte_fallback = false trains without the 256 byte pieces.
std::string train_sentencepiece(const std::vector<std::string>& sentences, int vocab_size, bool byte_fallback = true);

// Writes tokenizer.model, tokenizer_config.json (LlamaTokenizer, legacy: false),
// special_tokens_map.json and added_tokens.json (name → id) into dir.
void write_hf_tokenizer(const std::string& dir, const std::string& model_proto,
                        const std::map<std::string, int>& added_tokens);

}  // namespace mmn
