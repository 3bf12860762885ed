// Image decoding, Pillow-exact bicubic resize and the CLIP/BLIP preprocessing,
// checked against the golden references and against hand-made bad inputs.
#include <cstddef>  // jpeglib.h needs size_t
#include <cstdio>   // and FILE
#include <jpeglib.h>
#include <png.h>

#include <csetjmp>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "io/image.h"
#include "io/npy.h"
#include "test_util.h"
#include "util/error.h"

namespace fs = std::filesystem;
using mmn::ImageU8;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void spit(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

// Expects fn() to throw mmn::Error whose message names `path` and contains `what`.
template <class Fn>
void expect_error(Fn fn, const std::string& path, const std::string& what = "") {
  try {
    fn();
    ADD_FAILURE() << "no mmn::Error thrown for " << path;
  } catch (const mmn::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    if (!what.empty()) {
      EXPECT_NE(msg.find(what), std::string::npos) << msg;
    }
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "multi-line message: " << msg;
  }
}

// Compares an image with a golden [h, w, 3] uint8 array.
void expect_image_eq(const ImageU8& img, const fs::path& npy) {
  const mmn::NpyArray a = mmn::read_npy(npy.string());
  ASSERT_EQ(a.dtype, "|u1") << npy;
  ASSERT_EQ(a.shape, (std::vector<int64_t>{img.height, img.width, 3})) << npy;
  const std::vector<uint8_t> ref = a.as_u8();
  size_t diff = 0;
  for (size_t i = 0; i < ref.size(); ++i) diff += ref[i] != img.rgb[i];
  EXPECT_EQ(diff, 0u) << npy << ": " << diff << " of " << ref.size() << " bytes differ";
}

ImageU8 make_image(int w, int h, uint32_t seed) {
  ImageU8 img;
  img.width = w;
  img.height = h;
  img.rgb.resize(size_t(w) * h * 3);
  std::mt19937 rng(seed);
  for (auto& v : img.rgb) v = uint8_t(rng());
  return img;
}

// A smooth image (JPEG-friendly).
ImageU8 make_gradient(int w, int h) {
  ImageU8 img;
  img.width = w;
  img.height = h;
  img.rgb.resize(size_t(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = img.row(y) + x * 3;
      p[0] = uint8_t(40 + 150 * x / w);
      p[1] = uint8_t(30 + 170 * y / h);
      p[2] = uint8_t(200 - 100 * (x + y) / (w + h));
    }
  return img;
}

// ---- libjpeg / libpng encoders for synthetic inputs -------------------------

struct JpegTestErr {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
};
void jpeg_test_error_exit(j_common_ptr c) { std::longjmp(reinterpret_cast<JpegTestErr*>(c->err)->jump, 1); }

// Encodes `pixels` (components per pixel given by `space`) at `quality`, 4:4:4.
std::string encode_jpeg(int w, int h, J_COLOR_SPACE space, int comps, const std::vector<uint8_t>& pixels,
                        int quality = 100) {
  jpeg_compress_struct ci;
  JpegTestErr err;
  ci.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = jpeg_test_error_exit;
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  if (setjmp(err.jump)) {
    jpeg_destroy_compress(&ci);
    std::free(buf);
    return {};
  }
  jpeg_create_compress(&ci);
  jpeg_mem_dest(&ci, &buf, &size);
  ci.image_width = JDIMENSION(w);
  ci.image_height = JDIMENSION(h);
  ci.input_components = comps;
  ci.in_color_space = space;
  jpeg_set_defaults(&ci);
  jpeg_set_quality(&ci, quality, TRUE);
  for (int c = 0; c < ci.num_components; ++c)
    ci.comp_info[c].h_samp_factor = ci.comp_info[c].v_samp_factor = 1;
  jpeg_start_compress(&ci, TRUE);
  while (ci.next_scanline < ci.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(pixels.data() + size_t(ci.next_scanline) * w * comps);
    jpeg_write_scanlines(&ci, &row, 1);
  }
  jpeg_finish_compress(&ci);
  jpeg_destroy_compress(&ci);
  std::string out(reinterpret_cast<char*>(buf), size);
  std::free(buf);
  return out;
}

struct PngSpec {
  int width = 0, height = 0, color_type = PNG_COLOR_TYPE_RGB, bit_depth = 8;
  bool interlace = false;
  std::vector<png_color> palette;
  std::vector<uint8_t> data;  // packed rows as PNG stores them (16-bit big-endian)
  bool header_only = false;   // stop after IHDR (for absurd sizes)
};

bool write_png_spec(const fs::path& path, const PngSpec& s) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return false;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    std::fclose(f);
    return false;
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, png_uint_32(s.width), png_uint_32(s.height), s.bit_depth, s.color_type,
               s.interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (!s.palette.empty()) png_set_PLTE(png, info, s.palette.data(), int(s.palette.size()));
  png_write_info(png, info);
  if (!s.header_only) {
    const size_t rowbytes = png_get_rowbytes(png, info);
    std::vector<png_bytep> rows(size_t(s.height));
    for (int y = 0; y < s.height; ++y) rows[size_t(y)] = const_cast<png_bytep>(s.data.data() + y * rowbytes);
    png_write_image(png, rows.data());
    png_write_end(png, nullptr);
  }
  png_destroy_write_struct(&png, &info);
  std::fclose(f);
  return true;
}

const char* kModels[] = {"tiny-llava-a-f32", "tiny-llava-c-f16", "tiny-iblip-a-f32", "tiny-owl2-a-f32"};
const char* kImages[] = {"landscape_80x60", "portrait_48x72", "tiny_10x10"};

}  // namespace

// ============================================================= golden checks

TEST(ImageGolden, PngDecodesToReferenceArray) {
  MMN_REQUIRE_SHARED();
  for (const char* name : kImages) {
    SCOPED_TRACE(name);
    const ImageU8 img = mmn::load_image(mmn::test::golden(std::string("images/") + name + ".png").string());
    expect_image_eq(img, mmn::test::golden(std::string("images/") + name + ".npy"));
  }
}

TEST(ImageGolden, EveryCaseDirectoryIsKnown) {
  MMN_REQUIRE_SHARED();
  // The loop below is driven by the directory listing; make sure it sees them all.
  int n = 0;
  for (const auto& model : fs::directory_iterator(mmn::test::golden("cases")))
    for (const auto& img : fs::directory_iterator(model.path())) n += fs::is_directory(img.path());
  EXPECT_GE(n, int(std::size(kModels) * std::size(kImages)));
}

TEST(ImageGolden, PreprocessingMatchesEveryCase) {
  MMN_REQUIRE_SHARED();
  int cases = 0;
  for (const auto& model_dir : fs::directory_iterator(mmn::test::golden("cases"))) {
    if (!model_dir.is_directory()) continue;
    const std::string model = model_dir.path().filename().string();
    const mmn::ImageProcessorConfig cfg = mmn::load_image_processor_config(
        mmn::test::golden("models/" + model + "/preprocessor_config.json").string());
    for (const auto& case_dir : fs::directory_iterator(model_dir.path())) {
      if (!case_dir.is_directory()) continue;
      const fs::path dir = case_dir.path();
      const std::string image = dir.filename().string();
      SCOPED_TRACE(model + "/" + image);
      const ImageU8 img = mmn::load_image(mmn::test::golden("images/" + image + ".png").string());
      const mmn::PreprocessedImage pre = mmn::preprocess_image(img, cfg);

      expect_image_eq(pre.resized, dir / "image_resized_uint8.npy");
      if (fs::exists(dir / "image_cropped_uint8.npy")) expect_image_eq(pre.cropped, dir / "image_cropped_uint8.npy");

      const mmn::NpyArray pv = mmn::read_npy((dir / "pixel_values.npy").string());
      ASSERT_EQ(pv.shape, (std::vector<int64_t>{1, 3, pre.height, pre.width}));
      const std::vector<float> ref = pv.as_f32();
      ASSERT_EQ(ref.size(), pre.pixel_values.size());
      double worst = 0;
      for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, double(std::fabs(ref[i] - pre.pixel_values[i])));
      EXPECT_LE(worst, 1e-6);
      ++cases;
    }
  }
  EXPECT_GE(cases, 12);
}

TEST(ImageGolden, ConfigVariantsParsedAsTheReferenceDid) {
  MMN_REQUIRE_SHARED();
  using R = mmn::ImageProcessorConfig::Resize;
  auto load = [](const std::string& m) {
    return mmn::load_image_processor_config(mmn::test::golden("models/" + m + "/preprocessor_config.json").string());
  };
  auto llava = load("tiny-llava-a-f32");
  EXPECT_EQ(llava.resize, R::ShortestEdge);
  EXPECT_EQ(llava.size_short, 56);
  EXPECT_TRUE(llava.do_center_crop);
  EXPECT_EQ(llava.crop_h, 56);
  EXPECT_EQ(llava.crop_w, 56);

  auto iblip = load("tiny-iblip-a-f32");
  EXPECT_EQ(iblip.resize, R::Exact);
  EXPECT_EQ(iblip.size_h, 42);
  EXPECT_EQ(iblip.size_w, 42);
  EXPECT_FALSE(iblip.do_center_crop);

  // CLIPFeatureExtractor with integer size: the paper's path is CLIPImageProcessor
  // (shortest edge + crop), not the mPLUG-Owl2 README's square resize.
  auto owl = load("tiny-owl2-a-f32");
  EXPECT_EQ(owl.resize, R::ShortestEdge);
  EXPECT_EQ(owl.size_short, 42);
  EXPECT_TRUE(owl.do_center_crop);
  EXPECT_EQ(owl.crop_h, 42);
  EXPECT_TRUE(owl.do_rescale);
  EXPECT_DOUBLE_EQ(owl.rescale_factor, 1.0 / 255.0);
  EXPECT_FLOAT_EQ(owl.mean[0], 0.48145466f);
  EXPECT_FLOAT_EQ(owl.std[2], 0.27577711f);

  // A directory is accepted too.
  auto dir = mmn::load_image_processor_config(mmn::test::golden("models/tiny-llava-c-f16").string());
  EXPECT_EQ(dir.size_short, 42);
}

// ========================================================== decoding details

TEST(ImageDecode, PngColourTypesConvertLikePil) {
  const fs::path tmp = mmn::test::temp_dir("png-modes");
  auto roundtrip = [&](const char* name, PngSpec s) {
    const fs::path p = tmp / name;
    EXPECT_TRUE(write_png_spec(p, s)) << name;
    return mmn::load_image(p.string());
  };
  auto px = [](const ImageU8& img, int x, int y) {
    const uint8_t* p = img.row(y) + x * 3;
    return std::vector<int>{p[0], p[1], p[2]};
  };
  using V = std::vector<int>;

  {  // 8-bit grey -> replicated
    ImageU8 g = roundtrip("grey8.png", {2, 1, PNG_COLOR_TYPE_GRAY, 8, false, {}, {7, 200}});
    EXPECT_EQ(px(g, 0, 0), (V{7, 7, 7}));
    EXPECT_EQ(px(g, 1, 0), (V{200, 200, 200}));
  }
  {  // 2-bit grey -> scaled by 85
    ImageU8 g = roundtrip("grey2.png", {4, 1, PNG_COLOR_TYPE_GRAY, 2, false, {}, {0x1B}});  // 0,1,2,3
    EXPECT_EQ(px(g, 0, 0), (V{0, 0, 0}));
    EXPECT_EQ(px(g, 1, 0), (V{85, 85, 85}));
    EXPECT_EQ(px(g, 2, 0), (V{170, 170, 170}));
    EXPECT_EQ(px(g, 3, 0), (V{255, 255, 255}));
  }
  {  // 16-bit grey: Pillow clips to 255 instead of scaling
    ImageU8 g = roundtrip("grey16.png", {2, 1, PNG_COLOR_TYPE_GRAY, 16, false, {}, {0x00, 0xC8, 0x12, 0x34}});
    EXPECT_EQ(px(g, 0, 0), (V{200, 200, 200}));
    EXPECT_EQ(px(g, 1, 0), (V{255, 255, 255}));
  }
  {  // grey + alpha: alpha dropped, no compositing; 16-bit takes the high byte
    ImageU8 g = roundtrip("ga8.png", {1, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, false, {}, {90, 0}});
    EXPECT_EQ(px(g, 0, 0), (V{90, 90, 90}));
    ImageU8 g16 = roundtrip("ga16.png", {1, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 16, false, {}, {0x12, 0x34, 0, 0}});
    EXPECT_EQ(px(g16, 0, 0), (V{0x12, 0x12, 0x12}));
  }
  {  // RGBA: alpha dropped
    ImageU8 g = roundtrip("rgba.png", {1, 1, PNG_COLOR_TYPE_RGB_ALPHA, 8, false, {}, {10, 20, 30, 0}});
    EXPECT_EQ(px(g, 0, 0), (V{10, 20, 30}));
  }
  {  // 16-bit RGB(A): high byte
    ImageU8 g = roundtrip("rgb16.png", {1, 1, PNG_COLOR_TYPE_RGB, 16, false, {}, {0xAB, 0xFF, 0x01, 0x80, 0xFE, 0x7F}});
    EXPECT_EQ(px(g, 0, 0), (V{0xAB, 0x01, 0xFE}));
    ImageU8 a = roundtrip("rgba16.png",
                          {1, 1, PNG_COLOR_TYPE_RGB_ALPHA, 16, false, {}, {1, 2, 3, 4, 5, 6, 0, 0}});
    EXPECT_EQ(px(a, 0, 0), (V{1, 3, 5}));
  }
  {  // palette (8-bit and 4-bit): expanded
    std::vector<png_color> pal = {{255, 0, 0}, {0, 255, 0}, {1, 2, 3}};
    ImageU8 p8 = roundtrip("pal8.png", {3, 1, PNG_COLOR_TYPE_PALETTE, 8, false, pal, {2, 0, 1}});
    EXPECT_EQ(px(p8, 0, 0), (V{1, 2, 3}));
    EXPECT_EQ(px(p8, 1, 0), (V{255, 0, 0}));
    EXPECT_EQ(px(p8, 2, 0), (V{0, 255, 0}));
    ImageU8 p4 = roundtrip("pal4.png", {2, 1, PNG_COLOR_TYPE_PALETTE, 4, false, pal, {0x12}});
    EXPECT_EQ(px(p4, 0, 0), (V{0, 255, 0}));
    EXPECT_EQ(px(p4, 1, 0), (V{1, 2, 3}));
  }
  {  // Adam7 interlacing decodes to the same pixels
    const ImageU8 src = make_image(13, 9, 5);
    PngSpec s{13, 9, PNG_COLOR_TYPE_RGB, 8, true, {}, src.rgb};
    EXPECT_EQ(roundtrip("interlaced.png", s).rgb, src.rgb);
  }
  fs::remove_all(tmp);
}

TEST(ImageDecode, WritePngRoundTripsAndLeavesNoTemp) {
  const fs::path tmp = mmn::test::temp_dir("png-write");
  const ImageU8 src = make_image(17, 5, 1);
  const fs::path p = tmp / "sub" / "out.png";
  mmn::write_png(p.string(), src);
  mmn::write_png(p.string(), src);  // overwrite in place
  const ImageU8 back = mmn::load_image(p.string());
  EXPECT_EQ(back.width, 17);
  EXPECT_EQ(back.height, 5);
  EXPECT_EQ(back.rgb, src.rgb);
  int files = 0;
  for (const auto& e : fs::directory_iterator(p.parent_path())) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
  ImageU8 bad = src;
  bad.rgb.pop_back();
  expect_error([&] { mmn::write_png((tmp / "bad.png").string(), bad); }, (tmp / "bad.png").string());
  EXPECT_FALSE(fs::exists(tmp / "bad.png"));
  fs::remove_all(tmp);
}

TEST(ImageDecode, JpegRoundTripAtQuality100) {
  const fs::path tmp = mmn::test::temp_dir("jpeg-rt");
  const ImageU8 src = make_gradient(37, 23);
  const std::string jpg = encode_jpeg(37, 23, JCS_RGB, 3, src.rgb);
  ASSERT_FALSE(jpg.empty());
  spit(tmp / "rgb.jpg", jpg);
  const ImageU8 back = mmn::load_image((tmp / "rgb.jpg").string());
  ASSERT_EQ(back.width, 37);
  ASSERT_EQ(back.height, 23);
  int worst = 0;
  double sum = 0;
  for (size_t i = 0; i < src.rgb.size(); ++i) {
    const int d = std::abs(int(src.rgb[i]) - int(back.rgb[i]));
    worst = std::max(worst, d);
    sum += d;
  }
  EXPECT_LE(worst, 4);
  EXPECT_LE(sum / double(src.rgb.size()), 1.0);

  // Greyscale JPEG -> replicated channels.
  std::vector<uint8_t> grey(37 * 23);
  for (size_t i = 0; i < grey.size(); ++i) grey[i] = uint8_t(50 + i % 100);
  spit(tmp / "grey.jpg", encode_jpeg(37, 23, JCS_GRAYSCALE, 1, grey));
  const ImageU8 g = mmn::load_image((tmp / "grey.jpg").string());
  for (int i = 0; i < 37 * 23; ++i) {
    EXPECT_EQ(g.rgb[i * 3], g.rgb[i * 3 + 1]);
    EXPECT_EQ(g.rgb[i * 3], g.rgb[i * 3 + 2]);
    EXPECT_LE(std::abs(int(g.rgb[i * 3]) - int(grey[size_t(i)])), 3);
  }
  fs::remove_all(tmp);
}

TEST(ImageDecode, CmykJpegConvertsLikePil) {
  // Adobe CMYK JPEGs store inverted ink; Pillow reads 4-component JPEGs as
  // inverted, then R = (255 - K) * (255 - C) / 255 (rounded).
  const fs::path tmp = mmn::test::temp_dir("jpeg-cmyk");
  const int w = 16, h = 16;
  const uint8_t raw[4] = {200, 100, 255, 180};  // stored (inverted) C, M, Y, K
  std::vector<uint8_t> px(size_t(w) * h * 4);
  for (size_t i = 0; i < px.size(); ++i) px[i] = raw[i % 4];
  spit(tmp / "cmyk.jpg", encode_jpeg(w, h, JCS_CMYK, 4, px));
  const ImageU8 img = mmn::load_image((tmp / "cmyk.jpg").string());
  ASSERT_EQ(img.width, w);
  for (int c = 0; c < 3; ++c) {
    const int expect = int(std::lround(raw[3] * raw[c] / 255.0));
    EXPECT_LE(std::abs(int(img.rgb[size_t(5 * w + 7) * 3 + c]) - expect), 2) << "channel " << c;
  }
  fs::remove_all(tmp);
}

// ============================================================ bicubic, crop

TEST(ImageResize, IdentityAndConstantImages) {
  const ImageU8 src = make_image(9, 7, 3);
  EXPECT_EQ(mmn::resize_bicubic(src, 9, 7).rgb, src.rgb);
  ImageU8 flat = src;
  for (uint8_t v : {0, 1, 128, 254, 255}) {
    std::fill(flat.rgb.begin(), flat.rgb.end(), v);
    for (auto [w, h] : {std::pair{3, 7}, {9, 2}, {20, 31}, {1, 1}, {40, 5}}) {
      const ImageU8 r = mmn::resize_bicubic(flat, w, h);
      ASSERT_EQ(r.width, w);
      ASSERT_EQ(r.height, h);
      for (uint8_t got : r.rgb) ASSERT_EQ(got, v) << w << "x" << h;
    }
  }
  EXPECT_THROW(mmn::resize_bicubic(src, 0, 5), mmn::Error);
}

TEST(ImageResize, OnlyChangedAxisIsResampled) {
  // Height unchanged: every column pattern that is constant per row stays exact.
  ImageU8 rows = make_image(8, 6, 11);
  for (int y = 0; y < 6; ++y)
    for (int x = 1; x < 8; ++x) std::copy_n(rows.row(y), 3, rows.row(y) + x * 3);
  const ImageU8 r = mmn::resize_bicubic(rows, 13, 6);
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 13; ++x)
      for (int c = 0; c < 3; ++c) ASSERT_EQ(r.row(y)[x * 3 + c], rows.row(y)[c]);
}

TEST(ImageCrop, CropsAndPadsLikeTransformers) {
  ImageU8 img = make_image(5, 5, 2);
  const ImageU8 c = mmn::center_crop(img, 3, 2);  // top = 1, left = 1
  ASSERT_EQ(c.height, 3);
  ASSERT_EQ(c.width, 2);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 2; ++x)
      for (int k = 0; k < 3; ++k) EXPECT_EQ(c.row(y)[x * 3 + k], img.row(y + 1)[(x + 1) * 3 + k]);

  // Smaller than the crop: zero padding, image at ceil((crop - in) / 2).
  ImageU8 small = make_image(3, 2, 4);
  const ImageU8 p = mmn::center_crop(small, 4, 4);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x)
      for (int k = 0; k < 3; ++k) {
        const bool inside = y >= 1 && y < 3 && x >= 1 && x < 4;
        EXPECT_EQ(p.row(y)[x * 3 + k], inside ? small.row(y - 1)[(x - 1) * 3 + k] : 0) << y << "," << x;
      }
}

TEST(ImagePreprocess, ShortestEdgeRoundsDownAndNormalises) {
  mmn::ImageProcessorConfig cfg;
  cfg.size_short = 4;
  cfg.crop_h = cfg.crop_w = 4;
  const ImageU8 img = make_image(7, 5, 9);  // long = int(4 * 7 / 5) = 5
  const auto pre = mmn::preprocess_image(img, cfg);
  EXPECT_EQ(pre.resized.width, 5);
  EXPECT_EQ(pre.resized.height, 4);
  EXPECT_EQ(pre.height, 4);
  EXPECT_EQ(pre.width, 4);
  ASSERT_EQ(pre.pixel_values.size(), 48u);
  // Default struct: mean 0, std 1, so pixel = float(u8 / 255); CHW order.
  EXPECT_EQ(pre.pixel_values[16 + 5], float(pre.cropped.row(1)[1 * 3 + 1] * (1.0 / 255.0)));

  cfg.do_resize = cfg.do_center_crop = cfg.do_rescale = cfg.do_normalize = false;
  const auto raw = mmn::preprocess_image(img, cfg);
  EXPECT_EQ(raw.width, 7);
  EXPECT_EQ(raw.pixel_values[2 * 35 + 3], float(img.row(0)[3 * 3 + 2]));
}

// ============================================================= config files

TEST(ImageConfig, DefaultsAndErrors) {
  const fs::path tmp = mmn::test::temp_dir("ppcfg");
  const std::string p = (tmp / "preprocessor_config.json").string();
  using R = mmn::ImageProcessorConfig::Resize;

  spit(p, "{}");
  auto d = mmn::load_image_processor_config(p);
  EXPECT_EQ(d.resize, R::ShortestEdge);
  EXPECT_EQ(d.size_short, 224);
  EXPECT_EQ(d.crop_h, 224);
  EXPECT_TRUE(d.do_center_crop);
  EXPECT_FLOAT_EQ(d.mean[1], 0.4578275f);

  spit(p, R"({"image_processor_type": "BlipImageProcessor", "size": 30, "do_center_crop": true})");
  auto b = mmn::load_image_processor_config(p);
  EXPECT_EQ(b.resize, R::Exact);
  EXPECT_EQ(b.size_h, 30);
  EXPECT_FALSE(b.do_center_crop);

  spit(p, R"({"size": {"height": 20, "width": 30}, "crop_size": 10, "image_mean": 0.5})");
  auto e = mmn::load_image_processor_config(p);
  EXPECT_EQ(e.resize, R::Exact);
  EXPECT_EQ(e.size_w, 30);
  EXPECT_EQ(e.crop_w, 10);
  EXPECT_FLOAT_EQ(e.mean[2], 0.5f);

  const std::pair<const char*, const char*> bad[] = {
      {"{\"size\": 224,", "invalid JSON"},
      {"[1, 2]", "JSON object"},
      {R"({"size": "big"})", "'size'"},
      {R"({"size": {"longest_edge": 3}})", "'size'"},
      {R"({"size": {"shortest_edge": -3}})", "size.shortest_edge"},
      {R"({"crop_size": {"height": 2}})", "'crop_size'"},
      {R"({"do_resize": 1})", "'do_resize'"},
      {R"({"rescale_factor": "x"})", "'rescale_factor'"},
      {R"({"image_mean": [0.1, 0.2]})", "'image_mean'"},
      {R"({"image_std": [0.1, 0.2, "x"]})", "'image_std'"},
      {R"({"resample": 2})", "'resample'"},
      {R"({"image_processor_type": "SiglipImageProcessor"})", "SiglipImageProcessor"},
      {R"({"image_processor_type": "BlipImageProcessor", "size": {"shortest_edge": 3}})", "'size'"},
  };
  for (auto [text, what] : bad) {
    SCOPED_TRACE(text);
    spit(p, text);
    expect_error([&] { mmn::load_image_processor_config(p); }, p, what);
  }
  const std::string missing = (tmp / "nope.json").string();
  expect_error([&] { mmn::load_image_processor_config(missing); }, missing);
  fs::remove_all(tmp);
}

// =============================================================== bad inputs

TEST(ImageBadInput, EveryFailureIsAnErrorNamingTheFile) {
  const fs::path tmp = mmn::test::temp_dir("badimg");
  testing::internal::CaptureStderr();

  const std::string missing = (tmp / "missing.png").string();
  expect_error([&] { mmn::load_image(missing); }, missing);

  const std::string empty = (tmp / "empty.png").string();
  spit(empty, "");
  expect_error([&] { mmn::load_image(empty); }, empty, "empty");

  expect_error([&] { mmn::load_image(tmp.string()); }, tmp.string());

  std::mt19937 rng(42);
  std::string noise(4096, '\0');
  for (auto& ch : noise) ch = char(rng());
  noise[0] = 'x';
  const std::string random = (tmp / "random.jpg").string();
  spit(random, noise);
  expect_error([&] { mmn::load_image(random); }, random, "not a PNG or JPEG");

  const std::string gif = (tmp / "anim.gif").string();
  spit(gif, "GIF89a" + noise);
  expect_error([&] { mmn::load_image(gif); }, gif, "GIF");

  // Garbage behind valid signatures must fail cleanly, never crash or hang.
  const std::string png_sig("\x89PNG\r\n\x1a\n", 8);
  const std::string jpg_sig("\xff\xd8\xff", 3);
  for (int i = 0; i < 50; ++i) {
    std::string body(size_t(64 + 97 * i), '\0');
    for (auto& ch : body) ch = char(rng());
    const std::string gp = (tmp / ("garbage" + std::to_string(i) + ".png")).string();
    spit(gp, png_sig + body);
    expect_error([&] { mmn::load_image(gp); }, gp);
    const std::string gj = (tmp / ("garbage" + std::to_string(i) + ".jpg")).string();
    spit(gj, jpg_sig + body);
    expect_error([&] { mmn::load_image(gj); }, gj);
  }

  // A real JPEG cut short (mid-scan, and only the EOI missing).
  const ImageU8 src = make_gradient(64, 48);
  const std::string jpg = encode_jpeg(64, 48, JCS_RGB, 3, src.rgb, 90);
  ASSERT_GT(jpg.size(), 100u);
  const std::string half_jpg = (tmp / "half.jpg").string();
  spit(half_jpg, jpg.substr(0, jpg.size() / 2));
  expect_error([&] { mmn::load_image(half_jpg); }, half_jpg, "truncated");
  const std::string no_eoi = (tmp / "no_eoi.jpg").string();
  spit(no_eoi, jpg.substr(0, jpg.size() - 2));
  expect_error([&] { mmn::load_image(no_eoi); }, no_eoi, "truncated");
  const std::string header_only = (tmp / "header.jpg").string();
  spit(header_only, jpg.substr(0, 20));
  expect_error([&] { mmn::load_image(header_only); }, header_only);

  // Absurd JPEG dimensions (SOF patched) are refused before decoding.
  const size_t sof = jpg.find("\xff\xc0");
  ASSERT_NE(sof, std::string::npos);
  for (auto [w, h] : {std::pair{40000, 10}, {30000, 30000}}) {
    std::string big = jpg;
    big[sof + 5] = char(h >> 8), big[sof + 6] = char(h & 255);
    big[sof + 7] = char(w >> 8), big[sof + 8] = char(w & 255);
    const std::string bp = (tmp / ("big" + std::to_string(w) + ".jpg")).string();
    spit(bp, big);
    expect_error([&] { mmn::load_image(bp); }, bp, "too large");
  }

  // Absurd PNG dimensions.
  for (auto [w, h] : {std::pair{40000, 1}, {20000, 20000}}) {
    PngSpec s;
    s.width = w, s.height = h, s.header_only = true;
    const fs::path bp = tmp / ("big" + std::to_string(w) + ".png");
    ASSERT_TRUE(write_png_spec(bp, s));
    expect_error([&] { mmn::load_image(bp.string()); }, bp.string(), "too large");
  }

  // A truncated and a corrupted PNG, from a real encoder's output.
  const fs::path ok_png = tmp / "ok.png";
  mmn::write_png(ok_png.string(), make_image(40, 30, 8));
  const std::string png = slurp(ok_png);
  const std::string half_png = (tmp / "half.png").string();
  spit(half_png, png.substr(0, png.size() / 2));
  expect_error([&] { mmn::load_image(half_png); }, half_png, "truncated");
  const std::string no_iend = (tmp / "no_iend.png").string();
  spit(no_iend, png.substr(0, png.size() - 12));
  expect_error([&] { mmn::load_image(no_iend); }, no_iend, "truncated");
  std::string flipped = png;
  flipped[png.size() / 2] ^= 0x5A;
  const std::string corrupt = (tmp / "corrupt.png").string();
  spit(corrupt, flipped);
  expect_error([&] { mmn::load_image(corrupt); }, corrupt, "corrupt PNG");

  // Flipped bytes inside JPEG entropy data: either an error or an image of the
  // right size (corruption can decode to valid codes), never a crash.
  for (int i = 0; i < 40; ++i) {
    std::string j = jpg;
    const size_t at = jpg.size() / 2 + size_t(i * 7) % (jpg.size() / 3);
    j[at] ^= char(1 + i);
    const std::string jp = (tmp / ("flip" + std::to_string(i) + ".jpg")).string();
    spit(jp, j);
    try {
      const ImageU8 img = mmn::load_image(jp);
      EXPECT_EQ(img.width, 64);
      EXPECT_EQ(img.height, 48);
    } catch (const mmn::Error& e) {
      EXPECT_NE(std::string(e.what()).find(jp), std::string::npos) << e.what();
    }
  }

  EXPECT_EQ(testing::internal::GetCapturedStderr(), "") << "decoders must not print";
  fs::remove_all(tmp);
}

TEST(ImageBadInput, TruncatedGoldenPng) {
  MMN_REQUIRE_SHARED();
  const fs::path tmp = mmn::test::temp_dir("badgolden");
  for (const char* name : kImages) {
    const std::string png = slurp(mmn::test::golden(std::string("images/") + name + ".png"));
    const std::string p = (tmp / (std::string(name) + "_half.png")).string();
    spit(p, png.substr(0, png.size() / 2));
    testing::internal::CaptureStderr();
    expect_error([&] { mmn::load_image(p); }, p, "truncated");
    EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  }
  fs::remove_all(tmp);
}
