#include "neurons/recorders.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "util/error.h"

namespace mmn {

void PredictingRowRecorder::capture(const CaptureEvent& e) {
  if (e.step >= static_cast<int>(data_.size())) data_.resize(e.step + 1, std::vector<float>(n_layers_ * width_));
  const float* last = e.data + (e.rows - 1) * e.width;
  std::memcpy(data_[e.step].data() + e.layer * width_, last, width_ * sizeof(float));
}

void PrefillRowsRecorder::capture(const CaptureEvent& e) {
  if (e.step != 0) return;
  const int64_t lo = std::max(pos0_, e.pos0), hi = std::min(pos0_ + n_, e.pos0 + e.rows);
  for (int64_t p = lo; p < hi; ++p)
    std::memcpy(data_.data() + (e.layer * n_ + (p - pos0_)) * width_, e.data + (p - e.pos0) * e.width,
                width_ * sizeof(float));
}

void PointRecorder::capture(const CaptureEvent& e) {
  width_ = e.width;
  // Rows arrive in position order; a resumed pass may revisit positions, so keep the latest.
  const size_t at = static_cast<size_t>(e.pos0 * e.width);
  if (data_.size() < at) data_.resize(at, 0.f);
  data_.resize(at);
  data_.insert(data_.end(), e.data, e.data + e.rows * e.width);
}

ImageRowStatsRecorder::ImageRowStatsRecorder(Hook hook, int n_layers, int64_t width, int64_t pos0, int64_t n)
    : hook_(hook),
      n_layers_(n_layers),
      width_(width),
      pos0_(pos0),
      n_(n),
      sum_(static_cast<size_t>(n_layers * width), 0.0),
      max_(static_cast<size_t>(n_layers * width), -std::numeric_limits<float>::infinity()),
      seen_(static_cast<size_t>(n_layers * n), 0) {}

void ImageRowStatsRecorder::capture(const CaptureEvent& e) {
  if (e.step != 0 || e.layer < 0 || e.layer >= n_layers_) return;
  const int64_t lo = std::max(pos0_, e.pos0), hi = std::min(pos0_ + n_, e.pos0 + e.rows);
  double* s = sum_.data() + e.layer * width_;
  float* m = max_.data() + e.layer * width_;
  for (int64_t p = lo; p < hi; ++p) {
    uint8_t& seen = seen_[e.layer * n_ + (p - pos0_)];
    if (seen) continue;
    seen = 1;
    const float* row = e.data + (p - e.pos0) * e.width;
    for (int64_t i = 0; i < width_; ++i) {
      s[i] += row[i];
      m[i] = std::max(m[i], row[i]);
    }
  }
}

std::vector<float> ImageRowStatsRecorder::result() const {
  for (uint8_t s : seen_)
    if (!s) fail("internal: image-row statistics are missing rows of the prefill pass");
  const size_t LW = static_cast<size_t>(n_layers_ * width_);
  std::vector<float> out(2 * LW);
  for (size_t f = 0; f < LW; ++f) {
    out[f] = static_cast<float>(sum_[f] / static_cast<double>(n_));
    out[LW + f] = max_[f];
  }
  return out;
}

}  // namespace mmn
