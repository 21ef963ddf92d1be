/* test_cnn_checkpoint.c: a small CNN's checkpoint both ways between PyTorch
 * and us (tests/fixtures/make_cnn_fixture.py): PyTorch's state_dict file
 * loaded into the equivalent module tree through ag_module_state gives
 * PyTorch's values and outputs (within 1e-5, f32), and our save of that
 * state is the same file byte for byte; a file of other shapes is refused
 * and changes nothing. */
#include <autograd.h>

#include "fixtures/cnn_torch.h"
#include "support.h"
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURE AG_TEST_FIXTURES "/cnn.safetensors"

static const char *const fixture_meta[] = {"format", "pt", "source",
                                           "make_cnn_fixture.py", NULL};

/* Sequential(Conv2d(1, 2, 3, padding=1), ReLU, MaxPool2d(2), Flatten,
 * Linear(18, classes)), initialised from seed (not PyTorch's values). */
static ag_module *make_cnn(ag_arena *a, int64_t classes, uint64_t seed)
{
    ag_rng rng = ag_rng_seed(seed);
    const ag_conv_options pad1 = {.padding = {1, 1}};
    ag_module *layers[] = {
        ag_nn_conv2d(a, AG_F32, 1, 2, 3, 3, &pad1, true, &rng),
        ag_nn_activation(a, AG_ACT_RELU),
        ag_nn_max_pool2d(a, 2, 0, 0),
        ag_nn_flatten(a),
        ag_nn_linear(a, AG_F32, 18, classes, true, &rng),
    };
    ag_module *m = ag_nn_sequential(a, 5, layers);
    ck_assert_msg(m != NULL, "%s", ag_last_error());
    return m;
}

START_TEST(test_torch_state_loads)
{
    ag_arena *a = ag_arena_new(), *step = ag_arena_new();
    ag_module *m = make_cnn(a, 3, 1);
    ag_params *state = ag_module_state(m);
    ck_assert_int_eq(ag_params_count(state), 4);
    ck_assert_msg(ag_load_safetensors(FIXTURE, state) == 0, "%s",
                  ag_last_error());
    const char *names[] = {"0.weight", "0.bias", "4.weight", "4.bias"};
    const double *want[] = {cnn_0_weight, cnn_0_bias, cnn_4_weight, cnn_4_bias};
    const int64_t counts[] = {18, 2, 54, 3};
    for (int k = 0; k < 4; k++) {
        ck_assert_str_eq(ag_params_name(state, k), names[k]);
        ag_tensor *t = ag_params_tensor(state, k);
        ck_assert_int_eq(ag_numel(t), counts[k]);
        for (int64_t i = 0; i < counts[k]; i++)
            ck_assert_msg(tensor_at(t, i) == want[k][i],
                          "%s[%lld] = %.9g, want %.9g", names[k], (long long)i,
                          tensor_at(t, i), want[k][i]);
    }

    ag_module_set_training(m, false);
    ag_tensor *x = ag_zeros(step, AG_F32, 4, (int64_t[]){2, 1, 6, 6});
    for (int64_t i = 0; i < 72; i++) tensor_set(x, i, cnn_x[i]);
    ag_tensor *y = ag_module_forward(m, step, x);
    ck_assert_msg(y != NULL, "%s", ag_last_error());
    ck_assert_int_eq(ag_ndim(y), 2);
    ck_assert_int_eq(ag_shape(y)[0], 2);
    ck_assert_int_eq(ag_shape(y)[1], 3);
    for (int64_t i = 0; i < 6; i++)
        ck_assert_msg(fabs(tensor_at(y, i) - cnn_y[i]) <= 1e-5,
                      "output %lld: %.9g, PyTorch %.9g", (long long)i,
                      tensor_at(y, i), cnn_y[i]);
    ag_arena_free(step);
    ag_arena_free(a);
}
END_TEST

/* Our save of the loaded state is PyTorch's file, byte for byte. */
START_TEST(test_our_save_is_torch_file)
{
    test_dir_make("ag_cnn_checkpoint");
    ag_arena *a = ag_arena_new();
    ag_params *state = ag_module_state(make_cnn(a, 3, 2));
    ck_assert_msg(ag_load_safetensors(FIXTURE, state) == 0, "%s",
                  ag_last_error());
    const char *path = path_of("mine.safetensors");
    ck_assert_msg(ag_save_safetensors(path, state, fixture_meta) == 0, "%s",
                  ag_last_error());
    size_t n, got_n;
    unsigned char *want = read_bytes(FIXTURE, &n);
    unsigned char *got = read_bytes(path, &got_n);
    ck_assert_msg(got_n == n && memcmp(got, want, n) == 0,
                  "our file (%zu bytes) differs from PyTorch's (%zu bytes)",
                  got_n, n);
    free(got);
    free(want);
    ag_arena_free(a);
    test_dir_remove();
}
END_TEST

/* A model whose last layer has another shape refuses the file, naming the
 * tensor, and keeps its own values. */
START_TEST(test_other_shapes_refused)
{
    ag_arena *a = ag_arena_new();
    ag_params *state = ag_module_state(make_cnn(a, 4, 3));
    ag_tensor *w = ag_params_tensor(state, 0);
    double before = tensor_at(w, 0);
    ck_assert_int_eq(ag_load_safetensors(FIXTURE, state), -1);
    ck_assert_msg(strstr(ag_last_error(), "4.weight"), "%s", ag_last_error());
    ck_assert(tensor_at(w, 0) == before);
    ag_clear_error();
    ag_arena_free(a);
}
END_TEST

static Suite *cnn_checkpoint_suite(void)
{
    Suite *s = suite_create("cnn_checkpoint");
    TCase *tc = tcase_create("cnn_checkpoint");
    tcase_add_test(tc, test_torch_state_loads);
    tcase_add_test(tc, test_our_save_is_torch_file);
    tcase_add_test(tc, test_other_shapes_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(cnn_checkpoint_suite());
}
