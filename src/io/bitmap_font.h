// A small bitmap font for labelling figures (PNG overlays have no other way to
// carry text). Printable ASCII (0x20–0x7E) only, drawn from the project's own
// 5×8 glyph table: 5 columns, rows 0–6 above the baseline, row 7 for
// descenders. A character occupies a cell of kCellW × kLineH pixels (one
// blank column, two blank rows of leading); everything scales by an integer
// factor, each glyph pixel becoming a scale × scale square.
//
// Text is UTF-8: every other character (a byte outside 0x20–0x7E, or one whole
// multi-byte sequence) is drawn as '?', so widths count characters, not bytes.
#pragma once
#include <array>
#include <cstdint>
#include <string>

#include "io/image.h"

namespace mmn {

constexpr int kGlyphW = 5, kGlyphH = 8;  // glyph bitmap
constexpr int kCellW = 6, kLineH = 10;   // advance per character and per line, at scale 1

// Whether pixel (x, y) of character c's glyph is set; x ∈ [0, 5), y ∈ [0, 8).
// Characters outside printable ASCII use the glyph of '?'.
bool glyph_pixel(char c, int x, int y);

// The characters draw_text draws for s: printable ASCII kept, anything else
// (one per UTF-8 sequence, or per stray byte) replaced by '?'.
std::string displayable(const std::string& s);

// Width in pixels of s drawn at `scale`: kCellW·scale per character, without
// the trailing blank column (0 for an empty string).
int text_width(const std::string& s, int scale = 1);

// Draws s with its top-left corner at (x, y) in colour rgb; pixels outside the
// image are clipped. Only set glyph pixels are touched (no background).
// Throws mmn::Error for scale < 1 or an inconsistent image.
void draw_text(ImageU8& img, int x, int y, const std::string& s, std::array<uint8_t, 3> rgb, int scale = 1);

// s shortened to fit max_width pixels at `scale`: unchanged when it fits,
// else cut and ended with "..." (or as many dots as fit).
std::string fit_text(const std::string& s, int max_width, int scale = 1);

}  // namespace mmn
