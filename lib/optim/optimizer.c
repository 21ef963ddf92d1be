/* optimizer.c: what every optimizer shares: making one with its state
 * slots, the step loop that skips parameters without a gradient, zeroing
 * gradients, and the learning rate and step count. The update rules are in
 * sgd.c and adam.c. */
#include "optim.h"

#include "../fpenv.h"

#include <math.h>

int ag__check_nonneg(const char *func, const char *name, double value)
{
    if (isfinite(value) && value >= 0) return 0;
    ag__error(func, "%s is %g; it must be finite and >= 0", name, value);
    return -1;
}

/* Points slot s at `param` with `buffers` zeroed state buffers from `a`. */
static int slot_init(ag_arena *a, ag_opt_slot *s, ag_tensor *param, int buffers)
{
    *s = (ag_opt_slot){.param = param};
    size_t bytes = ag__tensor_bytes(param);
    for (int k = 0; k < buffers; k++) {
        s->state[k] = ag__arena_alloc(a, bytes, 64);
        if (!s->state[k]) return -1;
        memset(s->state[k], 0, bytes);
    }
    return 0;
}

ag_optimizer *ag__optimizer_new(const char *func, ag_arena *a,
                                const ag_params *params, ag_opt_kind kind,
                                int buffers, double lr, ag_opt_update *update)
{
    if (!a || !params) {
        ag__error(func, "%s is NULL", !a ? "arena" : "parameter set");
        return NULL;
    }
    int count = ag_params_count(params);
    if (count == 0) {
        ag__error(func, "the parameter set is empty");
        return NULL;
    }
    ag_optimizer *opt = ag__arena_alloc(a, sizeof *opt, _Alignof(ag_optimizer));
    ag_opt_slot *slots = ag__arena_alloc(a, (size_t)count * sizeof *slots,
                                         _Alignof(ag_opt_slot));
    for (int i = 0; opt && slots && i < count; i++)
        if (slot_init(a, &slots[i], ag_params_tensor(params, i), buffers))
            slots = NULL;
    if (!opt || !slots) {
        ag__error(func, "out of memory for the state of %d tensors", count);
        return NULL;
    }
    *opt = (ag_optimizer){.kind = kind,
                          .lr = lr,
                          .update = update,
                          .count = count,
                          .slots = slots};
    return opt;
}

/* One parameter's update, split over the library's threads. */
typedef struct {
    const ag_optimizer *opt;
    const ag_opt_slot *slot;
} update_job;

static void update_range(void *job_ptr, int64_t lo, int64_t hi)
{
    const update_job *job = job_ptr;
    job->opt->update(job->opt, job->slot, job->slot->param->grad, lo, hi);
}

int ag_optimizer_step(ag_optimizer *opt)
{
    if (!opt) {
        ag__error("ag_optimizer_step", "optimizer is NULL");
        return -1;
    }
    /* Moments and momentum of a weight whose gradient is rarely nonzero
     * decay by beta every step, through the subnormal range, where Intel
     * CPUs take a microcode assist per operation: flushed, they reach zero
     * instead (the workers run in this thread's mode). */
    ag_fp_mode caller = ag__fp_enter_flush();
    for (int i = 0; i < opt->count; i++) {
        ag_opt_slot *s = &opt->slots[i];
        if (!s->param->grad) continue; /* as PyTorch skips grad None */
        s->steps++;
        update_job job = {opt, s};
        ag__parallel_for(s->param->numel, update_range, &job);
    }
    ag__fp_leave(caller);
    opt->steps++;
    return 0;
}

void ag_optimizer_zero_grad(ag_optimizer *opt)
{
    for (int i = 0; opt && i < opt->count; i++)
        ag_zero_grad(opt->slots[i].param);
}

void ag_optimizer_clear_grad(ag_optimizer *opt)
{
    for (int i = 0; opt && i < opt->count; i++)
        ag_clear_grad(opt->slots[i].param);
}

double ag_optimizer_lr(const ag_optimizer *opt)
{
    return opt ? opt->lr : NAN;
}

int ag_optimizer_set_lr(ag_optimizer *opt, double lr)
{
    if (!opt) {
        ag__error("ag_optimizer_set_lr", "optimizer is NULL");
        return -1;
    }
    if (ag__check_nonneg("ag_optimizer_set_lr", "learning rate", lr)) return -1;
    opt->lr = lr;
    return 0;
}

int64_t ag_optimizer_steps(const ag_optimizer *opt)
{
    return opt ? opt->steps : 0;
}
