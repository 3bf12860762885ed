#include "neurons/heatmap.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace mmn {

namespace {

void check_finite(const std::vector<float>& v, const char* what) {
  for (float x : v)
    if (!std::isfinite(x)) fail(what, ": non-finite value in the map");
}

void check_image_size(const ImageU8& base, size_t n, const char* what) {
  if (base.width <= 0 || base.height <= 0) fail(what, ": empty base image");
  if (base.rgb.size() != static_cast<size_t>(base.width) * base.height * 3)
    fail(what, ": base image holds ", base.rgb.size(), " bytes, not ", base.width, "x", base.height, "x3");
  if (n != static_cast<size_t>(base.width) * base.height)
    fail(what, ": map has ", n, " values but the image is ", base.width, "x", base.height);
}

// numpy's linear percentile in double (see percentile()).
double percentile_f64(std::vector<float>& v, double q) {
  if (v.empty()) fail("percentile: empty input");
  if (!(q >= 0.0 && q <= 100.0)) fail("percentile: q = ", q, " is outside [0, 100]");
  for (float x : v)
    if (std::isnan(x)) fail("percentile: NaN in input");
  const size_t n = v.size();
  const double h = (q / 100.0) * static_cast<double>(n - 1);
  size_t lo = static_cast<size_t>(std::floor(h));
  if (lo > n - 1) lo = n - 1;
  const double t = h - static_cast<double>(lo);
  std::nth_element(v.begin(), v.begin() + lo, v.end());
  const double a = v[lo];
  const double b = lo + 1 < n ? static_cast<double>(*std::min_element(v.begin() + lo + 1, v.end())) : a;
  const double d = b - a;
  // numpy's _lerp: a + d·t below t = 0.5, b − d·(1 − t) from it on.
  return t >= 0.5 ? b - d * (1.0 - t) : a + d * t;
}

// ---- OpenCV COLORMAP_JET, rebuilt from its definition -----------------------
// OpenCV samples the jet curves at 256 breakpoints x_i = i/255 (float
// linspace), interpolates them at the same 256 points in float (which can move
// a value by an ulp), scales by 255 in float and rounds half to even. Many
// entries sit exactly on .5, so every step is reproduced; this runs at compile
// time, where float arithmetic is IEEE single with no contraction.

constexpr double jet_curve(int i, double centre) {
  const double x = i / 255.0;
  const double d = 4.0 * x - centre;
  const double v = 1.5 - (d < 0 ? -d : d);
  return v < 0.0 ? 0.0 : (v > 1.0 ? 1.0 : v);
}

constexpr uint8_t round_half_even_u8(float v) {
  if (!(v > 0.0f)) return 0;
  if (v >= 255.0f) return 255;
  const int f = static_cast<int>(v);
  const float frac = v - static_cast<float>(f);
  int r = f;
  if (frac > 0.5f || (frac == 0.5f && (f & 1))) r = f + 1;
  return static_cast<uint8_t>(r > 255 ? 255 : r);
}

constexpr std::array<std::array<uint8_t, 3>, 256> make_jet() {
  std::array<float, 256> X{};
  const float step = (1.0f - 0.0f) / static_cast<float>(256 - 1);
  for (int i = 0; i < 256; ++i) X[i] = 0.0f + static_cast<float>(i) * step;
  std::array<std::array<uint8_t, 3>, 256> lut{};
  const double centres[3] = {3.0, 2.0, 1.0};  // r, g, b
  for (int c = 0; c < 3; ++c) {
    std::array<float, 256> Y{};
    for (int i = 0; i < 256; ++i) Y[i] = static_cast<float>(jet_curve(i, centres[c]));
    for (int i = 0; i < 256; ++i) {
      const int lo = i == 0 ? 0 : i - 1, hi = i == 0 ? 1 : i;
      const float num = (X[i] - X[lo]) * (Y[hi] - Y[lo]);
      const float y = Y[lo] + num / (X[hi] - X[lo]);
      lut[i][c] = round_half_even_u8(y * 255.0f);
    }
  }
  return lut;
}

constexpr std::array<std::array<uint8_t, 3>, 256> kJet = make_jet();

uint8_t to_u8_half_even(double v) {
  if (!(v > 0.0)) return 0;
  if (v >= 255.0) return 255;
  return static_cast<uint8_t>(std::nearbyint(v));  // default mode: nearest, ties to even
}

}  // namespace

int square_side(size_t n) {
  if (n == 0) fail("heatmap: no image tokens");
  size_t s = static_cast<size_t>(std::llround(std::sqrt(static_cast<double>(n))));
  while (s * s > n) --s;
  while ((s + 1) * (s + 1) <= n) ++s;
  if (s * s != n) fail("heatmap: ", n, " image tokens do not form a square grid");
  return static_cast<int>(s);
}

std::vector<float> neuron_map(const std::vector<float>& rows, int64_t n, int64_t width, int layer, int64_t unit) {
  if (n <= 0 || width <= 0) fail("neuron_map: n = ", n, " and width = ", width, " must be positive");
  const size_t per_layer = static_cast<size_t>(n) * static_cast<size_t>(width);
  if (rows.size() % per_layer != 0)
    fail("neuron_map: ", rows.size(), " values are not a whole number of ", n, "x", width, " layers");
  const int64_t layers = static_cast<int64_t>(rows.size() / per_layer);
  if (layer < 0 || layer >= layers) fail("neuron_map: layer ", layer, " is outside [0, ", layers, ")");
  if (unit < 0 || unit >= width) fail("neuron_map: unit ", unit, " is outside [0, ", width, ")");
  std::vector<float> out(static_cast<size_t>(n));
  const float* base = rows.data() + static_cast<size_t>(layer) * per_layer + static_cast<size_t>(unit);
  for (int64_t r = 0; r < n; ++r) out[static_cast<size_t>(r)] = base[static_cast<size_t>(r * width)];
  return out;
}

std::vector<float> upsample_bilinear(const float* grid, int gh, int gw, int out_h, int out_w) {
  if (!grid) fail("upsample_bilinear: no grid");
  if (gh <= 0 || gw <= 0) fail("upsample_bilinear: grid size ", gh, "x", gw, " must be positive");
  if (out_h <= 0 || out_w <= 0) fail("upsample_bilinear: output size ", out_h, "x", out_w, " must be positive");

  struct Tap {
    int i0, i1;
    double w1;  // weight of i1; i0 gets 1 − w1
  };
  auto taps = [](int in, int out) {
    std::vector<Tap> t(static_cast<size_t>(out));
    const double scale = static_cast<double>(in) / out;
    for (int d = 0; d < out; ++d) {
      double s = (d + 0.5) * scale - 0.5;
      if (s < 0) s = 0;
      int i0 = static_cast<int>(s);  // s ≥ 0: floor
      if (i0 > in - 1) i0 = in - 1;
      Tap& tap = t[static_cast<size_t>(d)];
      if (i0 >= in - 1) {
        tap = {in - 1, in - 1, 0.0};  // clamped at the far border
      } else {
        tap = {i0, i0 + 1, s - i0};
      }
    }
    return t;
  };
  const std::vector<Tap> ty = taps(gh, out_h), tx = taps(gw, out_w);

  std::vector<float> out(static_cast<size_t>(out_h) * out_w);
  for (int y = 0; y < out_h; ++y) {
    const Tap& a = ty[static_cast<size_t>(y)];
    const float* r0 = grid + static_cast<size_t>(a.i0) * gw;
    const float* r1 = grid + static_cast<size_t>(a.i1) * gw;
    float* dst = out.data() + static_cast<size_t>(y) * out_w;
    for (int x = 0; x < out_w; ++x) {
      const Tap& b = tx[static_cast<size_t>(x)];
      const double top = (1.0 - b.w1) * r0[b.i0] + b.w1 * r0[b.i1];
      const double bot = (1.0 - b.w1) * r1[b.i0] + b.w1 * r1[b.i1];
      dst[x] = static_cast<float>((1.0 - a.w1) * top + a.w1 * bot);
    }
  }
  return out;
}

float percentile(std::vector<float> values, double q) { return static_cast<float>(percentile_f64(values, q)); }

std::vector<uint8_t> mask_above_percentile(const std::vector<float>& map, double q) {
  std::vector<float> scratch = map;
  const double thr = percentile_f64(scratch, q);
  std::vector<uint8_t> mask(map.size());
  for (size_t i = 0; i < map.size(); ++i) mask[i] = static_cast<double>(map[i]) > thr ? 1 : 0;
  return mask;
}

std::array<uint8_t, 3> jet_rgb(uint8_t index) { return kJet[index]; }

std::vector<uint8_t> jet_indices(const std::vector<float>& map) {
  if (map.empty()) fail("jet: empty map");
  check_finite(map, "jet");
  const auto [mn_it, mx_it] = std::minmax_element(map.begin(), map.end());
  const float mn = *mn_it, mx = *mx_it;
  std::vector<uint8_t> idx(map.size(), 0);
  if (!(mx > mn)) return idx;  // constant map
  const float range = mx - mn;
  for (size_t i = 0; i < map.size(); ++i) {
    const float h = (map[i] - mn) / range;
    const float s = 255.0f * h;
    idx[i] = s <= 0.0f ? 0 : (s >= 255.0f ? 255 : static_cast<uint8_t>(s));
  }
  return idx;
}

ImageU8 jet_image(const std::vector<float>& map, int width, int height) {
  if (width <= 0 || height <= 0) fail("jet_image: size ", width, "x", height, " must be positive");
  if (map.size() != static_cast<size_t>(width) * height)
    fail("jet_image: map has ", map.size(), " values, not ", width, "x", height);
  const std::vector<uint8_t> idx = jet_indices(map);
  ImageU8 img;
  img.width = width;
  img.height = height;
  img.rgb.resize(idx.size() * 3);
  for (size_t i = 0; i < idx.size(); ++i) {
    const auto& c = kJet[idx[i]];
    img.rgb[3 * i] = c[0];
    img.rgb[3 * i + 1] = c[1];
    img.rgb[3 * i + 2] = c[2];
  }
  return img;
}

ImageU8 overlay(const ImageU8& base, const std::vector<float>& map, float alpha) {
  check_image_size(base, map.size(), "overlay");
  if (!(alpha >= 0.0f && alpha <= 1.0f)) fail("overlay: alpha = ", alpha, " is outside [0, 1]");
  const ImageU8 heat = jet_image(map, base.width, base.height);
  // cv2.addWeighted(base, 1 − α, heat, α, 0) as OpenCV's SIMD path computes it:
  // float weights, t = fma(base, 1 − α, float(heat·α)), rounded half to even.
  // std::fma keeps this independent of the compiler's contraction choices.
  const float wa = static_cast<float>(1.0 - static_cast<double>(alpha));
  const float wb = alpha;
  ImageU8 out;
  out.width = base.width;
  out.height = base.height;
  out.rgb.resize(base.rgb.size());
  for (size_t i = 0; i < base.rgb.size(); ++i) {
    const float inner = static_cast<float>(heat.rgb[i]) * wb;
    out.rgb[i] = to_u8_half_even(std::fma(static_cast<float>(base.rgb[i]), wa, inner));
  }
  return out;
}

std::array<uint8_t, 3> absolute_colour(float t, std::array<uint8_t, 3> under, float alpha_max) {
  if (!(t > 0.0f)) return under;  // also NaN
  if (t > 1.0f) t = 1.0f;
  const float s = 255.0f * t;
  const auto& c = kJet[s >= 255.0f ? 255 : static_cast<uint8_t>(s)];
  const float a = alpha_max * t;
  std::array<uint8_t, 3> out;
  for (int k = 0; k < 3; ++k)
    out[k] = to_u8_half_even((1.0f - a) * static_cast<float>(under[k]) + a * static_cast<float>(c[k]));
  return out;
}

ImageU8 overlay_absolute(const ImageU8& base, const std::vector<float>& map, float hi, float alpha_max) {
  check_image_size(base, map.size(), "overlay_absolute");
  check_finite(map, "overlay_absolute");
  if (!std::isfinite(hi)) fail("overlay_absolute: the scale's maximum ", hi, " is not finite");
  if (!(alpha_max >= 0.0f && alpha_max <= 1.0f)) fail("overlay_absolute: alpha = ", alpha_max, " is outside [0, 1]");
  ImageU8 out = base;
  if (!(hi > 0.0f)) return out;
  for (size_t p = 0; p < map.size(); ++p) {
    if (!(map[p] > 0.0f)) continue;
    const std::array<uint8_t, 3> under = {base.rgb[3 * p], base.rgb[3 * p + 1], base.rgb[3 * p + 2]};
    const std::array<uint8_t, 3> c = absolute_colour(map[p] / hi, under, alpha_max);
    for (int k = 0; k < 3; ++k) out.rgb[3 * p + k] = c[k];
  }
  return out;
}

ImageU8 mask_image(const ImageU8& base, const std::vector<uint8_t>& mask) {
  check_image_size(base, mask.size(), "mask_image");
  ImageU8 out = base;
  for (size_t p = 0; p < mask.size(); ++p)
    if (!mask[p])
      for (int c = 0; c < 3; ++c) out.rgb[3 * p + c] = static_cast<uint8_t>(base.rgb[3 * p + c] / 4);
  return out;
}

ImageU8 mask_to_image(const std::vector<uint8_t>& mask, int width, int height) {
  if (width <= 0 || height <= 0) fail("mask_to_image: size ", width, "x", height, " must be positive");
  if (mask.size() != static_cast<size_t>(width) * height)
    fail("mask_to_image: mask has ", mask.size(), " values, not ", width, "x", height);
  ImageU8 img;
  img.width = width;
  img.height = height;
  img.rgb.resize(mask.size() * 3);
  for (size_t p = 0; p < mask.size(); ++p) {
    const uint8_t v = mask[p] ? 255 : 0;
    img.rgb[3 * p] = img.rgb[3 * p + 1] = img.rgb[3 * p + 2] = v;
  }
  return img;
}

void write_mask_png(const std::string& path, const std::vector<uint8_t>& mask, int width, int height) {
  if (width <= 0 || height <= 0) fail("write_mask_png: size ", width, "x", height, " must be positive");
  if (mask.size() != static_cast<size_t>(width) * height)
    fail("write_mask_png: mask has ", mask.size(), " values, not ", width, "x", height);
  std::vector<uint8_t> grey(mask.size());
  for (size_t p = 0; p < mask.size(); ++p) grey[p] = mask[p] ? 255 : 0;
  write_png_gray(path, grey, width, height);
}

std::vector<float> average_maps(const std::vector<std::vector<float>>& maps) {
  if (maps.empty()) fail("average_maps: no maps");
  const size_t n = maps[0].size();
  if (n == 0) fail("average_maps: empty map");
  std::vector<double> acc(n, 0.0);
  for (size_t k = 0; k < maps.size(); ++k) {
    if (maps[k].size() != n)
      fail("average_maps: map ", k, " has ", maps[k].size(), " values, map 0 has ", n);
    for (size_t i = 0; i < n; ++i) acc[i] += maps[k][i];
  }
  std::vector<float> out(n);
  const double inv = static_cast<double>(maps.size());
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(acc[i] / inv);
  return out;
}

float mask_iou(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  if (a.size() != b.size()) fail("mask_iou: masks have ", a.size(), " and ", b.size(), " values");
  size_t inter = 0, uni = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const bool x = a[i] != 0, y = b[i] != 0;
    inter += x && y;
    uni += x || y;
  }
  return uni == 0 ? 0.0f : static_cast<float>(static_cast<double>(inter) / static_cast<double>(uni));
}

int BarChartGeometry::row(double v) const {
  return kMargin + static_cast<int>(std::lround((hi - v) / (hi - lo) * (plot_h - 1)));
}
int BarChartGeometry::slot_x0(int64_t i) const { return kMargin + static_cast<int>(i * plot_w / n); }
int BarChartGeometry::slot_x1(int64_t i) const { return kMargin + static_cast<int>((i + 1) * plot_w / n); }

BarChartGeometry bar_chart_geometry(const std::vector<float>& values, int width, int height) {
  constexpr int kMargin = BarChartGeometry::kMargin;
  if (values.empty()) fail("bar_chart: no values");
  check_finite(values, "bar_chart");
  BarChartGeometry g;
  g.n = static_cast<int64_t>(values.size());
  if (width < 2 * kMargin + g.n || height < 2 * kMargin + 2)
    fail("bar_chart: ", width, "x", height, " is too small for ", g.n, " bars (need width >= ", 2 * kMargin + g.n,
         ", height >= ", 2 * kMargin + 2, ")");
  g.plot_w = width - 2 * kMargin, g.plot_h = height - 2 * kMargin;
  g.hi = 0.0, g.lo = 0.0;
  for (float v : values) {
    g.hi = std::max(g.hi, static_cast<double>(v));
    g.lo = std::min(g.lo, static_cast<double>(v));
  }
  if (g.hi == g.lo) g.hi = 1.0;  // all zero
  return g;
}

ImageU8 bar_chart(const std::vector<float>& values, int width, int height) {
  const BarChartGeometry geo = bar_chart_geometry(values, width, height);
  const int64_t n = geo.n;
  ImageU8 img;
  img.width = width;
  img.height = height;
  img.rgb.assign(static_cast<size_t>(width) * height * 3, 255);
  auto put = [&](int x, int y, uint8_t r, uint8_t g, uint8_t b) {
    uint8_t* p = img.row(y) + 3 * x;
    p[0] = r;
    p[1] = g;
    p[2] = b;
  };

  const int y0 = geo.row(0.0);
  for (int64_t i = 0; i < n; ++i) {
    const int x0 = geo.slot_x0(i), x1 = geo.slot_x1(i);
    const int xe = x1 - x0 >= 3 ? x1 - 1 : x1;
    const double v = values[static_cast<size_t>(i)];
    const int yv = geo.row(v);
    const bool neg = v < 0;
    for (int y = std::min(y0, yv); y <= std::max(y0, yv); ++y)
      for (int x = x0; x < xe; ++x) {
        if (neg)
          put(x, y, 214, 39, 40);
        else
          put(x, y, 31, 119, 180);
      }
  }
  for (int x = geo.kMargin; x < geo.kMargin + geo.plot_w; ++x) put(x, y0, 0, 0, 0);
  return img;
}

}  // namespace mmn
