// mmneuron groundtruth: on shapes-world scenes (known object masks), how well
// do the maps of each noun's top neurons cover the object? IoU of the
// 95th-percentile mask for the paper's score, the gradient baseline and
// random neurons.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/default_model.h"
#include "io/atomic_file.h"
#include "kernels/threading.h"
#include "neurons/groundtruth.h"
#include "neurons/wordnet.h"
#include "util/error.h"

namespace mmn::cli {

void register_groundtruth(CLI::App& app) {
  struct Args {
    std::string model, json_out, activation = "act";
    GroundTruthOptions opt;
    bool no_gradient = false;
    int threads = 0;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "groundtruth", "IoU of neuron heatmaps with true object masks on held-out shapes scenes (score, gradient, random)");
  cmd->add_option("--model", a->model, "Checkpoint directory (default: the bundled shapes model)");
  cmd->add_option("--scenes", a->opt.scenes, "Held-out scenes")->capture_default_str();
  cmd->add_option("--top", a->opt.top, "Neurons averaged into each map")->capture_default_str();
  cmd->add_option("--activation", a->activation, "act or swiglu")->capture_default_str();
  cmd->add_flag("--no-gradient", a->no_gradient, "Skip the (slower) gradient baseline");
  cmd->add_option("--json", a->json_out, "Also write the table as JSON here");
  cmd->add_option("--threads", a->threads, "Worker threads (0 = all cores)")->capture_default_str();
  cmd->callback([a] {
    init_threads(a->threads);
    if (a->opt.scenes < 1) fail("--scenes must be at least 1");
    a->opt.activation = parse_activation_variant(a->activation);
    a->opt.gradient = !a->no_gradient;
    a->opt.show_progress = true;
    auto model = load_model(resolve_model_dir(a->model));
    WordNet wn = WordNet::load();
    GroundTruthReport rep = evaluate_ground_truth(*model, wn, a->opt);
    std::printf("%lld scenes, %lld shape nouns; IoU of the 95th-percentile mask of the mean map of the top %d:\n",
                static_cast<long long>(rep.scenes), static_cast<long long>(rep.concepts), a->opt.top);
    nlohmann::json j = {{"scenes", rep.scenes}, {"concepts", rep.concepts}, {"top", a->opt.top},
                        {"chance_iou", rep.chance_iou}, {"methods", nlohmann::json::array()}};
    for (auto& m : rep.methods) {
      std::printf("  %-9s %.3f\n", m.method.c_str(), m.mean_iou);
      j["methods"].push_back({{"method", m.method}, {"mean_iou", m.mean_iou}, {"concepts", m.concepts}});
    }
    std::printf("  %-9s %.3f (a random mask of the same size)\n", "chance", rep.chance_iou);
    if (!a->json_out.empty()) write_file_atomic(a->json_out, j.dump(2) + "\n");
  });
}

}  // namespace mmn::cli
