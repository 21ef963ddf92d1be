/* loss.c: the mean squared error loss (softmax-cross-entropy lives with
 * softmax in softmax.c, whose kernel it shares). */
#include "../internal.h"

/* loss = 1/n sum_i (p_i - t_i)^2, accumulated in double */
static int mse_forward(ag_tensor *out)
{
    const ag_tensor *pred = out->inputs[0], *target = out->inputs[1];
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *p = pred->data, *t = target->data;
        double sum = 0;
        for (int64_t i = 0; i < pred->numel; i++) {
            double d = (double)p[i] - (double)t[i];
            sum += d * d;
        }
        *(real *)out->data = (real)(sum / (double)pred->numel);
    });
    return 0;
}

/* dp_i = g * 2 (p_i - t_i) / n,  dt_i = -dp_i */
static int mse_backward(ag_tensor *out)
{
    ag_tensor *pred = out->inputs[0], *target = out->inputs[1];
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *p = pred->data, *t = target->data;
        real scale = 2 * *(const real *)out->grad->data / (real)pred->numel;
        real *dp = pred->requires_grad ? ag__grad_accumulate(pred) : NULL;
        real *dt = target->requires_grad ? ag__grad_accumulate(target) : NULL;
        for (int64_t i = 0; i < pred->numel; i++) {
            real d = scale * (p[i] - t[i]);
            if (dp) dp[i] += d;
            if (dt) dt[i] -= d;
        }
    });
    return 0;
}

/* In ops, with d = 2 (p - t) / n:
 *   dp = g d          dt = -g d          t_loss = sum(d (tp - tt)) */
static ag_tensor *scaled_difference(ag_arena *a, ag_tensor *out)
{
    ag_tensor *pred = out->inputs[0], *target = out->inputs[1];
    return ag_scale(a, ag_sub(a, pred, target), 2.0 / (double)pred->numel);
}

static int mse_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g, const bool *want,
                   ag_tensor **dx)
{
    ag_tensor *d;
    AG_TRY(d = ag_mul(a, scaled_difference(a, out), g));
    if (want[0]) dx[0] = d;
    if (want[1]) AG_TRY(dx[1] = ag_neg(a, d));
    return 0;
}

static int mse_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *tx,
                   ag_tensor **ty)
{
    AG_TRY(*ty = ag_sum(a,
                        ag_mul(a, scaled_difference(a, out),
                               ag__sub_or(a, tx[0], tx[1])),
                        AG_ALL, false));
    return 0;
}

ag_tensor *ag_mse_loss(ag_arena *a, ag_tensor *pred, ag_tensor *target)
{
    const char *func = "ag_mse_loss";
    ag_tensor *inputs[2] = {pred, target};
    if (ag__check_float_inputs(func, a, 2, inputs)) return NULL;
    char bp[AG_SHAPE_STR_MAX], bt[AG_SHAPE_STR_MAX];
    if (pred->ndim != target->ndim ||
        memcmp(pred->shape, target->shape,
               (size_t)pred->ndim * sizeof pred->shape[0])) {
        ag__error(func, "pred %s and target %s must have the same shape",
                  ag__shape_str(bp, pred->ndim, pred->shape),
                  ag__shape_str(bt, target->ndim, target->shape));
        return NULL;
    }
    if (pred->numel == 0) {
        ag__error(func, "pred %s has no elements",
                  ag__shape_str(bp, pred->ndim, pred->shape));
        return NULL;
    }
    return ag__apply(func, a, &ag__op_mse_loss, 2, inputs, pred->dtype, 0, NULL,
                     NULL);
}

/* The op-table entry. */
const ag_op ag__op_mse_loss = {.name = "mse_loss",
                               .arity = 2,
                               .forward = mse_forward,
                               .backward = mse_backward,
                               .vjp = mse_vjp,
                               .jvp = mse_jvp};
