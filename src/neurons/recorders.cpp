#include "neurons/recorders.h"

#include <algorithm>
#include <cstring>

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

}  // namespace mmn
