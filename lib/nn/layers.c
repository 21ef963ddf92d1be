/* layers.c: Linear layers and multi-layer perceptrons built from them, with
 * PyTorch's parameter names and default initialisation. */
#include "../internal.h"

#include <math.h>

/* Draws a layer's weight and bias according to `init`. */
static int init_layer(ag_linear_layer *l, ag_init init, ag_rng *rng)
{
    int status;
    switch (init) {
    case AG_INIT_DEFAULT: /* nn.Linear.reset_parameters */
        status = ag_init_kaiming_uniform(l->weight, sqrt(5.0), rng);
        if (!status && l->bias) {
            double bound = 1 / sqrt((double)l->in);
            status = ag_init_uniform(l->bias, -bound, bound, rng);
        }
        return status;
    case AG_INIT_XAVIER:
        return ag_init_xavier_uniform(l->weight, 1.0, rng);
    case AG_INIT_KAIMING:
        return ag_init_kaiming_uniform(l->weight, 0.0, rng);
    case AG_INIT_NORMAL:
        return ag_init_normal(l->weight, 0.0, 0.01, rng);
    }
    return -1;
}

/* Checks, before anything is allocated, that a layer's weight (out, in) can
 * exist (its bias (out) then can too); reports errors as `where`. */
static int check_layer_size(const char *where, ag_dtype dt, int64_t in,
                            int64_t out)
{
    int64_t numel;
    size_t bytes;
    return ag__check_size(where, dt, 2, (int64_t[]){out, in}, &numel, &bytes);
}

ag_linear_layer *ag_linear_layer_new(ag_arena *a, ag_dtype dt, int64_t in,
                                     int64_t out, bool bias, ag_init init,
                                     ag_rng *rng)
{
    const char *func = "ag_linear_layer_new";
    if (!a || !rng) {
        ag__error(func, "%s is NULL", !a ? "arena" : "rng");
        return NULL;
    }
    if (in < 1 || out < 1 || (dt != AG_F32 && dt != AG_F64) ||
        (unsigned)init > AG_INIT_NORMAL) {
        ag__error(func,
                  "need in >= 1, out >= 1, a float dtype and a known "
                  "init; got in %lld, out %lld, %s, init %d",
                  (long long)in, (long long)out, ag_dtype_name(dt), (int)init);
        return NULL;
    }
    if (check_layer_size("ag_linear_layer_new: weight", dt, in, out))
        return NULL;
    ag_linear_layer *l =
        ag__arena_alloc(a, sizeof *l, _Alignof(ag_linear_layer));
    if (!l) {
        ag__error(func, "out of memory");
        return NULL;
    }
    *l = (ag_linear_layer){.in = in, .out = out};
    l->weight = ag_zeros(a, dt, 2, (int64_t[]){out, in});
    l->bias = bias ? ag_zeros(a, dt, 1, &out) : NULL;
    l->params = ag_params_new(a);
    if (!l->weight || (bias && !l->bias) || !l->params ||
        ag_params_add(l->params, "weight", l->weight) ||
        (bias && ag_params_add(l->params, "bias", l->bias)) ||
        init_layer(l, init, rng))
        return NULL;
    ag_params_requires_grad(l->params, true);
    return l;
}

ag_tensor *ag_linear_layer_forward(ag_arena *step, const ag_linear_layer *layer,
                                   ag_tensor *x)
{
    if (!layer) {
        ag__error("ag_linear_layer_forward", "layer is NULL");
        return NULL;
    }
    return ag_linear(step, x, layer->weight, layer->bias);
}

ag_tensor *ag_activate(ag_arena *a, ag_tensor *x, ag_activation act)
{
    switch (act) {
    case AG_ACT_RELU:
        return ag_relu(a, x);
    case AG_ACT_TANH:
        return ag_tanh(a, x);
    case AG_ACT_SIGMOID:
        return ag_sigmoid(a, x);
    case AG_ACT_GELU:
        return ag_gelu(a, x);
    case AG_ACT_LEAKY_RELU:
        return ag_leaky_relu(a, x, 0.01);
    case AG_ACT_NONE:
        return x;
    }
    ag__error("ag_activate", "unknown activation %d", (int)act);
    return NULL;
}

/* Checks the sizes and options of ag_mlp_new, and that every layer's
 * weight can exist. */
static int check_mlp(const char *func, ag_arena *a, int n, const int64_t *sizes,
                     const ag_mlp_options *o)
{
    if (!a || !sizes) {
        ag__error(func, "%s is NULL", !a ? "arena" : "sizes");
        return -1;
    }
    if (n < 2) {
        ag__error(func, "need at least 2 sizes (input and output), got %d", n);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (sizes[i] < 1) {
            ag__error(func, "sizes[%d] is %lld; every size must be >= 1", i,
                      (long long)sizes[i]);
            return -1;
        }
    if ((o->dtype != AG_F32 && o->dtype != AG_F64) ||
        (unsigned)o->activation > AG_ACT_NONE ||
        (unsigned)o->init > AG_INIT_NORMAL ||
        !(o->dropout >= 0 && o->dropout < 1)) {
        ag__error(func,
                  "bad options: dtype %s, activation %d, init %d, "
                  "dropout %g (must be in [0, 1))",
                  ag_dtype_name(o->dtype), (int)o->activation, (int)o->init,
                  o->dropout);
        return -1;
    }
    for (int i = 0; i + 1 < n; i++) { /* every layer, before allocating */
        char where[96];
        snprintf(where, sizeof where, "%s: layer %d (%lld -> %lld) weight",
                 func, i, (long long)sizes[i], (long long)sizes[i + 1]);
        if (check_layer_size(where, o->dtype, sizes[i], sizes[i + 1]))
            return -1;
    }
    return 0;
}

ag_mlp *ag_mlp_new(ag_arena *a, int n, const int64_t *sizes,
                   const ag_mlp_options *options)
{
    const char *func = "ag_mlp_new";
    ag_mlp_options o = options ? *options : (ag_mlp_options){0};
    if (check_mlp(func, a, n, sizes, &o)) return NULL;
    ag_mlp *m = ag__arena_alloc(a, sizeof *m, _Alignof(ag_mlp));
    ag_linear_layer **layers =
        ag__arena_alloc(a, (size_t)(n - 1) * sizeof *layers, 16);
    ag_params *params = ag_params_new(a);
    if (!m || !layers || !params) {
        ag__error(func, "out of memory");
        return NULL;
    }
    ag_rng rng = ag_rng_seed(o.seed);
    for (int i = 0; i < n - 1; i++) {
        layers[i] = ag_linear_layer_new(a, o.dtype, sizes[i], sizes[i + 1],
                                        !o.no_bias, o.init, &rng);
        char prefix[32];
        snprintf(prefix, sizeof prefix, "layers.%d", i);
        if (!layers[i] || ag_params_extend(params, prefix, layers[i]->params))
            return NULL;
    }
    *m = (ag_mlp){.num_layers = n - 1,
                  .layers = layers,
                  .options = o,
                  .training = true,
                  .dropout_rng = ag_rng_seed(o.seed ^ 0x9e3779b97f4a7c15u),
                  .params = params};
    return m;
}

/* Says which layer of the model failed, before the op's own message. */
static ag_tensor *layer_failed(const ag_mlp *m, int i)
{
    char cause[400];
    snprintf(cause, sizeof cause, "%s", ag_last_error());
    ag__error("ag_mlp_forward", "layer %d (%lld -> %lld): %s", i,
              (long long)m->layers[i]->in, (long long)m->layers[i]->out, cause);
    return NULL;
}

ag_tensor *ag_mlp_forward(ag_arena *step, ag_mlp *m, ag_tensor *x)
{
    if (!m) {
        ag__error("ag_mlp_forward", "model is NULL");
        return NULL;
    }
    double p = m->training ? m->options.dropout : 0;
    for (int i = 0; i < m->num_layers; i++) {
        ag_tensor *in = x;
        x = ag_linear_layer_forward(step, m->layers[i], x);
        if (i < m->num_layers - 1) {
            x = ag_activate(step, x, m->options.activation);
            if (p > 0) x = ag_dropout(step, x, p, &m->dropout_rng);
        }
        if (in && !x) return layer_failed(m, i);
    }
    return x;
}

void ag_mlp_set_training(ag_mlp *m, bool training)
{
    if (m) m->training = training;
}

/* nn.Linear as a module: the layer of ag_linear_layer_new with PyTorch's
 * default initialisation. */
static ag_tensor *linear_module_forward(ag_module *m, ag_arena *step,
                                        ag_tensor *x)
{
    return ag_linear_layer_forward(step, ag_module_self(m), x);
}

static const ag_module_type linear_type = {"Linear", linear_module_forward};

ag_module *ag_nn_linear(ag_arena *a, ag_dtype dt, int64_t in, int64_t out,
                        bool bias, ag_rng *rng)
{
    ag_linear_layer *l =
        ag_linear_layer_new(a, dt, in, out, bias, AG_INIT_DEFAULT, rng);
    ag_module *m = l ? ag_module_new(a, &linear_type, l) : NULL;
    if (!m || ag_module_add_parameter(m, "weight", l->weight) ||
        (bias && ag_module_add_parameter(m, "bias", l->bias)))
        return NULL;
    return m;
}

/* nn.Embedding(V, C): "weight" (V, C) drawn from N(0, 1) as PyTorch's; the
 * forward looks up i32 ids of any shape (ag_embedding). */
static ag_tensor *embedding_forward(ag_module *m, ag_arena *step,
                                    ag_tensor *ids)
{
    return ag_embedding(step, ag_module_self(m), ids);
}

static const ag_module_type embedding_type = {"Embedding", embedding_forward};

ag_module *ag_nn_embedding(ag_arena *a, ag_dtype dt, int64_t num_embeddings,
                           int64_t embedding_dim, ag_rng *rng)
{
    const char *func = "ag_nn_embedding";
    if (!a || !rng || (dt != AG_F32 && dt != AG_F64) || num_embeddings < 1 ||
        embedding_dim < 1) {
        ag__error(func,
                  "needs an arena, an rng, a float dtype and sizes >= 1; got "
                  "%s, %s, %s, %lld, %lld",
                  a ? "an arena" : "arena NULL", rng ? "an rng" : "rng NULL",
                  ag_dtype_name(dt), (long long)num_embeddings,
                  (long long)embedding_dim);
        return NULL;
    }
    const int64_t shape[2] = {num_embeddings, embedding_dim};
    int64_t numel;
    size_t bytes;
    if (ag__check_size(func, dt, 2, shape, &numel, &bytes)) return NULL;
    ag_tensor *w = ag_zeros(a, dt, 2, shape);
    ag_module *m = w ? ag_module_new(a, &embedding_type, w) : NULL;
    if (!m || ag_init_normal(w, 0, 1, rng) ||
        ag_module_add_parameter(m, "weight", w))
        return NULL;
    return m;
}
