/* test_dist_pp.c: pipeline parallelism on 2 and 3 processes against the
 * unsplit model, under mpirun (tests/meson.build). A Sequential of seven
 * layers (Linear 5->8, Tanh, Linear 8->8, Tanh, Linear 8->6, Tanh, Linear
 * 6->3) is split into one stage per rank (layers [7 r / S, 7 (r+1) / S)),
 * and a batch of 12 into 4 micro-batches; with GPipe's schedule and with
 * 1F1B, the mean cross-entropy and every parameter's gradient are those of
 * the whole model on the whole batch, f64 within 1e-12 relative (the
 * batch's gradient is summed over four micro-batches instead of in one
 * product). Also: the gradients of two steps accumulate, and a batch that
 * does not split is refused on every rank before any work. */
#include "dist_support.h"
#include "support.h"
#include <check.h>
#include <math.h>

enum { LAYERS = 7, BATCH = 12, MICRO = 4 };

/* The seven layers, from one seed: the same on every rank. */
static ag_module *make_model(ag_arena *a)
{
    ag_rng rng = ag_rng_seed(17);
    const int64_t sizes[5] = {5, 8, 8, 6, 3};
    ag_module *layers[LAYERS];
    for (int i = 0; i < 4; i++) {
        layers[2 * i] =
            ag_nn_linear(a, AG_F64, sizes[i], sizes[i + 1], true, &rng);
        if (i < 3) layers[2 * i + 1] = ag_nn_activation(a, AG_ACT_TANH);
    }
    return ag_nn_sequential(a, LAYERS, layers);
}

static ag_tensor *cross_entropy(ag_arena *a, ag_tensor *out, ag_tensor *y,
                                void *user)
{
    (void)user;
    return ag_softmax_cross_entropy(a, out, y);
}

/* Layers [lo, hi) of this rank's stage. */
static void stage_range(int *lo, int *hi)
{
    int r = ag_dist_rank(dist), s = ag_dist_size(dist);
    *lo = LAYERS * r / s;
    *hi = LAYERS * (r + 1) / s;
}

static void batch(ag_arena *a, ag_tensor **x, ag_tensor **y)
{
    ag_rng rng = ag_rng_seed(4);
    *x = ag_randn(a, AG_F64, 2, (int64_t[]){BATCH, 5}, 0, 1, &rng);
    int32_t labels[BATCH];
    for (int i = 0; i < BATCH; i++)
        labels[i] = (int32_t)(ag_rng_next(&rng) % 3);
    *y = ag_from_data(a, AG_I32, 1, (int64_t[]){BATCH}, labels);
}

/* Asserts that the gradients of the stage's layers (children [lo, hi) of
 * the pipelined copy) are those of the same layers of the whole model. */
static void expect_same_gradients(ag_module *whole, ag_module *copy, int lo,
                                  int hi)
{
    for (int i = lo; i < hi; i++) {
        ag_params *want = ag_module_parameters(ag_module_child_at(whole, i));
        ag_params *got = ag_module_parameters(ag_module_child_at(copy, i));
        for (int j = 0; j < ag_params_count(want); j++) {
            ag_tensor *g = ag_grad(ag_params_tensor(got, j));
            ag_tensor *w = ag_grad(ag_params_tensor(want, j));
            ck_assert_msg(g && w, "layer %d: no gradient", i);
            double scale = 0, diff = 0;
            for (int64_t e = 0; e < ag_numel(w); e++) {
                scale = fmax(scale, fabs(tensor_at(w, e)));
                diff = fmax(diff, fabs(tensor_at(g, e) - tensor_at(w, e)));
            }
            ck_assert_msg(diff <= 1e-12 * scale, "layer %d %s: off by %g", i,
                          ag_params_name(want, j), diff);
        }
    }
}

START_TEST(test_pipeline_equals_the_whole_model)
{
    ag_pipe_schedule schedule = _i ? AG_PIPE_1F1B : AG_PIPE_GPIPE;
    ag_arena *a = ag_arena_new(), *step = ag_arena_new();
    ag_tensor *x, *y;
    batch(a, &x, &y);
    ag_module *whole = make_model(a);
    ag_tensor *full =
        ag_softmax_cross_entropy(step, ag_module_forward(whole, step, x), y);
    ck_assert_int_eq(ag_backward(full), 0);

    ag_module *copy = make_model(a);
    int lo, hi;
    stage_range(&lo, &hi);
    ag_module *layers[LAYERS];
    for (int i = lo; i < hi; i++) layers[i - lo] = ag_module_child_at(copy, i);
    ag_module *stage = ag_nn_sequential(a, hi - lo, layers);
    ag_pipeline *p =
        ag_pipeline_new(a, dist, stage, MICRO, schedule, cross_entropy, NULL);
    ck_assert_msg(p, "%s", ag_last_error());
    double loss;
    ck_assert_msg(ag_pipeline_step(p, step, x, y, &loss) == 0, "%s",
                  ag_last_error());
    ck_assert_double_le(fabs(loss - ag_item(full)), 1e-12 * ag_item(full));
    expect_same_gradients(whole, copy, lo, hi);

    /* a second step adds the same gradients again */
    ck_assert_int_eq(ag_backward(ag_softmax_cross_entropy(
                         step, ag_module_forward(whole, step, x), y)),
                     0);
    ck_assert_int_eq(ag_pipeline_step(p, step, x, y, NULL), 0);
    expect_same_gradients(whole, copy, lo, hi);
    ag_arena_free(step);
    ag_arena_free(a);
}
END_TEST

START_TEST(test_a_batch_that_does_not_split_is_refused)
{
    ag_arena *a = ag_arena_new(), *step = ag_arena_new();
    ag_module *stage = ag_nn_activation(a, AG_ACT_TANH);
    ag_pipeline *p =
        ag_pipeline_new(a, dist, stage, 5, AG_PIPE_1F1B, cross_entropy, NULL);
    ck_assert_ptr_nonnull(p);
    ag_tensor *x, *y;
    batch(a, &x, &y);
    ck_assert_int_eq(ag_pipeline_step(p, step, x, y, NULL), -1);
    ck_assert_str_eq(ag_last_error(), "ag_pipeline_step: rank 0: x's first "
                                      "axis (12) does not split into 5 "
                                      "micro-batches (2 ranks failed)");
    ag_arena_free(step);
    ag_arena_free(a);
}
END_TEST

static Suite *pp_suite(void)
{
    Suite *s = suite_create("dist_pp");
    TCase *tc = tcase_create("pp");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_pipeline_equals_the_whole_model, 0, 2);
    tcase_add_test(tc, test_a_batch_that_does_not_split_is_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    return dist_main(&argc, &argv, pp_suite(), 20);
}
