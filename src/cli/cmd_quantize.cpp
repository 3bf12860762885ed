// mmneuron quantize: an int8 (q8_0-block32) copy of a checkpoint, loaded
// like any other with --model (models/quantize.h has the format).
#include <cstdio>

#include "cli/commands.h"
#include "cli/default_model.h"
#include "kernels/threading.h"
#include "models/quantize.h"
#include "util/error.h"
#include "util/progress.h"

namespace mmn::cli {

void register_quantize(CLI::App& app) {
  struct Args {
    std::string model, vision_tower, out;
    bool force = false, quiet = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "quantize", "Write an int8 copy of a checkpoint (q8_0: one F16 scale per 32 input features; docs/files.md)");
  cmd->add_option("--model", a->model, "Checkpoint to quantize (a safetensors directory; only read)")->required();
  cmd->add_option("--vision-tower", a->vision_tower, "Vision tower directory of an original-layout LLaVA checkpoint");
  cmd->add_option("--out", a->out, "Output directory (the quantized checkpoint)")->required();
  cmd->add_flag("--force", a->force, "Replace a non-empty --out");
  cmd->add_flag("--quiet", a->quiet, "No progress lines");
  cmd->callback([a] {
    init_threads();
    const std::unique_ptr<VisionLanguageModel> model = load_cli_model(a->model, a->vision_tower);
    QuantizeOptions opt;
    opt.out = a->out;
    opt.force = a->force;
    std::unique_ptr<ByteProgress> bar;
    if (!a->quiet)
      opt.progress = [&](uint64_t done, uint64_t total) {
        if (!bar) bar = std::make_unique<ByteProgress>("quantize", total);
        bar->update(done);
      };
    const QuantizeSummary s = quantize_checkpoint(*model, opt);
    if (bar) bar->finish();
    if (!a->quiet)
      std::printf("wrote %s (%s, %lld linear weights int8, %lld tensors kept; %.1f MiB -> %.1f MiB)\n", a->out.c_str(),
                  kQ8Type, static_cast<long long>(s.quantized), static_cast<long long>(s.kept), s.bytes_in / 1048576.0,
                  s.bytes_out / 1048576.0);
  });
}

}  // namespace mmn::cli
