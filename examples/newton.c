/* newton.c: second-order optimisation with Hessian-vector products.
 * Logistic regression on points from two Gaussians in 10-D (labels +-1,
 * a column of ones for the bias), with a small L2 term so that the
 * Hessian is positive definite:
 *
 *   f(w) = mean_i log(1 + exp(-y_i x_i . w)) + lambda / 2 |w|^2
 *
 * f is an ag_fn of the weight vector. Newton's method solves H d = -g at
 * each step by conjugate gradient, whose only access to H is ag_hvp
 * (double backward: H is never formed), and takes d with a backtracking
 * line search. Gradient descent, for comparison, steps by 1 / L, where L
 * is the largest eigenvalue of H at w = 0 (found by power iteration with
 * ag_hvp), which bounds H everywhere since s (1 - s) <= 1/4. Prints the
 * loss and gradient norm of both methods per iteration and how many
 * iterations each needs to reach |g| < 1e-8, then checks ag_hvp against
 * the closed form H v = X^T diag(s (1 - s)) X v / N + lambda v. Both
 * methods' loss and gradient norm per iteration go to a training curve
 * (CSV, and SVG when gnuplot is on PATH).
 *
 * Run: ./build/examples/newton [--gd-iters N] [--seed N] [--curve FILE]
 *      (defaults: 5000 gradient descent iterations at most, seed 1,
 *      newton_curve.csv)
 * Exits non-zero if Newton does not reach |g| < 1e-8 within 50 steps,
 * if both reach it at losses more than 1e-12 apart, or if ag_hvp differs
 * from the closed form. */
#include "plot.h"
#include "progress.h"
#include <autograd.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLES 200
#define DIM 10
#define P (DIM + 1) /* weights and the bias */
#define LAMBDA 1e-3
#define TOLERANCE 1e-8 /* on the gradient's 2-norm */
#define NEWTON_STEPS 50
#define HVP_TOLERANCE 1e-12 /* relative, ag_hvp against the closed form */

typedef struct {
    ag_tensor *x; /* (SAMPLES, P), the last column ones */
    ag_tensor *y; /* (SAMPLES, 1), +-1 */
} problem;

static int fail(const char *what)
{
    fprintf(stderr, "newton: %s: %s\n", what, ag_last_error());
    return 1;
}

/* f(w) for w (P, 1) = inputs[0]; the ag_fn that ag_vjp and ag_hvp take. */
static ag_tensor *logistic_loss(ag_arena *a, ag_tensor *const *inputs, int n,
                                void *user)
{
    (void)n;
    const problem *p = user;
    ag_tensor *w = inputs[0];
    ag_tensor *margin = ag_mul(a, p->y, ag_matmul(a, p->x, w));
    ag_tensor *nll = ag_log(a, ag_shift(a, ag_exp(a, ag_neg(a, margin)), 1));
    ag_tensor *l2 = ag_sum(a, ag_mul(a, w, w), AG_ALL, false);
    return ag_add(a, ag_mean(a, nll, AG_ALL, false),
                  ag_scale(a, l2, LAMBDA / 2));
}

static ag_tensor *column(ag_arena *a, const double *v)
{
    return ag_from_data(a, AG_F64, 2, (int64_t[]){P, 1}, v);
}

/* f(w) and its gradient g, by ag_vjp. Returns 0 or -1 (the library's
 * error); resets `a`. */
static int loss_and_gradient(ag_arena *a, problem *p, const double *w,
                             double *loss, double *g)
{
    ag_tensor *wt = column(a, w), *out, *grad;
    if (!wt || ag_vjp(a, logistic_loss, 1, &wt, p, NULL, &out, &grad))
        return -1;
    *loss = ag_item(out);
    memcpy(g, ag_data(grad), sizeof(double) * P);
    ag_arena_reset(a);
    return 0;
}

/* f(w) alone (for the line search). NaN on error; resets `a`. */
static double loss_at(ag_arena *a, problem *p, const double *w)
{
    ag_tensor *wt = column(a, w);
    double f = wt ? ag_item(logistic_loss(a, &wt, 1, p)) : NAN;
    ag_arena_reset(a);
    return f;
}

/* hv = H(w) v by ag_hvp. Returns 0 or -1; resets `a`. */
static int hessian_times(ag_arena *a, problem *p, const double *w,
                         const double *v, double *hv)
{
    ag_tensor *wt = column(a, w), *vt = column(a, v), *out;
    if (!wt || !vt || ag_hvp(a, logistic_loss, 1, &wt, p, &vt, NULL, &out))
        return -1;
    memcpy(hv, ag_data(out), sizeof(double) * P);
    ag_arena_reset(a);
    return 0;
}

static double dot(const double *a, const double *b)
{
    double s = 0;
    for (int i = 0; i < P; i++) s += a[i] * b[i];
    return s;
}

/* Solves H(w) d = -g by conjugate gradient from d = 0 until the residual
 * is below min(0.1, |g|) |g| (which keeps Newton's convergence quadratic)
 * or 2 P products were taken. Returns the Hessian-vector products used,
 * or -1. */
static int newton_direction(ag_arena *a, problem *p, const double *w,
                            const double *g, double *d)
{
    double r[P], q[P], hq[P], gnorm = sqrt(dot(g, g));
    double goal = fmin(0.1, gnorm) * gnorm;
    for (int i = 0; i < P; i++) d[i] = 0, r[i] = -g[i], q[i] = r[i];
    double rr = dot(r, r);
    int products = 0;
    while (sqrt(rr) > goal && products < 2 * P) {
        if (hessian_times(a, p, w, q, hq)) return -1;
        products++;
        double alpha = rr / dot(q, hq);
        for (int i = 0; i < P; i++) d[i] += alpha * q[i], r[i] -= alpha * hq[i];
        double rr_next = dot(r, r);
        for (int i = 0; i < P; i++) q[i] = r[i] + rr_next / rr * q[i];
        rr = rr_next;
    }
    return products;
}

/* One Newton step from w with loss f and gradient g: the direction by
 * conjugate gradient, then the largest t in 1, 1/2, 1/4, ... with
 * f(w + t d) <= f + 1e-4 t g.d (Armijo). Returns the Hessian-vector
 * products used, or -1. */
static int newton_step(ag_arena *a, problem *p, double *w, double f,
                       const double *g)
{
    double d[P], trial[P];
    int products = newton_direction(a, p, w, g, d);
    if (products < 0) return -1;
    double slope = dot(g, d);
    for (double t = 1; t > 1e-10; t /= 2) {
        for (int i = 0; i < P; i++) trial[i] = w[i] + t * d[i];
        double ft = loss_at(a, p, trial);
        if (isnan(ft)) return -1;
        if (ft <= f + 1e-4 * t * slope) break;
    }
    memcpy(w, trial, sizeof trial);
    return products;
}

/* The largest eigenvalue of H(0) by power iteration (H is symmetric
 * positive definite). NaN on error. */
static double largest_eigenvalue(ag_arena *a, problem *p)
{
    double zero[P] = {0}, v[P], hv[P], lambda = 0;
    for (int i = 0; i < P; i++) v[i] = 1 / sqrt((double)P);
    for (int it = 0; it < 100; it++) {
        if (hessian_times(a, p, zero, v, hv)) return NAN;
        lambda = dot(v, hv);
        double norm = sqrt(dot(hv, hv));
        for (int i = 0; i < P; i++) v[i] = hv[i] / norm;
    }
    return lambda;
}

/* The largest |ag_hvp - closed form| / |closed form| at w for a random v:
 * H v = X^T (s (1 - s) * (X v)) / N + lambda v, s = sigmoid(y x.w). */
static double check_hvp(ag_arena *a, problem *p, const double *w, ag_rng *rng)
{
    double v[P], hv[P], exact[P];
    for (int i = 0; i < P; i++)
        v[i] = ag_rng_normal(rng), exact[i] = LAMBDA * v[i];
    if (hessian_times(a, p, w, v, hv)) return NAN;
    const double *x = ag_data(p->x), *y = ag_data(p->y);
    for (int n = 0; n < SAMPLES; n++) {
        const double *row = x + n * P;
        double s = 1 / (1 + exp(-y[n] * dot(row, w)));
        double c = s * (1 - s) * dot(row, v) / SAMPLES;
        for (int i = 0; i < P; i++) exact[i] += c * row[i];
    }
    double worst = 0, scale = sqrt(dot(exact, exact));
    for (int i = 0; i < P; i++)
        worst = fmax(worst, fabs(hv[i] - exact[i]) / scale);
    return worst;
}

/* Two Gaussians of unit variance with means +-0.5 in every coordinate. */
static int make_problem(ag_arena *a, uint64_t seed, problem *p)
{
    static double x[SAMPLES * P], y[SAMPLES];
    ag_rng rng = ag_rng_seed(seed);
    for (int n = 0; n < SAMPLES; n++) {
        y[n] = n % 2 ? 1 : -1;
        for (int i = 0; i < DIM; i++)
            x[n * P + i] = 0.5 * y[n] + ag_rng_normal(&rng);
        x[n * P + DIM] = 1;
    }
    p->x = ag_from_data(a, AG_F64, 2, (int64_t[]){SAMPLES, P}, x);
    p->y = ag_from_data(a, AG_F64, 2, (int64_t[]){SAMPLES, 1}, y);
    return p->x && p->y ? 0 : -1;
}

/* Newton's run: the loss and gradient norm at each iterate. */
typedef struct {
    double loss[NEWTON_STEPS + 1], gnorm[NEWTON_STEPS + 1];
    int iterations; /* to reach TOLERANCE, or -1 */
    int products;   /* Hessian-vector products (Newton) */
    double seconds;
} newton_run;

int main(int argc, char **argv)
{
    long gd_iters = 5000;
    uint64_t seed = 1;
    const char *curve_path = "newton_curve.csv";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--gd-iters") == 0)
            gd_iters = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--seed") == 0)
            seed = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--curve") == 0)
            curve_path = argv[i + 1];
        else
            gd_iters = 0;
    }
    if (gd_iters < 1 || argc % 2 == 0) {
        fprintf(stderr,
                "usage: newton [--gd-iters N] [--seed N] [--curve FILE]\n");
        return 2;
    }
    ag_arena *data = ag_arena_new(), *work = ag_arena_new();
    problem p;
    if (!data || !work || make_problem(data, seed, &p))
        return fail("making the data");
    printf("logistic regression: %d points in %d-D, lambda %g, stop at "
           "|g| < %g\n",
           SAMPLES, DIM, LAMBDA, TOLERANCE);

    /* Newton-CG from w = 0. */
    newton_run nt = {.iterations = -1};
    double w[P] = {0}, g[P], f;
    double start = progress_now();
    for (int k = 0; k <= NEWTON_STEPS; k++) {
        if (loss_and_gradient(work, &p, w, &f, g)) return fail("Newton");
        nt.loss[k] = f, nt.gnorm[k] = sqrt(dot(g, g));
        if (nt.gnorm[k] < TOLERANCE) {
            nt.iterations = k;
            break;
        }
        if (k == NEWTON_STEPS) break;
        int products = newton_step(work, &p, w, f, g);
        if (products < 0) return fail("Newton step");
        nt.products += products;
    }
    nt.seconds = progress_now() - start;
    double newton_w[P];
    memcpy(newton_w, w, sizeof w);

    /* Gradient descent from w = 0 with step 1 / L. */
    double L = largest_eigenvalue(work, &p);
    if (isnan(L)) return fail("power iteration");
    start = progress_now();
    printf("gradient descent step 1/L, L = %.4f (largest eigenvalue of "
           "H(0), by power iteration with ag_hvp)\n\n",
           L);
    printf("%6s  %-24s  %-24s\n", "", "Newton-CG", "gradient descent");
    printf("%6s  %12s %11s  %12s %11s\n", "iter", "loss", "|g|", "loss", "|g|");
    int gd_reached = -1;
    double gd_f = 0, gd_g = 0;
    memset(w, 0, sizeof w);
    plot_curve curve;
    plot_curve_open(&curve, curve_path, "Newton-CG against gradient descent",
                    "iteration",
                    "newton_loss,newton_grad_norm,gd_loss,gd_grad_norm");
    for (long k = 0; k <= gd_iters; k++) {
        if (loss_and_gradient(work, &p, w, &gd_f, g)) return fail("descent");
        gd_g = sqrt(dot(g, g));
        bool newton_row =
            k <= NEWTON_STEPS && (nt.iterations < 0 || k <= nt.iterations);
        bool done = gd_g < TOLERANCE || k == gd_iters;
        plot_curve_add(&curve, (double)k,
                       (double[]){newton_row ? nt.loss[k] : NAN,
                                  newton_row ? nt.gnorm[k] : NAN, gd_f, gd_g});
        if (newton_row || k < 10 || k % 100 == 0 || done) {
            printf("%6ld  ", k);
            if (newton_row)
                printf("%12.9f %11.3e  ", nt.loss[k], nt.gnorm[k]);
            else
                printf("%24s  ", "");
            printf("%12.9f %11.3e\n", gd_f, gd_g);
        }
        if (gd_g < TOLERANCE) {
            gd_reached = (int)k;
            break;
        }
        for (int i = 0; i < P; i++) w[i] -= g[i] / L;
    }
    double gd_seconds = progress_now() - start;
    plot_curve_close(&curve);

    printf("\n");
    if (nt.iterations >= 0)
        printf("Newton-CG: |g| < %g after %d iterations (%d Hessian-vector "
               "products) in %.2f ms\n",
               TOLERANCE, nt.iterations, nt.products, 1e3 * nt.seconds);
    else
        printf("Newton-CG: |g| = %.3e after %d iterations: not converged\n",
               nt.gnorm[NEWTON_STEPS], NEWTON_STEPS);
    if (gd_reached >= 0)
        printf("gradient descent: |g| < %g after %d iterations in %.2f ms\n",
               TOLERANCE, gd_reached, 1e3 * gd_seconds);
    else
        printf("gradient descent: |g| = %.3e after %ld iterations (%.2f ms): "
               "not converged within the budget\n",
               gd_g, gd_iters, 1e3 * gd_seconds);
    double newton_f =
        nt.loss[nt.iterations >= 0 ? nt.iterations : NEWTON_STEPS];
    printf("final loss: Newton %.12f, gradient descent %.12f\n", newton_f,
           gd_f);

    ag_rng rng = ag_rng_seed(seed + 1);
    double hvp_error = check_hvp(work, &p, newton_w, &rng);
    if (isnan(hvp_error)) return fail("checking ag_hvp");
    printf("ag_hvp against the closed form at Newton's solution: relative "
           "error %.3e\n",
           hvp_error);
    ag_arena_free(work);
    ag_arena_free(data);

    int status = 0;
    if (nt.iterations < 0) {
        fprintf(stderr, "newton: Newton's method did not converge\n");
        status = 1;
    }
    if (gd_reached >= 0 && !(fabs(newton_f - gd_f) <= 1e-12)) {
        fprintf(stderr, "newton: the two methods end at different losses\n");
        status = 1;
    }
    if (!(hvp_error <= HVP_TOLERANCE)) {
        fprintf(stderr,
                "newton: ag_hvp differs from the closed form by "
                "%.3e (above %g)\n",
                hvp_error, HVP_TOLERANCE);
        status = 1;
    }
    return status;
}
