// mmneuron train: trains the small shapes LLaVA (work in progress).
#include "cli/commands.h"
#include "util/error.h"

namespace mmn::cli {

void register_train(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("train", "Train a small LLaVA on the shapes world");
  cmd->callback([] { fail("train: not implemented yet"); });
}

}  // namespace mmn::cli
