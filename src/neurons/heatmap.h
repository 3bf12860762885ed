// Heatmap arithmetic and rendering for method.md §4: a neuron's activations at
// the image-token positions, reshaped to the patch grid, upsampled bilinearly
// (half-pixel centres) to the model-input image, coloured with JET, overlaid
// at α = 0.5, and thresholded at the 95th percentile into a mask. Query-token
// models (no grid) get a bar chart of the per-query activations instead.
//
// Conventions: maps are row-major float vectors (height × width); masks are
// row-major uint8 vectors holding 0 or 1; images are mmn::ImageU8 (RGB).
// Every function throws mmn::Error (one line) on inconsistent sizes, empty
// input or non-finite values where they would make the result meaningless.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "io/image.h"

namespace mmn {

// Side of the square patch grid behind n image tokens (√n); throws unless n
// is a positive perfect square.
int square_side(size_t n);

// The activations of neuron (layer, unit) at n image-token rows, gathered from
// the PrefillRowsRecorder layout [layers][n][width]:
// out[r] = rows[(layer·n + r)·width + unit].
std::vector<float> neuron_map(const std::vector<float>& rows, int64_t n, int64_t width, int layer, int64_t unit);

// Bilinear resize of a gh × gw grid to out_h × out_w with half-pixel centres,
// the semantics of PyTorch F.interpolate(mode="bilinear", align_corners=False)
// and OpenCV INTER_LINEAR on float images: src = (dst + 0.5)·(in/out) − 0.5,
// clamped to [0, in − 1] (so the border rows/columns replicate). Equal sizes
// give the grid back exactly. Coordinates and weights in double.
std::vector<float> upsample_bilinear(const float* grid, int gh, int gw, int out_h, int out_w);

// numpy.percentile(values, q) with the default method ("linear"): sort,
// h = (n − 1)·q/100, result = v[⌊h⌋] + (h − ⌊h⌋)·(v[⌊h⌋+1] − v[⌊h⌋]) (computed
// in double with numpy's two-sided lerp, then rounded to float). q ∈ [0, 100];
// throws on empty input, q out of range or NaN. O(n) (nth_element).
float percentile(std::vector<float> values, double q);

// 1 where map[i] is strictly above the q-th percentile of map (compared in
// double against the unrounded percentile), else 0. Ties at the threshold are
// excluded, so a constant map, or one whose top (100 − q)% is a single tied
// value, gives an empty mask.
std::vector<uint8_t> mask_above_percentile(const std::vector<float>& map, double q = 95);

// OpenCV's COLORMAP_JET (cv2.applyColorMap), returned in RGB order. The table
// is OpenCV's: the piecewise-linear jet r = clip(1.5 − |4x − 3|),
// g = clip(1.5 − |4x − 2|), b = clip(1.5 − |4x − 1|) sampled at x = i/255 and
// quantised the way OpenCV does it (float interpolation, ×255, round half to
// even). jet_rgb(0) = (0, 0, 128), jet_rgb(255) = (128, 0, 0). Checked entry
// by entry against OpenCV 4.6.
std::array<uint8_t, 3> jet_rgb(uint8_t index);

// The JET index of each map value, as the usual
// np.uint8(255 · (m − min) / (max − min)) does it (float32 arithmetic,
// truncation): min → 0, max → 255. A constant map gives all zeros. Throws on
// an empty map or non-finite values.
std::vector<uint8_t> jet_indices(const std::vector<float>& map);

// The map (width × height, row-major) coloured with JET after min–max
// normalisation (jet_indices).
ImageU8 jet_image(const std::vector<float>& map, int width, int height);

// out = (1 − α)·base + α·jet(map), per channel, rounded half to even and
// clamped — cv2.addWeighted(base, 1 − α, jet, α, 0) with the JET image above
// (float weights, fma(base, 1 − α, float(jet·α)) as OpenCV's SIMD path does;
// exact for α = 0.5, and matched cv2 4.6 bit for bit for α = 0.1, 0.25, 0.3,
// 0.7). map must be base.height × base.width; α ∈ [0, 1].
ImageU8 overlay(const ImageU8& base, const std::vector<float>& map, float alpha = 0.5f);

// The overlay on an absolute scale shared by several maps (find's figures: all
// maps of one noun), so that a weak map looks weak and a silent one silent:
// t = clamp(v / hi, 0, 1), colour jet_rgb(u8(255·t)) (float32, truncated as in
// jet_indices), opacity α = alpha_max · t, out = (1 − α)·base + α·colour per
// channel (float, rounded half to even). Where v ≤ 0, or everywhere when
// hi ≤ 0, the base pixel is kept exactly. map must be base.height ×
// base.width and finite; hi finite; alpha_max ∈ [0, 1].
ImageU8 overlay_absolute(const ImageU8& base, const std::vector<float>& map, float hi, float alpha_max = 0.5f);

// The colour overlay_absolute gives value t·hi (t ∈ [0, 1]) over the RGB colour `under`.
std::array<uint8_t, 3> absolute_colour(float t, std::array<uint8_t, 3> under, float alpha_max = 0.5f);

// A visual of the mask: base where mask is 1, base darkened to a quarter
// (v / 4, integer division) where it is 0. mask must be base.height × base.width.
ImageU8 mask_image(const ImageU8& base, const std::vector<uint8_t>& mask);

// The mask as a black-and-white RGB image: (255, 255, 255) where set, black elsewhere.
ImageU8 mask_to_image(const std::vector<uint8_t>& mask, int width, int height);

// Writes the mask as a single-channel 8-bit greyscale PNG, atomically: 255
// where set, 0 elsewhere (loads as mask_to_image(mask, width, height)).
void write_mask_png(const std::string& path, const std::vector<uint8_t>& mask, int width, int height);

// Element-wise raw mean of equally sized maps (accumulated in double). Throws
// on no maps, an empty map or differing sizes.
std::vector<float> average_maps(const std::vector<std::vector<float>>& maps);

// |a ∧ b| / |a ∨ b| over nonzero entries; 0 when both masks are empty.
// Throws when the sizes differ.
float mask_iou(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b);

// A plain PNG bar chart of per-query activations (query-token models, which
// have no grid): white background, one bar per value from left to right,
// positive bars blue (31, 119, 180), negative bars red (214, 39, 40), a black
// zero line. Layout, in pixels: a 4-pixel white margin; plot width
// W = width − 8 split into n slots, slot i = [4 + ⌊i·W/n⌋, 4 + ⌊(i+1)·W/n⌋),
// its bar leaving the slot's last column white when the slot is ≥ 3 wide;
// value v sits at row y(v) = 4 + round((hi − v)/(hi − lo)·(H − 1)) (half up) with
// H = height − 8, hi = max(0, max v), lo = min(0, min v) (hi = 1 when all
// values are 0); a bar fills the rows between y(0) and y(v), and row y(0) is
// then drawn black across the plot. No text: the values themselves belong in
// the JSON (bar_figure adds axes). Throws unless values is non-empty and
// finite, width ≥ 8 + n and height ≥ 10.
ImageU8 bar_chart(const std::vector<float>& values, int width, int height);

// bar_chart's geometry, for drawing axes beside it: where value v and slot i
// fall in its pixels (same checks as bar_chart).
struct BarChartGeometry {
  static constexpr int kMargin = 4;
  double hi = 1.0, lo = 0.0;
  int64_t n = 0;
  int plot_w = 0, plot_h = 0;
  int row(double v) const;             // y(v)
  int slot_x0(int64_t i) const;        // first column of slot i
  int slot_x1(int64_t i) const;        // one past its last column
};
BarChartGeometry bar_chart_geometry(const std::vector<float>& values, int width, int height);

}  // namespace mmn
