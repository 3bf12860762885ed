#include "neurons/metrics.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <tuple>

#include "io/atomic_file.h"
#include "io/json_file.h"
#include "io/npy.h"
#include "neurons/heatmap.h"
#include "neurons/nouns.h"
#include "neurons/wordnet.h"
#include "util/error.h"
#include "util/progress.h"

namespace mmn {

namespace fs = std::filesystem;
using nlohmann::json;

const char* ranking_name(Ranking r) {
  switch (r) {
    case Ranking::Score: return "score";
    case Ranking::Uniform: return "uniform";
    case Ranking::LayerMatched: return "layer_matched";
    case Ranking::Gradient: return "gradient";
  }
  return "?";
}

const RankingMetrics* MetricsReport::find(int64_t k, Ranking r) const {
  for (auto& m : results)
    if (m.k == k && m.ranking == r) return &m;
  return nullptr;
}

// ---------------------------------------------------------------- random rankings

namespace {

// k distinct values of [0, n), in draw order (Floyd's algorithm: exact, O(k)).
std::vector<int64_t> distinct_draws(std::mt19937_64& rng, int64_t k, int64_t n) {
  if (k > n) fail("internal: ", k, " distinct draws from ", n, " values");
  std::set<int64_t> seen;
  std::vector<int64_t> out;
  for (int64_t j = n - k; j < n; ++j) {
    const int64_t t = std::uniform_int_distribution<int64_t>(0, j)(rng);
    const int64_t v = seen.count(t) ? j : t;
    seen.insert(v);
    out.push_back(v);
  }
  return out;
}

}  // namespace

std::vector<int64_t> uniform_random_neurons(uint64_t seed, int64_t k, int layers, int64_t units) {
  std::mt19937_64 rng(seed);
  return distinct_draws(rng, k, layers * units);
}

std::vector<int64_t> layer_matched_random_neurons(uint64_t seed, const std::vector<int64_t>& like, int layers,
                                                  int64_t units) {
  std::vector<int64_t> per_layer(layers, 0);
  for (int64_t f : like) ++per_layer.at(f / units);
  std::mt19937_64 rng(seed);
  std::vector<int64_t> out;
  for (int l = 0; l < layers; ++l)
    for (int64_t u : distinct_draws(rng, per_layer[l], units)) out.push_back(l * units + u);
  return out;
}

uint64_t random_ranking_seed(uint64_t base, Ranking r, const std::string& image_id, int concept_index, int64_t k,
                             bool twin) {
  // The uniform draw keys on (image, concept_index, k) alone; the others add their kind.
  if (r == Ranking::Uniform && !twin) return mix_seed(base, {hash_string(image_id), static_cast<uint64_t>(concept_index),
                                                             static_cast<uint64_t>(k)});
  return mix_seed(base, {hash_string(image_id), static_cast<uint64_t>(concept_index), static_cast<uint64_t>(k),
                         static_cast<uint64_t>(r) + 1, twin ? 1u : 0u});
}

// ---------------------------------------------------------------- token matching

namespace {

std::string lower_trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  std::string out = s.substr(a, b - a);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// A top token counts as a noun for Wu–Palmer when it is a word (letters only,
// ≥ 2 of them, not a closed-class stop word) that WordNet reads as a noun:
// sub-word fragments and "a", "in", … would otherwise match odd senses.
bool is_noun_token(const WordNet& wn, const std::string& t) {
  if (t.size() < 2) return false;
  for (char c : t)
    if (!std::isalpha(static_cast<unsigned char>(c))) return false;
  return !is_noun_stop_word(t) && !wn.noun_synsets(t).empty();
}

}  // namespace

bool token_names_noun(const WordNet& wn, const std::string& token, const std::string& word, const std::string& lemma) {
  const std::string t = lower_trim(token), w = lower_trim(word), l = lower_trim(lemma);
  if (t.empty()) return false;
  if (t == w || t == l) return true;
  for (auto& m : wn.morphy(t, Pos::Noun))
    if (m == l || m == w) return true;
  return false;
}

double best_wup_with_tokens(const WordNet& wn, const std::string& lemma, const std::vector<std::string>& tokens) {
  double best = 0;
  for (auto& tok : tokens) {
    const std::string t = lower_trim(tok);
    if (!is_noun_token(wn, t)) continue;
    if (auto s = wn.wup_similarity(lemma, t)) best = std::max(best, *s);
  }
  return best;
}

// ---------------------------------------------------------------- twin check

namespace {

std::string run_json(const RunData& r) { return (fs::path(r.dir) / "run.json").string(); }

bool same_path(const std::string& a, const std::string& b) {
  if (a == b) return true;
  std::error_code e1, e2;
  const fs::path ca = fs::weakly_canonical(a, e1), cb = fs::weakly_canonical(b, e2);
  return !e1 && !e2 && ca == cb;
}

}  // namespace

void check_shuffled_twin(const RunData& run, const RunData& twin) {
  const std::string rj = run_json(run), tj = run_json(twin);
  const json& ro = run.options();
  const json& to = twin.options();
  auto opt = [](const json& o, const char* key) { return o.contains(key) ? o.at(key) : json(); };
  if (opt(to, "shuffle_image_tokens").is_null())
    fail(tj, ": not a --shuffle-image-tokens run (the twin must permute the image tokens)");
  if (!opt(ro, "shuffle_image_tokens").is_null())
    fail(rj, ": this run permuted the image tokens itself; give the unshuffled run and --shuffled its twin");
  const std::string rf = run.info.value("model_fingerprint", ""), tf = twin.info.value("model_fingerprint", "");
  if (run.info.value("family", "") != twin.info.value("family", "") || run.layers() != twin.layers() ||
      run.units_per_layer() != twin.units_per_layer() || (!rf.empty() && !tf.empty() && rf != tf) ||
      ((rf.empty() || tf.empty()) && !same_path(run.model(), twin.model())))
    fail(tj, ": made with another model (", twin.model(), ") than ", rj, " (", run.model(), ")");
  for (const char* key : {"activation", "method", "fold_norm_gain", "tokens", "nouns", "max_new_tokens", "query", "prefix"})
    if (opt(ro, key) != opt(to, key))
      fail(tj, ": made with another ", key, " (", opt(to, key).dump(), ") than ", rj, " (", opt(ro, key).dump(), ")");
  std::map<std::string, const RunImage*> mine;
  for (auto& im : run.images) mine[im.id] = &im;
  for (auto& im : twin.images) {
    const std::string rp = (fs::path(im.dir) / "result.json").string();
    auto it = mine.find(im.id);
    if (it == mine.end()) fail(rp, ": image '", im.id, "' is not in ", run.dir, " (the twin of another run?)");
    if (!same_path(im.image, it->second->image))
      fail(rp, ": image ", im.image, " is not the run's ", it->second->image, " (the twin of another run?)");
    if (im.permutation.empty()) fail(rp, ": no image-token permutation recorded (not a shuffled run)");
  }
  if (twin.images.size() != run.images.size())
    for (auto& im : run.images) {
      bool found = false;
      for (auto& t : twin.images) found |= t.id == im.id;
      if (!found) fail(tj, ": the twin has no result for image '", im.id, "' of ", run.dir, " (finish the twin run)");
    }
}

// ---------------------------------------------------------------- the metrics

namespace {

constexpr double kMaskPercentile = 95.0;  // the method's mask threshold (method.md §4)

struct Unit {
  int image = 0, concept_index = 0;
  int lemma = 0;  // index into the run's lemma table
  std::string word;
};

using Sets = std::vector<std::vector<int64_t>>;  // per unit: N_k as flat ids, ranked

struct UnitTable {
  std::vector<Unit> units;
  std::vector<std::string> lemmas;
};

std::string unit_lemma(const RunConcept& c) {
  std::string l = lower_trim(c.lemma);
  return l.empty() ? lower_trim(c.word) : l;
}

UnitTable make_units(const RunData& run) {
  UnitTable t;
  std::map<std::string, int> index;
  for (size_t i = 0; i < run.images.size(); ++i)
    for (size_t c = 0; c < run.images[i].concepts.size(); ++c) {
      const RunConcept& rc = run.images[i].concepts[c];
      const std::string l = unit_lemma(rc);
      auto [it, added] = index.emplace(l, static_cast<int>(t.lemmas.size()));
      if (added) t.lemmas.push_back(l);
      t.units.push_back({static_cast<int>(i), static_cast<int>(c), it->second, rc.word});
    }
  return t;
}

std::vector<int64_t> first_k(const std::vector<NeuronEntry>& ns, int64_t k, int64_t units) {
  std::vector<int64_t> out;
  for (int64_t j = 0; j < k; ++j) out.push_back(ns[j].layer * units + ns[j].unit);
  return out;
}

// N_k of every unit for one ranking; nullopt when the run lacks it at this k.
std::optional<Sets> ranking_sets(const RunData& run, const std::vector<Unit>& units, Ranking r, int64_t k,
                                 uint64_t seed, bool twin) {
  const int L = run.layers();
  const int64_t I = run.units_per_layer();
  Sets out;
  for (const Unit& u : units) {
    const RunImage& im = run.images[u.image];
    const RunConcept& c = im.concepts[u.concept_index];
    switch (r) {
      case Ranking::Score:
        if (static_cast<int64_t>(c.neurons.size()) < k) return std::nullopt;
        out.push_back(first_k(c.neurons, k, I));
        break;
      case Ranking::Gradient:
        if (static_cast<int64_t>(c.gradient.size()) < k) return std::nullopt;
        out.push_back(first_k(c.gradient, k, I));
        break;
      case Ranking::Uniform:
        out.push_back(uniform_random_neurons(random_ranking_seed(seed, r, im.id, u.concept_index, k, twin), k, L, I));
        break;
      case Ranking::LayerMatched:
        if (static_cast<int64_t>(c.neurons.size()) < k) return std::nullopt;
        out.push_back(layer_matched_random_neurons(random_ranking_seed(seed, r, im.id, u.concept_index, k, twin),
                                                   first_k(c.neurons, k, I), L, I));
        break;
    }
  }
  return out;
}

int64_t overlap(std::vector<int64_t> a, std::vector<int64_t> b) {
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  std::vector<int64_t> both;
  std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(both));
  return static_cast<int64_t>(both.size());
}

double mean(const std::vector<double>& x) {
  double s = 0;
  for (double v : x) s += v;
  return x.empty() ? 0 : s / static_cast<double>(x.size());
}

// ---- semantic sensitivity

struct Semantic {
  std::vector<double> named, wup;
};

class TokenJudge {
 public:
  TokenJudge(const WordNet& wn) : wn_(wn) {}
  bool names(const std::string& tok, const std::string& word, const std::string& lemma) {
    auto key = std::make_tuple(tok, word, lemma);
    auto it = names_.find(key);
    if (it == names_.end()) it = names_.emplace(key, token_names_noun(wn_, tok, word, lemma)).first;
    return it->second;
  }
  double wup(const std::string& lemma, const std::vector<std::string>& toks) {
    double best = 0;
    for (auto& t : toks) {
      auto key = std::make_pair(lemma, t);
      auto it = wup_.find(key);
      if (it == wup_.end()) it = wup_.emplace(key, best_wup_with_tokens(wn_, lemma, {t})).first;
      best = std::max(best, it->second);
    }
    return best;
  }
  bool has_noun_reading(const std::string& lemma) {
    auto it = noun_.find(lemma);
    if (it == noun_.end()) it = noun_.emplace(lemma, !wn_.noun_synsets(lemma).empty()).first;
    return it->second;
  }

 private:
  const WordNet& wn_;
  std::map<std::tuple<std::string, std::string, std::string>, bool> names_;
  std::map<std::pair<std::string, std::string>, double> wup_;
  std::map<std::string, bool> noun_;
};

Semantic semantic_sensitivity(const UnitTable& t, const Sets& sets, const std::map<int64_t, std::vector<std::string>>& tops,
                              TokenJudge& judge) {
  Semantic s;
  for (size_t u = 0; u < t.units.size(); ++u) {
    const std::string& lemma = t.lemmas[t.units[u].lemma];
    const std::string& word = t.units[u].word;
    const bool wup_defined = judge.has_noun_reading(lemma);
    double named = 0, wup = 0;
    for (int64_t f : sets[u]) {
      const std::vector<std::string>& toks = tops.at(f);
      bool hit = false;
      for (auto& tok : toks) hit = hit || judge.names(tok, word, lemma);
      named += hit;
      if (wup_defined) wup += judge.wup(lemma, toks);
    }
    const double k = static_cast<double>(sets[u].size());
    s.named.push_back(named / k);
    if (wup_defined) s.wup.push_back(wup / k);
  }
  return s;
}

// ---- cross-image invariance and exclusivity (inverted index: neuron → units)

struct CrossImage {
  std::vector<double> same, other;  // per noun seen in ≥ 2 images
};

CrossImage cross_image(const UnitTable& t, const Sets& sets, int64_t n_neurons) {
  const size_t U = t.units.size();
  std::vector<std::vector<int32_t>> inv(static_cast<size_t>(n_neurons));
  for (size_t u = 0; u < U; ++u)
    for (int64_t f : sets[u]) inv[f].push_back(static_cast<int32_t>(u));
  const size_t W = t.lemmas.size();
  std::map<int, int64_t> per_image;
  std::map<std::pair<int, int>, int64_t> per_lemma_image;
  std::vector<int64_t> per_lemma(W, 0);
  std::vector<std::set<int>> lemma_images(W);
  for (auto& u : t.units) {
    ++per_image[u.image];
    ++per_lemma_image[{u.lemma, u.image}];
    ++per_lemma[u.lemma];
    lemma_images[u.lemma].insert(u.image);
  }
  std::vector<double> same_sum(W, 0), other_sum(W, 0), other_pairs(W, 0);
  std::vector<int64_t> cnt(U, 0);
  std::vector<int32_t> touched;
  for (size_t u = 0; u < U; ++u) {
    const Unit& a = t.units[u];
    if (lemma_images[a.lemma].size() < 2) continue;
    for (int64_t f : sets[u])
      for (int32_t v : inv[f])
        if (cnt[v]++ == 0) touched.push_back(v);
    const double k = static_cast<double>(sets[u].size());
    for (int32_t v : touched) {
      const Unit& b = t.units[v];
      if (b.image == a.image) continue;
      if (b.lemma == a.lemma) {
        if (static_cast<size_t>(v) > u) same_sum[a.lemma] += cnt[v] / k;
      } else {
        other_sum[a.lemma] += cnt[v] / k;
      }
    }
    for (int32_t v : touched) cnt[v] = 0;
    touched.clear();
    other_pairs[a.lemma] += static_cast<double>(U) - per_image[a.image] -
                            (per_lemma[a.lemma] - per_lemma_image[{a.lemma, a.image}]);
  }
  CrossImage c;
  for (size_t w = 0; w < W; ++w) {
    if (lemma_images[w].size() < 2 || other_pairs[w] == 0) continue;
    double sq = 0;
    for (auto& [key, n] : per_lemma_image)
      if (key.first == static_cast<int>(w)) sq += static_cast<double>(n) * n;
    const double same_pairs = (static_cast<double>(per_lemma[w]) * per_lemma[w] - sq) / 2;
    c.same.push_back(same_sum[w] / same_pairs);
    c.other.push_back(other_sum[w] / other_pairs[w]);
  }
  return c;
}

std::vector<double> exclusive_share(const UnitTable& t, const Sets& sets, int64_t n_neurons) {
  std::vector<int32_t> owner(static_cast<size_t>(n_neurons), -1);  // lemma, or −2 when shared by several
  for (size_t u = 0; u < t.units.size(); ++u)
    for (int64_t f : sets[u]) {
      int32_t& o = owner[f];
      if (o == -1) o = t.units[u].lemma;
      else if (o != t.units[u].lemma) o = -2;
    }
  std::vector<double> out;
  for (size_t u = 0; u < t.units.size(); ++u) {
    double own = 0;
    for (int64_t f : sets[u]) own += owner[f] != -2;
    out.push_back(own / static_cast<double>(sets[u].size()));
  }
  return out;
}

// ---- activation contrast from image_acts.npy

std::vector<float> read_image_acts(const std::string& path, int L, int64_t I) {
  NpyArray a = read_npy(path);
  if (a.shape != std::vector<int64_t>{2, L, I})
    fail(path, ": expected shape [2, ", L, ", ", I, "] (mean and max over the image rows per neuron)");
  std::vector<float> v = a.as_f32();
  for (float x : v)
    if (!std::isfinite(x)) fail(path, ": holds non-finite values");
  return v;
}

// Per lemma and needed neuron, the sums over images with / over all images, for both statistics.
class ActivationSums {
 public:
  // needed[w]: the flat ids some unit of lemma w asks about.
  ActivationSums(const RunData& run, const UnitTable& t, const std::vector<std::set<int64_t>>& needed, bool progress) {
    const int L = run.layers();
    const int64_t I = run.units_per_layer(), N = L * I;
    has_.assign(t.lemmas.size(), std::vector<uint8_t>(run.images.size(), 0));
    for (auto& u : t.units) has_[u.lemma][u.image] = 1;
    count_.assign(t.lemmas.size(), 0);
    for (size_t w = 0; w < has_.size(); ++w)
      for (uint8_t h : has_[w]) count_[w] += h;
    total_.assign(2 * N, 0.0);
    index_.resize(needed.size());
    with_.resize(needed.size());
    for (size_t w = 0; w < needed.size(); ++w) {
      index_[w].assign(needed[w].begin(), needed[w].end());
      with_[w].assign(2 * index_[w].size(), 0.0);
    }
    Progress bar("image activations", static_cast<int64_t>(run.images.size()), "images");
    for (size_t j = 0; j < run.images.size(); ++j) {
      const std::vector<float> a = read_image_acts(run.images[j].image_acts, L, I);
      for (int64_t f = 0; f < 2 * N; ++f) total_[f] += a[f];
      for (size_t w = 0; w < needed.size(); ++w) {
        if (!has_[w][j]) continue;
        const size_t m = index_[w].size();
        for (size_t x = 0; x < m; ++x) {
          with_[w][x] += a[index_[w][x]];
          with_[w][m + x] += a[N + index_[w][x]];
        }
      }
      if (progress) bar.update(static_cast<int64_t>(j + 1));
    }
    if (progress) bar.finish();
    n_ = N;
    images_ = static_cast<int64_t>(run.images.size());
  }
  int64_t images_with(int w) const { return count_[w]; }
  // Mean over images with / without lemma w of neuron f's statistic s (0 mean, 1 max).
  std::pair<double, double> means(int w, int64_t f, int s) const {
    const auto it = std::lower_bound(index_[w].begin(), index_[w].end(), f);
    const size_t x = static_cast<size_t>(it - index_[w].begin());
    const double with = with_[w][s * index_[w].size() + x], all = total_[s * n_ + f];
    const int64_t p = images_with(w);
    return {with / static_cast<double>(p), (all - with) / static_cast<double>(images_ - p)};
  }

 private:
  std::vector<std::vector<uint8_t>> has_;  // [lemma][image]
  std::vector<int64_t> count_;             // images per lemma
  std::vector<double> total_;              // [2, N]
  std::vector<std::vector<int64_t>> index_;
  std::vector<std::vector<double>> with_;  // [lemma][2 × needed]
  int64_t n_ = 0, images_ = 0;
};

// ---- region invariance: masks of the averaged top-k maps

// The averaged top-k map (maps.json entry with "top": k) of a unit, or empty
// when the run has no such map; *grid = 0 for query-token models (no grid).
std::vector<float> mean_top_map(const RunImage& im, const RunConcept& c, int64_t k, int* grid) {
  *grid = -1;
  const fs::path hm = fs::path(im.dir) / "heatmaps";
  std::error_code ec;
  if (!fs::is_directory(hm, ec)) return {};
  const std::string prefix = std::to_string(c.step) + "_";
  fs::path dir;
  for (auto& e : fs::directory_iterator(hm))
    if (e.is_directory() && e.path().filename().string().rfind(prefix, 0) == 0) dir = e.path();
  if (dir.empty() || !fs::exists(dir / "maps.json") || !fs::exists(dir / "maps.npy")) return {};
  const json index = parse_json(read_file((dir / "maps.json").string()), (dir / "maps.json").string());
  if (!index.is_array()) fail((dir / "maps.json").string(), ": expected an array of map entries");
  int64_t at = -1;
  for (size_t i = 0; i < index.size(); ++i)
    if (index[i].is_object() && index[i].contains("top") && json_int(index[i]["top"], 0, INT64_MAX) == k)
      at = static_cast<int64_t>(i);
  if (at < 0) return {};
  NpyArray a = read_npy((dir / "maps.npy").string());
  if (a.shape.empty() || a.shape[0] != static_cast<int64_t>(index.size()) || (a.shape.size() != 2 && a.shape.size() != 3) ||
      (a.shape.size() == 3 && a.shape[1] != a.shape[2]))
    fail((dir / "maps.npy").string(), ": expected [", index.size(), ", g, g] or [", index.size(),
         ", P] to match maps.json");
  if (a.shape.size() == 2) {
    *grid = 0;
    return {};
  }
  *grid = static_cast<int>(a.shape[1]);
  const std::vector<float> all = a.as_f32();
  const int64_t P = a.shape[1] * a.shape[2];
  return std::vector<float>(all.begin() + at * P, all.begin() + (at + 1) * P);
}

}  // namespace

MetricsReport compute_metrics(const RunData& run, const RunData* twin, const WordNet& wn,
                              const TopTokensFn& top_tokens, const MetricsOptions& opt) {
  MetricsReport rep;
  const int L = run.layers();
  const int64_t I = run.units_per_layer(), N = L * I;
  rep.layers = L;
  rep.images = static_cast<int64_t>(run.images.size());
  const UnitTable t = make_units(run);
  rep.units = static_cast<int64_t>(t.units.size());
  if (t.units.empty()) fail(run.dir, ": the run has no (image, noun) results to measure");
  {
    std::vector<std::set<int>> imgs(t.lemmas.size());
    for (auto& u : t.units) imgs[u.lemma].insert(u.image);
    for (auto& s : imgs) rep.repeated_nouns += s.size() >= 2;
  }

  // Which k: those every unit's stored top-k covers.
  int64_t stored = INT64_MAX;
  for (auto& u : t.units) stored = std::min<int64_t>(stored, run.images[u.image].concepts[u.concept_index].neurons.size());
  for (int64_t k : opt.ks) {
    if (k < 1 || k > N) fail("k = ", k, " is not between 1 and the model's ", N, " neurons");
    if (k > stored)
      rep.notes.push_back("k = " + std::to_string(k) + " skipped: the run stores only the top " + std::to_string(stored) +
                          " neurons per noun (find --top-k)");
    else
      rep.ks.push_back(k);
  }
  bool any_gradient = false;
  for (auto& u : t.units) any_gradient |= !run.images[u.image].concepts[u.concept_index].gradient.empty();
  rep.rankings = {Ranking::Score, Ranking::Uniform, Ranking::LayerMatched};
  if (any_gradient) rep.rankings.push_back(Ranking::Gradient);
  else rep.notes.push_back("gradient baseline: n/a (the run has no gradient.npy; find --gradient-baseline)");

  // Twin units: the same image and lemma in the shuffled run.
  UnitTable tt;
  std::vector<int> twin_of(t.units.size(), -1);
  if (twin) {
    check_shuffled_twin(run, *twin);
    tt = make_units(*twin);
    std::map<std::pair<std::string, std::string>, int> by_key;
    for (size_t v = 0; v < tt.units.size(); ++v)
      by_key.emplace(std::make_pair(twin->images[tt.units[v].image].id, tt.lemmas[tt.units[v].lemma]), static_cast<int>(v));
    for (size_t u = 0; u < t.units.size(); ++u) {
      auto it = by_key.find({run.images[t.units[u].image].id, t.lemmas[t.units[u].lemma]});
      if (it != by_key.end()) twin_of[u] = it->second, ++rep.twin_units;
    }
    if (rep.twin_units < rep.units)
      rep.notes.push_back("region invariance: " + std::to_string(rep.units - rep.twin_units) + " of " +
                          std::to_string(rep.units) + " (image, noun) units are not in the shuffled twin's caption; left out");
  }

  // Every ranking's N_k.
  std::map<std::pair<Ranking, int64_t>, Sets> sets, twin_sets;
  for (int64_t k : rep.ks)
    for (Ranking r : rep.rankings) {
      if (auto s = ranking_sets(run, t.units, r, k, opt.seed, false)) sets[{r, k}] = std::move(*s);
      if (twin)
        if (auto s = ranking_sets(*twin, tt.units, r, k, opt.seed, true)) twin_sets[{r, k}] = std::move(*s);
    }

  // Logit-lens explanations of every neuron that appears, in chunks.
  std::map<int64_t, std::vector<std::string>> tops;
  {
    std::set<int64_t> all;
    for (auto& [key, s] : sets)
      for (auto& v : s) all.insert(v.begin(), v.end());
    std::vector<int64_t> todo(all.begin(), all.end());
    Progress bar("explain", static_cast<int64_t>(todo.size()), "neurons");
    const size_t chunk = 256;
    for (size_t c0 = 0; c0 < todo.size(); c0 += chunk) {
      std::vector<std::pair<int, int>> ids;
      for (size_t j = c0; j < std::min(todo.size(), c0 + chunk); ++j)
        ids.emplace_back(static_cast<int>(todo[j] / I), static_cast<int>(todo[j] % I));
      std::vector<std::vector<std::string>> got = top_tokens(ids);
      if (got.size() != ids.size()) fail("internal: explanations for ", got.size(), " of ", ids.size(), " neurons");
      for (size_t j = 0; j < ids.size(); ++j) tops[todo[c0 + j]] = std::move(got[j]);
      if (opt.show_progress) bar.update(static_cast<int64_t>(std::min(todo.size(), c0 + chunk)));
    }
    if (opt.show_progress) bar.finish();
  }

  // Image activations: only when every image has them.
  std::optional<ActivationSums> acts;
  std::string acts_note;
  {
    int64_t missing = 0;
    for (auto& im : run.images) missing += im.image_acts.empty();
    if (missing > 0) {
      acts_note = "n/a: " + std::to_string(missing) + " of " + std::to_string(run.images.size()) +
                  " images have no image_acts.npy (a run from before find recorded them; rerun find)";
      rep.notes.push_back("specificity activation contrast " + acts_note);
    } else {
      std::vector<std::set<int64_t>> needed(t.lemmas.size());
      for (auto& [key, s] : sets)
        for (size_t u = 0; u < t.units.size(); ++u) needed[t.units[u].lemma].insert(s[u].begin(), s[u].end());
      acts.emplace(run, t, needed, opt.show_progress);
    }
  }

  TokenJudge judge(wn);
  auto seed_of = [&](const char* metric, Ranking r, int64_t k) {
    return mix_seed(opt.seed, {hash_string(metric), static_cast<uint64_t>(r), static_cast<uint64_t>(k)});
  };
  for (int64_t k : rep.ks)
    for (Ranking r : rep.rankings) {
      RankingMetrics m;
      m.ranking = r;
      m.k = k;
      auto it = sets.find({r, k});
      if (it == sets.end()) {
        m.region_note = m.mask_note = "n/a: fewer than k gradient neurons stored";
        m.act_mean.note = m.act_max.note = m.region_note;
        rep.results.push_back(m);
        continue;
      }
      const Sets& s = it->second;
      auto boot = [&](const char* metric, const std::vector<double>& x) {
        return bootstrap_mean(x, seed_of(metric, r, k), opt.resamples);
      };

      const Semantic sem = semantic_sensitivity(t, s, tops, judge);
      m.noun_in_top_tokens = boot("noun_in_top_tokens", sem.named);
      m.best_wup = boot("best_wup", sem.wup);

      // Region invariance.
      if (!twin) {
        m.region_note = m.mask_note = "n/a: no --shuffled twin given";
      } else if (!twin_sets.count({r, k})) {
        m.region_note = m.mask_note = r == Ranking::Gradient
                                          ? "n/a: the twin has no gradient top-k (find --gradient-baseline)"
                                          : "n/a: the twin stores fewer than k neurons per noun";
      } else {
        const Sets& ts = twin_sets.at({r, k});
        std::vector<double> jac, iou;
        int64_t no_map = 0;
        int grid_kind = -1;
        for (size_t u = 0; u < t.units.size(); ++u) {
          if (twin_of[u] < 0) continue;
          const int64_t both = overlap(s[u], ts[twin_of[u]]);
          jac.push_back(static_cast<double>(both) / static_cast<double>(2 * k - both));
          if (r != Ranking::Score || opt.mask_side <= 0) continue;
          const Unit& a = t.units[u];
          const Unit& b = tt.units[twin_of[u]];
          int ga = -1, gb = -1;
          std::vector<float> ma = mean_top_map(run.images[a.image], run.images[a.image].concepts[a.concept_index], k, &ga);
          std::vector<float> mb = mean_top_map(twin->images[b.image], twin->images[b.image].concepts[b.concept_index], k, &gb);
          if (ga == 0 || gb == 0) grid_kind = 0;
          if (ma.empty() || mb.empty() || ga != gb) {
            ++no_map;
            continue;
          }
          auto mask = [&](const std::vector<float>& g) {
            return mask_above_percentile(upsample_bilinear(g.data(), ga, ga, opt.mask_side, opt.mask_side), kMaskPercentile);
          };
          iou.push_back(mask_iou(mask(ma), mask(mb)));
        }
        m.jaccard = boot("jaccard", jac);
        if (r != Ranking::Score) {
          m.mask_note = "n/a: maps exist only for the score ranking";
        } else if (opt.mask_side <= 0 || grid_kind == 0) {
          m.mask_note = "n/a: the model's image tokens have no patch grid";
        } else if (iou.empty()) {
          m.mask_note = "n/a: no averaged top-" + std::to_string(k) +
                        " maps in both runs (find --heatmaps writes them for k in {1,10,50,100,500,1000} up to --top-k)";
        } else if (no_map > 0) {
          m.mask_note = std::to_string(no_map) + " units without maps left out";
        }
        m.mask_iou = boot("mask_iou", iou);
      }

      const CrossImage ci = cross_image(t, s, N);
      m.same_noun = boot("same_noun", ci.same);
      m.other_nouns = boot("other_nouns", ci.other);
      m.cross_ratio = bootstrap_ratio(ci.same, ci.other, seed_of("cross_ratio", r, k), opt.resamples);

      m.exclusive = boot("exclusive", exclusive_share(t, s, N));

      for (int stat = 0; stat < 2; ++stat) {
        ActivationContrast& ac = stat == 0 ? m.act_mean : m.act_max;
        if (!acts) {
          ac.note = acts_note;
          continue;
        }
        std::vector<double> with, without;
        int64_t everywhere = 0;
        for (size_t u = 0; u < t.units.size(); ++u) {
          const int w = t.units[u].lemma;
          if (acts->images_with(w) == rep.images) {
            ++everywhere;
            continue;
          }
          double a = 0, b = 0;
          for (int64_t f : s[u]) {
            auto [x, y] = acts->means(w, f, stat);
            a += x;
            b += y;
          }
          with.push_back(a / static_cast<double>(k));
          without.push_back(b / static_cast<double>(k));
        }
        const char* tag = stat == 0 ? "act_mean" : "act_max";
        ac.with_noun = boot((std::string(tag) + "_with").c_str(), with);
        ac.without_noun = boot((std::string(tag) + "_without").c_str(), without);
        ac.difference = bootstrap_paired_diff(with, without, seed_of((std::string(tag) + "_diff").c_str(), r, k), opt.resamples);
        if (with.empty()) {
          ac.note = "n/a: every image's nouns include the noun (no images without it)";
        } else if (mean(without) > 0) {
          ac.ratio = bootstrap_ratio(with, without, seed_of((std::string(tag) + "_ratio").c_str(), r, k), opt.resamples);
        } else {
          ac.note = "ratio n/a: the mean activation without the noun is <= 0 (see the difference)";
        }
        if (everywhere > 0 && !with.empty())
          ac.note += (ac.note.empty() ? "" : "; ") + std::to_string(everywhere) +
                     " units of nouns that every image has left out";
      }

      std::vector<std::vector<double>> share(L);
      std::vector<double> depth;
      for (size_t u = 0; u < t.units.size(); ++u) {
        std::vector<double> c(L, 0);
        double d = 0;
        for (int64_t f : s[u]) {
          c[f / I] += 1;
          d += L > 1 ? static_cast<double>(f / I) / (L - 1) : 0.0;
        }
        for (int l = 0; l < L; ++l) share[l].push_back(c[l] / static_cast<double>(k));
        depth.push_back(d / static_cast<double>(k));
      }
      for (int l = 0; l < L; ++l) m.layer_share.push_back(boot(("layer" + std::to_string(l)).c_str(), share[l]));
      m.mean_depth = boot("mean_depth", depth);
      rep.results.push_back(std::move(m));
    }
  return rep;
}

json metrics_to_json(const MetricsReport& r) {
  auto est = [](const Estimate& e) { return e.n == 0 ? json(nullptr) : to_json(e); };
  auto contrast = [&](const ActivationContrast& a) {
    json j = {{"with_noun", est(a.with_noun)},
              {"without_noun", est(a.without_noun)},
              {"difference", est(a.difference)},
              {"ratio", est(a.ratio)}};
    if (!a.note.empty()) j["note"] = a.note;
    return j;
  };
  json results = json::object();
  for (auto& m : r.results) {
    json layers = json::array();
    for (auto& e : m.layer_share) layers.push_back(est(e));
    json region = {{"jaccard", est(m.jaccard)}, {"mask_iou", est(m.mask_iou)}};
    if (!m.region_note.empty()) region["note"] = m.region_note;
    if (!m.mask_note.empty()) region["mask_note"] = m.mask_note;
    results[std::to_string(m.k)][ranking_name(m.ranking)] = {
        {"semantic_sensitivity", {{"noun_in_top_tokens", est(m.noun_in_top_tokens)}, {"best_wup", est(m.best_wup)}}},
        {"region_invariance", region},
        {"cross_image_invariance",
         {{"same_noun", est(m.same_noun)}, {"other_nouns", est(m.other_nouns)}, {"ratio", est(m.cross_ratio)}}},
        {"specificity",
         {{"exclusive", est(m.exclusive)},
          {"activation", {{"mean_rows", contrast(m.act_mean)}, {"max_rows", contrast(m.act_max)}}}}},
        {"layers", {{"share", layers}, {"mean_depth", est(m.mean_depth)}}}};
  }
  json rankings = json::array();
  for (Ranking x : r.rankings) rankings.push_back(ranking_name(x));
  return {{"images", r.images},   {"units", r.units},   {"repeated_nouns", r.repeated_nouns},
          {"twin_units", r.twin_units}, {"layers", r.layers}, {"k", r.ks},
          {"rankings", rankings}, {"notes", r.notes}, {"results", results}};
}

}  // namespace mmn
