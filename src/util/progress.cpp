#include "util/progress.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <nlohmann/json.hpp>

namespace mmn {

namespace {
std::atomic<bool> g_json{false};
// Guards every write below and the bar shown on the terminal (at most one is
// drawn at a time: the innermost).
std::mutex g_mutex;
Progress* g_active = nullptr;

void write_event(const nlohmann::json& e) {
  const std::string s = e.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::fprintf(stderr, "%s\n", s.c_str());
  std::fflush(stderr);
}

double seconds_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
}  // namespace

void set_log_json(bool on) { g_json = on; }
bool log_json() { return g_json; }

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), tty_(::isatty(2) != 0), json_(log_json()) {
  start_ = last_ = std::chrono::steady_clock::now();
  if (tty_ && !json_) {
    std::lock_guard<std::mutex> lock(g_mutex);
    outer_ = g_active;
    g_active = this;
  }
}

Progress::~Progress() {
  if (finished_) return;
  if (std::uncaught_exceptions() > 0) {
    // Unwinding to an error message: no final line; a bar on the terminal is
    // cleared so that the message starts at the beginning of the line.
    std::lock_guard<std::mutex> lock(g_mutex);
    if (tty_ && !json_ && drawn_) {
      std::fputs("\r\033[K", stderr);
      std::fflush(stderr);
    }
    if (g_active == this) g_active = outer_;
    return;
  }
  if (done_ > 0) finish();
  else if (tty_ && !json_) {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_active == this) g_active = outer_;
  }
}

void Progress::update(int64_t done, const std::string& note) {
  std::lock_guard<std::mutex> lock(g_mutex);
  done_ = done;
  note_ = note;
  auto now = std::chrono::steady_clock::now();
  const double since = seconds_between(last_, now);
  if (since >= (json_ ? 1.0 : tty_ ? 0.2 : 10.0)) {
    last_ = now;
    draw(false);
  }
}

void Progress::finish(const std::string& note) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!note.empty()) note_ = note;
  finished_ = true;
  draw(true);
  if (g_active == this) g_active = outer_;
}

// Called with g_mutex held.
void Progress::draw(bool final) {
  const double el = seconds_between(start_, std::chrono::steady_clock::now());
  // The rate counts only the steps done in this process (not a resumed run's earlier ones).
  const int64_t here = done_ - std::min(skipped_, done_);
  const double rate = el > 0 ? static_cast<double>(here) / el : 0;
  const double eta = rate > 0 && total_ > done_ ? static_cast<double>(total_ - done_) / rate : 0;
  const double frac = total_ > 0 ? static_cast<double>(done_) / static_cast<double>(total_) : 0;
  if (json_) {
    nlohmann::json e = {{"event", final ? "finish" : "progress"},
                        {"task", label_},
                        {"done", done_},
                        {"total", total_},
                        {"unit", unit_},
                        {"rate", rate}};
    if (skipped_ > 0) e["done_before"] = skipped_;
    if (final) e["seconds"] = el;
    else e["eta_s"] = eta;
    if (!note_.empty()) e["note"] = note_;
    write_event(e);
    return;
  }
  if (tty_) {
    const int width = 30, filled = static_cast<int>(frac * width);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.append(static_cast<size_t>(width - filled), '.');
    std::fprintf(stderr, "\r%s [%s] %lld/%lld %s  %.1f %s/s  ETA %.0fs %s\033[K", label_.c_str(), bar.c_str(),
                 static_cast<long long>(done_), static_cast<long long>(total_), unit_.c_str(), rate, unit_.c_str(),
                 eta, note_.c_str());
    drawn_ = !final;
    if (final) std::fprintf(stderr, "\n");
  } else {
    std::fprintf(stderr, "%s: %lld/%lld %s (%.0f%%), %.1f %s/s, %s %.0fs %s\n", label_.c_str(),
                 static_cast<long long>(done_), static_cast<long long>(total_), unit_.c_str(), 100 * frac, rate,
                 unit_.c_str(), final ? "took" : "ETA", final ? el : eta, note_.c_str());
  }
  std::fflush(stderr);
}

void log_line(std::FILE* f, const std::string& line) {
  std::lock_guard<std::mutex> lock(g_mutex);
  Progress* bar = g_active;
  // The bar is on stderr: clear it when the line goes to the same terminal.
  const bool clear = bar && bar->drawn_ && (f == stderr || ::isatty(::fileno(f)) != 0);
  if (clear) {
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
  }
  std::fputs(line.c_str(), f);
  std::fputc('\n', f);
  std::fflush(f);
  if (clear) bar->draw(false);
}

void log_event(const nlohmann::json& event) {
  std::lock_guard<std::mutex> lock(g_mutex);
  write_event(event);
}

void log_warning(const std::string& message) {
  if (log_json()) log_event({{"event", "warning"}, {"message", message}});
  else log_line(stderr, "warning: " + message);
}

}  // namespace mmn
