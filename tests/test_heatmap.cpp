// Heatmap arithmetic and rendering (method.md §4) on hand-made maps. Every
// expected number is worked out in the comments from the definitions:
// half-pixel bilinear, numpy's linear percentile, OpenCV's JET, addWeighted.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <vector>

#include "io/image.h"
#include "neurons/heatmap.h"
#include "neurons/heatmap_figure.h"
#include "test_util.h"
#include "util/error.h"

using mmn::ImageU8;

namespace {

ImageU8 solid(int w, int h, uint8_t r, uint8_t g, uint8_t b) {
  ImageU8 img;
  img.width = w;
  img.height = h;
  img.rgb.resize(static_cast<size_t>(w) * h * 3);
  for (size_t p = 0; p < img.rgb.size(); p += 3) {
    img.rgb[p] = r;
    img.rgb[p + 1] = g;
    img.rgb[p + 2] = b;
  }
  return img;
}

std::array<uint8_t, 3> pixel(const ImageU8& img, int x, int y) {
  const uint8_t* p = img.row(y) + 3 * x;
  return {p[0], p[1], p[2]};
}

using RGB = std::array<uint8_t, 3>;

void expect_grid(const std::vector<float>& got, const std::vector<float>& want, int w) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(got[i], want[i], 1e-6) << "at row " << i / w << ", col " << i % w;
}

}  // namespace

// ---- grid helpers --------------------------------------------------------

TEST(Heatmap, SquareSide) {
  EXPECT_EQ(mmn::square_side(576), 24);
  EXPECT_EQ(mmn::square_side(256), 16);
  EXPECT_EQ(mmn::square_side(1), 1);
  EXPECT_THROW(mmn::square_side(575), mmn::Error);
  EXPECT_THROW(mmn::square_side(32), mmn::Error);  // InstructBLIP's queries: no grid
  EXPECT_THROW(mmn::square_side(0), mmn::Error);
}

TEST(Heatmap, NeuronMapGathersFromLayerRowWidthLayout) {
  // [2 layers][3 rows][4 units], value = 100·layer + 10·row + unit.
  std::vector<float> rows;
  for (int l = 0; l < 2; ++l)
    for (int r = 0; r < 3; ++r)
      for (int u = 0; u < 4; ++u) rows.push_back(static_cast<float>(100 * l + 10 * r + u));
  EXPECT_EQ(mmn::neuron_map(rows, 3, 4, 1, 2), (std::vector<float>{102, 112, 122}));
  EXPECT_EQ(mmn::neuron_map(rows, 3, 4, 0, 3), (std::vector<float>{3, 13, 23}));
  EXPECT_THROW(mmn::neuron_map(rows, 3, 4, 2, 0), mmn::Error);  // only 2 layers
  EXPECT_THROW(mmn::neuron_map(rows, 3, 4, 0, 4), mmn::Error);  // unit out of range
  EXPECT_THROW(mmn::neuron_map(rows, 5, 4, 0, 0), mmn::Error);  // 24 values are not 5x4 layers
}

// ---- bilinear, half-pixel centres ----------------------------------------
// 2 → 4: scale 0.5, src = (d + 0.5)·0.5 − 0.5 = d/2 − 0.25 → −0.25, 0.25, 0.75, 1.25,
// clamped to [0, 1]: coordinates {0, 0.25, 0.75, 1}.

TEST(Heatmap, Bilinear2x2To4x4LinearGrid) {
  // grid = 2·y + x: bilinear reproduces a linear function at the (clamped) coordinates.
  const float grid[] = {0, 1, 2, 3};
  const float c[] = {0, 0.25f, 0.75f, 1};
  std::vector<float> want;
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) want.push_back(2 * c[y] + c[x]);
  // Spelled out: rows {0, .25, .75, 1}, {.5, .75, 1.25, 1.5}, {1.5, 1.75, 2.25, 2.5}, {2, 2.25, 2.75, 3}.
  EXPECT_FLOAT_EQ(want[5], 0.75f);
  EXPECT_FLOAT_EQ(want[10], 2.25f);
  expect_grid(mmn::upsample_bilinear(grid, 2, 2, 4, 4), want, 4);
}

TEST(Heatmap, Bilinear2x2To4x4CrossTerm) {
  // grid [[0, 0], [0, 4]] = 4·x·y on the unit square: out = 4·cy·cx.
  const float grid[] = {0, 0, 0, 4};
  const std::vector<float> want = {0, 0,    0,    0,     //
                                   0, 0.25, 0.75, 1,     //
                                   0, 0.75, 2.25, 3,     //
                                   0, 1,    3,    4};
  expect_grid(mmn::upsample_bilinear(grid, 2, 2, 4, 4), want, 4);
}

TEST(Heatmap, BilinearNonSquare) {
  // 2 rows × 3 cols, grid = 3·y + x, to 4 × 6. Rows: coordinates {0, .25, .75, 1}.
  // Cols: scale 3/6, src = c/2 − 0.25 → {−.25, .25, .75, 1.25, 1.75, 2.25} → clamp to
  // [0, 2]: {0, .25, .75, 1.25, 1.75, 2}.
  const float grid[] = {0, 1, 2, 3, 4, 5};
  const float cy[] = {0, 0.25f, 0.75f, 1};
  const float cx[] = {0, 0.25f, 0.75f, 1.25f, 1.75f, 2};
  std::vector<float> want;
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 6; ++x) want.push_back(3 * cy[y] + cx[x]);
  expect_grid(mmn::upsample_bilinear(grid, 2, 3, 4, 6), want, 6);

  // Only the rows change when the width is kept: columns pass through unchanged.
  const std::vector<float> rows_only = {0, 1, 2, 0.75f, 1.75f, 2.75f, 2.25f, 3.25f, 4.25f, 3, 4, 5};
  expect_grid(mmn::upsample_bilinear(grid, 2, 3, 4, 3), rows_only, 3);
}

TEST(Heatmap, BilinearDownsampleAndSinglePixel) {
  // 4 → 2: scale 2, src = 2d + 0.5 → 0.5, 2.5: means of neighbours.
  const float row[] = {0, 1, 2, 3};
  expect_grid(mmn::upsample_bilinear(row, 1, 4, 1, 2), {0.5f, 2.5f}, 2);
  // 1 × 1 → 3 × 2: constant.
  const float one[] = {-7.25f};
  expect_grid(mmn::upsample_bilinear(one, 1, 1, 3, 2), std::vector<float>(6, -7.25f), 2);
}

TEST(Heatmap, BilinearIdentityWhenSizesAgree) {
  const float grid[] = {0.1f, -3.7f, 1e30f, 5e-39f, 42.0f, -0.0f};
  const std::vector<float> out = mmn::upsample_bilinear(grid, 2, 3, 2, 3);
  ASSERT_EQ(out.size(), 6u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(out[i], grid[i]) << i;  // exactly: zero weight on the neighbours
}

TEST(Heatmap, BilinearRejectsBadSizes) {
  const float grid[] = {1, 2, 3, 4};
  EXPECT_THROW(mmn::upsample_bilinear(nullptr, 2, 2, 4, 4), mmn::Error);
  EXPECT_THROW(mmn::upsample_bilinear(grid, 0, 2, 4, 4), mmn::Error);
  EXPECT_THROW(mmn::upsample_bilinear(grid, 2, 2, 4, 0), mmn::Error);
}

// ---- percentile: numpy "linear" --------------------------------------------
// h = (n − 1)·q/100, value = v[⌊h⌋] + frac(h)·(v[⌊h⌋+1] − v[⌊h⌋]).

TEST(Heatmap, PercentileMatchesNumpyLinear) {
  std::vector<float> v;
  for (int i = 1; i <= 10; ++i) v.push_back(static_cast<float>(i));
  EXPECT_FLOAT_EQ(mmn::percentile(v, 95), 9.55f);    // h = 8.55 → 9 + .55
  EXPECT_FLOAT_EQ(mmn::percentile(v, 50), 5.5f);     // h = 4.5
  EXPECT_FLOAT_EQ(mmn::percentile(v, 25), 3.25f);    // h = 2.25
  EXPECT_FLOAT_EQ(mmn::percentile(v, 99.9), 9.991f);  // h = 8.991
  EXPECT_FLOAT_EQ(mmn::percentile(v, 0), 1.0f);
  EXPECT_FLOAT_EQ(mmn::percentile(v, 100), 10.0f);
  // Order does not matter; duplicates count: sorted {1, 2, 2, 3}, q = 25 → h = .75 → 1.75.
  EXPECT_FLOAT_EQ(mmn::percentile({3, 1, 2, 2}, 25), 1.75f);
  // Negative values, reversed order: sorted {−4, −2, 0, 6}, q = 90 → h = 2.7 → 0 + .7·6 = 4.2.
  EXPECT_FLOAT_EQ(mmn::percentile({6, 0, -2, -4}, 90), 4.2f);
  EXPECT_FLOAT_EQ(mmn::percentile({5}, 95), 5.0f);
}

TEST(Heatmap, PercentileRejectsBadInput) {
  EXPECT_THROW(mmn::percentile({}, 50), mmn::Error);
  EXPECT_THROW(mmn::percentile({1, 2}, -1), mmn::Error);
  EXPECT_THROW(mmn::percentile({1, 2}, 100.5), mmn::Error);
  EXPECT_THROW(mmn::percentile({1, std::numeric_limits<float>::quiet_NaN()}, 50), mmn::Error);
}

// ---- mask: strictly above the q-th percentile -------------------------------

TEST(Heatmap, MaskStrictlyAbovePercentile) {
  std::vector<float> v;
  for (int i = 1; i <= 20; ++i) v.push_back(static_cast<float>(i));
  // q = 95: h = 18.05 → 19.05: only 20 is above.
  auto m = mmn::mask_above_percentile(v);
  EXPECT_EQ(std::count(m.begin(), m.end(), 1), 1);
  EXPECT_EQ(m[19], 1);
  // q = 90: h = 17.1 → 18.1: 19 and 20.
  m = mmn::mask_above_percentile(v, 90);
  EXPECT_EQ(std::count(m.begin(), m.end(), 1), 2);
  EXPECT_EQ(m[18], 1);
  EXPECT_EQ(m[19], 1);
  // A value equal to the threshold is not above it: {1, 2, 3} at q = 50 → threshold 2.
  EXPECT_EQ(mmn::mask_above_percentile({3, 2, 1}, 50), (std::vector<uint8_t>{1, 0, 0}));
  // 1 … 10 at the default q: threshold 9.55, only 10.
  std::vector<float> ten;
  for (int i = 10; i >= 1; --i) ten.push_back(static_cast<float>(i));
  EXPECT_EQ(mmn::mask_above_percentile(ten), (std::vector<uint8_t>{1, 0, 0, 0, 0, 0, 0, 0, 0, 0}));
}

TEST(Heatmap, MaskTiesAndConstantMaps) {
  // 18 zeros and two ones: h = 0.95·19 = 18.05 falls between the two ones → threshold 1,
  // nothing strictly above.
  std::vector<float> v(20, 0.0f);
  v[3] = v[11] = 1.0f;
  auto m = mmn::mask_above_percentile(v);
  EXPECT_EQ(std::count(m.begin(), m.end(), 1), 0);
  // With three ones the threshold still lands on a tied 1: h = 18.05 in {0×17, 1×3} → 1.
  v[7] = 1.0f;
  m = mmn::mask_above_percentile(v);
  EXPECT_EQ(std::count(m.begin(), m.end(), 1), 0);
  // At q = 87, h = 16.53 lies between the last 0 (index 16) and the first 1 → threshold
  // 0.53: all three ones are above.
  m = mmn::mask_above_percentile(v, 87);
  EXPECT_EQ(std::count(m.begin(), m.end(), 1), 3);
  // Constant map: empty mask.
  m = mmn::mask_above_percentile(std::vector<float>(49, 2.5f));
  EXPECT_EQ(m, std::vector<uint8_t>(49, 0));
}

// ---- JET (OpenCV COLORMAP_JET) ---------------------------------------------
// 255·clip(1.5 − |4x − c|) with x = i/255 is (765 − 2·|4i − 255c|)/2 clipped to [0, 255]:
// an integer or exactly k + ½, which OpenCV rounds half to even — except one entry,
// (159, blue) = 1 rather than 2, where its float interpolation lands just below 1.5.

TEST(Heatmap, JetEndpointsAndMidpoint) {
  EXPECT_EQ(mmn::jet_rgb(0), (RGB{0, 0, 128}));    // b = 0.5 → 127.5 → 128
  EXPECT_EQ(mmn::jet_rgb(255), (RGB{128, 0, 0}));  // r = 0.5 → 128
  // x = 127/255: r = 125.5 → 126, g = 1 → 255, b = 129.5 → 130; 128/255 mirrors it.
  EXPECT_EQ(mmn::jet_rgb(127), (RGB{126, 255, 130}));
  EXPECT_EQ(mmn::jet_rgb(128), (RGB{130, 255, 126}));
  // Quarter points: i = 64: g = (765 − 2·|256 − 510|)/2 = 128.5 → 128; b saturated.
  EXPECT_EQ(mmn::jet_rgb(64), (RGB{0, 128, 255}));
  // i = 191: r = (765 − 2·|764 − 765|)/2 = 381.5 → 255; g = (765 − 2·|764 − 510|)/2 = 128.5 → 128.
  EXPECT_EQ(mmn::jet_rgb(191), (RGB{255, 128, 0}));
}

TEST(Heatmap, JetWholeTableFromDefinition) {
  for (int i = 0; i < 256; ++i) {
    const RGB got = mmn::jet_rgb(static_cast<uint8_t>(i));
    const int centre[3] = {3, 2, 1};
    for (int c = 0; c < 3; ++c) {
      const int twice = std::clamp(765 - 2 * std::abs(4 * i - 255 * centre[c]), 0, 510);
      int want = twice / 2;
      if (twice % 2 == 1 && (want % 2 == 1)) ++want;  // k + ½ → even neighbour
      if (i == 159 && c == 2) want = 1;               // OpenCV's one float artefact
      EXPECT_EQ(got[c], want) << "index " << i << " channel " << c;
    }
  }
  // The artefact and its mirror, as cv2.applyColorMap (OpenCV 4.6) gives them.
  EXPECT_EQ(mmn::jet_rgb(159), (RGB{254, 255, 1}));
  EXPECT_EQ(mmn::jet_rgb(96), (RGB{2, 255, 254}));
}

TEST(Heatmap, JetIndicesMinMaxNormalisedAndTruncated) {
  // (m − min)/(max − min) = 0, .25, .5, 1 → 255·: 0, 63.75, 127.5, 255 → truncated.
  EXPECT_EQ(mmn::jet_indices({0, 1, 2, 4}), (std::vector<uint8_t>{0, 63, 127, 255}));
  EXPECT_EQ(mmn::jet_indices({-2, -1, 0, 2}), (std::vector<uint8_t>{0, 63, 127, 255}));
  EXPECT_EQ(mmn::jet_indices({3, 3, 3}), (std::vector<uint8_t>{0, 0, 0}));  // constant → 0
  EXPECT_THROW(mmn::jet_indices({}), mmn::Error);
  EXPECT_THROW(mmn::jet_indices({1, std::numeric_limits<float>::infinity()}), mmn::Error);

  const ImageU8 img = mmn::jet_image({0, 1, 2, 4}, 2, 2);
  ASSERT_EQ(img.width, 2);
  ASSERT_EQ(img.height, 2);
  EXPECT_EQ(pixel(img, 0, 0), mmn::jet_rgb(0));
  EXPECT_EQ(pixel(img, 1, 0), mmn::jet_rgb(63));
  EXPECT_EQ(pixel(img, 0, 1), mmn::jet_rgb(127));
  EXPECT_EQ(pixel(img, 1, 1), mmn::jet_rgb(255));
  const ImageU8 flat = mmn::jet_image(std::vector<float>(6, -1.0f), 3, 2);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 3; ++x) EXPECT_EQ(pixel(flat, x, y), (RGB{0, 0, 128}));
  EXPECT_THROW(mmn::jet_image({0, 1, 2}, 2, 2), mmn::Error);
}

// ---- overlay --------------------------------------------------------------------

TEST(Heatmap, OverlayArithmetic) {
  // Map {0, 0, 0, 1}: the first three pixels get jet(0) = (0, 0, 128), the last jet(255) = (128, 0, 0).
  const std::vector<float> map = {0, 0, 0, 1};
  const ImageU8 base = solid(2, 2, 100, 100, 100);
  const ImageU8 half = mmn::overlay(base, map);  // α = 0.5
  EXPECT_EQ(pixel(half, 0, 0), (RGB{50, 50, 114}));  // (100 + 128)/2 = 114
  EXPECT_EQ(pixel(half, 1, 1), (RGB{114, 50, 50}));

  // α = 0.25 (exact weights): .75·200 + .25·128 = 182, .75·200 = 150.
  const ImageU8 q = mmn::overlay(solid(2, 2, 200, 200, 200), map, 0.25f);
  EXPECT_EQ(pixel(q, 0, 0), (RGB{150, 150, 182}));
  EXPECT_EQ(pixel(q, 1, 1), (RGB{182, 150, 150}));

  // α = 0 is the base, α = 1 the JET image.
  EXPECT_EQ(mmn::overlay(base, map, 0.0f).rgb, base.rgb);
  EXPECT_EQ(mmn::overlay(base, map, 1.0f).rgb, mmn::jet_image(map, 2, 2).rgb);
}

TEST(Heatmap, OverlayRoundsHalfToEvenWithFloatWeights) {
  // 1×1, jet(0) = (0, 0, 128) (constant map). Base (1, 3, 5) at α = 0.5:
  // 0.5 → 0, 1.5 → 2, (5 + 128)/2 = 66.5 → 66 (cv2.addWeighted rounds half to even).
  const ImageU8 out = mmn::overlay(solid(1, 1, 1, 3, 5), {7.0f}, 0.5f);
  EXPECT_EQ(pixel(out, 0, 0), (RGB{0, 2, 66}));
  // α = 0.7: the weight 1 − α is the float 0.3f = 0.300000011920929 > 0.3. On base 95 with
  // jet channel 0, 95·0.3f = 28.5000011, which is nearer to the float 28.500002 than to
  // 28.5 (spacing 2^-19), so it rounds to 29 — real weights would give 28.5 → 28.
  // (cv2.addWeighted(95, 0.3, 0, 0.7, 0) gives 29 too.)
  const ImageU8 w = mmn::overlay(solid(1, 1, 95, 95, 95), {0.0f}, 0.7f);
  EXPECT_EQ(pixel(w, 0, 0)[0], 29);
  EXPECT_EQ(pixel(w, 0, 0)[1], 29);
  // Blue: 28.5000011 + 128·0.7f (= 89.5999985) = 118.0999996 → 118.
  EXPECT_EQ(pixel(w, 0, 0)[2], 118);
  // The sum is a float before it is rounded, as in cv2: at α = 0.3, 5·0.7f = 3.49999994
  // becomes the float 3.5 (spacing 2^-22 there), which rounds half to even to 4; rounding
  // the exact product would give 3. cv2.addWeighted(5, 0.7, 0, 0.3, 0) gives 4.
  const ImageU8 f = mmn::overlay(solid(1, 1, 5, 5, 5), {0.0f}, 0.3f);
  EXPECT_EQ(pixel(f, 0, 0)[0], 4);
  EXPECT_EQ(pixel(f, 0, 0)[1], 4);
}

TEST(Heatmap, OverlayRejectsMismatches) {
  const ImageU8 base = solid(2, 2, 0, 0, 0);
  EXPECT_THROW(mmn::overlay(base, {0, 1, 2}), mmn::Error);
  EXPECT_THROW(mmn::overlay(base, {0, 1, 2, 3}, 1.5f), mmn::Error);
  EXPECT_THROW(mmn::overlay(base, {0, 1, 2, std::numeric_limits<float>::quiet_NaN()}), mmn::Error);
}

// ---- mask visuals -------------------------------------------------------------------

TEST(Heatmap, MaskImageDarkensOutside) {
  const ImageU8 base = solid(2, 1, 100, 50, 3);
  const ImageU8 out = mmn::mask_image(base, {1, 0});
  EXPECT_EQ(pixel(out, 0, 0), (RGB{100, 50, 3}));
  EXPECT_EQ(pixel(out, 1, 0), (RGB{25, 12, 0}));  // v / 4
  EXPECT_THROW(mmn::mask_image(base, {1}), mmn::Error);
}

TEST(Heatmap, MaskPngRoundTrips) {
  const std::vector<uint8_t> mask = {1, 0, 0, 1, 1, 0};
  const ImageU8 img = mmn::mask_to_image(mask, 3, 2);
  EXPECT_EQ(pixel(img, 0, 0), (RGB{255, 255, 255}));
  EXPECT_EQ(pixel(img, 1, 0), (RGB{0, 0, 0}));
  const auto dir = mmn::test::temp_dir("heatmap");
  const std::string path = (dir / "mask.png").string();
  mmn::write_mask_png(path, mask, 3, 2);
  const ImageU8 back = mmn::load_image(path);
  EXPECT_EQ(back.width, 3);
  EXPECT_EQ(back.height, 2);
  EXPECT_EQ(back.rgb, img.rgb);
  std::filesystem::remove_all(dir);
  EXPECT_THROW(mmn::mask_to_image(mask, 2, 2), mmn::Error);
}

// ---- averaging and IoU --------------------------------------------------------------

TEST(Heatmap, AverageMapsIsRawMean) {
  EXPECT_EQ(mmn::average_maps({{1, 2, 3}, {3, 4, 5}}), (std::vector<float>{2, 3, 4}));
  EXPECT_EQ(mmn::average_maps({{1, -2}, {2, -2}, {6, 1}}), (std::vector<float>{3, -1}));  // (1+2+6)/3, (−2−2+1)/3
  EXPECT_EQ(mmn::average_maps({{0.5f, 7}}), (std::vector<float>{0.5f, 7}));
  EXPECT_THROW(mmn::average_maps({}), mmn::Error);
  EXPECT_THROW(mmn::average_maps({{1, 2}, {1}}), mmn::Error);
  EXPECT_THROW(mmn::average_maps({{}}), mmn::Error);
}

TEST(Heatmap, MaskIoU) {
  EXPECT_FLOAT_EQ(mmn::mask_iou({1, 1, 0, 0}, {0, 1, 1, 0}), 1.0f / 3.0f);  // 1 shared of 3
  EXPECT_FLOAT_EQ(mmn::mask_iou({1, 0, 1, 0}, {1, 0, 1, 0}), 1.0f);
  EXPECT_FLOAT_EQ(mmn::mask_iou({1, 0, 0, 0}, {0, 0, 0, 1}), 0.0f);
  EXPECT_FLOAT_EQ(mmn::mask_iou({0, 0}, {0, 0}), 0.0f);                  // both empty
  EXPECT_FLOAT_EQ(mmn::mask_iou({2, 1, 0, 1}, {1, 1, 1, 0}), 2.0f / 4.0f);  // nonzero = set
  EXPECT_THROW(mmn::mask_iou({1, 0}, {1}), mmn::Error);
}

// ---- bar chart -----------------------------------------------------------------------

TEST(Heatmap, BarChartLayout) {
  // Values {1, −1, 0.5} in 38 × 29: plot W = 30, H = 21, hi = 1, lo = −1,
  // y(v) = 4 + round((1 − v)/2·20): y(1) = 4, y(0.5) = 9, y(0) = 14, y(−1) = 24.
  // Slots of 10: [4, 14), [14, 24), [24, 34), bars leave the last column white.
  const ImageU8 img = mmn::bar_chart({1, -1, 0.5f}, 38, 29);
  ASSERT_EQ(img.width, 38);
  ASSERT_EQ(img.height, 29);
  const RGB white{255, 255, 255}, black{0, 0, 0}, blue{31, 119, 180}, red{214, 39, 40};
  EXPECT_EQ(pixel(img, 4, 4), blue);    // top of bar 0
  EXPECT_EQ(pixel(img, 12, 13), blue);  // bottom-right of bar 0 (just above the zero line)
  EXPECT_EQ(pixel(img, 8, 3), white);   // margin above
  EXPECT_EQ(pixel(img, 13, 8), white);  // the slot's gap column
  EXPECT_EQ(pixel(img, 8, 15), white);  // below the zero line under a positive bar
  EXPECT_EQ(pixel(img, 18, 24), red);   // bottom of bar 1
  EXPECT_EQ(pixel(img, 18, 25), white);
  EXPECT_EQ(pixel(img, 18, 13), white);  // above the zero line over a negative bar
  EXPECT_EQ(pixel(img, 28, 9), blue);    // top of bar 2
  EXPECT_EQ(pixel(img, 28, 8), white);
  for (int x = 4; x < 34; ++x) EXPECT_EQ(pixel(img, x, 14), black) << x;  // zero line
  EXPECT_EQ(pixel(img, 3, 14), white);
  EXPECT_EQ(pixel(img, 34, 14), white);
}

TEST(Heatmap, BarChartBaselines) {
  // All positive {2, 1} in 10 × 18 (W = 2, H = 10): lo = 0 → zero line on the bottom plot row 13;
  // y(2) = 4, y(1) = 4 + round(4.5) = 9; slots 1 wide, no gap.
  const ImageU8 pos = mmn::bar_chart({2, 1}, 10, 18);
  EXPECT_EQ(pixel(pos, 4, 4), (RGB{31, 119, 180}));
  EXPECT_EQ(pixel(pos, 5, 8), (RGB{255, 255, 255}));
  EXPECT_EQ(pixel(pos, 5, 9), (RGB{31, 119, 180}));
  EXPECT_EQ(pixel(pos, 4, 13), (RGB{0, 0, 0}));
  // All zero: only the zero line, on the bottom plot row.
  const ImageU8 zero = mmn::bar_chart({0, 0}, 10, 18);
  for (int y = 0; y < 18; ++y)
    for (int x = 0; x < 10; ++x) {
      const bool line = y == 13 && x >= 4 && x < 6;
      const RGB want = line ? RGB{0, 0, 0} : RGB{255, 255, 255};
      EXPECT_EQ(pixel(zero, x, y), want) << x << "," << y;
    }
}

TEST(Heatmap, BarChartRejectsBadInput) {
  EXPECT_THROW(mmn::bar_chart({}, 100, 100), mmn::Error);
  EXPECT_THROW(mmn::bar_chart({1, 2, 3}, 10, 100), mmn::Error);  // needs width ≥ 11
  EXPECT_THROW(mmn::bar_chart({1}, 100, 9), mmn::Error);
  EXPECT_THROW(mmn::bar_chart({1, std::numeric_limits<float>::quiet_NaN()}, 100, 100), mmn::Error);
}

TEST(Heatmap, BarFigureHasAxes) {
  // {2, −1, 0.5} in a 60 × 40 plot: ticks at 2, 0 and −1 on rows
  // y = 4 + round((2 − v)/3·31) = 4, 25, 35. Text scale 1 (a narrow figure):
  // the gutter is pad 6 + text_width("-1") 11 + 2 + tick 3 = 22, the title
  // strip 6 + 10 + 6 = 22; the body is 22 + 60 + 6 wide and 40 + 2 + 20 + 6 tall.
  const std::vector<float> v = {2, -1, 0.5f};
  const ImageU8 plot = mmn::bar_chart(v, 60, 40);
  const ImageU8 fig = mmn::bar_figure(v, 60, 40, {"t"}, "image token");
  const int gutter = 22, top = 22;
  ASSERT_EQ(fig.width, gutter + 60 + 6);
  ASSERT_EQ(fig.height, top + 40 + 2 + 20 + 6);
  const RGB black{0, 0, 0};
  const std::vector<int> tick_rows = {4, 25, 35};
  for (int y = 0; y < plot.height; ++y)
    for (int x = 0; x < plot.width; ++x) {
      const bool tick = x < 4 && std::count(tick_rows.begin(), tick_rows.end(), y);
      EXPECT_EQ(pixel(fig, gutter + x, top + y), tick ? black : pixel(plot, x, y)) << x << "," << y;
    }
  auto ink_in = [&](int x0, int x1, int y0, int y1) {
    for (int y = std::max(0, y0); y < std::min(fig.height, y1); ++y)
      for (int x = std::max(0, x0); x < std::min(fig.width, x1); ++x)
        if (pixel(fig, x, y) == black) return true;
    return false;
  };
  for (int r : tick_rows) {
    EXPECT_EQ(pixel(fig, gutter - 1, top + r), black) << r;
    EXPECT_TRUE(ink_in(6, gutter - 4, top + r - 4, top + r + 5)) << "a value label beside row " << r;
  }
  EXPECT_FALSE(ink_in(6, gutter - 4, top + 12, top + 18)) << "no label between the ticks";
  // Plot width 52 in three slots, [4, 21), [21, 38), [38, 56): "0" centred on
  // column 12, "2" on 47, the axis name on the line below.
  EXPECT_TRUE(ink_in(gutter + 10, gutter + 15, top + 42, top + 52));
  EXPECT_TRUE(ink_in(gutter + 45, gutter + 50, top + 42, top + 52));
  EXPECT_FALSE(ink_in(gutter + 20, gutter + 40, top + 42, top + 52));
  EXPECT_TRUE(ink_in(gutter, gutter + 60, top + 52, top + 62));
  // A wide plot: text scale 2 and the same plot inside.
  const ImageU8 wide = mmn::bar_figure(v, 480, 200, {"t"}, "image token");
  EXPECT_GE(wide.width, mmn::kFigureMinSide);
  EXPECT_EQ(wide.height, (6 + 20 + 6) + 200 + 2 + 40 + 6);
  EXPECT_THROW(mmn::bar_figure({}, 60, 40, {"t"}, "x"), mmn::Error);
}
