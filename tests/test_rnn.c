/* test_rnn.c: nn.LSTM and nn.GRU against PyTorch (fixtures/rnn_torch.h,
 * made by fixtures/make_rnn_fixture.py): the weights loaded by their
 * state_dict names through ag_module_state, then the output, h_n, c_n and
 * the gradients of every parameter, the input and h0/c0 within 1e-10 in
 * f64 and 1e-4 in f32. Then a checkpoint PyTorch wrote
 * (fixtures/lstm_state.safetensors) loads and gives PyTorch's outputs. */
#include <autograd.h>
#include <autograd/io.h>
#include <autograd/nn.h>

#include "fixtures/rnn_torch.h"
#include "support.h"
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A tensor of `shape` holding rnn_values[at..], requiring a gradient. */
static ag_tensor *leaf(ag_arena *a, ag_dtype dt, int ndim, const int64_t *shape,
                       int at)
{
    return fixture_tensor(a, dt, ndim, shape, rnn_values + at, true);
}

static void check_case(const rnn_case *c, ag_dtype dt, double tol)
{
    ag_arena *a = ag_arena_new();
    ck_assert_ptr_nonnull(a);
    ag_rng rng = ag_rng_seed(1);
    ag_module *m = c->gru ? ag_nn_gru(a, dt, c->input, c->hidden, c->layers,
                                      c->batch_first, &rng)
                          : ag_nn_lstm(a, dt, c->input, c->hidden, c->layers,
                                       c->batch_first, &rng);
    ck_assert_ptr_nonnull(m);
    ag_params *state = ag_module_state(m);
    ck_assert_ptr_nonnull(state);
    /* exactly PyTorch's names, in state_dict order */
    ck_assert_int_eq(ag_params_count(state), 4 * c->layers);
    for (int k = 0; k < 4 * c->layers; k++) {
        ck_assert_str_eq(ag_params_name(state, k), c->names[k]);
        ag_tensor *p = ag_params_find(state, c->names[k]);
        for (int64_t i = 0; i < ag_numel(p); i++)
            tensor_set(p, i, rnn_values[c->param_at[k] + i]);
    }
    int64_t xs[3] = {c->batch_first ? c->n : c->t, c->batch_first ? c->t : c->n,
                     c->input};
    int64_t ss[3] = {c->layers, c->n, c->hidden};
    ag_tensor *x = leaf(a, dt, 3, xs, c->x_at);
    ag_tensor *h0 = c->init ? leaf(a, dt, 3, ss, c->h0_at) : NULL;
    ag_tensor *c0 = c->init && !c->gru ? leaf(a, dt, 3, ss, c->c0_at) : NULL;
    ag_tensor *hn = NULL, *cn = NULL;
    ag_tensor *y = c->gru ? ag_nn_gru_forward(m, a, x, h0, &hn)
                          : ag_nn_lstm_forward(m, a, x, h0, c0, &hn, &cn);
    ck_assert_msg(y != NULL, "%s: %s", c->label, ag_last_error());
    int64_t ys[3] = {xs[0], xs[1], c->hidden};
    ck_assert_int_eq(ag_ndim(y), 3);
    ck_assert_msg(!memcmp(ag_shape(y), ys, sizeof ys), "%s: output shape",
                  c->label);
    ck_assert_msg(!memcmp(ag_shape(hn), ss, sizeof ss), "%s: h_n shape",
                  c->label);
    expect_fixture_close(c->label, "output", y, rnn_values + c->y_at, tol);
    expect_fixture_close(c->label, "h_n", hn, rnn_values + c->hn_at, tol);
    ag_tensor *loss =
        ag_add(a, cotangent_sum(a, y, 0), cotangent_sum(a, hn, 1));
    if (!c->gru) {
        ck_assert_msg(!memcmp(ag_shape(cn), ss, sizeof ss), "%s: c_n shape",
                      c->label);
        expect_fixture_close(c->label, "c_n", cn, rnn_values + c->cn_at, tol);
        loss = ag_add(a, loss, cotangent_sum(a, cn, 2));
    }
    ck_assert_msg(loss && ag_backward(loss) == 0, "%s: backward: %s", c->label,
                  ag_last_error());
    for (int k = 0; k < 4 * c->layers; k++)
        expect_fixture_close(c->label, c->names[k],
                             ag_grad(ag_params_tensor(state, k)),
                             rnn_values + c->grad_param_at[k], tol);
    expect_fixture_close(c->label, "input gradient", ag_grad(x),
                         rnn_values + c->grad_x_at, tol);
    if (h0)
        expect_fixture_close(c->label, "h0 gradient", ag_grad(h0),
                             rnn_values + c->grad_h0_at, tol);
    if (c0)
        expect_fixture_close(c->label, "c0 gradient", ag_grad(c0),
                             rnn_values + c->grad_c0_at, tol);
    ag_arena_free(a);
}

START_TEST(test_against_torch_f64)
{
    check_case(&rnn_cases[_i], AG_F64, 1e-10);
}
END_TEST

START_TEST(test_against_torch_f32)
{
    check_case(&rnn_cases[_i], AG_F32, 1e-4);
}
END_TEST

/* The value of `key` in a NULL-terminated key, value list. */
static const char *meta(const char *const *kv, const char *key)
{
    for (; kv[0]; kv += 2)
        if (!strcmp(kv[0], key)) return kv[1];
    ck_abort_msg("no metadata \"%s\"", key);
    return NULL;
}

/* Asserts that t agrees with the comma-separated decimals of `text`
 * (exactly as many) within 1e-5 relative. */
static void expect_text(const char *what, const ag_tensor *t, const char *text)
{
    int64_t i = 0;
    for (const char *s = text; *s; i++) {
        char *end;
        double want = strtod(s, &end);
        ck_assert_ptr_ne(end, s);
        ck_assert_int_lt(i, ag_numel(t));
        double got = tensor_at(t, i);
        ck_assert_msg(fabs(got - want) <= 1e-5 * fmax(1, fabs(want)),
                      "%s element %lld is %.9g, PyTorch %.9g", what,
                      (long long)i, got, want);
        s = *end == ',' ? end + 1 : end;
    }
    ck_assert_int_eq(i, ag_numel(t));
}

/* PyTorch's LSTM(3, 5, num_layers=2, batch_first=True) saved by
 * make_rnn_fixture.py: its state_dict loads (names, shapes and dtypes as
 * ours) and the outputs on its input are PyTorch's. */
START_TEST(test_torch_checkpoint)
{
    const char *path = AG_TEST_FIXTURES "/lstm_state.safetensors";
    ag_arena *a = ag_arena_new();
    ck_assert_ptr_nonnull(a);
    ag_rng rng = ag_rng_seed(3);
    ag_module *m = ag_nn_lstm(a, AG_F32, 3, 5, 2, true, &rng);
    ck_assert_ptr_nonnull(m);
    ag_params *state = ag_module_state(m);
    ag_tensor *w = ag_params_find(state, "weight_hh_l1");
    double before = tensor_at(w, 7);
    ck_assert_msg(ag_load_safetensors(path, state) == 0, "%s", ag_last_error());
    ck_assert(tensor_at(w, 7) != before);
    const char *const *kv = ag_load_safetensors_metadata(a, path);
    ck_assert_ptr_nonnull(kv);
    ag_tensor *x = ag_zeros(a, AG_F32, 3, (int64_t[]){2, 6, 3});
    ck_assert_ptr_nonnull(x);
    for (int64_t i = 0; i < ag_numel(x); i++) /* the fixture's formula, k 30 */
        tensor_set(x, i,
                   sin(1.3 * (double)i + 0.7 * 30 + 0.1) +
                       0.1 * cos(0.37 * (double)i + 30));
    ag_tensor *hn, *cn;
    ag_tensor *y = ag_nn_lstm_forward(m, a, x, NULL, NULL, &hn, &cn);
    ck_assert_msg(y != NULL, "%s", ag_last_error());
    expect_text("output", y, meta(kv, "output"));
    expect_text("h_n", hn, meta(kv, "h_n"));
    expect_text("c_n", cn, meta(kv, "c_n"));
    ag_arena_free(a);
}
END_TEST

static Suite *rnn_suite(void)
{
    Suite *s = suite_create("rnn");
    TCase *tc = tcase_create("torch");
    tcase_add_loop_test(tc, test_against_torch_f64, 0, RNN_CASES);
    tcase_add_loop_test(tc, test_against_torch_f32, 0, RNN_CASES);
    tcase_add_test(tc, test_torch_checkpoint);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(rnn_suite());
}
