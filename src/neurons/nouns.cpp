// Noun tagging of captions; the rules are documented in nouns.h.
#include "neurons/nouns.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <unordered_set>

namespace mmn {

namespace {

using Set = std::unordered_set<std::string_view>;

// Determiners, possessives and quantifiers that open a noun phrase (rule 3b).
// Numbers (digits, number words, ordinals) count as determiners too.
const Set& determiners() {
  static const Set s = {"a",    "an",    "the",     "this",    "these", "those",   "my",       "your",
                        "his",  "her",   "its",     "our",     "their", "some",    "several",  "many",
                        "each", "every", "another", "both",    "all",   "any",     "no",       "few",
                        "more", "most",  "various", "numerous", "multiple", "other", "such"};
  return s;
}

const Set& number_words() {
  static const Set s = {
      "zero",     "one",       "two",        "three",     "four",       "five",       "six",
      "seven",    "eight",     "nine",       "ten",       "eleven",     "twelve",     "thirteen",
      "fourteen", "fifteen",   "sixteen",    "seventeen", "eighteen",   "nineteen",   "twenty",
      "thirty",   "forty",     "fifty",      "sixty",     "seventy",    "eighty",     "ninety",
      "hundred",  "thousand",  "million",    "billion",   "dozen",      "hundreds",   "thousands",
      "millions", "dozens",    "first",      "second",    "third",      "fourth",     "fifth",
      "sixth",    "seventh",   "eighth",     "ninth",     "tenth",      "eleventh",   "twelfth",
      "twentieth", "hundredth", "thousandth", "once",     "twice"};
  return s;
}

// The stop list of rule 2 (numbers are handled by is_number).
const Set& stop_words() {
  static const Set s = {
      // articles, determiners, quantifiers
      "a", "an", "the", "this", "these", "those", "that", "some", "several", "many", "much", "each", "every",
      "another", "both", "all", "any", "no", "few", "more", "most", "less", "least", "various", "numerous",
      "multiple", "other", "others", "such", "own", "same",
      // pronouns
      "i", "me", "my", "mine", "myself", "you", "your", "yours", "yourself", "yourselves", "he", "him", "his",
      "himself", "she", "her", "hers", "herself", "it", "its", "itself", "we", "us", "our", "ours",
      "ourselves", "they", "them", "their", "theirs", "themselves", "who", "whom", "whose", "which", "what",
      "whatever", "whoever", "someone", "somebody", "something", "anyone", "anybody", "anything", "everyone",
      "everybody", "everything", "nobody", "nothing", "none", "one", "ones", "oneself", "there", "here",
      // prepositions
      "about", "above", "across", "after", "against", "along", "alongside", "amid", "among", "around", "as",
      "at", "atop", "before", "behind", "below", "beneath", "beside", "besides", "between", "beyond", "by",
      "down", "during", "except", "for", "from", "in", "inside", "into", "like", "near", "of", "off", "on",
      "onto", "opposite", "out", "outside", "over", "past", "per", "through", "throughout", "to", "toward",
      "towards", "under", "underneath", "until", "up", "upon", "via", "with", "within", "without",
      // conjunctions and other function words
      "and", "or", "but", "nor", "so", "yet", "if", "while", "because", "although", "though", "whereas",
      "than", "whether", "then", "not", "very", "too", "also", "just", "only", "how", "when", "where", "why",
      // auxiliaries and modals ("can" is kept right after a determiner: "a can of soda")
      "be", "is", "are", "was", "were", "been", "being", "am", "have", "has", "had", "having", "do", "does",
      "did", "will", "would", "shall", "should", "may", "might", "must", "could", "can",
      // the picture itself
      "image", "picture", "photo", "photograph", "pic", "snapshot", "view", "scene", "close-up", "closeup",
      "background", "foreground",
      // positions
      "left", "right", "top", "bottom", "front", "back", "side", "middle", "center", "centre",
      // partitives and placeholders
      "group", "couple", "pair", "bunch", "lot", "lots", "number", "variety", "kind", "type", "sort", "half",
      "amount", "thing", "things"};
  return s;
}

// Stop words that are ordinary nouns right after a determiner.
const Set& nouns_after_determiner() {
  static const Set s = {"can"};
  return s;
}

bool has_digit(std::string_view w) {
  return std::any_of(w.begin(), w.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool is_number(std::string_view w) {
  if (has_digit(w)) return true;
  // "twenty-one", "twenty-first"
  size_t start = 0;
  while (true) {
    size_t dash = w.find('-', start);
    std::string_view part = w.substr(start, dash == std::string_view::npos ? std::string_view::npos : dash - start);
    if (!number_words().count(part)) return false;
    if (dash == std::string_view::npos) return true;
    start = dash + 1;
  }
}

// Character classes for splitting.
enum class Cls { Letter, Hyphen, Apostrophe, Space, Punct };

// Decodes one UTF-8 code point at s[i]; returns its length (1 for invalid bytes).
size_t decode(std::string_view s, size_t i, uint32_t& cp) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (len == 0 || i + len > s.size()) {
    cp = c;
    return 1;
  }
  cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = 1; k < len; ++k) {
    unsigned char cc = static_cast<unsigned char>(s[i + k]);
    if ((cc >> 6) != 2) {
      cp = c;
      return 1;
    }
    cp = (cp << 6) | (cc & 0x3F);
  }
  return len;
}

Cls classify(uint32_t cp) {
  if (cp < 0x80) {
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9')) return Cls::Letter;
    if (cp == '-') return Cls::Hyphen;
    if (cp == '\'') return Cls::Apostrophe;
    if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\f' || cp == '\v') return Cls::Space;
    return Cls::Punct;
  }
  if (cp == 0x2010 || cp == 0x2011) return Cls::Hyphen;
  if (cp == 0x2018 || cp == 0x2019 || cp == 0x02BC) return Cls::Apostrophe;
  if (cp == 0xA0 || cp == 0x3000 || (cp >= 0x2000 && cp <= 0x200B) || cp == 0x202F || cp == 0x205F)
    return Cls::Space;
  if (cp < 0xC0 || (cp >= 0x2000 && cp <= 0x206F) || (cp >= 0x3000 && cp <= 0x303F) || cp == 0xD7 || cp == 0xF7)
    return Cls::Punct;  // Latin-1 punctuation, general punctuation, CJK punctuation, × ÷
  return Cls::Letter;
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// Per-word features for rule 3.
struct Tagged {
  CaptionWord w;
  bool det = false;    // determiner or number
  bool stop = false;   // rule 2
  std::vector<std::string> noun;  // noun lemmas (empty: no noun reading, or stopped)
  std::string lemma;   // noun_lemma()
  bool adj = false;    // has an adjective reading
  bool verb = false;   // has a verb reading
  bool noun_dominant = false;
  bool inflected_verb = false;  // a verb form that is not itself a verb lemma ("riding", "sits")
  bool plural = false;          // an inflected noun form ("dogs", "geese") or "people"
};

// NLTK's WordNetLemmatizer convention: the shortest candidate ("glasses" ->
// "glass"); on ties, a base form rather than the word itself ("men" -> "man",
// where NLTK keeps "men"), else the first.
std::string shortest(const std::vector<std::string>& lemmas, std::string_view word) {
  const std::string* best = nullptr;
  for (auto& l : lemmas)
    if (!best || l.size() < best->size() || (l.size() == best->size() && *best == word && l != word)) best = &l;
  return *best;
}

int64_t best_count(const WordNet& wn, const std::vector<std::string>& lemmas, Pos pos, bool synsets) {
  int64_t best = 0;
  for (auto& l : lemmas) {
    const LemmaEntry* e = wn.lookup(l, pos);
    if (e) best = std::max<int64_t>(best, synsets ? e->synset_cnt : e->tag_count);
  }
  return best;
}

}  // namespace

std::string noun_lemma(const WordNet& wn, std::string_view word) {
  auto lemmas = wn.morphy(word, Pos::Noun);
  return lemmas.empty() ? std::string() : shortest(lemmas, wordnet_key(word));
}

bool is_noun_stop_word(std::string_view lower) {
  return lower.size() <= 1 || stop_words().count(lower) || is_number(lower);
}

std::vector<CaptionWord> split_caption(const std::string& text) {
  std::vector<CaptionWord> out;
  std::string cur;  // current word, hyphens/apostrophes normalised to ASCII
  auto flush = [&] {
    if (cur.empty()) return;
    std::string w = std::move(cur);
    cur.clear();
    // Possessive, then stray leading/trailing hyphens and apostrophes.
    if (w.size() > 2 && (w.ends_with("'s") || w.ends_with("'S"))) w.resize(w.size() - 2);
    size_t b = w.find_first_not_of("-'"), e = w.find_last_not_of("-'");
    if (b == std::string::npos) return;
    w = w.substr(b, e - b + 1);
    // A double hyphen is a dash: split there.
    size_t start = 0;
    while (start <= w.size()) {
      size_t dd = w.find("--", start);
      std::string part = w.substr(start, dd == std::string::npos ? std::string::npos : dd - start);
      size_t pb = part.find_first_not_of("-'"), pe = part.find_last_not_of("-'");
      if (pb != std::string::npos) {
        part = part.substr(pb, pe - pb + 1);
        out.push_back({part, ascii_lower(part), 0});
      }
      if (dd == std::string::npos) break;
      start = dd + 2;
      if (!out.empty()) out.back().punct_after = '-';
    }
  };
  for (size_t i = 0; i < text.size();) {
    uint32_t cp;
    size_t len = decode(text, i, cp);
    switch (classify(cp)) {
      case Cls::Letter: cur.append(text, i, len); break;
      case Cls::Hyphen: cur.push_back('-'); break;
      case Cls::Apostrophe: cur.push_back('\''); break;
      case Cls::Space: flush(); break;
      case Cls::Punct:
        flush();
        if (!out.empty() && out.back().punct_after == 0) out.back().punct_after = cp < 0x80 ? static_cast<char>(cp) : '.';
        break;
    }
    i += len;
  }
  flush();
  return out;
}

std::vector<Noun> find_nouns(const WordNet& wn, const std::string& text) {
  // Step 1: words. A hyphenated word is looked up as written, then with '_'
  // (WordNet's multi-word spelling: "close_up") and without the hyphens
  // ("closeup"); when WordNet knows none of these it is split into its parts.
  auto known = [&](const std::string& w) {
    for (int p = 0; p < kNumPos; ++p)
      if (!wn.morphy(w, static_cast<Pos>(p)).empty()) return true;
    return false;
  };
  std::vector<CaptionWord> words;
  for (auto& w : split_caption(text)) {
    if (w.lower.find('-') == std::string::npos || is_number(w.lower)) {
      words.push_back(std::move(w));
      continue;
    }
    std::string underscore = w.lower, joined;
    std::replace(underscore.begin(), underscore.end(), '-', '_');
    for (char c : w.lower)
      if (c != '-') joined.push_back(c);
    const std::string* hit = known(w.lower) ? &w.lower : known(underscore) ? &underscore : known(joined) ? &joined : nullptr;
    if (hit) {
      w.lower = *hit;
      words.push_back(std::move(w));
      continue;
    }
    size_t start = 0;
    while (start < w.surface.size()) {
      size_t dash = w.surface.find('-', start);
      if (dash == std::string::npos) dash = w.surface.size();
      if (dash > start) {
        std::string part = w.surface.substr(start, dash - start);
        words.push_back({part, ascii_lower(part), 0});
      }
      start = dash + 1;
    }
    if (!words.empty()) words.back().punct_after = w.punct_after;
  }

  // Steps 2-3a: per-word features.
  std::vector<Tagged> t(words.size());
  for (size_t i = 0; i < words.size(); ++i) {
    Tagged& x = t[i];
    x.w = words[i];
    const std::string& lw = x.w.lower;
    x.det = determiners().count(lw) || is_number(lw);
    x.stop = is_noun_stop_word(lw);
    if (x.stop && nouns_after_determiner().count(lw) && i > 0 && t[i - 1].det && !t[i - 1].w.punct_after)
      x.stop = false;
    if (x.stop) continue;
    x.noun = wn.morphy(lw, Pos::Noun);
    x.lemma = x.noun.empty() ? std::string() : shortest(x.noun, lw);
    if (!x.noun.empty() && x.lemma != lw && stop_words().count(x.lemma)) {  // "photos" -> "photo"
      x.stop = true;
      x.noun.clear();
      continue;
    }
    std::vector<std::string> verb = wn.morphy(lw, Pos::Verb);
    std::vector<std::string> adj = wn.morphy(lw, Pos::Adj);
    std::vector<std::string> adv = wn.morphy(lw, Pos::Adv);
    x.adj = !adj.empty();
    x.verb = !verb.empty();
    x.inflected_verb = !verb.empty() && std::find(verb.begin(), verb.end(), lw) == verb.end();
    if (x.noun.empty()) continue;
    x.plural = lw == "people" || x.lemma != lw;
    std::array<int64_t, kNumPos> c{};
    for (bool synsets : {false, true}) {
      c = {best_count(wn, x.noun, Pos::Noun, synsets), best_count(wn, verb, Pos::Verb, synsets),
           best_count(wn, adj, Pos::Adj, synsets), best_count(wn, adv, Pos::Adv, synsets)};
      if (c[0] + c[1] + c[2] + c[3] > 0) break;  // tag counts known: use them
    }
    x.noun_dominant = c[0] >= std::max({c[1], c[2], c[3]});
  }

  auto coordinated = [&](size_t k) {  // followed by "and"/"or"/","
    char p = t[k].w.punct_after;
    if (p == ',' || p == ';' || p == '/' || p == '&') return true;
    if (p || k + 1 >= t.size()) return false;
    const std::string& next = t[k + 1].w.lower;
    return next == "and" || next == "or" || next == "nor";
  };
  // Rule 3c: an inflected verb form, or a verb right after a plural noun,
  // directly followed by a determiner is a verb ("the image features a dog",
  // "a man walks the dog", "tall buildings line both sides").
  auto verb_before_object = [&](size_t k) {
    if (!t[k].verb || t[k].w.punct_after || k + 1 >= t.size() || !t[k + 1].det) return false;
    return t[k].inflected_verb || (k > 0 && t[k - 1].plural && !t[k - 1].w.punct_after);
  };

  // Step 3b: heads of noun phrases opened by a determiner.
  std::vector<bool> head(words.size(), false), modifier(words.size(), false);
  for (size_t i = 0; i + 1 < t.size(); ++i) {
    if (!t[i].det || t[i + 1].det || t[i].w.punct_after) continue;
    size_t start = i + 1, k = start, last = std::string::npos;
    for (; k < t.size(); ++k) {
      const Tagged& x = t[k];
      if (x.stop || x.det || (x.noun.empty() && !x.adj) || verb_before_object(k)) break;
      if (k != start && x.inflected_verb && !x.noun_dominant) break;
      last = k;
      if (x.w.punct_after || x.plural) break;  // a plural noun ends its phrase ("two people walk")
    }
    if (last == std::string::npos || t[last].noun.empty()) continue;
    if (t[last].adj && coordinated(last)) continue;  // "a red and white bus"
    head[last] = true;
    // Rule 3d: before the head, a word with an adjective reading modifies it
    // ("an orange cat", "a metal fence").
    for (size_t m = start; m < last; ++m)
      if (t[m].adj) modifier[m] = true;
  }

  // Noun decisions, left to right; rule 3b also covers the second member of a
  // coordination whose first member is a noun, when it is a one-word phrase
  // ("a suit and tie", "a knife and fork on a plate").
  std::vector<bool> noun(words.size(), false);
  for (size_t i = 0; i < t.size(); ++i) {
    const Tagged& x = t[i];
    if (x.noun.empty() || verb_before_object(i) || modifier[i]) continue;
    bool coord = false;
    if (i >= 2 && !x.adj && !t[i - 1].w.punct_after && noun[i - 2] && !t[i - 2].w.punct_after &&
        (t[i - 1].w.lower == "and" || t[i - 1].w.lower == "or")) {
      coord = x.w.punct_after || i + 1 == t.size() || t[i + 1].stop || t[i + 1].det ||
              (t[i + 1].noun.empty() && !t[i + 1].adj);
    }
    noun[i] = x.noun_dominant || head[i] || coord;
  }

  // Step 4.
  std::vector<Noun> out;
  std::unordered_set<std::string> seen;
  for (size_t i = 0; i < t.size(); ++i) {
    if (!noun[i]) continue;
    if (seen.insert(t[i].lemma).second) out.push_back({t[i].w.surface, t[i].lemma});
  }
  return out;
}

}  // namespace mmn
