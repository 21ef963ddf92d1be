/* softmax.c: softmax and log_softmax over an axis, and the fused
 * softmax-cross-entropy loss built on the same stable kernel.
 *
 * Along the axis (viewed as (outer, len, inner), one column per (o, i)),
 * with m the column's maximum:
 *   softmax(x)_l     = e^(x_l - m) / sum_j e^(x_j - m)
 *   log_softmax(x)_l = x_l - m - log sum_j e^(x_j - m)
 * so no exponent is ever positive and logits of any size are safe. */
#include "../internal.h"

#include <tgmath.h>

enum { SOFTMAX, LOG_SOFTMAX };

/* Writes softmax (or log_softmax when take_log) of every column of x into y.
 * Both are (outer, len, inner) arrays of dtype dt. */
static void softmax_columns(ag_dtype dt, const void *xv, void *yv,
                            int64_t outer, int64_t len, int64_t inner,
                            bool take_log)
{
    AG_DISPATCH_FLOAT(dt, {
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                const real *x = (const real *)xv + o * len * inner + i;
                real *y = (real *)yv + o * len * inner + i;
                real m = -INFINITY;
                for (int64_t l = 0; l < len; l++)
                    if (x[l * inner] > m) m = x[l * inner];
                real sum = 0;
                for (int64_t l = 0; l < len; l++) {
                    y[l * inner] = exp(x[l * inner] - m);
                    sum += y[l * inner];
                }
                real log_sum = log(sum);
                for (int64_t l = 0; l < len; l++)
                    y[l * inner] = take_log ? x[l * inner] - m - log_sum
                                            : y[l * inner] / sum;
            }
    });
}

static int softmax_forward(ag_tensor *out)
{
    int64_t outer, len, inner;
    ag__split_axis(out, out->args.axis, &outer, &len, &inner);
    softmax_columns(out->dtype, out->inputs[0]->data, out->data, outer, len,
                    inner, out->op->kind == LOG_SOFTMAX);
    return 0;
}

/* softmax:     dx_l = y_l (g_l - sum_j g_j y_j)
 * log_softmax: dx_l = g_l - e^(y_l) sum_j g_j */
static int softmax_backward(ag_tensor *out)
{
    int64_t outer, len, inner;
    ag__split_axis(out, out->args.axis, &outer, &len, &inner);
    bool take_log = out->op->kind == LOG_SOFTMAX;
    void *dx_data = ag__grad_accumulate(out->inputs[0]);
    AG_DISPATCH_FLOAT(out->dtype, {
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t base = o * len * inner + i;
                const real *y = (const real *)out->data + base;
                const real *g = (const real *)out->grad->data + base;
                real *dx = (real *)dx_data + base;
                real s = 0;
                for (int64_t l = 0; l < len; l++)
                    s += take_log ? g[l * inner] : g[l * inner] * y[l * inner];
                for (int64_t l = 0; l < len; l++)
                    dx[l * inner] += take_log
                                         ? g[l * inner] - exp(y[l * inner]) * s
                                         : y[l * inner] * (g[l * inner] - s);
            }
    });
    return 0;
}

static ag_tensor *softmax_op(const char *func, const ag_op *op, ag_arena *a,
                             ag_tensor *x, int axis)
{
    if (ag__check_float_inputs(func, a, 1, &x)) return NULL;
    ag_op_args args = {0};
    if (ag__normalize_axis(func, axis, x, &args.axis)) return NULL;
    return ag__apply(func, a, op, &x, x->dtype, x->ndim, x->shape, &args);
}

ag_tensor *ag_softmax(ag_arena *a, ag_tensor *x, int axis)
{
    return softmax_op("ag_softmax", &ag__op_softmax, a, x, axis);
}

ag_tensor *ag_log_softmax(ag_arena *a, ag_tensor *x, int axis)
{
    return softmax_op("ag_log_softmax", &ag__op_log_softmax, a, x, axis);
}

/* The copy of the targets inside out->saved, after the log-probabilities. */
static int32_t *saved_targets(const ag_tensor *out)
{
    return (int32_t *)((char *)out->saved + ag__tensor_bytes(out->inputs[0]));
}

/* Softmax cross-entropy. logits (N, C), targets (N) int32. saved holds
 * log_softmax(logits), (N, C), then a copy of the checked targets, so that a
 * later change to the targets' values cannot reach the backward.
 *   loss = -1/N sum_n logp[n, t_n] */
static int cross_entropy_forward(ag_tensor *out)
{
    const ag_tensor *logits = out->inputs[0], *targets = out->inputs[1];
    int64_t N = logits->shape[0], C = logits->shape[1];
    void *logp = ag__arena_alloc(
        out->arena, ag__tensor_bytes(logits) + ag__tensor_bytes(targets), 64);
    if (!logp) {
        ag__error("ag_softmax_cross_entropy", "out of memory");
        return -1;
    }
    out->saved = logp;
    int32_t *t = saved_targets(out);
    memcpy(t, targets->data, ag__tensor_bytes(targets));
    softmax_columns(out->dtype, logits->data, logp, N, C, 1, true);
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *lp = logp;
        double loss = 0;
        for (int64_t n = 0; n < N; n++) loss -= lp[n * C + t[n]];
        *(real *)out->data = (real)(loss / (double)N);
    });
    return 0;
}

/* dlogits[n, c] = g * (e^(logp[n, c]) - [c == t_n]) / N */
static int cross_entropy_backward(ag_tensor *out)
{
    ag_tensor *logits = out->inputs[0];
    int64_t N = logits->shape[0], C = logits->shape[1];
    const int32_t *t = saved_targets(out);
    bool set;
    void *dx_data = ag__grad_begin(out->inputs[0], &set);
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *lp = out->saved;
        real *dx = dx_data;
        const real scale = *(const real *)out->grad->data / (real)N;
        for (int64_t n = 0; n < N; n++) {
            real *restrict row = dx + n * C;
            const real *restrict lp_row = lp + n * C;
            AG_GRAD_LOOP(set, C, row, scale * exp(lp_row[i]));
            row[t[n]] -= scale;
        }
    });
    return 0;
}

/* Checks the targets: AG_I32, shape (N), every class in [0, C). */
static int check_targets(const char *func, const ag_tensor *logits,
                         const ag_tensor *targets)
{
    char bl[AG_SHAPE_STR_MAX], bt[AG_SHAPE_STR_MAX];
    if (targets->dtype != AG_I32) {
        ag__error(func, "targets must be i32 class indices, got %s %s",
                  ag_dtype_name(targets->dtype),
                  ag__shape_str(bt, targets->ndim, targets->shape));
        return -1;
    }
    int64_t N = logits->shape[0], C = logits->shape[1];
    if (targets->ndim != 1 || targets->shape[0] != N) {
        ag__error(func, "targets %s must have shape (%lld) for logits %s",
                  ag__shape_str(bt, targets->ndim, targets->shape),
                  (long long)N, ag__shape_str(bl, logits->ndim, logits->shape));
        return -1;
    }
    const int32_t *t = targets->data;
    for (int64_t n = 0; n < N; n++)
        if (t[n] < 0 || t[n] >= C) {
            ag__error(func, "target %d at index %lld is out of [0, %lld)", t[n],
                      (long long)n, (long long)C);
            return -1;
        }
    return 0;
}

ag_tensor *ag_softmax_cross_entropy(ag_arena *a, ag_tensor *logits,
                                    ag_tensor *targets)
{
    const char *func = "ag_softmax_cross_entropy";
    if (ag__check_float_inputs(func, a, 1, &logits)) return NULL;
    if (!targets) {
        ag__null_input(func, 1);
        return NULL;
    }
    char bl[AG_SHAPE_STR_MAX];
    if (logits->ndim != 2) {
        ag__error(func, "logits must be 2-D (N,C), got %s",
                  ag__shape_str(bl, logits->ndim, logits->shape));
        return NULL;
    }
    if (logits->shape[0] == 0) {
        ag__error(func, "empty batch: logits %s",
                  ag__shape_str(bl, logits->ndim, logits->shape));
        return NULL;
    }
    if (check_targets(func, logits, targets)) return NULL;
    ag_tensor *inputs[2] = {logits, targets};
    return ag__apply(func, a, &ag__op_softmax_cross_entropy, inputs,
                     logits->dtype, 0, NULL, NULL);
}

/* The op-table entries: {name, arity, view, kind, forward, backward}. */
/* clang-format off */
const ag_op ag__op_softmax =
    {"softmax", 1, false, SOFTMAX, softmax_forward, softmax_backward};
const ag_op ag__op_log_softmax =
    {"log_softmax", 1, false, LOG_SOFTMAX, softmax_forward, softmax_backward};
const ag_op ag__op_softmax_cross_entropy =
    {"softmax_cross_entropy", 2, false, 0, cross_entropy_forward,
     cross_entropy_backward};
/* clang-format on */
