#include "models/llava.h"

#include <cmath>
#include <cstring>
#include <filesystem>

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

std::unique_ptr<LlavaModel> LlavaModel::load(const std::string& dir, const JsonFile& config) {
  namespace fs = std::filesystem;
  auto m = std::make_unique<LlavaModel>();
  m->dir_ = dir;
  m->cfg_ = LlavaConfig::from_json(config);
  const ClipVisionConfig& vcfg = m->cfg_.vision;
  const LlamaConfig& tcfg = m->cfg_.text;

  m->image_processor_ = load_image_processor_config((fs::path(dir) / "preprocessor_config.json").string());
  m->ck_ = SafetensorsCheckpoint::open(dir);
  m->vision_ = ClipVisionTower::load(m->ck_, vcfg, "vision_tower.vision_model.");
  m->input_size_ = vcfg.image_size;
  const int64_t P = vcfg.patches();
  m->grid_ = m->cfg_.keep_cls ? 0 : static_cast<int>(std::lround(std::sqrt(static_cast<double>(P))));
  m->proj1_ = LinearW::load(m->ck_, "multi_modal_projector.linear_1", tcfg.hidden, vcfg.hidden, true);
  m->proj2_ = LinearW::load(m->ck_, "multi_modal_projector.linear_2", tcfg.hidden, tcfg.hidden, true);
  m->decoder_ = LlamaDecoder::load(m->ck_, tcfg, "language_model.model.", "language_model.lm_head.weight");
  m->tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::load(dir));
  if (m->tokenizer_->vocab_size() > tcfg.vocab)
    fail(dir, ": tokenizer has ", m->tokenizer_->vocab_size(), " tokens but the model's vocabulary is ", tcfg.vocab);
  m->load_eos(m->tokenizer_->eos_id());
  return m;
}

std::string LlavaModel::prompt(const PromptText& p) const {
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
  proj1_(selected.data(), n, mid.data());
  apply_activation(cfg_.projector_act, mid.data(), n * D);
  proj2_(mid.data(), n, out.data());
  if (trace) {
    trace->add("pixel_values", {1, 3, px.height, px.width}, px.pixel_values);
    trace->add("vision_hidden_states", {vc.layers + 1, P + 1, Dv}, std::move(all));
    trace->add("vision_selected_features", {n, Dv}, std::move(selected));
    trace->add("image_features", {n, D}, out);
  }
  return out;
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

PromptInputs LlavaModel::build_inputs(const PromptText& p, const std::vector<float>& feats, Trace* trace) const {
  PromptInputs in = splice_image(*decoder_, tokenizer_->encode(prompt(p)), cfg_.image_token_id, feats, cfg_.image_tokens(), dir_);
  if (trace) trace->add("llm_inputs_embeds_prefill", {in.seq_len, decoder_->config().hidden}, in.embeds);
  return in;
}

}  // namespace mmn
