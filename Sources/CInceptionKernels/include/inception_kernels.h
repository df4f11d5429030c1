#ifndef INCEPTION_KERNELS_H
#define INCEPTION_KERNELS_H

/*
 * Single-precision GEMM micro-kernels with run-time CPU dispatch.
 *
 *   C[i, j] = relu?( Σ_k A[i, k] · B[k, j] + bias[j] )      i < m, j < n
 *
 * B (K×N, the weights) is packed once by ik_pack into panels of IK_PANEL_WIDTH columns:
 * panel p holds, for k = 0..K-1, the IK_PANEL_WIDTH values B[k, 16p ..< 16p+16] contiguously
 * (columns past N are zero). Panel p starts at packed + p·K·IK_PANEL_WIDTH.
 * A is read in place (row stride lda); C is written with row stride ldc, columns ≥ n untouched.
 * Accumulation is float32 throughout. The layout is the same for every instruction set, so a
 * packed matrix can be used with whichever kernel is active.
 *
 * All functions are thread-safe; ik_gemm may run concurrently on disjoint parts of C.
 */

#include <stddef.h>

/* Columns per packed panel. */
#define IK_PANEL_WIDTH 16

/* Instruction sets of the kernels (values of ik_gemm_isa / ik_gemm_set_isa). */
#define IK_ISA_PORTABLE 0
#define IK_ISA_AVX2 1
#define IK_ISA_AVX512 2

/* 1 when the CPU can run the AVX2+FMA kernel. */
int ik_cpu_has_avx2_fma(void);
/* 1 when the CPU can run the AVX-512 kernel. */
int ik_cpu_has_avx512(void);

/* The kernel in use: the best the CPU supports, unless overridden by the environment variable
 * INCEPTION_GEMM_ISA=portable|avx2|avx512 (read once) or by ik_gemm_set_isa. */
int ik_gemm_isa(void);
/* Selects a kernel; a request the CPU cannot run falls back to the best lower one. Negative
 * values select the best supported. Returns the kernel now in use. Not for use while a
 * multiplication is running. */
int ik_gemm_set_isa(int isa);

/* Number of floats ik_pack writes for a K×N matrix: ceil(N/16)·16·K. */
ptrdiff_t ik_packed_count(ptrdiff_t k, ptrdiff_t n);

/* Packs the row-major K×N matrix b (row stride ldb ≥ n) into packed (ik_packed_count floats). */
void ik_pack(const float *b, ptrdiff_t ldb, ptrdiff_t k, ptrdiff_t n, float *packed);

/* Computes rows 0..<m of C for the columns of panels panel_begin..<panel_end (clipped to n):
 * C[i, j] = relu?(Σ_k a[i·lda + k] · B[k, j] + bias[j]). bias may be NULL; relu is 0 or 1.
 * n is the full column count of the packed B; c points at column 0 of row 0. */
void ik_gemm(ptrdiff_t m, ptrdiff_t k, ptrdiff_t n,
             const float *a, ptrdiff_t lda,
             const float *packed, ptrdiff_t panel_begin, ptrdiff_t panel_end,
             float *c, ptrdiff_t ldc, const float *bias, int relu);

/* ---- Thread pool (parallel.c) ---- */

/* The thread count set by ik_parallel_set_threads, or 0 if never set. */
int ik_parallel_threads(void);
/* Sets the thread count used by Parallel (clamped to 1...256). */
void ik_parallel_set_threads(int n);

/* Calls fn(ctx, i) for every i in 0..<count on up to `threads` threads (the caller is one of
 * them) and returns when all calls have returned. Indices are claimed dynamically. Runs
 * serially when threads ≤ 1, when called from inside a job, or while another thread's job is
 * running. */
void ik_parallel_for(int threads, ptrdiff_t count, void (*fn)(void *ctx, ptrdiff_t index), void *ctx);

/* A 64-byte-aligned buffer of at least `count` floats owned by the calling thread, valid until
 * the thread's next call (or exit). NULL if memory is exhausted. */
float *ik_thread_scratch(ptrdiff_t count);

#endif
