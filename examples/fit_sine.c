/* fit_sine.c: the universal approximation theorem made visible. A small
 * MLP (1-32-32-1, tanh) learns sin(x) on [-pi, pi] with Adam; the mean
 * squared error is printed as it falls, and the target and fitted curves
 * are written as CSV (x, sin x, fitted) and, when gnuplot is on PATH,
 * plotted as SVG (the CSV's name with .svg); the loss of every step goes
 * to a training curve (CSV and SVG, plot.h).
 *
 * Run: ./build/examples/fit_sine [--steps N] [--out FILE] [--curve FILE]
 *      (defaults: 3000 steps, fit_sine.csv, fit_sine_curve.csv)
 * Exits non-zero if the final error is above 1e-3. */
#include "plot.h"
#include "train.h"
#include <autograd.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POINTS 256
#define PI 3.14159265358979323846

static int fail(const char *what)
{
    fprintf(stderr, "fit_sine: %s: %s\n", what, ag_last_error());
    return 1;
}

#define SHAPE ((int64_t[]){POINTS, 1})

/* The model and the curve it is fitted to. */
typedef struct {
    ag_mlp *mlp;
    const float *x, *target;
} curve;

/* The mean squared error of the model on the curve (an ag_loss_fn). */
static ag_tensor *curve_loss(ag_arena *step, void *user)
{
    const curve *c = user;
    ag_tensor *xs = ag_from_data(step, AG_F32, 2, SHAPE, c->x);
    ag_tensor *ys = ag_from_data(step, AG_F32, 2, SHAPE, c->target);
    return ag_mse_loss(step, ag_mlp_forward(step, c->mlp, xs), ys);
}

/* Writes x, sin x and the model's output as CSV. */
static int write_csv(const char *path, const float *x, const float *target,
                     const float *fitted)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    fprintf(f, "x,sin_x,fitted\n");
    for (int i = 0; i < POINTS; i++)
        fprintf(f, "%.6f,%.6f,%.6f\n", x[i], target[i], fitted[i]);
    return fclose(f);
}

/* The fitted curve over the target. */
static const char *const plot_script =
    "set terminal svg size 800,500 dynamic\n"
    "set datafile separator ','\n"
    "set key top left\n"
    "set grid\n"
    "set title 'a 1-32-32-1 tanh MLP fitted to sin x'\n"
    "set xlabel 'x'\n"
    "plot CSV using 1:2 with lines lw 3 title 'sin x', "
    "CSV using 1:3 with lines dashtype 2 lw 2 title 'fitted'\n";

int main(int argc, char **argv)
{
    long steps = 3000;
    const char *out = "fit_sine.csv", *curve_path = "fit_sine_curve.csv";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--steps") == 0)
            steps = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--out") == 0)
            out = argv[i + 1];
        else if (strcmp(argv[i], "--curve") == 0)
            curve_path = argv[i + 1];
        else
            steps = 0;
    }
    if (steps < 1 || argc % 2 == 0) {
        fprintf(stderr,
                "usage: fit_sine [--steps N] [--out FILE] [--curve FILE]\n");
        return 2;
    }
    float x[POINTS], target[POINTS];
    for (int i = 0; i < POINTS; i++) {
        x[i] = (float)(-PI + 2 * PI * i / (POINTS - 1));
        target[i] = sinf(x[i]);
    }
    ag_arena *model = ag_arena_new(), *step = ag_arena_new();
    ag_mlp *mlp =
        ag_mlp_new(model, 4, (int64_t[]){1, 32, 32, 1},
                   &(ag_mlp_options){.activation = AG_ACT_TANH, .seed = 1});
    ag_adam_options adam = ag_adam_defaults();
    adam.lr = 0.01;
    ag_optimizer *opt = mlp ? ag_adam_new(model, mlp->params, &adam) : NULL;
    if (!opt) return fail("making the model");

    /* Cosine decay from 0.01 to 1e-4 sharpens the final fit. */
    curve c = {mlp, x, target};
    plot_curve loss_curve;
    plot_curve_open(&loss_curve, curve_path, "fit_sine: mean squared error",
                    "step", "mse");
    double mse = train_cosine(opt, step, curve_loss, &c, "fit_sine", steps,
                              0.01, 1e-4, POINTS, &loss_curve);
    if (isnan(mse)) return fail("training");
    plot_curve_close(&loss_curve);

    ag_set_grad_enabled(false);
    ag_tensor *fitted =
        ag_mlp_forward(step, mlp, ag_from_data(step, AG_F32, 2, SHAPE, x));
    if (!fitted) return fail("evaluating");
    int written = write_csv(out, x, target, ag_data(fitted));
    printf("fit_sine: mse %.6f after %ld steps; curves in %s\n", mse, steps,
           written ? "(not written)" : out);
    char svg[PLOT_PATH_MAX];
    if (!written && !plot_path_replace(svg, sizeof svg, out, ".csv", ".svg"))
        plot_csv(out, svg, plot_script);
    ag_arena_free(step);
    ag_arena_free(model);
    if (mse > 1e-3)
        fprintf(stderr, "fit_sine: error above 1e-3: it did not learn "
                        "(more steps?)\n");
    return mse <= 1e-3 && written == 0 ? 0 : 1;
}
