#include "models/random_checkpoint.h"

#include <omp.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "io/atomic_file.h"
#include "io/json_file.h"
#include "io/tokenizer.h"
#include "io/torch_save.h"
#include "io/tokenizer_train.h"
#include "kernels/convert.h"
#include "kernels/threading.h"
#include "models/vlm.h"
#include "util/error.h"

namespace mmn {

namespace {

using nlohmann::json;

struct LlavaShape {
  int64_t v_hidden, v_inter, v_layers, v_heads, image, patch;
  int64_t t_hidden, t_inter, t_layers, t_heads, t_kv, vocab;
  double rms_eps, rope_theta;
  bool original = false;  // the original LLaVA v1.0.2 layout with a separate CLIP tower
};

LlavaShape llava_shape(const std::string& preset) {
  if (preset == "tiny") return {32, 64, 2, 4, 56, 14, 64, 160, 3, 4, 2, 32064, 1e-5, 10000.0};
  if (preset == "llava-1.5-7b") return {1024, 4096, 24, 16, 336, 14, 4096, 11008, 32, 32, 32, 32064, 1e-5, 10000.0};
  if (preset == "llava-1.5-13b") return {1024, 4096, 24, 16, 336, 14, 5120, 13824, 40, 40, 40, 32064, 1e-5, 10000.0};
  // liuhaotian/llava-llama-2-13b-chat-lightning-preview: LLaMA-2-13B-chat, CLIP ViT-L/14 at 224.
  if (preset == "tiny-llava-v1") return {32, 64, 2, 4, 56, 14, 64, 160, 3, 4, 4, 0, 1e-5, 10000.0, true};
  if (preset == "llava-v1-13b") return {1024, 4096, 24, 16, 224, 14, 5120, 13824, 40, 40, 40, 32000, 1e-5, 10000.0, true};
  std::string known;
  for (auto& p : random_presets()) known += (known.empty() ? "" : ", ") + p;
  fail("--preset: unknown preset '", preset, "' (known: ", known, ")");
}

json llava_config(const LlavaShape& s, DType dtype) {
  const char* td = dtype == DType::F32 ? "float32" : dtype == DType::F16 ? "float16" : "bfloat16";
  return {{"architectures", {"LlavaForConditionalGeneration"}},
          {"ignore_index", -100},
          {"image_token_index", 32000},
          {"model_type", "llava"},
          {"pad_token_id", 32001},
          {"projector_hidden_act", "gelu"},
          {"text_config",
           {{"architectures", {"LlamaForCausalLM"}}, {"hidden_act", "silu"}, {"hidden_size", s.t_hidden},
            {"intermediate_size", s.t_inter}, {"max_position_embeddings", 4096}, {"model_type", "llama"},
            {"num_attention_heads", s.t_heads}, {"num_hidden_layers", s.t_layers},
            {"num_key_value_heads", s.t_kv}, {"rms_norm_eps", s.rms_eps}, {"rope_theta", s.rope_theta},
            {"torch_dtype", td}, {"vocab_size", s.vocab}}},
          {"tie_word_embeddings", false},
          {"torch_dtype", td},
          {"vision_config",
           {{"hidden_act", "quick_gelu"}, {"hidden_size", s.v_hidden}, {"image_size", s.image},
            {"intermediate_size", s.v_inter}, {"layer_norm_eps", 1e-5}, {"model_type", "clip_vision_model"},
            {"num_attention_heads", s.v_heads}, {"num_hidden_layers", s.v_layers}, {"patch_size", s.patch},
            {"projection_dim", 768}}},
          {"vision_feature_layer", -2},
          {"vision_feature_select_strategy", "default"},
          {"vocab_size", s.vocab}};
}

// Counter-based generator: value i of tensor k depends only on (seed, k, i),
// so chunks can be generated in parallel and the output is reproducible.
inline uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Approximately normal: the sum of four uniforms (Irwin–Hall), rescaled.
inline float approx_normal(uint64_t h) {
  float s = 0.f;
  for (int j = 0; j < 4; ++j) s += static_cast<float>((h >> (16 * j)) & 0xffff) * (1.f / 65536.f);
  return (s - 2.f) * 1.7320508f;  // variance 4/12 → 1
}

const char* kTokenizerCorpus[] = {
    "USER: Describe the image in few words. ASSISTANT: An image of a cat sitting on a table.",
    "An image of a dog running on the beach with a red ball.",
    "An image of a man riding a horse in a field of green grass.",
    "An image of two people walking in the rain with umbrellas.",
    "An image of a big red circle on the left and a small blue triangle.",
    "A bowl of fruit with apples, bananas and oranges on a wooden kitchen table.",
    "A city street at night with cars, buses, traffic lights and tall buildings.",
    "A child playing with a frisbee in the park next to a tree and a bench.",
    "A plate of food with pizza, salad and a glass of water, 12 slices in 3 boxes.",
    "Snow covered mountains under a clear sky, a lake and a small wooden house.",
};

// How make-random initialises a tensor of the layout: around `center` with
// standard deviation `std` — unit-variance activations through linears
// (1/√fan_in), unit-scale token embeddings, small biases, learned tables and
// norm perturbations; RoPE buffers get their exact values.
struct Init {
  float center, std;
};

Init random_init(const TensorDesc& t) {
  switch (t.role) {
    case TensorRole::Weight: return {0.f, 1.f / std::sqrt(static_cast<float>(t.fan_in))};
    case TensorRole::Bias: return {0.f, 0.02f};
    case TensorRole::Norm: return {1.f, 0.02f};
    case TensorRole::NormBias: return {0.f, 0.02f};
    case TensorRole::Embedding: return {0.f, 1.f};
    case TensorRole::Learned: return {0.f, 0.02f};
    case TensorRole::Rotary: return {0.f, 0.f};
  }
  return {0.f, 0.f};
}

// Streams the tensors of `layout` into dir/model.safetensors or torch.save
// shards. Value i of tensor k depends only on (seed, stream, k, i).
void write_tensors(const RandomCheckpointOptions& opt, const std::string& dir, const std::vector<TensorDesc>& layout,
                   uint64_t stream, double rope_theta, const std::function<void(size_t, size_t)>& progress,
                   size_t& done, size_t total) {
  namespace fs = std::filesystem;
  std::vector<TensorSpec> specs;
  for (const TensorDesc& t : layout)
    specs.push_back({t.name, t.role == TensorRole::Rotary ? DType::F32 : opt.dtype, t.shape});
  const int64_t chunk = 1 << 20;
  std::vector<float> f32(chunk);
  std::vector<uint8_t> bytes(chunk * 4);
  auto fill = [&](const TensorSpec& spec, std::FILE* out) {
    size_t k = 0;
    while (layout[k].name != spec.name) ++k;
    const TensorDesc& t = layout[k];
    const Init in = random_init(t);
    const int64_t n = static_cast<int64_t>(spec.nbytes() / dtype_size(spec.dtype));
    const uint64_t base = mix(opt.seed ^ mix(stream + k + 1));
    for (int64_t c0 = 0; c0 < n; c0 += chunk) {
      const int64_t m = std::min(chunk, n - c0);
      if (t.role == TensorRole::Rotary) {
        for (int64_t i = 0; i < m; ++i)  // θ^(−2i/d), d = 2n
          f32[i] = static_cast<float>(std::pow(rope_theta, -static_cast<double>(c0 + i) / n));
      } else {
#pragma omp parallel for num_threads(num_threads())
        for (int64_t i = 0; i < m; ++i)
          f32[i] = in.center + in.std * approx_normal(mix(base + static_cast<uint64_t>(c0 + i)));
      }
      convert_from_f32(spec.dtype, f32.data(), bytes.data(), m);
      const size_t nb = static_cast<size_t>(m) * dtype_size(spec.dtype);
      if (std::fwrite(bytes.data(), 1, nb, out) != nb) fail(dir, ": write failed (disk full?)");
      done += nb;
      if (progress) progress(done, total);
    }
  };
  if (opt.format == "bin") {
    // transformers' default max_shard_size when these checkpoints were saved.
    write_torch_sharded(dir, specs, 10'000'000'000ull, fill);
  } else if (opt.format == "safetensors") {
    write_safetensors((fs::path(dir) / "model.safetensors").string(), specs, {{"format", "pt"}}, fill);
  } else {
    fail("--format: must be safetensors or bin, not '", opt.format, "'");
  }
}

// Writes every tensor that <dir>/config.json's layout holds (and, for the
// original LLaVA layout, its tower's into tower_dir): the walks loading uses.
void write_layout(const RandomCheckpointOptions& opt, const std::string& dir, const std::string& tower_dir,
                  const std::function<void(size_t, size_t)>& progress) {
  namespace fs = std::filesystem;
  const JsonFile config = JsonFile::load((fs::path(dir) / "config.json").string());
  std::optional<JsonFile> tower;
  if (!tower_dir.empty()) tower = JsonFile::load((fs::path(tower_dir) / "config.json").string());
  const CheckpointLayout layout = describe_checkpoint(config, tower ? &*tower : nullptr);
  auto bytes = [&](const std::vector<TensorDesc>& ts) {
    size_t b = 0;
    for (const TensorDesc& t : ts) {
      size_t n = dtype_size(t.role == TensorRole::Rotary ? DType::F32 : opt.dtype);
      for (int64_t d : t.shape) n *= static_cast<size_t>(d);
      b += n;
    }
    return b;
  };
  const size_t total = bytes(layout.tensors) + bytes(layout.tower_tensors);
  size_t done = 0;
  const double theta = config.get_double("rope_theta", 10000.0);
  if (!layout.tower_tensors.empty())
    write_tensors(opt, tower_dir, layout.tower_tensors, 1u << 20, theta, progress, done, total);
  write_tensors(opt, dir, layout.tensors, 0, theta, progress, done, total);
}

// ---- InstructBLIP and mPLUG-Owl2 presets ----

struct FamilyShape {
  bool iblip = false;
  int64_t v_hidden, v_inter, v_layers, v_heads, image, patch;  // vision tower
  int64_t b_hidden, b_inter, b_layers, b_heads, queries;       // Q-Former / visual abstractor
  int64_t cross_freq;                                          // Q-Former only
  int64_t t_hidden, t_inter, t_layers, t_heads, vocab;         // LLaMA (vocab 0: sized to the tokenizer)
  double rms_eps;
};

bool family_shape(const std::string& preset, FamilyShape* s) {
  if (preset == "tiny-instructblip") *s = {true, 32, 64, 2, 4, 42, 14, 48, 96, 2, 4, 4, 1, 64, 128, 2, 4, 0, 1e-6};
  else if (preset == "instructblip-vicuna-7b")
    *s = {true, 1408, 6144, 39, 16, 224, 14, 768, 3072, 12, 12, 32, 2, 4096, 11008, 32, 32, 32001, 1e-6};
  else if (preset == "tiny-owl2") *s = {false, 32, 64, 2, 4, 42, 14, 32, 48, 2, 4, 8, 0, 64, 128, 2, 4, 0, 1e-5};
  else if (preset == "mplug-owl2-7b")
    *s = {false, 1024, 4096, 24, 16, 448, 14, 1024, 2816, 6, 16, 64, 0, 4096, 11008, 32, 32, 32000, 1e-5};
  else return false;
  return true;
}

// A small bert-base-uncased-like vocab.txt: the special tokens at their BERT
// ids, punctuation, digits, letters, the corpus words and "##" continuations.
std::string bert_vocab(const std::vector<std::string>& corpus) {
  std::vector<std::string> v = {"[PAD]"};
  for (int i = 0; i < 99; ++i) v.push_back("[unused" + std::to_string(i) + "]");
  for (const char* s : {"[UNK]", "[CLS]", "[SEP]", "[MASK]"}) v.push_back(s);
  for (char c = 33; c < 127; ++c)
    if (!std::isupper(static_cast<unsigned char>(c))) v.push_back(std::string(1, c));
  std::set<std::string> words;
  for (const std::string& line : corpus) {
    std::string w;
    for (char c : line + " ") {
      if (std::isalnum(static_cast<unsigned char>(c))) {
        w += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      } else {
        if (w.size() > 1) words.insert(w);
        w.clear();
      }
    }
  }
  v.insert(v.end(), words.begin(), words.end());
  for (char c = '0'; c <= 'z'; ++c)
    if (std::isdigit(static_cast<unsigned char>(c)) || std::islower(static_cast<unsigned char>(c)))
      v.push_back("##" + std::string(1, c));
  std::string out;
  for (auto& t : v) out += t + "\n";
  return out;
}

void write_family_checkpoint(const RandomCheckpointOptions& opt, FamilyShape s,
                             const std::function<void(size_t, size_t)>& progress) {
  namespace fs = std::filesystem;
  const fs::path out(opt.out);
  fs::create_directories(out);
  auto put_json = [&](const fs::path& path, const json& j) { write_file_atomic(path.string(), j.dump(2) + "\n"); };
  auto patch_json = [&](const fs::path& path, const json& changes) {
    json j = parse_json(read_file(path.string()), path.string());
    for (auto& [k, v] : changes.items()) j[k] = v;
    put_json(path, j);
  };
  const std::vector<std::string> corpus(std::begin(kTokenizerCorpus), std::end(kTokenizerCorpus));
  const char* td = opt.dtype == DType::F32 ? "float32" : opt.dtype == DType::F16 ? "float16" : "bfloat16";

  // LLaMA tokenizer: copied, or trained (InstructBLIP adds [PAD] and uses "</s>" as BOS and UNK).
  if (!opt.tokenizer_from.empty()) {
    for (const char* f : {"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"}) {
      const fs::path src = fs::path(opt.tokenizer_from) / f;
      if (fs::exists(src)) write_file_atomic((out / f).string(), read_file(src.string()));
      else if (std::string(f) == "tokenizer.model") fail(src.string(), ": no such file (needed by --tokenizer-from)");
    }
    if (s.vocab == 0) s.vocab = Tokenizer::load(opt.out).vocab_size();
  } else {
    const std::string proto = train_sentencepiece(corpus, 1000);
    write_hf_tokenizer(opt.out, proto, {});
    const int32_t base = Tokenizer::load(opt.out).base_vocab_size();
    if (s.iblip) {
      const int32_t pad = s.vocab ? static_cast<int32_t>(s.vocab - 1) : base;
      write_hf_tokenizer(opt.out, proto, {{"[PAD]", pad}});
      const json sp = {{"bos_token", "</s>"}, {"eos_token", "</s>"}, {"unk_token", "</s>"}, {"pad_token", "[PAD]"}};
      json cfg = sp;
      cfg["legacy"] = true;
      patch_json(out / "tokenizer_config.json", cfg);
      put_json(out / "special_tokens_map.json", sp);
      if (s.vocab == 0) s.vocab = pad + 1;
    } else if (s.vocab == 0) {
      s.vocab = base;
    }
  }

  if (s.iblip) {
    // Q-Former BERT tokenizer: copied when the source has one, else generated.
    const fs::path qdir = out / "qformer_tokenizer", qsrc = fs::path(opt.tokenizer_from) / "qformer_tokenizer";
    fs::create_directories(qdir);
    int64_t q_vocab = 30523;
    if (!opt.tokenizer_from.empty() && fs::exists(qsrc / "vocab.txt")) {
      for (const auto& e : fs::directory_iterator(qsrc))
        if (e.is_regular_file()) write_file_atomic((qdir / e.path().filename()).string(), read_file(e.path().string()));
    } else {
      const std::string vocab = bert_vocab(corpus);
      const int64_t n = std::count(vocab.begin(), vocab.end(), '\n');
      write_file_atomic((qdir / "vocab.txt").string(), vocab);
      put_json(qdir / "added_tokens.json", {{"[DEC]", n}});
      const json sp = {{"bos_token", "[DEC]"}, {"cls_token", "[CLS]"}, {"mask_token", "[MASK]"},
                       {"pad_token", "[PAD]"}, {"sep_token", "[SEP]"},  {"unk_token", "[UNK]"}};
      put_json(qdir / "special_tokens_map.json", sp);
      json cfg = sp;
      cfg.update({{"do_basic_tokenize", true}, {"do_lower_case", true}, {"model_max_length", 512},
                  {"strip_accents", nullptr}, {"tokenize_chinese_chars", true}, {"tokenizer_class", "BertTokenizer"}});
      put_json(qdir / "tokenizer_config.json", cfg);
      if (s.vocab < 1000) q_vocab = n + 1;  // tiny preset: sized to the generated vocab
    }
    put_json(out / "config.json",
             {{"architectures", {"InstructBlipForConditionalGeneration"}},
              {"model_type", "instructblip"},
              {"num_query_tokens", s.queries},
              {"qformer_config",
               {{"cross_attention_frequency", s.cross_freq}, {"encoder_hidden_size", s.v_hidden},
                {"hidden_act", "gelu"}, {"hidden_size", s.b_hidden}, {"intermediate_size", s.b_inter},
                {"layer_norm_eps", 1e-12}, {"max_position_embeddings", 512}, {"model_type", "instructblip_qformer"},
                {"num_attention_heads", s.b_heads}, {"num_hidden_layers", s.b_layers}, {"pad_token_id", 0},
                {"position_embedding_type", "absolute"}, {"vocab_size", q_vocab}}},
              {"text_config",
               {{"architectures", {"LLaMAForCausalLM"}}, {"bos_token_id", 0}, {"eos_token_id", 1},
                {"hidden_act", "silu"}, {"hidden_size", s.t_hidden}, {"intermediate_size", s.t_inter},
                {"max_position_embeddings", 2048}, {"model_type", "llama"}, {"num_attention_heads", s.t_heads},
                {"num_hidden_layers", s.t_layers}, {"num_key_value_heads", s.t_heads}, {"pad_token_id", -1},
                {"rms_norm_eps", s.rms_eps}, {"rope_theta", 10000.0}, {"tie_word_embeddings", false},
                {"torch_dtype", "float16"}, {"vocab_size", s.vocab}}},
              {"tie_word_embeddings", false},
              {"torch_dtype", td},
              {"use_decoder_only_language_model", true},
              {"vision_config",
               {{"hidden_act", "gelu"}, {"hidden_size", s.v_hidden}, {"image_size", s.image},
                {"intermediate_size", s.v_inter}, {"layer_norm_eps", 1e-6}, {"model_type", "instructblip_vision_model"},
                {"num_attention_heads", s.v_heads}, {"num_hidden_layers", s.v_layers}, {"patch_size", s.patch},
                {"qkv_bias", true}}}});
    put_json(out / "preprocessor_config.json",
             {{"do_convert_rgb", true}, {"do_normalize", true}, {"do_rescale", true}, {"do_resize", true},
              {"image_mean", {0.48145466, 0.4578275, 0.40821073}}, {"image_processor_type", "BlipImageProcessor"},
              {"image_std", {0.26862954, 0.26130258, 0.27577711}}, {"processor_class", "InstructBlipProcessor"},
              {"resample", 3}, {"rescale_factor", 1.0 / 255.0}, {"size", {{"height", s.image}, {"width", s.image}}}});
    write_layout(opt, opt.out, "", progress);
    return;
  }

  json config = {{"architectures", {"MPLUGOwl2LlamaForCausalLM"}}, {"attention_bias", false}, {"bos_token_id", 1},
                 {"eos_token_id", 2}, {"hidden_act", "silu"}, {"hidden_size", s.t_hidden},
                 {"intermediate_size", s.t_inter}, {"max_position_embeddings", 4096}, {"model_type", "mplug_owl2"},
                 {"num_attention_heads", s.t_heads}, {"num_hidden_layers", s.t_layers},
                 {"num_key_value_heads", s.t_heads}, {"pad_token_id", nullptr}, {"rms_norm_eps", s.rms_eps},
                 {"rope_scaling", nullptr}, {"rope_theta", 10000.0}, {"tie_word_embeddings", false},
                 {"torch_dtype", td}, {"vocab_size", s.vocab}};
  config["visual_config"] = {
      {"visual_abstractor",
       {{"encoder_hidden_size", s.v_hidden}, {"grid_size", s.image / s.patch}, {"hidden_size", s.b_hidden},
        {"intermediate_size", s.b_inter}, {"layer_norm_eps", 1e-6}, {"model_type", "mplug_owl_visual_abstract"},
        {"num_attention_heads", s.b_heads}, {"num_hidden_layers", s.b_layers}, {"num_learnable_queries", s.queries}}},
      {"visual_model",
       {{"hidden_act", "quick_gelu"}, {"hidden_size", s.v_hidden}, {"image_size", s.image},
        {"intermediate_size", s.v_inter}, {"layer_norm_eps", 1e-6}, {"model_type", "mplug_owl_vision_model"},
        {"num_attention_heads", s.v_heads}, {"num_channels", 3}, {"num_hidden_layers", s.v_layers},
        {"patch_size", s.patch}}}};
  put_json(out / "config.json", config);
  put_json(out / "preprocessor_config.json",
           {{"crop_size", s.image}, {"do_center_crop", true}, {"do_normalize", true}, {"do_resize", true},
            {"feature_extractor_type", "CLIPFeatureExtractor"}, {"image_mean", {0.48145466, 0.4578275, 0.40821073}},
            {"image_std", {0.26862954, 0.26130258, 0.27577711}}, {"resample", 3}, {"size", s.image}});
  put_json(out / "generation_config.json", {{"bos_token_id", 1}, {"eos_token_id", 2}});
  write_layout(opt, opt.out, "", progress);
}

// The original LLaVA v1.0.2 layout: the LLaMA-2 checkpoint with its linear
// projector in opt.out, the CLIP tower it names (mm_vision_tower) in a
// subdirectory of that name, where the loader looks first. The tower holds
// the vision half of a CLIPModel only (the text half is never read).
void write_llava_v1_checkpoint(const RandomCheckpointOptions& opt, LlavaShape s,
                               const std::function<void(size_t, size_t)>& progress) {
  namespace fs = std::filesystem;
  const std::string tower_name = opt.preset == "llava-v1-13b" ? "openai/clip-vit-large-patch14" : "tiny-clip";
  const fs::path out(opt.out), tower = out / tower_name;
  fs::create_directories(tower);
  auto put_json = [&](const fs::path& path, const json& j) { write_file_atomic(path.string(), j.dump(2) + "\n"); };
  const char* td = opt.dtype == DType::F32 ? "float32" : opt.dtype == DType::F16 ? "float16" : "bfloat16";
  if (!opt.tokenizer_from.empty()) {
    for (const char* f : {"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"}) {
      const fs::path src = fs::path(opt.tokenizer_from) / f;
      if (fs::exists(src)) write_file_atomic((out / f).string(), read_file(src.string()));
      else if (std::string(f) == "tokenizer.model") fail(src.string(), ": no such file (needed by --tokenizer-from)");
    }
  } else {
    const std::vector<std::string> corpus(std::begin(kTokenizerCorpus), std::end(kTokenizerCorpus));
    write_hf_tokenizer(opt.out, train_sentencepiece(corpus, 1000), {});
  }
  if (s.vocab == 0) s.vocab = Tokenizer::load(opt.out).vocab_size();
  put_json(out / "config.json",
           {{"architectures", {"LlavaLlamaForCausalLM"}}, {"bos_token_id", 1}, {"eos_token_id", 2},
            {"hidden_act", "silu"}, {"hidden_size", s.t_hidden}, {"image_aspect_ratio", "square"},
            {"intermediate_size", s.t_inter}, {"max_position_embeddings", 4096}, {"mm_hidden_size", s.v_hidden},
            {"mm_use_im_patch_token", false}, {"mm_use_im_start_end", false}, {"mm_vision_select_feature", "patch"},
            {"mm_vision_select_layer", -2}, {"mm_vision_tower", tower_name}, {"model_type", "llava"},
            {"num_attention_heads", s.t_heads}, {"num_hidden_layers", s.t_layers}, {"num_key_value_heads", s.t_kv},
            {"pad_token_id", 0}, {"rms_norm_eps", s.rms_eps}, {"rope_scaling", nullptr}, {"tie_word_embeddings", false},
            {"torch_dtype", td}, {"use_mm_proj", true}, {"vocab_size", s.vocab}});
  put_json(out / "generation_config.json", {{"bos_token_id", 1}, {"eos_token_id", 2}, {"pad_token_id", 0}});
  put_json(tower / "config.json",
           {{"architectures", {"CLIPVisionModel"}}, {"hidden_act", "quick_gelu"}, {"hidden_size", s.v_hidden},
            {"image_size", s.image}, {"intermediate_size", s.v_inter}, {"layer_norm_eps", 1e-5},
            {"model_type", "clip_vision_model"}, {"num_attention_heads", s.v_heads},
            {"num_hidden_layers", s.v_layers}, {"patch_size", s.patch}, {"torch_dtype", td}});
  put_json(tower / "preprocessor_config.json",
           {{"crop_size", s.image}, {"do_center_crop", true}, {"do_normalize", true}, {"do_resize", true},
            {"feature_extractor_type", "CLIPFeatureExtractor"}, {"image_mean", {0.48145466, 0.4578275, 0.40821073}},
            {"image_std", {0.26862954, 0.26130258, 0.27577711}}, {"resample", 3}, {"size", s.image}});
  write_layout(opt, opt.out, tower.string(), progress);
}

}  // namespace

nlohmann::json clip_preprocessor_config(int64_t size) {
  return {{"crop_size", {{"height", size}, {"width", size}}},
          {"do_center_crop", true},
          {"do_convert_rgb", true},
          {"do_normalize", true},
          {"do_rescale", true},
          {"do_resize", true},
          {"image_mean", {0.48145466, 0.4578275, 0.40821073}},
          {"image_processor_type", "CLIPImageProcessor"},
          {"image_std", {0.26862954, 0.26130258, 0.27577711}},
          {"processor_class", "LlavaProcessor"},
          {"resample", 3},
          {"rescale_factor", 1.0 / 255.0},
          {"size", {{"shortest_edge", size}}}};
}

std::vector<std::string> random_presets() {
  return {"tiny",      "llava-1.5-7b",           "llava-1.5-13b", "tiny-llava-v1", "llava-v1-13b",
          "tiny-instructblip", "instructblip-vicuna-7b", "tiny-owl2",     "mplug-owl2-7b"};
}

void write_random_checkpoint(const RandomCheckpointOptions& opt, const std::function<void(size_t, size_t)>& progress) {
  namespace fs = std::filesystem;
  if (opt.out.empty()) fail("--out: an output directory is required");
  FamilyShape fam;
  if (family_shape(opt.preset, &fam)) return write_family_checkpoint(opt, fam, progress);
  LlavaShape s = llava_shape(opt.preset);
  if (s.original) return write_llava_v1_checkpoint(opt, s, progress);
  fs::create_directories(opt.out);
  auto put_json = [&](const std::string& name, const json& j) {
    write_file_atomic((fs::path(opt.out) / name).string(), j.dump(2) + "\n");
  };
  int32_t image_id = 32000, pad_id = 32001;
  if (!opt.tokenizer_from.empty()) {
    for (const char* f : {"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"}) {
      fs::path src = fs::path(opt.tokenizer_from) / f;
      if (!fs::exists(src)) fail(src.string(), ": no such file (needed by --tokenizer-from)");
      write_file_atomic((fs::path(opt.out) / f).string(), read_file(src.string()));
    }
  } else {
    std::vector<std::string> corpus(std::begin(kTokenizerCorpus), std::end(kTokenizerCorpus));
    const std::string proto = train_sentencepiece(corpus, 1000);
    write_hf_tokenizer(opt.out, proto, {});
    // Added tokens follow the SentencePiece pieces directly.
    const int32_t base = Tokenizer::load(opt.out).base_vocab_size();
    if (opt.preset == "tiny") {
      image_id = base;
      pad_id = base + 1;
      s.vocab = base + 2;
    }
    write_hf_tokenizer(opt.out, proto, {{"<image>", image_id}, {"<pad>", pad_id}});
  }
  json config = llava_config(s, opt.dtype);
  config["image_token_index"] = image_id;
  config["pad_token_id"] = pad_id;
  put_json("config.json", config);
  put_json("preprocessor_config.json", clip_preprocessor_config(s.image));
  put_json("generation_config.json", {{"bos_token_id", 1}, {"eos_token_id", 2}, {"pad_token_id", pad_id}});

  write_layout(opt, opt.out, "", progress);
}

}  // namespace mmn
