/* test_mha.c: nn.MultiheadAttention against PyTorch (fixtures/mha_torch.h,
 * made by fixtures/make_mha_fixture.py): self- and cross-attention, with
 * and without biases, batch first or time first, causal, float and
 * key-padding masks, 1 to 4 heads. The weights are loaded by their
 * state_dict names through ag_module_state (which must be PyTorch's, in
 * order), then the output and the gradients of every parameter, the
 * inputs and the mask agree within 1e-10 in f64 and 1e-4 in f32. */
#include <autograd.h>
#include <autograd/nn.h>

#include "fixtures/mha_torch.h"
#include "support.h"
#include <check.h>
#include <string.h>

static void check_case(const mha_case *c, ag_dtype dt, double tol)
{
    ag_arena *a = ag_arena_new();
    ck_assert_ptr_nonnull(a);
    ag_rng rng = ag_rng_seed(1);
    ag_module *m = ag_nn_multihead_attention(a, dt, c->embed, c->heads, c->bias,
                                             c->batch_first, c->causal, &rng);
    ck_assert_msg(m != NULL, "%s: %s", c->label, ag_last_error());
    ag_params *state = ag_module_state(m);
    ck_assert_ptr_nonnull(state);
    /* exactly PyTorch's names, in state_dict order */
    int np = c->bias ? 4 : 2;
    ck_assert_int_eq(ag_params_count(state), np);
    for (int k = 0; k < np; k++) {
        ck_assert_str_eq(ag_params_name(state, k), c->names[k]);
        ag_tensor *p = ag_params_tensor(state, k);
        for (int64_t i = 0; i < ag_numel(p); i++)
            tensor_set(p, i, mha_values[c->param_at[k] + i]);
    }
    /* query (T), key and value (S): one tensor x in self-attention */
    ag_tensor *in[3];
    for (int j = 0; j < 3; j++) {
        int64_t len = j == 0 ? c->t : c->s;
        int64_t shape[3] = {c->batch_first ? c->n : len,
                            c->batch_first ? len : c->n, c->embed};
        in[j] = j && !c->cross
                    ? in[0]
                    : fixture_tensor(a, dt, 3, shape,
                                     mha_values + c->input_at[j], true);
    }
    ag_tensor *mask =
        c->mask_ndim
            ? fixture_tensor(a, dt, c->mask_ndim, c->mask_shape,
                             mha_values + c->mask_at, c->grad_mask_at >= 0)
            : NULL;
    ag_tensor *y =
        ag_nn_multihead_attention_forward(m, a, in[0], in[1], in[2], mask);
    ck_assert_msg(y != NULL, "%s: %s", c->label, ag_last_error());
    ck_assert_int_eq(ag_ndim(y), 3);
    ck_assert_msg(!memcmp(ag_shape(y), ag_shape(in[0]), 3 * sizeof(int64_t)),
                  "%s: output shape", c->label);
    expect_fixture_close(c->label, "output", y, mha_values + c->y_at, tol);
    ag_tensor *loss = cotangent_sum(a, y, 0);
    ck_assert_msg(loss && ag_backward(loss) == 0, "%s: backward: %s", c->label,
                  ag_last_error());
    for (int k = 0; k < np; k++)
        expect_fixture_close(c->label, c->names[k],
                             ag_grad(ag_params_tensor(state, k)),
                             mha_values + c->grad_param_at[k], tol);
    static const char *const what[3] = {"query gradient", "key gradient",
                                        "value gradient"};
    for (int j = 0; j < (c->cross ? 3 : 1); j++)
        expect_fixture_close(c->label, c->cross ? what[j] : "input gradient",
                             ag_grad(in[j]), mha_values + c->grad_input_at[j],
                             tol);
    if (c->grad_mask_at >= 0)
        expect_fixture_close(c->label, "mask gradient", ag_grad(mask),
                             mha_values + c->grad_mask_at, tol);
    ag_arena_free(a);
}

START_TEST(test_against_torch_f64)
{
    check_case(&mha_cases[_i], AG_F64, 1e-10);
}
END_TEST

START_TEST(test_against_torch_f32)
{
    check_case(&mha_cases[_i], AG_F32, 1e-4);
}
END_TEST

static Suite *mha_suite(void)
{
    Suite *s = suite_create("mha");
    TCase *tc = tcase_create("torch");
    tcase_add_loop_test(tc, test_against_torch_f64, 0, MHA_CASES);
    tcase_add_loop_test(tc, test_against_torch_f32, 0, MHA_CASES);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(mha_suite());
}
