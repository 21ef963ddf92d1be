/* test_ops_a.c: the ops of issue 13 (elementwise sin, cos, silu, softplus,
 * clamp, maximum, minimum, where; reductions min, logsumexp, var and those
 * over several axes; slice, concat, stack, permute, index_select, gather,
 * embedding) against PyTorch (fixtures/ops_a_torch.h, made by
 * fixtures/make_ops_a_fixture.py): values and the gradients of
 * sum(w * result), within 1e-10 in f64 and 1e-4 in f32 (relative to
 * max(1, |PyTorch's|)), on the fixture's inputs; then the errors of each
 * op, which name the function and the values, and NULL inputs. */
#include <autograd.h>

#include "fixtures/ops_a_torch.h"
#include "support.h"
#include <check.h>
#include <math.h>
#include <string.h>

/* A case: float inputs x, integer inputs n (AG_I32). */
typedef ag_tensor *(*case_fn)(ag_arena *a, ag_tensor **x, ag_tensor **n);

/* clang-format off */
static ag_tensor *c_sin(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_sin(a, x[0]); }
static ag_tensor *c_cos(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_cos(a, x[0]); }
static ag_tensor *c_silu(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_silu(a, x[0]); }
static ag_tensor *c_softplus(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_softplus(a, x[0]); }
static ag_tensor *c_clamp(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_clamp(a, x[0], -0.5, 0.75); }
static ag_tensor *c_clamp_lo(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_clamp(a, x[0], 0.25, INFINITY); }
static ag_tensor *c_clamp_hi(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_clamp(a, x[0], -INFINITY, -0.25); }
static ag_tensor *c_clamp_crossed(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_clamp(a, x[0], 1, -1); }
static ag_tensor *c_clamp_half(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_clamp(a, x[0], -0.5, 0.5); }
static ag_tensor *c_maximum(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_maximum(a, x[0], x[1]); }
static ag_tensor *c_maximum_self(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_maximum(a, x[0], x[0]); }
static ag_tensor *c_minimum(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_minimum(a, x[0], x[1]); }
static ag_tensor *c_where(ag_arena *a, ag_tensor **x, ag_tensor **n) { return ag_where(a, n[0], x[0], x[1]); }
static ag_tensor *c_min1(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_min(a, x[0], 1, false); }
static ag_tensor *c_min0k(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_min(a, x[0], 0, true); }
static ag_tensor *c_min_all(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_min(a, x[0], AG_ALL, false); }
static ag_tensor *c_min02(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_min_axes(a, x[0], 2, (int[]){0, 2}, false); }
static ag_tensor *c_lse_last(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_logsumexp(a, x[0], -1, false); }
static ag_tensor *c_lse0k(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_logsumexp(a, x[0], 0, true); }
static ag_tensor *c_lse_all(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_logsumexp(a, x[0], AG_ALL, false); }
static ag_tensor *c_lse02k(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_logsumexp_axes(a, x[0], 2, (int[]){0, 2}, true); }
static ag_tensor *c_var1(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_var(a, x[0], 1, false, 1); }
static ag_tensor *c_var0k(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_var(a, x[0], 0, true, 0); }
static ag_tensor *c_var_all(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_var(a, x[0], AG_ALL, false, 2); }
static ag_tensor *c_var_last0(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_var_axes(a, x[0], 2, (int[]){-1, 0}, false, 1); }
static ag_tensor *c_var13k(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_var_axes(a, x[0], 2, (int[]){1, 3}, true, 0); }
static ag_tensor *c_sum02(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_sum_axes(a, x[0], 2, (int[]){0, 2}, false); }
static ag_tensor *c_sum_last1k(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_sum_axes(a, x[0], 2, (int[]){-1, 1}, true); }
static ag_tensor *c_mean20(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_mean_axes(a, x[0], 2, (int[]){2, 0}, false); }
static ag_tensor *c_mean013k(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_mean_axes(a, x[0], 3, (int[]){0, 1, 3}, true); }
static ag_tensor *c_max02(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_max_axes(a, x[0], 2, (int[]){0, 2}, false); }
static ag_tensor *c_max02t(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_max_axes(a, x[0], 2, (int[]){0, 2}, false); }
static ag_tensor *c_min1lk(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_min_axes(a, x[0], 2, (int[]){1, -1}, true); }
static ag_tensor *c_max1t(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_max_axes(a, x[0], 1, (int[]){1}, false); }
static ag_tensor *c_slice_a(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_slice(a, x[0], 1, 1, 5, 2); }
static ag_tensor *c_slice_b(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_slice(a, x[0], -1, -3, INT64_MAX, 1); }
static ag_tensor *c_slice_c(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_slice(a, x[0], 0, -100, 3, 2); }
static ag_tensor *c_slice_d(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_slice(a, x[0], 0, 3, 1, 1); }
static ag_tensor *c_slice_e(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_slice(a, x[0], 0, -6, 100, 3); }
static ag_tensor *c_concat1(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_concat(a, 2, x, 1); }
static ag_tensor *c_concat3(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_concat(a, 3, x, 0); }
static ag_tensor *c_concat_last(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_concat(a, 2, x, -1); }
static ag_tensor *c_stack1(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_stack(a, 2, x, 1); }
static ag_tensor *c_stack_last(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_stack(a, 3, x, -1); }
static ag_tensor *c_stack_self(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_stack(a, 2, (ag_tensor *[]){x[0], x[0]}, 0); }
static ag_tensor *c_permute3(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_permute(a, x[0], (int[]){2, 0, 1}); }
static ag_tensor *c_permute4(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_permute(a, x[0], (int[]){-1, 1, 0, 2}); }
static ag_tensor *c_index_select1(ag_arena *a, ag_tensor **x, ag_tensor **n) { return ag_index_select(a, x[0], 1, n[0]); }
static ag_tensor *c_index_select0(ag_arena *a, ag_tensor **x, ag_tensor **n) { return ag_index_select(a, x[0], 0, n[0]); }
static ag_tensor *c_index_select_last(ag_arena *a, ag_tensor **x, ag_tensor **n) { return ag_index_select(a, x[0], -1, n[0]); }
static ag_tensor *c_gather1(ag_arena *a, ag_tensor **x, ag_tensor **n) { return ag_gather(a, x[0], 1, n[0]); }
static ag_tensor *c_gather0(ag_arena *a, ag_tensor **x, ag_tensor **n) { return ag_gather(a, x[0], 0, n[0]); }
static ag_tensor *c_gather_last(ag_arena *a, ag_tensor **x, ag_tensor **n) { return ag_gather(a, x[0], -1, n[0]); }
static ag_tensor *c_embedding(ag_arena *a, ag_tensor **x, ag_tensor **n) { return ag_embedding(a, x[0], n[0]); }
static ag_tensor *c_max12k(ag_arena *a, ag_tensor **x, ag_tensor **n) { (void)n; return ag_max_axes(a, x[0], 2, (int[]){1, 2}, true); }
/* clang-format on */

typedef struct {
    const char *label; /* the fixture case */
    case_fn fn;
} ops_case;

static const ops_case cases[] = {
    {"sin (3,4)", c_sin},
    {"sin (2,3,2) wide", c_sin},
    {"cos (3,4)", c_cos},
    {"cos (5) wide", c_cos},
    {"silu (3,4)", c_silu},
    {"silu (2,5) wide", c_silu},
    {"softplus (3,4)", c_softplus},
    {"softplus (4,6) wide", c_softplus},
    {"clamp [-0.5,0.75] (4,5) grid", c_clamp},
    {"clamp [0.25,inf) (3,4)", c_clamp_lo},
    {"clamp (-inf,-0.25] (2,3)", c_clamp_hi},
    {"clamp [1,-1] (2,3)", c_clamp_crossed},
    {"clamp [-0.5,0.5] (3,4) coarse", c_clamp_half},
    {"maximum (3,4),(3,4) coarse", c_maximum},
    {"minimum (2,3),(3) coarse", c_minimum},
    {"maximum (3,4),(3,4) grid", c_maximum},
    {"maximum (2,1,3),(4,1)", c_maximum},
    {"maximum x,x", c_maximum_self},
    {"minimum (3,4),(4) grid", c_minimum},
    {"minimum (2,3,1),(3,5)", c_minimum},
    {"where (3,4)?(3,4):(3,4)", c_where},
    {"where (3,1)?(4):(2,1,4)", c_where},
    {"where (2,3)?(2,1):()", c_where},
    {"min (3,4) axis 1", c_min1},
    {"min (2,3,4) axis 0 keepdim", c_min0k},
    {"min (3,4) all", c_min_all},
    {"min (2,3,4) axes (0,2)", c_min02},
    {"logsumexp (3,5) axis -1", c_lse_last},
    {"logsumexp (4,3) axis 0 keepdim huge", c_lse0k},
    {"logsumexp (2,3) all", c_lse_all},
    {"logsumexp (2,3,4) axes (0,2) keepdim", c_lse02k},
    {"var (3,4) axis 1 correction 1", c_var1},
    {"var (4,3) axis 0 keepdim correction 0", c_var0k},
    {"var (2,3) all correction 2", c_var_all},
    {"var (2,3,4) axes (-1,0) correction 1", c_var_last0},
    {"var (2,3,2,2) axes (1,3) keepdim correction 0", c_var13k},
    {"sum (2,3,4) axes (0,2)", c_sum02},
    {"sum (2,3,4,2) axes (-1,1) keepdim", c_sum_last1k},
    {"mean (2,3,4) axes (2,0)", c_mean20},
    {"mean (2,3,2,2) axes (0,1,3) keepdim", c_mean013k},
    {"max (3,2,4) axes (0,2)", c_max02},
    {"max (2,3,4) axes (1,2) keepdim", c_max12k},
    {"max (3,4,2) axes (0,2) grid ties", c_max02t},
    {"min (2,3,4) axes (1,-1) keepdim grid ties", c_min1lk},
    {"max (4,3) axes (1) grid ties", c_max1t},
    {"slice (3,6) axis 1 1:5:2", c_slice_a},
    {"slice (2,3,4) axis -1 -3:", c_slice_b},
    {"slice (5,2) axis 0 -100:3:2", c_slice_c},
    {"slice (4,3) axis 0 3:1", c_slice_d},
    {"slice (7) axis 0 -6:100:3", c_slice_e},
    {"concat (2,3),(2,1) axis 1", c_concat1},
    {"concat (1,2),(3,2),(2,2) axis 0", c_concat3},
    {"concat (2,2,1),(2,2,3) axis -1", c_concat_last},
    {"stack (2,3),(2,3) axis 1", c_stack1},
    {"stack (3),(3),(3) axis -1", c_stack_last},
    {"stack x,x (2,2) axis 0", c_stack_self},
    {"permute (2,3,4) to (2,0,1)", c_permute3},
    {"permute (2,3,1,2) to (-1,1,0,2)", c_permute4},
    {"index_select (3,4) axis 1 at (6)", c_index_select1},
    {"index_select (4,2,3) axis 0 at (3)", c_index_select0},
    {"index_select (2,5) axis -1 at (2)", c_index_select_last},
    {"gather (3,4) axis 1 by (3,2)", c_gather1},
    {"gather (3,4) axis 0 by (5,4)", c_gather0},
    {"gather (2,3,2) axis -1 by (2,2,3)", c_gather_last},
    {"embedding (5,3) at (2,3)", c_embedding},
    {"embedding (6,2) at (7)", c_embedding},
    {"embedding (4,3) at ()", c_embedding},
};

#define CASES ((int)(sizeof cases / sizeof cases[0]))

static ag_arena *arena;

static void setup(void)
{
    arena = ag_arena_new();
    ck_assert(arena != NULL);
}

static void teardown(void)
{
    ag_arena_free(arena);
}

static const ops_a_case *torch_case(const char *label)
{
    for (int i = 0; i < OPS_A_CASES; i++)
        if (strcmp(ops_a_cases[i].label, label) == 0) return &ops_a_cases[i];
    return NULL;
}

/* The worst |got - want| / max(1, |want|) over t and n values from `at`;
 * asserts t's shape first. NaN against NaN and equal infinities count as
 * agreement. */
static double worst_error(const char *what, const char *label,
                          const ag_tensor *t, int ndim, const int64_t *shape,
                          int at, int n)
{
    ck_assert_msg(ag_ndim(t) == ndim &&
                      memcmp(ag_shape(t), shape, (size_t)ndim * 8) == 0,
                  "%s: %s has another shape than PyTorch's", label, what);
    ck_assert_int_eq(ag_numel(t), n);
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double got = tensor_at(t, i), want = ops_a_values[at + i];
        if ((isnan(got) && isnan(want)) || got == want) continue;
        double e = fabs(got - want) / fmax(1, fabs(want));
        if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
    }
    return worst;
}

/* The worst errors of all cases, per dtype, printed at the end. */
static double worst_seen[2];

static void check_case(const ops_case *c, ag_dtype dt)
{
    const ops_a_case *f = torch_case(c->label);
    ck_assert_msg(f != NULL, "no fixture case \"%s\"", c->label);
    double tol = dt == AG_F64 ? 1e-10 : 1e-4;
    ag_tensor *x[3] = {NULL, NULL, NULL}, *n[2] = {NULL, NULL};
    for (int k = 0; k < f->n_inputs; k++) {
        x[k] = ag_zeros(arena, dt, f->in_ndim[k], f->in_shape[k]);
        ck_assert_ptr_nonnull(x[k]);
        for (int64_t i = 0; i < ag_numel(x[k]); i++)
            tensor_set(x[k], i, ops_a_values[f->in_at[k] + i]);
        ag_requires_grad(x[k], true);
    }
    for (int k = 0; k < f->n_ints; k++) {
        n[k] = ag_from_data(arena, AG_I32, f->int_ndim[k], f->int_shape[k],
                            &ops_a_ints[f->int_at[k]]);
        ck_assert_ptr_nonnull(n[k]);
    }
    ag_tensor *y = c->fn(arena, x, n);
    ck_assert_msg(y != NULL, "%s: %s", c->label, ag_last_error());
    ck_assert_int_eq(ag_type(y), dt);
    double e = worst_error("the result", c->label, y, f->ndim, f->shape,
                           f->out_at, f->out_n);
    ck_assert_msg(e <= tol, "%s: result off by %g", c->label, e);
    ag_tensor *w = ag_zeros(arena, dt, f->ndim, f->shape);
    for (int i = 0; i < f->out_n; i++)
        tensor_set(w, i, ops_a_values[f->w_at + i]);
    ag_tensor *loss = ag_sum(arena, ag_mul(arena, y, w), AG_ALL, false);
    ck_assert_msg(loss && ag_backward(loss) == 0, "%s: backward: %s", c->label,
                  ag_last_error());
    for (int k = 0; k < f->n_inputs; k++) {
        ck_assert_msg(ag_grad(x[k]) != NULL, "%s: input %d has no gradient",
                      c->label, k);
        double ge =
            worst_error("a gradient", c->label, ag_grad(x[k]), f->in_ndim[k],
                        f->in_shape[k], f->grad_at[k], (int)ag_numel(x[k]));
        ck_assert_msg(ge <= tol, "%s: gradient %d off by %g", c->label, k, ge);
        e = fmax(e, ge);
    }
    int d = dt == AG_F32;
    worst_seen[d] = fmax(worst_seen[d], e);
}

START_TEST(test_case_f64)
{
    check_case(&cases[_i], AG_F64);
}
END_TEST

START_TEST(test_case_f32)
{
    check_case(&cases[_i], AG_F32);
}
END_TEST

/* Every fixture case is checked exactly once. */
START_TEST(test_every_fixture_case_is_used)
{
    for (int i = 0; i < OPS_A_CASES; i++) {
        int uses = 0;
        for (int c = 0; c < CASES; c++)
            uses += strcmp(cases[c].label, ops_a_cases[i].label) == 0;
        ck_assert_msg(uses == 1, "fixture case \"%s\" is checked %d times",
                      ops_a_cases[i].label, uses);
    }
}
END_TEST

/* Prints the worst disagreement of each dtype (the report's numbers). */
START_TEST(test_report_worst)
{
    for (int c = 0; c < CASES; c++) {
        check_case(&cases[c], AG_F64);
        check_case(&cases[c], AG_F32);
    }
    printf("ops_a against PyTorch: worst f64 %.3g, f32 %.3g\n", worst_seen[0],
           worst_seen[1]);
    ck_assert(worst_seen[0] <= 1e-10 && worst_seen[1] <= 1e-4);
}
END_TEST

/* ag_last_error() holds `want` after a call that returned NULL. */
#define EXPECT_ERROR(call, want)                                               \
    do {                                                                       \
        ag_clear_error();                                                      \
        ck_assert_ptr_null(call);                                              \
        ck_assert_msg(strstr(ag_last_error(), want),                           \
                      "\"%s\", expected \"%s\"", ag_last_error(), want);       \
    } while (0)

/* After an earlier error, call returns NULL and keeps its message. */
#define EXPECT_KEPT(call)                                                      \
    do {                                                                       \
        ag_clear_error();                                                      \
        ck_assert_ptr_null(ag_sum(arena, x, 3, false));                        \
        char before_[512];                                                     \
        snprintf(before_, sizeof before_, "%s", ag_last_error());              \
        ck_assert_ptr_null(call);                                              \
        ck_assert_str_eq(ag_last_error(), before_);                            \
    } while (0)

/* A float tensor of the shape given, values 0.5 i - 1. */
static ag_tensor *ramp(ag_dtype dt, int ndim, const int64_t *shape)
{
    ag_tensor *t = ag_zeros(arena, dt, ndim, shape);
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; i < ag_numel(t); i++) tensor_set(t, i, 0.5 * i - 1);
    return t;
}

START_TEST(test_elementwise_errors)
{
    ag_tensor *x = ramp(AG_F64, 2, (int64_t[]){2, 3});
    ag_tensor *y = ramp(AG_F64, 2, (int64_t[]){4, 1});
    ag_tensor *x32 = ramp(AG_F32, 2, (int64_t[]){2, 3});
    ag_tensor *c = ag_zeros(arena, AG_I32, 2, (int64_t[]){2, 3});
    ag_tensor *c5 = ag_zeros(arena, AG_I32, 1, (int64_t[]){5});
    EXPECT_ERROR(ag_clamp(arena, x, NAN, 1),
                 "ag_clamp: the bounds must not be");
    EXPECT_ERROR(ag_maximum(arena, x, y), "ag_maximum: shapes (2,3) and (4,1)");
    EXPECT_ERROR(ag_minimum(arena, x, x32), "ag_minimum");
    EXPECT_ERROR(ag_where(arena, x, x, x), "ag_where: cond must be i32");
    EXPECT_ERROR(ag_where(arena, c5, x, x),
                 "ag_where: cond (5), x (2,3) and y (2,3) do not broadcast");
    EXPECT_ERROR(ag_where(arena, c, x, x32), "ag_where");
    EXPECT_ERROR(ag_sin(NULL, x), "ag_sin");
    /* a NULL input keeps the pending message */
    EXPECT_KEPT(ag_where(arena, c, NULL, x));
    EXPECT_KEPT(ag_where(arena, NULL, x, x));
    EXPECT_KEPT(ag_softplus(arena, NULL));
    EXPECT_KEPT(ag_clamp(arena, NULL, 0, 1));
    EXPECT_KEPT(ag_maximum(arena, x, NULL));
    /* with none pending, the NULL input is named */
    ag_clear_error();
    ck_assert_ptr_null(ag_where(arena, c, x, NULL));
    ck_assert_str_eq(ag_last_error(), "ag_where: input 2 is NULL");
}
END_TEST

START_TEST(test_reduction_errors)
{
    ag_tensor *x = ramp(AG_F64, 3, (int64_t[]){2, 0, 3});
    EXPECT_ERROR(ag_sum_axes(arena, x, 2, (int[]){0, -3}, false),
                 "ag_sum_axes: axis 0 appears twice in the axes (0,-3) of x "
                 "(2,0,3)");
    EXPECT_ERROR(ag_var_axes(arena, x, 0, (int[]){0}, false, 1),
                 "ag_var_axes: n_axes 0 must be in [1, 3] for x (2,0,3)");
    EXPECT_ERROR(ag_mean_axes(arena, x, 4, (int[]){0, 1, 2, 0}, false),
                 "ag_mean_axes: n_axes 4 must be in [1, 3]");
    EXPECT_ERROR(ag_logsumexp_axes(arena, x, 1, NULL, false),
                 "ag_logsumexp_axes: axes is NULL");
    EXPECT_ERROR(ag_min_axes(arena, x, 2, (int[]){0, 3}, false),
                 "ag_min_axes: axis 3");
    EXPECT_ERROR(ag_max_axes(arena, x, 2, (int[]){2, 1}, true),
                 "ag_max_axes: cannot take the maximum of an empty set of "
                 "axes (2,1) of shape (2,0,3)");
    EXPECT_ERROR(ag_min(arena, x, AG_ALL, false),
                 "ag_min: cannot take the minimum of no elements, shape "
                 "(2,0,3)");
    EXPECT_ERROR(ag_logsumexp(arena, x, 3, false), "ag_logsumexp: axis 3");
    EXPECT_ERROR(ag_var(arena, x, -4, false, 1), "ag_var: axis -4");
    EXPECT_KEPT(ag_var(arena, NULL, 0, false, 1));
    EXPECT_KEPT(ag_max_axes(arena, NULL, 1, (int[]){0}, false));
    /* an empty axis beside a full one: as PyTorch, over the full one */
    ag_tensor *m = ag_min_axes(arena, x, 2, (int[]){0, 2}, false);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(ag_numel(m), 0);
}
END_TEST

START_TEST(test_layout_errors)
{
    ag_tensor *x = ramp(AG_F64, 2, (int64_t[]){2, 3});
    ag_tensor *y = ramp(AG_F64, 2, (int64_t[]){3, 3});
    ag_tensor *x32 = ramp(AG_F32, 2, (int64_t[]){2, 3});
    EXPECT_ERROR(ag_slice(arena, x, 1, 0, 2, 0),
                 "ag_slice: step must be >= 1, got 0");
    EXPECT_ERROR(ag_slice(arena, x, 2, 0, 2, 1), "ag_slice: axis 2");
    EXPECT_ERROR(ag_concat(arena, 2, (ag_tensor *[]){x, y}, 1),
                 "ag_concat: tensor 1 (3,3) does not match tensor 0 (2,3) "
                 "except along axis 1");
    EXPECT_ERROR(ag_concat(arena, 0, (ag_tensor *[]){x}, 0),
                 "ag_concat: needs at least one tensor, got 0");
    EXPECT_ERROR(ag_concat(arena, 2, (ag_tensor *[]){x, x32}, 0), "ag_concat");
    EXPECT_ERROR(ag_stack(arena, 2, (ag_tensor *[]){x, y}, 0),
                 "ag_stack: tensor 1 (3,3) and tensor 0 (2,3) differ in shape");
    EXPECT_ERROR(ag_stack(arena, 1, (ag_tensor *[]){x}, 3),
                 "ag_stack: axis 3 is out of range [-3, 2] for tensors (2,3)");
    EXPECT_ERROR(ag_permute(arena, x, (int[]){1, -1}),
                 "ag_permute: dims (1,-1) are not a permutation of the 2 axes "
                 "of x (2,3)");
    EXPECT_ERROR(ag_permute(arena, x, (int[]){0, 2}), "ag_permute: dims (0,2)");
    EXPECT_ERROR(ag_permute(arena, x, NULL), "ag_permute: dims is NULL");
    EXPECT_KEPT(ag_concat(arena, 2, (ag_tensor *[]){x, NULL}, 0));
    EXPECT_KEPT(ag_stack(arena, 2, (ag_tensor *[]){NULL, x}, 0));
    EXPECT_KEPT(ag_slice(arena, NULL, 0, 0, 1, 1));
    EXPECT_KEPT(ag_permute(arena, NULL, (int[]){0, 1}));
}
END_TEST

START_TEST(test_index_errors)
{
    ag_tensor *x = ramp(AG_F64, 2, (int64_t[]){2, 3});
    ag_tensor *w = ramp(AG_F64, 2, (int64_t[]){4, 3});
    ag_tensor *i3 =
        ag_from_data(arena, AG_I32, 1, (int64_t[]){3}, (int32_t[]){0, 3, 1});
    ag_tensor *g = ag_from_data(arena, AG_I32, 2, (int64_t[]){2, 2},
                                (int32_t[]){0, 2, 1, -1});
    ag_tensor *ids = ag_from_data(arena, AG_I32, 2, (int64_t[]){2, 2},
                                  (int32_t[]){0, 3, 4, 1});
    EXPECT_ERROR(ag_index_select(arena, x, 1, i3),
                 "ag_index_select: index 3 at position (1) is out of range "
                 "[0, 3) for axis 1 of x (2,3)");
    EXPECT_ERROR(ag_index_select(arena, x, 0, g),
                 "ag_index_select: index must be 1-D (K), got (2,2)");
    EXPECT_ERROR(
        ag_index_select(arena, x, 0, x),
        "ag_index_select: the index tensor must be i32, got f64 (2,3)");
    EXPECT_ERROR(ag_gather(arena, x, 1, g),
                 "ag_gather: index -1 at position (1,1) is out of range [0, 3) "
                 "for axis 1 of x (2,3)");
    EXPECT_ERROR(ag_gather(arena, x, 0, i3),
                 "ag_gather: index (3) must have the 2 axes of x (2,3)");
    ag_tensor *tall = ag_zeros(arena, AG_I32, 2, (int64_t[]){3, 1});
    EXPECT_ERROR(ag_gather(arena, x, 1, tall), "ag_gather: index (3,1)");
    EXPECT_ERROR(ag_embedding(arena, w, ids),
                 "ag_embedding: id 4 at position (1,0) is out of range [0, 4) "
                 "for weight (4,3)");
    EXPECT_ERROR(ag_embedding(arena, i3, ids), "ag_embedding");
    EXPECT_ERROR(ag_embedding(arena, ramp(AG_F64, 1, (int64_t[]){4}), i3),
                 "ag_embedding: weight must be 2-D (V,C), got (4)");
    EXPECT_KEPT(ag_embedding(arena, w, NULL));
    EXPECT_KEPT(ag_gather(arena, NULL, 0, g));
    EXPECT_KEPT(ag_index_select(arena, x, 0, NULL));
    /* nothing was written: a repeated index adds up in the gradient */
    ag_requires_grad(w, true);
    ag_tensor *ok =
        ag_from_data(arena, AG_I32, 1, (int64_t[]){3}, (int32_t[]){2, 2, 0});
    ag_tensor *e = ag_embedding(arena, w, ok);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(ag_ndim(e), 2);
    ck_assert_int_eq(ag_backward(ag_sum(arena, e, AG_ALL, false)), 0);
    ck_assert_double_eq(tensor_at(ag_grad(w), 6), 2);
    ck_assert_double_eq(tensor_at(ag_grad(w), 3), 0);
}
END_TEST

static Suite *ops_a_suite(void)
{
    Suite *s = suite_create("ops_a");
    TCase *tc = tcase_create("torch");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_every_fixture_case_is_used);
    tcase_add_loop_test(tc, test_case_f64, 0, CASES);
    tcase_add_loop_test(tc, test_case_f32, 0, CASES);
    tcase_add_test(tc, test_report_worst);
    suite_add_tcase(s, tc);
    TCase *te = tcase_create("errors");
    tcase_add_checked_fixture(te, setup, teardown);
    tcase_add_test(te, test_elementwise_errors);
    tcase_add_test(te, test_reduction_errors);
    tcase_add_test(te, test_layout_errors);
    tcase_add_test(te, test_index_errors);
    suite_add_tcase(s, te);
    return s;
}

int main(void)
{
    return run_suite(ops_a_suite());
}
