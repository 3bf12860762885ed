// WordNet database reader: index/exception/count files at load, data.noun on
// demand. File formats: Princeton WordNet 3.0 wndb(5WN) and cntlist(5WN).
#include "neurons/wordnet.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <mutex>
#include <span>
#include <unordered_map>
#include <unordered_set>

#include "io/atomic_file.h"
#include "util/error.h"

namespace mmn {

namespace {

const char* kPosFile[kNumPos] = {"noun", "verb", "adj", "adv"};
const char kPosChar[kNumPos] = {'n', 'v', 'a', 'r'};

// Detachment rules (suffix, replacement) of morph.c, per part of speech.
struct Rule {
  std::string_view suffix, ending;
};
constexpr Rule kNounRules[] = {{"s", ""},     {"ses", "s"},   {"xes", "x"},   {"zes", "z"},
                               {"ches", "ch"}, {"shes", "sh"}, {"men", "man"}, {"ies", "y"}};
constexpr Rule kVerbRules[] = {{"s", ""},   {"ies", "y"}, {"es", "e"},  {"es", ""},
                               {"ed", "e"}, {"ed", ""},   {"ing", "e"}, {"ing", ""}};
constexpr Rule kAdjRules[] = {{"er", ""}, {"est", ""}, {"er", "e"}, {"est", "e"}};

// Splits a line on single spaces (the WordNet files use exactly one space).
std::vector<std::string_view> fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\r')) ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\r') ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

template <class T>
bool parse_int(std::string_view s, T& v, int base = 10) {
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v, base);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// Calls f(line, line_number) for each line of text.
template <class F>
void for_each_line(std::string_view text, F&& f) {
  size_t pos = 0, n = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    f(text.substr(pos, end - pos), ++n);
    pos = end + 1;
  }
}

bool ends_with(std::string_view s, std::string_view suf) {
  return s.size() >= suf.size() && s.substr(s.size() - suf.size()) == suf;
}

struct Synset {
  std::vector<uint32_t> hypernyms;  // @ and @i, nouns only
  std::string first_word;           // lowercased
  int min_depth = -1, max_depth = -1;
};

}  // namespace

const char* pos_name(Pos p) {
  static const char* names[kNumPos] = {"noun", "verb", "adj", "adv"};
  return names[static_cast<int>(p)];
}

std::string wordnet_key(std::string_view word) {
  std::string s(word);
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    else if (c == ' ') c = '_';
  }
  return s;
}

struct WordNet::Impl {
  std::string dir;
  std::unordered_map<std::string, LemmaEntry> index[kNumPos];
  std::unordered_map<std::string, std::vector<std::string>> exc[kNumPos];

  // data.noun, read on first use; synsets parsed on demand.
  std::once_flag data_once;
  std::string data_noun;
  std::mutex mu;
  std::unordered_map<uint32_t, Synset> synsets;

  std::string path(const std::string& name) const { return (std::filesystem::path(dir) / name).string(); }

  void load_index(Pos pos) {
    const std::string file = path(std::string("index.") + kPosFile[static_cast<int>(pos)]);
    const std::string text = read_file(file);
    auto& map = index[static_cast<int>(pos)];
    for_each_line(text, [&](std::string_view line, size_t ln) {
      if (line.empty() || line[0] == ' ') return;  // licence header
      auto f = fields(line);
      auto bad = [&](const char* why) { fail(file, ":", ln, ": malformed index line (", why, ")"); };
      if (f.size() < 6) bad("too few fields");
      LemmaEntry e;
      e.lemma = std::string(f[0]);
      e.pos = pos;
      if (f[1].size() != 1 || f[1][0] != kPosChar[static_cast<int>(pos)]) bad("wrong part of speech");
      int p_cnt = 0;
      if (!parse_int(f[2], e.synset_cnt) || !parse_int(f[3], p_cnt) || e.synset_cnt <= 0 || p_cnt < 0) bad("counts");
      size_t i = 4 + static_cast<size_t>(p_cnt);
      if (f.size() != i + 2 + static_cast<size_t>(e.synset_cnt)) bad("field count");
      if (!parse_int(f[i], e.sense_cnt) || !parse_int(f[i + 1], e.tagsense_cnt)) bad("sense counts");
      e.offsets.reserve(e.synset_cnt);
      for (size_t k = i + 2; k < f.size(); ++k) {
        uint32_t off = 0;
        if (f[k].size() != 8 || !parse_int(f[k], off)) bad("synset offset");
        e.offsets.push_back(off);
      }
      map.emplace(e.lemma, std::move(e));
    });
    if (map.empty()) fail(file, ": no index entries (not a WordNet index file?)");
  }

  void load_exceptions(Pos pos) {
    const std::string file = path(std::string(kPosFile[static_cast<int>(pos)]) + ".exc");
    const std::string text = read_file(file);
    auto& map = exc[static_cast<int>(pos)];
    for_each_line(text, [&](std::string_view line, size_t ln) {
      auto f = fields(line);
      if (f.empty()) return;
      if (f.size() < 2) fail(file, ":", ln, ": malformed exception line (expected 'form base…')");
      auto& bases = map[std::string(f[0])];
      for (size_t k = 1; k < f.size(); ++k) bases.emplace_back(f[k]);
    });
  }

  // cntlist.rev: "lemma%ss_type:lex_filenum:lex_id:head_word:head_id sense_number tag_cnt".
  void load_counts() {
    const std::string file = path("cntlist.rev");
    const std::string text = read_file(file);
    size_t lines = 0;
    for_each_line(text, [&](std::string_view line, size_t ln) {
      auto f = fields(line);
      if (f.empty()) return;
      auto bad = [&] { fail(file, ":", ln, ": malformed count line (expected 'sense_key sense_number tag_cnt')"); };
      if (f.size() != 3) bad();
      size_t pct = f[0].find('%');
      int sense = 0;
      int64_t cnt = 0;
      if (pct == std::string_view::npos || pct == 0 || pct + 1 >= f[0].size() || !parse_int(f[1], sense) ||
          !parse_int(f[2], cnt) || cnt < 0)
        bad();
      int p;
      switch (f[0][pct + 1]) {
        case '1': p = 0; break;
        case '2': p = 1; break;
        case '3': case '5': p = 2; break;
        case '4': p = 3; break;
        default: bad(); return;
      }
      ++lines;
      auto it = index[p].find(wordnet_key(f[0].substr(0, pct)));
      if (it != index[p].end()) it->second.tag_count += cnt;
    });
    if (lines == 0) fail(file, ": no counts (not a WordNet cntlist.rev file?)");
  }

  const LemmaEntry* lookup(const std::string& key, Pos pos) const {
    auto& map = index[static_cast<int>(pos)];
    auto it = map.find(key);
    return it == map.end() ? nullptr : &it->second;
  }

  // --- data.noun (callers hold mu) ---

  Synset& synset(uint32_t off) {
    auto it = synsets.find(off);
    if (it != synsets.end()) return it->second;
    const std::string file = path("data.noun");
    std::call_once(data_once, [&] { data_noun = read_file(file); });
    if (off >= data_noun.size() || (off > 0 && data_noun[off - 1] != '\n'))
      fail(file, ": no synset line at offset ", off, " (corrupt or mismatched with the index)");
    size_t end = data_noun.find('\n', off);
    if (end == std::string::npos) end = data_noun.size();
    auto f = fields(std::string_view(data_noun).substr(off, end - off));
    auto bad = [&](const char* why) { fail(file, ": malformed synset at offset ", off, " (", why, ")"); };
    uint32_t self = 0;
    int w_cnt = 0, p_cnt = 0;
    if (f.size() < 5 || !parse_int(f[0], self) || self != off) bad("offset field");
    if (f[2] != "n") bad("not a noun synset");
    if (!parse_int(f[3], w_cnt, 16) || w_cnt <= 0) bad("word count");
    size_t i = 4 + 2 * static_cast<size_t>(w_cnt);
    if (f.size() <= i || !parse_int(f[i], p_cnt) || p_cnt < 0) bad("pointer count");
    if (f.size() < i + 1 + 4 * static_cast<size_t>(p_cnt)) bad("pointers");
    Synset s;
    s.first_word = wordnet_key(f[4]);
    for (int k = 0; k < p_cnt; ++k) {
      auto sym = f[i + 1 + 4 * k];
      auto target = f[i + 2 + 4 * k];
      auto tpos = f[i + 3 + 4 * k];
      if (sym != "@" && sym != "@i") continue;
      uint32_t t = 0;
      if (tpos != "n" || !parse_int(target, t)) bad("hypernym pointer");
      s.hypernyms.push_back(t);
    }
    return synsets.emplace(off, std::move(s)).first->second;
  }

  int min_depth(uint32_t off) {
    Synset& s = synset(off);
    if (s.min_depth >= 0) return s.min_depth;
    std::vector<uint32_t> hyp = s.hypernyms;  // copy: synset() may rehash
    int d = 0;
    if (!hyp.empty()) {
      d = 1 << 30;
      for (uint32_t h : hyp) d = std::min(d, 1 + min_depth(h));
    }
    synset(off).min_depth = d;
    return d;
  }

  int max_depth(uint32_t off) {
    Synset& s = synset(off);
    if (s.max_depth >= 0) return s.max_depth;
    std::vector<uint32_t> hyp = s.hypernyms;
    int d = 0;
    for (uint32_t h : hyp) d = std::max(d, 1 + max_depth(h));
    synset(off).max_depth = d;
    return d;
  }

  // Breadth-first distances from `off` to itself and all its hypernyms.
  std::unordered_map<uint32_t, int> hypernym_distances(uint32_t off) {
    std::unordered_map<uint32_t, int> dist;
    std::deque<std::pair<uint32_t, int>> queue{{off, 0}};
    while (!queue.empty()) {
      auto [s, d] = queue.front();
      queue.pop_front();
      if (dist.count(s)) continue;
      dist[s] = d;
      for (uint32_t h : synset(s).hypernyms) queue.emplace_back(h, d + 1);
    }
    return dist;
  }

  std::string name(uint32_t off) {
    const std::string word = synset(off).first_word;
    const LemmaEntry* e = lookup(word, Pos::Noun);
    auto it = e ? std::find(e->offsets.begin(), e->offsets.end(), off) : std::vector<uint32_t>::const_iterator{};
    if (!e || it == e->offsets.end())
      fail(path("index.noun"), ": '", word, "' does not list synset ", off, " (index and data.noun mismatch)");
    char num[16];
    std::snprintf(num, sizeof num, "%02d", static_cast<int>(it - e->offsets.begin()) + 1);
    return word + ".n." + num;
  }

  static int shortest_distance(const std::unordered_map<uint32_t, int>& da,
                               const std::unordered_map<uint32_t, int>& db) {
    int best = -1;
    for (auto& [s, d1] : da) {
      auto it = db.find(s);
      if (it != db.end() && (best < 0 || d1 + it->second < best)) best = d1 + it->second;
    }
    return best;
  }

  double wup(uint32_t a, uint32_t b) {
    if (a == b) {
      synset(a);  // validate
      return 1.0;
    }
    auto da = hypernym_distances(a);
    auto db = hypernym_distances(b);
    // Lowest common hypernyms by min_depth (NLTK's use_min_depth=True).
    std::vector<uint32_t> lch;
    int best = -1;
    for (auto& [s, d] : da) {
      if (!db.count(s)) continue;
      int md = min_depth(s);
      if (md > best) {
        best = md;
        lch.clear();
      }
      if (md == best) lch.push_back(s);
    }
    if (lch.empty()) return 0.0;  // no common hypernym (cannot happen for WordNet 3.0 nouns)
    uint32_t sub;
    if (std::find(lch.begin(), lch.end(), a) != lch.end()) {
      sub = a;
    } else {
      sub = lch[0];
      std::string sub_name = name(sub);
      for (size_t k = 1; k < lch.size(); ++k) {
        std::string n = name(lch[k]);
        if (n < sub_name) sub = lch[k], sub_name = std::move(n);
      }
    }
    const double depth = max_depth(sub) + 1;
    auto dsub = hypernym_distances(sub);
    int len1 = a == sub ? 0 : shortest_distance(da, dsub);
    int len2 = b == sub ? 0 : shortest_distance(db, dsub);
    if (len1 < 0 || len2 < 0) return 0.0;
    return 2.0 * depth / (len1 + len2 + 2.0 * depth);
  }
};

WordNet::WordNet(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WordNet::WordNet(WordNet&&) noexcept = default;
WordNet& WordNet::operator=(WordNet&&) noexcept = default;
WordNet::~WordNet() = default;

std::string WordNet::default_dir() {
  const char* env = std::getenv("MMN_WORDNET_DIR");
  if (env && *env) return env;
  return "/usr/share/wordnet";
}

WordNet WordNet::load(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    fail(dir, ": WordNet directory not found (install Debian's wordnet-base or set MMN_WORDNET_DIR)");
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  for (int p = 0; p < kNumPos; ++p) impl->load_index(static_cast<Pos>(p));
  for (int p = 0; p < kNumPos; ++p) impl->load_exceptions(static_cast<Pos>(p));
  impl->load_counts();
  if (!std::filesystem::is_regular_file(impl->path("data.noun"), ec)) fail(impl->path("data.noun"), ": no such file");
  return WordNet(std::move(impl));
}

const std::string& WordNet::dir() const { return impl_->dir; }

const LemmaEntry* WordNet::lookup(std::string_view lemma, Pos pos) const {
  return impl_->lookup(wordnet_key(lemma), pos);
}

bool WordNet::known(std::string_view lemma) const {
  const std::string key = wordnet_key(lemma);
  for (int p = 0; p < kNumPos; ++p)
    if (impl_->lookup(key, static_cast<Pos>(p))) return true;
  return false;
}

std::vector<std::string> WordNet::morphy(std::string_view word, Pos pos) const {
  const std::string w = wordnet_key(word);
  std::vector<std::string> out;
  if (w.empty()) return out;
  auto add = [&](std::string form) {
    if (impl_->lookup(form, pos) && std::find(out.begin(), out.end(), form) == out.end()) out.push_back(std::move(form));
  };
  auto& exc = impl_->exc[static_cast<int>(pos)];
  if (auto it = exc.find(w); it != exc.end()) {
    add(w);
    for (auto& base : it->second) add(base);
    return out;
  }
  add(w);
  std::span<const Rule> rules;
  switch (pos) {
    case Pos::Noun:
      if (ends_with(w, "ss") || w.size() <= 2) return out;
      rules = kNounRules;
      break;
    case Pos::Verb: rules = kVerbRules; break;
    case Pos::Adj: rules = kAdjRules; break;
    case Pos::Adv: return out;
  }
  for (const Rule& r : rules)
    if (w.size() > r.suffix.size() && ends_with(w, r.suffix))
      add(w.substr(0, w.size() - r.suffix.size()) + std::string(r.ending));
  return out;
}

std::vector<uint32_t> WordNet::noun_synsets(std::string_view word) const {
  std::vector<uint32_t> out;
  for (auto& lemma : morphy(word, Pos::Noun))
    for (uint32_t off : impl_->lookup(lemma, Pos::Noun)->offsets)
      if (std::find(out.begin(), out.end(), off) == out.end()) out.push_back(off);
  return out;
}

std::string WordNet::noun_synset_name(uint32_t offset) const {
  std::lock_guard lock(impl_->mu);
  return impl_->name(offset);
}

double WordNet::synset_wup(uint32_t a, uint32_t b) const {
  std::lock_guard lock(impl_->mu);
  return impl_->wup(a, b);
}

std::optional<double> WordNet::wup_similarity(std::string_view noun_a, std::string_view noun_b) const {
  auto sa = noun_synsets(noun_a), sb = noun_synsets(noun_b);
  if (sa.empty() || sb.empty()) return std::nullopt;
  std::lock_guard lock(impl_->mu);
  double best = 0.0;
  for (uint32_t a : sa)
    for (uint32_t b : sb) best = std::max(best, impl_->wup(a, b));
  return best;
}

}  // namespace mmn
