/* state.c: an optimizer's state in a safetensors file, so that a resumed
 * run continues the same trajectory. Names follow torch.optim's
 * state_dict(), parameter i by its index in the set the optimizer was made
 * with:
 *   "state.<i>.step"             f64 (1): updates of parameter i
 *   "state.<i>.exp_avg"          Adam's first moment   (parameter's shape
 *   "state.<i>.exp_avg_sq"       Adam's second moment   and dtype)
 *   "state.<i>.momentum_buffer"  SGD's, with momentum
 *   "param_groups.0.lr"          f64 (1): the rate of the next step
 *   "steps"                      f64 (1): calls of ag_optimizer_step
 * and the metadata "optimizer" (sgd, adam or adamw), checked on load. The
 * moment tensors of the set are views of the optimizer's own buffers, so
 * loading writes them in place; the counters are copied back only after the
 * whole file has been checked and read, so a failed load changes
 * nothing. */
#include "optim.h"

#include <math.h>
#include <stdio.h>

static const char *kind_name(ag_opt_kind kind)
{
    return kind == AG_OPT_SGD ? "sgd" : kind == AG_OPT_ADAM ? "adam" : "adamw";
}

/* One counter: a one-element f64 tensor in a holding v. */
static ag_tensor *counter(ag_arena *a, double v)
{
    return ag_full(a, AG_F64, 1, (int64_t[]){1}, v);
}

/* The state of opt as named tensors in arena a (views of the moment
 * buffers, counters as copies), or NULL with an error reported as func.
 * counters[i] is slot i's step counter; counters[count] the rate,
 * counters[count + 1] the step count. */
static ag_params *state_set(const char *func, ag_optimizer *opt, ag_arena *a,
                            ag_tensor **counters)
{
    ag_params *set = ag_params_new(a);
    if (!set) return NULL;
    static const char *const adam_names[2] = {"exp_avg", "exp_avg_sq"};
    int buffers = opt->kind == AG_OPT_SGD ? 1 : 2;
    for (int i = 0; i < opt->count; i++) {
        ag_opt_slot *s = &opt->slots[i];
        char name[64];
        counters[i] = counter(a, (double)s->steps);
        snprintf(name, sizeof name, "state.%d.step", i);
        if (!counters[i] || ag_params_add(set, name, counters[i])) return NULL;
        for (int k = 0; k < buffers && s->state[k]; k++) {
            ag_tensor *view =
                ag__tensor_new(func, a, s->param->dtype, s->param->ndim,
                               s->param->shape, false);
            if (!view) return NULL;
            view->data = s->state[k];
            snprintf(name, sizeof name, "state.%d.%s", i,
                     opt->kind == AG_OPT_SGD ? "momentum_buffer"
                                             : adam_names[k]);
            if (ag_params_add(set, name, view)) return NULL;
        }
    }
    counters[opt->count] = counter(a, opt->lr);
    counters[opt->count + 1] = counter(a, (double)opt->steps);
    if (!counters[opt->count] || !counters[opt->count + 1] ||
        ag_params_add(set, "param_groups.0.lr", counters[opt->count]) ||
        ag_params_add(set, "steps", counters[opt->count + 1]))
        return NULL;
    return set;
}

/* Opens a scratch arena and the counter array for opt. */
static ag_tensor **begin(const char *func, const ag_optimizer *opt,
                         ag_arena **a)
{
    *a = ag_arena_new();
    ag_tensor **counters =
        *a ? ag__arena_alloc(*a, (size_t)(opt->count + 2) * sizeof *counters,
                             _Alignof(ag_tensor *))
           : NULL;
    if (!counters) ag__error(func, "out of memory");
    return counters;
}

int ag_optimizer_save(ag_optimizer *opt, const char *path)
{
    const char *func = "ag_optimizer_save";
    if (!opt || !path) {
        ag__error(func, "%s is NULL", !opt ? "the optimizer" : "the path");
        return -1;
    }
    ag_arena *a;
    ag_tensor **counters = begin(func, opt, &a);
    ag_params *set = counters ? state_set(func, opt, a, counters) : NULL;
    const char *metadata[] = {"optimizer", kind_name(opt->kind), NULL};
    int status = set ? ag_save_safetensors(path, set, metadata) : -1;
    ag_arena_free(a);
    return status;
}

/* A counter read back: a non-negative whole number below 2^53. */
static bool whole(double v)
{
    return v >= 0 && v < 9007199254740992.0 && v == floor(v);
}

int ag_optimizer_load(ag_optimizer *opt, const char *path)
{
    const char *func = "ag_optimizer_load";
    if (!opt || !path) {
        ag__error(func, "%s is NULL", !opt ? "the optimizer" : "the path");
        return -1;
    }
    ag_arena *a;
    ag_tensor **counters = begin(func, opt, &a);
    int status = counters ? 0 : -1;
    /* the kind first: Adam's state does not belong in an SGD optimizer */
    const char *const *meta =
        counters ? ag_load_safetensors_metadata(a, path) : NULL;
    if (counters && !meta) status = -1;
    const char *kind = NULL;
    for (int i = 0; meta && meta[i]; i += 2)
        if (!strcmp(meta[i], "optimizer")) kind = meta[i + 1];
    if (!status && (!kind || strcmp(kind, kind_name(opt->kind)))) {
        ag__error(func, "%s: the file holds the state of %s%s, not of %s", path,
                  kind ? "optimizer " : "no optimizer", kind ? kind : "",
                  kind_name(opt->kind));
        status = -1;
    }
    /* Moments are read into scratch copies first, so that a bad counter
     * below leaves the optimizer as it was. */
    ag_params *set = status ? NULL : state_set(func, opt, a, counters);
    ag_params *copies = set ? ag_params_new(a) : NULL;
    if (!status && !copies) status = -1;
    for (int i = 0; !status && i < ag_params_count(set); i++) {
        ag_tensor *t = ag_params_tensor(set, i);
        ag_tensor *c = ag_detach(a, t);
        if (!c || ag_params_add(copies, ag_params_name(set, i), c)) status = -1;
    }
    if (!status) status = ag_load_safetensors(path, copies);
    if (!status) { /* check the counters before anything changes */
        for (int i = 0; i < ag_params_count(copies) && !status; i++) {
            const char *name = ag_params_name(copies, i);
            ag_tensor *c = ag_params_tensor(copies, i);
            bool is_lr = !strcmp(name, "param_groups.0.lr");
            bool is_counter =
                c->dtype == AG_F64 && c->numel == 1 &&
                (is_lr || !strcmp(name, "steps") || strstr(name, ".step"));
            double v = is_counter ? ((double *)c->data)[0] : 0;
            if (is_counter && (is_lr ? !(isfinite(v) && v >= 0) : !whole(v))) {
                ag__error(func, "%s: %s is %g; it must be %s", path, name, v,
                          is_lr ? "finite and >= 0" : "a whole number >= 0");
                status = -1;
            }
        }
    }
    if (!status) {
        for (int i = 0; i < ag_params_count(set); i++)
            memcpy(ag_params_tensor(set, i)->data,
                   ag_params_tensor(copies, i)->data,
                   ag__tensor_bytes(ag_params_tensor(set, i)));
        for (int i = 0; i < opt->count; i++)
            opt->slots[i].steps = (int64_t)((double *)counters[i]->data)[0];
        opt->lr = ((double *)counters[opt->count]->data)[0];
        opt->steps = (int64_t)((double *)counters[opt->count + 1]->data)[0];
    }
    ag_arena_free(a);
    return status;
}
