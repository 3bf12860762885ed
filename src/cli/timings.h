// llama.cpp-style timings after a caption (caption, and per image in find):
//   image encode time =      12.34 ms /   576 image rows
//   prompt eval time  =     123.45 ms /   590 tokens (    0.21 ms per token,  4779.26 tokens per second)
//   eval time         =      45.67 ms /    11 runs   (    4.15 ms per token,   240.86 tokens per second)
//   total time        =     181.46 ms /   602 tokens
// on stderr (stdout stays the command's output), or one {"event": "timings"}
// line with --log-json.
#pragma once
#include <cstdint>
#include <string>

namespace mmn::cli {

struct CaptionTimings {
  double load_s = -1;         // loading the model; < 0: not shown (find loads it once)
  double encode_s = 0;        // preprocessing, the vision tower and the projector
  int64_t image_rows = 0;     // the language model's image rows it made
  double prefill_s = 0;       // the prompt's forward pass
  int64_t prompt_tokens = 0;  // its rows: text tokens and image rows
  double decode_s = 0;        // the greedy steps
  int64_t decode_runs = 0;    // one-row forward passes (the first token comes from the prefill)
  int64_t generated = 0;      // generated tokens
  double rank_s = -1;         // find: ranking the neurons of every noun; < 0: not shown
  int64_t ranked = 0;         // what was ranked: nouns, or tokens with find --tokens all
  std::string ranked_unit = "nouns";
};

// `command`: "caption" or "find"; `image`: what the lines are about (find
// prefixes each line with it).
void print_timings(const std::string& command, const std::string& image, const CaptionTimings& t);

}  // namespace mmn::cli
