// mmneuron train: trains a small LLaVA-1.5 (real architecture and Hugging Face
// layout) to caption the shapes world, resumably; --eval measures held-out
// caption accuracy through the ordinary inference path.
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "grad/shapes_train.h"
#include "kernels/threading.h"
#include "util/error.h"

namespace mmn::cli {

void register_train(CLI::App& app) {
  struct Args {
    TrainOptions opt;
    int threads = 0;
    bool eval = false;
    int64_t eval_n = 200;
    uint64_t eval_seed = kShapesHeldOutSeed;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("train", "Train a small LLaVA to caption the shapes world (or --eval it)");
  TrainOptions& o = a->opt;
  cmd->add_option("--out", o.out, "Run directory: a loadable checkpoint plus training state")->required();
  cmd->add_option("--steps", o.steps, "Total optimizer steps")->capture_default_str();
  cmd->add_flag("--resume", o.resume, "Continue the run in --out from its last checkpoint");
  cmd->add_option("--preset", o.preset, "Model size: small, tiny")->capture_default_str();
  cmd->add_option("--batch", o.batch, "Scenes per step")->capture_default_str();
  cmd->add_option("--lr", o.lr, "Peak learning rate (AdamW)")->capture_default_str();
  cmd->add_option("--warmup", o.warmup, "Linear warm-up steps before the cosine decay")->capture_default_str();
  cmd->add_option("--seed", o.seed, "Seed of the initialisation and the training scenes")->capture_default_str();
  cmd->add_option("--checkpoint-every", o.checkpoint_every, "Steps between checkpoints")->capture_default_str();
  cmd->add_option("--threads", a->threads, "Worker threads (0 = all cores)")->capture_default_str();
  cmd->add_flag("--eval", a->eval, "Only evaluate the model in --out on held-out scenes (writes eval.json)");
  cmd->add_option("--eval-n", a->eval_n, "Held-out scenes to evaluate")->capture_default_str();
  cmd->add_option("--eval-seed", a->eval_seed, "Scene stream of the evaluation")->capture_default_str();
  cmd->callback([a] {
    init_threads(a->threads);
    if (a->eval) {
      if (a->eval_n < 1) fail("--eval-n must be at least 1");
      EvalOptions e;
      e.model = a->opt.out;
      e.n = a->eval_n;
      e.seed = a->eval_seed;
      e.out_json = (std::filesystem::path(a->opt.out) / "eval.json").string();
      EvalResult r = evaluate_shapes_llava(e);
      std::printf("held-out scenes: %lld (%lld objects)\n", static_cast<long long>(r.n),
                  static_cast<long long>(r.objects));
      std::printf("exact caption match: %.1f%%\n", 100 * r.exact);
      std::printf("noun accuracy: %.1f%% of captions, %.1f%% of objects\n", 100 * r.nouns_image,
                  100 * r.nouns_object);
      std::printf("objects fully right (shape, colour, size, position): %.1f%%\n", 100 * r.objects_all);
      std::printf("grammatical captions: %.1f%%\nwrote %s\n", 100 * r.parsed, e.out_json.c_str());
      return;
    }
    TrainSummary s = train_shapes_llava(a->opt);
    if (s.start_step >= s.steps) {
      std::printf("nothing to do: %s is already at step %lld (raise --steps to continue)\n", a->opt.out.c_str(),
                  static_cast<long long>(s.start_step));
      return;
    }
    std::printf("trained steps %lld..%lld (%.1f min in total); loss %.4f -> %.4f per caption token\nwrote %s\n",
                static_cast<long long>(s.start_step), static_cast<long long>(s.steps), s.seconds / 60, s.first_loss,
                s.last_loss, a->opt.out.c_str());
  });
}

}  // namespace mmn::cli
