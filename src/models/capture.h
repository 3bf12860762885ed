// Hook points of the language model, named as in TransformerLens so that
// researchers recognise them. The decoder offers each point to the attached
// sinks, in the order they were attached; a sink may read the rows or modify
// them in place (an intervention), and the change flows through the rest of
// the forward pass and, through the KV cache, into every later step. A point
// no sink wants costs nothing (one table lookup). Weights are never written.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace mmn {

enum class Hook : int {
  ResidPre,      // blocks.{l}.hook_resid_pre         [rows, D]  layer input
  Ln1,           // blocks.{l}.ln1.hook_normalized    [rows, D]  attention input (after RMSNorm)
  AttnOut,       // blocks.{l}.hook_attn_out          [rows, D]  o_proj output
  ResidMid,      // blocks.{l}.hook_resid_mid         [rows, D]  after attention residual
  Ln2,           // blocks.{l}.ln2.hook_normalized    [rows, D]  MLP input (after RMSNorm)
  MlpPre,        // blocks.{l}.mlp.hook_pre           [rows, I]  gate_proj output
  MlpPreLinear,  // blocks.{l}.mlp.hook_pre_linear    [rows, I]  up_proj output
  MlpAct,        // blocks.{l}.mlp.hook_act           [rows, I]  act_fn(gate): the paper's activation
  MlpPost,       // blocks.{l}.mlp.hook_post          [rows, I]  act_fn(gate) ⊙ up: down_proj input
  MlpOut,        // blocks.{l}.hook_mlp_out           [rows, D]  down_proj output
  ResidPost,     // blocks.{l}.hook_resid_post        [rows, D]  layer output
  FinalNorm,     // ln_final.hook_normalized          [rows, D]  (layer = −1)
  Count
};

// The one table of hook names: printing, parsing and listing all walk it.
std::string hook_name(Hook h, int layer);
// Parses "blocks.3.mlp.hook_post" → (MlpPost, 3). Returns false when unknown.
// The activations' dump names are aliases: blocks.{l}.mlp.act_fn_gate is
// mlp.hook_act (--activation act), blocks.{l}.mlp.down_proj_input is
// mlp.hook_post (--activation swiglu).
bool parse_hook_name(const std::string& name, Hook* h, int* layer);
// Like parse_hook_name, but throws a one-line error naming the bad name (and
// the valid forms) when the name is unknown or its layer is not in [0, n_layers).
void parse_hook_name_or_fail(const std::string& name, int n_layers, Hook* h, int* layer);
// Every point of a model with n_layers layers, in forward order.
std::vector<std::string> all_hook_names(int n_layers);
// Width of a point's rows: d_ff for the mlp.hook_{pre,pre_linear,act,post} points, else d_model.
bool hook_is_mlp_width(Hook h);

// One captured block of rows: rows [pos0, pos0 + rows) of the sequence at
// generation step `step` (0 = prefill, t ≥ 1 = t-th decode step).
struct CaptureEvent {
  Hook hook;
  int layer;
  int step;
  int64_t pos0;
  int64_t rows;
  int64_t width;
  float* data;  // [rows, width], valid only during the call; a sink may modify it in place
};

class CaptureSink {
 public:
  virtual ~CaptureSink() = default;
  virtual bool wants(Hook h, int layer) const = 0;
  virtual void capture(const CaptureEvent& e) = 0;
};

// The set of sinks a forward pass reports to, with a precomputed want table.
class CaptureSet {
 public:
  void reset(const std::vector<CaptureSink*>& sinks, int n_layers);
  bool any(Hook h, int layer) const {
    return !sinks_.empty() && want_[static_cast<size_t>(layer + 1) * static_cast<int>(Hook::Count) + static_cast<int>(h)];
  }
  void emit(Hook h, int layer, int step, int64_t pos0, int64_t rows, int64_t width, float* data) const;

 private:
  std::vector<CaptureSink*> sinks_;
  std::vector<uint8_t> want_;  // [(layers + 1) × hooks]; row 0 is layer −1
};

}  // namespace mmn
