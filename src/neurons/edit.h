// Knowledge editing at neuron level (method.md §6; docs/editing.md has the
// maths): change a concept token S the model says into T (or suppress S) by
// changing the value vectors of S's multi-modal neurons — no gradients, no
// retraining. Three rules, all closed form, each with a scale chosen by the
// same line search on the edit set and a locality-fit set:
//   paper       every value vector += λ·û, û = (U[T] − U[S])/‖U[T] − U[S]‖ (the paper's direction)
//   minnorm     the minimum-norm change moving the residual at j* by β·(U[T] − U[S]):
//               δ_i = ā_i·β(U[T] − U[S]) / Σ_n ā_n², ā = mean activation at j* over the edit set
//   constrained (ours) δ_i = c_i·û with c the ridge solution of
//               min Σ_e (x_e·c − y_e)² + λ_loc·(n_E/n_L)·Σ_r (x_r·c)² + μ‖c‖²:
//               shift the T-vs-S margin at every S-predicting row e of the edit set by y_e
//               while keeping the chosen neurons' MLP output unchanged on every other row
//               (prompt, image and caption rows of the edit set and of the locality set).
// û folds in the final RMSNorm gain, so x·c is the logit-lens margin shift.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "models/intervention.h"
#include "models/value_edit.h"
#include "models/vlm.h"
#include "neurons/find.h"

namespace mmn {

enum class EditRule { Paper, MinNorm, Constrained };
EditRule parse_edit_rule(const std::string& s);
const char* edit_rule_name(EditRule r);

// One image with its clean caption.
struct CaptionedImage {
  std::string path;
  PromptInputs in;
  std::vector<int32_t> caption;  // clean greedy ids
};

// Loads and captions images (optionally under an intervention).
std::vector<CaptionedImage> caption_images(const VisionLanguageModel& model, const std::vector<std::string>& paths,
                                           const PromptText& prompt, int max_new_tokens, NeuronIntervention* iv,
                                           bool show_progress, const std::string& label);

struct EditOptions {
  std::string from, to;                 // to empty: suppress `from`
  int neurons = 50;                     // k
  EditRule rule = EditRule::Constrained;
  ActivationVariant selection = ActivationVariant::Act;  // activation of the selection score
  double locality_weight = 4.0;         // λ_loc of the constrained rule
  double ridge = 1.0;                   // μ of the constrained rule, relative to the mean diagonal of the system
  double target_margin = 2.0;           // y_e aims at T beating the best other token by this much (nats)
  PromptText prompt;
  int max_new_tokens = 50;
  std::vector<NeuronRef> given_neurons; // S's neurons chosen elsewhere (a find run); empty: select on the edit set
  bool random_control = false;          // fit the same rule on layer-matched random neurons instead
  uint64_t seed = 0;
  bool show_progress = false;
};

struct EditOutcome {  // what an edit does to a set of images
  int64_t with_source = 0;     // images whose clean caption has S
  int64_t success = 0;         // … whose edited caption has T (when T is given) and no S
  int64_t without_source = 0;  // images whose clean caption lacks S
  int64_t unchanged = 0;       // … whose edited caption is the clean one
  int64_t leaked = 0;          // … whose edited caption has T where the clean one had not
  double success_rate() const { return with_source ? double(success) / double(with_source) : 0; }
  double locality_rate() const { return without_source ? double(unchanged) / double(without_source) : 0; }
  double leak_rate() const { return without_source ? double(leaked) / double(without_source) : 0; }
};

// Resolves --from/--to to single tokens (one-line errors otherwise).
int32_t concept_token(const Tokenizer& tok, const std::string& word, const char* flag);

// The greedy captions of already captioned images under an intervention.
std::vector<std::vector<int32_t>> recaption(const VisionLanguageModel& model, const std::vector<CaptionedImage>& clean,
                                            NeuronIntervention* iv, int max_new_tokens);
// What an edit S → T (t < 0: suppression) did, from the clean and edited captions.
EditOutcome judge_captions(const std::vector<CaptionedImage>& clean, const std::vector<std::vector<int32_t>>& edited,
                           int32_t s, int32_t t);
// recaption + judge_captions.
EditOutcome judge_edit(const VisionLanguageModel& model, const std::vector<CaptionedImage>& clean,
                       NeuronIntervention* iv, int32_t s, int32_t t, int max_new_tokens);

// Builds the edit: selects S's neurons on the edit images (top-k of the summed
// score at every S-predicting row), fits the rule, and line-searches its scale
// for the best min(success on the edit set, locality on the locality-fit set).
ValueEdit build_edit(const VisionLanguageModel& model, const std::vector<std::string>& edit_images,
                     const std::vector<std::string>& locality_images, const EditOptions& opt);

}  // namespace mmn
