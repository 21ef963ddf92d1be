/* test_higher_order.c: every op of the op table at second order and in
 * forward mode, over the cases of gradcheck.c (several shapes per op,
 * broadcasting, a tensor used twice), in f64:
 *   - ag_gradgradcheck: the op's derivative in ops (its vjp rule) against
 *     central differences of the first derivative;
 *   - its JVP (tangents carried by the forward pass) against its VJP:
 *     <u, J v> = <J^T u, v> for random u and v;
 *   - its JVP against central differences, (f(x + eps v) - f(x - eps v)) /
 *     2 eps.
 * An op of the table without a vjp or jvp rule, or without a case, fails.
 * Then user-defined functions with and without derivatives in ops, and the
 * checkers' own failures (a wrong second derivative must be caught). */
#include "gradcheck.h"
#include "internal.h"
#include "support.h"

#include <check.h>
#include <math.h>
#include <string.h>

#define EPS 1e-6
#define TOLERANCE 1e-6

/* Every op has both rules and at least one case. */
START_TEST(test_every_op_has_rules)
{
    for (int i = 0; i < ag__op_table_size; i++) {
        const ag_op *op = ag__op_table[i];
        ck_assert_msg(op->vjp, "op '%s' has no derivative in ops", op->name);
        ck_assert_msg(op->jvp, "op '%s' has no forward-mode rule", op->name);
        int cases = 0;
        for (int c = 0; c < gc_case_count; c++)
            cases += strcmp(gc_cases[c].op, op->name) == 0;
        ck_assert_msg(cases > 0, "op '%s' has no case", op->name);
    }
}
END_TEST

/* A case as an ag_fn. */
static ag_tensor *call_case(ag_arena *a, ag_tensor *const *inputs, int n,
                            void *user)
{
    ag_tensor *x[GC_MAX_INPUTS];
    memcpy(x, inputs, (size_t)n * sizeof *x);
    return ((const gc_case *)user)->fn(a, x);
}

/* Case _i passes ag_gradgradcheck. */
START_TEST(test_case_second_order)
{
    const gc_case *c = &gc_cases[_i];
    ag_arena *a = ag_arena_new();
    ag_tensor *x[GC_MAX_INPUTS];
    ck_assert_int_eq(gc_make_inputs(c, a, AG_F64, 3000 + (uint64_t)_i, x), 0);
    ag_gradcheck_options o = ag_gradcheck_defaults();
    o.atol = o.rtol = TOLERANCE;
    ag_gradcheck_report r;
    int status = ag_gradgradcheck(call_case, c->n_inputs, x, (void *)c, &o, &r);
    ck_assert_msg(status >= 0, "%s %s: %s", c->op, c->label, ag_last_error());
    ck_assert_msg(status == 0,
                  "%s %s: input %d element %lld output %lld: analytic %.12g "
                  "numeric %.12g",
                  c->op, c->label, r.input, (long long)r.element,
                  (long long)r.output_element, r.analytic, r.numeric);
    ck_assert_int_gt(r.checked, 0);
    ag_arena_free(a);
}
END_TEST

/* <a, b> over all elements. */
static double dot(const ag_tensor *a, const ag_tensor *b)
{
    double s = 0;
    for (int64_t i = 0; i < ag_numel(a); i++)
        s += tensor_at(a, i) * tensor_at(b, i);
    return s;
}

/* Case _i: the JVP by forward mode agrees with the VJP by reverse mode,
 * <u, J v> = <J^T u, v> summed over the inputs, and with central
 * differences of f along v. */
START_TEST(test_case_forward_mode)
{
    const gc_case *c = &gc_cases[_i];
    int n = c->n_inputs;
    ag_arena *a = ag_arena_new();
    ag_tensor *x[GC_MAX_INPUTS], *v[GC_MAX_INPUTS], *vjp[GC_MAX_INPUTS];
    ck_assert_int_eq(gc_make_inputs(c, a, AG_F64, 4000 + (uint64_t)_i, x), 0);
    ag_rng rng = ag_rng_seed(5000 + (uint64_t)_i);
    for (int i = 0; i < n; i++)
        v[i] = ag_randn(a, AG_F64, ag_ndim(x[i]), ag_shape(x[i]), 0, 1, &rng);
    /* The duals require a gradient too, so that a case that takes a
     * gradient inside (gelu_derivative's) runs forward over reverse. */
    ag_tensor *dual[GC_MAX_INPUTS];
    for (int i = 0; i < n; i++) {
        dual[i] = ag_make_dual(a, x[i], v[i]);
        ck_assert_ptr_nonnull(dual[i]);
        ag_requires_grad(dual[i], true);
    }
    ag_tensor *y = c->fn(a, dual);
    ck_assert_msg(y != NULL, "%s %s: %s", c->op, c->label, ag_last_error());
    ag_tensor *jv = ag_tangent(y);
    ck_assert_msg(jv != NULL, "%s %s: no tangent", c->op, c->label);
    ck_assert_int_eq(ag_ndim(jv), ag_ndim(y));
    ck_assert_int_eq(ag_numel(jv), ag_numel(y));
    ag_tensor *u = ag_randn(a, AG_F64, ag_ndim(y), ag_shape(y), 0, 1, &rng);
    ck_assert_msg(ag_vjp(a, call_case, n, x, (void *)c, u, NULL, vjp) == 0,
                  "%s %s: %s", c->op, c->label, ag_last_error());
    double lhs = dot(u, jv), rhs = 0;
    for (int i = 0; i < n; i++) rhs += dot(vjp[i], v[i]);
    ck_assert_msg(fabs(lhs - rhs) <= 1e-10 * fmax(1, fabs(lhs)),
                  "%s %s: <u, Jv> %.17g, <J^T u, v> %.17g", c->op, c->label,
                  lhs, rhs);
    /* central differences along v */
    ag_tensor *plus[GC_MAX_INPUTS], *minus[GC_MAX_INPUTS];
    for (int i = 0; i < n; i++) {
        plus[i] = ag_detach(a, x[i]);
        minus[i] = ag_detach(a, x[i]);
        for (int64_t j = 0; j < ag_numel(x[i]); j++) {
            tensor_set(plus[i], j,
                       tensor_at(x[i], j) + EPS * tensor_at(v[i], j));
            tensor_set(minus[i], j,
                       tensor_at(x[i], j) - EPS * tensor_at(v[i], j));
        }
        ag_requires_grad(plus[i], true);
        ag_requires_grad(minus[i], true);
    }
    ag_tensor *yp = c->fn(a, plus), *ym = c->fn(a, minus);
    ck_assert_ptr_nonnull(yp);
    ck_assert_ptr_nonnull(ym);
    for (int64_t k = 0; k < ag_numel(y); k++) {
        double num = (tensor_at(yp, k) - tensor_at(ym, k)) / (2 * EPS);
        double ana = tensor_at(jv, k);
        ck_assert_msg(fabs(num - ana) <= 1e-5 * fmax(1, fabs(num)),
                      "%s %s: element %lld: jvp %.12g, differences %.12g",
                      c->op, c->label, (long long)k, ana, num);
    }
    ag_arena_free(a);
}
END_TEST

/* ---- user-defined functions ---- */

/* cube(x) = x^3, elementwise, with a kernel backward, a backward in ops
 * (3 x^2 g) and a JVP (3 x^2 t). */
static ag_tensor *cube_forward(ag_function_ctx *ctx, ag_arena *a,
                               ag_tensor *const *in, int n)
{
    (void)ctx;
    (void)n;
    ag_tensor *y = ag_zeros(a, ag_type(in[0]), ag_ndim(in[0]), ag_shape(in[0]));
    for (int64_t i = 0; y && i < ag_numel(y); i++)
        tensor_set(y, i, pow(tensor_at(in[0], i), 3));
    return y;
}

static ag_tensor *three_x_squared(ag_arena *a, ag_tensor *x)
{
    return ag_scale(a, ag_mul(a, x, x), 3);
}

static int cube_backward(ag_function_ctx *ctx, ag_tensor *g,
                         ag_tensor *const *grad_in)
{
    ag_tensor *x = ag_function_input(ctx, 0);
    for (int64_t i = 0; grad_in[0] && i < ag_numel(x); i++)
        tensor_set(grad_in[0], i,
                   tensor_at(grad_in[0], i) +
                       3 * pow(tensor_at(x, i), 2) * tensor_at(g, i));
    return 0;
}

static int cube_backward_ops(ag_function_ctx *ctx, ag_arena *a, ag_tensor *g,
                             ag_tensor **grad_in)
{
    grad_in[0] = ag_mul(a, g, three_x_squared(a, ag_function_input(ctx, 0)));
    return grad_in[0] ? 0 : -1;
}

static ag_tensor *cube_jvp(ag_function_ctx *ctx, ag_arena *a,
                           ag_tensor *const *t)
{
    return ag_mul(a, t[0], three_x_squared(a, ag_function_input(ctx, 0)));
}

static const ag_function cube_full = {.name = "cube",
                                      .forward = cube_forward,
                                      .backward = cube_backward,
                                      .backward_ops = cube_backward_ops,
                                      .jvp = cube_jvp};
static const ag_function cube_ops_only = {.name = "cube_ops",
                                          .forward = cube_forward,
                                          .backward_ops = cube_backward_ops};
static const ag_function cube_first_order = {
    .name = "cube_first", .forward = cube_forward, .backward = cube_backward};

static ag_tensor *apply_fn(ag_arena *a, ag_tensor *const *x, int n, void *fn)
{
    return ag_sum(a, ag_function_apply(a, fn, n, x, NULL), AG_ALL, false);
}

/* A function with its backward in ops is twice differentiable and carries
 * tangents; one with only backward_ops also trains by ag_backward. */
START_TEST(test_function_higher_order)
{
    ag_arena *a = ag_arena_new();
    ag_rng rng = ag_rng_seed(8);
    ag_tensor *x = ag_randn(a, AG_F64, 2, (int64_t[]){2, 3}, 0, 1, &rng);
    ag_requires_grad(x, true);
    const ag_function *fns[2] = {&cube_full, &cube_ops_only};
    for (int k = 0; k < 2; k++) {
        ag_gradcheck_report r;
        ck_assert_msg(ag_gradcheck(apply_fn, 1, &x, (void *)fns[k], NULL, &r) ==
                          0,
                      "%s", ag_last_error());
        ck_assert_msg(
            ag_gradgradcheck(apply_fn, 1, &x, (void *)fns[k], NULL, &r) == 0,
            "%s", ag_last_error());
    }
    /* H of sum(x^3) is diag(6 x) */
    ag_tensor *v = ag_ones(a, AG_F64, 2, (int64_t[]){2, 3}), *hv;
    ck_assert_int_eq(
        ag_hvp(a, apply_fn, 1, &x, (void *)&cube_full, &v, NULL, &hv), 0);
    for (int64_t i = 0; i < 6; i++)
        ck_assert_double_eq_tol(tensor_at(hv, i), 6 * tensor_at(x, i), 1e-12);
    /* the JVP of the function itself: 3 x^2 v */
    ag_tensor *dual = ag_make_dual(a, x, v);
    ag_tensor *y = ag_function_apply(a, &cube_full, 1, &dual, NULL);
    ck_assert_ptr_nonnull(y);
    ag_tensor *t = ag_tangent(y);
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; i < 6; i++)
        ck_assert_double_eq_tol(tensor_at(t, i), 3 * pow(tensor_at(x, i), 2),
                                1e-12);
    ag_arena_free(a);
}
END_TEST

/* Without derivatives in ops, a gradient of the gradient or a tangent
 * through the function is an error that names it. */
START_TEST(test_function_first_order_only)
{
    ag_arena *a = ag_arena_new();
    ag_rng rng = ag_rng_seed(9);
    ag_tensor *x = ag_randn(a, AG_F64, 1, (int64_t[]){4}, 0, 1, &rng);
    ag_requires_grad(x, true);
    ag_tensor *y = apply_fn(a, &x, 1, (void *)&cube_first_order), *g = NULL;
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(ag_gradients(a, 1, &y, NULL, 1, &x, false, &g), 0);
    for (int64_t i = 0; i < 4; i++)
        ck_assert_double_eq_tol(tensor_at(g, i), 3 * pow(tensor_at(x, i), 2),
                                1e-12);
    ck_assert_int_eq(ag_gradients(a, 1, &y, NULL, 1, &x, true, &g), -1);
    ck_assert_ptr_null(g);
    ck_assert_msg(strstr(ag_last_error(), "cube_first"), "%s", ag_last_error());
    ag_tensor *v = ag_ones(a, AG_F64, 1, (int64_t[]){4});
    ag_tensor *dual = ag_make_dual(a, x, v);
    ck_assert_ptr_null(ag_function_apply(a, &cube_first_order, 1, &dual, NULL));
    ck_assert_msg(strstr(ag_last_error(), "cube_first") &&
                      strstr(ag_last_error(), "forward-mode"),
                  "%s", ag_last_error());
    ag_arena_free(a);
}
END_TEST

/* A backward in ops that is wrong at second order (it uses a constant copy
 * of x, so its own derivative in x is lost) passes gradcheck and fails
 * gradgradcheck. */
static int detached_backward_ops(ag_function_ctx *ctx, ag_arena *a,
                                 ag_tensor *g, ag_tensor **grad_in)
{
    ag_tensor *x = ag_detach(a, ag_function_input(ctx, 0));
    grad_in[0] = ag_mul(a, g, three_x_squared(a, x));
    return grad_in[0] ? 0 : -1;
}

static const ag_function cube_wrong = {.name = "cube_wrong",
                                       .forward = cube_forward,
                                       .backward_ops = detached_backward_ops};

START_TEST(test_gradgradcheck_catches_a_wrong_rule)
{
    ag_arena *a = ag_arena_new();
    ag_rng rng = ag_rng_seed(10);
    ag_tensor *x = ag_rand(a, AG_F64, 1, (int64_t[]){5}, 0.5, 2, &rng);
    ag_requires_grad(x, true);
    ag_gradcheck_report r;
    ck_assert_int_eq(
        ag_gradcheck(apply_fn, 1, &x, (void *)&cube_wrong, NULL, &r), 0);
    ck_assert_int_eq(
        ag_gradgradcheck(apply_fn, 1, &x, (void *)&cube_wrong, NULL, &r), 1);
    ck_assert(!r.passed);
    ck_assert_int_eq(r.input, 0);
    /* analytic 0 (the lost term), numeric 6 x u */
    ck_assert_double_eq_tol(r.analytic, 0, 1e-12);
    ck_assert(fabs(r.numeric) > 1e-3);
    ag_arena_free(a);
}
END_TEST

/* A function that ignores an input fails gradgradcheck as it fails
 * gradcheck. */
static ag_tensor *first_only(ag_arena *a, ag_tensor *const *x, int n, void *u)
{
    (void)n;
    (void)u;
    return ag_tanh(a, x[0]);
}

START_TEST(test_gradgradcheck_unused_input)
{
    ag_arena *a = ag_arena_new();
    ag_rng rng = ag_rng_seed(11);
    ag_tensor *x[2] = {ag_randn(a, AG_F64, 1, (int64_t[]){3}, 0, 1, &rng),
                       ag_randn(a, AG_F64, 1, (int64_t[]){3}, 0, 1, &rng)};
    ag_requires_grad(x[0], true);
    ag_requires_grad(x[1], true);
    ag_gradcheck_report r;
    ck_assert_int_eq(ag_gradgradcheck(first_only, 2, x, NULL, NULL, &r), 1);
    ck_assert(r.unreached);
    ck_assert_int_eq(r.input, 1);
    ag_gradcheck_options o = ag_gradcheck_defaults();
    o.allow_unused = true;
    ck_assert_int_eq(ag_gradgradcheck(first_only, 2, x, NULL, &o, &r), 0);
    ag_arena_free(a);
}
END_TEST

/* ag_cast carries gradients and tangents between f32 and f64. */
static ag_tensor *through_f32(ag_arena *a, ag_tensor *const *x, int n, void *u)
{
    (void)n;
    (void)u;
    ag_tensor *h = ag_cast(a, x[0], AG_F32);
    return ag_cast(a, ag_mul(a, h, h), AG_F64);
}

START_TEST(test_cast_between_dtypes)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *x =
        ag_from_data(a, AG_F64, 1, (int64_t[]){3}, (double[]){0.5, -1.25, 2});
    ag_requires_grad(x, true);
    ag_tensor *y = ag_sum(a, through_f32(a, &x, 1, NULL), AG_ALL, false), *g;
    ck_assert_int_eq(ag_type(y), AG_F64);
    ck_assert_int_eq(ag_gradients(a, 1, &y, NULL, 1, &x, false, &g), 0);
    ck_assert_int_eq(ag_type(g), AG_F64);
    for (int64_t i = 0; i < 3; i++) /* values exact in f32 */
        ck_assert_double_eq(tensor_at(g, i), 2 * tensor_at(x, i));
    ag_tensor *v = ag_ones(a, AG_F64, 1, (int64_t[]){3}), *jv;
    ck_assert_int_eq(ag_jvp(a, through_f32, 1, &x, NULL, &v, NULL, &jv), 0);
    for (int64_t i = 0; i < 3; i++)
        ck_assert_double_eq(tensor_at(jv, i), 2 * tensor_at(x, i));
    ck_assert_ptr_null(ag_cast(a, x, AG_I32));
    ck_assert_msg(strstr(ag_last_error(), "ag_cast:"), "%s", ag_last_error());
    ag_arena_free(a);
}
END_TEST

/* ---- ag_gradcheck_params: a model checked in place ---- */

typedef struct {
    ag_tensor *w1, *b1, *w2, *x;
    bool ignore_b1;
} tiny_model;

static ag_tensor *tiny_loss(ag_arena *a, void *user)
{
    tiny_model *m = user;
    ag_tensor *h =
        ag_tanh(a, ag_linear(a, m->x, m->w1, m->ignore_b1 ? NULL : m->b1));
    return ag_mean(a, ag_mul(a, ag_linear(a, h, m->w2, NULL), h), AG_ALL,
                   false);
}

START_TEST(test_gradcheck_params_in_place)
{
    ag_arena *a = ag_arena_new();
    ag_rng rng = ag_rng_seed(12);
    ag_params *p = ag_params_new(a);
    tiny_model m = {ag_randn(a, AG_F64, 2, (int64_t[]){4, 3}, 0, 1, &rng),
                    ag_randn(a, AG_F64, 1, (int64_t[]){4}, 0, 1, &rng),
                    ag_randn(a, AG_F64, 2, (int64_t[]){4, 4}, 0, 1, &rng),
                    ag_randn(a, AG_F64, 2, (int64_t[]){5, 3}, 0, 1, &rng),
                    false};
    ck_assert_int_eq(ag_params_add(p, "fc1.weight", m.w1), 0);
    ck_assert_int_eq(ag_params_add(p, "fc1.bias", m.b1), 0);
    ck_assert_int_eq(ag_params_add(p, "fc2.weight", m.w2), 0);
    ag_params_requires_grad(p, true);
    ag_tensor *before = ag_detach(a, m.w1);
    ag_gradcheck_report r;
    ck_assert_msg(ag_gradcheck_params(tiny_loss, &m, p, NULL, &r) == 0, "%s",
                  ag_last_error());
    ck_assert_int_eq(r.checked, 12 + 4 + 16);
    ck_assert_ptr_nonnull(r.name);
    ck_assert_ptr_null(ag_grad(m.w1)); /* the model's gradients untouched */
    for (int64_t i = 0; i < 12; i++)
        ck_assert_double_eq(tensor_at(m.w1, i), tensor_at(before, i));
    /* a parameter the loss does not use fails, named */
    m.ignore_b1 = true;
    ck_assert_int_eq(ag_gradcheck_params(tiny_loss, &m, p, NULL, &r), 1);
    ck_assert(r.unreached);
    ck_assert_str_eq(r.name, "fc1.bias");
    /* f32 parameters are refused with the name */
    ag_params *p32 = ag_params_new(a);
    ag_tensor *w32 = ag_zeros(a, AG_F32, 1, (int64_t[]){2});
    ck_assert_int_eq(ag_params_add(p32, "w", w32), 0);
    ck_assert_int_eq(ag_gradcheck_params(tiny_loss, &m, p32, NULL, &r), -1);
    ck_assert_msg(strstr(ag_last_error(), "'w' is f32"), "%s", ag_last_error());
    ag_arena_free(a);
}
END_TEST

static Suite *higher_order_suite(void)
{
    Suite *s = suite_create("higher_order");
    TCase *ops = tcase_create("ops");
    /* the second order of the largest cases (attention over two key
     * blocks, convolutions) takes seconds under the sanitizers */
    tcase_set_timeout(ops, 300);
    tcase_add_test(ops, test_every_op_has_rules);
    tcase_add_loop_test(ops, test_case_second_order, 0, gc_case_count);
    tcase_add_loop_test(ops, test_case_forward_mode, 0, gc_case_count);
    suite_add_tcase(s, ops);
    TCase *fn = tcase_create("functions");
    tcase_add_test(fn, test_function_higher_order);
    tcase_add_test(fn, test_function_first_order_only);
    tcase_add_test(fn, test_gradgradcheck_catches_a_wrong_rule);
    tcase_add_test(fn, test_gradgradcheck_unused_input);
    tcase_add_test(fn, test_cast_between_dtypes);
    tcase_add_test(fn, test_gradcheck_params_in_place);
    suite_add_tcase(s, fn);
    return s;
}

int main(void)
{
    return run_suite(higher_order_suite());
}
