#include "neurons/heatmap_figure.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "io/bitmap_font.h"
#include "neurons/heatmap.h"
#include "util/error.h"

namespace mmn {

namespace {

constexpr std::array<uint8_t, 3> kInk = {0, 0, 0};
constexpr std::array<uint8_t, 3> kGrey = {128, 128, 128};

ImageU8 blank(int w, int h) {
  ImageU8 img;
  img.width = w;
  img.height = h;
  img.rgb.assign(static_cast<size_t>(w) * h * 3, 255);
  return img;
}

void put(ImageU8& img, int x, int y, std::array<uint8_t, 3> c) {
  uint8_t* p = img.row(y) + 3 * x;
  p[0] = c[0];
  p[1] = c[1];
  p[2] = c[2];
}

void blit(ImageU8& dst, const ImageU8& src, int x0, int y0) {
  for (int y = 0; y < src.height; ++y)
    std::copy(src.row(y), src.row(y) + 3 * src.width, dst.row(y0 + y) + 3 * x0);
}

void draw_title(ImageU8& img, const std::vector<std::string>& title, int text_scale) {
  const int max_w = img.width - 2 * kFigurePad;
  for (size_t i = 0; i < title.size(); ++i)
    draw_text(img, kFigurePad, kFigurePad + static_cast<int>(i) * kLineH * text_scale,
              fit_text(title[i], max_w, text_scale), kInk, text_scale);
}

int title_height(size_t lines, int text_scale) {
  return lines == 0 ? 0 : 2 * kFigurePad + static_cast<int>(lines) * kLineH * text_scale;
}

}  // namespace

FigureLayout figure_layout(int base_w, int base_h, int title_lines) {
  if (base_w <= 0 || base_h <= 0) fail("figure_layout: image size ", base_w, "x", base_h, " must be positive");
  if (title_lines < 0) fail("figure_layout: ", title_lines, " title lines");
  FigureLayout L;
  const int side = std::max(base_w, base_h);
  L.scale = std::max(1, (kFigureMinSide + side - 1) / side);
  L.image_w = base_w * L.scale;
  L.image_h = base_h * L.scale;
  L.width = L.image_w;
  L.text_scale = L.width >= kFigureMinSide ? 2 : 1;
  L.title_h = title_height(static_cast<size_t>(title_lines), L.text_scale);
  L.image_x = 0;
  L.image_y = L.title_h;
  L.bar_x = kFigurePad + 1;  // room for the frame
  L.bar_w = std::max(2, L.width - 2 * (kFigurePad + 1));
  L.bar_y = L.image_y + L.image_h + kFigurePad + 1;
  L.label_y = L.bar_y + kBarH + 1 + 2;
  L.height = L.label_y + kLineH * L.text_scale + kFigurePad;
  return L;
}

std::string format_value(double v) {
  if (v == 0.0 || !std::isfinite(v)) return v == 0.0 ? "0" : (std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf"));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

ImageU8 upscale_nearest(const ImageU8& img, int factor) {
  if (factor < 1) fail("upscale_nearest: factor ", factor, " must be at least 1");
  if (img.width <= 0 || img.height <= 0 || img.rgb.size() != static_cast<size_t>(img.width) * img.height * 3)
    fail("upscale_nearest: invalid image ", img.width, "x", img.height);
  if (factor == 1) return img;
  ImageU8 out;
  out.width = img.width * factor;
  out.height = img.height * factor;
  out.rgb.resize(static_cast<size_t>(out.width) * out.height * 3);
  for (int y = 0; y < out.height; ++y) {
    const uint8_t* src = img.row(y / factor);
    uint8_t* dst = out.row(y);
    for (int x = 0; x < out.width; ++x) std::copy(src + 3 * (x / factor), src + 3 * (x / factor) + 3, dst + 3 * x);
  }
  return out;
}

ImageU8 heatmap_figure(const ImageU8& base, const float* grid, int gh, int gw, float scale_hi,
                       const std::vector<std::string>& title, const std::string& bar_note) {
  const FigureLayout L = figure_layout(base.width, base.height, static_cast<int>(title.size()));
  const ImageU8 big = upscale_nearest(base, L.scale);
  const std::vector<float> up = upsample_bilinear(grid, gh, gw, L.image_h, L.image_w);
  ImageU8 fig = blank(L.width, L.height);
  blit(fig, overlay_absolute(big, up, scale_hi), L.image_x, L.image_y);
  draw_title(fig, title, L.text_scale);

  // The colour bar and its frame.
  for (int x = 0; x < L.bar_w; ++x) {
    const float t = static_cast<float>(x) / static_cast<float>(L.bar_w - 1);
    const std::array<uint8_t, 3> c = scale_hi > 0.0f ? absolute_colour(t, kGrey) : kGrey;
    for (int y = 0; y < kBarH; ++y) put(fig, L.bar_x + x, L.bar_y + y, c);
  }
  for (int x = L.bar_x - 1; x <= L.bar_x + L.bar_w; ++x) {
    put(fig, x, L.bar_y - 1, kInk);
    put(fig, x, L.bar_y + kBarH, kInk);
  }
  for (int y = L.bar_y - 1; y <= L.bar_y + kBarH; ++y) {
    put(fig, L.bar_x - 1, y, kInk);
    put(fig, L.bar_x + L.bar_w, y, kInk);
  }
  // Labels: "0" under the left end, the scale's maximum under the right end,
  // the note centred between them.
  const int ts = L.text_scale, gap = kCellW * ts;
  const std::string lo = "0", hi = format_value(scale_hi);
  const int lo_w = text_width(lo, ts), hi_w = text_width(hi, ts);
  draw_text(fig, L.bar_x, L.label_y, lo, kInk, ts);
  draw_text(fig, L.bar_x + L.bar_w - hi_w, L.label_y, hi, kInk, ts);
  const int room = L.bar_w - lo_w - hi_w - 2 * gap;
  if (room > 0 && !bar_note.empty()) {
    const std::string note = fit_text(bar_note, room, ts);
    const int nx = L.bar_x + lo_w + gap + (room - text_width(note, ts)) / 2;
    draw_text(fig, nx, L.label_y, note, kInk, ts);
  }
  return fig;
}

ImageU8 titled_figure(const ImageU8& body, const std::vector<std::string>& title) {
  if (body.width <= 0 || body.height <= 0 || body.rgb.size() != static_cast<size_t>(body.width) * body.height * 3)
    fail("titled_figure: invalid image ", body.width, "x", body.height);
  const int ts = body.width >= kFigureMinSide ? 2 : 1;
  const int th = title_height(title.size(), ts);
  ImageU8 fig = blank(body.width, th + body.height);
  blit(fig, body, 0, th);
  draw_title(fig, title, ts);
  return fig;
}

ImageU8 bar_figure(const std::vector<float>& values, int plot_w, int plot_h, const std::vector<std::string>& title,
                   const std::string& x_label) {
  const ImageU8 plot = bar_chart(values, plot_w, plot_h);
  const BarChartGeometry geo = bar_chart_geometry(values, plot_w, plot_h);
  std::vector<double> ticks = {geo.hi, 0.0, geo.lo};
  std::sort(ticks.begin(), ticks.end());
  ticks.erase(std::unique(ticks.begin(), ticks.end()), ticks.end());
  constexpr int kTick = 3;
  auto gutter_at = [&](int ts) {
    int w = 0;
    for (double t : ticks) w = std::max(w, text_width(format_value(t), ts));
    return kFigurePad + w + 2 * ts + kTick;
  };
  const int ts = gutter_at(1) + plot_w + kFigurePad >= kFigureMinSide ? 2 : 1;
  const int gutter = gutter_at(ts), line = kLineH * ts;
  ImageU8 body = blank(gutter + plot_w + kFigurePad, plot_h + 2 + 2 * line + kFigurePad);
  blit(body, plot, gutter, 0);
  // The value axis: labels right-aligned against the ticks, centred on their
  // rows (glyphs stand 7 rows tall), kept inside the body.
  for (double t : ticks) {
    const int y = geo.row(t);
    for (int x = gutter - kTick; x < gutter + BarChartGeometry::kMargin; ++x) put(body, x, y, kInk);
    const std::string label = format_value(t);
    const int ty = std::clamp(y - (7 * ts) / 2, 0, body.height - line);
    draw_text(body, gutter - kTick - 2 * ts - text_width(label, ts), ty, label, kInk, ts);
  }
  // The index axis: first and last bar (the last only when they do not meet).
  const int iy = plot_h + 2;
  const std::string first = "0", last = std::to_string(geo.n - 1);
  const int c0 = gutter + (geo.slot_x0(0) + geo.slot_x1(0)) / 2;
  const int c1 = gutter + (geo.slot_x0(geo.n - 1) + geo.slot_x1(geo.n - 1)) / 2;
  const int fx = c0 - text_width(first, ts) / 2, lx = c1 - text_width(last, ts) / 2;
  draw_text(body, fx, iy, first, kInk, ts);
  if (geo.n > 1 && lx > fx + text_width(first, ts) + kCellW * ts) draw_text(body, lx, iy, last, kInk, ts);
  const std::string xl = fit_text(x_label, geo.plot_w, ts);
  draw_text(body, gutter + BarChartGeometry::kMargin + (geo.plot_w - text_width(xl, ts)) / 2, iy + line, xl, kInk,
            ts);
  return titled_figure(body, title);
}

}  // namespace mmn
