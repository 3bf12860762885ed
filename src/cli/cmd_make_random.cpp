// mmneuron make-random: a random-weight checkpoint with the real shapes and the
// real layout (safetensors, or torch.save .bin shards), streamed to disk
// (bounded memory).
#include <cstdio>

#include "cli/commands.h"
#include "cli/option_checks.h"
#include "io/output_dir.h"
#include "kernels/threading.h"
#include "models/random_checkpoint.h"
#include "util/error.h"
#include "util/progress.h"

namespace mmn::cli {

void register_make_random(CLI::App& app) {
  struct Args {
    RandomCheckpointOptions opt;
    std::string dtype = "bf16";
    bool force = false, quiet = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("make-random", "Write a random-weight checkpoint with real shapes and layout");
  std::string presets;
  for (auto& p : random_presets()) presets += (presets.empty() ? "" : ", ") + p;
  cmd->add_option("--preset", a->opt.preset, "Architecture preset: " + presets)->required();
  cmd->add_option("--dtype", a->dtype, "Stored dtype")->check(CLI::IsMember({"f32", "f16", "bf16"}))->capture_default_str();
  cmd->add_option("--format", a->opt.format, "Weights as model.safetensors, or pickled torch.save shards (pytorch_model*.bin)")
      ->check(CLI::IsMember({"safetensors", "bin"}))
      ->capture_default_str();
  cmd->add_option("--out", a->opt.out, "Output directory")->required();
  cmd->add_option("--seed", a->opt.seed, "Random seed")->capture_default_str()->check(seed_range());
  cmd->add_flag("--force", a->force, "Write into a non-empty --out");
  cmd->add_flag("--quiet", a->quiet, "No progress output");
  cmd->add_option("--tokenizer-from", a->opt.tokenizer_from,
                  "Copy the tokenizer files from this checkpoint (default: train a small one)");
  cmd->callback([a] {
    init_threads();
    check_output_dir(a->opt.out, a->force, "checkpoint");
    a->opt.dtype = a->dtype == "f32" ? DType::F32 : a->dtype == "f16" ? DType::F16 : DType::BF16;
    std::unique_ptr<ByteProgress> bar;
    write_random_checkpoint(a->opt, [&](size_t done, size_t total) {
      if (a->quiet) return;
      if (!bar) bar = std::make_unique<ByteProgress>("make-random", total);
      bar->update(done);
    });
    if (bar) bar->finish();
    std::printf("wrote %s (%s, %s, %s)\n", a->opt.out.c_str(), a->opt.preset.c_str(), a->dtype.c_str(),
                a->opt.format.c_str());
  });
}

}  // namespace mmn::cli
