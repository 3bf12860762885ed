// Training the shapes LLaVA: a short run lowers the loss, an interrupted and
// resumed run equals an uninterrupted one bit for bit, the output directory is
// a checkpoint that `caption` and the evaluation load, and bad uses fail with
// one-line errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/shapes.h"
#include "grad/shapes_train.h"
#include "io/atomic_file.h"
#include "io/image.h"
#include "io/json_file.h"
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

// A tiny model trained for 40 steps, shared by the tests that only read it
// and removed at exit.
const fs::path& trained_tiny() {
  struct Run {
    fs::path base = test::temp_dir("train-tiny"), dir = base / "run";
    Run() { train_shapes_llava(tiny_options(dir, 40)); }
    ~Run() {
      std::error_code ec;
      fs::remove_all(base, ec);
    }
  };
  static Run run;
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

TEST(Train, CommandErrors) {
  fs::path d = test::temp_dir("train-err");
  std::string log;
  EXPECT_NE(test::run_cmd(test::binary() + " train --out " + (d / "x").string() + " --preset huge --steps 1", &log), 0);
  EXPECT_NE(log.find("error: --preset: unknown model preset 'huge'"), std::string::npos) << log;
  EXPECT_NE(test::run_cmd(test::binary() + " train --out " + (d / "missing").string() + " --eval", &log), 0);
  EXPECT_NE(log.find("error:"), std::string::npos) << log;
  EXPECT_NE(test::run_cmd(test::binary() + " train --steps 3", &log), 0);
  EXPECT_NE(log.find("error:"), std::string::npos) << log;
  fs::remove_all(d);
}
