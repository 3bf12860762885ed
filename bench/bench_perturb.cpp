// Prefix reuse in the perturbation test (not a test): one intervened pass —
// the teacher-forced caption plus the greedy regeneration, exactly what
// `mmneuron perturb` runs per condition — with and without resuming from the
// clean pass at the lowest touched layer l0. The expected ratio is about
// L / (L − l0) for the batched rows (decode steps after a divergence run every
// layer either way); both must give bit-identical logits.
// Usage: bench_perturb --model DIR [--image FILE] [--top N] [--lowest-layer L0] [--new-tokens T] [--repeats R]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "io/image.h"
#include "kernels/threading.h"
#include "models/generate.h"
#include "models/intervention.h"
#include "models/vlm.h"

using namespace mmn;
using namespace mmn::bench;


int main(int argc, char** argv) {
  std::string model_dir, image = std::string(MMN_SOURCE_ROOT) + "/assets/sample.png";
  int top = 10, new_tokens = 8, repeats = 3, l0 = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") model_dir = v;
    else if (k == "--image") image = v;
    else if (k == "--top") top = std::stoi(v);
    else if (k == "--lowest-layer") l0 = std::stoi(v);
    else if (k == "--new-tokens") new_tokens = std::stoi(v);
    else if (k == "--repeats") repeats = std::stoi(v);
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (model_dir.empty()) {
    std::fprintf(stderr, "usage: bench_perturb --model DIR [--image FILE] [--top N] [--lowest-layer L0] [--new-tokens T] [--repeats R]\n");
    return 2;
  }
  init_threads(0);
  auto model = load_model(model_dir);
  const LlamaConfig& c = model->decoder().config();
  if (l0 < 0) l0 = c.n_layers / 2;  // "the touched neurons sit in the upper half of the layers"
  PromptInputs in =
      model->build_inputs(PromptText{}, model->encode_image(model->preprocess(load_image(image)), nullptr), nullptr);
  GenerateOptions g;
  g.max_new_tokens = new_tokens;
  g.stop_at_eos = false;
  const std::vector<int32_t> caption = generate(*model, in, g).generated;
  const std::vector<int32_t> forced(caption.begin(), caption.end() - 1);

  // N neurons in layers [l0, L), the lowest exactly at l0, zeroed.
  NeuronIntervention iv(c.n_layers, c.hidden, c.intermediate);
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<int> layer(l0, c.n_layers - 1);
  std::uniform_int_distribution<int64_t> unit(0, c.intermediate - 1);
  iv.ablate({l0, static_cast<int>(unit(rng))});
  for (int k = 1; k < top; ++k) iv.ablate({layer(rng), static_cast<int>(unit(rng))});

  auto t0 = Clock::now();
  ForcedOptions co;
  co.keep_resid = {l0};
  ForcedPass clean = forced_pass(*model, in, forced, co);
  const double clean_s = secs(t0);

  std::vector<double> full_t, reuse_t;
  bool identical = true;
  for (int r = 0; r < repeats; ++r) {
    for (bool reuse : {false, true}) {
      ForcedOptions fo;
      fo.sinks = {&iv};
      fo.extra_capacity = new_tokens;
      fo.reuse = &clean;
      fo.first_layer = reuse ? l0 : 0;
      auto t = Clock::now();
      ForcedPass p = forced_pass(*model, in, forced, fo);
      std::vector<int32_t> regen = greedy_from_forced(*model, p, fo.sinks, new_tokens, false);
      (reuse ? reuse_t : full_t).push_back(secs(t));
      static std::vector<std::vector<float>> first;
      if (r == 0 && !reuse) first = p.logits;
      else if (p.logits != first) identical = false;
    }
  }
  const double full = median(full_t), reused = median(reuse_t);
  std::printf("model %s: %d layers, d_ff %lld, %lld prompt rows + %zu forced caption rows\n", model_dir.c_str(),
              c.n_layers, static_cast<long long>(c.intermediate), static_cast<long long>(in.seq_len), forced.size());
  std::printf("intervention: %d zeroed neurons, lowest layer l0 = %d\n", top, l0);
  std::printf("clean pass (once per image, keeps the residual at l0): %.2f s\n", clean_s);
  std::printf("intervened pass + regeneration, median of %d: no reuse %.2f s, reuse %.2f s\n", repeats, full, reused);
  std::printf("speed-up %.2fx (batched rows alone would give L/(L-l0) = %.2fx)\n", full / reused,
              static_cast<double>(c.n_layers) / (c.n_layers - l0));
  std::printf("logits with and without reuse: %s\n", identical ? "bit-identical" : "DIFFERENT");
  return identical ? 0 : 1;
}
