#include "neurons/groundtruth.h"

#include <random>

#include "data/shapes.h"
#include "neurons/heatmap.h"
#include "util/error.h"
#include "util/progress.h"

namespace mmn {

namespace {

// IoU of the 95th-percentile mask of the mean map of `neurons` with `truth`.
double map_iou(const VisionLanguageModel& model, const ImageFindResult& r, const std::vector<NeuronEntry>& neurons,
               ActivationVariant v, const std::vector<uint8_t>& truth) {
  const int g = model.grid_side();
  const int64_t P = r.image_tokens;
  std::vector<float> maps = neuron_image_maps(model, r, neurons, v);
  std::vector<float> mean(P, 0.f);
  for (size_t n = 0; n < neurons.size(); ++n)
    for (int64_t p = 0; p < P; ++p) mean[p] += maps[n * P + p] / static_cast<float>(neurons.size());
  const ImageU8& img = r.image.cropped;
  std::vector<float> up = upsample_bilinear(mean.data(), g, g, img.height, img.width);
  return mask_iou(mask_above_percentile(up, 95.0), truth);
}

}  // namespace

GroundTruthReport evaluate_ground_truth(const VisionLanguageModel& model, const WordNet& wordnet,
                                        const GroundTruthOptions& opt) {
  if (model.grid_side() <= 0) fail(model.dir(), ": the ground-truth check needs a model with a patch grid");
  const LlamaConfig& c = model.decoder().config();
  const int64_t L = c.n_layers, I = c.intermediate;
  if (opt.top < 1 || opt.top > L * I) fail("ground truth: --top must be between 1 and ", L * I);
  ShapesOptions so;
  so.image_size = model.input_size();
  FindOptions fo;
  fo.top_k = opt.top;
  fo.heatmaps = true;
  fo.activation = opt.activation;
  fo.also_gradient = opt.gradient;
  std::mt19937_64 rng(opt.random_seed);
  std::uniform_int_distribution<int64_t> any(0, L * I - 1);

  GroundTruthReport rep;
  rep.methods = {{"score"}, {"random"}};
  if (opt.gradient) rep.methods.push_back({"gradient"});
  double chance = 0;
  std::unique_ptr<Progress> bar;
  if (opt.show_progress) bar = std::make_unique<Progress>("ground truth", opt.scenes, "scenes");
  for (int64_t s = 0; s < opt.scenes; ++s) {
    Scene sc = make_scene(opt.seed, static_cast<uint64_t>(s), so);
    ImageFindResult r = find_neurons(model, &wordnet, sc.image, fo);
    const ImageU8& img = r.image.cropped;
    if (img.width != sc.image.width || img.height != sc.image.height)
      fail(model.dir(), ": the model's input (", img.width, "x", img.height, ") is not the scene size");
    for (const ConceptResult& cr : r.concepts) {
      // The true mask: every object of the noun's shape (a hallucinated noun has none).
      std::vector<uint8_t> truth(static_cast<size_t>(img.width) * img.height, 0);
      int64_t area = 0;
      for (size_t o = 0; o < sc.objects.size(); ++o)
        if (sc.objects[o].shape == cr.lemma)
          for (size_t p = 0; p < truth.size(); ++p) truth[p] |= sc.masks[o][p];
      for (auto v : truth) area += v;
      if (area == 0) continue;
      ++rep.concepts;
      std::vector<NeuronEntry> random;
      for (int k = 0; k < opt.top; ++k) {
        const int64_t f = any(rng);
        random.push_back({static_cast<int>(f / I), static_cast<int>(f % I), 0.f});
      }
      for (auto& m : rep.methods) {
        const std::vector<NeuronEntry>& ns =
            m.method == "score" ? cr.neurons : m.method == "gradient" ? cr.gradient_neurons : random;
        m.mean_iou += map_iou(model, r, ns, opt.activation, truth);
        ++m.concepts;
      }
      // A random mask of the same size (5% of the pixels) hits the object by chance.
      const double N = static_cast<double>(truth.size()), m = 0.05 * N, a = static_cast<double>(area);
      chance += (a * m / N) / (a + m - a * m / N);
    }
    ++rep.scenes;
    if (bar) bar->update(s + 1);
  }
  if (bar) bar->finish();
  for (auto& m : rep.methods)
    if (m.concepts) m.mean_iou /= static_cast<double>(m.concepts);
  if (rep.concepts) rep.chance_iou = chance / static_cast<double>(rep.concepts);
  return rep;
}

}  // namespace mmn
