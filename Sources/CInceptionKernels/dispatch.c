/* Run-time choice of the GEMM kernel. */
#include "inception_kernels.h"
#include <stdlib.h>
#include <string.h>

int ik_cpu_has_avx2_fma(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

int ik_cpu_has_avx512(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    /* __builtin_cpu_supports also checks that the OS saves the zmm state (XCR0). */
    return ik_cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

static int best_supported(int wanted) {
    if (wanted >= IK_ISA_AVX512 && ik_cpu_has_avx512()) return IK_ISA_AVX512;
    if (wanted >= IK_ISA_AVX2 && ik_cpu_has_avx2_fma()) return IK_ISA_AVX2;
    return IK_ISA_PORTABLE;
}

/* -1: not chosen yet. Relaxed atomics: every thread that races here computes the same value. */
static int g_isa = -1;

int ik_gemm_set_isa(int isa) {
    const int chosen = best_supported(isa < 0 ? IK_ISA_AVX512 : isa);
    __atomic_store_n(&g_isa, chosen, __ATOMIC_RELAXED);
    return chosen;
}

int ik_gemm_isa(void) {
    int isa = __atomic_load_n(&g_isa, __ATOMIC_RELAXED);
    if (isa >= 0) return isa;
    int wanted = IK_ISA_AVX512;
    const char *env = getenv("INCEPTION_GEMM_ISA");
    if (env) {
        if (strcmp(env, "portable") == 0) wanted = IK_ISA_PORTABLE;
        else if (strcmp(env, "avx2") == 0) wanted = IK_ISA_AVX2;
    }
    return ik_gemm_set_isa(wanted);
}
