/* conv.c: 2-D convolution (and 1-D, as 2-D with a height of 1) run as BLAS
 * products, and the two linear ops it is built from, unfold (im2col) and
 * fold (col2im), which are each other's adjoint.
 *
 * Shapes: x (N, C, H, W), w (O, C/G, kH, kW), b (O), y (N, O, OH, OW) with
 * G groups, K = C/G kH kW rows of columns per group, L = OH OW positions:
 *   OH = (H + 2 ph - dh (kH - 1) - 1) / sh + 1   (and OW likewise)
 *   unfold(x)[n, (c kH + i) kW + j, oh OW + ow]
 *       = x[n, c, oh sh - ph + i dh, ow sw - pw + j dw]   (0 in the padding)
 *   fold(cols) = the sum of each column entry into the pixel it came from
 *   y[n, group g] = w_g (O/G, K) @ unfold(x)[n, group g] (K, L) + b
 * The forward writes the columns of every image into the result's arena
 * (kept for the backward), then one product per image and group; the
 * backward is dW = g cols^T, dcols = W^T g then fold, db = sum g. */
#include "../internal.h"

/* The geometry of an unfold, fold or convolution: kernel, stride, padding,
 * dilation per axis (height, width), the input's spatial size, the
 * output's, the input channels C and the groups. */
typedef struct {
    int64_t kh, kw, sh, sw, ph, pw, dh, dw;
    int64_t H, W, OH, OW, C, groups;
} conv_params;

/* The convolution keeps the columns of x, (N, C kH kW, L). */
typedef struct {
    void *cols;
} conv_saved;

/* [*lo, *hi): the outputs o in [0, n) whose input o * stride + offset lies
 * in [0, size). */
static void valid_range(int64_t n, int64_t stride, int64_t offset, int64_t size,
                        int64_t *lo, int64_t *hi)
{
    *lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    *hi = size - offset <= 0 ? 0 : (size - offset + stride - 1) / stride;
    if (*hi > n) *hi = n;
    if (*lo > *hi) *lo = *hi;
}

/* im2col of one image: cols (C kH kW, L) from x (C, H, W), stored, or
 * added when accumulate. */
static void im2col(ag_dtype dt, const conv_params *p, const void *x_data,
                   void *cols_data, bool accumulate)
{
    int64_t L = p->OH * p->OW;
    AG_DISPATCH_FLOAT(dt, {
        const real *x = x_data;
        real *cols = cols_data;
        for (int64_t c = 0; c < p->C; c++)
            for (int64_t ki = 0; ki < p->kh; ki++)
                for (int64_t kj = 0; kj < p->kw; kj++) {
                    int64_t off = kj * p->dw - p->pw, lo, hi;
                    valid_range(p->OW, p->sw, off, p->W, &lo, &hi);
                    real *rows = cols + ((c * p->kh + ki) * p->kw + kj) * L;
                    int64_t r0, r1; /* the rows oh that read the image */
                    valid_range(p->OH, p->sh, ki * p->dh - p->ph, p->H, &r0,
                                &r1);
                    if (!accumulate && p->sh == 1 && p->sw == 1 &&
                        p->OW == p->W && r0 < r1 && lo < hi) {
                        /* unit strides and OW = W (a "same" padding): the
                         * rows read and written are both W apart, so the
                         * valid rows are one copy, then their columns in
                         * the padding are cleared (a kernel column that
                         * reads no column of x, lo = hi, takes the loop
                         * below: the copy would start outside x) */
                        const real *restrict src =
                            x + (c * p->H + r0 - p->ph + ki * p->dh) * p->W +
                            off;
                        real *restrict dst = rows + r0 * p->OW;
                        int64_t end = (r1 - r0) * p->OW - (p->OW - hi);
                        for (int64_t o = 0; o < r0 * p->OW; o++) rows[o] = 0;
                        for (int64_t o = lo; o < end; o++) dst[o] = src[o];
                        for (int64_t o = r1 * p->OW; o < L; o++) rows[o] = 0;
                        for (int64_t oh = r0; oh < r1; oh++) {
                            real *restrict row = rows + oh * p->OW;
                            for (int64_t o = 0; o < lo; o++) row[o] = 0;
                            for (int64_t o = hi; o < p->OW; o++) row[o] = 0;
                        }
                        continue;
                    }
                    for (int64_t oh = 0; oh < p->OH; oh++) {
                        real *restrict row = rows + oh * p->OW;
                        int64_t ih = oh * p->sh - p->ph + ki * p->dh;
                        if (ih < 0 || ih >= p->H) {
                            if (!accumulate)
                                for (int64_t o = 0; o < p->OW; o++) row[o] = 0;
                            continue;
                        }
                        const real *restrict xr =
                            x + (c * p->H + ih) * p->W + off;
                        if (!accumulate) {
                            for (int64_t o = 0; o < lo; o++) row[o] = 0;
                            for (int64_t o = hi; o < p->OW; o++) row[o] = 0;
                        }
                        int64_t s = p->sw;
                        if (s == 1) /* contiguous: a copy that vectorises */
                            AG_GRAD_LOOP(!accumulate, hi - lo, row + lo,
                                         xr[lo + i]);
                        else
                            AG_GRAD_LOOP(!accumulate, hi - lo, row + lo,
                                         xr[(lo + i) * s]);
                    }
                }
    });
}

/* col2im of one image: adds cols (C kH kW, L) into x (C, H, W), each entry
 * into the pixel it was read from (entries of the padding are dropped).
 * With scratch, cols may be changed (its entries of the padding cleared). */
static void col2im(ag_dtype dt, const conv_params *p, void *cols_data,
                   void *x_data, bool scratch)
{
    int64_t L = p->OH * p->OW;
    AG_DISPATCH_FLOAT(dt, {
        real *cols = cols_data;
        real *x = x_data;
        for (int64_t c = 0; c < p->C; c++)
            for (int64_t ki = 0; ki < p->kh; ki++)
                for (int64_t kj = 0; kj < p->kw; kj++) {
                    int64_t off = kj * p->dw - p->pw, lo, hi;
                    valid_range(p->OW, p->sw, off, p->W, &lo, &hi);
                    real *rows = cols + ((c * p->kh + ki) * p->kw + kj) * L;
                    int64_t r0, r1; /* the rows oh that reach the image */
                    valid_range(p->OH, p->sh, ki * p->dh - p->ph, p->H, &r0,
                                &r1);
                    if (scratch && p->sh == 1 && p->sw == 1 && p->OW == p->W &&
                        r0 < r1 && lo < hi) {
                        /* as in im2col: the padding's entries cleared, the
                         * valid rows are one contiguous sum (lo < hi, or
                         * the sum would start outside x) */
                        for (int64_t oh = r0; oh < r1; oh++) {
                            real *restrict row = rows + oh * p->OW;
                            for (int64_t o = 0; o < lo; o++) row[o] = 0;
                            for (int64_t o = hi; o < p->OW; o++) row[o] = 0;
                        }
                        real *restrict dst =
                            x + (c * p->H + r0 - p->ph + ki * p->dh) * p->W +
                            off;
                        const real *restrict src = rows + r0 * p->OW;
                        int64_t end = (r1 - r0) * p->OW - (p->OW - hi);
                        for (int64_t o = lo; o < end; o++) dst[o] += src[o];
                        continue;
                    }
                    for (int64_t oh = 0; oh < p->OH; oh++) {
                        int64_t ih = oh * p->sh - p->ph + ki * p->dh;
                        if (ih < 0 || ih >= p->H) continue;
                        const real *restrict row = rows + oh * p->OW;
                        real *restrict xr = x + (c * p->H + ih) * p->W + off;
                        if (p->sw == 1)
                            for (int64_t o = lo; o < hi; o++) xr[o] += row[o];
                        else
                            for (int64_t o = lo; o < hi; o++)
                                xr[o * p->sw] += row[o];
                    }
                }
    });
}

/* Sizes of one image's pixels and of its columns. */
static int64_t image_size(const conv_params *p)
{
    return p->C * p->H * p->W;
}

static int64_t cols_size(const conv_params *p)
{
    return p->C * p->kh * p->kw * p->OH * p->OW;
}

/* ---- unfold and fold ---- */

/* unfold: cols[n] = im2col(x[n]) */
static int unfold_forward(ag_tensor *out)
{
    const conv_params *p = AG_PARAMS(out, conv_params);
    size_t e = ag__dtype_size(out->dtype);
    int64_t N = out->inputs[0]->shape[0];
    for (int64_t n = 0; n < N; n++)
        im2col(out->dtype, p,
               (char *)out->inputs[0]->data + n * image_size(p) * e,
               (char *)out->data + n * cols_size(p) * e, false);
    return 0;
}

/* fold: x[n] = col2im(cols[n]) */
static int fold_forward(ag_tensor *out)
{
    const conv_params *p = AG_PARAMS(out, conv_params);
    size_t e = ag__dtype_size(out->dtype);
    memset(out->data, 0, ag__tensor_bytes(out));
    for (int64_t n = 0; n < out->shape[0]; n++)
        col2im(out->dtype, p,
               (char *)out->inputs[0]->data + n * cols_size(p) * e,
               (char *)out->data + n * image_size(p) * e, false);
    return 0;
}

/* unfold: dx[n] += col2im(g[n]) */
static int unfold_backward(ag_tensor *out)
{
    const conv_params *p = AG_PARAMS(out, conv_params);
    size_t e = ag__dtype_size(out->dtype);
    char *dx = ag__grad_accumulate(out->inputs[0]);
    for (int64_t n = 0; n < out->shape[0]; n++)
        col2im(out->dtype, p, (char *)out->grad->data + n * cols_size(p) * e,
               dx + n * image_size(p) * e, false);
    return 0;
}

/* fold: dcols[n] (+)= im2col(g[n]) */
static int fold_backward(ag_tensor *out)
{
    const conv_params *p = AG_PARAMS(out, conv_params);
    size_t e = ag__dtype_size(out->dtype);
    bool set;
    char *dcols = ag__grad_begin(out->inputs[0], &set);
    for (int64_t n = 0; n < out->shape[0]; n++)
        im2col(out->dtype, p, (char *)out->grad->data + n * image_size(p) * e,
               dcols + n * cols_size(p) * e, !set);
    return 0;
}

/* The op on one input with out's parameters (the other of the pair, or
 * the same op on a tangent), shaped as `like`. */
static ag_tensor *apply_like(ag_arena *a, const ag_op *op, ag_tensor *in,
                             const ag_tensor *out, const ag_tensor *like)
{
    return ag__apply(op == &ag__op_unfold ? "ag_unfold" : "ag_fold", a, op, 1,
                     &in, in->dtype, like->ndim, like->shape, out->params);
}

/* unfold: dx = fold(g)      fold: dcols = unfold(g) */
static int unfold_fold_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g,
                           const bool *want, ag_tensor **dx)
{
    const ag_op *other =
        out->op == &ag__op_unfold ? &ag__op_fold : &ag__op_unfold;
    AG_TRY(dx[0] = apply_like(a, other, g, out, out->inputs[0]));
    return 0;
}

/* unfold: ty = unfold(tx)   fold: ty = fold(tx)   (linear) */
static int unfold_fold_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *tx,
                           ag_tensor **ty)
{
    AG_TRY(*ty = apply_like(a, out->op, tx[0], out, out));
    return 0;
}

/* ---- checking the geometry ---- */

/* Fills p's kernel, stride, padding, dilation and groups from o (NULL or
 * zero fields: the defaults) for `spatial` axes (1: the width only, the
 * height being 1 with kernel 1), and checks them. */
static int read_options(const char *func, const ag_conv_options *o, int spatial,
                        int64_t kh, int64_t kw, conv_params *p)
{
    ag_conv_options d = o ? *o : (ag_conv_options){{0}, {0}, {0}, 0};
    for (int k = 0; k < spatial; k++)
        if (d.stride[k] < 0 || d.dilation[k] < 0 || d.padding[k] < 0) {
            if (spatial == 1)
                ag__error(func,
                          "stride %lld and dilation %lld must be positive (0 "
                          "reads as 1) and padding %lld not negative",
                          (long long)d.stride[0], (long long)d.dilation[0],
                          (long long)d.padding[0]);
            else
                ag__error(func,
                          "stride (%lld,%lld) and dilation (%lld,%lld) must "
                          "be positive (0 reads as 1) and padding "
                          "(%lld,%lld) not negative",
                          (long long)d.stride[0], (long long)d.stride[1],
                          (long long)d.dilation[0], (long long)d.dilation[1],
                          (long long)d.padding[0], (long long)d.padding[1]);
            return -1;
        }
    if (spatial == 1) { /* conv1d: index [0] of each pair is the length's */
        d.stride[1] = d.stride[0], d.stride[0] = 1;
        d.padding[1] = d.padding[0], d.padding[0] = 0;
        d.dilation[1] = d.dilation[0], d.dilation[0] = 1;
    }
    for (int k = 0; k < 2; k++) {
        if (!d.stride[k]) d.stride[k] = 1;
        if (!d.dilation[k]) d.dilation[k] = 1;
    }
    if (d.groups < 0) {
        ag__error(func, "groups %lld must be positive (0 reads as 1)",
                  (long long)d.groups);
        return -1;
    }
    *p = (conv_params){.kh = kh,
                       .kw = kw,
                       .sh = d.stride[0],
                       .sw = d.stride[1],
                       .ph = d.padding[0],
                       .pw = d.padding[1],
                       .dh = d.dilation[0],
                       .dw = d.dilation[1],
                       .groups = d.groups ? d.groups : 1};
    return 0;
}

/* The output size along one axis, or -1 when the dilated kernel is larger
 * than the padded input. */
static int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t pad,
                        int64_t dil)
{
    int64_t span = dil * (k - 1) + 1, padded = in + 2 * pad;
    return padded < span ? -1 : (padded - span) / s + 1;
}

/* Sets p's input size (H, W), channels and output size; reports a kernel
 * larger than the padded input, or a kernel size below 1. */
static int set_sizes(const char *func, int spatial, int64_t C, int64_t H,
                     int64_t W, conv_params *p)
{
    p->C = C, p->H = H, p->W = W;
    if (p->kh < 1 || p->kw < 1) {
        if (spatial == 1)
            ag__error(func, "kernel size %lld must be at least 1",
                      (long long)p->kw);
        else
            ag__error(func, "kernel (%lld,%lld) must be at least 1 each",
                      (long long)p->kh, (long long)p->kw);
        return -1;
    }
    p->OH = out_size(H, p->kh, p->sh, p->ph, p->dh);
    p->OW = out_size(W, p->kw, p->sw, p->pw, p->dw);
    if (p->OH < 0 || p->OW < 0) {
        if (spatial == 1)
            ag__error(func,
                      "kernel %lld with dilation %lld is larger than the "
                      "padded input: length %lld, padding %lld",
                      (long long)p->kw, (long long)p->dw, (long long)W,
                      (long long)p->pw);
        else
            ag__error(func,
                      "kernel (%lld,%lld) with dilation (%lld,%lld) is larger "
                      "than the padded input: (%lld,%lld), padding "
                      "(%lld,%lld)",
                      (long long)p->kh, (long long)p->kw, (long long)p->dh,
                      (long long)p->dw, (long long)H, (long long)W,
                      (long long)p->ph, (long long)p->pw);
        return -1;
    }
    return 0;
}

/* Checks that x has `ndim` dimensions, naming the layout expected. */
static int check_rank(const char *func, const char *what, const ag_tensor *x,
                      int ndim, const char *layout)
{
    if (x->ndim == ndim) return 0;
    char bx[AG_SHAPE_STR_MAX];
    ag__error(func, "%s must be %d-D %s, got %s", what, ndim, layout,
              ag__shape_str(bx, x->ndim, x->shape));
    return -1;
}

/* Checks a product of sizes against the BLAS limit. */
static int check_blas(const char *func, const conv_params *p, int64_t O)
{
    int64_t K = p->C / p->groups * p->kh * p->kw, L = p->OH * p->OW;
    if (K > INT_MAX || L > INT_MAX || O > INT_MAX) {
        ag__error(func,
                  "the products (%lld x %lld) @ (%lld x %lld) exceed the "
                  "BLAS limit %d",
                  (long long)O, (long long)K, (long long)K, (long long)L,
                  INT_MAX);
        return -1;
    }
    return 0;
}

ag_tensor *ag_unfold(ag_arena *a, ag_tensor *x, int64_t kernel_h,
                     int64_t kernel_w, const ag_conv_options *o)
{
    const char *func = "ag_unfold";
    conv_params p;
    if (ag__check_float_inputs(func, a, 1, &x) ||
        check_rank(func, "x", x, 4, "(N,C,H,W)") ||
        read_options(func, o, 2, kernel_h, kernel_w, &p))
        return NULL;
    if (p.groups != 1) {
        ag__error(func, "groups %lld: unfold has no groups (0 or 1)",
                  (long long)p.groups);
        return NULL;
    }
    if (set_sizes(func, 2, x->shape[1], x->shape[2], x->shape[3], &p))
        return NULL;
    int64_t shape[3] = {x->shape[0], p.C * p.kh * p.kw, p.OH * p.OW};
    int64_t numel;
    size_t bytes;
    if (ag__check_size(func, x->dtype, 3, shape, &numel, &bytes)) return NULL;
    return ag__apply(func, a, &ag__op_unfold, 1, &x, x->dtype, 3, shape, &p);
}

ag_tensor *ag_fold(ag_arena *a, ag_tensor *cols, int64_t height, int64_t width,
                   int64_t kernel_h, int64_t kernel_w, const ag_conv_options *o)
{
    const char *func = "ag_fold";
    conv_params p;
    if (ag__check_float_inputs(func, a, 1, &cols) ||
        check_rank(func, "cols", cols, 3, "(N,C*kH*kW,L)") ||
        read_options(func, o, 2, kernel_h, kernel_w, &p))
        return NULL;
    if (p.groups != 1) {
        ag__error(func, "groups %lld: fold has no groups (0 or 1)",
                  (long long)p.groups);
        return NULL;
    }
    if (height < 0 || width < 0) {
        ag__error(func, "output size (%lld,%lld) must not be negative",
                  (long long)height, (long long)width);
        return NULL;
    }
    char bc[AG_SHAPE_STR_MAX];
    int64_t kk = kernel_h * kernel_w;
    if (kernel_h < 1 || kernel_w < 1 || cols->shape[1] % kk) {
        ag__error(func,
                  "cols %s: its second size must be a multiple of the "
                  "kernel's (%lld,%lld) area",
                  ag__shape_str(bc, cols->ndim, cols->shape),
                  (long long)kernel_h, (long long)kernel_w);
        return NULL;
    }
    if (set_sizes(func, 2, cols->shape[1] / kk, height, width, &p)) return NULL;
    if (cols->shape[2] != p.OH * p.OW) {
        ag__error(func,
                  "cols %s has %lld blocks; output (%lld,%lld) with kernel "
                  "(%lld,%lld) has %lld x %lld = %lld",
                  ag__shape_str(bc, cols->ndim, cols->shape),
                  (long long)cols->shape[2], (long long)height,
                  (long long)width, (long long)p.kh, (long long)p.kw,
                  (long long)p.OH, (long long)p.OW, (long long)(p.OH * p.OW));
        return NULL;
    }
    int64_t shape[4] = {cols->shape[0], p.C, height, width};
    int64_t numel;
    size_t bytes;
    if (ag__check_size(func, cols->dtype, 4, shape, &numel, &bytes))
        return NULL;
    return ag__apply(func, a, &ag__op_fold, 1, &cols, cols->dtype, 4, shape,
                     &p);
}

/* ---- the convolution ---- */

/* The sizes of a product: output channels per group, rows of columns per
 * group K, positions L. */
typedef struct {
    int64_t N, O, G, Og, K, L;
} conv_dims;

static conv_dims dims_of(const ag_tensor *out)
{
    const conv_params *p = AG_PARAMS(out, conv_params);
    conv_dims d;
    d.N = out->shape[0];
    d.O = out->shape[1];
    d.G = p->groups;
    d.Og = d.O / d.G;
    d.K = p->C / d.G * p->kh * p->kw;
    d.L = p->OH * p->OW;
    return d;
}

/* A share of the images of a convolution's forward or backward, for
 * ag__parallel: out, the columns, and for the backward dx (stored into
 * when set: unwritten) and one scratch of columns per part. */
typedef struct {
    ag_tensor *out;
    char *cols, *dx, *scratch;
    bool set;
} conv_job;

/* The parts to split N images in: one per thread, at most N. */
static int image_parts(int64_t N)
{
    int threads = ag_get_num_threads();
    if (threads > AG_MAX_THREADS) threads = AG_MAX_THREADS;
    return N < threads ? (int)(N > 0 ? N : 1) : threads;
}

/* y[n, g] = w_g @ cols[n, g] (+ b) for this part's images: the bias
 * written into y first and the product added onto it, as in linear.c. */
static void forward_images(void *arg, int part, int parts)
{
    const conv_job *j = arg;
    const ag_tensor *out = j->out, *x = out->inputs[0], *w = out->inputs[1];
    const ag_tensor *b = out->n_inputs == 3 ? out->inputs[2] : NULL;
    const conv_params *p = AG_PARAMS(out, conv_params);
    conv_dims d = dims_of(out);
    size_t e = ag__dtype_size(out->dtype);
    int64_t lo, hi;
    ag__part_range(d.N, 1, part, parts, &lo, &hi);
    for (int64_t n = lo; n < hi; n++) {
        char *cn = j->cols + n * cols_size(p) * e;
        im2col(out->dtype, p, (char *)x->data + n * image_size(p) * e, cn,
               false);
        char *yn = (char *)out->data + n * d.O * d.L * e;
        if (b)
            AG_DISPATCH_FLOAT(out->dtype, {
                const real *bv = b->data;
                real *y = (real *)yn;
                for (int64_t o = 0; o < d.O; o++)
                    for (int64_t l = 0; l < d.L; l++) y[o * d.L + l] = bv[o];
            });
        for (int64_t g = 0; g < d.G; g++)
            ag__gemm(out->dtype, false, false, d.Og, d.L, d.K,
                     (char *)w->data + g * d.Og * d.K * e,
                     cn + g * d.K * d.L * e, b ? 1.0 : 0.0,
                     yn + g * d.Og * d.L * e);
    }
}

/* The images split over the library's threads (each product then runs on
 * its caller's thread; a single image splits its products instead). */
static int conv_forward(ag_tensor *out)
{
    const conv_params *p = AG_PARAMS(out, conv_params);
    conv_dims d = dims_of(out);
    size_t e = ag__dtype_size(out->dtype);
    char *cols =
        ag__arena_alloc(out->arena, (size_t)(d.N * cols_size(p)) * e, 64);
    if (!cols && d.N * cols_size(p) > 0) {
        ag__error("ag_conv2d", "out of memory");
        return -1;
    }
    AG_SAVED(out, conv_saved)->cols = cols;
    conv_job job = {out, cols, NULL, NULL, false};
    ag__parallel(image_parts(d.N), forward_images, &job);
    return 0;
}

/* dx[n] (+)= col2im(W_g^T @ g[n, g]) for this part's images, through the
 * part's scratch columns. */
static void dx_images(void *arg, int part, int parts)
{
    const conv_job *j = arg;
    const ag_tensor *out = j->out, *w = out->inputs[1];
    const conv_params *p = AG_PARAMS(out, conv_params);
    conv_dims d = dims_of(out);
    size_t e = ag__dtype_size(out->dtype);
    const char *gy = out->grad->data;
    char *dcols = j->scratch + (size_t)part * (size_t)cols_size(p) * e;
    int64_t lo, hi;
    ag__part_range(d.N, 1, part, parts, &lo, &hi);
    for (int64_t n = lo; n < hi; n++) {
        for (int64_t g = 0; g < d.G; g++)
            ag__gemm(out->dtype, true, false, d.K, d.L, d.Og,
                     (char *)w->data + g * d.Og * d.K * e,
                     gy + (n * d.O + g * d.Og) * d.L * e, 0.0,
                     dcols + g * d.K * d.L * e);
        char *dxn = j->dx + n * image_size(p) * e;
        if (j->set) memset(dxn, 0, (size_t)image_size(p) * e);
        col2im(out->dtype, p, dcols, dxn, true);
    }
}

/* dW_g (+)= sum_n g[n, g] @ cols[n, g]^T    (Og, L) @ (L, K)
 * dx[n] += col2im(W_g^T @ g[n, g])          (K, Og) @ (Og, L)
 * db += sum over n and positions of g */
static int conv_backward(ag_tensor *out)
{
    const conv_params *p = AG_PARAMS(out, conv_params);
    ag_tensor *x = out->inputs[0], *w = out->inputs[1];
    ag_tensor *b = out->n_inputs == 3 ? out->inputs[2] : NULL;
    conv_dims d = dims_of(out);
    size_t e = ag__dtype_size(out->dtype);
    const char *gy = out->grad->data;
    const char *cols = AG_SAVED(out, conv_saved)->cols;
    int parts = image_parts(d.N);
    conv_job job = {out, NULL, NULL, NULL, false};
    if (x->requires_grad) { /* before any gradient changes */
        job.scratch = ag__arena_alloc(
            out->arena, (size_t)parts * (size_t)cols_size(p) * e, 64);
        if (!job.scratch && cols_size(p) > 0) {
            ag__error("ag_backward", "out of memory in conv2d");
            return -1;
        }
    }
    if (w->requires_grad) {
        bool set = false;
        char *dw = d.N ? ag__grad_begin(w, &set) : ag__grad_accumulate(w);
        for (int64_t n = 0; n < d.N; n++)
            for (int64_t g = 0; g < d.G; g++)
                ag__gemm(out->dtype, false, true, d.Og, d.K, d.L,
                         gy + (n * d.O + g * d.Og) * d.L * e,
                         cols + (n * cols_size(p) + g * d.K * d.L) * e,
                         n == 0 && set ? 0.0 : 1.0, dw + g * d.Og * d.K * e);
    }
    if (x->requires_grad) { /* dx: the images split over the threads */
        /* unwritten: each image cleared just before its col2im */
        job.dx = ag__grad_begin(x, &job.set);
        ag__parallel(parts, dx_images, &job);
    }
    if (b && b->requires_grad) {
        void *db_data = ag__grad_accumulate(b);
        AG_DISPATCH_FLOAT(out->dtype, {
            const real *g = (const real *)gy;
            real *db = db_data;
            for (int64_t n = 0; n < d.N; n++)
                for (int64_t o = 0; o < d.O; o++) {
                    const real *restrict row = g + (n * d.O + o) * d.L;
                    real s[8] = {0}; /* 8 partial sums: a vector */
                    int64_t l = 0;
                    for (; l + 8 <= d.L; l += 8)
                        for (int j = 0; j < 8; j++) s[j] += row[l + j];
                    for (; l < d.L; l++) s[0] += row[l];
                    db[o] += ((s[0] + s[1]) + (s[2] + s[3])) +
                             ((s[4] + s[5]) + (s[6] + s[7]));
                }
        });
    }
    return 0;
}

/* The same in ops, with g seen as (N, G, Og, L), w as (G, Og, K) and the
 * columns unfold(x) as (N, G, K, L):
 *   dx = fold(w^T @ g)     dW = sum_n g @ unfold(x)^T     db = sum g */
static int conv_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g, const bool *want,
                    ag_tensor **dx)
{
    const conv_params *p = AG_PARAMS(out, conv_params);
    ag_tensor *x = out->inputs[0], *w = out->inputs[1];
    conv_dims d = dims_of(out);
    ag_tensor *g4 = ag_reshape(a, g, 4, (int64_t[]){d.N, d.G, d.Og, d.L});
    ag_tensor *w3 = ag_reshape(a, w, 3, (int64_t[]){d.G, d.Og, d.K});
    if (want[0]) {
        ag_tensor *dcols = ag_matmul(a, ag_transpose(a, w3, 1, 2), g4);
        dcols = ag_reshape(a, dcols, 3, (int64_t[]){d.N, d.G * d.K, d.L});
        AG_TRY(dx[0] =
                   dcols ? apply_like(a, &ag__op_fold, dcols, out, x) : NULL);
    }
    if (want[1]) {
        ag_tensor *cols =
            ag__apply("ag_conv2d", a, &ag__op_unfold, 1, &x, x->dtype, 3,
                      (int64_t[]){d.N, p->C * p->kh * p->kw, d.L}, p);
        cols = ag_reshape(a, cols, 4, (int64_t[]){d.N, d.G, d.K, d.L});
        ag_tensor *dw = ag_matmul(a, g4, ag_transpose(a, cols, 2, 3));
        AG_TRY(dx[1] =
                   ag_reshape(a, ag_sum(a, dw, 0, false), w->ndim, w->shape));
    }
    if (out->n_inputs == 3 && want[2])
        AG_TRY(dx[2] = ag_reshape(
                   a, ag__sum_to(a, g, 4, (int64_t[]){1, d.O, 1, 1}), 1, &d.O));
    return 0;
}

/* The convolution of x by w (no bias) with out's parameters. */
static ag_tensor *conv_like(ag_arena *a, ag_tensor *out, ag_tensor *x,
                            ag_tensor *w)
{
    ag_tensor *in[2] = {x, w};
    return ag__apply("ag_conv2d", a, &ag__op_conv2d, 2, in, x->dtype, out->ndim,
                     out->shape, out->params);
}

/* ty = conv(tx, w) + conv(x, tw) + tb */
static int conv_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *t,
                    ag_tensor **ty)
{
    ag_tensor *x = out->inputs[0], *w = out->inputs[1];
    ag_tensor *r = ag__add_or(a, t[0] ? conv_like(a, out, t[0], w) : NULL,
                              t[1] ? conv_like(a, out, x, t[1]) : NULL);
    if (out->n_inputs == 3 && t[2])
        r = ag__add_or(
            a, r, ag_reshape(a, t[2], 4, (int64_t[]){1, out->shape[1], 1, 1}));
    AG_TRY(*ty = ag__expand_to(a, r, out->ndim, out->shape));
    return 0;
}

/* conv2d (spatial 2) or conv1d (spatial 1, through conv2d on a height of
 * 1): the checks, then the op. */
static ag_tensor *convolution(const char *func, int spatial, ag_arena *a,
                              ag_tensor *x, ag_tensor *w, ag_tensor *b,
                              const ag_conv_options *o)
{
    ag_tensor *inputs[3] = {x, w, b};
    int n = b ? 3 : 2;
    if (ag__check_float_inputs(func, a, n, inputs)) return NULL;
    int nd = spatial + 2;
    const char *x_layout = spatial == 2 ? "(N,C,H,W)" : "(N,C,L)";
    const char *w_layout =
        spatial == 2 ? "(O,C/groups,kH,kW)" : "(O,C/groups,k)";
    if (check_rank(func, "x", x, nd, x_layout) ||
        check_rank(func, "weight", w, nd, w_layout))
        return NULL;
    int64_t kh = spatial == 2 ? w->shape[2] : 1, kw = w->shape[nd - 1];
    conv_params p;
    if (read_options(func, o, spatial, kh, kw, &p)) return NULL;
    char bx[AG_SHAPE_STR_MAX], bw[AG_SHAPE_STR_MAX], bb[AG_SHAPE_STR_MAX];
    int64_t C = x->shape[1], O = w->shape[0], G = p.groups;
    if (O == 0) { /* as PyTorch: a convolution needs a filter */
        ag__error(func, "weight %s has no output channels",
                  ag__shape_str(bw, w->ndim, w->shape));
        return NULL;
    }
    if (C % G || O % G) {
        ag__error(func,
                  "groups %lld must divide the input channels %lld and the "
                  "output channels %lld",
                  (long long)G, (long long)C, (long long)O);
        return NULL;
    }
    if (w->shape[1] != C / G) {
        ag__error(func,
                  "weight %s does not match x %s: with %lld groups its "
                  "second size must be %lld / %lld = %lld",
                  ag__shape_str(bw, w->ndim, w->shape),
                  ag__shape_str(bx, x->ndim, x->shape), (long long)G,
                  (long long)C, (long long)G, (long long)(C / G));
        return NULL;
    }
    if (b && (b->ndim != 1 || b->shape[0] != O)) {
        ag__error(func, "bias %s does not match weight %s: it must be (%lld)",
                  ag__shape_str(bb, b->ndim, b->shape),
                  ag__shape_str(bw, w->ndim, w->shape), (long long)O);
        return NULL;
    }
    int64_t H = spatial == 2 ? x->shape[2] : 1, W = x->shape[nd - 1];
    if (set_sizes(func, spatial, C, H, W, &p) || check_blas(func, &p, O))
        return NULL;
    int64_t shape[4] = {x->shape[0], O, p.OH, p.OW}, numel;
    int64_t cshape[3] = {x->shape[0], C * kh * kw, p.OH * p.OW};
    size_t bytes;
    if (ag__check_size(func, x->dtype, 4, shape, &numel, &bytes) ||
        ag__check_size(func, x->dtype, 3, cshape, &numel, &bytes))
        return NULL;
    if (spatial == 2)
        return ag__apply(func, a, &ag__op_conv2d, n, inputs, x->dtype, 4, shape,
                         &p);
    /* conv1d: (N,C,L) as (N,C,1,L), (O,C/G,k) as (O,C/G,1,k) */
    inputs[0] = ag_reshape(a, x, 4, (int64_t[]){x->shape[0], C, 1, W});
    inputs[1] = ag_reshape(a, w, 4, (int64_t[]){O, C / G, 1, kw});
    if (!inputs[0] || !inputs[1]) return NULL;
    ag_tensor *y =
        ag__apply(func, a, &ag__op_conv2d, n, inputs, x->dtype, 4, shape, &p);
    return y ? ag_reshape(a, y, 3, (int64_t[]){x->shape[0], O, p.OW}) : NULL;
}

ag_tensor *ag_conv2d(ag_arena *a, ag_tensor *x, ag_tensor *w, ag_tensor *b,
                     const ag_conv_options *o)
{
    return convolution("ag_conv2d", 2, a, x, w, b, o);
}

ag_tensor *ag_conv1d(ag_arena *a, ag_tensor *x, ag_tensor *w, ag_tensor *b,
                     const ag_conv_options *o)
{
    return convolution("ag_conv1d", 1, a, x, w, b, o);
}

/* The op-table entries. */
const ag_op ag__op_conv2d = {.name = "conv2d",
                             .arity = AG_VARIADIC, /* x, w and b or not */
                             .params_size = sizeof(conv_params),
                             .saved_size = sizeof(conv_saved),
                             .forward = conv_forward,
                             .backward = conv_backward,
                             .vjp = conv_vjp,
                             .jvp = conv_jvp};
const ag_op ag__op_unfold = {.name = "unfold",
                             .arity = 1,
                             .params_size = sizeof(conv_params),
                             .forward = unfold_forward,
                             .backward = unfold_backward,
                             .vjp = unfold_fold_vjp,
                             .jvp = unfold_fold_jvp};
const ag_op ag__op_fold = {.name = "fold",
                           .arity = 1,
                           .params_size = sizeof(conv_params),
                           .forward = fold_forward,
                           .backward = fold_backward,
                           .vjp = unfold_fold_vjp,
                           .jvp = unfold_fold_jvp};
