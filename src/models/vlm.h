// What every vision-language family exposes to the rest of mmneuron: image
// preprocessing and encoding into LLM-space tokens, the prompt with the image
// spliced in, the LLaMA decoder and its tokenizer. neurons/ and cli/ are
// written against this interface only.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "io/image.h"
#include "io/safetensors.h"
#include "io/tokenizer.h"
#include "models/layout.h"
#include "models/llama.h"

namespace mmn {

// Named float arrays recorded while encoding an image (for --dump and tests):
// e.g. "vision_hidden_states" [Lv+1, 1+P, Dv], "image_features" [P, D].
// Integer arrays (token ids, modality flags) go to `ints` and are dumped as int64.
struct Trace {
  struct Array {
    std::string name;
    std::vector<int64_t> shape;
    std::vector<float> data;
    bool is_int = false;
    std::vector<int64_t> ints;  // when is_int
  };
  std::vector<Array> arrays;
  void add(std::string name, std::vector<int64_t> shape, std::vector<float> data);
  void add_ints(std::string name, std::vector<int64_t> shape, std::vector<int64_t> data);
  const Array* find(const std::string& name) const;
};

// The merged input of the language model for one image and prompt.
struct PromptInputs {
  std::vector<int32_t> prompt_ids;  // tokenized prompt with one image placeholder (as the reference's input_ids)
  std::vector<int32_t> merged_ids;  // one id per LLM row; image rows carry the placeholder id
  std::vector<float> embeds;        // [seq_len, D]
  int64_t seq_len = 0;
  int64_t image_pos0 = 0;           // first image row
  int64_t image_tokens = 0;         // number of image rows
  std::vector<uint8_t> visual;      // per row: 1 for image rows (used by modality-adaptive decoders)
};

// Reorders the image rows of in.embeds: row image_pos0 + p gets image token
// perm[p] (the reference's --shuffle control). Checks perm is a permutation.
void permute_image_tokens(PromptInputs& in, const std::vector<int64_t>& perm);

struct PromptText {
  std::string query = "Describe the image in few words.";
  std::string prefix = "An image of";
};

class VisionLanguageModel {
 public:
  virtual ~VisionLanguageModel() = default;
  virtual std::string family() const = 0;  // "llava", "instructblip", "mplug-owl2"
  // Full prompt text with the image placeholder (before tokenization).
  virtual std::string prompt(const PromptText& p) const = 0;
  // The checkpoint's preprocessor_config.json applied to an image; checks the
  // result has the vision tower's input size.
  PreprocessedImage preprocess(const ImageU8& img) const;
  int input_size() const { return input_size_; }
  // Image → its prompt-independent encoding, which build_inputs consumes: the
  // LLM-space tokens [image_tokens(), D] for LLaVA and mPLUG-Owl2; for
  // InstructBLIP, whose Q-Former reads the instruction, the vision tower output
  // (the Q-Former and projection then run in build_inputs). trace (optional)
  // records intermediates.
  virtual std::vector<float> encode_image(const PreprocessedImage& px, Trace* trace) const = 0;
  virtual int64_t image_tokens() const = 0;
  // Side of the square patch grid behind the image tokens, 0 when the tokens
  // are queries without a spatial layout.
  virtual int grid_side() const = 0;
  // Tokenizes the prompt and splices the image tokens in.
  virtual PromptInputs build_inputs(const PromptText& p, const std::vector<float>& image_features,
                                    Trace* trace) const = 0;

  const std::string& dir() const { return dir_; }
  const LlamaDecoder& decoder() const { return *decoder_; }
  LlamaDecoder& decoder() { return *decoder_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const SafetensorsCheckpoint& checkpoint() const { return ck_; }
  const std::vector<int32_t>& eos_ids() const { return eos_ids_; }
  const ImageProcessorConfig& image_processor() const { return image_processor_; }
  // The separate vision tower checkpoint the model was loaded with (the original
  // LLaVA layout), "" when the tower is inside the checkpoint. Runs and edits
  // record it so later commands load the same model.
  const std::string& vision_tower_dir() const { return vision_tower_dir_; }

 protected:
  std::string dir_, vision_tower_dir_;
  SafetensorsCheckpoint ck_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<LlamaDecoder> decoder_;
  std::vector<int32_t> eos_ids_;
  ImageProcessorConfig image_processor_;
  int input_size_ = 0;  // square input side of the vision tower
  // Reads generation_config.json's eos_token_id (int or list), else `fallback`.
  void load_eos(int32_t fallback);
  // Loads dir's tokenizer; more tokens than the decoder's vocabulary is an error.
  void load_tokenizer(const std::string& dir);
};

// Splices image features into the embedded prompt at the single placeholder id.
// Shared by the families whose prompt carries one image placeholder token.
PromptInputs splice_image(const LlamaDecoder& dec, std::vector<int32_t> ids, int32_t placeholder,
                          const std::vector<float>& image_features, int64_t n_image, const std::string& what);

// A 16-hex-digit identity of a model's weights, cheap to compute: FNV-1a over
// config.json and the bytes of the language model's unembedding, first and
// last embedding rows and first row of every down_proj. Two checkpoints that
// differ only in some value vectors (an exported edit) differ here when the
// edit touches a first row; runs and edits record it to refuse mixing models.
std::string model_fingerprint(const VisionLanguageModel& model);

// How to load a checkpoint beyond its directory.
struct LoadOptions {
  std::string vision_tower;  // a separate vision tower's directory (the original LLaVA layout), "" = look it up
};

// Detects the family from <dir>/config.json and loads it. Throws mmn::Error.
std::unique_ptr<VisionLanguageModel> load_model(const std::string& dir, const LoadOptions& opt = {});

// Every tensor a checkpoint with this config.json holds, in the family's order,
// from the same layout walks loading uses (make-random and the training
// initialisation write exactly these). The original LLaVA layout keeps its
// vision tower in a separate checkpoint, described by tower_config (its
// config.json) into tower_tensors. The unembedding is listed unless the config
// ties it to the embeddings.
struct CheckpointLayout {
  std::vector<TensorDesc> tensors, tower_tensors;
};
CheckpointLayout describe_checkpoint(const JsonFile& config, const JsonFile* tower_config = nullptr);

}  // namespace mmn
