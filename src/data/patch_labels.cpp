#include "data/patch_labels.h"

#include <algorithm>

#include "util/error.h"

namespace mmn {

std::vector<float> patch_average(const std::vector<uint8_t>& mask, int width, int height, int grid) {
  if (grid < 1 || grid > width || grid > height || mask.size() != static_cast<size_t>(width) * height)
    fail("internal: patch_average of a ", width, "x", height, " mask (", mask.size(), " pixels) on a ", grid,
         "-grid");
  std::vector<float> out(static_cast<size_t>(grid) * grid);
  for (int i = 0; i < grid; ++i)
    for (int j = 0; j < grid; ++j) {
      const int y0 = i * height / grid, y1 = (i + 1) * height / grid;
      const int x0 = j * width / grid, x1 = (j + 1) * width / grid;
      int64_t on = 0;
      for (int y = y0; y < y1; ++y)
        for (int x = x0; x < x1; ++x) on += mask[static_cast<size_t>(y) * width + x] ? 1 : 0;
      out[static_cast<size_t>(i) * grid + j] = static_cast<float>(on) / static_cast<float>((y1 - y0) * (x1 - x0));
    }
  return out;
}

std::vector<int> patch_shape_labels(const Scene& sc, int grid, int world, int background) {
  const ShapesVocab& v = shapes_vocab(world);
  std::vector<int> out(static_cast<size_t>(grid) * grid, -1);
  std::vector<float> best(out.size(), 0.f);
  for (size_t o = 0; o < sc.objects.size(); ++o) {
    const std::vector<float> cover = patch_average(sc.masks[o], sc.image.width, sc.image.height, grid);
    const int shape = static_cast<int>(std::find(v.shapes.begin(), v.shapes.end(), sc.objects[o].shape) -
                                       v.shapes.begin());
    for (size_t p = 0; p < cover.size(); ++p) {
      if (cover[p] >= 0.5f && cover[p] > best[p]) out[p] = shape;
      best[p] = std::max(best[p], cover[p]);
    }
  }
  for (size_t p = 0; p < out.size(); ++p)
    if (best[p] == 0.f) out[p] = background;
  return out;
}

}  // namespace mmn
