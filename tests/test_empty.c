/* test_empty.c: every op on tensors with a dimension of size 0, against
 * what PyTorch does with the same expression (fixtures/empty_torch.h, made
 * by fixtures/make_empty_fixture.py). Where PyTorch computes a result, the
 * op must give the same shape and values, record itself, and its backward
 * must give every input a gradient of the input's shape and dtype with
 * PyTorch's values (zeros for a broadcast input that met no element, the
 * row count for the bias of a layer without inputs, ...). Where PyTorch
 * raises an error, the op must refuse too, with a message of its own
 * (below, with each case). In f64 and in f32.
 *
 * The rules that come out of it, as PyTorch's:
 * - elementwise ops, broadcasting, reshape, transpose, softmax and
 *   log_softmax keep empty shapes (softmax over an empty axis too);
 * - a product with an inner size 0 is all zeros, and a Linear layer with
 *   no input features gives its bias;
 * - the sum of no elements is 0, their mean NaN;
 * - max and argmax over an empty axis (or max of no elements) are errors;
 * - reshape cannot infer a -1 next to a 0.
 * Where we differ: PyTorch's cross-entropy, MSE, L1, Huber and binary
 * cross-entropy of no elements are NaN (a mean over nothing); our losses
 * refuse them, as autograd.h says, since a loss of no examples is a mistake
 * that a NaN would only hide.
 *
 * Every op of the op table needs a case here, or test_every_op_has_a_case
 * fails; every fixture case needs its C case. */
#include <autograd.h>

#include "fixtures/empty_torch.h"
#include "support.h"
#include <check.h>
#include <math.h>
#include <string.h>

typedef ag_tensor *(*zfn)(ag_arena *a, ag_tensor **x);

/* clang-format off */
static ag_tensor *z_add(ag_arena *a, ag_tensor **x) { return ag_add(a, x[0], x[1]); }
static ag_tensor *z_sub(ag_arena *a, ag_tensor **x) { return ag_sub(a, x[0], x[1]); }
static ag_tensor *z_mul(ag_arena *a, ag_tensor **x) { return ag_mul(a, x[0], x[1]); }
static ag_tensor *z_div(ag_arena *a, ag_tensor **x) { return ag_div(a, x[0], x[1]); }
static ag_tensor *z_neg(ag_arena *a, ag_tensor **x) { return ag_neg(a, x[0]); }
static ag_tensor *z_exp(ag_arena *a, ag_tensor **x) { return ag_exp(a, x[0]); }
static ag_tensor *z_log(ag_arena *a, ag_tensor **x) { return ag_log(a, x[0]); }
static ag_tensor *z_sqrt(ag_arena *a, ag_tensor **x) { return ag_sqrt(a, x[0]); }
static ag_tensor *z_abs(ag_arena *a, ag_tensor **x) { return ag_abs(a, x[0]); }
static ag_tensor *z_pow3(ag_arena *a, ag_tensor **x) { return ag_pow(a, x[0], 3); }
static ag_tensor *z_scale(ag_arena *a, ag_tensor **x) { return ag_scale(a, x[0], 2.5); }
static ag_tensor *z_shift(ag_arena *a, ag_tensor **x) { return ag_shift(a, x[0], -1.25); }
static ag_tensor *z_sigmoid(ag_arena *a, ag_tensor **x) { return ag_sigmoid(a, x[0]); }
static ag_tensor *z_tanh(ag_arena *a, ag_tensor **x) { return ag_tanh(a, x[0]); }
static ag_tensor *z_relu(ag_arena *a, ag_tensor **x) { return ag_relu(a, x[0]); }
static ag_tensor *z_gelu(ag_arena *a, ag_tensor **x) { return ag_gelu(a, x[0]); }
static ag_tensor *z_leaky(ag_arena *a, ag_tensor **x) { return ag_leaky_relu(a, x[0], 0.1); }
static ag_tensor *z_matmul(ag_arena *a, ag_tensor **x) { return ag_matmul(a, x[0], x[1]); }
static ag_tensor *z_sum0(ag_arena *a, ag_tensor **x) { return ag_sum(a, x[0], 0, false); }
static ag_tensor *z_sum1(ag_arena *a, ag_tensor **x) { return ag_sum(a, x[0], 1, false); }
static ag_tensor *z_sum_all(ag_arena *a, ag_tensor **x) { return ag_sum(a, x[0], AG_ALL, false); }
static ag_tensor *z_sum0_keep(ag_arena *a, ag_tensor **x) { return ag_sum(a, x[0], 0, true); }
static ag_tensor *z_mean0(ag_arena *a, ag_tensor **x) { return ag_mean(a, x[0], 0, false); }
static ag_tensor *z_mean1(ag_arena *a, ag_tensor **x) { return ag_mean(a, x[0], 1, false); }
static ag_tensor *z_mean_all(ag_arena *a, ag_tensor **x) { return ag_mean(a, x[0], AG_ALL, false); }
static ag_tensor *z_max0(ag_arena *a, ag_tensor **x) { return ag_max(a, x[0], 0, false); }
static ag_tensor *z_max1(ag_arena *a, ag_tensor **x) { return ag_max(a, x[0], 1, false); }
static ag_tensor *z_max_all(ag_arena *a, ag_tensor **x) { return ag_max(a, x[0], AG_ALL, false); }
static ag_tensor *z_argmax0(ag_arena *a, ag_tensor **x) { return ag_argmax(a, x[0], 0); }
static ag_tensor *z_argmax1(ag_arena *a, ag_tensor **x) { return ag_argmax(a, x[0], 1); }
static ag_tensor *z_reshape_3_0(ag_arena *a, ag_tensor **x) { return ag_reshape(a, x[0], 2, (int64_t[]){3, 0}); }
static ag_tensor *z_reshape_any_3(ag_arena *a, ag_tensor **x) { return ag_reshape(a, x[0], 2, (int64_t[]){-1, 3}); }
static ag_tensor *z_reshape_any_0(ag_arena *a, ag_tensor **x) { return ag_reshape(a, x[0], 2, (int64_t[]){-1, 0}); }
static ag_tensor *z_transpose01(ag_arena *a, ag_tensor **x) { return ag_transpose(a, x[0], 0, 1); }
static ag_tensor *z_transpose02(ag_arena *a, ag_tensor **x) { return ag_transpose(a, x[0], 0, 2); }
static ag_tensor *z_softmax0(ag_arena *a, ag_tensor **x) { return ag_softmax(a, x[0], 0); }
static ag_tensor *z_softmax1(ag_arena *a, ag_tensor **x) { return ag_softmax(a, x[0], 1); }
static ag_tensor *z_log_softmax1(ag_arena *a, ag_tensor **x) { return ag_log_softmax(a, x[0], 1); }
static ag_tensor *z_log_softmax_last(ag_arena *a, ag_tensor **x) { return ag_log_softmax(a, x[0], -1); }
static ag_tensor *z_mse(ag_arena *a, ag_tensor **x) { return ag_mse_loss(a, x[0], x[1]); }
static ag_tensor *z_linear(ag_arena *a, ag_tensor **x) { return ag_linear(a, x[0], x[1], x[2]); }
static ag_tensor *z_linear_no_bias(ag_arena *a, ag_tensor **x) { return ag_linear(a, x[0], x[1], NULL); }
/* clang-format on */

/* Dropout from a generator seeded afresh (it draws nothing here). */
static ag_tensor *z_dropout(ag_arena *a, ag_tensor **x)
{
    ag_rng rng = ag_rng_seed(1);
    return ag_dropout(a, x[0], 0.3, &rng);
}

static ag_tensor *z_expand_2_0_3(ag_arena *a, ag_tensor **x)
{
    return ag_expand(a, x[0], 3, (int64_t[]){2, 0, 3});
}

static ag_tensor *z_expand_0_3(ag_arena *a, ag_tensor **x)
{
    return ag_expand(a, x[0], 2, (int64_t[]){0, -1});
}

static ag_tensor *z_cast(ag_arena *a, ag_tensor **x)
{
    return ag_cast(a, x[0], ag_type(x[0]));
}

/* GELU's derivative, as the graph of ag_gradients records it. */
static ag_tensor *z_gelu_derivative(ag_arena *a, ag_tensor **x)
{
    ag_tensor *y = ag_sum(a, ag_gelu(a, x[0]), AG_ALL, false), *g = NULL;
    if (ag_gradients(a, 1, &y, NULL, 1, &x[0], true, &g)) return NULL;
    return g;
}

/* Cross-entropy against class 0 for every row (as the fixture). */
static ag_tensor *z_cross_entropy(ag_arena *a, ag_tensor **x)
{
    int64_t n = ag_shape(x[0])[0];
    return ag_softmax_cross_entropy(a, x[0], ag_zeros(a, AG_I32, 1, &n));
}

/* Normalisation: batch norm with running statistics 0 and 1 in eval (as
 * the fixture), without any in training. */
static ag_tensor *z_layer_norm(ag_arena *a, ag_tensor **x)
{
    return ag_layer_norm(a, x[0], 1, x[1], x[2], 1e-5);
}

static ag_tensor *z_rms_norm(ag_arena *a, ag_tensor **x)
{
    return ag_rms_norm(a, x[0], 1, x[1], 1e-5);
}

static ag_tensor *z_batch_norm(ag_arena *a, ag_tensor **x)
{
    return ag_batch_norm(a, x[0], NULL, NULL, x[1], x[2], true, 0.1, 1e-5);
}

static ag_tensor *z_batch_norm_eval(ag_arena *a, ag_tensor **x)
{
    int64_t c = ag_shape(x[0])[1];
    ag_tensor *m = ag_zeros(a, ag_type(x[0]), 1, &c);
    ag_tensor *v = ag_ones(a, ag_type(x[0]), 1, &c);
    return ag_batch_norm(a, x[0], m, v, x[1], x[2], false, 0.1, 1e-5);
}

/* Cross-entropy against class 0 everywhere, targets (N, d...). */
static ag_tensor *z_cross_entropy_nd(ag_arena *a, ag_tensor **x)
{
    int64_t shape[AG_MAX_DIMS];
    int nd = ag_ndim(x[0]) - 1;
    shape[0] = ag_shape(x[0])[0];
    for (int d = 1; d < nd; d++) shape[d] = ag_shape(x[0])[d + 1];
    return ag_cross_entropy(a, x[0], ag_zeros(a, AG_I32, nd, shape), NULL);
}

/* clang-format off */
static ag_tensor *z_bce(ag_arena *a, ag_tensor **x) { return ag_binary_cross_entropy_with_logits(a, x[0], x[1]); }
static ag_tensor *z_l1(ag_arena *a, ag_tensor **x) { return ag_l1_loss(a, x[0], x[1]); }
static ag_tensor *z_huber(ag_arena *a, ag_tensor **x) { return ag_huber_loss(a, x[0], x[1], 1.0); }
/* clang-format on */
/* Convolutions and pools with their default options (as the fixture). */
static ag_tensor *z_conv2d(ag_arena *a, ag_tensor **x)
{
    return ag_conv2d(a, x[0], x[1], x[2], NULL);
}

static ag_tensor *z_conv2d_no_bias(ag_arena *a, ag_tensor **x)
{
    return ag_conv2d(a, x[0], x[1], NULL, NULL);
}

static ag_tensor *z_conv1d(ag_arena *a, ag_tensor **x)
{
    return ag_conv1d(a, x[0], x[1], x[2], NULL);
}

static ag_tensor *z_unfold(ag_arena *a, ag_tensor **x)
{
    return ag_unfold(a, x[0], 2, 2, NULL);
}

static ag_tensor *z_fold(ag_arena *a, ag_tensor **x)
{
    return ag_fold(a, x[0], 3, 3, 2, 2, NULL);
}

static ag_tensor *z_max_pool(ag_arena *a, ag_tensor **x)
{
    return ag_max_pool2d(a, x[0], 2, 0, 0);
}

static ag_tensor *z_max_pool_padded(ag_arena *a, ag_tensor **x)
{
    return ag_max_pool2d(a, x[0], 2, 0, 1);
}

static ag_tensor *z_avg_pool(ag_arena *a, ag_tensor **x)
{
    return ag_avg_pool2d(a, x[0], 2, 0, 0);
}

/* clang-format off */
static ag_tensor *z_sin(ag_arena *a, ag_tensor **x) { return ag_sin(a, x[0]); }
static ag_tensor *z_cos(ag_arena *a, ag_tensor **x) { return ag_cos(a, x[0]); }
static ag_tensor *z_silu(ag_arena *a, ag_tensor **x) { return ag_silu(a, x[0]); }
static ag_tensor *z_softplus(ag_arena *a, ag_tensor **x) { return ag_softplus(a, x[0]); }
static ag_tensor *z_clamp(ag_arena *a, ag_tensor **x) { return ag_clamp(a, x[0], -0.5, 1); }
static ag_tensor *z_maximum(ag_arena *a, ag_tensor **x) { return ag_maximum(a, x[0], x[1]); }
static ag_tensor *z_minimum(ag_arena *a, ag_tensor **x) { return ag_minimum(a, x[0], x[1]); }
/* clang-format on */

/* clang-format off */
static ag_tensor *z_min0(ag_arena *a, ag_tensor **x) { return ag_min(a, x[0], 0, false); }
static ag_tensor *z_min1(ag_arena *a, ag_tensor **x) { return ag_min(a, x[0], 1, false); }
static ag_tensor *z_lse0(ag_arena *a, ag_tensor **x) { return ag_logsumexp(a, x[0], 0, false); }
static ag_tensor *z_var0(ag_arena *a, ag_tensor **x) { return ag_var(a, x[0], 0, false, 1); }
static ag_tensor *z_var1(ag_arena *a, ag_tensor **x) { return ag_var(a, x[0], 1, true, 0); }
static ag_tensor *z_sum_axes(ag_arena *a, ag_tensor **x) { return ag_sum_axes(a, x[0], 2, (int[]){0, 2}, false); }
static ag_tensor *z_max_axes(ag_arena *a, ag_tensor **x) { return ag_max_axes(a, x[0], 2, (int[]){0, 2}, false); }
/* clang-format on */

/* clang-format off */
static ag_tensor *z_slice(ag_arena *a, ag_tensor **x) { return ag_slice(a, x[0], 1, 1, 3, 1); }
static ag_tensor *z_slice_empty(ag_arena *a, ag_tensor **x) { return ag_slice(a, x[0], 1, 2, 1, 1); }
static ag_tensor *z_concat(ag_arena *a, ag_tensor **x) { return ag_concat(a, 2, x, 1); }
static ag_tensor *z_stack(ag_arena *a, ag_tensor **x) { return ag_stack(a, 2, x, 0); }
static ag_tensor *z_permute(ag_arena *a, ag_tensor **x) { return ag_permute(a, x[0], (int[]){2, 0, 1}); }
/* clang-format on */

/* index_select of (2,3) at no index, and of (0,3) along axis 1 at [2, 0] */
static ag_tensor *z_index_select_none(ag_arena *a, ag_tensor **x)
{
    return ag_index_select(a, x[0], 1, ag_zeros(a, AG_I32, 1, (int64_t[]){0}));
}

static ag_tensor *z_index_select(ag_arena *a, ag_tensor **x)
{
    static const int32_t v[2] = {2, 0};
    return ag_index_select(a, x[0], 1,
                           ag_from_data(a, AG_I32, 1, (int64_t[]){2}, v));
}

/* gather of (2,3) along axis 1 by a (2,0) index; embedding of (4,3) at
 * ids (0,2); gather_backward: the gradient of sum(gather(x)^2) then */
static ag_tensor *z_gather(ag_arena *a, ag_tensor **x)
{
    return ag_gather(a, x[0], 1, ag_zeros(a, AG_I32, 2, (int64_t[]){2, 0}));
}

static ag_tensor *z_embedding(ag_arena *a, ag_tensor **x)
{
    return ag_embedding(a, x[0], ag_zeros(a, AG_I32, 2, (int64_t[]){0, 2}));
}

static ag_tensor *z_gather_backward(ag_arena *a, ag_tensor **x)
{
    ag_tensor *y = ag_sum(a, ag_pow(a, z_gather(a, x), 2), AG_ALL, false);
    ag_tensor *g = NULL;
    if (ag_gradients(a, 1, &y, NULL, 1, &x[0], true, &g)) return NULL;
    return g;
}

/* where with cond 0 everywhere, of x[0]'s shape (as the fixture). */
static ag_tensor *z_where(ag_arena *a, ag_tensor **x)
{
    ag_tensor *cond = ag_zeros(a, AG_I32, ag_ndim(x[0]), ag_shape(x[0]));
    return ag_where(a, cond, x[0], x[1]);
}

static ag_tensor *z_attention(ag_arena *a, ag_tensor **x)
{
    return ag_scaled_dot_product_attention(a, x[0], x[1], x[2], NULL, false);
}

static ag_tensor *z_attention_causal(ag_arena *a, ag_tensor **x)
{
    return ag_scaled_dot_product_attention(a, x[0], x[1], x[2], NULL, true);
}

typedef struct {
    const char *op;    /* the op-table name it covers ("argmax": none) */
    const char *label; /* the fixture case */
    zfn fn;
    const char *refusal; /* NULL: computes as PyTorch does; otherwise our
                            error message holds this */
} zcase;

static const zcase cases[] = {
    {"add", "add (0,3)+(0,3)", z_add, NULL},
    {"add", "add (0,3)+(3)", z_add, NULL},
    {"add", "add (1,3)+(0,1)", z_add, NULL},
    {"sub", "sub (2,0)-(2,1)", z_sub, NULL},
    {"mul", "mul (0,3)*(1,3)", z_mul, NULL},
    {"div", "div (2,1,0)/(3,1)", z_div, NULL},
    {"neg", "neg (0,3)", z_neg, NULL},
    {"exp", "exp (0,3)", z_exp, NULL},
    {"log", "log (3,0)", z_log, NULL},
    {"sqrt", "sqrt (0,3)", z_sqrt, NULL},
    {"abs", "abs (2,0,4)", z_abs, NULL},
    {"pow", "pow x^3 (0,3)", z_pow3, NULL},
    {"scale", "scale 2.5x (0,3)", z_scale, NULL},
    {"shift", "shift x-1.25 (0)", z_shift, NULL},
    {"sigmoid", "sigmoid (0,3)", z_sigmoid, NULL},
    {"tanh", "tanh (0,3)", z_tanh, NULL},
    {"relu", "relu (3,0)", z_relu, NULL},
    {"gelu", "gelu (0,3)", z_gelu, NULL},
    {"leaky_relu", "leaky_relu 0.1 (0,3)", z_leaky, NULL},
    {"dropout", "dropout 0.3 (0,3)", z_dropout, NULL},
    {"matmul", "matmul (0,4)@(4,5)", z_matmul, NULL},
    {"matmul", "matmul (3,0)@(0,5)", z_matmul, NULL},
    {"matmul", "matmul (3,4)@(4,0)", z_matmul, NULL},
    {"matmul", "matmul (0,2,3)@(3,4)", z_matmul, NULL},
    {"matmul", "matmul (2,3,0)@(2,0,4)", z_matmul, NULL},
    {"sum", "sum (0,3) axis 0", z_sum0, NULL},
    {"sum", "sum (0,3) axis 1", z_sum1, NULL},
    {"sum", "sum (0,3) all", z_sum_all, NULL},
    {"sum", "sum (0,3) axis 0 keepdim", z_sum0_keep, NULL},
    {"mean", "mean (0,3) axis 0", z_mean0, NULL},
    {"mean", "mean (0,3) axis 1", z_mean1, NULL},
    {"mean", "mean (0,3) all", z_mean_all, NULL},
    {"max", "max (0,3) axis 0", z_max0,
     "ag_max: cannot take the maximum of an empty axis (0) of shape (0,3)"},
    {"max", "max (0,3) axis 1", z_max1, NULL},
    {"max", "max (0,3) all", z_max_all,
     "ag_max: cannot take the maximum of no elements, shape (0,3)"},
    {"argmax", "argmax (0,3) axis 0", z_argmax0,
     "ag_argmax: axis 0 of shape (0,3) is empty"},
    {"argmax", "argmax (0,3) axis 1", z_argmax1, NULL},
    {"reshape", "reshape (0,3)->(3,0)", z_reshape_3_0, NULL},
    {"reshape", "reshape (0,3)->(-1,3)", z_reshape_any_3, NULL},
    {"reshape", "reshape (0,3)->(-1,0)", z_reshape_any_0,
     "ag_reshape: cannot infer the -1 in (-1,0)"},
    {"transpose", "transpose (0,3) 0<->1", z_transpose01, NULL},
    {"transpose", "transpose (2,0,4) 0<->2", z_transpose02, NULL},
    {"softmax", "softmax (0,3) axis 0", z_softmax0, NULL},
    {"softmax", "softmax (3,0) axis 1", z_softmax1, NULL},
    {"log_softmax", "log_softmax (0,3) axis 1", z_log_softmax1, NULL},
    {"log_softmax", "log_softmax (3,0) axis -1", z_log_softmax_last, NULL},
    /* PyTorch: NaN, the mean over no rows; refused here (see the top). */
    {"softmax_cross_entropy", "softmax_cross_entropy (0,5)", z_cross_entropy,
     "ag_softmax_cross_entropy: empty batch: logits (0,5)"},
    /* No class exists for the targets to name (PyTorch: out of bounds). */
    {"softmax_cross_entropy", "softmax_cross_entropy (3,0)", z_cross_entropy,
     "ag_softmax_cross_entropy: target 0 at index 0 is out of [0, 0)"},
    /* PyTorch: NaN, the mean over no elements; refused here. */
    {"mse_loss", "mse_loss (0,3)", z_mse,
     "ag_mse_loss: pred (0,3) has no elements"},
    {"linear", "linear (0,4) W(5,4) b(5)", z_linear, NULL},
    {"linear", "linear (3,0) W(5,0) b(5)", z_linear, NULL},
    {"linear", "linear (3,4) W(0,4) b(0)", z_linear, NULL},
    {"linear_no_bias", "linear_no_bias (0,4) W(5,4)", z_linear_no_bias, NULL},
    {"linear_no_bias", "linear_no_bias (3,0) W(5,0)", z_linear_no_bias, NULL},
    {"expand", "expand (0,1)->(2,0,3)", z_expand_2_0_3, NULL},
    {"expand", "expand (1,3)->(0,3)", z_expand_0_3, NULL},
    {"cast", "cast (0,3)", z_cast, NULL},
    {"gelu_derivative", "gelu_derivative (0,3)", z_gelu_derivative, NULL},
    {"layer_norm", "layer_norm (0,3) w(3) b(3)", z_layer_norm, NULL},
    {"layer_norm", "layer_norm (3,0) w(0) b(0)", z_layer_norm, NULL},
    {"rms_norm", "rms_norm (0,3) w(3)", z_rms_norm, NULL},
    {"batch_norm", "batch_norm (0,3) w(3) b(3)", z_batch_norm, NULL},
    {"batch_norm", "batch_norm (2,3,0) w(3) b(3)", z_batch_norm, NULL},
    {"batch_norm_eval", "batch_norm_eval (0,3) w(3) b(3)", z_batch_norm_eval,
     NULL},
    /* PyTorch: NaN, the mean over no targets; refused here (see the top). */
    {"cross_entropy", "cross_entropy (0,5)", z_cross_entropy_nd,
     "ag_cross_entropy: no targets to average over: logits (0,5)"},
    {"cross_entropy", "cross_entropy (2,5,0)", z_cross_entropy_nd,
     "ag_cross_entropy: no targets to average over: logits (2,5,0)"},
    {"binary_cross_entropy_with_logits",
     "binary_cross_entropy_with_logits (0,3)", z_bce,
     "ag_binary_cross_entropy_with_logits: pred (0,3) has no elements"},
    {"l1_loss", "l1_loss (0,3)", z_l1,
     "ag_l1_loss: pred (0,3) has no elements"},
    {"huber_loss", "huber_loss (0,3)", z_huber,
     "ag_huber_loss: pred (0,3) has no elements"},
    {"conv2d", "conv2d (0,3,4,4) W(2,3,2,2) b(2)", z_conv2d, NULL},
    /* PyTorch too refuses a convolution without filters. */
    {"conv2d", "conv2d (1,3,4,4) W(0,3,2,2)", z_conv2d_no_bias,
     "ag_conv2d: weight (0,3,2,2) has no output channels"},
    {"conv2d", "conv2d conv1d (0,3,5) W(2,3,2) b(2)", z_conv1d, NULL},
    {"unfold", "unfold (0,2,3,3) k 2", z_unfold, NULL},
    {"fold", "fold (0,8,4) to (3,3) k 2", z_fold, NULL},
    {"max_pool2d", "max_pool2d (0,2,4,4) k 2", z_max_pool, NULL},
    /* PyTorch too refuses pools of no channels. */
    {"avg_pool2d", "avg_pool2d (2,0,4,4) k 2", z_avg_pool,
     "ag_avg_pool2d: x (2,0,4,4) has an empty channel, height or width "
     "dimension"},
    /* Nor planes of no width, whose padded windows (found by fuzz_ops) hold
     * no element of x to take the maximum of. */
    {"max_pool2d", "max_pool2d (2,1,3,0) k 2 padding 1", z_max_pool_padded,
     "ag_max_pool2d: x (2,1,3,0) has an empty channel, height or width "
     "dimension"},
    {"sin", "sin (0,3)", z_sin, NULL},
    {"cos", "cos (3,0)", z_cos, NULL},
    {"silu", "silu (0,3)", z_silu, NULL},
    {"softplus", "softplus (2,0)", z_softplus, NULL},
    {"clamp", "clamp [-0.5,1] (0,3)", z_clamp, NULL},
    {"maximum", "maximum (0,3),(3)", z_maximum, NULL},
    {"minimum", "minimum (2,0),(2,1)", z_minimum, NULL},
    {"where", "where (0,3)?(0,3):(3)", z_where, NULL},
    {"min", "min (0,3) axis 0", z_min0,
     "ag_min: cannot take the minimum of an empty axis (0) of shape (0,3)"},
    {"min", "min (0,3) axis 1", z_min1, NULL},
    {"logsumexp", "logsumexp (0,3) axis 0", z_lse0, NULL},
    {"var", "var (0,3) axis 0", z_var0, NULL},
    {"var", "var (0,3) axis 1 keepdim correction 0", z_var1, NULL},
    {"sum", "sum (0,3,2) axes (0,2)", z_sum_axes, NULL},
    {"max", "max (2,0,3) axes (0,2)", z_max_axes, NULL},
    {"slice", "slice (0,4) axis 1 1:3", z_slice, NULL},
    {"slice", "slice (2,3) axis 1 2:1", z_slice_empty, NULL},
    {"concat", "concat (2,0),(2,3) axis 1", z_concat, NULL},
    {"concat", "concat stack (0,3),(0,3) axis 0", z_stack, NULL},
    {"permute", "permute (2,0,3) to (2,0,1)", z_permute, NULL},
    {"index_select", "index_select (2,3) axis 1 at none", z_index_select_none,
     NULL},
    {"index_select", "index_select (0,3) axis 1 at 2,0", z_index_select, NULL},
    {"index_select", "index_select embedding (4,3) at (0,2)", z_embedding,
     NULL},
    {"gather", "gather (2,3) axis 1 by (2,0)", z_gather, NULL},
    {"gather_backward", "gather_backward (2,3) by (2,0)", z_gather_backward,
     NULL},
    {"scaled_dot_product_attention",
     "scaled_dot_product_attention q(2,0,4) k(2,3,4) v(2,3,5)", z_attention,
     NULL},
    /* no keys: the rows are fully masked, zeros (PyTorch: zeros too) */
    {"scaled_dot_product_attention",
     "scaled_dot_product_attention q(2,3,4) k(2,0,4) v(2,0,5)", z_attention,
     NULL},
    {"scaled_dot_product_attention",
     "scaled_dot_product_attention causal q(0,4) k(3,4) v(3,2)",
     z_attention_causal, NULL},
    {"scaled_dot_product_attention",
     "scaled_dot_product_attention q(2,3,4) k(2,3,4) v(2,3,0)", z_attention,
     NULL},
    {"scaled_dot_product_attention",
     "scaled_dot_product_attention q(0,3,4) k(1,3,4) v(1,3,2)", z_attention,
     NULL},
    /* PyTorch: NaN, 0 / sqrt(0) scores; refused here (autograd.h) */
    {"scaled_dot_product_attention",
     "scaled_dot_product_attention q(2,3,0) k(2,3,0) v(2,3,2)", z_attention,
     "ag_scaled_dot_product_attention: q (2,3,0) has E = 0"},
};

#define CASES ((int)(sizeof cases / sizeof cases[0]))

/* The arena of the running test, made and freed by a checked fixture (so
 * that a failed test leaks nothing under Valgrind). */
static ag_arena *arena;

static void setup(void)
{
    arena = ag_arena_new();
    ck_assert(arena != NULL);
}

static void teardown(void)
{
    ag_arena_free(arena);
}

/* The fixture case labelled `label`, or NULL. */
static const empty_torch_case *torch_case(const char *label)
{
    for (int i = 0; i < EMPTY_TORCH_CASES; i++)
        if (strcmp(empty_torch[i].label, label) == 0) return &empty_torch[i];
    return NULL;
}

/* Whether got is want, within tol relative to max(1, |want|); NaN is NaN,
 * and 0 is exactly 0 (every 0 here is an empty sum, never a rounding). */
static bool same_value(double got, double want, double tol)
{
    if (isnan(want)) return isnan(got);
    if (isinf(want)) return got == want;
    if (want == 0) return got == 0;
    return fabs(got - want) <= tol * fmax(1, fabs(want));
}

/* Asserts that t has the given shape and the n values of the fixture from
 * `at` on. */
static void expect_tensor(const char *what, const char *label,
                          const ag_tensor *t, int ndim, const int64_t *shape,
                          int at, int n, double tol)
{
    ck_assert_msg(ag_ndim(t) == ndim &&
                      memcmp(ag_shape(t), shape, (size_t)ndim * 8) == 0,
                  "%s: %s has %d dimensions, not those of PyTorch", label, what,
                  ag_ndim(t));
    ck_assert_msg(ag_numel(t) == n, "%s: %s has %lld elements, PyTorch %d",
                  label, what, (long long)ag_numel(t), n);
    for (int i = 0; i < n; i++) {
        double got = tensor_at(t, i), want = empty_torch_values[at + i];
        if (!same_value(got, want, tol))
            ck_abort_msg("%s: %s element %d is %.17g, PyTorch %.17g", label,
                         what, i, got, want);
    }
}

/* The inputs of fixture case f in the test's arena, as dtype dt, requiring
 * gradients. */
static void make_inputs(const empty_torch_case *f, ag_dtype dt, ag_tensor **x)
{
    for (int k = 0; k < f->n_inputs; k++) {
        x[k] = ag_zeros(arena, dt, f->in_ndim[k], f->in_shape[k]);
        ck_assert_msg(x[k] != NULL, "%s: input %d: %s", f->label, k,
                      ag_last_error());
        for (int64_t i = 0; i < ag_numel(x[k]); i++)
            tensor_set(x[k], i, 0.25 * (double)(i + 1) + k);
        ag_requires_grad(x[k], true);
    }
}

/* Case c in dtype dt: refused as PyTorch refuses (or as documented), or
 * PyTorch's result and gradients. */
static void check_case(const zcase *c, ag_dtype dt)
{
    const empty_torch_case *f = torch_case(c->label);
    ck_assert_msg(f != NULL, "no fixture case \"%s\"", c->label);
    double tol = dt == AG_F64 ? 1e-12 : 1e-6;
    ag_tensor *x[3] = {NULL, NULL, NULL};
    make_inputs(f, dt, x);
    ag_clear_error();
    ag_tensor *y = c->fn(arena, x);
    if (!f->ok || c->refusal) {
        ck_assert_msg(c->refusal != NULL,
                      "%s: PyTorch refuses it (\"%s\"), so must we", c->label,
                      f->error);
        ck_assert_msg(y == NULL, "%s: computed; expected \"%s\"", c->label,
                      c->refusal);
        ck_assert_msg(strstr(ag_last_error(), c->refusal),
                      "%s: message \"%s\", expected \"%s\"", c->label,
                      ag_last_error(), c->refusal);
        return;
    }
    ck_assert_msg(y != NULL, "%s: %s", c->label, ag_last_error());
    ck_assert_int_eq(ag_type(y), strcmp(c->op, "argmax") ? dt : AG_I32);
    expect_tensor("the result", c->label, y, f->ndim, f->shape, f->out_at,
                  f->out_n, tol);
    if (ag_type(y) != AG_I32) {
        ck_assert_msg(ag_is_requires_grad(y), "%s: not recorded", c->label);
        ag_tensor *loss = ag_sum(arena, y, AG_ALL, false);
        ck_assert_msg(loss && ag_backward(loss) == 0, "%s: backward: %s",
                      c->label, ag_last_error());
        for (int k = 0; k < f->n_inputs; k++) {
            ag_tensor *g = ag_grad(x[k]);
            ck_assert_msg(g != NULL, "%s: input %d has no gradient", c->label,
                          k);
            ck_assert_int_eq(ag_type(g), dt);
            expect_tensor("a gradient", c->label, g, f->in_ndim[k],
                          f->in_shape[k], f->grad_at[k], f->grad_n[k], tol);
        }
    }
}

START_TEST(test_case_f64)
{
    check_case(&cases[_i], AG_F64);
}
END_TEST

START_TEST(test_case_f32)
{
    check_case(&cases[_i], AG_F32);
}
END_TEST

/* Every name in the op table has at least one zero-size case. */
START_TEST(test_every_op_has_a_case)
{
    ck_assert_int_gt(ag_op_count(), 0);
    for (int i = 0; i < ag_op_count(); i++) {
        int n = 0;
        for (int c = 0; c < CASES; c++)
            n += strcmp(cases[c].op, ag_op_name(i)) == 0;
        ck_assert_msg(n > 0, "op '%s' has no zero-size case", ag_op_name(i));
    }
}
END_TEST

/* Every fixture case is checked by exactly one case here, and each case's
 * label starts with the name of the op it covers. */
START_TEST(test_every_fixture_case_is_used)
{
    for (int i = 0; i < EMPTY_TORCH_CASES; i++) {
        int n = 0;
        for (int c = 0; c < CASES; c++)
            n += strcmp(cases[c].label, empty_torch[i].label) == 0;
        ck_assert_msg(n == 1, "fixture case \"%s\" is checked %d times",
                      empty_torch[i].label, n);
    }
    for (int c = 0; c < CASES; c++) {
        size_t len = strlen(cases[c].op);
        ck_assert_msg(strncmp(cases[c].label, cases[c].op, len) == 0 &&
                          cases[c].label[len] == ' ',
                      "case \"%s\" is filed under op '%s'", cases[c].label,
                      cases[c].op);
    }
}
END_TEST

static Suite *empty_suite(void)
{
    Suite *s = suite_create("empty");
    TCase *tc = tcase_create("ops");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_every_op_has_a_case);
    tcase_add_test(tc, test_every_fixture_case_is_used);
    tcase_add_loop_test(tc, test_case_f64, 0, CASES);
    tcase_add_loop_test(tc, test_case_f32, 0, CASES);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(empty_suite());
}
