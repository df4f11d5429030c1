/* Private interface between the GEMM driver (gemm.c) and the per-instruction-set kernels. */
#ifndef INCEPTION_GEMM_INTERNAL_H
#define INCEPTION_GEMM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* One cache block of work: rows 0..<m of A (already offset to column k0 of this K block),
 * times `panels` packed panels (already offset to row k0), into C (offset to the first column
 * of the first panel). The kernel walks panels in the outer loop and row tiles in the inner one,
 * so the kc×16 slice of a panel stays in L1 while the m×kc block of A is re-read from L2. */
typedef struct {
    const float *a;          /* A block: row i, column kk at a[i·lda + kk], kk < kc; or, when */
    ptrdiff_t lda;           /* segmented, at a[i·lda + (kk / seg_len)·seg_stride + kk % seg_len] */
    ptrdiff_t seg_len;       /* A's columns come in segments of seg_len (kc: one segment) */
    ptrdiff_t seg_stride;    /* floats from one segment's start to the next's */
    int a_transposed;        /* 1: A is stored column by column: row i, column kk at
                              * a[i + (j / seg_len)·seg_stride + (j % seg_len)·lda] with
                              * j = seg_start + kk (lda is then the step between columns) */
    ptrdiff_t seg_start;     /* a_transposed only: position of column 0 in its segment */
    const float *b;          /* first panel at row k0; kk-th row of panel p at b[p·panel_stride + 16·kk] */
    ptrdiff_t panel_stride;  /* floats between consecutive panels (16·K) */
    float *c;                /* C block: row i, column j at c[i·ldc + j] */
    ptrdiff_t ldc;
    const float *bias;       /* bias for the block's columns, or NULL (only given on the first K block) */
    ptrdiff_t m;             /* rows */
    ptrdiff_t kc;            /* depth of this K block (≥ 1) */
    ptrdiff_t panels;        /* panels (≥ 1) */
    int last_cols;           /* valid columns of the last panel, 1...16 */
    int load_c;              /* 1: add to the partial sums already in C (not the first K block) */
    int relu;                /* 1: clamp at zero after adding (only on the last K block) */
} ik_block;

void ik_block_portable(const ik_block *blk);
#if defined(__x86_64__) || defined(__i386__)
void ik_block_avx2(const ik_block *blk);
void ik_block_avx512(const ik_block *blk);
#endif

/* For masked loads and stores of a partial panel: mask for `cols` columns starting at
 * ik_mask_table + 16 - cols (cols ones followed by zeros). */
extern const int32_t ik_mask_table[32];

#endif
