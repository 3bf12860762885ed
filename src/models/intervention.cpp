#include "models/intervention.h"

#include <cmath>
#include <cstdio>
#include <sstream>

#include "util/error.h"

namespace mmn {

bool FunctionHooks::wants(Hook h, int layer) const {
  for (auto& e : hooks_)
    if (e.hook == h && e.layer == layer) return true;
  return false;
}

void FunctionHooks::capture(const CaptureEvent& e) {
  for (auto& h : hooks_)
    if (h.hook == e.hook && h.layer == e.layer) h.fn(e);
}

std::vector<NeuronRef> parse_neuron_list(const std::string& s, int n_layers, int64_t d_ff) {
  std::vector<NeuronRef> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    long long l = -1, u = -1;
    int n = 0;
    if (std::sscanf(item.c_str(), "%lld:%lld%n", &l, &u, &n) != 2 || n != static_cast<int>(item.size()))
      fail("neuron '", item, "': expected LAYER:UNIT (e.g. 3:17)");
    if (l < 0 || l >= n_layers) fail("neuron '", item, "': layer ", l, " is out of range (the model has ", n_layers, " layers)");
    if (u < 0 || u >= d_ff) fail("neuron '", item, "': unit ", u, " is out of range (d_ff is ", d_ff, ")");
    out.push_back({static_cast<int>(l), static_cast<int>(u)});
  }
  if (out.empty()) fail("empty neuron list: expected LAYER:UNIT[,LAYER:UNIT…]");
  return out;
}

NeuronIntervention::NeuronIntervention(int n_layers, int64_t d_model, int64_t d_ff)
    : n_layers_(n_layers), d_model_(d_model), d_ff_(d_ff) {}

NeuronIntervention::Edit& NeuronIntervention::edit(NeuronRef n) {
  if (n.layer < 0 || n.layer >= n_layers_ || n.unit < 0 || n.unit >= d_ff_)
    fail("neuron ", n.layer, ":", n.unit, " is outside the model (", n_layers_, " layers × ", d_ff_, " units)");
  dirty_ = true;
  return edits_[n];
}

void NeuronIntervention::scale(NeuronRef n, float s) {
  if (!std::isfinite(s)) fail("neuron ", n.layer, ":", n.unit, ": scale must be finite");
  edit(n).scale *= s;
}

void NeuronIntervention::add_delta(NeuronRef n, const float* delta) {
  Edit& e = edit(n);
  if (e.delta.empty()) e.delta.assign(static_cast<size_t>(d_model_), 0.f);
  for (int64_t d = 0; d < d_model_; ++d) e.delta[d] += delta[d];
}

void NeuronIntervention::add_noise(NeuronRef n, float sigma, std::mt19937_64& rng) {
  if (!(sigma >= 0) || !std::isfinite(sigma)) fail("sigma must be a finite number ≥ 0, got ", sigma);
  // Box–Muller on 53-bit uniforms: the same stream on every platform (std::normal_distribution is not portable).
  std::vector<float> eps(static_cast<size_t>(d_model_));
  auto uniform = [&] { return (static_cast<double>(rng() >> 11) + 0.5) * (1.0 / 9007199254740992.0); };
  for (int64_t d = 0; d < d_model_; d += 2) {
    const double r = std::sqrt(-2.0 * std::log(uniform())), t = 2.0 * M_PI * uniform();
    eps[d] = static_cast<float>(sigma * r * std::cos(t));
    if (d + 1 < d_model_) eps[d + 1] = static_cast<float>(sigma * r * std::sin(t));
  }
  add_delta(n, eps.data());
}

int NeuronIntervention::lowest_layer() const { return edits_.empty() ? n_layers_ : edits_.begin()->first.layer; }

std::vector<NeuronRef> NeuronIntervention::neurons() const {
  std::vector<NeuronRef> out;
  for (auto& [n, e] : edits_) out.push_back(n);
  return out;
}

std::vector<float> NeuronIntervention::delta(NeuronRef n) const {
  auto it = edits_.find(n);
  if (it == edits_.end() || it->second.delta.empty()) return std::vector<float>(static_cast<size_t>(d_model_), 0.f);
  return it->second.delta;
}

float NeuronIntervention::scale_of(NeuronRef n) const {
  auto it = edits_.find(n);
  return it == edits_.end() ? 1.f : it->second.scale;
}

void NeuronIntervention::rebuild() const {
  layers_.assign(static_cast<size_t>(n_layers_), {});
  for (auto& [n, e] : edits_) {
    LayerEdits& L = layers_[n.layer];
    L.units.push_back(n.unit);
    L.scales.push_back(e.scale);
    if (!e.delta.empty()) {
      L.delta_units.push_back(n.unit);
      L.deltas.insert(L.deltas.end(), e.delta.begin(), e.delta.end());
    }
  }
  dirty_ = false;
}

bool NeuronIntervention::wants(Hook h, int layer) const {
  if (layer < 0 || (h != Hook::MlpPost && h != Hook::MlpOut)) return false;
  if (dirty_) rebuild();
  const LayerEdits& L = layers_[layer];
  return h == Hook::MlpPost ? !L.units.empty() : !L.delta_units.empty();
}

void NeuronIntervention::capture(const CaptureEvent& e) {
  if (dirty_) rebuild();
  LayerEdits& L = layers_[e.layer];
  const int64_t nd = static_cast<int64_t>(L.delta_units.size());
  if (e.hook == Hook::MlpPost) {
    if (e.width != d_ff_) fail("internal: mlp.hook_post rows are ", e.width, " wide, expected ", d_ff_);
    // Keep p_i before scaling: the delta multiplies the original activation.
    L.saved.resize(static_cast<size_t>(e.rows * nd));
    L.saved_rows = e.rows;
    for (int64_t r = 0; r < e.rows; ++r)
      for (int64_t j = 0; j < nd; ++j) L.saved[r * nd + j] = e.data[r * d_ff_ + L.delta_units[j]];
    for (int64_t r = 0; r < e.rows; ++r)
      for (size_t j = 0; j < L.units.size(); ++j)
        if (L.scales[j] != 1.f) e.data[r * d_ff_ + L.units[j]] *= L.scales[j];
  } else {  // MlpOut: out += Σ_j p_j·δ_j per row
    if (L.saved_rows != e.rows) fail("internal: hook_mlp_out without a matching mlp.hook_post");
    for (int64_t r = 0; r < e.rows; ++r) {
      float* out = e.data + r * d_model_;
      for (int64_t j = 0; j < nd; ++j) {
        const float p = L.saved[r * nd + j];
        if (p == 0.f) continue;
        const float* dj = L.deltas.data() + j * d_model_;
        for (int64_t d = 0; d < d_model_; ++d) out[d] += p * dj[d];
      }
    }
  }
}

}  // namespace mmn
