// Checkpoint layouts, described once. Each block (a ViT, the LLaMA decoder, a
// Q-Former, …) has one `walk` that names every tensor it reads, in checkpoint
// order, with its stored shape and role, and binds it to the block's field —
// in the spirit of llama.cpp's per-architecture tensor tables. Loading,
// training (parameter visits), make-random, the training initialisation and
// the tests all run that same walk with a different LayoutWalk:
//   LoadWalk  — points each field at the checkpoint's tensor (shape-checked);
//   VisitWalk — hands each field to a ParamVisitor (training adopts them);
//   ListWalk  — records the descriptions (what a checkpoint must hold).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "models/blocks.h"

namespace mmn {

enum class TensorRole {
  Weight,     // a linear (or patch-convolution) weight, [out, in…]
  Bias,       // a linear layer's bias
  Norm,       // a norm's scale
  NormBias,   // a norm's shift
  Embedding,  // token embedding / unembedding rows, features in LLM space
  Learned,    // class tokens, positions, queries
  Rotary,     // RoPE's inverse frequencies θ^(−2i/d), a buffer some checkpoints store
};

struct TensorDesc {
  std::string name;
  std::vector<int64_t> shape;  // as stored
  TensorRole role = TensorRole::Weight;
  int64_t fan_in = 0;          // Weight: inputs per output (initialisation scale)
  bool residual = false;       // Weight: writes into a residual stream (out_proj, o_proj, down_proj, fc2)
  int depth = 0;               // residual Weight: layers of its stack (initialisation scale)
  bool used = true;            // false: the layout stores it but the model never reads it
  bool unembedding = false;    // Weight: the language model's lm_head (never quantized)
};

class LayoutWalk {
 public:
  virtual ~LayoutWalk() = default;
  // A tensor the block keeps as a Weight view (matrices, embedding tables).
  virtual void matrix(const TensorDesc& t, Weight& w) = 0;
  // A tensor the block keeps as its own fp32 copy (biases, norms, small tables).
  virtual void vector(const TensorDesc& t, std::vector<float>& v) = 0;
};

// Helpers every block walk uses: NAME.weight [out, in] (+ NAME.bias [out]) and
// NAME.weight [dim] (+ NAME.bias [dim]).
struct LinearDesc {
  int64_t out = 0, in = 0;
  bool bias = false;
  bool residual = false;
  int depth = 0;
};
void walk_linear(LayoutWalk& w, const std::string& name, LinearW& l, const LinearDesc& d);
void walk_norm(LayoutWalk& w, const std::string& name, NormW& n, int64_t dim, bool bias);
void walk_rms_norm(LayoutWalk& w, const std::string& name, std::vector<float>& scale, int64_t dim);  // NAME.weight

// Binds every used tensor to the checkpoint's (a view for matrices, an fp32
// copy for vectors); a missing tensor or another shape is an error naming the file.
// A matrix NAME with a scale tensor NAME_scale is an int8 weight of a
// quantized checkpoint (models/quantize.h), checked against its metadata.
class LoadWalk : public LayoutWalk {
 public:
  explicit LoadWalk(const SafetensorsCheckpoint& ck) : ck_(ck) {}
  void matrix(const TensorDesc& t, Weight& w) override;
  void vector(const TensorDesc& t, std::vector<float>& v) override;

 private:
  const SafetensorsCheckpoint& ck_;
};

// Visits one parameter by its checkpoint name: a matrix as a Weight view (which
// the visitor may re-point, e.g. at an fp32 buffer it trains), or a vector as
// the fp32 copy a block owns (updated in place). Exactly one of the two is set.
using ParamVisitor = std::function<void(const std::string& name, Weight* matrix, std::vector<float>* vector)>;

// Hands every used tensor's field to a ParamVisitor.
class VisitWalk : public LayoutWalk {
 public:
  explicit VisitWalk(ParamVisitor f) : f_(std::move(f)) {}
  void matrix(const TensorDesc& t, Weight& w) override {
    if (t.used) f_(t.name, &w, nullptr);
  }
  void vector(const TensorDesc& t, std::vector<float>& v) override {
    if (t.used) f_(t.name, nullptr, &v);
  }

 private:
  ParamVisitor f_;
};

// Records every description, used or not (the tensors a checkpoint holds).
class ListWalk : public LayoutWalk {
 public:
  void matrix(const TensorDesc& t, Weight&) override { tensors.push_back(t); }
  void vector(const TensorDesc& t, std::vector<float>&) override { tensors.push_back(t); }
  std::vector<TensorDesc> tensors;
};

}  // namespace mmn
