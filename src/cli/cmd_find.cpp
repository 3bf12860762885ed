// mmneuron find: the paper's procedure end to end on images or a dataset.
// Writes RUN/<image-id>/result.json (+ neurons.npy, heatmaps) and RUN/run.json;
// rerunning resumes (finished images are skipped); every file is atomic.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/default_model.h"
#include "cli/edit_args.h"
#include "cli/find_output.h"
#include "cli/option_checks.h"
#include "cli/timings.h"
#include "io/atomic_file.h"
#include "io/dataset.h"
#include "io/image.h"
#include "io/output_dir.h"
#include "kernels/threading.h"
#include "neurons/find.h"
#include "neurons/stats.h"
#include "neurons/wordnet.h"
#include "util/error.h"
#include "util/progress.h"

namespace mmn::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct FindArgs {
  std::string model, vision_tower, images_dir, dataset, images_root, out, activation = "act", method = "score", tokens = "nouns", nouns, shard = "0/1";
  std::vector<std::string> images, edits;
  int64_t top_k = 1000, report = 100, start = 0, end = -1;
  int max_new_tokens = 50, threads = 0, random_baseline = 0;
  std::string compute = "exact";
  int64_t shuffle_seed = -1;
  bool heatmaps = false, fold_norm_gain = false, gradient_baseline = false, quiet = false, force = false;
  std::string query = PromptText{}.query, prefix = PromptText{}.prefix;
};

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  for (std::string& w : split_list(s))
    if (!w.empty()) out.push_back(std::move(w));
  return out;
}

// One line per image on stdout: the caption, then each noun's top neurons.
void print_summary(const std::string& id, const ImageFindResult& r, Explainer& ex, int per_noun) {
  std::string line = id + ": \"" + r.caption + "\"";
  for (const auto& c : r.concepts) {
    if (per_noun == 0) break;
    line += "\n    " + c.word + ":";
    const size_t n = std::min<size_t>(static_cast<size_t>(per_noun), c.neurons.size());
    std::vector<std::pair<int, int>> ids;
    for (size_t i = 0; i < n; ++i) ids.emplace_back(c.neurons[i].layer, c.neurons[i].unit);
    std::vector<std::vector<int32_t>> tops = ex.explain(ids);
    for (size_t i = 0; i < n; ++i) {
      char buf[64];
      std::snprintf(buf, sizeof buf, " L%d.U%d (%.3g) [", c.neurons[i].layer, c.neurons[i].unit, c.neurons[i].score);
      line += buf;
      for (size_t t = 0; t < std::min<size_t>(3, tops[i].size()); ++t) {
        if (t) line += ",";
        line += ex.token_text(tops[i][t]);
      }
      line += "]";
    }
  }
  if (!r.skipped_nouns.empty()) {
    line += "\n    not among the generated tokens:";
    for (auto& w : r.skipped_nouns) line += " " + w;
  }
  log_line(stdout, line);
}

// Why an analysed image gave no noun to rank (empty when it gave some).
std::string why_nothing_ranked(const ImageFindResult& r, const FindOptions& opt) {
  if (!r.concepts.empty()) return "";
  if (opt.all_tokens) return "the caption is empty: nothing to rank";
  std::string words;
  for (auto& w : r.skipped_nouns) {
    if (!words.empty()) words += ", ";
    words += w;
  }
  if (!words.empty()) return "no noun of the caption (" + words + ") is a generated token: nothing ranked";
  if (!opt.nouns.empty()) return "the caption names none of --nouns: nothing ranked";
  return "the caption \"" + r.caption + "\" has no noun: nothing ranked";
}

void run_find(const FindArgs& a) {
  init_threads(a.threads);
  init_compute(a.compute);
  const int sources = !a.images.empty() + !a.images_dir.empty() + !a.dataset.empty();
  if (sources != 1) fail_usage("give exactly one of --image, --images or --dataset");
  int shard_i = 0, shard_n = 1;
  if (std::sscanf(a.shard.c_str(), "%d/%d", &shard_i, &shard_n) != 2)  // checked by shard_spec()
    fail_usage("--shard: expected i/N (e.g. 0/4), got '", a.shard, "'");
  FindRequest req;
  req.prompt = {a.query, a.prefix};
  req.max_new_tokens = a.max_new_tokens;
  req.top_k = a.top_k;
  req.report = a.report;
  req.activation = a.activation;
  req.method = a.method;
  req.tokens = a.tokens;
  req.gradient_baseline = a.gradient_baseline;
  req.fold_norm_gain = a.fold_norm_gain;
  req.heatmaps = a.heatmaps;
  req.nouns = split_commas(a.nouns);
  if (a.shuffle_seed >= 0) req.shuffle_seed = static_cast<uint64_t>(a.shuffle_seed);
  req.random_baseline = a.random_baseline;
  FindOptions opt = find_options(req, cli_spelling);

  std::vector<DatasetItem> all;
  if (!a.images.empty()) {
    for (auto& p : a.images) all.push_back({"", p, ""});
    assign_ids(all);
  } else if (!a.images_dir.empty()) {
    all = list_image_dir(a.images_dir);
  } else {
    all = load_dataset(a.dataset, a.images_root);
  }
  std::vector<DatasetItem> items = select_items(all, a.start, a.end, shard_i, shard_n);
  if (items.empty())
    fail_nothing_done("find: --start ", a.start, ", --end ", a.end, " and --shard ", a.shard, " select none of the ",
                      all.size(), " images: nothing to do");

  auto model = load_cli_model(a.model, a.vision_tower);
  if (opt.top_k > static_cast<int64_t>(model->decoder().config().n_layers) * model->decoder().config().intermediate)
    fail_usage("--top-k ", opt.top_k, " is larger than the model's ",
               static_cast<int64_t>(model->decoder().config().n_layers) * model->decoder().config().intermediate,
               " FFN neurons");
  std::unique_ptr<WordNet> wordnet;
  if (!opt.all_tokens && opt.nouns.empty()) wordnet = std::make_unique<WordNet>(WordNet::load());

  std::unique_ptr<NeuronIntervention> edit = load_edits(*model, a.edits);
  opt.edit = edit.get();
  RunInfo info = make_run_info(*model, opt, resolve_model_dir(a.model));
  // A run with edits is another model: record which (a resume with other edits is refused).
  info.json["options"]["edits"] = nlohmann::json::array();
  for (auto& e : a.edits)
    info.json["options"]["edits"].push_back(
        {{"dir", e}, {"values_hash", hash_string(read_file((fs::path(e) / "values.safetensors").string()))}});
  check_output_dir(a.out, a.force, "find run", "run.json");
  check_or_write_run_json(a.out, info, shard_i, shard_n);

  Explainer explainer(*model, opt.explain_tokens);
  // done: images handled (all kinds); analysed here: captioned and ranked in this
  // process, of which nothing_ranked gave no noun; before: finished by an earlier run.
  int64_t done = 0, before = 0, failed = 0, analysed = 0, nothing_ranked = 0, ranked = 0;
  std::unique_ptr<Progress> bar;
  if (!a.quiet) bar = std::make_unique<Progress>("find", static_cast<int64_t>(items.size()), "images");
  auto progress = [&](const std::string& note) {
    ++done;
    if (bar) bar->update(done, note);
  };
  for (const auto& item : items) {
    const fs::path dir = fs::path(a.out) / item.id;
    if (fs::exists(dir / "result.json")) {
      ++before;
      if (bar) bar->skipped();
      progress(item.id + " (done before)");
      continue;
    }
    ImageU8 img;
    try {
      img = load_image(item.image_path);
      model->preprocess(img);  // an image the preprocessor refuses is skipped like an unreadable one
    } catch (const Error& e) {
      // Unreadable images are logged and skipped; the run goes on.
      log_warning("skipping " + item.image_path + ": " + e.what());
      write_file_atomic((dir / "error.txt").string(), std::string(e.what()) + "\n");
      ++failed;
      progress(item.id + " (unreadable)");
      continue;
    }
    ImageFindResult r = find_neurons(*model, wordnet.get(), img, opt);
    write_image_outputs(dir.string(), item, *model, opt, r, explainer);
    ++analysed;
    ranked += static_cast<int64_t>(r.concepts.size());
    if (!a.quiet) {
      if (log_json())
        log_event({{"event", "image"}, {"image", item.id}, {"caption", r.caption}, {"ranked", r.concepts.size()},
                   {"skipped_nouns", r.skipped_nouns}});
      else
        print_summary(item.id, r, explainer, opt.all_tokens ? 0 : 3);
      CaptionTimings t;
      t.encode_s = r.encode_s;
      t.image_rows = r.image_tokens;
      t.prefill_s = r.prefill_s;
      t.prompt_tokens = r.prefill_tokens;
      t.decode_s = r.decode_s;
      t.decode_runs = r.decode_runs;
      t.generated = static_cast<int64_t>(r.generated_ids.size());
      t.rank_s = r.score_s;
      t.ranked = static_cast<int64_t>(r.concepts.size());
      t.ranked_unit = opt.all_tokens ? "tokens" : "nouns";
      print_timings("find", item.id, t);
    }
    const std::string why = why_nothing_ranked(r, opt);
    if (!why.empty()) {
      ++nothing_ranked;
      log_warning(item.id + " (" + item.image_path + "): " + why);
    }
    std::error_code ec;
    fs::remove(dir / "error.txt", ec);
    progress(item.id);
  }
  if (bar) bar->finish();
  // Nothing in the run at all: every image unreadable, or no caption gave a noun to rank.
  if (before == 0 && analysed == 0)
    fail_nothing_done("find: none of the ", failed, " images could be read (see ", a.out,
                      "/<id>/error.txt): nothing analysed");
  if (before == 0 && ranked == 0)
    fail_nothing_done("find: no caption of the ", analysed, " images analysed gave a noun to rank",
                      failed ? " (" + std::to_string(failed) + " more unreadable)" : std::string(),
                      ": nothing ranked; results in ", a.out);
  if (log_json()) {
    log_event({{"event", "summary"},
               {"command", "find"},
               {"analysed", analysed},
               {"without_nouns", nothing_ranked},
               {"done_before", before},
               {"unreadable", failed},
               {"out", a.out}});
  } else {
    std::string line = "find: " + std::to_string(analysed) + " images analysed";
    if (nothing_ranked) line += " (" + std::to_string(nothing_ranked) + " with no noun to rank)";
    line += ", " + std::to_string(before) + " already done, " + std::to_string(failed) + " unreadable";
    if (analysed == 0 && failed == 0) line += " (nothing to do)";
    log_line(stderr, line + "; results in " + a.out);
  }
}

}  // namespace

void register_find(CLI::App& app) {
  auto a = std::make_shared<FindArgs>();
  CLI::App* cmd = app.add_subcommand("find", "Find the multi-modal neurons of each noun of each caption");
  cmd->add_option("--model", a->model, "Checkpoint directory (default: the bundled shapes model)");
  cmd->add_option("--vision-tower", a->vision_tower, "Vision tower directory of an original-layout LLaVA checkpoint");
  cmd->add_option("--image", a->images, "Image file(s)");
  cmd->add_option("--images", a->images_dir, "Folder of images (.png/.jpg)");
  cmd->add_option("--dataset", a->dataset, "Dataset file: SBU-style JSON or JSONL {\"image\":…, \"caption\":…}");
  cmd->add_option("--images-root", a->images_root, "Folder the dataset's images are resolved against");
  cmd->add_option("--out", a->out, "Run directory (rerun to resume)")->required();
  cmd->add_flag("--force", a->force, "Start a run in a non-empty --out that holds no run");
  cmd->add_option("--top-k", a->top_k, "Neurons kept per noun (all of them in neurons.npy)")
      ->capture_default_str()
      ->check(int_at_least<int64_t>(1));
  cmd->add_option("--report", a->report,
                  "Of the top-k, how many result.json lists with their top tokens (logit lens)")
      ->capture_default_str()
      ->check(int_at_least<int64_t>(1));
  cmd->add_option("--activation", a->activation, "act = SiLU(gate) (the reference), swiglu = SiLU(gate)*up")
      ->capture_default_str();
  cmd->add_option("--method", a->method,
                  "score: the paper's gradient-free score; gradient: Z*dy/dZ max over image tokens (baseline)")
      ->capture_default_str();
  cmd->add_flag("--gradient-baseline", a->gradient_baseline,
                "Also rank by the gradient baseline and write its top-k as RUN/<id>/gradient.npy (for metrics)");
  cmd->add_flag("--fold-norm-gain", a->fold_norm_gain, "Multiply U[t] by the final RMSNorm weight");
  cmd->add_option("--tokens", a->tokens, "nouns (default) or all: every generated token")->capture_default_str();
  cmd->add_option("--nouns", a->nouns, "Comma-separated nouns to use instead of WordNet tagging");
  cmd->add_flag("--heatmaps", a->heatmaps, "Write activation heatmaps and masks over the image");
  cmd->add_option("--shuffle-image-tokens", a->shuffle_seed, "Permute the image tokens with this seed (control)")
      ->check(int_at_least<int64_t>(0));
  cmd->add_option("--random-baseline", a->random_baseline, "Also store N uniform and N layer-matched random neurons")
      ->capture_default_str()
      ->check(int_range(0, 1000000));
  cmd->add_option("--start", a->start, "First dataset index")->capture_default_str()->check(int_at_least<int64_t>(0));
  cmd->add_option("--end", a->end, "One past the last dataset index (-1 = all)")
      ->capture_default_str()
      ->check(int_at_least<int64_t>(-1));
  cmd->add_option("--shard", a->shard, "Process shard i of N (i/N)")->capture_default_str()->check(shard_spec());
  cmd->add_option("--max-new-tokens", a->max_new_tokens, "Maximum caption length")
      ->capture_default_str()
      ->check(int_range(1, kMaxNewTokens));
  cmd->add_option("--query", a->query, "User query")->capture_default_str();
  cmd->add_option("--prefix", a->prefix, "Assistant prefix")->capture_default_str();
  cmd->add_option("--edit", a->edits, "Apply this knowledge edit at run time (repeatable: edits compose)");
  cmd->add_flag("--quiet", a->quiet, "No progress bar, per-image summaries or timings");
  add_threads_option(cmd, a->threads);
  add_compute_option(cmd, a->compute);
  cmd->callback([a] { run_find(*a); });
}

}  // namespace mmn::cli
