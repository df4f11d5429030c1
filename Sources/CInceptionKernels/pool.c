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
#include <stdint.h>
#include <string.h>

#pragma clang diagnostic ignored "-Wpsabi"
typedef float ik_v16 __attribute__((vector_size(64)));

#define IK_POOL_INLINE static inline __attribute__((always_inline))

IK_POOL_INLINE ik_v16 load16(const float *p) { ik_v16 x; memcpy(&x, p, sizeof x); return x; }
IK_POOL_INLINE void store16(float *p, ik_v16 x) { memcpy(p, &x, sizeof x); }
typedef int ik_i16 __attribute__((vector_size(64)));
typedef uint8_t ik_u8x16 __attribute__((vector_size(16)));
/* Element-wise max as compare + bit select on whole vectors (a per-element loop here is not
 * vectorised: the compiler scalarises it), so each target gets its own compare and blend. */
IK_POOL_INLINE ik_v16 max16(ik_v16 a, ik_v16 b) {
    const ik_i16 greater = a > b;
    return (ik_v16)((greater & (ik_i16)a) | (~greater & (ik_i16)b));
}

/* `lanes` × 16 channels starting at `ch` of one output pixel whose window covers input rows
 * y0..<y1 and columns x0..<x1 of `image`. `lanes` is a compile-time constant at each call, and
 * so is `record`: a max pool then also writes, per channel, the position of the first maximum in
 * the unclipped window starting at (ys, xs) to `arg`: the last tap that raised the running
 * maximum strictly, which is the first one equal to the final maximum (a window holding a NaN
 * aside). */
IK_POOL_INLINE void pool_lanes(const int lanes, const int average, const int record, const float *image, ptrdiff_t w,
                               ptrdiff_t ps, ptrdiff_t y0, ptrdiff_t y1, ptrdiff_t x0, ptrdiff_t x1,
                               ptrdiff_t ch, float scale, float *out, ptrdiff_t ys, ptrdiff_t xs, ptrdiff_t kw,
                               uint8_t *arg) {
    ik_v16 acc[4];
    ik_i16 index[4];
    const float *first = image + (y0 * w + x0) * ps + ch;
    for (int l = 0; l < lanes; l++) {
        acc[l] = load16(first + 16 * l);
        if (record) index[l] = (ik_i16){ 0 } + (int)((y0 - ys) * kw + (x0 - xs));
    }
    for (ptrdiff_t y = y0; y < y1; y++) {
        for (ptrdiff_t x = y == y0 ? x0 + 1 : x0; x < x1; x++) {
            const float *tap = image + (y * w + x) * ps + ch;
            const int t = (int)((y - ys) * kw + (x - xs));
            for (int l = 0; l < lanes; l++) {
                const ik_v16 v = load16(tap + 16 * l);
                if (record) {
                    const ik_i16 raised = v > acc[l];
                    index[l] = (raised & t) | (~raised & index[l]);
                }
                acc[l] = average ? acc[l] + v : max16(acc[l], v);
            }
        }
    }
    for (int l = 0; l < lanes; l++) {
        store16(out + ch + 16 * l, average ? acc[l] * scale : acc[l]);
        if (record) {
            const ik_u8x16 bytes = __builtin_convertvector(index[l], ik_u8x16);
            memcpy(arg + ch + 16 * l, &bytes, sizeof bytes);
        }
    }
}

/* The real input positions lo ..< hi under window position `index` along one axis (empty when
 * the window lies wholly in the padding). */
IK_POOL_INLINE void clip_window(ptrdiff_t index, ptrdiff_t stride, ptrdiff_t pad, ptrdiff_t kernel, ptrdiff_t size,
                                ptrdiff_t *lo, ptrdiff_t *hi) {
    const ptrdiff_t start = index * stride - pad;
    *lo = start > 0 ? start : 0;
    *hi = start + kernel < size ? start + kernel : size;
}

IK_POOL_INLINE void pool_rows(const ik_pooling *p, ptrdiff_t row_begin, ptrdiff_t row_end) {
    const ptrdiff_t h = p->height, w = p->width, c = p->channels;
    const ptrdiff_t ps = p->input_stride > 0 ? p->input_stride : c;  /* floats from pixel to pixel */
    const ptrdiff_t oh = p->out_height, ow = p->out_width;
    const int average = p->average;
    const int record = !average && p->argmax;
    for (ptrdiff_t row = row_begin; row < row_end; row++) {
        const ptrdiff_t b = row / oh, oy = row % oh;
        const float *image = p->input + b * h * w * ps;
        ptrdiff_t y0, y1, x0, x1;
        clip_window(oy, p->stride_h, p->pad_top, p->kernel_h, h, &y0, &y1);
        const ptrdiff_t ys = oy * p->stride_h - p->pad_top, kw = p->kernel_w;
        float *out_row = p->output + row * ow * p->channel_stride;
        for (ptrdiff_t ox = 0; ox < ow; ox++) {
            clip_window(ox, p->stride_w, p->pad_left, p->kernel_w, w, &x0, &x1);
            const ptrdiff_t xs = ox * p->stride_w - p->pad_left;
            float *out = out_row + ox * p->channel_stride;
            uint8_t *arg = record ? p->argmax + (row * ow + ox) * c : NULL;
            if (y0 >= y1 || x0 >= x1) {
                memset(out, 0, (size_t)c * sizeof(float));
                if (record) memset(arg, 255, (size_t)c);
                continue;
            }
            const float scale = 1.0f / (float)((y1 - y0) * (x1 - x0));
            ptrdiff_t ch = 0;
            if (average) {
                for (; ch + 64 <= c; ch += 64) pool_lanes(4, 1, 0, image, w, ps, y0, y1, x0, x1, ch, scale, out, ys, xs, kw, arg);
                for (; ch + 16 <= c; ch += 16) pool_lanes(1, 1, 0, image, w, ps, y0, y1, x0, x1, ch, scale, out, ys, xs, kw, arg);
            } else if (record) {
                for (; ch + 64 <= c; ch += 64) pool_lanes(4, 0, 1, image, w, ps, y0, y1, x0, x1, ch, scale, out, ys, xs, kw, arg);
                for (; ch + 16 <= c; ch += 16) pool_lanes(1, 0, 1, image, w, ps, y0, y1, x0, x1, ch, scale, out, ys, xs, kw, arg);
            } else {
                for (; ch + 64 <= c; ch += 64) pool_lanes(4, 0, 0, image, w, ps, y0, y1, x0, x1, ch, scale, out, ys, xs, kw, arg);
                for (; ch + 16 <= c; ch += 16) pool_lanes(1, 0, 0, image, w, ps, y0, y1, x0, x1, ch, scale, out, ys, xs, kw, arg);
            }
            /* Channel counts that are not a multiple of 16 (the 3-channel input, odd test shapes). */
            for (; ch < c; ch++) {
                float acc = image[(y0 * w + x0) * ps + ch];
                for (ptrdiff_t y = y0; y < y1; y++)
                    for (ptrdiff_t x = y == y0 ? x0 + 1 : x0; x < x1; x++) {
                        const float v = image[(y * w + x) * ps + ch];
                        acc = average ? acc + v : (v > acc ? v : acc);
                    }
                out[ch] = average ? acc * scale : acc;
                if (!record) continue;
                float best = image[(y0 * w + x0) * ps + ch];
                arg[ch] = (uint8_t)((y0 - ys) * kw + (x0 - xs));
                for (ptrdiff_t y = y0; y < y1; y++)
                    for (ptrdiff_t x = y == y0 ? x0 + 1 : x0; x < x1; x++)
                        if (image[(y * w + x) * ps + ch] > best) { best = image[(y * w + x) * ps + ch]; arg[ch] = (uint8_t)((y - ys) * kw + (x - xs)); }
            }
        }
    }
}

/* ---- Max pooling's input gradient ----
 *
 * For one output pixel and `lanes` × 16 channels from `ch`: the window's maximum (the forward
 * value: read from Y when the caller still has it, else recomputed from X), then dY goes to the
 * first window position, in row-major order, that holds it (TF's CPU MaxPoolGrad on ties).
 * `taken` marks the channels already served. Every step is a whole-vector compare or select.
 * Training passes the positions the forward recorded instead (argmax_grad_lanes): one byte per
 * output element read, where this reads X at every tap and Y. */
IK_POOL_INLINE void max_grad_lanes(const int lanes, const ik_max_pool_grad *p, const float *x_image, float *dx_image,
                                   const float *y_pixel, const float *dy_pixel, ptrdiff_t ch,
                                   ptrdiff_t y0, ptrdiff_t y1, ptrdiff_t x0, ptrdiff_t x1) {
    const ptrdiff_t w = p->width, xs = p->input_stride, ds = p->dx_stride;
    ik_v16 best[4], grad[4];
    ik_i16 taken[4];
    for (int l = 0; l < lanes; l++) {
        grad[l] = load16(dy_pixel + ch + 16 * l);
        taken[l] = (ik_i16){ 0 };
        if (y_pixel) best[l] = load16(y_pixel + ch + 16 * l);
        else best[l] = load16(x_image + (y0 * w + x0) * xs + ch + 16 * l);
    }
    if (!y_pixel)
        for (ptrdiff_t y = y0; y < y1; y++)
            for (ptrdiff_t x = y == y0 ? x0 + 1 : x0; x < x1; x++)
                for (int l = 0; l < lanes; l++) best[l] = max16(best[l], load16(x_image + (y * w + x) * xs + ch + 16 * l));
    for (ptrdiff_t y = y0; y < y1; y++)
        for (ptrdiff_t x = x0; x < x1; x++) {
            const float *src = x_image + (y * w + x) * xs + ch;
            float *dst = dx_image + (y * w + x) * ds + ch;
            for (int l = 0; l < lanes; l++) {
                const ik_i16 hit = (load16(src + 16 * l) == best[l]) & ~taken[l];
                taken[l] |= hit;
                store16(dst + 16 * l, load16(dst + 16 * l) + (ik_v16)((ik_i16)grad[l] & hit));
            }
        }
}

/* The same from the recorded positions: dY goes to the window position whose number `arg` holds
 * (the same sums, in the same order, as recomputing the maximum). */
IK_POOL_INLINE void argmax_grad_lanes(const int lanes, const ik_max_pool_grad *p, float *dx_image, const uint8_t *arg,
                                      const float *dy_pixel, ptrdiff_t ch, ptrdiff_t ys, ptrdiff_t xs,
                                      ptrdiff_t y0, ptrdiff_t y1, ptrdiff_t x0, ptrdiff_t x1) {
    const ptrdiff_t w = p->width, ds = p->dx_stride, kw = p->kernel_w;
    ik_v16 grad[4];
    ik_i16 index[4];
    for (int l = 0; l < lanes; l++) {
        ik_u8x16 bytes;
        memcpy(&bytes, arg + ch + 16 * l, sizeof bytes);
        index[l] = __builtin_convertvector(bytes, ik_i16);
        grad[l] = load16(dy_pixel + ch + 16 * l);
    }
    for (ptrdiff_t y = y0; y < y1; y++)
        for (ptrdiff_t x = x0; x < x1; x++) {
            const int t = (int)((y - ys) * kw + (x - xs));
            float *dst = dx_image + (y * w + x) * ds + ch;
            for (int l = 0; l < lanes; l++) {
                const ik_i16 hit = index[l] == t;
                store16(dst + 16 * l, load16(dst + 16 * l) + (ik_v16)((ik_i16)grad[l] & hit));
            }
        }
}

/* Channels c0 ..< c1 of the w pixels of one row, `stride` floats apart, set to zero. */
IK_POOL_INLINE void zero_row(float *row, ptrdiff_t w, ptrdiff_t stride, ptrdiff_t c0, ptrdiff_t c1) {
    if (c0 == 0 && c1 == stride) { memset(row, 0, (size_t)(w * stride) * sizeof(float)); return; }
    for (ptrdiff_t x = 0; x < w; x++) memset(row + x * stride + c0, 0, (size_t)(c1 - c0) * sizeof(float));
}

IK_POOL_INLINE void max_grad_block(const ik_max_pool_grad *p, ptrdiff_t b, ptrdiff_t c0, ptrdiff_t c1) {
    const ptrdiff_t h = p->height, w = p->width, oh = p->out_height, ow = p->out_width;
    const float *x_image = p->argmax ? NULL : p->input + b * h * w * p->input_stride;
    float *dx_image = p->dx + b * h * w * p->dx_stride;
    /* With zero_first, rows < zeroed are zero (or hold their sums so far). */
    ptrdiff_t zeroed = p->zero_first ? 0 : h;
    for (ptrdiff_t oy = 0; oy < oh; oy++) {
        ptrdiff_t y0, y1, x0, x1;
        clip_window(oy, p->stride_h, p->pad_top, p->kernel_h, h, &y0, &y1);
        for (; zeroed < y1; zeroed++) zero_row(dx_image + zeroed * w * p->dx_stride, w, p->dx_stride, c0, c1);
        for (ptrdiff_t ox = 0; ox < ow; ox++) {
            clip_window(ox, p->stride_w, p->pad_left, p->kernel_w, w, &x0, &x1);
            if (y0 >= y1 || x0 >= x1) continue;
            const ptrdiff_t o = (b * oh + oy) * ow + ox;
            const float *y_pixel = p->output ? p->output + o * p->output_stride : NULL;
            const float *dy_pixel = p->grad + o * p->grad_stride;
            ptrdiff_t ch = c0;
            if (p->argmax) {
                const uint8_t *arg = p->argmax + o * p->channels;
                const ptrdiff_t ys = oy * p->stride_h - p->pad_top, xs = ox * p->stride_w - p->pad_left;
                for (; ch + 64 <= c1; ch += 64) argmax_grad_lanes(4, p, dx_image, arg, dy_pixel, ch, ys, xs, y0, y1, x0, x1);
                for (; ch + 16 <= c1; ch += 16) argmax_grad_lanes(1, p, dx_image, arg, dy_pixel, ch, ys, xs, y0, y1, x0, x1);
                for (; ch < c1; ch++) {
                    if (arg[ch] == 255) continue;
                    const ptrdiff_t y = ys + arg[ch] / p->kernel_w, x = xs + arg[ch] % p->kernel_w;
                    dx_image[(y * w + x) * p->dx_stride + ch] += dy_pixel[ch];
                }
                continue;
            }
            for (; ch + 64 <= c1; ch += 64) max_grad_lanes(4, p, x_image, dx_image, y_pixel, dy_pixel, ch, y0, y1, x0, x1);
            for (; ch + 16 <= c1; ch += 16) max_grad_lanes(1, p, x_image, dx_image, y_pixel, dy_pixel, ch, y0, y1, x0, x1);
            for (; ch < c1; ch++) {
                float best = y_pixel ? y_pixel[ch] : x_image[(y0 * w + x0) * p->input_stride + ch];
                if (!y_pixel)
                    for (ptrdiff_t y = y0; y < y1; y++)
                        for (ptrdiff_t x = x0; x < x1; x++) {
                            const float v = x_image[(y * w + x) * p->input_stride + ch];
                            if (v > best) best = v;
                        }
                int taken = 0;
                for (ptrdiff_t y = y0; y < y1 && !taken; y++)
                    for (ptrdiff_t x = x0; x < x1 && !taken; x++)
                        if (x_image[(y * w + x) * p->input_stride + ch] == best) {
                            dx_image[(y * w + x) * p->dx_stride + ch] += dy_pixel[ch];
                            taken = 1;
                        }
            }
        }
    }
    for (; zeroed < h; zeroed++) zero_row(dx_image + zeroed * w * p->dx_stride, w, p->dx_stride, c0, c1);
}

static void max_grad_portable(const ik_max_pool_grad *p, ptrdiff_t b, ptrdiff_t c0, ptrdiff_t c1) { max_grad_block(p, b, c0, c1); }
#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2,fma")))
static void max_grad_avx2(const ik_max_pool_grad *p, ptrdiff_t b, ptrdiff_t c0, ptrdiff_t c1) { max_grad_block(p, b, c0, c1); }
__attribute__((target("avx512f")))
static void max_grad_avx512(const ik_max_pool_grad *p, ptrdiff_t b, ptrdiff_t c0, ptrdiff_t c1) { max_grad_block(p, b, c0, c1); }
#endif

void ik_max_pool_backward(const ik_max_pool_grad *p, ptrdiff_t image, ptrdiff_t c0, ptrdiff_t c1) {
    if (c0 >= c1) return;
    switch (ik_gemm_isa()) {
#if defined(__x86_64__) || defined(__i386__)
    case IK_ISA_AVX512: max_grad_avx512(p, image, c0, c1); return;
    case IK_ISA_AVX2: max_grad_avx2(p, image, c0, c1); return;
#endif
    default: max_grad_portable(p, image, c0, c1); return;
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
