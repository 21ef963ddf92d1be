/* optim.h: what the optimizer files share: the optimizer struct (a kind,
 * its options, the current learning rate, one state slot per parameter),
 * its constructor, and the check of a non-negative finite option. */
#ifndef AG_OPTIM_INTERNAL_H
#define AG_OPTIM_INTERNAL_H

#include "../internal.h"

/* A parameter and its state, allocated once when the optimizer is made. */
typedef struct {
    ag_tensor *param;
    void *state[2]; /* SGD: momentum buffer (or NULL); Adam: m, v. Zeros of
                       the parameter's dtype and element count */
    int64_t steps;  /* updates of this parameter (it is skipped without a
                       gradient), as PyTorch's per-parameter state */
} ag_opt_slot;

typedef enum { AG_OPT_SGD, AG_OPT_ADAM, AG_OPT_ADAMW } ag_opt_kind;

/* Updates elements [lo, hi) of slot s of opt from gradient g (of the
 * parameter's dtype and shape); s->steps already counts this update. Runs
 * on several threads at once for disjoint ranges. */
typedef void ag_opt_update(const ag_optimizer *opt, const ag_opt_slot *s,
                           const ag_tensor *g, int64_t lo, int64_t hi);

struct ag_optimizer {
    ag_opt_kind kind;
    union {
        ag_sgd_options sgd;
        ag_adam_options adam;
    } options; /* as given; options.*.lr is the initial rate */
    double lr; /* the rate of the next step (ag_optimizer_set_lr) */
    int64_t steps;
    ag_opt_update *update;
    int count;
    ag_opt_slot *slots;
};

/* Makes an optimizer of `kind` in `a` for the tensors of `params`, with
 * `buffers` (0 to 2) zeroed state buffers per parameter, the learning rate
 * `lr` and update function `update`; the caller fills in the options.
 * Returns NULL with an error reported as func for a NULL argument, an empty
 * set, or no memory. */
ag_optimizer *ag__optimizer_new(const char *func, ag_arena *a,
                                const ag_params *params, ag_opt_kind kind,
                                int buffers, double lr, ag_opt_update *update);

/* Checks that option `name` of func is finite and >= 0; returns 0, or -1
 * with an error naming func, the option and its value. */
int ag__check_nonneg(const char *func, const char *name, double value);

#endif /* AG_OPTIM_INTERNAL_H */
