// Training the shapes LLaVA: a short run lowers the loss, an interrupted and
// resumed run equals an uninterrupted one bit for bit, the output directory is
// a checkpoint that `caption` and the evaluation load, and bad uses fail with
// one-line errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>

#include "data/shapes.h"
#include "grad/shapes_train.h"
#include "io/atomic_file.h"
#include "io/image.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "models/vlm.h"
#include "test_util.h"
#include "util/error.h"

using namespace mmn;
namespace fs = std::filesystem;

namespace {

TrainOptions tiny_options(const fs::path& out, int64_t steps) {
  TrainOptions o;
  o.out = out.string();
  o.preset = "tiny";
  o.steps = steps;
  o.batch = 8;
  o.lr = 3e-3f;
  o.warmup = 5;
  o.checkpoint_every = 1000;
  o.show_progress = false;
  return o;
}

std::vector<double> logged_losses(const fs::path& dir) {
  std::vector<double> out;
  std::ifstream f(dir / "train_log.jsonl");
  for (std::string line; std::getline(f, line);) out.push_back(nlohmann::json::parse(line)["loss"].get<double>());
  return out;
}

// A run of a preset for a few steps in its own temporary directory, removed
// when the run object goes.
struct TinyRun {
  fs::path base, dir;
  TinyRun(const std::string& preset, int64_t steps) : base(test::temp_dir("train-" + preset)), dir(base / "run") {
    TrainOptions o = tiny_options(dir, steps);
    o.preset = preset;
    train_shapes_llava(o);
  }
  ~TinyRun() {
    std::error_code ec;
    fs::remove_all(base, ec);
  }
};

// A tiny model trained for 40 steps, shared by the tests that only read it.
const fs::path& trained_tiny() {
  static TinyRun run("tiny", 40);
  return run.dir;
}

}  // namespace

TEST(Train, ShortRunLowersTheLoss) {
  const fs::path& dir = trained_tiny();
  std::vector<double> loss = logged_losses(dir);
  ASSERT_EQ(loss.size(), 40u);
  double first = 0, last = 0;
  for (int i = 0; i < 5; ++i) first += loss[i] / 5, last += loss[loss.size() - 1 - i] / 5;
  EXPECT_LT(last, 0.7 * first) << "first " << first << ", last " << last;
  for (const char* f : {"config.json", "preprocessor_config.json", "generation_config.json", "tokenizer.model",
                        "tokenizer_config.json", "model.safetensors", "train_state.safetensors", "loss.svg"})
    EXPECT_TRUE(fs::exists(dir / f)) << f;
  EXPECT_NE(read_file((dir / "loss.svg").string()).find("<polyline"), std::string::npos);
}

TEST(Train, CheckpointIsALoadableLlava) {
  const fs::path& dir = trained_tiny();
  // The preprocessor produces exactly the vision tower's input size.
  JsonFile cfg = JsonFile::load((dir / "config.json").string());
  const int64_t S = cfg.sub("vision_config").get_int("image_size");
  JsonFile pre = JsonFile::load((dir / "preprocessor_config.json").string());
  EXPECT_EQ(pre.sub("crop_size").get_int("height"), S);
  EXPECT_EQ(pre.sub("size").get_int("shortest_edge"), S);
  auto model = load_model(dir.string());
  EXPECT_EQ(model->family(), "llava");
  EXPECT_EQ(model->image_tokens(), (S / 8) * (S / 8));
  // `caption` runs on a scene image of the size the model takes.
  fs::path img = test::temp_dir("train-img") / "scene.png";
  ShapesOptions so;
  so.image_size = static_cast<int>(S);
  write_png(img.string(), make_scene(1, 0, so).image);
  std::string out;
  ASSERT_EQ(test::run_cmd(test::binary() + " caption --model " + dir.string() + " --image " + img.string() +
                              " --max-new-tokens 6 --json",
                          &out),
            0)
      << out;
  EXPECT_NE(out.find("\"generated_ids\""), std::string::npos) << out;
  fs::remove_all(img.parent_path());
}

TEST(Train, EvaluationReportsAccuracies) {
  const fs::path& dir = trained_tiny();
  EvalOptions e;
  e.model = dir.string();
  e.n = 4;
  e.max_new_tokens = 8;
  e.show_progress = false;
  e.out_json = (dir / "eval.json").string();
  EvalResult r = evaluate_shapes_llava(e);
  EXPECT_EQ(r.n, 4);
  EXPECT_GE(r.objects, 4);
  for (double v : {r.exact, r.nouns_image, r.nouns_object, r.objects_all, r.parsed}) {
    EXPECT_GE(v, 0.0);
    EXPECT_LE(v, 1.0);
  }
  nlohmann::json j = nlohmann::json::parse(read_file(e.out_json));
  EXPECT_EQ(j["n"], 4);
  EXPECT_TRUE(j.contains("exact_match"));
  EXPECT_FALSE(j["examples"].empty());
}

TEST(Train, ResumeEqualsAnUninterruptedRun) {
  fs::path base = test::temp_dir("train-resume");
  TrainOptions straight = tiny_options(base / "straight", 10);
  straight.batch = 4;
  train_shapes_llava(straight);
  TrainOptions part = straight;
  part.out = (base / "resumed").string();
  part.stop_at = 4;  // as if interrupted after the checkpoint of step 4
  train_shapes_llava(part);
  EXPECT_EQ(logged_losses(base / "resumed").size(), 4u);
  part.stop_at = -1;
  EXPECT_THROW(train_shapes_llava(part), mmn::Error);  // a run exists: --resume is required
  part.resume = true;
  TrainSummary s = train_shapes_llava(part);
  EXPECT_EQ(s.start_step, 4);
  EXPECT_EQ(logged_losses(base / "resumed"), logged_losses(base / "straight"));
  EXPECT_EQ(read_file((base / "resumed" / "model.safetensors").string()),
            read_file((base / "straight" / "model.safetensors").string()));
  fs::remove_all(base);
}

TEST(TrainV2, PatchHeadAndTriggerShareResumeExactly) {
  // The patch head's parameters live in the training state, not the
  // checkpoint; a resumed run equals the straight one bit for bit.
  fs::path base = test::temp_dir("train-patch");
  TrainOptions straight = tiny_options(base / "straight", 8);
  straight.preset = "tiny-v2";
  straight.batch = 4;
  straight.patch_loss = 1.f;
  straight.trigger_share = 0.5;
  train_shapes_llava(straight);
  TrainOptions part = straight;
  part.out = (base / "resumed").string();
  part.stop_at = 3;
  train_shapes_llava(part);
  part.stop_at = -1;
  part.resume = true;
  part.patch_loss = 0.f, part.trigger_share = 0;  // the run's own plan wins
  train_shapes_llava(part);
  EXPECT_EQ(logged_losses(base / "resumed"), logged_losses(base / "straight"));
  EXPECT_EQ(read_file((base / "resumed" / "model.safetensors").string()),
            read_file((base / "straight" / "model.safetensors").string()));
  // The log records the patch loss, which starts at ln 9 (a zero head, 8 shapes and background).
  std::ifstream f(base / "straight" / "train_log.jsonl");
  std::string first;
  std::getline(f, first);
  EXPECT_NEAR(nlohmann::json::parse(first)["patch_loss"].get<double>(), std::log(9.0), 1e-6);
  // The checkpoint holds no head; the state does.
  EXPECT_FALSE(SafetensorsCheckpoint::open((base / "straight").string()).has("patch_head.weight"));
  EXPECT_TRUE(SafetensorsCheckpoint::open((base / "straight" / "train_state.safetensors").string())
                  .has("patch_head.weight"));
  TrainOptions bad = tiny_options(base / "bad", 2);
  bad.trigger_share = 0.1;  // world v1 has no trigger scenes
  EXPECT_THROW(train_shapes_llava(bad), mmn::Error);
  bad.trigger_share = 1.5;
  EXPECT_THROW(train_shapes_llava(bad), mmn::Error);
  fs::remove_all(base);
}

TEST(Train, NeverWritesIntoAStrangersDirectory) {
  fs::path base = test::temp_dir("train-dirs");
  // --resume with nothing to resume is an error, and creates nothing.
  TrainOptions o = tiny_options(base / "none", 2);
  o.resume = true;
  EXPECT_THROW(train_shapes_llava(o), mmn::Error);
  EXPECT_FALSE(fs::exists(base / "none"));
  // A non-empty directory that holds no run is refused without force.
  fs::create_directories(base / "data");
  write_file_atomic((base / "data" / "notes.txt").string(), "mine");
  o = tiny_options(base / "data", 2);
  try {
    train_shapes_llava(o);
    ADD_FAILURE() << "trained into a non-empty directory";
  } catch (const mmn::Error& e) {
    EXPECT_NE(std::string(e.what()).find("is not empty and is not a training run"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(base / "data" / "config.json"));
  o.force = true;
  EXPECT_NO_THROW(train_shapes_llava(o));
  EXPECT_EQ(read_file((base / "data" / "notes.txt").string()), "mine");
  fs::remove_all(base);
}

TEST(Train, LossWeighting) {
  fs::path base = test::temp_dir("train-weighting");
  // One sample a step: its mean token loss is the batch's either way, so the
  // weights come out bit for bit the same.
  TrainOptions token = tiny_options(base / "token", 3);
  token.batch = 1;
  train_shapes_llava(token);
  TrainOptions sample = token;
  sample.out = (base / "sample").string();
  sample.loss_weighting = "sample";
  train_shapes_llava(sample);
  EXPECT_EQ(read_file((base / "token" / "model.safetensors").string()),
            read_file((base / "sample" / "model.safetensors").string()));
  // Several samples of different lengths: not the same gradient.
  TrainOptions token4 = tiny_options(base / "token4", 2), sample4 = token4;
  token4.preset = sample4.preset = "tiny-v2";  // captions and one-word answers mixed
  token4.batch = sample4.batch = 8;
  sample4.out = (base / "sample4").string();
  sample4.loss_weighting = "sample";
  train_shapes_llava(token4);
  const TrainSummary s4 = train_shapes_llava(sample4);
  EXPECT_NE(read_file((base / "token4" / "model.safetensors").string()),
            read_file((base / "sample4" / "model.safetensors").string()));
  EXPECT_TRUE(std::isfinite(s4.last_loss));
  // A resumed run keeps its weighting (it is in the run's state).
  TrainOptions more = sample4;
  more.loss_weighting = "token";
  more.resume = true;
  more.steps = 3;
  train_shapes_llava(more);
  const nlohmann::json o = nlohmann::json::parse(
      SafetensorsCheckpoint::open((base / "sample4" / "train_state.safetensors").string()).metadata().at("options"));
  EXPECT_EQ(o["loss_weighting"], "sample");
  // Sample weighting from step 2 of 4 equals token weighting for 2 steps, then
  // a resume that switches to sample weighting (the plan changes on resume).
  TrainOptions late = tiny_options(base / "late", 4);
  late.preset = "tiny-v2";
  late.batch = 4;
  late.loss_weighting = "sample";
  late.loss_weighting_from = 2;
  train_shapes_llava(late);
  TrainOptions switched = late;
  switched.out = (base / "switched").string();
  switched.loss_weighting = "token";
  switched.loss_weighting_from = 0;
  switched.stop_at = 2;
  train_shapes_llava(switched);
  switched.stop_at = -1;
  switched.resume = true;
  switched.keep_loss_weighting = true;
  switched.loss_weighting = "sample";
  switched.loss_weighting_from = 2;
  train_shapes_llava(switched);
  EXPECT_EQ(read_file((base / "late" / "model.safetensors").string()),
            read_file((base / "switched" / "model.safetensors").string()));
  EXPECT_EQ(logged_losses(base / "late"), logged_losses(base / "switched"));
  TrainOptions token_only = late;
  token_only.out = (base / "token-only").string();
  token_only.loss_weighting = "token";
  train_shapes_llava(token_only);
  EXPECT_NE(read_file((base / "late" / "model.safetensors").string()),
            read_file((base / "token-only" / "model.safetensors").string()));
  TrainOptions bad = token;
  bad.out = (base / "bad").string();
  bad.loss_weighting = "word";
  EXPECT_THROW(train_shapes_llava(bad), mmn::Error);
  bad.loss_weighting = "sample";
  bad.loss_weighting_from = -1;
  EXPECT_THROW(train_shapes_llava(bad), mmn::Error);
  fs::remove_all(base);
}

TEST(TrainV2, QueryWeightCurriculum) {
  // Late query weights from step 2 of 4 equal a run with the early weights
  // for 2 steps, resumed with the late ones (the plan changes on resume), and
  // differ from a run that never switches; the switch is in the run's state.
  fs::path base = test::temp_dir("train-curriculum");
  TrainOptions plan = tiny_options(base / "plan", 4);
  plan.preset = "tiny-v2";
  plan.batch = 4;
  plan.query_weights = {1, 0, 0, 0, 0};  // captions only, then only the grounded questions
  plan.late_query_weights = {0, 1, 1, 1, 1};
  plan.late_query_weights_from = 2;
  train_shapes_llava(plan);
  TrainOptions by_hand = plan;
  by_hand.out = (base / "by-hand").string();
  by_hand.late_query_weights.clear();
  by_hand.stop_at = 2;
  train_shapes_llava(by_hand);
  by_hand.stop_at = -1;
  by_hand.resume = true;
  by_hand.keep_query_weights = true;
  by_hand.query_weights = {0, 1, 1, 1, 1};
  train_shapes_llava(by_hand);
  EXPECT_EQ(logged_losses(base / "plan"), logged_losses(base / "by-hand"));
  EXPECT_EQ(read_file((base / "plan" / "model.safetensors").string()),
            read_file((base / "by-hand" / "model.safetensors").string()));
  TrainOptions early_only = plan;
  early_only.out = (base / "early-only").string();
  early_only.late_query_weights.clear();
  train_shapes_llava(early_only);
  EXPECT_NE(read_file((base / "plan" / "model.safetensors").string()),
            read_file((base / "early-only" / "model.safetensors").string()));
  const nlohmann::json o = nlohmann::json::parse(
      SafetensorsCheckpoint::open((base / "plan" / "train_state.safetensors").string()).metadata().at("options"));
  EXPECT_EQ(o["late_query_weights"], nlohmann::json({0, 1, 1, 1, 1}));
  EXPECT_EQ(o["late_query_weights_from"], 2);
  TrainOptions bad = plan;
  bad.out = (base / "bad").string();
  bad.late_query_weights = {0, 0, 0, 0, 0};
  try {
    train_shapes_llava(bad);
    ADD_FAILURE() << "trained with late weights that are all 0";
  } catch (const mmn::Error& e) {
    EXPECT_NE(std::string(e.what()).find("--late-query-weights: expected five weights"), std::string::npos) << e.what();
  }
  bad.late_query_weights = {1, 1, 1, 1, 1};
  bad.late_query_weights_from = -1;
  EXPECT_THROW(train_shapes_llava(bad), mmn::Error);
  fs::remove_all(base);
}

TEST(Train, CommandErrors) {
  fs::path d = test::temp_dir("train-err");
  std::string log;
  EXPECT_NE(test::run_cmd(test::binary() + " train --out " + (d / "x").string() + " --preset huge --steps 1", &log), 0);
  EXPECT_NE(log.find("error: --preset: unknown model preset 'huge'"), std::string::npos) << log;
  EXPECT_NE(test::run_cmd(test::binary() + " train --out " + (d / "missing").string() + " --eval", &log), 0);
  EXPECT_NE(log.find("error:"), std::string::npos) << log;
  EXPECT_NE(test::run_cmd(test::binary() + " train --steps 3", &log), 0);
  EXPECT_NE(log.find("error:"), std::string::npos) << log;
  EXPECT_NE(test::run_cmd(test::binary() + " train --out " + (d / "c").string() +
                              " --preset tiny-v2 --steps 1 --late-query-weights 1,1,1,1,1", &log), 0);
  EXPECT_NE(log.find("error: --late-query-weights and --late-query-weights-from go together"), std::string::npos)
      << log;
  EXPECT_FALSE(fs::exists(d / "c"));
  // Both given: the run takes the curriculum. (count() of a list option is its
  // number of values, so a check that compared the two counts refused this.)
  EXPECT_EQ(test::run_cmd(test::binary() + " train --out " + (d / "l").string() +
                              " --preset tiny-v2 --steps 2 --batch 2 --quiet --late-query-weights 0,1,1,1,1"
                              " --late-query-weights-from 1",
                          &log), 0) << log;
  const nlohmann::json lo = nlohmann::json::parse(
      SafetensorsCheckpoint::open((d / "l" / "train_state.safetensors").string()).metadata().at("options"));
  EXPECT_EQ(lo["late_query_weights"], nlohmann::json({0, 1, 1, 1, 1})) << lo.dump();
  EXPECT_EQ(lo["late_query_weights_from"], 1);
  // --quiet: no progress lines, only the summary.
  EXPECT_EQ(test::run_cmd(test::binary() + " train --out " + (d / "q").string() + " --preset tiny --steps 2 --batch 2 --quiet",
                          &log), 0) << log;
  EXPECT_EQ(log.find("train:"), std::string::npos) << log;
  EXPECT_NE(log.find("trained steps 0..2"), std::string::npos) << log;
  // --eval keeps an existing report unless --force; --eval-json writes elsewhere.
  const std::string eval = test::binary() + " train --out " + (d / "q").string() + " --eval --eval-n 2 --quiet";
  const fs::path report = d / "q" / "eval.json";
  ASSERT_EQ(test::run_cmd(eval, &log), 0) << log;
  ASSERT_TRUE(fs::exists(report));
  mmn::write_file_atomic(report.string(), "mine");
  EXPECT_NE(test::run_cmd(eval, &log), 0);
  EXPECT_EQ(log, "error: " + report.string() + ": exists; pass --force to overwrite it, or --eval-json to write elsewhere\n");
  EXPECT_EQ(mmn::read_file(report.string()), "mine");
  ASSERT_EQ(test::run_cmd(eval + " --eval-json " + (d / "elsewhere.json").string(), &log), 0) << log;
  EXPECT_TRUE(fs::exists(d / "elsewhere.json"));
  EXPECT_EQ(mmn::read_file(report.string()), "mine");
  ASSERT_EQ(test::run_cmd(eval + " --force", &log), 0) << log;
  EXPECT_NE(mmn::read_file(report.string()), "mine");
  fs::remove_all(d);
}

TEST(Train, ResumeWithoutStepsKeepsTheRunsPlan) {
  fs::path base = test::temp_dir("train-plan");
  TrainOptions o = tiny_options(base / "run", 6);
  o.batch = 2;
  o.stop_at = 3;
  train_shapes_llava(o);
  o.stop_at = -1;
  o.resume = true;
  o.steps = -1;  // `train --resume` without --steps
  TrainSummary s = train_shapes_llava(o);
  EXPECT_EQ(s.start_step, 3);
  EXPECT_EQ(s.steps, 6);
  EXPECT_EQ(logged_losses(base / "run").size(), 6u);
  o.resume = false;
  o.out = (base / "fresh").string();
  EXPECT_THROW(train_shapes_llava(o), mmn::Error);  // a new run needs its steps
  fs::remove_all(base);
}

TEST(Train, PresetRecipes) {
  const TrainOptions d;
  const TrainOptions small = shapes_recipe("small");
  EXPECT_EQ(small.steps, d.steps);
  EXPECT_EQ(small.batch, d.batch);
  EXPECT_EQ(small.lr, d.lr);
  const TrainOptions v2 = shapes_recipe("v2");
  EXPECT_EQ(v2.preset, "v2");
  EXPECT_GT(v2.steps, 0);
  EXPECT_EQ(small.loss_weighting, "token");  // the first bundled model's recipe stays what it was
  EXPECT_EQ(v2.loss_weighting, "sample");
  EXPECT_GT(v2.loss_weighting_from, 0);
  EXPECT_LT(v2.loss_weighting_from, v2.steps);
  EXPECT_EQ(small.patch_loss, 0.f);  // no patch head, no extra trigger scenes
  EXPECT_EQ(small.trigger_share, 0.0);
  EXPECT_GT(v2.patch_loss, 0.f);
  EXPECT_GT(v2.trigger_share, 0.0);
  // v2's curriculum: from a step inside the run on, the grounded queries outweigh the caption.
  EXPECT_TRUE(small.late_query_weights.empty());
  ASSERT_EQ(v2.late_query_weights.size(), v2.query_weights.size());
  EXPECT_GT(v2.late_query_weights_from, v2.loss_weighting_from);
  EXPECT_LT(v2.late_query_weights_from, v2.steps);
  auto caption_share = [](const std::vector<int>& w) {
    return static_cast<double>(w[0]) / std::accumulate(w.begin(), w.end(), 0);
  };
  EXPECT_LT(caption_share(v2.late_query_weights), caption_share(v2.query_weights));
  TrainOptions asked;
  asked.late_query_weights = {1, 1, 1, 1, 1};
  EXPECT_TRUE(shapes_recipe("small", asked).late_query_weights.empty()) << "the recipe's plan, not a leftover";
  const ShapesModelShape s = shapes_model_preset("v2");
  EXPECT_GE(s.t_layers, 8);
  EXPECT_GE(s.t_inter, 4 * s.t_hidden);
  EXPECT_GE(s.image / s.patch, 12);
  EXPECT_EQ(s.world, 2);
  EXPECT_THROW(shapes_recipe("huge"), mmn::Error);
}

namespace {

// A tiny world-v2 model trained for a few steps.
const fs::path& trained_tiny_v2() {
  static TinyRun run("tiny-v2", 12);
  return run.dir;
}

}  // namespace

TEST(TrainV2, RunRecordsItsWorldAndVocabularyUse) {
  const fs::path& dir = trained_tiny_v2();
  nlohmann::json world = nlohmann::json::parse(read_file((dir / "shapes_world.json").string()));
  EXPECT_EQ(world["version"], 2);
  EXPECT_EQ(world["image_size"], 48);
  auto model = load_model(dir.string());
  EXPECT_EQ(model->grid_side(), 6);
  EXPECT_LT(model->tokenizer().vocab_size(), 100) << "a word-level vocabulary";
  const nlohmann::json uses = nlohmann::json::parse(read_file((dir / "vocab_uses.json").string()));
  EXPECT_EQ(uses["rows"], model->tokenizer().vocab_size());
  std::set<std::string> never;
  for (const auto& p : uses["never_used"]) never.insert(p.get<std::string>());
  for (const char* structural : {"<unk>", "<image>", "<pad>"}) EXPECT_TRUE(never.count(structural)) << structural;
  // Every sample ends with </s> and starts with <s>: 12 steps of 8.
  EXPECT_EQ(uses["uses"][1]["piece"], "<s>");
  EXPECT_EQ(uses["uses"][1]["uses"], 96);
  EXPECT_EQ(uses["uses"][2]["uses"], 96);
}

TEST(TrainV2, EvaluationReportsGroundedAnswersAndHallucinations) {
  const fs::path& dir = trained_tiny_v2();
  EvalOptions e;
  e.model = dir.string();
  e.n = 4;
  e.n_trigger = 2;
  e.max_new_tokens = 10;
  e.show_progress = false;
  e.out_json = (dir / "eval.json").string();
  EvalResult r = evaluate_shapes_llava(e);
  EXPECT_EQ(r.world, 2);
  EXPECT_EQ(r.n, 4);
  EXPECT_GE(r.trigger, 2);
  ASSERT_EQ(r.answers.size(), 4u);
  for (const char* type : {"position", "colour", "count", "where"}) EXPECT_EQ(r.asked.at(type), 4) << type;
  for (double v : {r.exact, r.exact_non_trigger, r.answers_all, r.ghost_trigger, r.ghost_other, r.absent_trigger,
                   r.absent_other}) {
    EXPECT_GE(v, 0.0);
    EXPECT_LE(v, 1.0);
  }
  nlohmann::json j = nlohmann::json::parse(read_file(e.out_json));
  EXPECT_EQ(j["world"], 2);
  EXPECT_TRUE(j["grounded"].contains("by_type"));
  EXPECT_GE(j["hallucination"]["trigger_scenes"].get<int>(), 2);
}
