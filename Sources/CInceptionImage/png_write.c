/* PNG encoding through libpng's simplified API (png_image_write_to_memory), which reports errors
 * in image.message instead of longjmp-ing out, so no setjmp is needed here. */
#include "inception_image.h"
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ii_encode_png(const uint8_t *pixels, int32_t width, int32_t height, int32_t channels,
                  uint8_t **out, size_t *out_size, char *message, size_t message_size) {
    *out = NULL;
    *out_size = 0;
    if (message_size > 0) message[0] = 0;
    if (!pixels || width <= 0 || height <= 0 || (channels != 1 && channels != 3 && channels != 4)) {
        if (message_size > 0) snprintf(message, message_size, "bad arguments: %dx%d, %d channels", width, height, channels);
        return II_ERR_BAD_ARGUMENT;
    }
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = (png_uint_32)width;
    image.height = (png_uint_32)height;
    image.format = channels == 1 ? PNG_FORMAT_GRAY : channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_RGBA;
    /* First call: ask for the size; second: write into a buffer of that size. */
    png_alloc_size_t size = 0;
    if (!png_image_write_to_memory(&image, NULL, &size, 0, pixels, 0, NULL)) {
        if (message_size > 0) snprintf(message, message_size, "%s", image.message);
        png_image_free(&image);
        return II_ERR_CORRUPT;
    }
    uint8_t *buffer = malloc(size);
    if (!buffer) return II_ERR_OUT_OF_MEMORY;
    if (!png_image_write_to_memory(&image, buffer, &size, 0, pixels, 0, NULL)) {
        if (message_size > 0) snprintf(message, message_size, "%s", image.message);
        free(buffer);
        png_image_free(&image);
        return II_ERR_CORRUPT;
    }
    *out = buffer;
    *out_size = size;
    return II_OK;
}
