// `mmneuron merge` of two runs holding the same image, into an output run
// that may already exist (neurons/merge.h).
// Input: parts separated by "\n@@@@\n" (fuzz_common.h): a/run.json,
//   b/run.json, a/img/result.json, b/img/result.json, out/run.json.
#include "fuzz_common.h"
#include "neurons/merge.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mmn;
  auto parts = fuzz::split_parts(data, size, 5);
  fuzz::expect_only_errors([&] {
    const auto dir = fuzz::fresh_dir("merge");
    fuzz::write_part(dir, "a/run.json", parts[0]);
    fuzz::write_part(dir, "b/run.json", parts[1]);
    fuzz::write_part(dir, "a/img/result.json", parts[2]);
    fuzz::write_part(dir, "b/img/result.json", parts[3]);
    fuzz::write_part(dir, "out/run.json", parts[4]);
    std::filesystem::create_directories(dir / "a");
    std::filesystem::create_directories(dir / "b");
    const MergeSummary s = merge_runs({(dir / "a").string(), (dir / "b").string()}, (dir / "out").string());
    fuzz::check(s.images <= 1 && s.new_images <= 1, "merge counted images that do not exist");
  });
  return 0;
}
