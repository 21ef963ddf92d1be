/* attention.c: nn.MultiheadAttention as a module: "in_proj_weight" (3E, E)
 * and "in_proj_bias" (3E) project the query, key and value (rows [0, E),
 * [E, 2E), [2E, 3E)), the heads attend with ag_scaled_dot_product_attention
 * (fused, blockwise), and the child "out_proj" (a Linear, E -> E) mixes
 * them back; PyTorch's names and initialisation (Xavier uniform for
 * in_proj_weight, zero biases, out_proj.weight as a Linear's). Shapes: N
 * batch, T query and S key positions, E = H heads of D features. */
#include "../internal.h"

#include <math.h>

static ag_tensor *mha_forward(ag_module *mod, ag_arena *step, ag_tensor *x);
static const ag_module_type mha_type = {"MultiheadAttention", mha_forward};

typedef struct {
    int64_t embed, heads;
    bool batch_first, causal;
    ag_tensor *in_weight, *in_bias; /* in_bias NULL without biases */
    ag_module *out_proj;
} mha_module;

/* Projection k (0 query, 1 key, 2 value) of x (N, L, E) -> (N, H, L, D). */
static ag_tensor *project(ag_arena *a, const mha_module *m, ag_tensor *x, int k)
{
    int64_t e = m->embed, n = x->shape[0], len = x->shape[1];
    ag_tensor *w = ag_slice(a, m->in_weight, 0, k * e, (k + 1) * e, 1);
    ag_tensor *b =
        m->in_bias ? ag_slice(a, m->in_bias, 0, k * e, (k + 1) * e, 1) : NULL;
    ag_tensor *y = ag_linear(a, x, w, b);
    y = ag_reshape(a, y, 4, (int64_t[]){n, len, m->heads, e / m->heads});
    return ag_permute(a, y, (int[]){0, 2, 1, 3});
}

/* Checks that x is (N, L, E) (batch first) of the weights' dtype. */
static int check_input(const mha_module *m, const char *what,
                       const ag_tensor *x)
{
    if (x->ndim == 3 && x->shape[2] == m->embed &&
        x->dtype == m->in_weight->dtype)
        return 0;
    char bx[AG_SHAPE_STR_MAX];
    ag__error("MultiheadAttention",
              "%s is %s %s; it must be a 3-D %s input of %lld features, %s",
              what, ag_dtype_name(x->dtype),
              ag__shape_str(bx, x->ndim, x->shape),
              m->batch_first ? "(N,L,E)" : "(L,N,E)", (long long)m->embed,
              ag_dtype_name(m->in_weight->dtype));
    return -1;
}

ag_tensor *ag_nn_multihead_attention_forward(ag_module *mod, ag_arena *a,
                                             ag_tensor *query, ag_tensor *key,
                                             ag_tensor *value, ag_tensor *mask)
{
    if (ag__module_type(mod) != &mha_type) {
        ag__error("ag_nn_multihead_attention_forward",
                  "the module is %s, not a MultiheadAttention",
                  mod ? ag_module_type_name(mod) : "NULL");
        return NULL;
    }
    mha_module *m = ag_module_self(mod);
    ag_tensor *in[3] = {query, key, value};
    static const char *const names[3] = {"the query", "the key", "the value"};
    for (int k = 0; k < 3; k++) {
        if (!in[k]) {
            ag__null_input("MultiheadAttention", k);
            return NULL;
        }
        if (check_input(m, names[k], in[k])) return NULL;
        if (!m->batch_first) in[k] = ag_transpose(a, in[k], 0, 1);
    }
    int64_t n = in[0]->shape[0], t = in[0]->shape[1];
    ag_tensor *heads = ag_scaled_dot_product_attention(
        a, project(a, m, in[0], 0), project(a, m, in[1], 1),
        project(a, m, in[2], 2), mask, m->causal);
    /* (N, H, T, D) -> (N, T, E), then the output projection */
    ag_tensor *y = ag_permute(a, heads, (int[]){0, 2, 1, 3});
    y = ag_reshape(a, y, 3, (int64_t[]){n, t, m->embed});
    y = y ? ag_module_forward(m->out_proj, a, y) : NULL;
    return y && !m->batch_first ? ag_transpose(a, y, 0, 1) : y;
}

/* Self-attention: the query, key and value are all x. */
static ag_tensor *mha_forward(ag_module *mod, ag_arena *step, ag_tensor *x)
{
    return ag_nn_multihead_attention_forward(mod, step, x, x, x, NULL);
}

ag_module *ag_nn_multihead_attention(ag_arena *a, ag_dtype dt,
                                     int64_t embed_dim, int64_t num_heads,
                                     bool bias, bool batch_first, bool causal,
                                     ag_rng *rng)
{
    const char *func = "ag_nn_multihead_attention";
    if (!a || !rng || (dt != AG_F32 && dt != AG_F64) || embed_dim < 1 ||
        num_heads < 1 || embed_dim % num_heads || embed_dim > INT64_MAX / 3) {
        ag__error(func,
                  "needs an arena, an rng, a float dtype and embed_dim >= 1 "
                  "divisible by num_heads >= 1; got %s, %s, %s, embed_dim "
                  "%lld, num_heads %lld",
                  a ? "an arena" : "arena NULL", rng ? "an rng" : "rng NULL",
                  ag_dtype_name(dt), (long long)embed_dim,
                  (long long)num_heads);
        return NULL;
    }
    int64_t numel;
    size_t bytes;
    const int64_t wshape[2] = {3 * embed_dim, embed_dim};
    if (ag__check_size(func, dt, 2, wshape, &numel, &bytes)) return NULL;
    mha_module *m = ag_arena_alloc(a, sizeof *m);
    if (!m) return NULL;
    *m = (mha_module){.embed = embed_dim,
                      .heads = num_heads,
                      .batch_first = batch_first,
                      .causal = causal};
    ag_module *mod = ag_module_new(a, &mha_type, m);
    if (!mod) return NULL;
    m->in_weight = ag_zeros(a, dt, 2, wshape);
    if (!m->in_weight || ag_init_xavier_uniform(m->in_weight, 1.0, rng) ||
        ag_module_add_parameter(mod, "in_proj_weight", m->in_weight))
        return NULL;
    if (bias) {
        m->in_bias = ag_zeros(a, dt, 1, (int64_t[]){3 * embed_dim});
        if (!m->in_bias ||
            ag_module_add_parameter(mod, "in_proj_bias", m->in_bias))
            return NULL;
    }
    m->out_proj = ag_nn_linear(a, dt, embed_dim, embed_dim, bias, rng);
    if (!m->out_proj || ag_module_add_child(mod, "out_proj", m->out_proj))
        return NULL;
    if (bias) { /* PyTorch zeroes out_proj's bias */
        ag_tensor *ob =
            ag_params_find(ag_module_own_parameters(m->out_proj), "bias");
        memset(ob->data, 0, ag__tensor_bytes(ob));
    }
    return mod;
}
