// mmneuron report (report/): the plots and encoders it is built from, the
// report of a real find run on the bundled model (self-contained, every image
// and noun in its data, refuses to overwrite), and the same report opened in
// headless Chromium: no script errors, images loaded, a panel for every noun
// of every caption, plots drawn, and a screenshot kept as a test artefact
// (build/test-artifacts/report.png). The browser test skips when Chromium is
// absent, except under CI=true (scripts/install-deps.sh installs it).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "data/shapes.h"
#include "grad/shapes_eval.h"
#include "io/atomic_file.h"
#include "io/image.h"
#include "report/html_report.h"
#include "report/svg_plots.h"
#include "test_util.h"
#include "util/error.h"

namespace fs = std::filesystem;
using namespace mmn;

namespace {

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + what.size())) ++n;
  return n;
}

// The embedded report data.
nlohmann::json report_data(const std::string& html) {
  const std::string open = "<script id=\"mmn-data\" type=\"application/json\">";
  const size_t a = html.find(open), b = html.find("</script>", a);
  if (a == std::string::npos || b == std::string::npos) return {};
  return nlohmann::json::parse(html.substr(a + open.size(), b - a - open.size()));
}

// A find run with heatmaps on three held-out scenes of the bundled model,
// made once for the tests of this file.
struct ReportRun {
  fs::path base = test::temp_dir("report"), run = base / "run";
  ReportRun() {
    fs::create_directories(base / "images");
    for (uint64_t i = 0; i < 3; ++i)
      write_png((base / "images" / ("scene" + std::to_string(i) + ".png")).string(),
                make_scene(kShapesHeldOutSeed, i).image);
    std::string log;
    if (test::run_cmd(test::binary() + " find --model " + test::bundled_model() + " --images " +
                          (base / "images").string() + " --out " + run.string() + " --heatmaps --quiet",
                      &log) != 0)
      throw std::runtime_error("find failed: " + log);
  }
  ~ReportRun() {
    std::error_code ec;
    fs::remove_all(base, ec);
  }
};

const ReportRun& report_run() {
  static ReportRun r;
  return r;
}

}  // namespace

TEST(Report, Base64) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(base64_encode(std::string("\xff\x00\x10", 3)), "/wAQ");
}

TEST(Report, BarChartDrawsNegativeValuesBelowTheZeroLine) {
  BarSeries s;
  s.labels = {"a", "b<c"};
  s.values = {2.0, -1.0};
  const std::string svg = svg_bar_chart("t & u", "nats", s);
  EXPECT_NE(svg.find("t &amp; u"), std::string::npos);
  EXPECT_NE(svg.find("b&lt;c"), std::string::npos);
  EXPECT_EQ(svg.find("b<c"), std::string::npos);
  // Two bars; the zero line sits between the positive bar's top and the negative bar's bottom.
  std::smatch m;
  const std::regex bar("<rect class=\"bar\" x=\"[^\"]+\" y=\"([^\"]+)\" width=\"[^\"]+\" height=\"([^\"]+)\"");
  std::vector<std::pair<double, double>> bars;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), bar); it != std::sregex_iterator(); ++it)
    bars.push_back({std::stod((*it)[1]), std::stod((*it)[2])});
  ASSERT_EQ(bars.size(), 2u);
  ASSERT_TRUE(std::regex_search(svg, m, std::regex("class=\"zero\"[^>]* y1=\"([^\"]+)\"")));
  const double zero = std::stod(m[1]);
  EXPECT_NEAR(bars[0].first + bars[0].second, zero, 1e-6);  // positive: ends on the line
  EXPECT_NEAR(bars[1].first, zero, 1e-6);                   // negative: starts on it, goes down
  EXPECT_NEAR(bars[0].second, 2 * bars[1].second, 1e-6);   // to scale
}

TEST(Report, HistogramCountsEveryFiniteValue) {
  const std::string svg = svg_histogram("h", "x", {1, 2, 2, 3, NAN}, 3);
  EXPECT_NE(svg.find("(n = 4)"), std::string::npos);
  EXPECT_EQ(count(svg, "<rect class=\"bar\""), 3u);
}

TEST(Report, SelfContainedWithEveryImageAndNoun) {
  const ReportRun& r = report_run();
  const fs::path out = r.base / "report.html";
  std::string log;
  ASSERT_EQ(test::run_cmd(test::binary() + " report " + r.run.string() + " --out " + out.string() + " --quiet", &log), 0)
      << log;
  const std::string html = read_file(out.string());
  // Nothing fetched from elsewhere: no external scripts, styles, fonts or images.
  for (const char* bad : {"src=\"http", "href=\"http", "<link", "@import", "url(", "src=\"//"})
    EXPECT_EQ(html.find(bad), std::string::npos) << bad;
  const nlohmann::json d = report_data(html);
  ASSERT_TRUE(d.contains("images"));
  ASSERT_EQ(d["images"].size(), 3u);
  int nouns = 0;
  for (const auto& im : d["images"]) {
    const nlohmann::json result =
        nlohmann::json::parse(read_file((r.run / im["id"].get<std::string>() / "result.json").string()));
    EXPECT_EQ(im["caption"], result["caption"]);
    ASSERT_EQ(im["nouns"].size(), result["nouns"].size());
    EXPECT_EQ(im["img"].get<std::string>().rfind("data:image/png;base64,", 0), 0u);
    for (const auto& n : im["nouns"]) {
      ++nouns;
      EXPECT_FALSE(n["neurons"].empty());
      ASSERT_TRUE(n.contains("maps")) << "find --heatmaps wrote maps for " << n["word"];
      for (const auto& m : n["maps"]) {
        EXPECT_EQ(m["values"].size(), 64u);  // the bundled model's 8x8 grid
        EXPECT_TRUE(m.contains("mask"));
      }
    }
  }
  EXPECT_GE(nouns, 3);
  EXPECT_NE(html.find("Layers of the top-10 neurons"), std::string::npos);
  // Never overwrites without --force.
  EXPECT_NE(test::run_cmd(test::binary() + " report " + r.run.string() + " --out " + out.string(), &log), 0);
  EXPECT_NE(log.find("already exists"), std::string::npos) << log;
  EXPECT_EQ(test::run_cmd(test::binary() + " report " + r.run.string() + " --out " + out.string() + " --force --quiet",
                          &log),
            0)
      << log;
}

TEST(Report, BadInputIsAOneLineError) {
  const fs::path dir = test::temp_dir("report-bad");
  fs::create_directories(dir);
  std::string log;
  EXPECT_NE(test::run_cmd(test::binary() + " report " + dir.string(), &log), 0);
  EXPECT_NE(log.find("run.json"), std::string::npos) << log;
  EXPECT_EQ(count(log, "\n"), 1u) << log;
  const ReportRun& r = report_run();
  EXPECT_NE(test::run_cmd(test::binary() + " report " + r.run.string() + " --page-size 0 --out " +
                              (dir / "x.html").string(),
                          &log),
            0);
  EXPECT_NE(log.find("--page-size"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(dir / "x.html"));
  fs::remove_all(dir);
}

TEST(Report, OpensInHeadlessChromium) {
  std::string which;
  std::string browser;
  for (const char* b : {"chromium", "chromium-browser"})
    if (test::run_cmd(std::string("command -v ") + b, &which) == 0) {
      browser = b;
      break;
    }
  if (browser.empty()) {
    if (test::in_ci()) FAIL() << "CI=true but chromium is not installed (scripts/install-deps.sh installs it)";
    GTEST_SKIP() << "chromium is not installed; skipping the browser test";
  }
  const ReportRun& r = report_run();
  const fs::path out = r.base / "browser.html", profile = r.base / "chromium-profile";
  std::string log;
  ASSERT_EQ(test::run_cmd(test::binary() + " report " + r.run.string() + " --out " + out.string() + " --quiet", &log), 0)
      << log;
  const int nouns = [&] {
    int n = 0;
    const nlohmann::json d = report_data(read_file(out.string()));
    for (const auto& im : d["images"]) n += static_cast<int>(im["nouns"].size());
    return n;
  }();
  const std::string flags = " --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir=" +
                            profile.string() + " --virtual-time-budget=10000 --enable-logging=stderr --v=0 ";
  const fs::path dom_file = r.base / "dom.html";
  ASSERT_EQ(test::run_cmd(browser + flags + "--dump-dom file://" + out.string() + " > " + dom_file.string(), &log), 0)
      << log;
  const std::string dom = read_file(dom_file.string());
  // Console errors (uncaught exceptions, failed loads) go to the log.
  EXPECT_EQ(log.find("Uncaught"), std::string::npos) << log;
  EXPECT_EQ(log.find("ERR_FILE_NOT_FOUND"), std::string::npos) << log;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(dom, m, std::regex("<body([^>]*)>"))) << dom.substr(0, 2000);
  const std::string body = m[1];
  EXPECT_NE(body.find("data-errors=\"0\""), std::string::npos) << body;
  EXPECT_NE(body.find("data-rendered=\"gallery\""), std::string::npos) << body;
  EXPECT_NE(body.find("data-panels=\"" + std::to_string(nouns) + "\""), std::string::npos) << body;
  EXPECT_NE(body.find("data-images=\"3\""), std::string::npos) << body;
  EXPECT_NE(body.find("data-images-loaded=\"3\""), std::string::npos) << body;
  EXPECT_EQ(count(dom, "class=\"noun-panel\""), static_cast<size_t>(nouns));
  EXPECT_GE(count(dom, "<canvas class=\"map\""), static_cast<size_t>(nouns));
  EXPECT_GE(count(dom, "<svg"), 2u);
  EXPECT_GE(count(dom, "class=\"bar\""), 2u);
  // The screenshot, kept for people to look at.
  const fs::path artefacts = fs::path(MMN_BINARY).parent_path() / "test-artifacts";
  fs::create_directories(artefacts);
  const fs::path shot = artefacts / "report.png";
  fs::remove(shot);
  ASSERT_EQ(test::run_cmd(browser + flags + "--window-size=1280,2400 --screenshot=" + shot.string() + " file://" +
                              out.string(),
                          &log),
            0)
      << log;
  ASSERT_TRUE(fs::exists(shot)) << log;
  const ImageU8 png = load_image(shot.string());
  EXPECT_EQ(png.width, 1280);
}
