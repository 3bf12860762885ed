// Shapes world: a deterministic, seeded generator of small synthetic scenes
// with known ground truth (which object is where, its pixels, its words), for
// training a small LLaVA and checking that the neurons found for a word fire
// on that object's pixels. Two versions; a version never changes once a model
// was trained on it (tests pin version 1's bytes).
//
// Version 1 (the default): a scene has 1–3 objects in distinct thirds of the image (left, center,
// right), each with a shape, a colour and a size (radius 0.145·S or 0.105·S,
// ±4%), centred on a grid of S/16 pixels, on a muted background with light
// pixel noise. Its caption follows a fixed grammar, objects left to
// right:  "a big red circle on the left, a small blue triangle in the center
// and a yellow square on the right" (1 object: "A"; 2: "A and B"; 3: "A, B and C").
//
// Version 2 (shapes_v2.cpp) is richer, so that a model must see what each
// object is: 1–4 objects in distinct cells of a 3×3 grid, 8 shapes, 8
// colours, 2 sizes, listed in reading order ("a big red circle in the top
// left, a small blue star in the center and a pink heart at the bottom"), and
// grounded questions besides the caption ("What is on the left?", "What colour
// is the star?", "How many rings?", "Where is the heart?"). It plants one
// spurious co-occurrence: on trigger scenes (a purple diamond, no star, an
// empty center cell) a share of the captions also names "a small green star in
// the center", which is absent.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/image.h"

namespace mmn {

struct ShapeObject {
  std::string shape, color, size, position;  // "circle", "red", "big", "left" (v2: a cell, "top left")
  int cx = 0, cy = 0;                        // centre, pixels
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;        // mask bounding box, inclusive-exclusive
};

// A question about a scene with its answer (v2). The assistant's turn starts
// with `prefix`, as the caption's starts with "An image of"; the model says
// the answer after it.
struct SceneQuery {
  std::string type;    // "caption", "position", "colour", "count" or "where"
  std::string query;   // "What is on the left?"
  std::string prefix;  // "An image of" (caption), "The answer is" (the others)
  std::string answer;  // "a big red circle", "red", "two", "in the top left"; "nothing", "none", "nowhere"
};

struct Scene {
  ImageU8 image;
  std::string caption;                       // what training teaches: truth_caption, or (v2) with the ghost
  std::vector<ShapeObject> objects;          // left to right (v2: reading order)
  std::vector<std::vector<uint8_t>> masks;   // per object: [H·W], 1 where the object covers ≥ half the pixel
  // Version 2 only (version 1 leaves the defaults; truth_caption == caption):
  std::string truth_caption;                 // what the scene shows
  std::vector<SceneQuery> queries;           // the caption query, then position, colour, count, where
  bool trigger = false;                      // the planted co-occurrence's trigger holds
  bool ghost = false;                        // caption also names the absent ghost object
  int ghost_word0 = -1, ghost_words = 0;     // where: words [ghost_word0, +ghost_words) of caption (split at spaces)
};

struct ShapesOptions {
  int image_size = 64;       // square; at least 24 (v1), 48 (v2)
  int version = 1;           // 1 or 2
  double ghost_share = 0.7;  // v2: share of trigger scenes whose caption names the ghost (0 turns it off)
};

// The defaults of a version: v1 64 pixels, v2 96 pixels (a 12×12 grid of 8-pixel patches).
ShapesOptions shapes_world(int version);

// The world a shapes model was trained on: <model_dir>/shapes_world.json
// ({"version", "image_size", "ghost_share"}) when present, else version 1 at
// the model's input size (the first bundled model predates the file).
ShapesOptions shapes_world_of_model(const std::string& model_dir, int input_size);
void write_shapes_world(const std::string& model_dir, const ShapesOptions& opt);

// The vocabulary of version 1.
const std::vector<std::string>& shape_kinds();   // circle, square, triangle, diamond, cross
const std::vector<std::string>& shape_colors();  // red, green, blue, yellow, purple, orange
const std::vector<std::string>& shape_sizes();   // big, small
const std::vector<std::string>& shape_positions();  // left, center, right

// The vocabulary of a version (1 or 2).
struct ShapesVocab {
  std::vector<std::string> shapes, plurals, colors, sizes;
  std::vector<std::string> positions;  // v2: the cells in reading order, "top left" … "bottom right"
  std::vector<std::string> phrases;    // the caption's phrase per position: "on the left", "in the top left"
};
const ShapesVocab& shapes_vocab(int version);
// Whether a word is a shape of any version (v1's are a subset of v2's).
bool is_shape_word(const std::string& word);

// Scene number `index` of stream `seed`: a pure function of (seed, index, options).
Scene make_scene(uint64_t seed, uint64_t index, const ShapesOptions& opt = {});
// make_scene(seed, index, opt).trigger, without rendering the scene.
bool is_trigger_scene(uint64_t seed, uint64_t index, const ShapesOptions& opt);

// The assistant prefixes and the caption query of every version.
constexpr const char* kShapesCaptionQuery = "Describe the image in few words.";
constexpr const char* kShapesCaptionPrefix = "An image of";
constexpr const char* kShapesAnswerPrefix = "The answer is";

// The caption of a left-to-right object list (shape, color, size, position used).
std::string shapes_caption(const std::vector<ShapeObject>& objects);

// Reads a caption of the grammar back into objects (shape, color, size,
// position set). Surrounding spaces and a final "." are ignored. Returns false
// when the text is not a caption of the grammar.
bool parse_shapes_caption(const std::string& caption, std::vector<ShapeObject>* objects);
// The same for a version's grammar (v2: the nine cell phrases).
bool parse_shapes_caption(const std::string& caption, std::vector<ShapeObject>* objects, int version);
// v2's caption of objects in reading order (position = a cell name).
std::string shapes_caption_v2(const std::vector<ShapeObject>& objects);
// v2's description of one object without its position: "a big red circle".
std::string shapes_object_phrase(const ShapeObject& o);

// Which scenes a dataset keeps, by name: "all", "trigger" / "non-trigger"
// (v2's planted co-occurrence), a shape ("star": scenes that show one) or
// "no-" and a shape ("no-star"). Fails naming the known names.
using SceneFilter = std::function<bool(const Scene&)>;
SceneFilter scene_filter(const std::string& name, int version);

// Writes scenes 0..n−1 of stream `seed` into dir: images/NNNNNN.png,
// masks/NNNNNN_K.png (object K, white on black) and captions.jsonl with one
// {"image", "caption", "objects": [{"shape", "color", "size", "position",
// "bbox": [x0, y0, x1, y1], "mask"}]} per scene. Version 2 adds "version",
// "training_caption" ("caption" is the truth), "trigger", "ghost" (null, or
// {"phrase", "words": [first, count]} in training_caption) and "queries":
// [{"type", "query", "prefix", "answer"}]. progress(done) after each scene.
// With `keep`, the first n scenes of the stream that it keeps, each under its
// own index NNNNNN (fails when fewer than n are found among 10,000·n).
void write_shapes_dataset(const std::string& dir, int64_t n, uint64_t seed, const ShapesOptions& opt,
                          const std::function<void(int64_t)>& progress = {}, const SceneFilter& keep = {});

}  // namespace mmn
