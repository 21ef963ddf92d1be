/* adam.c: Adam (with L2 weight decay added to the gradient) and AdamW (with
 * decoupled weight decay), as torch.optim.Adam and AdamW (1.13), without
 * amsgrad. */
#include "optim.h"

#include <tgmath.h>

ag_adam_options ag_adam_defaults(void)
{
    return (ag_adam_options){
        .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
}

ag_adam_options ag_adamw_defaults(void)
{
    ag_adam_options o = ag_adam_defaults();
    o.weight_decay = 1e-2;
    return o;
}

/* One update of slot s at its step t = s->steps:
 *   Adam:  g = grad + wd * p        AdamW: p = p * (1 - lr * wd), g = grad
 *   m = b1 * m + (1 - b1) * g,  v = b2 * v + (1 - b2) * g^2
 *   p = p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps) */
AG_KERNEL static void adam_update(const ag_optimizer *opt, const ag_opt_slot *s,
                                  const ag_tensor *grad, int64_t lo, int64_t hi)
{
    const ag_adam_options *o = &opt->options.adam;
    bool decoupled = opt->kind == AG_OPT_ADAMW;
    double t = (double)s->steps;
    double step_size = opt->lr / (1 - pow(o->beta1, t));
    double bc2_sqrt = sqrt(1 - pow(o->beta2, t));
    int64_t n = hi - lo;
    AG_DISPATCH_FLOAT(s->param->dtype, {
        real *restrict p = (real *)s->param->data + lo;
        real *restrict m = (real *)s->state[0] + lo;
        real *restrict v = (real *)s->state[1] + lo;
        const real *restrict gr = (const real *)grad->data + lo;
        const real b1 = (real)o->beta1, b2 = (real)o->beta2;
        const real c1 = (real)(1 - o->beta1), c2 = (real)(1 - o->beta2);
        const real wd = (real)o->weight_decay, eps = (real)o->eps;
        const real decay = (real)(1 - opt->lr * o->weight_decay);
        for (int64_t i = 0; i < n; i++) {
            real g = gr[i];
            if (decoupled)
                p[i] *= decay;
            else
                g += wd * p[i];
            m[i] = b1 * m[i] + c1 * g;
            v[i] = b2 * v[i] + c2 * g * g;
            real denom = sqrt(v[i]) / (real)bc2_sqrt + eps;
            p[i] -= (real)step_size * (m[i] / denom);
        }
    });
}

/* Checks Adam's options and makes the optimizer as func. */
static ag_optimizer *adam_new(const char *func, ag_opt_kind kind, ag_arena *a,
                              ag_params *params, const ag_adam_options *o)
{
    if (ag__check_nonneg(func, "learning rate", o->lr) ||
        ag__check_nonneg(func, "eps", o->eps) ||
        ag__check_nonneg(func, "weight decay", o->weight_decay))
        return NULL;
    const double betas[2] = {o->beta1, o->beta2};
    for (int k = 0; k < 2; k++) {
        if (betas[k] >= 0 && betas[k] < 1) continue;
        ag__error(func, "beta%d is %g; it must be in [0, 1)", k + 1, betas[k]);
        return NULL;
    }
    ag_optimizer *opt =
        ag__optimizer_new(func, a, params, kind, 2, o->lr, adam_update);
    if (opt) opt->options.adam = *o;
    return opt;
}

ag_optimizer *ag_adam_new(ag_arena *a, ag_params *params,
                          const ag_adam_options *options)
{
    ag_adam_options o = options ? *options : ag_adam_defaults();
    return adam_new("ag_adam_new", AG_OPT_ADAM, a, params, &o);
}

ag_optimizer *ag_adamw_new(ag_arena *a, ag_params *params,
                           const ag_adam_options *options)
{
    ag_adam_options o = options ? *options : ag_adamw_defaults();
    return adam_new("ag_adamw_new", AG_OPT_ADAMW, a, params, &o);
}
