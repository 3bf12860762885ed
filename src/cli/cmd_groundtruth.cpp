// mmneuron groundtruth: on shapes-world scenes (known object masks), how well
// do the maps of each noun's top neurons cover the named object, against
// random neurons (uniform and layer-matched), the gradient baseline and the
// references that bound the answer (chance, an all-objects oracle, the
// patch-resolution ceiling)? Definitions in neurons/groundtruth.h.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/default_model.h"
#include "cli/option_checks.h"
#include "io/atomic_file.h"
#include "kernels/threading.h"
#include "neurons/groundtruth.h"
#include "neurons/stats.h"
#include "neurons/wordnet.h"
#include "util/error.h"

namespace mmn::cli {

namespace {

std::string est(const Estimate& e) { return format_estimate(e, 3); }

// The point estimate alone, "n/a" when undefined (no multi-object scenes).
std::string point(const Estimate& e) {
  if (e.n == 0) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", e.mean);
  return buf;
}

void print_table(const GroundTruthReport& rep, const GroundTruthOptions& opt) {
  std::printf("%lld scenes, %lld units (scene, shape noun), %lld on scenes with another shape",
              static_cast<long long>(rep.scenes), static_cast<long long>(rep.concepts),
              static_cast<long long>(rep.multi_units));
  std::printf(" (skipped: %lld non-shape nouns, %lld shapes not in the scene)\n",
              static_cast<long long>(rep.skipped_not_shape), static_cast<long long>(rep.skipped_absent));
  std::printf("Map: mean of the top %d neurons; IoU of the >p95 mask with the named object; "
              "selectivity = (named − other objects) / map std; wins = named object highest. "
              "Mean [95%% CI].\n\n",
              opt.top);
  std::printf("  %-24s %-24s %-24s %s\n", "method", "IoU", "selectivity", "named wins");
  for (const auto& m : rep.methods) {
    std::string label = m.method;
    if (m.method == "uniform" || m.method == "layer-matched") label += " (" + std::to_string(opt.draws) + " draws)";
    std::printf("  %-24s %-24s %-24s %s\n", label.c_str(), est(m.iou_ci).c_str(), est(m.selectivity_ci).c_str(),
                est(m.wins_ci).c_str());
  }
  std::printf("  references:\n");
  std::printf("  %-24s %-24s %-24s %s\n", "chance (5% mask)", est(rep.chance_ci).c_str(), "0",
              est(rep.chance_wins_ci).c_str());
  std::printf("  %-24s %s\n", "all-objects oracle", est(rep.oracle_ci).c_str());
  std::printf("  %-24s %s\n", "patch ceiling, p95", est(rep.ceiling_p95_ci).c_str());
  std::printf("  %-24s %s\n", "patch ceiling, best t", est(rep.ceiling_best_ci).c_str());

  std::printf("\nPaired differences (a − b, same units):\n");
  std::printf("  %-26s %-24s %s\n", "a - b", "IoU", "selectivity");
  for (const auto& d : rep.diffs) {
    const std::string label = d.a + " - " + d.b;
    std::printf("  %-26s %-24s %s\n", label.c_str(), est(d.iou).c_str(), est(d.selectivity).c_str());
  }

  std::printf("\nPer layer (score: top %d of the layer's neurons; random: %d random neurons of the layer, %d draws):\n",
              opt.top, opt.top, opt.draws);
  std::printf("  %-5s %-7s %-7s %-7s %-24s %-7s %-7s %-24s %-7s %s\n", "layer", "in top", "IoU", "random",
              "IoU diff", "sel", "random", "sel diff", "wins", "random");
  for (const auto& lr : rep.layers)
    std::printf("  %-5d %-7.2f %-7s %-7s %-24s %-7s %-7s %-24s %-7s %s\n", lr.layer, lr.top_share,
                point(lr.score.iou_ci).c_str(), point(lr.random.iou_ci).c_str(), est(lr.diff_iou).c_str(),
                point(lr.score.selectivity_ci).c_str(), point(lr.random.selectivity_ci).c_str(),
                est(lr.diff_selectivity).c_str(), point(lr.score.wins_ci).c_str(), point(lr.random.wins_ci).c_str());
  std::printf("  (in top: share of the global score top %d that sits in the layer)\n", opt.top);
}

}  // namespace

void register_groundtruth(CLI::App& app) {
  struct Args {
    std::string model, json_out, activation = "act";
    GroundTruthOptions opt;
    bool no_gradient = false, force = false, quiet = false;
    int threads = 0;
    std::string compute = "exact";
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "groundtruth",
      "How well neuron heatmaps find the named object on held-out shapes scenes: IoU and selectivity for the score, "
      "the gradient baseline and random neurons, against chance, an all-objects oracle and the patch ceiling");
  cmd->add_option("--model", a->model, "Checkpoint directory (default: the bundled shapes model)");
  cmd->add_option("--scenes", a->opt.scenes, "Held-out scenes")->capture_default_str()->check(int_range<int64_t>(1, 1000000));
  cmd->add_option("--top", a->opt.top, "Neurons averaged into each map (at most one layer's)")
      ->capture_default_str()
      ->check(int_range(1, 1000000));
  cmd->add_option("--draws", a->opt.draws, "Random neuron sets per (scene, noun)")
      ->capture_default_str()
      ->check(int_range(1, 10000));
  cmd->add_option("--seed", a->opt.random_seed, "Seed of the random neurons and the bootstrap")
      ->capture_default_str()
      ->check(seed_range());
  cmd->add_option("--activation", a->activation, "act or swiglu")->capture_default_str();
  cmd->add_flag("--no-gradient", a->no_gradient, "Skip the (slower) gradient baseline");
  cmd->add_option("--json", a->json_out, "Also write everything as JSON here");
  cmd->add_flag("--force", a->force, "Overwrite the --json file");
  cmd->add_flag("--quiet", a->quiet, "No progress output");
  add_threads_option(cmd, a->threads);
  add_compute_option(cmd, a->compute);
  cmd->callback([a] {
    // Check everything cheap before the model loads (the numbers: by the parser).
    if (!a->json_out.empty() && !a->force && std::filesystem::exists(a->json_out))
      fail(a->json_out, ": already exists (use --force to overwrite)");
    init_threads(a->threads);
    init_compute(a->compute);
    a->opt.activation = parse_activation_variant(a->activation);
    a->opt.gradient = !a->no_gradient;
    a->opt.show_progress = !a->quiet;
    const std::string dir = resolve_model_dir(a->model);
    auto model = load_model(dir);
    WordNet wn = WordNet::load();
    GroundTruthReport rep = evaluate_ground_truth(*model, wn, a->opt);
    print_table(rep, a->opt);
    if (!a->json_out.empty()) write_file_atomic(a->json_out, ground_truth_json(rep, a->opt, dir).dump(2) + "\n");
  });
}

}  // namespace mmn::cli
