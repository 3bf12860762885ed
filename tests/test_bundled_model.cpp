// The bundled shapes model (models/shapes-llava): it loads through the
// ordinary path, captions held-out scenes as its model card says, and the
// method finds neurons whose maps cover the named object more than chance.
#include <gtest/gtest.h>

#include <filesystem>

#include "grad/shapes_train.h"
#include "models/vlm.h"
#include "neurons/groundtruth.h"
#include "neurons/wordnet.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace mmn;
using namespace mmn::test;

TEST(BundledModel, CaptionsHeldOutScenes) {
  ASSERT_TRUE(fs::exists(fs::path(bundled_model()) / "model.safetensors")) << "the bundled model is missing";
  EvalOptions o;
  o.model = bundled_model();
  o.n = 50;
  o.show_progress = false;
  EvalResult r = evaluate_shapes_llava(o);
  EXPECT_GE(r.exact, 0.8) << "exact caption match on held-out scenes";
  EXPECT_GE(r.nouns_object, 0.95) << "noun accuracy on held-out scenes";
}

TEST(BundledModel, TopNeuronMapsCoverTheObjectMoreThanChance) {
  auto model = load_model(bundled_model());
  WordNet wn = WordNet::load();
  GroundTruthOptions o;
  o.scenes = 40;
  o.top = 50;
  o.gradient = false;
  GroundTruthReport rep = evaluate_ground_truth(*model, wn, o);
  ASSERT_GT(rep.concepts, 20);
  const GroundTruthMethod& score = rep.methods[0];
  ASSERT_EQ(score.method, "score");
  EXPECT_GT(score.mean_iou, 2 * rep.chance_iou) << "score IoU " << score.mean_iou << " vs chance " << rep.chance_iou;
}
