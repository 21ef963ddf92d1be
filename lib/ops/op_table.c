/* op_table.c: the op table. Every op the library can record is listed here
 * once; the graph, the op-name queries and the test that gradient-checks
 * every op all read this list. */
#include "../internal.h"

const ag_op *const ag__op_table[] = {
    &ag__op_add,      &ag__op_sub,         &ag__op_mul,
    &ag__op_div,      &ag__op_neg,         &ag__op_exp,
    &ag__op_log,      &ag__op_sqrt,        &ag__op_abs,
    &ag__op_pow,      &ag__op_scale,       &ag__op_shift,
    &ag__op_matmul,   &ag__op_sum,         &ag__op_mean,
    &ag__op_max,      &ag__op_reshape,     &ag__op_transpose,
    &ag__op_sigmoid,  &ag__op_tanh,        &ag__op_relu,
    &ag__op_softmax,  &ag__op_log_softmax, &ag__op_softmax_cross_entropy,
    &ag__op_mse_loss, &ag__op_gelu,        &ag__op_leaky_relu,
    &ag__op_dropout,  &ag__op_linear,      &ag__op_linear_no_bias,
    &ag__op_expand,   &ag__op_cast,        &ag__op_gelu_derivative,
    &ag__op_scaled_dot_product_attention,
};

const int ag__op_table_size =
    (int)(sizeof ag__op_table / sizeof ag__op_table[0]);
