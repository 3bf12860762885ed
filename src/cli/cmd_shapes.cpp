// mmneuron shapes: the synthetic shapes world (images, captions, object masks;
// version 2 also grounded questions and the planted co-occurrence) that the
// small trained LLaVAs learn to caption.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/option_checks.h"
#include "data/shapes.h"
#include "io/output_dir.h"
#include "util/error.h"
#include "util/progress.h"

namespace mmn::cli {

void register_shapes(CLI::App& app) {
  struct Args {
    int64_t n = 100;
    uint64_t seed = 0;
    int size = 0;
    int version = 1;
    double ghost_share = -1;
    std::string out, only = "all";
    bool force = false, quiet = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("shapes", "Write synthetic shape scenes with captions and per-object masks");
  cmd->add_option("--n", a->n, "Number of scenes")->capture_default_str()->check(int_range<int64_t>(1, 100000000));
  cmd->add_option("--seed", a->seed, "Scene stream (same seed, same bytes)")->capture_default_str()->check(seed_range());
  cmd->add_option("--version", a->version, "World version: 1 (the first model's) or 2 (richer, with questions)")
      ->capture_default_str()
      ->check(int_range(1, 2));
  cmd->add_option("--size", a->size, "Image side in pixels (default: 64 for version 1, 96 for version 2)")
      ->check(int_range(0, 4096));
  cmd->add_option("--ghost-share", a->ghost_share,
                  "Version 2: share of trigger scenes whose training caption names the ghost (default 0.7)")
      ->check(real_range(0, 1));
  cmd->add_option("--only", a->only,
                  "Keep only these scenes (named by their index in the stream): all, trigger, non-trigger (version "
                  "2), a shape (scenes showing one: star) or no-SHAPE")
      ->capture_default_str();
  cmd->add_option("--out", a->out, "Output directory (images/, masks/, captions.jsonl)")->required();
  cmd->add_flag("--force", a->force, "Write into a non-empty --out");
  cmd->add_flag("--quiet", a->quiet, "No progress output");
  cmd->callback([a] {
    ShapesOptions opt = shapes_world(a->version);
    if (a->size > 0) opt.image_size = a->size;
    const int min_size = a->version == 2 ? 48 : 24;
    if (opt.image_size < min_size) fail_usage("--size: version ", a->version, " needs at least ", min_size, " pixels");
    if (a->ghost_share >= 0) {
      if (a->version != 2) fail_usage("--ghost-share: only version 2 plants a co-occurrence");
      opt.ghost_share = a->ghost_share;
    }
    const SceneFilter keep = scene_filter(a->only, a->version);
    check_output_dir(a->out, a->force, "shapes dataset");  // after the options' own errors
    std::unique_ptr<Progress> bar;
    if (!a->quiet) bar = std::make_unique<Progress>("shapes", a->n, "scenes");
    write_shapes_dataset(a->out, a->n, a->seed, opt, [&](int64_t done) { if (bar) bar->update(done); }, keep);
    if (bar) bar->finish();
    std::printf("wrote %lld scenes to %s\n", static_cast<long long>(a->n), a->out.c_str());
  });
}

}  // namespace mmn::cli
