// Interventions: hooks that modify what the forward pass computes, at run
// time, without writing a weight (the checkpoint stays a read-only mapping, so
// "restoring" the model is dropping the hook).
//
// FunctionHooks runs arbitrary code at named points (TransformerLens'
// run_with_hooks). NeuronIntervention acts on FFN neurons through their value
// vectors v_i = W_down[:, i]: with the down_proj input (mlp.hook_post) p_i,
// the MLP output is Σ_i p_i·v_i, so
//   v_i ← s·v_i + δ_i   ⇔   p_i ← s·p_i at mlp.hook_post, and
//                           + Σ_i p_i(original)·δ_i added at hook_mlp_out.
// Zeroing (ablation) is s = 0; the reference's perturbation adds σ·ε_i to the
// value vector (δ_i = σ·ε_i, ε_i ~ N(0, I)); a knowledge edit adds its delta.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "models/capture.h"

namespace mmn {

// Callbacks at named points; each may modify the event's rows in place.
class FunctionHooks : public CaptureSink {
 public:
  using Fn = std::function<void(const CaptureEvent&)>;
  void add(Hook h, int layer, Fn fn) { hooks_.push_back({h, layer, std::move(fn)}); }
  bool wants(Hook h, int layer) const override;
  void capture(const CaptureEvent& e) override;

 private:
  struct Entry {
    Hook hook;
    int layer;
    Fn fn;
  };
  std::vector<Entry> hooks_;
};

struct NeuronRef {
  int layer = 0, unit = 0;
  bool operator<(const NeuronRef& o) const { return layer != o.layer ? layer < o.layer : unit < o.unit; }
  bool operator==(const NeuronRef& o) const { return layer == o.layer && unit == o.unit; }
};

// Parses "L:U[,L:U…]" (e.g. "3:17,3:200"); checks the ranges.
std::vector<NeuronRef> parse_neuron_list(const std::string& s, int n_layers, int64_t d_ff);

class NeuronIntervention : public CaptureSink {
 public:
  NeuronIntervention(int n_layers, int64_t d_model, int64_t d_ff);
  // All of these compose: v ← scale·v + Σ deltas.
  void ablate(NeuronRef n) { scale(n, 0.f); }
  void scale(NeuronRef n, float s);                    // multiplies the current scale
  void add_delta(NeuronRef n, const float* delta);     // δ_i += delta [d_model]
  // δ_i += σ·ε, ε ~ N(0, I_d_model) drawn from rng (fp32 normal, Box–Muller of std::mt19937_64).
  void add_noise(NeuronRef n, float sigma, std::mt19937_64& rng);

  bool empty() const { return edits_.empty(); }
  // Lowest layer an edit touches (n_layers when empty): nothing below it changes.
  int lowest_layer() const;
  std::vector<NeuronRef> neurons() const;
  // The delta of a neuron's value vector (zeros when none) and its scale.
  std::vector<float> delta(NeuronRef n) const;
  float scale_of(NeuronRef n) const;

  bool wants(Hook h, int layer) const override;
  void capture(const CaptureEvent& e) override;

 private:
  struct Edit {
    float scale = 1.f;
    std::vector<float> delta;  // [d_model] or empty
  };
  struct LayerEdits {  // rebuilt lazily from edits_ for the hot path
    std::vector<int64_t> units;           // every edited unit of the layer
    std::vector<float> scales;            // per unit
    std::vector<int64_t> delta_units;     // units with a delta
    std::vector<float> deltas;            // [delta_units, d_model]
    std::vector<float> saved;             // [rows, delta_units]: p_i before scaling, from mlp.hook_post
    int64_t saved_rows = 0;
  };
  Edit& edit(NeuronRef n);
  void rebuild() const;
  int n_layers_;
  int64_t d_model_, d_ff_;
  std::map<NeuronRef, Edit> edits_;
  mutable std::vector<LayerEdits> layers_;
  mutable bool dirty_ = true;
};

}  // namespace mmn
