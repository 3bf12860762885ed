#include "cli/edit_args.h"

#include "io/dataset.h"
#include "models/value_edit.h"
#include "util/error.h"

namespace mmn::cli {

std::unique_ptr<NeuronIntervention> load_edits(const VisionLanguageModel& model, const std::vector<std::string>& edits) {
  if (edits.empty()) return nullptr;
  const LlamaConfig& c = model.decoder().config();
  auto iv = std::make_unique<NeuronIntervention>(c.n_layers, c.hidden, c.intermediate);
  for (auto& dir : edits) {
    ValueEdit e = load_value_edit(dir);
    check_edit_matches_model(e, model, dir);
    add_edit_to_intervention(e, *iv);
  }
  return iv;
}

std::vector<std::string> image_paths(const std::vector<std::string>& images, const std::string& images_dir,
                                     const std::string& dataset, const std::string& images_root, const char* what) {
  const int given = !images.empty() + !images_dir.empty() + !dataset.empty();
  if (given != 1) fail_usage(what, ": give exactly one of --image F…, --images DIR, --dataset FILE");
  if (!images.empty()) return images;
  std::vector<std::string> out;
  for (auto& it : images_dir.empty() ? load_dataset(dataset, images_root) : list_image_dir(images_dir))
    out.push_back(it.image_path);
  if (out.empty()) fail(images_dir.empty() ? dataset : images_dir, ": no images");
  return out;
}

}  // namespace mmn::cli
