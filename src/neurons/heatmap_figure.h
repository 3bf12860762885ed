// Readable heatmap figures for `find --heatmaps`: the model's input image
// upscaled (nearest neighbour, an integer factor) to at least kFigureMinSide
// pixels on its long side, the map upsampled bilinearly from the patch grid to
// that size and overlaid on one absolute scale (overlay_absolute, α ≤ 0.5), a
// title strip above (text in io/bitmap_font.h) and a colour bar below with the
// range it maps. Layout, top to bottom, all in figure pixels:
//   title strip   kFigurePad, the title lines (kLineH · text_scale each), kFigurePad
//   image         image_h = base height · scale
//   bar strip     kFigurePad, the bar (kBarH), 2 px, one line of labels, kFigurePad
// on a white background; the image spans the full width.
#pragma once
#include <string>
#include <vector>

#include "io/image.h"

namespace mmn {

constexpr int kFigureMinSide = 448;
constexpr int kFigurePad = 6;
constexpr int kBarH = 14;

struct FigureLayout {
  int scale = 1;       // input pixel → scale × scale figure pixels
  int text_scale = 1;  // bitmap font scale
  int width = 0, height = 0;
  int title_h = 0;                   // the title strip: rows [0, title_h)
  int image_x = 0, image_y = 0;      // the upscaled image's top-left corner
  int image_w = 0, image_h = 0;
  int bar_x = 0, bar_y = 0, bar_w = 0;  // the colour bar (kBarH rows), 1 px black frame around it
  int label_y = 0;                   // top of the bar's labels
};

// The layout for an input image of base_w × base_h with `title_lines` title
// lines: scale = ⌈kFigureMinSide / max(base_w, base_h)⌉ (at least 1), text
// scale 2 when the figure is at least kFigureMinSide wide, else 1.
FigureLayout figure_layout(int base_w, int base_h, int title_lines);

// `v` in at most 4 significant digits ("0", "0.0123", "-1.5", "2.5e+04").
std::string format_value(double v);

// img enlarged by an integer factor, each pixel a factor × factor block.
ImageU8 upscale_nearest(const ImageU8& img, int factor);

// The figure of one map: `grid` (gh × gw, row-major) upsampled bilinearly to
// the upscaled image and overlaid with overlay_absolute(·, scale_hi); the
// title lines (each shortened to fit); the colour bar, t = x / (bar_w − 1)
// coloured as absolute_colour(t) over mid grey (128, 128, 128) — what a grey
// patch of value t·scale_hi looks like — labelled "0" at its left end,
// format_value(scale_hi) at its right and bar_note between them.
ImageU8 heatmap_figure(const ImageU8& base, const float* grid, int gh, int gw, float scale_hi,
                       const std::vector<std::string>& title, const std::string& bar_note);

// body under a title strip (white, the lines in black at text scale 2 when
// body is at least kFigureMinSide wide).
ImageU8 titled_figure(const ImageU8& body, const std::vector<std::string>& title);

// The figure of one map of a model without a patch grid (query tokens): a
// bar_chart of plot_w × plot_h with axes, under titled_figure's title strip.
// Left of the plot, each distinct value of {hi, 0, lo} (bar_chart_geometry)
// as format_value, centred on its row, with a 3-pixel tick; below the plot
// the indices of the first and last bars under their slots and x_label
// centred on the line under them; kFigurePad white on the right and bottom.
// Text at scale 2 when the figure is at least kFigureMinSide wide.
ImageU8 bar_figure(const std::vector<float>& values, int plot_w, int plot_h, const std::vector<std::string>& title,
                   const std::string& x_label);

}  // namespace mmn
