/* pinn.c: a physics-informed neural network. A 1-32-32-1 tanh MLP u(x), in
 * f64, learns the solution of the boundary value problem
 *
 *   u''(x) = -pi^2 sin(pi x) on [0, 1],   u(0) = u(1) = 0
 *
 * (exactly u = sin(pi x)) from the equation alone: no value of u inside
 * the interval is given. The loss is the mean square of the residual
 * u'' + pi^2 sin(pi x) at collocation points plus the boundary values
 * squared. u'' is taken by autograd: x is a leaf that requires a
 * gradient, du/dx = ag_gradients of sum(u) with create_graph, d2u/dx2 =
 * ag_gradients of sum(du/dx) with create_graph, so the loss holds a graph
 * of the second derivative and ag_backward(loss) differentiates it a third
 * time, for the parameters (Adam).
 *
 * Prints the loss as it falls and, at the end, the largest error against
 * sin(pi x) on 1001 points; writes x, u and sin(pi x) there as CSV and,
 * when gnuplot is on PATH, plots them as PNG (the CSV's name with .png);
 * the loss of every step goes to a training curve (CSV and SVG, plot.h).
 * Also checks autograd's u'' on that grid against central differences
 * of u.
 *
 * Run: ./build/examples/pinn [--steps N] [--out FILE] [--tol E]
 *          [--curve FILE]
 *      (defaults: 4000 steps, pinn.csv, 1e-3, pinn_curve.csv; measured
 *      3.0e-5 in about 2 s)
 * Exits non-zero if the max error is above E or no lower than before
 * training, or if u'' disagrees with the differences. */
#include "plot.h"
#include "progress.h"
#include "train.h"
#include <autograd.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PI 3.14159265358979323846
#define POINTS 64          /* collocation points inside (0, 1) */
#define GRID 1001          /* the fine grid the error is measured on */
#define BOUNDARY_WEIGHT 10 /* of the boundary term against the residual */
#define D2_TOLERANCE 1e-3  /* |autograd u'' - central differences| */

static int fail(const char *what)
{
    fprintf(stderr, "pinn: %s: %s\n", what, ag_last_error());
    return 1;
}

/* d^2 sum(u) / dx^2 = u''(x) elementwise for the model u, x (n, 1) a leaf
 * that requires a gradient; with a graph, so the result can be
 * differentiated again. NULL with the library's error on failure. */
static ag_tensor *second_derivative(ag_arena *a, ag_tensor *u, ag_tensor *x)
{
    ag_tensor *du, *d2u;
    ag_tensor *su = ag_sum(a, u, AG_ALL, false);
    if (!su || ag_gradients(a, 1, &su, NULL, 1, &x, true, &du)) return NULL;
    ag_tensor *sdu = ag_sum(a, du, AG_ALL, false);
    if (!sdu || ag_gradients(a, 1, &sdu, NULL, 1, &x, true, &d2u)) return NULL;
    return d2u;
}

/* The model and the collocation points with the source term there. */
typedef struct {
    ag_mlp *mlp;
    const double *x, *source; /* POINTS each */
} problem;

/* The physics loss (an ag_loss_fn): mean (u'' + pi^2 sin(pi x))^2 over
 * the collocation points plus BOUNDARY_WEIGHT times mean(u(0)^2, u(1)^2). */
static ag_tensor *pinn_loss(ag_arena *a, void *user)
{
    const problem *p = user;
    int64_t shape[2] = {POINTS, 1}, bshape[2] = {2, 1};
    ag_tensor *xs = ag_from_data(a, AG_F64, 2, shape, p->x);
    if (!xs) return NULL;
    ag_requires_grad(xs, true);
    ag_tensor *d2u = second_derivative(a, ag_mlp_forward(a, p->mlp, xs), xs);
    ag_tensor *residual =
        ag_mse_loss(a, d2u, ag_from_data(a, AG_F64, 2, shape, p->source));
    ag_tensor *ub = ag_mlp_forward(
        a, p->mlp, ag_from_data(a, AG_F64, 2, bshape, (double[]){0, 1}));
    ag_tensor *boundary = ag_mse_loss(a, ub, ag_zeros(a, AG_F64, 2, bshape));
    return ag_add(a, residual, ag_scale(a, boundary, BOUNDARY_WEIGHT));
}

/* The model on the fine grid: u into `u`, and u'' by autograd into `d2u`
 * when it is not NULL. Returns 0, or -1 with the library's error. */
static int evaluate(ag_arena *a, ag_mlp *mlp, const double *grid, double *u,
                    double *d2u)
{
    ag_tensor *xs = ag_from_data(a, AG_F64, 2, (int64_t[]){GRID, 1}, grid);
    if (!xs) return -1;
    if (d2u) ag_requires_grad(xs, true);
    ag_tensor *us = ag_mlp_forward(a, mlp, xs);
    ag_tensor *d2 = d2u ? second_derivative(a, us, xs) : us;
    if (!d2) return -1;
    memcpy(u, ag_data(us), sizeof(double) * GRID);
    if (d2u) memcpy(d2u, ag_data(d2), sizeof(double) * GRID);
    ag_arena_reset(a);
    return 0;
}

static double max_error(const double *grid, const double *u)
{
    double worst = 0;
    for (int i = 0; i < GRID; i++)
        worst = fmax(worst, fabs(u[i] - sin(PI * grid[i])));
    return worst;
}

/* The largest |d2u - (u[i+1] - 2 u[i] + u[i-1]) / h^2| inside the grid. */
static double d2_difference(const double *u, const double *d2u)
{
    double h = 1.0 / (GRID - 1), worst = 0;
    for (int i = 1; i + 1 < GRID; i++) {
        double fd = (u[i + 1] - 2 * u[i] + u[i - 1]) / (h * h);
        worst = fmax(worst, fabs(d2u[i] - fd));
    }
    return worst;
}

/* Writes x, u and sin(pi x) as CSV. */
static int write_csv(const char *path, const double *grid, const double *u)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    fprintf(f, "x,u,exact\n");
    for (int i = 0; i < GRID; i++)
        fprintf(f, "%.6f,%.9f,%.9f\n", grid[i], u[i], sin(PI * grid[i]));
    return fclose(f);
}

static const char *const plot_script =
    "set terminal png size 900,600\n"
    "set datafile separator ','\n"
    "set key top right\n"
    "set grid\n"
    "set title \"PINN: u'' = -pi^2 sin(pi x), u(0) = u(1) = 0\"\n"
    "set xlabel 'x'\n"
    "plot CSV using 1:3 with lines lw 3 title 'sin(pi x)', "
    "CSV using 1:2 with lines dashtype 2 lw 2 title 'network u(x)'\n";

int main(int argc, char **argv)
{
    long steps = 4000;
    double tol = 1e-3;
    const char *out = "pinn.csv", *curve_path = "pinn_curve.csv";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--steps") == 0)
            steps = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--out") == 0)
            out = argv[i + 1];
        else if (strcmp(argv[i], "--tol") == 0)
            tol = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--curve") == 0)
            curve_path = argv[i + 1];
        else
            steps = 0;
    }
    if (steps < 1 || !(tol > 0) || argc % 2 == 0) {
        fprintf(stderr, "usage: pinn [--steps N] [--out FILE] [--tol E] "
                        "[--curve FILE]\n");
        return 2;
    }
    static double x[POINTS], source[POINTS], grid[GRID], u[GRID], d2u[GRID];
    for (int i = 0; i < POINTS; i++) {
        x[i] = (i + 0.5) / POINTS;
        source[i] = -PI * PI * sin(PI * x[i]);
    }
    for (int i = 0; i < GRID; i++) grid[i] = (double)i / (GRID - 1);

    ag_arena *model = ag_arena_new(), *step = ag_arena_new();
    ag_mlp *mlp = model
                      ? ag_mlp_new(model, 4, (int64_t[]){1, 32, 32, 1},
                                   &(ag_mlp_options){.dtype = AG_F64,
                                                     .activation = AG_ACT_TANH,
                                                     .seed = 1})
                      : NULL;
    ag_optimizer *opt = mlp ? ag_adam_new(model, mlp->params, NULL) : NULL;
    if (!opt || !step) return fail("making the model");
    if (evaluate(step, mlp, grid, u, NULL)) return fail("evaluating");
    double initial = max_error(grid, u);

    problem pb = {mlp, x, source};
    plot_curve curve;
    plot_curve_open(&curve, curve_path, "pinn: physics loss", "step", "loss");
    double start = progress_now();
    double loss_value = train_cosine(opt, step, pinn_loss, &pb, "pinn", steps,
                                     1e-2, 1e-4, POINTS, &curve);
    if (isnan(loss_value)) return fail("training");
    double seconds = progress_now() - start;
    plot_curve_close(&curve);

    if (evaluate(step, mlp, grid, u, d2u)) return fail("evaluating");
    double error = max_error(grid, u), d2_error = d2_difference(u, d2u);
    printf("pinn: %ld steps in %.1f s; max |u - sin(pi x)| on %d points: "
           "%.3e (%.3e before training)\n",
           steps, seconds, GRID, error, initial);
    printf("pinn: max |autograd u'' - central differences of u|: %.3e\n",
           d2_error);
    int written = write_csv(out, grid, u);
    if (written == 0) {
        printf("wrote %s\n", out);
        char png[PLOT_PATH_MAX];
        if (!plot_path_replace(png, sizeof png, out, ".csv", ".png"))
            plot_csv(out, png, plot_script);
    }
    ag_arena_free(step);
    ag_arena_free(model);

    int status = written != 0;
    if (!(error <= tol) || !(error < initial)) {
        fprintf(stderr,
                "pinn: max error %.3e is above %.3g or not below the "
                "untrained %.3e: it did not learn (more steps?)\n",
                error, tol, initial);
        status = 1;
    }
    if (!(d2_error <= D2_TOLERANCE)) {
        fprintf(stderr,
                "pinn: autograd's u'' differs from central "
                "differences by %.3e (above %g)\n",
                d2_error, D2_TOLERANCE);
        status = 1;
    }
    return status;
}
