// Internals of the shapes world's version 2 (data/shapes.h describes it).
#pragma once
#include <cstdint>

#include "data/shapes.h"

namespace mmn::shapes_detail {

// make_scene for opt.version == 2.
Scene make_scene_v2(uint64_t seed, uint64_t index, const ShapesOptions& opt);

// The planted co-occurrence: trigger scenes hold a purple diamond, no star
// and nothing in the center cell; the ghost is said to sit there.
bool is_trigger_scene(const std::vector<ShapeObject>& objects);
ShapeObject ghost_object();  // a small green star in the center
// Whether scene `index` of a stream is a trigger scene, without rendering it.
bool is_trigger_scene_v2(uint64_t seed, uint64_t index, const ShapesOptions& opt);

}  // namespace mmn::shapes_detail
