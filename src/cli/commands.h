// Each CLI command lives in its own cmd_*.cpp and registers itself on the app.
#pragma once
#include <CLI/CLI.hpp>

namespace mmn::cli {

void register_caption(CLI::App& app);
void register_make_random(CLI::App& app);
void register_shapes(CLI::App& app);
void register_train(CLI::App& app);
void register_find(CLI::App& app);
void register_merge(CLI::App& app);
void register_groundtruth(CLI::App& app);
void register_probe(CLI::App& app);
void register_nouns(CLI::App& app);
void register_metrics(CLI::App& app);
void register_perturb(CLI::App& app);
void register_edit(CLI::App& app);
void register_eval_edit(CLI::App& app);
void register_report(CLI::App& app);
void register_quantize(CLI::App& app);

}  // namespace mmn::cli
