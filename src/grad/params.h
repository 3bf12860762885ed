// Trainable parameters: an fp32 store that takes over the weights of loaded
// blocks (through their layout walks), per-thread gradient buffers, and AdamW.
#pragma once
#include <cstdint>
#include <algorithm>
#include <deque>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "models/layout.h"

namespace mmn {

// Where backward passes accumulate parameter gradients: maps a parameter's
// storage (the pointer its Weight or vector holds) to an fp32 accumulator of
// the same size, or nullptr when the parameter is frozen.
class GradSink {
 public:
  virtual ~GradSink() = default;
  virtual float* grad(const void* param) = 0;
};

// The gradient of `param` in sink g, or nullptr (no sink, frozen, absent).
inline float* grad_of(GradSink* g, const void* param) { return g && param ? g->grad(param) : nullptr; }

struct Param {
  std::string name;
  float* value = nullptr;  // fp32, in place (the block reads it from here)
  int64_t size = 0;
  int64_t offset = 0;      // into the flat gradient / optimizer buffers
  bool matrix = false;     // a Weight (weight decay applies), else a vector
};

class ParamStore {
 public:
  ParamStore() = default;
  ParamStore(const ParamStore&) = delete;
  ParamStore& operator=(const ParamStore&) = delete;

  // A visitor for a VisitWalk: matrices are converted to fp32 storage
  // owned here and their views re-pointed; vectors are trained where they are.
  ParamVisitor adopter();

  const std::vector<Param>& params() const { return params_; }
  std::vector<Param>& params() { return params_; }
  int64_t total() const { return total_; }
  const Param* find(const std::string& name) const;
  Param* find(const std::string& name) { return const_cast<Param*>(std::as_const(*this).find(name)); }
  // Offset of the parameter stored at p, or −1.
  int64_t offset_of(const void* p) const;

 private:
  std::vector<Param> params_;
  std::unordered_map<const void*, size_t> by_ptr_;
  std::unordered_map<std::string, size_t> by_name_;
  std::deque<std::vector<float>> owned_;
  int64_t total_ = 0;
};

// One flat fp32 gradient laid out like the store (one per worker thread).
class GradBuffer : public GradSink {
 public:
  explicit GradBuffer(const ParamStore& store) : store_(&store), data_(static_cast<size_t>(store.total()), 0.f) {}
  float* grad(const void* param) override {
    const int64_t o = store_->offset_of(param);
    return o < 0 ? nullptr : data_.data() + o;
  }
  void zero() { std::fill(data_.begin(), data_.end(), 0.f); }
  std::vector<float>& data() { return data_; }
  const std::vector<float>& data() const { return data_; }

 private:
  const ParamStore* store_;
  std::vector<float> data_;
};

// AdamW (decoupled weight decay, applied to matrices only), bias-corrected.
struct AdamW {
  float beta1 = 0.9f, beta2 = 0.98f, eps = 1e-8f, weight_decay = 0.05f;
  int64_t step = 0;           // updates done
  std::vector<float> m, v;    // moments, laid out like the store
  void init(const ParamStore& s) {
    m.assign(static_cast<size_t>(s.total()), 0.f);
    v.assign(static_cast<size_t>(s.total()), 0.f);
  }
  // One update with gradient g (laid out like the store) and learning rate lr.
  void update(ParamStore& s, const float* g, float lr);
};

// √(Σ g²) over a flat gradient.
double grad_norm(const std::vector<float>& g);

}  // namespace mmn
