#include "grad/shapes_train.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/shapes.h"
#include "grad/llava_train.h"
#include "io/atomic_file.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "io/tokenizer_train.h"
#include "kernels/threading.h"
#include "models/generate.h"
#include "models/random_checkpoint.h"
#include "models/vlm.h"
#include "util/error.h"
#include "util/progress.h"

namespace mmn {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kStateFile = "train_state.safetensors";
constexpr const char* kLogFile = "train_log.jsonl";

uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Standard normal from two counter-based uniforms (Box–Muller).
float normal_at(uint64_t key) {
  const double u1 = (static_cast<double>(mix(key) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
  const double u2 = static_cast<double>(mix(key ^ 0xabcdef12345ull) >> 11) * (1.0 / 9007199254740992.0);
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

// Training scenes and vocabulary scenes come from streams derived from the
// seed; evaluation uses kShapesHeldOutSeed.
uint64_t train_stream(uint64_t seed) { return mix(seed ^ 0x7472616e5eedull); }

// --- fresh checkpoint ---

json llava_config(const ShapesModelShape& s, int64_t vocab, int32_t image_token, int32_t pad) {
  return {{"architectures", {"LlavaForConditionalGeneration"}},
          {"ignore_index", -100},
          {"image_token_index", image_token},
          {"model_type", "llava"},
          {"pad_token_id", pad},
          {"projector_hidden_act", "gelu"},
          {"text_config",
           {{"architectures", {"LlamaForCausalLM"}}, {"hidden_act", "silu"}, {"hidden_size", s.t_hidden},
            {"intermediate_size", s.t_inter}, {"max_position_embeddings", 512}, {"model_type", "llama"},
            {"num_attention_heads", s.t_heads}, {"num_hidden_layers", s.t_layers}, {"num_key_value_heads", s.t_kv},
            {"rms_norm_eps", 1e-5}, {"rope_theta", 10000.0}, {"torch_dtype", "float32"}, {"vocab_size", vocab},
            {"bos_token_id", 1}, {"eos_token_id", 2}, {"pad_token_id", pad}}},
          {"tie_word_embeddings", false},
          {"torch_dtype", "float32"},
          {"vision_config",
           {{"hidden_act", "quick_gelu"}, {"hidden_size", s.v_hidden}, {"image_size", s.image},
            {"intermediate_size", s.v_inter}, {"layer_norm_eps", 1e-5}, {"model_type", "clip_vision_model"},
            {"num_attention_heads", s.v_heads}, {"num_hidden_layers", s.v_layers}, {"patch_size", s.patch},
            {"projection_dim", s.t_hidden}}},
          {"vision_feature_layer", -2},
          {"vision_feature_select_strategy", "default"},
          {"vocab_size", vocab}};
}

// The initial value distribution of a tensor of the layout, GPT-2 style:
// N(0, 0.02), residual outputs scaled by 1/√(2L), norms 1, biases 0.
struct Init {
  float center, std;
};

Init training_init(const TensorDesc& t) {
  switch (t.role) {
    case TensorRole::Weight: return {0.f, t.residual ? 0.02f / std::sqrt(2.f * t.depth) : 0.02f};
    case TensorRole::Bias: return {0.f, 0.f};
    case TensorRole::Norm: return {1.f, 0.f};
    case TensorRole::NormBias: return {0.f, 0.f};
    case TensorRole::Embedding:
    case TensorRole::Learned: return {0.f, 0.02f};
    case TensorRole::Rotary: break;  // not in the LLaVA-1.5 layout
  }
  return {0.f, 0.f};
}

// Adds a 2-D sine-cosine pattern to the patch rows (row 0 is the class token)
// of a [1 + g·g, D] position embedding: half the dimensions encode the patch
// row, half the column, so neighbouring patches start out similar and the
// vision tower can learn local attention early.
void add_2d_sincos(float* pos, int g, int64_t D) {
  const int64_t half = D / 2, nf = half / 2;
  for (int gy = 0; gy < g; ++gy)
    for (int gx = 0; gx < g; ++gx) {
      float* row = pos + (1 + static_cast<int64_t>(gy) * g + gx) * D;
      for (int axis = 0; axis < 2; ++axis) {
        const double p = axis == 0 ? gy : gx;
        for (int64_t i = 0; i < nf; ++i) {
          const double w = std::pow(100.0, -static_cast<double>(i) / static_cast<double>(nf));
          row[axis * half + i] += static_cast<float>(0.3 * std::sin(p * w));
          row[axis * half + nf + i] += static_cast<float>(0.3 * std::cos(p * w));
        }
      }
    }
}

// Initial weights for every tensor of <dir>/config.json's layout (the walk loading uses).
void write_init_weights(const std::string& dir, const ShapesModelShape& s, uint64_t seed) {
  const std::vector<TensorDesc> layout =
      describe_checkpoint(JsonFile::load((fs::path(dir) / "config.json").string())).tensors;
  std::vector<TensorSpec> specs;
  for (const TensorDesc& t : layout) specs.push_back({t.name, DType::F32, t.shape});
  write_safetensors((fs::path(dir) / "model.safetensors").string(), specs, {{"format", "pt"}, {"step", "0"}},
                    [&](const TensorSpec& spec, std::FILE* out) {
                      size_t k = 0;
                      while (layout[k].name != spec.name) ++k;
                      const Init init = training_init(layout[k]);
                      const int64_t n = static_cast<int64_t>(spec.nbytes() / 4);
                      std::vector<float> v(n);
                      const uint64_t base = mix(seed ^ mix(k + 101));
                      for (int64_t i = 0; i < n; ++i)
                        v[i] = init.center + (init.std > 0 ? init.std * normal_at(base + i) : 0.f);
                      if (spec.name == "vision_tower.vision_model.embeddings.position_embedding.weight")
                        add_2d_sincos(v.data(), s.image / s.patch, s.v_hidden);
                      if (std::fwrite(v.data(), 4, n, out) != static_cast<size_t>(n))
                        fail(dir, ": write failed (disk full?)");
                    });
}

// Tokenizer trained on the prompt and captions, config files and initial weights.
void create_checkpoint(const std::string& dir, const ShapesModelShape& s, uint64_t seed) {
  std::vector<std::string> corpus;
  ShapesOptions so;
  so.image_size = s.image;
  for (int i = 0; i < 3000; ++i)
    corpus.push_back("Describe the image in few words. ASSISTANT: An image of " +
                     make_scene(train_stream(seed) ^ 0x766f636162ull, i, so).caption);
  corpus.push_back("USER:");
  const std::string proto = train_sentencepiece(corpus, s.vocab_pieces);
  write_hf_tokenizer(dir, proto, {});
  const int32_t base = Tokenizer::load(dir).base_vocab_size();
  const int32_t image_token = base, pad = base + 1;
  write_hf_tokenizer(dir, proto, {{"<image>", image_token}, {"<pad>", pad}});
  const int64_t V = base + 2;
  auto put = [&](const std::string& name, const json& j) {
    write_file_atomic((fs::path(dir) / name).string(), j.dump(2) + "\n");
  };
  put("config.json", llava_config(s, V, image_token, pad));
  put("preprocessor_config.json", clip_preprocessor_config(s.image));
  put("generation_config.json", {{"bos_token_id", 1}, {"eos_token_id", 2}, {"pad_token_id", pad}});
  write_init_weights(dir, s, seed);
}

// --- samples ---

struct SampleMaker {
  const Tokenizer* tok;
  const ImageProcessorConfig* proc;
  std::vector<int32_t> prompt_ids;
  std::string prompt;
  ShapesOptions so;

  LlavaSample make(const Scene& sc) const {
    LlavaSample s;
    s.pixels = preprocess_image(sc.image, *proc).pixel_values;
    s.ids = tok->encode(prompt + " " + sc.caption);
    if (s.ids.size() <= prompt_ids.size() || !std::equal(prompt_ids.begin(), prompt_ids.end(), s.ids.begin()))
      fail("internal: the caption's tokens do not extend the prompt's (\"", sc.caption, "\")");
    s.ids.push_back(tok->eos_id());
    s.target_from = static_cast<int64_t>(prompt_ids.size());
    return s;
  }
};

// --- state, log, plot ---

struct LogEntry {
  int64_t step;
  double loss, lr, grad_norm, elapsed_s;
};

json options_json(const TrainOptions& o) {
  return {{"preset", o.preset}, {"steps", o.steps}, {"batch", o.batch}, {"lr", o.lr}, {"min_lr_ratio", o.min_lr_ratio},
          {"warmup", o.warmup}, {"weight_decay", o.weight_decay}, {"clip", o.clip}, {"seed", o.seed}};
}

void write_state(const std::string& dir, const AdamW& adam, int64_t step, double elapsed, const TrainOptions& o) {
  const int64_t n = static_cast<int64_t>(adam.m.size());
  std::vector<TensorSpec> specs = {{"adam.m", DType::F32, {n}}, {"adam.v", DType::F32, {n}}};
  write_safetensors((fs::path(dir) / kStateFile).string(), specs,
                    {{"step", std::to_string(step)}, {"elapsed_s", std::to_string(elapsed)},
                     {"options", options_json(o).dump()}},
                    [&](const TensorSpec& spec, std::FILE* out) {
                      const std::vector<float>& v = spec.name == "adam.m" ? adam.m : adam.v;
                      if (std::fwrite(v.data(), 4, v.size(), out) != v.size()) fail(dir, ": write failed (disk full?)");
                    });
}

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

void write_loss_svg(const std::string& path, const std::vector<LogEntry>& log) {
  const double W = 760, H = 440, L = 70, R = 20, T = 40, B = 50;
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    << "<text x=\"" << W / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">shapes LLaVA: training loss "
       "(cross-entropy per caption token)</text>\n";
  if (log.empty()) {
    s << "</svg>\n";
    write_file_atomic(path, s.str());
    return;
  }
  double lo = 1e9, hi = 1e-9;
  for (auto& e : log) {
    lo = std::min(lo, std::max(e.loss, 1e-4));
    hi = std::max(hi, e.loss);
  }
  const double y0 = std::floor(std::log10(lo)), y1 = std::ceil(std::log10(hi) + 1e-9);
  const double x_max = std::max<double>(1, static_cast<double>(log.back().step + 1));
  auto X = [&](double step) { return L + (W - L - R) * step / x_max; };
  auto Y = [&](double loss) {
    return T + (H - T - B) * (y1 - std::log10(std::max(loss, 1e-4))) / std::max(1.0, y1 - y0);
  };
  s << "<g stroke=\"#ccc\">\n";
  for (double d = y0; d <= y1; d += 1)
    s << "<line x1=\"" << L << "\" x2=\"" << W - R << "\" y1=\"" << Y(std::pow(10, d)) << "\" y2=\""
      << Y(std::pow(10, d)) << "\"/>\n";
  s << "</g>\n";
  for (double d = y0; d <= y1; d += 1)
    s << "<text x=\"" << L - 6 << "\" y=\"" << Y(std::pow(10, d)) + 4 << "\" text-anchor=\"end\">"
      << fmt("%g", std::pow(10, d)) << "</text>\n";
  for (int i = 0; i <= 5; ++i) {
    const double st = x_max * i / 5;
    s << "<text x=\"" << X(st) << "\" y=\"" << H - B + 18 << "\" text-anchor=\"middle\">" << fmt("%.0f", st)
      << "</text>\n";
  }
  s << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 12 << "\" text-anchor=\"middle\">step</text>\n";
  s << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << W - L - R << "\" height=\"" << H - T - B
    << "\" fill=\"none\" stroke=\"#333\"/>\n";
  // Light: the mean of each bucket of steps (at most ~800 points); dark: an
  // exponential moving average of the per-step loss.
  const size_t bucket = std::max<size_t>(1, (log.size() + 799) / 800);
  s << "<polyline fill=\"none\" stroke=\"#9ecae1\" stroke-width=\"1\" points=\"";
  for (size_t i = 0; i < log.size(); i += bucket) {
    const size_t j = std::min(log.size(), i + bucket);
    double sum = 0;
    for (size_t k = i; k < j; ++k) sum += log[k].loss;
    s << fmt("%.1f", X(0.5 * static_cast<double>(log[i].step + log[j - 1].step))) << ","
      << fmt("%.1f", Y(sum / static_cast<double>(j - i))) << " ";
  }
  s << "\"/>\n<polyline fill=\"none\" stroke=\"#08519c\" stroke-width=\"2\" points=\"";
  double ema = log.front().loss;
  for (size_t i = 0; i < log.size(); ++i) {
    ema = 0.98 * ema + 0.02 * log[i].loss;
    if (i % bucket == bucket - 1 || i + 1 == log.size())
      s << fmt("%.1f", X(static_cast<double>(log[i].step))) << "," << fmt("%.1f", Y(ema)) << " ";
  }
  s << "\"/>\n<text x=\"" << W - R - 6 << "\" y=\"" << T + 16 << "\" text-anchor=\"end\">final (smoothed) "
    << fmt("%.4f", ema) << "</text>\n</svg>\n";
  write_file_atomic(path, s.str());
}

void write_log(const std::string& dir, const std::vector<LogEntry>& log) {
  std::string out;
  for (auto& e : log)
    out += json{{"step", e.step}, {"loss", e.loss}, {"lr", e.lr}, {"grad_norm", e.grad_norm}, {"elapsed_s", e.elapsed_s}}
               .dump() +
           "\n";
  write_file_atomic((fs::path(dir) / kLogFile).string(), out);
  write_loss_svg((fs::path(dir) / "loss.svg").string(), log);
}

std::vector<LogEntry> read_log(const std::string& dir, int64_t up_to) {
  std::vector<LogEntry> log;
  std::ifstream f(fs::path(dir) / kLogFile);
  for (std::string line; std::getline(f, line);) {
    if (line.empty()) continue;
    try {
      json j = json::parse(line);
      LogEntry e{j.at("step").get<int64_t>(), j.at("loss").get<double>(), j.at("lr").get<double>(),
                 j.at("grad_norm").get<double>(), j.at("elapsed_s").get<double>()};
      if (e.step < up_to) log.push_back(e);
    } catch (const json::exception&) {
      fail(dir, "/", kLogFile, ": malformed line");
    }
  }
  return log;
}

}  // namespace

ShapesModelShape shapes_model_preset(const std::string& name) {
  ShapesModelShape s;
  if (name == "small") return s;
  if (name == "tiny") {
    s.image = 32, s.patch = 8;
    s.v_hidden = 32, s.v_inter = 64, s.v_layers = 2, s.v_heads = 2;
    s.t_hidden = 32, s.t_inter = 64, s.t_layers = 2, s.t_heads = 4, s.t_kv = 2;
    return s;
  }
  fail("--preset: unknown model preset '", name, "' (known: small, tiny)");
}

std::vector<std::string> shapes_model_presets() { return {"small", "tiny"}; }

float shapes_lr(const TrainOptions& o, int64_t step) {
  if (step < o.warmup) return o.lr * static_cast<float>(step + 1) / static_cast<float>(o.warmup);
  const double span = std::max<int64_t>(1, o.steps - o.warmup);
  const double t = std::min(1.0, static_cast<double>(step - o.warmup) / span);
  const double floor = o.min_lr_ratio;
  return static_cast<float>(o.lr * (floor + (1 - floor) * 0.5 * (1 + std::cos(3.141592653589793 * t))));
}

TrainSummary train_shapes_llava(const TrainOptions& opt_in) {
  TrainOptions opt = opt_in;
  if (opt.out.empty()) fail("--out: an output directory is required");
  if (opt.steps < 0 || opt.batch < 1 || opt.checkpoint_every < 1 || !(opt.lr > 0) || opt.warmup < 0)
    fail("train: --steps, --batch, --lr, --warmup and --checkpoint-every must be positive");
  const ShapesModelShape shape = shapes_model_preset(opt.preset);
  const fs::path dir(opt.out);
  const fs::path state_path = dir / kStateFile;
  init_threads();
  omp_set_max_active_levels(1);  // parallel over samples; the kernels inside run on one thread each

  int64_t start = 0;
  double elapsed0 = 0;
  std::vector<float> m0, v0;
  std::error_code ec;
  if (fs::exists(state_path, ec)) {
    if (!opt.resume)
      fail(opt.out, ": already holds a training run; pass --resume to continue it or choose another --out");
    SafetensorsCheckpoint st = SafetensorsCheckpoint::open(state_path.string());
    const auto& meta = st.metadata();
    if (!meta.count("step") || !meta.count("options")) fail(state_path.string(), ": no step/options metadata");
    start = std::stoll(meta.at("step"));
    elapsed0 = meta.count("elapsed_s") ? std::stod(meta.at("elapsed_s")) : 0.0;
    json o = json::parse(meta.at("options"));
    const int64_t steps = opt.steps;
    opt.preset = o.at("preset");
    opt.batch = o.at("batch");
    opt.lr = o.at("lr");
    opt.min_lr_ratio = o.at("min_lr_ratio");
    opt.warmup = o.at("warmup");
    opt.weight_decay = o.at("weight_decay");
    opt.clip = o.at("clip");
    opt.seed = o.at("seed");
    opt.steps = steps;
    m0 = to_f32(st.get("adam.m"));
    v0 = to_f32(st.get("adam.v"));
    SafetensorsCheckpoint model_ck = SafetensorsCheckpoint::open(opt.out);
    const auto& mm = model_ck.metadata();
    if (!mm.count("step") || std::stoll(mm.at("step")) != start)
      fail(opt.out, ": model.safetensors and ", kStateFile, " are from different steps; cannot resume");
  } else {
    if (opt.resume && fs::exists(dir / "model.safetensors", ec))
      fail(opt.out, ": has a model but no ", kStateFile, "; cannot resume");
    fs::create_directories(dir, ec);
    if (ec) fail(opt.out, ": cannot create directory (", ec.message(), ")");
    create_checkpoint(opt.out, shape, opt.seed);
  }

  std::unique_ptr<TrainableLlava> model = TrainableLlava::load(opt.out);
  ParamStore& store = model->params();
  AdamW adam;
  adam.weight_decay = opt.weight_decay;
  adam.init(store);
  if (!m0.empty()) {
    if (static_cast<int64_t>(m0.size()) != store.total() || m0.size() != v0.size())
      fail(state_path.string(), ": optimizer state does not match the model's ", store.total(), " parameters");
    adam.m = std::move(m0);
    adam.v = std::move(v0);
    adam.step = start;
  }
  SampleMaker maker;
  maker.tok = &model->tokenizer();
  maker.proc = &model->image_processor();
  maker.prompt = load_model(opt.out)->prompt(PromptText{});  // the template inference uses
  maker.prompt_ids = model->tokenizer().encode(maker.prompt);
  maker.so.image_size = shape.image;

  std::vector<LogEntry> log = read_log(opt.out, start);
  const int T = num_threads();
  std::vector<std::unique_ptr<GradBuffer>> grads;
  for (int t = 0; t < T; ++t) grads.push_back(std::make_unique<GradBuffer>(store));
  const uint64_t stream = train_stream(opt.seed);
  auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return elapsed0 + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  std::unique_ptr<Progress> bar;
  if (opt.show_progress && opt.steps > start)
    bar = std::make_unique<Progress>(start > 0 ? "train (resumed at " + std::to_string(start) + ")" : "train",
                                     opt.steps - start, "steps");
  auto checkpoint = [&](int64_t step) {
    model->save_weights(opt.out, {{"step", std::to_string(step)}});
    write_state(opt.out, adam, step, elapsed(), opt);
    write_log(opt.out, log);
  };

  std::vector<LlavaSample> batch(opt.batch);
  std::vector<double> losses(opt.batch);
  const int64_t end = opt.stop_at >= 0 ? std::min(opt.stop_at, opt.steps) : opt.steps;
  for (int64_t step = start; step < end; ++step) {
    std::exception_ptr error;
    double loss_sum = 0;
    int64_t targets = 0;
#pragma omp parallel for num_threads(T) schedule(static, 1)
    for (int b = 0; b < opt.batch; ++b) {
      try {
        batch[b] = maker.make(make_scene(stream, static_cast<uint64_t>(step) * opt.batch + b, maker.so));
      } catch (...) {
#pragma omp critical
        error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
    for (auto& s : batch) targets += static_cast<int64_t>(s.ids.size()) - s.target_from;
    const float scale = 1.f / static_cast<float>(targets);
    // Sample b always lands in thread b mod T's buffer and the sums run in a
    // fixed order, so a run is reproducible (and a resumed run identical).
#pragma omp parallel num_threads(T)
    {
      GradBuffer& g = *grads[omp_get_thread_num()];
      g.zero();
#pragma omp for schedule(static, 1)
      for (int b = 0; b < opt.batch; ++b) {
        try {
          losses[b] = model->step(batch[b], &g, scale);
        } catch (...) {
#pragma omp critical
          error = std::current_exception();
        }
      }
    }
    if (error) std::rethrow_exception(error);
    for (double l : losses) loss_sum += l;
    std::vector<float>& g0 = grads[0]->data();
    for (int t = 1; t < T; ++t) {
      const std::vector<float>& gt = grads[t]->data();
      for (size_t i = 0; i < g0.size(); ++i) g0[i] += gt[i];
    }
    const double norm = grad_norm(g0);
    if (norm > opt.clip) {
      const float c = static_cast<float>(opt.clip / norm);
      for (float& x : g0) x *= c;
    }
    const float lr = shapes_lr(opt, step);
    adam.update(store, g0.data(), lr);
    const double loss = loss_sum / static_cast<double>(targets);
    if (!std::isfinite(loss)) fail("train: the loss diverged at step ", step, " (try a lower --lr)");
    log.push_back({step, loss, lr, norm, elapsed()});
    if (bar) bar->update(step + 1 - start, "loss " + fmt("%.4f", loss) + " lr " + fmt("%.2e", lr));
    if ((step + 1) % opt.checkpoint_every == 0 || step + 1 == end) checkpoint(step + 1);
  }
  if (bar) bar->finish();
  if (start >= end && !log.empty()) write_log(opt.out, log);  // nothing to train: refresh the log and plot

  TrainSummary r;
  r.start_step = start;
  r.steps = opt.steps;
  r.seconds = elapsed();
  auto mean_of = [&](size_t from, size_t to) {
    double s = 0;
    for (size_t i = from; i < to; ++i) s += log[i].loss;
    return to > from ? s / static_cast<double>(to - from) : 0.0;
  };
  const size_t k = std::min<size_t>(10, log.size());
  r.first_loss = mean_of(0, k);
  r.last_loss = mean_of(log.size() - k, log.size());
  return r;
}

EvalResult evaluate_shapes_llava(const EvalOptions& opt) {
  init_threads();
  omp_set_max_active_levels(1);
  std::unique_ptr<VisionLanguageModel> model = load_model(opt.model);
  if (model->family() != "llava") fail(opt.model, ": the shapes evaluation needs a LLaVA model");
  const int S = static_cast<int>(
      JsonFile::load((fs::path(opt.model) / "config.json").string()).sub("vision_config").get_int("image_size"));
  ShapesOptions so;
  so.image_size = S;
  const int64_t n = opt.n;
  std::vector<std::string> gen(n), truth(n);
  std::vector<std::vector<ShapeObject>> objs(n);
  std::exception_ptr error;
  std::unique_ptr<Progress> bar;
  if (opt.show_progress) bar = std::make_unique<Progress>("eval", n, "images");
  int64_t done = 0;
#pragma omp parallel for num_threads(num_threads()) schedule(dynamic, 1)
  for (int64_t i = 0; i < n; ++i) {
    try {
      const Scene sc = make_scene(opt.seed, static_cast<uint64_t>(i), so);
      PreprocessedImage px = model->preprocess(sc.image);
      PromptInputs in = model->build_inputs(PromptText{}, model->encode_image(px, nullptr), nullptr);
      GenerateOptions go;
      go.max_new_tokens = opt.max_new_tokens;
      GenerateResult g = generate(*model, in, go);
      std::string text = model->tokenizer().decode(g.generated);
      while (!text.empty() && text.front() == ' ') text.erase(0, 1);
      while (!text.empty() && text.back() == ' ') text.pop_back();
      gen[i] = text;
      truth[i] = sc.caption;
      objs[i] = sc.objects;
    } catch (...) {
#pragma omp critical
      error = std::current_exception();
    }
#pragma omp critical
    if (bar) bar->update(++done);
  }
  if (error) std::rethrow_exception(error);
  if (bar) bar->finish();

  EvalResult r;
  r.n = n;
  int64_t exact = 0, nouns_img = 0, nouns_obj = 0, all_obj = 0, parsed = 0;
  for (int64_t i = 0; i < n; ++i) {
    const auto& gt = objs[i];
    r.objects += static_cast<int64_t>(gt.size());
    exact += gen[i] == truth[i];
    std::vector<std::string> shapes_said;
    {
      std::istringstream is(gen[i]);
      for (std::string w; is >> w;) {
        while (!w.empty() && (w.back() == ',' || w.back() == '.')) w.pop_back();
        if (std::find(shape_kinds().begin(), shape_kinds().end(), w) != shape_kinds().end()) shapes_said.push_back(w);
      }
    }
    bool same_nouns = shapes_said.size() == gt.size();
    for (size_t k = 0; k < gt.size(); ++k) {
      const bool ok = k < shapes_said.size() && shapes_said[k] == gt[k].shape;
      nouns_obj += ok;
      same_nouns = same_nouns && ok;
    }
    nouns_img += same_nouns;
    std::vector<ShapeObject> got;
    if (parse_shapes_caption(gen[i], &got)) {
      ++parsed;
      for (size_t k = 0; k < gt.size() && k < got.size(); ++k)
        all_obj += got[k].shape == gt[k].shape && got[k].color == gt[k].color && got[k].size == gt[k].size &&
                   got[k].position == gt[k].position;
    }
    if (i < 5 || (gen[i] != truth[i] && r.examples.size() < 40)) r.examples.push_back({truth[i], gen[i]});
  }
  const double N = std::max<int64_t>(1, n), O = std::max<int64_t>(1, r.objects);
  r.exact = exact / N;
  r.nouns_image = nouns_img / N;
  r.nouns_object = nouns_obj / O;
  r.objects_all = all_obj / O;
  r.parsed = parsed / N;
  if (!opt.out_json.empty()) {
    json ex = json::array();
    for (auto& e : r.examples) ex.push_back({{"truth", e.truth}, {"generated", e.generated}});
    json j = {{"model", opt.model},  {"n", r.n},
              {"seed", opt.seed},    {"objects", r.objects},
              {"exact_match", r.exact}, {"noun_accuracy_image", r.nouns_image},
              {"noun_accuracy_object", r.nouns_object}, {"object_accuracy", r.objects_all},
              {"grammatical", r.parsed}, {"examples", ex}};
    write_file_atomic(opt.out_json, j.dump(2) + "\n");
  }
  return r;
}

}  // namespace mmn
