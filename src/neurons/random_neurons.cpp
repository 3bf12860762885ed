#include "neurons/random_neurons.h"

#include <map>
#include <set>

#include "util/error.h"

namespace mmn {

std::vector<NeuronRef> draw_uniform_neurons(int n, int L, int64_t I, std::mt19937_64& rng) {
  if (n < 0 || static_cast<int64_t>(n) > L * I) fail("cannot draw ", n, " distinct neurons from ", L * I);
  std::uniform_int_distribution<int64_t> any(0, L * I - 1);
  std::set<int64_t> seen;
  std::vector<NeuronRef> out;
  while (static_cast<int>(out.size()) < n) {
    const int64_t f = any(rng);
    if (seen.insert(f).second) out.push_back({static_cast<int>(f / I), static_cast<int>(f % I)});
  }
  return out;
}

std::vector<NeuronRef> draw_layer_matched_neurons(const std::vector<NeuronRef>& like, int64_t I, std::mt19937_64& rng) {
  std::map<int, int64_t> per_layer;
  for (auto& n : like) ++per_layer[n.layer];
  for (auto& [l, count] : per_layer)
    if (count * 2 > I) fail("layer-matched control: layer ", l, " has too few other units for ", count, " neurons");
  std::set<NeuronRef> taken(like.begin(), like.end());
  std::uniform_int_distribution<int64_t> unit(0, I - 1);
  std::vector<NeuronRef> out;
  for (auto& n : like) {
    NeuronRef r;
    do r = {n.layer, static_cast<int>(unit(rng))};
    while (!taken.insert(r).second);
    out.push_back(r);
  }
  return out;
}

}  // namespace mmn
