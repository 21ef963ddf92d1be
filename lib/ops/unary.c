/* unary.c: elementwise math of one tensor: neg, exp, log, sqrt, abs, pow,
 * scale and shift, each forward beside its derivative, plus the shared front
 * (ag__unary) that the activations use too. An elementwise op's Jacobian is
 * diagonal, y' = f'(x), so its VJP (dx = g f'(x)) and its JVP (ty = tx
 * f'(x)) are one rule, written once in ops (derivative_times) for graphs of
 * gradients and tangents, and once as a fast kernel (unary_backward). */
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
    ag_scalar_params p = {scalar};
    return ag__apply(func, a, op, 1, &x, x->dtype, x->ndim, x->shape, &p);
}

enum { NEG, EXP, LOG, SQRT, ABS, POW, SCALE, SHIFT };

/* Elements [lo, hi) of the forward. */
AG_KERNEL static void unary_forward_range(void *out_ptr, int64_t lo, int64_t hi)
{
    const ag_tensor *out = out_ptr;
    int kind = out->op->kind;
    int64_t n = hi - lo;
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *restrict x = (const real *)out->inputs[0]->data + lo;
        real *restrict y = (real *)out->data + lo;
        const real s = (real)AG_PARAMS(out, ag_scalar_params)->scalar;
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
}

/* Each element is computed alone, so a split over the threads
 * (ag__parallel_for, when large) gives the same bits as one loop. */
static int unary_forward(ag_tensor *out)
{
    ag__parallel_for(out->numel, unary_forward_range, out);
    return 0;
}

/* The backward's work: out, and its input's gradient buffer. */
typedef struct {
    const ag_tensor *out;
    void *dx;
    bool set; /* store into dx (unwritten) rather than add */
} backward_job;

/* Elements [lo, hi) of the backward. */
AG_KERNEL static void unary_backward_range(void *job_ptr, int64_t lo,
                                           int64_t hi)
{
    const backward_job *job = job_ptr;
    const ag_tensor *out = job->out;
    int kind = out->op->kind;
    int64_t n = hi - lo;
    bool set = job->set;
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *restrict x = (const real *)out->inputs[0]->data + lo;
        const real *restrict y = (const real *)out->data + lo;
        const real *restrict g = (const real *)out->grad->data + lo;
        real *restrict dx = (real *)job->dx + lo;
        const real s = (real)AG_PARAMS(out, ag_scalar_params)->scalar;
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
}

static int unary_backward(ag_tensor *out)
{
    backward_job job = {out, NULL, false};
    job.dx = ag__grad_begin(out->inputs[0], &job.set);
    ag__parallel_for(out->numel, unary_backward_range, &job);
    return 0;
}

/* sign(x) as a tensor without history: -1, 0 or 1. */
static ag_tensor *sign_of(ag_arena *a, const ag_tensor *x)
{
    ag_tensor *s = ag__constant(a, x);
    if (s)
        AG_DISPATCH_FLOAT(x->dtype, {
            const real *xv = x->data;
            real *sv = s->data;
            for (int64_t i = 0; i < x->numel; i++)
                sv[i] = (real)((xv[i] > 0) - (xv[i] < 0));
        });
    return s;
}

/* v * f'(x) in ops, the rule of unary_backward for any v (g or tx). */
static ag_tensor *derivative_times(ag_arena *a, ag_tensor *out, ag_tensor *v)
{
    ag_tensor *x = out->inputs[0];
    double s = AG_PARAMS(out, ag_scalar_params)->scalar;
    switch (out->op->kind) {
    case NEG: /* -v */
        return ag_neg(a, v);
    case EXP: /* v * y */
        return ag_mul(a, v, out);
    case LOG: /* v / x */
        return ag_div(a, v, x);
    case SQRT: /* v * 0.5 / y */
        return ag_div(a, ag_scale(a, v, 0.5), out);
    case ABS: /* v * sign(x) */
        return ag_mul(a, v, sign_of(a, x));
    case POW: /* v * p * x^(p-1); 0 for p = 0 */
        return s == 0 ? ag_scale(a, v, 0)
                      : ag_mul(a, v, ag_scale(a, ag_pow(a, x, s - 1), s));
    case SCALE: /* v * s */
        return ag_scale(a, v, s);
    default: /* SHIFT: v */
        return v;
    }
}

static int unary_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g,
                     const bool *want, ag_tensor **dx)
{
    AG_TRY(dx[0] = derivative_times(a, out, g));
    return 0;
}

static int unary_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *tx,
                     ag_tensor **ty)
{
    AG_TRY(*ty = derivative_times(a, out, tx[0]));
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

/* The op-table entries. */
#define UNARY_OP(op_name, op_kind)                                             \
    {                                                                          \
        .name = op_name, .arity = 1, .kind = op_kind,                          \
        .params_size = sizeof(ag_scalar_params), .forward = unary_forward,     \
        .backward = unary_backward, .vjp = unary_vjp, .jvp = unary_jvp         \
    }
const ag_op ag__op_neg = UNARY_OP("neg", NEG);
const ag_op ag__op_exp = UNARY_OP("exp", EXP);
const ag_op ag__op_log = UNARY_OP("log", LOG);
const ag_op ag__op_sqrt = UNARY_OP("sqrt", SQRT);
const ag_op ag__op_abs = UNARY_OP("abs", ABS);
const ag_op ag__op_pow = UNARY_OP("pow", POW);
const ag_op ag__op_scale = UNARY_OP("scale", SCALE);
const ag_op ag__op_shift = UNARY_OP("shift", SHIFT);
