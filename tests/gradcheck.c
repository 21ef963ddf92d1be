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

/* GELU's derivative as a function of x: the gradient of sum(GELU(x)), with
 * a graph (grad mode is on for it even when the checker evaluates f with
 * it off), which records the op gelu_derivative. */
static ag_tensor *f_gelu_derivative(ag_arena *a, ag_tensor **x)
{
    bool create_graph = ag_set_grad_enabled(true);
    ag_tensor *y = ag_sum(a, ag_gelu(a, x[0]), AG_ALL, false), *g = NULL;
    if (ag_gradients(a, 1, &y, NULL, 1, &x[0], create_graph, &g)) g = NULL;
    ag_set_grad_enabled(create_graph);
    return g;
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
