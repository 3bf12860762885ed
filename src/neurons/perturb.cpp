#include "neurons/perturb.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <set>

#include "io/image.h"
#include "models/generate.h"
#include "neurons/random_neurons.h"
#include "util/error.h"
#include "util/progress.h"

namespace mmn {

namespace {

// log p(t) and the margin logit[t] − max_{u≠t} logit[u] of one row of logits.
void teacher_forced_stats(const std::vector<float>& logits, int32_t t, double* logprob, double* margin) {
  double mx = -INFINITY, other = -INFINITY;
  for (size_t u = 0; u < logits.size(); ++u) {
    mx = std::max<double>(mx, logits[u]);
    if (static_cast<int32_t>(u) != t) other = std::max<double>(other, logits[u]);
  }
  double z = 0;
  for (float v : logits) z += std::exp(static_cast<double>(v) - mx);
  *logprob = static_cast<double>(logits[t]) - mx - std::log(z);
  *margin = static_cast<double>(logits[t]) - other;
}

// The caption with the token at `step` left out: what "the rest" of it is.
std::vector<int32_t> without_step(const std::vector<int32_t>& ids, int step) {
  std::vector<int32_t> out = ids;
  if (step >= 0 && step < static_cast<int>(out.size())) out.erase(out.begin() + step);
  return out;
}

void judge(PerturbOutcome& o, const std::vector<int32_t>& original, int32_t token, int step) {
  o.survives = std::find(o.generated.begin(), o.generated.end(), token) != o.generated.end();
  o.changed = o.generated != original;
  o.rest_changed = without_step(o.generated, step) != without_step(original, step);
}

struct PlannedPass {
  size_t item, condition;
  NeuronIntervention iv;
};

}  // namespace

std::string condition_label(const PerturbCondition& c) {
  char buf[64];
  if (c.mode == "zero") std::snprintf(buf, sizeof buf, "%s %d zero", c.set.c_str(), c.n);
  else std::snprintf(buf, sizeof buf, "%s %d sigma=%g", c.set.c_str(), c.n, static_cast<double>(c.sigma));
  return buf;
}

PerturbReport run_perturbation(const VisionLanguageModel& model, const RunData& run, const PerturbOptions& opt) {
  const LlamaConfig& c = model.decoder().config();
  const int L = c.n_layers;
  const int64_t I = c.intermediate;
  if (opt.tops.empty()) fail("perturb: give at least one --top N");
  if (opt.draws < 1) fail_usage("perturb: --draws must be at least 1");
  for (float s : opt.sigmas)
    if (!(s >= 0) || !std::isfinite(s)) fail_usage("perturb: --sigma must be finite and ≥ 0, got ", s);
  for (int n : opt.tops) {
    if (n < 1) fail_usage("perturb: --top must be at least 1, got ", n);
    if (static_cast<int64_t>(n) * 2 > L * I) fail_usage("perturb: --top ", n, " is more than half of the model's ", L * I, " neurons");
  }
  struct Mode {
    std::string name;
    float sigma;
  };
  std::vector<Mode> modes;
  if (opt.zero || opt.sigmas.empty()) modes.push_back({"zero", 0.f});
  for (float s : opt.sigmas) modes.push_back({"sigma", s});
  const nlohmann::json& o = run.options();
  PromptText prompt{o.value("query", PromptText{}.query), o.value("prefix", PromptText{}.prefix)};
  const int max_new = o.value("max_new_tokens", 50);

  PerturbReport rep;
  auto t0 = std::chrono::steady_clock::now();
  const int64_t n_images = opt.max_images > 0 ? std::min<int64_t>(opt.max_images, run.images.size())
                                              : static_cast<int64_t>(run.images.size());
  std::unique_ptr<Progress> bar;
  if (opt.show_progress) bar = std::make_unique<Progress>("perturb", n_images, "images");
  for (int64_t ii = 0; ii < n_images; ++ii) {
    const RunImage& im = run.images[ii];
    if (im.concepts.empty()) {
      if (bar) bar->update(ii + 1);
      continue;
    }
    for (int n : opt.tops)
      if (static_cast<size_t>(n) > im.concepts[0].neurons.size())
        fail(im.dir, "/neurons.npy: --top ", n, " is larger than the ", im.concepts[0].neurons.size(),
             " neurons the run kept per noun (rerun find with a larger --top-k)");
    ImageU8 img = load_image(im.image);
    PreprocessedImage px = model.preprocess(img);
    PromptInputs in = model.build_inputs(prompt, model.encode_image(px, nullptr), nullptr);
    if (!im.prompt_ids.empty() && im.prompt_ids != in.prompt_ids)
      fail(im.dir, "/result.json: prompt ids differ from this model's tokenization of the run's prompt (another model?)");
    if (!im.permutation.empty()) permute_image_tokens(in, im.permutation);
    const std::vector<int32_t>& orig = im.generated_ids;
    const std::vector<int32_t> forced(orig.begin(), orig.end() - 1);  // every token but the last is fed back

    // Plan every pass of this image first: the clean pass keeps the residual
    // stream at each layer an intervention starts from.
    const size_t item0 = rep.items.size();
    std::vector<PlannedPass> plan;
    for (size_t ci = 0; ci < im.concepts.size(); ++ci) {
      const RunConcept& rc = im.concepts[ci];
      PerturbItem item;
      item.image_id = im.id;
      item.word = rc.word;
      item.token_id = rc.token_id;
      item.step = rc.step;
      for (int n : opt.tops) {
        std::vector<NeuronRef> top;
        for (int k = 0; k < n; ++k) top.push_back({rc.neurons[k].layer, rc.neurons[k].unit});
        for (auto& m : modes) {
          for (const char* set : {"top", "uniform", "layer"}) {
            const std::string s = set;
            if ((s == "uniform" && !opt.random_uniform) || (s == "layer" && !opt.random_layer)) continue;
            PerturbCondition cond;
            cond.set = s;
            cond.n = n;
            cond.mode = m.name;
            cond.sigma = m.sigma;
            const size_t cidx = item.conditions.size();
            // The top set is fixed; zeroing it is deterministic (one draw), noise is redrawn.
            const int draws = (s == "top" && m.name == "zero") ? 1 : opt.draws;
            for (int d = 0; d < draws; ++d) {
              uint32_t sigma_bits;
              std::memcpy(&sigma_bits, &m.sigma, sizeof sigma_bits);
              std::mt19937_64 rng(mix_seed(opt.seed, {hash_string(im.id), ci, hash_string(s), static_cast<uint64_t>(n),
                                                      hash_string(m.name), sigma_bits, static_cast<uint64_t>(d)}));
              std::vector<NeuronRef> ns = s == "top" ? top : s == "uniform" ? draw_uniform_neurons(n, L, I, rng)
                                                                             : draw_layer_matched_neurons(top, I, rng);
              PlannedPass pp{item0 + ci, cidx, NeuronIntervention(L, c.hidden, I)};
              for (auto& nr : ns) {
                if (m.name == "zero") pp.iv.ablate(nr);
                else pp.iv.add_noise(nr, m.sigma, rng);
              }
              plan.push_back(std::move(pp));
            }
            item.conditions.push_back(std::move(cond));
          }
        }
      }
      rep.items.push_back(std::move(item));
    }

    ForcedOptions clean_opt;
    if (opt.base) clean_opt.sinks.push_back(opt.base);
    std::set<int> starts;
    if (opt.reuse)
      for (auto& pp : plan)
        if (pp.iv.lowest_layer() > 0) starts.insert(pp.iv.lowest_layer());
    clean_opt.keep_resid.assign(starts.begin(), starts.end());
    ForcedPass clean = forced_pass(model, in, forced, clean_opt);
    bool reproduced = true;
    for (size_t j = 0; j < orig.size(); ++j)
      if (std::max_element(clean.logits[j].begin(), clean.logits[j].end()) - clean.logits[j].begin() != orig[j])
        reproduced = false;
    for (size_t ci = 0; ci < im.concepts.size(); ++ci) {
      PerturbItem& item = rep.items[item0 + ci];
      teacher_forced_stats(clean.logits[item.step], item.token_id, &item.clean.logprob, &item.clean.margin);
      item.clean.generated = orig;
      judge(item.clean, orig, item.token_id, item.step);
      item.clean_reproduced = reproduced;
    }

    for (auto& pp : plan) {
      ForcedOptions fo;
      if (opt.base) fo.sinks.push_back(opt.base);
      fo.sinks.push_back(&pp.iv);
      fo.reuse = &clean;
      fo.first_layer = opt.reuse ? pp.iv.lowest_layer() : 0;
      fo.extra_capacity = max_new;
      ForcedPass p = forced_pass(model, in, forced, fo);
      PerturbItem& item = rep.items[pp.item];
      PerturbOutcome out;
      teacher_forced_stats(p.logits[item.step], item.token_id, &out.logprob, &out.margin);
      out.generated = greedy_from_forced(model, p, fo.sinks, max_new);
      judge(out, orig, item.token_id, item.step);
      item.conditions[pp.condition].draws.push_back(std::move(out));
      ++rep.passes;
    }
    if (bar) bar->update(ii + 1);
  }
  if (bar) bar->finish();
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

namespace {

// Per item, the mean over draws of f(outcome) for the condition with `label`.
std::vector<double> per_item(const PerturbReport& rep, const std::string& label,
                             double (*f)(const PerturbOutcome&, const PerturbOutcome& clean)) {
  std::vector<double> out;
  for (auto& it : rep.items)
    for (auto& c : it.conditions)
      if (condition_label(c) == label) {
        double s = 0;
        for (auto& d : c.draws) s += f(d, it.clean);
        out.push_back(c.draws.empty() ? 0 : s / static_cast<double>(c.draws.size()));
      }
  return out;
}

double delta_margin(const PerturbOutcome& o, const PerturbOutcome& c) { return o.margin - c.margin; }
double delta_logprob(const PerturbOutcome& o, const PerturbOutcome& c) { return o.logprob - c.logprob; }
double noun_changed(const PerturbOutcome& o, const PerturbOutcome&) { return o.survives ? 0 : 1; }
double rest_changed(const PerturbOutcome& o, const PerturbOutcome&) { return o.rest_changed ? 1 : 0; }
double margin_drop(const PerturbOutcome& o, const PerturbOutcome& c) { return c.margin - o.margin; }

}  // namespace

nlohmann::json summarize_perturbation(const PerturbReport& rep, uint64_t seed) {
  using nlohmann::json;
  std::vector<const PerturbCondition*> kinds;  // one per label, in first-seen order
  std::set<std::string> seen;
  for (auto& it : rep.items)
    for (auto& c : it.conditions)
      if (seen.insert(condition_label(c)).second) kinds.push_back(&c);
  json conds = json::array(), comps = json::array();
  for (auto* c : kinds) {
    const std::string label = condition_label(*c);
    const uint64_t s = mix_seed(seed, {hash_string(label)});
    conds.push_back({{"label", label},
                     {"set", c->set},
                     {"n", c->n},
                     {"mode", c->mode},
                     {"sigma", c->mode == "zero" ? json(nullptr) : json(c->sigma)},
                     {"delta_margin", to_json(bootstrap_mean(per_item(rep, label, delta_margin), s))},
                     {"delta_logprob", to_json(bootstrap_mean(per_item(rep, label, delta_logprob), s + 1))},
                     {"noun_changed", to_json(bootstrap_mean(per_item(rep, label, noun_changed), s + 2))},
                     {"rest_changed", to_json(bootstrap_mean(per_item(rep, label, rest_changed), s + 3))}});
  }
  for (auto* c : kinds) {
    if (c->set != "top") continue;
    for (auto* r : kinds) {
      if (r->set == "top" || r->n != c->n || r->mode != c->mode || r->sigma != c->sigma) continue;
      const std::string lt = condition_label(*c), lr = condition_label(*r);
      const uint64_t s = mix_seed(seed, {hash_string(lt), hash_string(lr)});
      comps.push_back(
          {{"top", lt},
           {"random", lr},
           {"delta_margin_diff", to_json(bootstrap_paired_diff(per_item(rep, lt, delta_margin),
                                                               per_item(rep, lr, delta_margin), s))},
           {"margin_drop_ratio",
            to_json(bootstrap_ratio(per_item(rep, lt, margin_drop), per_item(rep, lr, margin_drop), s + 1))},
           {"noun_changed_diff", to_json(bootstrap_paired_diff(per_item(rep, lt, noun_changed),
                                                               per_item(rep, lr, noun_changed), s + 2))}});
    }
  }
  int64_t reproduced = 0;
  for (auto& it : rep.items) reproduced += it.clean_reproduced;
  return {{"items", rep.items.size()},
          {"clean_reproduced", reproduced},
          {"passes", rep.passes},
          {"seconds", rep.seconds},
          {"conditions", conds},
          {"comparisons", comps}};
}

nlohmann::json perturbation_to_json(const PerturbReport& rep, const Tokenizer& tok, const PerturbOptions& opt) {
  using nlohmann::json;
  auto outcome = [&](const PerturbOutcome& o) {
    return json{{"logprob", o.logprob},   {"margin", o.margin},   {"survives", o.survives},
                {"changed", o.changed},   {"rest_changed", o.rest_changed},
                {"caption", caption_text(tok, o.generated)}, {"generated_ids", o.generated}};
  };
  json items = json::array();
  for (auto& it : rep.items) {
    json conds = json::array();
    for (auto& c : it.conditions) {
      json draws = json::array();
      for (auto& d : c.draws) draws.push_back(outcome(d));
      conds.push_back({{"label", condition_label(c)},
                       {"set", c.set},
                       {"n", c.n},
                       {"mode", c.mode},
                       {"sigma", c.mode == "zero" ? json(nullptr) : json(c.sigma)},
                       {"draws", draws}});
    }
    items.push_back({{"image", it.image_id},
                     {"word", it.word},
                     {"token_id", it.token_id},
                     {"step", it.step},
                     {"clean", outcome(it.clean)},
                     {"clean_reproduced", it.clean_reproduced},
                     {"conditions", conds}});
  }
  json options = {{"tops", opt.tops},     {"zero", opt.zero || opt.sigmas.empty()},
                  {"sigmas", opt.sigmas}, {"random_uniform", opt.random_uniform},
                  {"random_layer", opt.random_layer}, {"draws", opt.draws},
                  {"seed", opt.seed},     {"reuse", opt.reuse}};
  return {{"tool", "mmneuron perturb"},
          {"version", MMN_VERSION},
          {"options", options},
          {"summary", summarize_perturbation(rep, opt.seed)},
          {"items", items}};
}

}  // namespace mmn
