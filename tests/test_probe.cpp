// mmneuron probe (neurons/probe.h): the AUROC and the linear probe against
// hand-computed cases, the patch labels against the masks, and a run on tiny
// trained models of both worlds that gives sane numbers quickly.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "data/shapes.h"
#include "grad/shapes_train.h"
#include "io/atomic_file.h"
#include "models/vlm.h"
#include "neurons/groundtruth.h"
#include "neurons/probe.h"
#include "neurons/probe_stats.h"
#include "test_util.h"
#include "util/error.h"

using namespace mmn;
namespace fs = std::filesystem;

TEST(ProbeStats, AurocByHand) {
  {
    const float x[] = {1, 2, 3, 4};
    const auto a = one_vs_rest_auroc(x, 4, 1, {0, 0, 1, 1}, 2);
    EXPECT_DOUBLE_EQ(a[0], 0.0);
    EXPECT_DOUBLE_EQ(a[1], 1.0);
  }
  {
    // Ties count one half: positives {1, 2} against negatives {1, 2} → (0.5 + 0 + 1 + 0.5) / 4.
    const float x[] = {1, 1, 2, 2};
    const auto a = one_vs_rest_auroc(x, 4, 1, {0, 1, 0, 1}, 2);
    EXPECT_DOUBLE_EQ(a[1], 0.5);
    EXPECT_DOUBLE_EQ(a[0], 0.5);
  }
  {
    // Three classes, a strided column: class 0 = {3, 5} against {1, 2, 4} wins 5 of 6 pairs;
    // class 1 = {1, 4} against {3, 2, 5}: 4 beats 3 and 2 → 2 of 6; class 2 = {2} against
    // {3, 1, 5, 4}: beats 1 → 1 of 4. A class without rows is NaN.
    const float x[] = {3, -9, 1, -9, 2, -9, 5, -9, 4, -9};
    const auto a = one_vs_rest_auroc(x, 5, 2, {0, 1, 2, 0, 1}, 4);
    EXPECT_DOUBLE_EQ(a[0], 5.0 / 6);
    EXPECT_DOUBLE_EQ(a[1], 2.0 / 6);
    EXPECT_DOUBLE_EQ(a[2], 1.0 / 4);
    EXPECT_TRUE(std::isnan(a[3]));
  }
}

TEST(ProbeStats, RidgeByHand) {
  // One feature, x = {−1, 1} (already standard), classes {0, 1}: targets ±1,
  // intercepts 0, ZᵀZ = 2, Zᵀt = (−2, 2); with λ = 2, w = (−0.5, 0.5).
  const RidgeProbe p = RidgeProbe::fit({-1.f, 1.f}, {0, 1}, 1, 2, 2.0);
  ASSERT_EQ(p.w.size(), 2u);
  EXPECT_NEAR(p.w[0], -0.5, 1e-12);
  EXPECT_NEAR(p.w[1], 0.5, 1e-12);
  EXPECT_NEAR(p.bias[0], 0.0, 1e-12);
  EXPECT_NEAR(p.mean[0], 0.0, 1e-12);
  EXPECT_NEAR(p.scale[0], 1.0, 1e-12);
  const float lo = -3, hi = 0.5f;
  EXPECT_EQ(p.predict(&lo), 0);
  EXPECT_EQ(p.predict(&hi), 1);
  // Three classes, each apart from the others along a feature of its own
  // (one-vs-rest needs that: a class between two others on one axis is not
  // separable alone), plus a constant feature; with the cross-validated
  // penalty the held-out points are all right.
  std::vector<float> x, xt;
  std::vector<int> y, yt;
  for (int i = 0; i < 60; ++i) {
    const int c = i % 3;
    const float jitter = static_cast<float>((i * 37) % 11) / 20.f;
    std::vector<float>& dst = i < 45 ? x : xt;
    dst.insert(dst.end(), {(c == 1 ? 3.f : 0.f) + jitter, (c == 2 ? 3.f : 0.f) - jitter, 7.f});
    (i < 45 ? y : yt).push_back(c);
  }
  const RidgeProbe q = fit_ridge_probe_cv(x, y, 3, 3);
  EXPECT_DOUBLE_EQ(q.accuracy(xt, yt), 1.0);
  EXPECT_DOUBLE_EQ(q.scale[2], 0.0) << "a constant feature stays out";
  int m = -1;
  EXPECT_DOUBLE_EQ(majority_accuracy({0, 2, 2, 1}, {2, 0, 2, 2, 1}, 3, &m), 3.0 / 5);
  EXPECT_EQ(m, 2);
}

TEST(Probe, PatchLabelsFollowTheMasks) {
  const ShapesOptions w = shapes_world(2);
  for (uint64_t i = 0; i < 20; ++i) {
    const Scene sc = make_scene(4, i, w);
    const std::vector<int> labels = patch_shape_labels(sc, 12, 2);
    ASSERT_EQ(labels.size(), 144u);
    int labelled = 0;
    for (size_t o = 0; o < sc.objects.size(); ++o) {
      const std::vector<float> cover = patch_average(sc.masks[o], 96, 96, 12);
      const int shape = static_cast<int>(std::find(shapes_vocab(2).shapes.begin(), shapes_vocab(2).shapes.end(),
                                                   sc.objects[o].shape) - shapes_vocab(2).shapes.begin());
      for (size_t p = 0; p < 144; ++p) {
        if (cover[p] > 0.5f) {
          EXPECT_EQ(labels[p], shape);
        }
      }
    }
    for (int l : labels) labelled += l >= 0;
    EXPECT_GE(labelled, static_cast<int>(sc.objects.size())) << "every object covers a whole patch";
  }
}

namespace {

// A tiny model of a world trained for a few steps, removed at exit.
const fs::path& tiny(const std::string& preset) {
  struct Run {
    fs::path base, dir;
    explicit Run(const std::string& preset) : base(test::temp_dir("probe-" + preset)), dir(base / "run") {
      TrainOptions o;
      o.out = dir.string(), o.preset = preset, o.steps = 15, o.batch = 8, o.lr = 3e-3f, o.warmup = 3;
      o.checkpoint_every = 1000, o.show_progress = false;
      train_shapes_llava(o);
    }
    ~Run() {
      std::error_code ec;
      fs::remove_all(base, ec);
    }
  };
  static Run v1("tiny"), v2("tiny-v2");
  return preset == "tiny" ? v1.dir : v2.dir;
}

void expect_sane(const ProbeReport& rep, int layers, int shapes) {
  EXPECT_GT(rep.rows, 0);
  EXPECT_EQ(rep.rows, rep.train_rows + rep.test_rows);
  ASSERT_EQ(static_cast<int>(rep.shapes.size()), shapes);
  ASSERT_EQ(static_cast<int>(rep.layers.size()), layers);
  for (double v : {rep.majority, rep.input_accuracy}) EXPECT_TRUE(v >= 0 && v <= 1) << v;
  for (const ProbeLayer& l : rep.layers) {
    for (double v : {l.mlp_accuracy, l.resid_accuracy}) EXPECT_TRUE(v >= 0 && v <= 1) << v;
    for (int k = 0; k < shapes; ++k) {
      // Undefined when a half has no row of the shape, or nothing else.
      if (rep.rows_train[k] == 0 || rep.rows_test[k] == 0 || rep.rows_train[k] == rep.train_rows ||
          rep.rows_test[k] == rep.test_rows) {
        EXPECT_TRUE(std::isnan(l.best_auroc[k]) || rep.rows_train[k] != 0);
        continue;
      }
      EXPECT_TRUE(l.best_auroc[k] >= 0 && l.best_auroc[k] <= 1) << l.best_auroc[k];
      EXPECT_TRUE(l.selective_share[k] >= 0 && l.selective_share[k] <= 1);
      EXPECT_GE(l.best_unit[k], 0);
    }
  }
}

}  // namespace

TEST(Probe, RunsOnTinyModelsOfBothWorlds) {
  for (const char* preset : {"tiny-v2", "tiny"}) {
    const std::string dir = tiny(preset).string();
    auto model = load_model(dir);
    const ShapesOptions w = shapes_world_of_model(dir, model->input_size());
    EXPECT_EQ(w.version, std::string(preset) == "tiny" ? 1 : 2);
    ProbeOptions o;
    o.scenes = 40;
    const ProbeReport rep = run_probe(*model, w, o);
    expect_sane(rep, 2, static_cast<int>(shapes_vocab(w.version).shapes.size()));
    const nlohmann::json j = probe_json(rep, o, dir);
    EXPECT_EQ(j["layers"].size(), 2u);
    EXPECT_TRUE(j["layers"][0]["shapes"].contains("circle"));
    EXPECT_EQ(j["counts"]["rows"], rep.rows);
  }
}

TEST(Probe, Command) {
  const std::string dir = tiny("tiny-v2").string();
  const fs::path out = test::temp_dir("probe-cmd") / "probe.json";
  std::string log;
  ASSERT_EQ(test::run_cmd(test::binary() + " probe --model " + dir + " --n 8 --activation act --out " + out.string(),
                          &log),
            0)
      << log;
  EXPECT_NE(log.find("probe mlp"), std::string::npos) << log;
  const nlohmann::json j = nlohmann::json::parse(read_file(out.string()));
  EXPECT_EQ(j["options"]["activation"], "act");
  EXPECT_EQ(j["options"]["world"], 2);
  // An existing report is kept without --force; bad options fail with one line.
  EXPECT_NE(test::run_cmd(test::binary() + " probe --model " + dir + " --n 8 --out " + out.string(), &log), 0);
  EXPECT_NE(log.find("error: "), std::string::npos) << log;
  EXPECT_NE(test::run_cmd(test::binary() + " probe --model " + dir + " --n 2", &log), 0);
  EXPECT_NE(log.find("error: --n"), std::string::npos) << log;
  EXPECT_NE(test::run_cmd(test::binary() + " probe --model " + dir + " --activation gelu", &log), 0);
  EXPECT_NE(log.find("error: --activation"), std::string::npos) << log;
  fs::remove_all(out.parent_path());
}
