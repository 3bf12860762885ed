// A find run folder as perturb/metrics/edit read it (neurons/run.h).
// Input: parts separated by "\n@@@@\n" (fuzz_common.h): run.json,
//   img/result.json, img/neurons.npy, img/gradient.npy.
#include "fuzz_common.h"
#include "neurons/run.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mmn;
  auto parts = fuzz::split_parts(data, size, 4);
  fuzz::expect_only_errors([&] {
    const auto dir = fuzz::fresh_dir("run");
    fuzz::write_part(dir, "run.json", parts[0]);
    fuzz::write_part(dir, "img/result.json", parts[1]);
    fuzz::write_part(dir, "img/neurons.npy", parts[2]);
    fuzz::write_part(dir, "img/gradient.npy", parts[3]);
    RunData run = load_run(dir.string());
    fuzz::check(run.layers() > 0 && run.units_per_layer() > 0, "a run with no neurons was accepted");
    (void)run.model();
    (void)run.options();
    for (auto& im : run.images)
      for (auto& c : im.concepts) {
        fuzz::check(c.step >= 0 && size_t(c.step) < im.generated_ids.size(), "concept step outside generated_ids");
        for (auto& n : c.neurons)
          fuzz::check(n.layer >= 0 && n.layer < run.layers() && n.unit >= 0 && n.unit < run.units_per_layer(),
                      "neuron outside the model");
      }
  });
  return 0;
}
