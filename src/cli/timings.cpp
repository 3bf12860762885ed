#include "cli/timings.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "util/progress.h"

namespace mmn::cli {

namespace {

std::string fmt_line(const char* label, double s, const std::string& tail) {
  char b[96];
  std::snprintf(b, sizeof b, "%-17s = %10.2f ms", label, 1e3 * s);
  return b + tail;
}

// " / N what (x ms per token, y tokens per second)"; n/a when nothing ran.
std::string per_token(double s, int64_t n, const char* what) {
  char b[128];
  if (n > 0 && s > 0)
    std::snprintf(b, sizeof b, " / %5lld %-6s (%8.2f ms per token, %8.2f tokens per second)", static_cast<long long>(n),
                  what, 1e3 * s / static_cast<double>(n), static_cast<double>(n) / s);
  else
    std::snprintf(b, sizeof b, " / %5lld %-6s (%8s ms per token, %8s tokens per second)", static_cast<long long>(n), what,
                  "n/a", "n/a");
  return b;
}

}  // namespace

void print_timings(const std::string& command, const std::string& image, const CaptionTimings& t) {
  const double total = t.encode_s + t.prefill_s + t.decode_s + (t.rank_s > 0 ? t.rank_s : 0);
  const int64_t tokens = t.prompt_tokens + t.generated;
  if (log_json()) {
    nlohmann::json e = {{"event", "timings"},
                        {"command", command},
                        {"image", image},
                        {"image_encode_ms", 1e3 * t.encode_s},
                        {"image_rows", t.image_rows},
                        {"prompt_eval_ms", 1e3 * t.prefill_s},
                        {"prompt_tokens", t.prompt_tokens},
                        {"eval_ms", 1e3 * t.decode_s},
                        {"eval_runs", t.decode_runs},
                        {"generated_tokens", t.generated},
                        {"total_ms", 1e3 * total}};
    if (t.load_s >= 0) e["load_ms"] = 1e3 * t.load_s;
    if (t.rank_s >= 0) {
      e["rank_ms"] = 1e3 * t.rank_s;
      e["ranked"] = t.ranked;
      e["ranked_unit"] = t.ranked_unit;
    }
    log_event(e);
    return;
  }
  // One write for all the lines: a progress bar is cleared and redrawn once.
  const std::string p = command == "find" ? image + ": " : "";
  std::string out;
  auto add = [&](const std::string& line) { out += (out.empty() ? "" : "\n") + p + line; };
  char b[64];
  if (t.load_s >= 0) add(fmt_line("load time", t.load_s, ""));
  std::snprintf(b, sizeof b, " / %5lld image rows", static_cast<long long>(t.image_rows));
  add(fmt_line("image encode time", t.encode_s, b));
  add(fmt_line("prompt eval time", t.prefill_s, per_token(t.prefill_s, t.prompt_tokens, "tokens")));
  add(fmt_line("eval time", t.decode_s, per_token(t.decode_s, t.decode_runs, "runs")));
  if (t.rank_s >= 0) {
    std::snprintf(b, sizeof b, " / %5lld %s", static_cast<long long>(t.ranked), t.ranked_unit.c_str());
    add(fmt_line("rank time", t.rank_s, b));
  }
  std::snprintf(b, sizeof b, " / %5lld tokens", static_cast<long long>(tokens));
  add(fmt_line("total time", total, b));
  log_line(stderr, out);
}

}  // namespace mmn::cli
