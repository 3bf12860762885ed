// mmneuron: find, explain and edit multi-modal neurons.
#include <cstdio>
#include <exception>
#include <string>

#include "cli/commands.h"
#include "util/error.h"

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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mmneuron " MMN_VERSION " - find, explain and edit multi-modal neurons in vision-language transformers"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "mmneuron " MMN_VERSION);
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
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "error: %s (see --help)\n", e.what());
    return 2;
  } catch (const mmn::Error& e) {
    std::fprintf(stderr, "error: %s\n", one_line(e.what()).c_str());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", one_line(e.what()).c_str());
    return 1;
  }
  return 0;
}
