// mmneuron probe: the method's prerequisites on a shapes model. Do its image
// rows carry which shape they show (per layer: shape-selective neurons by
// AUROC, a linear probe of the shape from one row)? Definitions in
// neurons/probe.h.
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "cli/default_model.h"
#include "cli/option_checks.h"
#include "data/shapes.h"
#include "io/atomic_file.h"
#include "kernels/threading.h"
#include "neurons/probe.h"
#include "util/error.h"

namespace mmn::cli {

namespace {

std::string cell(double v, const char* f = "%.3f") {
  if (!std::isfinite(v)) return "n/a";
  char b[32];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

void print_report(const ProbeReport& rep, const ProbeOptions& opt) {
  const size_t K = rep.shapes.size();
  std::printf("%lld held-out scenes of world v%d, %dx%d patch grid: %lld object rows (train %lld, test %lld), "
              "%lld background rows left out\n",
              static_cast<long long>(rep.scenes), rep.world, rep.grid, rep.grid, static_cast<long long>(rep.rows),
              static_cast<long long>(rep.train_rows), static_cast<long long>(rep.test_rows),
              static_cast<long long>(rep.background_rows));
  std::printf("activation: %s; a selective neuron has AUROC >= %.2f on both halves\n",
              activation_variant_name(opt.activation), opt.threshold);
  std::printf("linear probe (test half): majority (%s) %.3f, language-model input rows %.3f\n\n",
              rep.majority_shape.c_str(), rep.majority, rep.input_accuracy);
  std::printf("  %-5s %-16s %-14s %-16s %-10s %s\n", "layer", "min best AUROC", "shapes >= thr", "mean sel. share",
              "probe mlp", "probe resid");
  for (const ProbeLayer& l : rep.layers) {
    double lo = 2, share = 0;
    int ok = 0, defined = 0;
    for (size_t k = 0; k < K; ++k) {
      if (!std::isfinite(l.best_auroc[k])) continue;
      ++defined;
      lo = std::min(lo, l.best_auroc[k]);
      ok += l.best_auroc[k] >= opt.threshold;
      share += l.selective_share[k];
    }
    std::printf("  %-5d %-16s %-14s %-16s %-10s %s\n", l.layer, defined ? cell(lo).c_str() : "n/a",
                (std::to_string(ok) + "/" + std::to_string(defined)).c_str(),
                defined ? cell(share / defined, "%.4f").c_str() : "n/a", cell(l.mlp_accuracy).c_str(),
                cell(l.resid_accuracy).c_str());
  }
  std::printf("\nbest neuron AUROC per shape (chosen on the train half, measured on the test half):\n  %-5s", "layer");
  for (const auto& s : rep.shapes) std::printf(" %-9s", s.c_str());
  std::printf("\n");
  for (const ProbeLayer& l : rep.layers) {
    std::printf("  %-5d", l.layer);
    for (size_t k = 0; k < K; ++k) std::printf(" %-9s", cell(l.best_auroc[k]).c_str());
    std::printf("\n");
  }
}

}  // namespace

void register_probe(CLI::App& app) {
  struct Args {
    std::string model, json_out, activation = "swiglu";
    ProbeOptions opt;
    int threads = 0;
    std::string compute = "exact";
    bool json_stdout = false, force = false, quiet = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "probe", "Do a shapes model's image rows carry shape identity? Per layer: selective neurons, a linear probe");
  cmd->add_option("--model", a->model, "Checkpoint directory or HF repo id (default: the bundled shapes model)");
  cmd->add_option("--n", a->opt.scenes, "Held-out scenes (half fit the probe, half test it)")
      ->capture_default_str()
      ->check(int_range<int64_t>(4, 1000000));
  cmd->add_option("--seed", a->opt.seed, "Scene stream (default: the held-out one)")
      ->capture_default_str()
      ->check(seed_range());
  cmd->add_option("--activation", a->activation, "Neuron activation: swiglu (mlp.hook_post) or act (mlp.hook_act)")
      ->capture_default_str();
  cmd->add_option("--threshold", a->opt.threshold, "AUROC of a selective neuron")
      ->capture_default_str()
      ->check(real_range(0.5, 1, true));
  cmd->add_flag("--json", a->json_stdout, "Print the report as JSON instead of tables");
  cmd->add_option("--out", a->json_out, "Also write the JSON report to this file");
  cmd->add_flag("--force", a->force, "Overwrite --out");
  cmd->add_flag("--quiet", a->quiet, "No progress output");
  add_threads_option(cmd, a->threads);
  add_compute_option(cmd, a->compute);
  cmd->callback([a] {
    init_threads(a->threads);
    init_compute(a->compute);
    a->opt.activation = parse_activation_variant(a->activation);
    if (!a->json_out.empty() && std::filesystem::exists(a->json_out) && !a->force)
      fail(a->json_out, ": exists; pass --force to overwrite it");
    const std::string dir = resolve_model_dir(a->model);
    std::unique_ptr<VisionLanguageModel> model = load_model(dir);
    const ShapesOptions world = shapes_world_of_model(dir, model->input_size());
    a->opt.show_progress = !a->json_stdout && !a->quiet;
    const ProbeReport rep = run_probe(*model, world, a->opt);
    const nlohmann::json j = probe_json(rep, a->opt, dir);
    if (!a->json_out.empty()) write_file_atomic(a->json_out, j.dump(2) + "\n");
    if (a->json_stdout) std::printf("%s\n", j.dump(2).c_str());
    else print_report(rep, a->opt);
  });
}

}  // namespace mmn::cli
