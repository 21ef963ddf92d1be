/* activation.c: the elementwise activations sigmoid, tanh and ReLU, each
 * forward beside its derivative written in terms of the saved output y. */
#include "../internal.h"

#include <tgmath.h>

enum { SIGMOID, TANH, RELU };

static int activation_forward(ag_tensor *out)
{
    int kind = out->op->kind;
    int64_t n = out->numel;
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *x = out->inputs[0]->data;
        real *y = out->data;
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
        }
    });
    return 0;
}

static int activation_backward(ag_tensor *out)
{
    int kind = out->op->kind;
    int64_t n = out->numel;
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *y = out->data, *g = out->grad->data;
        real *dx = out->inputs[0]->grad->data;
        switch (kind) {
        case SIGMOID: /* dx = g * y * (1 - y) */
            for (int64_t i = 0; i < n; i++) dx[i] += g[i] * y[i] * (1 - y[i]);
            break;
        case TANH: /* dx = g * (1 - y^2) */
            for (int64_t i = 0; i < n; i++) dx[i] += g[i] * (1 - y[i] * y[i]);
            break;
        case RELU: /* dx = g * (x > 0), and x > 0 exactly when y > 0 */
            for (int64_t i = 0; i < n; i++) dx[i] += y[i] > 0 ? g[i] : 0;
            break;
        }
    });
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

/* The op-table entries: {name, arity, view, kind, forward, backward}. */
/* clang-format off */
const ag_op ag__op_sigmoid =
    {"sigmoid", 1, false, SIGMOID, activation_forward, activation_backward};
const ag_op ag__op_tanh =
    {"tanh", 1, false, TANH, activation_forward, activation_backward};
const ag_op ag__op_relu =
    {"relu", 1, false, RELU, activation_forward, activation_backward};
/* clang-format on */
