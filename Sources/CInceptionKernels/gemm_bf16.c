/* Mixed-precision GEMM for the opt-in bfloat16 training mode (see inception_kernels.h):
 * both operands rounded to bfloat16 (round to nearest even), products exact in float32, sums in
 * float32. One AVX512-BF16 VDPBF16PS does 32 multiply-adds where VFMADD231PS does 16: on this
 * project's Zen 5 machine a register-only loop runs 497 GFLOP/s against 269 for float32 FMAs.
 * CPUs without AVX512-BF16 run a portable loop computing the same products (slowly).
 *
 * Layouts (all counts in bfloat16 values unless said otherwise):
 * - B, packed once by ik_bf16_pack: panels of 16 columns; in panel p, the pair of rows (2q, 2q+1)
 *   is 32 values at p·kp·16 + q·32, column j's two values adjacent (B[2q, j], B[2q+1, j]), which
 *   is the operand order of VDPBF16PS. kp is K rounded up to even; padding is zero.
 * - A, packed here per cache block from float32 (see ik_bf16_operand), into one of two layouts
 *   the kernel reads through the same two strides (in 32-bit pairs): pair q of tile row r at
 *   a[r·rs + q·qs]. Rows contiguous in K (forward, input gradient): row-major, rs = the block's
 *   row length, qs = 1; rows contiguous in memory (weight gradients, A = Xᵀ): 12 rows of a pair
 *   side by side, rs = 1, qs = 12. Either way the packing is a straight vector conversion.
 */
#include "inception_kernels.h"
#include <stdint.h>
#include <string.h>

#define BF_MR 12          /* rows per register tile */
#define BF_MC 96          /* rows per A block (8 tiles), ≤ 72 KB packed: stays in L2 */
#define BF_KC 384         /* K per block (192 pairs): a 32-column B slice is 24 KB, stays in L1 */

/* Per-thread packed A block (BF_MC rows × BF_KC/2 pairs, 32-bit each). */
static __thread uint32_t t_a_block[BF_MC * (BF_KC / 2)] __attribute__((aligned(64)));

/* ---- scalar helpers (portable path, tails) ---- */

static inline uint16_t to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);  /* NaN stays NaN */
    u += 0x7fffu + ((u >> 16) & 1u);                                               /* nearest even */
    return (uint16_t)(u >> 16);
}

static inline float from_bf16(uint16_t h) {
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

int ik_cpu_has_avx512_bf16(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return ik_cpu_has_avx512() && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

/* 1 when the AVX512-BF16 kernels run: the CPU has them and the float32 kernel in use is the
 * AVX-512 one (so INCEPTION_GEMM_ISA / ik_gemm_set_isa select the portable path here too). */
static int g_has_bf16 = -1;

int ik_bf16_native(void) {
    int has = __atomic_load_n(&g_has_bf16, __ATOMIC_RELAXED);
    if (has < 0) {
        has = ik_cpu_has_avx512_bf16();
        __atomic_store_n(&g_has_bf16, has, __ATOMIC_RELAXED);
    }
    return has && ik_gemm_isa() == IK_ISA_AVX512;
}

ptrdiff_t ik_bf16_packed_count(ptrdiff_t k, ptrdiff_t n) {
    return ((k + 1) / 2 * 2) * ((n + 15) / 16 * 16);
}

/* A's index (see ik_bf16_operand), rows or columns: a walk starts at any i (its offset is that
 * of A[i, ·] or A[·, i]) and steps to i + 1 without the two to four divisions a fresh start
 * takes (the packers visit every row of every block and every column of every K block: with
 * 21-float segments, as the stem's 7x7 over 3 channels has, the divisions cost more than the
 * products). */
typedef struct {
    ptrdiff_t len, stride, step, image_len, image_stride;  /* the level's geometry */
    ptrdiff_t image_base, line_base, pos, in_image;        /* where the walk is */
} walk;

static inline walk walk_from(ptrdiff_t len, ptrdiff_t stride, ptrdiff_t step, ptrdiff_t image_len,
                             ptrdiff_t image_stride, ptrdiff_t i) {
    walk w = { len, stride, step, image_len, image_stride, 0, 0, 0, i };
    if (image_len > 0) { w.image_base = (i / image_len) * image_stride; i %= image_len; w.in_image = i; }
    w.line_base = (i / len) * stride;
    w.pos = i % len;
    return w;
}
static inline walk walk_rows(const ik_bf16_operand *a, ptrdiff_t i) {
    return walk_from(a->line_len, a->line_stride, a->row_step, a->image_rows, a->image_stride, i);
}
static inline walk walk_columns(const ik_bf16_operand *a, ptrdiff_t kk) {
    return walk_from(a->seg_len, a->seg_stride, a->col_step, a->image_columns, a->image_stride, kk);
}
static inline ptrdiff_t walk_offset(const walk *w) { return w->image_base + w->line_base + w->pos * w->step; }
static inline void walk_next(walk *w) {
    if (++w->pos == w->len) { w->pos = 0; w->line_base += w->stride; }
    if (w->image_len > 0 && ++w->in_image == w->image_len) {
        w->in_image = 0; w->pos = 0; w->line_base = 0; w->image_base += w->image_stride;
    }
}

/* Offsets of row i and column kk: A[i, kk] = a->a[row_offset(a, i) + column_offset(a, kk)]. */
static inline ptrdiff_t row_offset(const ik_bf16_operand *a, ptrdiff_t i) {
    const walk w = walk_rows(a, i);
    return walk_offset(&w);
}
static inline ptrdiff_t column_offset(const ik_bf16_operand *a, ptrdiff_t kk) {
    const walk w = walk_columns(a, kk);
    return walk_offset(&w);
}

/* ---- portable path ---- */

static void pack_b_portable(const float *b, ptrdiff_t ldb, ptrdiff_t k, ptrdiff_t n, uint16_t *packed) {
    const ptrdiff_t kp = (k + 1) / 2 * 2, panels = (n + 15) / 16;
    for (ptrdiff_t p = 0; p < panels; p++) {
        uint16_t *panel = packed + p * kp * 16;
        for (ptrdiff_t q = 0; q < kp / 2; q++)
            for (int j = 0; j < 16; j++) {
                const ptrdiff_t col = p * 16 + j, r0 = 2 * q, r1 = 2 * q + 1;
                panel[q * 32 + 2 * j] = col < n ? to_bf16(b[r0 * ldb + col]) : 0;
                panel[q * 32 + 2 * j + 1] = col < n && r1 < k ? to_bf16(b[r1 * ldb + col]) : 0;
            }
    }
}

/* C rows 0..<m (+)= A·B for columns of panels 0..<panels, K block k0 ..< k0+kc, the plain
 * definition in the order VDPBF16PS sums (each pair's two products added to the running sum). */
static void block_portable(const ik_bf16_operand *a, ptrdiff_t m, ptrdiff_t k0, ptrdiff_t kc, ptrdiff_t n,
                           const uint16_t *packed, ptrdiff_t kp, float *c, ptrdiff_t ldc,
                           const float *bias, int load_c) {
    for (ptrdiff_t i = 0; i < m; i++) {
        const float *row = a->a + row_offset(a, i);
        for (ptrdiff_t j = 0; j < n; j++) {
            const uint16_t *col = packed + (j / 16) * kp * 16 + 2 * (j % 16);
            float sum = load_c ? c[i * ldc + j] : (bias ? bias[j] : 0.0f);
            for (ptrdiff_t kk = k0; kk < k0 + kc; kk += 2) {
                const float a0 = from_bf16(to_bf16(row[column_offset(a, kk)]));
                const float a1 = kk + 1 < k0 + kc ? from_bf16(to_bf16(row[column_offset(a, kk + 1)])) : 0.0f;
                const uint16_t *bq = col + (kk / 2) * 32;
                sum += a0 * from_bf16(bq[0]) + a1 * from_bf16(bq[1]);
            }
            c[i * ldc + j] = sum;
        }
    }
}

/* B′[t·co + o, c] = W[t′][c][o] (t′ = t, or taps − 1 − t with reverse_taps) packed as ik_bf16_pack
 * would pack that (taps·co) × ci matrix: element by element (odd co, or no AVX512-BF16). */
static void pack_transposed_taps_portable(const float *w, ptrdiff_t taps, ptrdiff_t ci, ptrdiff_t co, int reverse,
                                          uint16_t *packed) {
    const ptrdiff_t k = taps * co, kp = (k + 1) / 2 * 2, panels = (ci + 15) / 16;
    for (ptrdiff_t p = 0; p < panels; p++)
        for (ptrdiff_t q = 0; q < kp / 2; q++)
            for (int j = 0; j < 16; j++)
                for (int e = 0; e < 2; e++) {
                    const ptrdiff_t row = 2 * q + e, c = p * 16 + j;
                    float v = 0;
                    if (row < k && c < ci) {
                        const ptrdiff_t t = row / co, o = row % co, tt = reverse ? taps - 1 - t : t;
                        v = w[(tt * ci + c) * co + o];
                    }
                    packed[p * kp * 16 + q * 32 + 2 * j + e] = to_bf16(v);
                }
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define IK_BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))
#define IK_INLINE static inline __attribute__((always_inline))

/* 32 floats → 32 bfloat16 in order (the pairs (x0, x1), (x2, x3), … as 16 dwords). */
IK_INLINE IK_BF16 __m512i convert32(__m512 lo, __m512 hi) {
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

/* dst[0..<count] = bf16(src[0..<count]) for contiguous floats. */
IK_INLINE IK_BF16 void convert_run(const float *src, ptrdiff_t count, uint16_t *dst) {
    ptrdiff_t i = 0;
    for (; i + 32 <= count; i += 32)
        _mm512_storeu_si512(dst + i, convert32(_mm512_loadu_ps(src + i), _mm512_loadu_ps(src + i + 16)));
    if (i < count) {
        const ptrdiff_t r = count - i;
        const __mmask16 m0 = (__mmask16)(r >= 16 ? 0xFFFF : (1u << r) - 1u);
        const __mmask16 m1 = (__mmask16)(r <= 16 ? 0 : (1u << (r - 16)) - 1u);
        const __m512i v = convert32(_mm512_maskz_loadu_ps(m0, src + i), _mm512_maskz_loadu_ps(m1, src + i + 16));
        _mm512_mask_storeu_epi16(dst + i, (__mmask32)(r >= 32 ? 0xFFFFFFFFu : (1u << r) - 1u), v);
    }
}

IK_BF16 static void pack_b_avx512(const float *b, ptrdiff_t ldb, ptrdiff_t k, ptrdiff_t n, uint16_t *packed) {
    const ptrdiff_t kp = (k + 1) / 2 * 2, panels = (n + 15) / 16;
    /* Interleaves row 2q's 16 values (low half) with row 2q+1's (high half): index 2j → j, 2j+1 → 16+j. */
    const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                                23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (ptrdiff_t p = 0; p < panels; p++) {
        const ptrdiff_t cols = n - p * 16 >= 16 ? 16 : n - p * 16;
        const __mmask16 mask = (__mmask16)((1u << cols) - 1u);
        uint16_t *panel = packed + p * kp * 16;
        for (ptrdiff_t q = 0; q < kp / 2; q++) {
            const __m512 r0 = _mm512_maskz_loadu_ps(mask, b + 2 * q * ldb + p * 16);
            const __m512 r1 = 2 * q + 1 < k ? _mm512_maskz_loadu_ps(mask, b + (2 * q + 1) * ldb + p * 16) : _mm512_setzero_ps();
            _mm512_storeu_si512(panel + q * 32, _mm512_permutexvar_epi16(interleave, convert32(r0, r1)));
        }
    }
}

/* The same for even co: a pair of rows (o, o + 1) of one tap is, for each column c, two adjacent
 * floats of W[t′][c], so 16 columns are two 8-lane gathers of float pairs, already in the packed
 * order (column j's two values adjacent). */
IK_BF16 static void pack_transposed_taps_avx512(const float *w, ptrdiff_t taps, ptrdiff_t ci, ptrdiff_t co, int reverse,
                                                uint16_t *packed) {
    const ptrdiff_t kp = taps * co, panels = (ci + 15) / 16;
    const __m512i rows_lo = _mm512_set_epi64(7 * co, 6 * co, 5 * co, 4 * co, 3 * co, 2 * co, co, 0);
    const __m512i rows_hi = _mm512_add_epi64(rows_lo, _mm512_set1_epi64(8 * co));
    for (ptrdiff_t p = 0; p < panels; p++) {
        const ptrdiff_t cols = ci - p * 16 >= 16 ? 16 : ci - p * 16;
        const __mmask8 m_lo = (__mmask8)(cols >= 8 ? 0xFF : (1u << cols) - 1u);
        const __mmask8 m_hi = (__mmask8)(cols <= 8 ? 0 : (1u << (cols - 8)) - 1u);
        uint16_t *panel = packed + p * kp * 16;
        for (ptrdiff_t t = 0; t < taps; t++) {
            const float *tap = w + ((reverse ? taps - 1 - t : t) * ci + p * 16) * co;
            for (ptrdiff_t o = 0; o < co; o += 2) {
                const __m512i lo = _mm512_mask_i64gather_epi64(_mm512_setzero_si512(), m_lo, rows_lo, tap + o, 4);
                const __m512i hi = _mm512_mask_i64gather_epi64(_mm512_setzero_si512(), m_hi, rows_hi, tap + o, 4);
                _mm512_storeu_si512(panel + (t * co + o) * 16, convert32(_mm512_castsi512_ps(lo), _mm512_castsi512_ps(hi)));
            }
        }
    }
}

/* Packs rows m0 ..< m0+mc, columns k0 ..< k0+kc of A into t_a_block; returns the layout strides. */
IK_BF16 static void pack_a_avx512(const ik_bf16_operand *a, ptrdiff_t m0, ptrdiff_t mc, ptrdiff_t k0, ptrdiff_t kc,
                                  ptrdiff_t *rs, ptrdiff_t *qs) {
    const ptrdiff_t pairs = (kc + 1) / 2, tiles = (mc + BF_MR - 1) / BF_MR;
    uint32_t *out = t_a_block;
    if (a->col_step == 1) {
        /* Row-major: each row is a few contiguous runs (one per segment, or fewer where segments
         * touch), the same for every row: listed once per block. Pairs padded to a multiple of 16
         * so rows start 64-byte aligned. */
        const ptrdiff_t row_pairs = (pairs + 15) / 16 * 16;
        *rs = row_pairs; *qs = 1;
        ptrdiff_t run_src[BF_KC], run_dst[BF_KC], run_len[BF_KC], runs = 0;
        walk col = walk_columns(a, k0);
        for (ptrdiff_t j = 0; j < kc; j++, walk_next(&col)) {
            const ptrdiff_t at = walk_offset(&col);
            if (runs > 0 && at == run_src[runs - 1] + run_len[runs - 1]) { run_len[runs - 1]++; continue; }
            run_src[runs] = at; run_dst[runs] = j; run_len[runs] = 1; runs++;
        }
        walk row = walk_rows(a, m0);
        for (ptrdiff_t r = 0; r < tiles * BF_MR; r++) {
            uint16_t *dst = (uint16_t *)(out + r * row_pairs);
            if (r >= mc) { memset(dst, 0, (size_t)pairs * 4); continue; }
            const float *src = a->a + walk_offset(&row);
            walk_next(&row);
            for (ptrdiff_t u = 0; u < runs; u++) convert_run(src + run_src[u], run_len[u], dst + run_dst[u]);
            if (kc & 1) dst[kc] = 0;
        }
        return;
    }
    /* Rows adjacent in memory (row_step 1): a pair's 12 rows are 12 adjacent floats of column 2q
     * and 12 of column 2q+1, interleaved into 12 dwords. Lines of at least 12 rows (a weight
     * gradient's kernel rows, one after another) put a tile on at most two lines: its first
     * `split` rows from one, the rest from the next, merged by two masked loads. */
    *rs = 1; *qs = BF_MR;
    const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                                23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    /* The block's column offsets, once (not two divisions per pair and tile). */
    ptrdiff_t columns[BF_KC];
    walk col = walk_columns(a, k0);
    for (ptrdiff_t j = 0; j < kc; j++, walk_next(&col)) columns[j] = walk_offset(&col);
    for (ptrdiff_t t = 0; t < tiles; t++) {
        const ptrdiff_t i0 = m0 + t * BF_MR;
        const ptrdiff_t rows = mc - t * BF_MR >= BF_MR ? BF_MR : mc - t * BF_MR;
        const ptrdiff_t left = a->line_len - i0 % a->line_len;  /* rows before the line ends */
        const ptrdiff_t split = rows < left ? rows : left;
        const __mmask16 first = (__mmask16)((1u << split) - 1u), second = (__mmask16)(((1u << rows) - 1u) & ~first);
        const float *base = a->a + row_offset(a, i0);
        /* Lane l ≥ split is row i0 + l, on the next line: at next + (l − split). */
        const float *next = second ? a->a + row_offset(a, i0 + split) - split : base;
        uint32_t *tile = out + t * pairs * BF_MR;
        for (ptrdiff_t q = 0; q < pairs; q++) {
            const ptrdiff_t kk = 2 * q;
            __m512 c0 = _mm512_maskz_loadu_ps(first, base + columns[kk]);
            __m512 c1 = kk + 1 < kc ? _mm512_maskz_loadu_ps(first, base + columns[kk + 1]) : _mm512_setzero_ps();
            if (second) {
                c0 = _mm512_mask_loadu_ps(c0, second, next + columns[kk]);
                if (kk + 1 < kc) c1 = _mm512_mask_loadu_ps(c1, second, next + columns[kk + 1]);
            }
            const __m512i v = _mm512_permutexvar_epi16(interleave, convert32(c0, c1));
            _mm512_mask_storeu_epi32(tile + q * BF_MR, 0x0FFF, v);
        }
    }
}

/* d[0..<16] += v (as Double) where mask. */
IK_INLINE IK_BF16 void add_doubles(double *d, __m512 v, __mmask16 mask) {
    const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    const __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    const __mmask8 mlo = (__mmask8)(mask & 0xFF), mhi = (__mmask8)(mask >> 8);
    _mm512_mask_storeu_pd(d, mlo, _mm512_add_pd(_mm512_maskz_loadu_pd(mlo, d), lo));
    _mm512_mask_storeu_pd(d + 8, mhi, _mm512_add_pd(_mm512_maskz_loadu_pd(mhi, d + 8), hi));
}

/* One register tile: rows 0..<12 of the packed A tile (pair q of row r at a[r·rs + q·qs]) times
 * np (1 or 2) panels of B: 12 × 16·np accumulators, each step one broadcast pair per row and
 * one 32-value B vector per panel, 12·np VDPBF16PS. The epilogue stores `mr` rows and `cols`
 * valid columns of the last panel, adding C (load_c) or the bias. */
IK_INLINE IK_BF16 void tile(const int np, const uint32_t *restrict a, ptrdiff_t rs, ptrdiff_t qs, ptrdiff_t pairs,
                            const uint16_t *restrict b0, const uint16_t *restrict b1,
                            float *restrict c, ptrdiff_t ldc, int mr, int cols, const float *restrict bias, int load_c,
                            const int with_sums, double *restrict sum, double *restrict sum_sq) {
    __m512 acc0[BF_MR], acc1[BF_MR];
    for (int r = 0; r < BF_MR; r++) { acc0[r] = _mm512_setzero_ps(); acc1[r] = _mm512_setzero_ps(); }
    /* The epilogue's C rows (partial sums of earlier K blocks, or an accumulated gradient that
     * is often out of cache): fetched now, in the shadow of the products. */
    if (load_c)
        for (int r = 0; r < mr; r++) {
            _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0);
            if (np == 2) _mm_prefetch((const char *)(c + r * ldc + 16), _MM_HINT_T0);
        }
    for (ptrdiff_t q = 0; q < pairs; q++) {
        const __m512bh v0 = (__m512bh)_mm512_loadu_si512(b0 + q * 32);
        const __m512bh v1 = np == 2 ? (__m512bh)_mm512_loadu_si512(b1 + q * 32) : v0;
        const uint32_t *aq = a + q * qs;
#pragma GCC unroll 12
        for (int r = 0; r < BF_MR; r++) {
            const __m512bh x = (__m512bh)_mm512_set1_epi32((int)aq[r * rs]);
            acc0[r] = _mm512_dpbf16_ps(acc0[r], x, v0);
            if (np == 2) acc1[r] = _mm512_dpbf16_ps(acc1[r], x, v1);
        }
    }
    const __mmask16 part = (__mmask16)((1u << cols) - 1u);
    const __mmask16 m0 = np == 2 ? 0xFFFF : part, m1 = part;
    const __m512 bias0 = bias && !load_c ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    const __m512 bias1 = bias && !load_c && np == 2 ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
    /* With column sums (the last K block of a forward that feeds batch norm), the stored values'
     * sums and sums of squares: float over the tile's rows, then added to the Double sums. */
    __m512 t0 = _mm512_setzero_ps(), t1 = t0, q0 = t0, q1 = t0;
    /* Unrolled with a guard (not a loop to mr), so the accumulators stay in registers. */
#pragma GCC unroll 12
    for (int r = 0; r < BF_MR; r++) {
        if (r >= mr) break;
        float *row = c + r * ldc;
        __m512 s0 = _mm512_add_ps(acc0[r], load_c ? _mm512_maskz_loadu_ps(m0, row) : bias0);
        _mm512_mask_storeu_ps(row, m0, s0);
        if (with_sums) { t0 = _mm512_add_ps(t0, s0); q0 = _mm512_add_ps(q0, _mm512_mul_ps(s0, s0)); }
        if (np == 2) {
            __m512 s1 = _mm512_add_ps(acc1[r], load_c ? _mm512_maskz_loadu_ps(m1, row + 16) : bias1);
            _mm512_mask_storeu_ps(row + 16, m1, s1);
            if (with_sums) { t1 = _mm512_add_ps(t1, s1); q1 = _mm512_add_ps(q1, _mm512_mul_ps(s1, s1)); }
        }
    }
    if (with_sums) {
        add_doubles(sum, t0, m0); add_doubles(sum_sq, q0, m0);
        if (np == 2) { add_doubles(sum + 16, t1, m1); add_doubles(sum_sq + 16, q1, m1); }
    }
}

IK_BF16 static void gemm_avx512(ptrdiff_t m, ptrdiff_t k, ptrdiff_t n, const ik_bf16_operand *a,
                                const uint16_t *packed, float *c, ptrdiff_t ldc, const float *bias, int accumulate,
                                double *sums) {
    const ptrdiff_t kp = (k + 1) / 2 * 2, panels = (n + 15) / 16;
    const int last_cols = (int)(n - (panels - 1) * 16);
    for (ptrdiff_t k0 = 0; k0 < k; k0 += BF_KC) {
        const ptrdiff_t kc = k - k0 < BF_KC ? k - k0 : BF_KC, pairs = (kc + 1) / 2;
        const int load_c = accumulate || k0 > 0;
        for (ptrdiff_t m0 = 0; m0 < m; m0 += BF_MC) {
            const ptrdiff_t mc = m - m0 < BF_MC ? m - m0 : BF_MC;
            ptrdiff_t rs, qs;
            pack_a_avx512(a, m0, mc, k0, kc, &rs, &qs);
            const ptrdiff_t tile_step = qs == 1 ? BF_MR * rs : pairs * BF_MR;  /* uint32s from tile to tile */
            /* Panel pairs outer, row tiles inner: the kc×32 B slice stays in L1 across the tiles. */
            for (ptrdiff_t p = 0; p < panels; p += 2) {
                const int np = p + 1 < panels ? 2 : 1;
                const uint16_t *b0 = packed + p * kp * 16 + k0 * 16;
                const uint16_t *b1 = b0 + kp * 16;
                const int cols = p + np == panels ? last_cols : 16;
                const float *bp = bias ? bias + p * 16 : NULL;
                for (ptrdiff_t t = 0; t * BF_MR < mc; t++) {
                    const int mr = (int)(mc - t * BF_MR < BF_MR ? mc - t * BF_MR : BF_MR);
                    float *ct = c + (m0 + t * BF_MR) * ldc + p * 16;
                    const uint32_t *at = t_a_block + t * tile_step;
                    /* The sums' variant is a separate instantiation: their four registers would
                     * make every other tile's epilogue spill. */
                    if (sums && k0 + kc == k) {
                        double *sum = sums + p * 16, *sum_sq = sums + n + p * 16;
                        if (np == 2) tile(2, at, rs, qs, pairs, b0, b1, ct, ldc, mr, cols, bp, load_c, 1, sum, sum_sq);
                        else tile(1, at, rs, qs, pairs, b0, b0, ct, ldc, mr, cols, bp, load_c, 1, sum, sum_sq);
                    } else if (np == 2) {
                        tile(2, at, rs, qs, pairs, b0, b1, ct, ldc, mr, cols, bp, load_c, 0, NULL, NULL);
                    } else {
                        tile(1, at, rs, qs, pairs, b0, b0, ct, ldc, mr, cols, bp, load_c, 0, NULL, NULL);
                    }
                }
            }
        }
    }
}
#endif

void ik_bf16_pack_transposed_taps(const float *w, ptrdiff_t taps, ptrdiff_t ci, ptrdiff_t co, int reverse_taps,
                                  uint16_t *packed) {
#if defined(__x86_64__) || defined(__i386__)
    if (ik_bf16_native() && co % 2 == 0) { pack_transposed_taps_avx512(w, taps, ci, co, reverse_taps, packed); return; }
#endif
    pack_transposed_taps_portable(w, taps, ci, co, reverse_taps, packed);
}

void ik_bf16_pack(const float *b, ptrdiff_t ldb, ptrdiff_t k, ptrdiff_t n, uint16_t *packed) {
#if defined(__x86_64__) || defined(__i386__)
    if (ik_bf16_native()) { pack_b_avx512(b, ldb, k, n, packed); return; }
#endif
    pack_b_portable(b, ldb, k, n, packed);
}

void ik_gemm_bf16_sums(ptrdiff_t m, ptrdiff_t k, ptrdiff_t n, const ik_bf16_operand *a, const uint16_t *packed,
                       float *c, ptrdiff_t ldc, const float *bias, int accumulate, double *sums) {
    if (m <= 0 || n <= 0) return;
#if defined(__x86_64__) || defined(__i386__)
    /* The packers need rows contiguous in K (col_step 1) or rows adjacent in memory on lines of
     * at least a tile (or one line). */
    if (k > 0 && ik_bf16_native() &&
        (a->col_step == 1 || (a->row_step == 1 && (a->line_len >= m || a->line_len >= BF_MR) && a->image_rows <= 0))) {
        gemm_avx512(m, k, n, a, packed, c, ldc, bias, accumulate, sums);
        return;
    }
#endif
    if (k <= 0) {
        if (!accumulate)
            for (ptrdiff_t i = 0; i < m; i++)
                for (ptrdiff_t j = 0; j < n; j++) c[i * ldc + j] = bias ? bias[j] : 0.0f;
    } else {
        const ptrdiff_t kp = (k + 1) / 2 * 2;
        for (ptrdiff_t k0 = 0; k0 < k; k0 += BF_KC) {
            const ptrdiff_t kc = k - k0 < BF_KC ? k - k0 : BF_KC;
            block_portable(a, m, k0, kc, n, packed, kp, c, ldc, bias, accumulate || k0 > 0);
        }
    }
    if (sums)
        for (ptrdiff_t i = 0; i < m; i++)
            for (ptrdiff_t j = 0; j < n; j++) { const double v = c[i * ldc + j]; sums[j] += v; sums[n + j] += v * v; }
}

void ik_gemm_bf16(ptrdiff_t m, ptrdiff_t k, ptrdiff_t n, const ik_bf16_operand *a, const uint16_t *packed,
                  float *c, ptrdiff_t ldc, const float *bias, int accumulate) {
    ik_gemm_bf16_sums(m, k, n, a, packed, c, ldc, bias, accumulate, NULL);
}
