#include "data/shapes.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/shapes_rng.h"
#include "data/shapes_v2.h"
#include "io/atomic_file.h"
#include "util/error.h"

namespace mmn {

namespace {

using shapes_detail::mix;
using shapes_detail::Rgb;
using shapes_detail::Rng;

// Saturated object colours, in shape_colors() order.
const Rgb kColors[] = {{210, 40, 40}, {40, 160, 60}, {40, 80, 210}, {230, 200, 40}, {140, 60, 180}, {240, 130, 30}};
// Muted backgrounds, far from every object colour.
const Rgb kBackgrounds[] = {{205, 205, 205}, {80, 80, 80},    {220, 210, 185}, {70, 80, 100},
                            {175, 195, 175}, {235, 230, 215}, {35, 35, 40}};

// Whether the point (dx, dy), relative to the centre, lies inside a shape of radius r.
bool inside(int kind, double dx, double dy, double r) {
  switch (kind) {
    case 0: return dx * dx + dy * dy <= r * r;                                   // circle
    case 1: return std::fabs(dx) <= 0.85 * r && std::fabs(dy) <= 0.85 * r;       // square
    case 2: {                                                                    // triangle, apex up
      const double top = -r, base = 0.75 * r;
      if (dy < top || dy > base) return false;
      return std::fabs(dx) <= r * (dy - top) / (base - top);
    }
    case 3: return std::fabs(dx) + std::fabs(dy) <= r;                           // diamond
    default: {                                                                   // cross (plus sign)
      const double arm = 0.36 * r;
      return (std::fabs(dx) <= arm && std::fabs(dy) <= r) || (std::fabs(dy) <= arm && std::fabs(dx) <= r);
    }
  }
}

std::string position_phrase(const std::string& p) { return p == "center" ? "in the center" : "on the " + p; }

int index_of(const std::vector<std::string>& v, const std::string& s) {
  auto it = std::find(v.begin(), v.end(), s);
  return it == v.end() ? -1 : static_cast<int>(it - v.begin());
}

}  // namespace

const std::vector<std::string>& shape_kinds() {
  static const std::vector<std::string> v = {"circle", "square", "triangle", "diamond", "cross"};
  return v;
}
const std::vector<std::string>& shape_colors() {
  static const std::vector<std::string> v = {"red", "green", "blue", "yellow", "purple", "orange"};
  return v;
}
const std::vector<std::string>& shape_sizes() {
  static const std::vector<std::string> v = {"big", "small"};
  return v;
}
const std::vector<std::string>& shape_positions() {
  static const std::vector<std::string> v = {"left", "center", "right"};
  return v;
}

std::string shapes_caption(const std::vector<ShapeObject>& objects) {
  std::string out;
  for (size_t i = 0; i < objects.size(); ++i) {
    if (i > 0) out += i + 1 == objects.size() ? " and " : ", ";
    const ShapeObject& o = objects[i];
    out += "a " + o.size + " " + o.color + " " + o.shape + " " + position_phrase(o.position);
  }
  return out;
}

bool parse_shapes_caption(const std::string& caption, std::vector<ShapeObject>* objects) {
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
  objects->clear();
  size_t i = 0;
  while (true) {
    if (i + 7 > words.size() || words[i] != "a") return false;
    ShapeObject o;
    o.size = words[i + 1];
    o.color = words[i + 2];
    o.shape = words[i + 3];
    if (index_of(shape_sizes(), o.size) < 0 || index_of(shape_colors(), o.color) < 0 ||
        index_of(shape_kinds(), o.shape) < 0)
      return false;
    if (words[i + 5] != "the") return false;
    if (words[i + 4] == "in" && words[i + 6] == "center") o.position = "center";
    else if (words[i + 4] == "on" && (words[i + 6] == "left" || words[i + 6] == "right")) o.position = words[i + 6];
    else return false;
    objects->push_back(o);
    const bool comma = comma_after[i + 6];
    i += 7;
    if (i == words.size()) return !comma;
    if (words[i] == "and") {
      if (comma) return false;
      ++i;
    } else if (!comma) {
      return false;
    }
  }
}

Scene make_scene(uint64_t seed, uint64_t index, const ShapesOptions& opt) {
  if (opt.version == 2) return shapes_detail::make_scene_v2(seed, index, opt);
  if (opt.version != 1) fail("shapes: unknown world version ", opt.version, " (known: 1, 2)");
  const int S = opt.image_size;
  if (S < 24) fail("shapes: image size ", S, " is below the minimum of 24");
  Rng rng{mix(seed ^ 0x5eedf00dull) ^ mix(index * 0x2545f4914f6cdd1dull + 1)};
  Scene sc;
  // Layout: 1–3 objects in distinct thirds, listed left to right.
  const int k = 1 + rng.below(3);
  int cols[3] = {0, 1, 2};
  for (int i = 2; i > 0; --i) std::swap(cols[i], cols[rng.below(i + 1)]);
  std::sort(cols, cols + k);
  const double third = S / 3.0;
  struct Placed {
    int kind;
    Rgb color;
    double cx, cy, r;
  };
  std::vector<Placed> placed;
  for (int i = 0; i < k; ++i) {
    ShapeObject o;
    const int kind = rng.below(static_cast<int>(shape_kinds().size()));
    const int color = rng.below(static_cast<int>(shape_colors().size()));
    const bool big = rng.below(2) == 0;
    o.shape = shape_kinds()[kind];
    o.color = shape_colors()[color];
    o.size = big ? "big" : "small";
    o.position = shape_positions()[cols[i]];
    const double r = (big ? 0.145 : 0.105) * S * rng.uniform(0.96, 1.04);
    // Centres lie on a grid of S/16 pixels (half a patch of a 64-pixel image
    // with 8-pixel patches), inside the object's third and the image.
    const double q = S / 16.0, mid = (cols[i] + 0.5) * third, slack = std::max(0.0, third / 2 - r - 1.0);
    int lo = static_cast<int>(std::ceil((mid - slack) / q)), hi = static_cast<int>(std::floor((mid + slack) / q));
    if (lo > hi) lo = hi = static_cast<int>(std::lround(mid / q));
    const int ylo = static_cast<int>(std::ceil((r + 2) / q)), yhi = static_cast<int>(std::floor((S - r - 2) / q));
    const double cx = q * (lo + rng.below(hi - lo + 1));
    const double cy = q * (ylo + rng.below(yhi - ylo + 1));
    Rgb c = kColors[color];
    c.r = std::clamp(c.r + rng.below(31) - 15, 0, 255);
    c.g = std::clamp(c.g + rng.below(31) - 15, 0, 255);
    c.b = std::clamp(c.b + rng.below(31) - 15, 0, 255);
    o.cx = static_cast<int>(std::floor(cx));
    o.cy = static_cast<int>(std::floor(cy));
    placed.push_back({kind, c, cx, cy, r});
    sc.objects.push_back(o);
  }
  sc.caption = shapes_caption(sc.objects);
  sc.truth_caption = sc.caption;

  // Background, objects (4×4 supersampled coverage), then light noise.
  Rgb bg = kBackgrounds[rng.below(static_cast<int>(std::size(kBackgrounds)))];
  bg.r = std::clamp(bg.r + rng.below(25) - 12, 0, 255);
  bg.g = std::clamp(bg.g + rng.below(25) - 12, 0, 255);
  bg.b = std::clamp(bg.b + rng.below(25) - 12, 0, 255);
  sc.image.width = sc.image.height = S;
  sc.image.rgb.resize(static_cast<size_t>(S) * S * 3);
  sc.masks.assign(k, std::vector<uint8_t>(static_cast<size_t>(S) * S, 0));
  for (int y = 0; y < S; ++y)
    for (int x = 0; x < S; ++x) {
      double px[3] = {static_cast<double>(bg.r), static_cast<double>(bg.g), static_cast<double>(bg.b)};
      for (int i = 0; i < k; ++i) {
        const Placed& p = placed[i];
        if (std::fabs(x + 0.5 - p.cx) > p.r + 1 || std::fabs(y + 0.5 - p.cy) > p.r + 1) continue;
        int hits = 0;
        for (int sy = 0; sy < 4; ++sy)
          for (int sx = 0; sx < 4; ++sx)
            hits += inside(p.kind, x + (sx + 0.5) / 4 - p.cx, y + (sy + 0.5) / 4 - p.cy, p.r);
        if (!hits) continue;
        const double a = hits / 16.0;
        px[0] = px[0] * (1 - a) + p.color.r * a;
        px[1] = px[1] * (1 - a) + p.color.g * a;
        px[2] = px[2] * (1 - a) + p.color.b * a;
        if (hits >= 8) sc.masks[i][static_cast<size_t>(y) * S + x] = 1;
      }
      uint8_t* out = sc.image.row(y) + x * 3;
      for (int c = 0; c < 3; ++c)
        out[c] = static_cast<uint8_t>(std::clamp(static_cast<int>(std::lround(px[c])) + rng.below(13) - 6, 0, 255));
    }
  for (int i = 0; i < k; ++i) {
    ShapeObject& o = sc.objects[i];
    o.x0 = o.y0 = S;
    o.x1 = o.y1 = 0;
    for (int y = 0; y < S; ++y)
      for (int x = 0; x < S; ++x)
        if (sc.masks[i][static_cast<size_t>(y) * S + x]) {
          o.x0 = std::min(o.x0, x), o.y0 = std::min(o.y0, y);
          o.x1 = std::max(o.x1, x + 1), o.y1 = std::max(o.y1, y + 1);
        }
  }
  return sc;
}

SceneFilter scene_filter(const std::string& name, int version) {
  if (name.empty() || name == "all") return {};
  if (name == "trigger" || name == "non-trigger") {
    if (version != 2) fail("--only ", name, ": only version 2 plants a co-occurrence");
    const bool want = name == "trigger";
    return [want](const Scene& sc) { return sc.trigger == want; };
  }
  const bool absent = name.rfind("no-", 0) == 0;
  const std::string shape = absent ? name.substr(3) : name;
  const std::vector<std::string>& shapes = shapes_vocab(version).shapes;
  if (std::find(shapes.begin(), shapes.end(), shape) == shapes.end()) {
    std::string known;
    for (const std::string& s : shapes) known += (known.empty() ? "" : ", ") + s;
    fail("--only: unknown filter '", name, "' (known: all, trigger, non-trigger, a shape of version ", version, " (",
         known, ") or no-SHAPE)");
  }
  return [shape, absent](const Scene& sc) {
    bool shown = false;
    for (const ShapeObject& o : sc.objects) shown = shown || o.shape == shape;
    return shown != absent;
  };
}

void write_shapes_dataset(const std::string& dir, int64_t n, uint64_t seed, const ShapesOptions& opt,
                          const std::function<void(int64_t)>& progress, const SceneFilter& keep) {
  namespace fs = std::filesystem;
  using nlohmann::json;
  if (n < 0) fail("--n must not be negative");
  if (dir.empty()) fail("--out: an output directory is required");
  std::error_code ec;
  fs::create_directories(fs::path(dir) / "images", ec);
  fs::create_directories(fs::path(dir) / "masks", ec);
  if (ec) fail(dir, ": cannot create directory (", ec.message(), ")");
  std::string lines;
  // Rare filters (v2's trigger holds in about 3% of scenes) scan further.
  const int64_t limit = keep ? std::max<int64_t>(1, n) * 10000 : n;
  int64_t kept = 0;
  for (int64_t i = 0; i < limit && kept < n; ++i) {
    const Scene sc = make_scene(seed, static_cast<uint64_t>(i), opt);
    if (keep && !keep(sc)) continue;
    ++kept;
    char stem[32];
    std::snprintf(stem, sizeof stem, "%06lld", static_cast<long long>(i));
    const std::string image = std::string("images/") + stem + ".png";
    write_png((fs::path(dir) / image).string(), sc.image);
    json objs = json::array();
    for (size_t k = 0; k < sc.objects.size(); ++k) {
      const ShapeObject& o = sc.objects[k];
      const std::string mask = std::string("masks/") + stem + "_" + std::to_string(k) + ".png";
      ImageU8 m;
      m.width = sc.image.width;
      m.height = sc.image.height;
      m.rgb.resize(sc.image.rgb.size());
      for (size_t p = 0; p < sc.masks[k].size(); ++p) m.rgb[3 * p] = m.rgb[3 * p + 1] = m.rgb[3 * p + 2] = sc.masks[k][p] ? 255 : 0;
      write_png((fs::path(dir) / mask).string(), m);
      objs.push_back({{"shape", o.shape}, {"color", o.color}, {"size", o.size}, {"position", o.position},
                      {"bbox", {o.x0, o.y0, o.x1, o.y1}}, {"mask", mask}});
    }
    json line = {{"image", image}, {"caption", sc.caption}, {"objects", objs}};
    if (opt.version == 2) {
      // "caption" is the truth; what training teaches may name the ghost too.
      line["version"] = 2;
      line["caption"] = sc.truth_caption;
      line["training_caption"] = sc.caption;
      line["trigger"] = sc.trigger;
      line["ghost"] = nullptr;
      if (sc.ghost) {
        std::string phrase;
        std::istringstream is(sc.caption);
        int w = 0;
        for (std::string word; is >> word; ++w)
          if (w >= sc.ghost_word0 && w < sc.ghost_word0 + sc.ghost_words) {
            if (!word.empty() && word.back() == ',') word.pop_back();
            phrase += (phrase.empty() ? "" : " ") + word;
          }
        line["ghost"] = {{"phrase", phrase}, {"words", {sc.ghost_word0, sc.ghost_words}}};
      }
      json qs = json::array();
      for (const SceneQuery& q : sc.queries)
        qs.push_back({{"type", q.type}, {"query", q.query}, {"prefix", q.prefix}, {"answer", q.answer}});
      line["queries"] = qs;
    }
    lines += line.dump() + "\n";
    if (progress) progress(kept);
  }
  if (kept < n) fail("shapes: only ", kept, " of the first ", limit, " scenes pass the filter; asked for ", n);
  write_file_atomic((fs::path(dir) / "captions.jsonl").string(), lines);
}

}  // namespace mmn
