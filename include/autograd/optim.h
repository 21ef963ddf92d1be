/* autograd/optim.h: optimizers (SGD, Adam, AdamW), gradient clipping and
 * learning-rate schedules. Included by autograd.h; include that instead.
 *
 * The update rules are PyTorch's (torch.optim, 1.13), with its defaults, so
 * that the same model, data and seed follow the same trajectory. */
#ifndef AUTOGRAD_OPTIM_H
#define AUTOGRAD_OPTIM_H

#include "../autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An optimizer over the tensors of a parameter set; its state (momentum,
 * moments: zeros of each parameter's dtype, f32 or f64) lives in the arena
 * it was made in, allocated once, so steps allocate nothing. State is kept
 * per parameter, as PyTorch does: a parameter skipped for lack of a
 * gradient does not advance, so its first update (momentum buffer = g, Adam
 * step t = 1) comes at the first step where it has a gradient. */
typedef struct ag_optimizer ag_optimizer;

/* SGD: with weight decay wd, momentum mu, dampening d:
 *   g = grad + wd * p
 *   b = g at the parameter's first update, else b = mu * b + (1 - d) * g
 *                                                            (mu != 0)
 *   g = g + mu * b when nesterov, else g = b                 (mu != 0)
 *   p = p - lr * g */
typedef struct {
    double lr;           /* the learning rate */
    double momentum;     /* mu */
    double dampening;    /* d */
    double weight_decay; /* wd */
    bool nesterov;       /* needs momentum > 0 and dampening 0 */
} ag_sgd_options;

/* Adam and AdamW, at step t (from 1):
 *   Adam:  g = grad + wd * p        AdamW: p = p * (1 - lr * wd), g = grad
 *   m = b1 * m + (1 - b1) * g,  v = b2 * v + (1 - b2) * g^2
 *   p = p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps) */
typedef struct {
    double lr;           /* the learning rate */
    double beta1;        /* b1 */
    double beta2;        /* b2 */
    double eps;          /* eps */
    double weight_decay; /* wd */
} ag_adam_options;

/* PyTorch's defaults: SGD lr as given, no momentum, dampening or decay;
 * Adam lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0; AdamW the
 * same with weight decay 1e-2. */
AG_API ag_sgd_options ag_sgd_defaults(double lr);
AG_API ag_adam_options ag_adam_defaults(void);
AG_API ag_adam_options ag_adamw_defaults(void);

/* Makes an optimizer for the tensors `params` holds now (tensors added to
 * the set later are not updated; the tensors must outlive the optimizer),
 * its state and bookkeeping in arena `a` (freed with it). `options` (copied)
 * NULL means the defaults (SGD has no default lr and needs options).
 * Returns NULL and an error for NULL arguments, an empty set, options out
 * of range (lr,
 * momentum, weight decay or eps negative or not finite, dampening not
 * finite, betas outside [0, 1), Nesterov without momentum or with
 * dampening) or no memory. */
AG_API ag_optimizer *ag_sgd_new(ag_arena *a, ag_params *params,
                                const ag_sgd_options *options);
AG_API ag_optimizer *ag_adam_new(ag_arena *a, ag_params *params,
                                 const ag_adam_options *options);
AG_API ag_optimizer *ag_adamw_new(ag_arena *a, ag_params *params,
                                  const ag_adam_options *options);

/* Updates every parameter that has a gradient (parameters whose gradient
 * is NULL are skipped, their state unchanged, as PyTorch skips grad None)
 * in place, with the current learning rate. Gradients are read, not
 * cleared. Allocates nothing. Returns 0, or -1 and an error for NULL.
 *
 * Subnormals: the update runs with subnormal floats flushed to zero (as
 * ag_set_flush_denormal(true), on this thread and on the library's
 * workers), whatever the caller's setting, which it gives back, with the
 * rounding mode and the exception flags, when it returns. A subnormal
 * gradient, parameter, momentum buffer or moment estimate (f32: below
 * 1.18e-38 in magnitude; f64: below 2.2e-308) reads as zero, and one the
 * update would make subnormal is stored as zero. Without this, the
 * moments of a weight whose gradient is zero for many steps (an input
 * pixel that is always 0) decay by beta1 and beta2 every step through the
 * subnormal range, for hundreds of steps, and Intel CPUs take a microcode
 * assist for every operation on them: training slows down as it runs.
 * What it changes: nothing for parameters of ordinary size. A flushed
 * Adam moment m would have moved a parameter by at most
 * lr / (1 - beta1^t) * 1.18e-38 / eps (1.2e-32 with the defaults), a
 * flushed momentum buffer by lr * 1.18e-38; that reaches a parameter's
 * last bit only when the parameter is below about 2e-25 (f32) in
 * magnitude. A flushed v changes sqrt(v) by less than 1.1e-19, far
 * below eps. PyTorch does not flush by default; the trajectories agree to
 * rounding all the same (the fixtures of the test suite). */
AG_API int ag_optimizer_step(ag_optimizer *opt);

/* Zeroes the gradients of the optimizer's parameters (those without one
 * keep none). NULL is ignored. */
AG_API void ag_optimizer_zero_grad(ag_optimizer *opt);

/* Clears the gradients of the optimizer's parameters with ag_clear_grad
 * (PyTorch's zero_grad(set_to_none=True), its default since 2.0): the next
 * backward writes them without a pass to zero them first, and a parameter
 * that pass does not reach has no gradient, so the next step skips it.
 * NULL is ignored. */
AG_API void ag_optimizer_clear_grad(ag_optimizer *opt);

/* The learning rate used by the next step (NaN for NULL), and a way to
 * change it (for schedules). set returns 0, or -1 and an error (the rate
 * unchanged) for NULL or a negative or non-finite rate. */
AG_API double ag_optimizer_lr(const ag_optimizer *opt);
AG_API int ag_optimizer_set_lr(ag_optimizer *opt, double lr);

/* Calls of ag_optimizer_step so far (0 for NULL). */
AG_API int64_t ag_optimizer_steps(const ag_optimizer *opt);

/* Saves the optimizer's state to a safetensors file at `path` (atomically,
 * as ag_save_safetensors), named as torch.optim's state_dict() with
 * parameter i by its index in the set the optimizer was made with:
 * "state.<i>.step" (its update count), "state.<i>.exp_avg" and
 * "state.<i>.exp_avg_sq" (Adam, AdamW) or "state.<i>.momentum_buffer"
 * (SGD with momentum), in the parameter's dtype and shape;
 * "param_groups.0.lr" and "steps" (counts as f64), and the metadata
 * "optimizer" (sgd, adam or adamw). Save it beside the model's checkpoint;
 * ag_optimizer_load into an optimizer of the same kind made for the same
 * parameters (with the model's checkpoint loaded) continues the same
 * trajectory exactly, bit for bit. The options (betas, momentum...) are
 * the optimizer's own, not the file's. Returns 0, or -1 and an error
 * (NULLs, the save's errors). */
AG_API int ag_optimizer_save(ag_optimizer *opt, const char *path);

/* Loads a state saved by ag_optimizer_save. The whole file is checked
 * first (as ag_load_safetensors does, plus the kind of optimizer, the
 * names, dtypes and shapes against the parameters, and counts that are
 * whole numbers >= 0 and a finite rate >= 0); on any error nothing
 * changes. Returns 0, or -1 and an error naming the path. */
AG_API int ag_optimizer_load(ag_optimizer *opt, const char *path);

/* Clips gradients by their global 2-norm, as
 * torch.nn.utils.clip_grad_norm_: with total = sqrt(sum of every squared
 * gradient element), every gradient is multiplied by
 * min(1, max_norm / (total + 1e-6)) (the sum is taken in double, also for
 * f32 gradients). Tensors without a gradient are skipped; with none, the
 * total is 0. A total that is not finite (some gradient holds inf or NaN)
 * is returned with the gradients left as they are, so that the caller can
 * skip the step. Runs with subnormals flushed to zero, as
 * ag_optimizer_step does (a subnormal gradient element counts as zero in
 * the total, and a scaled one that would be subnormal becomes zero), and
 * gives the caller's mode back. Returns the total norm before clipping,
 * or -1 and an error for NULL or a max_norm that is negative or not
 * finite. */
AG_API double ag_clip_grad_norm(ag_params *params, double max_norm);

/* Learning-rate schedules: pure functions of the step (or epoch) number,
 * to pass to ag_optimizer_set_lr.
 *
 * Step decay (PyTorch StepLR): base_lr * gamma^floor(step / step_size).
 * Returns NaN and an error for step < 0 or step_size < 1. */
AG_API double ag_lr_step_decay(double base_lr, int64_t step, int64_t step_size,
                               double gamma);

/* Linear warmup then cosine decay: for step < warmup,
 * base_lr * (step + 1) / warmup; after it, with
 * progress = (step - warmup) / (total - warmup) clamped to [0, 1],
 * min_lr + (base_lr - min_lr) * (1 + cos(pi * progress)) / 2. Returns NaN
 * and an error for step < 0, warmup < 0 or total <= warmup. */
AG_API double ag_lr_cosine(double base_lr, double min_lr, int64_t step,
                           int64_t warmup, int64_t total);

#ifdef __cplusplus
}
#endif

#endif /* AUTOGRAD_OPTIM_H */
