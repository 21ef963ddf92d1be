/* clip.c: clipping gradients by their global 2-norm, as
 * torch.nn.utils.clip_grad_norm_ (1.13). */
#include "optim.h"

#include "../fpenv.h"

#include <math.h>

/* Sum of the squares of t's values, accumulated in double. */
static double sum_squares(const ag_tensor *t)
{
    double sum = 0;
    AG_DISPATCH_FLOAT(t->dtype, {
        const real *x = t->data;
        for (int64_t i = 0; i < t->numel; i++) sum += (double)x[i] * x[i];
    });
    return sum;
}

/* Multiplies t's values by c. */
static void scale(ag_tensor *t, double c)
{
    AG_DISPATCH_FLOAT(t->dtype, {
        real *x = t->data;
        for (int64_t i = 0; i < t->numel; i++) x[i] *= (real)c;
    });
}

double ag_clip_grad_norm(ag_params *params, double max_norm)
{
    if (!params) {
        ag__error("ag_clip_grad_norm", "parameter set is NULL");
        return -1;
    }
    if (ag__check_nonneg("ag_clip_grad_norm", "max_norm", max_norm)) return -1;
    int count = ag_params_count(params);
    ag_fp_mode caller = ag__fp_enter_flush(); /* as the optimizers' steps */
    double sum = 0;
    for (int i = 0; i < count; i++) {
        ag_tensor *g = ag_grad(ag_params_tensor(params, i));
        if (g) sum += sum_squares(g);
    }
    double total = sqrt(sum);
    double coef = max_norm / (total + 1e-6);
    for (int i = 0; isfinite(total) && coef < 1 && i < count; i++) {
        ag_tensor *g = ag_grad(ag_params_tensor(params, i));
        if (g) scale(g, coef);
    }
    ag__fp_leave(caller);
    return total;
}
