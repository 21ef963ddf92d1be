/* test_attention.c: ag_scaled_dot_product_attention against PyTorch
 * (fixtures/attention_torch.h, made by fixtures/make_attention_fixture.py):
 * the output and the gradients of sum(O * W) with respect to q, k, v and
 * the mask, through the fast backward kernel and through the derivative in
 * ops (ag_gradients with create_graph), in f64 (within 1e-10) and f32
 * (within 1e-4), each error relative to the largest magnitude of the
 * tensor compared. Then a fully masked row, the memory the op takes at a
 * long sequence (no (T,S) score matrix) and every error it reports. */
#include <autograd.h>

#include "fixtures/attention_torch.h"
#include "support.h"
#include <check.h>
#include <math.h>
#include <string.h>

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

/* A tensor of dtype dt holding fixture values from `at` on. */
static ag_tensor *from_fixture(ag_dtype dt, const attention_torch_shape *s,
                               int at)
{
    ag_tensor *t = ag_zeros(arena, dt, s->ndim, s->shape);
    ck_assert_msg(t != NULL, "%s", ag_last_error());
    for (int64_t i = 0; i < ag_numel(t); i++)
        tensor_set(t, i, attention_torch_values[at + i]);
    return t;
}

/* The largest |got - want| over t's elements, relative to the largest
 * |want|; asserts the shape's element count first. */
static double error_of(const ag_tensor *t, int at, int64_t n)
{
    ck_assert_int_eq(ag_numel(t), n);
    double worst = 0, scale = 0;
    for (int64_t i = 0; i < n; i++) {
        double want = attention_torch_values[at + i];
        scale = fmax(scale, fabs(want));
        double e = fabs(tensor_at(t, i) - want);
        worst = isnan(e) ? INFINITY : fmax(worst, e);
    }
    return scale > 0 ? worst / scale : worst;
}

/* Case c in dtype dt, its gradients by ag_backward (create_graph false)
 * or by ag_gradients with a graph: asserts every tensor within tol and
 * returns the worst error. */
static double check_case(const attention_torch_case *c, ag_dtype dt,
                         bool create_graph, double tol)
{
    bool has_mask = c->in[3].ndim >= 0;
    int n = has_mask ? 4 : 3;
    ag_tensor *x[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < n; i++) {
        x[i] = from_fixture(dt, &c->in[i], c->in_at[i]);
        ag_requires_grad(x[i], true);
    }
    ag_tensor *w = from_fixture(dt, &c->out, c->in_at[4]);
    ag_tensor *o = ag_scaled_dot_product_attention(arena, x[0], x[1], x[2],
                                                   x[3], c->causal);
    ck_assert_msg(o != NULL, "%s: %s", c->label, ag_last_error());
    ck_assert_int_eq(ag_ndim(o), c->out.ndim);
    ck_assert_mem_eq(ag_shape(o), c->out.shape,
                     (size_t)c->out.ndim * sizeof(int64_t));
    double worst = error_of(o, c->out_at, c->out_n);
    ag_tensor *loss = ag_sum(arena, ag_mul(arena, o, w), AG_ALL, false);
    ag_tensor *g[4] = {NULL, NULL, NULL, NULL};
    if (create_graph) {
        ck_assert_msg(ag_gradients(arena, 1, &loss, NULL, n, x, true, g) == 0,
                      "%s: %s", c->label, ag_last_error());
    } else {
        ck_assert_msg(ag_backward(loss) == 0, "%s: %s", c->label,
                      ag_last_error());
        for (int i = 0; i < n; i++) g[i] = ag_grad(x[i]);
    }
    for (int i = 0; i < n; i++) {
        ck_assert_msg(g[i] != NULL, "%s: input %d has no gradient", c->label,
                      i);
        double e = error_of(g[i], c->grad_at[i], ag_numel(x[i]));
        ck_assert_msg(e <= tol, "%s (%s%s): gradient of input %d off by %.3g",
                      c->label, dt == AG_F64 ? "f64" : "f32",
                      create_graph ? ", in ops" : "", i, e);
        worst = fmax(worst, e);
    }
    ck_assert_msg(worst <= tol, "%s: output off by %.3g", c->label, worst);
    return worst;
}

START_TEST(test_against_torch)
{
    const attention_torch_case *c = &attention_torch[_i];
    double e64 = check_case(c, AG_F64, false, 1e-10);
    double e64_ops = check_case(c, AG_F64, true, 1e-10);
    double e32 = check_case(c, AG_F32, false, 1e-4);
    double e32_ops = check_case(c, AG_F32, true, 1e-4);
    printf("attention %-32s f64 %.2g (ops %.2g)  f32 %.2g (ops %.2g)\n",
           c->label, e64, e64_ops, e32, e32_ops);
}
END_TEST

/* q (T,E), k (S,E) and v (S,Ev) of dtype dt, standard normal from seed,
 * in x[0..2]. */
static void random_qkv(ag_dtype dt, uint64_t seed, int64_t T, int64_t S,
                       int64_t E, int64_t Ev, ag_tensor **x)
{
    ag_rng rng = ag_rng_seed(seed);
    int64_t shapes[3][2] = {{T, E}, {S, E}, {S, Ev}};
    for (int i = 0; i < 3; i++) {
        x[i] = ag_randn(arena, dt, 2, shapes[i], 0, 1, &rng);
        ck_assert_ptr_nonnull(x[i]);
    }
}

/* A row of -inf scores gives zeros and no gradient, and leaves the other
 * rows as they are without it. */
START_TEST(test_fully_masked_row)
{
    ag_tensor *x[3];
    random_qkv(AG_F64, 4, 3, 5, 4, 2, x);
    ag_tensor *q = x[0], *k = x[1], *v = x[2];
    ag_tensor *m = ag_zeros(arena, AG_F64, 2, (int64_t[]){3, 5});
    for (int s = 0; s < 5; s++) tensor_set(m, 5 + s, -INFINITY);
    ag_requires_grad(q, true);
    ag_tensor *o = ag_scaled_dot_product_attention(arena, q, k, v, m, false);
    ag_tensor *o0 =
        ag_scaled_dot_product_attention(arena, q, k, v, NULL, false);
    ck_assert_ptr_nonnull(o);
    ck_assert_ptr_nonnull(o0);
    for (int i = 0; i < 6; i++) {
        bool row1 = i / 2 == 1;
        ck_assert_double_eq(tensor_at(o, i), row1 ? 0 : tensor_at(o0, i));
    }
    ck_assert_int_eq(ag_backward(ag_sum(arena, o, AG_ALL, false)), 0);
    for (int e = 0; e < 4; e++)
        ck_assert_double_eq(tensor_at(ag_grad(q), 4 + e), 0);
}
END_TEST

/* NaN in q reaches its output row and every gradient, as in PyTorch:
 * a row of NaN scores is not taken for a fully masked one. */
START_TEST(test_nan_propagates)
{
    ag_tensor *x[3];
    random_qkv(AG_F64, 8, 3, 5, 4, 2, x);
    ag_tensor *q = x[0], *k = x[1], *v = x[2];
    tensor_set(q, 4, NAN); /* row 1 */
    ag_requires_grad(k, true);
    ag_tensor *o = ag_scaled_dot_product_attention(arena, q, k, v, NULL, false);
    ck_assert_ptr_nonnull(o);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(!!isnan(tensor_at(o, i)), i / 2 == 1);
    ck_assert_int_eq(ag_backward(ag_sum(arena, o, AG_ALL, false)), 0);
    ck_assert(isnan(tensor_at(ag_grad(k), 0)));
}
END_TEST

/* Large finite negative mask entries (-1e4 to -FLT_MAX) hide their keys
 * as -inf does, in f32 and f64, with the same gradients. */
START_TEST(test_large_negative_mask)
{
    static const double big[] = {-1e4, -1e7, -1.5e7, -1.744e7,
                                 -2e7, -1e9, -1e15,  -3.4e38};
    for (int f = 0; f < 2; f++) {
        ag_dtype dt = f ? AG_F32 : AG_F64;
        ag_tensor *x[3];
        random_qkv(dt, 7, 8, 9, 4, 3, x);
        ag_tensor *q = x[0], *k = x[1], *v = x[2];
        ag_tensor *m[2], *o[2], *g[2];
        for (int run = 0; run < 2; run++) {
            m[run] = ag_zeros(arena, dt, 2, (int64_t[]){8, 9});
            for (int t = 0; t < 8; t++) /* key t of row t, key 8 of all */
                for (int s = t; s<9; s += 8 - t> 0 ? 8 - t : 1)
                    tensor_set(m[run], t * 9 + s, run ? -INFINITY : big[t]);
            ag_requires_grad(q, true);
            o[run] =
                ag_scaled_dot_product_attention(arena, q, k, v, m[run], false);
            ck_assert_ptr_nonnull(o[run]);
            ag_tensor *loss = ag_sum(arena, o[run], AG_ALL, false);
            ck_assert_int_eq(
                ag_gradients(arena, 1, &loss, NULL, 1, &q, false, &g[run]), 0);
        }
        for (int64_t i = 0; i < ag_numel(o[0]); i++)
            ck_assert_double_eq(tensor_at(o[0], i), tensor_at(o[1], i));
        for (int64_t i = 0; i < ag_numel(q); i++)
            ck_assert_double_eq(tensor_at(g[0], i), tensor_at(g[1], i));
    }
}
END_TEST

/* Forward and backward at T = S = 1024 take far less memory than one (T,S)
 * score matrix (8 MiB in f64). */
START_TEST(test_no_score_matrix)
{
    int64_t T = 1024;
    ag_rng rng = ag_rng_seed(5);
    ag_tensor *x[3];
    for (int i = 0; i < 3; i++) {
        x[i] = ag_randn(arena, AG_F64, 3, (int64_t[]){1, T, 4}, 0, 1, &rng);
        ag_requires_grad(x[i], true);
    }
    ag_tensor *o =
        ag_scaled_dot_product_attention(arena, x[0], x[1], x[2], NULL, true);
    ck_assert_ptr_nonnull(o);
    ag_tensor *loss = ag_sum(arena, o, AG_ALL, false);
    ck_assert_int_eq(ag_backward(loss), 0);
    size_t scores = (size_t)(T * T) * sizeof(double);
    ck_assert_msg(ag_arena_capacity(arena) < scores / 4,
                  "arena holds %zu bytes, a score matrix %zu",
                  ag_arena_capacity(arena), scores);
    /* row t of a causal self-attention sees keys 0..t: row 0 is v's row 0 */
    for (int e = 0; e < 4; e++)
        ck_assert_double_eq_tol(tensor_at(o, e), tensor_at(x[2], e), 1e-15);
}
END_TEST

/* The forward splits its (batch, query block) items over the threads, the
 * backward its batches: the values and gradients are the same bits with 1
 * thread and with 3. */
START_TEST(test_threads_agree)
{
    ag_rng rng = ag_rng_seed(6);
    int64_t shape[4] = {2, 3, 150, 8};
    ag_tensor *x[3];
    for (int i = 0; i < 3; i++) {
        x[i] = ag_randn(arena, AG_F32, 4, shape, 0, 1, &rng);
        ag_requires_grad(x[i], true);
    }
    ag_tensor *o[2], *g[2][3];
    for (int run = 0; run < 2; run++) {
        ck_assert_int_eq(ag_set_num_threads(run ? 3 : 1), 0);
        o[run] = ag_scaled_dot_product_attention(arena, x[0], x[1], x[2], NULL,
                                                 true);
        ck_assert_ptr_nonnull(o[run]);
        ag_tensor *loss =
            ag_sum(arena, ag_mul(arena, o[run], o[run]), AG_ALL, false);
        ck_assert_int_eq(
            ag_gradients(arena, 1, &loss, NULL, 3, x, false, g[run]), 0);
    }
    ck_assert_int_eq(ag_set_num_threads(1), 0);
    size_t bytes = (size_t)ag_numel(o[0]) * sizeof(float);
    ck_assert_mem_eq(ag_data(o[0]), ag_data(o[1]), bytes);
    for (int i = 0; i < 3; i++)
        ck_assert_mem_eq(ag_data(g[0][i]), ag_data(g[1][i]), bytes);
}
END_TEST

/* The call with these shapes fails with a message holding `want`, and
 * nothing is made. */
static void expect_error(int nq, const int64_t *sq, int nk, const int64_t *sk,
                         int nv, const int64_t *sv, int nm, const int64_t *sm,
                         ag_dtype mask_dtype, const char *want)
{
    ag_tensor *q = ag_zeros(arena, AG_F64, nq, sq);
    ag_tensor *k = ag_zeros(arena, AG_F64, nk, sk);
    ag_tensor *v = ag_zeros(arena, AG_F64, nv, sv);
    ag_tensor *m = nm >= 0 ? ag_zeros(arena, mask_dtype, nm, sm) : NULL;
    ag_clear_error();
    ck_assert_ptr_null(
        ag_scaled_dot_product_attention(arena, q, k, v, m, false));
    ck_assert_msg(strstr(ag_last_error(), want), "message \"%s\", want \"%s\"",
                  ag_last_error(), want);
}

#define SH(...)                                                                \
    (int64_t[])                                                                \
    {                                                                          \
        __VA_ARGS__                                                            \
    }

START_TEST(test_errors)
{
    expect_error(2, SH(3, 4), 2, SH(5, 3), 2, SH(5, 2), -1, NULL, AG_F64,
                 "ag_scaled_dot_product_attention: q (3,4) and k (5,3) differ "
                 "in E (the last axis): 4, 3");
    expect_error(2, SH(3, 4), 2, SH(5, 4), 2, SH(6, 2), -1, NULL, AG_F64,
                 "k (5,4) and v (6,2) differ in S (axis -2): 5, 6");
    expect_error(3, SH(2, 3, 4), 3, SH(3, 5, 4), 2, SH(5, 2), -1, NULL, AG_F64,
                 "the batch axes of q (2,3,4), k (3,5,4) and v (5,2) do not "
                 "broadcast");
    expect_error(3, SH(2, 3, 4), 3, SH(2, 5, 4), 3, SH(2, 5, 2), 2, SH(3, 4),
                 AG_F64,
                 "mask (3,4) does not broadcast to the scores' shape (2,3,5)");
    expect_error(2, SH(3, 4), 2, SH(5, 4), 2, SH(5, 2), 3, SH(2, 3, 5), AG_F64,
                 "mask (2,3,5) does not broadcast to the scores' shape (3,5)");
    expect_error(2, SH(3, 4), 2, SH(5, 4), 2, SH(5, 2), 2, SH(3, 5), AG_F32,
                 "dtypes differ: f64 (3,4) and f32 (3,5)");
    expect_error(2, SH(3, 4), 2, SH(5, 4), 2, SH(5, 2), 2, SH(3, 5), AG_I32,
                 "input 3 has dtype i32");
    expect_error(1, SH(4), 2, SH(5, 4), 2, SH(5, 2), -1, NULL, AG_F64,
                 "need at least 2 dimensions: q (4), k (5,4), v (5,2)");
    expect_error(2, SH(3, 0), 2, SH(5, 0), 2, SH(5, 2), -1, NULL, AG_F64,
                 "q (3,0) has E = 0");
    /* a NULL input keeps the message that explains it */
    ag_tensor *q = ag_zeros(arena, AG_F64, 2, SH(3, 4));
    ag_tensor *bad = ag_reshape(arena, q, 2, SH(5, 5));
    ck_assert_ptr_null(bad);
    char pending[256];
    snprintf(pending, sizeof pending, "%s", ag_last_error());
    ck_assert_ptr_null(
        ag_scaled_dot_product_attention(arena, q, bad, q, NULL, false));
    ck_assert_str_eq(ag_last_error(), pending);
    ck_assert_ptr_null(
        ag_scaled_dot_product_attention(NULL, q, q, q, NULL, false));
    ck_assert_ptr_nonnull(strstr(ag_last_error(), "arena is NULL"));
}
END_TEST

static Suite *attention_suite(void)
{
    Suite *s = suite_create("attention");
    TCase *tc = tcase_create("attention");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_against_torch, 0, ATTENTION_TORCH_CASES);
    tcase_add_test(tc, test_fully_masked_row);
    tcase_add_test(tc, test_nan_propagates);
    tcase_add_test(tc, test_large_negative_mask);
    tcase_add_test(tc, test_no_score_matrix);
    tcase_add_test(tc, test_threads_agree);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(attention_suite());
}
