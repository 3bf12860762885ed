// Progress reporting for long work: a redrawn bar with rate and ETA on a
// terminal, a log line every few seconds otherwise (CI logs, pipes).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace mmn {

class Progress {
 public:
  // unit: what is counted ("images", "MiB"); writes to stderr.
  Progress(std::string label, int64_t total, std::string unit);
  ~Progress();
  void update(int64_t done, const std::string& note = "");
  void finish(const std::string& note = "");

 private:
  void draw(bool final);
  std::string label_, unit_, note_;
  int64_t total_, done_ = 0;
  bool tty_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace mmn
