/* Single-thread micro-benchmark of the C kernels (no Swift, no threads): GFLOP/s per GEMM shape
 * of Inception V1 at batch 1, plus a check against a naive triple loop.
 * Build and run: benchmarks/gemm/run_kernel_bench.sh [portable|avx2|avx512] */
#define _POSIX_C_SOURCE 200809L
#include "inception_kernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmp(const void *x, const void *y) { double a = *(const double *)x, b = *(const double *)y; return a < b ? -1 : a > b; }

/* Times `call` (at least 5 samples; up to 64, or `target` seconds) and prints its table row:
 * GFLOP/s at the median and the best sample. */
#define TIME_ROW(name, m, k, n, flops, worst, target, call)                                          \
    do {                                                                                           \
        double samples_[64];                                                                       \
        int ns_ = 0;                                                                               \
        const double t0_ = now();                                                                  \
        while (ns_ < 64 && (now() - t0_ < (target) || ns_ < 5)) {                                  \
            const double t_ = now();                                                               \
            call;                                                                                  \
            samples_[ns_++] = now() - t_;                                                          \
        }                                                                                          \
        qsort(samples_, ns_, sizeof *samples_, cmp);                                               \
        printf("%-20s %6ld %5ld %5ld %9.1f %9.1f %10.2e\n", name, (long)(m), (long)(k), (long)(n), \
               (flops) / samples_[ns_ / 2] / 1e9, (flops) / samples_[0] / 1e9, worst);             \
    } while (0)

typedef struct { const char *name; long m, k, n; } shape;
static const shape shapes[] = {
    {"Conv2d_1a_7x7", 12544, 147, 64}, {"Conv2d_2b_1x1", 3136, 64, 64}, {"Conv2d_2c_3x3", 3136, 576, 192},
    {"Mixed_3b_1x1_64", 784, 192, 64}, {"Mixed_3b_1x1_96", 784, 192, 96}, {"Mixed_3b_1x1_16", 784, 192, 16},
    {"Mixed_3b_3x3_128", 784, 864, 128}, {"Mixed_3b_3x3_32", 784, 144, 32},
    {"Mixed_4b_1x1_192", 196, 480, 192}, {"Mixed_4e_1x1_256", 196, 528, 256}, {"Mixed_4f_3x3_320", 196, 1440, 320},
    {"Mixed_4b_3x3_208", 196, 864, 208},
    {"Mixed_5b_1x1_256", 49, 832, 256}, {"Mixed_5c_1x1_384", 49, 832, 384}, {"Mixed_5b_3x3_320", 49, 1440, 320},
    {"Mixed_5c_3x3_384", 49, 1728, 384}, {"Logits", 1, 1024, 1001},
};

/* A padded-input direct convolution (ik_conv_window_rows: A read in place from a zero-padded
 * image, K in kk segments of kk·ci), against a float64 loop: the stem (229x229x3, 7x7 stride 2)
 * and Mixed_3b's 3x3 branch (30x30x96 → 28x28x128). */
static void window_conv(const char *name, long ph, long pw, long ci, long co, long kk, long st, long oh, long ow,
                        double target) {
    const long k = kk * kk * ci;
    float *img = malloc(sizeof(float) * ph * pw * ci), *w = malloc(sizeof(float) * k * co);
    float *out = malloc(sizeof(float) * oh * ow * co), *bias = malloc(sizeof(float) * co);
    float *p = aligned_alloc(64, sizeof(float) * (ik_packed_count(k, co) + 16));
    for (long i = 0; i < ph * pw * ci; i++) img[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    for (long i = 0; i < k * co; i++) w[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    for (long i = 0; i < co; i++) bias[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    ik_pack(w, co, k, co, p);
    ik_conv_window cw = { img, ph, pw, ci, kk, kk, st, st, oh, ow, co, p, out, co, bias, 1 };
    ik_conv_window_rows(&cw, 0, oh);
    double worst = 0;
    for (long y = 0; y < oh; y += 5)
        for (long x = 0; x < ow; x += 3)
            for (long j = 0; j < co; j++) {
                double sum = bias[j], mag = fabs(bias[j]);
                for (long ky = 0; ky < kk; ky++)
                    for (long q = 0; q < kk * ci; q++) {
                        const double v = (double)img[((y * st + ky) * pw + x * st) * ci + q] * w[(ky * kk * ci + q) * co + j];
                        sum += v; mag += fabs(v);
                    }
                if (sum < 0) sum = 0;
                const double e = fabs(out[(y * ow + x) * co + j] - sum) / (mag + 1e-30);
                if (e > worst) worst = e;
            }
    TIME_ROW(name, oh * ow, k, co, 2.0 * oh * ow * k * co, worst, target, ik_conv_window_rows(&cw, 0, oh));
    free(img); free(w); free(out); free(bias); free(p);
}

/* An operand as the products see it: rounded to bfloat16 (nearest even, as the kernels), or exact. */
static double round_bf16(float x) {
    uint32_t u; memcpy(&u, &x, 4); u += 0x7fffu + ((u >> 16) & 1u); u &= 0xffff0000u;
    float f; memcpy(&f, &u, 4); return f;
}
static double exact(float x) { return x; }

/* Worst relative error (to Σ|products|) of a kk×kk, stride-st weight gradient dw over an h×w
 * output band of a padded input (pw wide) against float64 sums of operand(x)·operand(dz), at
 * sampled elements. */
static double band_dw_error(const float *band, const float *dz, const float *dw, long h, long w, long pw, long ci,
                            long co, long kk, long st, double (*operand)(float)) {
    double worst = 0;
    for (long t = 0; t < kk * kk; t += 4)
        for (long c = 0; c < ci; c += 5)
            for (long j = 0; j < co; j++) {
                double sum = 0, mag = 0;
                for (long y = 0; y < h; y++)
                    for (long x = 0; x < w; x++) {
                        const double v = operand(band[((y * st + t / kk) * pw + x * st + t % kk) * ci + c])
                            * operand(dz[(y * w + x) * co + j]);
                        sum += v; mag += fabs(v);
                    }
                const double e = fabs(dw[(t * ci + c) * co + j] - sum) / (mag + 1e-30);
                if (e > worst) worst = e;
            }
    return worst;
}

/* A weight gradient read in place (ik_gemm_transposed_a), as training runs Mixed_3b's 3x3 branch
 * for one image: per kernel row r, dW[r] ((3·96) × 128: taps kw, channels c) = Xpadᵀ · dZ over
 * 784 pixels, from a 30x30x96 zero-padded band, against a float64 loop. */
static void weight_gradient_band(double target) {
    const long h = 28, w = 28, pw = 30, ci = 96, co = 128, px = h * w;
    float *band = malloc(sizeof(float) * pw * pw * ci), *dz = malloc(sizeof(float) * px * co);
    float *dw = malloc(sizeof(float) * 9 * ci * co);
    float *p = aligned_alloc(64, sizeof(float) * (ik_packed_count(px, co) + 16));
    for (long i = 0; i < pw * pw * ci; i++) band[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    for (long i = 0; i < px * co; i++) dz[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    ik_pack(dz, co, px, co, p);
#define IK_BAND_TAPS() \
    for (long r = 0; r < 3; r++) \
        ik_gemm_transposed_a(3 * ci, px, co, band + r * pw * ci, ci, w, pw * ci, p, dw + r * 3 * ci * co, co, 0)
    IK_BAND_TAPS();
    const double worst = band_dw_error(band, dz, dw, h, w, pw, ci, co, 3, 1, exact);
    TIME_ROW("Mixed_3b_3x3 dW (3x)", 3 * ci, px, co, 2.0 * 9 * ci * px * co, worst, target, IK_BAND_TAPS());
#undef IK_BAND_TAPS
    free(band); free(dz); free(dw); free(p);
}

/* The bfloat16 products (ik_gemm_bf16) of one image's kk×kk, stride-st convolution, both ways
 * training runs them: the forward on a zero-padded band (ph×pw×ci) read in place (M = oh lines of
 * ow pixels, K = kk kernel-row segments of kk·ci), and the weight gradient (A = Xpadᵀ: rows
 * adjacent in memory, kk lines of kk·ci of them, columns pixels). Errors are against float64 on the
 * bf16-rounded operands, relative to Σ|products|. */
static void bf16_band(const char *name, long ph, long pw, long ci, long co, long kk, long st, long oh, long ow,
                      double target) {
    const long px = oh * ow, k = kk * kk * ci, row = pw * ci;
    float *band = malloc(sizeof(float) * ph * row), *wt = malloc(sizeof(float) * k * co);
    float *out = malloc(sizeof(float) * px * co), *dz = malloc(sizeof(float) * px * co);
    float *dw = malloc(sizeof(float) * k * co);
    uint16_t *pw_ = aligned_alloc(64, 2 * (ik_bf16_packed_count(k, co) + 32));
    uint16_t *pz = aligned_alloc(64, 2 * (ik_bf16_packed_count(px, co) + 32));
    for (long i = 0; i < ph * row; i++) band[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    for (long i = 0; i < k * co; i++) wt[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    for (long i = 0; i < px * co; i++) dz[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    ik_bf16_pack(wt, co, k, co, pw_);
    ik_bf16_pack(dz, co, px, co, pz);
    const ik_bf16_operand fwd = { band, ow, st * row, st * ci, kk * ci, row, 1, 0, 0, 0 };
    double fl = 2.0 * px * k * co, worst = 0;
    ik_gemm_bf16(px, k, co, &fwd, pw_, out, co, NULL, 0);
    for (long y = 0; y < oh; y += 3)
        for (long x = 0; x < ow; x += 2)
            for (long j = 0; j < co; j += 3) {
                double sum = 0, mag = 0;
                for (long t = 0; t < kk * kk; t++)
                    for (long c = 0; c < ci; c++) {
                        const double v = round_bf16(band[((y * st + t / kk) * pw + x * st + t % kk) * ci + c])
                            * round_bf16(wt[(t * ci + c) * co + j]);
                        sum += v; mag += fabs(v);
                    }
                const double e = fabs(out[(y * ow + x) * co + j] - sum) / (mag + 1e-30);
                if (e > worst) worst = e;
            }
    char label[64];
    snprintf(label, sizeof label, "%s bf16", name);
    TIME_ROW(label, px, k, co, fl, worst, target, ik_gemm_bf16(px, k, co, &fwd, pw_, out, co, NULL, 0));
    /* All kernel rows in one product (lines of kk·ci rows, a padded row apart), as training runs it. */
#define IK_BF16_TAPS() \
    do { \
        const ik_bf16_operand xt = { band, kk * ci, row, 1, ow, st * row, st * ci, 0, 0, 0 }; \
        ik_gemm_bf16(kk * kk * ci, px, co, &xt, pz, dw, co, NULL, 0); \
    } while (0)
    IK_BF16_TAPS();
    worst = band_dw_error(band, dz, dw, oh, ow, pw, ci, co, kk, st, round_bf16);
    snprintf(label, sizeof label, "%s dW bf16", name);
    TIME_ROW(label, kk * kk * ci, px, co, fl, worst, target, IK_BF16_TAPS());
#undef IK_BF16_TAPS
    free(band); free(wt); free(out); free(dz); free(dw); free(pw_); free(pz);
}

int main(int argc, char **argv) {
    if (argc > 1) ik_gemm_set_isa(!strcmp(argv[1], "portable") ? 0 : !strcmp(argv[1], "avx2") ? 1 : 2);
    const double target = argc > 2 ? atof(argv[2]) : 0.3;  /* seconds per shape */
    printf("isa %d\n%-20s %6s %5s %5s %9s %9s %10s\n", ik_gemm_isa(), "shape", "M", "K", "N", "GFLOP/s", "best", "maxrelerr");
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const long m = shapes[s].m, k = shapes[s].k, n = shapes[s].n;
        float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n);
        float *c = malloc(sizeof(float) * m * n), *r = malloc(sizeof(float) * m * n), *bias = malloc(sizeof(float) * n);
        float *p = aligned_alloc(64, sizeof(float) * (ik_packed_count(k, n) + 16));
        for (long i = 0; i < m * k; i++) a[i] = (float)rand() / (float)RAND_MAX - 0.5f;
        for (long i = 0; i < k * n; i++) b[i] = (float)rand() / (float)RAND_MAX - 0.5f;
        for (long i = 0; i < n; i++) bias[i] = (float)rand() / (float)RAND_MAX - 0.5f;
        ik_pack(b, n, k, n, p);
        const long panels = (n + 15) / 16;
        ik_gemm(m, k, n, a, k, p, 0, panels, c, n, bias, 1);
        double worst = 0;
        for (long i = 0; i < m; i += (m > 64 ? 7 : 1))
            for (long j = 0; j < n; j++) {
                double s = bias[j], mag = fabs(bias[j]);
                for (long q = 0; q < k; q++) { s += (double)a[i * k + q] * b[q * n + j]; mag += fabs((double)a[i * k + q] * b[q * n + j]); }
                if (s < 0) s = 0;
                double e = fabs(c[i * n + j] - s) / (mag + 1e-30);
                if (e > worst) worst = e;
            }
        double t0 = now(); int reps = 0;
        while (now() - t0 < 0.05) { ik_gemm(m, k, n, a, k, p, 0, panels, c, n, bias, 1); reps++; }
        const int inner = reps / 5 > 0 ? reps / 5 : 1;  /* ~10 ms per sample */
        double samples[64]; int ns = 0; t0 = now();
        while (ns < 64 && (now() - t0 < target || ns < 5)) {
            double t = now();
            for (int it = 0; it < inner; it++) ik_gemm(m, k, n, a, k, p, 0, panels, c, n, bias, 1);
            samples[ns++] = (now() - t) / inner;
        }
        qsort(samples, ns, sizeof *samples, cmp);
        const double fl = 2.0 * m * k * n;
        printf("%-20s %6ld %5ld %5ld %9.1f %9.1f %10.2e\n", shapes[s].name, m, k, n, fl / samples[ns / 2] / 1e9, fl / samples[0] / 1e9, worst);
        free(a); free(b); free(c); free(r); free(bias); free(p);
    }
    window_conv("Conv2d_1a (window)", 229, 229, 3, 64, 7, 2, 112, 112, target);
    window_conv("Mixed_3b_3x3 (window)", 30, 30, 96, 128, 3, 1, 28, 28, target);
    window_conv("Mixed_4b_3x3 (window)", 16, 16, 96, 208, 3, 1, 14, 14, target);
    window_conv("Mixed_5b_3x3 (window)", 9, 9, 160, 320, 3, 1, 7, 7, target);
    weight_gradient_band(target);
    bf16_band("Mixed_3b_3x3", 30, 30, 96, 128, 3, 1, 28, 28, target);
    bf16_band("Conv2d_1a", 229, 229, 3, 64, 7, 2, 112, 112, target);
    return 0;
}
