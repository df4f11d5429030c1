/* Winograd F(m×m, 3×3) weight, input and output transforms for one instruction set.
 *
 * A template: winograd.c includes this file once per kernel family with
 *   IK_WG_FN        the function attributes (always_inline and the target ISA),
 *   IK_WG_NAME(x)   the family's name for x (x##_avx512 ...),
 * so the same source is compiled three times: for AVX-512 (ik_f16 is one zmm), AVX2 (two ymm)
 * and the baseline target (four xmm on x86-64 SSE2, four q registers on NEON).
 *
 * Both transforms work on 16 channels at a time. Every step of Bᵀ d B and Aᵀ M A adds or scales
 * whole channel vectors: the transform matrices are the same for every channel, so the channel
 * axis (contiguous in NHWC and in the GEMM's row-major operands) is the vector axis and the small
 * matrix products are unrolled into straight-line vector code, with no shuffles. The products
 * are written out with their zeros dropped (a multiply by 0.0f is not free in IEEE arithmetic,
 * so the compiler would keep it). */

/* The `width` (1...16) channels at p, zero-filled; all zero when p is NULL (a padding tap). */
IK_WG_FN ik_f16 IK_WG_NAME(ik_wg_load)(const float *p, int width) {
    ik_f16 x = { 0 };
    if (!p) return x;
    if (width == 16) __builtin_memcpy(&x, p, sizeof x);
    else for (int c = 0; c < width; c++) x[c] = p[c];
    return x;
}

IK_WG_FN void IK_WG_NAME(ik_wg_store)(float *p, ik_f16 x, int width) {
    if (width == 16) __builtin_memcpy(p, &x, sizeof x);
    else for (int c = 0; c < width; c++) p[c] = x[c];
}

/* d ← Bᵀ d B on a 4×4 patch (d[a·4 + b]) for F(2×2, 3×3). Bᵀ's rows:
 *   [1 0 -1 0] [0 1 1 0] [0 -1 1 0] [0 1 0 -1]
 * applied down each column (Bᵀ d), then along each row ((Bᵀ d) B = rows times Bᵀ's rows). */
IK_WG_FN void IK_WG_NAME(ik_wg_input2)(ik_f16 *d) {
    for (int b = 0; b < 4; b++) {
        const ik_f16 z0 = d[b], z1 = d[4 + b], z2 = d[8 + b], z3 = d[12 + b];
        d[b] = z0 - z2; d[4 + b] = z1 + z2; d[8 + b] = z2 - z1; d[12 + b] = z1 - z3;
    }
    for (int a = 0; a < 4; a++) {
        ik_f16 *r = d + 4 * a;
        const ik_f16 z0 = r[0], z1 = r[1], z2 = r[2], z3 = r[3];
        r[0] = z0 - z2; r[1] = z1 + z2; r[2] = z2 - z1; r[3] = z1 - z3;
    }
}

/* One application of F(4×4, 3×3)'s Bᵀ to six values z0...z5 (stride s in d). Bᵀ's rows:
 *   [4 0 -5 0 1 0] [0 -4 -4 1 1 0] [0 4 -4 -1 1 0] [0 -2 -1 2 1 0] [0 2 -1 -2 1 0] [0 4 0 -5 0 1]
 * grouped so that rows 1/2 and 3/4 share their sums. */
IK_WG_FN void IK_WG_NAME(ik_wg_bt6)(ik_f16 *d, int s) {
    const ik_f16 z0 = d[0], z1 = d[s], z2 = d[2 * s], z3 = d[3 * s], z4 = d[4 * s], z5 = d[5 * s];
    const ik_f16 p12 = z3 + z4 - 4.0f * (z1 + z2);  /* row 1 */
    const ik_f16 q12 = z4 - z3 + 4.0f * (z1 - z2);  /* row 2 */
    const ik_f16 p34 = z4 - z2 - 2.0f * (z1 - z3);  /* row 3 */
    const ik_f16 q34 = z4 - z2 + 2.0f * (z1 - z3);  /* row 4 */
    d[0] = 4.0f * z0 - 5.0f * z2 + z4;
    d[s] = p12; d[2 * s] = q12; d[3 * s] = p34; d[4 * s] = q34;
    d[5 * s] = 4.0f * z1 - 5.0f * z3 + z5;
}

/* d ← Bᵀ d B on a 6×6 patch (d[a·6 + b]) for F(4×4, 3×3): columns, then rows. */
IK_WG_FN void IK_WG_NAME(ik_wg_input4)(ik_f16 *d) {
    for (int b = 0; b < 6; b++) IK_WG_NAME(ik_wg_bt6)(d + b, 6);
    for (int a = 0; a < 6; a++) IK_WG_NAME(ik_wg_bt6)(d + 6 * a, 1);
}

/* y ← Aᵀ M A for F(2×2, 3×3): 4×4 GEMM results M (x[a·4 + b]) to 2×2 outputs (y[i·2 + j]).
 * Aᵀ's rows: [1 1 1 0] [0 1 -1 -1]. */
IK_WG_FN void IK_WG_NAME(ik_wg_output2)(const ik_f16 *x, ik_f16 *y) {
    ik_f16 t0[4], t1[4];
    for (int b = 0; b < 4; b++) {
        t0[b] = x[b] + x[4 + b] + x[8 + b];
        t1[b] = x[4 + b] - x[8 + b] - x[12 + b];
    }
    y[0] = t0[0] + t0[1] + t0[2]; y[1] = t0[1] - t0[2] - t0[3];
    y[2] = t1[0] + t1[1] + t1[2]; y[3] = t1[1] - t1[2] - t1[3];
}

/* Four outputs from six values (stride s) for F(4×4, 3×3). Aᵀ's rows:
 *   [1 1 1 1 1 0] [0 1 -1 2 -2 0] [0 1 1 4 4 0] [0 1 -1 8 -8 1] */
IK_WG_FN void IK_WG_NAME(ik_wg_at6)(const ik_f16 *x, int s, ik_f16 *o, int os) {
    const ik_f16 z0 = x[0], z1 = x[s], z2 = x[2 * s], z3 = x[3 * s], z4 = x[4 * s], z5 = x[5 * s];
    const ik_f16 s12 = z1 + z2, d12 = z1 - z2, s34 = z3 + z4, d34 = z3 - z4;
    o[0] = z0 + s12 + s34;
    o[os] = d12 + 2.0f * d34;
    o[2 * os] = s12 + 4.0f * s34;
    o[3 * os] = d12 + 8.0f * d34 + z5;
}

/* y ← Aᵀ M A for F(4×4, 3×3): 6×6 GEMM results (x[a·6 + b]) to 4×4 outputs (y[i·4 + j]). */
IK_WG_FN void IK_WG_NAME(ik_wg_output4)(const ik_f16 *x, ik_f16 *y) {
    ik_f16 t[24];  /* t[i·6 + b] = (Aᵀ M)[i][b] */
    for (int b = 0; b < 6; b++) IK_WG_NAME(ik_wg_at6)(x + b, 6, t + b, 6);
    for (int i = 0; i < 4; i++) IK_WG_NAME(ik_wg_at6)(t + 6 * i, 1, y + 4 * i, 1);
}

/* The input pixels of tile t's alpha×alpha patch (NULL where the patch overhangs the input: the
 * zero padding, and the far side of edge tiles). */
IK_WG_FN void IK_WG_NAME(ik_wg_patch)(const ik_winograd *w, const int m, ptrdiff_t t, const float **px) {
    const int alpha = m + 2;
    const ptrdiff_t hgt = w->height, wid = w->width, ps = w->in_stride > 0 ? w->in_stride : w->in_channels;
    const ptrdiff_t per_image = w->tiles_y * w->tiles_x, image = t / per_image, r = t % per_image;
    const ptrdiff_t y0 = (r / w->tiles_x) * m - w->pad_top, x0 = (r % w->tiles_x) * m - w->pad_left;
    const float *base = w->input + image * hgt * wid * ps;
    for (int a = 0; a < alpha; a++)
        for (int b = 0; b < alpha; b++) {
            const ptrdiff_t y = y0 + a, x = x0 + b;
            px[a * alpha + b] = y >= 0 && y < hgt && x >= 0 && x < wid ? base + (y * wid + x) * ps : NULL;
        }
}

/* Input transform of tiles t0 ..< t0+count (see ik_winograd_input), for a constant tile size m.
 * Per tile and 16 channels: load the patch (ik_wg_patch), transform, and scatter the alpha²
 * results to the alpha² matrices (row i of each).
 * Reading a patch 16 channels at a time makes one tile's loads alpha² interleaved streams, more
 * than the hardware prefetchers follow, so while a tile's channels are transformed the same
 * channels of the next tile are prefetched (measured: without it, waiting for a training-size
 * input, which comes from memory, was most of the transform's time). */
IK_WG_FN void IK_WG_NAME(ik_wg_input_tiles)(const ik_winograd *w, const int m, ptrdiff_t t0, ptrdiff_t count,
                                            float *v, ptrdiff_t ldv, ptrdiff_t vstride) {
    const int alpha = m + 2, a2 = alpha * alpha;
    const ptrdiff_t ci = w->in_channels;
    const float *px[36], *next[36];
    IK_WG_NAME(ik_wg_patch)(w, m, t0, px);
    for (ptrdiff_t i = 0; i < count; i++) {
        if (i + 1 < count) IK_WG_NAME(ik_wg_patch)(w, m, t0 + i + 1, next);
        else for (int k = 0; k < a2; k++) next[k] = NULL;
        float *row = v + i * ldv;
        for (ptrdiff_t c = 0; c < ci; c += 16) {
            const int width = ci - c < 16 ? (int)(ci - c) : 16;
            ik_f16 d[36];
            for (int k = 0; k < a2; k++) if (next[k]) __builtin_prefetch(next[k] + c);
            for (int k = 0; k < a2; k++) d[k] = IK_WG_NAME(ik_wg_load)(px[k] ? px[k] + c : NULL, width);
            if (m == 2) IK_WG_NAME(ik_wg_input2)(d);
            else IK_WG_NAME(ik_wg_input4)(d);
            for (int k = 0; k < a2; k++) IK_WG_NAME(ik_wg_store)(row + k * vstride + c, d[k], width);
        }
        for (int k = 0; k < a2; k++) px[k] = next[k];
    }
}

/* Tile t's m×m output pixels (NULL past the output's edge): where the forward writes its
 * results, and where the weight gradient reads dZ. */
IK_WG_FN void IK_WG_NAME(ik_wg_output_pixels)(const ik_winograd *w, const int m, ptrdiff_t t, const float **px) {
    const ptrdiff_t oh = w->out_height, ow = w->out_width, cs = w->channel_stride;
    const ptrdiff_t per_image = w->tiles_y * w->tiles_x, image = t / per_image, r = t % per_image;
    const ptrdiff_t oy0 = (r / w->tiles_x) * m, ox0 = (r % w->tiles_x) * m;
    const float *src = w->output + ((image * oh + oy0) * ow + ox0) * cs;
    for (int a = 0; a < m; a++)
        for (int b = 0; b < m; b++)
            px[a * m + b] = oy0 + a < oh && ox0 + b < ow ? src + (a * ow + b) * cs : NULL;
}

/* Output transform of tiles t0 ..< t0+count for output channels j0 ..< j0+cols: the GEMM results
 * of tile t0+i, matrix ξ, column j0+c are at x[ξ·mstride + i·ldm + c]. Per tile and 16 channels:
 * gather the alpha² results, transform to m×m, add the bias, clamp, and store the pixels that
 * fall inside the output (edge tiles are clipped) at their place in the strided output.
 * With `with_moments` (a constant at each call), the stored values' batch statistics are also
 * summed while they are in registers (float around the first tile's values, flushed to Double
 * every IK_WG_MOMENT_TILES tiles: 32 values for F(4×4), as ik_bn_moments' blocks) and merged
 * into `moments` (3·out_channels Doubles: count, mean, M2) by ik_bn_merge_shifted at the end. */
#ifndef IK_WG_MOMENT_TILES
#define IK_WG_MOMENT_TILES 2
#endif
IK_WG_FN void IK_WG_NAME(ik_wg_output_tiles)(const ik_winograd *w, const int m, const float *x,
                                             ptrdiff_t ldm, ptrdiff_t mstride, ptrdiff_t t0, ptrdiff_t count,
                                             ptrdiff_t j0, ptrdiff_t cols, const int with_moments, double *moments) {
    const int a2 = (m + 2) * (m + 2), m2 = m * m;
    const ptrdiff_t ow = w->out_width, cs = w->channel_stride;
    const ptrdiff_t blocks = with_moments ? (cols + 15) / 16 : 1;
    ik_f16 shift[blocks], s1[blocks], s2[blocks];
    ik_d16 d1[blocks], d2[blocks];
    ptrdiff_t pixels = 0;
    if (with_moments)
        for (ptrdiff_t b = 0; b < blocks; b++) {
            s1[b] = (ik_f16){ 0 }; s2[b] = s1[b];
            d1[b] = (ik_d16){ 0 }; d2[b] = d1[b];
        }
    /* The output pixels of this tile and the next, which are prefetched for writing (and for
     * reading when accumulating) channel block by channel block, as the inputs are. */
    const float *here[16], *next[16];
    IK_WG_NAME(ik_wg_output_pixels)(w, m, t0, here);
    for (ptrdiff_t i = 0; i < count; i++) {
        if (i + 1 < count) IK_WG_NAME(ik_wg_output_pixels)(w, m, t0 + i + 1, next);
        else for (int k = 0; k < m2; k++) next[k] = NULL;
        float *out = (float *)here[0] + j0;
        const float *src = x + i * ldm;
        for (ptrdiff_t c = 0; c < cols; c += 16) {
            const int width = cols - c < 16 ? (int)(cols - c) : 16;
            ik_f16 g[36], y[16];
            for (int k = 0; k < m2; k++) if (next[k]) __builtin_prefetch(next[k] + j0 + c, 1);
            for (int k = 0; k < a2; k++) g[k] = IK_WG_NAME(ik_wg_load)(src + k * mstride + c, width);
            if (m == 2) IK_WG_NAME(ik_wg_output2)(g, y);
            else IK_WG_NAME(ik_wg_output4)(g, y);
            const ik_f16 bias = IK_WG_NAME(ik_wg_load)(w->bias ? w->bias + j0 + c : NULL, width);
            const ik_f16 zero = { 0 };
            if (with_moments && i == 0) shift[c / 16] = y[0] + bias;  /* pixel 0 is never clipped */
            for (int k = 0; k < m2; k++) {
                if (!here[k]) continue;  /* past the output's edge: clipped */
                float *p = out + ((k / m) * ow + k % m) * cs + c;
                ik_f16 value = y[k] + bias;
                if (w->accumulate) value += IK_WG_NAME(ik_wg_load)(p, width);
                if (w->relu) value = __builtin_elementwise_max(value, zero);
                IK_WG_NAME(ik_wg_store)(p, value, width);
                if (with_moments) {
                    const ik_f16 d = value - shift[c / 16];
                    s1[c / 16] += d;
                    s2[c / 16] += d * d;
                }
            }
        }
        if (with_moments) {
            for (int k = 0; k < m2; k++) pixels += here[k] != NULL;
            if ((i + 1) % IK_WG_MOMENT_TILES == 0 || i + 1 == count)
                for (ptrdiff_t b = 0; b < blocks; b++) {
                    d1[b] += __builtin_convertvector(s1[b], ik_d16); s1[b] = (ik_f16){ 0 };
                    d2[b] += __builtin_convertvector(s2[b], ik_d16); s2[b] = (ik_f16){ 0 };
                }
        }
        for (int k = 0; k < m2; k++) here[k] = next[k];
    }
    if (with_moments && count > 0) {
        float sh[cols];
        for (ptrdiff_t j = 0; j < cols; j++) sh[j] = shift[j / 16][j % 16];
        const ptrdiff_t co = w->out_channels;
        ik_bn_merge_shifted(cols, (double)pixels, sh, (const double *)d1, (const double *)d2, moments + j0,
                            moments + co + j0, moments + 2 * co + j0);
    }
}

/* ---- The weight gradient (training): dW = Gᵀ [Σ_tiles (A h Aᵀ) ⊙ (Bᵀ d B)] G ----
 * The forward's y = Aᵀ[(G g) ⊙ (Bᵀ d)] is the bilinear form of Σ_i h_i y_i = Σ_k (A h)_k (G g)_k (Bᵀ d)_k;
 * read as a function of g it gives the correlation of the patch d with an m-tap h:
 * Σ_i h_i d_{i+j} = [Gᵀ((A h) ⊙ (Bᵀ d))]_j. So with h a tile of dZ and d its input patch, the
 * same input transform V = Bᵀ d B, a dZ transform A h Aᵀ and, once per step, Gᵀ M G give dW. */

/* m values h (stride s) to alpha values A h (stride os); A is the output transform's Aᵀ transposed.
 * F(2×2): A h = (h0, h0 + h1, h0 − h1, −h1).
 * F(4×4): A h = (h0, e + o, e − o, e4 + o8, e4 − o8, h3), e = h0 + h2, o = h1 + h3,
 *         e4 = h0 + 4 h2, o8 = 2 h1 + 8 h3. */
IK_WG_FN void IK_WG_NAME(ik_wg_a_column)(const int m, const ik_f16 *h, int s, ik_f16 *out, int os) {
    if (m == 2) {
        const ik_f16 h0 = h[0], h1 = h[s];
        out[0] = h0; out[os] = h0 + h1; out[2 * os] = h0 - h1; out[3 * os] = -h1;
    } else {
        const ik_f16 h0 = h[0], h1 = h[s], h2 = h[2 * s], h3 = h[3 * s];
        const ik_f16 e = h0 + h2, o = h1 + h3, e4 = h0 + 4.0f * h2, o8 = 2.0f * h1 + 8.0f * h3;
        out[0] = h0; out[os] = e + o; out[2 * os] = e - o;
        out[3 * os] = e4 + o8; out[4 * os] = e4 - o8; out[5 * os] = h3;
    }
}

/* dZ transform of tiles t0 ..< t0+count: per tile and 16 output channels, the tile's m×m
 * gradient values h (zeros where the tile sticks out past the output) to A h Aᵀ, stored as row i
 * of alpha² packed panel_rows×CO matrices (ik_pack's layout: panel p of 16 columns at
 * p·16·panel_rows, row i at i·16 in it; lanes past CO zero), ustride floats apart. The next
 * tile's channels are prefetched as in ik_wg_input_tiles. */
IK_WG_FN void IK_WG_NAME(ik_wg_gradient_tiles)(const ik_winograd *w, const int m, ptrdiff_t t0, ptrdiff_t count,
                                               float *u, ptrdiff_t ustride, ptrdiff_t panel_rows) {
    const int alpha = m + 2, m2 = m * m;
    const ptrdiff_t co = w->out_channels;
    const float *px[16], *next[16];
    IK_WG_NAME(ik_wg_output_pixels)(w, m, t0, px);
    for (ptrdiff_t i = 0; i < count; i++) {
        if (i + 1 < count) IK_WG_NAME(ik_wg_output_pixels)(w, m, t0 + i + 1, next);
        else for (int k = 0; k < m2; k++) next[k] = NULL;
        for (ptrdiff_t c = 0, p = 0; c < co; c += 16, p++) {
            const int width = co - c < 16 ? (int)(co - c) : 16;
            ik_f16 h[16], left[24], out[36];  /* left[a·m + b] = (A h)[a][b]; out[a·alpha + b] */
            for (int k = 0; k < m2; k++) if (next[k]) __builtin_prefetch(next[k] + c);
            for (int k = 0; k < m2; k++) h[k] = IK_WG_NAME(ik_wg_load)(px[k] ? px[k] + c : NULL, width);
            for (int b = 0; b < m; b++) IK_WG_NAME(ik_wg_a_column)(m, h + b, m, left + b, m);
            for (int a = 0; a < alpha; a++) IK_WG_NAME(ik_wg_a_column)(m, left + a * m, 1, out + a * alpha, 1);
            float *dst = u + p * 16 * panel_rows + i * 16;
            for (int k = 0; k < alpha * alpha; k++) __builtin_memcpy(dst + k * ustride, &out[k], sizeof(ik_f16));
        }
        for (int k = 0; k < m2; k++) px[k] = next[k];
    }
}

/* alpha values z (stride s) to the three values Gᵀ z (stride os).
 * F(2×2): (z0 + (z1 + z2)/2, (z1 − z2)/2, (z1 + z2)/2 + z3).
 * F(4×4): (z0/4 − (z1 + z2)/6 + (z3 + z4)/24, (z2 − z1)/6 + (z3 − z4)/12, ((z3 + z4) − (z1 + z2))/6 + z5). */
IK_WG_FN void IK_WG_NAME(ik_wg_gt_column)(const int m, const ik_f16 *z, int s, ik_f16 *out, int os) {
    if (m == 2) {
        const ik_f16 z0 = z[0], z1 = z[s], z2 = z[2 * s], z3 = z[3 * s];
        const ik_f16 half = 0.5f * (z1 + z2);
        out[0] = z0 + half; out[os] = 0.5f * (z1 - z2); out[2 * os] = half + z3;
    } else {
        const ik_f16 z0 = z[0], z1 = z[s], z2 = z[2 * s], z3 = z[3 * s], z4 = z[4 * s], z5 = z[5 * s];
        const ik_f16 s12 = z1 + z2, s34 = z3 + z4;
        out[0] = 0.25f * z0 - (1.0f / 6.0f) * s12 + (1.0f / 24.0f) * s34;
        out[os] = (1.0f / 6.0f) * (z2 - z1) + (1.0f / 12.0f) * (z3 - z4);
        out[2 * os] = (1.0f / 6.0f) * (s34 - s12) + z5;
    }
}

/* dW[tap][c][o] (HWIO) = Gᵀ M G for input channels c0 ..< c1, M the sum (in group order) of the
 * `groups` partial results at mm + g·group_stride, each alpha² row-major CI×CO matrices
 * (matrix ξ at ξ·CI·CO). */
IK_WG_FN void IK_WG_NAME(ik_wg_weight_gradient_rows)(const int m, const float *mm, ptrdiff_t groups, ptrdiff_t group_stride,
                                                     ptrdiff_t ci, ptrdiff_t co, ptrdiff_t c0, ptrdiff_t c1, float *dw) {
    const int alpha = m + 2;
    for (ptrdiff_t c = c0; c < c1; c++)
        for (ptrdiff_t o = 0; o < co; o += 16) {
            const int width = co - o < 16 ? (int)(co - o) : 16;
            ik_f16 z[36], left[18], out[9];  /* left[j·alpha + b] = (Gᵀ M)[j][b]; out[j·3 + l] = dW[j][l] */
            for (int k = 0; k < alpha * alpha; k++) {
                const float *p = mm + (k * ci + c) * co + o;
                z[k] = IK_WG_NAME(ik_wg_load)(p, width);
                for (ptrdiff_t g = 1; g < groups; g++) z[k] += IK_WG_NAME(ik_wg_load)(p + g * group_stride, width);
            }
            for (int b = 0; b < alpha; b++) IK_WG_NAME(ik_wg_gt_column)(m, z + b, alpha, left + b, alpha);
            for (int j = 0; j < 3; j++) IK_WG_NAME(ik_wg_gt_column)(m, left + j * alpha, 1, out + 3 * j, 1);
            for (int tap = 0; tap < 9; tap++) IK_WG_NAME(ik_wg_store)(dw + (tap * ci + c) * co + o, out[tap], width);
        }
}

/* The entry points of the family: the tile size made a compile-time constant. */
IK_WG_ENTRY void IK_WG_NAME(ik_wg_input)(const ik_winograd *w, ptrdiff_t t0, ptrdiff_t count,
                                         float *v, ptrdiff_t ldv, ptrdiff_t vstride) {
    if (w->m == 2) IK_WG_NAME(ik_wg_input_tiles)(w, 2, t0, count, v, ldv, vstride);
    else IK_WG_NAME(ik_wg_input_tiles)(w, 4, t0, count, v, ldv, vstride);
}

IK_WG_ENTRY void IK_WG_NAME(ik_wg_output)(const ik_winograd *w, const float *x, ptrdiff_t ldm, ptrdiff_t mstride,
                                          ptrdiff_t t0, ptrdiff_t count, ptrdiff_t j0, ptrdiff_t cols,
                                          double *moments) {
    if (moments) {
        if (w->m == 2) IK_WG_NAME(ik_wg_output_tiles)(w, 2, x, ldm, mstride, t0, count, j0, cols, 1, moments);
        else IK_WG_NAME(ik_wg_output_tiles)(w, 4, x, ldm, mstride, t0, count, j0, cols, 1, moments);
    } else {
        if (w->m == 2) IK_WG_NAME(ik_wg_output_tiles)(w, 2, x, ldm, mstride, t0, count, j0, cols, 0, NULL);
        else IK_WG_NAME(ik_wg_output_tiles)(w, 4, x, ldm, mstride, t0, count, j0, cols, 0, NULL);
    }
}

IK_WG_ENTRY void IK_WG_NAME(ik_wg_gradient)(const ik_winograd *w, ptrdiff_t t0, ptrdiff_t count, float *u, ptrdiff_t ustride,
                                            ptrdiff_t panel_rows) {
    if (w->m == 2) IK_WG_NAME(ik_wg_gradient_tiles)(w, 2, t0, count, u, ustride, panel_rows);
    else IK_WG_NAME(ik_wg_gradient_tiles)(w, 4, t0, count, u, ustride, panel_rows);
}

IK_WG_ENTRY void IK_WG_NAME(ik_wg_weight_gradient)(int m, const float *mm, ptrdiff_t groups, ptrdiff_t group_stride,
                                                   ptrdiff_t ci, ptrdiff_t co, ptrdiff_t c0, ptrdiff_t c1, float *dw) {
    if (m == 2) IK_WG_NAME(ik_wg_weight_gradient_rows)(2, mm, groups, group_stride, ci, co, c0, c1, dw);
    else IK_WG_NAME(ik_wg_weight_gradient_rows)(4, mm, groups, group_stride, ci, co, c0, c1, dw);
}

/* U = G g Gᵀ for 16 output channels at a time (see ik_winograd_weights). G's rows for F(2×2):
 *   [1 0 0] [1/2 1/2 1/2] [1/2 -1/2 1/2] [0 0 1];
 * for F(4×4): [1/4 0 0] [-1/6 -1/6 -1/6] [-1/6 1/6 -1/6] [1/24 1/12 1/6] [1/24 -1/12 1/6] [0 0 1]. */
IK_WG_FN void IK_WG_NAME(ik_wg_g_column)(const int m, const ik_f16 *z, int s, ik_f16 *out, int os) {
    const ik_f16 z0 = z[0], z1 = z[s], z2 = z[2 * s];
    if (m == 2) {
        out[0] = z0;
        out[os] = 0.5f * (z0 + z1 + z2);
        out[2 * os] = 0.5f * (z0 - z1 + z2);
        out[3 * os] = z2;
    } else {
        const ik_f16 even = z0 + z2;
        out[0] = 0.25f * z0;
        out[os] = (-1.0f / 6.0f) * (even + z1);
        out[2 * os] = (-1.0f / 6.0f) * (even - z1);
        const ik_f16 q = (1.0f / 24.0f) * z0 + (1.0f / 6.0f) * z2;
        out[3 * os] = q + (1.0f / 12.0f) * z1;
        out[4 * os] = q - (1.0f / 12.0f) * z1;
        out[5 * os] = z2;
    }
}

/* The `width` (1...16) values p[0], p[stride], ...; zero-filled past width. */
IK_WG_FN ik_f16 IK_WG_NAME(ik_wg_load_strided)(const float *p, ptrdiff_t stride, int width) {
    ik_f16 x = { 0 };
    for (int c = 0; c < width; c++) x[c] = p[c * stride];
    return x;
}

IK_WG_ENTRY void IK_WG_NAME(ik_wg_weights)(const int m, const float *hwio, ptrdiff_t ci, ptrdiff_t co,
                                           const float *scale, int turned, float *u, ptrdiff_t weight_stride,
                                           ptrdiff_t p0, ptrdiff_t p1) {
    const int alpha = m + 2;
    for (ptrdiff_t p = p0; p < p1; p++) {
        const int width = co - 16 * p < 16 ? (int)(co - 16 * p) : 16;
        const ik_f16 sc = scale ? IK_WG_NAME(ik_wg_load)(scale + 16 * p, width) : (ik_f16){ 0 } + 1.0f;
        for (ptrdiff_t c = 0; c < ci; c++) {
            ik_f16 g[9], left[18], out[36];  /* left[a·3 + s] = (G g)[a][s]; out[a·alpha + b] = U[a][b] */
            if (turned)  /* g[tap] = W[8 − tap][16p ..][c]: the source is [3][3][CO][CI], read across */
                for (int tap = 0; tap < 9; tap++)
                    g[tap] = IK_WG_NAME(ik_wg_load_strided)(hwio + ((8 - tap) * co + 16 * p) * ci + c, ci, width);
            else
                for (int tap = 0; tap < 9; tap++) g[tap] = IK_WG_NAME(ik_wg_load)(hwio + (tap * ci + c) * co + 16 * p, width) * sc;
            for (int s = 0; s < 3; s++) IK_WG_NAME(ik_wg_g_column)(m, g + s, 3, left + s, 3);
            for (int a = 0; a < alpha; a++) IK_WG_NAME(ik_wg_g_column)(m, left + 3 * a, 1, out + a * alpha, 1);
            float *dst = u + 16 * p * ci + 16 * c;
            for (int k = 0; k < alpha * alpha; k++) __builtin_memcpy(dst + k * weight_stride, &out[k], sizeof(ik_f16));
        }
    }
}
