// The properties of method.md §5 measured on a finished find run (`mmneuron
// metrics`): semantic sensitivity, region invariance (against a
// --shuffle-image-tokens twin), cross-image invariance, specificity and the
// layer histogram of each noun's top-k neurons, for the paper's score ranking
// and for baselines, at several k, each with a percentile-bootstrap 95% CI.
//
// Definitions (ours; N_k = the first k neurons of a ranking for one (image,
// noun) unit; nouns are compared by their lowercase lemma):
// - Rankings: score (neurons.npy), uniform (k distinct neurons uniform over
//   all L·d_ff), layer_matched (as many distinct random neurons per layer as
//   the score top-k has there), gradient (gradient.npy, when the run has it).
//   Random draws are seeded by mix_seed(seed, {hash_string(image id), concept
//   index, k[, kind]}) and drawn afresh for each k.
// - Semantic sensitivity, per unit: the share of N_k whose top tokens name
//   the noun (token lowercased and trimmed equals the noun's word or lemma, or
//   WordNet morphy maps it to the lemma); and the mean over N_k of the best
//   Wu–Palmer similarity between the lemma and any top token that is a noun
//   (alphabetic, ≥ 2 letters, not a stop word, a WordNet noun reading), 0
//   when none is. Units whose noun has no WordNet noun reading are left out of
//   the Wu–Palmer mean.
// - Region invariance, per unit that the twin's caption also has (same image
//   id, same lemma): Jaccard |A∩B|/|A∪B| of the two N_k; and the IoU of the
//   95th-percentile masks of the two runs' averaged top-k maps (maps.npy,
//   already restored to the original token order, upsampled to the model
//   input), score ranking only (no maps exist for the others). For the random
//   rankings the twin's set is an independent draw: their Jaccard is the
//   chance level.
// - Cross-image invariance, per noun seen in ≥ 2 images: same = mean over
//   pairs of its units in different images of |A∩B|/k; other = mean over its
//   units u and units v of other nouns in other images of |A_u∩A_v|/k; the
//   bootstrap resamples nouns (paired same/other), ratio = mean same / mean other.
// - Specificity, per unit: exclusive = share of N_k in no other noun's top-k
//   anywhere in the run; and, from image_acts.npy (mean or max over the image
//   rows, per image and neuron), with = mean over N_k of the neuron's mean over
//   images whose nouns include the lemma, without = the same over the other
//   images (units of a noun every image has are left out). Reported: with,
//   without, difference (with − without, paired) and ratio mean(with) /
//   mean(without) over units, only when mean(without) > 0 (activations can be
//   negative; otherwise n/a).
// - Layers, per unit: the share of N_k in each layer, and the mean relative
//   depth layer/(L − 1).
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "neurons/run.h"
#include "neurons/stats.h"

namespace mmn {

class WordNet;

enum class Ranking { Score, Uniform, LayerMatched, Gradient };
const char* ranking_name(Ranking r);  // "score", "uniform", "layer_matched", "gradient"

// k distinct flat neuron ids (layer·units + unit), uniform over layers·units.
std::vector<int64_t> uniform_random_neurons(uint64_t seed, int64_t k, int layers, int64_t units);
// For each layer, as many distinct random units of that layer as `like` has there.
std::vector<int64_t> layer_matched_random_neurons(uint64_t seed, const std::vector<int64_t>& like, int layers,
                                                  int64_t units);
// The seeds of the random rankings of unit (image id, concept index) at k;
// twin = true for the independent draw that stands for the shuffled twin.
uint64_t random_ranking_seed(uint64_t base, Ranking r, const std::string& image_id, int concept_index, int64_t k,
                             bool twin = false);

// Whether a logit-lens token names the noun (see above). token: as
// Explainer::token_text gives it (leading space, any case).
bool token_names_noun(const WordNet& wn, const std::string& token, const std::string& word, const std::string& lemma);
// Best Wu–Palmer similarity of the lemma with any noun among the tokens; 0 when none is a noun.
double best_wup_with_tokens(const WordNet& wn, const std::string& lemma, const std::vector<std::string>& tokens);

// Top tokens (text, best first) of each neuron's logit lens.
using TopTokensFn =
    std::function<std::vector<std::vector<std::string>>(const std::vector<std::pair<int, int>>& neurons)>;

struct MetricsOptions {
  std::vector<int64_t> ks = {10, 100, 1000};
  uint64_t seed = 0;
  int resamples = kBootstrapResamples;
  int mask_side = 0;  // maps are upsampled to mask_side × mask_side for masks; 0: no masks
  bool show_progress = false;
};

struct ActivationContrast {
  Estimate with_noun, without_noun, difference, ratio;
  std::string note;  // why the ratio (or all) is n/a
};

struct RankingMetrics {
  Ranking ranking = Ranking::Score;
  int64_t k = 0;
  Estimate noun_in_top_tokens, best_wup;
  Estimate jaccard, mask_iou;
  std::string region_note, mask_note;
  Estimate same_noun, other_nouns, cross_ratio;
  Estimate exclusive;
  ActivationContrast act_mean, act_max;  // over image rows: mean, max
  std::vector<Estimate> layer_share;
  Estimate mean_depth;
};

struct MetricsReport {
  int64_t images = 0, units = 0, repeated_nouns = 0;
  int64_t twin_units = 0;            // units the twin's caption also has
  int layers = 0;
  std::vector<int64_t> ks;           // evaluated
  std::vector<Ranking> rankings;     // evaluated (gradient only when the run has it)
  std::vector<std::string> notes;    // skipped k, missing data, …
  std::vector<RankingMetrics> results;  // k-major, then rankings
  const RankingMetrics* find(int64_t k, Ranking r) const;
};

// Refuses (one line naming the file) a twin that is not `run` redone with
// --shuffle-image-tokens: another model, other options, other images, or not shuffled.
void check_shuffled_twin(const RunData& run, const RunData& twin);

MetricsReport compute_metrics(const RunData& run, const RunData* twin, const WordNet& wn,
                              const TopTokensFn& top_tokens, const MetricsOptions& opt);

// The report as RUN/metrics.json (schema in README.md, "metrics").
nlohmann::json metrics_to_json(const MetricsReport& r);

}  // namespace mmn
