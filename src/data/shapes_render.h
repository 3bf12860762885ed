// Drawing a shapes scene, shared by both versions of the world: the objects
// are placed and named by the version, the pixels are drawn here.
#pragma once
#include <vector>

#include "data/shapes.h"
#include "data/shapes_rng.h"

namespace mmn::shapes_detail {

struct PlacedShape {
  int kind;         // the version's shape index
  Rgb color;
  double cx, cy, r;  // centre and radius, pixels
};

// Whether (dx, dy), relative to the centre (y down), lies inside shape `kind` of radius r.
using InsideFn = bool (*)(int kind, double dx, double dy, double r);

// Draws sc.image (S×S): a muted background drawn from rng with a small tint,
// each shape with 4×4 supersampled coverage blended over it, then light pixel
// noise; fills sc.masks (1 where a shape covers at least half of a pixel) and
// the bounding boxes of sc.objects, which hold one object per placed shape.
void render_scene(Scene& sc, const std::vector<PlacedShape>& placed, InsideFn inside, int S, Rng& rng);

}  // namespace mmn::shapes_detail
