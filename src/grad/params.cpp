#include "grad/params.h"

#include <cmath>

#include "kernels/convert.h"
#include "util/error.h"

namespace mmn {

ParamVisitor ParamStore::adopter() {
  return [this](const std::string& name, Weight* w, std::vector<float>* v) {
    if (by_name_.count(name)) fail("internal: parameter ", name, " visited twice");
    Param p;
    p.name = name;
    if (w) {
      std::vector<float>& buf = owned_.emplace_back(static_cast<size_t>(w->rows * w->cols));
      for (int64_t r = 0; r < w->rows; ++r) weight_row_f32(*w, r, 0, w->cols, buf.data() + r * w->cols);
      w->data = buf.data();
      w->dtype = DType::F32;
      w->scales = nullptr;
      p.value = buf.data();
      p.size = w->rows * w->cols;
      p.matrix = true;
    } else {
      p.value = v->data();
      p.size = static_cast<int64_t>(v->size());
    }
    if (by_ptr_.count(p.value)) fail("internal: parameter ", name, " shares storage with another");
    p.offset = total_;
    total_ += p.size;
    by_ptr_[p.value] = params_.size();
    by_name_[name] = params_.size();
    params_.push_back(std::move(p));
  };
}

const Param* ParamStore::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &params_[it->second];
}

int64_t ParamStore::offset_of(const void* p) const {
  auto it = by_ptr_.find(p);
  return it == by_ptr_.end() ? -1 : params_[it->second].offset;
}

void AdamW::update(ParamStore& s, const float* g, float lr) {
  ++step;
  const double c1 = 1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step));
  const double c2 = 1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step));
  const float step_size = static_cast<float>(lr / c1);
  const float inv_c2 = static_cast<float>(1.0 / c2);
  for (Param& p : s.params()) {
    float* w = p.value;
    const float* gp = g + p.offset;
    float* mp = m.data() + p.offset;
    float* vp = v.data() + p.offset;
    const float decay = p.matrix ? 1.f - lr * weight_decay : 1.f;
    for (int64_t i = 0; i < p.size; ++i) {
      mp[i] = beta1 * mp[i] + (1.f - beta1) * gp[i];
      vp[i] = beta2 * vp[i] + (1.f - beta2) * gp[i] * gp[i];
      w[i] = w[i] * decay - step_size * mp[i] / (std::sqrt(vp[i] * inv_c2) + eps);
    }
  }
}

double grad_norm(const std::vector<float>& g) {
  double s = 0;
  for (float x : g) s += static_cast<double>(x) * x;
  return std::sqrt(s);
}

}  // namespace mmn
