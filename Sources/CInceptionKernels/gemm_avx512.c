/* AVX-512F micro-kernel (Skylake-X and later, Zen 4/5). Same packed layout as the AVX2 kernel:
 * it consumes two adjacent 16-column panels at once. Compiled with target attributes only. */
#if defined(__x86_64__) || defined(__i386__)

#include "gemm_internal.h"
#include <immintrin.h>

#define IK_AVX512 __attribute__((target("avx512f")))
#define IK_INLINE static inline __attribute__((always_inline))

#define IK_MR 12
/* Software prefetch distance along a packed panel: 16 k-steps (1 KB) ahead. When B comes from
 * memory rather than L2 (a tile's first pass over a weight panel; short-M products such as the
 * 7×7 layers at batch 1 and the Winograd GEMMs, which stream (m+2)² weight matrices per call),
 * the hardware prefetcher alone kept the panel stream well below memory bandwidth; with this, the cold-weight
 * sequence of Inception's 3×3 layers (WinogradBenchmarkTests) ran 5–10% faster direct and
 * 10–25% faster as Winograd, and distances of 32 or 64 k-steps were no better. On an L1 hit
 * (the tile's later rows) the prefetch costs one load slot per 24 FMAs. */
#define IK_PREFETCH (16 * 16)

/* A tile's epilogue: add earlier K blocks' partial sums (in C) or the bias, clamp, store.
 * `cols` is the valid width of the last panel of the tile; columns ≥ n are masked off. */
IK_INLINE IK_AVX512 void store_tile(const int np, const int mr, const __m512 *lo, const __m512 *hi,
                                    float *restrict c, ptrdiff_t ldc, const float *restrict bias,
                                    int cols, int load_c, int relu) {
    const __m512 zero = _mm512_setzero_ps();
    const __mmask16 full = 0xFFFF, part = (__mmask16)((1u << cols) - 1u);
    const __mmask16 m0 = np == 2 ? full : part;
    const __mmask16 m1 = part;
    __m512 bias0 = zero, bias1 = zero;
    if (bias) {
        bias0 = _mm512_maskz_loadu_ps(m0, bias);
        if (np == 2) bias1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    }
    for (int i = 0; i < mr; i++) {
        float *row = c + i * ldc;
        __m512 v0 = lo[i];
        if (load_c) v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, row));
        else v0 = _mm512_add_ps(v0, bias0);
        if (relu) v0 = _mm512_max_ps(v0, zero);
        _mm512_mask_storeu_ps(row, m0, v0);
        if (np == 2) {
            __m512 v1 = hi[i];
            if (load_c) v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, row + 16));
            else v1 = _mm512_add_ps(v1, bias1);
            if (relu) v1 = _mm512_max_ps(v1, zero);
            _mm512_mask_storeu_ps(row + 16, m1, v1);
        }
    }
}

/* One k step of B for every tile: row k of the panel (and of the next one when np == 2), with
 * the prefetch IK_PREFETCH ahead; steps both panel pointers. */
IK_INLINE IK_AVX512 void next_b_row(const int np, const float *restrict *b, const float **b2, __m512 *b0, __m512 *b1) {
    *b0 = _mm512_loadu_ps(*b);
    *b1 = np == 2 ? _mm512_loadu_ps(*b2) : _mm512_setzero_ps();
    _mm_prefetch((const char *)(*b + IK_PREFETCH), _MM_HINT_T0);
    if (np == 2) _mm_prefetch((const char *)(*b2 + IK_PREFETCH), _MM_HINT_T0);
    *b += 16;
    *b2 += 16;
}

/* Register tile: MR = 12 rows × 32 columns (two packed panels, one zmm each).
 * 24 zmm accumulators + 2 for the B rows; A is broadcast straight from memory into the FMA.
 * Per k step: 2 loads of B, 12 broadcasts of A, 24 FMAs.
 * `np` (1 or 2 panels) and `mr` (1...12) are compile-time constants at every call site. */
IK_INLINE IK_AVX512 void tile_12x32(const int np, const int mr, ptrdiff_t kc,
                                    const float *restrict a, ptrdiff_t lda,
                                    const float *restrict b, ptrdiff_t panel_stride,
                                    float *restrict c, ptrdiff_t ldc,
                                    const float *restrict bias, int cols, int load_c, int relu) {
    __m512 lo[IK_MR], hi[IK_MR];
    for (int i = 0; i < IK_MR; i++) { lo[i] = _mm512_setzero_ps(); hi[i] = _mm512_setzero_ps(); }
    const float *b2 = b + panel_stride;
    /* Rows addressed as base + lda·{0,1,2} from four bases. */
    const float *a0 = a, *a3 = a + 3 * lda, *a6 = a + 6 * lda, *a9 = a + 9 * lda;
    for (ptrdiff_t k = 0; k < kc; k++) {
        __m512 b0, b1, x;
        next_b_row(np, &b, &b2, &b0, &b1);
#define IK_ROW(i, p, r)                                              \
        if (mr > i) {                                                \
            x = _mm512_set1_ps(p[r * lda + k]);                      \
            lo[i] = _mm512_fmadd_ps(x, b0, lo[i]);                   \
            if (np == 2) hi[i] = _mm512_fmadd_ps(x, b1, hi[i]);      \
        }
        IK_ROW(0, a0, 0) IK_ROW(1, a0, 1) IK_ROW(2, a0, 2)
        IK_ROW(3, a3, 0) IK_ROW(4, a3, 1) IK_ROW(5, a3, 2)
        IK_ROW(6, a6, 0) IK_ROW(7, a6, 1) IK_ROW(8, a6, 2)
        IK_ROW(9, a9, 0) IK_ROW(10, a9, 1) IK_ROW(11, a9, 2)
#undef IK_ROW
    }

    store_tile(np, mr, lo, hi, c, ldc, bias, cols, load_c, relu);
}

/* Register tile for a segmented A (a window of a padded image, see ik_block): 8 rows × 32
 * columns, one flat k loop whose four row bases jump to the next segment every seg_len steps.
 * Eight rows, not twelve: the segment bookkeeping costs registers, and with 12 rows the compiler
 * spilled accumulators (measured 209 vs 250 GFLOP/s on the stem); 8 rows also divide the
 * stem's 112-pixel output rows exactly. Per k step: 2 loads of B, 8 broadcasts, 16 FMAs. */
#define IK_WMR 8
IK_INLINE IK_AVX512 void tile_8x32_window(const int np, const int mr, ptrdiff_t kc,
                                          const float *restrict a, ptrdiff_t lda, ptrdiff_t seg_len, ptrdiff_t seg_stride,
                                          const float *restrict b, ptrdiff_t panel_stride,
                                          float *restrict c, ptrdiff_t ldc,
                                          const float *restrict bias, int cols, int load_c, int relu) {
    __m512 lo[IK_WMR], hi[IK_WMR];
    for (int i = 0; i < IK_WMR; i++) { lo[i] = _mm512_setzero_ps(); hi[i] = _mm512_setzero_ps(); }
    const float *b2 = b + panel_stride;
    const float *a0 = a, *a2 = a + 2 * lda, *a4 = a + 4 * lda, *a6 = a + 6 * lda;
    for (ptrdiff_t k = 0, j = 0; k < kc; k++) {
        __m512 b0, b1, x;
        next_b_row(np, &b, &b2, &b0, &b1);
#define IK_ROW(i, p, r)                                              \
        if (mr > i) {                                                \
            x = _mm512_set1_ps(p[r * lda + j]);                      \
            lo[i] = _mm512_fmadd_ps(x, b0, lo[i]);                   \
            if (np == 2) hi[i] = _mm512_fmadd_ps(x, b1, hi[i]);      \
        }
        IK_ROW(0, a0, 0) IK_ROW(1, a0, 1) IK_ROW(2, a2, 0) IK_ROW(3, a2, 1)
        IK_ROW(4, a4, 0) IK_ROW(5, a4, 1) IK_ROW(6, a6, 0) IK_ROW(7, a6, 1)
#undef IK_ROW
        if (++j == seg_len) {
            j = 0;
            a0 += seg_stride; a2 += seg_stride; a4 += seg_stride; a6 += seg_stride;
        }
    }
    store_tile(np, mr, lo, hi, c, ldc, bias, cols, load_c, relu);
}

/* Register tile for an A stored column by column (ik_block's a_transposed; weight gradients):
 * 12 rows × 32 columns as tile_12x32, but the 12 values of one column are adjacent floats,
 * broadcast at immediate offsets from one pointer that steps a column per k (and a segment's
 * remainder at each segment's end): so the input is read in place, with no transposed copy.
 * Per k step: 2 loads of B, 12 broadcasts, 24 FMAs. No bias or ReLU. */
IK_INLINE IK_AVX512 void tile_12x32_t(const int np, const int mr, ptrdiff_t kc,
                                      const float *restrict a, ptrdiff_t step, ptrdiff_t seg_len,
                                      ptrdiff_t seg_stride, ptrdiff_t j,
                                      const float *restrict b, ptrdiff_t panel_stride,
                                      float *restrict c, ptrdiff_t ldc, int cols, int load_c) {
    __m512 lo[IK_MR], hi[IK_MR];
    for (int i = 0; i < IK_MR; i++) { lo[i] = _mm512_setzero_ps(); hi[i] = _mm512_setzero_ps(); }
    const float *b2 = b + panel_stride;
    const ptrdiff_t wrap = seg_stride - seg_len * step;
    for (ptrdiff_t k = 0; k < kc; k++) {
        __m512 b0, b1, x;
        next_b_row(np, &b, &b2, &b0, &b1);
#define IK_ROW(i)                                                    \
        if (mr > i) {                                                \
            x = _mm512_set1_ps(a[i]);                                \
            lo[i] = _mm512_fmadd_ps(x, b0, lo[i]);                   \
            if (np == 2) hi[i] = _mm512_fmadd_ps(x, b1, hi[i]);      \
        }
        IK_ROW(0) IK_ROW(1) IK_ROW(2) IK_ROW(3) IK_ROW(4) IK_ROW(5)
        IK_ROW(6) IK_ROW(7) IK_ROW(8) IK_ROW(9) IK_ROW(10) IK_ROW(11)
#undef IK_ROW
        a += step;
        if (++j == seg_len) { j = 0; a += wrap; }
    }
    store_tile(np, mr, lo, hi, c, ldc, NULL, cols, load_c, 0);
}

#define IK_TRANSPOSED_ROWS(NP)                                                                   \
    do {                                                                                         \
        const ptrdiff_t j0 = blk->seg_start;                                                     \
        ptrdiff_t i = 0;                                                                         \
        for (; i + IK_MR <= m; i += IK_MR)                                                       \
            tile_12x32_t(NP, IK_MR, kc, blk->a + i, lda, sl, ss, j0, b, ps, c + i * ldc, ldc, cols, blk->load_c); \
        const float *ar = blk->a + i;                                                            \
        float *cr = c + i * ldc;                                                                 \
        switch (m - i) {                                                                         \
        case 1: tile_12x32_t(NP, 1, kc, ar, lda, sl, ss, j0, b, ps, cr, ldc, cols, blk->load_c); break;   \
        case 2: tile_12x32_t(NP, 2, kc, ar, lda, sl, ss, j0, b, ps, cr, ldc, cols, blk->load_c); break;   \
        case 3: tile_12x32_t(NP, 3, kc, ar, lda, sl, ss, j0, b, ps, cr, ldc, cols, blk->load_c); break;   \
        case 4: tile_12x32_t(NP, 4, kc, ar, lda, sl, ss, j0, b, ps, cr, ldc, cols, blk->load_c); break;   \
        case 5: tile_12x32_t(NP, 5, kc, ar, lda, sl, ss, j0, b, ps, cr, ldc, cols, blk->load_c); break;   \
        case 6: tile_12x32_t(NP, 6, kc, ar, lda, sl, ss, j0, b, ps, cr, ldc, cols, blk->load_c); break;   \
        case 7: tile_12x32_t(NP, 7, kc, ar, lda, sl, ss, j0, b, ps, cr, ldc, cols, blk->load_c); break;   \
        case 8: tile_12x32_t(NP, 8, kc, ar, lda, sl, ss, j0, b, ps, cr, ldc, cols, blk->load_c); break;   \
        case 9: tile_12x32_t(NP, 9, kc, ar, lda, sl, ss, j0, b, ps, cr, ldc, cols, blk->load_c); break;   \
        case 10: tile_12x32_t(NP, 10, kc, ar, lda, sl, ss, j0, b, ps, cr, ldc, cols, blk->load_c); break; \
        case 11: tile_12x32_t(NP, 11, kc, ar, lda, sl, ss, j0, b, ps, cr, ldc, cols, blk->load_c); break; \
        default: break;                                                                          \
        }                                                                                        \
    } while (0)

#define IK_WINDOW_ROWS(NP)                                                                       \
    do {                                                                                         \
        ptrdiff_t i = 0;                                                                         \
        for (; i + IK_WMR <= m; i += IK_WMR)                                                     \
            tile_8x32_window(NP, IK_WMR, kc, blk->a + i * lda, lda, sl, ss, b, ps, c + i * ldc, ldc, \
                             bias, cols, blk->load_c, blk->relu);                                \
        const float *ar = blk->a + i * lda;                                                      \
        float *cr = c + i * ldc;                                                                 \
        switch (m - i) {                                                                         \
        case 1: tile_8x32_window(NP, 1, kc, ar, lda, sl, ss, b, ps, cr, ldc, bias, cols, blk->load_c, blk->relu); break; \
        case 2: tile_8x32_window(NP, 2, kc, ar, lda, sl, ss, b, ps, cr, ldc, bias, cols, blk->load_c, blk->relu); break; \
        case 3: tile_8x32_window(NP, 3, kc, ar, lda, sl, ss, b, ps, cr, ldc, bias, cols, blk->load_c, blk->relu); break; \
        case 4: tile_8x32_window(NP, 4, kc, ar, lda, sl, ss, b, ps, cr, ldc, bias, cols, blk->load_c, blk->relu); break; \
        case 5: tile_8x32_window(NP, 5, kc, ar, lda, sl, ss, b, ps, cr, ldc, bias, cols, blk->load_c, blk->relu); break; \
        case 6: tile_8x32_window(NP, 6, kc, ar, lda, sl, ss, b, ps, cr, ldc, bias, cols, blk->load_c, blk->relu); break; \
        case 7: tile_8x32_window(NP, 7, kc, ar, lda, sl, ss, b, ps, cr, ldc, bias, cols, blk->load_c, blk->relu); break; \
        default: break;                                                                          \
        }                                                                                        \
    } while (0)

/* All row tiles of one (pair of) panel(s): full 12-row tiles, then the remainder with a tile
 * specialised for its row count. */
#define IK_ROWS(NP)                                                                              \
    do {                                                                                         \
        ptrdiff_t i = 0;                                                                         \
        for (; i + IK_MR <= m; i += IK_MR)                                                       \
            tile_12x32(NP, IK_MR, kc, blk->a + i * lda, lda, b, ps, c + i * ldc, ldc, bias,      \
                       cols, blk->load_c, blk->relu);                                            \
        const float *ar = blk->a + i * lda;                                                      \
        float *cr = c + i * ldc;                                                                 \
        switch (m - i) {                                                                         \
        case 1: tile_12x32(NP, 1, kc, ar, lda, b, ps, cr, ldc, bias, cols, blk->load_c, blk->relu); break;   \
        case 2: tile_12x32(NP, 2, kc, ar, lda, b, ps, cr, ldc, bias, cols, blk->load_c, blk->relu); break;   \
        case 3: tile_12x32(NP, 3, kc, ar, lda, b, ps, cr, ldc, bias, cols, blk->load_c, blk->relu); break;   \
        case 4: tile_12x32(NP, 4, kc, ar, lda, b, ps, cr, ldc, bias, cols, blk->load_c, blk->relu); break;   \
        case 5: tile_12x32(NP, 5, kc, ar, lda, b, ps, cr, ldc, bias, cols, blk->load_c, blk->relu); break;   \
        case 6: tile_12x32(NP, 6, kc, ar, lda, b, ps, cr, ldc, bias, cols, blk->load_c, blk->relu); break;   \
        case 7: tile_12x32(NP, 7, kc, ar, lda, b, ps, cr, ldc, bias, cols, blk->load_c, blk->relu); break;   \
        case 8: tile_12x32(NP, 8, kc, ar, lda, b, ps, cr, ldc, bias, cols, blk->load_c, blk->relu); break;   \
        case 9: tile_12x32(NP, 9, kc, ar, lda, b, ps, cr, ldc, bias, cols, blk->load_c, blk->relu); break;   \
        case 10: tile_12x32(NP, 10, kc, ar, lda, b, ps, cr, ldc, bias, cols, blk->load_c, blk->relu); break; \
        case 11: tile_12x32(NP, 11, kc, ar, lda, b, ps, cr, ldc, bias, cols, blk->load_c, blk->relu); break; \
        default: break;                                                                          \
        }                                                                                        \
    } while (0)

/* Loop order within a cache block: panel pairs outer (the kc×32 slice, ≤ 32 KB, stays in L1
 * across the row tiles), row tiles inner (each reads its strip of A from L2): 12-row tiles,
 * 8-row window tiles when A is segmented (ik_conv_window_rows), or 12-row tiles reading A
 * column by column (ik_gemm_transposed_a). */
IK_AVX512 void ik_block_avx512(const ik_block *blk) {
    const ptrdiff_t m = blk->m, kc = blk->kc, lda = blk->lda, ldc = blk->ldc, ps = blk->panel_stride;
    const ptrdiff_t sl = blk->seg_len, ss = blk->seg_stride;
    ptrdiff_t p = 0;
    for (; p + 2 <= blk->panels; p += 2) {
        const float *b = blk->b + p * ps;
        const float *bias = blk->bias ? blk->bias + 16 * p : NULL;
        const int cols = p + 2 == blk->panels ? blk->last_cols : 16;
        float *c = blk->c + 16 * p;
        if (blk->a_transposed) IK_TRANSPOSED_ROWS(2);
        else if (ss != 0) IK_WINDOW_ROWS(2);
        else IK_ROWS(2);
    }
    if (p < blk->panels) {
        const float *b = blk->b + p * ps;
        const float *bias = blk->bias ? blk->bias + 16 * p : NULL;
        const int cols = blk->last_cols;
        float *c = blk->c + 16 * p;
        if (blk->a_transposed) IK_TRANSPOSED_ROWS(1);
        else if (ss != 0) IK_WINDOW_ROWS(1);
        else IK_ROWS(1);
    }
}

#endif
