// The offline Hugging Face cache resolver (io/hf_cache.h) on a cache tree the
// test builds the way huggingface_hub lays it out: refs/<rev> holding a commit
// hash, snapshots/<hash>/ whose files are relative symlinks into blobs/. The
// bundled model is copied in, so the CLI really loads a checkpoint through it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <vector>

#include "io/atomic_file.h"
#include "io/hf_cache.h"
#include "test_util.h"
#include "util/error.h"

namespace fs = std::filesystem;
using mmn::test::binary;
using mmn::test::run_cmd;

namespace {

const std::string kHash = "0123456789abcdef0123456789abcdef01234567";
const std::string kMissingHash = "fedcba9876543210fedcba9876543210fedcba98";

// Sets (or unsets, with nullopt) an environment variable for one scope, so a
// test's env changes never leak into the next test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) ::setenv(name, value->c_str(), 1);
    else ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_) ::setenv(name_.c_str(), old_->c_str(), 1);
    else ::unsetenv(name_.c_str());
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// The message of the mmn::Error `f` throws ("" when it throws none).
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const mmn::Error& e) {
    return e.what();
  }
  return "";
}

// Copies every file of `model` into repo/blobs/<fake sha> and links it from
// repo/snapshots/<hash>/<name> with the relative link huggingface_hub makes.
void add_snapshot(const fs::path& repo, const std::string& hash, const fs::path& model) {
  const fs::path snap = repo / "snapshots" / hash;
  fs::create_directories(snap);
  fs::create_directories(repo / "blobs");
  for (const auto& e : fs::directory_iterator(model)) {
    if (!e.is_regular_file()) continue;
    std::ostringstream sha;
    sha << std::hex << std::hash<std::string>{}(hash + e.path().filename().string()) << "blob";
    fs::copy_file(e.path(), repo / "blobs" / sha.str(), fs::copy_options::overwrite_existing);
    fs::create_symlink("../../blobs/" + sha.str(), snap / e.path().filename());
  }
}

void write_ref(const fs::path& repo, const std::string& rev, const std::string& hash) {
  mmn::write_file_atomic((repo / "refs" / rev).string(), hash);
}

class HfCache : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new fs::path(mmn::test::temp_dir("hfcache"));
    const fs::path hub = *root_ / "hub";
    const fs::path repo = hub / "models--org--name";
    add_snapshot(repo, kHash, mmn::test::bundled_model());
    write_ref(repo, "main", kHash);
    write_ref(repo, "dangling", kMissingHash);  // a ref whose snapshot was deleted
    // A snapshot without config.json, and one whose config.json link is broken.
    const fs::path noconf = hub / "models--org--noconfig";
    fs::create_directories(noconf / "snapshots" / kHash);
    write_ref(noconf, "main", kHash);
    const fs::path broken = hub / "models--org--brokenlink";
    fs::create_directories(broken / "snapshots" / kHash);
    fs::create_symlink("../../blobs/gone", broken / "snapshots" / kHash / "config.json");
    write_ref(broken, "main", kHash);
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*root_, ec);
    delete root_;
  }
  void SetUp() override { env_ = std::make_unique<ScopedEnv>("HF_HUB_CACHE", hub().string()); }
  void TearDown() override { env_.reset(); }

  static fs::path hub() { return *root_ / "hub"; }
  static fs::path snapshot() { return hub() / "models--org--name" / "snapshots" / kHash; }

  static fs::path* root_;
  std::unique_ptr<ScopedEnv> env_;
};
fs::path* HfCache::root_ = nullptr;

// ---- the cache directory ----

TEST(HfCacheDir, EnvOrderHubCacheOverHfHomeOverHome) {
  ScopedEnv a("HF_HUB_CACHE", "/c/hubcache"), b("HF_HOME", "/c/hfhome"), c("XDG_CACHE_HOME", "/c/xdg"),
      d("HOME", "/c/home");
  EXPECT_EQ(mmn::hub_cache_dir(), "/c/hubcache");
  {
    ScopedEnv off("HF_HUB_CACHE", std::nullopt);
    EXPECT_EQ(mmn::hub_cache_dir(), "/c/hfhome/hub");
    ScopedEnv off2("HF_HOME", "");  // empty counts as unset, as in huggingface_hub
    EXPECT_EQ(mmn::hub_cache_dir(), "/c/xdg/huggingface/hub");
    ScopedEnv off3("XDG_CACHE_HOME", std::nullopt);
    EXPECT_EQ(mmn::hub_cache_dir(), "/c/home/.cache/huggingface/hub");
    ScopedEnv tilde("HF_HOME", "~/hf");
    EXPECT_EQ(mmn::hub_cache_dir(), "/c/home/hf/hub");
    ScopedEnv off4("HF_HOME", std::nullopt), off5("HOME", std::nullopt);
    EXPECT_NE(error_of([] { mmn::hub_cache_dir(); }).find("cannot locate the Hugging Face cache"), std::string::npos);
  }
}

TEST(HfCacheDir, LooksLikeRepoId) {
  EXPECT_TRUE(mmn::looks_like_repo_id("llava-hf/llava-1.5-7b-hf"));
  EXPECT_TRUE(mmn::looks_like_repo_id("org/na me"));  // meant as a repo; resolve_hf_repo rejects it
  for (const char* s : {"", "name", "/abs/path", "./rel/x", "../x", "~/x", ".hidden/x", "a/b/c", "org/", "/name"})
    EXPECT_FALSE(mmn::looks_like_repo_id(s)) << s;
  // An existing relative path of the same shape is a path, not a repo.
  const fs::path tmp = mmn::test::temp_dir("hfcache-cwd");
  fs::create_directories(tmp / "org" / "local");
  const fs::path old = fs::current_path();
  fs::current_path(tmp);
  const bool looks = mmn::looks_like_repo_id("org/local");
  fs::current_path(old);
  fs::remove_all(tmp);
  EXPECT_FALSE(looks);
}

// ---- resolving in the test's cache tree ----

TEST_F(HfCache, ResolvesMainThroughRefsToSnapshot) {
  const std::string dir = mmn::resolve_hf_repo("org/name");
  EXPECT_EQ(fs::path(dir), snapshot());
  EXPECT_TRUE(fs::is_symlink(fs::path(dir) / "config.json"));
  EXPECT_EQ(mmn::read_file((fs::path(dir) / "config.json").string()),
            mmn::read_file((fs::path(mmn::test::bundled_model()) / "config.json").string()));
}

TEST_F(HfCache, ResolvesCommitHashPresentUnderSnapshots) {
  EXPECT_EQ(fs::path(mmn::resolve_hf_repo("org/name", kHash)), snapshot());
}

TEST_F(HfCache, RefWithTrailingNewlineIsRead) {
  const fs::path repo = hub() / "models--org--name";
  write_ref(repo, "v1", kHash + "\n");
  EXPECT_EQ(fs::path(mmn::resolve_hf_repo("org/name", "v1")), snapshot());
  fs::remove(repo / "refs" / "v1");
}

TEST_F(HfCache, MissingRepoTellsTheDownloadCommand) {
  const std::string e = error_of([] { mmn::resolve_hf_repo("org/missing"); });
  EXPECT_NE(e.find("org/missing is not in the Hugging Face cache (" + hub().string() + ")"), std::string::npos) << e;
  EXPECT_NE(e.find("huggingface-cli download org/missing"), std::string::npos) << e;
  EXPECT_EQ(e.find("--revision"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  const std::string r = error_of([] { mmn::resolve_hf_repo("org/missing", "v2"); });
  EXPECT_NE(r.find("huggingface-cli download org/missing --revision v2"), std::string::npos) << r;
}

TEST_F(HfCache, MissingRefIsAnError) {
  const std::string e = error_of([] { mmn::resolve_hf_repo("org/name", "nope"); });
  EXPECT_NE(e.find("org/name has no revision 'nope'"), std::string::npos) << e;
  EXPECT_NE(e.find("huggingface-cli download org/name --revision nope"), std::string::npos) << e;
  // A hash that is not under snapshots/ is a missing revision too.
  EXPECT_NE(error_of([] { mmn::resolve_hf_repo("org/name", kMissingHash); }).find("has no revision"), std::string::npos);
}

TEST_F(HfCache, RefPointingAtMissingSnapshotIsAnError) {
  const std::string e = error_of([] { mmn::resolve_hf_repo("org/name", "dangling"); });
  EXPECT_NE(e.find("points at snapshot " + kMissingHash), std::string::npos) << e;
  EXPECT_NE(e.find("missing from the cache"), std::string::npos) << e;
}

TEST_F(HfCache, SnapshotWithoutConfigIsAnError) {
  for (const char* repo : {"org/noconfig", "org/brokenlink"}) {
    const std::string e = error_of([&] { mmn::resolve_hf_repo(repo); });
    EXPECT_NE(e.find("/config.json: missing from the cached snapshot of " + std::string(repo)), std::string::npos) << e;
  }
}

TEST_F(HfCache, InvalidRepoIdOrRevisionIsAnError) {
  for (const char* id : {"../x", "", "name", "org/", "/name", "org//name", "a/b/c", "org/na me", "org/a--b", "org/..",
                         "-org/name"}) {
    const std::string e = error_of([&] { mmn::resolve_hf_repo(id); });
    EXPECT_NE(e.find("is not a valid Hugging Face repo id"), std::string::npos) << id << ": " << e;
  }
  for (const char* rev : {"", "../../x", "/etc", "a b", "refs/../.."}) {
    const std::string e = error_of([&] { mmn::resolve_hf_repo("org/name", rev); });
    EXPECT_NE(e.find("is not a valid revision"), std::string::npos) << rev << ": " << e;
  }
}

// ---- the CLI: --model REPO and REPO@REVISION really load through the cache ----

class HfCacheCli : public HfCache {
 protected:
  // `mmneuron caption --json` with the given environment prefix and --model.
  static int caption(const std::string& env, const std::string& model, std::string* out) {
    const std::string img = (fs::path(MMN_SOURCE_DIR) / "assets" / "sample.png").string();
    return run_cmd(env + " " + binary() + " caption --model '" + model + "' --image " + img +
                       " --max-new-tokens 4 --json --quiet --threads 2",
                   out);
  }
  static nlohmann::json generated(const std::string& out) {
    return nlohmann::json::parse(out.substr(out.find('{')))["generated_ids"];
  }
};

TEST_F(HfCacheCli, RepoIdAndRevisionLoadTheCachedModel) {
  std::string ref_out, out;
  ASSERT_EQ(caption("", mmn::test::bundled_model(), &ref_out), 0) << ref_out;
  const std::string env = "HF_HUB_CACHE='" + hub().string() + "'";
  for (const std::string& model : std::vector<std::string>{"org/name", "org/name@main", "org/name@" + kHash}) {
    ASSERT_EQ(caption(env, model, &out), 0) << model << ": " << out;
    EXPECT_EQ(generated(out), generated(ref_out)) << model;
  }
  // Without HF_HUB_CACHE, $HF_HOME/hub is the cache.
  ASSERT_EQ(caption("env -u HF_HUB_CACHE HF_HOME='" + root_->string() + "'", "org/name", &out), 0) << out;
  EXPECT_EQ(generated(out), generated(ref_out));
}

TEST_F(HfCacheCli, MissingRepoFailsWithTheDownloadCommand) {
  std::string out;
  const std::string env = "HF_HUB_CACHE='" + hub().string() + "'";
  EXPECT_NE(caption(env, "org/missing", &out), 0);
  EXPECT_NE(out.find("error: org/missing is not in the Hugging Face cache"), std::string::npos) << out;
  EXPECT_NE(out.find("huggingface-cli download org/missing"), std::string::npos) << out;
  EXPECT_NE(caption(env, "org/missing@v2", &out), 0);
  EXPECT_NE(out.find("huggingface-cli download org/missing --revision v2"), std::string::npos) << out;
  EXPECT_NE(caption(env, "org/name@nope", &out), 0);
  EXPECT_NE(out.find("has no revision 'nope'"), std::string::npos) << out;
}

}  // namespace
