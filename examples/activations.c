/* activations.c: sigmoid, tanh, ReLU and softmax and their derivatives by
 * autograd over x in [-6, 6], compared with the closed forms
 *
 *   sigmoid' = s (1 - s)     tanh' = 1 - t^2     relu' = step(x) (0 at 0)
 *   softmax: d s_i / d z_j = s_i (delta_ij - s_j)
 *
 * For softmax the input is 3 logits (x, 1, -1) and the whole Jacobian
 * column j = 0 (d s_i / d x for i = 0, 1, 2) is compared, one backward
 * pass per i. Prints the largest difference per function, writes the
 * values to activations.csv and, when gnuplot is on PATH, plots them to
 * activations.svg.
 *
 *   usage: activations [output directory]      (default .)
 *
 * Exits non-zero when a difference exceeds 1e-12. */
#include "plot.h"
#include <autograd.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 241 /* x = -6, -5.95, ..., 6 */
#define TOLERANCE 1e-12

enum { SIGMOID, TANH, RELU, SOFTMAX, FUNCTIONS };
static const char *names[FUNCTIONS] = {"sigmoid", "tanh", "relu", "softmax"};

/* Values and derivatives by autograd, one row per x. */
typedef struct {
    double x[N];
    double value[3][N], deriv[3][N]; /* sigmoid, tanh, relu */
    double soft[3][N], jac[3][N];    /* s_i and d s_i / d x */
} table;

/* f(x) and f'(x) for an elementwise op f: backward of sum(f(x)). */
static int elementwise(ag_arena *a, const double *xs, int which, double *value,
                       double *deriv)
{
    ag_tensor *x = ag_from_data(a, AG_F64, 1, (int64_t[]){N}, xs);
    ag_requires_grad(x, true);
    ag_tensor *y = which == SIGMOID ? ag_sigmoid(a, x)
                   : which == TANH  ? ag_tanh(a, x)
                                    : ag_relu(a, x);
    if (!y || ag_backward(ag_sum(a, y, AG_ALL, false))) return -1;
    memcpy(value, ag_data(y), sizeof(double) * N);
    memcpy(deriv, ag_data(ag_grad(x)), sizeof(double) * N);
    return 0;
}

/* softmax of the rows (x, 1, -1) and d s_i / d x for each i: the
 * backward of sum(s * onehot_i) puts row i of each Jacobian in the
 * logits' gradient; its column 0 is d s_i / d x. */
static int softmax_column(ag_arena *a, const double *xs, table *t)
{
    double z[N * 3], mask[N * 3];
    for (int r = 0; r < N; r++) {
        z[3 * r] = xs[r];
        z[3 * r + 1] = 1;
        z[3 * r + 2] = -1;
    }
    int64_t shape[2] = {N, 3};
    ag_tensor *logits = ag_from_data(a, AG_F64, 2, shape, z);
    ag_requires_grad(logits, true);
    ag_tensor *s = ag_softmax(a, logits, -1);
    if (!s) return -1;
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < N * 3; k++) mask[k] = k % 3 == i;
        ag_tensor *m = ag_from_data(a, AG_F64, 2, shape, mask);
        ag_zero_grad(logits);
        if (ag_backward(ag_sum(a, ag_mul(a, s, m), AG_ALL, false))) return -1;
        const double *g = ag_data(ag_grad(logits)), *sv = ag_data(s);
        for (int r = 0; r < N; r++) {
            t->soft[i][r] = sv[3 * r + i];
            t->jac[i][r] = g[3 * r];
        }
    }
    return 0;
}

/* The largest |autograd - closed form| of each function's derivative. */
static void compare(const table *t, double *worst)
{
    for (int f = 0; f < FUNCTIONS; f++) worst[f] = 0;
    for (int r = 0; r < N; r++) {
        double x = t->x[r], s = 1 / (1 + exp(-x)), th = tanh(x);
        double want[3] = {s * (1 - s), 1 - th * th, x > 0 ? 1 : 0};
        for (int f = SIGMOID; f <= RELU; f++)
            worst[f] = fmax(worst[f], fabs(t->deriv[f][r] - want[f]));
        /* softmax of (x, 1, -1) in closed form */
        double e[3] = {exp(x), exp(1.0), exp(-1.0)};
        double sum = e[0] + e[1] + e[2];
        for (int i = 0; i < 3; i++) {
            double si = e[i] / sum, s0 = e[0] / sum;
            double d = si * ((i == 0) - s0);
            worst[SOFTMAX] = fmax(worst[SOFTMAX], fabs(t->jac[i][r] - d));
        }
    }
}

static int write_csv(const char *path, const table *t)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    fprintf(f, "x,sigmoid,d_sigmoid,tanh,d_tanh,relu,d_relu,softmax0,"
               "softmax1,softmax2,d_softmax0_dx,d_softmax1_dx,d_softmax2_dx\n");
    for (int r = 0; r < N; r++) {
        fprintf(f, "%.4f", t->x[r]);
        for (int k = 0; k < 3; k++)
            fprintf(f, ",%.10g,%.10g", t->value[k][r], t->deriv[k][r]);
        for (int i = 0; i < 3; i++) fprintf(f, ",%.10g", t->soft[i][r]);
        for (int i = 0; i < 3; i++) fprintf(f, ",%.10g", t->jac[i][r]);
        fprintf(f, "\n");
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* The gnuplot script: four panels, each function and its derivative. */
static const char *const plot_script =
    "set terminal svg size 1000,760 dynamic\n"
    "set datafile separator ','\n"
    "set key top left\n"
    "set grid\n"
    "set multiplot layout 2,2\n"
    "set title 'sigmoid'\n"
    "plot CSV using 1:2 with lines title 's', "
    "CSV using 1:3 with lines title \"s' = s(1-s)\"\n"
    "set title 'tanh'\n"
    "plot CSV using 1:4 with lines title 't', "
    "CSV using 1:5 with lines title \"t' = 1-t^2\"\n"
    "set title 'ReLU'\n"
    "plot CSV using 1:6 with lines title 'relu', "
    "CSV using 1:7 with lines title \"relu' = step\"\n"
    "set title 'softmax of (x, 1, -1)'\n"
    "set key center left\n"
    "plot for [i=0:2] CSV using 1:(column(8+i)) with lines title "
    "sprintf('s%d', i), "
    "for [i=0:2] CSV using 1:(column(11+i)) with lines dashtype 2 title "
    "sprintf('ds%d/dx', i)\n"
    "unset multiplot\n";

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    static table t;
    for (int r = 0; r < N; r++) t.x[r] = (r - (N - 1) / 2) / 20.0;
    ag_arena *a = ag_arena_new();
    int status = 0;
    for (int f = SIGMOID; f <= RELU && !status; f++)
        status = elementwise(a, t.x, f, t.value[f], t.deriv[f]);
    if (!status) status = softmax_column(a, t.x, &t);
    ag_arena_free(a);
    if (status) {
        fprintf(stderr, "%s\n", ag_last_error());
        return 1;
    }

    double worst[FUNCTIONS];
    compare(&t, worst);
    int failed = 0;
    printf("largest |autograd - closed form| of the derivative on [-6, 6]:\n");
    for (int f = 0; f < FUNCTIONS; f++) {
        printf("  %-8s %.3g\n", names[f], worst[f]);
        failed |= !(worst[f] <= TOLERANCE);
    }

    char csv[1024], svg[1024];
    snprintf(csv, sizeof csv, "%s/activations.csv", dir);
    snprintf(svg, sizeof svg, "%s/activations.svg", dir);
    if (write_csv(csv, &t)) return 1;
    printf("wrote %s\n", csv);
    plot_csv(csv, svg, plot_script);
    return failed;
}
