// Comparing a directory of dumped arrays against a golden case directory with
// the tolerances of ../shared/golden/README.md.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <string>

#include "io/npy.h"
#include "test_util.h"

namespace mmn::test {

// ids and uint8 arrays exact; pixel_values within abs_pixel; every other float
// array within rel · max|ref|. `skip` names golden files not expected here.
inline void compare_case_dirs(const std::filesystem::path& got_dir, const std::filesystem::path& ref_dir, double rel,
                              const std::set<std::string>& skip = {}, double abs_pixel = 1e-6) {
  namespace fs = std::filesystem;
  int compared = 0;
  for (const auto& e : fs::directory_iterator(ref_dir)) {
    if (e.path().extension() != ".npy") continue;
    const std::string name = e.path().stem().string();
    if (skip.count(name)) continue;
    SCOPED_TRACE(ref_dir.string() + "/" + name);
    fs::path got_path = got_dir / (name + ".npy");
    ASSERT_TRUE(fs::exists(got_path)) << "missing dump " << got_path;
    NpyArray ref = read_npy(e.path().string());
    NpyArray got = read_npy(got_path.string());
    ASSERT_EQ(got.shape, ref.shape) << name;
    ++compared;
    if (ref.dtype == "|u1" || ref.dtype == "<i8" || ref.dtype == "<i4") {
      EXPECT_EQ(got.as_i64(), ref.as_i64()) << name;
      continue;
    }
    std::vector<float> r = ref.as_f32(), g = got.as_f32();
    double maxref = 0, maxdiff = 0;
    for (size_t i = 0; i < r.size(); ++i) {
      maxref = std::max(maxref, std::fabs(static_cast<double>(r[i])));
      maxdiff = std::max(maxdiff, std::fabs(static_cast<double>(r[i]) - g[i]));
    }
    const double tol = name == "pixel_values" ? abs_pixel : rel * maxref;
    EXPECT_LE(maxdiff, tol) << name << ": max|got-ref| = " << maxdiff << ", max|ref| = " << maxref;
  }
  EXPECT_GT(compared, 5);
}

// `mmneuron caption --dump` on golden model `model` and image `image` (8 new
// tokens), every array compared with the case's reference.
inline void expect_caption_dump_matches(const std::string& model, const std::string& image, double rel,
                                        const std::set<std::string>& skip = {}) {
  const std::filesystem::path out = temp_dir("dump-" + model + "-" + image);
  std::string log;
  const std::string cmd = binary() + " caption --model " + golden_model(model).string() + " --image " +
                          golden("images/" + image + ".png").string() + " --max-new-tokens 8 --dump " + out.string();
  ASSERT_EQ(run_cmd(cmd, &log), 0) << log;
  compare_case_dirs(out, golden_case(model, image), rel, skip);
  std::filesystem::remove_all(out);
}

}  // namespace mmn::test
