// mmneuron merge: combine runs of the same settings (e.g. the shards of one
// dataset) into one run directory, after checking they are compatible.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "io/atomic_file.h"
#include "util/error.h"

namespace mmn::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json read_run(const fs::path& run) {
  const fs::path p = run / "run.json";
  if (!fs::exists(p)) fail(p.string(), ": no such file (not a find run)");
  try {
    return json::parse(read_file(p.string()));
  } catch (const json::parse_error&) {
    fail(p.string(), ": not valid JSON");
  }
}

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

void run_merge(const std::vector<std::string>& runs, const std::string& out) {
  if (runs.size() < 1) fail("merge: give at least one run directory");
  json first = read_run(runs[0]);
  json shards = json::array();
  std::map<std::string, std::string> owner;  // image id → run
  int64_t images = 0;
  for (auto& r : runs) {
    json info = read_run(r);
    for (const char* key : {"model", "options", "version"})
      if (info[key] != first[key])
        fail((fs::path(r) / "run.json").string(), ": ", key, " differs from ", runs[0], " (", info[key].dump(),
             " vs ", first[key].dump(), ")");
    shards.push_back(info.value("shard", "0/1"));
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
      ++images;
    }
  }
  json merged = first;
  merged["shard"] = "0/1";
  merged["merged_from"] = runs;
  merged["merged_shards"] = shards;
  const fs::path p = fs::path(out) / "run.json";
  if (fs::exists(p)) {
    json have = read_run(out);
    if (have["model"] != merged["model"] || have["options"] != merged["options"])
      fail(p.string(), ": the output run has different settings");
  }
  write_file_atomic(p.string(), merged.dump(2) + "\n");
  std::printf("merged %zu runs: %lld new images, %zu in all, into %s\n", runs.size(), static_cast<long long>(images),
              owner.size(), out.c_str());
}

}  // namespace

void register_merge(CLI::App& app) {
  auto runs = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("merge", "Check and combine find runs (e.g. dataset shards) into one");
  cmd->add_option("runs", *runs, "Run directories")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--out", *out, "Merged run directory")->required();
  cmd->callback([runs, out] { run_merge(*runs, *out); });
}

}  // namespace mmn::cli
