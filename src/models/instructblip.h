// InstructBLIP in the Hugging Face InstructBlipForConditionalGeneration layout
// (Salesforce/instructblip-vicuna-7b): EVA ViT with post_layernorm, the
// instruction-aware Q-Former (BERT post-LN layers, query tokens, cross-attention
// every cross_attention_frequency layers, separate query/text FFNs), language
// projection, Vicuna decoder. The Q query embeddings are prepended before the
// BOS (`</s>`); there is no image placeholder.
#pragma once
#include <memory>

#include "io/wordpiece.h"
#include "models/vit.h"
#include "models/vlm.h"

namespace mmn {

// One BERT attention block, post-LN: ln(dense(attn(x → ctx)) + x).
struct BertAttention {
  LinearW q, k, v, dense;
  NormW ln;
};

// One BERT feed-forward block, post-LN: ln(out(act(in(x))) + x).
struct BertFfn {
  LinearW in, out;
  NormW ln;
};

struct QFormerLayer {
  BertAttention self;
  bool has_cross = false;
  BertAttention cross;     // queries → image embeddings
  BertFfn text, query;     // intermediate/output, intermediate_query/output_query
};

class InstructBlipModel : public VisionLanguageModel {
 public:
  static std::unique_ptr<InstructBlipModel> load(const std::string& dir, const JsonFile& config);
  // Sized from config.json; walk() then binds the tensors.
  InstructBlipModel(const JsonFile& config, bool tie_lm_head);
  // Every tensor of the checkpoint, in checkpoint order.
  void walk(LayoutWalk& w);

  std::string family() const override { return "instructblip"; }
  // "{query} {prefix}", fed to both the LLM and the Q-Former tokenizers.
  std::string prompt(const PromptText& p) const override;
  // Returns the vision tower output [1 + P, Dv] (post_layernorm applied): the
  // Q-Former needs the instruction, so it runs in build_inputs.
  std::vector<float> encode_image(const PreprocessedImage& px, Trace* trace) const override;
  int64_t image_tokens() const override { return n_query_; }
  int grid_side() const override { return 0; }
  PromptInputs build_inputs(const PromptText& p, const std::vector<float>& image_embeds,
                            Trace* trace) const override;

  const WordPieceTokenizer& qformer_tokenizer() const { return *qtok_; }
  // Q-Former over the image embeddings [1 + P, Dv] and the instruction ids →
  // query output [Q, Hq]. all_states (optional): [Lq + 1, Q + Tq, Hq].
  std::vector<float> qformer(const std::vector<float>& image_embeds, const std::vector<int32_t>& ids,
                             std::vector<float>* all_states) const;

 private:
  VitTower vision_;
  int64_t n_query_ = 0, q_hidden_ = 0, q_inter_ = 0, q_vocab_ = 0, q_max_pos_ = 0;
  int q_heads_ = 1;
  float q_eps_ = 1e-12f;
  Activation q_act_ = Activation::GeluErf;
  std::vector<float> query_tokens_;            // [Q, Hq]
  Weight word_emb_;                            // [Vq, Hq]
  std::vector<float> pos_emb_;                 // [max_pos, Hq]
  NormW emb_ln_;
  std::vector<QFormerLayer> qlayers_;
  LinearW lang_proj_;                          // [D, Hq]
  std::unique_ptr<WordPieceTokenizer> qtok_;
};

}  // namespace mmn
