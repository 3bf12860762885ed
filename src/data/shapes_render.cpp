#include "data/shapes_render.h"

#include <algorithm>
#include <cmath>
#include <iterator>

namespace mmn::shapes_detail {

namespace {

// Muted backgrounds, far from every object colour of either version.
const Rgb kBackgrounds[] = {{205, 205, 205}, {80, 80, 80},    {220, 210, 185}, {70, 80, 100},
                            {175, 195, 175}, {235, 230, 215}, {35, 35, 40}};

}  // namespace

void render_scene(Scene& sc, const std::vector<PlacedShape>& placed, InsideFn inside, int S, Rng& rng) {
  const int k = static_cast<int>(placed.size());
  const Rgb bg = jittered(kBackgrounds[rng.below(static_cast<int>(std::size(kBackgrounds)))], 12, rng);
  sc.image.width = sc.image.height = S;
  sc.image.rgb.resize(static_cast<size_t>(S) * S * 3);
  sc.masks.assign(k, std::vector<uint8_t>(static_cast<size_t>(S) * S, 0));
  for (int y = 0; y < S; ++y)
    for (int x = 0; x < S; ++x) {
      double px[3] = {static_cast<double>(bg.r), static_cast<double>(bg.g), static_cast<double>(bg.b)};
      for (int i = 0; i < k; ++i) {
        const PlacedShape& p = placed[i];
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
}

}  // namespace mmn::shapes_detail
