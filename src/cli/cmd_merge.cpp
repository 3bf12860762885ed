// mmneuron merge: combine runs of the same settings (e.g. the shards of one
// dataset) into one run directory; the checks live in neurons/merge.h.
#include <cstdio>

#include "cli/commands.h"
#include "io/output_dir.h"
#include "neurons/merge.h"
#include "util/error.h"
#include "util/progress.h"

namespace mmn::cli {

void register_merge(CLI::App& app) {
  auto runs = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>();
  auto force = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("merge", "Check and combine find runs (e.g. dataset shards) into one");
  cmd->add_option("runs", *runs, "Run directories")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--out", *out, "Merged run directory")->required();
  cmd->add_flag("--force", *force, "Merge into a non-empty --out that holds no run");
  cmd->callback([runs, out, force] {
    check_output_dir(*out, *force, "find run", "run.json");
    const MergeSummary s = merge_runs(*runs, *out);
    if (!s.missing_shards.empty()) {
      std::string list;
      for (auto& m : s.missing_shards) list += (list.empty() ? "" : ", ") + m;
      log_warning("merge: no run is shard " + list + "; the merged run lacks their images");
    }
    if (s.images == 0) fail_nothing_done("merge: the runs hold no finished image: nothing merged into ", *out);
    std::printf("merged %zu runs: %lld new images, %zu in all, into %s\n", runs->size(),
                static_cast<long long>(s.new_images), s.images, out->c_str());
  });
}

}  // namespace mmn::cli
