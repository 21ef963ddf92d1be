/* loss.c: the losses that compare a prediction with a target of the same
 * shape, elementwise, averaged over every element: mean squared error, and
 * (one family, below) binary cross-entropy with logits, L1 and Huber.
 * Softmax cross-entropy and cross-entropy live with softmax in softmax.c,
 * whose kernel they share. */
#include "../internal.h"

#include <math.h>
#include <tgmath.h>

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

/* Checks the two inputs of an elementwise loss: floats of one dtype and
 * one shape, with at least one element. */
static int check_pair(const char *func, ag_arena *a, ag_tensor *const *inputs)
{
    if (ag__check_float_inputs(func, a, 2, inputs)) return -1;
    const ag_tensor *pred = inputs[0], *target = inputs[1];
    char bp[AG_SHAPE_STR_MAX], bt[AG_SHAPE_STR_MAX];
    if (pred->ndim != target->ndim ||
        memcmp(pred->shape, target->shape,
               (size_t)pred->ndim * sizeof pred->shape[0])) {
        ag__error(func, "pred %s and target %s must have the same shape",
                  ag__shape_str(bp, pred->ndim, pred->shape),
                  ag__shape_str(bt, target->ndim, target->shape));
        return -1;
    }
    if (pred->numel == 0) {
        ag__error(func, "pred %s has no elements",
                  ag__shape_str(bp, pred->ndim, pred->shape));
        return -1;
    }
    return 0;
}

ag_tensor *ag_mse_loss(ag_arena *a, ag_tensor *pred, ag_tensor *target)
{
    const char *func = "ag_mse_loss";
    ag_tensor *inputs[2] = {pred, target};
    if (check_pair(func, a, inputs)) return NULL;
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

/* ---- binary cross-entropy with logits, L1 and Huber ----
 *
 * One family: loss = 1/n sum_i f(p_i, t_i), with n elements, and the
 * gradients dp_i = g fp(p_i, t_i) / n, dt_i = g ft(p_i, t_i) / n. With
 * d = p - t:
 *   BCE with logits (p = x the logits): f = max(x, 0) - x t + log(1 + e^-|x|)
 *                   fp = sigmoid(x) - t,  ft = -x
 *   L1:             f = |d|,  fp = sign(d) (0 at 0, as PyTorch),  ft = -fp
 *   Huber:          f = d^2 / 2 for |d| < delta, else delta (|d| - delta/2)
 *                   fp = clamp(d, -delta, delta),  ft = -fp
 * The jvp is t_loss = sum(fp tp + ft tt) / n. */

enum { BCE_WITH_LOGITS, L1_LOSS, HUBER_LOSS };

typedef struct {
    double delta; /* Huber's */
} pair_loss_params;

static int pair_loss_forward(ag_tensor *out)
{
    const ag_tensor *pred = out->inputs[0], *target = out->inputs[1];
    const int64_t n = pred->numel;
    const double delta = AG_PARAMS(out, pair_loss_params)->delta;
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *p = pred->data, *t = target->data;
        double sum = 0;
        switch (out->op->kind) {
        case BCE_WITH_LOGITS:
            for (int64_t i = 0; i < n; i++)
                sum += (double)((p[i] > 0 ? p[i] : 0) - p[i] * t[i] +
                                log1p(exp(-fabs(p[i]))));
            break;
        case L1_LOSS:
            for (int64_t i = 0; i < n; i++) sum += fabs((double)(p[i] - t[i]));
            break;
        default: /* HUBER_LOSS */
            for (int64_t i = 0; i < n; i++) {
                double z = fabs((double)p[i] - (double)t[i]);
                sum += z < delta ? 0.5 * z * z : delta * (z - 0.5 * delta);
            }
        }
        *(real *)out->data = (real)(sum / (double)n);
    });
    return 0;
}

/* sign(d), 0 at 0, and clamp(d, -delta, delta), as vector selects */
#define PAIR_SIGN(d) ((real)((d) > 0) - (real)((d) < 0))
#define PAIR_CLAMP(d, delta)                                                   \
    AG_SELECT((d) < -(delta), -(delta), AG_SELECT((d) > (delta), (delta), (d)))

/* dp = g fp / n, dt = g ft / n */
static int pair_loss_backward(ag_tensor *out)
{
    ag_tensor *pred = out->inputs[0], *target = out->inputs[1];
    const int64_t n = pred->numel;
    int kind = out->op->kind;
    bool set_p = false, set_t = false;
    void *dp_data = pred->requires_grad ? ag__grad_begin(pred, &set_p) : NULL;
    void *dt_data =
        target->requires_grad ? ag__grad_begin(target, &set_t) : NULL;
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *p = pred->data, *t = target->data;
        const real s = *(const real *)out->grad->data / (real)n;
        const real delta = (real)AG_PARAMS(out, pair_loss_params)->delta;
        real *dp = dp_data, *dt = dt_data;
        if (kind == BCE_WITH_LOGITS) {
            /* sigmoid(x) in the form that never overflows */
            if (dp)
                AG_GRAD_LOOP(
                    set_p, n, dp,
                    s * (AG_SELECT(p[i] >= 0, 1 / (1 + exp(-fabs(p[i]))),
                                   exp(-fabs(p[i])) / (1 + exp(-fabs(p[i])))) -
                         t[i]));
            if (dt) AG_GRAD_LOOP(set_t, n, dt, -s * p[i]);
        } else if (kind == L1_LOSS) { /* fp = sign(d) */
            if (dp) AG_GRAD_LOOP(set_p, n, dp, s * PAIR_SIGN(p[i] - t[i]));
            if (dt) AG_GRAD_LOOP(set_t, n, dt, -s * PAIR_SIGN(p[i] - t[i]));
        } else { /* fp = clamp(d, -delta, delta) */
            if (dp)
                AG_GRAD_LOOP(set_p, n, dp, s * PAIR_CLAMP(p[i] - t[i], delta));
            if (dt)
                AG_GRAD_LOOP(set_t, n, dt, -s * PAIR_CLAMP(p[i] - t[i], delta));
        }
    });
    return 0;
}

/* fp and ft (above) as tensors: in ops where they depend smoothly on the
 * inputs (BCE's sigmoid(x) - t and -x, Huber's d inside the band), as
 * constants where they are piecewise constant (L1's sign, Huber's +-delta
 * outside the band). */
static int pair_loss_partials(ag_arena *a, const ag_tensor *out, ag_tensor **fp,
                              ag_tensor **ft)
{
    ag_tensor *pred = out->inputs[0], *target = out->inputs[1];
    if (out->op->kind == BCE_WITH_LOGITS) {
        AG_TRY(*fp = ag_sub(a, ag_sigmoid(a, pred), target));
        AG_TRY(*ft = ag_neg(a, pred));
        return 0;
    }
    double delta = AG_PARAMS(out, pair_loss_params)->delta;
    bool l1 = out->op->kind == L1_LOSS;
    /* fp = d inside + outside, with the constants inside = (|d| < delta)
     * and outside = sign(d) for L1 (no inside), (|d| >= delta) delta
     * sign(d) for Huber */
    ag_tensor *inside, *outside;
    AG_TRY(inside = ag__constant(a, pred));
    AG_TRY(outside = ag__constant(a, pred));
    AG_DISPATCH_FLOAT(pred->dtype, {
        const real *p = pred->data, *t = target->data;
        real *in = inside->data, *o = outside->data;
        for (int64_t i = 0; i < pred->numel; i++) {
            real d = p[i] - t[i];
            real sign = (real)(d > 0) - (real)(d < 0);
            bool band = !l1 && fabs(d) < delta;
            in[i] = band ? 1 : 0;
            o[i] = band ? 0 : l1 ? sign : (real)delta * sign;
        }
    });
    if (l1)
        *fp = outside;
    else
        AG_TRY(*fp = ag_add(a, ag_mul(a, ag_sub(a, pred, target), inside),
                            outside));
    AG_TRY(*ft = ag_neg(a, *fp));
    return 0;
}

/* vjp: dp = g fp / n, dt = g ft / n */
static int pair_loss_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g,
                         const bool *want, ag_tensor **dx)
{
    ag_tensor *f[2];
    if (pair_loss_partials(a, out, &f[0], &f[1])) return -1;
    double inv_n = 1.0 / (double)out->inputs[0]->numel;
    for (int i = 0; i < 2; i++)
        if (want[i]) AG_TRY(dx[i] = ag_mul(a, ag_scale(a, f[i], inv_n), g));
    return 0;
}

/* jvp: t_loss = sum(fp tp + ft tt) / n */
static int pair_loss_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *tx,
                         ag_tensor **ty)
{
    ag_tensor *f[2];
    if (pair_loss_partials(a, out, &f[0], &f[1])) return -1;
    ag_tensor *t =
        ag__add_or(a, ag__mul_or(a, f[0], tx[0]), ag__mul_or(a, f[1], tx[1]));
    AG_TRY(*ty = ag_scale(a, ag_sum(a, t, AG_ALL, false),
                          1.0 / (double)out->inputs[0]->numel));
    return 0;
}

static ag_tensor *pair_loss(const char *func, const ag_op *op, ag_arena *a,
                            ag_tensor *pred, ag_tensor *target, double delta)
{
    ag_tensor *inputs[2] = {pred, target};
    if (check_pair(func, a, inputs)) return NULL;
    if (op == &ag__op_huber_loss && (!(delta > 0) || !isfinite(delta))) {
        ag__error(func, "delta must be finite and > 0, got %g", delta);
        return NULL;
    }
    pair_loss_params p = {delta};
    return ag__apply(func, a, op, 2, inputs, pred->dtype, 0, NULL, &p);
}

ag_tensor *ag_binary_cross_entropy_with_logits(ag_arena *a, ag_tensor *logits,
                                               ag_tensor *targets)
{
    return pair_loss("ag_binary_cross_entropy_with_logits",
                     &ag__op_binary_cross_entropy_with_logits, a, logits,
                     targets, 0);
}

ag_tensor *ag_l1_loss(ag_arena *a, ag_tensor *pred, ag_tensor *target)
{
    return pair_loss("ag_l1_loss", &ag__op_l1_loss, a, pred, target, 0);
}

ag_tensor *ag_huber_loss(ag_arena *a, ag_tensor *pred, ag_tensor *target,
                         double delta)
{
    return pair_loss("ag_huber_loss", &ag__op_huber_loss, a, pred, target,
                     delta);
}

#define PAIR_LOSS_OP(op_name, op_kind)                                         \
    {                                                                          \
        .name = op_name, .arity = 2, .kind = op_kind,                          \
        .params_size = sizeof(pair_loss_params), .forward = pair_loss_forward, \
        .backward = pair_loss_backward, .vjp = pair_loss_vjp,                  \
        .jvp = pair_loss_jvp                                                   \
    }
const ag_op ag__op_binary_cross_entropy_with_logits =
    PAIR_LOSS_OP("binary_cross_entropy_with_logits", BCE_WITH_LOGITS);
const ag_op ag__op_l1_loss = PAIR_LOSS_OP("l1_loss", L1_LOSS);
const ag_op ag__op_huber_loss = PAIR_LOSS_OP("huber_loss", HUBER_LOSS);
