#ifndef INCEPTION_KERNELS_H
#define INCEPTION_KERNELS_H
/* Placeholder: the fast GEMM micro-kernels land here. */
int ik_cpu_has_avx2_fma(void);
#endif
