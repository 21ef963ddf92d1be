/* main.c: a program built by tests/cmake/CMakeLists.txt against the
 * installed library (find_package(autograd)): the gradient of
 * f(x) = sum(x * x) checked against central finite differences of f, both
 * computed by the library, and printed. Exits 1 when they differ. */
#include <autograd.h>
#include <math.h>
#include <stdio.h>

enum { N = 3 };

/* f(x) = sum(x * x) at xs; NAN (with the library's error printed) when an
 * op fails. */
static double f(ag_arena *a, const double *xs, ag_tensor **x_out,
                ag_tensor **y_out)
{
    ag_tensor *x = ag_from_data(a, AG_F64, 1, (int64_t[]){N}, xs);
    if (x && x_out) ag_requires_grad(x, true);
    ag_tensor *y = ag_sum(a, ag_mul(a, x, x), AG_ALL, false);
    if (!y) {
        fprintf(stderr, "%s\n", ag_last_error());
        return NAN;
    }
    if (x_out) *x_out = x;
    if (y_out) *y_out = y;
    return ag_item(y);
}

int main(void)
{
    ag_arena *a = ag_arena_new();
    double xs[N] = {-1.5, 0.25, 2.0};
    ag_tensor *x = NULL, *y = NULL;
    if (!a || isnan(f(a, xs, &x, &y)) || ag_backward(y)) {
        fprintf(stderr, "cmake test: %s\n", ag_last_error());
        return 1;
    }
    const double *g = ag_data(ag_grad(x));
    int bad = 0;
    for (int i = 0; i < N; i++) {
        const double h = 1e-6, xi = xs[i];
        xs[i] = xi + h;
        double up = f(a, xs, NULL, NULL);
        xs[i] = xi - h;
        double down = f(a, xs, NULL, NULL);
        xs[i] = xi;
        double fd = (up - down) / (2 * h);
        printf("x = %5.2f  d(x^2)/dx = %.6f  finite difference %.6f\n", xi,
               g[i], fd);
        bad |= !(fabs(g[i] - fd) < 1e-6);
    }
    ag_arena_free(a);
    return bad;
}
