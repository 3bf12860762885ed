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
  // Image-row FFN inputs [L, P, D] (blocks.{l}.ln2.hook_normalized), only with heatmaps:
  // any neuron's map is two dot products per row, recomputed on demand.
  std::vector<float> image_ffn_inputs;
};

// Caches logit-lens explanations across images of a run.
class Explainer {
 public:
  Explainer(const VisionLanguageModel& model, int n_tokens);
  // Top tokens (ids) of each neuron's value vector over the base vocabulary.
  std::vector<std::vector<int32_t>> explain(const std::vector<std::pair<int, int>>& neurons);
  std::string token_text(int32_t id) const;  // piece with "▁" shown as a space

 private:
  const VisionLanguageModel& model_;
  int n_;
  std::map<std::pair<int, int>, std::vector<int32_t>> cache_;
};

ImageFindResult find_neurons(const VisionLanguageModel& model, const WordNet* wordnet, const ImageU8& image,
                             const FindOptions& opt);

// Activation maps [neurons.size(), P] of the given neurons over the image rows
// (restored to the original token order when the tokens were permuted).
std::vector<float> neuron_image_maps(const VisionLanguageModel& model, const ImageFindResult& r,
                                     const std::vector<NeuronEntry>& neurons, ActivationVariant v);

}  // namespace mmn
