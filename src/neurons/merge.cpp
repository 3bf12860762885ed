#include "neurons/merge.h"

#include <filesystem>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/json_file.h"
#include "neurons/run.h"
#include "util/error.h"

namespace mmn {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

void copy_tree(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  for (auto& e : fs::recursive_directory_iterator(from)) {
    const fs::path rel = fs::relative(e.path(), from);
    if (e.is_directory()) {
      fs::create_directories(to / rel);
    } else if (e.is_regular_file() && rel.filename() != "result.json") {
      write_file_atomic((to / rel).string(), read_file(e.path().string()));
    }
  }
  // result.json last: it marks the image finished.
  write_file_atomic((to / "result.json").string(), read_file((from / "result.json").string()));
}

// run.json's "shard" ("i/N"), "0/1" when absent.
json shard_of(const json& info, const std::string& run) {
  if (!info.contains("shard")) return "0/1";
  if (!info["shard"].is_string())
    fail((fs::path(run) / "run.json").string(), ": \"shard\" is ", describe_json(info["shard"]), ", not a string");
  return info["shard"];
}

// A key's value for comparison and messages (null when absent).
json key_of(const json& info, const char* key) { return info.contains(key) ? info[key] : json(); }

// A value as compact JSON for a one-line message, cut at 120 characters.
std::string brief(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  return s.size() > 120 ? s.substr(0, 117) + "..." : s;
}

}  // namespace

MergeSummary merge_runs(const std::vector<std::string>& runs, const std::string& out) {
  if (runs.empty()) fail("merge: give at least one run directory");
  std::set<fs::path> seen;
  std::error_code ec;
  const fs::path out_canon = fs::weakly_canonical(out, ec);
  for (auto& r : runs) {
    const fs::path c = fs::weakly_canonical(r, ec);
    if (!seen.insert(c).second) fail("merge: ", r, " is given twice");
    if (c == out_canon) fail("merge: ", r, " is both a run to merge and --out");
  }
  const json first = read_run_json(runs[0]);
  json shards = json::array();
  std::map<std::string, std::string> owner;  // image id → run
  MergeSummary summary;
  for (auto& r : runs) {
    const json info = read_run_json(r);
    for (const char* key : {"model", "options", "version"})
      if (key_of(info, key) != key_of(first, key))
        fail((fs::path(r) / "run.json").string(), ": ", key, " differs from ", runs[0], " (",
             brief(key_of(info, key)), " vs ", brief(key_of(first, key)), ")");
    shards.push_back(shard_of(info, r));
    for (auto& e : fs::directory_iterator(r)) {
      if (!e.is_directory() || !fs::exists(e.path() / "result.json")) continue;
      const std::string id = e.path().filename().string();
      const fs::path dst = fs::path(out) / id;
      if (owner.count(id)) {
        if (read_file((e.path() / "result.json").string()) != read_file((fs::path(owner[id]) / id / "result.json").string()))
          fail(r, ": image ", id, " is also in ", owner[id], " with a different result");
        continue;
      }
      owner[id] = r;
      if (fs::exists(dst / "result.json")) {
        if (read_file((dst / "result.json").string()) != read_file((e.path() / "result.json").string()))
          fail((dst / "result.json").string(), ": already exists with a different result");
        continue;
      }
      copy_tree(e.path(), dst);
      ++summary.new_images;
    }
  }
  // Shards: each "i/N" at most once, all of one split N; list the ones missing.
  std::set<int64_t> have_shards;
  int64_t split = -1;
  for (size_t k = 0; k < runs.size(); ++k) {
    const std::string s = shards[k].get<std::string>();
    long long i = -1, n = -1;
    char tail = 0;
    if (std::sscanf(s.c_str(), "%lld/%lld%c", &i, &n, &tail) != 2 || n < 1 || i < 0 || i >= n)
      fail((fs::path(runs[k]) / "run.json").string(), ": \"shard\" is \"", s, "\", not i/N with 0 <= i < N");
    if (n > 1 || runs.size() > 1) {
      if (split >= 0 && n != split)
        fail((fs::path(runs[k]) / "run.json").string(), ": shard ", s, " is of another split than ", runs[0], "'s");
      split = n;
      if (n > 1 && !have_shards.insert(i).second) fail("merge: ", runs[k], " is shard ", s, " again");
    }
  }
  if (split > 1)
    for (int64_t i = 0; i < split; ++i)
      if (!have_shards.count(i)) summary.missing_shards.push_back(std::to_string(i) + "/" + std::to_string(split));
  json merged = first;
  merged["shard"] = "0/1";
  merged["merged_from"] = runs;
  merged["merged_shards"] = shards;
  if (!summary.missing_shards.empty()) merged["missing_shards"] = summary.missing_shards;
  const fs::path p = fs::path(out) / "run.json";
  if (fs::exists(p)) {
    const json have = read_run_json(out);
    if (key_of(have, "model") != merged["model"] || key_of(have, "options") != merged["options"])
      fail(p.string(), ": the output run has different settings");
  }
  write_file_atomic(p.string(), merged.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
  summary.images = owner.size();
  return summary;
}

}  // namespace mmn
