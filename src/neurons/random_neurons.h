// The random-neuron controls every experiment compares against, drawn one way:
// uniform over all layers (the reference's control) and layer-matched
// (Schwettmann et al.: as many neurons in each layer as the set under test).
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "models/intervention.h"

namespace mmn {

// n distinct neurons, uniform over all L·I.
std::vector<NeuronRef> draw_uniform_neurons(int n, int L, int64_t I, std::mt19937_64& rng);
// For each neuron of `like`, a distinct other unit of its layer that is not in `like`.
std::vector<NeuronRef> draw_layer_matched_neurons(const std::vector<NeuronRef>& like, int64_t I, std::mt19937_64& rng);

}  // namespace mmn
