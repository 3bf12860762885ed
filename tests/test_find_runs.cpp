// Dataset runs of `mmneuron find`: resuming after a kill, sharding + merge
// equal to one run, broken entries skipped, bad arguments rejected.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "io/atomic_file.h"
#include "io/dataset.h"
#include "test_util.h"
#include "util/error.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace mmn::test;

namespace {

class FindRuns : public ::testing::Test {
 protected:
  static fs::path base_;
  static void SetUpTestSuite() {
    base_ = temp_dir("runs-base");
    std::string log;
    ASSERT_EQ(run_cmd(binary() + " make-random --preset tiny --dtype f32 --out " + (base_ / "model").string(), &log), 0)
        << log;
    fs::create_directories(base_ / "images");
    const std::string png = mmn::read_file((fs::path(MMN_SOURCE_DIR) / "assets/sample.png").string());
    for (int i = 0; i < 8; ++i)
      mmn::write_file_atomic((base_ / "images" / ("img" + std::to_string(i) + ".png")).string(), png);
  }
  static void TearDownTestSuite() { fs::remove_all(base_); }

  static std::string find_cmd(const fs::path& out, const std::string& extra = "", int tokens = 12, int k = 20) {
    return binary() + " find --model " + (base_ / "model").string() + " --images " + (base_ / "images").string() +
           " --out " + out.string() + " --tokens all --top-k " + std::to_string(k) + " --max-new-tokens " +
           std::to_string(tokens) + " " + extra;
  }
  // result.json without the timings (the only part that may differ between runs).
  static json result(const fs::path& run, const std::string& id) {
    json j = json::parse(mmn::read_file((run / id / "result.json").string()));
    j.erase("timings");
    return j;
  }
};
fs::path FindRuns::base_;

}  // namespace

TEST_F(FindRuns, ResumeAfterKillLosesNothingFinished) {
  fs::path clean = temp_dir("clean"), killed = temp_dir("killed");
  std::string log;
  ASSERT_EQ(run_cmd(find_cmd(clean), &log), 0) << log;

  // Start a run, kill -9 it as soon as some image is finished, then resume.
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + find_cmd(killed, "", 50) + " >/dev/null 2>&1").c_str(), nullptr);
    _exit(127);
  }
  bool some_done = false;
  for (int i = 0; i < 3000 && !some_done; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    for (int k = 0; k < 8; ++k) some_done |= fs::exists(killed / ("img" + std::to_string(k)) / "result.json");
  }
  kill(pid, SIGKILL);
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(some_done);
  // Whatever exists is complete JSON.
  int finished = 0;
  for (int k = 0; k < 8; ++k) {
    fs::path r = killed / ("img" + std::to_string(k)) / "result.json";
    if (fs::exists(r)) {
      ++finished;
      EXPECT_NO_THROW(json::parse(mmn::read_file(r.string())));
    }
  }
  // Resuming with the original settings is refused when they differ...
  std::string out;
  EXPECT_NE(run_cmd(find_cmd(killed), &out), 0);
  EXPECT_NE(out.find("different options"), std::string::npos) << out;
  // ...and completes the run with the same ones, skipping finished images.
  ASSERT_EQ(run_cmd(find_cmd(killed, "", 50), &out), 0) << out;
  EXPECT_NE(out.find(std::to_string(finished) + " already done"), std::string::npos) << out;
  fs::path again = temp_dir("again");
  ASSERT_EQ(run_cmd(find_cmd(again, "", 50), &out), 0) << out;
  for (int k = 0; k < 8; ++k) EXPECT_EQ(result(killed, "img" + std::to_string(k)), result(again, "img" + std::to_string(k)));
  fs::remove_all(clean);
  fs::remove_all(killed);
  fs::remove_all(again);
}

TEST_F(FindRuns, ShardsMergeToTheSingleRun) {
  fs::path one = temp_dir("one"), s0 = temp_dir("s0"), s1 = temp_dir("s1"), merged = temp_dir("merged");
  std::string log;
  ASSERT_EQ(run_cmd(find_cmd(one), &log), 0) << log;
  ASSERT_EQ(run_cmd(find_cmd(s0, "--shard 0/2"), &log), 0) << log;
  ASSERT_EQ(run_cmd(find_cmd(s1, "--shard 1/2"), &log), 0) << log;
  EXPECT_TRUE(fs::exists(s0 / "img0" / "result.json"));
  EXPECT_FALSE(fs::exists(s0 / "img1" / "result.json"));
  EXPECT_TRUE(fs::exists(s1 / "img1" / "result.json"));
  ASSERT_EQ(run_cmd(binary() + " merge " + s0.string() + " " + s1.string() + " --out " + merged.string(), &log), 0)
      << log;
  for (int k = 0; k < 8; ++k) EXPECT_EQ(result(merged, "img" + std::to_string(k)), result(one, "img" + std::to_string(k)));
  json a = json::parse(mmn::read_file((one / "run.json").string()));
  json b = json::parse(mmn::read_file((merged / "run.json").string()));
  EXPECT_EQ(a["options"], b["options"]);
  // The same run twice (by another path), or a shard twice, is refused; a missing shard is reported.
  EXPECT_NE(run_cmd(binary() + " merge " + s0.string() + " " + (s0 / ".").string() + " --out " +
                        temp_dir("m3").string(), &log), 0);
  EXPECT_NE(log.find("given twice"), std::string::npos) << log;
  fs::path s0b = temp_dir("s0b");
  fs::copy(s0, s0b, fs::copy_options::recursive);
  EXPECT_NE(run_cmd(binary() + " merge " + s0.string() + " " + s0b.string() + " --out " + temp_dir("m4").string(), &log),
            0);
  EXPECT_NE(log.find("is shard 0/2 again"), std::string::npos) << log;
  const fs::path partial = temp_dir("m5");
  ASSERT_EQ(run_cmd(binary() + " merge " + s0.string() + " --out " + partial.string(), &log), 0) << log;
  EXPECT_NE(log.find("no run is shard 1/2"), std::string::npos) << log;
  EXPECT_EQ(json::parse(mmn::read_file((partial / "run.json").string()))["missing_shards"], json::array({"1/2"}));
  // A non-empty --out that is no run is refused without --force; a run (to extend) is not.
  const fs::path cluttered = temp_dir("m6");
  fs::create_directories(cluttered);
  mmn::write_file_atomic((cluttered / "notes.txt").string(), "mine");
  EXPECT_NE(run_cmd(binary() + " merge " + s0.string() + " --out " + cluttered.string(), &log), 0);
  EXPECT_NE(log.find("is not empty and is not a find run"), std::string::npos) << log;
  EXPECT_NE(run_cmd(find_cmd(cluttered), &log), 0);
  EXPECT_NE(log.find("is not empty and is not a find run"), std::string::npos) << log;
  EXPECT_EQ(run_cmd(binary() + " merge " + s1.string() + " --out " + partial.string(), &log), 0) << log;
  for (auto& d : {s0b, partial, cluttered}) fs::remove_all(d);
  // Runs with different settings are not merged.
  fs::path other = temp_dir("other");
  ASSERT_EQ(run_cmd(find_cmd(other, "--end 1", 12, 7), &log), 0) << log;
  EXPECT_NE(run_cmd(binary() + " merge " + s0.string() + " " + other.string() + " --out " + temp_dir("m2").string(), &log), 0);
  EXPECT_EQ(log.rfind("error: ", 0), 0u) << log;
  for (auto& d : {one, s0, s1, merged, other}) fs::remove_all(d);
}

TEST_F(FindRuns, ImageIdsAreNeverDotOrDotDot) {
  // "..png" has the stem ".": its id must not name the run folder itself.
  const fs::path d = temp_dir("dots");
  fs::create_directories(d);
  fs::copy_file(base_ / "images" / "img0.png", d / "..png");
  fs::copy_file(base_ / "images" / "img1.png", d / "...png");
  const fs::path run = temp_dir("dotsrun");
  std::string out;
  ASSERT_EQ(run_cmd(binary() + " find --model " + (base_ / "model").string() + " --image " + (d / "..png").string() +
                        " --image " + (d / "...png").string() + " --out " + run.string() +
                        " --tokens all --top-k 5 --max-new-tokens 3 --quiet",
                    &out),
            0)
      << out;
  EXPECT_TRUE(fs::exists(run / "image" / "result.json")) << out;
  EXPECT_TRUE(fs::exists(run / "image-1" / "result.json")) << out;
  EXPECT_FALSE(fs::exists(run / "result.json"));
  fs::remove_all(d);
  fs::remove_all(run);
}

TEST_F(FindRuns, BrokenDatasetEntriesAreSkipped) {
  fs::path d = temp_dir("ds");
  mmn::write_file_atomic((d / "junk.png").string(), "not a png at all");
  fs::copy_file(base_ / "images" / "img0.png", d / "good.png");
  json lines = json::array();
  std::string jsonl = "{\"image\": \"good.png\", \"caption\": \"a red ball\"}\n"
                      "{\"image\": \"missing.png\"}\n"
                      "{\"image\": \"junk.png\"}\n";
  mmn::write_file_atomic((d / "data.jsonl").string(), jsonl);
  fs::path run = temp_dir("dsrun");
  std::string out;
  ASSERT_EQ(run_cmd(binary() + " find --model " + (base_ / "model").string() + " --dataset " + (d / "data.jsonl").string() +
                        " --out " + run.string() + " --top-k 5 --tokens all --max-new-tokens 4",
                    &out),
            0)
      << out;
  EXPECT_TRUE(fs::exists(run / "good" / "result.json"));
  EXPECT_FALSE(fs::exists(run / "missing" / "result.json"));
  EXPECT_TRUE(fs::exists(run / "junk" / "error.txt"));
  EXPECT_NE(out.find("missing.png"), std::string::npos) << out;
  EXPECT_EQ(json::parse(mmn::read_file((run / "good" / "result.json").string()))["reference_caption"], "a red ball");
  fs::remove_all(d);
  fs::remove_all(run);
}

TEST_F(FindRuns, BadArgumentsAreOneLineErrors) {
  fs::path d = temp_dir("badargs");
  mmn::write_file_atomic((d / "bad.json").string(), "{\"image_urls\": [1, 2]}");
  mmn::write_file_atomic((d / "bad.jsonl").string(), "{\"image\": \"a.png\"}\n{oops\n");
  const std::string m = " --model " + (base_ / "model").string() + " --out " + (d / "run").string();
  const std::string img = " --image " + (base_ / "images" / "img0.png").string();
  for (const std::string args :
       {"find" + m + " --dataset " + (d / "bad.json").string(), "find" + m + " --dataset " + (d / "bad.jsonl").string(),
        "find" + m + " --dataset " + (d / "nope.json").string(), "find" + m + img + " --top-k 100000000",
        "find" + m + img + " --top-k 0", "find" + m + img + " --activation relu", "find" + m + img + " --shard 3/2",
        "find" + m + img + " --tokens some", "find" + m, "find" + m + img + " --images " + d.string()}) {
    std::string out;
    EXPECT_NE(run_cmd(binary() + " " + args, &out), 0) << args;
    EXPECT_EQ(out.rfind("error: ", 0), 0u) << args << ": " << out;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << args << ": " << out;
  }
  fs::remove_all(d);
}

TEST_F(FindRuns, UnknownNounIsReportedNotFatal) {
  // The image is named and its result written; with nothing ranked in the whole run, the exit status is 3.
  fs::path run = temp_dir("nouns");
  std::string out;
  ASSERT_EQ(run_cmd(binary() + " find --model " + (base_ / "model").string() + " --image " +
                        (base_ / "images" / "img0.png").string() + " --out " + run.string() +
                        " --nouns zebra,xylophone --max-new-tokens 4 --top-k 5",
                    &out),
            3)
      << out;
  EXPECT_NE(out.find("warning: img0 ("), std::string::npos) << out;
  EXPECT_NE(out.find("(zebra, xylophone) is a generated token"), std::string::npos) << out;
  json r = json::parse(mmn::read_file((run / "img0" / "result.json").string()));
  EXPECT_EQ(r["skipped_nouns"], json({"zebra", "xylophone"}));
  EXPECT_TRUE(r["nouns"].empty());
  fs::remove_all(run);
}

TEST(Dataset, FormatsAndSelection) {
  fs::path d = temp_dir("fmt");
  mmn::write_file_atomic((d / "sbu.json").string(),
                         R"({"image_urls": ["http://x.org/a/cat.jpg", "http://y.org/b/cat.jpg?s=1"], "captions": ["c1", "c2"]})");
  auto items = mmn::load_dataset((d / "sbu.json").string(), "/imgs");
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].image_path, "/imgs/cat.jpg");
  EXPECT_EQ(items[0].id, "cat");
  EXPECT_EQ(items[1].id, "cat-1");
  EXPECT_EQ(items[1].caption, "c2");
  auto sel = mmn::select_items(items, 0, -1, 1, 2);
  ASSERT_EQ(sel.size(), 1u);
  EXPECT_EQ(sel[0].id, "cat-1");
  EXPECT_THROW(mmn::select_items(items, 5, -1, 0, 1), mmn::Error);
  mmn::write_file_atomic((d / "mismatch.json").string(), R"({"image_urls": ["a.jpg"], "captions": []})");
  EXPECT_THROW(mmn::load_dataset((d / "mismatch.json").string(), ""), mmn::Error);
  fs::remove_all(d);
}
