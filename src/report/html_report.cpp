#include "report/html_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/atomic_file.h"
#include "io/image.h"
#include "io/json_file.h"
#include "io/npy.h"
#include "neurons/heatmap.h"
#include "neurons/run.h"
#include "report/report_page.h"
#include "report/svg_plots.h"
#include "util/error.h"
#include "util/progress.h"

namespace mmn {

namespace fs = std::filesystem;
using nlohmann::json;

std::string base64_encode(const std::string& bytes) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    for (int s : {18, 12, 6, 0}) out += kAlphabet[(v >> s) & 63];
  }
  if (i < bytes.size()) {
    uint32_t v = uint8_t(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= uint8_t(bytes[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

namespace {

// Shown, not recomputed: four significant digits keep the embedded data small.
double round4(double v) {
  if (!std::isfinite(v) || v == 0) return 0;
  const double p = std::pow(10.0, 3 - std::floor(std::log10(std::fabs(v))));
  return std::round(v * p) / p;
}

// A binary mask packed 8 pixels a byte (row-major, most significant bit first), base64.
std::string mask_bits(const std::vector<uint8_t>& mask) {
  std::string bytes((mask.size() + 7) / 8, '\0');
  for (size_t i = 0; i < mask.size(); ++i)
    if (mask[i]) bytes[i / 8] = static_cast<char>(uint8_t(bytes[i / 8]) | (0x80 >> (i % 8)));
  return base64_encode(bytes);
}

// The heatmaps folder of the noun predicted at `step` (find names it "<step>_<word>").
fs::path heatmap_dir(const RunImage& im, int step) {
  const fs::path root = fs::path(im.dir) / "heatmaps";
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return {};
  const std::string prefix = std::to_string(step) + "_";
  for (const auto& e : fs::directory_iterator(root, ec))
    if (e.is_directory() && e.path().filename().string().rfind(prefix, 0) == 0) return e.path();
  return {};
}

// maps.json + maps.npy of one noun: names, metadata, values, and for grid
// models the method's mask (bilinear upsampling to the input image, 95th
// percentile) of each map.
json noun_maps(const fs::path& dir, int grid, int width, int height) {
  const std::string meta_path = (dir / "maps.json").string();
  const json meta = parse_json(read_file(meta_path), meta_path);
  if (!meta.is_array()) fail(meta_path, ": expected a list of maps");
  const NpyArray a = read_npy((dir / "maps.npy").string());
  const int64_t n = a.shape.empty() ? 0 : a.shape[0];
  if (n != static_cast<int64_t>(meta.size()) || n == 0)
    fail(a.path, ": ", n, " maps, but maps.json lists ", meta.size());
  const std::vector<float> v = a.as_f32();
  const int64_t P = static_cast<int64_t>(v.size()) / n;
  if (grid > 0 && P != static_cast<int64_t>(grid) * grid)
    fail(a.path, ": maps of ", P, " values, the run's patch grid is ", grid, "x", grid);
  json out = {{"maps", json::array()}};
  for (int64_t i = 0; i < n; ++i) {
    json m = meta[i];
    std::vector<float> vals(v.begin() + i * P, v.begin() + (i + 1) * P);
    json r = json::array();
    for (float x : vals) r.push_back(round4(x));
    m["values"] = std::move(r);
    if (grid > 0 && width > 0 && height > 0)
      m["mask"] = mask_bits(mask_above_percentile(upsample_bilinear(vals.data(), grid, grid, height, width), 95.0));
    out["maps"].push_back(std::move(m));
  }
  return out;
}

// One gallery entry: the image, its caption and per noun the top neurons
// (with the top tokens find explained them by) and the maps.
json image_entry(const RunImage& im, int grid, const ReportOptions& opt) {
  const fs::path rp = fs::path(im.dir) / "result.json";
  const json r = parse_json(read_file(rp.string()), rp.string());
  json e = {{"id", im.id}, {"caption", im.caption}, {"nouns", json::array()}};
  int width = 0, height = 0;
  const fs::path input = fs::path(im.dir) / "input.png";
  std::error_code ec;
  if (fs::exists(input, ec)) {
    const std::string bytes = read_file(input.string());
    const ImageU8 img = decode_image(bytes, input.string());
    width = img.width, height = img.height;
    e["img"] = "data:image/png;base64," + base64_encode(bytes);
    e["w"] = width, e["h"] = height;
  }
  const json& nouns = r.contains("nouns") && r["nouns"].is_array() ? r["nouns"] : json::array();
  for (size_t c = 0; c < im.concepts.size(); ++c) {
    const RunConcept& rc = im.concepts[c];
    json n = {{"word", rc.word}, {"lemma", rc.lemma}, {"step", rc.step}, {"neurons", json::array()}};
    const json* explained = c < nouns.size() && nouns[c].contains("neurons") ? &nouns[c]["neurons"] : nullptr;
    for (size_t k = 0; k < std::min<size_t>(rc.neurons.size(), opt.neurons_per_noun); ++k) {
      json row = {rc.neurons[k].layer, rc.neurons[k].unit, round4(rc.neurons[k].score)};
      json tokens = json::array();
      if (explained && k < explained->size() && (*explained)[k].contains("top_tokens"))
        tokens = (*explained)[k]["top_tokens"];
      row.push_back(tokens);
      n["neurons"].push_back(std::move(row));
    }
    if (!rc.gradient.empty()) {
      json g = json::array();
      for (size_t k = 0; k < std::min<size_t>(rc.gradient.size(), 10); ++k)
        g.push_back({rc.gradient[k].layer, rc.gradient[k].unit, round4(rc.gradient[k].score)});
      n["gradient"] = std::move(g);
    }
    if (const fs::path d = heatmap_dir(im, rc.step); !d.empty()) n["maps"] = noun_maps(d, grid, width, height)["maps"];
    e["nouns"].push_back(std::move(n));
  }
  if (r.contains("skipped_nouns")) e["skipped"] = r["skipped_nouns"];
  return e;
}

// Leaves {"mean", "ci95"} of a metrics result tree, by path.
void collect_means(const json& node, const std::string& path, std::map<std::string, json>& out) {
  if (!node.is_object()) return;
  if (node.contains("mean") && (node["mean"].is_number() || node["mean"].is_null())) {
    out[path] = node;
    return;
  }
  for (const auto& [k, v] : node.items()) collect_means(v, path.empty() ? k : path + "." + k, out);
}

std::string cell(const json& leaf) {
  if (!leaf.is_object() || !leaf.contains("mean") || !leaf["mean"].is_number()) return "n/a";
  std::string s = short_number(leaf["mean"].get<double>());
  if (leaf.contains("ci95") && leaf["ci95"].is_array() && leaf["ci95"].size() == 2 && leaf["ci95"][0].is_number() &&
      leaf["ci95"][1].is_number())
    s += " <small>[" + short_number(leaf["ci95"][0].get<double>()) + ", " + short_number(leaf["ci95"][1].get<double>()) +
         "]</small>";
  return s;
}

// The metrics of RUN/metrics.json: one table per k, a row per measured
// quantity (its path in the file), a column per ranking.
std::string metrics_section(const json& m) {
  std::ostringstream s;
  s << "<section id=\"metrics\"><h2>Metrics <small>(metrics.json; mean [95% CI])</small></h2>";
  if (!m.contains("results") || !m["results"].is_object()) return s.str() + "<p>No results in metrics.json.</p></section>";
  for (const auto& [k, by_ranking] : m["results"].items()) {
    if (!by_ranking.is_object()) continue;
    std::vector<std::string> rankings;
    std::map<std::string, std::map<std::string, json>> rows;  // path → ranking → leaf
    for (const auto& [rk, tree] : by_ranking.items()) {
      rankings.push_back(rk);
      std::map<std::string, json> leaves;
      collect_means(tree, "", leaves);
      for (auto& [p, leaf] : leaves) rows[p][rk] = leaf;
    }
    s << "<h3>top k = " << xml_escape(k) << "</h3><table class=\"metrics\"><tr><th>quantity</th>";
    for (auto& rk : rankings) s << "<th>" << xml_escape(rk) << "</th>";
    s << "</tr>";
    for (auto& [p, by] : rows) {
      s << "<tr><td>" << xml_escape(p) << "</td>";
      for (auto& rk : rankings) s << "<td>" << (by.count(rk) ? cell(by.at(rk)) : "") << "</td>";
      s << "</tr>";
    }
    s << "</table>";
  }
  if (m.contains("notes") && m["notes"].is_array())
    for (const auto& n : m["notes"])
      if (n.is_string()) s << "<p class=\"note\">" << xml_escape(n.get<std::string>()) << "</p>";
  s << "</section>";
  return s.str();
}

// The causal test of RUN/perturb.json: each top-vs-random comparison, and the
// difference in the noun's margin as bars with their intervals.
std::string perturb_section(const json& p) {
  std::ostringstream s;
  s << "<section id=\"perturb\"><h2>Causal perturbation <small>(perturb.json; mean [95% CI] over (image, noun) "
       "items)</small></h2>";
  const json& sum = p.contains("summary") ? p["summary"] : json::object();
  if (!sum.contains("comparisons") || !sum["comparisons"].is_array() || sum["comparisons"].empty())
    return s.str() + "<p>No comparisons in perturb.json.</p></section>";
  if (sum.contains("clean_reproduced") && sum["clean_reproduced"].is_number())
    s << "<p>Clean captions reproduced: " << sum["clean_reproduced"].dump() << ".</p>";
  s << "<table class=\"metrics\"><tr><th>top neurons</th><th>against</th><th>&Delta; margin (top &minus; random, "
       "nats)</th><th>margin drop ratio</th><th>noun changed (top &minus; random)</th></tr>";
  BarSeries bars;
  for (const auto& c : sum["comparisons"]) {
    const std::string top = c.value("top", ""), rnd = c.value("random", "");
    auto get = [&](const char* k) { return c.contains(k) ? c[k] : json(); };
    s << "<tr><td>" << xml_escape(top) << "</td><td>" << xml_escape(rnd) << "</td><td>" << cell(get("delta_margin_diff"))
      << "</td><td>" << cell(get("margin_drop_ratio")) << "</td><td>" << cell(get("noun_changed_diff")) << "</td></tr>";
    const json d = get("delta_margin_diff");
    if (d.is_object() && d.contains("mean") && d["mean"].is_number()) {
      bars.labels.push_back(std::to_string(bars.labels.size() + 1));
      bars.values.push_back(d["mean"].get<double>());
      const bool ci = d.contains("ci95") && d["ci95"].is_array() && d["ci95"].size() == 2 && d["ci95"][0].is_number() &&
                      d["ci95"][1].is_number();
      bars.lo.push_back(ci ? d["ci95"][0].get<double>() : NAN);
      bars.hi.push_back(ci ? d["ci95"][1].get<double>() : NAN);
    }
  }
  s << "</table>";
  if (!bars.values.empty())
    s << svg_bar_chart("Δ margin of the noun, top minus random (bar i = row i)", "nats", bars);
  s << "</section>";
  return s.str();
}

// Layer histogram of the top-10 neurons of every (image, noun) item.
BarSeries layer_counts(const RunData& run, bool gradient) {
  BarSeries b;
  const int L = std::max(1, run.layers());
  b.values.assign(L, 0);
  for (int l = 0; l < L; ++l) b.labels.push_back(std::to_string(l));
  for (const RunImage& im : run.images)
    for (const RunConcept& c : im.concepts) {
      const auto& ns = gradient ? c.gradient : c.neurons;
      for (size_t k = 0; k < std::min<size_t>(10, ns.size()); ++k)
        if (ns[k].layer >= 0 && ns[k].layer < L) b.values[ns[k].layer] += 1;
    }
  return b;
}

}  // namespace

std::string build_report(const ReportOptions& opt) {
  if (opt.page_size < 1 || opt.page_size > 1000) fail("--page-size must be in [1, 1000]");
  if (opt.neurons_per_noun < 1 || opt.neurons_per_noun > 100) fail("--neurons must be in [1, 100]");
  const RunData run = load_run(opt.run);
  if (run.images.empty()) fail(opt.run, ": no finished image in this run (nothing to report)");
  const int grid = run.info.value("grid_side", 0);

  json data = {{"page_size", opt.page_size}, {"grid", grid}, {"images", json::array()}};
  std::unique_ptr<Progress> bar;
  if (opt.show_progress) bar = std::make_unique<Progress>("report", static_cast<int64_t>(run.images.size()), "images");
  int64_t items = 0, skipped = 0;
  std::vector<double> top_scores;
  for (size_t i = 0; i < run.images.size(); ++i) {
    json e = image_entry(run.images[i], grid, opt);
    items += static_cast<int64_t>(e["nouns"].size());
    if (e.contains("skipped") && e["skipped"].is_array()) skipped += static_cast<int64_t>(e["skipped"].size());
    for (const RunConcept& c : run.images[i].concepts)
      for (size_t k = 0; k < std::min<size_t>(10, c.neurons.size()); ++k) top_scores.push_back(c.neurons[k].score);
    data["images"].push_back(std::move(e));
    if (bar) bar->update(static_cast<int64_t>(i + 1));
  }
  if (bar) bar->finish();

  std::ostringstream summary;
  const json& o = run.info.contains("options") ? run.info["options"] : json::object();
  summary << "<section id=\"summary\"><h2>Run</h2><table class=\"kv\">";
  auto kv = [&](const std::string& k, const std::string& v) {
    summary << "<tr><th>" << xml_escape(k) << "</th><td>" << xml_escape(v) << "</td></tr>";
  };
  kv("run", opt.run);
  kv("model", run.model());
  kv("family", run.info.value("family", ""));
  kv("language-model layers × units", std::to_string(run.layers()) + " × " + std::to_string(run.units_per_layer()));
  kv("image tokens", grid > 0 ? std::to_string(grid) + " × " + std::to_string(grid) + " patch grid"
                              : std::to_string(run.info.value("image_tokens", 0)) + " query tokens");
  for (const char* k : {"method", "activation", "top_k", "query", "prefix"})
    if (o.contains(k)) kv(k, o[k].is_string() ? o[k].get<std::string>() : o[k].dump());
  kv("images", std::to_string(run.images.size()));
  kv("(image, noun) items", std::to_string(items) + (skipped ? " (" + std::to_string(skipped) + " nouns skipped)" : ""));
  summary << "</table>";
  summary << "<div class=\"plots\">"
          << svg_bar_chart("Layers of the top-10 neurons (score), all items", "neurons", layer_counts(run, false));
  bool any_gradient = false;
  for (const RunImage& im : run.images)
    for (const RunConcept& c : im.concepts) any_gradient = any_gradient || !c.gradient.empty();
  if (any_gradient)
    summary << svg_bar_chart("Layers of the top-10 neurons (gradient baseline)", "neurons", layer_counts(run, true));
  summary << svg_histogram("Scores of the top-10 neurons, all items", "score", top_scores) << "</div></section>";

  std::string sections = summary.str();
  for (const auto& [file, section] :
       std::vector<std::pair<std::string, std::string (*)(const json&)>>{{"metrics.json", metrics_section},
                                                                          {"perturb.json", perturb_section}}) {
    const fs::path p = fs::path(opt.run) / file;
    if (auto j = read_json_object_if_exists(p.string())) sections += section(*j);
  }
  // Replacing invalid UTF-8 keeps a byte-level token from breaking the page;
  // "</" is escaped so no string can close the data's script element.
  std::string payload = data.dump(-1, ' ', false, json::error_handler_t::replace);
  for (size_t at = 0; (at = payload.find("</", at)) != std::string::npos; at += 3) payload.replace(at, 2, "<\\/");
  return report_page("mmneuron report: " + fs::path(opt.run).filename().string(), sections, payload);
}

}  // namespace mmn
