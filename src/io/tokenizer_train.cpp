#include "io/tokenizer_train.h"

#include <sentencepiece_trainer.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "util/error.h"

namespace mmn {

std::string train_sentencepiece(const std::vector<std::string>& sentences, int vocab_size, bool byte_fallback) {
  namespace fs = std::filesystem;
  fs::path tmp = fs::temp_directory_path() / ("mmn-spm-" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  std::string corpus;
  for (auto& s : sentences) corpus += s + "\n";
  write_file_atomic((tmp / "corpus.txt").string(), corpus);
  const std::string args = "--input=" + (tmp / "corpus.txt").string() + " --model_prefix=" + (tmp / "sp").string() +
                           " --model_type=bpe --vocab_size=" + std::to_string(vocab_size) +
                           " --hard_vocab_limit=false --byte_fallback=" + (byte_fallback ? "true" : "false") +
                           " --split_digits=true"
                           " --character_coverage=1.0 --normalization_rule_name=identity"
                           " --remove_extra_whitespaces=false --add_dummy_prefix=true"
                           " --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --minloglevel=2";
  // The trainer logs its command line to stderr whatever --minloglevel says.
  std::fflush(stderr);
  const int saved = ::dup(2);
  const int devnull = ::open("/dev/null", O_WRONLY);
  if (devnull >= 0) ::dup2(devnull, 2);
  auto st = sentencepiece::SentencePieceTrainer::Train(args);
  if (saved >= 0) ::dup2(saved, 2), ::close(saved);
  if (devnull >= 0) ::close(devnull);
  std::string model;
  if (st.ok()) model = read_file((tmp / "sp.model").string());
  std::error_code ec;
  fs::remove_all(tmp, ec);
  if (!st.ok()) fail("SentencePiece training failed: ", st.ToString());
  return model;
}

void write_hf_tokenizer(const std::string& dir, const std::string& model_proto,
                        const std::map<std::string, int>& added_tokens) {
  namespace fs = std::filesystem;
  using nlohmann::json;
  write_file_atomic((fs::path(dir) / "tokenizer.model").string(), model_proto);
  json decoder = json::object();
  auto special = [](const std::string& s) {
    return json{{"content", s}, {"lstrip", false}, {"normalized", false}, {"rstrip", false},
                {"single_word", false}, {"special", true}};
  };
  decoder["0"] = special("<unk>");
  decoder["1"] = special("<s>");
  decoder["2"] = special("</s>");
  for (auto& [name, id] : added_tokens) decoder[std::to_string(id)] = special(name);
  json cfg = {{"add_bos_token", true},      {"add_eos_token", false},        {"added_tokens_decoder", decoder},
              {"bos_token", "<s>"},         {"eos_token", "</s>"},           {"unk_token", "<unk>"},
              {"legacy", false},            {"clean_up_tokenization_spaces", false},
              {"tokenizer_class", "LlamaTokenizer"}, {"model_max_length", 4096}};
  if (added_tokens.count("<pad>")) cfg["pad_token"] = "<pad>";
  write_file_atomic((fs::path(dir) / "tokenizer_config.json").string(), cfg.dump(2) + "\n");
  json smap = {{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"}};
  if (added_tokens.count("<pad>")) smap["pad_token"] = "<pad>";
  write_file_atomic((fs::path(dir) / "special_tokens_map.json").string(), smap.dump(2) + "\n");
  json added = json::object();
  for (auto& [name, id] : added_tokens) added[name] = id;
  write_file_atomic((fs::path(dir) / "added_tokens.json").string(), added.dump(2) + "\n");
}

}  // namespace mmn
