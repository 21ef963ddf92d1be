/* test_module.c: modules (nn.h): a user-written module with a parameter, a
 * buffer and children; state_dict names and order as PyTorch's; the tree
 * complete once listed; training mode reaching every child; Sequential's
 * errors naming the failing child; Dropout in both modes; a checkpoint of
 * a module's state saved and loaded back. */
#include <autograd.h>

#include "support.h"
#include <check.h>
#include <math.h>
#include <string.h>

/* A user's module: y = scale * child(x) + offset, with `scale` a
 * parameter, `offset` a buffer and `inner` a child Linear. */
typedef struct {
    ag_tensor *scale, *offset;
} scaled;

static ag_tensor *scaled_forward(ag_module *m, ag_arena *step, ag_tensor *x)
{
    scaled *s = ag_module_self(m);
    ag_tensor *h = ag_module_forward(ag_module_child(m, "inner"), step, x);
    return ag_add(step, ag_mul(step, h, s->scale), s->offset);
}

static const ag_module_type scaled_type = {"Scaled", scaled_forward};

static ag_module *scaled_new(ag_arena *a, ag_rng *rng)
{
    scaled *s = ag_arena_alloc(a, sizeof *s);
    ck_assert_ptr_nonnull(s);
    s->scale = ag_full(a, AG_F64, 1, (int64_t[]){2}, 2.0);
    s->offset = ag_full(a, AG_F64, 1, (int64_t[]){2}, 0.5);
    ag_module *m = ag_module_new(a, &scaled_type, s);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(ag_module_add_parameter(m, "scale", s->scale), 0);
    ck_assert_int_eq(ag_module_add_buffer(m, "offset", s->offset), 0);
    ck_assert_int_eq(ag_module_add_child(
                         m, "inner", ag_nn_linear(a, AG_F64, 3, 2, true, rng)),
                     0);
    return m;
}

static void expect_names(ag_params *p, int n, const char *const *names)
{
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(ag_params_count(p), n);
    for (int i = 0; i < n; i++)
        ck_assert_str_eq(ag_params_name(p, i), names[i]);
}

START_TEST(test_state_names_and_order)
{
    ag_arena *a = ag_arena_new();
    ag_rng rng = ag_rng_seed(1);
    ag_module *parts[3] = {scaled_new(a, &rng),
                           ag_nn_activation(a, AG_ACT_TANH),
                           ag_nn_linear(a, AG_F64, 2, 4, false, &rng)};
    ag_module *seq = ag_nn_sequential(a, 3, parts);
    ck_assert_ptr_nonnull(seq);
    ck_assert_str_eq(ag_module_type_name(seq), "Sequential");
    /* as torch.nn.Sequential(Scaled(...), nn.Tanh(), nn.Linear(2, 4,
     * bias=False)).state_dict(): a module's parameters, its buffers, then
     * its children */
    static const char *const state[] = {"0.scale", "0.offset", "0.inner.weight",
                                        "0.inner.bias", "2.weight"};
    expect_names(ag_module_state(seq), 5, state);
    static const char *const params[] = {"0.scale", "0.inner.weight",
                                         "0.inner.bias", "2.weight"};
    expect_names(ag_module_parameters(seq), 4, params);
    static const char *const buffers[] = {"0.offset"};
    expect_names(ag_module_buffers(seq), 1, buffers);
    /* parameters require a gradient, buffers do not */
    ck_assert(
        ag_is_requires_grad(ag_params_tensor(ag_module_parameters(seq), 0)));
    ck_assert(
        !ag_is_requires_grad(ag_params_tensor(ag_module_buffers(seq), 0)));
    /* listed once: the same set every time, and the tree is complete */
    ck_assert_ptr_eq(ag_module_parameters(seq), ag_module_parameters(seq));
    ck_assert_int_eq(
        ag_nn_sequential_append(seq, ag_nn_activation(a, AG_ACT_RELU)), -1);
    ck_assert_msg(strstr(ag_last_error(), "already listed"), "%s",
                  ag_last_error());
    ck_assert_int_eq(ag_module_child_count(seq), 3);
    ag_arena_free(a);
}
END_TEST

START_TEST(test_forward_and_errors)
{
    ag_arena *a = ag_arena_new(), *step = ag_arena_new();
    ag_rng rng = ag_rng_seed(2);
    ag_module *m = scaled_new(a, &rng);
    ag_tensor *x = ag_ones(step, AG_F64, 2, (int64_t[]){4, 3});
    ag_tensor *y = ag_module_forward(m, step, x);
    ck_assert_msg(y != NULL, "%s", ag_last_error());
    /* y = 2 (x W^T + b) + 0.5 */
    ag_module *inner = ag_module_child(m, "inner");
    ag_params *lp = ag_module_own_parameters(inner);
    ag_tensor *w = ag_params_find(lp, "weight"),
              *b = ag_params_find(lp, "bias");
    for (int64_t r = 0; r < 4; r++)
        for (int64_t j = 0; j < 2; j++) {
            double want = tensor_at(b, j);
            for (int64_t k = 0; k < 3; k++) want += tensor_at(w, j * 3 + k);
            ck_assert_double_eq_tol(tensor_at(y, r * 2 + j), 2 * want + 0.5,
                                    1e-12);
        }
    /* a shape error inside a Sequential names the child */
    ag_module *parts[2] = {ag_nn_activation(a, AG_ACT_RELU), m};
    ag_module *seq = ag_nn_sequential(a, 2, parts);
    ag_tensor *bad = ag_ones(step, AG_F64, 2, (int64_t[]){4, 5});
    ck_assert_ptr_null(ag_module_forward(seq, step, bad));
    ck_assert_msg(strstr(ag_last_error(), "Sequential: module 1 (Scaled)") &&
                      strstr(ag_last_error(), "ag_linear"),
                  "%s", ag_last_error());
    /* bad registrations */
    ck_assert_int_eq(ag_module_add_parameter(m, "scale", x), -1);
    ck_assert_msg(strstr(ag_last_error(), "already has a member"), "%s",
                  ag_last_error());
    ck_assert_int_eq(ag_module_add_child(m, "a.b", inner), -1);
    ck_assert_int_eq(ag_module_add_child(m, "self", m), -1);
    ck_assert_ptr_null(ag_module_new(a, NULL, NULL));
    ck_assert_ptr_null(ag_module_forward(NULL, step, x));
    ag_arena_free(step);
    ag_arena_free(a);
}
END_TEST

START_TEST(test_training_mode_and_dropout)
{
    ag_arena *a = ag_arena_new(), *step = ag_arena_new();
    ag_module *drop = ag_nn_dropout(a, 0.5, 7);
    ag_module *parts[2] = {ag_nn_flatten(a), drop};
    ag_module *seq = ag_nn_sequential(a, 2, parts);
    ck_assert(ag_module_is_training(drop));
    ag_tensor *x = ag_ones(step, AG_F32, 3, (int64_t[]){2, 4, 8});
    ag_tensor *y = ag_module_forward(seq, step, x);
    ck_assert_int_eq(ag_ndim(y), 2);
    ck_assert_int_eq(ag_shape(y)[1], 32);
    int zeros = 0;
    for (int64_t i = 0; i < 64; i++) {
        double v = tensor_at(y, i);
        ck_assert(v == 0 || v == 2);
        zeros += v == 0;
    }
    ck_assert(zeros > 10 && zeros < 54);
    ag_module_set_training(seq, false);
    ck_assert(!ag_module_is_training(drop));
    y = ag_module_forward(seq, step, x);
    for (int64_t i = 0; i < 64; i++) ck_assert_double_eq(tensor_at(y, i), 1);
    ck_assert_ptr_null(ag_nn_dropout(a, 1.0, 0));
    ag_arena_free(step);
    ag_arena_free(a);
}
END_TEST

START_TEST(test_state_checkpoint_round_trip)
{
    test_dir_make("ag_module");
    ag_arena *a = ag_arena_new(), *b = ag_arena_new();
    ag_rng r1 = ag_rng_seed(3), r2 = ag_rng_seed(4);
    ag_module *m1 = scaled_new(a, &r1), *m2 = scaled_new(b, &r2);
    ag_tensor *off = ag_params_find(ag_module_state(m1), "offset");
    tensor_set(off, 1, -3.25); /* a buffer travels with the checkpoint */
    const char *path = path_of("m.safetensors");
    ck_assert_int_eq(ag_save_safetensors(path, ag_module_state(m1), NULL), 0);
    ck_assert_int_eq(ag_load_safetensors(path, ag_module_state(m2)), 0);
    ag_params *s1 = ag_module_state(m1), *s2 = ag_module_state(m2);
    for (int i = 0; i < ag_params_count(s1); i++) {
        ag_tensor *t1 = ag_params_tensor(s1, i), *t2 = ag_params_tensor(s2, i);
        for (int64_t j = 0; j < ag_numel(t1); j++)
            ck_assert_double_eq(tensor_at(t1, j), tensor_at(t2, j));
    }
    ag_arena_free(a);
    ag_arena_free(b);
    test_dir_remove();
}
END_TEST

/* The norm modules: PyTorch's names and defaults, num_batches_tracked
 * counting training batches, evaluation with the running statistics, and
 * inputs of the wrong rank refused with the module's name. */
START_TEST(test_norm_modules)
{
    ag_arena *a = ag_arena_new(), *step = ag_arena_new();
    ag_module *ln = ag_nn_layer_norm(a, AG_F64, 1, (int64_t[]){4}, 1e-5, true);
    ag_module *rms = ag_nn_rms_norm(a, AG_F64, 1, (int64_t[]){4}, 0, true);
    ag_module *bn = ag_nn_batch_norm1d(a, AG_F64, 4, 1e-5, 0.1, true, true);
    ag_module *parts[3] = {ln, rms, bn};
    ag_module *seq = ag_nn_sequential(a, 3, parts);
    static const char *const names[] = {
        "0.weight", "0.bias",         "1.weight",      "2.weight",
        "2.bias",   "2.running_mean", "2.running_var", "2.num_batches_tracked"};
    expect_names(ag_module_state(seq), 8, names);
    ck_assert_int_eq(ag_params_count(ag_module_parameters(seq)), 5);
    ag_params *state = ag_module_state(seq);
    ck_assert_double_eq(tensor_at(ag_params_find(state, "0.weight"), 2), 1);
    ck_assert_double_eq(tensor_at(ag_params_find(state, "2.running_var"), 0),
                        1);
    ag_tensor *count = ag_params_find(state, "2.num_batches_tracked");
    ck_assert_int_eq(ag_type(count), AG_I32);
    ag_rng rng = ag_rng_seed(5);
    ag_tensor *x = ag_randn(step, AG_F64, 2, (int64_t[]){6, 4}, 1, 2, &rng);
    for (int k = 0; k < 3; k++)
        ck_assert_ptr_nonnull(ag_module_forward(seq, step, x));
    ck_assert_int_eq((int)tensor_at(count, 0), 3);
    ag_tensor *mean = ag_params_find(state, "2.running_mean");
    ck_assert(tensor_at(mean, 0) != 0); /* updated in training */
    ag_module_set_training(seq, false);
    double before = tensor_at(mean, 0);
    ag_tensor *y = ag_module_forward(bn, step, x);
    ck_assert_ptr_nonnull(y);
    ck_assert_double_eq(tensor_at(mean, 0), before); /* not in evaluation */
    ck_assert_int_eq((int)tensor_at(count, 0), 3);
    /* eval: (x - running_mean) / sqrt(running_var + eps) */
    ag_tensor *var = ag_params_find(state, "2.running_var");
    double want = (tensor_at(x, 0) - before) / sqrt(tensor_at(var, 0) + 1e-5);
    ck_assert_double_eq_tol(tensor_at(y, 0), want, 1e-12);
    ag_tensor *x4 = ag_ones(step, AG_F64, 4, (int64_t[]){2, 4, 3, 3});
    ck_assert_ptr_null(ag_module_forward(bn, step, x4));
    ck_assert_msg(strstr(ag_last_error(), "BatchNorm1d: expected"), "%s",
                  ag_last_error());
    ag_tensor *x5 = ag_ones(step, AG_F64, 2, (int64_t[]){2, 5});
    ck_assert_ptr_null(ag_module_forward(ln, step, x5));
    ck_assert_msg(strstr(ag_last_error(), "LayerNorm: input (2,5)"), "%s",
                  ag_last_error());
    ck_assert_ptr_null(ag_nn_batch_norm2d(a, AG_I32, 3, 1e-5, 0.1, true, true));
    ag_arena_free(step);
    ag_arena_free(a);
}
END_TEST

/* Conv2d, MaxPool2d, Flatten and Linear make a small CNN: names, PyTorch's
 * init bound, shapes through it, and a 3-D input refused by name. */
START_TEST(test_conv_modules)
{
    ag_arena *a = ag_arena_new(), *step = ag_arena_new();
    ag_rng rng = ag_rng_seed(6);
    ag_conv_options pad = {.padding = {1, 1}};
    ag_module *parts[5] = {
        ag_nn_conv2d(a, AG_F32, 1, 4, 3, 3, &pad, true, &rng),
        ag_nn_activation(a, AG_ACT_RELU), ag_nn_max_pool2d(a, 2, 0, 0),
        ag_nn_flatten(a), ag_nn_linear(a, AG_F32, 4 * 4 * 4, 3, true, &rng)};
    ag_module *cnn = ag_nn_sequential(a, 5, parts);
    static const char *const names[] = {"0.weight", "0.bias", "4.weight",
                                        "4.bias"};
    expect_names(ag_module_state(cnn), 4, names);
    ag_tensor *w = ag_params_find(ag_module_state(cnn), "0.weight");
    ck_assert_int_eq(ag_ndim(w), 4);
    double bound = 1 / sqrt(9.0); /* fan_in 1 * 3 * 3 */
    for (int64_t i = 0; i < ag_numel(w); i++)
        ck_assert(fabs(tensor_at(w, i)) < bound);
    ag_tensor *x =
        ag_randn(step, AG_F32, 4, (int64_t[]){2, 1, 8, 8}, 0, 1, &rng);
    ag_tensor *y = ag_module_forward(cnn, step, x);
    ck_assert_msg(y != NULL, "%s", ag_last_error());
    ck_assert_int_eq(ag_shape(y)[0], 2);
    ck_assert_int_eq(ag_shape(y)[1], 3);
    ag_tensor *x3 = ag_ones(step, AG_F32, 3, (int64_t[]){2, 8, 8});
    ck_assert_ptr_null(ag_module_forward(cnn, step, x3));
    ck_assert_msg(strstr(ag_last_error(), "module 0 (Conv2d)") &&
                      strstr(ag_last_error(), "Conv2d: expected a 4-D"),
                  "%s", ag_last_error());
    ck_assert_ptr_null(ag_nn_conv2d(
        a, AG_F32, 3, 4, 3, 3, &(ag_conv_options){.groups = 2}, true, &rng));
    ck_assert_msg(strstr(ag_last_error(), "divisible by groups"), "%s",
                  ag_last_error());
    ag_arena_free(step);
    ag_arena_free(a);
}
END_TEST

/* LSTM and GRU: PyTorch's names, output and state shapes for batch_first
 * and not, and the gradient of a loss through two layers checked against
 * central differences with ag_gradcheck_params. */
typedef struct {
    ag_module *rnn;
    ag_tensor *x;
    bool gru;
} rnn_case;

static ag_tensor *rnn_loss(ag_arena *a, void *user)
{
    rnn_case *c = user;
    ag_tensor *hn = NULL, *cn = NULL;
    ag_tensor *y =
        c->gru ? ag_nn_gru_forward(c->rnn, a, c->x, NULL, &hn)
               : ag_nn_lstm_forward(c->rnn, a, c->x, NULL, NULL, &hn, &cn);
    ag_tensor *loss = ag_sum(a, ag_mul(a, y, y), AG_ALL, false);
    loss = ag_add(a, loss, ag_sum(a, hn, AG_ALL, false));
    return c->gru ? loss : ag_add(a, loss, ag_sum(a, cn, AG_ALL, false));
}

START_TEST(test_rnn_modules)
{
    ag_arena *a = ag_arena_new(), *step = ag_arena_new();
    ag_rng rng = ag_rng_seed(7);
    for (int gru = 0; gru < 2; gru++) {
        ag_module *r = gru ? ag_nn_gru(a, AG_F64, 3, 4, 2, true, &rng)
                           : ag_nn_lstm(a, AG_F64, 3, 4, 2, true, &rng);
        ck_assert_ptr_nonnull(r);
        static const char *const names[] = {
            "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
            "weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1"};
        expect_names(ag_module_state(r), 8, names);
        ag_tensor *w = ag_params_find(ag_module_state(r), "weight_ih_l1");
        ck_assert_int_eq(ag_shape(w)[0], (gru ? 3 : 4) * 4);
        ck_assert_int_eq(ag_shape(w)[1], 4);
        rnn_case c = {
            r, ag_randn(a, AG_F64, 3, (int64_t[]){2, 5, 3}, 0, 1, &rng), gru};
        ag_tensor *y = ag_module_forward(r, step, c.x);
        ck_assert_msg(y != NULL, "%s", ag_last_error());
        ck_assert_int_eq(ag_shape(y)[0], 2);
        ck_assert_int_eq(ag_shape(y)[1], 5);
        ck_assert_int_eq(ag_shape(y)[2], 4);
        ag_gradcheck_options o = ag_gradcheck_defaults();
        o.max_elements = 6;
        ag_gradcheck_report rep;
        ck_assert_msg(ag_gradcheck_params(rnn_loss, &c, ag_module_parameters(r),
                                          &o, &rep) == 0,
                      "%s %s", gru ? "GRU" : "LSTM", ag_last_error());
        ck_assert_int_eq(rep.checked, 8 * 6);
        ag_tensor *bad = ag_ones(step, AG_F64, 2, (int64_t[]){5, 3});
        ck_assert_ptr_null(ag_module_forward(r, step, bad));
        ck_assert_msg(strstr(ag_last_error(), gru ? "GRU: expected a 3-D"
                                                  : "LSTM: expected a 3-D"),
                      "%s", ag_last_error());
    }
    /* not batch_first: (T,N,I) in, (T,N,H) out, states (L,N,H) */
    ag_module *lstm = ag_nn_lstm(a, AG_F32, 3, 4, 1, false, &rng);
    ag_tensor *x = ag_ones(step, AG_F32, 3, (int64_t[]){5, 2, 3}), *hn, *cn;
    ag_tensor *y = ag_nn_lstm_forward(lstm, step, x, NULL, NULL, &hn, &cn);
    ck_assert_msg(y != NULL, "%s", ag_last_error());
    ck_assert_int_eq(ag_shape(y)[0], 5);
    ck_assert_int_eq(ag_shape(hn)[0], 1);
    ck_assert_int_eq(ag_shape(hn)[1], 2);
    ck_assert_ptr_null(ag_nn_gru_forward(lstm, step, x, NULL, NULL));
    ck_assert_msg(strstr(ag_last_error(), "not a GRU"), "%s", ag_last_error());
    ag_arena_free(step);
    ag_arena_free(a);
}
END_TEST

/* MultiheadAttention: PyTorch's names, the output against the same
 * attention written in plain ops (one head at a time, causal), and its
 * gradient checked in place. */
typedef struct {
    ag_module *mha;
    ag_tensor *x;
} mha_case;

static ag_tensor *mha_loss(ag_arena *a, void *user)
{
    mha_case *c = user;
    ag_tensor *y = ag_module_forward(c->mha, a, c->x);
    return ag_sum(a, ag_mul(a, y, y), AG_ALL, false);
}

START_TEST(test_multihead_attention)
{
    ag_arena *a = ag_arena_new(), *step = ag_arena_new();
    ag_rng rng = ag_rng_seed(8);
    const int64_t n = 2, t = 3, e = 4, heads = 2, d = 2;
    ag_module *mha =
        ag_nn_multihead_attention(a, AG_F64, e, heads, true, true, true, &rng);
    ck_assert_msg(mha != NULL, "%s", ag_last_error());
    static const char *const names[] = {"in_proj_weight", "in_proj_bias",
                                        "out_proj.weight", "out_proj.bias"};
    expect_names(ag_module_state(mha), 4, names);
    ag_params *p = ag_module_state(mha);
    /* biases are zero as PyTorch's: give them values to test them */
    for (int k = 1; k < 4; k += 2)
        for (int64_t i = 0; i < ag_numel(ag_params_tensor(p, k)); i++) {
            ck_assert_double_eq(tensor_at(ag_params_tensor(p, k), i), 0);
            tensor_set(ag_params_tensor(p, k), i, 0.1 * (double)(i % 5) - 0.2);
        }
    mha_case c = {mha,
                  ag_randn(a, AG_F64, 3, (int64_t[]){n, t, e}, 0, 1, &rng)};
    ag_tensor *y = ag_module_forward(mha, step, c.x);
    ck_assert_msg(y != NULL, "%s", ag_last_error());
    ag_tensor *w = ag_params_tensor(p, 0), *b = ag_params_tensor(p, 1);
    ag_tensor *ow = ag_params_tensor(p, 2), *ob = ag_params_tensor(p, 3);
    ag_tensor *proj[3];
    for (int k = 0; k < 3; k++)
        proj[k] =
            ag_linear(step, c.x, ag_slice(step, w, 0, k * e, (k + 1) * e, 1),
                      ag_slice(step, b, 0, k * e, (k + 1) * e, 1));
    ag_tensor *mask = ag_zeros(step, AG_F64, 2, (int64_t[]){t, t});
    for (int64_t i = 0; i < t; i++)
        for (int64_t j = i + 1; j < t; j++)
            tensor_set(mask, i * t + j, -INFINITY);
    ag_tensor *parts[2];
    for (int64_t h = 0; h < heads; h++) {
        ag_tensor *qkv[3];
        for (int k = 0; k < 3; k++)
            qkv[k] = ag_slice(step, proj[k], 2, h * d, (h + 1) * d, 1);
        ag_tensor *s = ag_scale(
            step, ag_matmul(step, qkv[0], ag_transpose(step, qkv[1], 1, 2)),
            1 / sqrt((double)d));
        ag_tensor *pr = ag_softmax(step, ag_add(step, s, mask), -1);
        parts[h] = ag_matmul(step, pr, qkv[2]);
    }
    ag_tensor *want = ag_linear(step, ag_concat(step, 2, parts, 2), ow, ob);
    ck_assert_msg(want != NULL, "%s", ag_last_error());
    for (int64_t i = 0; i < ag_numel(y); i++)
        ck_assert_double_eq_tol(tensor_at(y, i), tensor_at(want, i), 1e-12);
    ag_gradcheck_report rep;
    ck_assert_msg(ag_gradcheck_params(mha_loss, &c, ag_module_parameters(mha),
                                      NULL, &rep) == 0,
                  "%s", ag_last_error());
    ag_tensor *bad = ag_ones(step, AG_F64, 3, (int64_t[]){n, t, 5});
    ck_assert_ptr_null(ag_module_forward(mha, step, bad));
    ck_assert_msg(strstr(ag_last_error(), "MultiheadAttention: the query"),
                  "%s", ag_last_error());
    ck_assert_ptr_null(
        ag_nn_multihead_attention(a, AG_F64, 5, 2, true, true, false, &rng));
    ag_arena_free(step);
    ag_arena_free(a);
}
END_TEST

static Suite *module_suite(void)
{
    Suite *s = suite_create("module");
    TCase *tc = tcase_create("module");
    tcase_add_test(tc, test_state_names_and_order);
    tcase_add_test(tc, test_forward_and_errors);
    tcase_add_test(tc, test_training_mode_and_dropout);
    tcase_add_test(tc, test_state_checkpoint_round_trip);
    tcase_add_test(tc, test_norm_modules);
    tcase_add_test(tc, test_conv_modules);
    tcase_add_test(tc, test_rnn_modules);
    tcase_add_test(tc, test_multihead_attention);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(module_suite());
}
