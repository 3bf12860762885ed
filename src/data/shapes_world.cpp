// What both versions of the shapes world share: their vocabularies, the
// version-aware caption parser and the record of which world a model learned.
#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/shapes.h"
#include "io/atomic_file.h"
#include "util/error.h"

namespace mmn {

const ShapesVocab& shapes_vocab(int version) {
  static const ShapesVocab v1 = {shape_kinds(),
                                 {"circles", "squares", "triangles", "diamonds", "crosses"},
                                 shape_colors(),
                                 shape_sizes(),
                                 shape_positions(),
                                 {"on the left", "in the center", "on the right"}};
  static const ShapesVocab v2 = {
      {"circle", "square", "triangle", "diamond", "cross", "star", "heart", "ring"},
      {"circles", "squares", "triangles", "diamonds", "crosses", "stars", "hearts", "rings"},
      {"red", "green", "blue", "yellow", "purple", "orange", "pink", "brown"},
      {"big", "small"},
      {"top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right"},
      {"in the top left", "at the top", "in the top right", "on the left", "in the center", "on the right",
       "in the bottom left", "at the bottom", "in the bottom right"}};
  if (version == 1) return v1;
  if (version == 2) return v2;
  fail("shapes: unknown world version ", version, " (known: 1, 2)");
}

bool is_shape_word(const std::string& word) {
  const auto& s = shapes_vocab(2).shapes;
  return std::find(s.begin(), s.end(), word) != s.end();
}

ShapesOptions shapes_world(int version) {
  ShapesOptions o;
  o.version = version;
  if (version == 2) o.image_size = 96;
  else if (version != 1) fail("shapes: unknown world version ", version, " (known: 1, 2)");
  return o;
}

namespace {
constexpr const char* kWorldFile = "shapes_world.json";
}

ShapesOptions shapes_world_of_model(const std::string& model_dir, int input_size) {
  namespace fs = std::filesystem;
  ShapesOptions o = shapes_world(1);
  o.image_size = input_size;
  const fs::path path = fs::path(model_dir) / kWorldFile;
  std::error_code ec;
  if (!fs::exists(path, ec)) return o;
  try {
    const nlohmann::json j = nlohmann::json::parse(read_file(path.string()));
    o.version = j.at("version").get<int>();
    o.image_size = j.value("image_size", input_size);
    o.ghost_share = j.value("ghost_share", o.ghost_share);
  } catch (const nlohmann::json::exception& e) {
    fail(path.string(), ": not a shapes world record (", e.what(), ")");
  }
  if (o.image_size != input_size)
    fail(path.string(), ": the world's images are ", o.image_size, " pixels, the model takes ", input_size);
  if (o.version != 1 && o.version != 2) fail(path.string(), ": unknown shapes world version ", o.version);
  if (!(o.ghost_share >= 0 && o.ghost_share <= 1)) fail(path.string(), ": ghost_share must be in [0, 1]");
  return o;
}

void write_shapes_world(const std::string& model_dir, const ShapesOptions& opt) {
  const nlohmann::json j = {{"version", opt.version}, {"image_size", opt.image_size}, {"ghost_share", opt.ghost_share}};
  write_file_atomic((std::filesystem::path(model_dir) / kWorldFile).string(), j.dump(2) + "\n");
}

bool parse_shapes_caption(const std::string& caption, std::vector<ShapeObject>* objects, int version) {
  const ShapesVocab& v = shapes_vocab(version);
  std::string text = caption;
  while (!text.empty() && (text.back() == ' ' || text.back() == '.' || text.back() == '\n')) text.pop_back();
  std::vector<std::string> words;
  std::vector<bool> comma_after;
  std::istringstream is(text);
  for (std::string w; is >> w;) {
    const bool comma = !w.empty() && w.back() == ',';
    if (comma) w.pop_back();
    words.push_back(w);
    comma_after.push_back(comma);
  }
  std::vector<std::vector<std::string>> phrases;
  for (const std::string& p : v.phrases) {
    std::istringstream ps(p);
    phrases.emplace_back();
    for (std::string w; ps >> w;) phrases.back().push_back(w);
  }
  auto known = [](const std::vector<std::string>& list, const std::string& w) {
    return std::find(list.begin(), list.end(), w) != list.end();
  };
  objects->clear();
  size_t i = 0;
  while (true) {
    if (i + 4 > words.size() || words[i] != "a") return false;
    ShapeObject o;
    o.size = words[i + 1], o.color = words[i + 2], o.shape = words[i + 3];
    if (!known(v.sizes, o.size) || !known(v.colors, o.color) || !known(v.shapes, o.shape)) return false;
    for (size_t w = i; w < i + 4; ++w)
      if (comma_after[w]) return false;
    i += 4;
    // The cell phrase: its words in order, a comma only after the last.
    size_t len = 0;
    for (size_t p = 0; p < phrases.size() && !len; ++p) {
      const auto& ph = phrases[p];
      if (i + ph.size() > words.size()) continue;
      bool ok = true;
      for (size_t w = 0; w < ph.size() && ok; ++w)
        ok = words[i + w] == ph[w] && (w + 1 == ph.size() || !comma_after[i + w]);
      if (ok) len = ph.size(), o.position = v.positions[p];
    }
    if (!len) return false;
    objects->push_back(o);
    i += len;
    const bool comma = comma_after[i - 1];
    if (i == words.size()) return !comma;
    if (words[i] == "and") {
      if (comma) return false;
      ++i;
    } else if (!comma) {
      return false;
    }
  }
}

}  // namespace mmn
