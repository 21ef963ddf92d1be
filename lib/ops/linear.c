/* linear.c: the affine map of a Linear layer, y = x W^T + b, as one op.
 * Shapes: x is (M, in) after merging its leading dimensions, W (out, in),
 * b (out), y (M, out). The product is one BLAS call with W's transpose as a
 * flag; the bias is written into y first and the product added onto it
 * (beta = 1), so no pass is spent on the addition. */
#include "../internal.h"
/* Rows of x: the product of all dimensions but the last. */
static int64_t leading_rows(const ag_tensor *x)
{
    int64_t m = 1;
    for (int d = 0; d < x->ndim - 1; d++) m *= x->shape[d];
    return m;
}

static int linear_forward(ag_tensor *out)
{
    const ag_tensor *x = out->inputs[0], *w = out->inputs[1];
    const ag_tensor *b = out->n_inputs == 3 ? out->inputs[2] : NULL;
    int64_t m = leading_rows(x), in = w->shape[1], n = w->shape[0];
    size_t row_bytes = (size_t)n * ag__dtype_size(out->dtype);
    for (int64_t r = 0; b && r < m; r++) /* y = b, then y += x W^T */
        memcpy((char *)out->data + r * row_bytes, b->data, row_bytes);
    ag__gemm(out->dtype, false, true, m, n, in, x->data, w->data, b ? 1.0 : 0.0,
             out->data); /* without a bias, y = x W^T stored (beta 0) */
    return 0;
}

/* dx (+)= dy W       (M,out) @ (out,in)
 * dW (+)= dy^T x     (out,M) @ (M,in)
 * db += sum_rows dy
 * each product stored by BLAS (beta = 0) into an unwritten buffer. */
static int linear_backward(ag_tensor *out)
{
    ag_tensor *x = out->inputs[0], *w = out->inputs[1];
    ag_tensor *b = out->n_inputs == 3 ? out->inputs[2] : NULL;
    int64_t m = leading_rows(x), in = w->shape[1], n = w->shape[0];
    const void *dy = out->grad->data;
    bool set;
    if (x->requires_grad) {
        void *dx = ag__grad_begin(x, &set);
        ag__gemm(out->dtype, false, false, m, in, n, dy, w->data, !set, dx);
    }
    if (w->requires_grad) {
        void *dw = ag__grad_begin(w, &set);
        ag__gemm(out->dtype, true, false, n, in, m, dy, x->data, !set, dw);
    }
    if (b && b->requires_grad) {
        void *db_data = ag__grad_accumulate(b);
        AG_DISPATCH_FLOAT(out->dtype, {
            const real *g = dy;
            real *restrict db = db_data;
            for (int64_t r = 0; r < m; r++)
                for (int64_t j = 0; j < n; j++) db[j] += g[r * n + j];
        });
    }
    return 0;
}

/* The same in ops, on x and g seen as matrices (M, in) and (M, out):
 *   dx = g W      dW = g^T x      db = sum_rows g
 *   ty = tx W^T + x tW^T + tb */
static int linear_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g,
                      const bool *want, ag_tensor **dx)
{
    ag_tensor *x = out->inputs[0], *w = out->inputs[1];
    int64_t rows = leading_rows(x), in = w->shape[1], n = w->shape[0];
    ag_tensor *g2 = ag_reshape(a, g, 2, (int64_t[]){rows, n});
    if (want[0])
        AG_TRY(dx[0] = ag_reshape(a, ag_matmul(a, g2, w), x->ndim, x->shape));
    if (want[1])
        AG_TRY(dx[1] = ag__matmul_t(a, g2,
                                    ag_reshape(a, x, 2, (int64_t[]){rows, in}),
                                    true, false));
    if (out->n_inputs == 3 && want[2]) AG_TRY(dx[2] = ag_sum(a, g2, 0, false));
    return 0;
}

static int linear_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *t,
                      ag_tensor **ty)
{
    ag_tensor *x = out->inputs[0], *w = out->inputs[1];
    ag_tensor *r = ag__add_or(a, t[0] ? ag_linear(a, t[0], w, NULL) : NULL,
                              t[1] ? ag_linear(a, x, t[1], NULL) : NULL);
    if (out->n_inputs == 3) r = ag__add_or(a, r, t[2]);
    AG_TRY(*ty = ag__expand_to(a, r, out->ndim, out->shape));
    return 0;
}

ag_tensor *ag_linear(ag_arena *a, ag_tensor *x, ag_tensor *weight,
                     ag_tensor *bias)
{
    const char *func = "ag_linear";
    ag_tensor *inputs[3] = {x, weight, bias};
    int n = bias ? 3 : 2;
    if (ag__check_float_inputs(func, a, n, inputs)) return NULL;
    char bx[AG_SHAPE_STR_MAX], bw[AG_SHAPE_STR_MAX], bb[AG_SHAPE_STR_MAX];
#define X_SHAPE ag__shape_str(bx, x->ndim, x->shape)
#define W_SHAPE ag__shape_str(bw, weight->ndim, weight->shape)
    if (x->ndim < 1 || weight->ndim != 2 ||
        weight->shape[1] != x->shape[x->ndim - 1]) {
        ag__error(func,
                  "x %s and weight %s do not match: x must be (..., in) "
                  "and weight (out, in)",
                  X_SHAPE, W_SHAPE);
        return NULL;
    }
    int64_t out_features = weight->shape[0];
    if (bias && (bias->ndim != 1 || bias->shape[0] != out_features)) {
        ag__error(func, "bias %s does not match weight %s: it must be (%lld)",
                  ag__shape_str(bb, bias->ndim, bias->shape), W_SHAPE,
                  (long long)out_features);
        return NULL;
    }
    if (leading_rows(x) > INT_MAX || weight->shape[1] > INT_MAX ||
        out_features > INT_MAX) {
        ag__error(func, "%s @ %s^T exceeds the BLAS limit %d", X_SHAPE, W_SHAPE,
                  INT_MAX);
        return NULL;
    }
#undef X_SHAPE
#undef W_SHAPE
    int64_t shape[AG_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = out_features;
    return ag__apply(func, a, bias ? &ag__op_linear : &ag__op_linear_no_bias, n,
                     inputs, x->dtype, x->ndim, shape, NULL);
}

/* The op-table entries. */
const ag_op ag__op_linear = {.name = "linear",
                             .arity = 3,
                             .forward = linear_forward,
                             .backward = linear_backward,
                             .vjp = linear_vjp,
                             .jvp = linear_jvp};
const ag_op ag__op_linear_no_bias = {.name = "linear_no_bias",
                                     .arity = 2,
                                     .forward = linear_forward,
                                     .backward = linear_backward,
                                     .vjp = linear_vjp,
                                     .jvp = linear_jvp};
