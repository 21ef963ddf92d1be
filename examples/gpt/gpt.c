/* gpt.c: the GPT model of gpt.h, nanoGPT's model.py in C. The training
 * forward composes the library's fused ops (ag_embedding, ag_layer_norm,
 * ag_linear over all B*T rows at once, ag_scaled_dot_product_attention,
 * ag_gelu, ag_cross_entropy); checkpoints carry nanoGPT's state_dict keys
 * and the config; the KV cache's inference kernels live in
 * gpt_cache_kernels.h, instantiated here for float and double.
 *
 * Shapes: B = batch, T = time, C = n_embd, H = n_head, D = C / H,
 * V = vocab_size. */
#include "gpt.h"

#include <cblas.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One block's tensors (also members of its modules). */
typedef struct {
    ag_tensor *ln1_w, *ln1_b;   /* ln_1 (C), bias NULL without bias */
    ag_tensor *attn_w, *attn_b; /* attn.c_attn (3C, C), (3C) */
    ag_tensor *proj_w, *proj_b; /* attn.c_proj (C, C), (C) */
    ag_tensor *ln2_w, *ln2_b;   /* ln_2 */
    ag_tensor *fc_w, *fc_b;     /* mlp.c_fc (4C, C), (4C) */
    ag_tensor *mlp_w, *mlp_b;   /* mlp.c_proj (C, 4C), (C) */
    ag_tensor *mask;            /* attn.bias (1, 1, block, block): tril(ones) */
} gpt_block;

struct gpt {
    gpt_config config;
    ag_dtype dtype;
    ag_module *root;          /* "GPT": transformer.{wte,wpe,h,ln_f} */
    ag_tensor *wte, *wpe;     /* (V, C), (block, C); wte is also lm_head */
    ag_tensor *lnf_w, *lnf_b; /* transformer.ln_f */
    gpt_block *blocks;        /* n_layer of them */
    ag_rng dropout_rng;       /* the dropout masks */
};

#define LN_EPS 1e-5                        /* nn.LayerNorm's and nanoGPT's */
#define GPT_SQRT1_2 0.70710678118654752440 /* 1 / sqrt(2), for GELU */

/* ---- modules: nanoGPT's classes, named as its state_dict ---- */

/* nanoGPT's LayerNorm(ndim, bias): weight ones, bias zeros or none. */
typedef struct {
    ag_tensor *weight, *bias;
} layer_norm_self;

static ag_tensor *layer_norm_forward(ag_module *m, ag_arena *step, ag_tensor *x)
{
    layer_norm_self *s = ag_module_self(m);
    return ag_layer_norm(step, x, 1, s->weight, s->bias, LN_EPS);
}

static const ag_module_type layer_norm_type = {"LayerNorm", layer_norm_forward};

/* The containers (ModuleDict, ModuleList) and the parts (Block,
 * CausalSelfAttention, MLP) run only inside gpt_forward. */
static ag_tensor *part_forward(ag_module *m, ag_arena *step, ag_tensor *x)
{
    (void)step, (void)x;
    ag_set_error("gpt", "%s is run by gpt_forward, not on its own",
                 ag_module_type_name(m));
    return NULL;
}

static const ag_module_type dict_type = {"ModuleDict", part_forward};
static const ag_module_type list_type = {"ModuleList", part_forward};
static const ag_module_type block_type = {"Block", part_forward};
static const ag_module_type attn_type = {"CausalSelfAttention", part_forward};
static const ag_module_type mlp_type = {"MLP", part_forward};

/* GPT's own forward: ids (B,T) -> logits (B,T,V). */
static ag_tensor *gpt_module_forward(ag_module *m, ag_arena *step,
                                     ag_tensor *ids)
{
    return gpt_forward(ag_module_self(m), step, ids);
}

static const ag_module_type gpt_type = {"GPT", gpt_module_forward};

/* A LayerNorm of C features as child `name` of parent; its tensors in
 * *w, *b. */
static int add_layer_norm(ag_arena *a, ag_module *parent, const char *name,
                          ag_dtype dt, int64_t c, bool bias, ag_tensor **w,
                          ag_tensor **b)
{
    layer_norm_self *s = ag_arena_alloc(a, sizeof *s);
    if (!s) return -1;
    s->weight = *w = ag_full(a, dt, 1, &c, 1.0);
    s->bias = *b = bias ? ag_zeros(a, dt, 1, &c) : NULL;
    ag_module *m = ag_module_new(a, &layer_norm_type, s);
    if (!m || !s->weight || (bias && !s->bias) ||
        ag_module_add_parameter(m, "weight", s->weight) ||
        (bias && ag_module_add_parameter(m, "bias", s->bias)))
        return -1;
    return ag_module_add_child(parent, name, m);
}

/* An nn.Linear(in, out, bias) as child `name`, weight N(0, std^2), bias
 * zeros (nanoGPT's _init_weights). */
static int add_linear(ag_arena *a, ag_module *parent, const char *name,
                      ag_dtype dt, int64_t in, int64_t out, bool bias,
                      double std, ag_rng *rng, ag_tensor **w, ag_tensor **b)
{
    ag_module *m = ag_nn_linear(a, dt, in, out, bias, rng);
    if (!m) return -1;
    ag_params *own = ag_module_own_parameters(m);
    *w = ag_params_find(own, "weight");
    *b = bias ? ag_params_find(own, "bias") : NULL;
    if (ag_init_normal(*w, 0, std, rng)) return -1;
    if (bias) memset(ag_data(*b), 0, (size_t)out * (dt == AG_F32 ? 4 : 8));
    return ag_module_add_child(parent, name, m);
}

/* An nn.Embedding(n, c) as child `name`, weight N(0, 0.02^2). */
static int add_embedding(ag_arena *a, ag_module *parent, const char *name,
                         ag_dtype dt, int64_t n, int64_t c, ag_rng *rng,
                         ag_tensor **w)
{
    ag_module *m = ag_nn_embedding(a, dt, n, c, rng);
    if (!m) return -1;
    *w = ag_params_find(ag_module_own_parameters(m), "weight");
    if (ag_init_normal(*w, 0, 0.02, rng)) return -1;
    return ag_module_add_child(parent, name, m);
}

/* The causal mask buffer: tril(ones(block, block)) as (1, 1, block,
 * block), nanoGPT's attn.bias. */
static ag_tensor *causal_mask(ag_arena *a, ag_dtype dt, int64_t block)
{
    ag_tensor *t = ag_zeros(a, dt, 4, (int64_t[]){1, 1, block, block});
    if (!t) return NULL;
    for (int64_t i = 0; i < block; i++)
        for (int64_t j = 0; j <= i; j++) {
            if (dt == AG_F32)
                ((float *)ag_data(t))[i * block + j] = 1;
            else
                ((double *)ag_data(t))[i * block + j] = 1;
        }
    return t;
}

/* transformer.h.<l>: ln_1, attn (its mask buffer, c_attn, c_proj), ln_2,
 * mlp (c_fc, c_proj). */
static ag_module *block_new(ag_arena *a, const gpt *m, gpt_block *b,
                            ag_rng *rng)
{
    const gpt_config *c = &m->config;
    const ag_dtype dt = m->dtype;
    const int64_t C = c->n_embd;
    const double std = 0.02, proj_std = 0.02 / sqrt(2.0 * (double)c->n_layer);
    ag_module *blk = ag_module_new(a, &block_type, b);
    ag_module *attn = ag_module_new(a, &attn_type, b);
    ag_module *mlp = ag_module_new(a, &mlp_type, b);
    b->mask = causal_mask(a, dt, c->block_size);
    if (!blk || !attn || !mlp || !b->mask ||
        add_layer_norm(a, blk, "ln_1", dt, C, c->bias, &b->ln1_w, &b->ln1_b) ||
        ag_module_add_buffer(attn, "bias", b->mask) ||
        add_linear(a, attn, "c_attn", dt, C, 3 * C, c->bias, std, rng,
                   &b->attn_w, &b->attn_b) ||
        add_linear(a, attn, "c_proj", dt, C, C, c->bias, proj_std, rng,
                   &b->proj_w, &b->proj_b) ||
        ag_module_add_child(blk, "attn", attn) ||
        add_layer_norm(a, blk, "ln_2", dt, C, c->bias, &b->ln2_w, &b->ln2_b) ||
        add_linear(a, mlp, "c_fc", dt, C, 4 * C, c->bias, std, rng, &b->fc_w,
                   &b->fc_b) ||
        add_linear(a, mlp, "c_proj", dt, 4 * C, C, c->bias, proj_std, rng,
                   &b->mlp_w, &b->mlp_b) ||
        ag_module_add_child(blk, "mlp", mlp))
        return NULL;
    return blk;
}

/* Checks a config as gpt_new and gpt_read_config need it: 0, or -1 with
 * an error from func (prefix, for a path, "func: path"). */
static int check_config(const char *func, const char *prefix,
                        const gpt_config *c)
{
    const struct {
        const char *name;
        int64_t v;
    } sizes[] = {{"vocab_size", c->vocab_size},
                 {"block_size", c->block_size},
                 {"n_layer", c->n_layer},
                 {"n_head", c->n_head},
                 {"n_embd", c->n_embd}};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        if (sizes[i].v < 1 || sizes[i].v > INT32_MAX) {
            ag_set_error(func, "%s%s = %" PRId64 " must be in [1, 2^31)",
                         prefix, sizes[i].name, sizes[i].v);
            return -1;
        }
    if (c->n_embd % c->n_head) {
        ag_set_error(func,
                     "%sn_embd = %" PRId64
                     " is not a multiple of n_head = %" PRId64,
                     prefix, c->n_embd, c->n_head);
        return -1;
    }
    if (!(c->dropout >= 0 && c->dropout < 1)) {
        ag_set_error(func, "%sdropout = %g must be in [0, 1)", prefix,
                     c->dropout);
        return -1;
    }
    return 0;
}

gpt *gpt_new(ag_arena *a, ag_dtype dt, const gpt_config *c, uint64_t seed)
{
    const char *func = "gpt_new";
    if (!a || !c) {
        ag_set_error(func, "needs an arena and a config; got %s, %s",
                     a ? "an arena" : "arena NULL",
                     c ? "a config" : "config NULL");
        return NULL;
    }
    if (dt != AG_F32 && dt != AG_F64) {
        ag_set_error(func, "dtype %s: the model is f32 or f64",
                     ag_dtype_name(dt));
        return NULL;
    }
    if (check_config(func, "", c)) return NULL;
    gpt *m = ag_arena_alloc(a, sizeof *m);
    if (!m) return NULL;
    m->config = *c;
    m->dtype = dt;
    ag_rng rng = ag_rng_seed(seed);
    m->dropout_rng = ag_rng_seed(seed ^ 0x9e3779b97f4a7c15u);
    m->blocks = ag_arena_alloc(a, (size_t)c->n_layer * sizeof *m->blocks);
    m->root = ag_module_new(a, &gpt_type, m);
    ag_module *tr = ag_module_new(a, &dict_type, m);
    ag_module *h = ag_module_new(a, &list_type, m);
    if (!m->blocks || !m->root || !tr || !h ||
        add_embedding(a, tr, "wte", dt, c->vocab_size, c->n_embd, &rng,
                      &m->wte) ||
        add_embedding(a, tr, "wpe", dt, c->block_size, c->n_embd, &rng,
                      &m->wpe))
        goto fail;
    for (int64_t l = 0; l < c->n_layer; l++) {
        char name[24];
        snprintf(name, sizeof name, "%" PRId64, l);
        ag_module *blk = block_new(a, m, &m->blocks[l], &rng);
        if (!blk || ag_module_add_child(h, name, blk)) goto fail;
    }
    if (ag_module_add_child(tr, "h", h) ||
        add_layer_norm(a, tr, "ln_f", dt, c->n_embd, c->bias, &m->lnf_w,
                       &m->lnf_b) ||
        ag_module_add_child(m->root, "transformer", tr) ||
        !ag_module_state(m->root))
        goto fail;
    return m;
fail:
    ag_set_error(func, "%s", ag_last_error());
    return NULL;
}

const gpt_config *gpt_get_config(const gpt *m)
{
    return m ? &m->config : NULL;
}

ag_dtype gpt_dtype(const gpt *m)
{
    return m ? m->dtype : AG_F32;
}

ag_module *gpt_module(gpt *m)
{
    return m ? m->root : NULL;
}

ag_rng *gpt_dropout_rng(gpt *m)
{
    return m ? &m->dropout_rng : NULL;
}

/* ---- the training forward ---- */

/* Checks ids (B,T) against the model: 0, or -1 with an error from func. */
static int check_ids(const char *func, const gpt *m, ag_tensor *ids)
{
    if (ag_type(ids) != AG_I32 || ag_ndim(ids) != 2) {
        ag_set_error(func,
                     "ids must be AG_I32 (B,T); got %s with %d dimensions",
                     ag_dtype_name(ag_type(ids)), ag_ndim(ids));
        return -1;
    }
    const int64_t B = ag_shape(ids)[0], T = ag_shape(ids)[1];
    if (T < 1 || T > m->config.block_size || B < 1) {
        ag_set_error(func,
                     "ids (%" PRId64 ",%" PRId64 "): T must be in [1, "
                     "block_size = %" PRId64 "] and B >= 1",
                     B, T, m->config.block_size);
        return -1;
    }
    const int32_t *id = ag_data(ids);
    for (int64_t i = 0; i < B * T; i++)
        if (id[i] < 0 || id[i] >= m->config.vocab_size) {
            ag_set_error(func,
                         "id %" PRId32 " at (%" PRId64 ", %" PRId64
                         ") is outside the vocabulary [0, %" PRId64 ")",
                         id[i], i / T, i % T, m->config.vocab_size);
            return -1;
        }
    return 0;
}

/* Dropout of probability p in training mode; x itself otherwise. */
static ag_tensor *maybe_dropout(gpt *m, ag_arena *step, ag_tensor *x)
{
    if (!ag_module_is_training(m->root) || m->config.dropout == 0) return x;
    return ag_dropout(step, x, m->config.dropout, &m->dropout_rng);
}

/* The heads of q, k or v (part k of c_attn): ln (B,T,C) -> (B,H,T,D). */
static ag_tensor *head_projection(ag_arena *s, const gpt *m, const gpt_block *b,
                                  ag_tensor *x, int k)
{
    const int64_t C = m->config.n_embd, H = m->config.n_head;
    ag_tensor *w = ag_slice(s, b->attn_w, 0, k * C, (k + 1) * C, 1);
    ag_tensor *bias =
        b->attn_b ? ag_slice(s, b->attn_b, 0, k * C, (k + 1) * C, 1) : NULL;
    ag_tensor *y = ag_linear(s, x, w, bias);
    const int64_t *shape = ag_shape(x);
    y = ag_reshape(s, y, 4, (int64_t[]){shape[0], shape[1], H, C / H});
    return ag_permute(s, y, (int[]){0, 2, 1, 3});
}

/* x + attn(ln_1(x)), then x + mlp(ln_2(x)), on x (B,T,C). */
static ag_tensor *block_forward(gpt *m, ag_arena *s, const gpt_block *b,
                                ag_tensor *x)
{
    const int64_t B = ag_shape(x)[0], T = ag_shape(x)[1], C = m->config.n_embd;
    /* attention: softmax(q k^T / sqrt(D), causal) v over each head */
    ag_tensor *h = ag_layer_norm(s, x, 1, b->ln1_w, b->ln1_b, LN_EPS);
    ag_tensor *q = head_projection(s, m, b, h, 0);
    ag_tensor *k = head_projection(s, m, b, h, 1);
    ag_tensor *v = head_projection(s, m, b, h, 2);
    ag_tensor *y = ag_scaled_dot_product_attention(s, q, k, v, NULL, true);
    y = ag_reshape(s, ag_permute(s, y, (int[]){0, 2, 1, 3}), 3,
                   (int64_t[]){B, T, C});
    y = maybe_dropout(m, s, ag_linear(s, y, b->proj_w, b->proj_b));
    x = ag_add(s, x, y);
    /* MLP: c_proj(gelu(c_fc(ln_2(x)))) */
    h = ag_layer_norm(s, x, 1, b->ln2_w, b->ln2_b, LN_EPS);
    h = ag_gelu(s, ag_linear(s, h, b->fc_w, b->fc_b));
    h = maybe_dropout(m, s, ag_linear(s, h, b->mlp_w, b->mlp_b));
    return ag_add(s, x, h);
}

/* ln_f of the last block's output (B,T,C), without the checks of
 * gpt_forward. */
static ag_tensor *forward_hidden(gpt *m, ag_arena *s, ag_tensor *ids)
{
    const int64_t T = ag_shape(ids)[1];
    ag_tensor *x = ag_add(s, ag_embedding(s, m->wte, ids),
                          ag_slice(s, m->wpe, 0, 0, T, 1));
    x = maybe_dropout(m, s, x);
    for (int64_t l = 0; l < m->config.n_layer; l++)
        x = block_forward(m, s, &m->blocks[l], x);
    return ag_layer_norm(s, x, 1, m->lnf_w, m->lnf_b, LN_EPS);
}

ag_tensor *gpt_forward(gpt *m, ag_arena *step, ag_tensor *ids)
{
    const char *func = "gpt_forward";
    if (!m || !step) {
        ag_set_error(func, "needs a model and an arena; got %s, %s",
                     m ? "a model" : "model NULL",
                     step ? "an arena" : "arena NULL");
        return NULL;
    }
    if (!ids) {
        if (!*ag_last_error()) ag_set_error(func, "ids is NULL");
        return NULL;
    }
    if (check_ids(func, m, ids)) return NULL;
    /* lm_head, tied to wte */
    ag_tensor *logits =
        ag_linear(step, forward_hidden(m, step, ids), m->wte, NULL);
    if (!logits) ag_set_error(func, "%s", ag_last_error());
    return logits;
}

ag_tensor *gpt_loss(gpt *m, ag_arena *step, ag_tensor *ids, ag_tensor *targets)
{
    const char *func = "gpt_loss";
    if (!m || !step || !ids || !targets) {
        if (!*ag_last_error() || (m && step))
            ag_set_error(
                func,
                "needs a model, an arena, ids and targets; got "
                "%s, %s, %s, %s",
                m ? "a model" : "model NULL", step ? "an arena" : "arena NULL",
                ids ? "ids" : "ids NULL", targets ? "targets" : "targets NULL");
        return NULL;
    }
    if (check_ids(func, m, ids)) return NULL;
    if (ag_type(targets) != AG_I32 || ag_ndim(targets) != 2 ||
        ag_shape(targets)[0] != ag_shape(ids)[0] ||
        ag_shape(targets)[1] != ag_shape(ids)[1]) {
        ag_set_error(func,
                     "targets must be AG_I32 of ids' shape (%" PRId64
                     ",%" PRId64 "); got %s with %d dimensions",
                     ag_shape(ids)[0], ag_shape(ids)[1],
                     ag_dtype_name(ag_type(targets)), ag_ndim(targets));
        return NULL;
    }
    const int64_t N = ag_numel(ids), C = m->config.n_embd;
    /* the logits made (B T, V) at once: no reshape of them, nor of their
     * gradient */
    ag_tensor *x =
        ag_reshape(step, forward_hidden(m, step, ids), 2, (int64_t[]){N, C});
    const ag_cross_entropy_options o = {.ignore_index = -1};
    ag_tensor *loss =
        ag_cross_entropy(step, ag_linear(step, x, m->wte, NULL),
                         ag_reshape(step, targets, 1, (int64_t[]){N}), &o);
    if (!loss) ag_set_error(func, "%s", ag_last_error());
    return loss;
}

/* ---- checkpoints ---- */

#define CONFIG_FIELDS 7

/* The tensors of a checkpoint: ag_module_state's, then lm_head.weight, a
 * copy of wte, all in arena a (with_values: the model's values; else
 * zeros of the same dtypes and shapes, to load into). */
static ag_params *checkpoint_set(ag_arena *a, gpt *m, bool with_values)
{
    ag_params *state = ag_module_state(m->root), *p = ag_params_new(a);
    if (!state || !p) return NULL;
    for (int i = 0; i < ag_params_count(state); i++) {
        ag_tensor *t = ag_params_tensor(state, i);
        ag_tensor *copy =
            with_values ? NULL : ag_zeros(a, m->dtype, ag_ndim(t), ag_shape(t));
        if ((!with_values && !copy) ||
            ag_params_add(p, ag_params_name(state, i), with_values ? t : copy))
            return NULL;
    }
    ag_tensor *head = with_values ? ag_detach(a, m->wte)
                                  : ag_zeros(a, m->dtype, 2, ag_shape(m->wte));
    if (!head || ag_params_add(p, "lm_head.weight", head)) return NULL;
    return p;
}

int gpt_save(gpt *m, const char *path)
{
    const char *func = "gpt_save";
    if (!m || !path) {
        ag_set_error(func, "needs a model and a path; got %s, %s",
                     m ? "a model" : "model NULL", path ? path : "path NULL");
        return -1;
    }
    const gpt_config *c = &m->config;
    char text[CONFIG_FIELDS - 2][24], drop[32];
    const int64_t v[] = {c->vocab_size, c->block_size, c->n_layer, c->n_head,
                         c->n_embd};
    for (int i = 0; i < CONFIG_FIELDS - 2; i++)
        snprintf(text[i], sizeof text[i], "%" PRId64, v[i]);
    snprintf(drop, sizeof drop, "%.17g", c->dropout);
    const char *meta[] = {
        "format",     "pt",    "vocab_size", text[0],
        "block_size", text[1], "n_layer",    text[2],
        "n_head",     text[3], "n_embd",     text[4],
        "dropout",    drop,    "bias",       c->bias ? "true" : "false",
        NULL};
    ag_arena *a = ag_arena_new();
    ag_params *p = a ? checkpoint_set(a, m, true) : NULL;
    int rc = p ? ag_save_safetensors(path, p, meta) : -1;
    if (rc) ag_set_error(func, "%s", ag_last_error());
    ag_arena_free(a);
    return rc;
}

/* The value of key in a metadata list, or NULL. */
static const char *meta_value(const char *const *meta, const char *key)
{
    for (int i = 0; meta[i]; i += 2)
        if (!strcmp(meta[i], key)) return meta[i + 1];
    return NULL;
}

/* The config in a checkpoint's metadata: 0, or -1 with an error from func
 * naming the path and the field. */
static int parse_config(const char *func, const char *path,
                        const char *const *meta, gpt_config *out)
{
    static const char *const names[CONFIG_FIELDS - 2] = {
        "vocab_size", "block_size", "n_layer", "n_head", "n_embd"};
    gpt_config c = {0};
    int64_t *fields[CONFIG_FIELDS - 2] = {&c.vocab_size, &c.block_size,
                                          &c.n_layer, &c.n_head, &c.n_embd};
    for (int i = 0; i < CONFIG_FIELDS; i++) {
        const char *key = i < CONFIG_FIELDS - 2    ? names[i]
                          : i == CONFIG_FIELDS - 2 ? "dropout"
                                                   : "bias";
        const char *s = meta_value(meta, key);
        if (!s) {
            ag_set_error(func,
                         "%s: no \"%s\" in the metadata (not a gpt_save "
                         "checkpoint?)",
                         path, key);
            return -1;
        }
        char *end = NULL;
        errno = 0;
        bool ok;
        if (i < CONFIG_FIELDS - 2) {
            long long v = strtoll(s, &end, 10);
            ok = *s && !*end && !errno;
            *fields[i] = v;
        } else if (i == CONFIG_FIELDS - 2) {
            c.dropout = strtod(s, &end);
            ok = *s && !*end && !errno;
        } else {
            ok = !strcmp(s, "true") || !strcmp(s, "false");
            c.bias = !strcmp(s, "true");
        }
        if (!ok) {
            ag_set_error(func, "%s: metadata \"%s\" is \"%.40s\", not a %s",
                         path, key, s,
                         i < CONFIG_FIELDS - 2    ? "decimal integer"
                         : i == CONFIG_FIELDS - 2 ? "number"
                                                  : "true or false");
            return -1;
        }
    }
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s: metadata ", path);
    if (check_config(func, prefix, &c)) return -1;
    *out = c;
    return 0;
}

int gpt_read_config(const char *path, gpt_config *out)
{
    const char *func = "gpt_read_config";
    if (!path || !out) {
        ag_set_error(func, "needs a path and a config; got %s, %s",
                     path ? path : "path NULL", out ? "a config" : "out NULL");
        return -1;
    }
    ag_arena *a = ag_arena_new();
    const char *const *meta = a ? ag_load_safetensors_metadata(a, path) : NULL;
    int rc = -1;
    if (!meta)
        ag_set_error(func, "%s", ag_last_error());
    else
        rc = parse_config(func, path, meta, out);
    ag_arena_free(a);
    return rc;
}

/* Compares a checkpoint's config with the model's (all but dropout). */
static int same_config(const char *func, const char *path,
                       const gpt_config *file, const gpt_config *model)
{
    const struct {
        const char *name;
        int64_t f, m;
    } f[] = {{"vocab_size", file->vocab_size, model->vocab_size},
             {"block_size", file->block_size, model->block_size},
             {"n_layer", file->n_layer, model->n_layer},
             {"n_head", file->n_head, model->n_head},
             {"n_embd", file->n_embd, model->n_embd},
             {"bias", file->bias, model->bias}};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++)
        if (f[i].f != f[i].m) {
            ag_set_error(func,
                         "%s: the checkpoint's %s is %" PRId64
                         ", the model's %" PRId64,
                         path, f[i].name, f[i].f, f[i].m);
            return -1;
        }
    return 0;
}

/* Element i of a float tensor as a double. */
static double value_at(ag_tensor *t, int64_t i)
{
    return ag_type(t) == AG_F32 ? ((float *)ag_data(t))[i]
                                : ((double *)ag_data(t))[i];
}

/* The loaded tensors' invariants: lm_head equals wte, masks are tril. */
static int check_loaded(const char *func, const char *path, ag_params *p)
{
    ag_tensor *head = ag_params_find(p, "lm_head.weight");
    ag_tensor *wte = ag_params_find(p, "transformer.wte.weight");
    size_t bytes = (size_t)ag_numel(wte) * (ag_type(wte) == AG_F32 ? 4 : 8);
    if (memcmp(ag_data(head), ag_data(wte), bytes)) {
        ag_set_error(func,
                     "%s: lm_head.weight differs from transformer.wte.weight "
                     "(the model ties them)",
                     path);
        return -1;
    }
    for (int i = 0; i < ag_params_count(p); i++) {
        const char *name = ag_params_name(p, i);
        size_t len = strlen(name);
        if (len < 10 || strcmp(name + len - 10, ".attn.bias")) continue;
        ag_tensor *mask = ag_params_tensor(p, i);
        const int64_t n = ag_shape(mask)[3];
        for (int64_t r = 0; r < n; r++)
            for (int64_t s = 0; s < n; s++)
                if (value_at(mask, r * n + s) != (s <= r)) {
                    ag_set_error(func,
                                 "%s: %s[0,0,%" PRId64 ",%" PRId64
                                 "] is %g, not the causal mask's %d",
                                 path, name, r, s, value_at(mask, r * n + s),
                                 s <= r);
                    return -1;
                }
    }
    return 0;
}

/* Copies the values of each tensor of `from` into the tensor of `to` at
 * the same place (two sets of the same names, dtypes and shapes). */
static void copy_values(const ag_params *to, const ag_params *from)
{
    for (int i = 0; i < ag_params_count(to); i++) {
        ag_tensor *t = ag_params_tensor(to, i);
        memcpy(ag_data(t), ag_data(ag_params_tensor(from, i)),
               (size_t)ag_numel(t) * (ag_type(t) == AG_F32 ? 4 : 8));
    }
}

int gpt_copy(gpt *to, const gpt *from)
{
    if (!to || !from) {
        ag_set_error("gpt_copy", "needs two models; got %s, %s",
                     to ? "a model" : "to NULL",
                     from ? "a model" : "from NULL");
        return -1;
    }
    if (to->dtype != from->dtype) {
        ag_set_error("gpt_copy", "models of dtypes %s and %s",
                     ag_dtype_name(to->dtype), ag_dtype_name(from->dtype));
        return -1;
    }
    if (same_config("gpt_copy", "the model copied", &from->config, &to->config))
        return -1;
    copy_values(ag_module_state(to->root), ag_module_state(from->root));
    return 0;
}

int gpt_load(gpt *m, const char *path)
{
    const char *func = "gpt_load";
    if (!m || !path) {
        ag_set_error(func, "needs a model and a path; got %s, %s",
                     m ? "a model" : "model NULL", path ? path : "path NULL");
        return -1;
    }
    ag_arena *a = ag_arena_new();
    int rc = -1;
    const char *const *meta = a ? ag_load_safetensors_metadata(a, path) : NULL;
    gpt_config file;
    if (!meta) {
        ag_set_error(func, "%s", ag_last_error());
        goto done;
    }
    if (parse_config(func, path, meta, &file) ||
        same_config(func, path, &file, &m->config))
        goto done;
    ag_params *scratch = checkpoint_set(a, m, false);
    if (!scratch || ag_load_safetensors(path, scratch)) {
        ag_set_error(func, "%s", ag_last_error());
        goto done;
    }
    if (check_loaded(func, path, scratch)) goto done;
    copy_values(ag_module_state(m->root), scratch);
    rc = 0;
done:
    ag_arena_free(a);
    return rc;
}

/* ---- inference with a KV cache ---- */

struct gpt_cache {
    gpt *m;
    int64_t capacity, len;
    int32_t *tokens; /* the len tokens in the cache */
    void *k, *v;     /* (n_layer, H, capacity, D) each */
    /* a prefill's working rows, capacity of each: */
    void *x, *h, *qkv, *att,
        *fc;           /* (.., C), (.., C), (.., 3C), (.., C), (.., 4C) */
    void *scores;      /* (capacity, capacity) */
    void *logits;      /* (V) in the model's dtype */
    float *logits_f32; /* (V) */
    bool has_logits;
};

#define REAL float
#define SUFFIX f32
#define GEMM cblas_sgemm
#include "gpt_cache_kernels.h"
#undef REAL
#undef SUFFIX
#undef GEMM
#define REAL double
#define SUFFIX f64
#define GEMM cblas_dgemm
#include "gpt_cache_kernels.h"
#undef REAL
#undef SUFFIX
#undef GEMM

gpt_cache *gpt_cache_new(ag_arena *a, gpt *m, int64_t capacity)
{
    const char *func = "gpt_cache_new";
    if (!a || !m) {
        ag_set_error(func, "needs an arena and a model; got %s, %s",
                     a ? "an arena" : "arena NULL",
                     m ? "a model" : "model NULL");
        return NULL;
    }
    const gpt_config *cfg = &m->config;
    if (capacity < 1 || capacity > cfg->block_size) {
        ag_set_error(func,
                     "capacity %" PRId64 " must be in [1, block_size = %" PRId64
                     "]",
                     capacity, cfg->block_size);
        return NULL;
    }
    const size_t r = m->dtype == AG_F32 ? sizeof(float) : sizeof(double);
    const size_t n = (size_t)capacity, C = (size_t)cfg->n_embd;
    const size_t kv = (size_t)cfg->n_layer * n * C * r;
    gpt_cache *c = ag_arena_alloc(a, sizeof *c);
    if (!c) return NULL;
    c->m = m;
    c->capacity = capacity;
    c->tokens = ag_arena_alloc(a, n * sizeof *c->tokens);
    c->k = ag_arena_alloc(a, kv);
    c->v = ag_arena_alloc(a, kv);
    c->x = ag_arena_alloc(a, n * C * r);
    c->h = ag_arena_alloc(a, n * C * r);
    c->qkv = ag_arena_alloc(a, 3 * n * C * r);
    c->att = ag_arena_alloc(a, n * C * r);
    c->fc = ag_arena_alloc(a, 4 * n * C * r);
    c->scores = ag_arena_alloc(a, n * n * r);
    c->logits = ag_arena_alloc(a, (size_t)cfg->vocab_size * r);
    c->logits_f32 = ag_arena_alloc(a, (size_t)cfg->vocab_size * sizeof(float));
    if (!c->tokens || !c->k || !c->v || !c->x || !c->h || !c->qkv || !c->att ||
        !c->fc || !c->scores || !c->logits || !c->logits_f32) {
        ag_set_error(func, "%s", ag_last_error());
        return NULL;
    }
    return c;
}

void gpt_cache_reset(gpt_cache *c)
{
    if (!c) return;
    c->len = 0;
    c->has_logits = false;
}

int64_t gpt_cache_len(const gpt_cache *c)
{
    return c ? c->len : 0;
}

int64_t gpt_cache_capacity(const gpt_cache *c)
{
    return c ? c->capacity : 0;
}

/* Runs n checked tokens after the cache's len; the logits of the last. */
static const float *feed_tokens(gpt_cache *c, const int32_t *ids, int64_t n)
{
    memmove(c->tokens + c->len, ids, (size_t)n * sizeof *ids);
    if (c->m->dtype == AG_F32)
        feed_f32(c, n);
    else
        feed_f64(c, n);
    c->len += n;
    c->has_logits = true;
    return c->logits_f32;
}

/* Checks ids[0..n) against the vocabulary: 0, or -1 with an error. */
static int check_cache_ids(const char *func, const gpt_cache *c,
                           const int32_t *ids, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->m->config.vocab_size) {
            ag_set_error(func,
                         "ids[%" PRId64 "] = %" PRId32
                         " is outside the vocabulary [0, %" PRId64 ")",
                         i, ids[i], c->m->config.vocab_size);
            return -1;
        }
    return 0;
}

const float *gpt_cache_feed(gpt_cache *c, const int32_t *ids, int64_t n)
{
    const char *func = "gpt_cache_feed";
    if (!c || !ids) {
        ag_set_error(func, "needs a cache and ids; got %s, %s",
                     c ? "a cache" : "cache NULL", ids ? "ids" : "ids NULL");
        return NULL;
    }
    if (n < 1 || n > c->capacity - c->len) {
        ag_set_error(func,
                     "%" PRId64 " tokens after the %" PRId64
                     " in the cache: need 1 or more, %" PRId64
                     " at most (capacity %" PRId64 ")",
                     n, c->len, c->capacity - c->len, c->capacity);
        return NULL;
    }
    if (check_cache_ids(func, c, ids, n)) return NULL;
    return feed_tokens(c, ids, n);
}

const float *gpt_cache_push(gpt_cache *c, int32_t id)
{
    const char *func = "gpt_cache_push";
    if (!c) {
        ag_set_error(func, "cache is NULL");
        return NULL;
    }
    if (check_cache_ids(func, c, &id, 1)) return NULL;
    if (c->len < c->capacity) return feed_tokens(c, &id, 1);
    /* full: the oldest token leaves, every position moves, so the keys are
     * rebuilt by one prefill of the window */
    memmove(c->tokens, c->tokens + 1,
            (size_t)(c->capacity - 1) * sizeof *c->tokens);
    c->tokens[c->capacity - 1] = id;
    c->len = 0;
    return feed_tokens(c, c->tokens, c->capacity);
}

const double *gpt_cache_logits_f64(const gpt_cache *c)
{
    if (!c || c->m->dtype != AG_F64 || !c->has_logits) return NULL;
    return c->logits;
}
