#include "io/dataset.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/atomic_file.h"
#include "io/json_file.h"
#include "util/error.h"

namespace mmn {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

bool is_image_name(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), ::tolower);
  return e == ".png" || e == ".jpg" || e == ".jpeg";
}

// A safe id from a file stem: letters, digits, '-', '_' and '.' kept.
// A caption: a string, or absent/null for none. Anything else is an error
// naming the file and `what` (the line and key, or the list entry), never a
// silent "".
std::string caption_of(const json* v, const std::string& file, const std::string& what) {
  if (!v || v->is_null()) return "";
  if (!v->is_string()) fail(file, ": ", what, " is ", describe_json(*v), ", not a string");
  return v->get<std::string>();
}

std::string resolve(const std::string& ref, const fs::path& root) {
  std::string name = ref;
  if (auto q = name.find_first_of("?#"); q != std::string::npos && name.find("://") != std::string::npos)
    name = name.substr(0, q);
  if (name.find("://") != std::string::npos) return (root / fs::path(name).filename()).string();
  fs::path p(name);
  return p.is_absolute() ? p.string() : (root / p).string();
}

}  // namespace

std::vector<DatasetItem> list_image_dir(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail(dir, ": not a directory");
  std::vector<DatasetItem> items;
  for (auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && is_image_name(e.path())) items.push_back({"", e.path().string(), ""});
  std::sort(items.begin(), items.end(), [](auto& a, auto& b) { return a.image_path < b.image_path; });
  if (items.empty()) fail(dir, ": no .png/.jpg/.jpeg images");
  assign_ids(items);
  return items;
}

std::vector<DatasetItem> load_dataset(const std::string& file, const std::string& images_root) {
  const std::string text = read_file(file);
  const fs::path root = images_root.empty() ? fs::path(file).parent_path() : fs::path(images_root);
  std::vector<DatasetItem> items;
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) fail(file, ": empty dataset file");
  bool parsed_whole = false;
  if (text[first] == '{' || text[first] == '[') {
    check_json_depth(text, file);
    json j;
    try {
      j = json::parse(text);
      parsed_whole = true;
    } catch (const json::exception&) {
      // Not one JSON document (a syntax error, or a number no double holds,
      // out_of_range.406): try JSONL below, which names the line.
    }
    if (parsed_whole) {
      if (j.is_object() && j.contains("image_urls")) {
        const json& urls = j["image_urls"];
        if (!urls.is_array()) fail(file, ": \"image_urls\" must be a list");
        const json* caps = j.contains("captions") ? &j["captions"] : nullptr;
        if (caps && (!caps->is_array() || caps->size() != urls.size()))
          fail(file, ": \"captions\" must be a list as long as \"image_urls\"");
        for (size_t i = 0; i < urls.size(); ++i) {
          if (!urls[i].is_string()) fail(file, ": image_urls[", i, "] is not a string");
          const std::string cap = caption_of(caps ? &(*caps)[i] : nullptr, file, "captions[" + std::to_string(i) + "]");
          items.push_back({"", resolve(urls[i].get<std::string>(), root), cap});
        }
      } else if (j.is_object() && j.contains("image")) {
        if (!j["image"].is_string()) fail(file, ": \"image\" is not a string");
        const std::string cap = caption_of(j.contains("caption") ? &j["caption"] : nullptr, file, "\"caption\"");
        items.push_back({"", resolve(j["image"].get<std::string>(), root), cap});
      } else {
        fail(file, ": expected {\"image_urls\": […], \"captions\": […]} or JSON lines {\"image\": …}");
      }
    }
  }
  if (!parsed_whole) {
    std::istringstream in(text);
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::string where = "line " + std::to_string(n);
      check_json_depth(line, file + ": " + where);
      json j;
      try {
        j = json::parse(line);
      } catch (const json::exception&) {  // parse_error, or out_of_range.406 for 1e999
        fail(file, ": ", where, " is not valid JSON");
      }
      if (!j.is_object() || !j.contains("image") || !j["image"].is_string())
        fail(file, ": ", where, " lacks a string \"image\"");
      const std::string cap = caption_of(j.contains("caption") ? &j["caption"] : nullptr, file, where + ": \"caption\"");
      items.push_back({"", resolve(j["image"].get<std::string>(), root), cap});
    }
  }
  if (items.empty()) fail(file, ": the dataset lists no images");
  assign_ids(items);
  return items;
}

std::vector<DatasetItem> select_items(const std::vector<DatasetItem>& all, int64_t start, int64_t end, int shard_i,
                                      int shard_n) {
  const int64_t n = static_cast<int64_t>(all.size());
  if (start < 0 || start > n) fail("--start ", start, " is outside the dataset's ", n, " images");
  if (end < 0 || end > n) end = n;
  if (end < start) fail("--end ", end, " is before --start ", start);
  if (shard_n < 1 || shard_i < 0 || shard_i >= shard_n) fail("--shard ", shard_i, "/", shard_n, " is not i/N with 0 <= i < N");
  std::vector<DatasetItem> out;
  for (int64_t i = start; i < end; ++i)
    if ((i - start) % shard_n == shard_i) out.push_back(all[i]);
  return out;
}

static std::string safe_id(const std::string& stem) {
  std::string id;
  for (char c : stem) id += (isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') ? c : '_';
  if (id.empty() || id == "." || id == "..") id = "image";
  return id;
}

void assign_ids(std::vector<DatasetItem>& items) {
  std::map<std::string, int> seen;
  for (auto& it : items) {
    std::string base = safe_id(fs::path(it.image_path).stem().string());
    int n = seen[base]++;
    it.id = n ? base + "-" + std::to_string(n) : base;
  }
}

}  // namespace mmn
