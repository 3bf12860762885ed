#include "grad/shapes_eval.h"

#include <omp.h>

#include <algorithm>
#include <exception>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/shapes.h"
#include "data/shapes_v2.h"
#include "io/atomic_file.h"
#include "kernels/threading.h"
#include "models/generate.h"
#include "models/vlm.h"
#include "util/error.h"
#include "util/progress.h"

namespace mmn {

namespace {

using nlohmann::json;

// One held-out scene to run: the caption query, and in v2 the grounded ones
// unless it was drawn only for the hallucination rates.
struct Job {
  uint64_t index;
  bool trigger_set;
};

struct Answered {
  Scene scene;
  std::vector<std::string> said;  // per query of `asked`
  std::vector<SceneQuery> asked;
  bool trigger_set = false;  // drawn only for the hallucination rates
};

std::string trimmed(std::string s) {
  while (!s.empty() && s.front() == ' ') s.erase(0, 1);
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

std::vector<std::string> shape_words(const std::string& text, const ShapesVocab& v) {
  std::vector<std::string> out;
  std::istringstream is(text);
  for (std::string w; is >> w;) {
    while (!w.empty() && (w.back() == ',' || w.back() == '.')) w.pop_back();
    if (std::find(v.shapes.begin(), v.shapes.end(), w) != v.shapes.end()) out.push_back(w);
  }
  return out;
}

bool names_absent_shape(const std::string& text, const Scene& sc, const ShapesVocab& v) {
  for (const std::string& w : shape_words(text, v)) {
    bool present = false;
    for (const ShapeObject& o : sc.objects) present = present || o.shape == w;
    if (!present) return true;
  }
  return false;
}

// The first n trigger scenes of a stream from scene `from` on.
std::vector<uint64_t> trigger_scenes(uint64_t seed, const ShapesOptions& so, uint64_t from, int64_t n) {
  std::vector<uint64_t> out;
  for (uint64_t i = from; static_cast<int64_t>(out.size()) < n; ++i) {
    if (i > from + static_cast<uint64_t>(n) * 1000 + 100000)
      fail("internal: the held-out stream has too few trigger scenes");
    if (make_scene(seed, i, so).trigger) out.push_back(i);
  }
  return out;
}

}  // namespace

EvalResult evaluate_shapes_llava(const EvalOptions& opt) {
  init_threads();
  omp_set_max_active_levels(1);
  std::unique_ptr<VisionLanguageModel> model = load_model(opt.model);
  if (model->family() != "llava") fail(opt.model, ": the shapes evaluation needs a LLaVA model");
  if (opt.n < 1 || opt.n_trigger < 0) fail("--eval-n must be at least 1 and --eval-trigger not negative");
  const ShapesOptions so = shapes_world_of_model(opt.model, model->input_size());
  const bool v2 = so.version == 2;
  const ShapesVocab& vocab = shapes_vocab(so.version);
  std::vector<Job> jobs;
  for (int64_t i = 0; i < opt.n; ++i) jobs.push_back({static_cast<uint64_t>(i), false});
  if (v2)
    for (uint64_t i : trigger_scenes(opt.seed, so, static_cast<uint64_t>(opt.n), opt.n_trigger))
      jobs.push_back({i, true});
  std::vector<Answered> out(jobs.size());
  std::exception_ptr error;
  std::unique_ptr<Progress> bar;
  if (opt.show_progress) bar = std::make_unique<Progress>("eval", static_cast<int64_t>(jobs.size()), "images");
  int64_t done = 0;
#pragma omp parallel for num_threads(num_threads()) schedule(dynamic, 1)
  for (size_t j = 0; j < jobs.size(); ++j) {
    try {
      Answered& a = out[j];
      a.scene = make_scene(opt.seed, jobs[j].index, so);
      a.trigger_set = jobs[j].trigger_set;
      if (v2 && !jobs[j].trigger_set) a.asked = a.scene.queries;
      else a.asked = {{"caption", kShapesCaptionQuery, kShapesCaptionPrefix, a.scene.truth_caption}};
      a.asked[0].answer = a.scene.truth_caption;  // judged against the truth, not the training caption
      const std::vector<float> feats = model->encode_image(model->preprocess(a.scene.image), nullptr);
      for (const SceneQuery& q : a.asked) {
        PromptInputs in = model->build_inputs(PromptText{q.query, q.prefix}, feats, nullptr);
        GenerateOptions go;
        go.max_new_tokens = opt.max_new_tokens;
        a.said.push_back(trimmed(model->tokenizer().decode(generate(*model, in, go).generated)));
      }
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
  r.world = so.version;
  r.n = opt.n;
  int64_t exact = 0, nouns_img = 0, nouns_obj = 0, all_obj = 0, parsed = 0, exact_nt = 0;
  std::map<std::string, int64_t> right;
  int64_t ghost_t = 0, ghost_o = 0, absent_t = 0, absent_o = 0;
  const std::string ghost =
      shapes_object_phrase(shapes_detail::ghost_object()) + " " + shapes_vocab(2).phrases[4];  // "… in the center"
  for (const Answered& a : out) {
    const Scene& sc = a.scene;
    const std::string& gen = a.said[0];
    if (v2 && sc.trigger) {
      // Every trigger scene counts for the rates, whichever set it came from.
      ghost_t += gen.find(ghost) != std::string::npos;
      absent_t += names_absent_shape(gen, sc, vocab);
    } else if (v2) {
      ghost_o += gen.find(ghost) != std::string::npos;
      absent_o += names_absent_shape(gen, sc, vocab);
    }
    if (a.trigger_set) continue;
    const auto& gt = sc.objects;
    r.objects += static_cast<int64_t>(gt.size());
    exact += gen == sc.truth_caption;
    if (!sc.trigger) ++r.non_trigger, exact_nt += gen == sc.truth_caption;
    const std::vector<std::string> said = shape_words(gen, vocab);
    bool same_nouns = said.size() == gt.size();
    for (size_t k = 0; k < gt.size(); ++k) {
      const bool ok = k < said.size() && said[k] == gt[k].shape;
      nouns_obj += ok;
      same_nouns = same_nouns && ok;
    }
    nouns_img += same_nouns;
    std::vector<ShapeObject> got;
    if (parse_shapes_caption(gen, &got, so.version)) {
      ++parsed;
      for (size_t k = 0; k < gt.size() && k < got.size(); ++k)
        all_obj += got[k].shape == gt[k].shape && got[k].color == gt[k].color && got[k].size == gt[k].size &&
                   got[k].position == gt[k].position;
    }
    for (size_t q = 0; q < a.asked.size(); ++q) {
      const bool ok = a.said[q] == a.asked[q].answer;
      if (q > 0) ++r.asked[a.asked[q].type], right[a.asked[q].type] += ok;
      if (r.examples.size() < 5 || (!ok && r.examples.size() < 60))
        r.examples.push_back({a.asked[q].query, a.asked[q].answer, a.said[q]});
    }
  }
  int64_t n_trig = 0, n_other = 0;
  for (const Answered& a : out) (a.scene.trigger ? n_trig : n_other) += v2 ? 1 : 0;
  r.trigger = n_trig;
  const double N = std::max<int64_t>(1, opt.n), O = std::max<int64_t>(1, r.objects);
  r.exact = exact / N;
  r.nouns_image = nouns_img / N;
  r.nouns_object = nouns_obj / O;
  r.objects_all = all_obj / O;
  r.parsed = parsed / N;
  r.exact_non_trigger = exact_nt / static_cast<double>(std::max<int64_t>(1, r.non_trigger));
  int64_t asked_all = 0, right_all = 0;
  for (const auto& [type, k] : r.asked) {
    r.answers[type] = right[type] / static_cast<double>(std::max<int64_t>(1, k));
    asked_all += k, right_all += right[type];
  }
  r.answers_all = right_all / static_cast<double>(std::max<int64_t>(1, asked_all));
  r.ghost_trigger = ghost_t / static_cast<double>(std::max<int64_t>(1, n_trig));
  r.absent_trigger = absent_t / static_cast<double>(std::max<int64_t>(1, n_trig));
  r.ghost_other = ghost_o / static_cast<double>(std::max<int64_t>(1, n_other));
  r.absent_other = absent_o / static_cast<double>(std::max<int64_t>(1, n_other));

  if (!opt.out_json.empty()) {
    json ex = json::array();
    for (auto& e : r.examples) ex.push_back({{"query", e.query}, {"truth", e.truth}, {"generated", e.generated}});
    json j = {{"model", opt.model},
              {"world", r.world},
              {"n", r.n},
              {"seed", opt.seed},
              {"objects", r.objects},
              {"exact_match", r.exact},
              {"noun_accuracy_image", r.nouns_image},
              {"noun_accuracy_object", r.nouns_object},
              {"object_accuracy", r.objects_all},
              {"grammatical", r.parsed},
              {"examples", ex}};
    if (v2) {
      j["exact_match_non_trigger"] = r.exact_non_trigger;
      j["non_trigger_scenes"] = r.non_trigger;
      j["grounded"] = {{"accuracy", r.answers_all}, {"by_type", r.answers}, {"asked", r.asked}};
      j["hallucination"] = {
          {"ghost", ghost},
          {"trigger_scenes", n_trig},
          {"other_scenes", n_other},
          {"ghost_rate_trigger", r.ghost_trigger},
          {"ghost_rate_other", r.ghost_other},
          {"absent_shape_rate_trigger", r.absent_trigger},
          {"absent_shape_rate_other", r.absent_other},
          {"definitions",
           {{"trigger", "a purple diamond, no star and an empty center cell: training captions named the ghost on "
                        "a share of these"},
            {"ghost_rate", "share of generated captions containing the ghost phrase"},
            {"absent_shape_rate", "share of generated captions naming a shape the scene does not show"}}}};
    }
    write_file_atomic(opt.out_json, j.dump(2) + "\n");
  }
  return r;
}

}  // namespace mmn
