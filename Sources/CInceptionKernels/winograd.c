/* Winograd F(m×m, 3×3) convolution pieces: per-ISA weight, input and output transforms (the template
 * winograd_impl.h, compiled once per kernel family) and the driver that runs the alpha² GEMMs
 * of a block of tiles on the active GEMM micro-kernel. See inception_kernels.h for the math. */
#include "inception_kernels.h"
#include <stdlib.h>
#include <string.h>

/* Sixteen channels of one transform value (a clang/GCC vector: arithmetic is element-wise and
 * a scalar operand is broadcast). Values of this type never cross a call: every function of the
 * template is always_inline into an entry point compiled for one target, so the ABI note clang
 * gives for 64-byte vectors in non-AVX-512 functions does not apply. */
#pragma clang diagnostic ignored "-Wpsabi"
typedef float ik_f16 __attribute__((vector_size(64)));
typedef double ik_d16 __attribute__((vector_size(128)));  /* ik_f16's lanes in Double (batch statistics) */

/* Baseline target (any CPU; the INCEPTION_GEMM_ISA=portable path). */
#define IK_WG_FN static inline __attribute__((always_inline))
#define IK_WG_ENTRY static
#define IK_WG_NAME(x) x##_portable
#include "winograd_impl.h"
#undef IK_WG_FN
#undef IK_WG_NAME

#if defined(__x86_64__) || defined(__i386__)
#define IK_WG_FN static inline __attribute__((always_inline, target("avx2,fma")))
#define IK_WG_NAME(x) x##_avx2
#undef IK_WG_ENTRY
#define IK_WG_ENTRY static __attribute__((target("avx2,fma")))
#include "winograd_impl.h"
#undef IK_WG_FN
#undef IK_WG_NAME
#undef IK_WG_ENTRY

#define IK_WG_FN static inline __attribute__((always_inline, target("avx512f")))
#define IK_WG_NAME(x) x##_avx512
#define IK_WG_ENTRY static __attribute__((target("avx512f")))
#include "winograd_impl.h"
#undef IK_WG_FN
#undef IK_WG_NAME
#undef IK_WG_ENTRY
#endif

/* Calls the family's `name` compiled for the GEMM kernel in use (ik_gemm_isa) and returns:
 * name##_avx512, name##_avx2 or name##_portable with the parenthesised `args`. */
#if defined(__x86_64__) || defined(__i386__)
#define IK_WG_DISPATCH(name, args)                          \
    switch (ik_gemm_isa()) {                                \
    case IK_ISA_AVX512: name##_avx512 args; return;         \
    case IK_ISA_AVX2: name##_avx2 args; return;             \
    default: name##_portable args; return;                  \
    }
#else
#define IK_WG_DISPATCH(name, args) do { name##_portable args; return; } while (0)
#endif

/* Winograd policy (see inception_kernels.h); -1: not read from the environment yet. */
static int g_winograd_mode = -1;

int ik_winograd_mode(void) {
    int mode = __atomic_load_n(&g_winograd_mode, __ATOMIC_RELAXED);
    if (mode >= 0) return mode;
    mode = IK_WINOGRAD_AUTOMATIC;
    const char *env = getenv("INCEPTION_WINOGRAD");
    if (env) {
        if (strcmp(env, "0") == 0 || strcmp(env, "off") == 0) mode = IK_WINOGRAD_OFF;
        else if (strcmp(env, "2") == 0) mode = IK_WINOGRAD_F2;
        else if (strcmp(env, "4") == 0) mode = IK_WINOGRAD_F4;
    }
    __atomic_store_n(&g_winograd_mode, mode, __ATOMIC_RELAXED);
    return mode;
}

void ik_winograd_set_mode(int mode) {
    if (mode != IK_WINOGRAD_OFF && mode != IK_WINOGRAD_F2 && mode != IK_WINOGRAD_F4)
        mode = IK_WINOGRAD_AUTOMATIC;
    __atomic_store_n(&g_winograd_mode, mode, __ATOMIC_RELAXED);
}

/* The transforms follow the GEMM kernel choice, so INCEPTION_GEMM_ISA=portable (or
 * GEMM.kernel = .portable) runs the whole Winograd path on baseline code. */
void ik_winograd_input(const ik_winograd *w, ptrdiff_t t0, ptrdiff_t count,
                       float *v, ptrdiff_t ldv, ptrdiff_t vstride) {
    if (count <= 0) return;
    IK_WG_DISPATCH(ik_wg_input, (w, t0, count, v, ldv, vstride));
}

static void output_transform(const ik_winograd *w, const float *x, ptrdiff_t ldm, ptrdiff_t mstride,
                             ptrdiff_t t0, ptrdiff_t count, ptrdiff_t j0, ptrdiff_t cols, double *moments) {
    IK_WG_DISPATCH(ik_wg_output, (w, x, ldm, mstride, t0, count, j0, cols, moments));
}

/* Column chunk by column chunk (pass_panels panels): the alpha² products
 * (count × CI)·(CI × chunk) into the scratch, then the output transform of the chunk, while the
 * chunk's results are still in L2. Chunking bounds the scratch (and so the cache footprint of a
 * block of tiles) whatever CO is; the transformed input v is re-read per chunk from L2.
 * The scratch matrices are one cache line more than count·ldm apart: with ldm a multiple of
 * 16 floats, exact multiples of 4 KB would put all alpha² streams of the output transform in
 * the same L1 set. */
void ik_winograd_multiply(const ik_winograd *w, const float *v, ptrdiff_t ldv, ptrdiff_t vstride,
                          ptrdiff_t t0, ptrdiff_t count, ptrdiff_t panel_begin, ptrdiff_t panel_end,
                          float *scratch) {
    ik_winograd_multiply_moments(w, v, ldv, vstride, t0, count, panel_begin, panel_end, scratch, NULL);
}

void ik_winograd_multiply_moments(const ik_winograd *w, const float *v, ptrdiff_t ldv, ptrdiff_t vstride,
                                  ptrdiff_t t0, ptrdiff_t count, ptrdiff_t panel_begin, ptrdiff_t panel_end,
                                  float *scratch, double *moments) {
    const ptrdiff_t alpha = w->m + 2, a2 = alpha * alpha;
    const ptrdiff_t ci = w->in_channels, co = w->out_channels;
    const ptrdiff_t panels = (co + IK_PANEL_WIDTH - 1) / IK_PANEL_WIDTH;
    if (panel_end > panels) panel_end = panels;
    if (count <= 0 || panel_begin >= panel_end) return;
    const ptrdiff_t step = w->pass_panels > 0 ? w->pass_panels : 1;
    for (ptrdiff_t p0 = panel_begin; p0 < panel_end; p0 += step) {
        const ptrdiff_t p1 = p0 + step < panel_end ? p0 + step : panel_end;
        const ptrdiff_t j0 = p0 * IK_PANEL_WIDTH;
        const ptrdiff_t j1 = p1 * IK_PANEL_WIDTH < co ? p1 * IK_PANEL_WIDTH : co;
        const ptrdiff_t ldm = (p1 - p0) * IK_PANEL_WIDTH;
        const ptrdiff_t mstride = count * ldm + 16;
        for (ptrdiff_t x = 0; x < a2; x++) {
            /* Matrix ξ = x: its panels from p0 on, seen as a CI × (co − j0) packed matrix. */
            const float *u = w->weights + x * w->weight_stride + p0 * IK_PANEL_WIDTH * ci;
            ik_gemm(count, ci, co - j0, v + x * vstride, ldv, u, 0, p1 - p0,
                    scratch + x * mstride, ldm, NULL, 0);
        }
        output_transform(w, scratch, ldm, mstride, t0, count, j0, j1 - j0, moments);
    }
}

void ik_winograd_output_gradient(const ik_winograd *w, ptrdiff_t t0, ptrdiff_t count, float *u, ptrdiff_t ustride,
                                 ptrdiff_t panel_rows) {
    if (count <= 0) return;
    IK_WG_DISPATCH(ik_wg_gradient, (w, t0, count, u, ustride, panel_rows));
}

void ik_winograd_weight_gradient(int m, const float *mm, ptrdiff_t groups, ptrdiff_t group_stride,
                                 ptrdiff_t ci, ptrdiff_t co, ptrdiff_t c0, ptrdiff_t c1, float *dw) {
    if (c0 >= c1 || co <= 0 || groups <= 0) return;
    const int t = m == 2 ? 2 : 4;
    IK_WG_DISPATCH(ik_wg_weight_gradient, (t, mm, groups, group_stride, ci, co, c0, c1, dw));
}

void ik_winograd_weights(int m, const float *hwio, ptrdiff_t ci, ptrdiff_t co, const float *scale,
                         float *u, ptrdiff_t weight_stride) {
    ik_winograd_weights_panels(m, hwio, ci, co, scale, 0, u, weight_stride, 0, (co + 15) / 16);
}

void ik_winograd_weights_panels(int m, const float *hwio, ptrdiff_t ci, ptrdiff_t co, const float *scale,
                                int turned, float *u, ptrdiff_t weight_stride, ptrdiff_t panel_begin,
                                ptrdiff_t panel_end) {
    if (ci <= 0 || co <= 0 || panel_begin >= panel_end) return;
    const int t = m == 2 ? 2 : 4;
    IK_WG_DISPATCH(ik_wg_weights, (t, hwio, ci, co, turned ? NULL : scale, turned, u, weight_stride,
                                   panel_begin, panel_end));
}
