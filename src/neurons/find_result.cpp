#include "neurons/find_result.h"

#include <algorithm>
#include <cctype>

#include "models/generate.h"
#include "neurons/heatmap_figure.h"

namespace mmn {

using nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {
ojson neuron_list(const std::vector<NeuronEntry>& ns) {
  ojson out = ojson::array();
  for (auto& n : ns) out.push_back({{"layer", n.layer}, {"unit", n.unit}, {"score", n.score}});
  return out;
}
}  // namespace

ojson find_result_json(const VisionLanguageModel& model, const FindOptions& opt, const ImageFindResult& r,
                       Explainer& explainer, const std::string& image_path, const std::string& id,
                       const std::string& reference_caption) {
  // Explanations only for the reported neurons, all concepts at once.
  const size_t report = static_cast<size_t>(opt.report);
  std::vector<std::pair<int, int>> ids;
  for (auto& cr : r.concepts)
    for (size_t i = 0; i < std::min(report, cr.neurons.size()); ++i) ids.emplace_back(cr.neurons[i].layer, cr.neurons[i].unit);
  std::vector<std::vector<int32_t>> tops = explainer.explain(ids);

  ojson nouns = ojson::array();
  size_t k = 0;
  for (auto& cr : r.concepts) {
    ojson ns = ojson::array();
    for (size_t i = 0; i < std::min(report, cr.neurons.size()); ++i) {
      const NeuronEntry& n = cr.neurons[i];
      ojson toks = ojson::array(), tok_ids = ojson::array();
      for (int32_t t : tops[k]) {
        toks.push_back(explainer.token_text(t));
        tok_ids.push_back(t);
      }
      ++k;
      ns.push_back({{"layer", n.layer}, {"unit", n.unit}, {"score", n.score}, {"top_tokens", toks},
                    {"top_token_ids", tok_ids}});
    }
    ojson entry = {{"word", cr.word}, {"token_id", cr.token_id}, {"step", cr.step}, {"neurons", ns},
                   {"lemma", cr.lemma}};
    if (opt.random_baseline > 0) {
      entry["random_uniform"] = neuron_list(cr.random_uniform);
      entry["random_layer_matched"] = neuron_list(cr.random_layer_matched);
    }
    nouns.push_back(entry);
  }
  ojson res = {{"image", image_path},
               {"caption", r.caption},
               {"generated_ids", r.generated_ids},
               {"generated_pieces", caption_pieces(model.tokenizer(), r.generated_ids)},
               {"nouns", nouns},
               {"skipped_nouns", r.skipped_nouns},
               {"id", id},
               {"prompt_ids", r.prompt_ids},
               {"timings", {{"prefill_s", r.prefill_s}, {"decode_s", r.decode_s}, {"score_s", r.score_s}}}};
  if (!reference_caption.empty()) res["reference_caption"] = reference_caption;
  if (!r.permutation.empty()) res["permutation"] = r.permutation;
  return res;
}

std::vector<float> neuron_table(const ImageFindResult& r, bool gradient) {
  std::vector<float> flat;
  for (auto& cr : r.concepts)
    for (auto& n : gradient ? cr.gradient_neurons : cr.neurons)
      flat.insert(flat.end(), {static_cast<float>(n.layer), static_cast<float>(n.unit), n.score});
  return flat;
}

std::string concept_dir_name(const ConceptResult& cr) {
  std::string s;
  for (char c : cr.word) s += isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return std::to_string(cr.step) + "_" + (s.empty() ? "token" : s);
}

ConceptMaps concept_maps(const VisionLanguageModel& model, const FindOptions& opt, const ImageFindResult& r,
                         const ConceptResult& cr) {
  const int64_t P = r.image_tokens;
  const size_t n_all = std::min<size_t>(cr.neurons.size(), 1000);
  std::vector<NeuronEntry> top(cr.neurons.begin(), cr.neurons.begin() + n_all);
  std::vector<float> maps = neuron_image_maps(model, r, top, opt.activation);

  ConceptMaps out;
  for (size_t i = 0; i < std::min<size_t>(5, n_all); ++i) {
    const std::string id = "L" + std::to_string(top[i].layer) + " U" + std::to_string(top[i].unit);
    out.maps.push_back({"neuron" + std::to_string(i + 1) + "_L" + std::to_string(top[i].layer) + "_U" +
                            std::to_string(top[i].unit),
                        "rank " + std::to_string(i + 1) + ": " + id + "  score " + format_value(top[i].score),
                        std::vector<float>(maps.begin() + i * P, maps.begin() + (i + 1) * P),
                        {{"rank", i + 1}, {"layer", top[i].layer}, {"unit", top[i].unit}}});
  }
  for (int k : {1, 10, 50, 100, 500, 1000}) {
    if (static_cast<size_t>(k) > n_all) break;
    std::vector<float> m(P, 0.f);
    for (int i = 0; i < k; ++i)
      for (int64_t p = 0; p < P; ++p) m[p] += maps[i * P + p];
    for (auto& v : m) v /= static_cast<float>(k);
    out.maps.push_back({"mean_top" + std::to_string(k), "mean of top " + std::to_string(k), std::move(m), {{"top", k}}});
  }
  // One absolute scale for all of the noun's maps, 0 .. their largest value,
  // so a weak or silent neuron looks weak or silent beside the strong ones.
  for (const ConceptMap& m : out.maps)
    for (float v : m.values) out.scale = std::max(out.scale, v);
  for (ConceptMap& m : out.maps) {
    const auto [lo, hi] = std::minmax_element(m.values.begin(), m.values.end());
    m.meta["name"] = m.name;
    m.meta["min"] = *lo;
    m.meta["max"] = *hi;
    m.meta["scale"] = {0.0f, out.scale};
  }
  return out;
}

}  // namespace mmn
