// PNG/JPEG decoding, then the resize / crop / preprocessing chain at small
// target sizes taken from the input's last bytes (so the fuzzer steers them).
#include "fuzz_common.h"
#include "io/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mmn;
  fuzz::expect_only_errors([&] {
    ImageU8 img = decode_image({reinterpret_cast<const char*>(data), size}, "fuzz.img");
    fuzz::check(img.width > 0 && img.height > 0 && img.rgb.size() == size_t(img.width) * img.height * 3,
                "decoded image has an inconsistent size");
    auto byte = [&](size_t back) { return size > back ? data[size - 1 - back] : 0; };
    const int w = 1 + byte(0) % 48, h = 1 + byte(1) % 48;
    ImageU8 r = resize_bicubic(img, w, h);
    fuzz::check(r.width == w && r.height == h && r.rgb.size() == size_t(w) * h * 3, "resize gave another size");
    ImageU8 c = center_crop(img, h, w);
    fuzz::check(c.width == w && c.height == h, "crop gave another size");
    ImageProcessorConfig cfg;
    cfg.size_short = 1 + byte(2) % 40;
    cfg.crop_h = 1 + byte(3) % 40;
    cfg.crop_w = 1 + byte(4) % 40;
    cfg.do_center_crop = byte(5) & 1;
    if (byte(5) & 2) {
      cfg.resize = ImageProcessorConfig::Resize::Exact;
      cfg.size_h = 1 + byte(6) % 40;
      cfg.size_w = 1 + byte(7) % 40;
    }
    PreprocessedImage px = preprocess_image(img, cfg);
    fuzz::check(px.pixel_values.size() == size_t(px.width) * px.height * 3, "pixel_values has another size");
  });
  return 0;
}
