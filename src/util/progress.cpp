#include "util/progress.h"

#include <unistd.h>

#include <cstdio>

namespace mmn {

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), tty_(::isatty(2) != 0) {
  start_ = last_ = std::chrono::steady_clock::now();
}

Progress::~Progress() {
  if (!finished_ && done_ > 0) finish();
}

void Progress::update(int64_t done, const std::string& note) {
  done_ = done;
  note_ = note;
  auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_).count();
  if (since >= (tty_ ? 0.2 : 10.0)) {
    last_ = now;
    draw(false);
  }
}

void Progress::finish(const std::string& note) {
  if (!note.empty()) note_ = note;
  finished_ = true;
  draw(true);
}

void Progress::draw(bool final) {
  const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = el > 0 ? static_cast<double>(done_) / el : 0;
  const double eta = rate > 0 && total_ > done_ ? static_cast<double>(total_ - done_) / rate : 0;
  const double frac = total_ > 0 ? static_cast<double>(done_) / static_cast<double>(total_) : 0;
  if (tty_) {
    const int width = 30, filled = static_cast<int>(frac * width);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.append(static_cast<size_t>(width - filled), '.');
    std::fprintf(stderr, "\r%s [%s] %lld/%lld %s  %.1f %s/s  ETA %.0fs %s\033[K", label_.c_str(), bar.c_str(),
                 static_cast<long long>(done_), static_cast<long long>(total_), unit_.c_str(), rate, unit_.c_str(),
                 eta, note_.c_str());
    if (final) std::fprintf(stderr, "\n");
  } else {
    std::fprintf(stderr, "%s: %lld/%lld %s (%.0f%%), %.1f %s/s, %s %.0fs %s\n", label_.c_str(),
                 static_cast<long long>(done_), static_cast<long long>(total_), unit_.c_str(), 100 * frac, rate,
                 unit_.c_str(), final ? "took" : "ETA", final ? el : eta, note_.c_str());
  }
  std::fflush(stderr);
}

}  // namespace mmn
