// mmneuron edit: build a neuron-level knowledge edit (neurons/edit.h) and
// write it as EDIT/; `edit export` writes it out as a complete checkpoint,
// `edit revert` gives the source checkpoint back bit for bit.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/default_model.h"
#include "cli/edit_args.h"
#include "cli/option_checks.h"
#include "kernels/threading.h"
#include "models/checkpoint_edit.h"
#include "neurons/edit.h"
#include "neurons/run.h"
#include "util/error.h"

namespace mmn::cli {

namespace fs = std::filesystem;

void register_edit(CLI::App& app) {
  struct Args {
    std::string model, vision_tower, from, to, rule = "constrained", images_dir, dataset, images_root, locality_dir, out, run,
        activation = "act";
    std::vector<std::string> images;
    EditOptions opt;
    bool force = false, quiet = false, random_control = false;
    int threads = 0;
    std::string compute = "exact";
    // export / revert
    std::string edit, target_model, sub_out;
    bool sub_force = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "edit", "Change what the model says: edit the value vectors of a concept's neurons (method.md §6, docs/editing.md)");
  cmd->add_option("--model", a->model, "Checkpoint (default: the bundled shapes model)");
  cmd->add_option("--vision-tower", a->vision_tower, "Vision tower directory of an original-layout LLaVA checkpoint (default: --run's)");
  cmd->add_option("--from", a->from, "The concept token S to change (a single token)");
  cmd->add_option("--to", a->to, "What to say instead (a single token); empty: suppress S");
  cmd->add_option("--image", a->images, "Edit-set image(s)");
  cmd->add_option("--images", a->images_dir, "Edit-set folder of images");
  cmd->add_option("--dataset", a->dataset, "Edit-set dataset file (SBU JSON or JSONL)");
  cmd->add_option("--images-root", a->images_root, "Folder the dataset's images are resolved against");
  cmd->add_option("--run", a->run, "Take the edit set and S's neurons (summed scores) from this find run");
  cmd->add_option("--locality-images", a->locality_dir, "Folder of images whose captions must not change (fit set)");
  cmd->add_option("--out", a->out, "Edit directory to write (edit.json, values.safetensors)");
  cmd->add_option("--neurons", a->opt.neurons, "Number of neurons to edit (k)")
      ->capture_default_str()
      ->check(int_at_least(1));
  cmd->add_option("--rule", a->rule, "constrained (ours), minnorm (method.md §6) or paper")->capture_default_str();
  cmd->add_option("--locality-weight", a->opt.locality_weight, "constrained: weight of the unchanged-output rows")
      ->capture_default_str()
      ->check(real_range(0, INFINITY));
  cmd->add_option("--ridge", a->opt.ridge, "constrained: ridge μ relative to the system's mean diagonal")
      ->capture_default_str()
      ->check(real_range(0, INFINITY));
  cmd->add_option("--target-margin", a->opt.target_margin, "Logit margin the new token should win by at j* (nats)")
      ->capture_default_str()
      ->check(real_range(0, 1000, true));
  cmd->add_option("--activation", a->activation, "Selection score activation: act or swiglu")->capture_default_str();
  cmd->add_flag("--random-control", a->random_control,
                "Also write EDIT/random-control/: the same rule on as many layer-matched random neurons (eval-edit compares)");
  cmd->add_option("--seed", a->opt.seed, "Seed of the random control")->capture_default_str()->check(seed_range());
  cmd->add_option("--max-new-tokens", a->opt.max_new_tokens, "Maximum caption length")
      ->capture_default_str()
      ->check(int_range(1, kMaxNewTokens));
  cmd->add_flag("--force", a->force, "Overwrite an existing edit");
  cmd->add_flag("--quiet", a->quiet, "No progress output");
  add_threads_option(cmd, a->threads);
  add_compute_option(cmd, a->compute);

  CLI::App* exp = cmd->add_subcommand("export", "Write the edited model as a complete checkpoint in the source's layout");
  exp->add_option("--edit", a->edit, "Edit directory")->required();
  exp->add_option("--model", a->target_model, "Source checkpoint (default: the one recorded in the edit)");
  exp->add_option("--out", a->sub_out, "New checkpoint directory")->required();
  exp->add_flag("--force", a->sub_force, "Replace an existing output directory");
  CLI::App* rev = cmd->add_subcommand("revert", "Write the source checkpoint back, bit for bit, from an exported one");
  rev->add_option("--edit", a->edit, "Edit directory")->required();
  rev->add_option("--model", a->target_model, "The exported (edited) checkpoint")->required();
  rev->add_option("--out", a->sub_out, "Directory for the restored source checkpoint")->required();
  rev->add_flag("--force", a->sub_force, "Replace an existing output directory");
  cmd->require_subcommand(0, 1);

  exp->callback([a] {
    ValueEdit e = load_value_edit(a->edit);
    auto model = load_cli_model(a->target_model, "", e.model_dir, e.vision_tower);
    check_edit_matches_model(e, *model, a->edit);
    export_value_edit(*model, e, a->sub_out, a->sub_force);
    std::printf("wrote %s: %zu value vectors changed (%lld weights)\n", a->sub_out.c_str(), e.neurons.size(),
                static_cast<long long>(e.neurons.size() * e.d_model));
  });
  rev->callback([a] {
    ValueEdit e = load_value_edit(a->edit);
    revert_value_edit(e, a->target_model, a->sub_out, a->sub_force);
    std::printf("wrote %s: the source checkpoint restored\n", a->sub_out.c_str());
  });
  cmd->callback([a, exp, rev] {
    if (exp->parsed() || rev->parsed()) return;
    init_threads(a->threads);
    init_compute(a->compute);
    if (a->from.empty()) fail_usage("edit: --from is required");
    if (a->out.empty()) fail_usage("edit: --out is required");
    if (a->locality_dir.empty()) fail_usage("edit: --locality-images is required");
    if (fs::exists(fs::path(a->out) / "edit.json") && !a->force)
      fail((fs::path(a->out) / "edit.json").string(), ": already exists (use --force to overwrite)");
    {  // Fail on an unwritable output now, not after the fit.
      std::error_code ec;
      fs::create_directories(a->out, ec);
      if (ec) fail(a->out, ": cannot create the edit directory (", ec.message(), ")");
    }
    EditOptions opt = a->opt;
    opt.from = a->from;
    opt.to = a->to;
    opt.rule = parse_edit_rule(a->rule);
    opt.selection = parse_activation_variant(a->activation);
    opt.show_progress = !a->quiet;
    std::vector<std::string> edit_images;
    std::unique_ptr<RunData> run;
    if (!a->run.empty()) {
      if (!a->images.empty() || !a->images_dir.empty() || !a->dataset.empty())
        fail_usage("edit: --run replaces --image/--images/--dataset");
      run = std::make_unique<RunData>(load_run(a->run));
      opt.prompt = {run->options().value("query", PromptText{}.query), run->options().value("prefix", PromptText{}.prefix)};
      opt.max_new_tokens = run->options().value("max_new_tokens", opt.max_new_tokens);
      for (auto& im : run->images) edit_images.push_back(im.image);
    } else {
      edit_images = image_paths(a->images, a->images_dir, a->dataset, a->images_root, "edit");
    }
    auto model = load_cli_model(a->model, a->vision_tower, run ? run->model() : "", run ? run->vision_tower() : "");
    if (run) {
      check_run_matches_model(*run, *model);
      // S's neurons: the run's scores summed over every (image, S) it found.
      const int32_t S = concept_token(model->tokenizer(), opt.from, "--from");
      std::map<NeuronRef, double> sum;
      for (auto& im : run->images)
        for (auto& c : im.concepts)
          if (c.token_id == S)
            for (auto& n : c.neurons) sum[{n.layer, n.unit}] += n.score;
      if (sum.empty()) fail(a->run, ": the run never found '", opt.from, "' in a caption");
      std::vector<std::pair<double, NeuronRef>> ranked;
      for (auto& [n, sc] : sum) ranked.push_back({-sc, n});
      std::sort(ranked.begin(), ranked.end());
      for (int i = 0; i < std::min<int>(opt.neurons, static_cast<int>(ranked.size())); ++i)
        opt.given_neurons.push_back(ranked[i].second);
    }
    const std::vector<std::string> locality_images = image_paths({}, a->locality_dir, "", "", "--locality-images");
    ValueEdit e = build_edit(*model, edit_images, locality_images, opt);
    if (run) e.info["run"] = a->run;
    save_value_edit(a->out, e, a->force);
    std::printf("wrote %s: %s rule, %zu neurons, scale %.4g; on the fit sets: success %.3f, locality %.3f, leak %.3f\n",
                a->out.c_str(), a->rule.c_str(), e.neurons.size(), e.info["parameters"]["scale"].get<double>(),
                e.info["fit"]["success"].get<double>(), e.info["fit"]["locality"].get<double>(),
                e.info["fit"]["leak"].get<double>());
    if (a->random_control) {
      opt.random_control = true;
      ValueEdit r = build_edit(*model, edit_images, locality_images, opt);
      const std::string rdir = (fs::path(a->out) / "random-control").string();
      save_value_edit(rdir, r, a->force);
      std::printf("wrote %s: the control on layer-matched random neurons; fit success %.3f, locality %.3f\n", rdir.c_str(),
                  r.info["fit"]["success"].get<double>(), r.info["fit"]["locality"].get<double>());
    }
  });
}

}  // namespace mmn::cli
