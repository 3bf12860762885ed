// Prerequisites of the method on a shapes model (mmneuron probe): do the
// language model's image rows carry which shape they show? If no image-row
// neuron tells one shape from another, no method can find a neuron that
// localises the named object, whatever its ranking.
//
// On n held-out scenes of the model's world (the caption prompt, one prefill
// pass with the KV cache on), each image row is labelled with the shape of
// the object covering at least half of its patch (the masks averaged per
// patch, as in groundtruth.h); rows of no object are left out. The scenes are
// split in halves: the first half "train", the second "test". Per language
// layer:
//   AUROC      for each neuron (the MLP activation: act = SiLU(gate), swiglu
//              = SiLU(gate)·up, blocks.{l}.mlp.hook_act / hook_post) and each
//              shape, the one-vs-other-shapes AUROC on each half;
//              best_auroc = the test-half AUROC of the neuron with the best
//              training-half AUROC (chosen on one half, measured on the
//              other); selective_share = the share of the layer's neurons
//              whose AUROC is at least the threshold on both halves.
//   probe      a linear probe of the shape from one image row alone (ridge,
//              one-vs-rest; probe_stats.h), fitted on the training half and
//              scored on the test half, on the MLP activations and on the
//              residual stream after the layer (blocks.{l}.hook_resid_post);
//              also on the language model's input rows (the projector's
//              output, blocks.0.hook_resid_pre), against the majority class.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/shapes.h"
#include "models/vlm.h"
#include "neurons/find.h"

namespace mmn {

struct ProbeOptions {
  int64_t scenes = 200;
  uint64_t seed = 0x5A5E5EEDull;  // the held-out stream (grad/shapes_eval.h)
  ActivationVariant activation = ActivationVariant::SwiGLU;
  double threshold = 0.9;  // AUROC of a selective neuron
  bool show_progress = false;
};

struct ProbeLayer {
  int layer = 0;
  std::vector<double> best_auroc;       // per shape (NaN: the shape has no rows in a half)
  std::vector<double> best_auroc_train; // the same neuron's AUROC on the half that chose it
  std::vector<int> best_unit;           // the neuron behind best_auroc
  std::vector<double> selective_share;  // per shape
  double mlp_accuracy = 0, resid_accuracy = 0;
  double mlp_lambda = 0, resid_lambda = 0;
};

struct ProbeReport {
  int world = 1, grid = 0;
  std::vector<std::string> shapes;  // the world's shapes (classes)
  std::vector<int64_t> rows_train, rows_test;  // per shape
  int64_t scenes = 0, rows = 0, train_rows = 0, test_rows = 0, background_rows = 0;
  double majority = 0;          // test accuracy of the training majority
  std::string majority_shape;
  double input_accuracy = 0;    // the probe on the language model's input rows
  std::vector<ProbeLayer> layers;
};

ProbeReport run_probe(const VisionLanguageModel& model, const ShapesOptions& world, const ProbeOptions& opt);

// Everything in the report, with the options and definitions.
nlohmann::json probe_json(const ProbeReport& rep, const ProbeOptions& opt, const std::string& model_dir);

}  // namespace mmn
