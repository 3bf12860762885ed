// Random-weight checkpoints with real shapes and the real Hugging Face layout,
// streamed to disk with bounded memory, so tests and benchmarks need no
// downloads.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace mmn {

struct RandomCheckpointOptions {
  std::string preset;          // see random_presets()
  DType dtype = DType::BF16;
  uint64_t seed = 0;
  std::string tokenizer_from;  // copy tokenizer files from this checkpoint dir (else train a small one)
  std::string out;
};

std::vector<std::string> random_presets();

// preprocessor_config.json of a CLIPImageProcessor for square inputs of `size`.
nlohmann::json clip_preprocessor_config(int64_t size);

// Writes config.json, preprocessor_config.json, generation_config.json, the
// tokenizer files and model.safetensors into opt.out. progress(done, total) is
// called as bytes are written.
void write_random_checkpoint(const RandomCheckpointOptions& opt,
                             const std::function<void(size_t, size_t)>& progress = {});

}  // namespace mmn
