// mmneuron quantize: an int8 copy of a checkpoint for big models on small
// machines (issue 13), in the spirit of llama.cpp's Q8_0.
//
// Format (docs/files.md): every used 2-D linear weight X.weight [N, K] of the
// language model, the vision tower, the projector / Q-Former / abstractor is
// stored as int8 values X.weight [N, K] plus X.weight_scale, F16
// [N, ceil(K/32)]: one scale per block of 32 consecutive input features,
//   d = max|w| / 127 over the block, rounded UP to the next F16 value,
//   q = round(w / d) (nearest, ties away from zero), so |q| ≤ 127 and
//   |w − q·d| ≤ d/2 for every element.
// Rounding d up (not to nearest) is what keeps |w/d| ≤ 127 for every block,
// including blocks so small that d is an F16 subnormal; the cost is a scale
// at most one F16 ulp (2⁻¹⁰ relative) coarser. Embeddings, the unembedding
// (lm_head), norms, biases, learned tokens and the patch convolution keep
// their dtype and bytes. The safetensors header's __metadata__ of every file
// says "quantization": "q8_0-block32" and "quantized_from": the source's
// model fingerprint; config.json and the tokenizer files are copied as they
// are; mmneuron_quantize.json records the run. The output loads with the
// ordinary --model DIR, memory-mapped (kernels read int8 directly).
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "io/safetensors.h"
#include "models/vlm.h"

namespace mmn {

inline constexpr const char* kQ8ScaleSuffix = "_scale";           // X.weight → X.weight_scale
inline constexpr const char* kQuantizationKey = "quantization";    // __metadata__ key
inline constexpr const char* kQ8Type = "q8_0-block32";             // the one type this build reads
inline constexpr const char* kQuantizedFromKey = "quantized_from"; // __metadata__: source fingerprint
inline constexpr const char* kQuantizeRecordFile = "mmneuron_quantize.json";

// Checks that int8 tensor t (which has a scale tensor) comes with a known
// quantization type in its file's metadata; one-line error naming file and tensor.
void check_quantization(const SafetensorsCheckpoint& ck, const TensorRef& t);

// True when the model's decoder runs on int8 weights (commands that rewrite
// value vectors refuse such models: "quantized checkpoint: edit the unquantized model").
bool is_quantized(const VisionLanguageModel& model);
// Fails with "DIR: quantized checkpoint: <what> the unquantized model" when it is.
void refuse_quantized(const VisionLanguageModel& model, const std::string& what);

struct QuantizeOptions {
  std::string out;
  bool force = false;
  // progress(bytes of weights done, total): quantized tensors count their source bytes.
  std::function<void(uint64_t, uint64_t)> progress;
};

struct QuantizeSummary {
  int64_t quantized = 0, kept = 0;  // tensors
  uint64_t bytes_in = 0, bytes_out = 0;  // the weight files
  std::string fingerprint;               // of the source
};

// Writes the quantized copy of `source` (a safetensors checkpoint, not
// already quantized) into opt.out, atomically (models/checkpoint_dir.h: a
// staging directory renamed into place; an existing non-empty OUT only with
// force; never onto the source). The source directory is only read.
QuantizeSummary quantize_checkpoint(const VisionLanguageModel& source, const QuantizeOptions& opt);

}  // namespace mmn
