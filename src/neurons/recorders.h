// Capture sinks that keep what the method needs and nothing more.
#pragma once
#include <vector>

#include "models/capture.h"

namespace mmn {

// For each generation step, the row whose next-token prediction is that
// step's token: the last prefill row at step 0, the single decode row after.
// Keeps [steps][layers][width] for one hook.
class PredictingRowRecorder : public CaptureSink {
 public:
  PredictingRowRecorder(Hook hook, int n_layers, int64_t width) : hook_(hook), n_layers_(n_layers), width_(width) {}
  bool wants(Hook h, int) const override { return h == hook_; }
  void capture(const CaptureEvent& e) override;
  int steps() const { return static_cast<int>(data_.size()); }
  // Activations of `layer` at step `step`: width_ floats.
  const float* at(int step, int layer) const { return data_[step].data() + layer * width_; }
  const std::vector<float>& step(int s) const { return data_[s]; }  // [layers × width]
  int64_t width() const { return width_; }

 private:
  Hook hook_;
  int n_layers_;
  int64_t width_;
  std::vector<std::vector<float>> data_;
};

// Rows [pos0, pos0 + n) of the prefill pass for one hook: [layers][n][width].
class PrefillRowsRecorder : public CaptureSink {
 public:
  PrefillRowsRecorder(Hook hook, int n_layers, int64_t width, int64_t pos0, int64_t n)
      : hook_(hook), width_(width), pos0_(pos0), n_(n), data_(static_cast<size_t>(n_layers * n * width)) {}
  bool wants(Hook h, int layer) const override { return h == hook_ && layer >= 0; }
  void capture(const CaptureEvent& e) override;
  const std::vector<float>& data() const { return data_; }  // [layers, n, width]
  std::vector<float>& data() { return data_; }
  const float* at(int layer, int64_t row) const { return data_.data() + (layer * n_ + row) * width_; }
  int64_t rows() const { return n_; }
  int64_t width() const { return width_; }

 private:
  Hook hook_;
  int64_t width_, pos0_, n_;
  std::vector<float> data_;
};

// Every row one named point sees, in sequence order (prefill rows, then one
// row per decode step): [rows, width]. For `caption --hook NAME`.
class PointRecorder : public CaptureSink {
 public:
  PointRecorder(Hook hook, int layer) : hook_(hook), layer_(layer) {}
  bool wants(Hook h, int layer) const override { return h == hook_ && layer == layer_; }
  void capture(const CaptureEvent& e) override;
  const std::vector<float>& data() const { return data_; }
  int64_t rows() const { return width_ ? static_cast<int64_t>(data_.size()) / width_ : 0; }
  int64_t width() const { return width_; }
  // Room for `rows` rows of `width` floats up front, so that the decode steps'
  // single rows are appended without moving what is already recorded.
  void reserve(int64_t rows, int64_t width) { data_.reserve(static_cast<size_t>(rows * width)); }
  // Hands the recorded rows over; the recorder is empty afterwards.
  std::vector<float> take() {
    std::vector<float> out;
    out.swap(data_);
    width_ = 0;
    return out;
  }

 private:
  Hook hook_;
  int layer_;
  int64_t width_ = 0;
  std::vector<float> data_;
};

// Per unit, the mean and the max of one hook's activations over the prefill
// rows [pos0, pos0 + n) (the image rows): [2, layers, width], 0 = mean,
// 1 = max. Costs one add and one compare per activation and keeps no rows, so
// find records it for every neuron without a second pass. A row offered twice
// (a pass that revisits positions) counts once.
class ImageRowStatsRecorder : public CaptureSink {
 public:
  ImageRowStatsRecorder(Hook hook, int n_layers, int64_t width, int64_t pos0, int64_t n);
  bool wants(Hook h, int layer) const override { return h == hook_ && layer >= 0 && n_ > 0; }
  void capture(const CaptureEvent& e) override;
  // [2, layers, width]; throws unless every image row of every layer was seen.
  std::vector<float> result() const;

 private:
  Hook hook_;
  int n_layers_;
  int64_t width_, pos0_, n_;
  std::vector<double> sum_;
  std::vector<float> max_;
  std::vector<uint8_t> seen_;  // [layers, n]
};

}  // namespace mmn
