// The Python Model: one loaded checkpoint and what the engine does with it
// (caption, runs with recorders and hooks, find, weight views). Everything
// here calls the library (models/, neurons/) the command line calls.
#pragma once
#include <pybind11/pybind11.h>

#include <memory>
#include <mutex>
#include <string>

#include "models/vlm.h"
#include "neurons/find.h"
#include "neurons/wordnet.h"

namespace mmn::py_bind {

namespace py = pybind11;

struct PyModel {
  std::unique_ptr<VisionLanguageModel> model;
  std::string dir;    // the checkpoint directory it was loaded from
  double load_s = 0;  // caption's timings.load_s
  // One engine run at a time per model (recursive: a hook may call the model again).
  std::recursive_mutex engine;
  std::unique_ptr<WordNet> wordnet;      // loaded by the first find that tags nouns
  std::unique_ptr<Explainer> explainer;  // logit-lens explanations, cached across calls like find's
};

// Registers Model, Tokenizer, HookPoint and load() on the module.
void bind_model(py::module_& m);

}  // namespace mmn::py_bind
