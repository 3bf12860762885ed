// `mmneuron find --tokens all` against the reference: for every generated
// step, the ranked top-50 neurons for both activation variants, and the logit
// lens of the reference's top neurons.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace mmn::test;

namespace {

// Compares a ranked list with the reference: the score at each rank within
// tol; a differing (layer, unit) at a rank is allowed only where the reference
// scores of the neighbours it swapped with differ by less than tol.
void expect_ranked_equal(const json& got, const json& ref, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  for (size_t r = 0; r < ref.size(); ++r) {
    const double rs = ref[r]["score"].get<double>(), gs = got[r]["score"].get<double>();
    EXPECT_NEAR(gs, rs, tol) << what << " rank " << r;
    const bool same = got[r]["layer"] == ref[r]["layer"] && got[r]["unit"] == ref[r]["neuron"];
    if (!same) {
      // Find the reference rank of the neuron we put here; scores must be tied within tol.
      bool tied = false;
      for (size_t q = 0; q < ref.size(); ++q)
        if (got[r]["layer"] == ref[q]["layer"] && got[r]["unit"] == ref[q]["neuron"])
          tied = std::fabs(ref[q]["score"].get<double>() - rs) < tol;
      EXPECT_TRUE(tied) << what << " rank " << r << ": got L" << got[r]["layer"] << "U" << got[r]["unit"]
                        << ", reference L" << ref[r]["layer"] << "U" << ref[r]["neuron"];
    }
  }
}

}  // namespace

class FindGolden : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(FindGolden, TopNeuronsOfEveryStepMatchReference) {
  MMN_REQUIRE_SHARED();
  const auto& [model, image] = GetParam();
  const fs::path ref_dir = golden_case(model, image);
  const json summary = json::parse(mmn::read_file((ref_dir / "summary.json").string()));
  const int steps = static_cast<int>(summary["generation"]["generated_ids"].size());
  for (const std::string variant : {"act", "swiglu"}) {
    const std::string key = variant == "act" ? "scores_act_fn_gate" : "scores_down_proj_input";
    const std::vector<float> full = mmn::read_npy((ref_dir / (key + ".npy")).string()).as_f32();
    double maxref = 0;
    for (float v : full) maxref = std::max(maxref, std::fabs(static_cast<double>(v)));
    const double tol = (model.find("owl2") != std::string::npos ? 3e-5 : 2e-5) * maxref;

    fs::path out = temp_dir("find-" + model + "-" + image + "-" + variant);
    std::string log;
    const std::string cmd = binary() + " find --model " + golden_model(model).string() + " --image " +
                            golden("images/" + image + ".png").string() + " --out " + out.string() +
                            " --tokens all --top-k 50 --max-new-tokens " + std::to_string(steps) +
                            " --activation " + variant;
    ASSERT_EQ(run_cmd(cmd, &log), 0) << log;
    const json res = json::parse(mmn::read_file((out / image / "result.json").string()));
    EXPECT_EQ(res["generated_ids"], summary["generation"]["generated_ids"]);
    const json& ref_steps = summary["scores"][key];
    ASSERT_EQ(res["nouns"].size(), ref_steps.size());
    for (size_t s = 0; s < ref_steps.size(); ++s) {
      const json& got = res["nouns"][s];
      const json& ref = ref_steps[s];
      ASSERT_EQ(got["step"], ref["step"]);
      ASSERT_EQ(got["token_id"], ref["token_id"]);
      expect_ranked_equal(got["neurons"], ref["top"], tol, variant + " step " + std::to_string(s));
      // Logit lens (top-10 over the base vocabulary) of the reference's top neurons.
      for (const json& lens : ref["logit_lens_top_neurons"]) {
        for (const json& n : got["neurons"])
          if (n["layer"] == lens["layer"] && n["unit"] == lens["neuron"]) {
            EXPECT_EQ(n["top_token_ids"], lens["top_ids_first32000"])
                << variant << " step " << s << " L" << lens["layer"] << "U" << lens["neuron"];
          }
      }
    }
    fs::remove_all(out);
  }
}

INSTANTIATE_TEST_SUITE_P(AllCases, FindGolden,
                         ::testing::Combine(::testing::Values("tiny-llava-a-f32", "tiny-llava-c-f16", "tiny-iblip-a-f32",
                                                              "tiny-owl2-a-f32", "tiny-llava1-a-f32"),
                                            ::testing::Values("landscape_80x60", "portrait_48x72", "tiny_10x10")),
                         TupleParamName());

// --fold-norm-gain scores U[t] ⊙ g (g = final RMSNorm weight): recomputed here
// from the reference's activations and the checkpoint's weights.
TEST(FindGoldenFold, FoldNormGainScores) {
  MMN_REQUIRE_SHARED();
  const std::string model = "tiny-llava-a-f32", image = "landscape_80x60";
  const fs::path ref_dir = golden("cases/" + model + "/" + image);
  mmn::NpyArray act = mmn::read_npy((ref_dir / "act_fn_gate_steps.npy").string());
  const std::vector<float> a = act.as_f32();
  const int64_t L = act.shape[1], I = act.shape[2];
  const json summary = json::parse(mmn::read_file((ref_dir / "summary.json").string()));
  const int32_t t0 = summary["generation"]["generated_ids"][0];
  auto ck = mmn::SafetensorsCheckpoint::open(golden("models/" + model).string());
  const float* U = static_cast<const float*>(ck.get("language_model.lm_head.weight").data);
  const float* g = static_cast<const float*>(ck.get("language_model.model.norm.weight").data);
  const int64_t D = ck.get("language_model.model.norm.weight").shape[0];
  std::vector<std::pair<double, int64_t>> scores;  // (score, flat index) at step 0
  for (int64_t l = 0; l < L; ++l) {
    const float* W = static_cast<const float*>(ck.get("language_model.model.layers." + std::to_string(l) + ".mlp.down_proj.weight").data);
    for (int64_t i = 0; i < I; ++i) {
      double p = 0;
      for (int64_t d = 0; d < D; ++d) p += static_cast<double>(W[d * I + i]) * U[t0 * D + d] * g[d];
      scores.emplace_back(a[l * I + i] * p, l * I + i);
    }
  }
  std::sort(scores.begin(), scores.end(), [](auto& x, auto& y) { return x.first > y.first; });
  fs::path out = temp_dir("fold");
  std::string log;
  ASSERT_EQ(run_cmd(binary() + " find --model " + golden("models/" + model).string() + " --image " +
                        golden("images/" + image + ".png").string() + " --out " + out.string() +
                        " --tokens all --top-k 10 --max-new-tokens 1 --fold-norm-gain",
                    &log),
            0)
      << log;
  const json res = json::parse(mmn::read_file((out / image / "result.json").string()));
  const json& ns = res["nouns"][0]["neurons"];
  ASSERT_EQ(ns.size(), 10u);
  for (size_t r = 0; r < 10; ++r) {
    EXPECT_NEAR(ns[r]["score"].get<double>(), scores[r].first, 1e-4 * std::fabs(scores[0].first)) << r;
    EXPECT_EQ(ns[r]["layer"].get<int64_t>() * I + ns[r]["unit"].get<int64_t>(), scores[r].second) << r;
  }
  fs::remove_all(out);
}
