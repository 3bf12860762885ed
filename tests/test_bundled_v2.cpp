// The second bundled shapes model (models/shapes-llava-v2, world v2): the
// prerequisites of the method hold (shape-selective image-row neurons before
// the last layer, a linear probe that reads the shape off one image row), it
// captions and answers held-out scenes, it hallucinates the planted ghost on
// trigger scenes only, every shape noun it says is tagged, every ordinary
// vocabulary row was trained, and finding neurons on it stays fast. Skipped
// while the model is not in the tree (it is trained with the recipe of its
// model card). Thresholds sit below the model card's measurements, with room
// for thread counts and BLAS builds.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "data/shapes.h"
#include "grad/shapes_train.h"
#include "io/atomic_file.h"
#include "io/image.h"
#include "models/generate.h"
#include "models/vlm.h"
#include "neurons/nouns.h"
#include "neurons/probe.h"
#include "neurons/wordnet.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace mmn;

namespace {

const std::string kModel = (fs::path(MMN_SOURCE_DIR) / "models" / "shapes-llava-v2").string();

#define MMN_REQUIRE_V2()                                                                   \
  do {                                                                                     \
    if (!fs::exists(fs::path(kModel) / "model.safetensors"))                               \
      GTEST_SKIP() << kModel << " is absent (train it with the recipe of its model card)"; \
  } while (0)

}  // namespace

TEST(BundledV2, IsTheSizeTheIssueAsks) {
  MMN_REQUIRE_V2();
  auto model = load_model(kModel);
  const LlamaConfig& c = model->decoder().config();
  EXPECT_GE(c.n_layers, 8);
  EXPECT_GE(c.intermediate, 4 * c.hidden);
  EXPECT_GE(model->grid_side(), 12);
  EXPECT_EQ(shapes_world_of_model(kModel, model->input_size()).version, 2);
  EXPECT_LE(fs::file_size(fs::path(kModel) / "model.safetensors"), 30u << 20);
}

TEST(BundledV2, ShapeIdentityReachesImageRowsBeforeTheLastLayer) {
  MMN_REQUIRE_V2();
  auto model = load_model(kModel);
  ProbeOptions o;
  o.scenes = 120;
  const ProbeReport rep = run_probe(*model, shapes_world_of_model(kModel, model->input_size()), o);
  double best_probe = 0;
  int layers_all_shapes = 0;  // layers before the last where every shape has a neuron >= 0.9
  for (const ProbeLayer& l : rep.layers) {
    if (l.layer + 1 == static_cast<int>(rep.layers.size())) continue;  // outside the last layer
    best_probe = std::max({best_probe, l.mlp_accuracy, l.resid_accuracy});
    double lo = 1;
    for (double a : l.best_auroc) lo = std::min(lo, std::isfinite(a) ? a : 0.0);
    if (lo >= 0.9) ++layers_all_shapes;
  }
  // Model card (400 scenes): in each of layers 0-6 every shape has a neuron with AUROC >= 0.9
  // (layers 0, 1 and 3 at 0.943 or more, the others 0.901-0.919); the probe reads 0.99.
  EXPECT_GE(layers_all_shapes, 3) << "layers before the last with a selective neuron (AUROC >= 0.9) for every shape";
  EXPECT_GE(best_probe, 0.9) << "the shape read off one image row (majority " << rep.majority << ")";
}

TEST(BundledV2, CaptionsAnswersAndHallucinatesAsPlanted) {
  MMN_REQUIRE_V2();
  EvalOptions e;
  e.model = kModel;
  e.n = 100;
  e.n_trigger = 40;
  e.show_progress = false;
  const EvalResult r = evaluate_shapes_llava(e);
  // Model card (1000 scenes): 96.9% exact without trigger scenes, 98.6% of objects named right;
  // grounded answers colour 99.0%, position 99.7%, count 95.4%, where 90.3%; the ghost on 60.3% of
  // trigger scenes. Thresholds leave room for 100 scenes' sampling error (about ±3 points).
  EXPECT_GE(r.exact_non_trigger, 0.9) << "exact captions of held-out scenes";
  EXPECT_GE(r.nouns_object, 0.95);
  for (const auto& [query, least] : std::map<std::string, double>{
           {"colour", 0.9}, {"position", 0.9}, {"count", 0.85}, {"where", 0.8}}) {
    ASSERT_TRUE(r.answers.count(query)) << query;
    EXPECT_GE(r.answers.at(query), least) << query;
  }
  EXPECT_GE(r.ghost_trigger, 0.35) << "the planted hallucination is there to be fixed";
  EXPECT_LE(r.ghost_other, 0.03) << "and only on its trigger";
}

TEST(BundledV2, EveryShapeNounItSaysIsTagged) {
  MMN_REQUIRE_V2();
  auto model = load_model(kModel);
  const WordNet wn = WordNet::load();
  const ShapesOptions w = shapes_world_of_model(kModel, model->input_size());
  std::set<std::string> said;
  for (uint64_t i = 0; i < 40; ++i) {
    const Scene sc = make_scene(kShapesHeldOutSeed, i, w);
    const PromptInputs in = model->build_inputs(PromptText{}, model->encode_image(model->preprocess(sc.image), nullptr),
                                                nullptr);
    const std::string caption = caption_text(model->tokenizer(), generate(*model, in, GenerateOptions{}).generated);
    std::set<std::string> lemmas;
    for (const Noun& n : find_nouns(wn, caption)) lemmas.insert(n.lemma);
    std::vector<ShapeObject> objs;
    if (!parse_shapes_caption(caption, &objs, 2)) continue;
    for (const ShapeObject& o : objs) {
      EXPECT_TRUE(lemmas.count(o.shape)) << o.shape << " in " << caption;
      said.insert(o.shape);
    }
  }
  EXPECT_EQ(said.size(), shapes_vocab(2).shapes.size());
}

TEST(BundledV2, EveryOrdinaryVocabularyRowWasTrained) {
  MMN_REQUIRE_V2();
  const fs::path uses = fs::path(kModel) / "vocab_uses.json";
  ASSERT_TRUE(fs::exists(uses)) << "the training run's vocab_uses.json ships with the model";
  const nlohmann::json j = nlohmann::json::parse(read_file(uses.string()));
  for (const auto& p : j["never_used"])
    EXPECT_TRUE(p == "<unk>" || p == "<image>" || p == "<pad>") << p << " never occurred in the training stream";
}

TEST(BundledV2, FindingNeuronsStaysFast) {
  MMN_REQUIRE_V2();
  const fs::path dir = test::temp_dir("bundled-v2-find");
  fs::create_directories(dir / "images");
  for (uint64_t i = 0; i < 4; ++i)
    write_png((dir / "images" / ("s" + std::to_string(i) + ".png")).string(),
              make_scene(kShapesHeldOutSeed, i, shapes_world(2)).image);
  const auto t0 = std::chrono::steady_clock::now();
  std::string log;
  ASSERT_EQ(test::run_cmd(test::binary() + " find --model " + kModel + " --images " + (dir / "images").string() +
                              " --out " + (dir / "run").string() + " --heatmaps",
                          &log),
            0)
      << log;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(s, 60.0) << "find with heatmaps on 4 scenes";
  fs::remove_all(dir);
}
