/* Private to the element-wise kernels (batchnorm.c, optimizer.c): one generic body, compiled for
 * each instruction set, behind one entry point that follows the GEMM's choice (ik_gemm_isa). */
#ifndef INCEPTION_ISA_VARIANTS_H
#define INCEPTION_ISA_VARIANTS_H

#include "inception_kernels.h"

/* From an always-inline `name##_body`, defines `static void name##_dispatch params` calling the
 * body compiled for AVX-512, AVX2 or the baseline. `params` is the parenthesised parameter list,
 * `args` the parenthesised names passed on. */
#if defined(__x86_64__) || defined(__i386__)
#define IK_ISA_VARIANTS(name, params, args)                                                   \
    static void name##_portable params { name##_body args; }                                  \
    __attribute__((target("avx2,fma"))) static void name##_avx2 params { name##_body args; }  \
    __attribute__((target("avx512f"))) static void name##_avx512 params { name##_body args; } \
    static void name##_dispatch params {                                                      \
        switch (ik_gemm_isa()) {                                                              \
        case IK_ISA_AVX512: name##_avx512 args; return;                                       \
        case IK_ISA_AVX2: name##_avx2 args; return;                                           \
        default: name##_portable args; return;                                                \
        }                                                                                     \
    }
#else
#define IK_ISA_VARIANTS(name, params, args) static void name##_dispatch params { name##_body args; }
#endif

#endif
