/* rnn.c: the recurrent modules nn.LSTM and nn.GRU (several layers,
 * batch_first or not), with PyTorch's parameter names (weight_ih_l0,
 * weight_hh_l0, bias_ih_l0, bias_hh_l0, ...), gate order and
 * initialisation (every weight and bias U(-1/sqrt(H), 1/sqrt(H))). Shapes:
 * N batch, T time, I input features, H hidden features, L layers.
 *
 * Each layer runs as ops, so gradients (of any order) come from the ops'
 * rules: the input part of every gate for all time steps at once, one
 * product (N T, I) @ W_ih^T, then per step one product with W_hh and the
 * gates' elementwise arithmetic:
 *   LSTM: [i f g o] = x W_ih^T + b_ih + h W_hh^T + b_hh
 *         c' = sigmoid(f) c + sigmoid(i) tanh(g),  h' = sigmoid(o) tanh(c')
 *   GRU:  [r z n] parts a = x W_ih^T + b_ih, b = h W_hh^T + b_hh
 *         r = sigmoid(a_r + b_r), z = sigmoid(a_z + b_z)
 *         n = tanh(a_n + r b_n),  h' = (1 - z) n + z h */
#include "../internal.h"

#include <math.h>
#include <stdio.h>

typedef struct {
    bool gru;
    int64_t input, hidden;
    int layers, gates; /* gates: 4 (LSTM) or 3 (GRU) */
    bool batch_first;
    ag_tensor **w_ih, **w_hh, **b_ih, **b_hh; /* per layer */
    const char *name;
} rnn_module;

/* Gate k of a (N, gates H) tensor: its columns [k H, (k + 1) H). */
static ag_tensor *gate(ag_arena *a, ag_tensor *g, int k, int64_t h)
{
    return ag_slice(a, g, 1, k * h, (k + 1) * h, 1);
}

/* One layer over the whole sequence x (N, T, I_layer): returns the hidden
 * states (N, T, H) and sets *h_last (and *c_last for an LSTM) to the last
 * step's, from h0 and c0 (N, H; NULL: zeros). */
static ag_tensor *run_layer(const rnn_module *r, ag_arena *a, int l,
                            ag_tensor *x, ag_tensor *h, ag_tensor *c,
                            ag_tensor **h_last, ag_tensor **c_last)
{
    int64_t n = x->shape[0], t_len = x->shape[1], in = x->shape[2];
    int64_t hd = r->hidden, gh = r->gates * hd;
    /* the input part of every step in one product: (N T, gates H) */
    ag_tensor *xw =
        ag_linear(a, ag_reshape(a, x, 2, (int64_t[]){n * t_len, in}),
                  r->w_ih[l], r->b_ih[l]);
    xw = ag_reshape(a, xw, 3, (int64_t[]){n, t_len, gh});
    if (!xw) return NULL;
    if (!h) h = ag_zeros(a, x->dtype, 2, (int64_t[]){n, hd});
    if (!r->gru && !c) c = ag_zeros(a, x->dtype, 2, (int64_t[]){n, hd});
    ag_tensor *small[64], **steps = small;
    if (t_len > 64) {
        steps = ag__arena_alloc(a, (size_t)t_len * sizeof *steps,
                                _Alignof(ag_tensor *));
        if (!steps) {
            ag__error(r->name, "out of memory");
            return NULL;
        }
    }
    for (int64_t t = 0; t < t_len && h; t++) {
        ag_tensor *xt = ag_reshape(a, ag_slice(a, xw, 1, t, t + 1, 1), 2,
                                   (int64_t[]){n, gh});
        ag_tensor *hw = ag_linear(a, h, r->w_hh[l], r->b_hh[l]);
        if (!r->gru) {
            ag_tensor *g = ag_add(a, xt, hw);
            ag_tensor *i = ag_sigmoid(a, gate(a, g, 0, hd));
            ag_tensor *f = ag_sigmoid(a, gate(a, g, 1, hd));
            ag_tensor *cand = ag_tanh(a, gate(a, g, 2, hd));
            ag_tensor *o = ag_sigmoid(a, gate(a, g, 3, hd));
            c = ag_add(a, ag_mul(a, f, c), ag_mul(a, i, cand));
            h = ag_mul(a, o, ag_tanh(a, c));
        } else {
            ag_tensor *rg = ag_sigmoid(
                a, ag_add(a, gate(a, xt, 0, hd), gate(a, hw, 0, hd)));
            ag_tensor *z = ag_sigmoid(
                a, ag_add(a, gate(a, xt, 1, hd), gate(a, hw, 1, hd)));
            ag_tensor *cand =
                ag_tanh(a, ag_add(a, gate(a, xt, 2, hd),
                                  ag_mul(a, rg, gate(a, hw, 2, hd))));
            /* h' = n + z (h - n) = (1 - z) n + z h */
            h = ag_add(a, cand, ag_mul(a, z, ag_sub(a, h, cand)));
        }
        steps[t] = h;
    }
    if (!h) return NULL;
    *h_last = h;
    if (c_last) *c_last = c;
    return ag_stack(a, (int)t_len, steps, 1);
}

/* Checks an initial state: NULL, or (L, N, H) of x's dtype. */
static int check_state(const rnn_module *r, const char *what,
                       const ag_tensor *s, const ag_tensor *x, int64_t n)
{
    if (!s) return 0;
    if (s->dtype == x->dtype && s->ndim == 3 && s->shape[0] == r->layers &&
        s->shape[1] == n && s->shape[2] == r->hidden)
        return 0;
    char bs[AG_SHAPE_STR_MAX];
    ag__error(r->name, "%s is %s %s; it must be %s (%d,%lld,%lld)", what,
              ag_dtype_name(s->dtype), ag__shape_str(bs, s->ndim, s->shape),
              ag_dtype_name(x->dtype), r->layers, (long long)n,
              (long long)r->hidden);
    return -1;
}

/* Layer l's slice (N, H) of an (L, N, H) state, or NULL for none. */
static ag_tensor *layer_state(ag_arena *a, ag_tensor *s, int l)
{
    if (!s) return NULL;
    ag_tensor *part = ag_slice(a, s, 0, l, l + 1, 1);
    return ag_reshape(a, part, 2, (int64_t[]){s->shape[1], s->shape[2]});
}

static ag_tensor *rnn_run(ag_module *m, ag_arena *a, ag_tensor *x,
                          ag_tensor *h0, ag_tensor *c0, ag_tensor **hn,
                          ag_tensor **cn)
{
    rnn_module *r = ag_module_self(m);
    if (!x) {
        ag__null_input(r->name, 0);
        return NULL;
    }
    char bx[AG_SHAPE_STR_MAX];
    if (x->ndim != 3 || x->shape[2] != r->input || x->dtype == AG_I32) {
        ag__error(r->name,
                  "expected a 3-D %s input of %lld features, %s, got %s %s",
                  r->batch_first ? "(N,T,I)" : "(T,N,I)", (long long)r->input,
                  ag_dtype_name(r->w_ih[0]->dtype), ag_dtype_name(x->dtype),
                  ag__shape_str(bx, x->ndim, x->shape));
        return NULL;
    }
    if (r->batch_first == false) x = ag_transpose(a, x, 0, 1);
    if (!x) return NULL;
    int64_t n = x->shape[0];
    if (check_state(r, "h0", h0, x, n) || check_state(r, "c0", c0, x, n))
        return NULL;
    ag_tensor *small_h[16], *small_c[16], **hs = small_h, **cs = small_c;
    if (r->layers > 16) {
        hs = ag__arena_alloc(a, (size_t)r->layers * sizeof *hs,
                             _Alignof(ag_tensor *));
        cs = ag__arena_alloc(a, (size_t)r->layers * sizeof *cs,
                             _Alignof(ag_tensor *));
        if (!hs || !cs) {
            ag__error(r->name, "out of memory");
            return NULL;
        }
    }
    ag_tensor *y = x;
    for (int l = 0; l < r->layers && y; l++)
        y = run_layer(r, a, l, y, layer_state(a, h0, l), layer_state(a, c0, l),
                      &hs[l], r->gru ? NULL : &cs[l]);
    if (!y) return NULL;
    if (hn && !(*hn = ag_stack(a, r->layers, hs, 0))) return NULL;
    if (cn && !r->gru && !(*cn = ag_stack(a, r->layers, cs, 0))) return NULL;
    return r->batch_first ? y : ag_transpose(a, y, 0, 1);
}

static ag_tensor *rnn_forward(ag_module *m, ag_arena *step, ag_tensor *x)
{
    return rnn_run(m, step, x, NULL, NULL, NULL, NULL);
}

static const ag_module_type lstm_type = {"LSTM", rnn_forward};
static const ag_module_type gru_type = {"GRU", rnn_forward};

static ag_module *rnn_new(const char *func, bool gru, ag_arena *a, ag_dtype dt,
                          int64_t input, int64_t hidden, int layers,
                          bool batch_first, ag_rng *rng)
{
    int gates = gru ? 3 : 4;
    if (!a || !rng || (dt != AG_F32 && dt != AG_F64) || input < 1 ||
        hidden < 1 || layers < 1 || hidden > INT64_MAX / 4) {
        ag__error(func,
                  "needs an arena, an rng, a float dtype, input and hidden "
                  "sizes >= 1 and layers >= 1; got %s, %s, %s, %lld, %lld, "
                  "%d",
                  a ? "an arena" : "arena NULL", rng ? "an rng" : "rng NULL",
                  ag_dtype_name(dt), (long long)input, (long long)hidden,
                  layers);
        return NULL;
    }
    for (int l = 0; l < layers; l++) { /* every weight can exist */
        int64_t numel;
        size_t bytes;
        int64_t in = l ? hidden : input;
        if (ag__check_size(func, dt, 2, (int64_t[]){gates * hidden, in}, &numel,
                           &bytes) ||
            ag__check_size(func, dt, 2, (int64_t[]){gates * hidden, hidden},
                           &numel, &bytes))
            return NULL;
    }
    rnn_module *r = ag_arena_alloc(a, sizeof *r);
    ag_tensor **w =
        r ? ag_arena_alloc(a, 4 * (size_t)layers * sizeof *w) : NULL;
    if (!w) return NULL;
    *r = (rnn_module){.gru = gru,
                      .input = input,
                      .hidden = hidden,
                      .layers = layers,
                      .gates = gates,
                      .batch_first = batch_first,
                      .w_ih = w,
                      .w_hh = w + layers,
                      .b_ih = w + 2 * layers,
                      .b_hh = w + 3 * layers,
                      .name = gru ? "GRU" : "LSTM"};
    ag_module *m = ag_module_new(a, gru ? &gru_type : &lstm_type, r);
    if (!m) return NULL;
    double bound = 1 / sqrt((double)hidden);
    int64_t gh = gates * hidden;
    for (int l = 0; l < layers; l++) {
        int64_t in = l ? hidden : input;
        ag_tensor *t[4] = {ag_zeros(a, dt, 2, (int64_t[]){gh, in}),
                           ag_zeros(a, dt, 2, (int64_t[]){gh, hidden}),
                           ag_zeros(a, dt, 1, &gh), ag_zeros(a, dt, 1, &gh)};
        static const char *const names[4] = {"weight_ih", "weight_hh",
                                             "bias_ih", "bias_hh"};
        for (int k = 0; k < 4; k++) { /* PyTorch's order of draws */
            char name[32];
            snprintf(name, sizeof name, "%s_l%d", names[k], l);
            if (!t[k] || ag_init_uniform(t[k], -bound, bound, rng) ||
                ag_module_add_parameter(m, name, t[k]))
                return NULL;
            w[k * layers + l] = t[k];
        }
    }
    return m;
}

ag_module *ag_nn_lstm(ag_arena *a, ag_dtype dt, int64_t input_size,
                      int64_t hidden_size, int num_layers, bool batch_first,
                      ag_rng *rng)
{
    return rnn_new("ag_nn_lstm", false, a, dt, input_size, hidden_size,
                   num_layers, batch_first, rng);
}

ag_module *ag_nn_gru(ag_arena *a, ag_dtype dt, int64_t input_size,
                     int64_t hidden_size, int num_layers, bool batch_first,
                     ag_rng *rng)
{
    return rnn_new("ag_nn_gru", true, a, dt, input_size, hidden_size,
                   num_layers, batch_first, rng);
}

/* The type check of the two entry points below. */
static int check_rnn(const char *func, const ag_module *m, bool gru)
{
    const ag_module_type *want = gru ? &gru_type : &lstm_type;
    if (m && ag__module_type(m) == want) return 0;
    ag__error(func, "the module is %s, not %s",
              m ? ag_module_type_name(m) : "NULL", gru ? "a GRU" : "an LSTM");
    return -1;
}

ag_tensor *ag_nn_lstm_forward(ag_module *m, ag_arena *step, ag_tensor *x,
                              ag_tensor *h0, ag_tensor *c0, ag_tensor **hn,
                              ag_tensor **cn)
{
    if (check_rnn("ag_nn_lstm_forward", m, false)) return NULL;
    return rnn_run(m, step, x, h0, c0, hn, cn);
}

ag_tensor *ag_nn_gru_forward(ag_module *m, ag_arena *step, ag_tensor *x,
                             ag_tensor *h0, ag_tensor **hn)
{
    if (check_rnn("ag_nn_gru_forward", m, true)) return NULL;
    return rnn_run(m, step, x, h0, NULL, hn, NULL);
}
