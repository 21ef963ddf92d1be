/* derivatives.c: gradients of gradients and forward mode on y = tanh(x):
 * the first three derivatives by nested ag_gradients(create_graph), a
 * Hessian-vector product, and a tangent carried by the forward pass, each
 * against its closed form; the program shown in README.md. */
#include <autograd.h>
#include <math.h>
#include <stdio.h>

/* f(x) = sum(tanh(x)^3) / 3, whose Hessian is diagonal. */
static ag_tensor *f(ag_arena *a, ag_tensor *const *x, int n, void *user)
{
    (void)n, (void)user;
    ag_tensor *t = ag_tanh(a, x[0]);
    return ag_scale(a, ag_sum(a, ag_pow(a, t, 3), AG_ALL, false), 1.0 / 3);
}

int main(void)
{
    ag_arena *a = ag_arena_new();
    const double xs[3] = {-1, 0.25, 2};
    ag_tensor *x = ag_from_data(a, AG_F64, 1, (int64_t[]){3}, xs);
    ag_requires_grad(x, true);

    /* d^k/dx^k sum(tanh x), k = 1, 2, 3: each a graph differentiated again */
    ag_tensor *d[4] = {ag_sum(a, ag_tanh(a, x), AG_ALL, false)};
    for (int k = 1; k <= 3; k++) {
        ag_tensor *s = k == 1 ? d[0] : ag_sum(a, d[k - 1], AG_ALL, false);
        if (!s || ag_gradients(a, 1, &s, NULL, 1, &x, true, &d[k])) {
            fprintf(stderr, "%s\n", ag_last_error());
            return 1;
        }
    }
    /* H v of f, and J v of tanh by forward mode, for v = (1, 2, 3) */
    ag_tensor *v =
        ag_from_data(a, AG_F64, 1, (int64_t[]){3}, (double[]){1, 2, 3});
    ag_tensor *hv, *dual = ag_make_dual(a, x, v);
    ag_tensor *jv = ag_tangent(ag_tanh(a, dual));
    if (ag_hvp(a, f, 1, &x, NULL, &v, NULL, &hv) || !jv) {
        fprintf(stderr, "%s\n", ag_last_error());
        return 1;
    }
    double worst = 0;
    for (int i = 0; i < 3; i++) {
        double t = tanh(xs[i]), s = 1 - t * t; /* tanh' = 1 - tanh^2 */
        double want[4] = {0, s, -2 * t * s, s * (6 * t * t - 2)};
        double got[4] = {0};
        for (int k = 1; k <= 3; k++) {
            got[k] = ((double *)ag_data(d[k]))[i];
            worst = fmax(worst, fabs(got[k] - want[k]));
        }
        /* f'' = d/dx (t^2 s) = 2 t s^2 - 2 t^3 s */
        double h = 2 * t * s * s - 2 * t * t * t * s;
        double vi = ((double *)ag_data(v))[i];
        worst = fmax(worst, fabs(((double *)ag_data(hv))[i] - h * vi));
        worst = fmax(worst, fabs(((double *)ag_data(jv))[i] - s * vi));
        printf("x %5.2f  d1 %9.6f  d2 %9.6f  d3 %9.6f  Hv %9.6f  Jv %9.6f\n",
               xs[i], got[1], got[2], got[3], ((double *)ag_data(hv))[i],
               ((double *)ag_data(jv))[i]);
    }
    printf("largest difference from the closed forms: %.3g\n", worst);
    ag_arena_free(a);
    return worst < 1e-12 ? 0 : 1;
}
