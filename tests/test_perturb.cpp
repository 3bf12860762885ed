// `mmneuron perturb` on the bundled model and held-out scenes: the causal
// claims with robust thresholds (top-10 ablation lowers the noun's margin at j*
// ≥ 5× more than 10 layer-matched random neurons; at N = 50 the noun changes
// in ≥ 10 points more captions), reuse on/off identical, and bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "golden_models.h"
#include "io/atomic_file.h"
#include "neurons/stats.h"
#include "test_util.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace mmn;
using namespace mmn::test;

namespace {

// One find run over held-out scenes (a seed the model never trained on), shared by the tests.
class PerturbRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = temp_dir("perturb");
    std::string out;
    ASSERT_EQ(run_cmd(binary() + " shapes --n 30 --seed 4242 --out " + (dir_ / "scenes").string(), &out), 0) << out;
    ASSERT_EQ(run_cmd(binary() + " find --model " + bundled_model() + " --images " + (dir_ / "scenes" / "images").string() +
                          " --top-k 100 --report 5 --out " + (dir_ / "run").string(),
                      &out),
              0)
        << out;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static fs::path run() { return dir_ / "run"; }
  static json perturb(const std::string& args, const std::string& name) {
    std::string out;
    const fs::path file = dir_ / name;
    EXPECT_EQ(run_cmd(binary() + " perturb " + run().string() + " --quiet --out " + file.string() + " " + args, &out), 0)
        << out;
    return json::parse(read_file(file.string()));
  }
  static const json& find_comparison(const json& s, const std::string& top, const std::string& random) {
    for (auto& c : s["comparisons"])
      if (c["top"] == top && c["random"] == random) return c;
    ADD_FAILURE() << "no comparison " << top << " vs " << random;
    static json none;
    return none;
  }
  static fs::path dir_;
};
fs::path PerturbRun::dir_;

TEST_F(PerturbRun, TopNeuronsAreCausalAgainstLayerMatchedRandom) {
  json j = perturb("--top 10,50 --zero --random layer,uniform --draws 5", "perturb.json");
  const json& s = j["summary"];
  ASSERT_GE(s["items"].get<int>(), 40) << "held-out scenes should give dozens of (image, noun) items";
  const json& c10 = find_comparison(s, "top 10 zero", "layer 10 zero");
  const double ratio = c10["margin_drop_ratio"]["mean"].get<double>();
  EXPECT_GE(ratio, 5.0) << c10.dump();
  // Paired: the top-10 drop exceeds the random drop with the whole CI below zero (after − before is more negative).
  EXPECT_LT(c10["delta_margin_diff"]["ci95"][1].get<double>(), 0.0) << c10.dump();
  const json& c50 = find_comparison(s, "top 50 zero", "layer 50 zero");
  EXPECT_GE(c50["noun_changed_diff"]["mean"].get<double>(), 0.10) << c50.dump();
  // Every item carries its clean numbers and one draw of the (deterministic) top ablation.
  for (auto& it : j["items"]) {
    ASSERT_TRUE(it["clean"]["survives"].get<bool>());
    for (auto& c : it["conditions"]) {
      if (c["set"] == "top") EXPECT_EQ(c["draws"].size(), 1u);
      else EXPECT_EQ(c["draws"].size(), 5u);
    }
  }
}

TEST_F(PerturbRun, ReuseOnAndOffGiveIdenticalResults) {
  json a = perturb("--top 5 --sigma 0.5,2 --zero --draws 2 --max-images 4", "reuse.json");
  json b = perturb("--top 5 --sigma 0.5,2 --zero --draws 2 --max-images 4 --no-reuse", "noreuse.json");
  ASSERT_FALSE(a["items"].empty());
  EXPECT_EQ(a["items"], b["items"]);
  EXPECT_EQ(a["summary"]["conditions"], b["summary"]["conditions"]);
}

TEST_F(PerturbRun, BadInput) {
  const std::string base = binary() + " perturb " + run().string() + " --quiet --out " + (dir_ / "bad.json").string();
  expect_one_line_error(base + " --top 500", {"--top 500 is larger than the 100 neurons"});
  expect_one_line_error(base + " --sigma -1", {"--sigma: value -1 not in range [0, inf)"});
  expect_one_line_error(base + " --top 0", {"--top: value 0 not in range [1, inf)"});
  expect_one_line_error(base + " --draws 0", {"--draws: value 0 not in range [1, 10000]"});
  expect_one_line_error(base + " --random sideways", {"--random: expected"});
  expect_one_line_error(binary() + " perturb " + (dir_ / "nope").string(), {"run directory not found"});
  // An existing output is never overwritten without --force.
  write_file_atomic((dir_ / "exists.json").string(), "{}\n");
  expect_one_line_error(binary() + " perturb " + run().string() + " --out " + (dir_ / "exists.json").string(),
                        {"already exists (use --force"});
  if (!shared_dir().empty()) {
    expect_one_line_error(base + " --model " + golden("models/tiny-llava-a-f32").string(),
                          {"made with another model"});
  }
}

TEST(Stats, BootstrapMatchesHandComputations) {
  Estimate e = bootstrap_mean({1, 2, 3, 4}, 1);
  EXPECT_DOUBLE_EQ(e.mean, 2.5);
  EXPECT_GE(e.lo, 1.0);
  EXPECT_LE(e.hi, 4.0);
  EXPECT_LT(e.lo, e.mean);
  EXPECT_GT(e.hi, e.mean);
  Estimate c = bootstrap_mean({7, 7, 7}, 1);
  EXPECT_EQ(c.lo, 7);
  EXPECT_EQ(c.hi, 7);
  Estimate d = bootstrap_paired_diff({3, 5, 7}, {1, 2, 3}, 2);
  EXPECT_DOUBLE_EQ(d.mean, 3.0);
  Estimate r = bootstrap_ratio({2, 4}, {1, 2}, 3);
  EXPECT_DOUBLE_EQ(r.mean, 2.0);
  EXPECT_DOUBLE_EQ(r.lo, 2.0);  // every resample has ratio 2
  EXPECT_EQ(bootstrap_mean({}, 1).n, 0);
  EXPECT_EQ(format_estimate(bootstrap_mean({}, 1)), "n/a");
  EXPECT_NE(mix_seed(1, {2, 3}), mix_seed(1, {3, 2}));
}

}  // namespace
