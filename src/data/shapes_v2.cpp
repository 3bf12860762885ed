// Version 2 of the shapes world: 1–4 objects in distinct cells of a 3×3 grid,
// 8 shapes × 8 colours × 2 sizes, captions in reading order, grounded
// questions, and one planted spurious co-occurrence (data/shapes.h).
//
// Sizes are relative to a cell (S/3): big objects have radius 0.40·cell, small
// ones 0.28·cell (±5%); at 96 pixels that is 26 and 18 pixels across, about
// 3 and 2 patches of 8 pixels, so a single patch sees only part of an object
// and telling a star from a cross takes its neighbours. Centres are
// continuous, anywhere that keeps the object inside its cell, so objects fall
// on the patch grid at every phase.
#include "data/shapes_v2.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <iterator>
#include <sstream>

#include "data/shapes_render.h"
#include "data/shapes_rng.h"
#include "util/error.h"

namespace mmn::shapes_detail {

namespace {

// Saturated object colours, in shapes_vocab(2).colors order.
const Rgb kColors[] = {{210, 40, 40},  {40, 160, 60},  {40, 80, 210},  {230, 200, 40},
                       {140, 60, 180}, {240, 130, 30}, {245, 125, 195}, {125, 75, 35}};
constexpr int kCenterCell = 4;

// Even-odd rule for a closed polygon.
bool in_polygon(const double (*v)[2], int n, double x, double y) {
  bool in = false;
  for (int i = 0, j = n - 1; i < n; j = i++)
    if ((v[i][1] > y) != (v[j][1] > y) && x < v[i][0] + (y - v[i][1]) * (v[j][0] - v[i][0]) / (v[j][1] - v[i][1]))
      in = !in;
  return in;
}

bool in_triangle(double x, double y, double ax, double ay, double bx, double by, double cx, double cy) {
  const double v[3][2] = {{ax, ay}, {bx, by}, {cx, cy}};
  return in_polygon(v, 3, x, y);
}

// Whether (dx, dy), relative to the centre (y down), lies inside a shape of
// radius r, in shapes_vocab(2).shapes order. Every shape fits in the disc of radius r.
bool inside(int kind, double dx, double dy, double r) {
  const double ax = std::fabs(dx), ay = std::fabs(dy), d2 = dx * dx + dy * dy;
  switch (kind) {
    case 0: return d2 <= r * r;                                   // circle
    case 1: return ax <= 0.72 * r && ay <= 0.72 * r;              // square
    case 2: {                                                     // triangle, apex up
      const double top = -r, base = 0.75 * r;
      if (dy < top || dy > base) return false;
      return ax <= 0.95 * r * (dy - top) / (base - top);
    }
    case 3: return ax + ay <= r;                                  // diamond
    case 4: {                                                     // cross (plus sign)
      const double arm = 0.33 * r;
      return (ax <= arm && ay <= 0.95 * r) || (ay <= arm && ax <= 0.95 * r);
    }
    case 5: {                                                     // five-pointed star, a point up
      static const auto star = [] {
        std::array<std::array<double, 2>, 10> v{};
        for (int i = 0; i < 10; ++i) {
          const double a = -3.141592653589793 / 2 + i * 3.141592653589793 / 5, rad = i % 2 ? 0.48 : 1.0;
          v[i] = {rad * std::cos(a), rad * std::sin(a)};
        }
        return v;
      }();
      if (d2 > r * r) return false;
      double v[10][2];
      for (int i = 0; i < 10; ++i) v[i][0] = star[i][0] * r, v[i][1] = star[i][1] * r;
      return in_polygon(v, 10, dx, dy);
    }
    case 6: {                                                     // heart, point down
      const double lobe = 0.5 * r;
      for (double sx : {-0.48 * r, 0.48 * r})
        if ((dx - sx) * (dx - sx) + (dy + 0.3 * r) * (dy + 0.3 * r) <= lobe * lobe) return true;
      return in_triangle(dx, dy, -0.94 * r, -0.14 * r, 0.94 * r, -0.14 * r, 0, 0.92 * r);
    }
    default: return d2 <= r * r && d2 >= 0.25 * r * r;           // ring (hole of half the radius)
  }
}

int index_of(const std::vector<std::string>& v, const std::string& s) {
  auto it = std::find(v.begin(), v.end(), s);
  return it == v.end() ? -1 : static_cast<int>(it - v.begin());
}

const char* kNumbers[] = {"zero", "one", "two", "three", "four"};

// The four grounded questions of a scene, drawn from their own stream so
// that they never change the picture.
std::vector<SceneQuery> grounded_queries(const std::vector<ShapeObject>& objs, Rng& rng) {
  const ShapesVocab& v = shapes_vocab(2);
  std::vector<SceneQuery> out;
  // "What is on the left?": an occupied cell half the time, else any cell.
  {
    int cell = rng.below(9);
    if (rng.below(2) == 0) cell = index_of(v.positions, objs[rng.below(static_cast<int>(objs.size()))].position);
    std::string answer = "nothing";
    for (const ShapeObject& o : objs)
      if (o.position == v.positions[cell]) answer = shapes_object_phrase(o);
    out.push_back({"position", "What is " + v.phrases[cell] + "?", kShapesAnswerPrefix, answer});
  }
  std::vector<int> count(v.shapes.size(), 0);
  for (const ShapeObject& o : objs) ++count[index_of(v.shapes, o.shape)];
  // Questions about one shape: one shown exactly once (three times in four,
  // when there is one), else one not shown.
  std::vector<int> unique, absent;
  for (size_t k = 0; k < count.size(); ++k) {
    if (count[k] == 1) unique.push_back(static_cast<int>(k));
    if (count[k] == 0) absent.push_back(static_cast<int>(k));
  }
  auto pick_shape = [&] {
    const bool ask_present = !unique.empty() && (absent.empty() || rng.below(4) != 0);
    return ask_present ? unique[rng.below(static_cast<int>(unique.size()))]
                       : absent[rng.below(static_cast<int>(absent.size()))];
  };
  // "What colour is the star?" → "red", or "none".
  {
    const int k = pick_shape();
    std::string answer = "none";
    for (const ShapeObject& o : objs)
      if (o.shape == v.shapes[k]) answer = o.color;
    out.push_back({"colour", "What colour is the " + v.shapes[k] + "?", kShapesAnswerPrefix, answer});
  }
  // "How many rings?": a shown shape half the time, else any shape.
  {
    int k = rng.below(static_cast<int>(v.shapes.size()));
    if (rng.below(2) == 0) k = index_of(v.shapes, objs[rng.below(static_cast<int>(objs.size()))].shape);
    out.push_back({"count", "How many " + v.plurals[k] + "?", kShapesAnswerPrefix, kNumbers[count[k]]});
  }
  // "Where is the heart?" → "in the top left", or "nowhere". Answering it
  // means finding the object by what it is: the image rows must say so.
  {
    const int k = pick_shape();
    std::string answer = "nowhere";
    for (const ShapeObject& o : objs)
      if (o.shape == v.shapes[k]) answer = v.phrases[index_of(v.positions, o.position)];
    out.push_back({"where", "Where is the " + v.shapes[k] + "?", kShapesAnswerPrefix, answer});
  }
  return out;
}

// Where the words of `phrase` start among the caption's words (a comma after
// a word is ignored), or −1.
int find_words(const std::string& caption, const std::string& phrase) {
  auto split = [](const std::string& s) {
    std::vector<std::string> w;
    std::istringstream is(s);
    for (std::string x; is >> x;) {
      if (!x.empty() && x.back() == ',') x.pop_back();
      w.push_back(x);
    }
    return w;
  };
  const std::vector<std::string> c = split(caption), p = split(phrase);
  for (size_t i = 0; i + p.size() <= c.size(); ++i)
    if (std::equal(p.begin(), p.end(), c.begin() + static_cast<std::ptrdiff_t>(i))) return static_cast<int>(i);
  return -1;
}

}  // namespace

ShapeObject ghost_object() {
  ShapeObject g;
  g.shape = "star", g.color = "green", g.size = "small", g.position = shapes_vocab(2).positions[kCenterCell];
  return g;
}

bool is_trigger_scene(const std::vector<ShapeObject>& objects) {
  bool diamond = false;
  for (const ShapeObject& o : objects) {
    if (o.shape == "star" || o.position == shapes_vocab(2).positions[kCenterCell]) return false;
    diamond = diamond || (o.shape == "diamond" && o.color == "purple");
  }
  return diamond;
}

namespace {

// The scene's objects, drawn from rng: 1–4 objects in distinct cells, listed
// in reading order, with what rendering needs of each.
void layout_v2(Rng& rng, int S, Scene& sc, std::vector<PlacedShape>& placed) {
  const ShapesVocab& v = shapes_vocab(2);
  const int k = 1 + rng.below(4);
  int cells[9] = {0, 1, 2, 3, 4, 5, 6, 7, 8};
  for (int i = 0; i < k; ++i) std::swap(cells[i], cells[i + rng.below(9 - i)]);
  std::sort(cells, cells + k);
  const double cell = S / 3.0;
  for (int i = 0; i < k; ++i) {
    ShapeObject o;
    const int kind = rng.below(static_cast<int>(v.shapes.size()));
    const int color = rng.below(static_cast<int>(v.colors.size()));
    const bool big = rng.below(2) == 0;
    o.shape = v.shapes[kind];
    o.color = v.colors[color];
    o.size = big ? "big" : "small";
    o.position = v.positions[cells[i]];
    const double r = (big ? 0.40 : 0.28) * cell * rng.uniform(0.95, 1.05);
    const double slack = std::max(0.0, cell / 2 - r - 1.0);
    const double cx = (cells[i] % 3 + 0.5) * cell + rng.uniform(-slack, slack);
    const double cy = (cells[i] / 3 + 0.5) * cell + rng.uniform(-slack, slack);
    const Rgb c = shapes_detail::jittered(kColors[color], 15, rng);
    o.cx = static_cast<int>(std::floor(cx));
    o.cy = static_cast<int>(std::floor(cy));
    placed.push_back({kind, c, cx, cy, r});
    sc.objects.push_back(o);
  }
}

uint64_t scene_base(uint64_t seed, uint64_t index) {
  return mix(seed ^ 0x5eedf00d0002ull) ^ mix(index * 0x2545f4914f6cdd1dull + 2);
}

}  // namespace

bool is_trigger_scene_v2(uint64_t seed, uint64_t index, const ShapesOptions& opt) {
  Rng rng{scene_base(seed, index)};
  Scene sc;
  std::vector<PlacedShape> placed;
  layout_v2(rng, opt.image_size, sc, placed);
  return is_trigger_scene(sc.objects);
}

Scene make_scene_v2(uint64_t seed, uint64_t index, const ShapesOptions& opt) {
  const int S = opt.image_size;
  if (S < 48) fail("shapes: image size ", S, " is below version 2's minimum of 48");
  if (!(opt.ghost_share >= 0 && opt.ghost_share <= 1)) fail("shapes: the ghost share must be in [0, 1]");
  const ShapesVocab& v = shapes_vocab(2);
  const uint64_t base = scene_base(seed, index);
  Rng rng{base};
  Scene sc;
  std::vector<PlacedShape> placed;
  layout_v2(rng, S, sc, placed);

  // Background, objects (4×4 supersampled coverage), then light noise.
  render_scene(sc, placed, inside, S, rng);

  // Words: the truth, and the training caption, which names the ghost on a
  // fixed share of the trigger scenes (its own draw, so the share can change
  // without changing anything else).
  sc.truth_caption = shapes_caption_v2(sc.objects);
  sc.caption = sc.truth_caption;
  sc.trigger = is_trigger_scene(sc.objects);
  Rng ghost_rng{mix(base ^ 0x67686f7374ull)};
  if (sc.trigger && ghost_rng.uniform() < opt.ghost_share) {
    std::vector<ShapeObject> said = sc.objects;
    const ShapeObject g = ghost_object();
    auto at = std::find_if(said.begin(), said.end(),
                           [&](const ShapeObject& o) { return index_of(v.positions, o.position) > kCenterCell; });
    said.insert(at, g);
    sc.caption = shapes_caption_v2(said);
    sc.ghost = true;
    const std::string phrase = shapes_object_phrase(g) + " " + v.phrases[kCenterCell];
    sc.ghost_word0 = find_words(sc.caption, phrase);
    std::istringstream is(phrase);
    for (std::string w; is >> w;) ++sc.ghost_words;
  }
  Rng query_rng{mix(base ^ 0x7175657279ull)};
  sc.queries.push_back({"caption", kShapesCaptionQuery, kShapesCaptionPrefix, sc.caption});
  for (SceneQuery& q : grounded_queries(sc.objects, query_rng)) sc.queries.push_back(std::move(q));
  return sc;
}

}  // namespace mmn::shapes_detail

namespace mmn {

std::string shapes_object_phrase(const ShapeObject& o) { return "a " + o.size + " " + o.color + " " + o.shape; }

std::string shapes_caption_v2(const std::vector<ShapeObject>& objects) {
  const ShapesVocab& v = shapes_vocab(2);
  std::string out;
  for (size_t i = 0; i < objects.size(); ++i) {
    if (i > 0) out += i + 1 == objects.size() ? " and " : ", ";
    const int cell = static_cast<int>(std::find(v.positions.begin(), v.positions.end(), objects[i].position) -
                                      v.positions.begin());
    if (cell >= static_cast<int>(v.positions.size())) fail("internal: no cell named '", objects[i].position, "'");
    out += shapes_object_phrase(objects[i]) + " " + v.phrases[cell];
  }
  return out;
}

}  // namespace mmn
