// The files `find` leaves for people and other tools (issue 12): binary mask
// PNGs, titled overlays on one absolute scale per noun with a colour bar,
// neurons.npz, and the decoded piece of every generated token. Units (the
// bitmap font, the .npz writer, the figure) and a real run of the bundled
// model with --heatmaps.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "data/shapes.h"
#include "grad/shapes_eval.h"
#include "io/atomic_file.h"
#include "io/bitmap_font.h"
#include "io/image.h"
#include "io/npy.h"
#include "io/npz.h"
#include "io/torch_pickle.h"
#include "io/tokenizer.h"
#include "io/torch_save.h"
#include "models/generate.h"
#include "neurons/heatmap.h"
#include "neurons/heatmap_figure.h"
#include "test_util.h"
#include "util/error.h"

namespace fs = std::filesystem;
using nlohmann::json;
using mmn::ImageU8;
namespace test = mmn::test;

namespace {

ImageU8 gradient_image(int w, int h) {
  ImageU8 img;
  img.width = w;
  img.height = h;
  img.rgb.resize(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = img.row(y) + 3 * x;
      p[0] = static_cast<uint8_t>(x * 255 / std::max(1, w - 1));
      p[1] = static_cast<uint8_t>(y * 255 / std::max(1, h - 1));
      p[2] = static_cast<uint8_t>((x + y) % 256);
    }
  return img;
}

// The pixels of img inside [x0, x0 + w) × [y0, y0 + h), as an image.
ImageU8 crop(const ImageU8& img, int x0, int y0, int w, int h) {
  ImageU8 out;
  out.width = w;
  out.height = h;
  for (int y = 0; y < h; ++y) out.rgb.insert(out.rgb.end(), img.row(y0 + y) + 3 * x0, img.row(y0 + y) + 3 * (x0 + w));
  return out;
}

// Pixels darker than mid grey in rows [y0, y1): the ink of text.
int dark_pixels(const ImageU8& img, int y0, int y1) {
  int n = 0;
  for (int y = y0; y < y1; ++y)
    for (int x = 0; x < img.width; ++x) {
      const uint8_t* p = img.row(y) + 3 * x;
      n += p[0] < 100 && p[1] < 100 && p[2] < 100;
    }
  return n;
}

// A PNG's IHDR: bit depth and colour type (0 grey, 2 RGB).
std::pair<int, int> png_depth_and_type(const std::string& path) {
  const std::string b = mmn::read_file(path);
  if (b.size() < 26 || b.compare(12, 4, "IHDR") != 0) return {-1, -1};
  return {static_cast<uint8_t>(b[24]), static_cast<uint8_t>(b[25])};
}

// A Python that has numpy: python3 on PATH, else Debian's own (python3-numpy
// installs there, while PATH may lead to another Python). Empty when none.
std::string numpy_python() {
  static const std::string py = [] {
    for (const char* p : {"python3", "/usr/bin/python3"})
      if (test::run_cmd(std::string(p) + " -c 'import numpy'") == 0) return std::string(p);
    return std::string();
  }();
  return py;
}
bool have_numpy() { return !numpy_python().empty(); }

// The members of an .npz written by npz_bytes, each checked against its CRC-32.
std::map<std::string, std::string> read_npz_members(const std::string& bytes) {
  const auto* u = reinterpret_cast<const uint8_t*>(bytes.data());
  std::map<std::string, std::string> out;
  for (const mmn::ZipEntry& e : mmn::read_zip_directory("npz", u, bytes.size())) {
    std::string data = bytes.substr(e.data_offset, e.size);
    // The CRC sits at offset 14 of the local header: 30 bytes, the name, then
    // an extra field (torch's alignment padding) whose length is at offset 28.
    auto le16 = [&](size_t at) { return static_cast<size_t>(u[at] | (u[at + 1] << 8)); };
    size_t header = e.data_offset - e.name.size() - 30;
    while (header > 0 && !(std::memcmp(u + header, "PK\x03\x04", 4) == 0 &&
                           header + 30 + le16(header + 26) + le16(header + 28) == e.data_offset))
      --header;
    uint32_t crc = 0;
    for (int i = 0; i < 4; ++i) crc |= static_cast<uint32_t>(u[header + 14 + i]) << (8 * i);
    EXPECT_EQ(crc, mmn::crc32(data.data(), data.size())) << e.name;
    out[e.name] = std::move(data);
  }
  return out;
}

// A '<U n' .npy member's strings (parse_npy reads numbers only).
std::vector<std::u32string> unicode_npy(const std::string& npy, int64_t* width) {
  const size_t hlen = static_cast<uint8_t>(npy[8]) | (static_cast<uint8_t>(npy[9]) << 8);
  const std::string header = npy.substr(10, hlen);
  const size_t at = header.find("'descr': '<U");
  EXPECT_NE(at, std::string::npos) << header;
  *width = std::stoll(header.substr(at + 12));
  const std::string data = npy.substr(10 + hlen);
  std::vector<std::u32string> out;
  for (size_t off = 0; off + *width * 4 <= data.size(); off += *width * 4) {
    std::u32string s;
    for (int64_t j = 0; j < *width; ++j) {
      char32_t c = 0;
      for (int b = 0; b < 4; ++b) c |= static_cast<char32_t>(static_cast<uint8_t>(data[off + j * 4 + b])) << (8 * b);
      if (c) s += c;
    }
    out.push_back(s);
  }
  return out;
}

}  // namespace

// ---- bitmap font ----------------------------------------------------------------------

TEST(BitmapFont, EveryPrintableCharacterHasItsOwnGlyph) {
  std::set<std::vector<bool>> seen;
  for (int c = 0x20; c <= 0x7E; ++c) {
    std::vector<bool> bits;
    int set = 0;
    for (int y = 0; y < mmn::kGlyphH; ++y)
      for (int x = 0; x < mmn::kGlyphW; ++x) {
        bits.push_back(mmn::glyph_pixel(static_cast<char>(c), x, y));
        set += bits.back();
      }
    EXPECT_EQ(set == 0, c == ' ') << "glyph of '" << static_cast<char>(c) << "'";
    EXPECT_TRUE(seen.insert(bits).second) << "glyph of '" << static_cast<char>(c) << "' repeats another";
  }
  // Outside printable ASCII: '?'.
  for (int y = 0; y < mmn::kGlyphH; ++y)
    for (int x = 0; x < mmn::kGlyphW; ++x) EXPECT_EQ(mmn::glyph_pixel('\n', x, y), mmn::glyph_pixel('?', x, y));
  EXPECT_FALSE(mmn::glyph_pixel('A', -1, 0));
  EXPECT_FALSE(mmn::glyph_pixel('A', 0, mmn::kGlyphH));
}

TEST(BitmapFont, DrawsScaledGlyphsAndClips) {
  EXPECT_EQ(mmn::text_width("", 2), 0);
  EXPECT_EQ(mmn::text_width("A", 1), 5);
  EXPECT_EQ(mmn::text_width("AB", 1), 11);
  EXPECT_EQ(mmn::text_width("AB", 3), 33);
  // UTF-8: one '?' per character, not per byte.
  EXPECT_EQ(mmn::displayable("a\xc3\xa9z\xe2\x96\x81!\xff"), "a?z?!?");
  EXPECT_EQ(mmn::text_width("\xc3\xa9", 1), 5);

  ImageU8 img;
  img.width = 20, img.height = 20;
  img.rgb.assign(20 * 20 * 3, 255);
  mmn::draw_text(img, 2, 3, "Hi", {10, 20, 30}, 2);
  for (int y = 0; y < 20; ++y)
    for (int x = 0; x < 20; ++x) {
      const int gx = (x - 2) / 2, gy = (y - 3) / 2;
      bool want = false;
      if (x >= 2 && y >= 3 && gy < mmn::kGlyphH) {
        if (gx < mmn::kGlyphW) want = mmn::glyph_pixel('H', gx, gy);
        else if (gx >= mmn::kCellW && gx < mmn::kCellW + mmn::kGlyphW) want = mmn::glyph_pixel('i', gx - mmn::kCellW, gy);
      }
      const uint8_t* p = img.row(y) + 3 * x;
      EXPECT_EQ(p[0], want ? 10 : 255) << x << "," << y;
      if (want) EXPECT_EQ(p[2], 30);
    }
  // Text partly or wholly outside the image is clipped, never written out of bounds.
  ImageU8 small = img;
  EXPECT_NO_THROW(mmn::draw_text(small, -7, -5, "WWWWWWWWWW", {0, 0, 0}, 3));
  EXPECT_NO_THROW(mmn::draw_text(small, 100, 100, "x", {0, 0, 0}, 1));
  EXPECT_THROW(mmn::draw_text(small, 0, 0, "x", {0, 0, 0}, 0), mmn::Error);

  EXPECT_EQ(mmn::fit_text("short", 100, 1), "short");
  const std::string cut = mmn::fit_text("a rather long line of text", 60, 1);
  EXPECT_LE(mmn::text_width(cut, 1), 60);
  EXPECT_EQ(cut.substr(cut.size() - 3), "...");
  EXPECT_LE(mmn::text_width(mmn::fit_text("abcdef", 8, 1), 1), 8);
}

// ---- .npz -------------------------------------------------------------------------------

TEST(Npz, RoundTripsThroughTheZipReader) {
  const std::vector<int32_t> a = {1, -2, 3, 4, 5, 6};
  const std::vector<float> f = {0.5f, -1.25f};
  const std::string npz = mmn::npz_bytes({{"a", mmn::npy_bytes("<i4", a.data(), 24, {2, 3})},
                                          {"f", mmn::npy_bytes("<f4", f.data(), 8, {2})},
                                          {"w", mmn::npy_unicode({"red", "\xc3\xa9t\xc3\xa9", ""})}});
  EXPECT_EQ(npz.compare(0, 4, "PK\x03\x04"), 0);
  const auto m = read_npz_members(npz);
  ASSERT_EQ(m.size(), 3u);
  const mmn::NpyArray pa = mmn::parse_npy(m.at("a.npy"), "a");
  EXPECT_EQ(pa.dtype, "<i4");
  EXPECT_EQ(pa.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(pa.as_i64(), (std::vector<int64_t>{1, -2, 3, 4, 5, 6}));
  EXPECT_EQ(mmn::parse_npy(m.at("f.npy"), "f").as_f32(), f);
  int64_t width = 0;
  EXPECT_EQ(unicode_npy(m.at("w.npy"), &width), (std::vector<std::u32string>{U"red", U"\u00e9t\u00e9", U""}));
  EXPECT_EQ(width, 3);
  // Reproducible bytes; bad names refused.
  EXPECT_EQ(npz, mmn::npz_bytes({{"a", mmn::npy_bytes("<i4", a.data(), 24, {2, 3})},
                                 {"f", mmn::npy_bytes("<f4", f.data(), 8, {2})},
                                 {"w", mmn::npy_unicode({"red", "\xc3\xa9t\xc3\xa9", ""})}}));
  EXPECT_THROW(mmn::npz_bytes({{"a", "x"}, {"a", "y"}}), mmn::Error);
  EXPECT_THROW(mmn::npz_bytes({{"", "x"}}), mmn::Error);
  EXPECT_NO_THROW(read_npz_members(mmn::npz_bytes({})));
}

TEST(Npz, Utf8DecodingReplacesEveryBadSequence) {
  using V = std::vector<uint32_t>;
  EXPECT_EQ(mmn::utf8_code_points("a\xc3\xa9\xe2\x96\x81\xf0\x9f\x99\x82"), (V{'a', 0xE9, 0x2581, 0x1F642}));
  EXPECT_EQ(mmn::utf8_code_points("\x80"), (V{0xFFFD}));                 // stray continuation
  EXPECT_EQ(mmn::utf8_code_points("\xc0\xaf"), (V{0xFFFD, 0xFFFD}));     // overlong lead
  EXPECT_EQ(mmn::utf8_code_points("\xe0\x80\xaf"), (V{0xFFFD}));         // overlong 3-byte form
  EXPECT_EQ(mmn::utf8_code_points("\xed\xa0\x80"), (V{0xFFFD}));         // surrogate
  EXPECT_EQ(mmn::utf8_code_points("\xf4\x90\x80\x80"), (V{0xFFFD}));     // past U+10FFFF
  EXPECT_EQ(mmn::utf8_code_points("\xe2\x96"), (V{0xFFFD}));             // truncated
  EXPECT_EQ(mmn::utf8_code_points("\xe2x"), (V{0xFFFD, 'x'}));          // continuation missing
  // Random bytes: never throws, one code point per at most one byte, all valid scalars.
  std::mt19937 rng(12);
  for (int t = 0; t < 2000; ++t) {
    std::string s(rng() % 24, '\0');
    for (auto& c : s) c = static_cast<char>(rng() & 0xFF);
    const V cps = mmn::utf8_code_points(s);
    EXPECT_LE(cps.size(), s.size());
    for (uint32_t c : cps) EXPECT_TRUE(c <= 0x10FFFF && (c < 0xD800 || c > 0xDFFF)) << c;
    EXPECT_NO_THROW(mmn::npy_unicode({s}));
  }
}

TEST(Npz, NumpyLoadsIt) {
  if (!have_numpy()) GTEST_SKIP() << "python3 with numpy is absent; the C++ round trip above still runs";
  const fs::path dir = test::temp_dir("npz");
  const std::vector<int32_t> a = {7, 8, 9, 10};
  const std::vector<float> f = {1.5f, -2.0f};
  mmn::write_npz((dir / "x.npz").string(), {{"a", mmn::npy_bytes("<i4", a.data(), 16, {2, 2})},
                                            {"f", mmn::npy_bytes("<f4", f.data(), 8, {2})},
                                            {"w", mmn::npy_unicode({"circle", "\xc3\xa9t\xc3\xa9"})}});
  const std::string py =
      "import numpy as np; z = np.load('" + (dir / "x.npz").string() + "'); "
      "assert sorted(z.files) == ['a', 'f', 'w'], z.files; "
      "assert z['a'].dtype == np.int32 and z['a'].tolist() == [[7, 8], [9, 10]]; "
      "assert z['f'].dtype == np.float32 and z['f'].tolist() == [1.5, -2.0]; "
      "assert z['w'].dtype.kind == 'U' and z['w'].tolist() == ['circle', '\\u00e9t\\u00e9'], z['w']; print('ok')";
  std::string out;
  EXPECT_EQ(test::run_cmd(numpy_python() + " -c \"" + py + "\"", &out), 0) << out;
  fs::remove_all(dir);
}

// ---- absolute overlays and figures --------------------------------------------------------

TEST(HeatmapFigure, SilentMapsLeaveTheImageUnchanged) {
  const ImageU8 base = gradient_image(6, 4);
  EXPECT_EQ(mmn::overlay_absolute(base, std::vector<float>(24, 0.0f), 3.0f).rgb, base.rgb);
  EXPECT_EQ(mmn::overlay_absolute(base, std::vector<float>(24, -1.0f), 3.0f).rgb, base.rgb);
  std::vector<float> m(24, 0.0f);
  m[5] = 3.0f;   // the scale's maximum: JET's top colour at α = 0.5, as overlay() draws a map's maximum
  m[6] = 0.75f;  // a quarter of it
  const ImageU8 o = mmn::overlay_absolute(base, m, 3.0f);
  for (size_t p = 0; p < 24; ++p)
    if (p != 5 && p != 6)
      for (int c = 0; c < 3; ++c) EXPECT_EQ(o.rgb[3 * p + c], base.rgb[3 * p + c]);
  const ImageU8 old = mmn::overlay(base, m, 0.5f);
  for (int c = 0; c < 3; ++c) EXPECT_EQ(o.rgb[15 + c], old.rgb[15 + c]);
  const auto q = mmn::jet_rgb(63);  // u8(255 · 0.25), at α = 0.125
  for (int c = 0; c < 3; ++c)
    EXPECT_EQ(o.rgb[18 + c], static_cast<uint8_t>(std::nearbyint(0.875 * base.rgb[18 + c] + 0.125 * q[c])));
  // No positive scale: nothing coloured.
  EXPECT_EQ(mmn::overlay_absolute(base, m, 0.0f).rgb, base.rgb);
  EXPECT_THROW(mmn::overlay_absolute(base, std::vector<float>(23, 0.0f), 1.0f), mmn::Error);
}

TEST(HeatmapFigure, LayoutTitleImageAndColourBar) {
  for (auto [w, h] : std::vector<std::pair<int, int>>{{64, 64}, {336, 336}, {500, 300}, {30, 50}}) {
    const mmn::FigureLayout L = mmn::figure_layout(w, h, 3);
    EXPECT_GE(std::max(L.image_w, L.image_h), mmn::kFigureMinSide) << w << "x" << h;
    EXPECT_GE(L.scale, 1);
    EXPECT_EQ(L.image_w, w * L.scale);
    EXPECT_EQ(L.image_h, h * L.scale);
    EXPECT_EQ(L.image_y, L.title_h);
    EXPECT_GT(L.title_h, 3 * mmn::kLineH * L.text_scale);
    EXPECT_GT(L.bar_y, L.image_y + L.image_h);
    EXPECT_GT(L.height, L.label_y);
  }
  EXPECT_EQ(mmn::figure_layout(64, 64, 3).scale, 7);  // the bundled model's 64 px input → 448
  EXPECT_EQ(mmn::figure_layout(336, 336, 3).scale, 2);
  EXPECT_EQ(mmn::figure_layout(448, 448, 3).scale, 1);

  const ImageU8 base = gradient_image(8, 8);
  const std::vector<float> grid = {0, 0, -1, 0};  // silent
  const ImageU8 fig = mmn::heatmap_figure(base, grid.data(), 2, 2, 5.0f, {"img  \"cat\"  step 2", "rank 1: L0 U3", "x"},
                                          "shared scale of this noun");
  const mmn::FigureLayout L = mmn::figure_layout(8, 8, 3);
  ASSERT_EQ(fig.width, L.width);
  ASSERT_EQ(fig.height, L.height);
  EXPECT_GT(dark_pixels(fig, 0, L.title_h), 100);  // the title's ink
  EXPECT_EQ(crop(fig, L.image_x, L.image_y, L.image_w, L.image_h).rgb, mmn::upscale_nearest(base, L.scale).rgb);
  // The bar runs from grey (value 0: no colour) to JET's top colour at α = 0.5 over grey.
  const uint8_t* left = fig.row(L.bar_y + 3) + 3 * L.bar_x;
  const uint8_t* right = fig.row(L.bar_y + 3) + 3 * (L.bar_x + L.bar_w - 1);
  EXPECT_EQ(std::vector<uint8_t>(left, left + 3), (std::vector<uint8_t>{128, 128, 128}));
  const auto top = mmn::jet_rgb(255);
  for (int c = 0; c < 3; ++c) EXPECT_EQ(right[c], static_cast<uint8_t>(std::nearbyint(0.5 * 128 + 0.5 * top[c])));
  EXPECT_GT(dark_pixels(fig, L.label_y, L.height), 20);  // "0", "5" and the note

  EXPECT_EQ(mmn::format_value(0), "0");
  EXPECT_EQ(mmn::format_value(0.012345), "0.01235");
  EXPECT_EQ(mmn::format_value(-1.5), "-1.5");
  const ImageU8 t = mmn::titled_figure(base, {"a", "b"});
  EXPECT_EQ(t.width, 8);
  EXPECT_EQ(crop(t, 0, t.height - 8, 8, 8).rgb, base.rgb);
}

// ---- a real run ------------------------------------------------------------------------------

namespace {

// `find --heatmaps` on two held-out scenes of the bundled model, made once.
struct OutputsRun {
  fs::path base = test::temp_dir("outputs"), run = base / "run";
  std::string log;
  bool ok = false;
  OutputsRun() {
    fs::create_directories(base / "images");
    for (uint64_t i = 0; i < 2; ++i)
      mmn::write_png((base / "images" / ("scene" + std::to_string(i) + ".png")).string(),
                     mmn::make_scene(mmn::kShapesHeldOutSeed, i).image);
    ok = test::run_cmd(test::binary() + " find --model " + test::bundled_model() + " --images " +
                           (base / "images").string() + " --out " + run.string() + " --heatmaps --top-k 50 --quiet",
                       &log) == 0;
  }
  ~OutputsRun() {
    std::error_code ec;
    fs::remove_all(base, ec);
  }
  std::vector<fs::path> images() const {
    std::vector<fs::path> out;
    for (auto& e : fs::directory_iterator(run))
      if (e.is_directory()) out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
  }
};

const OutputsRun& outputs_run() {
  static OutputsRun r;
  return r;
}

json read_json(const fs::path& p) { return json::parse(mmn::read_file(p.string())); }

}  // namespace

TEST(FindOutputs, MasksAreBinaryGreyPngsAndOverlaysAreTitledFigures) {
  const OutputsRun& R = outputs_run();
  ASSERT_TRUE(R.ok) << R.log;
  int noun_dirs = 0, maps_checked = 0, silent_pixels = 0;
  for (const fs::path& im : R.images()) {
    const ImageU8 input = mmn::load_image((im / "input.png").string());
    const json res = read_json(im / "result.json");
    for (auto& e : fs::directory_iterator(im / "heatmaps")) {
      ++noun_dirs;
      const fs::path d = e.path();
      const json index = read_json(d / "maps.json");
      const mmn::NpyArray a = mmn::read_npy((d / "maps.npy").string());
      ASSERT_EQ(a.shape.size(), 3u);
      const int g = static_cast<int>(a.shape[1]);
      const std::vector<float> all = a.as_f32();
      ASSERT_EQ(static_cast<int64_t>(index.size()), a.shape[0]);
      const float hi = std::max(0.0f, *std::max_element(all.begin(), all.end()));
      for (size_t i = 0; i < index.size(); ++i) {
        const std::vector<float> m(all.begin() + i * g * g, all.begin() + (i + 1) * g * g);
        const std::string name = index[i]["name"];
        SCOPED_TRACE(d.string() + "/" + name);
        // maps.json: the map's own range and the noun's shared scale.
        EXPECT_FLOAT_EQ(index[i]["min"].get<float>(), *std::min_element(m.begin(), m.end()));
        EXPECT_FLOAT_EQ(index[i]["max"].get<float>(), *std::max_element(m.begin(), m.end()));
        EXPECT_EQ(index[i]["scale"], json::array({0.0, hi}));

        // The mask: one 8-bit grey channel, input-sized, 255 exactly on the 95th-percentile mask.
        const fs::path mask_png = d / (name + "_mask.png");
        EXPECT_EQ(png_depth_and_type(mask_png.string()), (std::pair<int, int>{8, 0}));
        const ImageU8 mask_img = mmn::load_image(mask_png.string());
        ASSERT_EQ(mask_img.width, input.width);
        ASSERT_EQ(mask_img.height, input.height);
        const std::vector<uint8_t> mask =
            mmn::mask_above_percentile(mmn::upsample_bilinear(m.data(), g, g, input.height, input.width), 95.0);
        size_t want = 0, got = 0;
        for (size_t p = 0; p < mask.size(); ++p) {
          want += mask[p];
          const uint8_t v = mask_img.rgb[3 * p];
          EXPECT_TRUE(v == 0 || v == 255);
          got += v == 255;
          EXPECT_EQ(v == 255, mask[p] == 1);
        }
        EXPECT_EQ(got, want);
        EXPECT_GT(want, 0u);
        // The old picture lives on as _mask_overlay.png.
        EXPECT_EQ(mmn::load_image((d / (name + "_mask_overlay.png")).string()).rgb, mmn::mask_image(input, mask).rgb);

        // The overlay: at least 448 px, a title strip with text, the image on the shared scale.
        const ImageU8 fig = mmn::load_image((d / (name + ".png")).string());
        const mmn::FigureLayout L = mmn::figure_layout(input.width, input.height, 3);
        ASSERT_EQ(fig.width, L.width);
        ASSERT_EQ(fig.height, L.height);
        EXPECT_GE(std::max(fig.width, fig.height), 448);
        EXPECT_GE(L.image_w, input.width);
        EXPECT_GT(dark_pixels(fig, 0, L.title_h), 200);
        const ImageU8 big = mmn::upscale_nearest(input, L.scale);
        const std::vector<float> up = mmn::upsample_bilinear(m.data(), g, g, L.image_h, L.image_w);
        const ImageU8 body = crop(fig, L.image_x, L.image_y, L.image_w, L.image_h);
        EXPECT_EQ(body.rgb, mmn::overlay_absolute(big, up, hi).rgb);
        // Where the map is silent (≤ 0) the image shows through unchanged.
        for (size_t p = 0; p < up.size(); ++p)
          if (up[p] <= 0.0f) {
            ++silent_pixels;
            for (int c = 0; c < 3; ++c) ASSERT_EQ(body.rgb[3 * p + c], big.rgb[3 * p + c]) << "pixel " << p;
          }
        ++maps_checked;
      }
    }
    EXPECT_EQ(noun_dirs > 0, !res["nouns"].empty());
  }
  EXPECT_GT(maps_checked, 0);
  EXPECT_GT(silent_pixels, 0);  // the run has silent regions, so the check above bit
}

TEST(FindOutputs, NeuronsNpzLabelsNeuronsNpy) {
  const OutputsRun& R = outputs_run();
  ASSERT_TRUE(R.ok) << R.log;
  int checked = 0;
  for (const fs::path& im : R.images()) {
    const json res = read_json(im / "result.json");
    if (res["nouns"].empty()) continue;
    const mmn::NpyArray flat = mmn::read_npy((im / "neurons.npy").string());
    const int64_t n = flat.shape[0], k = flat.shape[1];
    const std::vector<float> v = flat.as_f32();
    const auto m = read_npz_members(mmn::read_file((im / "neurons.npz").string()));
    std::set<std::string> names;
    for (auto& [name, _] : m) names.insert(name);
    EXPECT_EQ(names, (std::set<std::string>{"layer.npy", "unit.npy", "score.npy", "words.npy", "token_id.npy", "step.npy"}));
    const mmn::NpyArray layer = mmn::parse_npy(m.at("layer.npy"), "layer"), unit = mmn::parse_npy(m.at("unit.npy"), "unit"),
                        score = mmn::parse_npy(m.at("score.npy"), "score");
    for (const auto* a : {&layer, &unit}) {
      EXPECT_EQ(a->dtype, "<i4");
      EXPECT_EQ(a->shape, (std::vector<int64_t>{n, k}));
    }
    EXPECT_EQ(score.dtype, "<f4");
    EXPECT_EQ(score.shape, (std::vector<int64_t>{n, k}));
    const auto L = layer.as_i64(), U = unit.as_i64();
    const auto S = score.as_f32();
    for (int64_t i = 0; i < n * k; ++i) {
      EXPECT_EQ(L[i], static_cast<int64_t>(v[3 * i]));
      EXPECT_EQ(U[i], static_cast<int64_t>(v[3 * i + 1]));
      EXPECT_EQ(S[i], v[3 * i + 2]);
    }
    int64_t width = 0;
    const auto words = unicode_npy(m.at("words.npy"), &width);
    const auto tok = mmn::parse_npy(m.at("token_id.npy"), "token_id").as_i64();
    const auto step = mmn::parse_npy(m.at("step.npy"), "step").as_i64();
    ASSERT_EQ(static_cast<int64_t>(words.size()), n);
    ASSERT_EQ(static_cast<int64_t>(tok.size()), n);
    ASSERT_EQ(static_cast<int64_t>(step.size()), n);
    for (int64_t i = 0; i < n; ++i) {
      const json& noun = res["nouns"][i];
      const std::string w = noun["word"];
      EXPECT_EQ(words[i], std::u32string(w.begin(), w.end()));  // ASCII words
      EXPECT_EQ(tok[i], noun["token_id"].get<int64_t>());
      EXPECT_EQ(step[i], noun["step"].get<int64_t>());
    }
    if (have_numpy()) {
      const std::string py =
          "import json, numpy as np; d = '" + im.string() + "'; z = np.load(d + '/neurons.npz'); "
          "a = np.load(d + '/neurons.npy'); r = json.load(open(d + '/result.json')); "
          "assert z['layer'].dtype == np.int32 and z['unit'].dtype == np.int32 and z['score'].dtype == np.float32; "
          "assert (z['layer'] == a[:, :, 0]).all() and (z['unit'] == a[:, :, 1]).all() and (z['score'] == a[:, :, 2]).all(); "
          "assert z['words'].tolist() == [n['word'] for n in r['nouns']]; "
          "assert z['token_id'].tolist() == [n['token_id'] for n in r['nouns']]; "
          "assert z['step'].tolist() == [n['step'] for n in r['nouns']]; print('ok')";
      std::string out;
      EXPECT_EQ(test::run_cmd(numpy_python() + " -c \"" + py + "\"", &out), 0) << out;
    }
    ++checked;
  }
  EXPECT_GT(checked, 0);
  if (!have_numpy()) GTEST_SKIP() << "checked in C++; python3 with numpy is absent, so numpy.load was not tried";
}

TEST(FindOutputs, GeneratedPiecesSpellTheCaption) {
  const OutputsRun& R = outputs_run();
  ASSERT_TRUE(R.ok) << R.log;
  for (const fs::path& im : R.images()) {
    const json res = read_json(im / "result.json");
    ASSERT_TRUE(res.contains("generated_pieces"));
    const auto ids = res["generated_ids"].get<std::vector<int32_t>>();
    const auto pieces = res["generated_pieces"].get<std::vector<std::string>>();
    ASSERT_EQ(pieces.size(), ids.size());
    std::string joined;
    for (auto& p : pieces) joined += p;
    // Each word-start piece brings its space; the caption drops the first one.
    ASSERT_FALSE(joined.empty());
    EXPECT_EQ(joined[0], ' ');
    EXPECT_EQ(joined.substr(1), res["caption"].get<std::string>());
    // A noun's step holds the noun's (first) piece, with its space.
    for (auto& n : res["nouns"]) {
      const std::string w = n["word"], p = pieces[n["step"].get<size_t>()];
      EXPECT_GT(p.size(), 1u);
      EXPECT_EQ((" " + w).rfind(p, 0), 0u) << p << " vs " << w;
    }
  }
}

TEST(FindOutputs, CaptionPiecesOfOrdinaryAndSpecialIds) {
  const mmn::Tokenizer tok = mmn::Tokenizer::load(test::bundled_model());
  const std::string text = "a red circle and a blue square";
  std::vector<int32_t> ids = tok.encode(text, false);
  ids.push_back(tok.eos_id());
  ids.push_back(tok.vocab_size() + 7);  // past the tokenizer (padded model vocabularies)
  const std::vector<std::string> pieces = mmn::caption_pieces(tok, ids);
  ASSERT_EQ(pieces.size(), ids.size());
  EXPECT_EQ(pieces[pieces.size() - 2], "");  // EOS: special, not shown
  EXPECT_EQ(pieces.back(), "");
  std::string joined;
  for (auto& p : pieces) joined += p;
  EXPECT_EQ(joined, " " + text);
  EXPECT_EQ(joined.substr(1), mmn::caption_text(tok, ids));
}

// result.json must stay valid UTF-8 whatever is generated: a lone byte-fallback
// piece (one byte of a longer character) decodes to U+FFFD, never to a stray byte.
TEST(FindOutputs, EveryPieceIsValidUtf8) {
  const fs::path dir = test::temp_dir("pieces");
  std::string log;
  ASSERT_EQ(test::run_cmd(test::binary() + " make-random --preset tiny --dtype f32 --out " + (dir / "m").string(), &log), 0)
      << log;
  for (const std::string& model : {(dir / "m").string(), test::bundled_model()}) {
    const mmn::Tokenizer tok = mmn::Tokenizer::load(model);
    std::vector<int32_t> ids;
    for (int32_t id = 0; id < tok.vocab_size(); ++id) ids.push_back(id);
    const std::vector<std::string> pieces = mmn::caption_pieces(tok, ids);
    ASSERT_EQ(pieces.size(), ids.size());
    EXPECT_NO_THROW((void)json(pieces).dump()) << model;  // dump() throws on invalid UTF-8
  }
  fs::remove_all(dir);
}
