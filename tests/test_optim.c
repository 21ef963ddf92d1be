/* test_optim.c: the optimizers (SGD, Adam, AdamW), gradient clipping and
 * learning-rate schedules. Five-step trajectories of a tiny model follow
 * the ones PyTorch recorded (fixtures/optim_torch.h, made by
 * fixtures/make_optim_fixture.py) in f64 and f32, including clipping,
 * schedules and a parameter that has no gradient for the first steps; steps
 * allocate nothing; parameters without a gradient are left alone; the
 * learning rate can be changed; every documented error is reported; the
 * updates flush subnormals to zero (a subnormal gradient reads as zero, a
 * momentum buffer decaying below the smallest normal f32 becomes zero)
 * and give the caller's floating-point mode back. */
#include <autograd.h>
#include <check.h>
#include <fenv.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fixtures/optim_torch.h"
#include "fpenv.h"
#include "internal.h"
#include "support.h"

#define COUNT(array) ((int)(sizeof(array) / sizeof((array)[0])))

/* The arenas of the running test: parameters, optimizer state, one step's
 * graph. The checked fixture makes them before each test and frees them
 * after, also after a failed assertion (no leaks under valgrind). */
static ag_arena *pa, *oa, *sa;

static void setup_arenas(void)
{
    pa = ag_arena_new();
    oa = ag_arena_new();
    sa = ag_arena_new();
    ck_assert_msg(pa && oa && sa, "ag_arena_new: %s", ag_last_error());
}

static void teardown_arenas(void)
{
    ag_arena_free(pa);
    ag_arena_free(oa);
    ag_arena_free(sa);
    pa = oa = sa = NULL;
}

/* Fails the test with the library's message when `p` is NULL. */
static void *must(void *p, const char *what)
{
    if (!p) ck_abort_msg("%s returned NULL: %s", what, ag_last_error());
    return p;
}

/* A tensor of dtype dt in `a` holding `vals` (rounded for f32). */
static ag_tensor *tensor_of(ag_arena *a, ag_dtype dt, int ndim,
                            const int64_t *shape, const double *vals)
{
    ag_tensor *t = must(ag_zeros(a, dt, ndim, shape), "ag_zeros");
    for (int64_t i = 0; i < ag_numel(t); i++) tensor_set(t, i, vals[i]);
    return t;
}

/* |got - want| <= tol * max(1, |want|), false for NaN. */
static bool close_enough(double got, double want, double tol)
{
    return fabs(got - want) <= tol * fmax(1.0, fabs(want));
}

/* ------------------------------------------------------------------ */
/* The fixture's model and its trajectories                            */
/* ------------------------------------------------------------------ */

/* pred = x @ w^T + b (times c when c is used); loss = mse(pred, y). */
typedef struct {
    ag_tensor *x, *y, *w, *b, *c;
    ag_params *params; /* "w", "b", "c" */
} model;

static void model_make(model *m, ag_dtype dt)
{
    m->x = tensor_of(pa, dt, 2, (int64_t[]){OPT_N, OPT_IN}, opt_x);
    m->y = tensor_of(pa, dt, 2, (int64_t[]){OPT_N, OPT_OUT}, opt_y);
    m->w = tensor_of(pa, dt, 2, (int64_t[]){OPT_OUT, OPT_IN}, opt_w0);
    m->b = tensor_of(pa, dt, 1, (int64_t[]){OPT_OUT}, opt_b0);
    m->c = tensor_of(pa, dt, 1, (int64_t[]){OPT_OUT}, opt_c0);
    m->params = must(ag_params_new(pa), "ag_params_new");
    ck_assert_int_eq(ag_params_add(m->params, "w", m->w), 0);
    ck_assert_int_eq(ag_params_add(m->params, "b", m->b), 0);
    ck_assert_int_eq(ag_params_add(m->params, "c", m->c), 0);
    ag_params_requires_grad(m->params, true);
}

/* The loss in the step arena. */
static ag_tensor *model_loss(const model *m, bool use_c)
{
    ag_tensor *wt = ag_transpose(sa, m->w, 0, 1);
    ag_tensor *pred = ag_add(sa, ag_matmul(sa, m->x, wt), m->b);
    if (use_c) pred = ag_mul(sa, pred, m->c);
    return must(ag_mse_loss(sa, pred, m->y), "model loss");
}

/* The optimizer of case k, its state in arena oa. */
static ag_optimizer *case_optimizer(const opt_case *k, ag_params *params)
{
    if (k->kind == OPT_SGD) {
        ag_sgd_options o = {k->lr, k->momentum, k->dampening, k->weight_decay,
                            k->nesterov};
        return must(ag_sgd_new(oa, params, &o), "ag_sgd_new");
    }
    ag_adam_options o = {k->lr, k->beta1, k->beta2, k->eps, k->weight_decay};
    if (k->kind == OPT_ADAM)
        return must(ag_adam_new(oa, params, &o), "ag_adam_new");
    return must(ag_adamw_new(oa, params, &o), "ag_adamw_new");
}

/* The learning rate of step `step` under case k's schedule. */
static double case_lr(const opt_case *k, int step)
{
    if (k->sched == OPT_SCHED_STEP)
        return ag_lr_step_decay(k->lr, step, k->sched_size, k->sched_value);
    if (k->sched == OPT_SCHED_COSINE)
        return ag_lr_cosine(k->lr, k->sched_value, step, 0, k->sched_size);
    return k->lr;
}

/* Checks a number of case k at step `step`. */
static void expect_value(const opt_case *k, const char *what, int step,
                         double got, double want, double tol)
{
    ck_assert_msg(close_enough(got, want, tol),
                  "%s step %d %s: got %.17g, PyTorch %.17g (tol %g)", k->name,
                  step, what, got, want, tol);
}

/* Checks every element of t against `want`. */
static void expect_tensor(const opt_case *k, const char *what, int step,
                          const ag_tensor *t, const double *want, double tol)
{
    char name[32];
    for (int64_t i = 0; i < ag_numel(t); i++) {
        snprintf(name, sizeof name, "%s[%lld]", what, (long long)i);
        expect_value(k, name, step, tensor_at(t, i), want[i], tol);
    }
}

/* A 1-byte allocation from `a`: two marks are adjacent when nothing else
 * was allocated from `a` between them. */
static const char *arena_mark(ag_arena *a)
{
    return must(ag__arena_alloc(a, 1, 1), "ag__arena_alloc");
}

/* Runs case k for OPT_STEPS steps in dtype dt and checks the learning rate,
 * the loss, the clipping total and every parameter after every step
 * against PyTorch within `tol`, and that steps allocate nothing. */
static void run_case(const opt_case *k, ag_dtype dt, double tol)
{
    model m;
    model_make(&m, dt);
    ag_optimizer *opt = case_optimizer(k, m.params);
    size_t opt_capacity = ag_arena_capacity(oa);
    const char *opt_mark = arena_mark(oa);
    for (int step = 0; step < OPT_STEPS; step++) {
        if (k->sched != OPT_SCHED_NONE)
            ck_assert_int_eq(ag_optimizer_set_lr(opt, case_lr(k, step)), 0);
        expect_value(k, "lr", step, ag_optimizer_lr(opt), k->lr_used[step],
                     1e-12);
        ag_optimizer_zero_grad(opt);
        ag_tensor *loss = model_loss(&m, step >= k->late);
        expect_value(k, "loss", step, ag_item(loss), k->loss[step], tol);
        ck_assert_msg(ag_backward(loss) == 0, "backward: %s", ag_last_error());
        ck_assert((ag_grad(m.c) == NULL) == (step < k->late));
        if (k->max_norm >= 0)
            expect_value(k, "clip total", step,
                         ag_clip_grad_norm(m.params, k->max_norm),
                         k->norm[step], tol);

        size_t capacity = ag_arena_capacity(pa);
        const char *mark = arena_mark(pa);
        ck_assert_int_eq(ag_optimizer_step(opt), 0);
        ck_assert_ptr_eq(arena_mark(pa), mark + 1);
        ck_assert_uint_eq(ag_arena_capacity(pa), capacity);
        ck_assert_int_eq(ag_optimizer_steps(opt), step + 1);

        expect_tensor(k, "w", step, m.w, k->w[step], tol);
        expect_tensor(k, "b", step, m.b, k->b[step], tol);
        expect_tensor(k, "c", step, m.c, k->c[step], tol);
        ag_arena_reset(sa);
    }
    ck_assert_ptr_eq(arena_mark(oa), opt_mark + 1);
    ck_assert_uint_eq(ag_arena_capacity(oa), opt_capacity);
}

START_TEST(test_trajectory_f64)
{
    run_case(&opt_cases[_i], AG_F64, 1e-12);
}
END_TEST

START_TEST(test_trajectory_f32)
{
    run_case(&opt_cases[_i], AG_F32, 1e-5);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Parameters with known gradients                                     */
/* ------------------------------------------------------------------ */

/* A parameter of dtype dt holding `vals` (n of them) whose gradient is
 * `grads`: the gradient of sum(p * grads), computed in the step arena. */
static ag_tensor *param_with_grad(ag_dtype dt, int64_t n, const double *vals,
                                  const double *grads)
{
    ag_tensor *p = tensor_of(pa, dt, 1, &n, vals);
    ag_requires_grad(p, true);
    ag_tensor *k = tensor_of(sa, dt, 1, &n, grads);
    ag_tensor *loss = must(ag_sum(sa, ag_mul(sa, p, k), AG_ALL, false), "sum");
    ck_assert_int_eq(ag_backward(loss), 0);
    for (int64_t i = 0; i < n; i++)
        ck_assert_double_eq(tensor_at(ag_grad(p), i), tensor_at(k, i));
    return p;
}

/* A set of the given tensors, named p0, p1, ... */
static ag_params *set_of(int n, ag_tensor *const *tensors)
{
    ag_params *set = must(ag_params_new(pa), "ag_params_new");
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "p%d", i);
        ck_assert_int_eq(ag_params_add(set, name, tensors[i]), 0);
    }
    return set;
}

/* Plain SGD on an f32 and an f64 parameter in one set: p - lr * grad with
 * the rate set between steps (0 freezes them); the rate reads back. */
START_TEST(test_set_lr_mixed_dtypes)
{
    const double v[2] = {1.0, -2.0}, g[2] = {0.5, 4.0};
    ag_tensor *t[2] = {param_with_grad(AG_F32, 2, v, g),
                       param_with_grad(AG_F64, 2, v, g)};
    ag_sgd_options o = ag_sgd_defaults(0.1);
    ag_optimizer *opt = must(ag_sgd_new(oa, set_of(2, t), &o), "ag_sgd_new");
    const double rates[3] = {0.1, 0.05, 0.0};
    double moved = 0; /* the sum of the rates so far */
    for (int s = 0; s < 3; s++) {
        ck_assert_int_eq(ag_optimizer_set_lr(opt, rates[s]), 0);
        ck_assert_double_eq(ag_optimizer_lr(opt), rates[s]);
        ck_assert_int_eq(ag_optimizer_step(opt), 0);
        moved += rates[s];
        for (int j = 0; j < 2; j++) {
            double tol = j == 0 ? 1e-6 : 1e-15;
            for (int i = 0; i < 2; i++)
                ck_assert_double_eq_tol(tensor_at(t[j], i), v[i] - moved * g[i],
                                        tol);
        }
    }
    ck_assert_int_eq(ag_optimizer_steps(opt), 3);
}
END_TEST

/* Every kind of optimizer, with weight decay so that an update would move
 * a parameter even at a zero gradient. */
static ag_optimizer *make_kind(int kind, ag_params *set)
{
    ag_sgd_options sgd = {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1};
    ag_adam_options adam = ag_adam_defaults();
    adam.weight_decay = 0.1;
    if (kind == OPT_SGD) return must(ag_sgd_new(oa, set, &sgd), "ag_sgd_new");
    if (kind == OPT_ADAM)
        return must(ag_adam_new(oa, set, &adam), "ag_adam_new");
    return must(ag_adamw_new(oa, set, NULL), "ag_adamw_new");
}

/* A parameter no backward pass reached (gradient NULL) is left exactly as
 * it was, its gradient stays NULL, and zero_grad and clipping skip it;
 * the others move. */
START_TEST(test_skip_without_grad)
{
    const double v[2] = {0.75, -1.5}, g[2] = {1.0, -2.0};
    ag_tensor *t[2] = {param_with_grad(AG_F64, 2, v, g),
                       tensor_of(pa, AG_F64, 1, (int64_t[]){2}, v)};
    ag_requires_grad(t[1], true);
    ag_params *set = set_of(2, t);
    ag_optimizer *opt = make_kind(_i, set);
    for (int s = 0; s < 3; s++) {
        ck_assert_double_eq(ag_clip_grad_norm(set, 100), sqrt(5.0));
        ck_assert_int_eq(ag_optimizer_step(opt), 0);
    }
    ck_assert_int_eq(ag_optimizer_steps(opt), 3);
    ck_assert_ptr_null(ag_grad(t[1]));
    for (int i = 0; i < 2; i++) {
        ck_assert_double_eq(tensor_at(t[1], i), v[i]);
        ck_assert_double_ne(tensor_at(t[0], i), v[i]);
    }
    ag_optimizer_zero_grad(opt);
    ck_assert_ptr_null(ag_grad(t[1]));
    for (int i = 0; i < 2; i++)
        ck_assert_double_eq(tensor_at(ag_grad(t[0]), i), 0);
}
END_TEST

/* ag_optimizer_clear_grad is PyTorch's zero_grad(set_to_none=True): every
 * gradient becomes NULL, so a step before the next backward changes
 * nothing, where after ag_optimizer_zero_grad momentum and weight decay
 * still move the parameters. */
START_TEST(test_clear_grad)
{
    const double v[2] = {0.75, -1.5}, g[2] = {1.0, -2.0};
    ag_tensor *t[2] = {param_with_grad(AG_F64, 2, v, g),
                       param_with_grad(AG_F64, 2, v, g)};
    ag_sgd_options o = ag_sgd_defaults(0.1);
    o.momentum = 0.9;
    o.weight_decay = 0.01;
    ag_optimizer *cleared = ag_sgd_new(oa, set_of(1, &t[0]), &o);
    ag_optimizer *zeroed = ag_sgd_new(oa, set_of(1, &t[1]), &o);
    for (int s = 0; s < 2; s++) {
        ck_assert_int_eq(ag_optimizer_step(cleared), 0);
        ck_assert_int_eq(ag_optimizer_step(zeroed), 0);
    }
    double before[2] = {tensor_at(t[0], 0), tensor_at(t[0], 1)};
    ag_optimizer_clear_grad(cleared);
    ag_optimizer_zero_grad(zeroed);
    ck_assert_ptr_null(ag_grad(t[0]));
    ck_assert_ptr_nonnull(ag_grad(t[1]));
    ck_assert_int_eq(ag_optimizer_step(cleared), 0);
    ck_assert_int_eq(ag_optimizer_step(zeroed), 0);
    for (int i = 0; i < 2; i++) {
        ck_assert_double_eq(tensor_at(t[0], i), before[i]);
        ck_assert_double_ne(tensor_at(t[1], i), before[i]);
    }
    ag_optimizer_clear_grad(NULL);
}
END_TEST

/* The defaults are PyTorch's; NULL options mean the defaults: Adam's first
 * step from a gradient g is p * (1 - lr * wd) - lr * g / (|g| + eps) for
 * AdamW (wd 0 for Adam). */
START_TEST(test_defaults)
{
    ag_sgd_options s = ag_sgd_defaults(0.25);
    ck_assert_double_eq(s.lr, 0.25);
    ck_assert(s.momentum == 0 && s.dampening == 0 && s.weight_decay == 0 &&
              !s.nesterov);
    const ag_adam_options got[2] = {ag_adam_defaults(), ag_adamw_defaults()};
    const double *want[2] = {opt_adam_defaults, opt_adamw_defaults};
    for (int j = 0; j < 2; j++) {
        const double fields[5] = {got[j].lr, got[j].beta1, got[j].beta2,
                                  got[j].eps, got[j].weight_decay};
        for (int f = 0; f < 5; f++) ck_assert_double_eq(fields[f], want[j][f]);

        const double v[1] = {0.5}, g[1] = {2.0};
        ag_tensor *t = param_with_grad(AG_F64, 1, v, g);
        ag_params *set = set_of(1, &t);
        ag_optimizer *opt =
            j == 0 ? ag_adam_new(oa, set, NULL) : ag_adamw_new(oa, set, NULL);
        ck_assert_double_eq(ag_optimizer_lr(must(opt, "new")), want[j][0]);
        ck_assert_int_eq(ag_optimizer_step(opt), 0);
        double lr = want[j][0], eps = want[j][3], wd = j ? want[j][4] : 0;
        ck_assert_double_eq_tol(
            tensor_at(t, 0), 0.5 * (1 - lr * wd) - lr * 2 / (2 + eps), 1e-15);
    }
}
END_TEST

/* clip_grad_norm: the total over every gradient of a mixed f32/f64 set
 * (skipping a tensor without one), each gradient scaled by
 * max_norm / (total + 1e-6) only when that is below 1. */
START_TEST(test_clip_grad_norm)
{
    const double v[2] = {1, 1}, ga[2] = {3, 0}, gb[2] = {0, -4};
    ag_tensor *t[3] = {param_with_grad(AG_F32, 2, v, ga),
                       param_with_grad(AG_F64, 2, v, gb),
                       tensor_of(pa, AG_F64, 1, (int64_t[]){2}, v)};
    ag_params *set = set_of(3, t);
    ck_assert_double_eq_tol(ag_clip_grad_norm(set, 5.5), 5, 1e-15);
    ck_assert_double_eq(tensor_at(ag_grad(t[0]), 0), 3); /* unchanged */
    ck_assert_double_eq(tensor_at(ag_grad(t[1]), 1), -4);

    ck_assert_double_eq_tol(ag_clip_grad_norm(set, 2), 5, 1e-15);
    double coef = 2 / (5 + 1e-6);
    ck_assert_double_eq_tol(tensor_at(ag_grad(t[0]), 0), 3 * coef, 1e-6);
    ck_assert_double_eq_tol(tensor_at(ag_grad(t[1]), 1), -4 * coef, 1e-15);
    ck_assert_double_eq(tensor_at(ag_grad(t[1]), 0), 0);
    ck_assert_ptr_null(ag_grad(t[2]));
    ck_assert_double_eq_tol(ag_clip_grad_norm(set, 2), 5 * coef, 1e-6);

    /* max_norm 0 zeroes every gradient. */
    ck_assert_double_gt(ag_clip_grad_norm(set, 0), 0);
    ck_assert_double_eq(ag_clip_grad_norm(set, 1), 0);
}
END_TEST

/* The norm is accumulated in double: f32 gradients whose squares overflow
 * float still give the right total. No gradient at all gives 0. */
START_TEST(test_clip_grad_norm_f32_range)
{
    const double v[2] = {1, 1}, g[2] = {3e30, 4e30};
    ag_tensor *none = tensor_of(pa, AG_F32, 1, (int64_t[]){2}, v);
    ck_assert_double_eq(ag_clip_grad_norm(set_of(1, &none), 1), 0);
    ag_tensor *t = param_with_grad(AG_F32, 2, v, g);
    ag_params *set = set_of(1, &t);
    ck_assert_double_eq_tol(ag_clip_grad_norm(set, 1) / 5e30, 1, 1e-6);
    ck_assert_double_eq_tol(tensor_at(ag_grad(t), 0), 0.6, 1e-6);
    ck_assert_double_eq_tol(tensor_at(ag_grad(t), 1), 0.8, 1e-6);
}
END_TEST

/* A gradient holding inf or NaN gives that total and leaves every gradient
 * as it was. */
START_TEST(test_clip_grad_norm_not_finite)
{
    const double v[2] = {1, 1}, finite[2] = {3, 4};
    const double bad[2][2] = {{INFINITY, 1}, {NAN, 1}};
    for (int j = 0; j < 2; j++) {
        ag_tensor *t[2] = {param_with_grad(AG_F64, 2, v, finite),
                           tensor_of(pa, AG_F64, 1, (int64_t[]){2}, v)};
        ag_requires_grad(t[1], true);
        ag_tensor *k = tensor_of(sa, AG_F64, 1, (int64_t[]){2}, bad[j]);
        ag_tensor *loss = ag_sum(sa, ag_mul(sa, t[1], k), AG_ALL, false);
        ck_assert_int_eq(ag_backward(must(loss, "loss")), 0);
        double total = ag_clip_grad_norm(set_of(2, t), 1);
        ck_assert(j == 0 ? isinf(total) : isnan(total));
        for (int i = 0; i < 2; i++)
            ck_assert_double_eq(tensor_at(ag_grad(t[0]), i), finite[i]);
        ck_assert_double_eq(tensor_at(ag_grad(t[1]), 1), 1);
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* Schedules                                                           */
/* ------------------------------------------------------------------ */

START_TEST(test_schedules_torch)
{
    for (int e = 0; e < OPT_SCHED_EPOCHS; e++) {
        double step = ag_lr_step_decay(opt_step_lr_base, e, opt_step_lr_size,
                                       opt_step_lr_gamma);
        ck_assert_msg(close_enough(step, opt_step_lr[e], 1e-12),
                      "StepLR epoch %d: got %.17g, PyTorch %.17g", e, step,
                      opt_step_lr[e]);
        double cosine = ag_lr_cosine(opt_cosine_lr_base, opt_cosine_lr_min, e,
                                     0, opt_cosine_lr_tmax);
        ck_assert_msg(close_enough(cosine, opt_cosine_lr[e], 1e-12),
                      "CosineAnnealingLR epoch %d: got %.17g, PyTorch %.17g", e,
                      cosine, opt_cosine_lr[e]);
    }
}
END_TEST

/* Closed forms worked out by hand. */
START_TEST(test_schedules_closed_form)
{
    static const struct {
        double base, min;
        int64_t step, warmup, total;
        double want;
    } cosine[] = {
        {1, 0, 0, 4, 8, 0.25},   /* warmup: (step + 1) / warmup */
        {1, 0, 3, 4, 8, 1.0},    /* last warmup step */
        {1, 0, 4, 4, 8, 1.0},    /* progress 0 */
        {1, 0.1, 6, 4, 8, 0.55}, /* progress 1/2: min + (base - min) / 2 */
        {1, 0.1, 8, 4, 8, 0.1},  /* progress 1 */
        {1, 0.1, 99, 4, 8, 0.1}, /* clamped */
        {2, 0, 1, 0, 3, 1.5},    /* no warmup, progress 1/3: (1 + 1/2) */
    };
    for (int i = 0; i < COUNT(cosine); i++)
        ck_assert_double_eq_tol(ag_lr_cosine(cosine[i].base, cosine[i].min,
                                             cosine[i].step, cosine[i].warmup,
                                             cosine[i].total),
                                cosine[i].want, 1e-15);
    static const struct {
        int64_t step, size;
        double want;
    } decay[] = {{0, 3, 0.8}, {2, 3, 0.8}, {3, 3, 0.4},
                 {8, 3, 0.2}, {9, 3, 0.1}, {5, 1, 0.025}};
    for (int i = 0; i < COUNT(decay); i++)
        ck_assert_double_eq_tol(
            ag_lr_step_decay(0.8, decay[i].step, decay[i].size, 0.5),
            decay[i].want, 1e-15);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Subnormals                                                          */
/* ------------------------------------------------------------------ */

/* Adam in f32 with a gradient of 1e-40 (subnormal): flushed, it reads as
 * zero and the parameter 1e-30 stays; without flushing m = 1e-41 would
 * move it by lr * 1e-40 / eps = 1e-35, about a hundred of its last bits.
 * A gradient of 1e-36 (m = 1e-37, normal) does move it. */
START_TEST(test_adam_subnormal_gradient)
{
    if (!flush_takes_effect()) return; /* no flush mode, or Valgrind */
    const double v[1] = {1e-30}, tiny[1] = {1e-40}, small[1] = {1e-36};
    ck_assert(fpclassify((float)tiny[0]) == FP_SUBNORMAL);
    ag_tensor *p = param_with_grad(AG_F32, 1, v, tiny);
    ag_tensor *q = param_with_grad(AG_F32, 1, v, small);
    ag_tensor *both[2] = {p, q};
    ag_optimizer *opt = must(ag_adam_new(oa, set_of(2, both), NULL), "adam");
    ck_assert_int_eq(ag_optimizer_step(opt), 0);
    ck_assert_float_eq(((float *)ag_data(p))[0], (float)1e-30);
    ck_assert_float_ne(((float *)ag_data(q))[0], (float)1e-30);
}
END_TEST

/* SGD with momentum 0.01 and lr 0.5: the first step sets the buffer to
 * the gradient 1e-36 and moves p from 1e-36 to 5e-37; with no gradient
 * after it, the buffer decays to 1e-38, below FLT_MIN: in f32 it is
 * stored as zero and p stays (unflushed it would move by 5e-39); in f64
 * 1e-38 is a normal number and p moves. */
START_TEST(test_sgd_momentum_decays_to_zero)
{
    if (!flush_takes_effect()) return;
    const double v[1] = {1e-36}, g[1] = {1e-36};
    ag_tensor *t[2] = {param_with_grad(AG_F32, 1, v, g),
                       param_with_grad(AG_F64, 1, v, g)};
    ag_sgd_options o = {.lr = 0.5, .momentum = 0.01};
    ag_optimizer *opt = must(ag_sgd_new(oa, set_of(2, t), &o), "ag_sgd_new");
    ck_assert_int_eq(ag_optimizer_step(opt), 0);
    float f32_after_one = ((float *)ag_data(t[0]))[0];
    double f64_after_one = ((double *)ag_data(t[1]))[0];
    ck_assert_float_eq_tol(f32_after_one, 5e-37f, 1e-43f);
    ag_zero_grad(t[0]);
    ag_zero_grad(t[1]);
    ck_assert_float_lt((float)(0.01 * 1e-36), FLT_MIN);
    ck_assert_int_eq(ag_optimizer_step(opt), 0);
    ck_assert_float_eq(((float *)ag_data(t[0]))[0], f32_after_one);
    ck_assert_double_eq_tol(((double *)ag_data(t[1]))[0],
                            f64_after_one - 0.5e-38, 1e-50);
}
END_TEST

/* A step and a clip leave the caller's floating-point environment as it
 * was, flushing or not: the rounding mode, every control bit of x86's
 * MXCSR, and the flag of an underflow raised before them. */
START_TEST(test_caller_mode_restored)
{
    const double v[2] = {0.5, -0.25}, g[2] = {2.0, 1e-3};
    bool works = flush_takes_effect(); /* Valgrind: MXCSR reads as default */
    for (int flush = 0; flush <= 1; flush++) {
        if (ag_set_flush_denormal(flush) < 0) {
            ck_assert_str_eq(ag_last_error(),
                             "ag_set_flush_denormal: this CPU has no "
                             "flush-to-zero mode the library knows");
            continue;
        }
        ck_assert_int_eq(fesetround(flush ? FE_UPWARD : FE_TOWARDZERO), 0);
        feclearexcept(FE_ALL_EXCEPT);
        feraiseexcept(FE_UNDERFLOW);
        int round = fegetround();
        ag_fp_mode mode = ag__fp_mode();
        ag_tensor *t = param_with_grad(AG_F32, 2, v, g);
        ag_params *set = set_of(1, &t);
        ag_optimizer *adam = must(ag_adam_new(oa, set, NULL), "ag_adam_new");
        ck_assert_int_eq(ag_optimizer_step(adam), 0);
        ck_assert_int_eq(fegetround(), round);
        ck_assert_uint_eq(ag__fp_mode(), mode);
        ck_assert(ag_clip_grad_norm(set, 0.1) > 1);
        ck_assert_int_eq(fegetround(), round);
        ck_assert_uint_eq(ag__fp_mode(), mode);
        ck_assert(fetestexcept(FE_UNDERFLOW) || !fp_flags_tracked());
        ck_assert_int_eq(ag_set_flush_denormal(false), flush && works);
        ck_assert_int_eq(fesetround(FE_TONEAREST), 0);
    }
    ck_assert_int_eq(ag_set_flush_denormal(false), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

/* Checks that a call failed (`failed`), that the message starts with
 * "fn:" and that it holds `a` and `b` (either may be NULL). */
static void expect_error(const char *call, bool failed, const char *fn,
                         const char *a, const char *b)
{
    const char *msg = ag_last_error();
    size_t len = strlen(fn);
    ck_assert_msg(failed, "%s did not fail", call);
    ck_assert_msg(strncmp(msg, fn, len) == 0 && msg[len] == ':',
                  "%s: message \"%s\" does not start with \"%s:\"", call, msg,
                  fn);
    ck_assert_msg(!a || strstr(msg, a), "%s: \"%s\" lacks \"%s\"", call, msg,
                  a);
    ck_assert_msg(!b || strstr(msg, b), "%s: \"%s\" lacks \"%s\"", call, msg,
                  b);
}

#define EXPECT_NULL(call, fn, a, b)                                            \
    expect_error(#call, (ag_clear_error(), (call)) == NULL, fn, a, b)
#define EXPECT_FAIL(call, fn, a, b)                                            \
    expect_error(#call, (ag_clear_error(), (call)) == -1, fn, a, b)
#define EXPECT_NAN(call, fn, a, b)                                             \
    expect_error(#call, isnan((ag_clear_error(), (call))), fn, a, b)

static const struct {
    ag_sgd_options o;
    const char *what, *value;
} bad_sgd[] = {
    {{.lr = -0.1}, "learning rate", "-0.1"},
    {{.lr = NAN}, "learning rate", "nan"},
    {{.lr = INFINITY}, "learning rate", "inf"},
    {{.lr = 0.1, .momentum = -0.5}, "momentum", "-0.5"},
    {{.lr = 0.1, .momentum = INFINITY}, "momentum", "inf"},
    {{.lr = 0.1, .weight_decay = -1}, "weight decay", "-1"},
    {{.lr = 0.1, .dampening = NAN}, "dampening", "nan"},
    {{.lr = 0.1, .nesterov = true}, "Nesterov", "momentum 0 "},
    {{.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true},
     "Nesterov",
     "dampening 0.1"},
};

static const struct {
    ag_adam_options o;
    const char *what, *value;
} bad_adam[] = {
    {{.lr = -1, .beta1 = 0.9, .beta2 = 0.999}, "learning rate", "-1"},
    {{.lr = NAN, .beta1 = 0.9, .beta2 = 0.999}, "learning rate", "nan"},
    {{.lr = 1, .beta1 = 0.9, .beta2 = 0.999, .eps = -1e-8}, "eps", "-1e-08"},
    {{.lr = 1, .beta1 = 0.9, .beta2 = 0.999, .weight_decay = -0.1},
     "weight decay",
     "-0.1"},
    {{.lr = 1, .beta1 = 0.9, .beta2 = 0.999, .weight_decay = INFINITY},
     "weight decay",
     "inf"},
    {{.lr = 1, .beta1 = 1, .beta2 = 0.999}, "beta1", "1"},
    {{.lr = 1, .beta1 = -0.1, .beta2 = 0.999}, "beta1", "-0.1"},
    {{.lr = 1, .beta1 = 0.9, .beta2 = 1.5}, "beta2", "1.5"},
    {{.lr = 1, .beta1 = 0.9, .beta2 = NAN}, "beta2", "nan"},
};

START_TEST(test_errors_options)
{
    const double v[1] = {0.5}, g[1] = {2.0};
    ag_tensor *t = param_with_grad(AG_F64, 1, v, g);
    ag_params *set = set_of(1, &t);
    for (int i = 0; i < COUNT(bad_sgd); i++)
        EXPECT_NULL(ag_sgd_new(oa, set, &bad_sgd[i].o), "ag_sgd_new",
                    bad_sgd[i].what, bad_sgd[i].value);
    for (int i = 0; i < COUNT(bad_adam); i++) {
        EXPECT_NULL(ag_adam_new(oa, set, &bad_adam[i].o), "ag_adam_new",
                    bad_adam[i].what, bad_adam[i].value);
        EXPECT_NULL(ag_adamw_new(oa, set, &bad_adam[i].o), "ag_adamw_new",
                    bad_adam[i].what, bad_adam[i].value);
    }
    ck_assert_double_eq(tensor_at(t, 0), 0.5);
}
END_TEST

START_TEST(test_errors_arguments)
{
    const double v[1] = {0.5}, g[1] = {2.0};
    ag_tensor *t = param_with_grad(AG_F64, 1, v, g);
    ag_params *set = set_of(1, &t), *empty = set_of(0, NULL);
    ag_params *twice = set_of(1, &t);
    ag_sgd_options s = ag_sgd_defaults(0.1);

    EXPECT_NULL(ag_sgd_new(oa, set, NULL), "ag_sgd_new", "options", "NULL");
    EXPECT_NULL(ag_sgd_new(NULL, set, &s), "ag_sgd_new", "arena", "NULL");
    EXPECT_NULL(ag_sgd_new(oa, NULL, &s), "ag_sgd_new", "parameter set",
                "NULL");
    EXPECT_NULL(ag_sgd_new(oa, empty, &s), "ag_sgd_new", "empty", NULL);
    EXPECT_NULL(ag_adam_new(NULL, set, NULL), "ag_adam_new", "arena", "NULL");
    EXPECT_NULL(ag_adam_new(oa, NULL, NULL), "ag_adam_new", "parameter set",
                "NULL");
    EXPECT_NULL(ag_adam_new(oa, empty, NULL), "ag_adam_new", "empty", NULL);
    EXPECT_NULL(ag_adamw_new(NULL, set, NULL), "ag_adamw_new", "arena", NULL);
    EXPECT_NULL(ag_adamw_new(oa, empty, NULL), "ag_adamw_new", "empty", NULL);
    /* A tensor cannot enter a set twice, so no optimizer updates it twice. */
    EXPECT_FAIL(ag_params_add(twice, "again", t), "ag_params_add", "\"again\"",
                "already in the set as \"p0\"");

    EXPECT_FAIL(ag_optimizer_step(NULL), "ag_optimizer_step", "NULL", NULL);
    ag_optimizer *opt = must(ag_sgd_new(oa, set, &s), "ag_sgd_new");
    EXPECT_FAIL(ag_optimizer_set_lr(NULL, 0.1), "ag_optimizer_set_lr", "NULL",
                NULL);
    EXPECT_FAIL(ag_optimizer_set_lr(opt, -0.5), "ag_optimizer_set_lr",
                "learning rate", "-0.5");
    EXPECT_FAIL(ag_optimizer_set_lr(opt, NAN), "ag_optimizer_set_lr",
                "learning rate", "nan");
    EXPECT_FAIL(ag_optimizer_set_lr(opt, INFINITY), "ag_optimizer_set_lr",
                "learning rate", "inf");
    ck_assert_double_eq(ag_optimizer_lr(opt), 0.1); /* unchanged */
    ck_assert(isnan(ag_optimizer_lr(NULL)));
    ck_assert_int_eq(ag_optimizer_steps(NULL), 0);
    ag_optimizer_zero_grad(NULL); /* ignored */

    EXPECT_FAIL(ag_clip_grad_norm(NULL, 1), "ag_clip_grad_norm", "NULL", NULL);
    EXPECT_FAIL(ag_clip_grad_norm(set, -1), "ag_clip_grad_norm", "max_norm",
                "-1");
    EXPECT_FAIL(ag_clip_grad_norm(set, NAN), "ag_clip_grad_norm", "max_norm",
                "nan");
    EXPECT_FAIL(ag_clip_grad_norm(set, INFINITY), "ag_clip_grad_norm",
                "max_norm", "inf");
    ck_assert_double_eq(tensor_at(ag_grad(t), 0), 2.0); /* unchanged */
}
END_TEST

START_TEST(test_errors_schedules)
{
    EXPECT_NAN(ag_lr_step_decay(0.1, -1, 3, 0.5), "ag_lr_step_decay", "step -1",
               NULL);
    EXPECT_NAN(ag_lr_step_decay(0.1, 4, 0, 0.5), "ag_lr_step_decay",
               "step_size 0", NULL);
    EXPECT_NAN(ag_lr_cosine(0.1, 0, -2, 1, 5), "ag_lr_cosine", "step -2", NULL);
    EXPECT_NAN(ag_lr_cosine(0.1, 0, 0, -1, 5), "ag_lr_cosine", "warmup -1",
               NULL);
    EXPECT_NAN(ag_lr_cosine(0.1, 0, 0, 5, 5), "ag_lr_cosine", "total 5",
               "warmup 5");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("optim");
    tcase_add_checked_fixture(tc, setup_arenas, teardown_arenas);
    tcase_add_loop_test(tc, test_trajectory_f64, 0, COUNT(opt_cases));
    tcase_add_loop_test(tc, test_trajectory_f32, 0, COUNT(opt_cases));
    tcase_add_test(tc, test_set_lr_mixed_dtypes);
    tcase_add_loop_test(tc, test_skip_without_grad, OPT_SGD, OPT_ADAMW + 1);
    tcase_add_test(tc, test_clear_grad);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_clip_grad_norm);
    tcase_add_test(tc, test_clip_grad_norm_f32_range);
    tcase_add_test(tc, test_clip_grad_norm_not_finite);
    tcase_add_test(tc, test_schedules_torch);
    tcase_add_test(tc, test_schedules_closed_form);
    tcase_add_test(tc, test_adam_subnormal_gradient);
    tcase_add_test(tc, test_sgd_momentum_decays_to_zero);
    tcase_add_test(tc, test_caller_mode_restored);
    tcase_add_test(tc, test_errors_options);
    tcase_add_test(tc, test_errors_arguments);
    tcase_add_test(tc, test_errors_schedules);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
