// mmneuron shapes: the synthetic shapes world (images, captions, object masks)
// that the small trained LLaVA learns to caption.
#include <cstdio>

#include "cli/commands.h"
#include "data/shapes.h"
#include "util/progress.h"

namespace mmn::cli {

void register_shapes(CLI::App& app) {
  struct Args {
    int64_t n = 100;
    uint64_t seed = 0;
    int size = 64;
    std::string out;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("shapes", "Write synthetic shape scenes with captions and per-object masks");
  cmd->add_option("--n", a->n, "Number of scenes")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", a->seed, "Scene stream (same seed, same bytes)")->capture_default_str();
  cmd->add_option("--size", a->size, "Image side in pixels")->capture_default_str()->check(CLI::Range(24, 4096));
  cmd->add_option("--out", a->out, "Output directory (images/, masks/, captions.jsonl)")->required();
  cmd->callback([a] {
    Progress bar("shapes", a->n, "scenes");
    ShapesOptions opt;
    opt.image_size = a->size;
    write_shapes_dataset(a->out, a->n, a->seed, opt, [&](int64_t done) { bar.update(done); });
    bar.finish();
    std::printf("wrote %lld scenes to %s\n", static_cast<long long>(a->n), a->out.c_str());
  });
}

}  // namespace mmn::cli
