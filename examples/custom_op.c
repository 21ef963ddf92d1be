/* custom_op.c: a differentiable function of your own, the Huber (smooth L1)
 * loss, written with ag_function: its forward and backward in plain C for
 * f32 and f64, checked against finite differences with ag_gradcheck (alone
 * and inside a small graph), then used to fit a line to data with outliers
 * in f32, where it is far less pulled by them than the squared error (the
 * two fits' losses per step go to a training curve, CSV and SVG: plot.h).
 *
 *   huber(r) = r^2 / 2               for |r| <= delta
 *            = delta (|r| - delta/2) otherwise,   r = pred - target
 *   d huber / d pred = clamp(r, -delta, delta) = -d huber / d target
 *
 * Run: ./build/examples/custom_op [--curve FILE]  (default custom_op_curve.csv)
 * Exits non-zero when a check fails. */
#include "plot.h"
#include <autograd.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Element i of a float tensor as a double, and back: one code path for f32
 * and f64 (a library kernel would use a macro to get native loops). */
static double get(const ag_tensor *t, int64_t i)
{
    const void *data = ag_data((ag_tensor *)t); /* ag_data is not const */
    return ag_type(t) == AG_F32 ? ((const float *)data)[i]
                                : ((const double *)data)[i];
}

static void set(ag_tensor *t, int64_t i, double v)
{
    if (ag_type(t) == AG_F32)
        ((float *)ag_data(t))[i] = (float)v;
    else
        ((double *)ag_data(t))[i] = v;
}

/* forward: huber(pred - target) elementwise; delta comes through `user`. */
static ag_tensor *huber_forward(ag_function_ctx *ctx, ag_arena *a,
                                ag_tensor *const *in, int n)
{
    (void)n;
    double delta = *(const double *)ag_function_user(ctx);
    if (!(delta > 0)) {
        ag_function_error(ctx, "delta must be > 0, got %g", delta);
        return NULL;
    }
    if (ag_numel(in[0]) != ag_numel(in[1]) ||
        ag_ndim(in[0]) != ag_ndim(in[1])) {
        ag_function_error(ctx, "pred and target differ in shape");
        return NULL;
    }
    ag_tensor *y = ag_zeros(a, ag_type(in[0]), ag_ndim(in[0]), ag_shape(in[0]));
    for (int64_t i = 0; y && i < ag_numel(y); i++) {
        double r = get(in[0], i) - get(in[1], i), m = fabs(r);
        set(y, i, m <= delta ? 0.5 * r * r : delta * (m - 0.5 * delta));
    }
    return y;
}

/* backward: d pred += g clamp(r, -delta, delta); d target -= the same. */
static int huber_backward(ag_function_ctx *ctx, ag_tensor *grad_output,
                          ag_tensor *const *grad_inputs)
{
    double delta = *(const double *)ag_function_user(ctx);
    ag_tensor *pred = ag_function_input(ctx, 0);
    ag_tensor *target = ag_function_input(ctx, 1);
    for (int64_t i = 0; i < ag_numel(pred); i++) {
        double r = get(pred, i) - get(target, i);
        double d = get(grad_output, i) * fmin(fmax(r, -delta), delta);
        if (grad_inputs[0]) set(grad_inputs[0], i, get(grad_inputs[0], i) + d);
        if (grad_inputs[1]) set(grad_inputs[1], i, get(grad_inputs[1], i) - d);
    }
    return 0;
}

static const ag_function huber = {
    .name = "huber", .forward = huber_forward, .backward = huber_backward};

/* Huber applied elementwise; the function ag_gradcheck checks. */
static ag_tensor *huber_alone(ag_arena *a, ag_tensor *const *x, int n,
                              void *delta)
{
    return ag_function_apply(a, &huber, n, x, delta);
}

/* mean(huber(x w + b, y)): the loss of the fit below, for inputs x, w, b,
 * y. Huber is used next to built-in ops, and y needs no gradient. */
static ag_tensor *huber_fit_loss(ag_arena *a, ag_tensor *const *x, int n,
                                 void *delta)
{
    (void)n;
    ag_tensor *in[2] = {ag_add(a, ag_matmul(a, x[0], x[1]), x[2]), x[3]};
    return ag_mean(a, ag_function_apply(a, &huber, 2, in, delta), AG_ALL,
                   false);
}

/* Runs ag_gradcheck on f and prints the report; returns its status. */
static int check(const char *what, ag_gradcheck_fn f, int n,
                 ag_tensor *const *in, double *delta)
{
    ag_gradcheck_report report;
    int status = ag_gradcheck(f, n, in, delta, NULL, &report);
    printf("%-28s ", what);
    if (status < 0)
        printf("could not run: %s\n", ag_last_error());
    else
        ag_gradcheck_print(stdout, &report);
    return status;
}

#define N 40

#define FIT_STEPS 3000

/* Fits y = w x + b to N points of y = 2x - 1 of which every fifth is an
 * outlier (+8), in f32, with the Huber or the squared-error loss; returns
 * the slope, writes the intercept to *b_out and the loss of each step to
 * losses (FIT_STEPS of them, NaN after a failed step). */
static double fit(bool use_huber, double delta, double *b_out, double *losses)
{
    ag_arena *params = ag_arena_new(), *step = ag_arena_new();
    float xs[N], ys[N];
    for (int i = 0; i < N; i++) {
        xs[i] = (float)i / N;
        ys[i] = 2 * xs[i] - 1 + (i % 5 == 0 ? 8.0f : 0.0f);
    }
    ag_tensor *w = ag_zeros(params, AG_F32, 2, (int64_t[]){1, 1});
    ag_tensor *b = ag_zeros(params, AG_F32, 1, (int64_t[]){1});
    ag_requires_grad(w, true);
    ag_requires_grad(b, true);
    for (int it = 0; it < FIT_STEPS; it++) losses[it] = NAN;
    for (int it = 0; it < FIT_STEPS; it++) {
        ag_tensor *x = ag_from_data(step, AG_F32, 2, (int64_t[]){N, 1}, xs);
        ag_tensor *y = ag_from_data(step, AG_F32, 2, (int64_t[]){N, 1}, ys);
        ag_tensor *pred = ag_add(step, ag_matmul(step, x, w), b);
        ag_tensor *in[2] = {pred, y};
        ag_tensor *loss =
            use_huber
                ? ag_mean(step, ag_function_apply(step, &huber, 2, in, &delta),
                          AG_ALL, false)
                : ag_mse_loss(step, pred, y);
        if (!loss || ag_backward(loss)) {
            fprintf(stderr, "%s\n", ag_last_error());
            break;
        }
        losses[it] = ag_item(loss);
        ag_tensor *p[2] = {w, b};
        for (int k = 0; k < 2; k++) { /* plain SGD */
            float *v = ag_data(p[k]), *g = ag_data(ag_grad(p[k]));
            v[0] -= 0.5f * g[0];
            ag_zero_grad(p[k]);
        }
        ag_arena_reset(step);
    }
    double slope = ag_item(w);
    *b_out = ag_item(b);
    ag_arena_free(step);
    ag_arena_free(params);
    return slope;
}

int main(int argc, char **argv)
{
    const char *curve_path = "custom_op_curve.csv";
    if (argc == 3 && strcmp(argv[1], "--curve") == 0)
        curve_path = argv[2];
    else if (argc != 1) {
        fprintf(stderr, "usage: custom_op [--curve FILE]\n");
        return 2;
    }
    ag_arena *a = ag_arena_new();
    ag_rng rng = ag_rng_seed(42);
    double delta = 0.5;
    int failed = 0;

    /* Residuals on both sides of delta; the kinks at |r| = delta are
     * avoided, as any finite-difference check must avoid kinks. */
    ag_tensor *pair[2] = {
        ag_rand(a, AG_F64, 2, (int64_t[]){3, 4}, -2, 2, &rng),
        ag_rand(a, AG_F64, 2, (int64_t[]){3, 4}, -2, 2, &rng)};
    ag_requires_grad(pair[0], true);
    ag_requires_grad(pair[1], true);
    failed |= check("huber(pred, target):", huber_alone, 2, pair, &delta) != 0;

    ag_tensor *graph[4] = {
        ag_rand(a, AG_F64, 2, (int64_t[]){5, 3}, -1, 1, &rng),
        ag_rand(a, AG_F64, 2, (int64_t[]){3, 2}, -1, 1, &rng),
        ag_rand(a, AG_F64, 1, (int64_t[]){2}, -1, 1, &rng),
        ag_rand(a, AG_F64, 2, (int64_t[]){5, 2}, -1, 1, &rng)};
    for (int i = 0; i < 3; i++) ag_requires_grad(graph[i], true);
    failed |= check("mean(huber(x w + b, y)):", huber_fit_loss, 4, graph,
                    &delta) != 0;

    double b_huber, b_mse;
    static double losses[2][FIT_STEPS];
    double w_huber = fit(true, delta, &b_huber, losses[0]);
    double w_mse = fit(false, delta, &b_mse, losses[1]);
    plot_curve curve;
    plot_curve_open(&curve, curve_path, "custom_op: a line through outliers",
                    "step", "huber_loss,mse_loss");
    for (int it = 0; it < FIT_STEPS; it++)
        plot_curve_add(&curve, it, (double[]){losses[0][it], losses[1][it]});
    plot_curve_close(&curve);
    printf("fit of y = 2x - 1 with outliers (f32):\n"
           "  huber: w = %.3f, b = %.3f\n"
           "  mse:   w = %.3f, b = %.3f\n",
           w_huber, b_huber, w_mse, b_mse);
    /* the outliers tilt the squared error's line (to about w 1.04,
     * b 1.07); Huber's stays near the true one */
    failed |= !(fabs(w_huber - 2) < fabs(w_mse - 2) &&
                fabs(b_huber + 1) < fabs(b_mse + 1));
    ag_arena_free(a);
    return failed;
}
