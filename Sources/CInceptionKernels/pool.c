/* Max and average pooling over NHWC rows, per instruction set.
 *
 * Written in C rather than Swift for the same reason as the GEMM kernels: Swift code in a
 * versioned package is compiled for the baseline target (SSE2 on x86-64), so its loops run four
 * floats wide; here one generic body is inlined into entry points compiled for AVX-512, AVX2 and
 * the baseline, and the compiler emits 16-, 8- or 4-wide code from the same source.
 *
 * Shape of the work: for one output pixel the window is clipped to the real input (TF's SAME
 * and the symmetric paddings never let a padded position win a max, and average pooling divides
 * by the real pixels under the window), then the channels go 64 at a time: four 16-float
 * accumulators stay in registers while every tap of the window is folded in, and the result is
 * stored once. Each tap is a contiguous run of channels (NHWC), read straight from the input. */
#include "inception_kernels.h"
#include <string.h>

#pragma clang diagnostic ignored "-Wpsabi"
typedef float ik_v16 __attribute__((vector_size(64)));

#define IK_POOL_INLINE static inline __attribute__((always_inline))

IK_POOL_INLINE ik_v16 load16(const float *p) { ik_v16 x; memcpy(&x, p, sizeof x); return x; }
IK_POOL_INLINE void store16(float *p, ik_v16 x) { memcpy(p, &x, sizeof x); }
typedef int ik_i16 __attribute__((vector_size(64)));
/* Element-wise max as compare + bit select on whole vectors (a per-element loop here is not
 * vectorised: the compiler scalarises it), so each target gets its own compare and blend. */
IK_POOL_INLINE ik_v16 max16(ik_v16 a, ik_v16 b) {
    const ik_i16 greater = a > b;
    return (ik_v16)((greater & (ik_i16)a) | (~greater & (ik_i16)b));
}

/* `lanes` × 16 channels starting at `ch` of one output pixel whose window covers input rows
 * y0..<y1 and columns x0..<x1 of `image`. `lanes` is a compile-time constant at each call. */
IK_POOL_INLINE void pool_lanes(const int lanes, const int average, const float *image, ptrdiff_t w,
                               ptrdiff_t c, ptrdiff_t y0, ptrdiff_t y1, ptrdiff_t x0, ptrdiff_t x1,
                               ptrdiff_t ch, float scale, float *out) {
    ik_v16 acc[4];
    const float *first = image + (y0 * w + x0) * c + ch;
    for (int l = 0; l < lanes; l++) acc[l] = load16(first + 16 * l);
    for (ptrdiff_t y = y0; y < y1; y++) {
        for (ptrdiff_t x = y == y0 ? x0 + 1 : x0; x < x1; x++) {
            const float *tap = image + (y * w + x) * c + ch;
            for (int l = 0; l < lanes; l++)
                acc[l] = average ? acc[l] + load16(tap + 16 * l) : max16(acc[l], load16(tap + 16 * l));
        }
    }
    for (int l = 0; l < lanes; l++) store16(out + ch + 16 * l, average ? acc[l] * scale : acc[l]);
}

IK_POOL_INLINE void pool_rows(const ik_pooling *p, ptrdiff_t row_begin, ptrdiff_t row_end) {
    const ptrdiff_t h = p->height, w = p->width, c = p->channels;
    const ptrdiff_t oh = p->out_height, ow = p->out_width;
    const int average = p->average;
    for (ptrdiff_t row = row_begin; row < row_end; row++) {
        const ptrdiff_t b = row / oh, oy = row % oh;
        const float *image = p->input + b * h * w * c;
        const ptrdiff_t top = oy * p->stride_h - p->pad_top;
        const ptrdiff_t y0 = top > 0 ? top : 0, y1 = top + p->kernel_h < h ? top + p->kernel_h : h;
        float *out_row = p->output + row * ow * p->channel_stride;
        for (ptrdiff_t ox = 0; ox < ow; ox++) {
            const ptrdiff_t left = ox * p->stride_w - p->pad_left;
            const ptrdiff_t x0 = left > 0 ? left : 0, x1 = left + p->kernel_w < w ? left + p->kernel_w : w;
            float *out = out_row + ox * p->channel_stride;
            if (y0 >= y1 || x0 >= x1) { memset(out, 0, (size_t)c * sizeof(float)); continue; }
            const float scale = 1.0f / (float)((y1 - y0) * (x1 - x0));
            ptrdiff_t ch = 0;
            if (average) {
                for (; ch + 64 <= c; ch += 64) pool_lanes(4, 1, image, w, c, y0, y1, x0, x1, ch, scale, out);
                for (; ch + 16 <= c; ch += 16) pool_lanes(1, 1, image, w, c, y0, y1, x0, x1, ch, scale, out);
            } else {
                for (; ch + 64 <= c; ch += 64) pool_lanes(4, 0, image, w, c, y0, y1, x0, x1, ch, scale, out);
                for (; ch + 16 <= c; ch += 16) pool_lanes(1, 0, image, w, c, y0, y1, x0, x1, ch, scale, out);
            }
            /* Channel counts that are not a multiple of 16 (the 3-channel input, odd test shapes). */
            for (; ch < c; ch++) {
                float acc = image[(y0 * w + x0) * c + ch];
                for (ptrdiff_t y = y0; y < y1; y++)
                    for (ptrdiff_t x = y == y0 ? x0 + 1 : x0; x < x1; x++) {
                        const float v = image[(y * w + x) * c + ch];
                        acc = average ? acc + v : (v > acc ? v : acc);
                    }
                out[ch] = average ? acc * scale : acc;
            }
        }
    }
}

static void pool_rows_portable(const ik_pooling *p, ptrdiff_t r0, ptrdiff_t r1) { pool_rows(p, r0, r1); }
#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2,fma")))
static void pool_rows_avx2(const ik_pooling *p, ptrdiff_t r0, ptrdiff_t r1) { pool_rows(p, r0, r1); }
__attribute__((target("avx512f")))
static void pool_rows_avx512(const ik_pooling *p, ptrdiff_t r0, ptrdiff_t r1) { pool_rows(p, r0, r1); }
#endif

/* Follows the GEMM kernel choice, like the Winograd transforms. */
void ik_pool_rows(const ik_pooling *p, ptrdiff_t row_begin, ptrdiff_t row_end) {
    if (row_begin >= row_end || p->channels <= 0) return;
    switch (ik_gemm_isa()) {
#if defined(__x86_64__) || defined(__i386__)
    case IK_ISA_AVX512: pool_rows_avx512(p, row_begin, row_end); return;
    case IK_ISA_AVX2: pool_rows_avx2(p, row_begin, row_end); return;
#endif
    default: pool_rows_portable(p, row_begin, row_end); return;
    }
}
