// preprocessor_config.json, then (when its sizes are small enough to be
// quick) the preprocessing it describes on a small fixed image.
#include <algorithm>

#include "fuzz_common.h"
#include "io/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mmn;
  fuzz::expect_only_errors([&] {
    const auto dir = fuzz::fresh_dir("pre");
    fuzz::write_bytes(dir / "preprocessor_config.json", {reinterpret_cast<const char*>(data), size});
    const ImageProcessorConfig cfg = load_image_processor_config(dir.string());
    for (int v : {cfg.size_short, cfg.size_h, cfg.size_w, cfg.crop_h, cfg.crop_w})
      fuzz::check(v >= 0 && v <= 4096, "a size beyond the documented limit was accepted");
    if (std::max({cfg.size_short, cfg.size_h, cfg.size_w, cfg.crop_h, cfg.crop_w}) > 256) return;
    ImageU8 img;
    img.width = 13, img.height = 7;
    img.rgb.assign(size_t(13) * 7 * 3, 0);
    for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = uint8_t(i * 37);
    PreprocessedImage px = preprocess_image(img, cfg);
    fuzz::check(px.pixel_values.size() == size_t(px.width) * px.height * 3, "pixel_values has another size");
  });
  return 0;
}
