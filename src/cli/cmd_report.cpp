// mmneuron report RUN [--out FILE.html]: one self-contained HTML file for a
// find run (report/html_report.h).
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "cli/option_checks.h"
#include "io/atomic_file.h"
#include "report/html_report.h"
#include "util/error.h"

namespace mmn::cli {

namespace fs = std::filesystem;

void register_report(CLI::App& app) {
  struct Args {
    ReportOptions opt;
    std::string out;
    bool force = false, quiet = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "report", "Write one self-contained HTML report of a find run (with its metrics and perturbation results)");
  cmd->add_option("run", a->opt.run, "A find run directory")->required();
  cmd->add_option("--out", a->out, "The HTML file to write (default: RUN/report.html)");
  cmd->add_option("--page-size", a->opt.page_size, "Images per page of the gallery")
      ->capture_default_str()
      ->check(int_range(1, 1000));
  cmd->add_option("--neurons", a->opt.neurons_per_noun, "Rows of each noun's neuron table")
      ->capture_default_str()
      ->check(int_range(1, 100));
  cmd->add_flag("--force", a->force, "Overwrite --out");
  cmd->add_flag("--quiet", a->quiet, "No progress output");
  cmd->callback([a] {
    const std::string out = a->out.empty() ? (fs::path(a->opt.run) / "report.html").string() : a->out;
    std::error_code ec;
    if (fs::exists(out, ec) && !a->force) fail(out, ": already exists (use --force to overwrite)");
    if (fs::is_directory(out, ec)) fail(out, ": is a directory, not an HTML file");
    a->opt.show_progress = !a->quiet;
    const std::string html = build_report(a->opt);
    write_file_atomic(out, html);
    std::printf("wrote %s (%.1f MB)\n", out.c_str(), static_cast<double>(html.size()) / 1e6);
  });
}

}  // namespace mmn::cli
