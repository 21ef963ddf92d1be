/* test_grad_hook.c: what the core library gives data parallel training
 * (libautograd-dist) without knowing of it: gradient hooks that fire when
 * a tensor's gradient is final in ag_backward, and the batcher's shards.
 *
 * Hooks: each fires once per pass that reaches its tensor, with the whole
 * gradient already there (compared with the gradient after the pass),
 * after every op that uses the tensor and before the ops that made it;
 * for the layers of an MLP, in reverse order of the layers; not from
 * ag_gradients; a failing hook stops the pass with its error; NULL
 * removes a hook. Shards: the parts of a batch over the ranks are the
 * single-process batch, in order, split as documented. */
#include <autograd.h>

#include "support.h"
#include <check.h>
#include <string.h>

/* What the hooks saw: the order of the tensors, and a copy of each one's
 * gradient at the time. */
typedef struct {
    int count;
    ag_tensor *seen[16];
    double first_value[16];
    double sum_at_hook[16];
    int fail_at; /* the call that fails, or -1 */
} hook_log;

static int record(ag_tensor *t, void *user)
{
    hook_log *log = user;
    ck_assert_int_lt(log->count, 16);
    ag_tensor *g = ag_grad(t);
    ck_assert_ptr_nonnull(g);
    double sum = 0;
    for (int64_t i = 0; i < ag_numel(g); i++) sum += tensor_at(g, i);
    log->seen[log->count] = t;
    log->first_value[log->count] = tensor_at(g, 0);
    log->sum_at_hook[log->count] = sum;
    if (log->count++ == log->fail_at) {
        ag_set_error("record", "the hook of call %d fails", log->fail_at);
        return 1;
    }
    return 0;
}

/* A 3-layer tanh MLP on fixed data, its loss in `step`. */
typedef struct {
    ag_arena *arena, *step;
    ag_mlp *mlp;
    ag_tensor *x, *y;
} model;

static model make_model(void)
{
    model m = {ag_arena_new(), ag_arena_new(), NULL, NULL, NULL};
    ag_mlp_options o = {.dtype = AG_F64, .activation = AG_ACT_TANH, .seed = 3};
    m.mlp = ag_mlp_new(m.arena, 4, (int64_t[]){3, 5, 4, 2}, &o);
    ck_assert_ptr_nonnull(m.mlp);
    ag_rng rng = ag_rng_seed(7);
    m.x = ag_randn(m.arena, AG_F64, 2, (int64_t[]){6, 3}, 0, 1, &rng);
    m.y = ag_randn(m.arena, AG_F64, 2, (int64_t[]){6, 2}, 0, 1, &rng);
    return m;
}

static ag_tensor *loss_of(model *m)
{
    return ag_mse_loss(m->step, ag_mlp_forward(m->step, m->mlp, m->x), m->y);
}

static void free_model(model *m)
{
    ag_arena_free(m->step);
    ag_arena_free(m->arena);
}

START_TEST(test_hooks_fire_once_with_final_gradients_in_reverse_order)
{
    model m = make_model();
    hook_log log = {.fail_at = -1};
    ag_params *p = m.mlp->params;
    int n = ag_params_count(p);
    ck_assert_int_eq(n, 6);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(ag_set_grad_hook(ag_params_tensor(p, i), record, &log),
                         0);
    /* two passes: the second hook call sees the sum of both */
    for (int pass = 1; pass <= 2; pass++) {
        log.count = 0;
        ck_assert_int_eq(ag_backward(loss_of(&m)), 0);
        ck_assert_int_eq(log.count, n);
        /* layer by layer from the last: (weight, bias) of a layer in
         * either order, the layers in reverse */
        for (int k = 0; k < n; k++) {
            int layer = 2 - k / 2;
            ag_tensor *t = log.seen[k];
            ck_assert(t == ag_params_tensor(p, 2 * layer) ||
                      t == ag_params_tensor(p, 2 * layer + 1));
            /* the value at the hook is the value after the pass */
            ag_tensor *g = ag_grad(t);
            double sum = 0;
            for (int64_t i = 0; i < ag_numel(g); i++) sum += tensor_at(g, i);
            ck_assert_double_eq(log.sum_at_hook[k], sum);
            ck_assert_double_eq(log.first_value[k], tensor_at(g, 0));
        }
        ag_arena_reset(m.step);
    }
    /* a tensor seen twice in the graph still fires once, after both uses */
    ag_tensor *w = ag_params_tensor(p, 0);
    ag_params_zero_grad(p);
    log.count = 0;
    ag_tensor *twice =
        ag_add(m.step, ag_sum(m.step, w, AG_ALL, false),
               ag_sum(m.step, ag_mul(m.step, w, w), AG_ALL, false));
    ck_assert_int_eq(ag_backward(twice), 0);
    ck_assert_int_eq(log.count, 1);
    ck_assert(log.seen[0] == w);
    /* d/dw (sum w + sum w^2) = 1 + 2w, all there when the hook ran */
    double expect = 0;
    for (int64_t i = 0; i < ag_numel(w); i++) expect += 1 + 2 * tensor_at(w, i);
    ck_assert_double_eq_tol(log.sum_at_hook[0], expect, 1e-12);
    free_model(&m);
}
END_TEST

START_TEST(test_hooks_not_from_gradients_and_removable)
{
    model m = make_model();
    hook_log log = {.fail_at = -1};
    ag_tensor *w = ag_params_tensor(m.mlp->params, 0);
    ck_assert_int_eq(ag_set_grad_hook(w, record, &log), 0);
    ag_tensor *g;
    ck_assert_int_eq(ag_gradients(m.step, 1, (ag_tensor *[]){loss_of(&m)}, NULL,
                                  1, &w, false, &g),
                     0);
    ck_assert_int_eq(log.count, 0);
    ck_assert_int_eq(ag_set_grad_hook(w, NULL, &log), 0);
    ck_assert_int_eq(ag_backward(loss_of(&m)), 0);
    ck_assert_int_eq(log.count, 0);
    free_model(&m);
}
END_TEST

START_TEST(test_failing_hook_stops_the_pass)
{
    model m = make_model();
    hook_log log = {.fail_at = 1};
    ag_params *p = m.mlp->params;
    for (int i = 0; i < ag_params_count(p); i++)
        ag_set_grad_hook(ag_params_tensor(p, i), record, &log);
    ck_assert_int_eq(ag_backward(loss_of(&m)), -1);
    ck_assert_str_eq(ag_last_error(), "record: the hook of call 1 fails");
    ck_assert_int_eq(log.count, 2); /* the pass stopped there */
    free_model(&m);
}
END_TEST

static int fail_silently(ag_tensor *t, void *user)
{
    (void)t;
    (void)user;
    return 7;
}

START_TEST(test_hook_errors)
{
    model m = make_model();
    ag_tensor *b = ag_params_tensor(m.mlp->params, 5);
    ag_set_grad_hook(b, fail_silently, NULL);
    ck_assert_int_eq(ag_backward(loss_of(&m)), -1);
    ck_assert_str_eq(
        ag_last_error(),
        "ag_backward: a gradient hook returned 7 without an error");
    ck_assert_int_eq(ag_set_grad_hook(NULL, record, NULL), -1);
    ag_tensor *ids = ag_zeros(m.arena, AG_I32, 1, (int64_t[]){2});
    ck_assert_int_eq(ag_set_grad_hook(ids, record, NULL), -1);
    ck_assert_str_eq(ag_last_error(),
                     "ag_set_grad_hook: an i32 tensor never has a gradient "
                     "to hook");
    free_model(&m);
}
END_TEST

/* ---- shards ---- */

START_TEST(test_shards_make_the_single_process_batch)
{
    ag_arena *a = ag_arena_new(), *step = ag_arena_new();
    const int64_t n = 23, batch = 7;
    ag_tensor *x = ag_arange(a, AG_F64, 0, (double)n, 1);
    ag_tensor *y = ag_arange(a, AG_I32, 0, (double)n, 1);
    for (int world = 1; world <= 4; world++) {
        ag_batcher *whole = ag_batcher_new(a, x, y, batch, true, 11, false);
        ag_batcher *part[4];
        for (int r = 0; r < world; r++) {
            part[r] = ag_batcher_new(a, x, y, batch, true, 11, false);
            ck_assert_int_eq(ag_batcher_shard(part[r], r, world), 0);
        }
        for (int epoch = 0; epoch < 2; epoch++) {
            ag_tensor *bx, *by;
            int got;
            while ((got = ag_batcher_next(whole, step, &bx, &by)) == 1) {
                int64_t rows = ag_shape(bx)[0], at = 0;
                for (int r = 0; r < world; r++) {
                    ag_tensor *px, *py;
                    ck_assert_int_eq(ag_batcher_next(part[r], step, &px, &py),
                                     1);
                    int64_t want = rows * (r + 1) / world - rows * r / world;
                    ck_assert_int_eq(ag_shape(px)[0], want);
                    ck_assert_int_eq(ag_shape(py)[0], want);
                    for (int64_t i = 0; i < want; i++, at++) {
                        ck_assert_double_eq(tensor_at(px, i),
                                            tensor_at(bx, at));
                        ck_assert_double_eq(tensor_at(py, i),
                                            tensor_at(by, at));
                    }
                }
                ck_assert_int_eq(at, rows);
                ag_arena_reset(step);
            }
            ck_assert_int_eq(got, 0);
            for (int r = 0; r < world; r++) {
                ag_tensor *px, *py;
                ck_assert_int_eq(ag_batcher_next(part[r], step, &px, &py), 0);
            }
        }
    }
    ag_arena_free(step);
    ag_arena_free(a);
}
END_TEST

START_TEST(test_shard_errors)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *x = ag_zeros(a, AG_F32, 2, (int64_t[]){10, 2});
    ag_batcher *b = ag_batcher_new(a, x, x, 2, false, 0, false);
    ck_assert_int_eq(ag_batcher_shard(NULL, 0, 1), -1);
    ck_assert_str_eq(ag_last_error(), "ag_batcher_shard: batcher is NULL");
    ck_assert_int_eq(ag_batcher_shard(b, 2, 2), -1);
    ck_assert_str_eq(ag_last_error(), "ag_batcher_shard: rank 2 of a world "
                                      "of 2: need 0 <= rank < world");
    ck_assert_int_eq(ag_batcher_shard(b, 0, 0), -1);
    ck_assert_int_eq(ag_batcher_shard(b, -1, 2), -1);
    ck_assert_int_eq(ag_batcher_shard(b, 0, 3), -1);
    ck_assert_str_eq(ag_last_error(),
                     "ag_batcher_shard: a batch of 2 examples shared by 3 "
                     "processes leaves some of them none");
    ck_assert_int_eq(ag_batcher_shard(b, 1, 2), 0);
    ag_arena_free(a);
}
END_TEST

static Suite *grad_hook_suite(void)
{
    Suite *s = suite_create("grad_hook");
    TCase *tc = tcase_create("hooks");
    tcase_add_test(tc,
                   test_hooks_fire_once_with_final_gradients_in_reverse_order);
    tcase_add_test(tc, test_hooks_not_from_gradients_and_removable);
    tcase_add_test(tc, test_failing_hook_stops_the_pass);
    tcase_add_test(tc, test_hook_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("shards");
    tcase_add_test(tc, test_shards_make_the_single_process_batch);
    tcase_add_test(tc, test_shard_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(grad_hook_suite());
}
