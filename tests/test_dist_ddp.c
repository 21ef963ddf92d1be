/* test_dist_ddp.c: data parallel training (ag_ddp) on 2 and 3 processes
 * against one process training on the whole batch, run under mpirun
 * (tests/meson.build).
 *
 * Every rank trains an f64 tanh MLP (5-8-6-3, cross-entropy, SGD with
 * momentum and weight decay) for 6 steps on its shard of each global batch
 * of 12 (ag_batcher_shard), starting from its own random weights (which
 * ag_ddp_new replaces by rank 0's), and beside it the same model on one
 * process on the whole batches. The parameters agree within 1e-12
 * relative, not exactly: one process sums the 12 examples' gradients in
 * one pass (the products of ag_linear's backward add them in BLAS's
 * order), while data parallel adds each rank's part of the sum first and
 * then the ranks' parts (MPI's order), and divides by the number of ranks
 * after the local mean, where one process divides once: the last bits of
 * the gradients differ, and the steps carry that on (about 1e-16 relative
 * after one step; the worst seen here is printed). Every configuration:
 * PyTorch's 25 MiB bucket (one bucket), 200-byte buckets (five, all
 * started during the backward pass), the same without overlap (started
 * after it), and gradient accumulation over two batches with the first
 * backward without sync. All ranks end with bit-identical parameters, and
 * the checkpoint rank 0 writes loads into the same values everywhere. */
#include "dist_support.h"
#include "support.h"
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { EXAMPLES = 36, FEATURES = 5, CLASSES = 3, BATCH = 12, STEPS = 6 };
static const int64_t sizes[4] = {FEATURES, 8, 6, CLASSES};

/* The data set, the same on every rank. */
static ag_tensor *make_data(ag_arena *a, ag_tensor **labels)
{
    ag_rng rng = ag_rng_seed(21);
    ag_tensor *x =
        ag_randn(a, AG_F64, 2, (int64_t[]){EXAMPLES, FEATURES}, 0, 1, &rng);
    int32_t y[EXAMPLES];
    for (int i = 0; i < EXAMPLES; i++)
        y[i] = (int32_t)(ag_rng_next(&rng) % CLASSES);
    *labels = ag_from_data(a, AG_I32, 1, (int64_t[]){EXAMPLES}, y);
    ck_assert_ptr_nonnull(*labels);
    return x;
}

/* STEPS optimizer steps of m on batches from b, each summing the
 * gradients of `accumulate` batches; through ddp when it is not NULL
 * (without sync on all but the last backward of a step). */
static void train(ag_arena *a, ag_mlp *m, ag_batcher *b, ag_ddp *ddp,
                  int accumulate)
{
    ag_arena *step = ag_arena_new();
    ag_sgd_options so = {.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-3};
    ag_optimizer *opt = ag_sgd_new(a, m->params, &so);
    ck_assert_ptr_nonnull(opt);
    for (int s = 0; s < STEPS; s++) {
        ag_optimizer_zero_grad(opt);
        for (int k = 0; k < accumulate; k++) {
            ag_tensor *bx, *by;
            int got = ag_batcher_next(b, step, &bx, &by);
            if (got == 0) got = ag_batcher_next(b, step, &bx, &by);
            ck_assert_int_eq(got, 1);
            ag_tensor *loss =
                ag_softmax_cross_entropy(step, ag_mlp_forward(step, m, bx), by);
            int rc;
            if (ddp) {
                ag_ddp_set_sync(ddp, k == accumulate - 1);
                rc = ag_ddp_backward(ddp, loss);
            } else {
                rc = ag_backward(loss);
            }
            ck_assert_msg(rc == 0, "%s", ag_last_error());
            ag_arena_reset(step);
        }
        ck_assert_int_eq(ag_optimizer_step(opt), 0);
    }
    ag_arena_free(step);
}

/* Asserts that every rank holds exactly rank 0's values of p. */
static void expect_same_on_every_rank(ag_arena *a, const ag_params *p)
{
    for (int i = 0; i < ag_params_count(p); i++) {
        ag_tensor *mine = ag_params_tensor(p, i);
        ag_tensor *root = ag_detach(a, mine);
        ck_assert_int_eq(ag_dist_broadcast(dist, root, 0), 0);
        for (int64_t j = 0; j < ag_numel(mine); j++)
            ck_assert_double_eq(tensor_at(mine, j), tensor_at(root, j));
    }
}

static const struct {
    int64_t bucket_bytes;
    bool no_overlap;
    int accumulate, buckets;
} configs[] = {
    {0, false, 1, 1},   /* 25 MiB: one bucket */
    {200, false, 1, 5}, /* (b2, w2), b1, w1, b0, w0 */
    {200, true, 1, 5},
    {200, false, 2, 5},
};

START_TEST(test_data_parallel_equals_one_process)
{
    int rank = ag_dist_rank(dist), world = ag_dist_size(dist);
    ag_arena *a = ag_arena_new();
    ag_tensor *y, *x = make_data(a, &y);

    ag_mlp *single = dist_mlp(a, 4, sizes, 100);
    ag_batcher *whole = ag_batcher_new(a, x, y, BATCH, true, 5, false);
    train(a, single, whole, NULL, configs[_i].accumulate);

    /* each rank starts from other weights: ag_ddp_new takes rank 0's */
    ag_mlp *m = dist_mlp(a, 4, sizes, 100 + (uint64_t)rank);
    ag_ddp_options o = {.bucket_bytes = configs[_i].bucket_bytes,
                        .no_overlap = configs[_i].no_overlap};
    ag_ddp *ddp = ag_ddp_new(a, dist, m->params, NULL, &o);
    ck_assert_msg(ddp, "%s", ag_last_error());
    ag_batcher *part = ag_batcher_new(a, x, y, BATCH, true, 5, false);
    ck_assert_int_eq(ag_batcher_shard(part, rank, world), 0);
    train(a, m, part, ddp, configs[_i].accumulate);

    double worst = dist_max_relative(m->params, single->params);
    if (rank == 0)
        printf("config %d, %d ranks: largest relative difference from one "
               "process %.3g\n",
               _i, world, worst);
    ck_assert_double_le(worst, 1e-12);
    ag_ddp_stats st = ag_ddp_get_stats(ddp);
    ck_assert_int_eq(st.buckets, configs[_i].buckets);
    ck_assert_int_eq(st.started_early,
                     configs[_i].no_overlap ? 0 : configs[_i].buckets);
    ck_assert(st.total_seconds >= st.wait_seconds && st.wait_seconds >= 0);
    expect_same_on_every_rank(a, m->params);
    ag_ddp_detach(ddp);
    ag_arena_free(a);
}
END_TEST

START_TEST(test_rank_0_writes_the_checkpoint)
{
    int rank = ag_dist_rank(dist);
    ag_arena *a = ag_arena_new();
    ag_tensor *y, *x = make_data(a, &y);
    ag_mlp *m = dist_mlp(a, 4, sizes, 7 + (uint64_t)rank);
    ag_ddp *ddp = ag_ddp_new(a, dist, m->params, NULL, NULL);
    ck_assert_msg(ddp, "%s", ag_last_error());
    ag_batcher *part = ag_batcher_new(a, x, y, BATCH, true, 5, false);
    ag_batcher_shard(part, rank, ag_dist_size(dist));
    train(a, m, part, ddp, 1);

    /* one folder for the job, named after rank 0's process id */
    ag_tensor *pid = ag_full(a, AG_I32, 1, (int64_t[]){1}, (double)getpid());
    ck_assert_int_eq(ag_dist_broadcast(dist, pid, 0), 0);
    char dir[64], path[96];
    snprintf(dir, sizeof dir, "/tmp/ag_dist_test.%d", (int)tensor_at(pid, 0));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (rank == 0) ck_assert_int_eq(mkdir(dir, 0700), 0);
    ck_assert_int_eq(ag_ddp_save(ddp, path, rank == 0 ? m->params : NULL, NULL),
                     0);
    ag_mlp *loaded = dist_mlp(a, 4, sizes, 99);
    ck_assert_msg(ag_load_safetensors(path, loaded->params) == 0, "%s",
                  ag_last_error());
    ck_assert_double_eq(dist_max_relative(loaded->params, m->params), 0);
    ck_assert_int_eq(ag_dist_check(dist, 0), 0); /* all have read it */
    if (rank == 0) {
        ck_assert_int_eq(unlink(path), 0);
        ck_assert_int_eq(rmdir(dir), 0); /* nothing else was left there */
    }
    ag_ddp_detach(ddp);
    ag_arena_free(a);
}
END_TEST

START_TEST(test_buffers_come_from_rank_0)
{
    int rank = ag_dist_rank(dist);
    ag_arena *a = ag_arena_new();
    ag_mlp *m = dist_mlp(a, 4, sizes, 3 + (uint64_t)rank);
    ag_params *buffers = ag_params_new(a);
    ag_tensor *mean = ag_full(a, AG_F64, 1, (int64_t[]){4}, rank + 0.5);
    /* an i32 buffer too: BatchNorm's num_batches_tracked */
    ag_module *bn = ag_nn_batch_norm1d(a, AG_F64, 4, 1e-5, 0.1, true, true);
    ck_assert_ptr_nonnull(bn);
    ag_params *bn_buffers = ag_module_buffers(bn);
    ck_assert_int_eq(ag_params_add(buffers, "running_mean_copy", mean), 0);
    ag_tensor *tracked = ag_params_find(bn_buffers, "num_batches_tracked");
    ck_assert_ptr_nonnull(tracked);
    ((int32_t *)ag_data(tracked))[0] = 10 + rank;
    ag_ddp *ddp = ag_ddp_new(a, dist, m->params, buffers, NULL);
    ck_assert_msg(ddp, "%s", ag_last_error());
    ag_ddp *bn_ddp =
        ag_ddp_new(a, dist, ag_module_parameters(bn), bn_buffers, NULL);
    ck_assert_msg(bn_ddp, "%s", ag_last_error());
    for (int i = 0; i < 4; i++) ck_assert_double_eq(tensor_at(mean, i), 0.5);
    ck_assert_int_eq(((int32_t *)ag_data(tracked))[0], 10);
    ag_mlp *rank0 = dist_mlp(a, 4, sizes, 3);
    ck_assert_double_eq(dist_max_relative(m->params, rank0->params), 0);
    ag_ddp_detach(ddp);
    ag_ddp_detach(bn_ddp);
    ag_arena_free(a);
}
END_TEST

/* Sets element i of t, whatever its dtype. */
static void tensor_set_any(ag_tensor *t, int64_t i, double v)
{
    if (ag_type(t) == AG_I32)
        ((int32_t *)ag_data(t))[i] = (int32_t)v;
    else
        tensor_set(t, i, v);
}

START_TEST(test_allreduce_and_broadcast)
{
    int rank = ag_dist_rank(dist), world = ag_dist_size(dist);
    ag_arena *a = ag_arena_new();
    ag_dtype types[3] = {AG_F64, AG_F32, AG_I32};
    for (int k = 0; k < 3; k++) {
        ag_tensor *t = ag_zeros(a, types[k], 2, (int64_t[]){2, 3});
        for (int i = 0; i < 6; i++) tensor_set_any(t, i, rank * 10 + i);
        ck_assert_msg(ag_dist_allreduce(dist, t, false) == 0, "%s",
                      ag_last_error());
        /* sum over r of (10 r + i) = 10 w (w - 1) / 2 + w i */
        for (int i = 0; i < 6; i++)
            ck_assert_double_eq(tensor_at(t, i),
                                10.0 * world * (world - 1) / 2 + world * i);
        if (types[k] == AG_I32) {
            ck_assert_int_eq(ag_dist_allreduce(dist, t, true), -1);
            char want[128];
            snprintf(want, sizeof want,
                     "ag_dist_allreduce: rank 0: cannot average an i32 "
                     "tensor%s",
                     world == 1   ? ""
                     : world == 2 ? " (2 ranks failed)"
                                  : " (3 ranks failed)");
            ck_assert_str_eq(ag_last_error(), want);
            continue;
        }
        ck_assert_int_eq(ag_dist_allreduce(dist, t, true), 0);
        for (int i = 0; i < 6; i++)
            ck_assert_double_eq_tol(tensor_at(t, i),
                                    10.0 * world * (world - 1) / 2 + world * i,
                                    1e-4);
        ag_tensor *b = ag_full(a, types[k], 1, (int64_t[]){3}, rank);
        ck_assert_int_eq(ag_dist_broadcast(dist, b, world - 1), 0);
        for (int i = 0; i < 3; i++)
            ck_assert_double_eq(tensor_at(b, i), world - 1);
    }
    ag_arena_free(a);
}
END_TEST

START_TEST(test_init_errors)
{
    ck_assert_ptr_null(ag_dist_init(NULL, NULL, &(ag_dist_options){-1}));
    ck_assert_str_eq(ag_last_error(), "ag_dist_init: the timeout must be >= 0 "
                                      "and finite, got -1");
    ck_assert_int_eq(ag_dist_rank(NULL), 0);
    ck_assert_int_eq(ag_dist_size(NULL), 1);
    ck_assert_int_eq(ag_dist_check(NULL, 0), -1);
    ck_assert_str_eq(ag_last_error(),
                     "ag_dist_check: the process group is NULL");
    ck_assert_ptr_null(ag_ddp_new(NULL, dist, NULL, NULL, NULL));
    ck_assert_msg(strstr(ag_last_error(), "arena is NULL"), "%s",
                  ag_last_error());
    ck_assert_int_eq(ag_ddp_backward(NULL, NULL), -1);
    ck_assert_str_eq(ag_last_error(), "ag_ddp_backward: ddp is NULL");
}
END_TEST

static Suite *ddp_suite(void)
{
    Suite *s = suite_create("dist_ddp");
    TCase *tc = tcase_create("ddp");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_data_parallel_equals_one_process, 0,
                        (int)(sizeof configs / sizeof configs[0]));
    tcase_add_test(tc, test_rank_0_writes_the_checkpoint);
    tcase_add_test(tc, test_buffers_come_from_rank_0);
    tcase_add_test(tc, test_allreduce_and_broadcast);
    tcase_add_test(tc, test_init_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    return dist_main(&argc, &argv, ddp_suite(), 20);
}
