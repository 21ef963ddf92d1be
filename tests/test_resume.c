/* test_resume.c: a training run interrupted and resumed from a checkpoint
 * of the model (ag_module_state) and of the optimizer (ag_optimizer_save)
 * continues the uninterrupted run's trajectory bit for bit, for Adam,
 * AdamW and SGD with momentum; a bad optimizer file (another kind, other
 * shapes, a broken counter, no file) is refused and changes nothing. */
#include <autograd.h>

#include "support.h"
#include <check.h>
#include <math.h>
#include <string.h>

enum { ADAM, ADAMW, SGD };

/* A 3-8-2 tanh model in its own arena, weights from seed. */
static ag_module *model_new(ag_arena *a, uint64_t seed)
{
    ag_rng rng = ag_rng_seed(seed);
    ag_module *parts[3] = {ag_nn_linear(a, AG_F32, 3, 8, true, &rng),
                           ag_nn_activation(a, AG_ACT_TANH),
                           ag_nn_linear(a, AG_F32, 8, 2, true, &rng)};
    return ag_nn_sequential(a, 3, parts);
}

static ag_optimizer *optimizer_new(ag_arena *a, ag_module *m, int kind)
{
    ag_params *p = ag_module_parameters(m);
    if (kind == SGD) {
        ag_sgd_options o = ag_sgd_defaults(0.05);
        o.momentum = 0.9;
        return ag_sgd_new(a, p, &o);
    }
    return kind == ADAM ? ag_adam_new(a, p, NULL) : ag_adamw_new(a, p, NULL);
}

/* `steps` steps of MSE on batches drawn from the step number, with a
 * schedule read off the optimizer's step count. */
static void train(ag_module *m, ag_optimizer *opt, int steps)
{
    ag_arena *step = ag_arena_new();
    for (int s = 0; s < steps; s++) {
        int64_t k = ag_optimizer_steps(opt);
        ag_rng rng = ag_rng_seed(100 + (uint64_t)k);
        ag_tensor *x =
            ag_randn(step, AG_F32, 2, (int64_t[]){16, 3}, 0, 1, &rng);
        ag_tensor *y =
            ag_randn(step, AG_F32, 2, (int64_t[]){16, 2}, 0, 1, &rng);
        ag_tensor *loss = ag_mse_loss(step, ag_module_forward(m, step, x), y);
        ck_assert_msg(loss && ag_backward(loss) == 0, "%s", ag_last_error());
        double lr = ag_lr_cosine(1e-2, 1e-4, k, 2, 40);
        ck_assert_int_eq(ag_optimizer_set_lr(opt, lr), 0);
        ck_assert_int_eq(ag_optimizer_step(opt), 0);
        ag_optimizer_clear_grad(opt);
        ag_arena_reset(step);
    }
    ag_arena_free(step);
}

/* Every parameter of a and b holds the same bits. */
static void expect_same(ag_module *a, ag_module *b)
{
    ag_params *pa = ag_module_state(a), *pb = ag_module_state(b);
    ck_assert_int_eq(ag_params_count(pa), ag_params_count(pb));
    for (int i = 0; i < ag_params_count(pa); i++) {
        ag_tensor *ta = ag_params_tensor(pa, i), *tb = ag_params_tensor(pb, i);
        ck_assert_msg(!memcmp(ag_data(ta), ag_data(tb),
                              (size_t)ag_numel(ta) * sizeof(float)),
                      "%s differs", ag_params_name(pa, i));
    }
}

START_TEST(test_resume_continues_the_trajectory)
{
    int kind = _i;
    test_dir_make("ag_resume");
    ag_arena *a = ag_arena_new(), *b = ag_arena_new();
    ag_module *m1 = model_new(a, 1), *m2 = model_new(b, 2);
    ag_optimizer *o1 = optimizer_new(a, m1, kind),
                 *o2 = optimizer_new(b, m2, kind);
    ck_assert_ptr_nonnull(o1);
    ck_assert_ptr_nonnull(o2);
    train(m1, o1, 20);
    const char *model = path_of("model.safetensors");
    const char *state = path_of("optimizer.safetensors");
    ck_assert_int_eq(ag_save_safetensors(model, ag_module_state(m1), NULL), 0);
    ck_assert_msg(ag_optimizer_save(o1, state) == 0, "%s", ag_last_error());
    train(m1, o1, 15); /* the uninterrupted run */
    ck_assert_int_eq(ag_load_safetensors(model, ag_module_state(m2)), 0);
    ck_assert_msg(ag_optimizer_load(o2, state) == 0, "%s", ag_last_error());
    ck_assert_int_eq(ag_optimizer_steps(o2), 20);
    train(m2, o2, 15); /* the resumed one */
    expect_same(m1, m2);
    ck_assert_int_eq(ag_optimizer_steps(o2), 35);
    ck_assert_double_eq(ag_optimizer_lr(o1), ag_optimizer_lr(o2));
    ag_arena_free(a);
    ag_arena_free(b);
    test_dir_remove();
}
END_TEST

START_TEST(test_bad_state_files)
{
    test_dir_make("ag_resume");
    ag_arena *a = ag_arena_new();
    ag_module *m = model_new(a, 3);
    ag_optimizer *adam = optimizer_new(a, m, ADAM),
                 *sgd = optimizer_new(a, m, SGD);
    train(m, adam, 3);
    const char *state = path_of("adam.safetensors");
    ck_assert_int_eq(ag_optimizer_save(adam, state), 0);
    /* another kind */
    ck_assert_int_eq(ag_optimizer_load(sgd, state), -1);
    ck_assert_msg(strstr(ag_last_error(), "optimizer adam, not of sgd"), "%s",
                  ag_last_error());
    ck_assert_int_eq(ag_optimizer_steps(sgd), 0);
    /* other parameters: a 3-4-2 model */
    ag_rng rng = ag_rng_seed(4);
    ag_module *parts[2] = {ag_nn_linear(a, AG_F32, 3, 4, true, &rng),
                           ag_nn_linear(a, AG_F32, 4, 2, true, &rng)};
    ag_module *other = ag_nn_sequential(a, 2, parts);
    ag_optimizer *o2 = optimizer_new(a, other, ADAM);
    ck_assert_int_eq(ag_optimizer_load(o2, state), -1);
    ck_assert_msg(strstr(ag_last_error(), "ag_load_safetensors"), "%s",
                  ag_last_error());
    ck_assert_int_eq(ag_optimizer_steps(o2), 0);
    /* a broken counter: steps 2.5 in an otherwise good file */
    ag_params *fake = ag_params_new(a);
    const char *names[] = {
        "state.0.step", "state.0.exp_avg", "state.0.exp_avg_sq",
        "state.1.step", "state.1.exp_avg", "state.1.exp_avg_sq",
        "state.2.step", "state.2.exp_avg", "state.2.exp_avg_sq",
        "state.3.step", "state.3.exp_avg", "state.3.exp_avg_sq"};
    ag_params *op = ag_module_parameters(other);
    for (int i = 0; i < 12; i++) {
        ag_tensor *like = ag_params_tensor(op, i / 3);
        ag_tensor *t = i % 3 == 0
                           ? ag_full(a, AG_F64, 1, (int64_t[]){1}, 1)
                           : ag_zeros(a, AG_F32, ag_ndim(like), ag_shape(like));
        ck_assert_int_eq(ag_params_add(fake, names[i], t), 0);
    }
    ck_assert_int_eq(ag_params_add(fake, "param_groups.0.lr",
                                   ag_full(a, AG_F64, 1, (int64_t[]){1}, 0.1)),
                     0);
    ck_assert_int_eq(ag_params_add(fake, "steps",
                                   ag_full(a, AG_F64, 1, (int64_t[]){1}, 2.5)),
                     0);
    const char *meta[] = {"optimizer", "adam", NULL};
    ck_assert_int_eq(
        ag_save_safetensors(path_of("fake.safetensors"), fake, meta), 0);
    ck_assert_int_eq(ag_optimizer_load(o2, path_of("fake.safetensors")), -1);
    ck_assert_msg(strstr(ag_last_error(), "steps is 2.5"), "%s",
                  ag_last_error());
    ck_assert_double_eq(ag_optimizer_lr(o2), 1e-3);
    /* and the same file with a whole count loads */
    ((double *)ag_data(ag_params_find(fake, "steps")))[0] = 7;
    ck_assert_int_eq(
        ag_save_safetensors(path_of("fake.safetensors"), fake, meta), 0);
    ck_assert_msg(ag_optimizer_load(o2, path_of("fake.safetensors")) == 0, "%s",
                  ag_last_error());
    ck_assert_int_eq(ag_optimizer_steps(o2), 7);
    ck_assert_double_eq(ag_optimizer_lr(o2), 0.1);
    /* no file, NULLs */
    ck_assert_int_eq(ag_optimizer_load(adam, path_of("missing")), -1);
    ck_assert_int_eq(ag_optimizer_load(NULL, state), -1);
    ck_assert_int_eq(ag_optimizer_save(adam, NULL), -1);
    ck_assert_msg(strstr(ag_last_error(), "ag_optimizer_save:"), "%s",
                  ag_last_error());
    ag_arena_free(a);
    test_dir_remove();
}
END_TEST

static Suite *resume_suite(void)
{
    Suite *s = suite_create("resume");
    TCase *tc = tcase_create("resume");
    tcase_add_loop_test(tc, test_resume_continues_the_trajectory, ADAM,
                        SGD + 1);
    tcase_add_test(tc, test_bad_state_files);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(resume_suite());
}
