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

namespace {

// Feeds the trainer the corpus line by line, as its own reader of an --input
// file would (a sentence holding a line break is two lines there too), so that
// no temporary file is needed and the model proto records no temporary path:
// the trainer copies --input and --model_prefix into the TrainerSpec it saves,
// which made tokenizer.model differ from run to run.
class LineIterator : public sentencepiece::SentenceIterator {
 public:
  explicit LineIterator(const std::vector<std::string>& sentences) {
    for (const std::string& s : sentences) {
      size_t from = 0;
      for (size_t nl; (nl = s.find('\n', from)) != std::string::npos; from = nl + 1)
        lines_.push_back(s.substr(from, nl - from));
      lines_.push_back(s.substr(from));
    }
  }
  bool done() const override { return i_ >= lines_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return lines_[i_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  std::vector<std::string> lines_;
  size_t i_ = 0;
};

}  // namespace

std::string train_sentencepiece(const std::vector<std::string>& sentences, int vocab_size, bool byte_fallback) {
  const std::string args = "--model_type=bpe --vocab_size=" + std::to_string(vocab_size) +
                           " --hard_vocab_limit=false --byte_fallback=" + (byte_fallback ? "true" : "false") +
                           " --split_digits=true"
                           " --character_coverage=1.0 --normalization_rule_name=identity"
                           " --remove_extra_whitespaces=false --add_dummy_prefix=true"
                           " --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --minloglevel=2";
  LineIterator lines(sentences);
  std::string model;
  // The trainer logs its command line to stderr whatever --minloglevel says.
  std::fflush(stderr);
  const int saved = ::dup(2);
  const int devnull = ::open("/dev/null", O_WRONLY);
  if (devnull >= 0) ::dup2(devnull, 2);
  auto st = sentencepiece::SentencePieceTrainer::Train(args, &lines, &model);
  if (saved >= 0) ::dup2(saved, 2), ::close(saved);
  if (devnull >= 0) ::close(devnull);
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
