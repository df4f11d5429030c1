#ifndef INCEPTION_IMAGE_H
#define INCEPTION_IMAGE_H

/*
 * Thin C glue over libjpeg(-turbo) and libpng.
 *
 * Both libraries report fatal errors by calling a handler that must not return; the glue installs
 * handlers that format the library's message and longjmp back into the decode function, which
 * frees everything and returns a status code. A corrupt or hostile file therefore never aborts the
 * process. All decoding is from a memory buffer; the result is 8-bit RGB, interleaved, row-major.
 */

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes returned by the decode functions. */
enum {
    II_OK = 0,
    II_ERR_CORRUPT = 1,        /* the library rejected the data; message says why */
    II_ERR_TRUNCATED = 2,      /* the data ended before the image was complete */
    II_ERR_TOO_MANY_PIXELS = 3,/* header dimensions exceed max_pixels; width/height are set */
    II_ERR_OUT_OF_MEMORY = 4,
    II_ERR_BAD_ARGUMENT = 5
};

/* JPEG inverse DCT. TensorFlow's decode_jpeg uses II_DCT_FAST unless dct_method='INTEGER_ACCURATE'. */
enum { II_DCT_FAST = 0, II_DCT_ACCURATE = 1 };

/* What to do with an alpha channel (PNG alpha channel or tRNS transparency). */
enum {
    II_ALPHA_COMPOSITE_WHITE = 0, /* out = c*a + 255*(1-a), rounded */
    II_ALPHA_IGNORE = 1           /* drop alpha, keep colour (what TF's decode_png(channels=3) does) */
};

typedef struct ii_options {
    int64_t max_pixels;   /* refuse images with width*height above this (checked before allocating) */
    int32_t dct_method;   /* II_DCT_* */
    int32_t alpha_mode;   /* II_ALPHA_* */
    int32_t max_scans;    /* refuse progressive JPEGs with more scans than this (0: 1000) */
} ii_options;

typedef struct ii_image {
    int32_t width;        /* set on success, and on II_ERR_TOO_MANY_PIXELS */
    int32_t height;
    uint8_t *pixels;      /* width*height*3 bytes, RGB; malloc'd, release with ii_image_free */
    uint8_t *exif;        /* JPEG only: the TIFF structure of the first APP1 "Exif" segment, or NULL */
    size_t exif_size;
    int32_t warnings;     /* non-fatal library warnings that were tolerated */
    int32_t source_components; /* colour components in the file (JPEG) or channels (PNG) */
    char message[200];    /* the error message on failure; the first warning on success (or "") */
} ii_image;

/* Decodes a JPEG. `out` is fully initialised by the call; free it with ii_image_free in every case. */
int ii_decode_jpeg(const uint8_t *data, size_t size, const ii_options *options, ii_image *out);

/* Decodes a PNG. Same contract as ii_decode_jpeg. 16-bit samples are scaled to 8 bits with rounding. */
int ii_decode_png(const uint8_t *data, size_t size, const ii_options *options, ii_image *out);

/* Frees the buffers of an ii_image (safe on a zeroed or failed result). */
void ii_image_free(ii_image *image);

/* Encodes 8-bit pixels (channels: 1 gray, 3 RGB, 4 RGBA; rows contiguous) as PNG into memory.
 * On success returns II_OK and sets *out (malloc'd; release with free) and *out_size; on failure
 * returns a status and writes libpng's message into message (message_size bytes). */
int ii_encode_png(const uint8_t *pixels, int32_t width, int32_t height, int32_t channels,
                  uint8_t **out, size_t *out_size, char *message, size_t message_size);

/* Library versions, for diagnostics: e.g. 62 or 80 (libjpeg API level), "1.6.39". */
int ii_jpeg_lib_version(void);
const char *ii_png_lib_version(void);

#ifdef __cplusplus
}
#endif

#endif /* INCEPTION_IMAGE_H */
