#include "models/llava.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "io/hf_cache.h"
#include "util/error.h"

namespace mmn {

LlavaConfig LlavaConfig::from_json(const JsonFile& config) {
  LlavaConfig c;
  c.vision = VitConfig::from_json(config.sub("vision_config"), clip_vision_defaults());
  const JsonFile text = config.sub("text_config");
  c.text = LlamaConfig::from_json(text);
  if (!text.has("vocab_size") && config.has("vocab_size")) c.text.vocab = config.get_int("vocab_size");
  // transformers reads tie_word_embeddings from the top-level LlavaConfig.
  if (!text.has("tie_word_embeddings")) c.text.tie_word_embeddings = config.get_bool("tie_word_embeddings", false);
  const int64_t layer = config.get_int("vision_feature_layer", -2);
  c.feature_state = static_cast<int>(layer < 0 ? c.vision.layers + 1 + layer : layer);
  if (c.feature_state < 0 || c.feature_state > c.vision.layers)
    config.fail_key("vision_feature_layer", "is outside the vision tower's " + std::to_string(c.vision.layers) + " layers");
  const std::string strategy = config.get_string("vision_feature_select_strategy", "default");
  if (strategy != "default" && strategy != "full")
    config.fail_key("vision_feature_select_strategy", "must be \"default\" or \"full\"");
  c.keep_cls = strategy == "full";
  c.projector_act = parse_activation(config.get_string("projector_hidden_act", "gelu"), config.path());
  c.image_token_id = static_cast<int32_t>(config.get_int("image_token_index", 32000));
  return c;
}

bool is_original_llava_config(const JsonFile& config) {
  const auto& j = config.json();
  const bool arch = j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
                    j["architectures"][0] == "LlavaLlamaForCausalLM";
  return arch || (config.has("mm_vision_tower") && !config.has("text_config"));
}

LlavaConfig LlavaConfig::from_original_json(const JsonFile& config, const JsonFile& tower_config) {
  LlavaConfig c;
  c.original_layout = true;
  c.vision = VitConfig::from_json(tower_config.has("vision_config") ? tower_config.sub("vision_config") : tower_config,
                                  clip_vision_defaults());
  c.text = LlamaConfig::from_json(config);  // transformers 4.31 has no rope_theta: base 10000 (the default)
  const int64_t layer = config.get_int("mm_vision_select_layer", -1);
  c.feature_state = static_cast<int>(layer < 0 ? c.vision.layers + 1 + layer : layer);
  if (c.feature_state < 0 || c.feature_state > c.vision.layers)
    config.fail_key("mm_vision_select_layer", "is outside the vision tower's " + std::to_string(c.vision.layers) + " layers");
  const std::string feature = config.get_string("mm_vision_select_feature", "patch");
  if (feature != "patch" && feature != "cls_patch") config.fail_key("mm_vision_select_feature", "must be \"patch\" or \"cls_patch\"");
  c.keep_cls = feature == "cls_patch";
  if (config.get_bool("mm_use_im_start_end", false))
    config.fail_key("mm_use_im_start_end", "is true; image start/end tokens are not supported");
  // The original loader adds a randomly initialised <im_patch> token unless this is false.
  if (!config.has("mm_use_im_patch_token") || config.get_bool("mm_use_im_patch_token"))
    config.fail_key("mm_use_im_patch_token", "must be false (otherwise the original code adds a random <im_patch> token)");
  const std::string proj = config.get_string("mm_projector_type", "linear");
  if (proj != "linear") config.fail_key("mm_projector_type", "is '" + proj + "'; only the linear projector of LLaVA v1 is supported");
  if (config.has("mm_hidden_size") && config.get_int("mm_hidden_size") != c.vision.hidden)
    config.fail_key("mm_hidden_size", "differs from the vision tower's hidden_size " + std::to_string(c.vision.hidden));
  c.image_token_id = -200;  // IMAGE_TOKEN_INDEX of the original code
  return c;
}

std::string resolve_vision_tower(const std::string& checkpoint_dir, const std::string& value, const std::string& given) {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto ok = [&](const fs::path& p) { return fs::is_directory(p, ec) && fs::exists(p / "config.json", ec); };
  if (!given.empty()) {
    if (!ok(given)) fail(given, ": --vision-tower is not a checkpoint directory (no config.json)");
    return given;
  }
  std::vector<fs::path> tried;
  if (fs::path(value).is_absolute()) tried.push_back(value);
  tried.push_back(fs::path(checkpoint_dir) / value);
  tried.push_back(fs::path(checkpoint_dir).parent_path() / value);
  if (const size_t slash = value.find('/'); slash != std::string::npos && value.find('/', slash + 1) == std::string::npos)
    tried.push_back(fs::path(checkpoint_dir).parent_path() / value.substr(slash + 1));
  for (auto& p : tried)
    if (ok(p)) return p.string();
  // A hub id (the real checkpoints say openai/clip-vit-large-patch14): the local Hugging Face cache, offline.
  std::string cache_problem;
  if (looks_like_repo_id(value)) {
    try {
      return resolve_hf_repo(value);
    } catch (const Error& e) {
      cache_problem = std::string("; ") + e.what();
    }
  }
  fail(checkpoint_dir, "/config.json: vision tower '", value, "' not found (looked beside the checkpoint", cache_problem,
       "); pass --vision-tower DIR");
}

const LlavaNames kLlavaHfNames = {"vision_tower.vision_model.", "multi_modal_projector.linear_1",
                                  "multi_modal_projector.linear_2", &kLlavaHfLlamaNames};
const LlavaNames kLlavaOriginalNames = {"vision_model.", "model.mm_projector", nullptr, &kLlamaTopLlamaNames};

LlavaModel::LlavaModel(const LlavaConfig& cfg, bool tie_lm_head)
    : cfg_(cfg),
      names_(cfg.original_layout ? &kLlavaOriginalNames : &kLlavaHfNames),
      vision_(cfg.vision, kClipVitNames) {
  decoder_ = std::make_unique<LlamaDecoder>(cfg.text, *names_->llama, tie_lm_head);
  input_size_ = cfg.vision.image_size;
  grid_ = cfg.keep_cls ? 0 : cfg.vision.grid();
}

void LlavaModel::walk(LayoutWalk& checkpoint, LayoutWalk& tower) {
  const int64_t Dv = cfg_.vision.hidden, D = cfg_.text.hidden;
  vision_.walk(tower, names_->tower_prefix);
  walk_linear(checkpoint, names_->projector1, proj1_, {D, Dv, true});
  if (names_->projector2) walk_linear(checkpoint, names_->projector2, proj2_, {D, D, true});
  decoder_->walk(checkpoint);
}

std::unique_ptr<LlavaModel> LlavaModel::load(const std::string& dir, const JsonFile& config, const LoadOptions& opt) {
  namespace fs = std::filesystem;
  const bool original = is_original_llava_config(config);
  std::string tower_dir;
  LlavaConfig cfg;
  if (original) {
    tower_dir = resolve_vision_tower(dir, config.get_string("mm_vision_tower"), opt.vision_tower);
    cfg = LlavaConfig::from_original_json(config, JsonFile::load((fs::path(tower_dir) / "config.json").string()));
  } else {
    cfg = LlavaConfig::from_json(config);
  }
  const ImageProcessorConfig proc =
      load_image_processor_config((fs::path(original ? tower_dir : dir) / "preprocessor_config.json").string());
  SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(dir);
  const bool tie = cfg.text.tie_word_embeddings && !ck.has((original ? kLlavaOriginalNames : kLlavaHfNames).llama->lm_head);
  auto m = std::make_unique<LlavaModel>(cfg, tie);
  m->dir_ = dir;
  m->image_processor_ = proc;
  m->ck_ = std::move(ck);
  LoadWalk main(m->ck_);
  if (original) {
    m->tower_ck_ = SafetensorsCheckpoint::open(tower_dir);
    m->vision_tower_dir_ = tower_dir;
    LoadWalk tower(m->tower_ck_);
    m->walk(main, tower);
  } else {
    m->walk(main, main);
  }
  m->load_tokenizer(dir);
  m->load_eos(m->tokenizer_->eos_id());
  return m;
}

std::string LlavaModel::prompt(const PromptText& p) const {
  if (cfg_.original_layout)  // llava_llama_2 (v1.0.2): no space between [/INST] and the prefix
    return "[INST] <<SYS>>\nYou are a helpful language and vision assistant. You are able to understand the visual "
           "content that the user provides, and assist the user with a variety of tasks using natural language.\n"
           "<</SYS>>\n\n<image>\n" +
           p.query + " [/INST]" + p.prefix;
  return "USER: <image>\n" + p.query + " ASSISTANT: " + p.prefix;
}

std::vector<float> LlavaModel::encode_image(const PreprocessedImage& px, Trace* trace) const {
  const VitConfig& vc = vision_.config();
  const int64_t Dv = vc.hidden, P = vc.patches(), D = decoder_->config().hidden;
  std::vector<float> all;
  std::vector<float> state = vision_.forward(px.pixel_values.data(), cfg_.feature_state, trace ? &all : nullptr);
  const int64_t n = cfg_.image_tokens();
  std::vector<float> selected(state.begin() + (cfg_.keep_cls ? 0 : Dv), state.end());
  std::vector<float> mid(n * D), out(n * D);
  if (cfg_.original_layout) {
    proj1_(selected.data(), n, out.data());
  } else {
    proj1_(selected.data(), n, mid.data());
    apply_activation(cfg_.projector_act, mid.data(), n * D);
    proj2_(mid.data(), n, out.data());
  }
  if (trace) {
    trace->add("pixel_values", {1, 3, px.height, px.width}, px.pixel_values);
    trace->add("vision_hidden_states", {vc.layers + 1, P + 1, Dv}, std::move(all));
    trace->add("vision_selected_features", {n, Dv}, std::move(selected));
    trace->add("image_features", {n, D}, out);
  }
  return out;
}

PromptInputs LlavaModel::build_inputs(const PromptText& p, const std::vector<float>& feats, Trace* trace) const {
  // The original code tokenizes each chunk around <image> on its own (tokenizer_image_token).
  std::vector<int32_t> ids = cfg_.original_layout ? tokenizer_->encode_image_chunks(prompt(p), "<image>", cfg_.image_token_id)
                                                  : tokenizer_->encode(prompt(p));
  PromptInputs in = splice_image(*decoder_, std::move(ids), cfg_.image_token_id, feats, cfg_.image_tokens(), dir_);
  if (trace) trace->add("llm_inputs_embeds_prefill", {in.seq_len, decoder_->config().hidden}, in.embeds);
  return in;
}

}  // namespace mmn
