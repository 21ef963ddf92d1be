/* test_faults.c: allocation-failure injection, the way SQLite tests its
 * out-of-memory paths. For each operation below the test first counts the
 * allocations one call makes (K, from ag__allocation_count), then for
 * N = 1..K makes the N-th fail, once (ag__fail_allocation) and from then on
 * (ag__fail_allocations_from), and checks every time: the call fails with
 * an error that names a function and says that memory ran out (or, where
 * the allocation is optional, succeeds with the right result); the state
 * it started from is unchanged; after an arena reset the same call
 * succeeds with the right result (the result of a call that no failure
 * disturbed). Valgrind or ASan, when the suite runs under them, check that
 * nothing leaks on any of these paths.
 *
 * The operations: a training step of a small MLP (forward, softmax
 * cross-entropy, backward, an SGD or Adam step, the step arena's reset) in
 * fresh arenas, in arenas warmed up by a smaller step, and in arenas warmed
 * up by the same step (which must allocate nothing); making the model and
 * its optimizer; a safetensors save over an existing checkpoint (the old
 * file stays byte-identical and loadable, with no temporary file left
 * behind); safetensors loads (the parameters are unchanged), of the MLP
 * and of 600 tensors (whose header parse grows the JSON parser's stack and
 * arena several times), and a metadata read; IDX loads, plain and gzipped; a
 * CSV load whose lines are longer than the reader's first buffer; a DOT export;
 * a gradient check (which leaves its input unperturbed when it fails). Each
 * operation prints how many allocation points it walked. */
#define _POSIX_C_SOURCE 200809L
#include <autograd.h>

#include "internal.h"
#include "support.h"
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define COUNT(a) ((int)(sizeof(a) / sizeof *(a)))
#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})

/* Fails the test with the library's message when p is NULL. */
static void *must(void *p, const char *what)
{
    if (!p) ck_abort_msg("%s returned NULL: %s", what, ag_last_error());
    return p;
}

/* ------------------------------------------------------------------ */
/* The walk                                                            */
/* ------------------------------------------------------------------ */

/* An operation to walk. prepare makes the state a call starts from (its
 * allocations are not walked); call runs the operation (0, or -1 and an
 * error); unchanged asserts, after a failed call, that the starting state
 * is intact; recover (may be NULL) resets what the caller resets before
 * trying again; correct asserts the result of a successful call (the first
 * one, undisturbed, is the reference); finish frees what prepare made. */
typedef struct {
    const char *name;
    void (*prepare)(void *ctx);
    int (*call)(void *ctx);
    void (*unchanged)(void *ctx);
    void (*recover)(void *ctx);
    void (*correct)(void *ctx);
    void (*finish)(void *ctx);
    void *ctx;
} fault_op;

/* Asserts that the error names a function ("ag_<name>: ...") and says that
 * memory ran out ("out of memory", or the system's "Cannot allocate
 * memory"). */
static void expect_oom_error(const fault_op *op, long n, bool persist)
{
    const char *e = ag_last_error();
    size_t i = 0;
    if (strncmp(e, "ag_", 3) == 0)
        for (i = 3; e[i] == '_' || (e[i] >= 'a' && e[i] <= 'z') ||
                    (e[i] >= '0' && e[i] <= '9');
             i++) {}
    bool named = i > 3 && e[i] == ':' && e[i + 1] == ' ';
    ck_assert_msg(named && strstr(e, "memory"),
                  "%s, allocation %ld failing%s: error \"%s\" does not name "
                  "a function and say that memory ran out",
                  op->name, n, persist ? " (and every later one)" : "", e);
}

/* Runs op once with allocation n failing (and every later one when
 * persist), then checks it as the file's comment says. Returns whether the
 * call succeeded anyway (the allocation was optional). */
static bool fail_one(const fault_op *op, long n, bool persist)
{
    op->prepare(op->ctx);
    ag_clear_error();
    if (persist)
        ag__fail_allocations_from(n);
    else
        ag__fail_allocation(n);
    long start = ag__allocation_count();
    int rc = op->call(op->ctx);
    long made = ag__allocation_count() - start;
    ag__fail_allocation(0);
    ck_assert_msg(made >= n,
                  "%s: allocation %ld was never made (%ld made); the count "
                  "changed between calls",
                  op->name, n, made);
    if (rc) {
        expect_oom_error(op, n, persist);
        op->unchanged(op->ctx);
        if (op->recover) op->recover(op->ctx);
        ck_assert_msg(op->call(op->ctx) == 0,
                      "%s: after allocation %ld failed, trying again "
                      "failed: %s",
                      op->name, n, ag_last_error());
    }
    op->correct(op->ctx);
    op->finish(op->ctx);
    return rc == 0;
}

/* Counts the allocations of one call of op (K), then fails each in turn.
 * Returns K; *optional is the number of them the call survives. */
static long walk(const fault_op *op, int *optional)
{
    op->prepare(op->ctx);
    long start = ag__allocation_count();
    ck_assert_msg(op->call(op->ctx) == 0, "%s: %s", op->name, ag_last_error());
    long k = ag__allocation_count() - start;
    op->correct(op->ctx);
    op->finish(op->ctx);
    *optional = 0;
    for (long n = 1; n <= k; n++) *optional += fail_one(op, n, false);
    for (long n = 1; n <= k; n++) fail_one(op, n, true);
    printf("test_faults: %s: %ld allocation points walked (%d optional)\n",
           op->name, k, *optional);
    fflush(stdout);
    return k;
}

/* The values of every tensor of p, in order, as doubles (malloc'd). */
static double *values_of(const ag_params *p)
{
    int64_t n = ag_params_numel(p), at = 0;
    double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    ck_assert_ptr_nonnull(v);
    for (int k = 0; k < ag_params_count(p); k++) {
        ag_tensor *t = ag_params_tensor(p, k);
        for (int64_t i = 0; i < ag_numel(t); i++) v[at++] = tensor_at(t, i);
    }
    return v;
}

/* Asserts that p holds exactly the values v (from values_of). */
static void expect_values(const char *what, const ag_params *p, const double *v)
{
    int64_t at = 0;
    for (int k = 0; k < ag_params_count(p); k++) {
        ag_tensor *t = ag_params_tensor(p, k);
        for (int64_t i = 0; i < ag_numel(t); i++, at++)
            if (tensor_at(t, i) != v[at])
                ck_abort_msg("%s: %s[%lld] = %.17g, want %.17g", what,
                             ag_params_name(p, k), (long long)i,
                             tensor_at(t, i), v[at]);
    }
}

/* Sets the values of p to v (as values_of gives them). */
static void set_values(ag_params *p, const double *v)
{
    int64_t at = 0;
    for (int k = 0; k < ag_params_count(p); k++) {
        ag_tensor *t = ag_params_tensor(p, k);
        for (int64_t i = 0; i < ag_numel(t); i++) tensor_set(t, i, v[at++]);
    }
}

/* Adds `delta` to every value of p. */
static void shift_values(ag_params *p, double delta)
{
    for (int k = 0; k < ag_params_count(p); k++) {
        ag_tensor *t = ag_params_tensor(p, k);
        for (int64_t i = 0; i < ag_numel(t); i++)
            tensor_set(t, i, tensor_at(t, i) + delta);
    }
}

/* ------------------------------------------------------------------ */
/* A training step                                                     */
/* ------------------------------------------------------------------ */

enum { IN = 24, HIDDEN = 48, OUT = 10, BATCH = 64, SMALL_BATCH = 16 };
enum { WARM_NONE, WARM_SMALLER, WARM_SAME };

/* The batch: inputs in [-1, 1) and labels, from a fixed seed. */
static double batch_x[BATCH * IN];
static int32_t batch_y[BATCH];

static void make_batch(void)
{
    ag_rng rng = ag_rng_seed(2024);
    for (int i = 0; i < BATCH * IN; i++)
        batch_x[i] = 2 * ag_rng_uniform(&rng) - 1;
    for (int i = 0; i < BATCH; i++)
        batch_y[i] = (int32_t)(ag_rng_next(&rng) % OUT);
}

/* One step on the first `rows` examples, as a user writes it. */
static int train_step(ag_arena *step, ag_mlp *m, ag_optimizer *opt,
                      int64_t rows)
{
    ag_tensor *x = ag_from_data(step, AG_F64, 2, SHAPE(rows, IN), batch_x);
    ag_tensor *y = ag_from_data(step, AG_I32, 1, SHAPE(rows), batch_y);
    ag_tensor *loss =
        ag_softmax_cross_entropy(step, ag_mlp_forward(step, m, x), y);
    if (!loss || ag_backward(loss) || ag_optimizer_step(opt)) return -1;
    ag_optimizer_zero_grad(opt);
    ag_arena_reset(step);
    return 0;
}

static ag_mlp *make_mlp(ag_arena *a)
{
    ag_mlp_options o = {.dtype = AG_F64, .seed = 11};
    return ag_mlp_new(a, 3, SHAPE(IN, HIDDEN, OUT), &o);
}

static ag_optimizer *make_optimizer(ag_arena *a, ag_mlp *m, bool adam)
{
    if (adam) {
        ag_adam_options o = ag_adam_defaults();
        o.lr = 0.01;
        return ag_adam_new(a, m->params, &o);
    }
    ag_sgd_options o = ag_sgd_defaults(0.1);
    o.momentum = 0.9;
    return ag_sgd_new(a, m->params, &o);
}

typedef struct {
    bool adam;
    int warm;
    ag_arena *pa, *sa; /* parameters and optimizer; the step */
    ag_mlp *mlp;
    ag_optimizer *opt;
    int64_t steps;  /* the optimizer's, before the call */
    double *before; /* the parameters before the call */
    double *want;   /* ... after it (the reference call's) */
    bool had_grad[8];
} step_ctx;

static void step_prepare(void *p)
{
    step_ctx *c = p;
    c->pa = must(ag_arena_new(), "ag_arena_new");
    c->sa = must(ag_arena_new(), "ag_arena_new");
    c->mlp = must(make_mlp(c->pa), "ag_mlp_new");
    c->opt = must(make_optimizer(c->pa, c->mlp, c->adam), "optimizer");
    if (c->warm != WARM_NONE)
        ck_assert_msg(train_step(c->sa, c->mlp, c->opt,
                                 c->warm == WARM_SAME ? BATCH : SMALL_BATCH) ==
                          0,
                      "warm-up: %s", ag_last_error());
    c->steps = ag_optimizer_steps(c->opt);
    c->before = values_of(c->mlp->params);
    ck_assert_int_le(ag_params_count(c->mlp->params), COUNT(c->had_grad));
    for (int k = 0; k < ag_params_count(c->mlp->params); k++)
        c->had_grad[k] = ag_grad(ag_params_tensor(c->mlp->params, k));
}

static int step_call(void *p)
{
    step_ctx *c = p;
    return train_step(c->sa, c->mlp, c->opt, BATCH);
}

/* The parameters, their gradients (none, or zeros) and the optimizer's
 * step count are as before the call. */
static void step_unchanged(void *p)
{
    step_ctx *c = p;
    expect_values("failed step", c->mlp->params, c->before);
    ck_assert_int_eq(ag_optimizer_steps(c->opt), c->steps);
    for (int k = 0; k < ag_params_count(c->mlp->params); k++) {
        ag_tensor *g = ag_grad(ag_params_tensor(c->mlp->params, k));
        ck_assert_msg(!g == !c->had_grad[k], "%s: gradient %s",
                      ag_params_name(c->mlp->params, k),
                      g ? "appeared" : "vanished");
        for (int64_t i = 0; g && i < ag_numel(g); i++)
            ck_assert_msg(tensor_at(g, i) == 0, "%s: gradient changed",
                          ag_params_name(c->mlp->params, k));
    }
}

static void step_recover(void *p)
{
    ag_arena_reset(((step_ctx *)p)->sa);
}

static void step_correct(void *p)
{
    step_ctx *c = p;
    ck_assert_int_eq(ag_optimizer_steps(c->opt), c->steps + 1);
    if (c->want) {
        expect_values("step", c->mlp->params, c->want);
        return;
    }
    c->want = values_of(c->mlp->params);
    bool moved = false;
    for (int64_t i = 0; i < ag_params_numel(c->mlp->params); i++)
        moved |= c->want[i] != c->before[i];
    ck_assert_msg(moved, "the reference step changed no parameter");
}

static void step_finish(void *p)
{
    step_ctx *c = p;
    ag_arena_free(c->pa);
    ag_arena_free(c->sa);
    free(c->before);
    c->pa = c->sa = NULL;
    c->before = NULL;
}

static const struct {
    const char *name;
    bool adam;
    int warm;
} steps[] = {
    {"training step, SGD, fresh arenas", false, WARM_NONE},
    {"training step, Adam, fresh arenas", true, WARM_NONE},
    {"training step, SGD, arenas warmed by a smaller batch", false,
     WARM_SMALLER},
    {"training step, Adam, arenas warmed by a smaller batch", true,
     WARM_SMALLER},
    {"training step, SGD, arenas warmed by the same step", false, WARM_SAME},
    {"training step, Adam, arenas warmed by the same step", true, WARM_SAME},
};

START_TEST(test_training_step)
{
    make_batch();
    step_ctx c = {.adam = steps[_i].adam, .warm = steps[_i].warm};
    fault_op op = {steps[_i].name, step_prepare, step_call,   step_unchanged,
                   step_recover,   step_correct, step_finish, &c};
    int optional;
    long k = walk(&op, &optional);
    if (c.warm == WARM_SAME)
        ck_assert_msg(k == 0, "a warmed-up step made %ld allocations", k);
    else
        ck_assert_int_gt(k, 0);
    free(c.want);
}
END_TEST

/* Making the arena, the model and its optimizer. */
typedef struct {
    ag_arena *a;
    ag_mlp *mlp;
    double *want;
} build_ctx;

static void build_prepare(void *p)
{
    build_ctx *c = p;
    c->a = NULL;
}

static int build_call(void *p)
{
    build_ctx *c = p;
    c->a = ag_arena_new();
    c->mlp = c->a ? make_mlp(c->a) : NULL;
    return c->mlp && make_optimizer(c->a, c->mlp, true) ? 0 : -1;
}

static void build_unchanged(void *p)
{
    (void)p; /* nothing existed before */
}

static void build_recover(void *p)
{
    build_ctx *c = p;
    ag_arena_free(c->a); /* the retry makes its own */
    c->a = NULL;
}

static void build_correct(void *p)
{
    build_ctx *c = p;
    if (c->want)
        expect_values("model", c->mlp->params, c->want);
    else
        c->want = values_of(c->mlp->params);
}

static void build_finish(void *p)
{
    build_recover(p);
}

START_TEST(test_build_model)
{
    build_ctx c = {0};
    fault_op op = {"making an arena, an MLP and Adam",
                   build_prepare,
                   build_call,
                   build_unchanged,
                   build_recover,
                   build_correct,
                   build_finish,
                   &c};
    int optional;
    ck_assert_int_gt(walk(&op, &optional), 0);
    free(c.want);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Files                                                               */
/* ------------------------------------------------------------------ */

/* The test's folder (made by setup, removed by teardown) and the arena of
 * the parameter sets the file tests use. */
static ag_arena *arena;

static void setup(void)
{
    test_dir_make("ag_faults");
    arena = must(ag_arena_new(), "ag_arena_new");
    ag__fail_allocation(0);
    ag_clear_error();
}

static void teardown(void)
{
    ag__fail_allocation(0);
    ag_arena_free(arena);
    test_dir_remove();
}

/* ------------------------------------------------------------------ */
/* Checkpoints                                                         */
/* ------------------------------------------------------------------ */

static const char *const metadata[] = {"epoch", "3", "note", "fault walk",
                                       NULL};

/* A checkpoint and the two parameter sets of the tests: `params` (an MLP's,
 * the one saved or loaded) and `other` (the same layout, to load files
 * into without touching `params`). The old file holds old_values; the save
 * writes new_values. */
typedef struct {
    const char *path;
    ag_params *params, *other;
    double *old_values, *new_values;
    unsigned char *old_bytes, *new_bytes;
    size_t old_size, new_size;
    ag_arena *a; /* the metadata reader's */
} ckpt_ctx;

/* An MLP's parameters. */
static ag_params *mlp_params(void)
{
    return ((ag_mlp *)must(make_mlp(arena), "ag_mlp_new"))->params;
}

/* MANY small tensors with long names, so that the header of their
 * checkpoint is larger than an arena block (64 KiB) and has more members
 * than the parser's first stack: its load walks the growth of both. */
enum { MANY = 600 };

static ag_params *many_params(void)
{
    ag_params *p = must(ag_params_new(arena), "ag_params_new");
    for (int k = 0; k < MANY; k++) {
        char name[64];
        snprintf(name, sizeof name, "encoder.layers.%d.attention.%s", k / 2,
                 k % 2 ? "bias" : "weight");
        ag_tensor *t =
            must(ag_zeros(arena, AG_F64, 1, SHAPE(k % 3 + 1)), "ag_zeros");
        for (int i = 0; i <= k % 3; i++) tensor_set(t, i, k + i / 4.0);
        ck_assert_msg(ag_params_add(p, name, t) == 0, "%s", ag_last_error());
    }
    return p;
}

/* Saves the initial values of a set that `make` builds as the old
 * checkpoint, and makes its values new ones (every value + 1). */
static void ckpt_init(ckpt_ctx *c, ag_params *(*make)(void))
{
    c->path = path_of("model.safetensors");
    c->params = make();
    c->other = make();
    c->old_values = values_of(c->params);
    ck_assert_msg(ag_save_safetensors(c->path, c->params, metadata) == 0, "%s",
                  ag_last_error());
    c->old_bytes = read_bytes(c->path, &c->old_size);
    shift_values(c->params, 1);
    c->new_values = values_of(c->params);
}

static void ckpt_free(ckpt_ctx *c)
{
    free(c->old_values);
    free(c->new_values);
    free(c->old_bytes);
    free(c->new_bytes);
}

/* Asserts that the file at c->path, alone in the folder, loads as
 * `values`; with `bytes`, also that it holds exactly those. */
static void expect_checkpoint(ckpt_ctx *c, const double *values,
                              const unsigned char *bytes, size_t size)
{
    if (bytes) {
        size_t n;
        unsigned char *got = read_bytes(c->path, &n);
        ck_assert_msg(n == size && memcmp(got, bytes, n) == 0,
                      "%s: %zu bytes, not the %zu expected", c->path, n, size);
        free(got);
    }
    expect_only("model.safetensors");
    shift_values(c->other, 1000);
    ck_assert_msg(ag_load_safetensors(c->path, c->other) == 0, "%s",
                  ag_last_error());
    expect_values("checkpoint", c->other, values);
}

static void save_prepare(void *p)
{
    ckpt_ctx *c = p;
    write_bytes(c->path, c->old_bytes, c->old_size);
}

static int save_call(void *p)
{
    ckpt_ctx *c = p;
    return ag_save_safetensors(c->path, c->params, metadata);
}

static void save_unchanged(void *p)
{
    ckpt_ctx *c = p;
    expect_checkpoint(c, c->old_values, c->old_bytes, c->old_size);
    expect_values("saved set", c->params, c->new_values);
}

static void save_correct(void *p)
{
    ckpt_ctx *c = p;
    if (!c->new_bytes) c->new_bytes = read_bytes(c->path, &c->new_size);
    expect_checkpoint(c, c->new_values, c->new_bytes, c->new_size);
}

static void no_op(void *p)
{
    (void)p;
}

START_TEST(test_save)
{
    ckpt_ctx c = {0};
    ckpt_init(&c, mlp_params);
    fault_op op = {"ag_save_safetensors over a checkpoint",
                   save_prepare,
                   save_call,
                   save_unchanged,
                   NULL,
                   save_correct,
                   no_op,
                   &c};
    int optional;
    ck_assert_int_gt(walk(&op, &optional), 0);
    ck_assert_int_eq(optional, 0);
    ckpt_free(&c);
}
END_TEST

/* Loads the old checkpoint into params, which hold the new values. */
static void load_prepare(void *p)
{
    ckpt_ctx *c = p;
    set_values(c->params, c->new_values);
}

static int load_call(void *p)
{
    ckpt_ctx *c = p;
    return ag_load_safetensors(c->path, c->params);
}

static void load_unchanged(void *p)
{
    ckpt_ctx *c = p;
    expect_values("failed load", c->params, c->new_values);
}

static void load_correct(void *p)
{
    ckpt_ctx *c = p;
    expect_values("load", c->params, c->old_values);
}

START_TEST(test_load)
{
    ckpt_ctx c = {0};
    ckpt_init(&c, mlp_params);
    fault_op op = {
        "ag_load_safetensors", load_prepare, load_call, load_unchanged, NULL,
        load_correct,          no_op,        &c};
    int optional;
    ck_assert_int_gt(walk(&op, &optional), 0);
    ck_assert_int_eq(optional, 0);
    ckpt_free(&c);
}
END_TEST

/* The same with a checkpoint of MANY tensors, whose header takes several
 * arena blocks and grows the parser's stack several times. */
START_TEST(test_load_many)
{
    ckpt_ctx c = {0};
    ckpt_init(&c, many_params);
    fault_op op = {"ag_load_safetensors, 600 tensors",
                   load_prepare,
                   load_call,
                   load_unchanged,
                   NULL,
                   load_correct,
                   no_op,
                   &c};
    int optional;
    ck_assert_int_gt(walk(&op, &optional), 8);
    ck_assert_int_eq(optional, 0);
    ckpt_free(&c);
}
END_TEST

static const char *const *metadata_got;

static void metadata_prepare(void *p)
{
    ckpt_ctx *c = p;
    c->a = must(ag_arena_new(), "ag_arena_new");
}

static int metadata_call(void *p)
{
    ckpt_ctx *c = p;
    metadata_got = ag_load_safetensors_metadata(c->a, c->path);
    return metadata_got ? 0 : -1;
}

static void metadata_recover(void *p)
{
    ag_arena_reset(((ckpt_ctx *)p)->a);
}

static void metadata_correct(void *p)
{
    (void)p;
    int i = 0;
    for (; metadata[i]; i++) ck_assert_str_eq(metadata_got[i], metadata[i]);
    ck_assert_ptr_null(metadata_got[i]);
}

static void metadata_finish(void *p)
{
    ckpt_ctx *c = p;
    ag_arena_free(c->a);
    c->a = NULL;
}

START_TEST(test_load_metadata)
{
    ckpt_ctx c = {0};
    ckpt_init(&c, mlp_params);
    fault_op op = {"ag_load_safetensors_metadata",
                   metadata_prepare,
                   metadata_call,
                   no_op,
                   metadata_recover,
                   metadata_correct,
                   metadata_finish,
                   &c};
    int optional;
    ck_assert_int_gt(walk(&op, &optional), 0);
    ckpt_free(&c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Datasets                                                            */
/* ------------------------------------------------------------------ */

/* A reader's call: a path, a fresh arena per call, the values and shape
 * the file holds. */
typedef struct {
    const char *path;
    bool csv;
    ag_arena *a;
    ag_tensor *got;
    int ndim;
    int64_t shape[3];
    double *want;
} reader_ctx;

static void reader_prepare(void *p)
{
    reader_ctx *c = p;
    c->a = must(ag_arena_new(), "ag_arena_new");
}

static int reader_call(void *p)
{
    reader_ctx *c = p;
    c->got = c->csv ? ag_load_csv(c->a, c->path, AG_F32, true)
                    : ag_load_idx(c->a, c->path, AG_F32);
    return c->got ? 0 : -1;
}

static void reader_recover(void *p)
{
    ag_arena_reset(((reader_ctx *)p)->a);
}

static void reader_correct(void *p)
{
    reader_ctx *c = p;
    ck_assert_int_eq(ag_ndim(c->got), c->ndim);
    for (int d = 0; d < c->ndim; d++)
        ck_assert_int_eq(ag_shape(c->got)[d], c->shape[d]);
    for (int64_t i = 0; i < ag_numel(c->got); i++)
        if (tensor_at(c->got, i) != (float)c->want[i])
            ck_abort_msg("%s: element %lld is %g, want %g", c->path,
                         (long long)i, tensor_at(c->got, i), c->want[i]);
}

static void reader_finish(void *p)
{
    reader_ctx *c = p;
    ag_arena_free(c->a);
    c->a = NULL;
}

static long walk_reader(const char *name, reader_ctx *c)
{
    fault_op op = {name,           reader_prepare, reader_call,   no_op,
                   reader_recover, reader_correct, reader_finish, c};
    int optional;
    long k = walk(&op, &optional);
    ck_assert_int_gt(k, 0);
    return k;
}

/* An IDX file of u8 values (30, 7, 9), plain and gzipped. */
START_TEST(test_load_idx)
{
    enum { A = 30, B = 7, C = 9, N = A * B * C };
    unsigned char bytes[16 + N] = {0, 0, 0x08, 3, 0, 0, 0, A,
                                   0, 0, 0,    B, 0, 0, 0, C};
    double want[N];
    for (int i = 0; i < N; i++) {
        bytes[16 + i] = (unsigned char)(i * 7 % 251);
        want[i] = bytes[16 + i];
    }
    const char *plain = path_of("images.idx");
    write_bytes(plain, bytes, sizeof bytes);
    const char *gz = path_of("images.idx.gz");
    gzFile f = gzopen(gz, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(gzwrite(f, bytes, sizeof bytes), (int)sizeof bytes);
    ck_assert_int_eq(gzclose(f), Z_OK);

    reader_ctx c = {plain, false, NULL, NULL, 3, {A, B, C}, want};
    walk_reader("ag_load_idx, plain", &c);
    c.path = gz;
    walk_reader("ag_load_idx, gzipped", &c);
}
END_TEST

/* A CSV file with a header and rows longer than the reader's first line
 * buffer (4096 bytes), so that it grows. */
START_TEST(test_load_csv)
{
    enum { ROWS = 5, COLS = 700 };
    static char text[ROWS * COLS * 12 + 64 * COLS];
    static double want[ROWS * COLS];
    size_t used = 0;
    for (int j = 0; j < COLS; j++)
        used +=
            (size_t)sprintf(text + used, "c%d%c", j, j + 1 < COLS ? ',' : '\n');
    for (int r = 0; r < ROWS; r++)
        for (int j = 0; j < COLS; j++) {
            want[r * COLS + j] = r * COLS + j + 0.25;
            used += (size_t)sprintf(text + used, "%d.25%c", r * COLS + j,
                                    j + 1 < COLS ? ',' : '\n');
        }
    ck_assert_uint_gt(used / (ROWS + 1), 4096);
    const char *path = path_of("table.csv");
    write_bytes(path, text, used);
    reader_ctx c = {path, true, NULL, NULL, 2, {ROWS, COLS}, want};
    walk_reader("ag_load_csv", &c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* DOT export                                                          */
/* ------------------------------------------------------------------ */

typedef struct {
    ag_arena *a;
    ag_tensor *loss;
    FILE *out;
    char *want; /* the reference call's output */
} dot_ctx;

static void dot_prepare(void *p)
{
    dot_ctx *c = p;
    c->a = must(ag_arena_new(), "ag_arena_new");
    ag_tensor *x = must(ag_ones(c->a, AG_F64, 2, SHAPE(3, 4)), "ag_ones");
    ag_requires_grad(x, true);
    ag_tensor *h =
        ag_tanh(c->a, ag_matmul(c->a, x, ag_transpose(c->a, x, 0, 1)));
    c->loss = must(ag_sum(c->a, ag_mul(c->a, h, h), AG_ALL, false), "ag_sum");
    c->out = must(tmpfile(), "tmpfile");
}

static int dot_call(void *p)
{
    dot_ctx *c = p;
    return ag_write_dot(c->loss, c->out);
}

static void dot_recover(void *p)
{
    dot_ctx *c = p;
    ck_assert_int_eq(ftell(c->out), 0); /* nothing was written */
}

static void dot_correct(void *p)
{
    dot_ctx *c = p;
    long n = ftell(c->out);
    ck_assert_int_gt(n, 0);
    char *text = calloc((size_t)n + 1, 1);
    ck_assert_ptr_nonnull(text);
    rewind(c->out);
    ck_assert_uint_eq(fread(text, 1, (size_t)n, c->out), (size_t)n);
    if (!c->want) {
        c->want = text;
        return;
    }
    ck_assert_str_eq(text, c->want);
    free(text);
}

static void dot_finish(void *p)
{
    dot_ctx *c = p;
    fclose(c->out);
    ag_arena_free(c->a);
}

START_TEST(test_write_dot)
{
    dot_ctx c = {0};
    fault_op op = {"ag_write_dot", dot_prepare, dot_call,   no_op,
                   dot_recover,    dot_correct, dot_finish, &c};
    int optional;
    ck_assert_int_gt(walk(&op, &optional), 0);
    free(c.want);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Gradient checking                                                   */
/* ------------------------------------------------------------------ */

typedef struct {
    ag_arena *a;
    ag_tensor *x;
    double before[12];
    ag_gradcheck_report report, want;
    bool have_want;
} gradcheck_ctx;

/* sum(tanh(x * x) @ x^T) */
static ag_tensor *checked_fn(ag_arena *a, ag_tensor *const *in, int n,
                             void *user)
{
    (void)n;
    (void)user;
    ag_tensor *h = ag_tanh(a, ag_mul(a, in[0], in[0]));
    return ag_sum(a, ag_matmul(a, h, ag_transpose(a, in[0], 0, 1)), AG_ALL,
                  false);
}

static void gradcheck_prepare(void *p)
{
    gradcheck_ctx *c = p;
    c->a = must(ag_arena_new(), "ag_arena_new");
    ag_rng rng = ag_rng_seed(5);
    c->x = must(ag_rand(c->a, AG_F64, 2, SHAPE(3, 4), -1, 1, &rng), "ag_rand");
    ag_requires_grad(c->x, true);
    for (int i = 0; i < 12; i++) c->before[i] = tensor_at(c->x, i);
}

static int gradcheck_call(void *p)
{
    gradcheck_ctx *c = p;
    return ag_gradcheck(checked_fn, 1, &c->x, NULL, NULL, &c->report);
}

/* The input's values are as they were, none left perturbed. */
static void expect_input_intact(const gradcheck_ctx *c)
{
    for (int i = 0; i < 12; i++)
        ck_assert_msg(tensor_at(c->x, i) == c->before[i],
                      "element %d of the input changed", i);
}

static void gradcheck_unchanged(void *p)
{
    gradcheck_ctx *c = p;
    expect_input_intact(c);
    ck_assert(!c->report.passed);
}

static void gradcheck_correct(void *p)
{
    gradcheck_ctx *c = p;
    ck_assert(c->report.passed);
    if (!c->have_want) {
        c->want = c->report;
        c->have_want = true;
    }
    ck_assert_int_eq(c->report.checked, c->want.checked);
    ck_assert(c->report.abs_error == c->want.abs_error);
    expect_input_intact(c);
}

static void gradcheck_finish(void *p)
{
    ag_arena_free(((gradcheck_ctx *)p)->a);
}

START_TEST(test_gradcheck)
{
    gradcheck_ctx c = {0};
    fault_op op = {"ag_gradcheck",
                   gradcheck_prepare,
                   gradcheck_call,
                   gradcheck_unchanged,
                   NULL,
                   gradcheck_correct,
                   gradcheck_finish,
                   &c};
    int optional;
    ck_assert_int_gt(walk(&op, &optional), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The hooks themselves                                                */
/* ------------------------------------------------------------------ */

/* The countdown fails exactly the n-th allocation, once or from then on,
 * and counts every attempt. */
START_TEST(test_countdown)
{
    long start = ag__allocation_count();
    ag__fail_allocation(3);
    void *p[5];
    for (int i = 0; i < 5; i++) p[i] = ag__malloc(8);
    ck_assert_msg(p[0] && p[1] && !p[2] && p[3] && p[4],
                  "not only the third allocation failed");
    for (int i = 0; i < 5; i++) ag__free(p[i]);
    ck_assert_int_eq(ag__allocation_count() - start, 5);
    ag__fail_allocations_from(2);
    p[0] = ag__calloc(1, 8);
    p[1] = ag__realloc(NULL, 8);
    p[2] = ag__malloc(8);
    ck_assert_msg(p[0] && !p[1] && !p[2], "not every allocation from the "
                                          "second on failed");
    ag__fail_allocation(0);
    p[1] = ag__malloc(8);
    ck_assert_ptr_nonnull(p[1]);
    ag__free(p[0]);
    ag__free(p[1]);
    /* A failed realloc leaves the block as it was. */
    char *s = ag__malloc(4);
    ck_assert_ptr_nonnull(s);
    memcpy(s, "abc", 4);
    ag__fail_allocation(1);
    ck_assert_ptr_null(ag__realloc(s, 1 << 20));
    ck_assert_str_eq(s, "abc");
    ag__free(s);
}
END_TEST

static Suite *faults_suite(void)
{
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("hooks");
    tcase_add_test(tc, test_countdown);
    suite_add_tcase(s, tc);

    tc = tcase_create("training");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_training_step, 0, COUNT(steps));
    tcase_add_test(tc, test_build_model);
    tcase_add_test(tc, test_write_dot);
    tcase_add_test(tc, test_gradcheck);
    suite_add_tcase(s, tc);

    tc = tcase_create("files");
    tcase_set_timeout(tc, 600);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_save);
    tcase_add_test(tc, test_load);
    tcase_add_test(tc, test_load_many);
    tcase_add_test(tc, test_load_metadata);
    tcase_add_test(tc, test_load_idx);
    tcase_add_test(tc, test_load_csv);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    ag_set_num_threads(1);
    return run_suite(faults_suite());
}
