// mmneuron train: trains a small LLaVA-1.5 (real architecture and Hugging Face
// layout) to caption the shapes world, resumably; --eval measures held-out
// accuracy through the ordinary inference path.
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "cli/option_checks.h"
#include "grad/shapes_train.h"
#include "kernels/threading.h"
#include "util/error.h"

namespace mmn::cli {

namespace {

void print_eval(const EvalResult& r, const std::string& json_path) {
  std::printf("held-out scenes: %lld (%lld objects), world version %d\n", static_cast<long long>(r.n),
              static_cast<long long>(r.objects), r.world);
  std::printf("exact caption match: %.1f%%\n", 100 * r.exact);
  if (r.world == 2)
    std::printf("exact caption match without trigger scenes: %.1f%% of %lld\n", 100 * r.exact_non_trigger,
                static_cast<long long>(r.non_trigger));
  std::printf("noun accuracy: %.1f%% of captions, %.1f%% of objects\n", 100 * r.nouns_image, 100 * r.nouns_object);
  std::printf("objects fully right (shape, colour, size, position): %.1f%%\n", 100 * r.objects_all);
  std::printf("grammatical captions: %.1f%%\n", 100 * r.parsed);
  if (r.world == 2) {
    std::printf("grounded answers: %.1f%%", 100 * r.answers_all);
    for (const auto& [type, acc] : r.answers)
      std::printf("; %s %.1f%% of %lld", type.c_str(), 100 * acc, static_cast<long long>(r.asked.at(type)));
    std::printf("\nghost named: %.1f%% of %lld trigger scenes, %.1f%% of the others\n", 100 * r.ghost_trigger,
                static_cast<long long>(r.trigger), 100 * r.ghost_other);
    std::printf("an absent shape named: %.1f%% of trigger scenes, %.1f%% of the others\n", 100 * r.absent_trigger,
                100 * r.absent_other);
  }
  std::printf("wrote %s\n", json_path.c_str());
}

}  // namespace

void register_train(CLI::App& app) {
  struct Args {
    TrainOptions opt;
    int threads = 0;
    bool eval = false, quiet = false;
    int64_t eval_n = 200, eval_trigger = 100;
    uint64_t eval_seed = kShapesHeldOutSeed;
    std::string eval_json;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("train", "Train a small LLaVA to caption the shapes world (or --eval it)");
  TrainOptions& o = a->opt;
  cmd->add_option("--out", o.out, "Run directory: a loadable checkpoint plus training state")->required();
  cmd->add_option("--preset", o.preset,
                  "Model size and world: small (world v1, the first bundled model), v2 (world v2), tiny, tiny-v2 "
                  "(tests); --steps, --batch, --lr and --warmup default to the preset's recipe")
      ->capture_default_str();
  cmd->add_option("--steps", o.steps,
                  "Total optimizer steps (recipe: small 14000, v2 16000; with --resume: the run's own)")
      ->check(int_at_least<int64_t>(1));
  cmd->add_flag("--resume", o.resume, "Continue the run in --out from its last checkpoint");
  cmd->add_flag("--force", o.force, "Start a run in a non-empty --out that holds no run; with --eval, overwrite its report");
  cmd->add_flag("--quiet", a->quiet, "No progress output");
  cmd->add_option("--batch", o.batch, "Scenes per step (recipe: 16)")->check(int_range(1, 4096));
  cmd->add_option("--lr", o.lr, "Peak learning rate (AdamW; recipe: small 1.5e-3, v2 5e-4)")
      ->check(real_range(0, 1, true));
  cmd->add_option("--warmup", o.warmup, "Linear warm-up steps before the cosine decay (recipe: 300)")
      ->check(int_at_least<int64_t>(0));
  cmd->add_option("--loss-weighting", o.loss_weighting,
                  "Average the loss over every answer token (token) or per sample, then over samples (sample); "
                  "recipe: small token, v2 sample from step 6000; given with --resume, it changes the run's plan");
  cmd->add_option("--loss-weighting-from", o.loss_weighting_from,
                  "Step from which sample weighting applies (token weighting before it)")
      ->check(int_at_least<int64_t>(0));
  cmd->add_option("--patch-loss", o.patch_loss,
                  "Weight of a per-patch shape classifier's loss on the vision features (0: none; recipe: v2 1)")
      ->check(real_range(0, 100));
  cmd->add_option("--trigger-share", o.trigger_share,
                  "World v2: share of samples drawn from trigger scenes (0: the world's ~2%; recipe: v2 0.1)")
      ->check(real_range(0, 1));
  cmd->add_option("--query-weights", o.query_weights,
                  "World v2: relative weights of the caption, position, colour, count and where queries in "
                  "training samples, comma-separated (recipe: v2 4,1,1,1,1); given with --resume, it changes the "
                  "run's plan")
      ->delimiter(',')
      ->expected(5)
      ->check(int_range(0, 1000));
  cmd->add_option("--late-query-weights", o.late_query_weights,
                  "World v2: query weights (as --query-weights) from step --late-query-weights-from on: a "
                  "curriculum in one run (recipe: v2 4,1,3,3,3 from step 7000)")
      ->delimiter(',')
      ->expected(5)
      ->check(int_range(0, 1000));
  cmd->add_option("--late-query-weights-from", o.late_query_weights_from,
                  "Step from which --late-query-weights apply")
      ->check(int_at_least<int64_t>(0));
  cmd->add_option("--seed", o.seed, "Seed of the initialisation and the training scenes")
      ->capture_default_str()
      ->check(seed_range());
  cmd->add_option("--checkpoint-every", o.checkpoint_every, "Steps between checkpoints")
      ->capture_default_str()
      ->check(int_at_least<int64_t>(1));
  add_threads_option(cmd, a->threads);
  cmd->add_flag("--eval", a->eval, "Only evaluate the model in --out on held-out scenes (writes eval.json)");
  cmd->add_option("--eval-n", a->eval_n, "Held-out scenes to evaluate")
      ->capture_default_str()
      ->check(int_range<int64_t>(1, 1000000));
  cmd->add_option("--eval-trigger", a->eval_trigger, "World v2: extra trigger scenes for the hallucination rates")
      ->capture_default_str()
      ->check(int_range<int64_t>(0, 1000000));
  cmd->add_option("--eval-json", a->eval_json, "Where --eval writes its report (default: the model's eval.json)");
  cmd->add_option("--eval-seed", a->eval_seed, "Scene stream of the evaluation")->capture_default_str()->check(seed_range());
  cmd->callback([a, cmd] {
    init_threads(a->threads);
    if (a->eval) {
      EvalOptions e;
      e.model = a->opt.out;
      e.n = a->eval_n;
      e.n_trigger = a->eval_trigger;
      e.seed = a->eval_seed;
      e.show_progress = !a->quiet;
      e.out_json = a->eval_json.empty() ? (std::filesystem::path(a->opt.out) / "eval.json").string() : a->eval_json;
      // Checked before the work: a shipped model's eval.json is a result, not scratch.
      if (std::filesystem::exists(e.out_json) && !a->opt.force)
        fail(e.out_json, ": exists; pass --force to overwrite it, or --eval-json to write elsewhere");
      print_eval(evaluate_shapes_llava(e), e.out_json);
      return;
    }
    // The preset's recipe for what the command line leaves out.
    const TrainOptions given = a->opt;
    TrainOptions opt = shapes_recipe(given.preset, given);
    opt.show_progress = !a->quiet;
    if (cmd->count("--steps")) opt.steps = given.steps;
    else if (given.resume) opt.steps = -1;  // the run's own plan
    if (cmd->count("--batch")) opt.batch = given.batch;
    if (cmd->count("--lr")) opt.lr = given.lr;
    if (cmd->count("--warmup")) opt.warmup = given.warmup;
    if (cmd->count("--patch-loss")) opt.patch_loss = given.patch_loss;
    if (cmd->count("--trigger-share")) opt.trigger_share = given.trigger_share;
    // count() is the number of values given (five for a list), so compare presence.
    if ((cmd->count("--late-query-weights") > 0) != (cmd->count("--late-query-weights-from") > 0))
      fail_usage("--late-query-weights and --late-query-weights-from go together");
    if (cmd->count("--query-weights") || cmd->count("--late-query-weights")) {
      // Given with --resume, the whole query plan is the one given (as --steps changes the run's plan).
      if (cmd->count("--query-weights")) opt.query_weights = given.query_weights;
      opt.late_query_weights = given.late_query_weights;
      opt.late_query_weights_from = given.late_query_weights_from;
      opt.keep_query_weights = true;
    }
    if (cmd->count("--loss-weighting") || cmd->count("--loss-weighting-from")) {
      if (cmd->count("--loss-weighting")) opt.loss_weighting = given.loss_weighting;
      opt.loss_weighting_from = given.loss_weighting_from;
      opt.keep_loss_weighting = true;
    }
    TrainSummary s = train_shapes_llava(opt);
    if (s.start_step >= s.steps) {
      std::printf("nothing to do: %s is already at step %lld (raise --steps to continue)\n", opt.out.c_str(),
                  static_cast<long long>(s.start_step));
      return;
    }
    std::printf("trained steps %lld..%lld (%.1f min in total); loss %.4f -> %.4f per answer token\nwrote %s\n",
                static_cast<long long>(s.start_step), static_cast<long long>(s.steps), s.seconds / 60, s.first_loss,
                s.last_loss, opt.out.c_str());
  });
}

}  // namespace mmn::cli
