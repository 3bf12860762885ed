// The ground-truth experiment (neurons/groundtruth.h): its references and
// selectivity on hand-made masks and maps, and a small end-to-end run of
// `mmneuron groundtruth` on the bundled model whose JSON must hold every
// section with sane values.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "neurons/groundtruth.h"
#include "test_util.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace mmn;
using namespace mmn::test;

namespace {

// A w × h mask with the rectangle [x0, x1) × [y0, y1) set.
std::vector<uint8_t> rect(int w, int h, int x0, int y0, int x1, int y1) {
  std::vector<uint8_t> m(static_cast<size_t>(w) * h, 0);
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) m[static_cast<size_t>(y) * w + x] = 1;
  return m;
}


// Runs the command; expects a one-line "error: …" containing needle and a non-zero exit.
void expect_one_line_error(const std::string& args, const std::string& needle) {
  std::string out;
  const int rc = run_cmd(binary() + " groundtruth --model " + bundled_model() + " " + args, &out);
  EXPECT_NE(rc, 0) << out;
  EXPECT_EQ(out.rfind("error: ", 0), 0u) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << "not one line: " << out;
  EXPECT_NE(out.find(needle), std::string::npos) << "expected '" << needle << "' in: " << out;
}

// An estimate's JSON: mean within [lo, hi] and the interval ordered.
void expect_estimate(const json& e, double lo, double hi, const std::string& what) {
  ASSERT_TRUE(e.contains("mean") && e.contains("ci95") && e.contains("n")) << what << ": " << e.dump();
  ASSERT_TRUE(e["mean"].is_number()) << what << ": " << e.dump();
  const double m = e["mean"], a = e["ci95"][0], b = e["ci95"][1];
  EXPECT_GE(m, lo) << what;
  EXPECT_LE(m, hi) << what;
  EXPECT_LE(a, m + 1e-12) << what;
  EXPECT_GE(b, m - 1e-12) << what;
}

}  // namespace

TEST(GroundTruth, AllObjectsOracleIsTheNamedShareOfTheObjects) {
  // Named object 2×2 = 4 px, another object 3×4 = 12 px: the union's IoU with the named is 4/16.
  const auto named = rect(8, 8, 0, 0, 2, 2), other = rect(8, 8, 4, 4, 7, 8);
  EXPECT_DOUBLE_EQ(all_objects_oracle_iou({named, other}, named), 0.25);
  // Alone in the scene, the oracle is exact.
  EXPECT_DOUBLE_EQ(all_objects_oracle_iou({named}, named), 1.0);
}

TEST(GroundTruth, ChanceIouIsAnalytic) {
  // E|A∩M| = a·m/N = 100·200/4000 = 5, IoU = 5 / (100 + 200 − 5).
  EXPECT_DOUBLE_EQ(chance_iou(100, 200, 4000), 5.0 / 295.0);
}

TEST(GroundTruth, PatchAverageIsTheCoveredShareOfEachPatch) {
  // 8×8 image, 2×2 grid of 4×4 patches; the truth covers the top-left patch and half the top-right one.
  const auto truth = rect(8, 8, 0, 0, 6, 4);
  const std::vector<float> avg = patch_average(truth, 8, 8, 2);
  ASSERT_EQ(avg.size(), 4u);
  EXPECT_FLOAT_EQ(avg[0], 1.0f);
  EXPECT_FLOAT_EQ(avg[1], 0.5f);
  EXPECT_FLOAT_EQ(avg[2], 0.0f);
  EXPECT_FLOAT_EQ(avg[3], 0.0f);
}

TEST(GroundTruth, BestThresholdRespectsTies) {
  // {map > t} can take the top 1, top 3 or all 4 pixels, never just the first two.
  const std::vector<float> map = {3, 2, 2, 1};
  const std::vector<uint8_t> truth = {1, 1, 0, 0};
  EXPECT_DOUBLE_EQ(best_threshold_iou(map, truth), 2.0 / 3.0);
}

TEST(GroundTruth, PatchCeilingOfOnePatchObject) {
  // 16×16 image, 4×4 grid: the truth is exactly patch (1, 1). Upsampled, the patch's
  // pixels carry weights 0.625² … 0.875², everything outside ≤ 0.875·0.375, so the best
  // threshold recovers the patch exactly; the p95 mask (values strictly above the
  // 95th percentile, which falls in the tied 0.625² corner group) keeps the 12 pixels
  // above the corners: IoU 12/16.
  const auto truth = rect(16, 16, 4, 4, 8, 8);
  const PatchCeiling pc = patch_ceiling(truth, 16, 16, 4);
  EXPECT_DOUBLE_EQ(pc.iou_best, 1.0);
  EXPECT_NEAR(pc.iou_p95, 0.75, 1e-12);
}

TEST(GroundTruth, SelectivityFormulaOnAHandMadeMap) {
  // 4×4 map: named pixels {0, 1} = 2, other object {14, 15} = 0, the rest 1.
  // mean 1, std sqrt(4·1/16) = 0.5, selectivity (2 − 0) / 0.5 = 4.
  std::vector<float> map = {2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
  std::vector<uint8_t> named(16, 0), other(16, 0), third(16, 0);
  named[0] = named[1] = 1;
  other[14] = other[15] = 1;
  Selectivity s = map_selectivity(map, named, {other});
  EXPECT_DOUBLE_EQ(s.value, 4.0);
  EXPECT_TRUE(s.wins);

  // A third object brighter than the named one: the named object no longer wins,
  // and selectivity compares against the union of the others.
  third[5] = 1;
  map[5] = 5;  // mean 20/16 = 1.25
  s = map_selectivity(map, named, {other, third});
  double sq = 0;
  for (float v : map) sq += (v - 1.25) * (v - 1.25);
  EXPECT_NEAR(s.value, (2.0 - 5.0 / 3.0) / std::sqrt(sq / 16), 1e-12);
  EXPECT_FALSE(s.wins);

  // A constant map prefers nothing.
  s = map_selectivity(std::vector<float>(16, 0.3f), named, {other});
  EXPECT_EQ(s.value, 0.0);
  EXPECT_FALSE(s.wins);
}

TEST(GroundTruth, BadArgumentsGiveOneLineErrors) {
  expect_one_line_error("--scenes 0", "--scenes");
  expect_one_line_error("--top 0", "--top");
  expect_one_line_error("--draws 0", "--draws");
  expect_one_line_error("--top 100000 --scenes 1 --no-gradient --quiet", "--top");
}

TEST(GroundTruth, EndToEndJsonHasEverySectionWithSaneValues) {
  ASSERT_TRUE(fs::exists(fs::path(bundled_model()) / "model.safetensors")) << "the bundled model is missing";
  const fs::path dir = temp_dir("groundtruth");
  const fs::path out = dir / "gt.json";
  const std::string base = binary() + " groundtruth --model " + bundled_model() + " --scenes 10 --no-gradient --quiet ";
  std::string log;
  ASSERT_EQ(run_cmd(base + "--json " + out.string(), &log), 0) << log;
  EXPECT_NE(log.find("layer-matched"), std::string::npos) << log;
  EXPECT_NE(log.find("patch ceiling"), std::string::npos) << log;
  const json j = json::parse(read_file(out.string()));

  for (const char* k : {"model", "options", "definitions", "counts", "methods", "references", "per_layer",
                        "paired_differences"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["options"]["scenes"], 10);
  EXPECT_EQ(j["options"]["draws"], 5);
  EXPECT_EQ(j["options"]["gradient"], false);
  EXPECT_EQ(j["counts"]["scenes"], 10);
  const int64_t units = j["counts"]["units"], multi = j["counts"]["multi_object_units"];
  EXPECT_GE(units, 10);
  EXPECT_GE(multi, 1);  // scenes 6–9 of the stream hold several shapes

  std::vector<std::string> names;
  for (const auto& m : j["methods"]) {
    names.push_back(m["method"]);
    expect_estimate(m["iou"], 0, 1, m["method"].get<std::string>() + " iou");
    EXPECT_EQ(m["iou"]["n"], units);
    expect_estimate(m["named_wins"], 0, 1, m["method"].get<std::string>() + " wins");
    ASSERT_TRUE(m["selectivity"]["mean"].is_number());
    EXPECT_EQ(m["selectivity"]["n"], multi);
    EXPECT_EQ(m["named_wins"]["n"], multi);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"score", "uniform", "layer-matched"}));

  const json& ref = j["references"];
  for (const char* k : {"chance", "all_objects_oracle", "patch_ceiling_p95", "patch_ceiling_best"})
    expect_estimate(ref[k]["iou"], 0, 1, k);
  const double ceiling = ref["patch_ceiling_best"]["iou"]["mean"];
  EXPECT_GE(ceiling, ref["patch_ceiling_p95"]["iou"]["mean"].get<double>());
  for (const auto& m : j["methods"]) EXPECT_GE(ceiling, m["iou"]["mean"].get<double>()) << m["method"];
  EXPECT_LT(ref["chance"]["iou"]["mean"].get<double>(), ceiling);

  ASSERT_EQ(j["per_layer"].size(), 4u);  // the bundled model's layers
  double share = 0;
  for (const auto& l : j["per_layer"]) {
    for (const char* k : {"layer", "top_share", "score", "random", "diff_iou", "diff_selectivity"})
      EXPECT_TRUE(l.contains(k)) << k;
    expect_estimate(l["score"]["iou"], 0, 1, "layer score iou");
    expect_estimate(l["random"]["iou"], 0, 1, "layer random iou");
    share += l["top_share"].get<double>();
  }
  EXPECT_NEAR(share, 1.0, 1e-9);

  std::vector<std::pair<std::string, std::string>> diffs;
  for (const auto& d : j["paired_differences"]) {
    diffs.emplace_back(d["a"], d["b"]);
    expect_estimate(d["iou"], -1, 1, "diff iou");
  }
  EXPECT_EQ(diffs, (std::vector<std::pair<std::string, std::string>>{{"score", "uniform"},
                                                                      {"score", "layer-matched"}}));

  // An existing --json file is kept unless --force (checked before the model loads).
  std::string err;
  EXPECT_NE(run_cmd(base + "--json " + out.string(), &err), 0);
  EXPECT_EQ(err.rfind("error: ", 0), 0u) << err;
  EXPECT_NE(err.find("--force"), std::string::npos) << err;
  // With --force it is replaced, by the same numbers: the experiment is seeded throughout.
  ASSERT_EQ(run_cmd(base + "--force --json " + out.string(), &log), 0) << log;
  EXPECT_EQ(json::parse(read_file(out.string())), j);
  fs::remove_all(dir);
}
