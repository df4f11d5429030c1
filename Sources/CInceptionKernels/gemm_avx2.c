/* AVX2 + FMA micro-kernel (Haswell and later, Zen 1-5). Compiled with target attributes only,
 * so the library builds for baseline x86-64 and this code runs only after a CPU check. */
#if defined(__x86_64__) || defined(__i386__)

#include "gemm_internal.h"
#include <immintrin.h>

#define IK_AVX2 __attribute__((target("avx2,fma")))
#define IK_INLINE static inline __attribute__((always_inline))

/* Register tile: MR = 6 rows × 16 columns (one packed panel = 2 ymm).
 * 12 ymm accumulators + 2 for the B row + 1 broadcast = 15 of the 16 ymm registers.
 * Per k step: 2 loads of B, 6 broadcasts of A, 12 FMAs — enough independent FMAs to hide the
 * 4-5 cycle FMA latency at 2 FMAs per cycle, and fewer loads than FMAs.
 * `mr` (1...6) is a compile-time constant at every call site, so the unused rows vanish. */
IK_INLINE IK_AVX2 void tile_6x16(const int mr, ptrdiff_t kc,
                                 const float *restrict a, ptrdiff_t lda, ptrdiff_t seg_len, ptrdiff_t seg_stride,
                                 const float *restrict b,
                                 float *restrict c, ptrdiff_t ldc,
                                 const float *restrict bias, int cols, int load_c, int relu) {
    __m256 lo[6], hi[6];
    for (int i = 0; i < 6; i++) { lo[i] = _mm256_setzero_ps(); hi[i] = _mm256_setzero_ps(); }
    /* Rows 0-2 addressed from a0, rows 3-5 from a3: base + lda·{0,1,2} keeps it to two
     * pointers and one stride register. */
    for (ptrdiff_t done = 0; done < kc; done += seg_len, a += seg_stride) {  /* K segments (see ik_block) */
        const ptrdiff_t len = kc - done < seg_len ? kc - done : seg_len;
        const float *a0 = a, *a3 = a + 3 * lda;
        for (ptrdiff_t k = 0; k < len; k++) {
            const __m256 b0 = _mm256_loadu_ps(b);
            const __m256 b1 = _mm256_loadu_ps(b + 8);
            b += 16;
            __m256 x;
#define IK_ROW(i, p, r)                                              \
            if (mr > i) {                                            \
                x = _mm256_broadcast_ss(p + r * lda + k);            \
                lo[i] = _mm256_fmadd_ps(x, b0, lo[i]);               \
                hi[i] = _mm256_fmadd_ps(x, b1, hi[i]);               \
            }
            IK_ROW(0, a0, 0) IK_ROW(1, a0, 1) IK_ROW(2, a0, 2)
            IK_ROW(3, a3, 0) IK_ROW(4, a3, 1) IK_ROW(5, a3, 2)
#undef IK_ROW
        }
    }

    /* Epilogue: add the earlier K blocks' partial sums (already in C) or the bias, clamp, store.
     * A partial last panel uses masked loads/stores so columns ≥ n are never touched. */
    const __m256 zero = _mm256_setzero_ps();
    if (cols == 16) {
        __m256 bias0 = zero, bias1 = zero;
        if (bias) { bias0 = _mm256_loadu_ps(bias); bias1 = _mm256_loadu_ps(bias + 8); }
        for (int i = 0; i < mr; i++) {
            float *row = c + i * ldc;
            __m256 v0 = lo[i], v1 = hi[i];
            if (load_c) { v0 = _mm256_add_ps(v0, _mm256_loadu_ps(row)); v1 = _mm256_add_ps(v1, _mm256_loadu_ps(row + 8)); }
            else { v0 = _mm256_add_ps(v0, bias0); v1 = _mm256_add_ps(v1, bias1); }
            if (relu) { v0 = _mm256_max_ps(v0, zero); v1 = _mm256_max_ps(v1, zero); }
            _mm256_storeu_ps(row, v0);
            _mm256_storeu_ps(row + 8, v1);
        }
    } else {
        const __m256i m0 = _mm256_loadu_si256((const __m256i *)(ik_mask_table + 16 - cols));
        const __m256i m1 = _mm256_loadu_si256((const __m256i *)(ik_mask_table + 24 - cols));
        __m256 bias0 = zero, bias1 = zero;
        if (bias) { bias0 = _mm256_maskload_ps(bias, m0); bias1 = _mm256_maskload_ps(bias + 8, m1); }
        for (int i = 0; i < mr; i++) {
            float *row = c + i * ldc;
            __m256 v0 = lo[i], v1 = hi[i];
            if (load_c) { v0 = _mm256_add_ps(v0, _mm256_maskload_ps(row, m0)); v1 = _mm256_add_ps(v1, _mm256_maskload_ps(row + 8, m1)); }
            else { v0 = _mm256_add_ps(v0, bias0); v1 = _mm256_add_ps(v1, bias1); }
            if (relu) { v0 = _mm256_max_ps(v0, zero); v1 = _mm256_max_ps(v1, zero); }
            _mm256_maskstore_ps(row, m0, v0);
            _mm256_maskstore_ps(row + 8, m1, v1);
        }
    }
}

/* The 6×16 tile for an A stored column by column (ik_block's a_transposed): the six values of
 * one column are adjacent floats, broadcast from one pointer that steps a column (`step`) per k
 * and a segment's remainder (`wrap`) at each segment's end. No bias or ReLU (weight gradients). */
IK_INLINE IK_AVX2 void tile_6x16_t(const int mr, ptrdiff_t kc, const float *restrict a, ptrdiff_t step,
                                   ptrdiff_t seg_len, ptrdiff_t seg_stride, ptrdiff_t j,
                                   const float *restrict b, float *restrict c, ptrdiff_t ldc, int cols, int load_c) {
    __m256 lo[6], hi[6];
    for (int i = 0; i < 6; i++) { lo[i] = _mm256_setzero_ps(); hi[i] = _mm256_setzero_ps(); }
    const ptrdiff_t wrap = seg_stride - seg_len * step;
    for (ptrdiff_t k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_loadu_ps(b);
        const __m256 b1 = _mm256_loadu_ps(b + 8);
        b += 16;
        __m256 x;
#define IK_ROW(i)                                                    \
        if (mr > i) {                                                \
            x = _mm256_broadcast_ss(a + i);                          \
            lo[i] = _mm256_fmadd_ps(x, b0, lo[i]);                   \
            hi[i] = _mm256_fmadd_ps(x, b1, hi[i]);                   \
        }
        IK_ROW(0) IK_ROW(1) IK_ROW(2) IK_ROW(3) IK_ROW(4) IK_ROW(5)
#undef IK_ROW
        a += step;
        if (++j == seg_len) { j = 0; a += wrap; }
    }
    const __m256i m0 = _mm256_loadu_si256((const __m256i *)(ik_mask_table + 16 - cols));
    const __m256i m1 = _mm256_loadu_si256((const __m256i *)(ik_mask_table + 24 - cols));
    for (int i = 0; i < mr; i++) {
        float *row = c + i * ldc;
        __m256 v0 = lo[i], v1 = hi[i];
        if (load_c) { v0 = _mm256_add_ps(v0, _mm256_maskload_ps(row, m0)); v1 = _mm256_add_ps(v1, _mm256_maskload_ps(row + 8, m1)); }
        _mm256_maskstore_ps(row, m0, v0);
        _mm256_maskstore_ps(row + 8, m1, v1);
    }
}

/* Loop order within a cache block: panels outer (the kc×16 panel slice, ≤ 16 KB, stays in L1
 * across all row tiles), 6-row tiles inner (each reads its 6×kc strip of A from L2). */
IK_AVX2 void ik_block_avx2(const ik_block *blk) {
    const ptrdiff_t m = blk->m, kc = blk->kc, lda = blk->lda, ldc = blk->ldc;
    for (ptrdiff_t p = 0; p < blk->panels; p++) {
        const float *b = blk->b + p * blk->panel_stride;
        const float *bias = blk->bias ? blk->bias + 16 * p : NULL;
        const int cols = p == blk->panels - 1 ? blk->last_cols : 16;
        float *c = blk->c + 16 * p;
        ptrdiff_t i = 0;
        if (blk->a_transposed) {
            const ptrdiff_t sl = blk->seg_len, ss = blk->seg_stride, j0 = blk->seg_start;
            for (; i + 6 <= m; i += 6)
                tile_6x16_t(6, kc, blk->a + i, lda, sl, ss, j0, b, c + i * ldc, ldc, cols, blk->load_c);
            switch (m - i) {
            case 1: tile_6x16_t(1, kc, blk->a + i, lda, sl, ss, j0, b, c + i * ldc, ldc, cols, blk->load_c); break;
            case 2: tile_6x16_t(2, kc, blk->a + i, lda, sl, ss, j0, b, c + i * ldc, ldc, cols, blk->load_c); break;
            case 3: tile_6x16_t(3, kc, blk->a + i, lda, sl, ss, j0, b, c + i * ldc, ldc, cols, blk->load_c); break;
            case 4: tile_6x16_t(4, kc, blk->a + i, lda, sl, ss, j0, b, c + i * ldc, ldc, cols, blk->load_c); break;
            case 5: tile_6x16_t(5, kc, blk->a + i, lda, sl, ss, j0, b, c + i * ldc, ldc, cols, blk->load_c); break;
            default: break;
            }
            continue;
        }
        for (; i + 6 <= m; i += 6)
            tile_6x16(6, kc, blk->a + i * lda, lda, blk->seg_len, blk->seg_stride, b, c + i * ldc, ldc, bias, cols, blk->load_c, blk->relu);
        switch (m - i) {
        case 1: tile_6x16(1, kc, blk->a + i * lda, lda, blk->seg_len, blk->seg_stride, b, c + i * ldc, ldc, bias, cols, blk->load_c, blk->relu); break;
        case 2: tile_6x16(2, kc, blk->a + i * lda, lda, blk->seg_len, blk->seg_stride, b, c + i * ldc, ldc, bias, cols, blk->load_c, blk->relu); break;
        case 3: tile_6x16(3, kc, blk->a + i * lda, lda, blk->seg_len, blk->seg_stride, b, c + i * ldc, ldc, bias, cols, blk->load_c, blk->relu); break;
        case 4: tile_6x16(4, kc, blk->a + i * lda, lda, blk->seg_len, blk->seg_stride, b, c + i * ldc, ldc, bias, cols, blk->load_c, blk->relu); break;
        case 5: tile_6x16(5, kc, blk->a + i * lda, lda, blk->seg_len, blk->seg_stride, b, c + i * ldc, ldc, bias, cols, blk->load_c, blk->relu); break;
        default: break;
        }
    }
}

#endif
