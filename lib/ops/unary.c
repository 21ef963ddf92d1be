/* unary.c: elementwise math of one tensor: neg, exp, log, sqrt, abs, pow,
 * scale and shift, each forward beside its derivative, plus the shared front
 * (ag__unary) that the activations use too. */
#include "../internal.h"

#include <tgmath.h>

ag_tensor *ag__unary(const char *func, const ag_op *op, ag_arena *a,
                     ag_tensor *x, double scalar)
{
    if (ag__check_float_inputs(func, a, 1, &x)) return NULL;
    if (!isfinite(scalar)) {
        ag__error(func, "the scalar must be finite, got %g", scalar);
        return NULL;
    }
    ag_op_args args = {.scalar = scalar};
    return ag__apply(func, a, op, &x, x->dtype, x->ndim, x->shape, &args);
}

enum { NEG, EXP, LOG, SQRT, ABS, POW, SCALE, SHIFT };

static int unary_forward(ag_tensor *out)
{
    int kind = out->op->kind;
    int64_t n = out->numel;
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *restrict x = out->inputs[0]->data;
        real *restrict y = out->data;
        const real s = (real)out->args.scalar;
        switch (kind) {
        case NEG:
            for (int64_t i = 0; i < n; i++) y[i] = -x[i];
            break;
        case EXP:
            for (int64_t i = 0; i < n; i++) y[i] = exp(x[i]);
            break;
        case LOG:
            for (int64_t i = 0; i < n; i++) y[i] = log(x[i]);
            break;
        case SQRT:
            for (int64_t i = 0; i < n; i++) y[i] = sqrt(x[i]);
            break;
        case ABS:
            for (int64_t i = 0; i < n; i++) y[i] = fabs(x[i]);
            break;
        case POW:
            for (int64_t i = 0; i < n; i++) y[i] = pow(x[i], s);
            break;
        case SCALE:
            for (int64_t i = 0; i < n; i++) y[i] = s * x[i];
            break;
        case SHIFT:
            for (int64_t i = 0; i < n; i++) y[i] = x[i] + s;
            break;
        }
    });
    return 0;
}

static int unary_backward(ag_tensor *out)
{
    int kind = out->op->kind;
    int64_t n = out->numel;
    bool set;
    void *dx_data = ag__grad_begin(out->inputs[0], &set);
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *restrict x = out->inputs[0]->data, *restrict y = out->data;
        const real *restrict g = out->grad->data;
        real *restrict dx = dx_data;
        const real s = (real)out->args.scalar;
        switch (kind) {
        case NEG: /* dx = -g */
            AG_GRAD_LOOP(set, n, dx, -g[i]);
            break;
        case EXP: /* dx = g * e^x = g * y */
            AG_GRAD_LOOP(set, n, dx, g[i] * y[i]);
            break;
        case LOG: /* dx = g / x */
            AG_GRAD_LOOP(set, n, dx, g[i] / x[i]);
            break;
        case SQRT: /* dx = g / (2 sqrt x) = g * 0.5 / y */
            AG_GRAD_LOOP(set, n, dx, g[i] * (real)0.5 / y[i]);
            break;
        case ABS: /* dx = g * sign(x), 0 at x = 0 */
            AG_GRAD_LOOP(
                set, n, dx,
                AG_SELECT(x[i] > 0, g[i], AG_SELECT(x[i] < 0, -g[i], (real)0)));
            break;
        case POW: /* dx = g * p * x^(p-1); 0 for p = 0, even at x = 0 */
            AG_GRAD_LOOP(set, n, dx, s == 0 ? 0 : g[i] * s * pow(x[i], s - 1));
            break;
        case SCALE: /* dx = g * s */
            AG_GRAD_LOOP(set, n, dx, g[i] * s);
            break;
        case SHIFT: /* dx = g */
            AG_GRAD_LOOP(set, n, dx, g[i]);
            break;
        }
    });
    return 0;
}

ag_tensor *ag_neg(ag_arena *a, ag_tensor *x)
{
    return ag__unary("ag_neg", &ag__op_neg, a, x, 0);
}

ag_tensor *ag_exp(ag_arena *a, ag_tensor *x)
{
    return ag__unary("ag_exp", &ag__op_exp, a, x, 0);
}

ag_tensor *ag_log(ag_arena *a, ag_tensor *x)
{
    return ag__unary("ag_log", &ag__op_log, a, x, 0);
}

ag_tensor *ag_sqrt(ag_arena *a, ag_tensor *x)
{
    return ag__unary("ag_sqrt", &ag__op_sqrt, a, x, 0);
}

ag_tensor *ag_abs(ag_arena *a, ag_tensor *x)
{
    return ag__unary("ag_abs", &ag__op_abs, a, x, 0);
}

ag_tensor *ag_pow(ag_arena *a, ag_tensor *x, double p)
{
    return ag__unary("ag_pow", &ag__op_pow, a, x, p);
}

ag_tensor *ag_scale(ag_arena *a, ag_tensor *x, double s)
{
    return ag__unary("ag_scale", &ag__op_scale, a, x, s);
}

ag_tensor *ag_shift(ag_arena *a, ag_tensor *x, double s)
{
    return ag__unary("ag_shift", &ag__op_shift, a, x, s);
}

/* The op-table entries: {name, arity, view, kind, forward, backward}. */
/* clang-format off */
const ag_op ag__op_neg =
    {"neg", 1, false, NEG, unary_forward, unary_backward};
const ag_op ag__op_exp =
    {"exp", 1, false, EXP, unary_forward, unary_backward};
const ag_op ag__op_log =
    {"log", 1, false, LOG, unary_forward, unary_backward};
const ag_op ag__op_sqrt =
    {"sqrt", 1, false, SQRT, unary_forward, unary_backward};
const ag_op ag__op_abs =
    {"abs", 1, false, ABS, unary_forward, unary_backward};
const ag_op ag__op_pow =
    {"pow", 1, false, POW, unary_forward, unary_backward};
const ag_op ag__op_scale =
    {"scale", 1, false, SCALE, unary_forward, unary_backward};
const ag_op ag__op_shift =
    {"shift", 1, false, SHIFT, unary_forward, unary_backward};
/* clang-format on */
