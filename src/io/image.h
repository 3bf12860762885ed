// Image input/output and the preprocessing the reference pipelines apply.
// Resizing reproduces Pillow's fixed-point BICUBIC bit for bit, so the uint8
// images we feed the vision tower equal the reference's exactly.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mmn {

// 8-bit RGB image, row-major HWC.
struct ImageU8 {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // height * width * 3
  uint8_t* row(int y) { return rgb.data() + static_cast<size_t>(y) * width * 3; }
  const uint8_t* row(int y) const { return rgb.data() + static_cast<size_t>(y) * width * 3; }
};

// Decodes PNG or JPEG (by content, not extension) to RGB the way PIL's
// Image.convert("RGB") does (grey expanded, alpha dropped, palette applied,
// 16-bit reduced). Throws mmn::Error naming the file for missing, empty,
// truncated or corrupt images.
ImageU8 load_image(const std::string& path);
// The same from bytes in memory; `path` names them in errors.
// Limits (docs/limits.md): 16384 px per side, 2^26 pixels, 512 MiB of JPEG
// decoder memory; a PNG must hold enough data for the pixels it declares.
ImageU8 decode_image(const std::string& data, const std::string& path);
// An image from h × w × 3 RGB bytes in memory (row-major, as a numpy uint8
// HxWx3 array), copied; the decoders' size limits apply. `what` names it in errors.
ImageU8 image_from_rgb(const uint8_t* rgb, int64_t h, int64_t w, const std::string& what);

// Writes an RGB PNG atomically.
void write_png(const std::string& path, const ImageU8& img);
// Writes a single-channel 8-bit greyscale PNG atomically (gray: height × width, row-major).
void write_png_gray(const std::string& path, const std::vector<uint8_t>& gray, int width, int height);

// Pillow's Image.resize(size, BICUBIC) on uint8 RGB (separable, a = -0.5,
// 22-bit fixed-point coefficients, clip to uint8 after each pass, a pass is
// skipped when that dimension is unchanged).
ImageU8 resize_bicubic(const ImageU8& img, int out_w, int out_h);

// transformers' center_crop: top = (h - ch) / 2, left = (w - cw) / 2; zero-pads
// (centred) when the image is smaller than the crop.
ImageU8 center_crop(const ImageU8& img, int crop_h, int crop_w);

// What preprocessor_config.json asks for. Understands CLIPImageProcessor
// (shortest-edge resize + center crop), BlipImageProcessor (square resize, no
// crop) and the older CLIPFeatureExtractor form (integer size/crop_size) used
// by mPLUG-Owl2.
struct ImageProcessorConfig {
  enum class Resize { ShortestEdge, Exact } resize = Resize::ShortestEdge;
  int size_short = 0;          // ShortestEdge: target short side
  int size_h = 0, size_w = 0;  // Exact: target size
  bool do_resize = true;
  bool do_center_crop = true;
  int crop_h = 0, crop_w = 0;
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  float mean[3] = {0, 0, 0};
  float std[3] = {1, 1, 1};
};

// Parses <dir>/preprocessor_config.json. Throws mmn::Error naming the file and
// key. Sizes (size, crop_size) above 4096 px are refused.
ImageProcessorConfig load_image_processor_config(const std::string& path);

struct PreprocessedImage {
  ImageU8 resized;                 // after resize (== input when no resize)
  ImageU8 cropped;                 // after center crop (== resized when no crop)
  bool center_cropped = false;     // the processor has a center-crop step
  int height = 0, width = 0;       // of pixel_values
  std::vector<float> pixel_values;  // CHW float32: (u8 * rescale - mean) / std
};

PreprocessedImage preprocess_image(const ImageU8& img, const ImageProcessorConfig& cfg);

}  // namespace mmn
