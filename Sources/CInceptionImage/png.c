/* PNG decoding through libpng, with every fatal error turned into a status code. */
#include "inception_image.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

typedef struct png_context {
    const uint8_t *data;
    size_t size;
    size_t position;
    int truncated;
    int warnings;
    char first_warning[200];
    char message[200];
} png_context;

/* png_error handler: must not return, so keep libpng's message and jump to the setjmp point. */
static void on_png_error(png_structp png, png_const_charp message) {
    png_context *ctx = png_get_error_ptr(png);
    if (ctx->message[0] == '\0') snprintf(ctx->message, sizeof ctx->message, "%s", message);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp message) {
    png_context *ctx = png_get_error_ptr(png);
    if (ctx->warnings == 0) snprintf(ctx->first_warning, sizeof ctx->first_warning, "%s", message);
    ctx->warnings++;
}

static void read_from_memory(png_structp png, png_bytep target, size_t length) {
    png_context *ctx = png_get_io_ptr(png);
    if (length > ctx->size - ctx->position) {
        ctx->truncated = 1;
        png_error(png, "Premature end of PNG data");
    }
    memcpy(target, ctx->data + ctx->position, length);
    ctx->position += length;
}

/* RGBA → RGB in place (each pixel is read before its bytes can be overwritten). */
static void drop_alpha(uint8_t *pixels, size_t count, int composite_on_white) {
    for (size_t i = 0; i < count; i++) {
        const uint8_t *s = pixels + 4 * i;
        unsigned r = s[0], g = s[1], b = s[2], a = s[3];
        if (composite_on_white) {
            unsigned white = 255u * (255u - a);
            r = (r * a + white + 127u) / 255u;
            g = (g * a + white + 127u) / 255u;
            b = (b * a + white + 127u) / 255u;
        }
        uint8_t *d = pixels + 3 * i;
        d[0] = (uint8_t)r;
        d[1] = (uint8_t)g;
        d[2] = (uint8_t)b;
    }
}

int ii_decode_png(const uint8_t *data, size_t size, const ii_options *options, ii_image *out) {
    if (out == NULL) return II_ERR_BAD_ARGUMENT;
    memset(out, 0, sizeof *out);
    if (data == NULL || options == NULL) {
        snprintf(out->message, sizeof out->message, "no data");
        return II_ERR_BAD_ARGUMENT;
    }
    if (size < 8 || png_sig_cmp((png_const_bytep)data, 0, 8) != 0) {
        snprintf(out->message, sizeof out->message, "not a PNG signature");
        return II_ERR_CORRUPT;
    }

    /* The IHDR chunk must come first: check the dimensions before libpng reads further (it reads
       every chunk up to the image data before returning the header). */
    if (size >= 24 && memcmp(data + 12, "IHDR", 4) == 0) {
        uint32_t w = (uint32_t)data[16] << 24 | (uint32_t)data[17] << 16 | (uint32_t)data[18] << 8 | data[19];
        uint32_t h = (uint32_t)data[20] << 24 | (uint32_t)data[21] << 16 | (uint32_t)data[22] << 8 | data[23];
        if (options->max_pixels >= 0 && (uint64_t)w * h > (uint64_t)options->max_pixels && w <= 0x7fffffffu &&
            h <= 0x7fffffffu) {
            out->width = (int32_t)w;
            out->height = (int32_t)h;
            snprintf(out->message, sizeof out->message, "%ux%u pixels exceeds the limit of %lld pixels",
                     (unsigned)w, (unsigned)h, (long long)options->max_pixels);
            return II_ERR_TOO_MANY_PIXELS;
        }
    }

    png_context ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.data = data;
    ctx.size = size;

    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, on_png_error, on_png_warning);
    if (png == NULL) {
        snprintf(out->message, sizeof out->message, "libpng could not be initialised");
        return II_ERR_OUT_OF_MEMORY;
    }
    png_infop info = png_create_info_struct(png);
    if (info == NULL) {
        png_destroy_read_struct(&png, NULL, NULL);
        snprintf(out->message, sizeof out->message, "libpng could not be initialised");
        return II_ERR_OUT_OF_MEMORY;
    }

    /* Assigned after setjmp and used after longjmp, hence volatile. */
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;

    if (setjmp(png_jmpbuf(png))) {
        int status = ctx.truncated ? II_ERR_TRUNCATED : II_ERR_CORRUPT;
        snprintf(out->message, sizeof out->message, "%s",
                 ctx.message[0] ? ctx.message : "undescribed libpng error");
        free(pixels);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        return status;
    }

    png_set_read_fn(png, &ctx, read_from_memory);
    /* Our own pixel limit applies; lift libpng's default 1,000,000-per-side limit so it does not
       pre-empt it with a less helpful message. */
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_read_info(png, info);

    png_uint_32 width = 0, height = 0;
    int bit_depth = 0, color_type = 0;
    png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, NULL, NULL, NULL);
    out->source_components = png_get_channels(png, info);

    uint64_t count = (uint64_t)width * (uint64_t)height;
    if (options->max_pixels >= 0 && count > (uint64_t)options->max_pixels) {
        out->width = (int32_t)width;
        out->height = (int32_t)height;
        snprintf(out->message, sizeof out->message, "%ux%u pixels exceeds the limit of %lld pixels",
                 (unsigned)width, (unsigned)height, (long long)options->max_pixels);
        png_destroy_read_struct(&png, &info, NULL);
        return II_ERR_TOO_MANY_PIXELS;
    }

    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (bit_depth == 16) png_set_scale_16(png); /* rounds, unlike png_set_strip_16 */
    if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    /* No gamma or colour-profile handling: samples are used as stored, as TensorFlow does. */
    png_read_update_info(png, info);

    int channels = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if ((channels != 3 && channels != 4) || rowbytes != (size_t)width * (size_t)channels) {
        snprintf(ctx.message, sizeof ctx.message, "unexpected row layout (%d channels, %zu bytes a row)",
                 channels, rowbytes);
        png_longjmp(png, 1);
    }
    pixels = malloc(rowbytes * height);
    rows = malloc(sizeof(png_bytep) * height);
    if (pixels == NULL || rows == NULL) {
        free(pixels);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        snprintf(out->message, sizeof out->message, "out of memory for %ux%u pixels",
                 (unsigned)width, (unsigned)height);
        return II_ERR_OUT_OF_MEMORY;
    }
    for (png_uint_32 y = 0; y < height; y++) rows[y] = pixels + (size_t)y * rowbytes;
    png_read_image(png, rows);
    /* No png_read_end: chunks after the image data are not needed, and a missing IEND is tolerated. */

    free(rows);
    uint8_t *result = pixels;
    if (channels == 4) {
        drop_alpha(result, (size_t)width * height, options->alpha_mode != II_ALPHA_IGNORE);
        uint8_t *smaller = realloc(result, (size_t)width * height * 3);
        if (smaller != NULL) result = smaller;
    }
    out->width = (int32_t)width;
    out->height = (int32_t)height;
    out->pixels = result;
    out->warnings = ctx.warnings;
    snprintf(out->message, sizeof out->message, "%s", ctx.first_warning);
    png_destroy_read_struct(&png, &info, NULL);
    return II_OK;
}

const char *ii_png_lib_version(void) { return png_get_libpng_ver(NULL); }
