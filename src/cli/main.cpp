// mmneuron: find, explain and edit multi-modal neurons.
#include <cstdio>
#include <cstring>
#include <exception>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "util/error.h"
#include "util/progress.h"

namespace {

// Messages quote names and values taken from input files; a newline or other
// control byte among them must not break the one-line "error: ..." contract.
std::string one_line(const char* what) {
  std::string s;
  for (const char* p = what; *p; ++p) {
    const unsigned char c = static_cast<unsigned char>(*p);
    if (c >= 0x20 && c != 0x7f) {
      s += *p;
    } else {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\x%02x", c);
      s += esc;
    }
  }
  return s;
}

// The one line of a failure: "error: <what>" (parse errors add a pointer to
// --help), or with --log-json {"event": "error", "message", "exit_code"}.
int report(int code, const char* what, bool parse_error = false) {
  if (mmn::log_json()) {
    mmn::log_event({{"event", "error"}, {"message", what}, {"exit_code", code}});
  } else {
    std::fprintf(stderr, "error: %s%s\n", one_line(what).c_str(), parse_error ? " (see --help)" : "");
  }
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mmneuron " MMN_VERSION " - find, explain and edit multi-modal neurons in vision-language transformers"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "mmneuron " MMN_VERSION);
  // Global flags may also follow the subcommand (mmneuron find … --log-json).
  app.fallthrough();
  bool log_json = false;
  app.add_flag("--log-json", log_json,
               "Log progress, timings, warnings and errors on stderr as one JSON object per line ({\"event\": …})");
  // Known before parsing, so that a parse error is reported as JSON too.
  for (int i = 1; i < argc && std::strcmp(argv[i], "--") != 0; ++i)
    if (std::strcmp(argv[i], "--log-json") == 0) mmn::set_log_json(true);
  mmn::cli::register_caption(app);
  mmn::cli::register_make_random(app);
  mmn::cli::register_shapes(app);
  mmn::cli::register_train(app);
  mmn::cli::register_find(app);
  mmn::cli::register_merge(app);
  mmn::cli::register_groundtruth(app);
  mmn::cli::register_probe(app);
  mmn::cli::register_nouns(app);
  mmn::cli::register_metrics(app);
  mmn::cli::register_perturb(app);
  mmn::cli::register_edit(app);
  mmn::cli::register_eval_edit(app);
  mmn::cli::register_report(app);
  mmn::cli::register_quantize(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return report(mmn::cli::kExitUsage, e.what(), true);
  } catch (const mmn::UsageError& e) {
    return report(mmn::cli::kExitUsage, e.what());
  } catch (const mmn::NothingDone& e) {
    return report(mmn::cli::kExitNothingDone, e.what());
  } catch (const mmn::Error& e) {
    return report(mmn::cli::kExitError, e.what());
  } catch (const std::bad_alloc&) {
    return report(mmn::cli::kExitError, "out of memory");
  } catch (const std::exception& e) {
    return report(mmn::cli::kExitError, e.what());
  }
  return mmn::cli::kExitOk;
}
