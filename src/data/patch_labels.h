// Object masks seen at the resolution of a vision tower's patch grid: what
// share of each patch an object covers, and which shape a patch shows. The
// probe labels image rows with them, training supervises the vision tower
// with them, and ground truth measures the patch-resolution ceiling.
#pragma once
#include <cstdint>
#include <vector>

#include "data/shapes.h"

namespace mmn {

// The mask (height × width) averaged over each cell of a grid × grid patch
// grid (cell (i, j) covers rows [⌊i·H/g⌋, ⌊(i+1)·H/g⌋), same for columns).
std::vector<float> patch_average(const std::vector<uint8_t>& mask, int width, int height, int grid);

// Per patch of a grid × grid patch grid over the scene, the index (in
// shapes_vocab(world).shapes) of the shape covering at least half of the
// patch; `background` where no object covers any pixel of it; −1 otherwise.
std::vector<int> patch_shape_labels(const Scene& sc, int grid, int world, int background = -1);

}  // namespace mmn
