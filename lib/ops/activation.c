/* activation.c: the elementwise activations sigmoid, tanh, ReLU, GELU and
 * leaky ReLU, each forward beside its derivative (in terms of the output y
 * where that is cheaper than the input x). */
#include "../internal.h"

#include <tgmath.h>

enum { SIGMOID, TANH, RELU, GELU, LEAKY_RELU };

/* The standard normal CDF and density, for GELU. */
#define SQRT_HALF 0.70710678118654752440    /* 1 / sqrt(2) */
#define INV_SQRT_2PI 0.39894228040143267794 /* 1 / sqrt(2 pi) */
#define NORMAL_CDF(x) ((1 + erf((x) * (real)SQRT_HALF)) / 2)
#define NORMAL_PDF(x) (exp(-(x) * (x) / 2) * (real)INV_SQRT_2PI)

/* Elements [lo, hi) of the forward. */
AG_KERNEL static void forward_range(void *out_ptr, int64_t lo, int64_t hi)
{
    const ag_tensor *out = out_ptr;
    int kind = out->op->kind;
    int64_t n = hi - lo;
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *restrict x = (const real *)out->inputs[0]->data + lo;
        real *restrict y = (real *)out->data + lo;
        const real slope = (real)out->args.scalar;
        switch (kind) {
        case SIGMOID: /* y = 1 / (1 + e^-x), in a form that never overflows */
            for (int64_t i = 0; i < n; i++) {
                real e = exp(-fabs(x[i]));
                y[i] = x[i] >= 0 ? 1 / (1 + e) : e / (1 + e);
            }
            break;
        case TANH:
            for (int64_t i = 0; i < n; i++) y[i] = tanh(x[i]);
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
        const real slope = (real)out->args.scalar;
        real *restrict dx = (real *)job->dx + lo;
        switch (kind) {
        case SIGMOID: /* dx = g * y * (1 - y) */
            AG_GRAD_LOOP(set, n, dx, g[i] * y[i] * (1 - y[i]));
            break;
        case TANH: /* dx = g * (1 - y^2) */
            AG_GRAD_LOOP(set, n, dx, g[i] * (1 - y[i] * y[i]));
            break;
        case RELU: /* dx = g * (x > 0), and x > 0 exactly when y > 0 */
            AG_GRAD_LOOP(set, n, dx, AG_SELECT(y[i] > 0, g[i], (real)0));
            break;
        case GELU: /* dx = g * (Phi(x) + x * phi(x)) */
            AG_GRAD_LOOP(set, n, dx,
                         g[i] * (NORMAL_CDF(x[i]) + x[i] * NORMAL_PDF(x[i])));
            break;
        case LEAKY_RELU: /* dx = g for x > 0, g * slope otherwise */
            AG_GRAD_LOOP(set, n, dx, AG_SELECT(x[i] > 0, g[i], g[i] * slope));
            break;
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

/* The op-table entries: {name, arity, view, kind, forward, backward}. */
/* clang-format off */
const ag_op ag__op_sigmoid =
    {"sigmoid", 1, false, SIGMOID, activation_forward, activation_backward};
const ag_op ag__op_tanh =
    {"tanh", 1, false, TANH, activation_forward, activation_backward};
const ag_op ag__op_relu =
    {"relu", 1, false, RELU, activation_forward, activation_backward};
const ag_op ag__op_gelu =
    {"gelu", 1, false, GELU, activation_forward, activation_backward};
const ag_op ag__op_leaky_relu =
    {"leaky_relu", 1, false, LEAKY_RELU, activation_forward,
     activation_backward};
/* clang-format on */
