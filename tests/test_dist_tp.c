/* test_dist_tp.c: tensor parallel layers on 2 and 3 processes against the
 * unsplit layers, under mpirun (tests/meson.build): a column-parallel and
 * a row-parallel Linear, the MLP block (column, GELU, row) and causal
 * self-attention with its heads split (against ag_nn_multihead_attention
 * with the same weights). Each gives the unsplit loss, and each rank's
 * parameter gradients are its part of the unsplit ones, as is the input's
 * gradient, all in f64 within 1e-12 relative (the sums over the ranks add
 * the parts of each product in another order than one product does). */
#include "dist_support.h"
#include "support.h"
#include <check.h>
#include <math.h>

static ag_arena *a, *step;
static ag_rng rng;

static void setup(void)
{
    a = ag_arena_new();
    step = ag_arena_new();
    rng = ag_rng_seed(5); /* the same tensors on every rank */
}

static void teardown(void)
{
    ag_arena_free(step);
    ag_arena_free(a);
}

static ag_tensor *randn(int ndim, const int64_t *shape, bool grad)
{
    ag_tensor *t = ag_randn(a, AG_F64, ndim, shape, 0, 1, &rng);
    ck_assert_ptr_nonnull(t);
    ag_requires_grad(t, grad);
    return t;
}

/* Asserts max |got - want| <= 1e-12 max(max |want|, 1): relative, and
 * absolute for gradients that are zero in exact arithmetic, where both
 * sides hold rounding noise (the key projection's bias: softmax does not
 * change when every score of a row moves by the same amount). */
static void expect_close(const char *what, ag_tensor *got, ag_tensor *want)
{
    ck_assert_msg(got && want, "%s: %s", what, ag_last_error());
    ck_assert_int_eq(ag_numel(got), ag_numel(want));
    double scale = 0, diff = 0;
    for (int64_t i = 0; i < ag_numel(want); i++) {
        scale = fmax(scale, fabs(tensor_at(want, i)));
        diff = fmax(diff, fabs(tensor_at(got, i) - tensor_at(want, i)));
    }
    ck_assert_msg(diff <= 1e-12 * fmax(scale, 1), "%s: off by %g (scale %g)",
                  what, diff, scale);
}

/* Columns [lo, hi) (axis 1) or rows (axis 0) of t. */
static ag_tensor *part(ag_tensor *t, int axis, int64_t lo, int64_t hi)
{
    return ag_slice(step, t, axis, lo, hi, 1);
}

/* sum(y * c): a loss that weighs every output differently. */
static ag_tensor *weighed(ag_tensor *y, ag_tensor *c)
{
    return ag_sum(step, ag_mul(step, y, c), AG_ALL, false);
}

static ag_tensor *leaf_copy(ag_tensor *t)
{
    ag_tensor *c = ag_detach(a, t);
    ag_requires_grad(c, true);
    return c;
}

START_TEST(test_column_parallel_linear)
{
    ag_tensor *w = randn(2, (int64_t[]){6, 5}, true);
    ag_tensor *b = randn(1, (int64_t[]){6}, true);
    ag_tensor *x = randn(2, (int64_t[]){4, 5}, true);
    ag_tensor *c = randn(2, (int64_t[]){4, 6}, false);
    ag_tensor *full = weighed(ag_linear(step, x, w, b), c);
    ck_assert_int_eq(ag_backward(full), 0);

    ag_tp_linear *l = ag_tp_linear_new(a, dist, AG_TP_COLUMN, w, b);
    ck_assert_msg(l, "%s", ag_last_error());
    ag_tensor *xt = leaf_copy(x);
    ag_tensor *y = ag_tp_linear_forward(step, l, xt);
    ck_assert_int_eq(ag_shape(y)[1], l->hi - l->lo);
    ag_tensor *loss =
        ag_tp_reduce(step, dist, weighed(y, part(c, 1, l->lo, l->hi)));
    ck_assert_msg(ag_backward(loss) == 0, "%s", ag_last_error());
    expect_close("loss", loss, full);
    expect_close("weight", ag_grad(l->weight),
                 part(ag_grad(w), 0, l->lo, l->hi));
    expect_close("bias", ag_grad(l->bias), part(ag_grad(b), 0, l->lo, l->hi));
    expect_close("x", ag_grad(xt), ag_grad(x));
}
END_TEST

START_TEST(test_row_parallel_linear)
{
    ag_tensor *w = randn(2, (int64_t[]){5, 6}, true);
    ag_tensor *b = randn(1, (int64_t[]){5}, true);
    ag_tensor *x = randn(2, (int64_t[]){4, 6}, true);
    ag_tensor *c = randn(2, (int64_t[]){4, 5}, false);
    ag_tensor *full = weighed(ag_linear(step, x, w, b), c);
    ck_assert_int_eq(ag_backward(full), 0);

    ag_tp_linear *l = ag_tp_linear_new(a, dist, AG_TP_ROW, w, b);
    ck_assert_msg(l, "%s", ag_last_error());
    ag_tensor *xt = leaf_copy(x);
    ag_tensor *loss =
        weighed(ag_tp_linear_forward(step, l, part(xt, 1, l->lo, l->hi)), c);
    ck_assert_msg(ag_backward(loss) == 0, "%s", ag_last_error());
    expect_close("loss", loss, full);
    expect_close("weight", ag_grad(l->weight),
                 part(ag_grad(w), 1, l->lo, l->hi));
    expect_close("bias", ag_grad(l->bias), ag_grad(b));
    /* this rank's input features get their gradient, the others none */
    expect_close("x", part(ag_grad(xt), 1, l->lo, l->hi),
                 part(ag_grad(x), 1, l->lo, l->hi));
    for (int64_t i = 0; i < 4; i++)
        for (int64_t j = 0; j < 6; j++)
            if (j < l->lo || j >= l->hi)
                ck_assert_double_eq(tensor_at(ag_grad(xt), i * 6 + j), 0);
}
END_TEST

START_TEST(test_mlp_block)
{
    ag_tensor *w1 = randn(2, (int64_t[]){6, 5}, true);
    ag_tensor *b1 = randn(1, (int64_t[]){6}, true);
    ag_tensor *w2 = randn(2, (int64_t[]){5, 6}, true);
    ag_tensor *b2 = randn(1, (int64_t[]){5}, true);
    ag_tensor *x = randn(3, (int64_t[]){2, 3, 5}, true);
    ag_tensor *c = randn(3, (int64_t[]){2, 3, 5}, false);
    ag_tensor *h = ag_gelu(step, ag_linear(step, x, w1, b1));
    ag_tensor *full = weighed(ag_linear(step, h, w2, b2), c);
    ck_assert_int_eq(ag_backward(full), 0);

    ag_tp_mlp *m = ag_tp_mlp_new(a, dist, w1, b1, AG_ACT_GELU, w2, b2);
    ck_assert_msg(m, "%s", ag_last_error());
    ck_assert_int_eq(ag_params_count(m->params), 4);
    ag_tensor *xt = leaf_copy(x);
    ag_tensor *loss = weighed(ag_tp_mlp_forward(step, m, xt), c);
    ck_assert_msg(ag_backward(loss) == 0, "%s", ag_last_error());
    int64_t lo = m->fc1->lo, hi = m->fc1->hi;
    expect_close("loss", loss, full);
    expect_close("fc1.weight", ag_grad(m->fc1->weight),
                 part(ag_grad(w1), 0, lo, hi));
    expect_close("fc1.bias", ag_grad(m->fc1->bias),
                 part(ag_grad(b1), 0, lo, hi));
    expect_close("fc2.weight", ag_grad(m->fc2->weight),
                 part(ag_grad(w2), 1, lo, hi));
    expect_close("fc2.bias", ag_grad(m->fc2->bias), ag_grad(b2));
    expect_close("x", ag_grad(xt), ag_grad(x));
}
END_TEST

START_TEST(test_attention_with_heads_split)
{
    const int64_t e = 12, heads = 6;
    ag_module *mha =
        ag_nn_multihead_attention(a, AG_F64, e, heads, true, true, true, &rng);
    ck_assert_ptr_nonnull(mha);
    ag_params *p = ag_module_parameters(mha);
    ag_tensor *ipw = ag_params_find(p, "in_proj_weight");
    ag_tensor *ipb = ag_params_find(p, "in_proj_bias");
    ag_tensor *ow = ag_params_find(p, "out_proj.weight");
    ag_tensor *ob = ag_params_find(p, "out_proj.bias");
    /* biases are zeros at first, as PyTorch's: give them values */
    ag_rng brng = ag_rng_seed(9);
    ag_init_normal(ipb, 0, 1, &brng);
    ag_init_normal(ob, 0, 1, &brng);
    ag_tensor *x = randn(3, (int64_t[]){2, 4, e}, true);
    ag_tensor *c = randn(3, (int64_t[]){2, 4, e}, false);
    ag_tensor *full = weighed(ag_module_forward(mha, step, x), c);
    ck_assert_msg(ag_backward(full) == 0, "%s", ag_last_error());

    ag_tp_attention *m =
        ag_tp_attention_new(a, dist, ipw, ipb, ow, ob, heads, true);
    ck_assert_msg(m, "%s", ag_last_error());
    ck_assert_int_eq(m->local_heads, heads / ag_dist_size(dist));
    ag_tensor *xt = leaf_copy(x);
    ag_tensor *loss = weighed(ag_tp_attention_forward(step, m, xt), c);
    ck_assert_msg(ag_backward(loss) == 0, "%s", ag_last_error());
    expect_close("loss", loss, full);
    int64_t lo = e * ag_dist_rank(dist) / ag_dist_size(dist),
            hi = e * (ag_dist_rank(dist) + 1) / ag_dist_size(dist);
    for (int k = 0; k < 3; k++) {
        expect_close("q, k, v weights", ag_grad(m->proj[k]),
                     part(ag_grad(ipw), 0, k * e + lo, k * e + hi));
        expect_close("q, k, v biases", ag_grad(m->proj_bias[k]),
                     part(ag_grad(ipb), 0, k * e + lo, k * e + hi));
    }
    expect_close("out_proj.weight", ag_grad(m->out->weight),
                 part(ag_grad(ow), 1, lo, hi));
    expect_close("out_proj.bias", ag_grad(m->out->bias), ag_grad(ob));
    expect_close("x", ag_grad(xt), ag_grad(x));
}
END_TEST

START_TEST(test_uneven_split_is_refused_everywhere)
{
    int world = ag_dist_size(dist);
    ag_tensor *w = randn(2, (int64_t[]){world + 1, 4}, false);
    ck_assert_ptr_null(ag_tp_linear_new(a, dist, AG_TP_COLUMN, w, NULL));
    char want[200];
    snprintf(want, sizeof want,
             "ag_tp_linear_new: rank 0: %d output "
             "features do not split evenly over %d ranks (%d ranks failed)",
             world + 1, world, world);
    ck_assert_str_eq(ag_last_error(), want);
}
END_TEST

static Suite *tp_suite(void)
{
    Suite *s = suite_create("dist_tp");
    TCase *tc = tcase_create("tp");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_column_parallel_linear);
    tcase_add_test(tc, test_row_parallel_linear);
    tcase_add_test(tc, test_mlp_block);
    tcase_add_test(tc, test_attention_with_heads_split);
    tcase_add_test(tc, test_uneven_split_is_refused_everywhere);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    return dist_main(&argc, &argv, tp_suite(), 20);
}
