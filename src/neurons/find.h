// Finding multi-modal neurons for one image (method.md §3–4): caption it with
// the KV cache on while recording, at each step, the activations of the row
// that predicts the next token; score every FFN neuron for each noun of the
// caption; explain the top neurons through the logit lens; optionally map
// their activations over the image tokens.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/intervention.h"
#include "models/vlm.h"
#include "neurons/score.h"

namespace mmn {

class WordNet;

enum class ActivationVariant { Act, SwiGLU };  // SiLU(gate) | SiLU(gate)·up
enum class RankMethod { Score, Gradient };      // the paper's score | Z·∂y/∂Z (method.md §5)
ActivationVariant parse_activation_variant(const std::string& s);
const char* activation_variant_name(ActivationVariant v);

struct FindOptions {
  PromptText prompt;
  NeuronIntervention* edit = nullptr;  // applied to every pass at run time (find --edit), or null
  int max_new_tokens = 50;
  int64_t top_k = 1000;                // kept per concept (neurons.npy)
  int64_t report = 100;                // of those, listed with explanations in result.json
  ActivationVariant activation = ActivationVariant::Act;
  bool fold_norm_gain = false;
  RankMethod method = RankMethod::Score;  // what ranks `neurons`
  bool also_gradient = false;          // with Score: fill ConceptResult::gradient_neurons too
  bool all_tokens = false;             // one entry per generated step instead of nouns
  std::vector<std::string> nouns;      // given by hand (overrides tagging)
  bool heatmaps = false;               // keep image-row FFN inputs for maps
  std::optional<uint64_t> shuffle_seed;  // permute image-token embeddings
  int random_baseline = 0;             // N uniform + N layer-matched random neurons
  int explain_tokens = 10;             // top tokens per reported neuron
  uint64_t seed = 0;                   // for random baselines
};

// find's options as a user states them (the CLI's flags, the Python module's
// keywords), before they are checked. find_options is the one place that turns
// them into FindOptions, so the two front ends cannot drift apart.
struct FindRequest {
  PromptText prompt;
  int max_new_tokens = 50;
  int64_t top_k = 1000, report = 100;
  std::string activation = "act", method = "score", tokens = "nouns";
  bool gradient_baseline = false, fold_norm_gain = false, heatmaps = false;
  std::vector<std::string> nouns;
  std::optional<uint64_t> shuffle_seed;
  int random_baseline = 0;
};
// How a front end spells an option in its errors, given the option's
// command-line name without dashes ("top-k" -> "--top-k" or "top_k").
using OptionSpelling = std::string (*)(const std::string& option);
std::string cli_spelling(const std::string& option);
std::string python_spelling(const std::string& option);
// Checks the request; a bad value fails as a usage error naming the option.
FindOptions find_options(const FindRequest& r, OptionSpelling spell);

struct NeuronEntry {
  int layer = 0, unit = 0;
  float score = 0;
};

struct ConceptResult {
  std::string word;    // surface word (or decoded token for --tokens all)
  std::string lemma;
  int32_t token_id = 0;
  int step = 0;        // index among the generated tokens whose prediction is scored
  std::vector<NeuronEntry> neurons;  // top-k, ranked
  std::vector<NeuronEntry> random_uniform, random_layer_matched;
  std::vector<NeuronEntry> gradient_neurons;  // top-k by gradient attribution (also_gradient)
};

struct ImageFindResult {
  std::string caption;
  std::vector<int32_t> prompt_ids, generated_ids;
  std::vector<ConceptResult> concepts;
  std::vector<std::string> skipped_nouns;  // tagged but not found among the generated tokens
  std::vector<int64_t> permutation;        // position p holds image token permutation[p] (empty: none)
  PreprocessedImage image;                 // the model input, for heatmaps
  int64_t image_pos0 = 0, image_tokens = 0;
  double prefill_s = 0, decode_s = 0, score_s = 0;  // score_s: ranking (scores or gradients)
  double encode_s = 0;                               // preprocessing, vision tower and projector
  int64_t prefill_tokens = 0;                        // prompt rows, image rows included
  int decode_runs = 0;                               // one-row decode passes
  // Image-row FFN inputs [L, P, D] (blocks.{l}.ln2.hook_normalized), only with heatmaps:
  // any neuron's map is two dot products per row, recomputed on demand.
  std::vector<float> image_ffn_inputs;
  // [2, L, d_ff]: every neuron's mean (0) and max (1) activation (the run's
  // variant) over the image rows of the prefill pass; empty without image rows.
  std::vector<float> image_acts;
};

// Which tokens a logit-lens explanation may name. A model trained on a small
// corpus with a larger tokenizer (the bundled shapes model: 512 pieces, ~23
// ever targets) has lm_head rows that were never trained as targets: the
// softmax gradient pushes every non-target row the same way, so those rows all
// drift to (nearly) one common vector, and the logit lens would list them in
// arbitrary order among the real tokens. The rule (data-free, ours):
//   c = the coordinate-wise median of the base-vocabulary lm_head rows,
//   a row is *collapsed* when ‖U[t] − c‖ < 0.25 · median_t ‖U[t]‖;
//   produced = the rows that are not collapsed.
// In a fully trained model rows point in different directions, c is near 0
// and only rows of unusually small norm would be called collapsed, so `auto`
// restricts only when at least a quarter of the base vocabulary is collapsed.
enum class VocabMode { All, Produced, Auto };
VocabMode parse_vocab_mode(const std::string& s);  // all | produced | auto
struct ExplanationVocab {
  std::vector<int32_t> tokens;  // ids explanations may use, ascending
  int64_t base = 0;             // base vocabulary size (added tokens never count)
  int64_t collapsed = 0;        // rows the rule calls never trained
  bool restricted = false;      // tokens.size() < base
  std::string decision;         // one line: what was decided and why
};
ExplanationVocab explanation_vocab(const VisionLanguageModel& model, VocabMode mode);

// The tokens of " word" inside a sentence, without a lone "▁" piece (it
// carries no meaning of its own); word_token is the first: the id a word is
// looked up by (method.md §3). word_token throws when there is none.
std::vector<int32_t> word_token_ids(const Tokenizer& tok, const std::string& word);
int32_t word_token(const Tokenizer& tok, const std::string& word);

// Caches logit-lens explanations across images of a run.
class Explainer {
 public:
  Explainer(const VisionLanguageModel& model, int n_tokens);
  // Top tokens (ids) of each neuron's value vector over the base vocabulary
  // (or over the tokens given to restrict_to).
  std::vector<std::vector<int32_t>> explain(const std::vector<std::pair<int, int>>& neurons);
  std::string token_text(int32_t id) const;  // piece with "▁" shown as a space
  // From now on rank only these token ids (clears the cache).
  void restrict_to(std::vector<int32_t> tokens);

 private:
  const VisionLanguageModel& model_;
  int n_;
  std::vector<int32_t> allowed_;  // empty: the whole base vocabulary
  std::map<std::pair<int, int>, std::vector<int32_t>> cache_;
};

ImageFindResult find_neurons(const VisionLanguageModel& model, const WordNet* wordnet, const ImageU8& image,
                             const FindOptions& opt);

// Activation maps [neurons.size(), P] of the given neurons over the image rows
// (restored to the original token order when the tokens were permuted).
std::vector<float> neuron_image_maps(const VisionLanguageModel& model, const ImageFindResult& r,
                                     const std::vector<NeuronEntry>& neurons, ActivationVariant v);

}  // namespace mmn
