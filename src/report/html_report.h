// mmneuron report: one self-contained static HTML file for a find run (and,
// when the run holds them, its metrics.json and perturb.json). No external
// scripts, styles or fonts: images are embedded as data URIs, run-level plots
// are inline SVG drawn here, and a small embedded script pages through the
// images and builds the per-neuron index from the embedded data, so a report
// of 1,000 images opens and stays responsive.
#pragma once
#include <cstdint>
#include <string>

namespace mmn {

struct ReportOptions {
  std::string run;           // a find run directory
  int page_size = 20;        // images per page (1 … 1000)
  int neurons_per_noun = 10; // rows of each noun's neuron table (1 … 100)
  bool show_progress = true;
};

// The report's HTML. Throws mmn::Error (one line, naming the file) for a
// directory that is not a find run or a run with no finished image.
std::string build_report(const ReportOptions& opt);

// Standard base64 (RFC 4648, with padding).
std::string base64_encode(const std::string& bytes);

}  // namespace mmn
