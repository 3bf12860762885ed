// Plots drawn as inline SVG (no scripts, no fonts beyond the browser's
// sans-serif): a bar chart with axes, tick labels, a zero line and optional
// 95% intervals, and a histogram. Negative values are drawn below the zero
// line. Every label is XML-escaped.
#pragma once
#include <string>
#include <vector>

namespace mmn {

struct BarSeries {
  std::vector<std::string> labels;   // one per bar, drawn under the axis
  std::vector<double> values;
  std::vector<double> lo, hi;        // optional 95% intervals (same length as values, or empty)
};

std::string svg_bar_chart(const std::string& title, const std::string& y_label, const BarSeries& s, int width = 560,
                          int height = 300);

// Counts of `values` in `bins` equal bins over [min, max] (one bin when all are equal).
std::string svg_histogram(const std::string& title, const std::string& x_label, const std::vector<double>& values,
                          int bins = 30, int width = 560, int height = 300);

// &, <, >, " and ' as entities.
std::string xml_escape(const std::string& s);

// A short decimal form of v: 3 significant digits, no trailing zeros.
std::string short_number(double v);

}  // namespace mmn
