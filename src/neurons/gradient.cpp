#include "neurons/gradient.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "grad/backward_ops.h"
#include "grad/model_backward.h"
#include "kernels/convert.h"
#include "util/error.h"

namespace mmn {

void visit_mlp_gradients(const VisionLanguageModel& model, const PromptInputs& in,
                         const std::vector<int32_t>& generated, int step,
                         const std::function<void(int layer, const float* post, const float* dpost)>& visit) {
  const LlamaDecoder& dec = model.decoder();
  const LlamaConfig& c = dec.config();
  const int64_t D = c.hidden;
  if (step < 0 || step >= static_cast<int>(generated.size())) fail("internal: attribution step out of range");
  for (int l = 0; l < c.n_layers; ++l)
    if (dec.layer(l).multiway)
      fail(model.dir(), ": the gradient baseline does not support modality-adaptive decoders (", model.family(), ")");
  // The sequence whose last row predicts generated[step].
  const int64_t rows = in.seq_len + step;
  std::vector<float> x(rows * D);
  std::copy(in.embeds.begin(), in.embeds.end(), x.begin());
  dec.embed(generated.data(), step, x.data() + in.seq_len * D);
  std::vector<uint8_t> visual(rows, 0);
  std::copy(in.visual.begin(), in.visual.end(), visual.begin());
  KVCache cache;
  cache.init(c, rows);
  LlamaTape tape;
  CaptureSet none;
  dec.forward(x.data(), rows, cache, 0, none, visual.data(), &tape);

  // y = U[t] · rms(x_last): dy/dx_last through the final RMSNorm.
  std::vector<float> u(D), dx(rows * D, 0.f);
  weight_row_f32(dec.lm_head(), generated[step], 0, D, u.data());
  rms_norm_backward(x.data() + (rows - 1) * D, dec.final_norm_weight().data(), c.rms_eps, 1, D, u.data(),
                    dx.data() + (rows - 1) * D, nullptr);

  llama_backward(dec, tape, dx.data(), nullptr,
                 [&](int layer, const float* dpost) { visit(layer, tape.layers[layer].post.data(), dpost); });
}

std::vector<float> gradient_attribution(const VisionLanguageModel& model, const PromptInputs& in,
                                        const std::vector<int32_t>& generated, int step) {
  const int64_t I = model.decoder().config().intermediate;
  std::vector<float> attr(model.decoder().config().n_layers * I, -std::numeric_limits<float>::infinity());
  visit_mlp_gradients(model, in, generated, step, [&](int layer, const float* post, const float* dpost) {
    float* a = attr.data() + layer * I;
    for (int64_t p = in.image_pos0; p < in.image_pos0 + in.image_tokens; ++p)
      for (int64_t i = 0; i < I; ++i) a[i] = std::max(a[i], post[p * I + i] * dpost[p * I + i]);
  });
  return attr;
}

}  // namespace mmn
