// mmneuron nouns: the nouns method.md §3 finds in each text, as JSON
// ([["horse","beach"], …], one list per text, surface words in caption order).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "neurons/nouns.h"
#include "neurons/wordnet.h"

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
    for (auto& text : a->texts) {
      nlohmann::json list = nlohmann::json::array();
      for (auto& n : find_nouns(wn, text)) list.push_back(a->lemmas ? n.lemma : n.surface);
      out.push_back(std::move(list));
    }
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  });
}

}  // namespace mmn::cli
