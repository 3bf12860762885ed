// Noun tagging of captions (method.md §3, "Nouns (ours)"): the words of a
// caption that WordNet knows as nouns, after lemmatisation, minus a short stop
// list and minus words WordNet knows only or mainly as another part of speech.
//
// Rules (ours), in order:
// 1. Split: ASCII-lowercase; words are runs of letters/digits with inner
//    hyphens and apostrophes; other punctuation (ASCII and Unicode general
//    punctuation, dashes, quotes) separates words. A possessive "'s" / "'" is
//    dropped ("dog's" -> "dog"). A hyphenated word is tried whole, as written
//    ("t-shirt"), with '_' ("close_up") and joined ("mid-air" -> "midair");
//    only when WordNet knows none of these in any part of speech is it split
//    into its parts ("zebra-giraffe" -> "zebra", "giraffe").
// 2. Skip words with digits, one-letter words and the stop list (nouns.cpp):
//    closed-class words (WordNet has no determiners, pronouns, prepositions,
//    conjunctions or auxiliaries, yet lists "a", "i", "it", "in", "at", "be",
//    "us" … as nouns: vitamin A, iodine, …), number words and ordinals, words
//    naming the picture itself (image, picture, photo, view, scene, …),
//    positional words (left, right, top, front, side, …) and partitives
//    (group, couple, pair, lot, kind, …). The surface word and its noun lemma
//    are both checked ("photos" -> "photo").
// 3. A word is a noun when it has a noun reading (morphy) and either
//    (a) the noun reading is at least as frequent as the best verb, adjective
//        and adverb reading of the same surface word (SemCor tag counts from
//        cntlist.rev, each POS after its own morphy; when all are zero,
//        synset counts instead), or
//    (b) it heads a noun phrase: it ends the run of noun/adjective-capable
//        words right after a determiner or number ("a train on the tracks",
//        "the sign", "a baseball bat"), unless it has an adjective reading and
//        is followed by "and"/"or"/"," ("a red and white bus"). Inside the run, a word after the first that is an inflected
//        verb form not mainly a noun ends it ("a man riding", "a dog sits").
//    (b) rescues concrete nouns whose verb is more frequent in SemCor (train,
//    sign, bat, tie, bear, sink …); it also covers the second member of
//    "NOUN and X" when X is a one-word phrase ("a suit and tie").
//    Vetoes: (c) an inflected verb form, or any verb right after a plural
//    noun, directly followed by a determiner is a verb ("the image features a
//    dog", "buildings line both sides"); (d) inside a determiner phrase, a
//    word before the head that has an adjective reading is a modifier ("an
//    orange cat", "a metal fence"). A plural noun ends its phrase ("two
//    people walk").
// 4. Output in caption order, once per lemma (first occurrence; lemma as
//    noun_lemma() below), with the surface form as written (original case,
//    punctuation stripped) so that the caller can find its token in the
//    generated text.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "neurons/wordnet.h"

namespace mmn {

struct Noun {
  std::string surface;  // as written in the text (case kept, punctuation and possessive stripped)
  std::string lemma;    // WordNet noun lemma (lowercase)
};

std::vector<Noun> find_nouns(const WordNet& wn, const std::string& text);

// The noun lemma of a word: the shortest of its morphy candidates, as NLTK's
// WordNetLemmatizer does ("glasses" -> "glass"), on ties a base form rather
// than the word itself ("men" -> "man"); "" when WordNet has no noun reading. Use it to compare a noun with top tokens.
std::string noun_lemma(const WordNet& wn, std::string_view word);

// A word of a caption, as step 1 splits it.
struct CaptionWord {
  std::string surface;   // as written
  std::string lower;     // ASCII-lowercased
  char punct_after = 0;  // first punctuation character before the next word, 0 if only spaces
};
std::vector<CaptionWord> split_caption(const std::string& text);

// Whether a lowercase word is on the stop list (step 2; numbers included).
bool is_noun_stop_word(std::string_view lower);

}  // namespace mmn
