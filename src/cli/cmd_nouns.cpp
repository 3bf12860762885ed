// mmneuron nouns: the nouns method.md §3 finds in each text, as JSON
// ([["horse","beach"], …], one list per text, surface words in caption order).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "neurons/nouns.h"
#include "neurons/wordnet.h"
#include "util/error.h"
#include "util/progress.h"

namespace mmn::cli {

void register_nouns(CLI::App& app) {
  struct Args {
    std::vector<std::string> texts;
    bool lemmas = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "nouns", "Print the nouns found in each text as JSON (WordNet from $MMN_WORDNET_DIR or /usr/share/wordnet)");
  cmd->add_option("TEXT", a->texts, "Texts (captions)")->required();
  cmd->add_flag("--lemmas", a->lemmas, "Print the WordNet lemmas instead of the surface words");
  cmd->callback([a] {
    const WordNet wn = WordNet::load();
    nlohmann::json out = nlohmann::json::array();
    std::vector<size_t> without;  // texts with no noun
    for (size_t i = 0; i < a->texts.size(); ++i) {
      nlohmann::json list = nlohmann::json::array();
      for (auto& n : find_nouns(wn, a->texts[i])) list.push_back(a->lemmas ? n.lemma : n.surface);
      if (list.empty()) without.push_back(i);
      out.push_back(std::move(list));
    }
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    std::fflush(stdout);
    // Texts without a noun are named on stderr; when no text has one, nothing was found at all.
    auto quoted = [&](size_t i) {
      return "text " + std::to_string(i + 1) + " " +
             nlohmann::json(a->texts[i]).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    };
    if (without.size() == a->texts.size()) {
      if (a->texts.size() == 1) fail_nothing_done("nouns: ", quoted(0), " has no noun");
      fail_nothing_done("nouns: none of the ", a->texts.size(), " texts has a noun");
    }
    for (size_t i : without) log_warning("nouns: " + quoted(i) + " has no noun");
  });
}

}  // namespace mmn::cli
