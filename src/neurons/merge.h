// Combining find runs of the same settings (e.g. the shards of one dataset)
// into one run directory, after checking they are compatible. The library
// side of `mmneuron merge`, so the checks can be tested and fuzzed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mmn {

struct MergeSummary {
  int64_t new_images = 0;  // image folders copied into `out`
  size_t images = 0;       // distinct images over all the runs
  // Shards "i/N" of a sharded run that none of the runs is ("2/4", …).
  std::vector<std::string> missing_shards;
};

// Every run's run.json must be a JSON object whose model, options and version
// equal the first run's; an image present in several runs (or already in
// `out`) must have byte-identical result.json files. Errors are one line
// naming the file. A run given twice (by any path), two runs that are the
// same shard, shards of different splits, or `out` among the runs are refused;
// shards that no run is are listed in the summary and in run.json
// ("missing_shards").
MergeSummary merge_runs(const std::vector<std::string>& runs, const std::string& out);

}  // namespace mmn
