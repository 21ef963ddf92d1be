/* activation.c: the elementwise activations sigmoid, tanh, ReLU, GELU,
 * leaky ReLU, SiLU and softplus, and sin, cos and clamp, each forward
 * beside its derivative (in terms of the output y
 * where that is cheaper than the input x). As in unary.c, the VJP and the
 * JVP of each are one rule, v * f'(x), written once in ops
 * (derivative_times) and once as a fast kernel (backward_range).
 *
 * GELU's derivatives of every order are one more op, gelu_derivative of
 * order k, y = d^k/dx^k (x Phi(x)), whose own derivative is the op of order
 * k + 1: with phi the normal density (phi' = -x phi),
 *   k = 1:  Phi(x) + x phi(x)
 *   k >= 2: phi(x) P_k(x),  P_2 = 2 - x^2,  P_(k+1) = P_k' - x P_k
 * so gradients of GELU can be taken to any order (up to
 * GELU_MAX_ORDER). */
#include "../internal.h"

#include "fastmath.h"

#include <tgmath.h>

enum {
    SIGMOID,
    TANH,
    RELU,
    GELU,
    LEAKY_RELU,
    GELU_DERIVATIVE,
    SIN,
    COS,
    SILU,
    SOFTPLUS,
    CLAMP
};

/* softplus returns x itself above this, as PyTorch's (beta 1). */
#define SOFTPLUS_THRESHOLD 20

/* clamp's parameters: the bounds, either may be infinite. */
typedef struct {
    double lo, hi;
} clamp_params;

/* The highest derivative of GELU the library computes. */
#define GELU_MAX_ORDER 24

/* gelu_derivative's parameter: the order k >= 1. */
typedef struct {
    int order;
} gelu_derivative_params;

/* The coefficients c[0..k] of P_k (k >= 2), lowest degree first. */
static void gelu_polynomial(int k, double *c)
{
    for (int j = 0; j <= k; j++) c[j] = 0;
    c[0] = 2;
    c[2] = -1;
    for (int order = 2; order < k; order++) { /* P <- P' - x P */
        double next[GELU_MAX_ORDER + 2] = {0};
        for (int j = 1; j <= order; j++) next[j - 1] += j * c[j];
        for (int j = 0; j <= order; j++) next[j + 1] -= c[j];
        for (int j = 0; j <= order + 1; j++) c[j] = next[j];
    }
}

/* d^k/dx^k GELU at x, given P_k's coefficients c (unused for k = 1). */
static double gelu_derivative_at(double x, int k, const double *c)
{
    double pdf = exp(-x * x / 2) * 0.39894228040143267794; /* 1/sqrt(2 pi) */
    if (k == 1) return (1 + erf(x * 0.70710678118654752440)) / 2 + x * pdf;
    double p = 0;
    for (int j = k; j >= 0; j--) p = p * x + c[j];
    return pdf * p;
}

/* y[i] = d^k GELU (x[i]) for n elements. */
static void gelu_derivative_kernel(ag_dtype dt, const void *xv, void *yv,
                                   int64_t n, int k)
{
    double c[GELU_MAX_ORDER + 2];
    if (k >= 2) gelu_polynomial(k, c);
    AG_DISPATCH_FLOAT(dt, {
        const real *x = xv;
        real *y = yv;
        for (int64_t i = 0; i < n; i++)
            y[i] = (real)gelu_derivative_at((double)x[i], k, c);
    });
}

/* The standard normal CDF and density, for GELU. */
#define INV_SQRT_2PI 0.39894228040143267794 /* 1 / sqrt(2 pi) */
#define NORMAL_CDF(x) AG_NORMAL_CDF(x)      /* fastmath.h: vectorised for f32 */
#define NORMAL_PDF(x) (AG_EXP_NONPOS(-(x) * (x) / 2) * (real)INV_SQRT_2PI)

/* Elements [lo, hi) of the forward. */
AG_KERNEL static void forward_range(void *out_ptr, int64_t lo, int64_t hi)
{
    const ag_tensor *out = out_ptr;
    int kind = out->op->kind;
    int64_t n = hi - lo;
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *restrict x = (const real *)out->inputs[0]->data + lo;
        real *restrict y = (real *)out->data + lo;
        const real slope = kind == LEAKY_RELU
                               ? (real)AG_PARAMS(out, ag_scalar_params)->scalar
                               : 0;
        switch (kind) {
        case GELU_DERIVATIVE: /* y = d^k GELU(x) */
            gelu_derivative_kernel(
                out->dtype, x, y, n,
                AG_PARAMS(out, gelu_derivative_params)->order);
            break;
        case SIGMOID: /* y = 1 / (1 + e^-x), in a form that never overflows */
            for (int64_t i = 0; i < n; i++) { /* one division, selected */
                real e = AG_EXP_NONPOS(-fabs(x[i])), d = 1 / (1 + e);
                y[i] = x[i] >= 0 ? d : e * d;
            }
            break;
        case TANH:
            for (int64_t i = 0; i < n; i++) y[i] = AG_TANH(x[i]);
            break;
        case RELU:
            for (int64_t i = 0; i < n; i++)
                y[i] = x[i] < 0 ? 0 : x[i]; /* NaN stays */
            break;
        case GELU: /* y = x * Phi(x) */
            for (int64_t i = 0; i < n; i++) y[i] = x[i] * NORMAL_CDF(x[i]);
            break;
        case LEAKY_RELU: /* y = x for x > 0, slope * x otherwise */
            for (int64_t i = 0; i < n; i++)
                y[i] = x[i] > 0 ? x[i] : slope * x[i];
            break;
        case SIN: /* y = sin x */
            for (int64_t i = 0; i < n; i++) y[i] = sin(x[i]);
            break;
        case COS: /* y = cos x */
            for (int64_t i = 0; i < n; i++) y[i] = cos(x[i]);
            break;
        case SILU: /* y = x sigmoid(x) = x / (1 + e^-x) */
            for (int64_t i = 0; i < n; i++) y[i] = x[i] / (1 + exp(-x[i]));
            break;
        case SOFTPLUS: /* y = log(1 + e^x), x itself above the threshold */
            for (int64_t i = 0; i < n; i++)
                y[i] = x[i] > SOFTPLUS_THRESHOLD ? x[i] : log1p(exp(x[i]));
            break;
        case CLAMP: { /* y = min(max(x, lo), hi), NaN stays */
            const clamp_params *p = AG_PARAMS(out, clamp_params);
            const real low = (real)p->lo, high = (real)p->hi;
            for (int64_t i = 0; i < n; i++) {
                real t = x[i] < low ? low : x[i];
                y[i] = t > high ? high : t;
            }
            break;
        }
        }
    });
}

static int activation_forward(ag_tensor *out)
{
    ag__parallel_for(out->numel, forward_range, out);
    return 0;
}

/* The backward's work: out, and its input's gradient buffer. */
typedef struct {
    const ag_tensor *out;
    void *dx;
    bool set; /* store into dx (unwritten) rather than add */
} backward_job;

/* Elements [lo, hi) of the backward. */
AG_KERNEL static void backward_range(void *job_ptr, int64_t lo, int64_t hi)
{
    const backward_job *job = job_ptr;
    const ag_tensor *out = job->out;
    int kind = out->op->kind;
    int64_t n = hi - lo;
    bool set = job->set;
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *restrict y = (const real *)out->data + lo;
        const real *restrict g = (const real *)out->grad->data + lo;
        const real *restrict x = (const real *)out->inputs[0]->data + lo;
        const real slope = kind == LEAKY_RELU
                               ? (real)AG_PARAMS(out, ag_scalar_params)->scalar
                               : 0;
        real *restrict dx = (real *)job->dx + lo;
        switch (kind) {
        case GELU_DERIVATIVE: { /* dx = g * d^(k+1) GELU(x) */
            int k = AG_PARAMS(out, gelu_derivative_params)->order + 1;
            double c[GELU_MAX_ORDER + 2];
            if (k >= 2) gelu_polynomial(k, c);
            for (int64_t i = 0; i < n; i++) {
                real d = g[i] * (real)gelu_derivative_at((double)x[i], k, c);
                dx[i] = set ? d : dx[i] + d;
            }
            break;
        }
        case SIGMOID: /* dx = g * y * (1 - y) */
            AG_GRAD_LOOP(set, n, dx, g[i] * y[i] * (1 - y[i]));
            break;
        case TANH: /* dx = g * (1 - y^2) */
            AG_GRAD_LOOP(set, n, dx, g[i] * (1 - y[i] * y[i]));
            break;
        case RELU: /* dx = g * (x > 0), and x > 0 exactly when y > 0 */
            AG_GRAD_LOOP(set, n, dx, AG_SELECT(y[i] > 0, g[i], (real)0));
            break;
        case GELU: /* dx = g * (Phi(x) + x * phi(x)), Phi(x) = y / x read
                      from the forward's y, one exp; 1/2 for |x| <= 1e-20,
                      where Phi(x) = 1/2 + 0.4 x rounds to 1/2 in f32 and f64
                      and y could be subnormal */
            AG_GRAD_LOOP(set, n, dx,
                         g[i] * (AG_SELECT(fabs(x[i]) > (real)1e-20,
                                           y[i] / x[i], (real)0.5) +
                                 x[i] * NORMAL_PDF(x[i])));
            break;
        case LEAKY_RELU: /* dx = g for x > 0, g * slope otherwise */
            AG_GRAD_LOOP(set, n, dx, AG_SELECT(x[i] > 0, g[i], g[i] * slope));
            break;
        case SIN: /* dx = g cos x */
            AG_GRAD_LOOP(set, n, dx, g[i] * cos(x[i]));
            break;
        case COS: /* dx = -g sin x */
            AG_GRAD_LOOP(set, n, dx, -g[i] * sin(x[i]));
            break;
        case SILU: /* dx = g s (1 + x (1 - s)), s = sigmoid(x) */
            for (int64_t i = 0; i < n; i++) {
                real sx = 1 / (1 + exp(-x[i]));
                real d = g[i] * sx * (1 + x[i] * (1 - sx));
                dx[i] = set ? d : dx[i] + d;
            }
            break;
        case SOFTPLUS: /* dx = g sigmoid(x), g above the threshold */
            AG_GRAD_LOOP(set, n, dx,
                         AG_SELECT(x[i] > SOFTPLUS_THRESHOLD, g[i],
                                   g[i] / (1 + exp(-x[i]))));
            break;
        case CLAMP: { /* dx = g for lo <= x <= hi, else 0 */
            const clamp_params *p = AG_PARAMS(out, clamp_params);
            const real low = (real)p->lo, high = (real)p->hi;
            AG_GRAD_LOOP(set, n, dx,
                         AG_SELECT(x[i] >= low && x[i] <= high, g[i], (real)0));
            break;
        }
        }
    });
}

static int activation_backward(ag_tensor *out)
{
    backward_job job = {out, NULL, false};
    job.dx = ag__grad_begin(out->inputs[0], &job.set);
    ag__parallel_for(out->numel, backward_range, &job);
    return 0;
}

/* d^k GELU(x), recorded as the op gelu_derivative of order k. */
static ag_tensor *gelu_derivative(ag_arena *a, ag_tensor *x, int k)
{
    const char *func = "ag_gelu";
    if (k > GELU_MAX_ORDER) {
        ag__error(func,
                  "derivatives of GELU go up to order %d; order %d was "
                  "asked for",
                  GELU_MAX_ORDER, k);
        return NULL;
    }
    gelu_derivative_params p = {k};
    return ag__apply(func, a, &ag__op_gelu_derivative, 1, &x, x->dtype, x->ndim,
                     x->shape, &p);
}

/* A mask without history: where(x > 0, 1, other) (other = 0: ReLU's
 * derivative, read off y; other = slope: leaky ReLU's, off x). */
static ag_tensor *positive_mask(ag_arena *a, const ag_tensor *x, double other)
{
    ag_tensor *m = ag__constant(a, x);
    if (m)
        AG_DISPATCH_FLOAT(x->dtype, {
            const real *xv = x->data;
            real *mv = m->data;
            for (int64_t i = 0; i < x->numel; i++)
                mv[i] = xv[i] > 0 ? 1 : (real)other;
        });
    return m;
}

/* A mask without history: 1 where lo <= x <= hi, else 0 (clamp's
 * derivative; softplus's region below the threshold with lo = -inf). */
static ag_tensor *range_mask(ag_arena *a, const ag_tensor *x, double lo,
                             double hi)
{
    ag_tensor *m = ag__constant(a, x);
    if (m)
        AG_DISPATCH_FLOAT(x->dtype, {
            const real *xv = x->data;
            real *mv = m->data;
            for (int64_t i = 0; i < x->numel; i++)
                mv[i] = xv[i] >= (real)lo && xv[i] <= (real)hi;
        });
    return m;
}

/* v * f'(x) in ops, the rule of backward_range for any v (g or tx). */
static ag_tensor *derivative_times(ag_arena *a, ag_tensor *out, ag_tensor *v)
{
    ag_tensor *x = out->inputs[0];
    switch (out->op->kind) {
    case SIGMOID: /* v * y * (1 - y) */
        return ag_mul(a, v, ag_mul(a, out, ag_shift(a, ag_neg(a, out), 1)));
    case TANH: /* v * (1 - y^2) */
        return ag_mul(a, v, ag_shift(a, ag_neg(a, ag_mul(a, out, out)), 1));
    case RELU: /* v * (y > 0) */
        return ag_mul(a, v, positive_mask(a, out, 0));
    case GELU: /* v * GELU'(x) */
        return ag_mul(a, v, gelu_derivative(a, x, 1));
    case LEAKY_RELU: /* v * (x > 0 ? 1 : slope) */
        return ag_mul(
            a, v,
            positive_mask(a, x, AG_PARAMS(out, ag_scalar_params)->scalar));
    case SIN: /* v cos x */
        return ag_mul(a, v, ag_cos(a, x));
    case COS: /* -v sin x */
        return ag_neg(a, ag_mul(a, v, ag_sin(a, x)));
    case SILU: { /* v (s + x s (1 - s)), s = sigmoid(x) */
        ag_tensor *sx = ag_sigmoid(a, x);
        return ag_mul(
            a, v,
            ag_add(a, sx,
                   ag_mul(a, ag_mul(a, x, sx), ag_shift(a, ag_neg(a, sx), 1))));
    }
    case SOFTPLUS: /* v (sigmoid(x) below the threshold, 1 above): with
                      below = (x <= threshold), v (below sigmoid(x) + 1 -
                      below) */
    {
        ag_tensor *below = range_mask(a, x, -INFINITY, SOFTPLUS_THRESHOLD);
        ag_tensor *d = ag_mul(a, below, ag_sigmoid(a, x));
        d = ag_add(a, d, ag_shift(a, ag_neg(a, below), 1));
        return ag_mul(a, v, d);
    }
    case CLAMP: { /* v (lo <= x <= hi) */
        const clamp_params *p = AG_PARAMS(out, clamp_params);
        return ag_mul(a, v, range_mask(a, x, p->lo, p->hi));
    }
    default: /* GELU_DERIVATIVE: v * d^(k+1) GELU(x) */
        return ag_mul(
            a, v,
            gelu_derivative(a, x,
                            AG_PARAMS(out, gelu_derivative_params)->order + 1));
    }
}

static int activation_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g,
                          const bool *want, ag_tensor **dx)
{
    AG_TRY(dx[0] = derivative_times(a, out, g));
    return 0;
}

static int activation_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *tx,
                          ag_tensor **ty)
{
    AG_TRY(*ty = derivative_times(a, out, tx[0]));
    return 0;
}

ag_tensor *ag_sigmoid(ag_arena *a, ag_tensor *x)
{
    return ag__unary("ag_sigmoid", &ag__op_sigmoid, a, x, 0);
}

ag_tensor *ag_tanh(ag_arena *a, ag_tensor *x)
{
    return ag__unary("ag_tanh", &ag__op_tanh, a, x, 0);
}

ag_tensor *ag_relu(ag_arena *a, ag_tensor *x)
{
    return ag__unary("ag_relu", &ag__op_relu, a, x, 0);
}

ag_tensor *ag_gelu(ag_arena *a, ag_tensor *x)
{
    return ag__unary("ag_gelu", &ag__op_gelu, a, x, 0);
}

ag_tensor *ag_leaky_relu(ag_arena *a, ag_tensor *x, double slope)
{
    return ag__unary("ag_leaky_relu", &ag__op_leaky_relu, a, x, slope);
}

ag_tensor *ag_sin(ag_arena *a, ag_tensor *x)
{
    return ag__unary("ag_sin", &ag__op_sin, a, x, 0);
}

ag_tensor *ag_cos(ag_arena *a, ag_tensor *x)
{
    return ag__unary("ag_cos", &ag__op_cos, a, x, 0);
}

ag_tensor *ag_silu(ag_arena *a, ag_tensor *x)
{
    return ag__unary("ag_silu", &ag__op_silu, a, x, 0);
}

ag_tensor *ag_softplus(ag_arena *a, ag_tensor *x)
{
    return ag__unary("ag_softplus", &ag__op_softplus, a, x, 0);
}

ag_tensor *ag_clamp(ag_arena *a, ag_tensor *x, double lo, double hi)
{
    const char *func = "ag_clamp";
    if (ag__check_float_inputs(func, a, 1, &x)) return NULL;
    if (isnan(lo) || isnan(hi)) {
        ag__error(func, "the bounds must not be NaN, got [%g, %g]", lo, hi);
        return NULL;
    }
    clamp_params p = {lo, hi};
    return ag__apply(func, a, &ag__op_clamp, 1, &x, x->dtype, x->ndim, x->shape,
                     &p);
}

/* The op-table entries. */
#define ACTIVATION_OP(op_name, op_kind, params)                                \
    {                                                                          \
        .name = op_name, .arity = 1, .kind = op_kind,                          \
        .params_size = sizeof(params), .forward = activation_forward,          \
        .backward = activation_backward, .vjp = activation_vjp,                \
        .jvp = activation_jvp                                                  \
    }
const ag_op ag__op_sigmoid =
    ACTIVATION_OP("sigmoid", SIGMOID, ag_scalar_params);
const ag_op ag__op_tanh = ACTIVATION_OP("tanh", TANH, ag_scalar_params);
const ag_op ag__op_relu = ACTIVATION_OP("relu", RELU, ag_scalar_params);
const ag_op ag__op_gelu = ACTIVATION_OP("gelu", GELU, ag_scalar_params);
const ag_op ag__op_leaky_relu =
    ACTIVATION_OP("leaky_relu", LEAKY_RELU, ag_scalar_params);
const ag_op ag__op_gelu_derivative =
    ACTIVATION_OP("gelu_derivative", GELU_DERIVATIVE, gelu_derivative_params);
const ag_op ag__op_sin = ACTIVATION_OP("sin", SIN, ag_scalar_params);
const ag_op ag__op_cos = ACTIVATION_OP("cos", COS, ag_scalar_params);
const ag_op ag__op_silu = ACTIVATION_OP("silu", SILU, ag_scalar_params);
const ag_op ag__op_softplus =
    ACTIVATION_OP("softplus", SOFTPLUS, ag_scalar_params);
const ag_op ag__op_clamp = ACTIVATION_OP("clamp", CLAMP, clamp_params);
