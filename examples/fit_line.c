/* fit_line.c: fit y = 2x - 1 with one weight and one bias by gradient
 * descent; the program shown in README.md. */
#include <autograd.h>
#include <math.h>
#include <stdio.h>

int main(void)
{
    ag_arena *params = ag_arena_new(), *step = ag_arena_new();
    ag_tensor *w = ag_zeros(params, AG_F64, 2, (int64_t[]){1, 1});
    ag_tensor *b = ag_zeros(params, AG_F64, 1, (int64_t[]){1});
    ag_requires_grad(w, true);
    ag_requires_grad(b, true);
    const double xs[4] = {0, 1, 2, 3}, ys[4] = {-1, 1, 3, 5};

    for (int it = 0; it < 200; it++) {
        ag_tensor *x = ag_from_data(step, AG_F64, 2, (int64_t[]){4, 1}, xs);
        ag_tensor *y = ag_from_data(step, AG_F64, 2, (int64_t[]){4, 1}, ys);
        ag_tensor *pred = ag_add(step, ag_matmul(step, x, w), b);
        ag_tensor *loss = ag_mse_loss(step, pred, y);
        if (!loss || ag_backward(loss)) { /* check once, at the end */
            fprintf(stderr, "%s\n", ag_last_error());
            return 1;
        }
        if (it % 50 == 0) printf("step %3d  loss %.6f\n", it, ag_item(loss));
        ag_tensor *p[2] = {w, b};
        for (int i = 0; i < 2; i++) { /* plain SGD */
            double *v = ag_data(p[i]), *g = ag_data(ag_grad(p[i]));
            v[0] -= 0.05 * g[0];
            ag_zero_grad(p[i]);
        }
        ag_arena_reset(step); /* frees the whole graph */
    }
    double wv = ag_item(w), bv = ag_item(b);
    printf("w = %.4f, b = %.4f\n", wv, bv);
    ag_arena_free(step);
    ag_arena_free(params);
    return fabs(wv - 2) < 0.01 && fabs(bv + 1) < 0.01 ? 0 : 1;
}
