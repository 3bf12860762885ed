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
  std::string format = "safetensors";  // or "bin": torch.save shards of at most 10 GB (+ index when several)
  std::string tokenizer_from;  // copy tokenizer files from this checkpoint dir (else train a small one)
  std::string out;
};

std::vector<std::string> random_presets();

// preprocessor_config.json of a CLIPImageProcessor for square inputs of `size`.
nlohmann::json clip_preprocessor_config(int64_t size);

// Writes config.json, preprocessor_config.json, generation_config.json, the
// tokenizer files and the weights into opt.out (the original LLaVA layout: its
// CLIP tower into the subdirectory mm_vision_tower names). Every tensor comes
// from the family's layout walk (describe_checkpoint). progress(done, total) is
// called as bytes are written.
void write_random_checkpoint(const RandomCheckpointOptions& opt,
                             const std::function<void(size_t, size_t)>& progress = {});

}  // namespace mmn
