#include "models/vlm.h"

#include <cstdio>
#include <cstring>
#include <filesystem>

#include "io/atomic_file.h"
#include "models/instructblip.h"
#include "models/llava.h"
#include "models/mplug_owl2.h"
#include "util/error.h"
#include "util/hash.h"

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

void permute_image_tokens(PromptInputs& in, const std::vector<int64_t>& perm) {
  const int64_t P = in.image_tokens, D = in.seq_len ? static_cast<int64_t>(in.embeds.size()) / in.seq_len : 0;
  std::vector<uint8_t> seen(static_cast<size_t>(P), 0);
  if (static_cast<int64_t>(perm.size()) != P) fail("image-token permutation has ", perm.size(), " entries, expected ", P);
  for (int64_t v : perm) {
    if (v < 0 || v >= P || seen[v]) fail("image-token permutation is not a permutation of 0..", P - 1);
    seen[v] = 1;
  }
  std::vector<float> orig(in.embeds.begin() + in.image_pos0 * D, in.embeds.begin() + (in.image_pos0 + P) * D);
  for (int64_t p = 0; p < P; ++p)
    std::copy(orig.begin() + perm[p] * D, orig.begin() + (perm[p] + 1) * D, in.embeds.begin() + (in.image_pos0 + p) * D);
}

PromptInputs splice_image(const LlamaDecoder& dec, std::vector<int32_t> ids, int32_t placeholder,
                          const std::vector<float>& feats, int64_t n_image, const std::string& what) {
  const int64_t D = dec.config().hidden;
  int64_t at = -1;
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] == placeholder) {
      if (at >= 0) fail(what, ": the prompt contains more than one image placeholder");
      at = static_cast<int64_t>(i);
    }
  if (at < 0) fail(what, ": the prompt has no image placeholder (token ", placeholder, ")");
  if (static_cast<int64_t>(feats.size()) != n_image * D) fail("internal: image features have the wrong size");
  PromptInputs in;
  in.prompt_ids = std::move(ids);
  const int64_t n_text = static_cast<int64_t>(in.prompt_ids.size()) - 1;
  in.seq_len = n_text + n_image;
  in.image_pos0 = at;
  in.image_tokens = n_image;
  in.embeds.resize(in.seq_len * D);
  in.visual.assign(in.seq_len, 0);
  in.merged_ids.reserve(in.seq_len);
  for (int64_t i = 0; i < at; ++i) in.merged_ids.push_back(in.prompt_ids[i]);
  for (int64_t i = 0; i < n_image; ++i) in.merged_ids.push_back(placeholder);
  for (size_t i = at + 1; i < in.prompt_ids.size(); ++i) in.merged_ids.push_back(in.prompt_ids[i]);
  dec.embed(in.prompt_ids.data(), at, in.embeds.data());
  std::memcpy(in.embeds.data() + at * D, feats.data(), feats.size() * sizeof(float));
  dec.embed(in.prompt_ids.data() + at + 1, n_text - at, in.embeds.data() + (at + n_image) * D);
  for (int64_t i = 0; i < n_image; ++i) in.visual[at + i] = 1;
  return in;
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
      auto id = [&](const nlohmann::json& x) {
        const std::optional<int64_t> i = json_int(x, 0, kMaxVocabulary - 1);
        if (!i) g.fail_key("eos_token_id", "must be a token id or a list of token ids (below 2^24)");
        return static_cast<int32_t>(*i);
      };
      if (v.is_array()) {
        for (auto& e : v) eos_ids_.push_back(id(e));
      } else {
        eos_ids_.push_back(id(v));
      }
    }
  }
  if (eos_ids_.empty()) eos_ids_.push_back(fallback);
}

std::string model_fingerprint(const VisionLanguageModel& model) {
  namespace fs = std::filesystem;
  uint64_t h = kFnvOffsetBasis;
  auto feed = [&](const uint8_t* p, size_t n) { h = fnv1a(p, n, h); };
  const std::string cfg = read_file((fs::path(model.dir()) / "config.json").string());
  feed(reinterpret_cast<const uint8_t*>(cfg.data()), cfg.size());
  const LlamaDecoder& dec = model.decoder();
  auto row = [&](const Weight& w, int64_t r) { feed(w.row_ptr(r), static_cast<size_t>(w.cols) * w.elem_size()); };
  row(dec.lm_head(), 0);
  row(dec.lm_head(), dec.lm_head().rows - 1);
  row(dec.embed_tokens(), 0);
  row(dec.embed_tokens(), dec.embed_tokens().rows - 1);
  for (int l = 0; l < dec.config().n_layers; ++l) row(dec.layer(l).down.w, 0);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

void VisionLanguageModel::load_tokenizer(const std::string& dir) {
  tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::load(dir));
  const int64_t vocab = decoder_->config().vocab;
  if (tokenizer_->vocab_size() > vocab)
    fail(dir, ": tokenizer has ", tokenizer_->vocab_size(), " tokens but the model's vocabulary is ", vocab);
}

namespace {

enum class Family { Llava, InstructBlip, MplugOwl2 };

Family family_of(const JsonFile& config) {
  const std::string type = config.get_string("model_type");
  std::string arch;
  if (config.json().contains("architectures") && config.json()["architectures"].is_array() &&
      !config.json()["architectures"].empty() && config.json()["architectures"][0].is_string())
    arch = config.json()["architectures"][0].get<std::string>();
  if (type == "llava" || is_original_llava_config(config)) return Family::Llava;
  if (type == "instructblip" || arch == "InstructBlipForConditionalGeneration") return Family::InstructBlip;
  if (type == "mplug_owl2" || arch == "MPLUGOwl2LlamaForCausalLM") return Family::MplugOwl2;
  config.fail_key("model_type", "is '" + type + "'; supported: llava, instructblip, mplug_owl2");
}

}  // namespace

std::unique_ptr<VisionLanguageModel> load_model(const std::string& dir, const LoadOptions& opt) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail(dir, ": model directory not found");
  JsonFile config = JsonFile::load((fs::path(dir) / "config.json").string());
  switch (family_of(config)) {
    case Family::Llava: return LlavaModel::load(dir, config, opt);
    case Family::InstructBlip: return InstructBlipModel::load(dir, config);
    case Family::MplugOwl2: return MplugOwl2Model::load(dir, config);
  }
  fail("internal: unknown family");
}

CheckpointLayout describe_checkpoint(const JsonFile& config, const JsonFile* tower_config) {
  CheckpointLayout out;
  ListWalk main, tower;
  switch (family_of(config)) {
    case Family::Llava: {
      const bool original = is_original_llava_config(config);
      if (original && !tower_config) fail(config.path(), ": the original LLaVA layout needs its vision tower's config");
      const LlavaConfig cfg = original ? LlavaConfig::from_original_json(config, *tower_config)
                                       : LlavaConfig::from_json(config);
      LlavaModel m(cfg, /*tie_lm_head=*/cfg.text.tie_word_embeddings);
      m.walk(main, original ? tower : main);
      break;
    }
    case Family::InstructBlip: {
      InstructBlipModel m(config, config.sub("text_config").get_bool("tie_word_embeddings", false));
      m.walk(main);
      break;
    }
    case Family::MplugOwl2: {
      MplugOwl2Model m(config, config.get_bool("tie_word_embeddings", false));
      m.walk(main);
      break;
    }
  }
  out.tensors = std::move(main.tensors);
  out.tower_tensors = std::move(tower.tensors);
  return out;
}

}  // namespace mmn
