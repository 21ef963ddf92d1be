/* test_gpt.c: the GPT model of examples/gpt/gpt.h against nanoGPT in
 * PyTorch (fixtures/gpt_{bias,nobias}*.safetensors, made by
 * fixtures/make_gpt_fixture.py): nanoGPT's checkpoint loads through
 * gpt_load, ag_module_state has its state_dict keys in order, and the
 * logits, the loss and every parameter's gradient agree within 1e-10 in
 * f64 and 1e-4 in f32, relative to the largest value of each tensor. Then
 * the KV cache against gpt_forward (token by token, in chunks, and as a
 * sliding window over three windows' worth of greedy generation, without
 * allocating), checkpoints saved and loaded back, and bad input of every
 * kind refused with an error that says why, changing nothing. */
#include "gpt.h"
#include <autograd.h>

#include "internal.h" /* ag__allocation_count */
#include "support.h"
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURE(name) AG_TEST_FIXTURES "/" name

static const char *const case_names[2] = {"gpt_bias", "gpt_nobias"};

static gpt_config small_config(bool bias)
{
    return (gpt_config){.vocab_size = 67,
                        .block_size = 16,
                        .n_layer = 2,
                        .n_head = 2,
                        .n_embd = 32,
                        .dropout = 0,
                        .bias = bias};
}

static gpt *make_model(ag_arena *a, ag_dtype dt, bool bias, uint64_t seed)
{
    gpt_config c = small_config(bias);
    gpt *m = gpt_new(a, dt, &c, seed);
    ck_assert_msg(m != NULL, "%s", ag_last_error());
    return m;
}

/* Asserts |got - want| <= tol * max|want| element by element. */
static void expect_close(const char *label, const char *what, ag_tensor *got,
                         ag_tensor *want, double tol)
{
    ck_assert_msg(got != NULL, "%s: no %s: %s", label, what, ag_last_error());
    ck_assert_int_eq(ag_numel(got), ag_numel(want));
    double scale = 0;
    for (int64_t i = 0; i < ag_numel(want); i++)
        scale = fmax(scale, fabs(tensor_at(want, i)));
    for (int64_t i = 0; i < ag_numel(want); i++) {
        double g = tensor_at(got, i), w = tensor_at(want, i);
        ck_assert_msg(fabs(g - w) <= tol * scale,
                      "%s (%s): %s[%lld] is %.17g, PyTorch %.17g (scale %g)",
                      label, ag_dtype_name(ag_type(got)), what, (long long)i, g,
                      w, scale);
    }
}

/* An AG_I32 copy of a float tensor of integers. */
static ag_tensor *as_ids(ag_arena *a, ag_tensor *t)
{
    ag_tensor *ids = ag_zeros(a, AG_I32, ag_ndim(t), ag_shape(t));
    for (int64_t i = 0; i < ag_numel(t); i++)
        ((int32_t *)ag_data(ids))[i] = (int32_t)tensor_at(t, i);
    return ids;
}

/* What PyTorch computed for a case: ids, targets (as f64), logits, loss and the
 * gradients named "grad.<parameter>", loaded into a of the shapes of m. */
static ag_params *load_expect(ag_arena *a, gpt *m, const char *name)
{
    ag_params *p = ag_params_new(a),
              *params = ag_module_parameters(gpt_module(m));
    const gpt_config *c = gpt_get_config(m);
    const int64_t bt[2] = {2, c->block_size},
                  btv[3] = {2, c->block_size, c->vocab_size};
    ck_assert_int_eq(ag_params_add(p, "ids", ag_zeros(a, AG_F64, 2, bt)), 0);
    ck_assert_int_eq(ag_params_add(p, "targets", ag_zeros(a, AG_F64, 2, bt)),
                     0);
    ck_assert_int_eq(ag_params_add(p, "logits", ag_zeros(a, AG_F64, 3, btv)),
                     0);
    ck_assert_int_eq(ag_params_add(p, "loss", ag_zeros(a, AG_F64, 0, NULL)), 0);
    for (int i = 0; i < ag_params_count(params); i++) {
        ag_tensor *t = ag_params_tensor(params, i);
        char key[AG_PARAM_NAME_MAX + 1];
        snprintf(key, sizeof key, "grad.%s", ag_params_name(params, i));
        ck_assert_int_eq(
            ag_params_add(p, key, ag_zeros(a, AG_F64, ag_ndim(t), ag_shape(t))),
            0);
    }
    char path[512];
    snprintf(path, sizeof path, "%s/%s_expect.safetensors", AG_TEST_FIXTURES,
             name);
    ck_assert_msg(ag_load_safetensors(path, p) == 0, "%s", ag_last_error());
    return p;
}

/* The case's nanoGPT weights in a model of dtype dt: loaded through
 * gpt_load in f64, copied value by value into f32. */
static gpt *torch_model(ag_arena *a, ag_dtype dt, int k)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.safetensors", AG_TEST_FIXTURES,
             case_names[k]);
    gpt *m64 = make_model(a, AG_F64, k == 0, 99);
    ck_assert_msg(gpt_load(m64, path) == 0, "%s", ag_last_error());
    if (dt == AG_F64) return m64;
    gpt *m = make_model(a, dt, k == 0, 99);
    ag_params *from = ag_module_state(gpt_module(m64)),
              *to = ag_module_state(gpt_module(m));
    for (int i = 0; i < ag_params_count(from); i++)
        for (int64_t j = 0; j < ag_numel(ag_params_tensor(to, i)); j++)
            tensor_set(ag_params_tensor(to, i), j,
                       tensor_at(ag_params_tensor(from, i), j));
    return m;
}

static void check_against_torch(ag_dtype dt, int k, double tol)
{
    ag_arena *a = ag_arena_new();
    gpt *m = torch_model(a, dt, k);
    ag_params *want = load_expect(a, m, case_names[k]);
    const char *label = case_names[k];

    /* the state_dict's keys, in order: ours, then the tied lm_head */
    const char *const *meta = ag_load_safetensors_metadata(
        a, k == 0 ? FIXTURE("gpt_bias_expect.safetensors")
                  : FIXTURE("gpt_nobias_expect.safetensors"));
    ck_assert_ptr_nonnull(meta);
    ck_assert_str_eq(meta[0], "state_dict");
    ag_params *state = ag_module_state(gpt_module(m));
    char keys[4096] = "";
    for (int i = 0; i < ag_params_count(state); i++) {
        strcat(keys, ag_params_name(state, i));
        strcat(keys, ",");
    }
    strcat(keys, "lm_head.weight");
    ck_assert_str_eq(keys, meta[1]);

    ag_tensor *ids = as_ids(a, ag_params_find(want, "ids")),
              *targets = as_ids(a, ag_params_find(want, "targets"));
    ag_tensor *logits = gpt_forward(m, a, ids);
    expect_close(label, "logits", logits, ag_params_find(want, "logits"), tol);
    ag_tensor *loss = gpt_loss(m, a, ids, targets);
    expect_close(label, "loss", loss, ag_params_find(want, "loss"), tol);
    ck_assert_msg(ag_backward(loss) == 0, "%s", ag_last_error());
    ag_params *params = ag_module_parameters(gpt_module(m));
    ck_assert_int_eq(ag_params_count(params),
                     k == 0 ? 2 + 12 * 2 + 2 : 2 + 6 * 2 + 1);
    for (int i = 0; i < ag_params_count(params); i++) {
        char key[AG_PARAM_NAME_MAX + 1];
        snprintf(key, sizeof key, "grad.%s", ag_params_name(params, i));
        expect_close(label, key, ag_grad(ag_params_tensor(params, i)),
                     ag_params_find(want, key), tol);
    }
    ag_arena_free(a);
}

START_TEST(test_torch_f64)
{
    check_against_torch(AG_F64, _i, 1e-10);
}
END_TEST

START_TEST(test_torch_f32)
{
    check_against_torch(AG_F32, _i, 1e-4);
}
END_TEST

/* ---- the KV cache against gpt_forward ---- */

/* gpt_forward's logits (1,T,V) over tokens[0..T) in eval mode, no graph. */
static ag_tensor *forward_of(ag_arena *a, gpt *m, const int32_t *tokens,
                             int64_t T)
{
    ag_tensor *ids = ag_from_data(a, AG_I32, 2, (int64_t[]){1, T}, tokens);
    bool was = ag_set_grad_enabled(false);
    ag_tensor *y = gpt_forward(m, a, ids);
    ag_set_grad_enabled(was);
    ck_assert_msg(y != NULL, "%s", ag_last_error());
    return y;
}

/* The cache's last logits (in the model's precision) against row t of
 * forward's (1,T,V) logits, within tol relative to max(1, |value|). */
static void expect_row(const gpt_cache *c, const float *got32, ag_tensor *fwd,
                       int64_t t, double tol, const char *what)
{
    const int64_t V = ag_shape(fwd)[2];
    const double *got64 = gpt_cache_logits_f64(c);
    ck_assert_ptr_nonnull(got32);
    for (int64_t j = 0; j < V; j++) {
        double g = got64 ? got64[j] : got32[j], w = tensor_at(fwd, t * V + j);
        ck_assert_msg(
            fabs(g - w) <= tol * fmax(1, fabs(w)),
            "%s: position %lld logit %lld: cache %.17g, forward %.17g", what,
            (long long)t, (long long)j, g, w);
        if (got64) ck_assert(got32[j] == (float)got64[j]);
    }
}

static int64_t argmax(const float *v, int64_t n)
{
    int64_t best = 0;
    for (int64_t j = 1; j < n; j++)
        if (v[j] > v[best]) best = j;
    return best;
}

static void check_cache_feed(ag_dtype dt, double tol)
{
    ag_arena *a = ag_arena_new();
    gpt *m = torch_model(a, dt, 0);
    ag_module_set_training(gpt_module(m), false);
    int32_t tokens[16];
    for (int i = 0; i < 16; i++) tokens[i] = (int32_t)((i * 37 + 11) % 67);
    ag_tensor *fwd = forward_of(a, m, tokens, 16);
    gpt_cache *c = gpt_cache_new(a, m, 16);
    ck_assert_msg(c != NULL, "%s", ag_last_error());
    /* token by token */
    for (int64_t t = 0; t < 16; t++) {
        expect_row(c, gpt_cache_feed(c, tokens + t, 1), fwd, t, tol,
                   "one at a time");
        ck_assert_int_eq(gpt_cache_len(c), t + 1);
    }
    /* in chunks of 3, 5 and 8: the last row of each */
    gpt_cache_reset(c);
    ck_assert_int_eq(gpt_cache_len(c), 0);
    const int64_t chunks[3] = {3, 5, 8};
    int64_t at = 0;
    for (int i = 0; i < 3; i++) {
        at += chunks[i];
        expect_row(c, gpt_cache_feed(c, tokens + at - chunks[i], chunks[i]),
                   fwd, at - 1, tol, "chunks");
    }
    /* full: one more is refused and changes nothing */
    ck_assert_ptr_null(gpt_cache_feed(c, tokens, 1));
    ck_assert_ptr_nonnull(strstr(ag_last_error(), "gpt_cache_feed"));
    ck_assert_int_eq(gpt_cache_len(c), 16);
    ag_arena_free(a);
}

START_TEST(test_cache_feed_f64)
{
    check_cache_feed(AG_F64, 1e-12);
}
END_TEST

START_TEST(test_cache_feed_f32)
{
    check_cache_feed(AG_F32, 1e-5);
}
END_TEST

/* Greedy generation through gpt_cache_push for three windows: each step's
 * logits are those of gpt_forward over the window's last tokens, and no
 * step allocates. */
static void check_fifo(ag_dtype dt, int64_t window, double tol)
{
    ag_arena *a = ag_arena_new(), *step = ag_arena_new();
    gpt *m = torch_model(a, dt, 1);
    gpt_cache *c = gpt_cache_new(a, m, window);
    ck_assert_msg(c != NULL, "%s", ag_last_error());
    int32_t seq[3 * 16 + 1] = {5};
    int64_t n = 1;
    const float *logits = gpt_cache_push(c, seq[0]);
    long allocations = 0;
    for (int64_t s = 0; s < 3 * window; s++) {
        int64_t len = n < window ? n : window;
        ck_assert_int_eq(gpt_cache_len(c), len);
        ag_tensor *fwd = forward_of(step, m, seq + n - len, len);
        expect_row(c, logits, fwd, len - 1, tol, "window");
        const int64_t V = ag_shape(fwd)[2];
        int64_t best = 0;
        for (int64_t j = 1; j < V; j++)
            if (tensor_at(fwd, (len - 1) * V + j) >
                tensor_at(fwd, (len - 1) * V + best))
                best = j;
        ck_assert_int_eq(argmax(logits, V), best);
        seq[n++] = (int32_t)best;
        ag_arena_reset(step);
        long before = ag__allocation_count();
        logits = gpt_cache_push(c, (int32_t)best);
        allocations += ag__allocation_count() - before;
    }
    ck_assert_int_eq(allocations, 0);
    ag_arena_free(step);
    ag_arena_free(a);
}

START_TEST(test_fifo_f64)
{
    check_fifo(AG_F64, 16, 1e-12);
    check_fifo(AG_F64, 5, 1e-12);
}
END_TEST

START_TEST(test_fifo_f32)
{
    check_fifo(AG_F32, 16, 1e-5);
    check_fifo(AG_F32, 5, 1e-5);
}
END_TEST

/* ---- checkpoints ---- */

/* A copy of every state value of m, to see that a failed load changed
 * nothing. */
static double *state_values(gpt *m, int64_t *count)
{
    ag_params *s = ag_module_state(gpt_module(m));
    int64_t n = ag_params_numel(s), k = 0;
    double *v = malloc((size_t)n * sizeof *v);
    for (int i = 0; i < ag_params_count(s); i++)
        for (int64_t j = 0; j < ag_numel(ag_params_tensor(s, i)); j++)
            v[k++] = tensor_at(ag_params_tensor(s, i), j);
    *count = n;
    return v;
}

static void expect_unchanged(gpt *m, const double *before, int64_t n)
{
    int64_t count;
    double *now = state_values(m, &count);
    ck_assert_int_eq(count, n);
    ck_assert_msg(!memcmp(now, before, (size_t)n * sizeof *now),
                  "a failed load changed the model");
    free(now);
}

START_TEST(test_save_load)
{
    test_dir_make("ag_gpt");
    ag_arena *a = ag_arena_new();
    for (int k = 0; k < 2; k++) {
        gpt_config cfg = small_config(k == 0);
        cfg.dropout = 0.25;
        gpt *m = gpt_new(a, AG_F32, &cfg, 1),
            *back = make_model(a, AG_F32, k == 0, 2);
        ck_assert_ptr_nonnull(m);
        ck_assert_msg(gpt_save(m, path_of("m.safetensors")) == 0, "%s",
                      ag_last_error());
        expect_only("m.safetensors");
        gpt_config read;
        ck_assert_msg(gpt_read_config(path_of("m.safetensors"), &read) == 0,
                      "%s", ag_last_error());
        ck_assert(read.vocab_size == cfg.vocab_size &&
                  read.block_size == cfg.block_size &&
                  read.n_layer == cfg.n_layer && read.n_head == cfg.n_head &&
                  read.n_embd == cfg.n_embd && read.dropout == 0.25 &&
                  read.bias == cfg.bias);
        /* loads into a model of the same design drawn from another seed,
         * dropout aside */
        ck_assert_msg(gpt_load(back, path_of("m.safetensors")) == 0, "%s",
                      ag_last_error());
        int64_t n1, n2;
        double *v1 = state_values(m, &n1), *v2 = state_values(back, &n2);
        ck_assert_int_eq(n1, n2);
        ck_assert(!memcmp(v1, v2, (size_t)n1 * sizeof *v1));
        free(v1);
        free(v2);
    }
    ag_arena_free(a);
    test_dir_remove();
}
END_TEST

/* gpt_copy: the same state as the source, bit for bit; another config or
 * dtype refused, naming it, with the target unchanged. */
START_TEST(test_copy)
{
    ag_arena *a = ag_arena_new();
    gpt *from = make_model(a, AG_F64, true, 1),
        *to = make_model(a, AG_F64, true, 2);
    ck_assert_msg(gpt_copy(to, from) == 0, "%s", ag_last_error());
    int64_t n1, n2;
    double *v1 = state_values(from, &n1), *v2 = state_values(to, &n2);
    ck_assert_int_eq(n1, n2);
    ck_assert(!memcmp(v1, v2, (size_t)n1 * sizeof *v1));
    free(v2);
    gpt_config wide = small_config(true);
    wide.n_embd = 48;
    gpt *other = gpt_new(a, AG_F64, &wide, 3);
    gpt *single = make_model(a, AG_F32, true, 3);
    ck_assert_ptr_nonnull(other);
    ck_assert_int_eq(gpt_copy(other, from), -1);
    ck_assert_msg(strstr(ag_last_error(), "gpt_copy") &&
                      strstr(ag_last_error(), "n_embd is 32, the model's 48"),
                  "%s", ag_last_error());
    ck_assert_int_eq(gpt_copy(single, from), -1);
    ck_assert_msg(strstr(ag_last_error(), "dtypes f32 and f64"), "%s",
                  ag_last_error());
    ck_assert_int_eq(gpt_copy(NULL, from), -1);
    ck_assert_int_eq(gpt_copy(to, NULL), -1);
    /* the refused copies changed nothing */
    v2 = state_values(to, &n2);
    ck_assert(!memcmp(v1, v2, (size_t)n1 * sizeof *v1));
    free(v1);
    free(v2);
    ag_arena_free(a);
}
END_TEST

START_TEST(test_load_refuses)
{
    test_dir_make("ag_gpt_bad");
    ag_arena *a = ag_arena_new();
    gpt *m = make_model(a, AG_F64, true, 3);
    int64_t n;
    double *before = state_values(m, &n);
    /* another configuration, named with both values */
    const struct {
        const char *file, *text;
    } others[] = {
        {FIXTURE("gpt_nobias.safetensors"), "bias is 0, the model's 1"}};
    for (size_t i = 0; i < sizeof others / sizeof *others; i++) {
        ck_assert_int_eq(gpt_load(m, others[i].file), -1);
        ck_assert_msg(strstr(ag_last_error(), others[i].text), "%s",
                      ag_last_error());
        expect_unchanged(m, before, n);
    }
    ag_arena *b = ag_arena_new();
    gpt_config wide = small_config(true);
    wide.n_layer = 3;
    gpt *three = gpt_new(b, AG_F64, &wide, 1);
    ck_assert_int_eq(gpt_save(three, path_of("three.safetensors")), 0);
    ck_assert_int_eq(gpt_load(m, path_of("three.safetensors")), -1);
    ck_assert_msg(strstr(ag_last_error(), "n_layer is 3, the model's 2"), "%s",
                  ag_last_error());
    expect_unchanged(m, before, n);
    /* another dtype: the key and both dtypes */
    gpt *f32 = make_model(b, AG_F32, true, 1);
    ck_assert_int_eq(gpt_save(f32, path_of("f32.safetensors")), 0);
    ck_assert_int_eq(gpt_load(m, path_of("f32.safetensors")), -1);
    ck_assert_msg(strstr(ag_last_error(), "gpt_load") &&
                      strstr(ag_last_error(), "transformer.wte.weight"),
                  "%s", ag_last_error());
    expect_unchanged(m, before, n);
    /* truncated at several lengths, and one flipped byte in the header */
    size_t size;
    unsigned char *bytes = read_bytes(FIXTURE("gpt_bias.safetensors"), &size);
    const size_t cuts[] = {0, 7, 100, size / 2, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        write_bytes(path_of("cut.safetensors"), bytes, cuts[i]);
        ck_assert_int_eq(gpt_load(m, path_of("cut.safetensors")), -1);
        ck_assert_msg(!strncmp(ag_last_error(), "gpt_load: ", 10), "%s",
                      ag_last_error());
        expect_unchanged(m, before, n);
    }
    bytes[20] = '{';
    write_bytes(path_of("bad.safetensors"), bytes, size);
    ck_assert_int_eq(gpt_load(m, path_of("bad.safetensors")), -1);
    expect_unchanged(m, before, n);
    free(bytes);
    /* an untied head: lm_head.weight not wte's */
    gpt *other = make_model(b, AG_F64, true, 1);
    ag_params *p = ag_params_new(b);
    ag_params_extend(p, NULL, ag_module_state(gpt_module(other)));
    ag_tensor *head = ag_zeros(b, AG_F64, 2, (int64_t[]){67, 32});
    ag_params_add(p, "lm_head.weight", head);
    const char *meta[] = {"vocab_size", "67",   "block_size", "16",
                          "n_layer",    "2",    "n_head",     "2",
                          "n_embd",     "32",   "dropout",    "0",
                          "bias",       "true", NULL};
    ck_assert_int_eq(
        ag_save_safetensors(path_of("untied.safetensors"), p, meta), 0);
    ck_assert_int_eq(gpt_load(m, path_of("untied.safetensors")), -1);
    ck_assert_msg(strstr(ag_last_error(), "lm_head.weight differs"), "%s",
                  ag_last_error());
    expect_unchanged(m, before, n);
    /* no config in the metadata */
    gpt_config c;
    ck_assert_int_eq(gpt_read_config(FIXTURE("arange.safetensors"), &c), -1);
    ck_assert_msg(strstr(ag_last_error(), "gpt_read_config") &&
                      strstr(ag_last_error(), "vocab_size"),
                  "%s", ag_last_error());
    ck_assert_int_eq(gpt_load(m, FIXTURE("arange.safetensors")), -1);
    expect_unchanged(m, before, n);
    ck_assert_int_eq(gpt_load(m, path_of("missing.safetensors")), -1);
    ck_assert_int_eq(gpt_load(NULL, FIXTURE("gpt_bias.safetensors")), -1);
    ck_assert_int_eq(gpt_load(m, NULL), -1);
    ck_assert_int_eq(gpt_save(NULL, path_of("x")), -1);
    ck_assert_int_eq(gpt_save(m, NULL), -1);
    ck_assert_int_eq(gpt_read_config(NULL, &c), -1);
    ck_assert_int_eq(gpt_read_config(FIXTURE("gpt_bias.safetensors"), NULL),
                     -1);
    /* and the real one still loads */
    ck_assert_msg(gpt_load(m, FIXTURE("gpt_bias.safetensors")) == 0, "%s",
                  ag_last_error());
    free(before);
    ag_arena_free(b);
    ag_arena_free(a);
    test_dir_remove();
}
END_TEST

/* ---- bad input to the model and the cache ---- */

START_TEST(test_bad_input)
{
    ag_arena *a = ag_arena_new();
    gpt_config c = small_config(true);
    /* bad configs */
    gpt_config bad[5];
    for (int i = 0; i < 5; i++) bad[i] = c;
    bad[0].n_embd = 30; /* not a multiple of 4 heads */
    bad[0].n_head = 4;
    bad[1].vocab_size = 0;
    bad[2].block_size = -1;
    bad[3].dropout = 1;
    bad[4].n_layer = 0;
    const char *says[5] = {"not a multiple of n_head", "vocab_size = 0",
                           "block_size = -1", "dropout = 1", "n_layer = 0"};
    for (int i = 0; i < 5; i++) {
        ck_assert_ptr_null(gpt_new(a, AG_F32, &bad[i], 1));
        ck_assert_msg(strstr(ag_last_error(), "gpt_new") &&
                          strstr(ag_last_error(), says[i]),
                      "%s", ag_last_error());
    }
    ck_assert_ptr_null(gpt_new(NULL, AG_F32, &c, 1));
    ck_assert_ptr_null(gpt_new(a, AG_F32, NULL, 1));
    ck_assert_ptr_null(gpt_new(a, AG_I32, &c, 1));
    ck_assert_ptr_null(gpt_get_config(NULL));
    ck_assert_ptr_null(gpt_module(NULL));

    gpt *m = gpt_new(a, AG_F32, &c, 1);
    ck_assert_ptr_nonnull(m);
    /* an id out of the vocabulary: its position and value */
    int32_t ids[2 * 8];
    for (int i = 0; i < 16; i++) ids[i] = i;
    ids[8 + 3] = 67;
    ag_tensor *t = ag_from_data(a, AG_I32, 2, (int64_t[]){2, 8}, ids);
    ck_assert_ptr_null(gpt_forward(m, a, t));
    ck_assert_msg(strstr(ag_last_error(), "id 67 at (1, 3)"), "%s",
                  ag_last_error());
    ids[8 + 3] = -2;
    t = ag_from_data(a, AG_I32, 2, (int64_t[]){2, 8}, ids);
    ck_assert_ptr_null(gpt_loss(m, a, t, t));
    ck_assert_msg(strstr(ag_last_error(), "id -2 at (1, 3)"), "%s",
                  ag_last_error());
    /* T > block_size, wrong dtype or rank, NULLs */
    int32_t long_ids[17] = {0};
    t = ag_from_data(a, AG_I32, 2, (int64_t[]){1, 17}, long_ids);
    ck_assert_ptr_null(gpt_forward(m, a, t));
    ck_assert_msg(strstr(ag_last_error(), "block_size = 16"), "%s",
                  ag_last_error());
    ck_assert_ptr_null(
        gpt_forward(m, a, ag_zeros(a, AG_F32, 2, (int64_t[]){1, 4})));
    ck_assert_ptr_null(
        gpt_forward(m, a, ag_zeros(a, AG_I32, 1, (int64_t[]){4})));
    ck_assert_ptr_null(gpt_forward(NULL, a, t));
    ck_assert_ptr_null(gpt_forward(m, NULL, t));
    ck_assert_ptr_null(gpt_forward(m, a, NULL));
    ag_tensor *good = ag_zeros(a, AG_I32, 2, (int64_t[]){2, 4});
    ck_assert_ptr_null(gpt_loss(m, a, good, NULL));
    ck_assert_ptr_null(
        gpt_loss(m, a, good, ag_zeros(a, AG_I32, 2, (int64_t[]){2, 5})));
    ck_assert_msg(strstr(ag_last_error(), "targets"), "%s", ag_last_error());
    ag_tensor *t99 = ag_full(a, AG_I32, 2, (int64_t[]){2, 4}, 99);
    ck_assert_ptr_null(gpt_loss(m, a, good, t99));
    ag_tensor *ignored = ag_full(a, AG_I32, 2, (int64_t[]){2, 4}, -1);
    ck_assert_ptr_null(gpt_loss(m, a, good, ignored));
    ck_assert_ptr_nonnull(gpt_loss(m, a, good, good));

    /* the cache */
    ck_assert_ptr_null(gpt_cache_new(a, m, 17));
    ck_assert_msg(strstr(ag_last_error(), "capacity 17"), "%s",
                  ag_last_error());
    ck_assert_ptr_null(gpt_cache_new(a, m, 0));
    ck_assert_ptr_null(gpt_cache_new(NULL, m, 4));
    ck_assert_ptr_null(gpt_cache_new(a, NULL, 4));
    gpt_cache *cache = gpt_cache_new(a, m, 4);
    ck_assert_ptr_nonnull(cache);
    ck_assert_ptr_null(gpt_cache_logits_f64(cache)); /* f32 */
    const int32_t some[5] = {1, 2, 70, 3, 4};
    ck_assert_ptr_null(gpt_cache_feed(cache, some, 3));
    ck_assert_msg(strstr(ag_last_error(), "ids[2] = 70"), "%s",
                  ag_last_error());
    ck_assert_int_eq(gpt_cache_len(cache), 0);
    ck_assert_ptr_null(gpt_cache_feed(cache, some, 0));
    ck_assert_ptr_null(gpt_cache_feed(cache, some + 3, 5));
    ck_assert_ptr_null(gpt_cache_feed(cache, NULL, 1));
    ck_assert_ptr_null(gpt_cache_feed(NULL, some, 1));
    ck_assert_ptr_null(gpt_cache_push(NULL, 1));
    ck_assert_ptr_null(gpt_cache_push(cache, -1));
    ck_assert_ptr_null(gpt_cache_push(cache, 67));
    ck_assert_int_eq(gpt_cache_len(cache), 0);
    ck_assert_ptr_nonnull(gpt_cache_feed(cache, some, 2));
    ck_assert_int_eq(gpt_cache_len(cache), 2);
    ck_assert_int_eq(gpt_cache_len(NULL), 0);
    gpt_cache_reset(NULL);
    ag_arena_free(a);
}
END_TEST

/* Dropout applies in training mode only: two training passes differ,
 * evaluation passes are equal and match a model without dropout. */
START_TEST(test_dropout_mode)
{
    ag_arena *a = ag_arena_new();
    gpt_config c = small_config(true);
    c.dropout = 0.5;
    gpt *m = gpt_new(a, AG_F64, &c, 4), *plain = make_model(a, AG_F64, true, 4);
    ag_tensor *ids = ag_zeros(a, AG_I32, 2, (int64_t[]){1, 8});
    for (int i = 0; i < 8; i++) ((int32_t *)ag_data(ids))[i] = 3 * i;
    ag_tensor *y1 = gpt_forward(m, a, ids), *y2 = gpt_forward(m, a, ids);
    ck_assert(memcmp(ag_data(y1), ag_data(y2), 8 * 67 * sizeof(double)) != 0);
    ag_module_set_training(gpt_module(m), false);
    y1 = gpt_forward(m, a, ids);
    y2 = gpt_forward(plain, a, ids);
    ck_assert(memcmp(ag_data(y1), ag_data(y2), 8 * 67 * sizeof(double)) == 0);
    ag_arena_free(a);
}
END_TEST

static Suite *gpt_suite(void)
{
    Suite *s = suite_create("gpt");
    TCase *tc = tcase_create("gpt");
    tcase_add_loop_test(tc, test_torch_f64, 0, 2);
    tcase_add_loop_test(tc, test_torch_f32, 0, 2);
    tcase_add_test(tc, test_cache_feed_f64);
    tcase_add_test(tc, test_cache_feed_f32);
    tcase_add_test(tc, test_fifo_f64);
    tcase_add_test(tc, test_fifo_f32);
    tcase_add_test(tc, test_save_load);
    tcase_add_test(tc, test_copy);
    tcase_add_test(tc, test_load_refuses);
    tcase_add_test(tc, test_bad_input);
    tcase_add_test(tc, test_dropout_mode);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(gpt_suite());
}
