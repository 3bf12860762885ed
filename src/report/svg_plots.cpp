#include "report/svg_plots.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace mmn {

std::string xml_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string short_number(double v) {
  if (!std::isfinite(v)) return std::isnan(v) ? "n/a" : (v > 0 ? "inf" : "-inf");
  char b[32];
  if (std::fabs(v) >= 1000 && std::fabs(v) < 1e7 && v == std::round(v)) std::snprintf(b, sizeof b, "%.0f", v);
  else std::snprintf(b, sizeof b, "%.3g", v);
  return b;
}

namespace {

// "Nice" tick step for a span: 1, 2 or 5 times a power of ten, about n ticks.
double tick_step(double span, int n) {
  if (!(span > 0)) return 1;
  const double raw = span / n, p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * p >= raw) return m * p;
  return 10 * p;
}

struct Frame {
  double W, H, L = 64, R = 16, T = 34, B = 56;
  double lo = 0, hi = 1;  // y range
  double y(double v) const { return T + (H - T - B) * (hi - v) / (hi - lo); }
  double x0() const { return L; }
  double x1() const { return W - R; }
};

// Title, y grid with tick labels, the y label, the zero line, the frame.
void draw_axes(std::ostringstream& s, const Frame& f, const std::string& title, const std::string& y_label) {
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot\" width=\"" << f.W << "\" height=\"" << f.H
    << "\" viewBox=\"0 0 " << f.W << " " << f.H << "\" font-family=\"sans-serif\" font-size=\"11\">"
    << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>"
    << "<text x=\"" << f.W / 2 << "\" y=\"18\" text-anchor=\"middle\" font-size=\"13\">" << xml_escape(title)
    << "</text>";
  const double step = tick_step(f.hi - f.lo, 5);
  for (double t = std::ceil(f.lo / step) * step; t <= f.hi + 1e-9 * step; t += step) {
    const double v = std::fabs(t) < 1e-12 * step ? 0 : t;
    s << "<line x1=\"" << f.x0() << "\" x2=\"" << f.x1() << "\" y1=\"" << f.y(v) << "\" y2=\"" << f.y(v)
      << "\" stroke=\"#e3e3e3\"/><text x=\"" << f.x0() - 5 << "\" y=\"" << f.y(v) + 4 << "\" text-anchor=\"end\">"
      << short_number(v) << "</text>";
  }
  s << "<text transform=\"translate(14," << (f.T + f.H - f.B) / 2 << ") rotate(-90)\" text-anchor=\"middle\">"
    << xml_escape(y_label) << "</text>";
  s << "<rect x=\"" << f.x0() << "\" y=\"" << f.T << "\" width=\"" << f.x1() - f.x0() << "\" height=\""
    << f.H - f.T - f.B << "\" fill=\"none\" stroke=\"#555\"/>";
}

void zero_line(std::ostringstream& s, const Frame& f) {
  if (f.lo <= 0 && f.hi >= 0)
    s << "<line class=\"zero\" x1=\"" << f.x0() << "\" x2=\"" << f.x1() << "\" y1=\"" << f.y(0) << "\" y2=\""
      << f.y(0) << "\" stroke=\"black\" stroke-width=\"1.2\"/>";
}

}  // namespace

std::string svg_bar_chart(const std::string& title, const std::string& y_label, const BarSeries& s_in, int width,
                          int height) {
  const BarSeries& bs = s_in;
  const size_t n = bs.values.size();
  const bool ci = bs.lo.size() == n && bs.hi.size() == n && n > 0;
  double lo = 0, hi = 0;
  for (size_t i = 0; i < n; ++i) {
    const double v = bs.values[i];
    if (!std::isfinite(v)) continue;
    lo = std::min(lo, v), hi = std::max(hi, v);
    if (ci && std::isfinite(bs.lo[i]) && std::isfinite(bs.hi[i])) lo = std::min(lo, bs.lo[i]), hi = std::max(hi, bs.hi[i]);
  }
  if (hi == lo) hi = lo + 1;
  const double pad = 0.06 * (hi - lo);
  Frame f{static_cast<double>(width), static_cast<double>(height)};
  f.lo = lo < 0 ? lo - pad : 0;
  f.hi = hi > 0 ? hi + pad : 0;
  std::ostringstream s;
  draw_axes(s, f, title, y_label);
  const double slot = (f.x1() - f.x0()) / std::max<size_t>(1, n);
  for (size_t i = 0; i < n; ++i) {
    const double v = bs.values[i], cx = f.x0() + (i + 0.5) * slot, bw = std::max(1.0, 0.7 * slot);
    if (std::isfinite(v)) {
      const double top = std::min(f.y(v), f.y(0)), h = std::fabs(f.y(v) - f.y(0));
      s << "<rect class=\"bar\" x=\"" << cx - bw / 2 << "\" y=\"" << top << "\" width=\"" << bw << "\" height=\"" << h
        << "\" fill=\"" << (v < 0 ? "#d62728" : "#1f77b4") << "\"><title>" << xml_escape(bs.labels.at(i)) << ": "
        << short_number(v);
      if (ci) s << " [" << short_number(bs.lo[i]) << ", " << short_number(bs.hi[i]) << "]";
      s << "</title></rect>";
      if (ci && std::isfinite(bs.lo[i]) && std::isfinite(bs.hi[i]))
        s << "<line x1=\"" << cx << "\" x2=\"" << cx << "\" y1=\"" << f.y(bs.lo[i]) << "\" y2=\"" << f.y(bs.hi[i])
          << "\" stroke=\"#222\"/>";
    }
    // Index labels: every bar when they fit, else every k-th.
    const size_t every = std::max<size_t>(1, static_cast<size_t>(std::ceil(40.0 / std::max(slot, 1e-9))));
    if (i % every == 0)
      s << "<text x=\"" << cx << "\" y=\"" << f.H - f.B + 14 << "\" text-anchor=\"middle\">"
        << xml_escape(bs.labels.at(i)) << "</text>";
  }
  zero_line(s, f);
  s << "</svg>";
  return s.str();
}

std::string svg_histogram(const std::string& title, const std::string& x_label, const std::vector<double>& values_in,
                          int bins, int width, int height) {
  std::vector<double> values;
  for (double v : values_in)
    if (std::isfinite(v)) values.push_back(v);
  bins = std::max(1, bins);
  double mn = 0, mx = 1;
  if (!values.empty()) {
    mn = *std::min_element(values.begin(), values.end());
    mx = *std::max_element(values.begin(), values.end());
  }
  if (mx == mn) bins = 1, mx = mn + 1;
  std::vector<double> counts(bins, 0);
  for (double v : values) counts[std::min(bins - 1, static_cast<int>((v - mn) / (mx - mn) * bins))] += 1;
  Frame f{static_cast<double>(width), static_cast<double>(height)};
  f.lo = 0;
  f.hi = std::max(1.0, *std::max_element(counts.begin(), counts.end()) * 1.06);
  std::ostringstream s;
  draw_axes(s, f, title, "count");
  const double bw = (f.x1() - f.x0()) / bins;
  for (int i = 0; i < bins; ++i) {
    const double x = f.x0() + i * bw;
    s << "<rect class=\"bar\" x=\"" << x << "\" y=\"" << f.y(counts[i]) << "\" width=\"" << std::max(0.5, bw - 1)
      << "\" height=\"" << f.y(0) - f.y(counts[i]) << "\" fill=\"#1f77b4\"><title>[" << short_number(mn + i * (mx - mn) / bins)
      << ", " << short_number(mn + (i + 1) * (mx - mn) / bins) << "): " << counts[i] << "</title></rect>";
  }
  // x ticks at nice values inside [mn, mx].
  const double step = tick_step(mx - mn, 6);
  for (double t = std::ceil(mn / step) * step; t <= mx + 1e-9 * step; t += step) {
    const double x = f.x0() + (t - mn) / (mx - mn) * (f.x1() - f.x0());
    s << "<line x1=\"" << x << "\" x2=\"" << x << "\" y1=\"" << f.y(0) << "\" y2=\"" << f.y(0) + 4
      << "\" stroke=\"#555\"/><text x=\"" << x << "\" y=\"" << f.H - f.B + 16 << "\" text-anchor=\"middle\">"
      << short_number(std::fabs(t) < 1e-12 * step ? 0 : t) << "</text>";
  }
  s << "<text x=\"" << (f.x0() + f.x1()) / 2 << "\" y=\"" << f.H - 14 << "\" text-anchor=\"middle\">"
    << xml_escape(x_label) << " (n = " << values.size() << ")</text>";
  zero_line(s, f);
  s << "</svg>";
  return s.str();
}

}  // namespace mmn
