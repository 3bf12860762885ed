#include "models/layout.h"

#include "models/quantize.h"
#include "tensor/weight.h"

namespace mmn {

void walk_linear(LayoutWalk& w, const std::string& name, LinearW& l, const LinearDesc& d) {
  TensorDesc t{name + ".weight", {d.out, d.in}, TensorRole::Weight, d.in, d.residual, d.depth};
  w.matrix(t, l.w);
  if (d.bias) w.vector({name + ".bias", {d.out}, TensorRole::Bias}, l.b);
}

void walk_norm(LayoutWalk& w, const std::string& name, NormW& n, int64_t dim, bool bias) {
  w.vector({name + ".weight", {dim}, TensorRole::Norm}, n.w);
  if (bias) w.vector({name + ".bias", {dim}, TensorRole::NormBias}, n.b);
}

void walk_rms_norm(LayoutWalk& w, const std::string& name, std::vector<float>& scale, int64_t dim) {
  w.vector({name + ".weight", {dim}, TensorRole::Norm}, scale);
}

void LoadWalk::matrix(const TensorDesc& t, Weight& w) {
  if (!t.used) return;
  const TensorRef& ref = ck_.get(t.name, t.shape);
  const std::string scale = t.name + kQ8ScaleSuffix;
  if (!ck_.has(scale)) {
    w = Weight::from(ref);  // an int8 tensor without scales fails there
    return;
  }
  check_quantization(ck_, ref);
  w = Weight::quantized(ref, ck_.get(scale));
}

void LoadWalk::vector(const TensorDesc& t, std::vector<float>& v) {
  if (t.used) v = to_f32(ck_.get(t.name, t.shape));
}

}  // namespace mmn
