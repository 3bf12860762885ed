// The vocabulary of a shapes-world model trained to what the world uses.
//
// Version 1's model has a SentencePiece BPE vocabulary of 512 pieces with
// byte fallback, of which its texts use about twenty: the other rows of its
// embedding never see a gradient. Version 2's vocabulary is word-level
// instead: every word, punctuation mark and line break the world's prompts
// and answers contain is one USER_DEFINED piece of a SentencePiece BPE model
// (matched whole, longest first, so no merge pieces are needed), next to
// <unk>, <s> and </s>; no byte pieces. A candidate piece that encoding the
// world's texts through the real tokenizer (Hugging Face's slow LlamaTokenizer
// semantics, legacy = false) never produces is dropped, so every ordinary
// piece occurs in the training stream. The rows that never receive an input
// gradient are <unk> (never produced), <image> (its row is replaced by the
// projector's output) and <pad> (kept for the LLaVA-1.5 layout).
#pragma once
#include <string>
#include <vector>

namespace mmn {

// Every kind of text a training sample of world `version` (2) holds: the
// LLaVA-1.5 prompt of each query form with its answer prefix, followed by
// answers that together contain every word of the world.
std::vector<std::string> shapes_world_texts(int version);

// Writes tokenizer.model and the Hugging Face tokenizer files (with <image>
// and <pad> added after the pieces) into dir: a word-level vocabulary for
// `texts`, as described above. Fails when a text cannot be encoded without
// <unk> or does not decode back to itself.
void write_word_level_tokenizer(const std::string& dir, const std::vector<std::string>& texts);

}  // namespace mmn
