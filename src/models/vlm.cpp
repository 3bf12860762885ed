#include "models/vlm.h"

#include <filesystem>

#include "models/instructblip.h"
#include "models/llava.h"
#include "models/mplug_owl2.h"
#include "util/error.h"

namespace mmn {

void Trace::add(std::string name, std::vector<int64_t> shape, std::vector<float> data) {
  Array a;
  a.name = std::move(name);
  a.shape = std::move(shape);
  a.data = std::move(data);
  arrays.push_back(std::move(a));
}

void Trace::add_ints(std::string name, std::vector<int64_t> shape, std::vector<int64_t> data) {
  Array a;
  a.name = std::move(name);
  a.shape = std::move(shape);
  a.is_int = true;
  a.ints = std::move(data);
  arrays.push_back(std::move(a));
}

const Trace::Array* Trace::find(const std::string& name) const {
  for (auto& a : arrays)
    if (a.name == name) return &a;
  return nullptr;
}

PreprocessedImage VisionLanguageModel::preprocess(const ImageU8& img) const {
  PreprocessedImage px = preprocess_image(img, image_processor_);
  if (px.height != input_size_ || px.width != input_size_)
    fail(dir_, "/preprocessor_config.json: produces ", px.height, "x", px.width, " pixels but the vision tower expects ",
         input_size_, "x", input_size_);
  return px;
}

void VisionLanguageModel::load_eos(int32_t fallback) {
  namespace fs = std::filesystem;
  eos_ids_.clear();
  fs::path gen = fs::path(dir_) / "generation_config.json";
  if (fs::exists(gen)) {
    JsonFile g = JsonFile::load(gen.string());
    if (g.has("eos_token_id")) {
      const auto& v = g.json()["eos_token_id"];
      if (v.is_number_integer()) {
        eos_ids_.push_back(v.get<int32_t>());
      } else if (v.is_array()) {
        for (auto& e : v) {
          if (!e.is_number_integer()) g.fail_key("eos_token_id", "must be an integer or a list of integers");
          eos_ids_.push_back(e.get<int32_t>());
        }
      } else {
        g.fail_key("eos_token_id", "must be an integer or a list of integers");
      }
    }
  }
  if (eos_ids_.empty()) eos_ids_.push_back(fallback);
}

std::unique_ptr<VisionLanguageModel> load_model(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail(dir, ": model directory not found");
  JsonFile config = JsonFile::load((fs::path(dir) / "config.json").string());
  const std::string type = config.get_string("model_type");
  std::string arch;
  if (config.json().contains("architectures") && config.json()["architectures"].is_array() &&
      !config.json()["architectures"].empty() && config.json()["architectures"][0].is_string())
    arch = config.json()["architectures"][0].get<std::string>();
  if (type == "llava") return LlavaModel::load(dir, config);
  if (type == "instructblip" || arch == "InstructBlipForConditionalGeneration")
    return InstructBlipModel::load(dir, config);
  if (type == "mplug_owl2" || arch == "MPLUGOwl2LlamaForCausalLM") return MplugOwl2Model::load(dir, config);
  config.fail_key("model_type", "is '" + type + "'; supported: llava, instructblip, mplug_owl2");
}

}  // namespace mmn
