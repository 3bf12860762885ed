#include "models/llava.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "io/hf_cache.h"
#include "util/error.h"

namespace mmn {

LlavaConfig LlavaConfig::from_json(const JsonFile& config) {
  LlavaConfig c;
  c.vision = ClipVisionConfig::from_json(config.sub("vision_config"));
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
  c.vision = ClipVisionConfig::from_json(tower_config.has("vision_config") ? tower_config.sub("vision_config") : tower_config);
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

std::unique_ptr<LlavaModel> LlavaModel::load(const std::string& dir, const JsonFile& config, const LoadOptions& opt) {
  namespace fs = std::filesystem;
  auto m = std::make_unique<LlavaModel>();
  m->dir_ = dir;
  const bool original = is_original_llava_config(config);
  std::string tower_dir;
  if (original) {
    tower_dir = resolve_vision_tower(dir, config.get_string("mm_vision_tower"), opt.vision_tower);
    m->cfg_ = LlavaConfig::from_original_json(config, JsonFile::load((fs::path(tower_dir) / "config.json").string()));
  } else {
    m->cfg_ = LlavaConfig::from_json(config);
  }
  const ClipVisionConfig& vcfg = m->cfg_.vision;
  const LlamaConfig& tcfg = m->cfg_.text;

  m->image_processor_ = load_image_processor_config((fs::path(original ? tower_dir : dir) / "preprocessor_config.json").string());
  m->ck_ = SafetensorsCheckpoint::open(dir);
  if (original) {
    m->tower_ck_ = SafetensorsCheckpoint::open(tower_dir);
    m->vision_ = ClipVisionTower::load(m->tower_ck_, vcfg, "vision_model.");
  } else {
    m->vision_ = ClipVisionTower::load(m->ck_, vcfg, "vision_tower.vision_model.");
  }
  m->input_size_ = vcfg.image_size;
  const int64_t P = vcfg.patches();
  m->grid_ = m->cfg_.keep_cls ? 0 : static_cast<int>(std::lround(std::sqrt(static_cast<double>(P))));
  if (original) {
    m->proj1_ = LinearW::load(m->ck_, "model.mm_projector", tcfg.hidden, vcfg.hidden, true);
    m->decoder_ = LlamaDecoder::load(m->ck_, tcfg, "model.", "lm_head.weight");
  } else {
    m->proj1_ = LinearW::load(m->ck_, "multi_modal_projector.linear_1", tcfg.hidden, vcfg.hidden, true);
    m->proj2_ = LinearW::load(m->ck_, "multi_modal_projector.linear_2", tcfg.hidden, tcfg.hidden, true);
    m->decoder_ = LlamaDecoder::load(m->ck_, tcfg, "language_model.model.", "language_model.lm_head.weight");
  }
  m->tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::load(dir));
  if (m->tokenizer_->vocab_size() > tcfg.vocab)
    fail(dir, ": tokenizer has ", m->tokenizer_->vocab_size(), " tokens but the model's vocabulary is ", tcfg.vocab);
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
  const ClipVisionConfig& vc = vision_->config();
  const int64_t Dv = vc.hidden, P = vc.patches(), D = decoder_->config().hidden;
  std::vector<float> all;
  std::vector<float> state = vision_->forward(px.pixel_values.data(), cfg_.feature_state, trace ? &all : nullptr);
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
