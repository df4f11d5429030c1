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
#include <stdint.h>

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
/* The same with column j multiplied by column_scale[j] as it is packed (a batch norm folded into
 * a convolution's output channels without a scaled copy of the weights); NULL scales nothing. */
void ik_pack_scaled(const float *b, ptrdiff_t ldb, ptrdiff_t k, ptrdiff_t n, const float *column_scale,
                    float *packed);

/* Packs the rows × n matrix b (row stride ldb) as rows k0 ..< k0 + rows of a packed k × n
 * matrix (ik_packed_count(k, n) floats at packed), so a packed operand can be assembled from
 * pieces in any row order. */
void ik_pack_rows_at(const float *b, ptrdiff_t ldb, ptrdiff_t rows, ptrdiff_t n, ptrdiff_t k, ptrdiff_t k0,
                     float *packed);

/* Packs B′ ((taps·co) × ci, ik_packed_count(taps·co, ci) floats) from HWIO weights w
 * (taps·ci·co floats): B′[t·co + o, c] = W[t′][c][o], t′ = t or, with reverse_taps, taps − 1 − t
 * (the kernel turned by 180°). The operand of a convolution's input gradient. */
void ik_pack_transposed_taps(const float *w, ptrdiff_t taps, ptrdiff_t ci, ptrdiff_t co, int reverse_taps,
                             float *packed);
/* The same for the panels panel_begin ..< panel_end of B′ only (its columns 16·panel_begin ..<
 * 16·panel_end), so threads can share the work. */
void ik_pack_transposed_taps_panels(const float *w, ptrdiff_t taps, ptrdiff_t ci, ptrdiff_t co, int reverse_taps,
                                    float *packed, ptrdiff_t panel_begin, ptrdiff_t panel_end);

/* Computes rows 0..<m of C for the columns of panels panel_begin..<panel_end (clipped to n):
 * C[i, j] = relu?(Σ_k a[i·lda + k] · B[k, j] + bias[j]). bias may be NULL; relu is 0 or 1.
 * n is the full column count of the packed B; c points at column 0 of row 0. */
void ik_gemm(ptrdiff_t m, ptrdiff_t k, ptrdiff_t n,
             const float *a, ptrdiff_t lda,
             const float *packed, ptrdiff_t panel_begin, ptrdiff_t panel_end,
             float *c, ptrdiff_t ldc, const float *bias, int relu);

/* ik_gemm without ReLU, also writing the batch-norm sums of the columns computed
 * (ik_bn_block_sums around shift[j]) for each IK_BN_SUM_ROWS-row block of C while it is in
 * cache: block b of the call (rows 32b ...) at block_sums + b·2n (f1 at [j], f2 at [n + j]).
 * The call's rows must start at a multiple of IK_BN_SUM_ROWS of the whole product. */
void ik_gemm_block_sums(ptrdiff_t m, ptrdiff_t k, ptrdiff_t n,
                        const float *a, ptrdiff_t lda,
                        const float *packed, ptrdiff_t panel_begin, ptrdiff_t panel_end,
                        float *c, ptrdiff_t ldc, const float *bias, const float *shift, float *block_sums);

/* The same product added to C: C[i, j] += Σ_k a[i·lda + k] · B[k, j] (no bias, no ReLU). */
void ik_gemm_accumulate(ptrdiff_t m, ptrdiff_t k, ptrdiff_t n,
                        const float *a, ptrdiff_t lda,
                        const float *packed, ptrdiff_t panel_begin, ptrdiff_t panel_end,
                        float *c, ptrdiff_t ldc);

/* C[i, j] (+)= Σ_kk A[i, kk] · B[kk, j] for all n columns of a packed B, where A is stored
 * column by column in segments: A[i, kk] = a[i + (kk / seg_len)·seg_stride + (kk % seg_len)·column_step]
 * (seg_len ≤ 0: one segment). With accumulate the product is added to C, else it replaces it.
 * A weight gradient read in place: rows are input channels, columns pixels (see gemm.c). */
void ik_gemm_transposed_a(ptrdiff_t m, ptrdiff_t k, ptrdiff_t n,
                          const float *a, ptrdiff_t column_step, ptrdiff_t seg_len, ptrdiff_t seg_stride,
                          const float *packed, float *c, ptrdiff_t ldc, int accumulate);

/* A direct convolution on an already zero-padded NHWC input, read in place (no im2col copy):
 * output row r (image r / out_height, oy = r % out_height), pixel ox, channel j is
 * relu?(bias[j] + Σ input[image][oy·stride_h + ky][ox·stride_w + kx][c] · W[ky][kx][c][j]),
 * written to output[(r·out_width + ox)·channel_stride + j]; W is `packed` (ik_pack of the HWIO
 * weights as a (kernel_h·kernel_w·channels) × out_channels matrix). The padded input has
 * padded_height × padded_width pixels per image, covering every window. Fast when the
 * output rows are long and kernel_w·channels is short (the 3-channel 7x7 stem), where an
 * im2col copy costs as much as the product. Thread-safe for disjoint row ranges. */
typedef struct {
    const float *input;
    ptrdiff_t padded_height, padded_width, channels;
    ptrdiff_t kernel_h, kernel_w, stride_h, stride_w;
    ptrdiff_t out_height, out_width, out_channels;
    const float *packed;
    float *output;
    ptrdiff_t channel_stride;
    const float *bias;              /* out_channels values, or NULL */
    int relu;
} ik_conv_window;

void ik_conv_window_rows(const ik_conv_window *cw, ptrdiff_t row_begin, ptrdiff_t row_end);
/* ik_conv_window_rows, also writing the batch-norm sums of every IK_BN_SUM_ROWS output pixels
 * from row_begin's first (the last block may be shorter) as ik_gemm_block_sums does: block b at
 * block_sums + b·2·out_channels. */
void ik_conv_window_rows_block_sums(const ik_conv_window *cw, ptrdiff_t row_begin, ptrdiff_t row_end,
                                    const float *shift, float *block_sums);

/* ---- Mixed precision: bfloat16 products, float32 sums (gemm_bf16.c) ----
 *
 * C[i, j] (+)= Σ_k bf16(A[i, k]) · bf16(B[k, j]) (+ bias[j]): both operands rounded to bfloat16
 * (nearest even), each product exact in float32, sums in float32, adjacent k taken in pairs
 * (the order of AVX512-BF16's VDPBF16PS, which does 32 multiply-adds per instruction where a
 * float32 FMA does 16). The opt-in bfloat16 training mode; CPUs without AVX512-BF16 (or with
 * the portable float32 kernel selected) run a portable loop with the same products. */

/* 1 when the CPU has AVX512-BF16 (and AVX512-BW). */
int ik_cpu_has_avx512_bf16(void);
/* 1 when ik_gemm_bf16 runs the AVX512-BF16 kernels: the CPU has them and ik_gemm_isa() is
 * IK_ISA_AVX512. */
int ik_bf16_native(void);

/* bfloat16 values (uint16_t) ik_bf16_pack writes for a K×N matrix: (K rounded up to even)·ceil(N/16)·16. */
ptrdiff_t ik_bf16_packed_count(ptrdiff_t k, ptrdiff_t n);
/* Packs the row-major float32 K×N matrix b (row stride ldb) as bfloat16 panels of 16 columns,
 * rows in pairs: B[2q, j] and B[2q+1, j] adjacent (zeros past K and N). */
void ik_bf16_pack(const float *b, ptrdiff_t ldb, ptrdiff_t k, ptrdiff_t n, uint16_t *packed);

/* Packs B′ ((taps·co) × ci) from HWIO weights w as ik_bf16_pack packs a matrix:
 * B′[t·co + o, c] = W[t′][c][o], t′ = t or, with reverse_taps, taps − 1 − t (as ik_pack_transposed_taps:
 * the operand of a convolution's input gradient). */
void ik_bf16_pack_transposed_taps(const float *w, ptrdiff_t taps, ptrdiff_t ci, ptrdiff_t co, int reverse_taps,
                                  uint16_t *packed);

/* The float32 A operand, read in place through a two-level index each way, plus an optional
 * image level (image_rows or image_columns > 0; at most one of them):
 *   A[i, kk] = a[(i / image_rows)·image_stride + (i′ / line_len)·line_stride + (i′ % line_len)·row_step
 *                + (kk / image_columns)·image_stride + (kk′ / seg_len)·seg_stride + (kk′ % seg_len)·col_step]
 * with i′ = i % image_rows, kk′ = kk % image_columns (or i, kk without the image level):
 * a convolution's windows on padded bands, lines being output rows and segments kernel rows, the
 * image level a batch of small images side by side. The AVX512-BF16 path packs two shapes:
 * col_step = 1 (rows contiguous in K), or row_step = 1 with line_len ≥ min(m, 12) and no row
 * image level (A = Xᵀ of a weight gradient, kernel rows as lines); others run the portable loop. */
typedef struct {
    const float *a;
    ptrdiff_t line_len, line_stride, row_step;
    ptrdiff_t seg_len, seg_stride, col_step;
    ptrdiff_t image_rows, image_columns, image_stride;
} ik_bf16_operand;

/* Rows 0..<m, all n columns: C[i, j] = Σ + bias[j] (bias may be NULL), or with accumulate
 * C[i, j] += Σ (bias ignored). C has row stride ldc; columns ≥ n are untouched. Thread-safe
 * for disjoint parts of C (the packed A block is per thread). */
void ik_gemm_bf16(ptrdiff_t m, ptrdiff_t k, ptrdiff_t n, const ik_bf16_operand *a, const uint16_t *packed,
                  float *c, ptrdiff_t ldc, const float *bias, int accumulate);
/* ik_gemm_bf16, also adding each column's Σ C[i, j] to sums[j] and Σ C[i, j]² to sums[n + j]
 * (2n Doubles) for the rows computed, from the values as they are stored (the kernel's epilogue:
 * float over a 12-row register tile, then Double): batch norm's statistics of a convolution's
 * output without reading it again. */
void ik_gemm_bf16_sums(ptrdiff_t m, ptrdiff_t k, ptrdiff_t n, const ik_bf16_operand *a, const uint16_t *packed,
                       float *c, ptrdiff_t ldc, const float *bias, int accumulate, double *sums);

/* ---- Winograd F(m×m, 3×3) convolution, stride 1 (winograd.c) ----
 *
 * A 3×3 stride-1 convolution over an NHWC input, computed tile by tile: the output is cut into
 * m×m tiles (m = 2 or 4; the last row/column of tiles may stick out past the output and is
 * clipped), each reading an alpha×alpha input patch (alpha = m + 2; taps outside the input are
 * zeros, as in the padding). Per tile and channel, with the (m, 3) matrices of Lavin & Gray:
 *
 *     V = Bᵀ d B          input transform: alpha² values per input channel
 *     M_ξ = V_ξ · U_ξ      alpha² independent GEMMs (tiles × CI)·(CI × CO), ξ = 0..<alpha²
 *     Y = Aᵀ M A          output transform: m×m outputs per output channel (+ bias, ReLU)
 *
 * U = G g Gᵀ (the transformed weights) is computed once by the caller and stored as alpha²
 * separate CI×CO matrices in ik_pack's layout, `weight_stride` floats apart.
 *
 * Tiles are numbered over the batch: t = (image · tiles_y + ty) · tiles_x + tx, the tile's output
 * origin being (ty·m, tx·m). */
typedef struct {
    int m;                          /* output tile side: 2 or 4 */
    int relu;                       /* 1: clamp outputs at zero */
    const float *input;             /* NHWC input, in_channels channels per pixel */
    ptrdiff_t height, width, in_channels;
    ptrdiff_t pad_top, pad_left;    /* input row/column of output (0, 0)'s first tap: -pad */
    ptrdiff_t out_height, out_width, out_channels;
    ptrdiff_t tiles_y, tiles_x;     /* ceil(out_height / m), ceil(out_width / m) */
    const float *weights;           /* alpha² packed CI×CO matrices */
    ptrdiff_t weight_stride;        /* floats between them (ik_packed_count(CI, CO)) */
    float *output;                  /* pixel p, channel c at output[p·channel_stride + c] */
    ptrdiff_t channel_stride;
    const float *bias;              /* out_channels values, or NULL */
    ptrdiff_t pass_panels;          /* column panels per GEMM + output-transform pass (≥ 1) */
    ptrdiff_t in_stride;            /* floats from one input pixel to the next; 0: in_channels */
    int accumulate;                 /* 1: add the result (bias and ReLU included) to the output */
} ik_winograd;

/* Where the inference path uses Winograd (values of ik_winograd_mode; Winograd.Mode in Swift):
 *   IK_WINOGRAD_OFF        never (direct convolution everywhere),
 *   IK_WINOGRAD_AUTOMATIC  where it measured faster (the default),
 *   IK_WINOGRAD_F2 / _F4   F(2×2, 3×3) / F(4×4, 3×3) on every 3×3 stride-1 convolution.
 * The environment variable INCEPTION_WINOGRAD=0|2|4 (read once; anything else: automatic) sets
 * the initial mode; ik_winograd_set_mode changes it (not while a convolution runs). */
#define IK_WINOGRAD_OFF 0
#define IK_WINOGRAD_AUTOMATIC 1
#define IK_WINOGRAD_F2 2
#define IK_WINOGRAD_F4 4
int ik_winograd_mode(void);
void ik_winograd_set_mode(int mode);

/* Transforms HWIO 3×3 weights (9·CI·CO floats, output channel o times scale[o] when scale is
 * not NULL) to U = G g Gᵀ for F(m×m, 3×3): alpha² CI×CO matrices in ik_pack's layout,
 * weight_stride (≥ ik_packed_count(CI, CO)) floats apart, zero past CO. Float arithmetic, 16
 * output channels per vector. */
void ik_winograd_weights(int m, const float *hwio, ptrdiff_t ci, ptrdiff_t co, const float *scale,
                         float *u, ptrdiff_t weight_stride);

/* The same for the output-channel panels panel_begin ..< panel_end only (channels 16·panel_begin
 * ..< 16·panel_end), so threads can share the work. With `turned` (scale ignored), hwio is
 * instead the HWIO weights [3][3][CO][CI] of the convolution whose input gradient this is, and the
 * transformed kernel is that one turned by 180° with its channel axes swapped:
 * g[kh][kw][c][o] = hwio[2 − kh][2 − kw][o][c] (c < CI, o < CO of this call). */
void ik_winograd_weights_panels(int m, const float *hwio, ptrdiff_t ci, ptrdiff_t co, const float *scale,
                                int turned, float *u, ptrdiff_t weight_stride, ptrdiff_t panel_begin,
                                ptrdiff_t panel_end);

/* Input transform of tiles t0 ..< t0+count: row i (tile t0+i) of matrix ξ, CI floats, goes to
 * v[ξ·vstride + i·ldv ...]. */
void ik_winograd_input(const ik_winograd *w, ptrdiff_t t0, ptrdiff_t count,
                       float *v, ptrdiff_t ldv, ptrdiff_t vstride);

/* For the tiles t0 ..< t0+count whose transformed inputs are at v (laid out as ik_winograd_input
 * writes them, row 0 = tile t0) and the output channels of panels panel_begin ..< panel_end:
 * the alpha² GEMMs and the output transform, written to the output. `scratch` holds the GEMM
 * results: alpha² · (count · pass_panels · 16 + 16) floats. Thread-safe for disjoint tiles or panels. */
void ik_winograd_multiply(const ik_winograd *w, const float *v, ptrdiff_t ldv, ptrdiff_t vstride,
                          ptrdiff_t t0, ptrdiff_t count, ptrdiff_t panel_begin, ptrdiff_t panel_end,
                          float *scratch);
/* ik_winograd_multiply, also merging the stored values' batch statistics into moments
 * (3·out_channels Doubles: count, mean, M2), summed in the output transform while the values
 * are in registers (float around the first tile's values, then Double) and merged by
 * ik_bn_merge_shifted. Tiles scatter their pixels over rows, so these are not ik_bn_moments'
 * blocks: the same statistics to rounding, not the same bits. */
void ik_winograd_multiply_moments(const ik_winograd *w, const float *v, ptrdiff_t ldv, ptrdiff_t vstride,
                                  ptrdiff_t t0, ptrdiff_t count, ptrdiff_t panel_begin, ptrdiff_t panel_end,
                                  float *scratch, double *moments);

/* The weight gradient of the same convolution (training), dW = Gᵀ [Σ_tiles (A h Aᵀ) ⊙ V] G, where
 * V is ik_winograd_input's transform of the tile's input patch and h the tile's m×m values of dZ,
 * read where the forward writes its output (w->output, w->channel_stride; zero past the output's
 * edge). The alpha² sums over tiles are GEMMs Vᵀ_ξ · (A h Aᵀ)_ξ of K = tiles, run by the caller.
 *
 * ik_winograd_output_gradient: A h Aᵀ of tiles t0 ..< t0+count, per output channel, as rows
 * 0 ..< count of alpha² packed panel_rows×CO matrices (ik_pack's layout, K = panel_rows ≥ count;
 * u points at the first row to write: u + r·16 writes from row r), ustride (≥
 * ik_packed_count(panel_rows, CO)) floats apart: the B operands of those GEMMs.
 * ik_winograd_weight_gradient: HWIO dW rows of input channels c0 ..< c1 (9·CI·CO floats in all,
 * overwritten) from M, the sum in group order of `groups` partial results group_stride floats
 * apart, each alpha² row-major CI×CO matrices (matrix ξ at ξ·CI·CO). Thread-safe for disjoint
 * channel ranges. */
void ik_winograd_output_gradient(const ik_winograd *w, ptrdiff_t t0, ptrdiff_t count, float *u, ptrdiff_t ustride,
                                 ptrdiff_t panel_rows);
void ik_winograd_weight_gradient(int m, const float *mm, ptrdiff_t groups, ptrdiff_t group_stride,
                                 ptrdiff_t ci, ptrdiff_t co, ptrdiff_t c0, ptrdiff_t c1, float *dw);

/* ---- Pooling (pool.c) ----
 *
 * Max or average pooling of an NHWC input. Output row r (of batch · out_height rows) covers
 * input rows oy·stride_h − pad_top ..< + kernel_h of image r / out_height (oy = r % out_height),
 * clipped to the input, and likewise for columns: padded positions never win a max, and an
 * average divides by the real pixels under the window. Output pixel p, channel c goes to
 * output[p·channel_stride + c]. A window with no real pixel gives 0. */
typedef struct {
    const float *input;
    ptrdiff_t input_stride;         /* floats from one input pixel to the next; 0: channels */
    ptrdiff_t height, width, channels;
    ptrdiff_t kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left;
    ptrdiff_t out_height, out_width;
    float *output;
    ptrdiff_t channel_stride;
    int average;                    /* 0: max, 1: average */
    /* Max pooling only, optional (NULL: not recorded): for each output element, the window
     * position ky·kernel_w + kx (of the unclipped window) of the first maximum in row-major
     * order (255 for a window wholly in the padding); `channels` bytes per output pixel. What
     * the input gradient needs, so that training need not keep or recompute X and Y for it.
     * Needs kernel_h·kernel_w ≤ 255. */
    uint8_t *argmax;
} ik_pooling;

/* Computes output rows row_begin ..< row_end. Thread-safe for disjoint row ranges. */
void ik_pool_rows(const ik_pooling *p, ptrdiff_t row_begin, ptrdiff_t row_end);

/* The input gradient of max pooling: dY of each output pixel is added to dX at the first
 * position of its window, in row-major order, whose X equals the window's maximum (TF's CPU
 * MaxPoolGrad on ties). That position is read from `argmax` (the forward's, ik_pooling.argmax)
 * when given, X and Y then unused; else the maximum is read from Y (`output`, the forward
 * result) when given, or recomputed from X. The result is the same either way, bit for bit
 * (unless a window holds a NaN, which gets no gradient when recomputed).
 * Every tensor is NHWC with its own pixel stride; the geometry fields mean what they mean in
 * ik_pooling. */
typedef struct {
    const float *input; ptrdiff_t input_stride;     /* X (unused with argmax) */
    const float *output; ptrdiff_t output_stride;   /* Y, or NULL */
    const uint8_t *argmax; ptrdiff_t channels;      /* ik_pooling.argmax (channels bytes a pixel), or NULL */
    const float *grad; ptrdiff_t grad_stride;       /* dY */
    float *dx; ptrdiff_t dx_stride;                 /* dX, added to (or overwritten: zero_first) */
    ptrdiff_t height, width;
    ptrdiff_t kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left;
    ptrdiff_t out_height, out_width;
    int zero_first;  /* 1: dX's rows are zeroed just before the first window reaches them (in cache), not added to */
} ik_max_pool_grad;

/* Channels c0 ..< c1 of one image. Thread-safe for disjoint (image, channel range) pairs, whatever
 * the window overlap. */
void ik_max_pool_backward(const ik_max_pool_grad *p, ptrdiff_t image, ptrdiff_t c0, ptrdiff_t c1);

/* ---- Batch normalisation in training mode (batchnorm.c) ----
 *
 * The element-wise passes of BatchNormTraining over `rows` rows of `c` channels, each row a
 * pixel `*_stride` floats from the next; per-channel vectors have c floats. With relu, Y is
 * max(·, 0) and the gradient passes where (z − mean)·scale + beta > 0. Running sums are
 * float32 over blocks of 32 rows, each block added to the Double sums (which are added to, not
 * overwritten); `scratch` holds 2c floats. Results are the same on every instruction set. */

/* s1 += Σ (z − shift), s2 += Σ (z − shift)² per channel. */
void ik_bn_moments(const float *z, ptrdiff_t stride, ptrdiff_t rows, ptrdiff_t c, const float *shift,
                   double *s1, double *s2, float *scratch);
/* Batch-norm sums gathered as a convolution writes Z, each block of rows read while it is
 * still in cache. The blocks are ik_bn_moments' (IK_BN_SUM_ROWS rows from a multiple of
 * IK_BN_SUM_ROWS), so that the gathered statistics are the same bits as that pass's:
 * ik_bn_block_sums writes one block's float sums f1[j] = Σ (z − shift[j]), f2[j] = Σ (z − shift[j])²
 * (rows ≤ IK_BN_SUM_ROWS, in row order); ik_bn_add_block_sums adds `count` such blocks
 * (2c floats each: f1 then f2) as ik_bn_moments' tasks of `per_task` blocks do, then the tasks
 * in order, into s1 and s2 (overwritten; scratch: 2c Doubles). */
#define IK_BN_SUM_ROWS 32
void ik_bn_block_sums(const float *z, ptrdiff_t stride, ptrdiff_t rows, ptrdiff_t c, const float *shift,
                      float *f1, float *f2);
void ik_bn_add_block_sums(const float *blocks, ptrdiff_t count, ptrdiff_t per_task, ptrdiff_t c, double *s1,
                          double *s2, double *scratch);
/* Merges a block of nb values per channel, summed around `shift` (s1 = Σ (z − shift),
 * s2 = Σ (z − shift)²), into running per-channel (count, mean, M2) by Chan, Golub and
 * LeVeque's pairwise update (count 0 starts a channel); variance = M2 / count. */
void ik_bn_merge_shifted(ptrdiff_t c, double nb, const float *shift, const double *s1, const double *s2,
                         double *count, double *mean, double *m2);
/* The per-task slots of a parallel gathering (`tasks` slots of 3c Doubles: count, mean, M2)
 * merged in slot order into count, mean, m2 (overwritten). */
void ik_bn_merge_slots(const double *slots, ptrdiff_t tasks, ptrdiff_t c, double *count, double *mean, double *m2);
/* y = (z − mean)·scale + beta (then ReLU); y may be z. */
void ik_bn_normalize(const float *z, ptrdiff_t z_stride, float *y, ptrdiff_t y_stride, ptrdiff_t rows, ptrdiff_t c,
                     const float *mean, const float *scale, const float *beta, int relu);
/* With g = dy where the ReLU passed (else 0): sum_g += Σ g, sum_gx += Σ g·(z − mean). */
void ik_bn_gradient_sums(const float *z, ptrdiff_t z_stride, const float *dy, ptrdiff_t dy_stride, ptrdiff_t rows,
                         ptrdiff_t c, const float *mean, const float *scale, const float *beta, int relu,
                         double *sum_g, double *sum_gx, float *scratch);
/* dz = scale·(g − a − (z − mean)·k); dz may be dy. */
void ik_bn_gradient_apply(const float *z, ptrdiff_t z_stride, const float *dy, ptrdiff_t dy_stride, float *dz,
                          ptrdiff_t dz_stride, ptrdiff_t rows, ptrdiff_t c, const float *mean, const float *scale,
                          const float *beta, int relu, const float *a, const float *k);

/* ---- Optimizer updates (optimizer.c), in place over n elements; the same on every instruction set ---- */

/* TF's ApplyRMSProp: ms += (g² − ms)·one_minus_rho; mom = mom·momentum + g·lr / √(ms + epsilon); w −= mom.
 * With decay ≠ 0, g is g + decay·w (the L2 regularizer's gradient, added on the fly). */
void ik_rmsprop_update(float *w, const float *g, float *ms, float *mom, ptrdiff_t n, float lr, float one_minus_rho,
                       float momentum, float epsilon, float decay);
/* TF's ApplyAdam with α = lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ): m += (g − m)·one_minus_beta1;
 * v += (g² − v)·one_minus_beta2; w −= m·α / (√v + epsilon). g as for ik_rmsprop_update. */
void ik_adam_update(float *w, const float *g, float *m, float *v, ptrdiff_t n, float alpha, float one_minus_beta1,
                    float one_minus_beta2, float epsilon, float decay);

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

/* `count` floats, 64-byte aligned; buffers of 2 MB or more are 2 MB aligned and, on Linux, marked
 * for transparent huge pages (MADV_HUGEPAGE). NULL when out of memory. Free with ik_free_floats. */
float *ik_alloc_floats(ptrdiff_t count);
void ik_free_floats(float *p);

/* A 64-byte-aligned buffer of at least `count` floats owned by the calling thread (from
 * ik_alloc_floats), valid until the thread's next call (or exit). NULL if memory is exhausted. */
float *ik_thread_scratch(ptrdiff_t count);

/* Independent per-thread scratch buffers: slot 0 is ik_thread_scratch's; a buffer from slot s
 * stays valid across calls for other slots (the Winograd path keeps its transformed input in
 * slot 1 while GEMM blocks use slot 0, and so do the padded-input convolutions their padded
 * image or band; training keeps a step's transformed weights in slot 2, and its weight
 * gradients their padded band and packed dZ in slot 0).
 * Same contract otherwise; NULL for a bad slot. */
#define IK_SCRATCH_SLOTS 3
float *ik_thread_scratch_slot(int slot, ptrdiff_t count);

#endif
