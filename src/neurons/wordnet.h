// WordNet 3.0 read straight from the Princeton database files that Debian's
// `wordnet-base` installs (/usr/share/wordnet): index.{noun,verb,adj,adv},
// {noun,verb,adj,adv}.exc, cntlist.rev and, lazily, data.noun. No other NLP
// dependency. Used for noun tagging of captions (method.md §3) and for the
// WordNet lemma match / Wu–Palmer similarity of the metrics (§5).
//
// Conventions (ours):
// - Lemmas are lowercase with '_' for spaces, as in the index files.
// - morphy() follows WordNet's morph.c / NLTK's _morphy: the exception list
//   first; otherwise the word itself and every single detachment rule whose
//   result is in the index. Rules are applied once (as morph.c does), not
//   repeatedly as NLTK's fallback loop does; as in morph.c, nouns ending in
//   "ss" or of <= 2 letters get no detachment ("glass" is never "glas").
// - Frequencies: tag_count = the sum of the SemCor tag counts of the lemma's
//   senses in that part of speech (cntlist.rev), a finer signal than the
//   index's tagsense_cnt (which counts senses, not occurrences).
// - Wu–Palmer: exactly NLTK's Synset.wup_similarity for nouns (no simulated
//   root: WordNet 3.0 nouns share the root entity.n.01):
//     lcs   = common hypernym (self included; @ and @i pointers) with the
//             largest min_depth; ties -> self if among them, else the
//             smallest synset name ("dog.n.01");
//     depth = max_depth(lcs) + 1  (longest hypernym path to the root, +1 so
//             that both end nodes count);
//     len_x = shortest hypernym-path distance from x to lcs;
//     wup   = 2·depth / (len_a + len_b + 2·depth).
//   Identical synsets give 1. The word-level score is ours: the maximum over
//   all pairs of noun synsets of the two words (after morphy).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mmn {

enum class Pos { Noun = 0, Verb = 1, Adj = 2, Adv = 3 };
inline constexpr int kNumPos = 4;
const char* pos_name(Pos p);  // "noun", "verb", "adj", "adv"

// One line of an index.<pos> file.
struct LemmaEntry {
  std::string lemma;
  Pos pos = Pos::Noun;
  int synset_cnt = 0;
  int sense_cnt = 0;
  int tagsense_cnt = 0;
  std::vector<uint32_t> offsets;  // synset byte offsets in data.<pos>, most frequent sense first
  int64_t tag_count = 0;          // SemCor occurrences summed over the senses (cntlist.rev)
};

class WordNet {
 public:
  // $MMN_WORDNET_DIR when set and non-empty, else /usr/share/wordnet.
  static std::string default_dir();
  // Loads the index, exception and count files of `dir` (data.noun is read on
  // the first similarity query). Throws mmn::Error naming the missing or
  // corrupt file.
  static WordNet load(const std::string& dir);
  static WordNet load() { return load(default_dir()); }

  WordNet(WordNet&&) noexcept;
  WordNet& operator=(WordNet&&) noexcept;
  ~WordNet();

  const std::string& dir() const;

  // The index entry of an exact lemma (lowercased; spaces -> '_'), or nullptr.
  const LemmaEntry* lookup(std::string_view lemma, Pos pos) const;
  // Whether `lemma` has an entry in any part of speech.
  bool known(std::string_view lemma) const;

  // Base forms of `word` in `pos` that exist in the index, best first (see the
  // conventions above). Empty when WordNet does not know the word in `pos`.
  std::vector<std::string> morphy(std::string_view word, Pos pos) const;

  // Noun synset offsets of `word` (union over its morphy lemmas, in order).
  std::vector<uint32_t> noun_synsets(std::string_view word) const;

  // NLTK's "name" of a noun synset, e.g. "dog.n.01". Throws on a bad offset.
  std::string noun_synset_name(uint32_t offset) const;

  // Wu–Palmer similarity of two noun synsets (NLTK's definition, see above).
  double synset_wup(uint32_t a, uint32_t b) const;

  // Max Wu–Palmer similarity over the noun synsets of two words; nullopt when
  // either word has no noun reading.
  std::optional<double> wup_similarity(std::string_view noun_a, std::string_view noun_b) const;

 private:
  struct Impl;
  explicit WordNet(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Lowercases ASCII and maps ' ' to '_' (WordNet's lemma spelling).
std::string wordnet_key(std::string_view word);

}  // namespace mmn
