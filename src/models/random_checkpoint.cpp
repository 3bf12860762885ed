#include "models/random_checkpoint.h"

#include <omp.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/tokenizer.h"
#include "io/tokenizer_train.h"
#include "kernels/convert.h"
#include "kernels/threading.h"
#include "util/error.h"

namespace mmn {

namespace {

using nlohmann::json;

struct LlavaShape {
  int64_t v_hidden, v_inter, v_layers, v_heads, image, patch;
  int64_t t_hidden, t_inter, t_layers, t_heads, t_kv, vocab;
  double rms_eps, rope_theta;
};

LlavaShape llava_shape(const std::string& preset) {
  if (preset == "tiny") return {32, 64, 2, 4, 56, 14, 64, 160, 3, 4, 2, 32064, 1e-5, 10000.0};
  if (preset == "llava-1.5-7b") return {1024, 4096, 24, 16, 336, 14, 4096, 11008, 32, 32, 32, 32064, 1e-5, 10000.0};
  if (preset == "llava-1.5-13b") return {1024, 4096, 24, 16, 336, 14, 5120, 13824, 40, 40, 40, 32064, 1e-5, 10000.0};
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

json clip_preprocessor(int64_t size) {
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

// How a tensor is initialised: around `center` with standard deviation `std`.
struct Init {
  TensorSpec spec;
  float center, std;
};

std::vector<Init> llava_tensors(const LlavaShape& s, DType dt) {
  std::vector<Init> t;
  auto lin = [&](const std::string& name, int64_t out, int64_t in, bool bias) {
    t.push_back({{name + ".weight", dt, {out, in}}, 0.f, 1.f / std::sqrt(static_cast<float>(in))});
    if (bias) t.push_back({{name + ".bias", dt, {out}}, 0.f, 0.02f});
  };
  auto norm = [&](const std::string& name, int64_t d, bool bias) {
    t.push_back({{name + ".weight", dt, {d}}, 1.f, 0.02f});
    if (bias) t.push_back({{name + ".bias", dt, {d}}, 0.f, 0.02f});
  };
  const int64_t P = (s.image / s.patch) * (s.image / s.patch);
  const std::string v = "vision_tower.vision_model.";
  t.push_back({{v + "embeddings.class_embedding", dt, {s.v_hidden}}, 0.f, 0.02f});
  t.push_back({{v + "embeddings.patch_embedding.weight", dt, {s.v_hidden, 3, s.patch, s.patch}}, 0.f,
               1.f / std::sqrt(3.f * s.patch * s.patch)});
  t.push_back({{v + "embeddings.position_embedding.weight", dt, {P + 1, s.v_hidden}}, 0.f, 0.02f});
  norm(v + "pre_layrnorm", s.v_hidden, true);
  for (int64_t l = 0; l < s.v_layers; ++l) {
    const std::string p = v + "encoder.layers." + std::to_string(l) + ".";
    norm(p + "layer_norm1", s.v_hidden, true);
    norm(p + "layer_norm2", s.v_hidden, true);
    lin(p + "mlp.fc1", s.v_inter, s.v_hidden, true);
    lin(p + "mlp.fc2", s.v_hidden, s.v_inter, true);
    for (const char* n : {"q_proj", "k_proj", "v_proj", "out_proj"})
      lin(p + "self_attn." + n, s.v_hidden, s.v_hidden, true);
  }
  norm(v + "post_layernorm", s.v_hidden, true);
  lin("multi_modal_projector.linear_1", s.t_hidden, s.v_hidden, true);
  lin("multi_modal_projector.linear_2", s.t_hidden, s.t_hidden, true);
  const std::string m = "language_model.model.";
  const int64_t kv = s.t_hidden / s.t_heads * s.t_kv;
  t.push_back({{m + "embed_tokens.weight", dt, {s.vocab, s.t_hidden}}, 0.f, 1.f});
  for (int64_t l = 0; l < s.t_layers; ++l) {
    const std::string p = m + "layers." + std::to_string(l) + ".";
    norm(p + "input_layernorm", s.t_hidden, false);
    norm(p + "post_attention_layernorm", s.t_hidden, false);
    lin(p + "mlp.gate_proj", s.t_inter, s.t_hidden, false);
    lin(p + "mlp.up_proj", s.t_inter, s.t_hidden, false);
    lin(p + "mlp.down_proj", s.t_hidden, s.t_inter, false);
    lin(p + "self_attn.q_proj", s.t_hidden, s.t_hidden, false);
    lin(p + "self_attn.k_proj", kv, s.t_hidden, false);
    lin(p + "self_attn.v_proj", kv, s.t_hidden, false);
    lin(p + "self_attn.o_proj", s.t_hidden, s.t_hidden, false);
  }
  norm(m + "norm", s.t_hidden, false);
  lin("language_model.lm_head", s.vocab, s.t_hidden, false);
  return t;
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

}  // namespace

std::vector<std::string> random_presets() { return {"tiny", "llava-1.5-7b", "llava-1.5-13b"}; }

void write_random_checkpoint(const RandomCheckpointOptions& opt, const std::function<void(size_t, size_t)>& progress) {
  namespace fs = std::filesystem;
  if (opt.out.empty()) fail("--out: an output directory is required");
  LlavaShape s = llava_shape(opt.preset);
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
  put_json("preprocessor_config.json", clip_preprocessor(s.image));
  put_json("generation_config.json", {{"bos_token_id", 1}, {"eos_token_id", 2}, {"pad_token_id", pad_id}});

  std::vector<Init> inits = llava_tensors(s, opt.dtype);
  std::vector<TensorSpec> specs;
  size_t total = 0;
  for (auto& i : inits) {
    specs.push_back(i.spec);
    total += i.spec.nbytes();
  }
  size_t done = 0;
  const int64_t chunk = 1 << 20;
  std::vector<float> f32(chunk);
  std::vector<uint8_t> bytes(chunk * 4);
  write_safetensors((fs::path(opt.out) / "model.safetensors").string(), specs, {{"format", "pt"}},
                    [&](const TensorSpec& spec, std::FILE* out) {
                      size_t k = 0;
                      while (inits[k].spec.name != spec.name) ++k;
                      const Init& in = inits[k];
                      const int64_t n = static_cast<int64_t>(spec.nbytes() / dtype_size(spec.dtype));
                      const uint64_t base = mix(opt.seed ^ mix(k + 1));
                      for (int64_t c0 = 0; c0 < n; c0 += chunk) {
                        const int64_t m = std::min(chunk, n - c0);
#pragma omp parallel for num_threads(num_threads())
                        for (int64_t i = 0; i < m; ++i)
                          f32[i] = in.center + in.std * approx_normal(mix(base + static_cast<uint64_t>(c0 + i)));
                        convert_from_f32(spec.dtype, f32.data(), bytes.data(), m);
                        const size_t nb = static_cast<size_t>(m) * dtype_size(spec.dtype);
                        if (std::fwrite(bytes.data(), 1, nb, out) != nb) fail(opt.out, ": write failed (disk full?)");
                        done += nb;
                        if (progress) progress(done, total);
                      }
                    });
}

}  // namespace mmn
