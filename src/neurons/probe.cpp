#include "neurons/probe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>

#include "data/patch_labels.h"
#include "models/generate.h"
#include "neurons/groundtruth.h"
#include "neurons/probe_stats.h"
#include "util/error.h"
#include "util/progress.h"

namespace mmn {

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

// Keeps, for the labelled image rows of one prefill, the MLP activations and
// the residual stream after every layer and the layer-0 input.
class ImageRowSink : public CaptureSink {
 public:
  ImageRowSink(Hook mlp, int layers, int64_t I, int64_t D, int64_t pos0, const std::vector<int64_t>& patches)
      : mlp_(mlp), pos0_(pos0), patches_(patches),
        mlp_rows_(layers, std::vector<float>(patches.size() * I)),
        resid_rows_(layers, std::vector<float>(patches.size() * D)), input_rows_(patches.size() * D) {}
  bool wants(Hook h, int layer) const override {
    return h == mlp_ || h == Hook::ResidPost || (h == Hook::ResidPre && layer == 0);
  }
  void capture(const CaptureEvent& e) override {
    if (e.step != 0 || e.layer < 0) return;
    std::vector<float>& dst = e.hook == mlp_ ? mlp_rows_[e.layer]
                              : e.hook == Hook::ResidPost ? resid_rows_[e.layer] : input_rows_;
    for (size_t k = 0; k < patches_.size(); ++k) {
      const int64_t p = pos0_ + patches_[k];
      if (p < e.pos0 || p >= e.pos0 + e.rows) continue;
      std::memcpy(dst.data() + k * e.width, e.data + (p - e.pos0) * e.width, e.width * sizeof(float));
    }
  }
  std::vector<std::vector<float>>& mlp() { return mlp_rows_; }
  std::vector<std::vector<float>>& resid() { return resid_rows_; }
  std::vector<float>& input() { return input_rows_; }

 private:
  Hook mlp_;
  int64_t pos0_;
  std::vector<int64_t> patches_;
  std::vector<std::vector<float>> mlp_rows_, resid_rows_;
  std::vector<float> input_rows_;
};

// The rows of one half of the scenes.
struct Half {
  std::vector<int> labels;
  std::vector<std::vector<float>> mlp, resid;  // per layer [rows, width]
  std::vector<float> input;                    // [rows, D]
};

void append(std::vector<float>& dst, const std::vector<float>& src) { dst.insert(dst.end(), src.begin(), src.end()); }

// Per neuron of one layer, the AUROC of each shape on one half: [I, classes].
std::vector<double> layer_aurocs(const Half& h, int layer, int64_t I, int classes) {
  std::vector<double> out(static_cast<size_t>(I * classes), kNaN);
  const int64_t n = static_cast<int64_t>(h.labels.size());
  if (n == 0) return out;
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t u = 0; u < I; ++u) {
    const std::vector<double> a = one_vs_rest_auroc(h.mlp[layer].data() + u, n, I, h.labels, classes);
    std::copy(a.begin(), a.end(), out.begin() + u * classes);
  }
  return out;
}

}  // namespace

ProbeReport run_probe(const VisionLanguageModel& model, const ShapesOptions& world, const ProbeOptions& opt) {
  const int g = model.grid_side();
  if (g <= 0) fail(model.dir(), ": the probe needs a model whose image tokens form a patch grid");
  if (opt.scenes < 4) fail_usage("--n must be at least 4 (two scenes per half)");
  if (model.input_size() != world.image_size)
    fail(model.dir(), ": the model takes ", model.input_size(), "-pixel images, its world's are ", world.image_size);
  const LlamaConfig& c = model.decoder().config();
  const int L = c.n_layers;
  const int64_t I = c.intermediate, D = c.hidden;
  const Hook mlp_hook = opt.activation == ActivationVariant::Act ? Hook::MlpAct : Hook::MlpPost;
  ProbeReport rep;
  rep.world = world.version;
  rep.grid = g;
  rep.shapes = shapes_vocab(world.version).shapes;
  const int K = static_cast<int>(rep.shapes.size());

  Half halves[2];
  for (Half& h : halves) h.mlp.resize(L), h.resid.resize(L);
  std::unique_ptr<Progress> bar;
  if (opt.show_progress) bar = std::make_unique<Progress>("probe", opt.scenes, "scenes");
  for (int64_t s = 0; s < opt.scenes; ++s) {
    const Scene sc = make_scene(opt.seed, static_cast<uint64_t>(s), world);
    const std::vector<int> labels = patch_shape_labels(sc, g, world.version);
    std::vector<int64_t> patches;
    Half& h = halves[s < opt.scenes / 2 ? 0 : 1];
    for (size_t p = 0; p < labels.size(); ++p)
      if (labels[p] >= 0) patches.push_back(static_cast<int64_t>(p)), h.labels.push_back(labels[p]);
    rep.background_rows += static_cast<int64_t>(labels.size() - patches.size());
    const PromptInputs in =
        model.build_inputs(PromptText{}, model.encode_image(model.preprocess(sc.image), nullptr), nullptr);
    if (in.image_tokens != static_cast<int64_t>(g) * g)
      fail("internal: ", in.image_tokens, " image rows on a ", g, "-grid");
    ImageRowSink sink(mlp_hook, L, I, D, in.image_pos0, patches);
    GenerateOptions go;
    go.max_new_tokens = 1;  // the prefill is what the image rows see
    go.sinks = {&sink};
    generate(model, in, go);
    for (int l = 0; l < L; ++l) append(h.mlp[l], sink.mlp()[l]), append(h.resid[l], sink.resid()[l]);
    append(h.input, sink.input());
    ++rep.scenes;
    if (bar) bar->update(s + 1);
  }
  if (bar) bar->finish();
  const Half &tr = halves[0], &te = halves[1];
  rep.train_rows = static_cast<int64_t>(tr.labels.size());
  rep.test_rows = static_cast<int64_t>(te.labels.size());
  rep.rows = rep.train_rows + rep.test_rows;
  if (rep.train_rows < 2 || rep.test_rows < 1) fail("probe: too few object rows (", rep.rows, "); raise --n");
  rep.rows_train.assign(K, 0);
  rep.rows_test.assign(K, 0);
  for (int y : tr.labels) ++rep.rows_train[y];
  for (int y : te.labels) ++rep.rows_test[y];
  int m = 0;
  rep.majority = majority_accuracy(tr.labels, te.labels, K, &m);
  rep.majority_shape = rep.shapes[m];
  rep.input_accuracy = fit_ridge_probe_cv(tr.input, tr.labels, D, K).accuracy(te.input, te.labels);

  for (int l = 0; l < L; ++l) {
    ProbeLayer pl;
    pl.layer = l;
    const std::vector<double> a_tr = layer_aurocs(tr, l, I, K), a_te = layer_aurocs(te, l, I, K);
    pl.best_auroc.assign(K, kNaN);
    pl.best_auroc_train.assign(K, kNaN);
    pl.best_unit.assign(K, -1);
    pl.selective_share.assign(K, kNaN);
    for (int k = 0; k < K; ++k) {
      if (rep.rows_train[k] == 0 || rep.rows_test[k] == 0) continue;
      int64_t best = 0, selective = 0;
      for (int64_t u = 0; u < I; ++u) {
        if (a_tr[u * K + k] > a_tr[best * K + k]) best = u;
        selective += a_tr[u * K + k] >= opt.threshold && a_te[u * K + k] >= opt.threshold;
      }
      pl.best_unit[k] = static_cast<int>(best);
      pl.best_auroc[k] = a_te[best * K + k];
      pl.best_auroc_train[k] = a_tr[best * K + k];
      pl.selective_share[k] = static_cast<double>(selective) / static_cast<double>(I);
    }
    const RidgeProbe pm = fit_ridge_probe_cv(tr.mlp[l], tr.labels, I, K);
    pl.mlp_accuracy = pm.accuracy(te.mlp[l], te.labels);
    pl.mlp_lambda = pm.lambda;
    const RidgeProbe pr = fit_ridge_probe_cv(tr.resid[l], tr.labels, D, K);
    pl.resid_accuracy = pr.accuracy(te.resid[l], te.labels);
    pl.resid_lambda = pr.lambda;
    rep.layers.push_back(std::move(pl));
  }
  return rep;
}

nlohmann::json probe_json(const ProbeReport& rep, const ProbeOptions& opt, const std::string& model_dir) {
  using nlohmann::json;
  auto num = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  json j;
  j["model"] = model_dir;
  j["options"] = {{"scenes", opt.scenes},
                  {"scene_seed", opt.seed},
                  {"activation", activation_variant_name(opt.activation)},
                  {"threshold", opt.threshold},
                  {"world", rep.world},
                  {"grid", rep.grid}};
  j["definitions"] = {
      {"rows", "image rows whose patch an object covers at least half of, labelled with its shape; the first half "
               "of the scenes is 'train', the second 'test'"},
      {"best_auroc", "per shape: the test-half one-vs-other-shapes AUROC of the neuron with the best train-half "
                     "AUROC (best_auroc_train: that best train-half value, optimistic)"},
      {"selective_share", "per shape: share of the layer's neurons with AUROC >= threshold on both halves"},
      {"probe", "ridge one-vs-rest on standardised single-row features, penalty by 2-fold CV on the train half, "
                "accuracy on the test half; mlp = the activation, resid = blocks.l.hook_resid_post, input = "
                "blocks.0.hook_resid_pre (the projector's output)"},
      {"majority", "test-half accuracy of always answering the train half's most frequent shape"}};
  j["counts"] = {{"scenes", rep.scenes},
                 {"rows", rep.rows},
                 {"train_rows", rep.train_rows},
                 {"test_rows", rep.test_rows},
                 {"background_rows", rep.background_rows}};
  json shapes = json::array();
  for (size_t k = 0; k < rep.shapes.size(); ++k)
    shapes.push_back({{"shape", rep.shapes[k]}, {"train_rows", rep.rows_train[k]}, {"test_rows", rep.rows_test[k]}});
  j["shapes"] = shapes;
  j["majority"] = {{"shape", rep.majority_shape}, {"accuracy", num(rep.majority)}};
  j["input_probe_accuracy"] = num(rep.input_accuracy);
  j["layers"] = json::array();
  for (const ProbeLayer& l : rep.layers) {
    json per = json::object();
    for (size_t k = 0; k < rep.shapes.size(); ++k)
      per[rep.shapes[k]] = {{"best_auroc", num(l.best_auroc[k])},
                            {"best_auroc_train", num(l.best_auroc_train[k])},
                            {"best_unit", l.best_unit[k]},
                            {"selective_share", num(l.selective_share[k])}};
    j["layers"].push_back({{"layer", l.layer},
                           {"shapes", per},
                           {"probe_mlp", num(l.mlp_accuracy)},
                           {"probe_resid", num(l.resid_accuracy)},
                           {"lambda_mlp", l.mlp_lambda},
                           {"lambda_resid", l.resid_lambda}});
  }
  return j;
}

}  // namespace mmn
