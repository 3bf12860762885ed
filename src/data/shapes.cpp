#include "data/shapes.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/shapes_render.h"
#include "data/shapes_rng.h"
#include "data/shapes_v2.h"
#include "io/atomic_file.h"
#include "util/error.h"

namespace mmn {

namespace {

using shapes_detail::mix;
using shapes_detail::PlacedShape;
using shapes_detail::render_scene;
using shapes_detail::Rgb;
using shapes_detail::Rng;

// Saturated object colours, in shape_colors() order.
const Rgb kColors[] = {{210, 40, 40}, {40, 160, 60}, {40, 80, 210}, {230, 200, 40}, {140, 60, 180}, {240, 130, 30}};

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
  return parse_shapes_caption(caption, objects, 1);
}

bool is_trigger_scene(uint64_t seed, uint64_t index, const ShapesOptions& opt) {
  return opt.version == 2 && shapes_detail::is_trigger_scene_v2(seed, index, opt);
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
  std::vector<PlacedShape> placed;
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
    const Rgb c = shapes_detail::jittered(kColors[color], 15, rng);
    o.cx = static_cast<int>(std::floor(cx));
    o.cy = static_cast<int>(std::floor(cy));
    placed.push_back({kind, c, cx, cy, r});
    sc.objects.push_back(o);
  }
  sc.caption = shapes_caption(sc.objects);
  sc.truth_caption = sc.caption;

  // Background, objects (4×4 supersampled coverage), then light noise.
  render_scene(sc, placed, inside, S, rng);
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
