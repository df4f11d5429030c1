/* Batch normalisation in training mode (+ ReLU): the element-wise passes over NHWC rows, per
 * instruction set (see inception_kernels.h for what each computes).
 *
 * Written in C for the reason pool.c gives: Swift code in a versioned package is compiled for
 * baseline x86-64, where an 8-float SIMD vector is two SSE registers, so these passes ran at
 * about half the memory bandwidth; here one generic body is compiled for AVX-512, AVX2 and the
 * baseline. Every operation is per channel (lanes are channels; rows go in order), so the results
 * do not depend on the vector width, and contraction into FMAs is off so that they equal the
 * plain definitions bit for bit on every instruction set.
 *
 * Shape of the work: a row is one pixel's `c` channels, `stride` floats from the next; the
 * channels go 16 at a time (then one at a time), with per-channel vectors (mean, scale, β, the
 * running sums) reloaded from L1 for each row: a row of a wide Inception block is a few hundred
 * channels, too many to keep in registers. */
#include "isa_variants.h"
#include <string.h>

#pragma clang fp contract(off)
#pragma clang diagnostic ignored "-Wpsabi"

typedef float bn_v16 __attribute__((vector_size(64)));
typedef int bn_i16 __attribute__((vector_size(64)));
#define BN_INLINE static inline __attribute__((always_inline))

BN_INLINE bn_v16 load(const float *p) { bn_v16 x; memcpy(&x, p, sizeof x); return x; }
BN_INLINE void store(float *p, bn_v16 x) { memcpy(p, &x, sizeof x); }
/* x where keep, else +0 (a bit select, so each target gets its own compare and blend). */
BN_INLINE bn_v16 select_or_zero(bn_i16 keep, bn_v16 x) { return (bn_v16)(keep & (bn_i16)x); }

/* Rows per block of float running sums, flushed to the Double sums after each block. */
#define BN_BLOCK IK_BN_SUM_ROWS

BN_INLINE void moments_body(const float *z, ptrdiff_t stride, ptrdiff_t rows, ptrdiff_t c, const float *shift,
                            double *s1, double *s2, float *f1, float *f2) {
    memset(f1, 0, (size_t)c * sizeof(float));
    memset(f2, 0, (size_t)c * sizeof(float));
    for (ptrdiff_t p = 0; p < rows; p += BN_BLOCK) {
        const ptrdiff_t end = p + BN_BLOCK < rows ? p + BN_BLOCK : rows;
        for (ptrdiff_t q = p; q < end; q++) {
            const float *row = z + q * stride;
            ptrdiff_t i = 0;
            for (; i + 16 <= c; i += 16) {
                const bn_v16 v = load(row + i) - load(shift + i);
                store(f1 + i, load(f1 + i) + v);
                store(f2 + i, load(f2 + i) + v * v);
            }
            for (; i < c; i++) { const float v = row[i] - shift[i]; f1[i] += v; f2[i] += v * v; }
        }
        for (ptrdiff_t i = 0; i < c; i++) { s1[i] += (double)f1[i]; s2[i] += (double)f2[i]; f1[i] = 0; f2[i] = 0; }
    }
}

BN_INLINE void normalize_body(const float *z, ptrdiff_t zs, float *y, ptrdiff_t ys, ptrdiff_t rows, ptrdiff_t c,
                              const float *mean, const float *scale, const float *beta, int relu) {
    const bn_v16 zero = { 0 };
    for (ptrdiff_t q = 0; q < rows; q++) {
        const float *src = z + q * zs;
        float *dst = y + q * ys;
        ptrdiff_t i = 0;
        for (; i + 16 <= c; i += 16) {
            const bn_v16 v = (load(src + i) - load(mean + i)) * load(scale + i) + load(beta + i);
            store(dst + i, relu ? select_or_zero(~(v < zero), v) : v);
        }
        for (; i < c; i++) {
            const float v = (src[i] - mean[i]) * scale[i] + beta[i];
            dst[i] = relu && v < 0 ? 0 : v;
        }
    }
}

BN_INLINE void gradient_sums_body(const float *z, ptrdiff_t zs, const float *dy, ptrdiff_t gs, ptrdiff_t rows, ptrdiff_t c,
                                  const float *mean, const float *scale, const float *beta, int relu,
                                  double *sg, double *sgx, float *fg, float *fgx) {
    const bn_v16 zero = { 0 };
    memset(fg, 0, (size_t)c * sizeof(float));
    memset(fgx, 0, (size_t)c * sizeof(float));
    for (ptrdiff_t p = 0; p < rows; p += BN_BLOCK) {
        const ptrdiff_t end = p + BN_BLOCK < rows ? p + BN_BLOCK : rows;
        for (ptrdiff_t q = p; q < end; q++) {
            const float *zr = z + q * zs, *gr = dy + q * gs;
            ptrdiff_t i = 0;
            for (; i + 16 <= c; i += 16) {
                const bn_v16 centered = load(zr + i) - load(mean + i);
                bn_v16 g = load(gr + i);
                if (relu) g = select_or_zero(centered * load(scale + i) + load(beta + i) > zero, g);
                store(fg + i, load(fg + i) + g);
                store(fgx + i, load(fgx + i) + g * centered);
            }
            for (; i < c; i++) {
                const float centered = zr[i] - mean[i];
                const float g = !relu || centered * scale[i] + beta[i] > 0 ? gr[i] : 0;
                fg[i] += g; fgx[i] += g * centered;
            }
        }
        for (ptrdiff_t i = 0; i < c; i++) { sg[i] += (double)fg[i]; sgx[i] += (double)fgx[i]; fg[i] = 0; fgx[i] = 0; }
    }
}

BN_INLINE void gradient_apply_body(const float *z, ptrdiff_t zs, const float *dy, ptrdiff_t gs, float *dz, ptrdiff_t ds,
                                   ptrdiff_t rows, ptrdiff_t c, const float *mean, const float *scale, const float *beta,
                                   int relu, const float *a, const float *k) {
    const bn_v16 zero = { 0 };
    for (ptrdiff_t q = 0; q < rows; q++) {
        const float *zr = z + q * zs, *gr = dy + q * gs;
        float *out = dz + q * ds;
        ptrdiff_t i = 0;
        for (; i + 16 <= c; i += 16) {
            const bn_v16 centered = load(zr + i) - load(mean + i);
            const bn_v16 si = load(scale + i);
            bn_v16 g = load(gr + i);
            if (relu) g = select_or_zero(centered * si + load(beta + i) > zero, g);
            store(out + i, si * (g - load(a + i) - centered * load(k + i)));
        }
        for (; i < c; i++) {
            const float centered = zr[i] - mean[i];
            const float g = !relu || centered * scale[i] + beta[i] > 0 ? gr[i] : 0;
            out[i] = scale[i] * (g - a[i] - centered * k[i]);
        }
    }
}

/* One entry point per pass (isa_variants.h). */
IK_ISA_VARIANTS(moments, (const float *z, ptrdiff_t stride, ptrdiff_t rows, ptrdiff_t c, const float *shift, double *s1,
                      double *s2, float *f1, float *f2),
            (z, stride, rows, c, shift, s1, s2, f1, f2))
IK_ISA_VARIANTS(normalize, (const float *z, ptrdiff_t zs, float *y, ptrdiff_t ys, ptrdiff_t rows, ptrdiff_t c,
                        const float *mean, const float *scale, const float *beta, int relu),
            (z, zs, y, ys, rows, c, mean, scale, beta, relu))
IK_ISA_VARIANTS(gradient_sums, (const float *z, ptrdiff_t zs, const float *dy, ptrdiff_t gs, ptrdiff_t rows, ptrdiff_t c,
                            const float *mean, const float *scale, const float *beta, int relu, double *sg, double *sgx,
                            float *fg, float *fgx),
            (z, zs, dy, gs, rows, c, mean, scale, beta, relu, sg, sgx, fg, fgx))
IK_ISA_VARIANTS(gradient_apply, (const float *z, ptrdiff_t zs, const float *dy, ptrdiff_t gs, float *dz, ptrdiff_t ds,
                             ptrdiff_t rows, ptrdiff_t c, const float *mean, const float *scale, const float *beta,
                             int relu, const float *a, const float *k),
            (z, zs, dy, gs, dz, ds, rows, c, mean, scale, beta, relu, a, k))

void ik_bn_moments(const float *z, ptrdiff_t stride, ptrdiff_t rows, ptrdiff_t c, const float *shift,
                   double *s1, double *s2, float *scratch) {
    if (rows > 0 && c > 0) moments_dispatch(z, stride, rows, c, shift, s1, s2, scratch, scratch + c);
}

/* One block of ik_bn_moments (≤ BN_BLOCK rows) with the channels outermost, 16 at a time with
 * the running sums in registers: for a block that is still in cache (a GEMM row block, an
 * output row). Per channel the same float operations in the same row order as moments_body's,
 * so the sums are the same bits. */
BN_INLINE void block_sums_body(const float *z, ptrdiff_t stride, ptrdiff_t rows, ptrdiff_t c, const float *shift,
                               float *f1, float *f2) {
    ptrdiff_t i = 0;
    for (; i + 16 <= c; i += 16) {
        const bn_v16 sh = load(shift + i);
        bn_v16 a = { 0 }, b = { 0 };
        for (ptrdiff_t q = 0; q < rows; q++) {
            const bn_v16 v = load(z + q * stride + i) - sh;
            a = a + v;
            b = b + v * v;
        }
        store(f1 + i, a);
        store(f2 + i, b);
    }
    for (; i < c; i++) {
        float a = 0, b = 0;
        for (ptrdiff_t q = 0; q < rows; q++) { const float v = z[q * stride + i] - shift[i]; a += v; b += v * v; }
        f1[i] = a;
        f2[i] = b;
    }
}

IK_ISA_VARIANTS(block_sums, (const float *z, ptrdiff_t stride, ptrdiff_t rows, ptrdiff_t c, const float *shift,
                             float *f1, float *f2),
                (z, stride, rows, c, shift, f1, f2))

void ik_bn_block_sums(const float *z, ptrdiff_t stride, ptrdiff_t rows, ptrdiff_t c, const float *shift,
                      float *f1, float *f2) {
    if (c > 0) block_sums_dispatch(z, stride, rows, c, shift, f1, f2);
}

void ik_bn_add_block_sums(const float *blocks, ptrdiff_t count, ptrdiff_t per_task, ptrdiff_t c, double *s1,
                          double *s2, double *scratch) {
    memset(s1, 0, (size_t)c * sizeof(double));
    memset(s2, 0, (size_t)c * sizeof(double));
    double *p1 = scratch, *p2 = scratch + c;
    for (ptrdiff_t b0 = 0; b0 < count; b0 += per_task) {
        /* One task of ik_bn_moments: its blocks added in order to Double sums that start at 0. */
        memset(p1, 0, (size_t)c * sizeof(double));
        memset(p2, 0, (size_t)c * sizeof(double));
        const ptrdiff_t b1 = b0 + per_task < count ? b0 + per_task : count;
        for (ptrdiff_t b = b0; b < b1; b++) {
            const float *f = blocks + b * 2 * c;
            for (ptrdiff_t i = 0; i < c; i++) { p1[i] += (double)f[i]; p2[i] += (double)f[c + i]; }
        }
        for (ptrdiff_t i = 0; i < c; i++) { s1[i] += p1[i]; s2[i] += p2[i]; }
    }
}

/* Chan, Golub and LeVeque's pairwise update of (count, mean, M2) per channel with a block of
 * nb[i] values of mean mb[i] and M2 m2b[i]. With count 0 it reduces to taking the block's values;
 * no branches, so the loop vectorises (Double lanes). */
BN_INLINE void merge_pairwise(ptrdiff_t c, const double *restrict nb, const double *restrict mb, const double *restrict m2b,
                              double *restrict count, double *restrict mean, double *restrict m2) {
    for (ptrdiff_t i = 0; i < c; i++) {
        const double total = count[i] + nb[i];
        const double share = total > 0 ? nb[i] / total : 0, delta = mb[i] - mean[i];
        mean[i] += delta * share;
        m2[i] += m2b[i] + delta * delta * count[i] * share;
        count[i] = total;
    }
}

/* A block's statistics from its sums around `shift`, then the update. Channels go in runs of
 * 64 (the block's values on the stack). */
BN_INLINE void merge_shifted_body(ptrdiff_t c, double nb, const float *shift, const double *s1, const double *s2,
                                  double *count, double *mean, double *m2) {
    double n[64], mb[64], m2b[64];
    const double inb = 1.0 / nb;
    for (ptrdiff_t j0 = 0; j0 < c; j0 += 64) {
        const ptrdiff_t w = c - j0 < 64 ? c - j0 : 64;
        for (ptrdiff_t i = 0; i < w; i++) {
            const double a = s1[j0 + i], d2 = s2[j0 + i] - a * a * inb;
            n[i] = nb;
            mb[i] = (double)shift[j0 + i] + a * inb;
            m2b[i] = d2 > 0 ? d2 : 0;
        }
        merge_pairwise(w, n, mb, m2b, count + j0, mean + j0, m2 + j0);
    }
}

IK_ISA_VARIANTS(merge_shifted, (ptrdiff_t c, double nb, const float *shift, const double *s1, const double *s2,
                                double *count, double *mean, double *m2),
                (c, nb, shift, s1, s2, count, mean, m2))

void ik_bn_merge_shifted(ptrdiff_t c, double nb, const float *shift, const double *s1, const double *s2,
                         double *count, double *mean, double *m2) {
    if (nb > 0 && c > 0) merge_shifted_dispatch(c, nb, shift, s1, s2, count, mean, m2);
}

/* Slots of (count, mean, M2) (3c Doubles each, `tasks` of them) merged in order. */
BN_INLINE void merge_slots_body(const double *slots, ptrdiff_t tasks, ptrdiff_t c, double *count, double *mean,
                                double *m2) {
    for (ptrdiff_t t = 0; t < tasks; t++) {
        const double *s = slots + t * 3 * c;
        merge_pairwise(c, s, s + c, s + 2 * c, count, mean, m2);
    }
}

IK_ISA_VARIANTS(merge_slots, (const double *slots, ptrdiff_t tasks, ptrdiff_t c, double *count, double *mean, double *m2),
                (slots, tasks, c, count, mean, m2))

void ik_bn_merge_slots(const double *slots, ptrdiff_t tasks, ptrdiff_t c, double *count, double *mean, double *m2) {
    memset(count, 0, (size_t)c * sizeof(double));
    memset(mean, 0, (size_t)c * sizeof(double));
    memset(m2, 0, (size_t)c * sizeof(double));
    if (tasks > 0 && c > 0) merge_slots_dispatch(slots, tasks, c, count, mean, m2);
}

void ik_bn_normalize(const float *z, ptrdiff_t z_stride, float *y, ptrdiff_t y_stride, ptrdiff_t rows, ptrdiff_t c,
                     const float *mean, const float *scale, const float *beta, int relu) {
    if (rows > 0 && c > 0) normalize_dispatch(z, z_stride, y, y_stride, rows, c, mean, scale, beta, relu);
}

void ik_bn_gradient_sums(const float *z, ptrdiff_t z_stride, const float *dy, ptrdiff_t dy_stride, ptrdiff_t rows,
                         ptrdiff_t c, const float *mean, const float *scale, const float *beta, int relu,
                         double *sum_g, double *sum_gx, float *scratch) {
    if (rows > 0 && c > 0)
        gradient_sums_dispatch(z, z_stride, dy, dy_stride, rows, c, mean, scale, beta, relu, sum_g, sum_gx, scratch,
                               scratch + c);
}

void ik_bn_gradient_apply(const float *z, ptrdiff_t z_stride, const float *dy, ptrdiff_t dy_stride, float *dz,
                          ptrdiff_t dz_stride, ptrdiff_t rows, ptrdiff_t c, const float *mean, const float *scale,
                          const float *beta, int relu, const float *a, const float *k) {
    if (rows > 0 && c > 0)
        gradient_apply_dispatch(z, z_stride, dy, dy_stride, dz, dz_stride, rows, c, mean, scale, beta, relu, a, k);
}
