// A knowledge edit as data: new value vectors for a few FFN neurons of one
// model. It is applied at run time through a NeuronIntervention (no weight is
// copied or written), exported as a complete checkpoint in which only those
// down_proj columns differ, and reverted bit for bit from the original bytes
// it records.
//
// On disk, EDIT/ holds
//   edit.json          what, why and for which model (see ValueEdit), and
//   values.safetensors "delta" F32 [n, D]: new column − source column, and
//                      "original" U8 [n, D·elem]: the source column's stored bytes,
//                      "edited" U8 [n, D·elem]: the new column's stored bytes.
// The delta is computed from the stored (rounded) new column, so the runtime
// edit and the exported checkpoint are the same model.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "models/intervention.h"
#include "models/vlm.h"

namespace mmn {

struct ValueEdit {
  // Identity of the source model.
  std::string model_dir, model_fingerprint, family;
  std::string vision_tower;  // the model's separate vision tower ("" = inside the checkpoint)
  int n_layers = 0;
  int64_t d_model = 0, d_ff = 0;
  DType dtype = DType::F32;               // stored dtype of the down_proj weights
  // The edited neurons, their deltas and the stored bytes of each column before and after.
  std::vector<NeuronRef> neurons;
  std::vector<float> delta;                // [n, d_model]
  std::vector<uint8_t> original, edited;   // [n, d_model · elem]
  nlohmann::json info;                     // everything else (from, to, rule, parameters, edit set, …)
};

// The stored bytes of column `unit` of layer l's down_proj ([D, I] row-major):
// element d sits at row d.
std::vector<uint8_t> read_value_column(const VisionLanguageModel& model, NeuronRef n);

// Builds an edit from wanted new columns (f32, [n, D]): rounds each to the
// stored dtype, keeps both byte images and the exact delta between them.
ValueEdit make_value_edit(const VisionLanguageModel& model, const std::vector<NeuronRef>& neurons,
                          const std::vector<float>& new_columns, nlohmann::json info);

// Writes EDIT/edit.json and EDIT/values.safetensors (atomically; refuses an
// existing edit.json unless force).
void save_value_edit(const std::string& dir, const ValueEdit& e, bool force);
// Reads and validates an edit directory (one-line errors naming the file).
ValueEdit load_value_edit(const std::string& dir);

// Refuses an edit made for another model than `model` (fingerprint, shapes, dtype).
void check_edit_matches_model(const ValueEdit& e, const VisionLanguageModel& model, const std::string& edit_dir);
// Adds the edit's deltas to an intervention (edits compose by adding).
void add_edit_to_intervention(const ValueEdit& e, NeuronIntervention& iv);

}  // namespace mmn
