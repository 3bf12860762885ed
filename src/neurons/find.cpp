#include "neurons/find.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <set>

#include "kernels/convert.h"
#include "kernels/linear.h"
#include "kernels/ops.h"
#include "models/generate.h"
#include "neurons/gradient.h"
#include "neurons/nouns.h"
#include "neurons/recorders.h"
#include "util/error.h"

namespace mmn {

ActivationVariant parse_activation_variant(const std::string& s) {
  if (s == "act") return ActivationVariant::Act;
  if (s == "swiglu") return ActivationVariant::SwiGLU;
  fail_usage("--activation: expected act or swiglu, got '", s, "'");
}

const char* activation_variant_name(ActivationVariant v) { return v == ActivationVariant::Act ? "act" : "swiglu"; }

std::string cli_spelling(const std::string& option) { return "--" + option; }

std::string python_spelling(const std::string& option) {
  std::string s = option;
  for (char& c : s)
    if (c == '-') c = '_';
  return s;
}

FindOptions find_options(const FindRequest& r, OptionSpelling spell) {
  FindOptions opt;
  opt.prompt = r.prompt;
  opt.max_new_tokens = r.max_new_tokens;
  if (r.top_k < 1) fail_usage(spell("top-k"), ": value ", r.top_k, " is below 1");
  if (r.report < 1) fail_usage(spell("report"), ": value ", r.report, " is below 1");
  opt.top_k = r.top_k;
  opt.report = std::min(r.report, r.top_k);
  if (r.activation != "act" && r.activation != "swiglu")
    fail_usage(spell("activation"), ": expected act or swiglu, got '", r.activation, "'");
  opt.activation = r.activation == "swiglu" ? ActivationVariant::SwiGLU : ActivationVariant::Act;
  opt.fold_norm_gain = r.fold_norm_gain;
  if (r.method != "score" && r.method != "gradient")
    fail_usage(spell("method"), ": expected score or gradient, got '", r.method, "'");
  opt.method = r.method == "gradient" ? RankMethod::Gradient : RankMethod::Score;
  if (r.gradient_baseline && opt.method == RankMethod::Gradient)
    fail_usage(spell("gradient-baseline"), " goes with ", spell("method"), " score (with ", spell("method"),
               " gradient the gradient already ranks)");
  opt.also_gradient = r.gradient_baseline;
  if (r.tokens != "nouns" && r.tokens != "all")
    fail_usage(spell("tokens"), ": expected nouns or all, got '", r.tokens, "'");
  opt.all_tokens = r.tokens == "all";
  opt.nouns = r.nouns;
  opt.heatmaps = r.heatmaps;
  opt.shuffle_seed = r.shuffle_seed;
  if (r.random_baseline < 0) fail_usage(spell("random-baseline"), ": value ", r.random_baseline, " is negative");
  opt.random_baseline = r.random_baseline;
  return opt;
}

namespace {

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

std::vector<int32_t> word_token_ids(const Tokenizer& tok, const std::string& word) {
  std::vector<int32_t> out;
  for (int32_t id : tok.encode(word, false))
    if (tok.piece(id) != "\xe2\x96\x81") out.push_back(id);
  return out;
}

int32_t word_token(const Tokenizer& tok, const std::string& word) {
  std::vector<int32_t> ids = word_token_ids(tok, word);
  if (ids.empty()) fail("word '", word, "' has no token");
  return ids[0];
}

Explainer::Explainer(const VisionLanguageModel& model, int n_tokens) : model_(model), n_(n_tokens) {}

std::string Explainer::token_text(int32_t id) const {
  std::string p = model_.tokenizer().piece(id);
  std::string out;
  for (size_t i = 0; i < p.size();) {
    if (p.compare(i, 3, "\xe2\x96\x81") == 0) {
      out += ' ';
      i += 3;
    } else {
      out += p[i++];
    }
  }
  return out;
}

void Explainer::restrict_to(std::vector<int32_t> tokens) {
  const int64_t base = model_.tokenizer().base_vocab_size();
  std::sort(tokens.begin(), tokens.end());
  tokens.erase(std::unique(tokens.begin(), tokens.end()), tokens.end());
  for (int32_t t : tokens)
    if (t < 0 || t >= base) fail("internal: token ", t, " is outside the base vocabulary");
  allowed_ = std::move(tokens);
  cache_.clear();
}

VocabMode parse_vocab_mode(const std::string& s) {
  if (s == "all") return VocabMode::All;
  if (s == "produced") return VocabMode::Produced;
  if (s == "auto") return VocabMode::Auto;
  fail_usage("--vocab: expected all, produced or auto, got '", s, "'");
}

ExplanationVocab explanation_vocab(const VisionLanguageModel& model, VocabMode mode) {
  const Weight& U = model.decoder().lm_head();
  ExplanationVocab v;
  v.base = std::min<int64_t>(U.rows, model.tokenizer().base_vocab_size());
  const int64_t V = v.base, D = U.cols;
  auto all_tokens = [&] {
    v.tokens.resize(V);
    std::iota(v.tokens.begin(), v.tokens.end(), 0);
  };
  if (mode == VocabMode::All || V == 0) {
    all_tokens();
    v.decision = "explanations use all " + std::to_string(V) + " base-vocabulary tokens (--vocab all)";
    return v;
  }
  // Coordinate-wise median row, a block of columns at a time (never a full fp32 copy).
  std::vector<float> median(D), row(D);
  const int64_t block = 64;
  std::vector<float> cols;
  for (int64_t d0 = 0; d0 < D; d0 += block) {
    const int64_t w = std::min(block, D - d0);
    cols.assign(static_cast<size_t>(w * V), 0.f);
    for (int64_t t = 0; t < V; ++t) {
      weight_row_f32(U, t, 0, D, row.data());
      for (int64_t d = 0; d < w; ++d) cols[d * V + t] = row[d0 + d];
    }
    for (int64_t d = 0; d < w; ++d) {
      float* c = cols.data() + d * V;
      std::nth_element(c, c + V / 2, c + V);
      median[d0 + d] = c[V / 2];
    }
  }
  std::vector<double> dist(V), norm(V);
  for (int64_t t = 0; t < V; ++t) {
    weight_row_f32(U, t, 0, D, row.data());
    double dd = 0, nn = 0;
    for (int64_t d = 0; d < D; ++d) {
      dd += (double(row[d]) - median[d]) * (double(row[d]) - median[d]);
      nn += double(row[d]) * row[d];
    }
    dist[t] = std::sqrt(dd);
    norm[t] = std::sqrt(nn);
  }
  std::vector<double> sorted = norm;
  std::nth_element(sorted.begin(), sorted.begin() + V / 2, sorted.end());
  const double threshold = 0.25 * sorted[V / 2];
  std::vector<int32_t> produced;
  for (int64_t t = 0; t < V; ++t)
    if (dist[t] >= threshold) produced.push_back(static_cast<int32_t>(t));
  v.collapsed = V - static_cast<int64_t>(produced.size());
  const std::string rule = "lm_head rows within 0.25 x the median row norm of the coordinate-wise median row count as never trained";
  const bool restrict = mode == VocabMode::Produced || 4 * v.collapsed >= V;
  if (!restrict || produced.empty() || v.collapsed == 0) {
    all_tokens();
    const char* why = produced.empty() ? ", i.e. all of them: nothing to tell apart"
                      : v.collapsed == 0 ? ""
                                         : ", under a quarter: a fully trained vocabulary";
    v.decision = "explanations use all " + std::to_string(V) + " base-vocabulary tokens (" + std::to_string(v.collapsed) +
                 " rows look never trained" + why + "; rule: " + rule + ")";
    return v;
  }
  v.tokens = std::move(produced);
  v.restricted = true;
  v.decision = "explanations restricted to " + std::to_string(v.tokens.size()) + " of " + std::to_string(V) +
               " tokens (rule: " + rule + "; " + std::to_string(v.collapsed) + " rows are)";
  return v;
}

std::vector<std::vector<int32_t>> Explainer::explain(const std::vector<std::pair<int, int>>& neurons) {
  const LlamaDecoder& dec = model_.decoder();
  const int64_t D = dec.config().hidden;
  // Logit lens over the base vocabulary only (added tokens such as <image> excluded).
  Weight U = dec.lm_head();
  U.rows = std::min<int64_t>(U.rows, model_.tokenizer().base_vocab_size());
  std::vector<std::pair<int, int>> todo;
  for (auto& n : neurons)
    if (!cache_.count(n)) todo.push_back(n);
  std::sort(todo.begin(), todo.end());
  todo.erase(std::unique(todo.begin(), todo.end()), todo.end());
  const int64_t chunk = 128;
  std::vector<float> cols(chunk * D), logits(chunk * U.rows);
  for (size_t c0 = 0; c0 < todo.size(); c0 += chunk) {
    const int64_t m = std::min<int64_t>(chunk, static_cast<int64_t>(todo.size() - c0));
    for (int64_t j = 0; j < m; ++j) {
      const auto [layer, unit] = todo[c0 + j];
      const Weight& W = dec.layer(layer).down.w;  // [D, I]: the value vector is a column
      weight_column_f32(W, unit, &cols[j * D]);  // dequantized when W is int8
    }
    linear_exact(cols.data(), m, U, nullptr, logits.data());  // explanations are scores: fp32 under any --compute
    for (int64_t j = 0; j < m; ++j) {
      const float* l = logits.data() + j * U.rows;
      std::vector<int32_t> idx = allowed_;
      if (idx.empty()) {
        idx.resize(U.rows);
        std::iota(idx.begin(), idx.end(), 0);
      }
      const int64_t n = std::min<int64_t>(n_, static_cast<int64_t>(idx.size()));
      std::partial_sort(idx.begin(), idx.begin() + n, idx.end(),
                        [&](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
      idx.resize(n);
      cache_[todo[c0 + j]] = std::move(idx);
    }
  }
  std::vector<std::vector<int32_t>> out;
  for (auto& n : neurons) out.push_back(cache_.at(n));
  return out;
}

ImageFindResult find_neurons(const VisionLanguageModel& model, const WordNet* wordnet, const ImageU8& image,
                             const FindOptions& opt) {
  const LlamaDecoder& dec = model.decoder();
  const LlamaConfig& c = dec.config();
  const Tokenizer& tok = model.tokenizer();
  const int64_t L = c.n_layers, I = c.intermediate, D = c.hidden;
  if (opt.top_k < 1) fail_usage("--top-k must be at least 1");
  if (opt.edit && (opt.method == RankMethod::Gradient || opt.also_gradient))
    fail_usage("--edit cannot be combined with the gradient baseline: its taped backward pass runs no hooks");
  if (opt.top_k > L * I) fail_usage("--top-k ", opt.top_k, " is larger than the model's ", L * I, " FFN neurons");

  ImageFindResult r;
  ModelInput input = prepare_input(model, image, opt.prompt);
  r.image = std::move(input.image);
  r.encode_s = input.encode_s;
  PromptInputs& in = input.in;
  r.prompt_ids = in.prompt_ids;
  r.image_pos0 = in.image_pos0;
  r.image_tokens = in.image_tokens;

  if (opt.shuffle_seed) {
    // Permute the image-token embeddings before the LLM (the reference's --shuffle control).
    r.permutation.resize(in.image_tokens);
    std::iota(r.permutation.begin(), r.permutation.end(), 0);
    std::mt19937_64 rng(*opt.shuffle_seed);
    std::shuffle(r.permutation.begin(), r.permutation.end(), rng);
    permute_image_tokens(in, r.permutation);
  }

  const Hook hook = opt.activation == ActivationVariant::Act ? Hook::MlpAct : Hook::MlpPost;
  PredictingRowRecorder acts(hook, c.n_layers, I);
  PrefillRowsRecorder ffn_in(Hook::Ln2, opt.heatmaps ? c.n_layers : 0, D, in.image_pos0, in.image_tokens);
  // Every neuron's mean and max over the image rows, for the specificity metric (metrics.h).
  ImageRowStatsRecorder image_stats(hook, c.n_layers, I, in.image_pos0, in.image_tokens);
  GenerateOptions g;
  g.max_new_tokens = opt.max_new_tokens;
  g.sinks = {&acts, &image_stats};
  if (opt.edit) g.sinks.insert(g.sinks.begin(), opt.edit);  // first: the recorders see the edited model
  if (opt.heatmaps) g.sinks.push_back(&ffn_in);
  GenerateResult gen = generate(model, in, g);
  if (in.image_tokens > 0) r.image_acts = image_stats.result();
  r.generated_ids = gen.generated;
  r.caption = caption_text(tok, gen.generated);
  r.prefill_s = gen.prefill_s;
  r.decode_s = gen.decode_s;
  r.prefill_tokens = gen.prefill_tokens;
  r.decode_runs = gen.decode_tokens;
  if (opt.heatmaps) r.image_ffn_inputs = std::move(ffn_in.data());

  auto t0 = std::chrono::steady_clock::now();
  // Concepts: (word, lemma, token, step).
  if (opt.all_tokens) {
    for (size_t j = 0; j < gen.generated.size(); ++j) {
      ConceptResult cr;
      cr.token_id = gen.generated[j];
      cr.step = static_cast<int>(j);
      cr.word = cr.lemma = caption_text(tok, {cr.token_id});
      r.concepts.push_back(std::move(cr));
    }
  } else {
    std::vector<std::pair<std::string, std::string>> words;  // surface, lemma
    if (!opt.nouns.empty()) {
      for (auto& w : opt.nouns) words.emplace_back(w, w);
    } else {
      if (!wordnet) fail("internal: noun tagging needs WordNet");
      for (auto& n : find_nouns(*wordnet, r.caption)) words.emplace_back(n.surface, n.lemma);
    }
    std::set<int32_t> used;
    for (auto& [surface, lemma] : words) {
      const int32_t t = word_token(tok, surface);
      auto it = std::find(gen.generated.begin(), gen.generated.end(), t);
      if (it == gen.generated.end()) {
        r.skipped_nouns.push_back(surface);
        continue;
      }
      ConceptResult cr;
      cr.word = surface;
      cr.lemma = lemma;
      cr.token_id = t;
      cr.step = static_cast<int>(it - gen.generated.begin());
      r.concepts.push_back(std::move(cr));
    }
  }

  // One pass over each W_down for all target tokens.
  std::vector<int32_t> targets;
  for (auto& cr : r.concepts) targets.push_back(cr.token_id);
  std::vector<std::vector<float>> proj = token_unembed_proj(dec, targets, opt.fold_norm_gain);
  std::mt19937_64 rng(opt.seed);
  std::vector<float> score(L * I);
  for (size_t k = 0; k < r.concepts.size(); ++k) {
    ConceptResult& cr = r.concepts[k];
    const std::vector<float>& a = acts.step(cr.step);
    for (int64_t f = 0; f < L * I; ++f) score[f] = a[f] * proj[k][f];
    if (opt.method == RankMethod::Gradient || opt.also_gradient) {
      std::vector<float> attr = gradient_attribution(model, in, gen.generated, cr.step);
      std::vector<NeuronEntry>& dst = opt.method == RankMethod::Gradient ? cr.neurons : cr.gradient_neurons;
      for (auto& n : top_k(attr, I, opt.top_k)) dst.push_back({n.layer, n.unit, n.score});
      if (opt.method == RankMethod::Gradient) score = std::move(attr);  // random baselines report attributions
    }
    if (opt.method == RankMethod::Score)
      for (auto& n : top_k(score, I, opt.top_k)) cr.neurons.push_back({n.layer, n.unit, n.score});
    if (opt.random_baseline > 0) {
      std::uniform_int_distribution<int64_t> any(0, L * I - 1), unit(0, I - 1);
      for (int j = 0; j < opt.random_baseline; ++j) {
        const int64_t f = any(rng);
        cr.random_uniform.push_back({static_cast<int>(f / I), static_cast<int>(f % I), score[f]});
        // Layer-matched: same layer as the j-th top neuron (cycling when N > k).
        const int layer = cr.neurons[j % cr.neurons.size()].layer;
        const int64_t u = unit(rng);
        cr.random_layer_matched.push_back({layer, static_cast<int>(u), score[layer * I + u]});
      }
    }
  }
  r.score_s = since(t0);
  return r;
}

std::vector<float> neuron_image_maps(const VisionLanguageModel& model, const ImageFindResult& r,
                                     const std::vector<NeuronEntry>& neurons, ActivationVariant v) {
  const LlamaDecoder& dec = model.decoder();
  const int64_t D = dec.config().hidden, P = r.image_tokens;
  if (r.image_ffn_inputs.empty()) fail("internal: image maps need the image-row FFN inputs (run with heatmaps)");
  std::vector<float> maps(neurons.size() * P);
  // One product per layer for all its listed neurons: their gate (and up)
  // rows gathered as fp32 into W [n, D], then h [P, D] · Wᵀ. (A product per
  // neuron re-packed all P × D of h each time: 64 s of a 13B find --heatmaps.)
  // Each output is the same sum over D in the same order either way.
  std::vector<std::vector<size_t>> by_layer(static_cast<size_t>(dec.config().n_layers));
  for (size_t n = 0; n < neurons.size(); ++n) by_layer[static_cast<size_t>(neurons[n].layer)].push_back(n);
  std::vector<float> wg, wu, g, u;
  for (size_t layer = 0; layer < by_layer.size(); ++layer) {
    const std::vector<size_t>& idx = by_layer[layer];
    if (idx.empty()) continue;
    const int64_t n_sel = static_cast<int64_t>(idx.size());
    const LlamaLayer& Lr = dec.layer(static_cast<int>(layer));
    const bool swiglu = v == ActivationVariant::SwiGLU;
    wg.resize(static_cast<size_t>(n_sel * D));
    if (swiglu) wu.resize(wg.size());
    for (int64_t j = 0; j < n_sel; ++j) {
      weight_row_f32(Lr.gate.w, neurons[idx[j]].unit, 0, D, wg.data() + j * D);
      if (swiglu) weight_row_f32(Lr.up.w, neurons[idx[j]].unit, 0, D, wu.data() + j * D);
    }
    const float* h = r.image_ffn_inputs.data() + static_cast<int64_t>(layer) * P * D;
    g.resize(static_cast<size_t>(P * n_sel));
    linear(h, P, Weight{DType::F32, n_sel, D, wg.data()}, nullptr, g.data());
    silu_inplace(g.data(), P * n_sel);
    if (swiglu) {
      u.resize(g.size());
      linear(h, P, Weight{DType::F32, n_sel, D, wu.data()}, nullptr, u.data());
      mul_inplace(g.data(), u.data(), P * n_sel);
    }
    for (int64_t j = 0; j < n_sel; ++j) {
      float* m = maps.data() + idx[j] * P;
      for (int64_t p = 0; p < P; ++p) {
        // Position p holds image token permutation[p]: put its value back at that token.
        const int64_t orig = r.permutation.empty() ? p : r.permutation[p];
        m[orig] = g[p * n_sel + j];
      }
    }
  }
  return maps;
}

}  // namespace mmn
