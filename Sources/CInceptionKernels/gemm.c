/* GEMM driver: packing, cache blocking, and the portable micro-kernel. */
#include "inception_kernels.h"
#include "gemm_internal.h"
#include <string.h>

const int32_t ik_mask_table[32] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

ptrdiff_t ik_packed_count(ptrdiff_t k, ptrdiff_t n) {
    return ((n + IK_PANEL_WIDTH - 1) / IK_PANEL_WIDTH) * IK_PANEL_WIDTH * k;
}

void ik_pack(const float *b, ptrdiff_t ldb, ptrdiff_t k, ptrdiff_t n, float *packed) {
    ik_pack_scaled(b, ldb, k, n, NULL, packed);
}

void ik_pack_scaled(const float *b, ptrdiff_t ldb, ptrdiff_t k, ptrdiff_t n, const float *column_scale,
                    float *packed) {
    const ptrdiff_t panels = (n + IK_PANEL_WIDTH - 1) / IK_PANEL_WIDTH;
    for (ptrdiff_t p = 0; p < panels; p++) {
        const ptrdiff_t j0 = p * IK_PANEL_WIDTH;
        const ptrdiff_t w = n - j0 < IK_PANEL_WIDTH ? n - j0 : IK_PANEL_WIDTH;
        float *dst = packed + p * IK_PANEL_WIDTH * k;
        if (w == IK_PANEL_WIDTH && !column_scale) {  /* whole panel: 64-byte row copies */
            for (ptrdiff_t kk = 0; kk < k; kk++) memcpy(dst + kk * IK_PANEL_WIDTH, b + kk * ldb + j0, sizeof(float) * IK_PANEL_WIDTH);
            continue;
        }
        for (ptrdiff_t kk = 0; kk < k; kk++) {
            const float *src = b + kk * ldb + j0;
            ptrdiff_t j = 0;
            if (column_scale) for (; j < w; j++) dst[j] = src[j] * column_scale[j0 + j];
            else for (; j < w; j++) dst[j] = src[j];
            for (; j < IK_PANEL_WIDTH; j++) dst[j] = 0.0f;
            dst += IK_PANEL_WIDTH;
        }
    }
}

void ik_pack_rows_at(const float *b, ptrdiff_t ldb, ptrdiff_t rows, ptrdiff_t n, ptrdiff_t k, ptrdiff_t k0,
                     float *packed) {
    const ptrdiff_t panels = (n + IK_PANEL_WIDTH - 1) / IK_PANEL_WIDTH;
    for (ptrdiff_t p = 0; p < panels; p++) {
        const ptrdiff_t j0 = p * IK_PANEL_WIDTH;
        const ptrdiff_t w = n - j0 < IK_PANEL_WIDTH ? n - j0 : IK_PANEL_WIDTH;
        float *dst = packed + (p * k + k0) * IK_PANEL_WIDTH;
        for (ptrdiff_t r = 0; r < rows; r++, dst += IK_PANEL_WIDTH) {
            const float *src = b + r * ldb + j0;
            ptrdiff_t j = 0;
            for (; j < w; j++) dst[j] = src[j];
            for (; j < IK_PANEL_WIDTH; j++) dst[j] = 0.0f;
        }
    }
}

/* Packs B′ ((taps·co) × ci): B′[t·co + o, c] = w[(t′·ci + c)·co + o] with t′ = t, or taps − 1 − t
 * when reverse_taps: a convolution's HWIO weights with each tap's CI × CO block transposed (the
 * input gradient's operand), optionally with the taps turned by 180°. Written panel by panel:
 * the 16 weight rows (c0 ..< c0+16) of a tap are read as 16 sequential streams while the panel
 * is written in order, so the transpose stays in cache however large CI·CO is. */
void ik_pack_transposed_taps(const float *w, ptrdiff_t taps, ptrdiff_t ci, ptrdiff_t co, int reverse_taps,
                             float *packed) {
    ik_pack_transposed_taps_panels(w, taps, ci, co, reverse_taps, packed, 0, (ci + IK_PANEL_WIDTH - 1) / IK_PANEL_WIDTH);
}

void ik_pack_transposed_taps_panels(const float *w, ptrdiff_t taps, ptrdiff_t ci, ptrdiff_t co, int reverse_taps,
                                    float *packed, ptrdiff_t panel_begin, ptrdiff_t panel_end) {
    const ptrdiff_t k = taps * co;
    for (ptrdiff_t p = panel_begin; p < panel_end; p++) {
        const ptrdiff_t c0 = p * IK_PANEL_WIDTH;
        const ptrdiff_t width = ci - c0 < IK_PANEL_WIDTH ? ci - c0 : IK_PANEL_WIDTH;
        float *dst = packed + p * IK_PANEL_WIDTH * k;
        for (ptrdiff_t t = 0; t < taps; t++) {
            const float *block = w + ((reverse_taps ? taps - 1 - t : t) * ci + c0) * co;
            for (ptrdiff_t o = 0; o < co; o++, dst += IK_PANEL_WIDTH) {
                ptrdiff_t j = 0;
                for (; j < width; j++) dst[j] = block[j * co + o];
                for (; j < IK_PANEL_WIDTH; j++) dst[j] = 0.0f;
            }
        }
    }
}

/* Portable micro-kernel: plain C the compiler vectorises for the baseline target (SSE2 on
 * x86-64, NEON on arm64). Register tile 4 rows × 16 columns: 64 accumulators = 16 four-wide
 * vectors, which fits the 32 NEON registers (SSE2 spills a few; this path is a fallback). */
#define IK_PMR 4
static inline __attribute__((always_inline))
void tile_4x16(const int mr, ptrdiff_t kc, const float *restrict a, ptrdiff_t lda, ptrdiff_t seg_len, ptrdiff_t seg_stride,
               const float *restrict b, float *restrict c, ptrdiff_t ldc,
               const float *restrict bias, int cols, int load_c, int relu) {
    float acc[IK_PMR][16];
    for (int i = 0; i < IK_PMR; i++)
        for (int j = 0; j < 16; j++) acc[i][j] = 0.0f;
    for (ptrdiff_t done = 0; done < kc; done += seg_len, a += seg_stride) {  /* K segments (see ik_block) */
        const ptrdiff_t len = kc - done < seg_len ? kc - done : seg_len;
        for (ptrdiff_t k = 0; k < len; k++) {
            for (int i = 0; i < mr; i++) {
                const float x = a[i * lda + k];
                for (int j = 0; j < 16; j++) acc[i][j] += x * b[j];
            }
            b += 16;
        }
    }
    for (int i = 0; i < mr; i++) {
        float *row = c + i * ldc;
        for (int j = 0; j < cols; j++) {
            float v = acc[i][j] + (load_c ? row[j] : bias ? bias[j] : 0.0f);
            if (relu && v < 0.0f) v = 0.0f;
            row[j] = v;
        }
    }
}

/* The same tile for an A stored column by column (ik_block's a_transposed): the mr values of
 * one column are adjacent; columns are `step` apart, segments `seg_stride` apart, and the
 * block's first column is at position j of its segment. No bias or ReLU (weight gradients). */
static inline __attribute__((always_inline))
void tile_4x16_t(const int mr, ptrdiff_t kc, const float *restrict a, ptrdiff_t step, ptrdiff_t seg_len,
                 ptrdiff_t seg_stride, ptrdiff_t j, const float *restrict b, float *restrict c, ptrdiff_t ldc,
                 int cols, int load_c) {
    float acc[IK_PMR][16];
    for (int i = 0; i < IK_PMR; i++)
        for (int jj = 0; jj < 16; jj++) acc[i][jj] = 0.0f;
    const ptrdiff_t wrap = seg_stride - seg_len * step;
    for (ptrdiff_t k = 0; k < kc; k++) {
        for (int i = 0; i < mr; i++) {
            const float x = a[i];
            for (int jj = 0; jj < 16; jj++) acc[i][jj] += x * b[jj];
        }
        b += 16;
        a += step;
        if (++j == seg_len) { j = 0; a += wrap; }
    }
    for (int i = 0; i < mr; i++) {
        float *row = c + i * ldc;
        for (int jj = 0; jj < cols; jj++) row[jj] = acc[i][jj] + (load_c ? row[jj] : 0.0f);
    }
}

void ik_block_portable(const ik_block *blk) {
    const ptrdiff_t m = blk->m, kc = blk->kc, lda = blk->lda, ldc = blk->ldc;
    for (ptrdiff_t p = 0; p < blk->panels; p++) {
        const float *b = blk->b + p * blk->panel_stride;
        const float *bias = blk->bias ? blk->bias + 16 * p : NULL;
        const int cols = p == blk->panels - 1 ? blk->last_cols : 16;
        float *c = blk->c + 16 * p;
        ptrdiff_t i = 0;
        if (blk->a_transposed) {
            const ptrdiff_t sl = blk->seg_len, ss = blk->seg_stride, j0 = blk->seg_start;
            for (; i + IK_PMR <= m; i += IK_PMR)
                tile_4x16_t(IK_PMR, kc, blk->a + i, lda, sl, ss, j0, b, c + i * ldc, ldc, cols, blk->load_c);
            switch (m - i) {
            case 1: tile_4x16_t(1, kc, blk->a + i, lda, sl, ss, j0, b, c + i * ldc, ldc, cols, blk->load_c); break;
            case 2: tile_4x16_t(2, kc, blk->a + i, lda, sl, ss, j0, b, c + i * ldc, ldc, cols, blk->load_c); break;
            case 3: tile_4x16_t(3, kc, blk->a + i, lda, sl, ss, j0, b, c + i * ldc, ldc, cols, blk->load_c); break;
            default: break;
            }
            continue;
        }
        for (; i + IK_PMR <= m; i += IK_PMR)
            tile_4x16(IK_PMR, kc, blk->a + i * lda, lda, blk->seg_len, blk->seg_stride, b, c + i * ldc, ldc, bias, cols, blk->load_c, blk->relu);
        switch (m - i) {
        case 1: tile_4x16(1, kc, blk->a + i * lda, lda, blk->seg_len, blk->seg_stride, b, c + i * ldc, ldc, bias, cols, blk->load_c, blk->relu); break;
        case 2: tile_4x16(2, kc, blk->a + i * lda, lda, blk->seg_len, blk->seg_stride, b, c + i * ldc, ldc, bias, cols, blk->load_c, blk->relu); break;
        case 3: tile_4x16(3, kc, blk->a + i * lda, lda, blk->seg_len, blk->seg_stride, b, c + i * ldc, ldc, bias, cols, blk->load_c, blk->relu); break;
        default: break;
        }
    }
}

/* Cache-blocking parameters per kernel.
 * kc: depth of a K block. The kernels keep a kc×16 (AVX2, portable) or kc×32 (AVX-512) slice
 *     of B in L1 while they sweep the rows: 256 deep = 16 KB / 32 KB. Deeper K is split into
 *     near-equal blocks whose partial sums accumulate in C; bias goes in with the first block,
 *     ReLU with the last.
 * mc: rows per block of A, so that the mc×kc block (≤ 96 KB) stays in L2 while every panel
 *     of the column range passes over it, and the mc×n block of C stays in L2 across K blocks. */
typedef struct { ptrdiff_t kc, mc; void (*block)(const ik_block *); } ik_params;

int ik_gemm_isa(void);

static ik_params params_for(int isa) {
    switch (isa) {
#if defined(__x86_64__) || defined(__i386__)
    case IK_ISA_AVX512: return (ik_params){ 256, 96, ik_block_avx512 };
    case IK_ISA_AVX2: return (ik_params){ 256, 96, ik_block_avx2 };
#endif
    default: return (ik_params){ 256, 64, ik_block_portable };
    }
}

static void gemm(ptrdiff_t m, ptrdiff_t k, ptrdiff_t n,
                 const float *a, ptrdiff_t lda,
                 const float *packed, ptrdiff_t panel_begin, ptrdiff_t panel_end,
                 float *c, ptrdiff_t ldc, const float *bias, int relu, int accumulate,
                 const float *shift, float *block_sums);

void ik_gemm(ptrdiff_t m, ptrdiff_t k, ptrdiff_t n,
             const float *a, ptrdiff_t lda,
             const float *packed, ptrdiff_t panel_begin, ptrdiff_t panel_end,
             float *c, ptrdiff_t ldc, const float *bias, int relu) {
    gemm(m, k, n, a, lda, packed, panel_begin, panel_end, c, ldc, bias, relu, 0, NULL, NULL);
}

void ik_gemm_block_sums(ptrdiff_t m, ptrdiff_t k, ptrdiff_t n,
                        const float *a, ptrdiff_t lda,
                        const float *packed, ptrdiff_t panel_begin, ptrdiff_t panel_end,
                        float *c, ptrdiff_t ldc, const float *bias, const float *shift, float *block_sums) {
    gemm(m, k, n, a, lda, packed, panel_begin, panel_end, c, ldc, bias, 0, 0, shift, block_sums);
}

void ik_gemm_accumulate(ptrdiff_t m, ptrdiff_t k, ptrdiff_t n,
                        const float *a, ptrdiff_t lda,
                        const float *packed, ptrdiff_t panel_begin, ptrdiff_t panel_end,
                        float *c, ptrdiff_t ldc) {
    gemm(m, k, n, a, lda, packed, panel_begin, panel_end, c, ldc, NULL, 0, 1, NULL, NULL);
}

static void gemm(ptrdiff_t m, ptrdiff_t k, ptrdiff_t n,
                 const float *a, ptrdiff_t lda,
                 const float *packed, ptrdiff_t panel_begin, ptrdiff_t panel_end,
                 float *c, ptrdiff_t ldc, const float *bias, int relu, int accumulate,
                 const float *shift, float *block_sums) {
    const ptrdiff_t total_panels = (n + IK_PANEL_WIDTH - 1) / IK_PANEL_WIDTH;
    if (panel_end > total_panels) panel_end = total_panels;
    if (m <= 0 || panel_begin >= panel_end) return;
    const ptrdiff_t j0 = panel_begin * IK_PANEL_WIDTH;
    const ptrdiff_t j1 = panel_end * IK_PANEL_WIDTH < n ? panel_end * IK_PANEL_WIDTH : n;
    float *cb = c + j0;
    const float *biasb = bias ? bias + j0 : NULL;

    if (k <= 0 && accumulate) return;  /* C += 0 */
    if (k <= 0) {  /* empty sum: C = relu?(bias) */
        for (ptrdiff_t i = 0; i < m; i++)
            for (ptrdiff_t j = 0; j < j1 - j0; j++) {
                float v = biasb ? biasb[j] : 0.0f;
                cb[i * ldc + j] = relu && v < 0.0f ? 0.0f : v;
            }
        return;
    }

    const ik_params prm = params_for(ik_gemm_isa());
    const ptrdiff_t kblocks = (k + prm.kc - 1) / prm.kc;
    const ptrdiff_t kc = (k + kblocks - 1) / kblocks;
    ik_block blk;
    blk.lda = lda;
    blk.ldc = ldc;
    blk.panel_stride = IK_PANEL_WIDTH * k;
    blk.panels = panel_end - panel_begin;
    blk.last_cols = (int)(j1 - (panel_end - 1) * IK_PANEL_WIDTH);
    /* Row blocks outer, K blocks inner: the mc-row block of C stays in cache while its partial
     * sums accumulate over the K blocks. */
    for (ptrdiff_t i0 = 0; i0 < m; i0 += prm.mc) {
        blk.m = m - i0 < prm.mc ? m - i0 : prm.mc;
        blk.c = cb + i0 * ldc;
        for (ptrdiff_t k0 = 0; k0 < k; k0 += kc) {
            blk.kc = k - k0 < kc ? k - k0 : kc;
            blk.a = a + i0 * lda + k0;
            blk.seg_len = blk.kc;
            blk.seg_stride = 0;  /* one segment: the kernels' plain path */
            blk.a_transposed = 0;
            blk.seg_start = 0;
            blk.b = packed + panel_begin * blk.panel_stride + k0 * IK_PANEL_WIDTH;
            blk.bias = k0 == 0 ? biasb : NULL;
            blk.load_c = k0 != 0 || accumulate;
            blk.relu = relu && k0 + blk.kc >= k;
            prm.block(&blk);
        }
        /* The finished mc-row block of C is still in L2: its batch-norm sums, 32 rows at a time
         * (mc is a multiple of 32), cost a read from there instead of another pass over the
         * whole output from memory. */
        if (block_sums)
            for (ptrdiff_t r = 0; r < blk.m; r += IK_BN_SUM_ROWS) {
                float *out = block_sums + (i0 + r) / IK_BN_SUM_ROWS * 2 * n;
                ik_bn_block_sums(blk.c + r * ldc, ldc, blk.m - r < IK_BN_SUM_ROWS ? blk.m - r : IK_BN_SUM_ROWS,
                                 j1 - j0, shift + j0, out + j0, out + n + j0);
            }
    }
}

/* A direct convolution on a zero-padded input without an im2col copy. For output pixel ox of one
 * output row, kernel row ky, its kw·ci inputs are one contiguous run of the padded input row
 * oy·stride_h + ky, starting at ox·stride_w·ci: so the row's A is a matrix with lda =
 * stride_w·ci (rows overlapping when the window is wider than the stride) whose K axis comes in
 * kh segments of kw·ci, a padded row apart, which the kernels walk directly (ik_block's
 * segments). Row tiles stay within one output row. K blocks are whole segments. */
void ik_conv_window_rows(const ik_conv_window *cw, ptrdiff_t row_begin, ptrdiff_t row_end) {
    ik_conv_window_rows_block_sums(cw, row_begin, row_end, NULL, NULL);
}

void ik_conv_window_rows_block_sums(const ik_conv_window *cw, ptrdiff_t row_begin, ptrdiff_t row_end,
                                    const float *shift, float *block_sums) {
    const ptrdiff_t ci = cw->channels, seg = cw->kernel_w * ci, k = cw->kernel_h * seg;
    const ptrdiff_t co = cw->out_channels, ow = cw->out_width, oh = cw->out_height;
    const ptrdiff_t panels = (co + IK_PANEL_WIDTH - 1) / IK_PANEL_WIDTH;
    if (row_begin >= row_end || co <= 0 || ow <= 0) return;
    const ik_params prm = params_for(ik_gemm_isa());
    ptrdiff_t per_block = prm.kc / seg;
    if (per_block < 1) per_block = 1;
    ik_block blk;
    blk.lda = cw->stride_w * ci;
    blk.ldc = cw->channel_stride;
    blk.panel_stride = IK_PANEL_WIDTH * k;
    blk.panels = panels;
    blk.last_cols = (int)(co - (panels - 1) * IK_PANEL_WIDTH);
    blk.m = ow;
    blk.seg_len = seg;
    blk.seg_stride = cw->padded_width * ci;
    blk.a_transposed = 0;
    blk.seg_start = 0;
    ptrdiff_t next = 0;  /* with block_sums: the first pixel (from row_begin's) of the next block to sum */
    for (ptrdiff_t r = row_begin; r < row_end; r++) {
        const ptrdiff_t image = r / oh, oy = r % oh;
        const float *top = cw->input + ((image * cw->padded_height + oy * cw->stride_h) * cw->padded_width) * ci;
        blk.c = cw->output + r * ow * cw->channel_stride;
        for (ptrdiff_t s0 = 0; s0 < cw->kernel_h; s0 += per_block) {
            const ptrdiff_t segs = cw->kernel_h - s0 < per_block ? cw->kernel_h - s0 : per_block;
            blk.kc = segs * seg;
            blk.a = top + s0 * blk.seg_stride;
            blk.b = cw->packed + s0 * seg * IK_PANEL_WIDTH;
            blk.bias = s0 == 0 ? cw->bias : NULL;
            blk.load_c = s0 != 0;
            blk.relu = cw->relu && s0 + segs >= cw->kernel_h;
            prm.block(&blk);
        }
        /* The 32-pixel blocks finished with this output row are still in cache: their
         * batch-norm sums (the last, partial block with the last row). */
        if (block_sums) {
            const ptrdiff_t done = (r + 1 - row_begin) * ow;
            for (; next < done; next += IK_BN_SUM_ROWS) {
                if (next + IK_BN_SUM_ROWS > done && r + 1 < row_end) break;
                const ptrdiff_t rows = done - next < IK_BN_SUM_ROWS ? done - next : IK_BN_SUM_ROWS;
                float *out = block_sums + next / IK_BN_SUM_ROWS * 2 * co;
                ik_bn_block_sums(cw->output + (row_begin * ow + next) * cw->channel_stride, cw->channel_stride, rows, co,
                                 shift, out, out + co);
            }
        }
    }
}

/* C (+)= A·B with A stored column by column, its columns in segments (see ik_block's
 * a_transposed). This is the shape of a weight gradient: for kernel row kh, dW[kh][kw, ci][co] =
 * Σ_pixels Xpad[pixel's window row kh][kw, ci] · dZ[pixel][co]. A's rows (kw, ci) are adjacent
 * floats of a padded input row, its columns pixels (stride·CI floats apart, a padded row apart
 * at each output row's end), so the input is read in place with no im2col copy and no
 * transpose. K blocks may start inside a segment; the kernels carry the position. */
void ik_gemm_transposed_a(ptrdiff_t m, ptrdiff_t k, ptrdiff_t n,
                          const float *a, ptrdiff_t column_step, ptrdiff_t seg_len, ptrdiff_t seg_stride,
                          const float *packed, float *c, ptrdiff_t ldc, int accumulate) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        if (!accumulate)
            for (ptrdiff_t i = 0; i < m; i++)
                for (ptrdiff_t j = 0; j < n; j++) c[i * ldc + j] = 0.0f;
        return;
    }
    if (seg_len <= 0) seg_len = k;
    const ik_params prm = params_for(ik_gemm_isa());
    const ptrdiff_t kblocks = (k + prm.kc - 1) / prm.kc;
    const ptrdiff_t kc = (k + kblocks - 1) / kblocks;
    const ptrdiff_t panels = (n + IK_PANEL_WIDTH - 1) / IK_PANEL_WIDTH;
    ik_block blk;
    blk.lda = column_step;
    blk.ldc = ldc;
    blk.panel_stride = IK_PANEL_WIDTH * k;
    blk.panels = panels;
    blk.last_cols = (int)(n - (panels - 1) * IK_PANEL_WIDTH);
    blk.seg_len = seg_len;
    blk.seg_stride = seg_stride;
    blk.a_transposed = 1;
    blk.bias = NULL;
    blk.relu = 0;
    for (ptrdiff_t i0 = 0; i0 < m; i0 += prm.mc) {
        blk.m = m - i0 < prm.mc ? m - i0 : prm.mc;
        blk.c = c + i0 * ldc;
        for (ptrdiff_t k0 = 0; k0 < k; k0 += kc) {
            blk.kc = k - k0 < kc ? k - k0 : kc;
            blk.seg_start = k0 % seg_len;
            blk.a = a + i0 + (k0 / seg_len) * seg_stride + blk.seg_start * column_step;
            blk.b = packed + k0 * IK_PANEL_WIDTH;
            blk.load_c = k0 != 0 || accumulate;
            prm.block(&blk);
        }
    }
}
