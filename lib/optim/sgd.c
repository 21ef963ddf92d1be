/* sgd.c: stochastic gradient descent with momentum, dampening, Nesterov
 * momentum and weight decay, as torch.optim.SGD (1.13). */
#include "optim.h"

#include <math.h>

ag_sgd_options ag_sgd_defaults(double lr)
{
    return (ag_sgd_options){.lr = lr};
}

/* One SGD update of slot s (its steps already count this one):
 *   g = grad + wd * p
 *   b = g at the parameter's first step, else mu * b + (1 - d) * g
 *   g = g + mu * b (Nesterov) or b;  p = p - lr * g */
AG_KERNEL static void sgd_update(const ag_optimizer *opt, const ag_opt_slot *s,
                                 const ag_tensor *grad, int64_t lo, int64_t hi)
{
    const ag_sgd_options *o = &opt->options.sgd;
    const bool first = s->steps == 1, nesterov = o->nesterov;
    int64_t n = hi - lo;
    /* One loop per case, each without a branch inside, so that each is
     * vectorized (one loop with the cases inside ran element by element). */
    AG_DISPATCH_FLOAT(s->param->dtype, {
        real *restrict p = (real *)s->param->data + lo;
        real *restrict b = s->state[0] ? (real *)s->state[0] + lo : NULL;
        const real *restrict gr = (const real *)grad->data + lo;
        const real lr = (real)opt->lr, wd = (real)o->weight_decay;
        const real mu = (real)o->momentum, keep = (real)(1 - o->dampening);
        if (!b)
            for (int64_t i = 0; i < n; i++) p[i] -= lr * (gr[i] + wd * p[i]);
        else if (first)
            for (int64_t i = 0; i < n; i++) {
                real g = gr[i] + wd * p[i];
                b[i] = g;
                p[i] -= lr * (nesterov ? g + mu * g : g);
            }
        else if (nesterov)
            for (int64_t i = 0; i < n; i++) {
                real g = gr[i] + wd * p[i];
                real m = mu * b[i] + keep * g;
                b[i] = m;
                p[i] -= lr * (g + mu * m);
            }
        else
            for (int64_t i = 0; i < n; i++) {
                real m = mu * b[i] + keep * (gr[i] + wd * p[i]);
                b[i] = m;
                p[i] -= lr * m;
            }
    });
}

ag_optimizer *ag_sgd_new(ag_arena *a, ag_params *params,
                         const ag_sgd_options *options)
{
    const char *fn = "ag_sgd_new";
    if (!options) {
        ag__error(fn, "options are NULL (SGD has no default learning rate)");
        return NULL;
    }
    const ag_sgd_options *o = options;
    if (ag__check_nonneg(fn, "learning rate", o->lr) ||
        ag__check_nonneg(fn, "momentum", o->momentum) ||
        ag__check_nonneg(fn, "weight decay", o->weight_decay))
        return NULL;
    if (!isfinite(o->dampening)) {
        ag__error(fn, "dampening is %g; it must be finite", o->dampening);
        return NULL;
    }
    if (o->nesterov && (o->momentum <= 0 || o->dampening != 0)) {
        ag__error(fn,
                  "Nesterov momentum needs momentum > 0 and dampening 0, "
                  "got momentum %g and dampening %g",
                  o->momentum, o->dampening);
        return NULL;
    }
    ag_optimizer *opt = ag__optimizer_new(fn, a, params, AG_OPT_SGD,
                                          o->momentum != 0, o->lr, sgd_update);
    if (opt) opt->options.sgd = *o;
    return opt;
}
