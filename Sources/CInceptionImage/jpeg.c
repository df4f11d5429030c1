/* JPEG decoding through libjpeg(-turbo), with every fatal error turned into a status code. */
#include "inception_image.h"

#include <setjmp.h>
#include <stdio.h> /* jpeglib.h needs FILE */
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

typedef struct jpeg_context {
    struct jpeg_error_mgr err; /* first member: libjpeg hands us cinfo->err, we cast it back */
    struct jpeg_source_mgr src;
    struct jpeg_progress_mgr progress;
    jmp_buf jump;
    const uint8_t *data;
    size_t size;
    int truncated;
    int out_of_memory;
    int max_scans;
    int warnings;
    char first_warning[JMSG_LENGTH_MAX];
    char message[JMSG_LENGTH_MAX];
} jpeg_context;

static jpeg_context *context_of(j_common_ptr cinfo) { return (jpeg_context *)cinfo->err; }

/* error_exit must not return: remember libjpeg's formatted message and jump back to the caller. */
static void on_error_exit(j_common_ptr cinfo) {
    jpeg_context *ctx = context_of(cinfo);
    if (ctx->truncated) snprintf(ctx->message, sizeof ctx->message, "Premature end of JPEG file");
    if (ctx->message[0] == '\0') (*cinfo->err->format_message)(cinfo, ctx->message);
    if (cinfo->err->msg_code == JERR_OUT_OF_MEMORY) ctx->out_of_memory = 1;
    longjmp(ctx->jump, 1);
}

/* Warnings (level -1) are counted and the first kept; trace messages are dropped. Nothing is printed. */
static void on_emit_message(j_common_ptr cinfo, int msg_level) {
    if (msg_level >= 0) return;
    jpeg_context *ctx = context_of(cinfo);
    if (ctx->truncated) { /* e.g. "premature end of data segment" after the data ran out */
        snprintf(ctx->message, sizeof ctx->message, "Premature end of JPEG file");
        longjmp(ctx->jump, 1);
    }
    if (ctx->warnings == 0) (*cinfo->err->format_message)(cinfo, ctx->first_warning);
    ctx->warnings++;
}

static void on_output_message(j_common_ptr cinfo) { (void)cinfo; }

/* Memory source. At the end of the data it behaves as libjpeg's own sources do (it supplies a fake
   EOI marker so the decoder can finish its look-ahead) but remembers that the data ran out; any
   warning or error after that point means the image was incomplete and is reported as truncation. */
static const JOCTET fake_eoi[2] = {0xFF, JPEG_EOI};

static void src_init(j_decompress_ptr cinfo) { (void)cinfo; }

static boolean src_fill(j_decompress_ptr cinfo) {
    context_of((j_common_ptr)cinfo)->truncated = 1;
    cinfo->src->next_input_byte = fake_eoi;
    cinfo->src->bytes_in_buffer = 2;
    return TRUE;
}

static void src_skip(j_decompress_ptr cinfo, long num_bytes) {
    struct jpeg_source_mgr *src = cinfo->src;
    if (num_bytes <= 0) return;
    if ((size_t)num_bytes > src->bytes_in_buffer) {
        src_fill(cinfo); /* a segment longer than the data: what follows is the fake EOI */
        return;
    }
    src->next_input_byte += num_bytes;
    src->bytes_in_buffer -= (size_t)num_bytes;
}

static void src_term(j_decompress_ptr cinfo) { (void)cinfo; }

/* Progressive files can hold thousands of tiny scans, each costing a pass over the image. */
static void on_progress(j_common_ptr cinfo) {
    if (!cinfo->is_decompressor) return;
    jpeg_context *ctx = context_of(cinfo);
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->input_scan_number > ctx->max_scans) {
        snprintf(ctx->message, sizeof ctx->message,
                 "progressive JPEG has more than %d scans (refused as a likely denial of service)",
                 ctx->max_scans);
        longjmp(ctx->jump, 1);
    }
}

static void copy_message(ii_image *out, const char *message) {
    snprintf(out->message, sizeof out->message, "%s", message);
}

/* CMYK (after libjpeg's YCCK→CMYK) to RGB. Adobe applications write inverted CMYK (255 = no ink)
   together with an APP14 "Adobe" marker; files without that marker are taken as plain CMYK. */
static void cmyk_row_to_rgb(const uint8_t *src, uint8_t *dst, size_t width, int inverted) {
    for (size_t x = 0; x < width; x++, src += 4, dst += 3) {
        unsigned c = src[0], m = src[1], y = src[2], k = src[3];
        if (!inverted) { c = 255 - c; m = 255 - m; y = 255 - y; k = 255 - k; }
        /* now 255 means "no ink": channel = (1 - ink) * (1 - black) */
        dst[0] = (uint8_t)((c * k + 127) / 255);
        dst[1] = (uint8_t)((m * k + 127) / 255);
        dst[2] = (uint8_t)((y * k + 127) / 255);
    }
}

int ii_decode_jpeg(const uint8_t *data, size_t size, const ii_options *options, ii_image *out) {
    if (out == NULL) return II_ERR_BAD_ARGUMENT;
    memset(out, 0, sizeof *out);
    if (data == NULL || options == NULL || size == 0) {
        copy_message(out, "no data");
        return II_ERR_BAD_ARGUMENT;
    }

    struct jpeg_decompress_struct cinfo;
    jpeg_context ctx;
    memset(&cinfo, 0, sizeof cinfo);
    memset(&ctx, 0, sizeof ctx);
    ctx.data = data;
    ctx.size = size;
    ctx.max_scans = options->max_scans > 0 ? options->max_scans : 1000;

    /* Assigned after setjmp and used after longjmp, hence volatile. */
    uint8_t *volatile pixels = NULL;
    uint8_t *volatile row = NULL;

    cinfo.err = jpeg_std_error(&ctx.err);
    ctx.err.error_exit = on_error_exit;
    ctx.err.emit_message = on_emit_message;
    ctx.err.output_message = on_output_message;

    if (setjmp(ctx.jump)) {
        int status = ctx.truncated ? II_ERR_TRUNCATED
                   : ctx.out_of_memory ? II_ERR_OUT_OF_MEMORY : II_ERR_CORRUPT;
        copy_message(out, ctx.message[0] ? ctx.message : "undescribed libjpeg error");
        free(pixels);
        free(row);
        free(out->exif);
        out->exif = NULL;
        out->exif_size = 0;
        jpeg_destroy_decompress(&cinfo);
        return status;
    }

    jpeg_create_decompress(&cinfo);
    ctx.src.init_source = src_init;
    ctx.src.fill_input_buffer = src_fill;
    ctx.src.skip_input_data = src_skip;
    ctx.src.resync_to_restart = jpeg_resync_to_restart;
    ctx.src.term_source = src_term;
    ctx.src.next_input_byte = data;
    ctx.src.bytes_in_buffer = size;
    cinfo.src = &ctx.src;
    ctx.progress.progress_monitor = on_progress;
    cinfo.progress = &ctx.progress;
    jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);

    jpeg_read_header(&cinfo, TRUE);
    out->source_components = cinfo.num_components;

    uint64_t count = (uint64_t)cinfo.image_width * (uint64_t)cinfo.image_height;
    if (options->max_pixels >= 0 && count > (uint64_t)options->max_pixels) {
        out->width = (int32_t)cinfo.image_width;
        out->height = (int32_t)cinfo.image_height;
        snprintf(out->message, sizeof out->message, "%ux%u pixels exceeds the limit of %lld pixels",
                 (unsigned)cinfo.image_width, (unsigned)cinfo.image_height,
                 (long long)options->max_pixels);
        jpeg_destroy_decompress(&cinfo);
        return II_ERR_TOO_MANY_PIXELS;
    }

    for (jpeg_saved_marker_ptr m = cinfo.marker_list; m != NULL; m = m->next) {
        if (m->marker == JPEG_APP0 + 1 && m->data_length > 6 && memcmp(m->data, "Exif\0\0", 6) == 0) {
            out->exif = malloc(m->data_length - 6);
            if (out->exif != NULL) {
                memcpy(out->exif, m->data + 6, m->data_length - 6);
                out->exif_size = m->data_length - 6;
            }
            break;
        }
    }

    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    int inverted = cinfo.saw_Adobe_marker;
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB; /* grayscale is replicated to RGB */
    cinfo.dct_method = options->dct_method == II_DCT_ACCURATE ? JDCT_ISLOW : JDCT_IFAST;
    jpeg_start_decompress(&cinfo);
    /* Multi-scan files (progressive or not) are read completely by jpeg_start_decompress; running
       out of data there may have lost whole scans without any warning. */
    if (ctx.truncated && jpeg_has_multiple_scans(&cinfo)) {
        snprintf(ctx.message, sizeof ctx.message, "Premature end of JPEG file");
        longjmp(ctx.jump, 1);
    }

    if (cinfo.output_components != (cmyk ? 4 : 3)) {
        snprintf(ctx.message, sizeof ctx.message, "unexpected %d output components",
                 cinfo.output_components);
        longjmp(ctx.jump, 1);
    }
    size_t width = cinfo.output_width, height = cinfo.output_height;
    pixels = malloc(width * height * 3);
    if (cmyk) row = malloc(width * 4);
    if (pixels == NULL || (cmyk && row == NULL)) {
        ctx.out_of_memory = 1;
        snprintf(ctx.message, sizeof ctx.message, "out of memory for %zux%zu pixels", width, height);
        longjmp(ctx.jump, 1);
    }
    while (cinfo.output_scanline < height) {
        size_t y = cinfo.output_scanline;
        JSAMPROW target = cmyk ? row : pixels + y * width * 3;
        if (jpeg_read_scanlines(&cinfo, &target, 1) != 1) {
            snprintf(ctx.message, sizeof ctx.message, "decoder stalled at row %zu", y);
            longjmp(ctx.jump, 1);
        }
        if (cmyk) cmyk_row_to_rgb(row, pixels + y * width * 3, width, inverted);
    }
    /* Every row was decoded without a warning, so running out of data can only have cost the EOI
       marker (or look-ahead padding): tolerated. jpeg_finish_decompress is not needed. */
    free(row);
    out->width = (int32_t)width;
    out->height = (int32_t)height;
    out->pixels = pixels;
    out->warnings = ctx.warnings;
    copy_message(out, ctx.first_warning);
    jpeg_destroy_decompress(&cinfo);
    return II_OK;
}

void ii_image_free(ii_image *image) {
    if (image == NULL) return;
    free(image->pixels);
    free(image->exif);
    image->pixels = NULL;
    image->exif = NULL;
    image->exif_size = 0;
}

int ii_jpeg_lib_version(void) { return JPEG_LIB_VERSION; }
