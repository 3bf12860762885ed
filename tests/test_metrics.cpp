// `mmneuron metrics` (neurons/metrics.h): every metric against a hand
// computation on a small synthetic run written here (2 layers × 4 units, three
// images, hand-picked neurons, explanations and image activations), the random
// rankings' properties, what find records for it (image_acts.npy against the
// dumped image-row activations, gradient.npy), and bad input from the CLI.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "io/atomic_file.h"
#include "io/npy.h"
#include "neurons/metrics.h"
#include "neurons/run.h"
#include "neurons/wordnet.h"
#include "test_util.h"
#include "util/error.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace mmn::test;

namespace {

// ---------------------------------------------------------------- the synthetic run

// A neuron as (layer, unit) of the 2 × 4 model; flat id = layer·4 + unit.
using N = std::pair<int, int>;

json run_info(bool shuffled) {
  return {{"tool", "mmneuron"},
          {"model", "/nonexistent/model"},
          {"model_fingerprint", "fp-synthetic"},
          {"family", "llava"},
          {"layers", 2},
          {"units_per_layer", 4},
          {"options",
           {{"top_k", 4},
            {"activation", "act"},
            {"method", "score"},
            {"fold_norm_gain", false},
            {"tokens", "nouns"},
            {"nouns", json::array()},
            {"heatmaps", true},
            {"shuffle_image_tokens", shuffled ? json(7) : json(nullptr)},
            {"max_new_tokens", 50},
            {"query", "q"},
            {"prefix", "p"},
            {"explain_tokens", 3}}}};
}

struct Noun {
  std::string word;
  int32_t token;
  std::vector<N> neurons;  // the top-4
};

void write_image(const fs::path& run, const std::string& id, const std::vector<Noun>& nouns, bool shuffled,
                 const std::vector<float>& acts_mean) {
  const fs::path d = run / id;
  fs::create_directories(d);
  std::vector<int32_t> gen = {100};
  json ns = json::array();
  std::vector<float> flat;
  for (auto& n : nouns) {
    ns.push_back({{"word", n.word}, {"lemma", n.word}, {"token_id", n.token}, {"step", gen.size()}, {"neurons", json::array()}});
    gen.push_back(n.token);
    for (auto& [l, u] : n.neurons) flat.insert(flat.end(), {float(l), float(u), 1.f});
  }
  json r = {{"image", "/data/" + id + ".png"}, {"caption", "synthetic"}, {"generated_ids", gen}, {"nouns", ns},
            {"skipped_nouns", json::array()}, {"id", id}};
  if (shuffled) r["permutation"] = {3, 2, 1, 0};
  mmn::write_npy((d / "neurons.npy").string(), flat.data(), {static_cast<int64_t>(nouns.size()), 4, 3});
  // image_acts: [2, L, I]; the max is the mean + 10 everywhere.
  std::vector<float> acts = acts_mean;
  for (float v : acts_mean) acts.push_back(v + 10);
  mmn::write_npy((d / "image_acts.npy").string(), acts.data(), {2, 2, 4});
  mmn::write_file_atomic((d / "result.json").string(), r.dump());
}

// An averaged top-2 map on a 4×4 grid for the noun at `step`.
void write_map(const fs::path& run, const std::string& id, int step, const std::string& word, bool peak_last) {
  const fs::path d = run / id / "heatmaps" / (std::to_string(step) + "_" + word);
  fs::create_directories(d);
  std::vector<float> m(16);
  for (int p = 0; p < 16; ++p) m[p] = static_cast<float>(peak_last ? p : 15 - p);
  mmn::write_npy((d / "maps.npy").string(), m.data(), {1, 4, 4});
  mmn::write_file_atomic((d / "maps.json").string(), json::array({{{"name", "mean_top2"}, {"top", 2}}}).dump());
}

// img0: dog, cat; img1: dog; img2: car. Top-2 sets (flat ids): img0 dog {0,1},
// img0 cat {6,1}, img1 dog {0,4}, img2 car {4,6}.
fs::path write_run(const std::string& tag) {
  const fs::path run = temp_dir(tag);
  mmn::write_file_atomic((run / "run.json").string(), run_info(false).dump());
  write_image(run, "img0", {{"dog", 11, {{0, 0}, {0, 1}, {1, 0}, {1, 1}}}, {"cat", 13, {{1, 2}, {0, 1}, {1, 3}, {0, 3}}}},
              false, {1, 2, 3, 4, 5, 6, 7, 8});
  write_image(run, "img1", {{"dog", 11, {{0, 0}, {1, 0}, {0, 2}, {1, 3}}}}, false, {2, 2, 2, 2, 2, 2, 2, 2});
  write_image(run, "img2", {{"car", 15, {{1, 0}, {1, 2}, {0, 3}, {0, 2}}}}, false, {0, 1, 0, 1, 0, 1, 0, 1});
  write_map(run, "img0", 1, "dog", true);
  write_map(run, "img1", 1, "dog", true);
  return run;
}

// The twin: img0 dog {0,5}, img0 cat {1,6}, img1 dog {4,0}; img2's caption lost "car".
fs::path write_twin(const std::string& tag) {
  const fs::path run = temp_dir(tag);
  mmn::write_file_atomic((run / "run.json").string(), run_info(true).dump());
  write_image(run, "img0", {{"dog", 11, {{0, 0}, {1, 1}, {1, 2}, {1, 3}}}, {"cat", 13, {{0, 1}, {1, 2}, {0, 0}, {0, 2}}}},
              true, std::vector<float>(8, 1.f));
  write_image(run, "img1", {{"dog", 11, {{1, 0}, {0, 0}, {0, 1}, {0, 2}}}}, true, std::vector<float>(8, 1.f));
  write_image(run, "img2", {{"bus", 17, {{0, 0}, {0, 1}, {0, 2}, {0, 3}}}}, true, std::vector<float>(8, 1.f));
  write_map(run, "img0", 1, "dog", true);   // same peak: IoU 1
  write_map(run, "img1", 1, "dog", false);  // opposite corner: IoU 0
  return run;
}

// Hand-picked logit-lens tokens per flat id.
const std::map<int, std::vector<std::string>> kTops = {
    {0, {" dog", "the"}},  {1, {" Dogs"}},    {2, {" cat"}},  {3, {" car"}},
    {4, {" puppy"}},       {5, {" ,", " a"}}, {6, {" cats"}}, {7, {" automobile"}}};

mmn::TopTokensFn fake_tops() {
  return [](const std::vector<std::pair<int, int>>& ids) {
    std::vector<std::vector<std::string>> out;
    for (auto& [l, u] : ids) out.push_back(kTops.at(l * 4 + u));
    return out;
  };
}

const mmn::WordNet& wordnet() {
  static mmn::WordNet wn = mmn::WordNet::load();
  return wn;
}

class MetricsSynthetic : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    run_dir_ = write_run("metrics-run");
    twin_dir_ = write_twin("metrics-twin");
    mmn::RunData run = mmn::load_run(run_dir_.string());
    mmn::RunData twin = mmn::load_run(twin_dir_.string());
    mmn::MetricsOptions opt;
    opt.ks = {2, 4, 8};
    opt.mask_side = 4;
    opt.resamples = 200;
    report_ = new mmn::MetricsReport(mmn::compute_metrics(run, &twin, wordnet(), fake_tops(), opt));
  }
  static void TearDownTestSuite() {
    delete report_;
    fs::remove_all(run_dir_);
    fs::remove_all(twin_dir_);
  }
  static const mmn::RankingMetrics& at(int64_t k, mmn::Ranking r) {
    const mmn::RankingMetrics* m = report_->find(k, r);
    if (!m) throw std::runtime_error("no result");
    return *m;
  }
  static fs::path run_dir_, twin_dir_;
  static mmn::MetricsReport* report_;
};
fs::path MetricsSynthetic::run_dir_, MetricsSynthetic::twin_dir_;
mmn::MetricsReport* MetricsSynthetic::report_ = nullptr;

constexpr double kEps = 1e-9;

}  // namespace

TEST_F(MetricsSynthetic, CountsAndSkippedK) {
  EXPECT_EQ(report_->images, 3);
  EXPECT_EQ(report_->units, 4);
  EXPECT_EQ(report_->repeated_nouns, 1);  // dog
  EXPECT_EQ(report_->twin_units, 3);      // car is not in the twin's caption
  EXPECT_EQ(report_->ks, (std::vector<int64_t>{2, 4}));
  bool noted = false;
  for (auto& n : report_->notes) noted |= n.find("k = 8 skipped") != std::string::npos;
  EXPECT_TRUE(noted);
  EXPECT_EQ(report_->rankings.size(), 3u);  // no gradient.npy
}

TEST_F(MetricsSynthetic, SemanticSensitivityByHand) {
  // Names the noun: dog unit {0: "dog", 1: "Dogs"} 2/2; cat {6: "cats", 1} 1/2;
  // dog {0, 4: "puppy"} 1/2; car {4, 6} 0/2.
  const auto& m = at(2, mmn::Ranking::Score);
  EXPECT_NEAR(m.noun_in_top_tokens.mean, (1 + 0.5 + 0.5 + 0) / 4, kEps);
  EXPECT_EQ(m.noun_in_top_tokens.n, 4);
  // Best Wu–Palmer per neuron ("," and the stop word "a" are not nouns: 0).
  const mmn::WordNet& wn = wordnet();
  auto w = [&](const char* a, const char* b) { return *wn.wup_similarity(a, b); };
  const double dog_unit0 = (1 + 1) / 2.0;
  const double cat_unit = (w("cat", "cats") + w("cat", "dogs")) / 2;
  const double dog_unit1 = (1 + w("dog", "puppy")) / 2;
  const double car_unit = (w("car", "puppy") + w("car", "cats")) / 2;
  EXPECT_NEAR(m.best_wup.mean, (dog_unit0 + cat_unit + dog_unit1 + car_unit) / 4, 1e-12);
  EXPECT_NEAR(mmn::best_wup_with_tokens(wn, "dog", {" ,", " a"}), 0.0, kEps);
  EXPECT_TRUE(mmn::token_names_noun(wn, " Dogs", "dog", "dog"));
  EXPECT_TRUE(mmn::token_names_noun(wn, "DOG", "dog", "dog"));
  EXPECT_FALSE(mmn::token_names_noun(wn, " puppy", "dog", "dog"));
}

TEST_F(MetricsSynthetic, RegionInvarianceByHand) {
  const auto& m = at(2, mmn::Ranking::Score);
  // Jaccard: img0 dog {0,1} vs {0,5} = 1/3; cat {6,1} vs {1,6} = 1; img1 dog {0,4} vs {4,0} = 1.
  EXPECT_NEAR(m.jaccard.mean, (1.0 / 3 + 1 + 1) / 3, kEps);
  EXPECT_EQ(m.jaccard.n, 3);
  // Masks (95th percentile of 16 values = only the peak): img0 same peak → 1, img1 opposite → 0.
  EXPECT_NEAR(m.mask_iou.mean, 0.5, kEps);
  EXPECT_EQ(m.mask_iou.n, 2);
  // No top-4 maps: n/a with the reason.
  EXPECT_EQ(at(4, mmn::Ranking::Score).mask_iou.n, 0);
  EXPECT_NE(at(4, mmn::Ranking::Score).mask_note.find("n/a"), std::string::npos);
  EXPECT_EQ(at(2, mmn::Ranking::Uniform).mask_iou.n, 0);
  EXPECT_NE(at(2, mmn::Ranking::Uniform).mask_note.find("only for the score"), std::string::npos);
}

TEST_F(MetricsSynthetic, CrossImageInvarianceByHand) {
  const auto& m = at(2, mmn::Ranking::Score);
  // Only "dog" is in two images: same = |{0,1}∩{0,4}|/2 = 0.5; other = mean over
  // (img0 dog, img2 car) 0, (img1 dog, img0 cat) 0, (img1 dog, img2 car) 1/2.
  EXPECT_NEAR(m.same_noun.mean, 0.5, kEps);
  EXPECT_NEAR(m.other_nouns.mean, 1.0 / 6, kEps);
  EXPECT_NEAR(m.cross_ratio.mean, 3.0, kEps);
  EXPECT_EQ(m.same_noun.n, 1);
}

TEST_F(MetricsSynthetic, SpecificityByHand) {
  const auto& m = at(2, mmn::Ranking::Score);
  // Exclusive: only neuron 0 belongs to dog alone → dog units 1/2, cat 0, car 0.
  EXPECT_NEAR(m.exclusive.mean, 0.25, kEps);
  // Activations (mean rows): with / without per unit: img0 dog 1.75 / 0.5, cat
  // 4.5 / 1.25, img1 dog 2.5 / 0, car 0 / 4.
  EXPECT_NEAR(m.act_mean.with_noun.mean, 8.75 / 4, kEps);
  EXPECT_NEAR(m.act_mean.without_noun.mean, 5.75 / 4, kEps);
  EXPECT_NEAR(m.act_mean.difference.mean, 3.0 / 4, kEps);
  EXPECT_NEAR(m.act_mean.ratio.mean, 8.75 / 5.75, kEps);
  // Max rows: +10 everywhere.
  EXPECT_NEAR(m.act_max.with_noun.mean, 8.75 / 4 + 10, kEps);
  EXPECT_NEAR(m.act_max.ratio.mean, (8.75 + 40) / (5.75 + 40), kEps);
}

TEST_F(MetricsSynthetic, LayerHistogramByHand) {
  const auto& m = at(2, mmn::Ranking::Score);
  // Layers of the top-2: {0,0}, {1,0}, {0,1}, {1,1}.
  ASSERT_EQ(m.layer_share.size(), 2u);
  EXPECT_NEAR(m.layer_share[0].mean, (1 + 0.5 + 0.5 + 0) / 4, kEps);
  EXPECT_NEAR(m.layer_share[1].mean, (0 + 0.5 + 0.5 + 1) / 4, kEps);
  EXPECT_NEAR(m.mean_depth.mean, 0.5, kEps);
  // Bootstrap intervals contain the estimate.
  EXPECT_LE(m.mean_depth.lo, m.mean_depth.mean);
  EXPECT_GE(m.mean_depth.hi, m.mean_depth.mean);
}

TEST_F(MetricsSynthetic, RandomRankingsAreTheDocumentedDraws) {
  mmn::RunData run = mmn::load_run(run_dir_.string());
  // Uniform: k distinct neurons of the model, the same for the same seed.
  const uint64_t s = mmn::random_ranking_seed(0, mmn::Ranking::Uniform, "img0", 0, 2);
  EXPECT_EQ(s, mmn::mix_seed(0, {mmn::hash_string("img0"), 0, 2}));
  std::vector<int64_t> a = mmn::uniform_random_neurons(s, 8, 2, 4);
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), 8u);
  EXPECT_EQ(a, mmn::uniform_random_neurons(s, 8, 2, 4));
  // Layer-matched: the same per-layer counts.
  std::vector<int64_t> like = {0, 1, 2, 7, 6};
  std::vector<int64_t> lm = mmn::layer_matched_random_neurons(5, like, 2, 4);
  int l0 = 0;
  for (int64_t f : lm) l0 += f < 4;
  EXPECT_EQ(l0, 3);
  EXPECT_EQ(std::set<int64_t>(lm.begin(), lm.end()).size(), 5u);
  // The report's uniform layer histogram is that of these draws.
  double depth = 0;
  const std::vector<std::pair<std::string, int>> units = {{"img0", 0}, {"img0", 1}, {"img1", 0}, {"img2", 0}};
  for (auto& [id, c] : units)
    for (int64_t f : mmn::uniform_random_neurons(mmn::random_ranking_seed(0, mmn::Ranking::Uniform, id, c, 2), 2, 2, 4))
      depth += static_cast<double>(f / 4);  // layer / (L − 1), L = 2
  EXPECT_NEAR(at(2, mmn::Ranking::Uniform).mean_depth.mean, depth / 8, kEps);  // 4 units × 2 neurons
  // Layer-matched keeps the score ranking's histogram exactly.
  EXPECT_NEAR(at(2, mmn::Ranking::LayerMatched).mean_depth.mean, 0.5, kEps);
}

TEST_F(MetricsSynthetic, JsonHasEveryMetric) {
  json j = mmn::metrics_to_json(*report_);
  const json& s = j["results"]["2"]["score"];
  EXPECT_NEAR(s["semantic_sensitivity"]["noun_in_top_tokens"]["mean"].get<double>(), 0.5, kEps);
  EXPECT_TRUE(s["region_invariance"]["jaccard"].is_object());
  EXPECT_TRUE(s["cross_image_invariance"]["ratio"].is_object());
  EXPECT_TRUE(s["specificity"]["activation"]["max_rows"]["difference"].is_object());
  EXPECT_EQ(s["layers"]["share"].size(), 2u);
  EXPECT_TRUE(j["results"]["4"]["score"]["region_invariance"]["mask_iou"].is_null());
  EXPECT_FALSE(j["results"].contains("8"));
}

TEST(MetricsTwin, RefusesTwinsOfAnotherRun) {
  const fs::path run_dir = write_run("tw-run"), twin_dir = write_twin("tw-twin");
  mmn::RunData run = mmn::load_run(run_dir.string());
  auto refused = [&](const fs::path& twin, const std::string& expect) {
    mmn::RunData t = mmn::load_run(twin.string());
    try {
      mmn::check_shuffled_twin(run, t);
    } catch (const mmn::Error& e) {
      EXPECT_NE(std::string(e.what()).find(expect), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
      return;
    }
    ADD_FAILURE() << "accepted " << twin;
  };
  // Not shuffled (the run itself).
  refused(run_dir, "not a --shuffle-image-tokens run");
  // Another model.
  json info = run_info(true);
  info["model_fingerprint"] = "fp-other";
  mmn::write_file_atomic((twin_dir / "run.json").string(), info.dump());
  refused(twin_dir, "another model");
  // Other options.
  info = run_info(true);
  info["options"]["activation"] = "swiglu";
  mmn::write_file_atomic((twin_dir / "run.json").string(), info.dump());
  refused(twin_dir, "another activation");
  // Other images.
  mmn::write_file_atomic((twin_dir / "run.json").string(), run_info(true).dump());
  json r = json::parse(mmn::read_file((twin_dir / "img1" / "result.json").string()));
  r["image"] = "/elsewhere/img1.png";
  mmn::write_file_atomic((twin_dir / "img1" / "result.json").string(), r.dump());
  refused(twin_dir, (twin_dir / "img1" / "result.json").string());
  fs::remove_all(run_dir);
  fs::remove_all(twin_dir);
}

// ---------------------------------------------------------------- with the bundled model (CLI)

namespace {

class MetricsCli : public ::testing::Test {
 protected:
  static fs::path base_;
  static void SetUpTestSuite() {
    base_ = temp_dir("metrics-cli");
    std::string log;
    ASSERT_EQ(run_cmd(binary() + " shapes --n 3 --seed 3 --out " + (base_ / "images").string(), &log), 0) << log;
    ASSERT_EQ(run_cmd(binary() + " shapes --n 3 --seed 4 --out " + (base_ / "other").string(), &log), 0) << log;
    const std::string common = " --top-k 20 --heatmaps --threads 1";
    ASSERT_EQ(run_cmd(binary() + " find --images " + (base_ / "images" / "images").string() + " --out " + (base_ / "run").string() +
                          common + " --gradient-baseline",
                      &log),
              0)
        << log;
    ASSERT_EQ(run_cmd(binary() + " find --images " + (base_ / "images" / "images").string() + " --out " +
                          (base_ / "twin").string() + common + " --shuffle-image-tokens 1",
                      &log),
              0)
        << log;
    ASSERT_EQ(run_cmd(binary() + " find --images " + (base_ / "other" / "images").string() + " --out " +
                          (base_ / "other-twin").string() + common + " --shuffle-image-tokens 1",
                      &log),
              0)
        << log;
  }
  static void TearDownTestSuite() { fs::remove_all(base_); }
  static std::string metrics(const fs::path& run, const std::string& extra = "") {
    return binary() + " metrics " + run.string() + " --k 10,20 --resamples 100 --threads 1 " + extra;
  }
  static fs::path copy_run(const std::string& name) {
    const fs::path to = base_ / name;
    fs::remove_all(to);
    fs::copy(base_ / "run", to, fs::copy_options::recursive);
    fs::remove(to / "metrics.json");
    return to;
  }
  // A failure ends with one line "error: …" mentioning `expect` (progress lines may precede it).
  static void expect_error(const std::string& cmd, const std::string& expect) {
    std::string out;
    EXPECT_NE(run_cmd(cmd, &out), 0) << out;
    ASSERT_FALSE(out.empty());
    ASSERT_EQ(out.back(), '\n') << out;
    const size_t start = out.rfind('\n', out.size() - 2);
    const std::string last = out.substr(start == std::string::npos ? 0 : start + 1);
    EXPECT_EQ(last.rfind("error: ", 0), 0u) << out;
    EXPECT_NE(last.find(expect), std::string::npos) << out;
    EXPECT_EQ(out.find("error: "), out.rfind("error: ")) << out;
  }
};
fs::path MetricsCli::base_;

}  // namespace

TEST_F(MetricsCli, FindRecordsImageActivationsAndGradient) {
  // image_acts.npy = mean and max of the dumped image-row activations (caption --dump).
  fs::path first;
  for (auto& e : fs::directory_iterator(base_ / "images" / "images"))
    if (e.path().extension() == ".png" && (first.empty() || e.path() < first)) first = e.path();
  ASSERT_FALSE(first.empty());
  std::string log;
  const fs::path dump = base_ / "dump";
  ASSERT_EQ(run_cmd(binary() + " caption --image " + first.string() + " --dump " + dump.string(), &log), 0) << log;
  mmn::NpyArray rows = mmn::read_npy((dump / "act_fn_gate_image_positions_prefill.npy").string());  // [L, P, I]
  const std::string id = first.stem().string();
  mmn::NpyArray acts = mmn::read_npy((base_ / "run" / id / "image_acts.npy").string());
  ASSERT_EQ(acts.shape, (std::vector<int64_t>{2, rows.shape[0], rows.shape[2]}));
  const std::vector<float> r = rows.as_f32(), a = acts.as_f32();
  const int64_t L = rows.shape[0], P = rows.shape[1], I = rows.shape[2];
  for (int64_t l = 0; l < L; ++l)
    for (int64_t i = 0; i < I; ++i) {
      double s = 0;
      float mx = -1e30f;
      for (int64_t p = 0; p < P; ++p) {
        s += r[(l * P + p) * I + i];
        mx = std::max(mx, r[(l * P + p) * I + i]);
      }
      EXPECT_NEAR(a[l * I + i], s / P, 1e-5) << l << "," << i;
      EXPECT_EQ(a[L * I + l * I + i], mx);
    }
  // gradient.npy in the neurons.npy format; recorded in run.json.
  mmn::RunData run = mmn::load_run((base_ / "run").string());
  json info = json::parse(mmn::read_file((base_ / "run" / "run.json").string()));
  EXPECT_EQ(info["options"]["gradient_baseline"], true);
  for (auto& im : run.images)
    for (auto& c : im.concepts) EXPECT_EQ(c.gradient.size(), 20u);
}

TEST_F(MetricsCli, WritesJsonAndTable) {
  const fs::path run = copy_run("ok");
  std::string out;
  ASSERT_EQ(run_cmd(metrics(run, "--shuffled " + (base_ / "twin").string()), &out), 0) << out;
  EXPECT_NE(out.find("explanations restricted to"), std::string::npos) << out;
  EXPECT_NE(out.find("semantic: noun in top tokens"), std::string::npos) << out;
  json j = json::parse(mmn::read_file((run / "metrics.json").string()));
  EXPECT_EQ(j["vocab"]["restricted"], true);
  EXPECT_EQ(j["vocab"]["generated_outside"], 0);
  EXPECT_LT(j["vocab"]["tokens"].get<int>(), 100);
  EXPECT_EQ(j["rankings"].size(), 4u);  // with the gradient baseline
  EXPECT_TRUE(j["results"]["10"]["score"]["region_invariance"]["jaccard"].is_object());
  EXPECT_TRUE(j["results"]["10"]["score"]["region_invariance"]["mask_iou"].is_object());
  EXPECT_FALSE(j["results"].contains("1000"));
  // No silent overwrite; --force overwrites.
  expect_error(metrics(run), "already exists");
  ASSERT_EQ(run_cmd(metrics(run, "--force --vocab all"), &out), 0) << out;
  j = json::parse(mmn::read_file((run / "metrics.json").string()));
  EXPECT_EQ(j["vocab"]["restricted"], false);
}

TEST_F(MetricsCli, BadInputIsOneLineError) {
  std::string log;
  // A run from another model.
  const fs::path other_model = base_ / "tiny";
  ASSERT_EQ(run_cmd(binary() + " make-random --preset tiny --dtype f32 --out " + other_model.string(), &log), 0) << log;
  expect_error(metrics(base_ / "run", "--model " + other_model.string()), "another model");
  // A shuffled twin of another run (other scenes under the same ids); an unshuffled "twin".
  expect_error(metrics(copy_run("t1"), "--shuffled " + (base_ / "other-twin").string()), "result.json");
  expect_error(metrics(copy_run("t2"), "--shuffled " + (base_ / "run").string()), "not a --shuffle-image-tokens run");
  // Missing and corrupt files.
  expect_error(metrics(base_ / "nowhere"), "run directory not found");
  fs::path r = copy_run("norunjson");
  fs::remove(r / "run.json");
  expect_error(metrics(r), (r / "run.json").string());
  r = copy_run("badneurons");
  fs::path victim;
  for (auto& e : fs::directory_iterator(r))
    if (e.is_directory() && fs::exists(e.path() / "neurons.npy")) victim = e.path();
  ASSERT_FALSE(victim.empty());
  mmn::write_file_atomic((victim / "neurons.npy").string(), "garbage");
  expect_error(metrics(r), (victim / "neurons.npy").string());
  r = copy_run("badacts");
  mmn::write_file_atomic((r / victim.filename() / "image_acts.npy").string(), "garbage");
  expect_error(metrics(r), (r / victim.filename() / "image_acts.npy").string());
  r = copy_run("badacts2");
  std::vector<float> wrong(6, 0.f);
  mmn::write_npy((r / victim.filename() / "image_acts.npy").string(), wrong.data(), {2, 3});
  expect_error(metrics(r), "expected shape [2, 4, 352]");
  expect_error(metrics(base_ / "run", "--vocab most"), "--vocab");
}
