// The gradient baseline (Schwettmann et al. 2023; method.md §5): attribution
// g_{l,i} = max over image rows p of Z_{l,i}(p) · ∂y_t/∂Z_{l,i}(p), where y_t is
// the logit of the concept's token at the row that predicts it and Z the FFN
// activation. For Z = SiLU(gate) (act) and Z = SiLU(gate)·up (swiglu) the
// product is the same number — y depends on SiLU(gate) only through the
// product — so one backward pass serves both variants.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "models/vlm.h"

namespace mmn {

// Calls visit(layer, post, dpost) for every layer, with the down_proj input
// post = SiLU(gate)·up and dpost = ∂y/∂post, both [rows, I] over the sequence
// of the prompt and generated[0..step) (teacher forced), where y is the logit
// of generated[step] at the last row. One taped forward, one backward.
void visit_mlp_gradients(const VisionLanguageModel& model, const PromptInputs& in,
                         const std::vector<int32_t>& generated, int step,
                         const std::function<void(int layer, const float* post, const float* dpost)>& visit);

// Attribution of every FFN neuron, flat [L·I], for the token generated at
// `step`: one taped forward over the prompt and generated[0..step) (teacher
// forced), one backward from the logit of generated[step].
std::vector<float> gradient_attribution(const VisionLanguageModel& model, const PromptInputs& in,
                                        const std::vector<int32_t>& generated, int step);

}  // namespace mmn
