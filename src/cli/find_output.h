// Output layout of find runs (method.md §7): RUN/run.json, RUN/<id>/result.json,
// RUN/<id>/neurons.npy and heatmaps. Shared by `find` and `merge`.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "io/dataset.h"
#include "neurons/find.h"

namespace mmn::cli {

struct RunInfo {
  nlohmann::json json;  // model, family, options, version
};

RunInfo make_run_info(const VisionLanguageModel& model, const FindOptions& opt, const std::string& model_dir);

// Writes RUN/run.json, or checks an existing one was made with the same model
// and options (a resumed run must not mix settings).
void check_or_write_run_json(const std::string& run_dir, const RunInfo& info, int shard_i, int shard_n);

void write_image_outputs(const std::string& dir, const DatasetItem& item, const VisionLanguageModel& model,
                         const FindOptions& opt, const ImageFindResult& r, Explainer& explainer);

}  // namespace mmn::cli
