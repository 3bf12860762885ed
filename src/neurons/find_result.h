// One image's find result as the run folder holds it (docs/files.md), built
// once for every consumer: `find` writes it to files, the Python module hands
// it over as objects and arrays.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "neurons/find.h"

namespace mmn {

// result.json of one image, in method.md §7's field order: the reported
// neurons of every concept explained through the logit lens (opt.report of
// them), random baselines when asked. reference_caption "" = none.
nlohmann::ordered_json find_result_json(const VisionLanguageModel& model, const FindOptions& opt,
                                        const ImageFindResult& r, Explainer& explainer, const std::string& image_path,
                                        const std::string& id, const std::string& reference_caption = "");

// neurons.npy (concepts' `neurons`) or gradient.npy (`gradient_neurons`):
// [concepts, k, 3] = (layer, unit, score), row-major. Empty without concepts.
std::vector<float> neuron_table(const ImageFindResult& r, bool gradient = false);

// The folder name of a concept's heatmaps: "<step>_<word>" with every
// character of the word that is not a letter or digit replaced by '_'.
std::string concept_dir_name(const ConceptResult& cr);

// The maps `find --heatmaps` draws for one concept: the top-5 neurons' maps
// (`neuron<rank>_L<layer>_U<unit>`) and the means over the top
// {1, 10, 50, 100, 500, 1000} (`mean_top<K>`), each over the image tokens in
// their original order, with one absolute scale shared by all of them,
// 0 … their largest value.
struct ConceptMap {
  std::string name;
  std::string label;          // the figure's second title line
  std::vector<float> values;  // [P]
  nlohmann::json meta;        // maps.json entry: name, rank/layer/unit or top, min, max, scale
};
struct ConceptMaps {
  std::vector<ConceptMap> maps;
  float scale = 0;  // the shared scale's top
};
ConceptMaps concept_maps(const VisionLanguageModel& model, const FindOptions& opt, const ImageFindResult& r,
                         const ConceptResult& cr);

}  // namespace mmn
