#include "neurons/edit.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>

#include "io/image.h"
#include "kernels/convert.h"
#include "models/generate.h"
#include "models/quantize.h"
#include "neurons/random_neurons.h"
#include "neurons/score.h"
#include "util/error.h"
#include "util/progress.h"

namespace mmn {

using nlohmann::json;

EditRule parse_edit_rule(const std::string& s) {
  if (s == "paper") return EditRule::Paper;
  if (s == "minnorm") return EditRule::MinNorm;
  if (s == "constrained") return EditRule::Constrained;
  fail_usage("--rule: expected paper, minnorm or constrained, got '", s, "'");
}

const char* edit_rule_name(EditRule r) {
  return r == EditRule::Paper ? "paper" : r == EditRule::MinNorm ? "minnorm" : "constrained";
}

int32_t concept_token(const Tokenizer& tok, const std::string& word, const char* flag) {
  std::vector<int32_t> ids = word_token_ids(tok, word);
  if (ids.size() != 1)
    fail(flag, " '", word, "' is not a single token (the tokenizer makes ", ids.size(), " tokens of it)");
  return ids[0];
}

std::vector<CaptionedImage> caption_images(const VisionLanguageModel& model, const std::vector<std::string>& paths,
                                           const PromptText& prompt, int max_new_tokens, NeuronIntervention* iv,
                                           bool show_progress, const std::string& label) {
  std::vector<CaptionedImage> out;
  std::unique_ptr<Progress> bar;
  if (show_progress) bar = std::make_unique<Progress>(label, static_cast<int64_t>(paths.size()), "images");
  for (auto& p : paths) {
    CaptionedImage c;
    c.path = p;
    c.in = model.build_inputs(prompt, model.encode_image(model.preprocess(load_image(p)), nullptr), nullptr);
    GenerateOptions g;
    g.max_new_tokens = max_new_tokens;
    if (iv) g.sinks = {iv};
    c.caption = generate(model, c.in, g).generated;
    out.push_back(std::move(c));
    if (bar) bar->update(static_cast<int64_t>(out.size()));
  }
  if (bar) bar->finish();
  return out;
}

namespace {

bool has(const std::vector<int32_t>& ids, int32_t t) { return t >= 0 && std::find(ids.begin(), ids.end(), t) != ids.end(); }

std::vector<int> steps_of(const std::vector<int32_t>& ids, int32_t t) {
  std::vector<int> out;
  for (size_t j = 0; j < ids.size(); ++j)
    if (ids[j] == t) out.push_back(static_cast<int>(j));
  return out;
}

std::vector<int32_t> forced_ids(const CaptionedImage& c) { return {c.caption.begin(), c.caption.end() - 1}; }

// Activations of the chosen neurons (down_proj input) at every row of a
// teacher-forced pass over the clean caption, the rms of the residual entering
// the final norm, and the logits of the caption rows.
struct FitRows {
  std::vector<float> p;    // [rows, k]
  std::vector<float> rms;  // [rows]
  int64_t rows = 0, prompt_rows = 0;
  std::vector<std::vector<float>> logits;  // [caption steps][V]
};

FitRows collect_rows(const VisionLanguageModel& model, const CaptionedImage& c, const std::vector<NeuronRef>& ns) {
  const LlamaConfig& cfg = model.decoder().config();
  const int64_t D = cfg.hidden, k = static_cast<int64_t>(ns.size());
  FitRows f;
  f.prompt_rows = c.in.seq_len;
  f.rows = c.in.seq_len + static_cast<int64_t>(c.caption.size()) - 1;
  f.p.assign(static_cast<size_t>(f.rows * k), 0.f);
  f.rms.assign(static_cast<size_t>(f.rows), 1.f);
  FunctionHooks hooks;
  std::set<int> layers;
  for (auto& n : ns) layers.insert(n.layer);
  for (int l : layers)
    hooks.add(Hook::MlpPost, l, [&, l](const CaptureEvent& e) {
      for (int64_t j = 0; j < k; ++j)
        if (ns[j].layer == l)
          for (int64_t r = 0; r < e.rows; ++r) f.p[(e.pos0 + r) * k + j] = e.data[r * e.width + ns[j].unit];
    });
  hooks.add(Hook::ResidPost, cfg.n_layers - 1, [&](const CaptureEvent& e) {
    for (int64_t r = 0; r < e.rows; ++r) {
      double s = 0;
      for (int64_t d = 0; d < D; ++d) s += double(e.data[r * D + d]) * e.data[r * D + d];
      f.rms[e.pos0 + r] = static_cast<float>(std::sqrt(s / double(D) + cfg.rms_eps));
    }
  });
  ForcedOptions fo;
  fo.sinks = {&hooks};
  ForcedPass pass = forced_pass(model, c.in, forced_ids(c), fo);
  f.logits = std::move(pass.logits);
  return f;
}

// Solves the symmetric positive definite system A x = b (Cholesky), A [n, n].
std::vector<double> solve_spd(std::vector<double> A, std::vector<double> b, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    double d = A[j * n + j];
    for (int64_t k = 0; k < j; ++k) d -= A[j * n + k] * A[j * n + k];
    if (!(d > 0)) fail("edit: the least-squares system is singular (too few rows for ", n, " neurons?)");
    d = std::sqrt(d);
    A[j * n + j] = d;
    for (int64_t i = j + 1; i < n; ++i) {
      double s = A[i * n + j];
      for (int64_t k = 0; k < j; ++k) s -= A[i * n + k] * A[j * n + k];
      A[i * n + j] = s / d;
    }
  }
  for (int64_t i = 0; i < n; ++i) {  // L y = b
    for (int64_t k = 0; k < i; ++k) b[i] -= A[i * n + k] * b[k];
    b[i] /= A[i * n + i];
  }
  for (int64_t i = n - 1; i >= 0; --i) {  // Lᵀ x = y
    for (int64_t k = i + 1; k < n; ++k) b[i] -= A[k * n + i] * b[k];
    b[i] /= A[i * n + i];
  }
  return b;
}

std::vector<float> unembed_row(const LlamaDecoder& dec, int32_t t) {
  std::vector<float> u(static_cast<size_t>(dec.config().hidden));
  weight_row_f32(dec.lm_head(), t, 0, dec.config().hidden, u.data());
  return u;
}

int32_t argmax_except(const std::vector<float>& v, int32_t skip) {
  int32_t best = -1;
  for (size_t i = 0; i < v.size(); ++i)
    if (static_cast<int32_t>(i) != skip && (best < 0 || v[i] > v[best])) best = static_cast<int32_t>(i);
  return best;
}

}  // namespace

std::vector<std::vector<int32_t>> recaption(const VisionLanguageModel& model, const std::vector<CaptionedImage>& clean,
                                            NeuronIntervention* iv, int max_new_tokens) {
  std::vector<std::vector<int32_t>> out;
  for (auto& c : clean) {
    GenerateOptions g;
    g.max_new_tokens = max_new_tokens;
    if (iv) g.sinks = {iv};
    out.push_back(generate(model, c.in, g).generated);
  }
  return out;
}

EditOutcome judge_captions(const std::vector<CaptionedImage>& clean, const std::vector<std::vector<int32_t>>& edited,
                           int32_t s, int32_t t) {
  EditOutcome o;
  for (size_t i = 0; i < clean.size(); ++i) {
    const std::vector<int32_t>& before = clean[i].caption;
    const std::vector<int32_t>& ids = edited[i];
    if (has(before, s)) {
      ++o.with_source;
      if (!has(ids, s) && (t < 0 || has(ids, t))) ++o.success;
    } else {
      ++o.without_source;
      if (ids == before) ++o.unchanged;
      if (t >= 0 && has(ids, t) && !has(before, t)) ++o.leaked;
    }
  }
  return o;
}

EditOutcome judge_edit(const VisionLanguageModel& model, const std::vector<CaptionedImage>& clean,
                       NeuronIntervention* iv, int32_t s, int32_t t, int max_new_tokens) {
  return judge_captions(clean, recaption(model, clean, iv, max_new_tokens), s, t);
}

ValueEdit build_edit(const VisionLanguageModel& model, const std::vector<std::string>& edit_images,
                     const std::vector<std::string>& locality_images, const EditOptions& opt) {
  // An edit is stored as the checkpoint's own value-vector bytes; int8 columns
  // with per-block scales shared across neurons cannot hold an exact delta.
  refuse_quantized(model, "edit");
  const LlamaDecoder& dec = model.decoder();
  const LlamaConfig& cfg = dec.config();
  const int L = cfg.n_layers;
  const int64_t I = cfg.intermediate, D = cfg.hidden;
  const Tokenizer& tok = model.tokenizer();
  const int32_t S = concept_token(tok, opt.from, "--from");
  const int32_t T = opt.to.empty() ? -1 : concept_token(tok, opt.to, "--to");
  if (T == S) fail_usage("--to '", opt.to, "' is the same token as --from '", opt.from, "'");
  if (opt.neurons < 1 || opt.neurons * 2 > L * I) fail_usage("--neurons must be between 1 and half the model's ", L * I, " neurons");
  if (edit_images.empty()) fail("edit: no edit images");
  if (locality_images.empty()) fail("edit: no locality images (--locality-images DIR)");

  // 1. Clean captions; the edit set is the images that say S, the locality-fit set those that do not.
  std::vector<CaptionedImage> all_edit =
      caption_images(model, edit_images, opt.prompt, opt.max_new_tokens, nullptr, opt.show_progress, "edit set");
  std::vector<CaptionedImage> E, Lfit;
  std::vector<std::string> skipped;
  for (auto& c : all_edit) {
    if (has(c.caption, S)) E.push_back(std::move(c));
    else skipped.push_back(c.path);
  }
  if (E.empty())
    fail("--from '", opt.from, "' is never generated on the edit set (", edit_images.size(), " images)");
  for (auto& c : caption_images(model, locality_images, opt.prompt, opt.max_new_tokens, nullptr, opt.show_progress,
                                "locality set"))
    if (!has(c.caption, S)) Lfit.push_back(std::move(c));
  if (Lfit.empty()) fail("edit: every locality image's caption says '", opt.from, "'");

  // 2. Selection: the summed score of S at every S-predicting row of the edit set.
  std::vector<float> score(static_cast<size_t>(opt.given_neurons.empty() ? L * I : 0), 0.f);
  const Hook sel_hook = opt.selection == ActivationVariant::Act ? Hook::MlpAct : Hook::MlpPost;
  const std::vector<float> proj = opt.given_neurons.empty() ? token_unembed_proj(dec, {S})[0] : std::vector<float>{};
  for (size_t ei = 0; ei < (opt.given_neurons.empty() ? E.size() : 0); ++ei) {
    const CaptionedImage& c = E[ei];
    const std::vector<int> steps = steps_of(c.caption, S);
    FunctionHooks h;
    for (int l = 0; l < L; ++l)
      h.add(sel_hook, l, [&, l](const CaptureEvent& e) {
        for (int st : steps) {
          const int64_t row = c.in.seq_len - 1 + st - e.pos0;
          for (int64_t i = 0; i < I; ++i) score[l * I + i] += e.data[row * e.width + i] * proj[l * I + i];
        }
      });
    ForcedOptions fo;
    fo.sinks = {&h};
    forced_pass(model, c.in, forced_ids(c), fo);
  }
  std::vector<NeuronRef> ns = opt.given_neurons;
  std::vector<float> sel_scores;
  if (ns.empty())
    for (auto& n : top_k(score, I, opt.neurons)) {
      ns.push_back({n.layer, n.unit});
      sel_scores.push_back(n.score);
    }
  if (opt.random_control) {  // the same budget, layer-matched: another unit of each chosen neuron's layer
    std::mt19937_64 rng(opt.seed ^ 0xED17C0DEull);
    ns = draw_layer_matched_neurons(ns, I, rng);
  }
  const int64_t k = static_cast<int64_t>(ns.size());

  // 3. Rows: S-predicting rows of the edit set (targets) and every other row (locality).
  std::vector<std::vector<float>> xe, xr;  // scaled activations per row
  std::vector<double> ye;
  std::map<int32_t, int> runner_up;
  std::vector<FitRows> fits_e, fits_l;
  for (auto& c : E) fits_e.push_back(collect_rows(model, c, ns));
  for (auto& c : Lfit) fits_l.push_back(collect_rows(model, c, ns));
  for (size_t i = 0; i < E.size(); ++i)
    for (int st : steps_of(E[i].caption, S)) ++runner_up[argmax_except(fits_e[i].logits[st], S)];
  int32_t R = T;
  if (T < 0) {  // suppression: move S towards what the model would say instead, most often
    R = std::max_element(runner_up.begin(), runner_up.end(),
                         [](auto& a, auto& b) { return a.second < b.second || (a.second == b.second && a.first > b.first); })
            ->first;
  }
  const std::vector<float> uS = unembed_row(dec, S), uR = unembed_row(dec, R);
  const std::vector<float>& g = dec.final_norm_weight();
  std::vector<float> dir_raw(D), dir_gain(D);  // U[R] − U[S], and g ⊙ (U[R] − U[S])
  double n_raw = 0, n_gain = 0;
  for (int64_t d = 0; d < D; ++d) {
    dir_raw[d] = uR[d] - uS[d];
    dir_gain[d] = g[d] * dir_raw[d];
    n_raw += double(dir_raw[d]) * dir_raw[d];
    n_gain += double(dir_gain[d]) * dir_gain[d];
  }
  n_raw = std::sqrt(n_raw);
  n_gain = std::sqrt(n_gain);
  // Margin shift per unit of c along û = dir_gain/‖dir_gain‖ at a row with rms ρ: ‖dir_gain‖/ρ.
  auto add_rows = [&](const FitRows& f, const std::vector<int>& target_steps) {
    std::set<int64_t> targets;
    for (int st : target_steps) targets.insert(f.prompt_rows - 1 + st);
    for (int64_t r = 0; r < f.rows; ++r) {
      std::vector<float> x(static_cast<size_t>(k));
      for (int64_t j = 0; j < k; ++j) x[j] = static_cast<float>(f.p[r * k + j] * n_gain / f.rms[r]);
      if (!targets.count(r)) {
        xr.push_back(std::move(x));
        continue;
      }
      const std::vector<float>& lg = f.logits[r - (f.prompt_rows - 1)];
      // Wanted shift of logit_R − logit_S: R should beat the best other token by the target margin.
      const int32_t best_other = argmax_except(lg, R);
      ye.push_back(static_cast<double>(lg[best_other]) - lg[R] + opt.target_margin);
      xe.push_back(std::move(x));
    }
  };
  for (size_t i = 0; i < E.size(); ++i) add_rows(fits_e[i], steps_of(E[i].caption, S));
  for (size_t i = 0; i < Lfit.size(); ++i) add_rows(fits_l[i], {});
  const double nE = static_cast<double>(xe.size()), nL = static_cast<double>(xr.size());

  // 4. The rule's unit-scale deltas [k, D].
  std::vector<float> base(static_cast<size_t>(k * D), 0.f);
  std::vector<double> mean_a(static_cast<size_t>(k), 0.0);  // mean activation at the target rows
  for (auto& x : xe)
    for (int64_t j = 0; j < k; ++j) mean_a[j] += x[j] / n_gain / nE;  // undo the margin scaling, keep 1/ρ
  double mean_y = 0;
  for (double y : ye) mean_y += y / nE;
  std::vector<double> c(static_cast<size_t>(k), 0.0);
  if (opt.rule == EditRule::Constrained) {
    std::vector<double> A(static_cast<size_t>(k * k), 0.0), b(static_cast<size_t>(k), 0.0);
    const double wl = nL > 0 ? opt.locality_weight * nE / nL : 0.0;
    for (size_t r = 0; r < xe.size(); ++r)
      for (int64_t i = 0; i < k; ++i) {
        b[i] += xe[r][i] * ye[r];
        for (int64_t j = 0; j < k; ++j) A[i * k + j] += double(xe[r][i]) * xe[r][j];
      }
    for (auto& x : xr)
      for (int64_t i = 0; i < k; ++i)
        for (int64_t j = 0; j < k; ++j) A[i * k + j] += wl * double(x[i]) * x[j];
    double tr = 0;
    for (int64_t i = 0; i < k; ++i) tr += A[i * k + i];
    for (int64_t i = 0; i < k; ++i) A[i * k + i] += opt.ridge * tr / double(k) + 1e-12;
    c = solve_spd(A, b, k);
    for (int64_t j = 0; j < k; ++j)
      for (int64_t d = 0; d < D; ++d) base[j * D + d] = static_cast<float>(c[j] * dir_gain[d] / n_gain);
  } else if (opt.rule == EditRule::Paper) {
    for (int64_t j = 0; j < k; ++j)
      for (int64_t d = 0; d < D; ++d) base[j * D + d] = static_cast<float>(dir_raw[d] / n_raw);
  } else {  // minnorm: δ_i = ā_i·(U[R] − U[S]) / Σ ā_n²
    double ss = 0;
    for (double a : mean_a) ss += a * a;
    if (!(ss > 0)) fail("edit: the chosen neurons never fire at the rows that predict '", opt.from, "'");
    for (int64_t j = 0; j < k; ++j)
      for (int64_t d = 0; d < D; ++d) base[j * D + d] = static_cast<float>(mean_a[j] * dir_raw[d] / ss);
  }
  // The scale at which the linear logit-lens estimate of the mean margin shift equals the mean wanted shift.
  std::vector<double> along(static_cast<size_t>(k), 0.0);  // û_gain · δ_j at unit scale
  for (int64_t j = 0; j < k; ++j)
    for (int64_t d = 0; d < D; ++d) along[j] += double(base[j * D + d]) * dir_gain[d] / n_gain;
  double lin = 0;
  for (auto& x : xe)
    for (int64_t j = 0; j < k; ++j) lin += x[j] * along[j] / nE;
  const double s0 = lin > 0 ? mean_y / lin : 1.0;

  // 5. Line search over the scale: best min(success on E, locality on Lfit).
  json grid = json::array();
  double best_scale = 0, best_key = -1, best_sum = -1;
  EditOutcome best_e, best_l;
  std::unique_ptr<Progress> bar;
  const std::vector<double> mult = {0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 3, 4, 6, 8};
  if (opt.show_progress) bar = std::make_unique<Progress>("line search", static_cast<int64_t>(mult.size()), "scales");
  for (size_t m = 0; m < mult.size(); ++m) {
    const double s = s0 * mult[m];
    NeuronIntervention iv(L, D, I);
    std::vector<float> dj(static_cast<size_t>(D));
    for (int64_t j = 0; j < k; ++j) {
      for (int64_t d = 0; d < D; ++d) dj[d] = static_cast<float>(s * base[j * D + d]);
      iv.add_delta(ns[j], dj.data());
    }
    EditOutcome oe = judge_edit(model, E, &iv, S, T, opt.max_new_tokens);
    EditOutcome ol = judge_edit(model, Lfit, &iv, S, T, opt.max_new_tokens);
    const double key = std::min(oe.success_rate(), ol.locality_rate()), sum = oe.success_rate() + ol.locality_rate();
    grid.push_back({{"scale", s}, {"multiple", mult[m]}, {"success", oe.success_rate()},
                    {"locality", ol.locality_rate()}, {"leak", ol.leak_rate()}});
    if (key > best_key + 1e-12 || (std::fabs(key - best_key) <= 1e-12 && sum > best_sum + 1e-12)) {
      best_key = key, best_sum = sum, best_scale = s, best_e = oe, best_l = ol;
    }
    if (bar) bar->update(static_cast<int64_t>(m + 1));
  }
  if (bar) bar->finish();

  // 6. New columns at the chosen scale, rounded to the stored dtype by make_value_edit.
  std::vector<float> cols(static_cast<size_t>(k * D));
  for (int64_t j = 0; j < k; ++j) {
    const std::vector<uint8_t> orig = read_value_column(model, ns[j]);
    convert_to_f32(dec.layer(ns[j].layer).down.w.dtype, orig.data(), &cols[j * D], D);
    for (int64_t d = 0; d < D; ++d) cols[j * D + d] += static_cast<float>(best_scale * base[j * D + d]);
  }
  json edit_set = json::array(), loc_set = json::array();
  for (auto& c2 : E) edit_set.push_back(c2.path);
  for (auto& c2 : Lfit) loc_set.push_back(c2.path);
  json info = {{"from", opt.from},
               {"to", opt.to},
               {"from_token_id", S},
               {"to_token_id", T < 0 ? json(nullptr) : json(T)},
               {"direction_token_id", R},
               {"rule", edit_rule_name(opt.rule)},
               {"random_control", opt.random_control},
               {"parameters",
                {{"neurons", opt.neurons},
                 {"selection_activation", activation_variant_name(opt.selection)},
                 {"locality_weight", opt.locality_weight},
                 {"ridge", opt.ridge},
                 {"target_margin", opt.target_margin},
                 {"scale", best_scale},
                 {"linear_scale", s0},
                 {"seed", opt.seed},
                 {"max_new_tokens", opt.max_new_tokens},
                 {"query", opt.prompt.query},
                 {"prefix", opt.prompt.prefix}}},
               {"selection_scores", sel_scores},
               {"edit_set", edit_set},
               {"edit_set_skipped", skipped},
               {"locality_fit_set", loc_set},
               {"rows", {{"target", xe.size()}, {"locality", xr.size()}}},
               {"fit", {{"success", best_e.success_rate()}, {"locality", best_l.locality_rate()}, {"leak", best_l.leak_rate()}}},
               {"line_search", grid}};
  return make_value_edit(model, ns, cols, info);
}

}  // namespace mmn
