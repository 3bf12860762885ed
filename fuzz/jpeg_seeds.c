/* JPEG seeds for fuzz/corpus/fuzz_image (run by fuzz/make_corpus.py):
 * baseline, progressive, greyscale, CMYK and 4:2:0 images, and the hostile
 * headers of issue 10 made by patching a valid file's SOF: dimensions that
 * demand gigabytes (decoded, or as progressive coefficient buffers) from a
 * few hundred bytes.
 * Usage: jpeg_seeds OUTDIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

static unsigned char* encode(int w, int h, int comps, J_COLOR_SPACE cs, int progressive, int subsample,
                             int restart, unsigned long* size) {
  struct jpeg_compress_struct c;
  struct jpeg_error_mgr err;
  unsigned char* out = NULL;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  jpeg_mem_dest(&c, &out, size);
  c.image_width = w;
  c.image_height = h;
  c.input_components = comps;
  c.in_color_space = cs;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 85, TRUE);
  if (progressive) jpeg_simple_progression(&c);
  if (comps == 3 && !subsample) c.comp_info[0].h_samp_factor = c.comp_info[0].v_samp_factor = 1;
  c.restart_interval = restart;
  jpeg_start_compress(&c, TRUE);
  unsigned char* row = malloc((size_t)w * comps);
  while (c.next_scanline < c.image_height) {
    for (int x = 0; x < w * comps; ++x) row[x] = (unsigned char)(x * 13 + c.next_scanline * 29);
    JSAMPROW r = row;
    jpeg_write_scanlines(&c, &r, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  free(row);
  return out;
}

static void save(const char* dir, const char* name, const unsigned char* p, unsigned long n) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE* f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n) {
    perror(path);
    exit(1);
  }
  fclose(f);
}

/* Rewrites the frame header's height and width (SOF0 0xC0 or SOF2 0xC2). */
static void patch_sof(unsigned char* p, unsigned long n, int w, int h) {
  for (unsigned long i = 0; i + 9 < n; ++i)
    if (p[i] == 0xFF && (p[i + 1] == 0xC0 || p[i + 1] == 0xC2)) {
      p[i + 5] = h >> 8, p[i + 6] = h & 255, p[i + 7] = w >> 8, p[i + 8] = w & 255;
      return;
    }
}

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const char* dir = argv[1];
  unsigned long n;
  unsigned char* p;
  p = encode(16, 8, 3, JCS_RGB, 0, 0, 0, &n), save(dir, "valid-baseline.jpg", p, n), free(p);
  p = encode(16, 16, 3, JCS_RGB, 1, 1, 0, &n), save(dir, "valid-progressive-420.jpg", p, n), free(p);
  p = encode(8, 8, 1, JCS_GRAYSCALE, 0, 0, 0, &n), save(dir, "valid-grey.jpg", p, n), free(p);
  p = encode(8, 8, 4, JCS_CMYK, 0, 0, 0, &n), save(dir, "valid-cmyk.jpg", p, n), free(p);
  p = encode(24, 16, 3, JCS_RGB, 0, 1, 1, &n), save(dir, "valid-restart-420.jpg", p, n), free(p);
  p = encode(16, 8, 3, JCS_RGB, 0, 0, 0, &n);
  patch_sof(p, n, 8192, 8192), save(dir, "nasty-baseline-8192sq-tiny.jpg", p, n);
  patch_sof(p, n, 40000, 10), save(dir, "nasty-too-wide.jpg", p, n);
  save(dir, "nasty-truncated.jpg", p, n / 2), free(p);
  p = encode(16, 16, 3, JCS_RGB, 1, 0, 0, &n);
  patch_sof(p, n, 8192, 8192), save(dir, "nasty-progressive-8192sq-tiny.jpg", p, n), free(p);
  return 0;
}
