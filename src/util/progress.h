// Progress reporting for long work: a redrawn bar with rate and ETA on a
// terminal, a log line every few seconds otherwise (CI logs, pipes), or with
// --log-json one JSON object per line (set_log_json). Every other line that a
// command writes while a bar may be shown goes through log_line, which clears
// the bar first and redraws it after, so the two never share a line.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>

namespace mmn {

class Progress {
 public:
  // unit: what is counted ("images", "MiB"); writes to stderr.
  Progress(std::string label, int64_t total, std::string unit);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  void update(int64_t done, const std::string& note = "");
  // n more of the steps counted by update() were done before this process (a
  // resumed run's finished images): they count toward done and the ETA, not
  // toward the rate.
  void skipped(int64_t n = 1) { skipped_ += n; }
  void finish(const std::string& note = "");

 private:
  friend void log_line(std::FILE*, const std::string&);
  void draw(bool final);
  std::string label_, unit_, note_;
  int64_t total_, done_ = 0, skipped_ = 0;
  bool tty_, json_;
  bool finished_ = false, drawn_ = false;
  Progress* outer_ = nullptr;  // the bar shown before this one
  std::chrono::steady_clock::time_point start_, last_;
};

// A Progress over bytes: counted in KiB below 64 MiB and in MiB above, so that
// a small file's bar does not read "0/0 MiB".
class ByteProgress {
 public:
  ByteProgress(std::string label, uint64_t total_bytes)
      : shift_(total_bytes < (uint64_t{64} << 20) ? 10 : 20),
        bar_(std::move(label), static_cast<int64_t>(total_bytes >> shift_), shift_ == 10 ? "KiB" : "MiB") {}
  void update(uint64_t done_bytes) { bar_.update(static_cast<int64_t>(done_bytes >> shift_)); }
  void finish() { bar_.finish(); }

 private:
  int shift_;  // declared before bar_, which is built from it
  Progress bar_;
};

// --log-json: progress, warnings, timings and errors as one JSON object per
// line on stderr ({"event": …}) instead of bars and human lines.
void set_log_json(bool on);
bool log_json();

// Writes `line` (one or more lines) and a newline to `f` (stdout or stderr);
// a bar shown on the same terminal is cleared first and redrawn after.
void log_line(std::FILE* f, const std::string& line);
// One event as a JSON line on stderr (bar-safe like log_line).
void log_event(const nlohmann::json& event);
// "warning: <message>" on stderr, or {"event": "warning", "message": …}.
void log_warning(const std::string& message);

}  // namespace mmn
