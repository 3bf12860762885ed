// mmneuron perturb RUN: the causal test of a find run (method.md §5) — zero or
// add noise to each noun's top-N neurons and to random controls, measure the
// teacher-forced margin and whether the noun survives; RUN/perturb.json and a
// summary table with paired bootstrap CIs.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli/default_model.h"
#include "cli/edit_args.h"
#include "cli/option_checks.h"
#include "io/atomic_file.h"
#include "kernels/threading.h"
#include "neurons/perturb.h"
#include "util/error.h"

namespace mmn::cli {

namespace {

template <class T>
std::vector<T> parse_list(const std::string& s, const char* flag) {
  std::vector<T> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    std::stringstream is(item);
    T v;
    if (!(is >> v) || !is.eof()) fail_usage(flag, ": '", item, "' is not a number");
    out.push_back(v);
  }
  if (out.empty()) fail_usage(flag, ": empty list");
  return out;
}

void print_summary(const nlohmann::json& s) {
  std::printf("%lld (image, noun) items, %lld intervened passes, %.1f s\n", s["items"].get<long long>(),
              s["passes"].get<long long>(), s["seconds"].get<double>());
  if (s["clean_reproduced"] != s["items"])
    std::printf("note: the batched clean pass does not reproduce %lld of the run's captions exactly (near-ties)\n",
                s["items"].get<long long>() - s["clean_reproduced"].get<long long>());
  auto est = [](const nlohmann::json& e) {
    if (e["mean"].is_null()) return std::string("n/a");
    char b[80];
    std::snprintf(b, sizeof b, "%+.3f [%+.3f, %+.3f]", e["mean"].get<double>(),
                  e["ci95"][0].is_null() ? NAN : e["ci95"][0].get<double>(),
                  e["ci95"][1].is_null() ? NAN : e["ci95"][1].get<double>());
    return std::string(b);
  };
  std::printf("\n%-22s %-28s %-28s %-28s\n", "condition", "Δ margin at j* [95% CI]", "noun changed", "rest changed");
  for (auto& c : s["conditions"])
    std::printf("%-22s %-28s %-28s %-28s\n", c["label"].get<std::string>().c_str(), est(c["delta_margin"]).c_str(),
                est(c["noun_changed"]).c_str(), est(c["rest_changed"]).c_str());
  std::printf("\n%-22s %-18s %-28s %-28s %-28s\n", "top", "vs", "Δ margin, top − random", "margin drop ratio",
              "noun changed, top − random");
  for (auto& c : s["comparisons"])
    std::printf("%-22s %-18s %-28s %-28s %-28s\n", c["top"].get<std::string>().c_str(),
                c["random"].get<std::string>().c_str(), est(c["delta_margin_diff"]).c_str(),
                est(c["margin_drop_ratio"]).c_str(), est(c["noun_changed_diff"]).c_str());
}

}  // namespace

void register_perturb(CLI::App& app) {
  struct Args {
    std::string run, model, vision_tower, tops = "10,50", sigmas, random = "uniform,layer", out;
    std::vector<std::string> edits;
    bool zero = false, no_reuse = false, force = false, quiet = false;
    int draws = 5, threads = 0;
    std::string compute = "exact";
    int64_t max_images = 0;
    uint64_t seed = 0;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "perturb", "Causal test of a find run: perturb each noun's top-N neurons and random controls (method.md §5)");
  cmd->add_option("run", a->run, "A find run directory")->required();
  cmd->add_option("--model", a->model, "Checkpoint (default: the one recorded in RUN/run.json)");
  cmd->add_option("--vision-tower", a->vision_tower, "Vision tower directory of an original-layout LLaVA checkpoint (default: the run's)");
  cmd->add_option("--top", a->tops, "Numbers of top neurons to perturb, comma-separated")
      ->capture_default_str()
      ->check(list_of(int_at_least(1)));
  cmd->add_flag("--zero", a->zero, "Zero the value vectors (the default when no --sigma is given)");
  cmd->add_option("--sigma", a->sigmas, "Add σ·N(0, I) to the value vectors, for each σ of this comma-separated list")
      ->check(list_of(real_range(0, INFINITY)));
  cmd->add_option("--random", a->random, "Random controls: uniform, layer (layer-matched), both, or none")
      ->capture_default_str();
  cmd->add_option("--draws", a->draws, "Random sets (and noise draws) per condition")
      ->capture_default_str()
      ->check(int_range(1, 10000));
  cmd->add_option("--seed", a->seed, "Seed of the random controls and noise")->capture_default_str()->check(seed_range());
  cmd->add_option("--edit", a->edits, "Apply this knowledge edit to every pass, the clean one included (repeatable)");
  cmd->add_flag("--no-reuse", a->no_reuse, "Recompute every layer instead of resuming from the clean pass");
  cmd->add_option("--max-images", a->max_images, "Only the first N images of the run (0 = all)")
      ->capture_default_str()
      ->check(int_at_least<int64_t>(0));
  cmd->add_option("--out", a->out, "Output file (default: RUN/perturb.json)");
  cmd->add_flag("--force", a->force, "Overwrite an existing output file");
  cmd->add_flag("--quiet", a->quiet, "No progress output");
  add_threads_option(cmd, a->threads);
  add_compute_option(cmd, a->compute);
  cmd->callback([a] {
    namespace fs = std::filesystem;
    init_threads(a->threads);
    init_compute(a->compute);
    PerturbOptions opt;
    opt.tops = parse_list<int>(a->tops, "--top");
    if (!a->sigmas.empty()) opt.sigmas = parse_list<float>(a->sigmas, "--sigma");
    opt.zero = a->zero;
    opt.random_uniform = opt.random_layer = false;
    if (a->random != "none") {
      std::stringstream ss(a->random);
      std::string r;
      while (std::getline(ss, r, ',')) {
        if (r == "uniform") opt.random_uniform = true;
        else if (r == "layer") opt.random_layer = true;
        else if (r == "both") opt.random_uniform = opt.random_layer = true;
        else fail_usage("--random: expected uniform, layer, both or none, got '", r, "'");
      }
    }
    opt.draws = a->draws;
    opt.seed = a->seed;
    opt.reuse = !a->no_reuse;
    opt.max_images = a->max_images;
    opt.show_progress = !a->quiet;
    const std::string out = a->out.empty() ? (fs::path(a->run) / "perturb.json").string() : a->out;
    RunData run = load_run(a->run);
    size_t items = 0;
    for (auto& im : run.images) items += im.concepts.size();
    if (items == 0)
      fail_nothing_done(a->run, ": no finished image has a ranked noun (", run.images.size(),
                        " finished images): nothing to perturb");
    if (fs::exists(out) && !a->force) fail(out, ": already exists (use --force to overwrite)");
    auto model = load_cli_model(a->model, a->vision_tower, run.model(), run.vision_tower());
    check_run_matches_model(run, *model);
    // A run made under edits (find --edit) is perturbed under the same edits unless told otherwise.
    if (a->edits.empty() && run.options().contains("edits"))
      for (auto& e : run.options()["edits"]) a->edits.push_back(e.at("dir").get<std::string>());
    std::unique_ptr<NeuronIntervention> edit = load_edits(*model, a->edits);
    opt.base = edit.get();
    PerturbReport rep = run_perturbation(*model, run, opt);
    nlohmann::json j = perturbation_to_json(rep, model->tokenizer(), opt);
    j["run"] = a->run;
    j["model"] = model->dir();
    j["edits"] = a->edits;
    write_file_atomic(out, j.dump(1) + "\n");
    print_summary(j["summary"]);
    std::printf("\nwrote %s\n", out.c_str());
  });
}

}  // namespace mmn::cli
