// Image decoding (libpng / libjpeg), PNG writing, and the preprocessing chain of
// the reference pipelines (transformers' CLIP/BLIP image processors on Pillow).
//
// Decoding mirrors what PIL's Image.open(...).convert("RGB") yields:
//   * grey is replicated, alpha is dropped (no compositing), palettes are applied
//     (an index past the end of PLTE maps to grey (i,i,i) like Pillow's palette
//     initialisation); 1/2/4-bit grey is scaled to 0..255 (x255, x85, x17);
//   * 16-bit RGB, RGBA and grey+alpha take the high byte of each sample (Pillow's
//     "RGB;16B"/"RGBA;16B"/"LA;16B" unpackers);
//   * 16-bit grey is *clamped*, min(v, 255), not scaled: Pillow opens it as mode
//     I/I;16 and its I->RGB conversion clips. Odd, but it is what the reference
//     model would see;
//   * 4-component JPEGs are read the way Pillow does (Adobe-inverted CMYK, then its
//     multiplicative CMYK->RGB), everything else via libjpeg's own YCbCr->RGB with
//     default settings (JDCT_ISLOW, fancy upsampling) as Pillow uses it;
//   * gamma, ICC profiles and EXIF orientation are ignored, as Image.open does.
// libpng/libjpeg report errors by longjmp; the setjmp frames hold only trivially
// destructible locals, and C++ objects live in the caller, so nothing leaks.

#include "io/image.h"

#include <cstddef>  // jpeglib.h needs size_t
#include <cstdio>   // and FILE
#include <jpeglib.h>
#include <jerror.h>  // JWRN_* message codes
#include <png.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/json_file.h"
#include "util/error.h"

namespace mmn {
namespace {

// Refuse absurd headers before allocating anything (docs/limits.md). 2^26
// pixels (8192 x 8192) keep the decoded RGB image under 192 MiB and the
// largest decoder buffers (16-bit Adam7 PNG, progressive JPEG coefficients)
// under 512 MiB.
constexpr int64_t kMaxSide = 16384;
constexpr int64_t kMaxPixels = int64_t{1} << 26;
// libjpeg's working memory (progressive coefficient buffers); see above.
constexpr long kMaxJpegMemory = 512L << 20;
// preprocessor_config.json sizes: real processors ask for 224..1024; 4096
// keeps the float pixel_values of one image under 200 MiB.
constexpr int64_t kMaxProcessorSize = 4096;
// zlib cannot expand data more than 1032-fold, so a PNG whose pixels need
// more raw bytes than that (plus slack for tiny files) is truncated, and is
// refused before its pixel buffer is allocated.
constexpr int64_t kMaxDeflateRatio = 1032;

void check_dimensions(const std::string& path, const char* kind, int64_t w, int64_t h) {
  if (w <= 0 || h <= 0) fail(path, ": corrupt ", kind, ": image size ", w, "x", h);
  if (w > kMaxSide || h > kMaxSide || w * h > kMaxPixels)
    fail(path, ": ", kind, " image too large (", w, "x", h, "; limit ", kMaxSide,
         " px per side and ", kMaxPixels, " pixels)");
}

// ---------------------------------------------------------------- PNG reading

struct PngReadCtx {
  const std::string* data = nullptr;
  size_t pos = 0;
  bool truncated = false;
  char msg[256] = {};
};

void png_on_error(png_structp png, png_const_charp msg) {
  auto* ctx = static_cast<PngReadCtx*>(png_get_error_ptr(png));
  std::snprintf(ctx->msg, sizeof ctx->msg, "%s", msg ? msg : "unknown error");
  png_longjmp(png, 1);
}

void png_on_warning(png_structp, png_const_charp) {}  // Pillow ignores them too

void png_read_mem(png_structp png, png_bytep out, png_size_t n) {
  auto* ctx = static_cast<PngReadCtx*>(png_get_io_ptr(png));
  if (n > ctx->data->size() - ctx->pos) {
    ctx->truncated = true;
    png_error(png, "unexpected end of file");
  }
  std::memcpy(out, ctx->data->data() + ctx->pos, n);
  ctx->pos += n;
}

// Frees libpng's read state however decoding ends.
struct PngReadGuard {
  png_structp png = nullptr;
  png_infop info = nullptr;
  ~PngReadGuard() {
    if (png) png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
  }
};

struct PngHeader {
  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0, interlace = 0;
  png_colorp palette = nullptr;
  int num_palette = 0;
};

// One native row (after png_set_packing: one byte per sample below 8 bits,
// big-endian pairs at 16 bits) to RGB, following Pillow's unpackers.
void png_row_to_rgb(const PngHeader& h, const uint8_t* in, uint8_t* out) {
  const size_t w = h.width;
  const bool b16 = h.bit_depth == 16;
  switch (h.color_type) {
    case PNG_COLOR_TYPE_GRAY:
      if (b16) {
        for (size_t x = 0; x < w; ++x, out += 3) {
          uint8_t v = in[2 * x] ? 255 : in[2 * x + 1];  // Pillow's I;16 -> RGB clips
          out[0] = out[1] = out[2] = v;
        }
      } else {
        const int scale = 255 / ((1 << h.bit_depth) - 1);
        for (size_t x = 0; x < w; ++x, out += 3) out[0] = out[1] = out[2] = uint8_t(in[x] * scale);
      }
      break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: {
      const size_t step = b16 ? 4 : 2;
      for (size_t x = 0; x < w; ++x, out += 3) out[0] = out[1] = out[2] = in[x * step];
      break;
    }
    case PNG_COLOR_TYPE_PALETTE:
      for (size_t x = 0; x < w; ++x, out += 3) {
        const int i = in[x];
        if (i < h.num_palette) {
          out[0] = h.palette[i].red, out[1] = h.palette[i].green, out[2] = h.palette[i].blue;
        } else {
          out[0] = out[1] = out[2] = uint8_t(i);
        }
      }
      break;
    case PNG_COLOR_TYPE_RGB:
    case PNG_COLOR_TYPE_RGB_ALPHA: {
      const size_t bps = b16 ? 2 : 1;
      const size_t step = (h.color_type == PNG_COLOR_TYPE_RGB ? 3 : 4) * bps;
      for (size_t x = 0; x < w; ++x, out += 3, in += step) {
        out[0] = in[0], out[1] = in[bps], out[2] = in[2 * bps];
      }
      break;
    }
  }
}

// Runs libpng; returns false with ctx->msg set on a libpng error. Only trivially
// destructible locals live in this frame (see the note at the top of the file).
bool png_decode(PngReadGuard& g, PngReadCtx& ctx, const std::string& path, ImageU8& img,
                std::vector<uint8_t>& native) {
  if (setjmp(png_jmpbuf(g.png))) return false;
  png_set_read_fn(g.png, &ctx, png_read_mem);
  png_read_info(g.png, g.info);

  PngHeader h;
  png_get_IHDR(g.png, g.info, &h.width, &h.height, &h.bit_depth, &h.color_type, &h.interlace,
               nullptr, nullptr);
  check_dimensions(path, "PNG", h.width, h.height);  // throws: no libpng frame is active
  if (h.color_type == PNG_COLOR_TYPE_PALETTE &&
      !png_get_PLTE(g.png, g.info, &h.palette, &h.num_palette))
    png_error(g.png, "palette image without PLTE chunk");
  if (h.bit_depth < 8) png_set_packing(g.png);
  const int passes = png_set_interlace_handling(g.png);
  png_read_update_info(g.png, g.info);

  const size_t rowbytes = png_get_rowbytes(g.png, g.info);
  img.width = int(h.width);
  img.height = int(h.height);
  img.rgb.assign(size_t(h.width) * h.height * 3, 0);
  if (passes == 1) {
    native.resize(rowbytes);  // stream row by row
    for (png_uint_32 y = 0; y < h.height; ++y) {
      png_read_row(g.png, native.data(), nullptr);
      png_row_to_rgb(h, native.data(), img.row(int(y)));
    }
  } else {
    native.assign(rowbytes * h.height, 0);  // Adam7 needs the whole image
    for (int p = 0; p < passes; ++p)
      for (png_uint_32 y = 0; y < h.height; ++y)
        png_read_row(g.png, native.data() + y * rowbytes, nullptr);
    for (png_uint_32 y = 0; y < h.height; ++y)
      png_row_to_rgb(h, native.data() + y * rowbytes, img.row(int(y)));
  }
  png_read_end(g.png, nullptr);  // a missing IEND counts as truncation
  return true;
}

// Raw (filtered, uncompressed) bytes a PNG of this header needs at least.
int64_t png_raw_bytes(int64_t w, int64_t h, int bit_depth, int color_type) {
  const int channels = color_type == 2 ? 3 : color_type == 4 ? 2 : color_type == 6 ? 4 : 1;
  const int64_t row_bits = w * channels * bit_depth;
  return h * (1 + (row_bits + 7) / 8);
}

ImageU8 load_png(const std::string& path, const std::string& data) {
  // IHDR must come first; refuse absurd sizes before libpng reads further.
  if (data.size() >= 26 && data.compare(12, 4, "IHDR") == 0) {
    auto be32 = [&](size_t at) {
      const auto* b = reinterpret_cast<const unsigned char*>(data.data()) + at;
      return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | b[3];
    };
    const int64_t w = be32(16), h = be32(20);
    check_dimensions(path, "PNG", w, h);
    const int depth = std::clamp(int(static_cast<uint8_t>(data[24])), 1, 16);
    if (png_raw_bytes(w, h, depth, static_cast<uint8_t>(data[25])) >
        kMaxDeflateRatio * static_cast<int64_t>(data.size()) + 65536)
      fail(path, ": truncated PNG (", w, "x", h, " pixels declared, more than its ", data.size(),
           " bytes can hold)");
  }
  PngReadCtx ctx;
  ctx.data = &data;
  PngReadGuard g;
  g.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error, png_on_warning);
  if (!g.png) fail(path, ": cannot initialise libpng");
  g.info = png_create_info_struct(g.png);
  if (!g.info) fail(path, ": cannot initialise libpng");
  ImageU8 img;
  std::vector<uint8_t> native;
  if (!png_decode(g, ctx, path, img, native)) {
    if (ctx.truncated) fail(path, ": truncated PNG (unexpected end of file)");
    fail(path, ": corrupt PNG: ", ctx.msg);
  }
  return img;
}

// --------------------------------------------------------------- JPEG reading

struct JpegErrCtx {
  jpeg_error_mgr pub;  // first member: libjpeg hands us a pointer to it
  std::jmp_buf jump;
  bool truncated = false;
  char msg[JMSG_LENGTH_MAX] = {};
};

void jpeg_on_error(j_common_ptr c) {
  auto* e = reinterpret_cast<JpegErrCtx*>(c->err);
  (*c->err->format_message)(c, e->msg);
  std::longjmp(e->jump, 1);
}

// Warnings that leave the decoded pixels intact (Pillow silently accepts them).
bool benign_jpeg_warning(int code) {
  switch (code) {
    case JWRN_ADOBE_XFORM:
    case JWRN_BOGUS_PROGRESSION:
    case JWRN_EXTRANEOUS_DATA:
    case JWRN_JFIF_MAJOR:
    case JWRN_NOT_SEQUENTIAL:
    case JWRN_BOGUS_ICC:
      return true;
    default:
      return false;
  }
}

// libjpeg pads a truncated stream with a fake EOI and carries on after a warning,
// and corrupt entropy data only warns too: both become errors here.
void jpeg_on_message(j_common_ptr c, int level) {
  if (level >= 0) return;  // trace messages
  auto* e = reinterpret_cast<JpegErrCtx*>(c->err);
  if (benign_jpeg_warning(c->err->msg_code)) return;
  e->truncated = c->err->msg_code == JWRN_JPEG_EOF;
  (*c->err->format_message)(c, e->msg);
  std::longjmp(e->jump, 1);
}

void jpeg_silent(j_common_ptr) {}

// Progressive files with thousands of tiny scans make decoding crawl (a known
// libjpeg denial of service); real encoders emit about ten.
constexpr int kMaxJpegScans = 1000;
void jpeg_on_progress(j_common_ptr c) {
  if (!c->is_decompressor) return;
  auto* d = reinterpret_cast<j_decompress_ptr>(c);
  if (d->input_scan_number > kMaxJpegScans) {
    auto* e = reinterpret_cast<JpegErrCtx*>(c->err);
    std::snprintf(e->msg, sizeof e->msg, "more than %d progressive scans", kMaxJpegScans);
    std::longjmp(e->jump, 1);
  }
}

// Zero-initialised so destroying is safe even if jpeg_create_decompress failed.
struct JpegGuard {
  jpeg_decompress_struct cinfo{};
  jpeg_progress_mgr progress{};
  ~JpegGuard() { jpeg_destroy_decompress(&cinfo); }
};

// Pillow reads any 4-component JPEG as Adobe-inverted CMYK and converts with
// R = nk - nk*C/255 (rounded the way its MULDIV255 does), nk = 255 - K.
uint8_t pil_cmyk_channel(uint8_t raw_c, uint8_t raw_k) {
  const int c = 255 - raw_c, nk = raw_k;  // PIL's "CMYK;I": C = ~raw, so 255 - K = raw_k
  const int t = c * nk + 128;
  return uint8_t(std::clamp(nk - (((t >> 8) + t) >> 8), 0, 255));
}

bool jpeg_decode(JpegGuard& g, JpegErrCtx& err, const std::string& path, const std::string& data,
                 ImageU8& img, std::vector<uint8_t>& scan) {
  jpeg_decompress_struct& ci = g.cinfo;
  if (setjmp(err.jump)) return false;
  jpeg_create_decompress(&ci);
  ci.mem->max_memory_to_use = kMaxJpegMemory;  // beyond it libjpeg fails (no backing store)
  g.progress.progress_monitor = jpeg_on_progress;
  ci.progress = &g.progress;
  jpeg_mem_src(&ci, reinterpret_cast<const unsigned char*>(data.data()),
               static_cast<unsigned long>(data.size()));
  jpeg_read_header(&ci, TRUE);
  check_dimensions(path, "JPEG", ci.image_width, ci.image_height);  // throws, outside libjpeg

  int channels;
  if (ci.num_components == 4) {
    ci.out_color_space = JCS_CMYK;  // libjpeg turns YCCK into CMYK for us
    channels = 4;
  } else if (ci.jpeg_color_space == JCS_GRAYSCALE) {
    ci.out_color_space = JCS_GRAYSCALE;
    channels = 1;
  } else {
    ci.out_color_space = JCS_RGB;
    channels = 3;
  }
  jpeg_start_decompress(&ci);
  if (int(ci.output_components) != channels) {
    std::snprintf(err.msg, sizeof err.msg, "unexpected output component count %d",
                  ci.output_components);
    return false;
  }
  img.width = int(ci.output_width);
  img.height = int(ci.output_height);
  scan.resize(size_t(img.width) * channels);
  while (ci.output_scanline < ci.output_height) {
    const int y = int(ci.output_scanline);
    JSAMPROW row = scan.data();
    if (jpeg_read_scanlines(&ci, &row, 1) != 1) {
      std::snprintf(err.msg, sizeof err.msg, "decoder returned no scanline");
      return false;
    }
    // Grown row by row (geometrically): a tiny file declaring 8192 x 8192
    // fails at its first missing scanline, before claiming 192 MiB.
    img.rgb.resize(size_t(y + 1) * img.width * 3);
    uint8_t* out = img.row(y);
    const uint8_t* in = scan.data();
    for (int x = 0; x < img.width; ++x, out += 3, in += channels) {
      if (channels == 3) {
        out[0] = in[0], out[1] = in[1], out[2] = in[2];
      } else if (channels == 1) {
        out[0] = out[1] = out[2] = in[0];
      } else {
        for (int k = 0; k < 3; ++k) out[k] = pil_cmyk_channel(in[k], in[3]);
      }
    }
  }
  jpeg_finish_decompress(&ci);  // reads up to EOI: a missing EOI counts as truncation
  return true;
}

ImageU8 load_jpeg(const std::string& path, const std::string& data) {
  JpegErrCtx err;  // outlives the guard: jpeg_destroy may still report through it
  JpegGuard g;
  g.cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = jpeg_on_error;
  err.pub.emit_message = jpeg_on_message;
  err.pub.output_message = jpeg_silent;
  ImageU8 img;
  std::vector<uint8_t> scan;
  if (!jpeg_decode(g, err, path, data, img, scan)) {
    if (err.truncated) fail(path, ": truncated JPEG (premature end of data)");
    if (err.pub.msg_code == JERR_NO_BACKING_STORE)
      fail(path, ": JPEG needs more than ", kMaxJpegMemory >> 20, " MiB of decoder memory");
    fail(path, ": corrupt JPEG: ", err.msg);
  }
  img.rgb.shrink_to_fit();
  return img;
}

const char* sniff_other_format(const std::string& d) {
  auto starts = [&](const char* magic, size_t n) { return d.size() >= n && d.compare(0, n, magic, n) == 0; };
  if (starts("GIF8", 4)) return "GIF";
  if (starts("BM", 2)) return "BMP";
  if (starts("RIFF", 4) && d.size() >= 12 && d.compare(8, 4, "WEBP") == 0) return "WebP";
  if (starts("II*\0", 4) || starts("MM\0*", 4)) return "TIFF";
  return nullptr;
}

// --------------------------------------------------------------- PNG writing

struct PngWriteCtx {
  char msg[256] = {};
};

void png_on_write_error(png_structp png, png_const_charp msg) {
  auto* ctx = static_cast<PngWriteCtx*>(png_get_error_ptr(png));
  std::snprintf(ctx->msg, sizeof ctx->msg, "%s", msg ? msg : "unknown error");
  png_longjmp(png, 1);
}

struct PngWriteGuard {
  png_structp png = nullptr;
  png_infop info = nullptr;
  ~PngWriteGuard() {
    if (png) png_destroy_write_struct(&png, info ? &info : nullptr);
  }
};

// 8-bit rows of `channels` samples (1: grey, 3: RGB), row-major.
bool png_encode(PngWriteGuard& g, std::FILE* f, const uint8_t* px, int width, int height, int channels) {
  if (setjmp(png_jmpbuf(g.png))) return false;
  png_init_io(g.png, f);
  png_set_IHDR(g.png, g.info, png_uint_32(width), png_uint_32(height), 8,
               channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(g.png, g.info);
  const size_t stride = static_cast<size_t>(width) * channels;
  for (int y = 0; y < height; ++y) png_write_row(g.png, const_cast<png_bytep>(px + stride * y));
  png_write_end(g.png, nullptr);
  return true;
}

void write_png_channels(const std::string& path, const uint8_t* px, int width, int height, int channels) {
  write_stream_atomic(path, [&](std::FILE* f) {
    PngWriteCtx ctx;
    PngWriteGuard g;
    g.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_write_error, png_on_warning);
    if (!g.png) fail(path, ": cannot initialise libpng");
    g.info = png_create_info_struct(g.png);
    if (!g.info) fail(path, ": cannot initialise libpng");
    if (!png_encode(g, f, px, width, height, channels)) fail(path, ": cannot write PNG: ", ctx.msg);
  });
}

// ---------------------------------------------------------- Pillow's resampler

constexpr int kPrecisionBits = 32 - 8 - 2;

// Pillow's resampler is built without FMA contraction; a fused multiply-add in the
// coefficient maths (-march=native allows it) could flip a fixed-point rounding
// and break bit-exactness. Scoped to these two functions so inlining elsewhere is
// unaffected.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif

double bicubic_filter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// Per output position: the first input index, the tap count and ksize fixed-point
// weights. Computed exactly as Pillow's precompute_coeffs + normalize_coeffs_8bpc.
struct Coeffs {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> k;
};

Coeffs precompute_coeffs(int in_size, int out_size) {
  constexpr double filter_support = 2.0;
  const double in0 = 0.0, in1 = in_size;  // full-image box
  const double scale = (in1 - in0) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = filter_support * filterscale;

  Coeffs c;
  c.ksize = int(std::ceil(support)) * 2 + 1;
  c.first.resize(out_size);
  c.count.resize(out_size);
  c.k.assign(size_t(out_size) * c.ksize, 0);
  std::vector<double> w(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = int(center - support + 0.5);  // C truncation, as in Pillow
    if (xmin < 0) xmin = 0;
    int xmax = int(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      w[x] = bicubic_filter((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    int32_t* k = &c.k[size_t(xx) * c.ksize];
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? w[x] / ww : w[x];
      k[x] = v < 0 ? int32_t(-0.5 + v * (1 << kPrecisionBits))
                   : int32_t(0.5 + v * (1 << kPrecisionBits));
    }
    c.first[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

#if !defined(__clang__) && defined(__GNUC__)
#pragma GCC pop_options
#endif

inline uint8_t clip8(int32_t v) {
  if (v >= (1 << kPrecisionBits << 8)) return 255;
  if (v <= 0) return 0;
  return uint8_t(v >> kPrecisionBits);
}

// Sums stay well inside int32: |weights| sum to < 1.2 * 2^22, times 255.
ImageU8 resample_horizontal(const ImageU8& in, int out_w) {
  const Coeffs c = precompute_coeffs(in.width, out_w);
  ImageU8 out;
  out.width = out_w;
  out.height = in.height;
  out.rgb.resize(size_t(out_w) * in.height * 3);
  for (int y = 0; y < in.height; ++y) {
    const uint8_t* src = in.row(y);
    uint8_t* dst = out.row(y);
    for (int xx = 0; xx < out_w; ++xx, dst += 3) {
      const int32_t* k = &c.k[size_t(xx) * c.ksize];
      const uint8_t* s = src + size_t(c.first[xx]) * 3;
      int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
      for (int x = 0; x < c.count[xx]; ++x, s += 3) {
        s0 += s[0] * k[x];
        s1 += s[1] * k[x];
        s2 += s[2] * k[x];
      }
      dst[0] = clip8(s0), dst[1] = clip8(s1), dst[2] = clip8(s2);
    }
  }
  return out;
}

ImageU8 resample_vertical(const ImageU8& in, int out_h) {
  const Coeffs c = precompute_coeffs(in.height, out_h);
  ImageU8 out;
  out.width = in.width;
  out.height = out_h;
  out.rgb.resize(size_t(in.width) * out_h * 3);
  const size_t stride = size_t(in.width) * 3;
  for (int yy = 0; yy < out_h; ++yy) {
    const int32_t* k = &c.k[size_t(yy) * c.ksize];
    const uint8_t* base = in.row(c.first[yy]);
    uint8_t* dst = out.row(yy);
    for (size_t i = 0; i < stride; ++i) {
      int32_t s = 1 << (kPrecisionBits - 1);
      for (int y = 0; y < c.count[yy]; ++y) s += base[y * stride + i] * k[y];
      dst[i] = clip8(s);
    }
  }
  return out;
}

// ----------------------------------------------------------- processor config

using nlohmann::json;

[[noreturn]] void bad_key(const std::string& path, const char* key, const char* expected) {
  fail(path, ": key '", key, "': expected ", expected);
}

bool get_bool(const json& j, const std::string& path, const char* key, bool def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_boolean()) bad_key(path, key, "true or false");
  return it->get<bool>();
}

double get_number(const json& j, const std::string& path, const char* key, double def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_number()) bad_key(path, key, "a number");
  return it->get<double>();
}

int positive_int(const json& v, const std::string& path, const char* key) {
  if (auto x = json_int(v, 1, kMaxProcessorSize); x && v.is_number_integer()) return int(*x);
  if (v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() > 0))
    fail(path, ": key '", key, "': ", v.dump(), " is larger than the ", kMaxProcessorSize, "-pixel limit");
  bad_key(path, key, "a positive integer size");
}

// image_mean / image_std: three numbers, or one broadcast to all channels.
void get_triple(const json& j, const std::string& path, const char* key, float out[3]) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  if (it->is_number()) {
    out[0] = out[1] = out[2] = float(it->get<double>());
    return;
  }
  if (!it->is_array() || it->size() != 3) bad_key(path, key, "a list of 3 numbers");
  for (int c = 0; c < 3; ++c) {
    if (!(*it)[c].is_number()) bad_key(path, key, "a list of 3 numbers");
    out[c] = float((*it)[c].get<double>());
  }
}

}  // namespace

// ================================================================= public API

ImageU8 load_image(const std::string& path) { return decode_image(read_file(path), path); }

ImageU8 image_from_rgb(const uint8_t* rgb, int64_t h, int64_t w, const std::string& what) {
  check_dimensions(what, "RGB", w, h);
  ImageU8 img;
  img.width = static_cast<int>(w);
  img.height = static_cast<int>(h);
  img.rgb.assign(rgb, rgb + h * w * 3);
  return img;
}

ImageU8 decode_image(const std::string& data, const std::string& path) {
  if (data.empty()) fail(path, ": empty file, expected a PNG or JPEG image");
  static const unsigned char kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  const auto* u = reinterpret_cast<const unsigned char*>(data.data());
  if (data.size() >= 8 && std::memcmp(u, kPng, 8) == 0) return load_png(path, data);
  if (data.size() >= 3 && u[0] == 0xFF && u[1] == 0xD8 && u[2] == 0xFF) return load_jpeg(path, data);
  if (const char* other = sniff_other_format(data))
    fail(path, ": unsupported image format (", other, "); only PNG and JPEG are supported");
  fail(path, ": not a PNG or JPEG image");
}

void write_png(const std::string& path, const ImageU8& img) {
  if (img.width <= 0 || img.height <= 0 ||
      img.rgb.size() != size_t(img.width) * img.height * 3)
    fail(path, ": cannot write PNG: invalid image ", img.width, "x", img.height, " with ",
         img.rgb.size(), " bytes");
  write_png_channels(path, img.rgb.data(), img.width, img.height, 3);
}

void write_png_gray(const std::string& path, const std::vector<uint8_t>& gray, int width, int height) {
  if (width <= 0 || height <= 0 || gray.size() != size_t(width) * height)
    fail(path, ": cannot write PNG: invalid grey image ", width, "x", height, " with ", gray.size(), " bytes");
  write_png_channels(path, gray.data(), width, height, 1);
}

ImageU8 resize_bicubic(const ImageU8& img, int out_w, int out_h) {
  if (out_w <= 0 || out_h <= 0 || out_w > kMaxSide || out_h > kMaxSide)
    fail("resize_bicubic: invalid target size ", out_w, "x", out_h, " (limit ", kMaxSide, " px per side)");
  if (img.width <= 0 || img.height <= 0 || img.rgb.size() != size_t(img.width) * img.height * 3)
    fail("resize_bicubic: invalid input image ", img.width, "x", img.height);
  // The horizontal pass makes an out_w x height intermediate.
  if (int64_t{out_w} * out_h > kMaxPixels || int64_t{out_w} * img.height > kMaxPixels)
    fail("resize_bicubic: resizing ", img.width, "x", img.height, " to ", out_w, "x", out_h, " exceeds the ",
         kMaxPixels, "-pixel limit");
  // Pillow: horizontal pass first, and each pass only when its side changes.
  if (out_w == img.width && out_h == img.height) return img;
  if (out_h == img.height) return resample_horizontal(img, out_w);
  if (out_w == img.width) return resample_vertical(img, out_h);
  return resample_vertical(resample_horizontal(img, out_w), out_h);
}

ImageU8 center_crop(const ImageU8& img, int crop_h, int crop_w) {
  if (crop_h <= 0 || crop_w <= 0 || int64_t{crop_h} * crop_w > kMaxPixels)
    fail("center_crop: invalid crop size ", crop_w, "x", crop_h);
  // Per axis: crop from (in - out) // 2 when the image is large enough, else pad
  // with zeros and place the image at ceil((out - in) / 2), as transformers does.
  auto axis = [](int in, int out, int& src0, int& dst0, int& n) {
    if (in >= out) {
      src0 = (in - out) / 2, dst0 = 0, n = out;
    } else {
      src0 = 0, dst0 = (out - in + 1) / 2, n = in;
    }
  };
  int sy, dy, ny, sx, dx, nx;
  axis(img.height, crop_h, sy, dy, ny);
  axis(img.width, crop_w, sx, dx, nx);
  ImageU8 out;
  out.width = crop_w;
  out.height = crop_h;
  out.rgb.assign(size_t(crop_w) * crop_h * 3, 0);
  for (int y = 0; y < ny; ++y)
    std::memcpy(out.row(dy + y) + size_t(dx) * 3, img.row(sy + y) + size_t(sx) * 3, size_t(nx) * 3);
  return out;
}

ImageProcessorConfig load_image_processor_config(const std::string& path_in) {
  std::string path = path_in;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    path = (std::filesystem::path(path) / "preprocessor_config.json").string();
  const std::string text = read_file(path);
  check_json_depth(text, path);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail(path, ": invalid JSON: ", e.what());
  }
  if (!j.is_object()) fail(path, ": expected a JSON object at the top level");

  std::string type;
  for (const char* key : {"image_processor_type", "feature_extractor_type"}) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    if (!it->is_string()) bad_key(path, key, "a string");
    type = it->get<std::string>();
    break;
  }
  const bool blip = type == "BlipImageProcessor";
  const bool clip = type.empty() || type == "CLIPImageProcessor" || type == "CLIPFeatureExtractor";
  if (!blip && !clip)
    fail(path, ": unsupported image processor '", type,
         "' (supported: CLIPImageProcessor, CLIPFeatureExtractor, BlipImageProcessor)");

  // Defaults are transformers' (4.37) constructor defaults for each class.
  ImageProcessorConfig cfg;
  const float clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
  const float clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
  std::copy(clip_mean, clip_mean + 3, cfg.mean);
  std::copy(clip_std, clip_std + 3, cfg.std);
  cfg.do_resize = get_bool(j, path, "do_resize", true);
  cfg.do_rescale = get_bool(j, path, "do_rescale", true);
  cfg.rescale_factor = get_number(j, path, "rescale_factor", 1.0 / 255.0);
  cfg.do_normalize = get_bool(j, path, "do_normalize", true);
  get_triple(j, path, "image_mean", cfg.mean);
  get_triple(j, path, "image_std", cfg.std);
  for (int c = 0; c < 3; ++c)
    if (cfg.do_normalize && cfg.std[c] == 0.0f) bad_key(path, "image_std", "non-zero values");

  if (auto it = j.find("resample"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer()) bad_key(path, "resample", "an integer");
    if (it->get<int64_t>() != 3)
      fail(path, ": key 'resample': only 3 (BICUBIC) is supported, got ", it->get<int64_t>());
  }

  // size: an integer means "shortest edge" for CLIP (default_to_square=False) and
  // a square for BLIP; a dict holds shortest_edge or height/width.
  auto size_it = j.find("size");
  const bool has_size = size_it != j.end() && !size_it->is_null();
  if (blip) {
    cfg.resize = ImageProcessorConfig::Resize::Exact;
    cfg.size_h = cfg.size_w = 384;
    cfg.do_center_crop = false;  // BlipImageProcessor has no crop step
    if (has_size) {
      if (size_it->is_number_integer()) {
        cfg.size_h = cfg.size_w = positive_int(*size_it, path, "size");
      } else if (size_it->is_object() && size_it->contains("height") && size_it->contains("width")) {
        cfg.size_h = positive_int((*size_it)["height"], path, "size.height");
        cfg.size_w = positive_int((*size_it)["width"], path, "size.width");
      } else {
        bad_key(path, "size", "an integer or {\"height\", \"width\"}");
      }
    }
  } else {
    cfg.resize = ImageProcessorConfig::Resize::ShortestEdge;
    cfg.size_short = 224;
    if (has_size) {
      if (size_it->is_number_integer()) {
        cfg.size_short = positive_int(*size_it, path, "size");
      } else if (size_it->is_object() && size_it->contains("shortest_edge")) {
        cfg.size_short = positive_int((*size_it)["shortest_edge"], path, "size.shortest_edge");
      } else if (size_it->is_object() && size_it->contains("height") && size_it->contains("width")) {
        cfg.resize = ImageProcessorConfig::Resize::Exact;
        cfg.size_h = positive_int((*size_it)["height"], path, "size.height");
        cfg.size_w = positive_int((*size_it)["width"], path, "size.width");
      } else {
        bad_key(path, "size", "an integer, {\"shortest_edge\"} or {\"height\", \"width\"}");
      }
    }
    cfg.do_center_crop = get_bool(j, path, "do_center_crop", true);
    cfg.crop_h = cfg.crop_w = 224;
    if (auto it = j.find("crop_size"); it != j.end() && !it->is_null()) {
      if (it->is_number_integer()) {
        cfg.crop_h = cfg.crop_w = positive_int(*it, path, "crop_size");
      } else if (it->is_object() && it->contains("height") && it->contains("width")) {
        cfg.crop_h = positive_int((*it)["height"], path, "crop_size.height");
        cfg.crop_w = positive_int((*it)["width"], path, "crop_size.width");
      } else {
        bad_key(path, "crop_size", "an integer or {\"height\", \"width\"}");
      }
    }
  }
  return cfg;
}

PreprocessedImage preprocess_image(const ImageU8& img, const ImageProcessorConfig& cfg) {
  PreprocessedImage out;
  if (!cfg.do_resize) {
    out.resized = img;
  } else if (cfg.resize == ImageProcessorConfig::Resize::Exact) {
    out.resized = resize_bicubic(img, cfg.size_w, cfg.size_h);
  } else {
    // transformers' get_resize_output_image_size: long = int(size * long / short).
    const bool w_short = img.width <= img.height;
    const int64_t shrt = w_short ? img.width : img.height;
    const int64_t lng = w_short ? img.height : img.width;
    if (shrt <= 0 || cfg.size_short <= 0) fail("preprocess_image: invalid image or target size");
    const int64_t new_long = static_cast<int64_t>(double(int64_t{cfg.size_short} * lng) / double(shrt));
    // A sliver image would be stretched beyond any sane size (and int).
    if (new_long > kMaxSide)
      fail("preprocess_image: a ", img.width, "x", img.height, " image resized to shortest edge ", cfg.size_short,
           " would be ", new_long, " px long (limit ", kMaxSide, ")");
    out.resized = w_short ? resize_bicubic(img, cfg.size_short, int(new_long))
                          : resize_bicubic(img, int(new_long), cfg.size_short);
  }
  out.cropped = cfg.do_center_crop ? center_crop(out.resized, cfg.crop_h, cfg.crop_w) : out.resized;
  out.center_cropped = cfg.do_center_crop;

  const ImageU8& c = out.cropped;
  out.height = c.height;
  out.width = c.width;
  const size_t plane = size_t(c.width) * c.height;
  out.pixel_values.resize(plane * 3);
  // numpy: float32(uint8 * scale) with the product in float64, then
  // (x - mean) / std entirely in float32.
  for (size_t i = 0; i < plane; ++i) {
    for (int ch = 0; ch < 3; ++ch) {
      const uint8_t u = c.rgb[i * 3 + ch];
      float x = cfg.do_rescale ? float(double(u) * cfg.rescale_factor) : float(u);
      if (cfg.do_normalize) x = (x - cfg.mean[ch]) / cfg.std[ch];
      out.pixel_values[size_t(ch) * plane + i] = x;
    }
  }
  return out;
}

}  // namespace mmn
