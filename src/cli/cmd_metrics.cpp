// mmneuron metrics RUN [--shuffled RUN2]: the properties of method.md §5
// (definitions in neurons/metrics.h) for a finished find run, written to
// RUN/metrics.json and printed as a table.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "cli/commands.h"
#include "cli/default_model.h"
#include "cli/option_checks.h"
#include "io/atomic_file.h"
#include "kernels/threading.h"
#include "neurons/find.h"
#include "neurons/metrics.h"
#include "neurons/run.h"
#include "neurons/wordnet.h"
#include "util/error.h"

namespace mmn::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct MetricsArgs {
  std::string run, shuffled, model, vision_tower, vocab = "auto";
  std::vector<int64_t> ks = {10, 100, 1000};
  int64_t seed = 0;
  int resamples = kBootstrapResamples, threads = 0;
  bool force = false, quiet = false;
};

// --model, else the model the run was made with (when it is still there), else the bundled one.
std::string model_for(const MetricsArgs& a, const RunData& run) {
  if (!a.model.empty()) return resolve_model_dir(a.model);
  std::error_code ec;
  if (!run.model().empty() && fs::is_directory(run.model(), ec)) return run.model();
  return resolve_model_dir("");
}

// How many distinct generated tokens of the run the explanation vocabulary lacks:
// a check of the rule on data it never saw (they must all be producible).
int64_t generated_outside(const RunData& run, const ExplanationVocab& v) {
  std::set<int32_t> allowed(v.tokens.begin(), v.tokens.end()), outside;
  for (auto& im : run.images)
    for (int32_t t : im.generated_ids)
      if (t < v.base && !allowed.count(t)) outside.insert(t);
  return static_cast<int64_t>(outside.size());
}

void print_table(const MetricsReport& rep) {
  const int label_w = 34, col_w = 24;
  auto row = [&](const std::string& label, auto cell) {
    std::printf("  %-*s", label_w, label.c_str());
    for (Ranking r : rep.rankings) std::printf("%-*s", col_w, cell(r).c_str());
    std::printf("\n");
  };
  for (int64_t k : rep.ks) {
    auto at = [&](Ranking r) { return rep.find(k, r); };
    auto est_row = [&](const std::string& label, auto field) {
      row(label, [&](Ranking r) {
        const RankingMetrics* m = at(r);
        return m ? format_estimate(field(*m), 3) : std::string("n/a");
      });
    };
    std::printf("\nk = %lld", static_cast<long long>(k));
    std::printf("\n  %-*s", label_w, "");
    for (Ranking r : rep.rankings) std::printf("%-*s", col_w, ranking_name(r));
    std::printf("\n");
    est_row("semantic: noun in top tokens", [](const RankingMetrics& m) { return m.noun_in_top_tokens; });
    est_row("semantic: best Wu-Palmer", [](const RankingMetrics& m) { return m.best_wup; });
    est_row("region: Jaccard vs shuffled", [](const RankingMetrics& m) { return m.jaccard; });
    est_row("region: mask IoU vs shuffled", [](const RankingMetrics& m) { return m.mask_iou; });
    est_row("cross-image: same noun", [](const RankingMetrics& m) { return m.same_noun; });
    est_row("cross-image: other nouns", [](const RankingMetrics& m) { return m.other_nouns; });
    est_row("cross-image: ratio", [](const RankingMetrics& m) { return m.cross_ratio; });
    est_row("specificity: exclusive share", [](const RankingMetrics& m) { return m.exclusive; });
    est_row("specificity: act with noun", [](const RankingMetrics& m) { return m.act_mean.with_noun; });
    est_row("specificity: act without noun", [](const RankingMetrics& m) { return m.act_mean.without_noun; });
    est_row("specificity: act difference", [](const RankingMetrics& m) { return m.act_mean.difference; });
    est_row("specificity: act ratio", [](const RankingMetrics& m) { return m.act_mean.ratio; });
    est_row("layers: mean depth l/(L-1)", [](const RankingMetrics& m) { return m.mean_depth; });
    if (rep.layers <= 8) {
      for (int l = 0; l < rep.layers; ++l)
        est_row("layers: share in layer " + std::to_string(l),
                [l](const RankingMetrics& m) { return m.layer_share.empty() ? Estimate{} : m.layer_share[l]; });
    } else {
      row("layers: % per layer (CIs in json)", [&](Ranking r) {
        const RankingMetrics* m = at(r);
        std::string s;
        if (!m || m->layer_share.empty()) return std::string("n/a");
        for (auto& e : m->layer_share) {
          if (!s.empty()) s += ' ';
          s += std::to_string(static_cast<int>(e.mean * 100 + 0.5));
        }
        return s;
      });
    }
  }
  // Why cells are n/a (each reason once).
  std::set<std::string> seen;
  std::vector<std::string> why(rep.notes.begin(), rep.notes.end());
  for (auto& m : rep.results)
    for (const std::string* n : {&m.region_note, &m.mask_note, &m.act_mean.note}) {
      if (n->empty()) continue;
      const std::string what = n == &m.region_note ? "region" : n == &m.mask_note ? "mask IoU" : "activation";
      why.push_back(std::string(ranking_name(m.ranking)) + " " + what + ": " + *n);
    }
  std::printf("\nact = mean over the image rows (max in metrics.json); 95%% bootstrap CIs over (image, noun) units, "
              "over nouns for cross-image\n");
  for (auto& w : why)
    if (seen.insert(w).second) std::printf("note: %s\n", w.c_str());
}

void run_metrics(const MetricsArgs& a) {
  init_threads(a.threads);
  const fs::path out = fs::path(a.run) / "metrics.json";
  RunData run = load_run(a.run);
  size_t units = 0;
  for (auto& im : run.images) units += im.concepts.size();
  if (units == 0)
    fail_nothing_done(a.run, ": no finished image has a ranked noun (", run.images.size(),
                      " finished images): nothing to measure");
  if (fs::exists(out) && !a.force) fail(out.string(), ": already exists (use --force to overwrite)");
  std::optional<RunData> twin;
  if (!a.shuffled.empty()) {
    twin = load_run(a.shuffled);
    check_shuffled_twin(run, *twin);
  }
  const VocabMode mode = parse_vocab_mode(a.vocab);
  const std::string model_dir = model_for(a, run);
  auto model = load_model(model_dir, LoadOptions{!a.vision_tower.empty() ? a.vision_tower
                                                 : model_dir == run.model() ? run.vision_tower()
                                                                            : ""});
  check_run_matches_model(run, *model);
  if (twin) check_run_matches_model(*twin, *model);
  WordNet wn = WordNet::load();

  Explainer explainer(*model, run.options().value("explain_tokens", 10));
  const ExplanationVocab vocab = explanation_vocab(*model, mode);
  if (vocab.restricted) explainer.restrict_to(vocab.tokens);
  const int64_t outside = generated_outside(run, vocab);

  MetricsOptions opt;
  opt.ks = a.ks;
  opt.seed = static_cast<uint64_t>(a.seed);
  opt.resamples = a.resamples;
  opt.mask_side = model->grid_side() > 0 ? model->input_size() : 0;
  opt.show_progress = !a.quiet;
  TopTokensFn tops = [&](const std::vector<std::pair<int, int>>& ids) {
    std::vector<std::vector<std::string>> out;
    for (auto& t : explainer.explain(ids)) {
      std::vector<std::string> words;
      for (int32_t id : t) words.push_back(explainer.token_text(id));
      out.push_back(std::move(words));
    }
    return out;
  };
  MetricsReport rep = compute_metrics(run, twin ? &*twin : nullptr, wn, tops, opt);

  json j = {{"tool", "mmneuron"},
            {"version", MMN_VERSION},
            {"run", a.run},
            {"shuffled", twin ? json(a.shuffled) : json(nullptr)},
            {"model", model_dir},
            {"seed", a.seed},
            {"bootstrap_resamples", a.resamples},
            {"vocab",
             {{"mode", a.vocab},
              {"restricted", vocab.restricted},
              {"tokens", vocab.tokens.size()},
              {"base_vocab", vocab.base},
              {"collapsed_rows", vocab.collapsed},
              {"generated_outside", outside},
              {"decision", vocab.decision}}}};
  j.update(metrics_to_json(rep));
  write_file_atomic(out.string(), j.dump(2) + "\n");

  std::printf("%s\n", vocab.decision.c_str());
  if (outside > 0)
    std::printf("warning: %lld distinct generated tokens of the run are outside the explanation vocabulary\n",
                static_cast<long long>(outside));
  else if (vocab.restricted)
    std::printf("check: every token the run generated is among them\n");
  std::printf("%s: %lld images, %lld (image, noun) units, %lld nouns in >= 2 images", a.run.c_str(),
              static_cast<long long>(rep.images), static_cast<long long>(rep.units),
              static_cast<long long>(rep.repeated_nouns));
  if (twin) std::printf("; shuffled twin %s: %lld units matched", a.shuffled.c_str(), static_cast<long long>(rep.twin_units));
  std::printf("\n");
  print_table(rep);
  std::printf("written: %s\n", out.string().c_str());
}

}  // namespace

void register_metrics(CLI::App& app) {
  auto a = std::make_shared<MetricsArgs>();
  CLI::App* cmd = app.add_subcommand(
      "metrics", "Semantic sensitivity, region and cross-image invariance, specificity and layers of a find run's neurons");
  cmd->add_option("run", a->run, "Find run directory")->required();
  cmd->add_option("--shuffled", a->shuffled, "The same run redone with --shuffle-image-tokens (region invariance)");
  cmd->add_option("--model", a->model, "Checkpoint directory (default: the run's model, else the bundled one)");
  cmd->add_option("--vision-tower", a->vision_tower, "Vision tower directory of an original-layout LLaVA checkpoint (default: the run's)");
  cmd->add_option("--vocab", a->vocab,
                  "Tokens explanations may name: all, produced (lm_head rows that were trained) or auto")
      ->capture_default_str();
  cmd->add_option("--k", a->ks, "Top-k sizes")->delimiter(',')->capture_default_str()->check(int_at_least<int64_t>(1));
  cmd->add_option("--seed", a->seed, "Seed of the random rankings and the bootstrap")
      ->capture_default_str()
      ->check(int_at_least<int64_t>(0));
  cmd->add_option("--resamples", a->resamples, "Bootstrap resamples")
      ->capture_default_str()
      ->check(int_range(1, 10000000));
  cmd->add_flag("--force", a->force, "Overwrite an existing RUN/metrics.json");
  cmd->add_flag("--quiet", a->quiet, "No progress output");
  add_threads_option(cmd, a->threads);
  cmd->callback([a] { run_metrics(*a); });
}

}  // namespace mmn::cli
