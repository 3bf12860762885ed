// Shapes world: a deterministic, seeded generator of small synthetic scenes
// with known ground truth (which object is where, its pixels, its words), for
// training a small LLaVA and checking that the neurons found for a word fire
// on that object's pixels.
//
// A scene has 1–3 objects in distinct thirds of the image (left, center,
// right), each with a shape, a colour and a size (radius 0.145·S or 0.105·S,
// ±4%), centred on a grid of S/16 pixels, on a muted background with light
// pixel noise. Its caption follows a fixed grammar, objects left to
// right:  "a big red circle on the left, a small blue triangle in the center
// and a yellow square on the right" (1 object: "A"; 2: "A and B"; 3: "A, B and C").
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/image.h"

namespace mmn {

struct ShapeObject {
  std::string shape, color, size, position;  // "circle", "red", "big", "left"
  int cx = 0, cy = 0;                        // centre, pixels
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;        // mask bounding box, inclusive-exclusive
};

struct Scene {
  ImageU8 image;
  std::string caption;
  std::vector<ShapeObject> objects;          // left to right
  std::vector<std::vector<uint8_t>> masks;   // per object: [H·W], 1 where the object covers ≥ half the pixel
};

struct ShapesOptions {
  int image_size = 64;  // square; at least 24
};

// The vocabulary of the world.
const std::vector<std::string>& shape_kinds();   // circle, square, triangle, diamond, cross
const std::vector<std::string>& shape_colors();  // red, green, blue, yellow, purple, orange
const std::vector<std::string>& shape_sizes();   // big, small
const std::vector<std::string>& shape_positions();  // left, center, right

// Scene number `index` of stream `seed`: a pure function of (seed, index, options).
Scene make_scene(uint64_t seed, uint64_t index, const ShapesOptions& opt = {});

// The caption of a left-to-right object list (shape, color, size, position used).
std::string shapes_caption(const std::vector<ShapeObject>& objects);

// Reads a caption of the grammar back into objects (shape, color, size,
// position set). Surrounding spaces and a final "." are ignored. Returns false
// when the text is not a caption of the grammar.
bool parse_shapes_caption(const std::string& caption, std::vector<ShapeObject>* objects);

// Writes scenes 0..n−1 of stream `seed` into dir: images/NNNNNN.png,
// masks/NNNNNN_K.png (object K, white on black) and captions.jsonl with one
// {"image", "caption", "objects": [{"shape", "color", "size", "position",
// "bbox": [x0, y0, x1, y1], "mask"}]} per scene. progress(done) after each scene.
void write_shapes_dataset(const std::string& dir, int64_t n, uint64_t seed, const ShapesOptions& opt,
                          const std::function<void(int64_t)>& progress = {});

}  // namespace mmn
