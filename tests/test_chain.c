/* test_chain.c: ag_backward on big graphs. A chain of a million ops must
 * not overflow the default 8 MiB stack (the sort is iterative) and must give
 * the exact gradient, twice in a row; wide graphs (100,000 separate
 * products summed as a balanced tree or one long running sum, and one leaf
 * used 100,000 times) must give every leaf its exact gradient.
 *
 * All values are small integers or products of powers of two and three, so
 * every expected number below is exact in double.
 *
 * The sizes can be made smaller through the environment (AG_TEST_CHAIN_OPS,
 * a multiple of 8, and AG_TEST_WIDE), as the Valgrind test setup does: the
 * same code runs, the working arrays of the sort still grow many times. */
#include <autograd.h>

#include "support.h"
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Ops in the chain and terms of the wide graphs (see main). */
static int64_t chain_ops = 1000000, wide = 100000;

/* ---- helpers ---- */

/* The value of a one-element tensor, asserting it exists. */
static double value(ag_tensor *t)
{
    if (!t) ck_abort_msg("NULL tensor: %s", ag_last_error());
    return ag_item(t);
}

/* A one-element f64 leaf of value v that requires a gradient when grad. */
static ag_tensor *scalar(ag_arena *a, double v, bool grad)
{
    ag_tensor *t = ag_full(a, AG_F64, 1, (int64_t[]){1}, v);
    if (!t) ck_abort_msg("%s", ag_last_error());
    if (grad) ag_requires_grad(t, true);
    return t;
}

/* Asserts that t's gradient exists and equals want exactly. */
static void expect_grad(ag_tensor *t, double want, const char *what)
{
    ag_tensor *g = ag_grad(t);
    if (!g) ck_abort_msg("%s has no gradient", what);
    if (ag_item(g) != want)
        ck_abort_msg("%s: gradient %.17g, want %.17g", what, ag_item(g), want);
}

/* Runs ag_backward and asserts that it succeeded. */
static void backward_ok(ag_tensor *loss)
{
    ck_assert_msg(ag_backward(loss) == 0, "ag_backward: %s", ag_last_error());
}

/* Sums the n one-element tensors t[] pairwise, as a balanced tree of adds
 * (overwriting t[]). */
static ag_tensor *tree_sum(ag_arena *a, ag_tensor **t, int64_t n)
{
    while (n > 1) {
        int64_t half = 0;
        for (int64_t i = 0; i + 1 < n; i += 2)
            t[half++] = ag_add(a, t[i], t[i + 1]);
        if (n % 2) t[half++] = t[n - 1];
        n = half;
    }
    ck_assert_ptr_nonnull(t[0]);
    return t[0];
}

/* ---- the chain ---- */

/* The scale factor of the j-th ag_scale of the chain (j < chain_ops / 2):
 * 2, -0.5, 2, -0.5, ... and then 3, 3, 0.25, -1 for the last four. The
 * pairs multiply to -1 each, an even number of times (249,998 for a million
 * ops; chain_ops is a multiple of 8), so the product of all factors is
 * 3 * 3 * 0.25 * -1 = -2.25, and every partial product from the end is
 * exact. */
static double chain_factor(int64_t j)
{
    static const double last[4] = {3, 3, 0.25, -1};
    int64_t n = chain_ops / 2;
    if (j >= n - 4) return last[j - (n - 4)];
    return j % 2 == 0 ? 2 : -0.5;
}

START_TEST(test_million_op_chain)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *x = scalar(a, 0.5, true);
    /* t = x; then alternately t = t + 1 and t = factor * t. The gradient
     * of the end with respect to x is the product of the factors, -2.25
     * (shifts pass the gradient through). The expected value comes from
     * the same arithmetic in a plain loop. */
    ag_tensor *t = x, *first = NULL;
    double v = 0.5;
    for (int64_t i = 0; i < chain_ops; i++) {
        if (i % 2 == 0) {
            t = ag_shift(a, t, 1.0);
            v = v + 1.0;
        } else {
            double s = chain_factor(i / 2);
            t = ag_scale(a, t, s);
            v = s * v;
        }
        if (i == 0) first = t;
    }
    ck_assert_msg(t != NULL, "%s", ag_last_error());
    ck_assert(ag_is_requires_grad(t));
    ck_assert_msg(value(t) == v, "value %.17g, want %.17g", value(t), v);

    backward_ok(t);
    expect_grad(x, -2.25, "x");
    expect_grad(first, -2.25, "first op");
    expect_grad(t, 1, "loss");

    /* Again: the leaf accumulates, op results hold the latest pass. */
    backward_ok(t);
    expect_grad(x, -4.5, "x after two passes");
    expect_grad(first, -2.25, "first op after two passes");
    expect_grad(t, 1, "loss after two passes");
    ag_arena_free(a);
}
END_TEST

/* ---- wide graphs ---- */

/* a_i = i % 7 - 3 and b_i = i % 5 + 1: small integers, exact products. */
static double a_of(int64_t i)
{
    return (double)(i % 7) - 3;
}

static double b_of(int64_t i)
{
    return (double)(i % 5) + 1;
}

/* loss = sum_i a_i b_i over wide separate products, summed as a tree (or a
 * running sum when chained); dloss/da_i = b_i and dloss/db_i = a_i. */
static void check_products(bool chained)
{
    ag_arena *a = ag_arena_new();
    ag_tensor **as = malloc((size_t)wide * sizeof *as);
    ag_tensor **bs = malloc((size_t)wide * sizeof *bs);
    ag_tensor **terms = malloc((size_t)wide * sizeof *terms);
    ck_assert(as && bs && terms);
    double want = 0;
    for (int64_t i = 0; i < wide; i++) {
        as[i] = scalar(a, a_of(i), true);
        bs[i] = scalar(a, b_of(i), true);
        terms[i] = ag_mul(a, as[i], bs[i]);
        want += a_of(i) * b_of(i);
    }
    ag_tensor *loss = terms[0];
    if (chained)
        for (int64_t i = 1; i < wide; i++) loss = ag_add(a, loss, terms[i]);
    else
        loss = tree_sum(a, terms, wide);
    ck_assert_msg(value(loss) == want, "loss %.17g, want %.17g", value(loss),
                  want);
    for (int pass = 1; pass <= 2; pass++) {
        backward_ok(loss);
        for (int64_t i = 0; i < wide; i++) {
            if (!ag_grad(as[i]) || !ag_grad(bs[i]))
                ck_abort_msg("pass %d: leaf %lld has no gradient", pass,
                             (long long)i);
            double ga = ag_item(ag_grad(as[i])), gb = ag_item(ag_grad(bs[i]));
            if (ga != pass * b_of(i) || gb != pass * a_of(i))
                ck_abort_msg(
                    "pass %d, product %lld: gradients %g, %g, want %g, "
                    "%g",
                    pass, (long long)i, ga, gb, pass * b_of(i), pass * a_of(i));
        }
    }
    free(as);
    free(bs);
    free(terms);
    ag_arena_free(a);
}

START_TEST(test_wide_tree_of_products)
{
    check_products(false);
}
END_TEST

START_TEST(test_wide_running_sum_of_products)
{
    check_products(true);
}
END_TEST

START_TEST(test_wide_shared_leaf)
{
    /* loss = sum_i c_i x with c_i = i % 9 - 4: dloss/dx = sum_i c_i. */
    ag_arena *a = ag_arena_new();
    ag_tensor *x = scalar(a, 1.5, true);
    ag_tensor **terms = malloc((size_t)wide * sizeof *terms);
    ck_assert_ptr_nonnull(terms);
    double want = 0;
    for (int64_t i = 0; i < wide; i++) {
        double c = (double)(i % 9) - 4;
        terms[i] = ag_scale(a, x, c);
        want += c;
    }
    ag_tensor *loss = tree_sum(a, terms, wide);
    ck_assert(value(loss) == 1.5 * want);
    backward_ok(loss);
    expect_grad(x, want, "shared x");
    free(terms);
    ag_arena_free(a);
}
END_TEST

/* ---- a sort that finishes many tensors in a row ---- */

/* loss = shift^depth(add(tree_sum(leaves), q)): the depth-first sort first
 * finishes the 2 * leaves - 1 tensors of the tree, then visits q, and then
 * finishes q, the add and the whole chain of shifts in a row without
 * visiting anything new. With leaves = 512 that run passes the 1,024th and
 * later entries of the sorted order: the working arrays must grow while
 * tensors are being finished, not only when new ones are visited. Every
 * leaf and q get gradient 1. */
static void check_finish_run(int64_t leaves, int64_t depth)
{
    ag_arena *a = ag_arena_new(); /* fresh: the sort's arrays start small */
    ag_tensor **ls = malloc((size_t)leaves * sizeof *ls);
    ag_tensor **terms = malloc((size_t)leaves * sizeof *terms);
    ck_assert(ls && terms);
    for (int64_t i = 0; i < leaves; i++) terms[i] = ls[i] = scalar(a, 1, true);
    ag_tensor *q = scalar(a, 2, true);
    ag_tensor *loss = ag_add(a, tree_sum(a, terms, leaves), q);
    for (int64_t i = 0; i < depth; i++) loss = ag_shift(a, loss, 1);
    ck_assert(value(loss) == (double)(leaves + 2 + depth));
    backward_ok(loss);
    expect_grad(q, 1, "q");
    for (int64_t i = 0; i < leaves; i++) expect_grad(ls[i], 1, "tree leaf");
    free(ls);
    free(terms);
    ag_arena_free(a);
}

START_TEST(test_sort_finishes_many_in_a_row)
{
    check_finish_run(512, 500);   /* runs past entry 1,024 by 501 */
    check_finish_run(1024, 3000); /* past 2,048 after growing once */
    check_finish_run(1, 1022);    /* a plain chain plus q: 1 past */
}
END_TEST

static Suite *chain_suite(void)
{
    Suite *s = suite_create("chain");
    TCase *tc = tcase_create("deep");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_million_op_chain);
    suite_add_tcase(s, tc);

    tc = tcase_create("wide");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_wide_tree_of_products);
    tcase_add_test(tc, test_wide_running_sum_of_products);
    tcase_add_test(tc, test_wide_shared_leaf);
    suite_add_tcase(s, tc);

    tc = tcase_create("sort");
    tcase_add_test(tc, test_sort_finishes_many_in_a_row);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    chain_ops = test_size("AG_TEST_CHAIN_OPS", chain_ops);
    wide = test_size("AG_TEST_WIDE", wide);
    if (chain_ops % 8) {
        fprintf(stderr, "AG_TEST_CHAIN_OPS must be a multiple of 8\n");
        return 2;
    }
    return run_suite(chain_suite());
}
