// mmneuron eval-edit: what an edit does on held-out images — success on target
// images (captions that said S now say T and no S), generality on more images
// with S, locality on images without S (caption unchanged, T not leaked), the
// teacher-forced margin shift at j*, and the same for the edit's random control
// when it has one (EDIT/random-control/, from `edit --random-control`).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/default_model.h"
#include "cli/edit_args.h"
#include "cli/option_checks.h"
#include "kernels/threading.h"
#include "models/generate.h"
#include "neurons/edit.h"
#include "util/error.h"

namespace mmn::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// For each (s, t): the mean over the target images' s-predicting rows of the
// margin (logit_t − logit_s, or for a suppression the best other token against
// s) with the edit minus without it, teacher-forced on the clean caption. Each
// image's two passes serve every pair.
std::vector<double> margin_shifts(const VisionLanguageModel& model, const std::vector<CaptionedImage>& clean,
                                  NeuronIntervention& iv, const std::vector<std::pair<int32_t, int32_t>>& pairs) {
  std::vector<double> sum(pairs.size(), 0.0);
  std::vector<int64_t> n(pairs.size(), 0);
  for (auto& c : clean) {
    const std::vector<int32_t> forced(c.caption.begin(), c.caption.end() - 1);
    ForcedPass a = forced_pass(model, c.in, forced, {});
    ForcedOptions fo;
    fo.sinks = {&iv};
    ForcedPass b = forced_pass(model, c.in, forced, fo);
    for (size_t k = 0; k < pairs.size(); ++k) {
      const auto [s, t] = pairs[k];
      auto m = [&, s = s, t = t](const std::vector<float>& lg) {
        if (t >= 0) return static_cast<double>(lg[t]) - lg[s];
        double best = -INFINITY;
        for (size_t u = 0; u < lg.size(); ++u)
          if (static_cast<int32_t>(u) != s) best = std::max<double>(best, lg[u]);
        return best - lg[s];
      };
      for (size_t j = 0; j < c.caption.size(); ++j)
        if (c.caption[j] == s) {
          sum[k] += m(b.logits[j]) - m(a.logits[j]);
          ++n[k];
        }
    }
  }
  std::vector<double> out(pairs.size());
  for (size_t k = 0; k < pairs.size(); ++k) out[k] = n[k] ? sum[k] / static_cast<double>(n[k]) : NAN;
  return out;
}

// Both range-checked by load_value_edit.
int32_t from_id(const ValueEdit& e) {
  if (!e.info.contains("from_token_id") || e.info["from_token_id"].is_null())
    fail("an edit of ", e.model_dir, " names no from_token_id (not made by `mmneuron edit`)");
  return e.info["from_token_id"].get<int32_t>();
}
int32_t to_id(const ValueEdit& e) { return e.info["to_token_id"].is_null() ? -1 : e.info["to_token_id"].get<int32_t>(); }

// Edits applied together: each edit's success on the images that say its S;
// locality and leak on the images that say none of the edits' S.
json evaluate(const VisionLanguageModel& model, const std::vector<ValueEdit>& edits,
              const std::vector<CaptionedImage>& target, const std::vector<CaptionedImage>& generality,
              const std::vector<CaptionedImage>& locality) {
  const LlamaConfig& c = model.decoder().config();
  NeuronIntervention iv(c.n_layers, c.hidden, c.intermediate);
  for (auto& e : edits) add_edit_to_intervention(e, iv);
  const int max_new = edits[0].info["parameters"].value("max_new_tokens", 50);
  auto rate = [](int64_t k, int64_t n) { return n ? json(double(k) / double(n)) : json(nullptr); };
  // Each image set is recaptioned once under all the edits together; each edit is judged from those captions.
  const auto target_ids = recaption(model, target, &iv, max_new), generality_ids = recaption(model, generality, &iv, max_new);
  std::vector<std::pair<int32_t, int32_t>> pairs;
  for (auto& e : edits) pairs.push_back({from_id(e), to_id(e)});
  const std::vector<double> shifts = margin_shifts(model, target, iv, pairs);
  json per_edit = json::array();
  int64_t ts = 0, tn = 0, gs = 0, gn = 0;
  for (size_t k = 0; k < edits.size(); ++k) {
    const ValueEdit& e = edits[k];
    const auto [s, t] = pairs[k];
    EditOutcome ot = judge_captions(target, target_ids, s, t);
    EditOutcome og = judge_captions(generality, generality_ids, s, t);
    ts += ot.success, tn += ot.with_source, gs += og.success, gn += og.with_source;
    per_edit.push_back({{"from", e.info.value("from", "")},
                        {"to", e.info.value("to", "")},
                        {"success", rate(ot.success, ot.with_source)},
                        {"generality", generality.empty() ? json(nullptr) : rate(og.success, og.with_source)},
                        {"margin_shift", std::isfinite(shifts[k]) ? json(shifts[k]) : json(nullptr)},
                        {"target_with_source", ot.with_source},
                        {"generality_with_source", og.with_source}});
  }
  // Locality: images whose clean caption has none of the edited concepts.
  auto says = [](const std::vector<int32_t>& ids, int32_t tok) {
    return tok >= 0 && std::find(ids.begin(), ids.end(), tok) != ids.end();
  };
  std::vector<CaptionedImage> unrelated;
  for (auto& img : locality) {
    bool says_source = false;
    for (auto& [s, t] : pairs) says_source |= says(img.caption, s);
    if (!says_source) unrelated.push_back(img);
  }
  const auto unrelated_ids = recaption(model, unrelated, &iv, max_new);
  const int64_t n = static_cast<int64_t>(unrelated.size());
  int64_t unchanged = 0, leaked = 0;
  for (size_t i = 0; i < unrelated.size(); ++i) {
    const std::vector<int32_t>& before = unrelated[i].caption;
    const std::vector<int32_t>& ids = unrelated_ids[i];
    unchanged += ids == before;
    bool leak = false;
    for (auto& [s, t] : pairs) leak |= says(ids, t) && !says(before, t);
    leaked += leak;
  }
  int64_t weights = 0;
  for (auto& e : edits) weights += static_cast<int64_t>(e.neurons.size()) * e.d_model;
  json out = {{"success", rate(ts, tn)},
              {"generality", generality.empty() ? json(nullptr) : rate(gs, gn)},
              {"locality", rate(unchanged, n)},
              {"leak", rate(leaked, n)},
              {"margin_shift", per_edit.size() == 1 ? per_edit[0]["margin_shift"] : json(nullptr)},
              {"weights_changed", weights},
              {"counts", {{"target_with_source", tn}, {"target_success", ts}, {"generality_with_source", gn},
                          {"generality_success", gs}, {"locality_images", n}, {"locality_unchanged", unchanged},
                          {"locality_leaked", leaked}}}};
  if (edits.size() > 1) out["edits"] = per_edit;
  return out;
}

std::string pct(const json& v) {
  if (v.is_null()) return "n/a";
  char b[32];
  std::snprintf(b, sizeof b, "%.3f", v.get<double>());
  return b;
}

}  // namespace

void register_eval_edit(CLI::App& app) {
  struct Args {
    std::string model, vision_tower, target, generality, locality;
    std::vector<std::string> edits;
    bool json_out = false, quiet = false;
    int threads = 0;
    std::string compute = "exact";
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("eval-edit", "Success, generality, locality and leak of an edit on held-out images");
  cmd->add_option("--edit", a->edits, "Edit directory (repeatable: the edits are applied together)")->required();
  cmd->add_option("--model", a->model, "Source checkpoint (default: the one recorded in the edit)");
  cmd->add_option("--vision-tower", a->vision_tower, "Vision tower directory of an original-layout LLaVA checkpoint (default: the edit's)");
  cmd->add_option("--target-images", a->target, "Folder of held-out images whose captions say S")->required();
  cmd->add_option("--generality-images", a->generality, "Another folder of images with S (optional)");
  cmd->add_option("--locality-images", a->locality, "Folder of images whose captions should not change")->required();
  cmd->add_flag("--json", a->json_out, "Print one JSON object instead of a table");
  cmd->add_flag("--quiet", a->quiet, "No progress output");
  add_threads_option(cmd, a->threads);
  add_compute_option(cmd, a->compute);
  cmd->callback([a] {
    init_threads(a->threads);
    init_compute(a->compute);
    std::vector<ValueEdit> edits;
    for (auto& d : a->edits) edits.push_back(load_value_edit(d));
    const ValueEdit& e = edits[0];
    auto model = load_cli_model(a->model, a->vision_tower, e.model_dir, e.vision_tower);
    for (size_t i = 0; i < edits.size(); ++i) check_edit_matches_model(edits[i], *model, a->edits[i]);
    PromptText prompt{e.info["parameters"].value("query", PromptText{}.query),
                      e.info["parameters"].value("prefix", PromptText{}.prefix)};
    const int max_new = e.info["parameters"].value("max_new_tokens", 50);
    auto caption_dir = [&](const std::string& dir, const char* label) {
      if (dir.empty()) return std::vector<CaptionedImage>{};
      return caption_images(*model, image_paths({}, dir, "", "", label), prompt, max_new, nullptr, !a->quiet, label);
    };
    const auto target = caption_dir(a->target, "target"), generality = caption_dir(a->generality, "generality"),
               locality = caption_dir(a->locality, "locality");
    json out = evaluate(*model, edits, target, generality, locality);
    out["edit"] = a->edits;
    out["from"] = e.info.value("from", "");
    out["to"] = e.info.value("to", "");
    out["rule"] = e.info.value("rule", "");
    // The random control of a single edit (edit --random-control): the same rule and budget on random neurons.
    const fs::path control = fs::path(a->edits[0]) / "random-control";
    if (edits.size() == 1 && fs::exists(control / "edit.json")) {
      ValueEdit r = load_value_edit(control.string());
      check_edit_matches_model(r, *model, control.string());
      out["random_control"] = evaluate(*model, {r}, target, generality, locality);
    }
    if (a->json_out) {
      std::cout << out.dump() << std::endl;
      return;
    }
    std::printf("edit %s: %s → %s, rule %s, %zu neurons (%lld weights)\n", a->edits[0].c_str(), out["from"].get<std::string>().c_str(),
                out["to"].get<std::string>().empty() ? "(suppressed)" : out["to"].get<std::string>().c_str(),
                out["rule"].get<std::string>().c_str(), e.neurons.size(), out["weights_changed"].get<long long>());
    std::printf("%-16s %-10s %-10s %-10s %-10s %-12s\n", "", "success", "generality", "locality", "leak", "margin shift");
    auto row = [&](const char* name, const json& r) {
      std::printf("%-16s %-10s %-10s %-10s %-10s %-12s\n", name, pct(r["success"]).c_str(), pct(r["generality"]).c_str(),
                  pct(r["locality"]).c_str(), pct(r["leak"]).c_str(), pct(r["margin_shift"]).c_str());
    };
    row(edits.size() > 1 ? "edits together" : "edit", out);
    if (out.contains("edits"))
      for (auto& pe : out["edits"]) {
        const std::string name = "  " + pe["from"].get<std::string>() + " → " +
                                 (pe["to"].get<std::string>().empty() ? "∅" : pe["to"].get<std::string>());
        std::printf("%-16s %-10s %-10s %-10s %-10s %-12s\n", name.c_str(), pct(pe["success"]).c_str(),
                    pct(pe["generality"]).c_str(), "", "", pct(pe["margin_shift"]).c_str());
      }
    if (out.contains("random_control")) row("random neurons", out["random_control"]);
  });
}

}  // namespace mmn::cli
