/* gradcheck.c: the table of cases, several per op and shape (broadcasting,
 * batches, a tensor used twice), that covers every entry of the op table,
 * and the tests' checker: the library's ag_gradcheck over the full
 * Jacobian of each case. */
#include "gradcheck.h"
#include "support.h"

#include <math.h>
#include <string.h>

/* ---- the cases: one small function per expression ---- */

/* clang-format off */
static ag_tensor *f_add(ag_arena *a, ag_tensor **x) { return ag_add(a, x[0], x[1]); }
static ag_tensor *f_add_self(ag_arena *a, ag_tensor **x) { return ag_add(a, x[0], x[0]); }
static ag_tensor *f_sub(ag_arena *a, ag_tensor **x) { return ag_sub(a, x[0], x[1]); }
static ag_tensor *f_mul(ag_arena *a, ag_tensor **x) { return ag_mul(a, x[0], x[1]); }
static ag_tensor *f_mul_self(ag_arena *a, ag_tensor **x) { return ag_mul(a, x[0], x[0]); }
static ag_tensor *f_div(ag_arena *a, ag_tensor **x) { return ag_div(a, x[0], x[1]); }
static ag_tensor *f_neg(ag_arena *a, ag_tensor **x) { return ag_neg(a, x[0]); }
static ag_tensor *f_exp(ag_arena *a, ag_tensor **x) { return ag_exp(a, x[0]); }
static ag_tensor *f_log(ag_arena *a, ag_tensor **x) { return ag_log(a, x[0]); }
static ag_tensor *f_sqrt(ag_arena *a, ag_tensor **x) { return ag_sqrt(a, x[0]); }
static ag_tensor *f_abs(ag_arena *a, ag_tensor **x) { return ag_abs(a, x[0]); }
static ag_tensor *f_pow3(ag_arena *a, ag_tensor **x) { return ag_pow(a, x[0], 3.0); }
static ag_tensor *f_pow_half(ag_arena *a, ag_tensor **x) { return ag_pow(a, x[0], 0.5); }
static ag_tensor *f_pow_neg(ag_arena *a, ag_tensor **x) { return ag_pow(a, x[0], -1.5); }
static ag_tensor *f_scale(ag_arena *a, ag_tensor **x) { return ag_scale(a, x[0], 2.5); }
static ag_tensor *f_shift(ag_arena *a, ag_tensor **x) { return ag_shift(a, x[0], -1.25); }
static ag_tensor *f_matmul(ag_arena *a, ag_tensor **x) { return ag_matmul(a, x[0], x[1]); }
static ag_tensor *f_matmul_self(ag_arena *a, ag_tensor **x) { return ag_matmul(a, x[0], x[0]); }
static ag_tensor *f_sum0(ag_arena *a, ag_tensor **x) { return ag_sum(a, x[0], 0, false); }
static ag_tensor *f_sum_last_keep(ag_arena *a, ag_tensor **x) { return ag_sum(a, x[0], -1, true); }
static ag_tensor *f_sum_all(ag_arena *a, ag_tensor **x) { return ag_sum(a, x[0], AG_ALL, false); }
static ag_tensor *f_mean1(ag_arena *a, ag_tensor **x) { return ag_mean(a, x[0], 1, false); }
static ag_tensor *f_mean_all_keep(ag_arena *a, ag_tensor **x) { return ag_mean(a, x[0], AG_ALL, true); }
static ag_tensor *f_max1(ag_arena *a, ag_tensor **x) { return ag_max(a, x[0], 1, false); }
static ag_tensor *f_max0_keep(ag_arena *a, ag_tensor **x) { return ag_max(a, x[0], 0, true); }
static ag_tensor *f_max_all(ag_arena *a, ag_tensor **x) { return ag_max(a, x[0], AG_ALL, false); }
static ag_tensor *f_reshape(ag_arena *a, ag_tensor **x) { return ag_reshape(a, x[0], 2, (int64_t[]){3, 4}); }
static ag_tensor *f_reshape_infer(ag_arena *a, ag_tensor **x) { return ag_reshape(a, x[0], 2, (int64_t[]){-1, 4}); }
static ag_tensor *f_transpose01(ag_arena *a, ag_tensor **x) { return ag_transpose(a, x[0], 0, 1); }
static ag_tensor *f_transpose02(ag_arena *a, ag_tensor **x) { return ag_transpose(a, x[0], 0, -1); }
static ag_tensor *f_sigmoid(ag_arena *a, ag_tensor **x) { return ag_sigmoid(a, x[0]); }
static ag_tensor *f_tanh(ag_arena *a, ag_tensor **x) { return ag_tanh(a, x[0]); }
static ag_tensor *f_relu(ag_arena *a, ag_tensor **x) { return ag_relu(a, x[0]); }
static ag_tensor *f_softmax_last(ag_arena *a, ag_tensor **x) { return ag_softmax(a, x[0], -1); }
static ag_tensor *f_softmax0(ag_arena *a, ag_tensor **x) { return ag_softmax(a, x[0], 0); }
static ag_tensor *f_log_softmax1(ag_arena *a, ag_tensor **x) { return ag_log_softmax(a, x[0], 1); }
static ag_tensor *f_log_softmax_last(ag_arena *a, ag_tensor **x) { return ag_log_softmax(a, x[0], -1); }
static ag_tensor *f_mse(ag_arena *a, ag_tensor **x) { return ag_mse_loss(a, x[0], x[1]); }
static ag_tensor *f_gelu(ag_arena *a, ag_tensor **x) { return ag_gelu(a, x[0]); }
static ag_tensor *f_leaky_relu(ag_arena *a, ag_tensor **x) { return ag_leaky_relu(a, x[0], 0.1); }
static ag_tensor *f_leaky_relu_neg(ag_arena *a, ag_tensor **x) { return ag_leaky_relu(a, x[0], -0.5); }
static ag_tensor *f_linear(ag_arena *a, ag_tensor **x) { return ag_linear(a, x[0], x[1], x[2]); }
static ag_tensor *f_linear_no_bias(ag_arena *a, ag_tensor **x) { return ag_linear(a, x[0], x[1], NULL); }
static ag_tensor *f_linear_self(ag_arena *a, ag_tensor **x) { return ag_linear(a, x[0], x[0], NULL); }
static ag_tensor *f_sin(ag_arena *a, ag_tensor **x) { return ag_sin(a, x[0]); }
static ag_tensor *f_cos(ag_arena *a, ag_tensor **x) { return ag_cos(a, x[0]); }
static ag_tensor *f_sin_cos(ag_arena *a, ag_tensor **x) { return ag_mul(a, ag_sin(a, x[0]), ag_cos(a, x[0])); }
static ag_tensor *f_silu(ag_arena *a, ag_tensor **x) { return ag_silu(a, x[0]); }
static ag_tensor *f_softplus(ag_arena *a, ag_tensor **x) { return ag_softplus(a, x[0]); }
static ag_tensor *f_softplus_wide(ag_arena *a, ag_tensor **x) { return ag_softplus(a, ag_scale(a, x[0], 14)); }
static ag_tensor *f_clamp(ag_arena *a, ag_tensor **x) { return ag_clamp(a, x[0], -0.5, 1.0); }
static ag_tensor *f_clamp_low(ag_arena *a, ag_tensor **x) { return ag_clamp(a, x[0], 0.25, INFINITY); }
static ag_tensor *f_maximum(ag_arena *a, ag_tensor **x) { return ag_maximum(a, x[0], x[1]); }
static ag_tensor *f_maximum_self(ag_arena *a, ag_tensor **x) { return ag_maximum(a, x[0], x[0]); }
static ag_tensor *f_minimum(ag_arena *a, ag_tensor **x) { return ag_minimum(a, x[0], x[1]); }
static ag_tensor *f_minimum_self(ag_arena *a, ag_tensor **x) { return ag_mul(a, ag_minimum(a, x[0], ag_neg(a, x[0])), x[0]); }

/* clang-format on */

static ag_tensor *f_cross_entropy(ag_arena *a, ag_tensor **x)
{
    static const int32_t targets[4] = {1, 0, 4, 2};
    ag_tensor *t = ag_from_data(a, AG_I32, 1, (int64_t[]){4}, targets);
    return ag_softmax_cross_entropy(a, x[0], t);
}

/* Dropout with the same mask at every call: the generator is seeded
 * afresh. */
static ag_tensor *f_dropout(ag_arena *a, ag_tensor **x)
{
    ag_rng rng = ag_rng_seed(11);
    return ag_dropout(a, x[0], 0.3, &rng);
}

static ag_tensor *f_expand(ag_arena *a, ag_tensor **x)
{
    return ag_expand(a, x[0], 3, (int64_t[]){2, 3, 4});
}

static ag_tensor *f_expand_keep(ag_arena *a, ag_tensor **x)
{
    return ag_expand(a, x[0], 2, (int64_t[]){-1, 4});
}

static ag_tensor *f_cast(ag_arena *a, ag_tensor **x)
{
    return ag_cast(a, ag_mul(a, x[0], x[0]), ag_type(x[0]));
}

/* The gradient of sum(inner(x)) with respect to x[0], with a graph (grad
 * mode is on for it even when the checker evaluates f with it off). */
static ag_tensor *graph_gradient(ag_arena *a, ag_tensor **x, gc_fn inner)
{
    bool create_graph = ag_set_grad_enabled(true);
    ag_tensor *y = ag_sum(a, inner(a, x), AG_ALL, false), *g = NULL;
    if (ag_gradients(a, 1, &y, NULL, 1, &x[0], create_graph, &g)) g = NULL;
    ag_set_grad_enabled(create_graph);
    return g;
}

/* GELU's derivative as a function of x: the gradient of sum(GELU(x)),
 * which records the op gelu_derivative. */
static ag_tensor *f_gelu_derivative(ag_arena *a, ag_tensor **x)
{
    return graph_gradient(a, x, f_gelu);
}

/* Attention: (q, k, v) without a mask, plain or causal. */
static ag_tensor *f_attention(ag_arena *a, ag_tensor **x)
{
    return ag_scaled_dot_product_attention(a, x[0], x[1], x[2], NULL, false);
}

static ag_tensor *f_attention_causal(ag_arena *a, ag_tensor **x)
{
    return ag_scaled_dot_product_attention(a, x[0], x[1], x[2], NULL, true);
}

/* Self-attention, one tensor as q, k and v, causal. */
static ag_tensor *f_attention_self(ag_arena *a, ag_tensor **x)
{
    return ag_scaled_dot_product_attention(a, x[0], x[0], x[0], NULL, true);
}

/* (q, kv, mask): k = v, and a differentiable additive mask that
 * broadcasts. */
static ag_tensor *f_attention_mask(ag_arena *a, ag_tensor **x)
{
    return ag_scaled_dot_product_attention(a, x[0], x[1], x[1], x[2], false);
}

/* q (2,3,4), k (2,5,4), v (2,5,3) under a constant mask (3,5) with -inf
 * entries and a fully masked row (1), also causal. */
static ag_tensor *f_attention_inf_mask(ag_arena *a, ag_tensor **x)
{
    const double inf = INFINITY;
    const double m[15] = {0.5,  -inf, 0.25, 0, -1,   -inf, -inf, -inf,
                          -inf, -inf, 0,    1, -inf, 2,    0};
    ag_tensor *mask = ag_zeros(a, ag_type(x[0]), 2, (int64_t[]){3, 5});
    if (!mask) return NULL;
    for (int i = 0; i < 15; i++) tensor_set(mask, i, m[i]);
    return ag_scaled_dot_product_attention(a, x[0], x[1], x[2], mask, true);
}

/* x (n,c) tiled to (rows,c) (rows a multiple of n) plus a constant
 * 0.3 sin(i), so that every row differs: an input of many rows from a
 * few values. */
static ag_tensor *tiled(ag_arena *a, ag_tensor *x, int64_t rows)
{
    int64_t n = ag_shape(x)[0], c = ag_shape(x)[1];
    ag_tensor *t =
        ag_reshape(a, ag_expand(a, x, 3, (int64_t[]){rows / n, n, c}), 2,
                   (int64_t[]){rows, c});
    ag_tensor *wave = ag_zeros(a, ag_type(x), 2, (int64_t[]){rows, c});
    if (!wave) return NULL;
    for (int64_t i = 0; i < rows * c; i++)
        tensor_set(wave, i, 0.3 * sin((double)i));
    return ag_add(a, t, wave);
}

/* Attention over more rows than one block holds (64 queries, 256 keys):
 * q (70,2), k (260,2), v (260,1), tiled from the inputs. */
static ag_tensor *f_attention_blocks(ag_arena *a, ag_tensor **x)
{
    return ag_scaled_dot_product_attention(a, tiled(a, x[0], 70),
                                           tiled(a, x[1], 260),
                                           tiled(a, x[2], 260), NULL, false);
}

/* The same, causal, with T = S = 260. */
static ag_tensor *f_attention_blocks_causal(ag_arena *a, ag_tensor **x)
{
    return ag_scaled_dot_product_attention(a, tiled(a, x[0], 260),
                                           tiled(a, x[1], 260),
                                           tiled(a, x[2], 260), NULL, true);
}

/* Ops composed, with one tensor in four places: sigmoid(relu(W W + W) W). */
static ag_tensor *f_mlp(ag_arena *a, ag_tensor **x)
{
    ag_tensor *h = ag_relu(a, ag_add(a, ag_matmul(a, x[0], x[0]), x[0]));
    return ag_sigmoid(a, ag_matmul(a, h, x[0]));
}

/* ---- normalisation and losses ---- */

/* clang-format off */
static ag_tensor *f_layer_norm(ag_arena *a, ag_tensor **x) { return ag_layer_norm(a, x[0], 1, x[1], x[2], 1e-5); }
static ag_tensor *f_layer_norm2_w(ag_arena *a, ag_tensor **x) { return ag_layer_norm(a, x[0], 2, x[1], NULL, 1e-5); }
static ag_tensor *f_layer_norm_plain(ag_arena *a, ag_tensor **x) { return ag_layer_norm(a, x[0], 1, NULL, NULL, 0.1); }
static ag_tensor *f_layer_norm_b(ag_arena *a, ag_tensor **x) { return ag_layer_norm(a, x[0], 1, NULL, x[1], 1e-5); }
static ag_tensor *f_layer_norm_self(ag_arena *a, ag_tensor **x) { return ag_layer_norm(a, x[0], 1, x[0], x[0], 1e-5); }
static ag_tensor *f_rms_norm(ag_arena *a, ag_tensor **x) { return ag_rms_norm(a, x[0], 1, x[1], 1e-5); }
static ag_tensor *f_rms_norm2(ag_arena *a, ag_tensor **x) { return ag_rms_norm(a, x[0], 2, NULL, 1e-3); }
static ag_tensor *f_rms_norm_self(ag_arena *a, ag_tensor **x) { return ag_rms_norm(a, x[0], 1, x[0], 1e-5); }
static ag_tensor *f_bce(ag_arena *a, ag_tensor **x) { return ag_binary_cross_entropy_with_logits(a, x[0], x[1]); }
static ag_tensor *f_bce_self(ag_arena *a, ag_tensor **x) { return ag_binary_cross_entropy_with_logits(a, x[0], x[0]); }
static ag_tensor *f_l1(ag_arena *a, ag_tensor **x) { return ag_l1_loss(a, x[0], x[1]); }
static ag_tensor *f_l1_self(ag_arena *a, ag_tensor **x) { return ag_l1_loss(a, x[0], ag_neg(a, x[0])); }
static ag_tensor *f_huber(ag_arena *a, ag_tensor **x) { return ag_huber_loss(a, x[0], x[1], 1.0); }
static ag_tensor *f_huber_half(ag_arena *a, ag_tensor **x) { return ag_huber_loss(a, x[0], x[1], 0.5); }
static ag_tensor *f_huber_self(ag_arena *a, ag_tensor **x) { return ag_huber_loss(a, x[0], ag_scale(a, x[0], -0.5), 1.0); }
/* clang-format on */

/* Running statistics (C) for batch norm, made afresh at each call (the
 * training cases update them): mean 0.1 c, variance 0.5 + 0.25 c. */
static void running_stats(ag_arena *a, ag_tensor *x, ag_tensor **mean,
                          ag_tensor **var)
{
    int64_t c = ag_shape(x)[1];
    *mean = ag_zeros(a, ag_type(x), 1, &c);
    *var = ag_zeros(a, ag_type(x), 1, &c);
    for (int64_t i = 0; *mean && *var && i < c; i++) {
        tensor_set(*mean, i, 0.1 * (double)i);
        tensor_set(*var, i, 0.5 + 0.25 * (double)i);
    }
}

static ag_tensor *f_batch_norm(ag_arena *a, ag_tensor **x)
{
    ag_tensor *m, *v;
    running_stats(a, x[0], &m, &v);
    return ag_batch_norm(a, x[0], m, v, x[1], x[2], true, 0.1, 1e-5);
}

static ag_tensor *f_batch_norm_plain(ag_arena *a, ag_tensor **x)
{
    return ag_batch_norm(a, x[0], NULL, NULL, NULL, NULL, true, 0.1, 1e-5);
}

static ag_tensor *f_batch_norm_twice(ag_arena *a, ag_tensor **x)
{
    return ag_batch_norm(a, x[0], NULL, NULL, x[1], x[1], true, 0.1, 1e-5);
}

static ag_tensor *f_batch_norm_eval(ag_arena *a, ag_tensor **x)
{
    ag_tensor *m, *v;
    running_stats(a, x[0], &m, &v);
    return ag_batch_norm(a, x[0], m, v, x[1], x[2], false, 0.1, 1e-5);
}

static ag_tensor *f_batch_norm_eval_plain(ag_arena *a, ag_tensor **x)
{
    ag_tensor *m, *v;
    running_stats(a, x[0], &m, &v);
    return ag_batch_norm(a, x[0], m, v, NULL, NULL, false, 0.1, 1e-5);
}

static ag_tensor *f_batch_norm_eval_twice(ag_arena *a, ag_tensor **x)
{
    ag_tensor *m, *v;
    running_stats(a, x[0], &m, &v);
    return ag_batch_norm(a, x[0], m, v, x[1], x[1], false, 0.1, 1e-5);
}

/* Cross-entropy of logits (N,C,...) against targets made here: (4) or
 * (N,d...) of classes, some equal to the ignored class. */
static ag_tensor *cross_entropy_case(ag_arena *a, ag_tensor *logits,
                                     const int32_t *t,
                                     const ag_cross_entropy_options *o)
{
    int64_t shape[4];
    int nd = ag_ndim(logits) - 1;
    shape[0] = ag_shape(logits)[0];
    for (int d = 1; d < nd; d++) shape[d] = ag_shape(logits)[d + 1];
    return ag_cross_entropy(a, logits, ag_from_data(a, AG_I32, nd, shape, t),
                            o);
}

static ag_tensor *f_ce(ag_arena *a, ag_tensor **x)
{
    static const int32_t t[4] = {1, 0, 4, 2};
    return cross_entropy_case(a, x[0], t, NULL);
}

static ag_tensor *f_ce_ignore_smooth(ag_arena *a, ag_tensor **x)
{
    static const int32_t t[8] = {0, -100, 2, 1, 2, 2, -100, 0};
    ag_cross_entropy_options o = {-100, 0.15};
    return cross_entropy_case(a, x[0], t, &o);
}

static ag_tensor *f_ce_ignore_class(ag_arena *a, ag_tensor **x)
{
    static const int32_t t[3] = {2, 4, 0};
    ag_cross_entropy_options o = {2, 0.2};
    return cross_entropy_case(a, x[0], t, &o);
}

static ag_tensor *f_ce_smooth(ag_arena *a, ag_tensor **x)
{
    static const int32_t t[8] = {0, 1, 2, 1, 2, 0, 0, 1};
    ag_cross_entropy_options o = {-100, 0.1};
    return cross_entropy_case(a, x[0], t, &o);
}

/* Convolutions: every option, conv1d (recorded as conv2d on a height of 1),
 * a tensor used as input and weight. */
static ag_tensor *f_conv2d(ag_arena *a, ag_tensor **x)
{
    return ag_conv2d(a, x[0], x[1], x[2], NULL);
}

static ag_tensor *f_conv2d_stride_pad(ag_arena *a, ag_tensor **x)
{
    ag_conv_options o = {{2, 1}, {1, 2}, {1, 1}, 1};
    return ag_conv2d(a, x[0], x[1], NULL, &o);
}

static ag_tensor *f_conv2d_groups_dilation(ag_arena *a, ag_tensor **x)
{
    ag_conv_options o = {{1, 2}, {1, 0}, {2, 1}, 2};
    return ag_conv2d(a, x[0], x[1], x[2], &o);
}

static ag_tensor *f_conv2d_self(ag_arena *a, ag_tensor **x)
{
    ag_conv_options o = {{0}, {1, 1}, {0}, 0};
    return ag_conv2d(a, x[0], x[0], NULL, &o);
}

static ag_tensor *f_conv1d(ag_arena *a, ag_tensor **x)
{
    ag_conv_options o = {{2}, {1}, {2}, 0};
    return ag_conv1d(a, x[0], x[1], x[2], &o);
}

static ag_tensor *f_conv1d_groups(ag_arena *a, ag_tensor **x)
{
    ag_conv_options o = {{0}, {0}, {0}, 3};
    return ag_conv1d(a, x[0], x[1], NULL, &o);
}

static const ag_conv_options unfold_options = {{1, 2}, {1, 0}, {1, 2}, 0};

static ag_tensor *f_unfold(ag_arena *a, ag_tensor **x)
{
    return ag_unfold(a, x[0], 2, 2, &unfold_options);
}

static ag_tensor *f_fold(ag_arena *a, ag_tensor **x)
{
    return ag_fold(a, x[0], 4, 5, 2, 2, &unfold_options);
}

/* unfold of x times x's columns folded back: both ops, x used twice. */
static ag_tensor *f_unfold_fold_self(ag_arena *a, ag_tensor **x)
{
    ag_tensor *c = ag_unfold(a, x[0], 2, 2, &unfold_options);
    return ag_fold(a, ag_mul(a, c, c), 4, 5, 2, 2, &unfold_options);
}

static ag_tensor *f_max_pool(ag_arena *a, ag_tensor **x)
{
    return ag_max_pool2d(a, x[0], 2, 0, 0);
}

static ag_tensor *f_max_pool_pad(ag_arena *a, ag_tensor **x)
{
    return ag_max_pool2d(a, x[0], 3, 2, 1);
}

static ag_tensor *f_max_pool_self(ag_arena *a, ag_tensor **x)
{
    return ag_mul(a, x[0], ag_max_pool2d(a, x[0], 3, 1, 1));
}

static ag_tensor *f_avg_pool(ag_arena *a, ag_tensor **x)
{
    return ag_avg_pool2d(a, x[0], 2, 0, 0);
}

static ag_tensor *f_avg_pool_pad(ag_arena *a, ag_tensor **x)
{
    return ag_avg_pool2d(a, x[0], 3, 2, 1);
}

static ag_tensor *f_avg_pool_self(ag_arena *a, ag_tensor **x)
{
    return ag_mul(a, x[0], ag_avg_pool2d(a, x[0], 3, 1, 1));
}

/* clang-format off */
static ag_tensor *f_min1(ag_arena *a, ag_tensor **x) { return ag_min(a, x[0], 1, false); }
static ag_tensor *f_min_all_keep(ag_arena *a, ag_tensor **x) { return ag_min(a, x[0], AG_ALL, true); }
static ag_tensor *f_min_axes(ag_arena *a, ag_tensor **x) { return ag_min_axes(a, x[0], 2, (int[]){0, 2}, true); }
static ag_tensor *f_lse_last(ag_arena *a, ag_tensor **x) { return ag_logsumexp(a, x[0], -1, false); }
static ag_tensor *f_lse_all(ag_arena *a, ag_tensor **x) { return ag_logsumexp(a, x[0], AG_ALL, false); }
static ag_tensor *f_lse_axes(ag_arena *a, ag_tensor **x) { return ag_logsumexp_axes(a, x[0], 2, (int[]){2, 0}, false); }
static ag_tensor *f_lse_self(ag_arena *a, ag_tensor **x) { return ag_mul(a, ag_logsumexp(a, x[0], 0, true), x[0]); }
static ag_tensor *f_var1(ag_arena *a, ag_tensor **x) { return ag_var(a, x[0], 1, false, 1); }
static ag_tensor *f_var_all0(ag_arena *a, ag_tensor **x) { return ag_var(a, x[0], AG_ALL, false, 0); }
static ag_tensor *f_var_axes(ag_arena *a, ag_tensor **x) { return ag_var_axes(a, x[0], 2, (int[]){0, -1}, true, 2); }
static ag_tensor *f_var_self(ag_arena *a, ag_tensor **x) { return ag_var(a, ag_mul(a, x[0], x[0]), 0, true, 1); }
static ag_tensor *f_sum_axes(ag_arena *a, ag_tensor **x) { return ag_sum_axes(a, x[0], 2, (int[]){0, 2}, false); }
static ag_tensor *f_sum_axes_keep(ag_arena *a, ag_tensor **x) { return ag_sum_axes(a, x[0], 2, (int[]){-1, 1}, true); }
static ag_tensor *f_mean_axes(ag_arena *a, ag_tensor **x) { return ag_mean_axes(a, x[0], 2, (int[]){1, 3}, false); }
static ag_tensor *f_max_axes(ag_arena *a, ag_tensor **x) { return ag_max_axes(a, x[0], 3, (int[]){0, 1, 2}, false); }
static ag_tensor *f_max_axes2(ag_arena *a, ag_tensor **x) { return ag_max_axes(a, x[0], 2, (int[]){0, 2}, false); }
/* clang-format on */

/* clang-format off */
static ag_tensor *f_slice(ag_arena *a, ag_tensor **x) { return ag_slice(a, x[0], 1, 1, 5, 2); }
static ag_tensor *f_slice_neg(ag_arena *a, ag_tensor **x) { return ag_slice(a, x[0], -1, -3, INT64_MAX, 1); }
static ag_tensor *f_slice_self(ag_arena *a, ag_tensor **x) { return ag_mul(a, ag_slice(a, x[0], 0, 0, 2, 1), ag_slice(a, x[0], 0, -2, 100, 1)); }
static ag_tensor *f_concat2(ag_arena *a, ag_tensor **x) { return ag_concat(a, 2, x, 1); }
static ag_tensor *f_concat3(ag_arena *a, ag_tensor **x) { return ag_concat(a, 3, x, 0); }
static ag_tensor *f_concat_self(ag_arena *a, ag_tensor **x) { return ag_concat(a, 3, (ag_tensor *[]){x[0], ag_mul(a, x[0], x[0]), x[0]}, -1); }
static ag_tensor *f_stack(ag_arena *a, ag_tensor **x) { return ag_stack(a, 2, x, 1); }
static ag_tensor *f_stack_last(ag_arena *a, ag_tensor **x) { return ag_stack(a, 3, (ag_tensor *[]){x[0], x[1], x[0]}, -1); }
static ag_tensor *f_permute(ag_arena *a, ag_tensor **x) { return ag_permute(a, x[0], (int[]){2, 0, 1}); }
static ag_tensor *f_permute4(ag_arena *a, ag_tensor **x) { return ag_permute(a, x[0], (int[]){-1, 1, 0, 2}); }
static ag_tensor *f_max_axes_ties(ag_arena *a, ag_tensor **x) { return ag_max_axes(a, ag_concat(a, 2, (ag_tensor *[]){x[0], x[0]}, 0), 1, (int[]){0}, false); }
static ag_tensor *f_min_axes_ties(ag_arena *a, ag_tensor **x) { return ag_min_axes(a, ag_concat(a, 2, (ag_tensor *[]){x[0], x[0]}, 1), 2, (int[]){1, 0}, true); }
/* clang-format on */

static ag_tensor *i32(ag_arena *a, int ndim, const int64_t *shape,
                      const int32_t *v)
{
    return ag_from_data(a, AG_I32, ndim, shape, v);
}

/* index_select of x (3,4) along axis 1 at [3, 0, 3, 1, 3] (repeats) */
static ag_tensor *f_index_select(ag_arena *a, ag_tensor **x)
{
    static const int32_t v[5] = {3, 0, 3, 1, 3};
    return ag_index_select(a, x[0], 1, i32(a, 1, (int64_t[]){5}, v));
}

/* index_select of x (4,2,3) along axis 0 at [2, 2], times x's first two
 * rows */
static ag_tensor *f_index_select_self(ag_arena *a, ag_tensor **x)
{
    static const int32_t v[2] = {2, 2};
    ag_tensor *s = ag_index_select(a, x[0], 0, i32(a, 1, (int64_t[]){2}, v));
    return ag_mul(a, s, ag_slice(a, x[0], 0, 0, 2, 1));
}

/* embedding of weight (5,3) at ids (2,3), repeats included */
static ag_tensor *f_embedding(ag_arena *a, ag_tensor **x)
{
    static const int32_t v[6] = {4, 0, 2, 2, 1, 4};
    return ag_embedding(a, x[0], i32(a, 2, (int64_t[]){2, 3}, v));
}

/* gather of x (3,4) along axis 1 with index (3,2) and along axis 0 with
 * index (2,4) */
static ag_tensor *f_gather1(ag_arena *a, ag_tensor **x)
{
    static const int32_t v[6] = {3, 0, 1, 1, 2, 3};
    return ag_gather(a, x[0], 1, i32(a, 2, (int64_t[]){3, 2}, v));
}

static ag_tensor *f_gather0(ag_arena *a, ag_tensor **x)
{
    static const int32_t v[8] = {2, 0, 1, 2, 0, 0, 2, 1};
    return ag_gather(a, x[0], 0, i32(a, 2, (int64_t[]){2, 4}, v));
}

/* gather of x (2,3,2) along axis 2 with index (2,2,3), times itself */
static ag_tensor *f_gather_self(ag_arena *a, ag_tensor **x)
{
    static const int32_t v[12] = {1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 1, 0};
    ag_tensor *g = ag_gather(a, x[0], -1, i32(a, 3, (int64_t[]){2, 2, 3}, v));
    return ag_mul(a, g, g);
}

static ag_tensor *f_gather_squared(ag_arena *a, ag_tensor **x)
{
    return ag_pow(a, f_gather1(a, x), 2);
}

/* The gradient of sum(gather(x)^2) with a graph, whose last op is
 * gather_backward (gather's adjoint) */
static ag_tensor *f_gather_backward(ag_arena *a, ag_tensor **x)
{
    return graph_gradient(a, x, f_gather_squared);
}

/* where(cond, x, y) with cond (3,1) [1, 0, 1] against x and y of any
 * shapes that broadcast with it. */
static ag_tensor *f_where(ag_arena *a, ag_tensor **x)
{
    static const int32_t c[3] = {1, 0, 7};
    ag_tensor *cond = ag_from_data(a, AG_I32, 2, (int64_t[]){3, 1}, c);
    return ag_where(a, cond, x[0], x[1]);
}

/* where(cond, x, x * x) with cond (2,3) [[0, 1, 1], [1, 0, -2]]. */
static ag_tensor *f_where_self(ag_arena *a, ag_tensor **x)
{
    static const int32_t c[6] = {0, 1, 1, 1, 0, -2};
    ag_tensor *cond = ag_from_data(a, AG_I32, 2, (int64_t[]){2, 3}, c);
    return ag_where(a, cond, x[0], ag_mul(a, x[0], x[0]));
}

/* clang-format off */
#define ONE(op, label, nd, s0, v0, fn)                                         \
    {op, label, 1, {nd, 0}, {s0, {0}}, {v0, GC_ANY}, fn}
#define TWO(op, label, nd0, s0, v0, nd1, s1, v1, fn)                           \
    {op, label, 2, {nd0, nd1}, {s0, s1}, {v0, v1}, fn}
#define THREE(op, label, nd0, s0, nd1, s1, nd2, s2, fn)                      \
    {op, label, 3, {nd0, nd1, nd2}, {s0, s1, s2}, {GC_ANY, GC_ANY, GC_ANY}, fn}
#define S(...) {__VA_ARGS__}

const gc_case gc_cases[] = {
    TWO("add", "(3,4)+(3,4)", 2, S(3, 4), GC_ANY, 2, S(3, 4), GC_ANY, f_add),
    TWO("add", "(2,3)+(3)", 2, S(2, 3), GC_ANY, 1, S(3), GC_ANY, f_add),
    TWO("add", "(2,1,4)+(3,1)", 3, S(2, 1, 4), GC_ANY, 2, S(3, 1), GC_ANY, f_add),
    TWO("add", "()+(2,2)", 0, S(0), GC_ANY, 2, S(2, 2), GC_ANY, f_add),
    ONE("add", "x+x", 2, S(2, 3), GC_ANY, f_add_self),
    TWO("sub", "(3,4)-(3,4)", 2, S(3, 4), GC_ANY, 2, S(3, 4), GC_ANY, f_sub),
    TWO("sub", "(4,1)-(1,5)", 2, S(4, 1), GC_ANY, 2, S(1, 5), GC_ANY, f_sub),
    TWO("mul", "(3,4)*(3,4)", 2, S(3, 4), GC_ANY, 2, S(3, 4), GC_ANY, f_mul),
    TWO("mul", "(2,3)*(2,1)", 2, S(2, 3), GC_ANY, 2, S(2, 1), GC_ANY, f_mul),
    ONE("mul", "x*x", 2, S(3, 2), GC_ANY, f_mul_self),
    TWO("div", "(3,4)/(3,4)", 2, S(3, 4), GC_ANY, 2, S(3, 4), GC_POSITIVE, f_div),
    TWO("div", "(3,1)/(1,4)", 2, S(3, 1), GC_ANY, 2, S(1, 4), GC_POSITIVE, f_div),
    ONE("neg", "(2,3)", 2, S(2, 3), GC_ANY, f_neg),
    ONE("exp", "(2,3)", 2, S(2, 3), GC_ANY, f_exp),
    ONE("log", "(2,3)", 2, S(2, 3), GC_POSITIVE, f_log),
    ONE("sqrt", "(2,3)", 2, S(2, 3), GC_POSITIVE, f_sqrt),
    ONE("abs", "(2,3)", 2, S(2, 3), GC_NONZERO, f_abs),
    ONE("pow", "x^3", 2, S(2, 3), GC_ANY, f_pow3),
    ONE("pow", "x^0.5", 1, S(5), GC_POSITIVE, f_pow_half),
    ONE("pow", "x^-1.5", 3, S(2, 1, 2), GC_POSITIVE, f_pow_neg),
    ONE("scale", "2.5x", 2, S(2, 3), GC_ANY, f_scale),
    ONE("shift", "x-1.25", 2, S(2, 3), GC_ANY, f_shift),
    TWO("matmul", "(3,4)@(4,5)", 2, S(3, 4), GC_ANY, 2, S(4, 5), GC_ANY, f_matmul),
    TWO("matmul", "(2,3,4)@(2,4,5)", 3, S(2, 3, 4), GC_ANY, 3, S(2, 4, 5), GC_ANY, f_matmul),
    TWO("matmul", "(2,3,4)@(4,5)", 3, S(2, 3, 4), GC_ANY, 2, S(4, 5), GC_ANY, f_matmul),
    TWO("matmul", "(3,1,2,4)@(2,4,3)", 4, S(3, 1, 2, 4), GC_ANY, 3, S(2, 4, 3), GC_ANY, f_matmul),
    ONE("matmul", "x@x", 2, S(3, 3), GC_ANY, f_matmul_self),
    ONE("sum", "axis 0 of (3,4)", 2, S(3, 4), GC_ANY, f_sum0),
    ONE("sum", "axis -1 keepdim of (2,3,4)", 3, S(2, 3, 4), GC_ANY, f_sum_last_keep),
    ONE("sum", "all of (2,3)", 2, S(2, 3), GC_ANY, f_sum_all),
    ONE("mean", "axis 1 of (2,3,4)", 3, S(2, 3, 4), GC_ANY, f_mean1),
    ONE("mean", "all keepdim of (3,2)", 2, S(3, 2), GC_ANY, f_mean_all_keep),
    ONE("max", "axis 1 of (3,4)", 2, S(3, 4), GC_ANY, f_max1),
    ONE("max", "axis 0 keepdim of (3,2,2)", 3, S(3, 2, 2), GC_ANY, f_max0_keep),
    ONE("max", "all of (2,3)", 2, S(2, 3), GC_ANY, f_max_all),
    ONE("reshape", "(2,6)->(3,4)", 2, S(2, 6), GC_ANY, f_reshape),
    ONE("reshape", "(2,3,4)->(-1,4)", 3, S(2, 3, 4), GC_ANY, f_reshape_infer),
    ONE("transpose", "(2,3) 0<->1", 2, S(2, 3), GC_ANY, f_transpose01),
    ONE("transpose", "(2,3,4) 0<->2", 3, S(2, 3, 4), GC_ANY, f_transpose02),
    ONE("sigmoid", "(2,3)", 2, S(2, 3), GC_ANY, f_sigmoid),
    ONE("tanh", "(2,3)", 2, S(2, 3), GC_ANY, f_tanh),
    ONE("relu", "(3,4)", 2, S(3, 4), GC_NONZERO, f_relu),
    ONE("softmax", "axis -1 of (3,5)", 2, S(3, 5), GC_ANY, f_softmax_last),
    ONE("softmax", "axis 0 of (4,3)", 2, S(4, 3), GC_ANY, f_softmax0),
    ONE("log_softmax", "axis 1 of (2,4,3)", 3, S(2, 4, 3), GC_ANY, f_log_softmax1),
    ONE("log_softmax", "axis -1 of (3,5)", 2, S(3, 5), GC_ANY, f_log_softmax_last),
    ONE("softmax_cross_entropy", "(4,5)", 2, S(4, 5), GC_ANY, f_cross_entropy),
    TWO("mse_loss", "(3,4),(3,4)", 2, S(3, 4), GC_ANY, 2, S(3, 4), GC_ANY, f_mse),
    ONE("matmul", "sigmoid(relu(W W + W) W)", 2, S(3, 3), GC_ANY, f_mlp),
    ONE("gelu", "(3,4)", 2, S(3, 4), GC_ANY, f_gelu),
    ONE("leaky_relu", "slope 0.1 (3,4)", 2, S(3, 4), GC_NONZERO, f_leaky_relu),
    ONE("leaky_relu", "slope -0.5 (5)", 1, S(5), GC_NONZERO, f_leaky_relu_neg),
    ONE("dropout", "p 0.3 (4,5)", 2, S(4, 5), GC_ANY, f_dropout),
    THREE("linear", "(3,4) W(5,4) b(5)", 2, S(3, 4), 2, S(5, 4), 1, S(5), f_linear),
    THREE("linear", "(2,3,4) W(2,4) b(2)", 3, S(2, 3, 4), 2, S(2, 4), 1, S(2), f_linear),
    THREE("linear", "(4) W(3,4) b(3)", 1, S(4), 2, S(3, 4), 1, S(3), f_linear),
    TWO("linear_no_bias", "(3,4) W(2,4)", 2, S(3, 4), GC_ANY, 2, S(2, 4), GC_ANY, f_linear_no_bias),
    ONE("linear_no_bias", "x x^T", 2, S(3, 3), GC_ANY, f_linear_self),
    ONE("expand", "(3,1)->(2,3,4)", 2, S(3, 1), GC_ANY, f_expand),
    ONE("expand", "(1,4)->(-1,4)", 2, S(1, 4), GC_ANY, f_expand_keep),
    ONE("cast", "x*x to its own dtype", 2, S(2, 3), GC_ANY, f_cast),
    ONE("gelu_derivative", "d/dx sum gelu(x)", 2, S(3, 4), GC_ANY, f_gelu_derivative),
    THREE("layer_norm", "(3,4) w(4) b(4)", 2, S(3, 4), 1, S(4), 1, S(4), f_layer_norm),
    TWO("layer_norm", "(2,3,4) over 2 axes w(3,4)", 3, S(2, 3, 4), GC_ANY, 2, S(3, 4), GC_ANY, f_layer_norm2_w),
    ONE("layer_norm", "(2,5) no affine eps 0.1", 2, S(2, 5), GC_ANY, f_layer_norm_plain),
    TWO("layer_norm", "(3,4) b(4) only", 2, S(3, 4), GC_ANY, 1, S(4), GC_ANY, f_layer_norm_b),
    ONE("layer_norm", "(5) x as weight and bias", 1, S(5), GC_ANY, f_layer_norm_self),
    TWO("rms_norm", "(3,4) w(4)", 2, S(3, 4), GC_ANY, 1, S(4), GC_ANY, f_rms_norm),
    ONE("rms_norm", "(2,3,4) over 2 axes", 3, S(2, 3, 4), GC_ANY, f_rms_norm2),
    ONE("rms_norm", "(5) x as weight", 1, S(5), GC_ANY, f_rms_norm_self),
    THREE("batch_norm", "(4,3) w(3) b(3) running", 2, S(4, 3), 1, S(3), 1, S(3), f_batch_norm),
    ONE("batch_norm", "(2,3,4) no affine", 3, S(2, 3, 4), GC_ANY, f_batch_norm_plain),
    TWO("batch_norm", "(3,2,2,2) w as weight and bias", 4, S(3, 2, 2, 2), GC_ANY, 1, S(2), GC_ANY, f_batch_norm_twice),
    THREE("batch_norm_eval", "(4,3) w(3) b(3)", 2, S(4, 3), 1, S(3), 1, S(3), f_batch_norm_eval),
    ONE("batch_norm_eval", "(2,3,4) no affine", 3, S(2, 3, 4), GC_ANY, f_batch_norm_eval_plain),
    TWO("batch_norm_eval", "(2,2,3) w as weight and bias", 3, S(2, 2, 3), GC_ANY, 1, S(2), GC_ANY, f_batch_norm_eval_twice),
    ONE("cross_entropy", "(4,5)", 2, S(4, 5), GC_ANY, f_ce),
    ONE("cross_entropy", "(2,3,4) ignore -100 smoothing 0.15", 3, S(2, 3, 4), GC_ANY, f_ce_ignore_smooth),
    ONE("cross_entropy", "(3,5) ignore class 2 smoothing 0.2", 2, S(3, 5), GC_ANY, f_ce_ignore_class),
    ONE("cross_entropy", "(2,3,2,2) smoothing 0.1", 4, S(2, 3, 2, 2), GC_ANY, f_ce_smooth),
    TWO("binary_cross_entropy_with_logits", "(3,4),(3,4)", 2, S(3, 4), GC_ANY, 2, S(3, 4), GC_ANY, f_bce),
    ONE("binary_cross_entropy_with_logits", "x against itself (2,3,2)", 3, S(2, 3, 2), GC_ANY, f_bce_self),
    TWO("l1_loss", "(3,4),(3,4)", 2, S(3, 4), GC_ANY, 2, S(3, 4), GC_ANY, f_l1),
    ONE("l1_loss", "x against -x (5)", 1, S(5), GC_NONZERO, f_l1_self),
    TWO("huber_loss", "delta 1 (3,4),(3,4)", 2, S(3, 4), GC_ANY, 2, S(3, 4), GC_ANY, f_huber),
    TWO("huber_loss", "delta 0.5 (2,5),(2,5)", 2, S(2, 5), GC_ANY, 2, S(2, 5), GC_ANY, f_huber_half),
    ONE("huber_loss", "x against -x/2 (6)", 1, S(6), GC_ANY, f_huber_self),
    THREE("conv2d", "(2,2,4,4) W(3,2,3,3) b(3)", 4, S(2, 2, 4, 4), 4, S(3, 2, 3, 3), 1, S(3), f_conv2d),
    TWO("conv2d", "(1,2,5,4) W(2,2,3,2) stride (2,1) pad (1,2)", 4, S(1, 2, 5, 4), GC_ANY, 4, S(2, 2, 3, 2), GC_ANY, f_conv2d_stride_pad),
    THREE("conv2d", "(1,4,4,4) W(4,2,2,2) groups 2 dilation (2,1)", 4, S(1, 4, 4, 4), 4, S(4, 2, 2, 2), 1, S(4), f_conv2d_groups_dilation),
    ONE("conv2d", "conv2d(x, x) pad 1", 4, S(2, 2, 3, 3), GC_ANY, f_conv2d_self),
    THREE("conv2d", "conv1d (2,3,7) W(4,3,3) stride 2 pad 1 dilation 2", 3, S(2, 3, 7), 3, S(4, 3, 3), 1, S(4), f_conv1d),
    TWO("conv2d", "conv1d (1,3,6) W(3,1,2) groups 3", 3, S(1, 3, 6), GC_ANY, 3, S(3, 1, 2), GC_ANY, f_conv1d_groups),
    ONE("unfold", "(1,2,4,5) k 2 stride (1,2) pad (1,0) dilation (1,2)", 4, S(1, 2, 4, 5), GC_ANY, f_unfold),
    ONE("fold", "(1,4,10) to (4,5)", 3, S(1, 4, 10), GC_ANY, f_fold),
    ONE("fold", "fold(unfold(x)^2)", 4, S(1, 2, 4, 5), GC_ANY, f_unfold_fold_self),
    ONE("max_pool2d", "(1,2,5,5) k 2", 4, S(1, 2, 5, 5), GC_ANY, f_max_pool),
    ONE("max_pool2d", "(1,2,6,5) k 3 stride 2 pad 1", 4, S(1, 2, 6, 5), GC_ANY, f_max_pool_pad),
    ONE("max_pool2d", "x * max_pool(x) k 3 stride 1 pad 1", 4, S(1, 2, 4, 4), GC_ANY, f_max_pool_self),
    ONE("avg_pool2d", "(1,2,5,5) k 2", 4, S(1, 2, 5, 5), GC_ANY, f_avg_pool),
    ONE("avg_pool2d", "(1,2,6,5) k 3 stride 2 pad 1", 4, S(1, 2, 6, 5), GC_ANY, f_avg_pool_pad),
    ONE("avg_pool2d", "x * avg_pool(x) k 3 stride 1 pad 1", 4, S(1, 2, 4, 4), GC_ANY, f_avg_pool_self),
    ONE("sin", "(2,3)", 2, S(2, 3), GC_ANY, f_sin),
    ONE("cos", "(3,2)", 2, S(3, 2), GC_ANY, f_cos),
    ONE("sin", "sin(x) cos(x)", 1, S(5), GC_ANY, f_sin_cos),
    ONE("silu", "(3,4)", 2, S(3, 4), GC_ANY, f_silu),
    ONE("softplus", "(3,4)", 2, S(3, 4), GC_ANY, f_softplus),
    ONE("softplus", "14x, across the threshold", 1, S(8), GC_ANY, f_softplus_wide),
    ONE("clamp", "[-0.5, 1] (3,4)", 2, S(3, 4), GC_ANY, f_clamp),
    ONE("clamp", "[0.25, inf) (2,3)", 2, S(2, 3), GC_ANY, f_clamp_low),
    TWO("maximum", "(3,4),(3,4)", 2, S(3, 4), GC_ANY, 2, S(3, 4), GC_ANY, f_maximum),
    TWO("maximum", "(2,1,3),(4,1)", 3, S(2, 1, 3), GC_ANY, 2, S(4, 1), GC_ANY, f_maximum),
    ONE("maximum", "x,x (ties)", 2, S(2, 3), GC_ANY, f_maximum_self),
    TWO("minimum", "(3),(2,3)", 1, S(3), GC_ANY, 2, S(2, 3), GC_ANY, f_minimum),
    ONE("minimum", "min(x,-x) x", 2, S(2, 3), GC_NONZERO, f_minimum_self),
    TWO("where", "(3,1)?(4):(3,4)", 1, S(4), GC_ANY, 2, S(3, 4), GC_ANY, f_where),
    TWO("where", "(3,1)?(2,1,1):(1,4)", 3, S(2, 1, 1), GC_ANY, 2, S(1, 4), GC_ANY, f_where),
    ONE("where", "x or x*x", 2, S(2, 3), GC_ANY, f_where_self),
    ONE("min", "axis 1 of (3,4)", 2, S(3, 4), GC_ANY, f_min1),
    ONE("min", "all keepdim of (2,3)", 2, S(2, 3), GC_ANY, f_min_all_keep),
    ONE("min", "axes (0,2) keepdim of (2,3,4)", 3, S(2, 3, 4), GC_ANY, f_min_axes),
    ONE("logsumexp", "axis -1 of (3,5)", 2, S(3, 5), GC_ANY, f_lse_last),
    ONE("logsumexp", "all of (2,3)", 2, S(2, 3), GC_ANY, f_lse_all),
    ONE("logsumexp", "axes (2,0) of (2,3,4)", 3, S(2, 3, 4), GC_ANY, f_lse_axes),
    ONE("logsumexp", "lse(x, 0) * x", 2, S(3, 2), GC_ANY, f_lse_self),
    ONE("var", "axis 1 correction 1 of (3,4)", 2, S(3, 4), GC_ANY, f_var1),
    ONE("var", "all correction 0 of (2,3)", 2, S(2, 3), GC_ANY, f_var_all0),
    ONE("var", "axes (0,-1) keepdim correction 2 of (2,3,4)", 3, S(2, 3, 4), GC_ANY, f_var_axes),
    ONE("var", "var(x*x, 0)", 2, S(4, 2), GC_ANY, f_var_self),
    ONE("sum", "axes (0,2) of (2,3,4)", 3, S(2, 3, 4), GC_ANY, f_sum_axes),
    ONE("sum", "axes (-1,1) keepdim of (2,3,4)", 3, S(2, 3, 4), GC_ANY, f_sum_axes_keep),
    ONE("mean", "axes (1,3) of (2,3,2,2)", 4, S(2, 3, 2, 2), GC_ANY, f_mean_axes),
    ONE("max", "axes (0,1,2) of (2,3,2)", 3, S(2, 3, 2), GC_ANY, f_max_axes),
    ONE("max", "axes (0,2) of (3,2,4)", 3, S(3, 2, 4), GC_ANY, f_max_axes2),
    ONE("max", "axes (0) of concat(x, x): ties split", 2, S(2, 3), GC_ANY, f_max_axes_ties),
    ONE("min", "axes (1,0) of concat(x, x): ties split", 2, S(2, 3), GC_ANY, f_min_axes_ties),
    ONE("slice", "axis 1 1:5:2 of (3,6)", 2, S(3, 6), GC_ANY, f_slice),
    ONE("slice", "axis -1 -3: of (2,2,4)", 3, S(2, 2, 4), GC_ANY, f_slice_neg),
    ONE("slice", "x[:2] * x[-2:100]", 2, S(3, 2), GC_ANY, f_slice_self),
    TWO("concat", "(2,3),(2,1) axis 1", 2, S(2, 3), GC_ANY, 2, S(2, 1), GC_ANY, f_concat2),
    THREE("concat", "(1,2),(3,2),(2,2) axis 0", 2, S(1, 2), 2, S(3, 2), 2, S(2, 2), f_concat3),
    ONE("concat", "x, x*x, x axis -1", 2, S(2, 2), GC_ANY, f_concat_self),
    TWO("concat", "stack (2,3),(2,3) axis 1", 2, S(2, 3), GC_ANY, 2, S(2, 3), GC_ANY, f_stack),
    TWO("concat", "stack x,y,x axis -1", 1, S(3), GC_ANY, 1, S(3), GC_ANY, f_stack_last),
    ONE("permute", "(2,3,4) to (2,0,1)", 3, S(2, 3, 4), GC_ANY, f_permute),
    ONE("permute", "(2,3,1,2) to (-1,1,0,2)", 4, S(2, 3, 1, 2), GC_ANY, f_permute4),
    ONE("index_select", "axis 1 of (3,4) at 3,0,3,1,3", 2, S(3, 4), GC_ANY, f_index_select),
    ONE("index_select", "x[[2,2]] * x[:2] of (4,2,3)", 3, S(4, 2, 3), GC_ANY, f_index_select_self),
    ONE("index_select", "embedding (5,3) at (2,3)", 2, S(5, 3), GC_ANY, f_embedding),
    ONE("gather", "axis 1 of (3,4) by (3,2)", 2, S(3, 4), GC_ANY, f_gather1),
    ONE("gather", "axis 0 of (3,4) by (2,4)", 2, S(3, 4), GC_ANY, f_gather0),
    ONE("gather", "g*g, axis -1 of (2,3,2)", 3, S(2, 3, 2), GC_ANY, f_gather_self),
    ONE("gather_backward", "d/dx sum gather(x)^2", 2, S(3, 4), GC_ANY, f_gather_backward),
    THREE("scaled_dot_product_attention", "q(2,3,4) k(2,5,4) v(2,5,3)", 3, S(2, 3, 4), 3, S(2, 5, 4), 3, S(2, 5, 3), f_attention),
    THREE("scaled_dot_product_attention", "causal q(3,4) k(3,4) v(3,2)", 2, S(3, 4), 2, S(3, 4), 2, S(3, 2), f_attention_causal),
    THREE("scaled_dot_product_attention", "causal T>S q(1,5,3) k(1,3,3) v(3,2)", 3, S(1, 5, 3), 3, S(1, 3, 3), 2, S(3, 2), f_attention_causal),
    THREE("scaled_dot_product_attention", "causal T<S q(2,3,2) k(2,5,2) v(2,5,3)", 3, S(2, 3, 2), 3, S(2, 5, 2), 3, S(2, 5, 3), f_attention_causal),
    THREE("scaled_dot_product_attention", "batch q(2,1,3,4) k(1,2,5,4) v(2,5,3)", 4, S(2, 1, 3, 4), 4, S(1, 2, 5, 4), 3, S(2, 5, 3), f_attention),
    THREE("scaled_dot_product_attention", "mask(3,5) q(2,3,4) k=v(2,5,4)", 3, S(2, 3, 4), 3, S(2, 5, 4), 2, S(3, 5), f_attention_mask),
    THREE("scaled_dot_product_attention", "mask(2,1,5) q(2,2,3,4) k=v(2,1,5,4)", 4, S(2, 2, 3, 4), 4, S(2, 1, 5, 4), 3, S(2, 1, 5), f_attention_mask),
    THREE("scaled_dot_product_attention", "-inf mask, masked row, causal", 3, S(2, 3, 4), 3, S(2, 5, 4), 3, S(2, 5, 3), f_attention_inf_mask),
    ONE("scaled_dot_product_attention", "causal self x=q=k=v (2,4,3)", 3, S(2, 4, 3), GC_ANY, f_attention_self),
    THREE("scaled_dot_product_attention", "blocks q(70,2) k(260,2) v(260,1) from (5,2) (13,2) (13,1)", 2, S(5, 2), 2, S(13, 2), 2, S(13, 1), f_attention_blocks),
    THREE("scaled_dot_product_attention", "blocks causal q(260,2) k(260,2) v(260,1) from (13,2) (13,2) (13,1)", 2, S(13, 2), 2, S(13, 2), 2, S(13, 1), f_attention_blocks_causal),
};

/* clang-format on */

const int gc_case_count = (int)(sizeof gc_cases / sizeof gc_cases[0]);

/* ---- making inputs ---- */

static double draw(gc_values kind, ag_rng *rng)
{
    double u = ag_rng_uniform(rng);
    switch (kind) {
    case GC_POSITIVE:
        return 0.5 + 1.5 * u;
    case GC_NONZERO: {
        double magnitude = 0.1 + 1.9 * u;
        return ag_rng_uniform(rng) < 0.5 ? -magnitude : magnitude;
    }
    default:
        return -2.0 + 4.0 * u;
    }
}

int gc_make_inputs(const gc_case *c, ag_arena *a, ag_dtype dt, uint64_t seed,
                   ag_tensor **inputs)
{
    ag_rng rng = ag_rng_seed(seed);
    for (int i = 0; i < c->n_inputs; i++) {
        ag_tensor *t = ag_zeros(a, dt, c->ndim[i], c->shape[i]);
        if (!t) return -1;
        for (int64_t j = 0; j < ag_numel(t); j++)
            tensor_set(t, j, draw(c->values[i], &rng));
        ag_requires_grad(t, true);
        inputs[i] = t;
    }
    return 0;
}

/* ---- the checker: a thin use of ag_gradcheck ---- */

/* Calls the case function fn (handed through user) on ag_gradcheck's
 * copies of the inputs. */
typedef struct {
    gc_fn fn;
} gc_call;

static ag_tensor *call_case(ag_arena *a, ag_tensor *const *inputs, int n,
                            void *user)
{
    ag_tensor *x[GC_MAX_INPUTS];
    memcpy(x, inputs, (size_t)n * sizeof *x);
    return ((const gc_call *)user)->fn(a, x);
}

int gc_check(gc_fn fn, int n_inputs, ag_tensor **inputs, double eps,
             gc_report *report)
{
    ag_gradcheck_options opt = ag_gradcheck_defaults();
    opt.eps = eps;
    /* atol = rtol: the worst entry is the one with the largest
     * |a - n| / (1 + |n|), which is within a factor 2 of gc_report's
     * scaled error; pass or fail is left to the caller's tolerance. */
    opt.atol = opt.rtol = GC_TOLERANCE;
    ag_gradcheck_report r;
    gc_call call = {fn};
    int status = ag_gradcheck(call_case, n_inputs, inputs, &call, &opt, &r);
    if (status < 0) return -1;
    double scale = fmax(1.0, fmax(fabs(r.analytic), fabs(r.numeric)));
    double error = r.abs_error / scale;
    *report = (gc_report){isnan(error) ? INFINITY : error, r.input, r.element,
                          r.analytic, r.numeric};
    return 0;
}
