// mmneuron caption: greedy captioning of one image, with optional JSON output
// and a dump of every intermediate array under the golden file names.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/default_model.h"
#include "cli/edit_args.h"
#include "cli/option_checks.h"
#include "cli/timings.h"
#include "io/image.h"
#include "io/npy.h"
#include "kernels/threading.h"
#include "models/generate.h"
#include "models/intervention.h"
#include "models/vlm.h"
#include "neurons/recorders.h"
#include "neurons/score.h"
#include "util/error.h"

namespace mmn::cli {

namespace {

struct CaptionArgs {
  std::string model, image, query = PromptText{}.query, prefix = PromptText{}.prefix, dump, ablate, hook_dir, vision_tower;
  std::vector<std::string> hooks, edits;
  int max_new_tokens = 50;
  int threads = 0;
  std::string compute = "exact";
  bool json = false, quiet = false;
};

void write_dump(const std::string& dir, const VisionLanguageModel& model, const PreprocessedImage& px,
                const Trace& trace, const PromptInputs& in, const GenerateResult& gen,
                const PrefillRowsRecorder& layer_out, const PredictingRowRecorder& act_steps,
                const PredictingRowRecorder& post_steps, const PrefillRowsRecorder* act_img,
                const PrefillRowsRecorder* post_img) {
  namespace fs = std::filesystem;
  auto path = [&](const std::string& name) { return (fs::path(dir) / (name + ".npy")).string(); };
  const LlamaConfig& c = model.decoder().config();
  const int64_t L = c.n_layers, I = c.intermediate, D = c.hidden, V = c.vocab;
  const int64_t T = static_cast<int64_t>(gen.generated.size());
  write_npy(path("image_resized_uint8"), px.resized.rgb.data(), {px.resized.height, px.resized.width, 3});
  if (px.center_cropped)
    write_npy(path("image_cropped_uint8"), px.cropped.rgb.data(), {px.cropped.height, px.cropped.width, 3});
  for (const auto& a : trace.arrays) {
    if (a.is_int) write_npy(path(a.name), a.ints.data(), a.shape);
    else write_npy(path(a.name), a.data.data(), a.shape);
  }
  std::vector<int64_t> ids(in.prompt_ids.begin(), in.prompt_ids.end());
  write_npy(path("input_ids"), ids.data(), {static_cast<int64_t>(ids.size())});
  write_npy(path("llm_layer_outputs_prefill"), layer_out.data().data(), {L, in.seq_len, D});
  write_npy(path("llm_final_norm_prefill"), gen.final_norm_prefill.data(), {in.seq_len, D});
  write_npy(path("logits_prefill_last"), gen.step_logits[0].data(), {V});
  std::vector<float> flat;
  for (auto& l : gen.step_logits) flat.insert(flat.end(), l.begin(), l.end());
  write_npy(path("logits_steps"), flat.data(), {T, V});
  std::vector<int64_t> gids(gen.generated.begin(), gen.generated.end());
  write_npy(path("generated_ids"), gids.data(), {T});
  auto stack = [&](const PredictingRowRecorder& r) {
    std::vector<float> out;
    for (int s = 0; s < T; ++s) out.insert(out.end(), r.step(s).begin(), r.step(s).end());
    return out;
  };
  std::vector<float> act = stack(act_steps), post = stack(post_steps);
  write_npy(path("act_fn_gate_steps"), act.data(), {T, L, I});
  write_npy(path("down_proj_input_steps"), post.data(), {T, L, I});
  if (act_img) {
    write_npy(path("act_fn_gate_image_positions_prefill"), act_img->data().data(), {L, in.image_tokens, I});
    write_npy(path("down_proj_input_image_positions_prefill"), post_img->data().data(), {L, in.image_tokens, I});
  }
  std::vector<std::vector<float>> proj = token_unembed_proj(model.decoder(), gen.generated);
  std::vector<float> tup, s_act, s_post;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t f = 0; f < L * I; ++f) {
      tup.push_back(proj[t][f]);
      s_act.push_back(act[t * L * I + f] * proj[t][f]);
      s_post.push_back(post[t * L * I + f] * proj[t][f]);
    }
  write_npy(path("token_unembed_proj"), tup.data(), {T, L, I});
  write_npy(path("scores_act_fn_gate"), s_act.data(), {T, L, I});
  write_npy(path("scores_down_proj_input"), s_post.data(), {T, L, I});
}

void run_caption(const CaptionArgs& a) {
  using clock = std::chrono::steady_clock;
  init_threads(a.threads);
  init_compute(a.compute);
  auto t0 = clock::now();
  std::unique_ptr<VisionLanguageModel> model = load_cli_model(a.model, a.vision_tower);
  const double load_s = std::chrono::duration<double>(clock::now() - t0).count();

  ImageU8 img = load_image(a.image);
  const bool dump = !a.dump.empty();
  Trace trace;
  const ModelInput input = prepare_input(*model, img, PromptText{a.query, a.prefix}, dump ? &trace : nullptr);
  const PromptInputs& in = input.in;

  const LlamaConfig& c = model->decoder().config();
  // Interventions first: every recorder then sees the intervened activations.
  std::unique_ptr<NeuronIntervention> edited = load_edits(*model, a.edits);
  NeuronIntervention iv = edited ? *edited : NeuronIntervention(c.n_layers, c.hidden, c.intermediate);
  if (!a.ablate.empty())
    for (NeuronRef n : parse_neuron_list(a.ablate, c.n_layers, c.intermediate)) iv.ablate(n);
  std::vector<std::unique_ptr<PointRecorder>> points;
  for (auto& name : a.hooks) {
    Hook h;
    int layer;
    parse_hook_name_or_fail(name, c.n_layers, &h, &layer);
    points.push_back(std::make_unique<PointRecorder>(h, layer));
  }
  const std::string hook_dir = a.hook_dir.empty() ? a.dump : a.hook_dir;
  if (!points.empty() && hook_dir.empty()) fail_usage("--hook needs --hook-dir DIR (or --dump DIR) to write into");
  GenerateOptions opt;
  opt.max_new_tokens = a.max_new_tokens;
  PrefillRowsRecorder layer_out(Hook::ResidPost, c.n_layers, c.hidden, 0, in.seq_len);
  PredictingRowRecorder act_steps(Hook::MlpAct, c.n_layers, c.intermediate);
  PredictingRowRecorder post_steps(Hook::MlpPost, c.n_layers, c.intermediate);
  std::unique_ptr<PrefillRowsRecorder> act_img, post_img;
  if (dump) {
    opt.keep_step_logits = true;
    opt.keep_final_norm_prefill = true;
    opt.sinks = {&layer_out, &act_steps, &post_steps};
    if (in.image_tokens > 0) {
      act_img = std::make_unique<PrefillRowsRecorder>(Hook::MlpAct, c.n_layers, c.intermediate, in.image_pos0,
                                                      in.image_tokens);
      post_img = std::make_unique<PrefillRowsRecorder>(Hook::MlpPost, c.n_layers, c.intermediate, in.image_pos0,
                                                       in.image_tokens);
      opt.sinks.push_back(act_img.get());
      opt.sinks.push_back(post_img.get());
    }
  }
  if (!iv.empty()) opt.sinks.insert(opt.sinks.begin(), &iv);
  for (auto& p : points) opt.sinks.push_back(p.get());
  GenerateResult gen = generate(*model, in, opt);
  for (size_t i = 0; i < points.size(); ++i) {
    std::filesystem::create_directories(hook_dir);
    write_npy((std::filesystem::path(hook_dir) / (a.hooks[i] + ".npy")).string(), points[i]->data().data(),
              {points[i]->rows(), points[i]->width()});
  }
  if (dump)
    write_dump(a.dump, *model, input.image, trace, in, gen, layer_out, act_steps, post_steps, act_img.get(),
               post_img.get());

  if (a.json)
    std::cout << caption_json(model->tokenizer(), input, gen, load_s).dump() << std::endl;
  else
    std::cout << caption_text(model->tokenizer(), gen.generated) << std::endl;
  if (!a.quiet) {
    CaptionTimings t;
    t.load_s = load_s;
    t.encode_s = input.encode_s;
    t.image_rows = in.image_tokens;
    t.prefill_s = gen.prefill_s;
    t.prompt_tokens = gen.prefill_tokens;
    t.decode_s = gen.decode_s;
    t.decode_runs = gen.decode_tokens;
    t.generated = static_cast<int64_t>(gen.generated.size());
    print_timings("caption", a.image, t);
  }
}

}  // namespace

void register_caption(CLI::App& app) {
  auto a = std::make_shared<CaptionArgs>();
  CLI::App* cmd = app.add_subcommand("caption", "Caption one image greedily (prompt templates per method.md §2)");
  cmd->add_option("--model", a->model, "Checkpoint directory, Hugging Face layout (default: the bundled shapes model)");
  cmd->add_option("--vision-tower", a->vision_tower, "Vision tower directory of an original-layout LLaVA checkpoint");
  cmd->add_option("--image", a->image, "Image file (PNG or JPEG)")->required();
  cmd->add_option("--query", a->query, "User query")->capture_default_str();
  cmd->add_option("--prefix", a->prefix, "Assistant prefix the caption continues")->capture_default_str();
  cmd->add_option("--max-new-tokens", a->max_new_tokens, "Maximum number of generated tokens")
      ->capture_default_str()
      ->check(int_range(1, kMaxNewTokens));
  cmd->add_flag("--json", a->json, "Print ids, caption and timings as one JSON object");
  cmd->add_flag("--quiet", a->quiet, "No timings on stderr");
  cmd->add_option("--dump", a->dump, "Write every intermediate array as .npy into this directory");
  cmd->add_option("--ablate", a->ablate, "Zero these FFN neurons (their value vectors) at every row and step: L:U[,L:U…]");
  cmd->add_option("--hook", a->hooks,
                  "Record a named hook point (e.g. blocks.3.mlp.hook_post) at every row: writes NAME.npy [rows, width]; repeatable");
  cmd->add_option("--edit", a->edits, "Apply this knowledge edit at run time (repeatable: edits compose)");
  cmd->add_option("--hook-dir", a->hook_dir, "Directory for --hook arrays (default: the --dump directory)");
  add_threads_option(cmd, a->threads);
  add_compute_option(cmd, a->compute);
  cmd->callback([a] { run_caption(*a); });
}

}  // namespace mmn::cli
