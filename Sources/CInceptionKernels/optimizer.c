/* The optimizers' element-wise updates with a square root and a division per element (TF's
 * ApplyRMSProp and ApplyAdam in float32), per instruction set.
 *
 * In C for the reason batchnorm.c gives: in Swift, compiled for baseline x86-64, the square root
 * and the division ran four lanes wide. Every operation is IEEE-exact element by element and
 * contraction is off, so the result does not depend on the vector width. */
#include "isa_variants.h"
#include <string.h>

#pragma clang fp contract(off)
#pragma clang diagnostic ignored "-Wpsabi"

typedef float opt_v16 __attribute__((vector_size(64)));
#define OPT_INLINE static inline __attribute__((always_inline))

OPT_INLINE opt_v16 load(const float *p) { opt_v16 x; memcpy(&x, p, sizeof x); return x; }
OPT_INLINE void store(float *p, opt_v16 x) { memcpy(p, &x, sizeof x); }

/* With weight decay d, g stands for g + d·w (slim's L2 regularizer's gradient added on the fly,
 * the sum rounded as when added beforehand; d = 0: g itself, not g + 0·w, which would turn an
 * infinite w into NaN). */
OPT_INLINE opt_v16 decayed(const float *g, const float *w, float decay) {
    return decay != 0.0f ? load(g) + load(w) * decay : load(g);
}
OPT_INLINE float decayed1(float g, float w, float decay) { return decay != 0.0f ? g + w * decay : g; }

/* ms += (g² − ms)·(1 − ρ); mom = mom·μ + g·lr / √(ms + ε); w −= mom. */
OPT_INLINE void rmsprop_body(float *w, const float *g0, float *ms, float *mom, ptrdiff_t n, float lr, float one_minus_rho,
                             float momentum, float epsilon, float decay) {
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const opt_v16 gi = decayed(g0 + i, w + i, decay);
        const opt_v16 m = load(ms + i) + (gi * gi - load(ms + i)) * one_minus_rho;
        const opt_v16 step = load(mom + i) * momentum + (gi * lr) / __builtin_elementwise_sqrt(m + epsilon);
        store(ms + i, m);
        store(mom + i, step);
        store(w + i, load(w + i) - step);
    }
    for (; i < n; i++) {
        const float g = decayed1(g0[i], w[i], decay);
        ms[i] += (g * g - ms[i]) * one_minus_rho;
        mom[i] = mom[i] * momentum + (g * lr) / __builtin_sqrtf(ms[i] + epsilon);
        w[i] -= mom[i];
    }
}

/* m += (g − m)·(1 − β₁); v += (g² − v)·(1 − β₂); w −= m·α / (√v + ε). */
OPT_INLINE void adam_body(float *w, const float *g0, float *m, float *v, ptrdiff_t n, float alpha, float one_minus_beta1,
                          float one_minus_beta2, float epsilon, float decay) {
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const opt_v16 gi = decayed(g0 + i, w + i, decay);
        const opt_v16 mi = load(m + i) + (gi - load(m + i)) * one_minus_beta1;
        const opt_v16 vi = load(v + i) + (gi * gi - load(v + i)) * one_minus_beta2;
        store(m + i, mi);
        store(v + i, vi);
        store(w + i, load(w + i) - (mi * alpha) / (__builtin_elementwise_sqrt(vi) + epsilon));
    }
    for (; i < n; i++) {
        const float g = decayed1(g0[i], w[i], decay);
        m[i] += (g - m[i]) * one_minus_beta1;
        v[i] += (g * g - v[i]) * one_minus_beta2;
        w[i] -= (m[i] * alpha) / (__builtin_sqrtf(v[i]) + epsilon);
    }
}

/* One entry point per update (isa_variants.h). */
IK_ISA_VARIANTS(rmsprop, (float *w, const float *g, float *ms, float *mom, ptrdiff_t n, float lr, float one_minus_rho,
                          float momentum, float epsilon, float decay),
                (w, g, ms, mom, n, lr, one_minus_rho, momentum, epsilon, decay))
IK_ISA_VARIANTS(adam, (float *w, const float *g, float *m, float *v, ptrdiff_t n, float alpha, float one_minus_beta1,
                       float one_minus_beta2, float epsilon, float decay),
                (w, g, m, v, n, alpha, one_minus_beta1, one_minus_beta2, epsilon, decay))

void ik_rmsprop_update(float *w, const float *g, float *ms, float *mom, ptrdiff_t n, float lr, float one_minus_rho,
                       float momentum, float epsilon, float decay) {
    if (n > 0) rmsprop_dispatch(w, g, ms, mom, n, lr, one_minus_rho, momentum, epsilon, decay);
}

void ik_adam_update(float *w, const float *g, float *m, float *v, ptrdiff_t n, float alpha, float one_minus_beta1,
                    float one_minus_beta2, float epsilon, float decay) {
    if (n > 0) adam_dispatch(w, g, m, v, n, alpha, one_minus_beta1, one_minus_beta2, epsilon, decay);
}
