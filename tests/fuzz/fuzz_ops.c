/* fuzz_ops.c: libFuzzer harness for the core API (include/autograd.h) and
 * the graph tools. The input is a program for a small interpreter: each
 * instruction is an opcode byte and operand bytes (slots, dtypes, shapes,
 * axes, scalars from fixed tables), running out of bytes reads zeros. It
 * makes tensors (every constructor, f32, f64 and i32, sizes 0 to 4 and up
 * to 8 dimensions, values including 0, inf and NaN; also bad and
 * overflowing shapes), applies every op (binary with broadcasting, unary,
 * scalar, matmul, reductions with AG_ALL and keepdim, reshape, transpose,
 * softmax, losses with targets out of range, dropout, linear, argmax,
 * attention with and without a mask, detach, convolutions, pools, unfold and
 * fold with options of every kind; chains of thousands of ops) to a pool of 8
 * slots, mismatched shapes and NULL slots included, runs ag_backward (also
 * twice, also from sum, mean or max), zeroes and reads gradients, toggles grad
 * mode and anomaly detection, prints, writes DOT, runs ag_gradcheck on tiny
 * inputs, takes gradients with ag_gradients (with and without create_graph,
 * seeds of any slot), expands and casts, carries tangents (ag_make_dual), and
 * resets or frees the arenas. Op results go to a step arena; leaves may go
 * to a longer-lived one.
 *
 * Checked on every call: no crash or leak; it succeeds, or fails with an
 * error naming an ag_ function; inputs (values, flags and gradients) never
 * change, and a failed backward changes no gradient; results have a
 * consistent shape. Where the documentation decides (and anomaly mode is
 * off) the harness also knows whether the op must succeed, and with which
 * dtype and shape. Sizes stay small (results over 1024 elements, counting
 * a size 0 as 1, are dropped or not made), so memory stays bounded. Seeds:
 * corpus/fuzz_ops, made by tests/fuzz/make_corpus.py, whose assembler must
 * follow the opcodes below. */
#include "fuzz.h"
#include "internal.h" /* a tensor's arena, to drop slots when it is reset */

#include <limits.h>
#include <math.h>
#include <string.h>

#define SLOTS 8
#define NEW_MAX 64    /* product of sizes of a tensor the program makes */
#define KEEP_MAX 1024 /* product of sizes (0 counted as 1) a slot may hold */
#define ARENA_MAX ((size_t)64 << 20)
#define SMALL 8 /* gradcheck runs on inputs of at most this many elements */
#define COUNT(a) ((int)(sizeof(a) / sizeof *(a)))

/* The interpreter: unread input, arenas, slots. */
typedef struct {
    const uint8_t *p;
    size_t n;
    ag_arena *step, *keep; /* op results; leaves that may outlive a step */
    ag_tensor *slot[SLOTS];
    ag_rng rng;
    FILE *sink; /* /dev/null, for ag_print and ag_write_dot */
} vm;

/* ------------------------------------------------------------------ */
/* Operands                                                            */
/* ------------------------------------------------------------------ */

static uint8_t get(vm *m)
{
    if (!m->n) return 0;
    m->n--;
    return *m->p++;
}

static ag_tensor *arg(vm *m)
{
    return m->slot[get(m) % SLOTS];
}

static int dst(vm *m)
{
    return get(m) % SLOTS;
}

static ag_dtype dtype(vm *m)
{
    static const ag_dtype t[] = {AG_F32, AG_F64, AG_F64, AG_I32,
                                 AG_F32, AG_F64, AG_I32, (ag_dtype)99};
    return t[get(m) % COUNT(t)];
}

/* Element values and scalar arguments. */
static const double values[] = {0,        1,         -1,   0.5,   -2,    3,
                                1e-3,     100,       -0.0, 1e30,  -1e30, 88.7,
                                INFINITY, -INFINITY, NAN,  1e-310};
static const double scalars[] = {0,    1,    -1,    0.5,   2,        3,
                                 -0.5, 0.99, 1e300, -3,    INFINITY, NAN,
                                 1e-9, 0.1,  1.5,   -1e300};

static double scalar(vm *m)
{
    return scalars[get(m) % COUNT(scalars)];
}

static int axis(vm *m)
{
    static const int t[] = {0, 1,  2,  3,      -1, -2,      -3,          4,
                            5, -5, -9, AG_ALL, 8,  INT_MAX, INT_MIN + 1, -8};
    return t[get(m) % COUNT(t)];
}

static bool is_float(const ag_tensor *t)
{
    return t && (t->dtype == AG_F32 || t->dtype == AG_F64);
}

/* Whether axis ax names a dimension of x (AG_ALL does not). */
static bool axis_ok(const ag_tensor *x, int ax)
{
    return ax != AG_ALL && ax >= -x->ndim && ax < x->ndim;
}

static int norm_axis(const ag_tensor *x, int ax)
{
    return ax < 0 ? ax + x->ndim : ax;
}

/* Whether a shape is small enough to keep: the product of its sizes, a 0
 * counted as 1, is at most KEEP_MAX. */
static bool bounded(int ndim, const int64_t *shape)
{
    int64_t p = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] > KEEP_MAX) return false;
        p *= shape[d] ? shape[d] : 1;
        if (p > KEEP_MAX) return false;
    }
    return true;
}

/* ------------------------------------------------------------------ */
/* Checks                                                              */
/* ------------------------------------------------------------------ */

/* What the harness knows of an op's outcome: must it succeed (1), fail
 * (0), or either (-1); when it succeeds, its dtype and shape (ndim -1:
 * unknown). */
typedef struct {
    int want;
    ag_dtype dt;
    int ndim;
    int64_t shape[AG_MAX_DIMS];
} expect;

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3u;
    return h;
}

/* A hash of t's values, requires_grad flag and gradient. */
static uint64_t hash_tensor(uint64_t h, const ag_tensor *t)
{
    if (!t) return h;
    h = hash_bytes(h, t->data, (size_t)t->numel * ag__dtype_size(t->dtype));
    h = hash_bytes(h, &t->requires_grad, sizeof t->requires_grad);
    return t->grad ? hash_tensor(h, t->grad) : h;
}

static uint64_t hash_inputs(int n, ag_tensor *const *in)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (int i = 0; i < n; i++) h = hash_tensor(h, in[i]);
    return h;
}

static uint64_t hash_slots(const vm *m)
{
    return hash_inputs(SLOTS, m->slot);
}

/* Checks that t is a consistent tensor of the step arena. */
static void check_result(const vm *m, const ag_tensor *t, const char *func)
{
    int64_t numel = 1;
    FUZZ_CHECK(t->ndim >= 0 && t->ndim <= AG_MAX_DIMS, "%s: ndim %d", func,
               t->ndim);
    for (int d = 0; d < t->ndim; d++) numel *= t->shape[d];
    FUZZ_CHECK(numel == ag_numel(t), "%s: numel %lld, shape says %lld", func,
               (long long)ag_numel(t), (long long)numel);
    FUZZ_CHECK(ag__dtype_size(t->dtype), "%s: dtype %d", func, (int)t->dtype);
    FUZZ_CHECK(t->data || !numel, "%s: no data", func);
    FUZZ_CHECK(!t->requires_grad || is_float(t), "%s: i32 requires grad", func);
    FUZZ_CHECK(t->arena == m->step, "%s: result not in the step arena", func);
}

/* Checks an op's outcome against e and its inputs' hash h, then keeps the
 * result in slot d when it is small enough. */
static void finish(vm *m, const char *func, int n, ag_tensor *const *in,
                   uint64_t h, ag_tensor *t, const expect *e, int d)
{
    FUZZ_CHECK(hash_inputs(n, in) == h, "%s changed an input", func);
    fuzz_trace("  %s: %s", func, t ? "ok" : ag_last_error());
    bool anomaly = ag_is_anomaly_detection_enabled();
    if (!t) {
        fuzz_check_error("ag_");
        FUZZ_CHECK(e->want != 1 || anomaly, "%s failed", func);
        return;
    }
    FUZZ_CHECK(e->want != 0, "%s succeeded on bad input", func);
    check_result(m, t, func);
    if (e->want == 1 && e->ndim >= 0) {
        FUZZ_CHECK(t->dtype == e->dt, "%s: dtype %s, want %s", func,
                   ag_dtype_name(t->dtype), ag_dtype_name(e->dt));
        FUZZ_CHECK(
            t->ndim == e->ndim &&
                !memcmp(t->shape, e->shape, (size_t)e->ndim * sizeof *e->shape),
            "%s: wrong shape", func);
    }
    if (bounded(t->ndim, t->shape)) m->slot[d] = t;
}

/* An expectation of x's dtype and shape when `ok`, of failure otherwise. */
static expect like(const ag_tensor *x, bool ok)
{
    expect e = {ok, AG_F32, -1, {0}};
    if (ok) {
        e.dt = x->dtype;
        e.ndim = x->ndim;
        memcpy(e.shape, x->shape, sizeof e.shape);
    }
    return e;
}

/* The NumPy broadcast of x's and y's shapes without their last `skip`
 * dimensions, into e (ndim and shape); false when they do not
 * broadcast. */
static bool broadcast(const ag_tensor *x, const ag_tensor *y, int skip,
                      expect *e)
{
    int nx = x->ndim - skip, ny = y->ndim - skip, n = nx > ny ? nx : ny;
    for (int i = 0; i < n; i++) {
        int64_t a = i < nx ? x->shape[nx - 1 - i] : 1;
        int64_t b = i < ny ? y->shape[ny - 1 - i] : 1;
        if (a != b && a != 1 && b != 1) return false;
        e->shape[n - 1 - i] = a == 1 ? b : a;
    }
    e->ndim = n;
    return true;
}

/* ------------------------------------------------------------------ */
/* Making tensors                                                      */
/* ------------------------------------------------------------------ */

/* Reads ndim (0 to 8, or 9: out of range) and sizes 0 to 4, whose
 * product stays at most NEW_MAX. */
static int new_shape(vm *m, int64_t *shape)
{
    int ndim = get(m) % 10;
    int64_t p = 1;
    for (int d = 0; d < ndim && d < AG_MAX_DIMS; d++) {
        shape[d] = get(m) % 5;
        if (p * (shape[d] ? shape[d] : 1) > NEW_MAX) shape[d] = 1;
        p *= shape[d] ? shape[d] : 1;
    }
    return ndim;
}

/* A tensor made by one of the constructors, chosen by the next byte. */
static ag_tensor *construct(vm *m, ag_arena *a, ag_dtype dt, int ndim,
                            const int64_t *shape)
{
    static const double ends[] = {-3, -1, 0, 1, 2.5, 3, 1e300, NAN};
    static const double steps[] = {1, 0.5, -1, -0.5, 0, 2, NAN, 1e-300};
    static const int32_t ints[] = {0, 1, 2, -1, 3, 100, INT32_MAX, INT32_MIN};
    int kind = get(m) % 7, seed = get(m), mult = get(m);
    double lo = scalar(m), hi = scalar(m);
    union {
        float f[NEW_MAX];
        double d[NEW_MAX];
        int32_t i[NEW_MAX];
    } buf;
    switch (kind) {
    case 0:
        return ag_zeros(a, dt, ndim, shape);
    case 1:
        return ag_ones(a, dt, ndim, shape);
    case 2:
        return ag_full(a, dt, ndim, shape, values[seed % COUNT(values)]);
    case 3:
        for (int i = 0; i < NEW_MAX; i++) {
            double v = values[(seed + i * mult) % COUNT(values)];
            buf.f[i] = (float)(fabs(v) > 1e30 ? v / 1e10 : v);
        }
        for (int i = 0; dt != AG_F32 && i < NEW_MAX; i++) {
            if (dt == AG_F64)
                buf.d[i] = values[(seed + i * mult) % COUNT(values)];
            else
                buf.i[i] = ints[(seed + i * mult) % COUNT(ints)];
        }
        return ag_from_data(a, dt, ndim, shape, &buf);
    case 4:
        return ag_rand(a, dt, ndim, shape, lo, hi, &m->rng);
    case 5:
        return ag_randn(a, dt, ndim, shape, lo, hi, &m->rng);
    default:
        return ag_arange(a, dt, ends[seed % 8], ends[(seed >> 3) % 8],
                         steps[mult % 8]);
    }
}

/* NEW d dtype arena-bit ndim sizes... kind seed mult lo hi grad-bit */
static void op_new(vm *m)
{
    int d = dst(m);
    ag_dtype dt = dtype(m);
    ag_arena *a = get(m) & 1 ? m->keep : m->step;
    int64_t shape[AG_MAX_DIMS];
    int ndim = new_shape(m, shape);
    ag_clear_error();
    ag_tensor *t = construct(m, a, dt, ndim, shape);
    bool grad = get(m) & 1;
    if (!t) {
        fuzz_check_error("ag_");
        return;
    }
    FUZZ_CHECK(t->arena == a && ag_type(t) == dt && !ag_is_requires_grad(t),
               "a new tensor is not a leaf of its arena and dtype");
    if (grad) ag_requires_grad(t, true);
    FUZZ_CHECK(ag_is_requires_grad(t) == (grad && is_float(t)),
               "ag_requires_grad on a new %s tensor", ag_dtype_name(dt));
    if (bounded(t->ndim, t->shape)) m->slot[d] = t;
}

/* NEW_BAD a b c how: ag_zeros (how 0) or ag_from_data without data (1) of
 * shape (a, b, c), sizes 0, invalid or so large that any two overflow;
 * how 2 to 5: no arena, ndim -1 or 9, an unknown dtype. Only a valid shape
 * without elements, whose sizes other than 0 multiply without overflow,
 * may and must succeed. */
static void op_new_bad(vm *m)
{
    static const int64_t sizes[] = {
        (int64_t)1 << 31, (int64_t)1 << 62, INT64_MAX, -1, 0, 2};
    int64_t shape[3];
    shape[0] = sizes[get(m) % 5];
    shape[1] = sizes[get(m) % 5];
    shape[2] = sizes[get(m) % 3 + 3];
    int how = get(m) % 6, ndim = how == 3 ? -1 : how == 4 ? 9 : 3;
    ag_dtype dt = how == 5 ? (ag_dtype)-7 : AG_F32;
    bool empty = false, bad = false;
    int64_t nonzero = 1;
    for (int d = 0; d < 3; d++) {
        empty |= shape[d] == 0;
        bad |=
            shape[d] < 0 ||
            (shape[d] && __builtin_mul_overflow(nonzero, shape[d], &nonzero));
    }
    ag_arena *a = how == 2 ? NULL : m->step;
    ag_clear_error();
    ag_tensor *t = how == 1 ? ag_from_data(a, dt, ndim, shape, NULL)
                            : ag_zeros(a, dt, ndim, shape);
    if (!t) fuzz_check_error("ag_");
    FUZZ_CHECK(!t == !(how <= 1 && empty && !bad),
               "shape (%lld,%lld,%lld), how %d: %s", (long long)shape[0],
               (long long)shape[1], (long long)shape[2], how,
               t ? "made" : "refused");
}

/* ------------------------------------------------------------------ */
/* Ops                                                                 */
/* ------------------------------------------------------------------ */

typedef ag_tensor *(*unary_fn)(ag_arena *, ag_tensor *);
typedef ag_tensor *(*binary_fn)(ag_arena *, ag_tensor *, ag_tensor *);
typedef ag_tensor *(*scalar_fn)(ag_arena *, ag_tensor *, double);

static const struct {
    const char *name;
    unary_fn f;
} unary_ops[] = {{"ag_neg", ag_neg},          {"ag_exp", ag_exp},
                 {"ag_log", ag_log},          {"ag_sqrt", ag_sqrt},
                 {"ag_abs", ag_abs},          {"ag_sigmoid", ag_sigmoid},
                 {"ag_tanh", ag_tanh},        {"ag_relu", ag_relu},
                 {"ag_gelu", ag_gelu},        {"ag_sin", ag_sin},
                 {"ag_cos", ag_cos},          {"ag_silu", ag_silu},
                 {"ag_softplus", ag_softplus}};

static const struct {
    const char *name;
    binary_fn f;
} binary_ops[] = {{"ag_add", ag_add},         {"ag_sub", ag_sub},
                  {"ag_mul", ag_mul},         {"ag_div", ag_div},
                  {"ag_maximum", ag_maximum}, {"ag_minimum", ag_minimum}};

static const struct {
    const char *name;
    scalar_fn f;
} scalar_ops[] = {{"ag_pow", ag_pow},
                  {"ag_scale", ag_scale},
                  {"ag_shift", ag_shift},
                  {"ag_leaky_relu", ag_leaky_relu}};

/* The expectation of elementwise x op y. */
static expect expect_binary(const ag_tensor *x, const ag_tensor *y)
{
    expect e = {0, AG_F32, -1, {0}};
    if (!x || !y || !broadcast(x, y, 0, &e)) return e;
    e.want = is_float(x) && x->dtype == y->dtype;
    e.dt = x->dtype;
    return e;
}

/* BINARY k d x y */
static void op_binary(vm *m)
{
    int k = get(m) % COUNT(binary_ops), d = dst(m);
    ag_tensor *in[2];
    in[0] = arg(m);
    in[1] = arg(m);
    expect e = expect_binary(in[0], in[1]);
    if (e.ndim >= 0 && !bounded(e.ndim, e.shape)) return;
    uint64_t h = hash_inputs(2, in);
    ag_clear_error();
    ag_tensor *t = binary_ops[k].f(m->step, in[0], in[1]);
    finish(m, binary_ops[k].name, 2, in, h, t, &e, d);
}

/* UNARY k d x */
static void op_unary(vm *m)
{
    int k = get(m) % COUNT(unary_ops), d = dst(m);
    ag_tensor *x = arg(m);
    expect e = like(x, is_float(x));
    uint64_t h = hash_inputs(1, &x);
    ag_clear_error();
    ag_tensor *t = unary_ops[k].f(m->step, x);
    finish(m, unary_ops[k].name, 1, &x, h, t, &e, d);
}

/* SCALAR k d x s */
static void op_scalar(vm *m)
{
    int k = get(m) % COUNT(scalar_ops), d = dst(m);
    ag_tensor *x = arg(m);
    double s = scalar(m);
    expect e = like(x, is_float(x) && isfinite(s));
    uint64_t h = hash_inputs(1, &x);
    ag_clear_error();
    ag_tensor *t = scalar_ops[k].f(m->step, x, s);
    finish(m, scalar_ops[k].name, 1, &x, h, t, &e, d);
}

/* DROPOUT d x p rng (255: NULL) */
static void op_dropout(vm *m)
{
    int d = dst(m);
    ag_tensor *x = arg(m);
    double p = scalar(m);
    expect e = like(x, is_float(x) && p >= 0 && p < 1);
    uint64_t h = hash_inputs(1, &x);
    ag_clear_error();
    bool no_rng = get(m) == 255;
    if (no_rng) e.want = -1; /* a NULL rng is not documented */
    ag_tensor *t = ag_dropout(m->step, x, p, no_rng ? NULL : &m->rng);
    finish(m, "ag_dropout", 1, &x, h, t, &e, d);
}

/* The expectation of x @ y. */
static expect expect_matmul(const ag_tensor *x, const ag_tensor *y)
{
    expect e = {0, AG_F32, -1, {0}};
    if (!x || !y || x->ndim < 2 || y->ndim < 2 ||
        x->shape[x->ndim - 1] != y->shape[y->ndim - 2] ||
        !broadcast(x, y, 2, &e) || e.ndim + 2 > AG_MAX_DIMS)
        return (expect){0, AG_F32, -1, {0}};
    e.shape[e.ndim++] = x->shape[x->ndim - 2];
    e.shape[e.ndim++] = y->shape[y->ndim - 1];
    e.want = is_float(x) && x->dtype == y->dtype;
    e.dt = x->dtype;
    return e;
}

/* MATMUL d x y */
static void op_matmul(vm *m)
{
    int d = dst(m);
    ag_tensor *in[2];
    in[0] = arg(m);
    in[1] = arg(m);
    expect e = expect_matmul(in[0], in[1]);
    if (e.ndim >= 0 && !bounded(e.ndim, e.shape)) return;
    uint64_t h = hash_inputs(2, in);
    ag_clear_error();
    ag_tensor *t = ag_matmul(m->step, in[0], in[1]);
    finish(m, "ag_matmul", 2, in, h, t, &e, d);
}

/* The expectation of reducing x over ax (k: 0 sum, 1 mean, 2 max). */
static expect expect_reduce(const ag_tensor *x, int ax, bool keep, int k)
{
    expect e = like(x, is_float(x) && (ax == AG_ALL || axis_ok(x, ax)));
    if (!e.want) return e;
    int a = ax == AG_ALL ? -1 : norm_axis(x, ax);
    int64_t len = a < 0 ? x->numel : x->shape[a];
    if (k == 2 && len == 0) return like(x, false);
    e.ndim = 0;
    for (int i = 0; i < x->ndim; i++)
        if (a >= 0 && i != a)
            e.shape[e.ndim++] = x->shape[i];
        else if (keep)
            e.shape[e.ndim++] = 1;
    return e;
}

/* REDUCE k d x axis keepdim */
static void op_reduce(vm *m)
{
    static const char *const names[] = {"ag_sum", "ag_mean", "ag_max"};
    int k = get(m) % 3, d = dst(m), ax;
    ag_tensor *x = arg(m);
    ax = axis(m);
    bool keep = get(m) & 1;
    expect e = expect_reduce(x, ax, keep, k);
    uint64_t h = hash_inputs(1, &x);
    ag_clear_error();
    ag_tensor *t = k == 0   ? ag_sum(m->step, x, ax, keep)
                   : k == 1 ? ag_mean(m->step, x, ax, keep)
                            : ag_max(m->step, x, ax, keep);
    finish(m, names[k], 1, &x, h, t, &e, d);
}

/* The expectation of reshaping x to ndim sizes: known when no size is -1
 * and the element count does not overflow. */
static expect expect_reshape(const ag_tensor *x, int ndim, const int64_t *shape)
{
    expect e = {-1, AG_F32, -1, {0}};
    if (!x || ndim < 0 || ndim > AG_MAX_DIMS) return like(x, false);
    int64_t count = 1, nonzero = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < -1) return like(x, false);
        if (shape[d] == -1 || __builtin_mul_overflow(count, shape[d], &count) ||
            (shape[d] && __builtin_mul_overflow(nonzero, shape[d], &nonzero)))
            return e;
    }
    e = like(x, count == x->numel);
    if (e.want) {
        e.ndim = ndim;
        memcpy(e.shape, shape, (size_t)ndim * sizeof *shape);
    }
    return e;
}

/* RESHAPE d x ndim sizes... */
static void op_reshape(vm *m)
{
    static const int64_t sizes[] = {-1,
                                    0,
                                    1,
                                    2,
                                    3,
                                    4,
                                    6,
                                    8,
                                    12,
                                    16,
                                    -2,
                                    5,
                                    24,
                                    (int64_t)1 << 31,
                                    (int64_t)1 << 62,
                                    INT64_MAX};
    int d = dst(m);
    ag_tensor *x = arg(m);
    int ndim = get(m) % 10;
    int64_t shape[AG_MAX_DIMS + 1];
    for (int i = 0; i < ndim; i++) shape[i] = sizes[get(m) % COUNT(sizes)];
    expect e = expect_reshape(x, ndim, shape);
    uint64_t h = hash_inputs(1, &x);
    ag_clear_error();
    ag_tensor *t = ag_reshape(m->step, x, ndim, shape);
    finish(m, "ag_reshape", 1, &x, h, t, &e, d);
    FUZZ_CHECK(!t || (t->numel == x->numel && t->data == x->data),
               "ag_reshape: not a view of its input");
}

/* TRANSPOSE d x d0 d1 */
static void op_transpose(vm *m)
{
    int d = dst(m);
    ag_tensor *x = arg(m);
    int d0 = axis(m), d1 = axis(m);
    expect e = like(x, is_float(x) && axis_ok(x, d0) && axis_ok(x, d1));
    if (e.want) {
        e.shape[norm_axis(x, d0)] = x->shape[norm_axis(x, d1)];
        e.shape[norm_axis(x, d1)] = x->shape[norm_axis(x, d0)];
    }
    uint64_t h = hash_inputs(1, &x);
    ag_clear_error();
    ag_tensor *t = ag_transpose(m->step, x, d0, d1);
    finish(m, "ag_transpose", 1, &x, h, t, &e, d);
}

/* SOFTMAX log d x axis */
static void op_softmax(vm *m)
{
    bool log = get(m) & 1;
    int d = dst(m);
    ag_tensor *x = arg(m);
    int ax = axis(m);
    expect e = like(x, is_float(x) && axis_ok(x, ax));
    uint64_t h = hash_inputs(1, &x);
    ag_clear_error();
    ag_tensor *t =
        log ? ag_log_softmax(m->step, x, ax) : ag_softmax(m->step, x, ax);
    finish(m, log ? "ag_log_softmax" : "ag_softmax", 1, &x, h, t, &e, d);
}

/* ARGMAX d x axis */
static void op_argmax(vm *m)
{
    int d = dst(m);
    ag_tensor *x = arg(m);
    int ax = axis(m);
    expect e = like(x, is_float(x) && axis_ok(x, ax) &&
                           x->shape[norm_axis(x, ax)] > 0);
    if (e.want) {
        e.dt = AG_I32;
        e.ndim = 0;
        for (int i = 0; i < x->ndim; i++)
            if (i != norm_axis(x, ax)) e.shape[e.ndim++] = x->shape[i];
    }
    uint64_t h = hash_inputs(1, &x);
    ag_clear_error();
    ag_tensor *t = ag_argmax(m->step, x, ax);
    finish(m, "ag_argmax", 1, &x, h, t, &e, d);
    FUZZ_CHECK(!t || !t->requires_grad, "ag_argmax requires a gradient");
    for (int64_t i = 0; t && i < t->numel; i++) {
        int32_t v = ((const int32_t *)t->data)[i];
        FUZZ_CHECK(v >= 0 && v < x->shape[norm_axis(x, ax)],
                   "ag_argmax: index %d out of range", (int)v);
    }
}

/* Targets for logits x: from a slot, or made here: i32 (N) of classes in
 * [-1, C + 1], N the rows of x (or a size from the input). */
static ag_tensor *targets(vm *m, const ag_tensor *x)
{
    uint8_t how = get(m);
    if (how & 1) return arg(m);
    int64_t n = x && x->ndim == 2 ? x->shape[0] : get(m) % 4;
    int64_t c = x && x->ndim == 2 ? x->shape[1] : 2;
    if (how & 2) n = (n + 1) % 5; /* a count that may not match */
    int32_t v[KEEP_MAX];
    for (int64_t i = 0; i < n && i < KEEP_MAX; i++)
        v[i] = (int32_t)(get(m) % (c + 3)) - 1;
    return ag_from_data(m->step, AG_I32, 1, &n, v);
}

/* Whether (x, y) are valid for ag_softmax_cross_entropy. */
static bool xent_ok(const ag_tensor *x, const ag_tensor *y)
{
    if (!is_float(x) || !y || x->ndim != 2 || y->dtype != AG_I32 ||
        y->ndim != 1 || y->shape[0] != x->shape[0] || x->shape[0] == 0)
        return false;
    for (int64_t i = 0; i < y->numel; i++) {
        int32_t c = ((const int32_t *)y->data)[i];
        if (c < 0 || c >= x->shape[1]) return false;
    }
    return true;
}

/* XENT d x targets... */
static void op_xent(vm *m)
{
    int d = dst(m);
    ag_tensor *in[2] = {arg(m), NULL};
    in[1] = targets(m, in[0]);
    expect e = {xent_ok(in[0], in[1]), in[0] ? in[0]->dtype : AG_F32, 0, {0}};
    uint64_t h = hash_inputs(2, in);
    ag_clear_error();
    ag_tensor *t = ag_softmax_cross_entropy(m->step, in[0], in[1]);
    finish(m, "ag_softmax_cross_entropy", 2, in, h, t, &e, d);
}

/* MSE d x y */
static void op_mse(vm *m)
{
    int d = dst(m);
    ag_tensor *in[2];
    in[0] = arg(m);
    in[1] = arg(m);
    const ag_tensor *x = in[0], *y = in[1];
    bool ok = is_float(x) && y && x->dtype == y->dtype && x->ndim == y->ndim &&
              x->numel > 0 &&
              !memcmp(x->shape, y->shape, (size_t)x->ndim * sizeof *x->shape);
    expect e = {ok, x ? x->dtype : AG_F32, 0, {0}};
    uint64_t h = hash_inputs(2, in);
    ag_clear_error();
    ag_tensor *t = ag_mse_loss(m->step, in[0], in[1]);
    finish(m, "ag_mse_loss", 2, in, h, t, &e, d);
}

/* The expectation of ag_linear(x, w, b). */
static expect expect_linear(const ag_tensor *x, const ag_tensor *w,
                            const ag_tensor *b)
{
    expect e = {0, AG_F32, -1, {0}};
    if (!is_float(x) || !w || !x->ndim || w->ndim != 2 ||
        w->dtype != x->dtype || x->shape[x->ndim - 1] != w->shape[1] ||
        (b &&
         (b->dtype != x->dtype || b->ndim != 1 || b->shape[0] != w->shape[0])))
        return e;
    e = like(x, true);
    e.shape[e.ndim - 1] = w->shape[0];
    return e;
}

/* LINEAR d x w bias-bit b */
static void op_linear(vm *m)
{
    int d = dst(m);
    ag_tensor *in[3] = {NULL, NULL, NULL};
    in[0] = arg(m);
    in[1] = arg(m);
    uint8_t b = get(m);
    if (b & 1) in[2] = m->slot[(b >> 1) % SLOTS];
    expect e = expect_linear(in[0], in[1], in[2]);
    if (e.ndim >= 0 && !bounded(e.ndim, e.shape)) return;
    uint64_t h = hash_inputs(3, in);
    ag_clear_error();
    ag_tensor *t = ag_linear(m->step, in[0], in[1], in[2]);
    finish(m, "ag_linear", 3, in, h, t, &e, d);
}

/* The expectation of ag_scaled_dot_product_attention(q, k, v, mask). */
static expect expect_attention(const ag_tensor *q, const ag_tensor *k,
                               const ag_tensor *v, const ag_tensor *mask)
{
    expect e = {0, AG_F32, -1, {0}};
    if (!is_float(q) || !k || !v || k->dtype != q->dtype ||
        v->dtype != q->dtype || (mask && mask->dtype != q->dtype) ||
        q->ndim < 2 || k->ndim < 2 || v->ndim < 2)
        return e;
    int64_t T = q->shape[q->ndim - 2], E = q->shape[q->ndim - 1];
    int64_t S = k->shape[k->ndim - 2];
    if (k->shape[k->ndim - 1] != E || v->shape[v->ndim - 2] != S || E == 0)
        return e;
    /* the batch axes of q, k and v, right-aligned, broadcast: b[j] is the
     * j-th from the last */
    const ag_tensor *in[3] = {q, k, v};
    int64_t b[AG_MAX_DIMS];
    int n = 0;
    for (int i = 0; i < 3; i++) {
        int nt = in[i]->ndim - 2;
        for (int j = 0; j < nt; j++) {
            int64_t s = in[i]->shape[nt - 1 - j];
            if (j >= n || b[j] == 1)
                b[j] = s;
            else if (s != b[j] && s != 1)
                return e;
        }
        n = nt > n ? nt : n;
    }
    int64_t full[AG_MAX_DIMS + 2];
    for (int j = 0; j < n; j++) full[j] = b[n - 1 - j];
    full[n] = T;
    full[n + 1] = S;
    if (mask) { /* it broadcasts to (batch..., T, S) */
        if (mask->ndim > n + 2) return e;
        for (int j = 0; j < mask->ndim; j++) {
            int64_t s = mask->shape[mask->ndim - 1 - j];
            if (s != full[n + 1 - j] && s != 1) return e;
        }
    }
    e.want = 1;
    e.dt = q->dtype;
    e.ndim = n + 2;
    memcpy(e.shape, full, (size_t)(n + 1) * sizeof *full);
    e.shape[n + 1] = v->shape[v->ndim - 1];
    return e;
}

/* ATTENTION d q k v mask-bit mask causal-bit */
static void op_attention(vm *m)
{
    int d = dst(m);
    ag_tensor *in[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < 3; i++) in[i] = arg(m);
    uint8_t b = get(m);
    if (b & 1) in[3] = m->slot[(b >> 1) % SLOTS];
    bool causal = get(m) & 1;
    expect e = expect_attention(in[0], in[1], in[2], in[3]);
    if (e.ndim >= 0 && !bounded(e.ndim, e.shape)) return;
    uint64_t h = hash_inputs(4, in);
    ag_clear_error();
    ag_tensor *t = ag_scaled_dot_product_attention(m->step, in[0], in[1], in[2],
                                                   in[3], causal);
    finish(m, "ag_scaled_dot_product_attention", 4, in, h, t, &e, d);
}

/* DETACH d x arena-bit */
static void op_detach(vm *m)
{
    int d = dst(m);
    ag_tensor *x = arg(m);
    ag_arena *a = get(m) & 1 ? m->keep : m->step;
    uint64_t h = hash_inputs(1, &x);
    ag_clear_error();
    ag_tensor *t = ag_detach(a, x);
    FUZZ_CHECK(hash_inputs(1, &x) == h, "ag_detach changed its input");
    FUZZ_CHECK(!t == !x, "ag_detach: NULL for a tensor, or the reverse");
    if (!t) return;
    FUZZ_CHECK(!t->requires_grad && !t->op && !t->grad && t->arena == a &&
                   strcmp(ag_tensor_op_name(t), "leaf") == 0,
               "ag_detach: not a leaf");
    FUZZ_CHECK(
        t->dtype == x->dtype && t->ndim == x->ndim &&
            !memcmp(t->shape, x->shape, (size_t)x->ndim * sizeof *x->shape) &&
            !memcmp(t->data, x->data,
                    (size_t)x->numel * ag__dtype_size(x->dtype)),
        "ag_detach: not a copy");
    m->slot[d] = t;
}

/* ------------------------------------------------------------------ */
/* Gradients and modes                                                 */
/* ------------------------------------------------------------------ */

/* REQUIRES_GRAD x on-bit */
static void op_requires_grad(vm *m)
{
    ag_tensor *x = arg(m);
    bool on = get(m) & 1;
    if (!x) return;
    bool before = ag_is_requires_grad(x);
    bool recorded = strcmp(ag_tensor_op_name(x), "leaf") != 0;
    ag_clear_error();
    ag_requires_grad(x, on);
    bool failed = ag_last_error()[0] != '\0';
    bool must_fail = (on && !is_float(x)) || (!on && recorded);
    FUZZ_CHECK(failed == must_fail, "ag_requires_grad(%s, %d) %s",
               ag_dtype_name(x->dtype), on, failed ? "failed" : "succeeded");
    if (failed) fuzz_check_error("ag_requires_grad");
    FUZZ_CHECK(ag_is_requires_grad(x) == (failed ? before : on),
               "ag_requires_grad: wrong flag afterwards");
}

/* Checks that every slot's gradient has its tensor's dtype and shape. */
static void check_grads(const vm *m)
{
    for (int i = 0; i < SLOTS; i++) {
        const ag_tensor *t = m->slot[i], *g = t ? t->grad : NULL;
        if (!g) continue;
        FUZZ_CHECK(g->dtype == t->dtype && g->ndim == t->ndim &&
                       !memcmp(g->shape, t->shape,
                               (size_t)t->ndim * sizeof *t->shape) &&
                       g->arena == t->arena,
                   "slot %d: gradient of another dtype, shape or arena", i);
    }
}

/* The loss ag_backward starts from: x itself or its sum, mean or max. */
static ag_tensor *loss_of(vm *m, ag_tensor *x, int how)
{
    switch (how) {
    case 1:
        return ag_sum(m->step, x, AG_ALL, false);
    case 2:
        return ag_mean(m->step, x, AG_ALL, get(m) & 1);
    case 3:
        return ag_max(m->step, x, AG_ALL, false);
    default:
        return x;
    }
}

/* BACKWARD x how twice-bit */
static void op_backward(vm *m)
{
    ag_tensor *x = arg(m);
    int how = get(m) % 4;
    bool twice = get(m) & 1;
    ag_clear_error();
    ag_tensor *loss = loss_of(m, x, how);
    bool ok = is_float(loss) && loss->numel == 1 && loss->requires_grad;
    bool anomaly = ag_is_anomaly_detection_enabled();
    for (int pass = 0; pass < 1 + twice; pass++) {
        uint64_t h = hash_slots(m);
        ag_clear_error();
        int rc = ag_backward(loss);
        FUZZ_CHECK(rc == 0 || rc == -1, "ag_backward returned %d", rc);
        fuzz_trace("  ag_backward: %d %s", rc, ag_last_error());
        FUZZ_CHECK(rc == 0 || (anomaly && ok) || hash_slots(m) == h,
                   "a failed ag_backward changed a gradient");
        FUZZ_CHECK(rc == (ok ? 0 : -1) || (anomaly && ok),
                   "ag_backward returned %d", rc);
        if (rc) fuzz_check_error("ag_");
    }
    FUZZ_CHECK(!ok || anomaly || ag_grad(loss), "no gradient for the loss");
    check_grads(m);
}

/* ZERO_GRAD how x: zeroes x's gradient, or (how odd) clears it, after
 * which it reads as NULL until a backward reaches x again. */
static void op_zero_grad(vm *m)
{
    bool clear = get(m) & 1;
    ag_tensor *x = arg(m);
    if (clear) {
        ag_clear_grad(x);
        FUZZ_CHECK(!ag_grad(x), "ag_clear_grad left a gradient");
        return;
    }
    ag_zero_grad(x);
    const ag_tensor *g = ag_grad(x);
    size_t n = g ? (size_t)g->numel * ag__dtype_size(g->dtype) : 0;
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(((const unsigned char *)g->data)[i] == 0,
                   "ag_zero_grad left a non-zero byte");
}

/* GRAD d x: the gradient of x into slot d. */
static void op_grad(vm *m)
{
    int d = dst(m);
    ag_tensor *g = ag_grad(arg(m));
    if (g) m->slot[d] = g;
}

/* MODE which-bit on-bit: grad mode or anomaly detection. */
static void op_mode(vm *m)
{
    bool anomaly = get(m) & 1, on = get(m) & 1;
    bool before =
        anomaly ? ag_is_anomaly_detection_enabled() : ag_is_grad_enabled();
    bool prev =
        anomaly ? ag_set_anomaly_detection(on) : ag_set_grad_enabled(on);
    FUZZ_CHECK(prev == before, "the previous mode is wrong");
    FUZZ_CHECK((anomaly ? ag_is_anomaly_detection_enabled()
                        : ag_is_grad_enabled()) == on,
               "the mode did not change");
}

/* Drops the slots that live in arena a (before it is reset or freed). */
static void drop(vm *m, const ag_arena *a)
{
    for (int i = 0; i < SLOTS; i++)
        if (m->slot[i] && m->slot[i]->arena == a) m->slot[i] = NULL;
}

/* RESET how: the step arena reset, or freed and made anew; or both
 * arenas reset (step tensors may refer to keep tensors). */
static void op_reset(vm *m)
{
    int how = get(m) % 3;
    drop(m, m->step);
    if (how == 1) {
        ag_arena_free(m->step);
        m->step = ag_arena_new();
        FUZZ_CHECK(m->step, "ag_arena_new failed");
        return;
    }
    ag_arena_reset(m->step);
    if (how == 2) {
        drop(m, m->keep);
        ag_arena_reset(m->keep);
    }
}

/* ------------------------------------------------------------------ */
/* Tools                                                               */
/* ------------------------------------------------------------------ */

/* INSPECT what x: item, print, DOT, names. */
static void op_inspect(vm *m)
{
    int what = get(m) % 5;
    ag_tensor *x = arg(m);
    uint64_t h = hash_inputs(1, &x);
    ag_clear_error();
    if (what == 0) {
        double v = ag_item(x);
        if (x && x->numel != 1) fuzz_check_error("ag_item");
        FUZZ_CHECK(isnan(v) || (x && x->numel == 1), "ag_item of %lld",
                   (long long)ag_numel(x));
    } else if (what == 1) {
        static const int64_t max[] = {-1, 0, 3, 100};
        FILE *out = get(m) == 255 ? NULL : m->sink;
        int rc = ag_print(x, out, max[get(m) % 4]);
        FUZZ_CHECK(rc == 0 || rc == -1, "ag_print returned %d", rc);
        FUZZ_CHECK(rc == 0 || !x || ag_last_error()[0], "ag_print: no error");
        char text[64];
        int64_t n = ag_snprint(text, sizeof text, x, max[get(m) % 4]);
        FUZZ_CHECK(n >= 0 ? strlen(text) == (size_t)(n < 63 ? n : 63)
                          : !x || ag_last_error()[0],
                   "ag_snprint returned %lld", (long long)n);
    } else if (what == 2) {
        int rc = ag_write_dot(x, m->sink);
        FUZZ_CHECK(rc == 0 || rc == -1, "ag_write_dot returned %d", rc);
        if (rc) fuzz_check_error("ag_");
        FUZZ_CHECK(rc == 0 || !x, "ag_write_dot failed");
    } else if (what == 3) {
        const char *name = ag_tensor_op_name(x);
        FUZZ_CHECK(!name == !x, "ag_tensor_op_name");
    } else {
        int i = (int)get(m) - 128;
        const char *name = ag_op_name(i);
        FUZZ_CHECK(!name == !(i >= 0 && i < ag_op_count()), "ag_op_name(%d)",
                   i);
    }
    FUZZ_CHECK(hash_inputs(1, &x) == h, "inspecting changed the tensor");
}

/* What a gradcheck function computes: one op on its inputs. */
typedef struct {
    int kind, index, axis;
} gc_fn;

static ag_tensor *gc_call(ag_arena *a, ag_tensor *const *in, int n, void *user)
{
    const gc_fn *f = user;
    switch (f->kind) {
    case 0:
        return unary_ops[f->index].f(a, in[0]);
    case 1:
        return binary_ops[f->index].f(a, in[0], in[n - 1]);
    case 2:
        return scalar_ops[f->index].f(a, in[0], 1.5);
    case 3:
        return ag_matmul(a, in[0], in[n - 1]);
    case 4:
        return f->index ? ag_log_softmax(a, in[0], f->axis)
                        : ag_softmax(a, in[0], f->axis);
    case 5:
        return ag_mse_loss(a, in[0], in[n - 1]);
    case 6:
        return ag_transpose(a, in[0], f->axis, 0);
    default:
        return ag_max(a, in[0], f->axis, f->index & 1);
    }
}

/* GRADCHECK kind index axis n x y options */
static void op_gradcheck(vm *m)
{
    gc_fn f;
    f.kind = get(m) % 8;
    f.index = get(m);
    f.axis = axis(m);
    int ns[] = {
        COUNT(unary_ops), COUNT(binary_ops), COUNT(scalar_ops), 1, 2, 1, 1, 2};
    f.index %= ns[f.kind];
    int n = 1 + get(m) % 2;
    ag_tensor *in[2];
    in[0] = arg(m);
    in[1] = arg(m);
    for (int i = 0; i < n; i++)
        if (in[i] && in[i]->numel > SMALL) return;
    ag_gradcheck_options o = ag_gradcheck_defaults();
    uint8_t how = get(m);
    o.projection = how & 1;
    o.max_elements = how & 2 ? 2 : 0;
    if (how & 4) o.eps = scalars[(how >> 3) % COUNT(scalars)];
    bool mode = ag_is_grad_enabled();
    uint64_t h = hash_inputs(n, in);
    ag_clear_error();
    ag_gradcheck_report r;
    int rc = ag_gradcheck(gc_call, n, in, &f, how & 128 ? NULL : &o, &r);
    FUZZ_CHECK(rc >= -1 && rc <= 1, "ag_gradcheck returned %d", rc);
    fuzz_trace("  ag_gradcheck: %d %s", rc, ag_last_error());
    if (rc < 0) fuzz_check_error("ag_gradcheck");
    if (rc >= 0) ag_gradcheck_print(m->sink, &r);
    FUZZ_CHECK(hash_inputs(n, in) == h, "ag_gradcheck changed an input");
    FUZZ_CHECK(ag_is_grad_enabled() == mode, "ag_gradcheck: grad mode");
}

/* CHAIN d x count: a chain of 8 * count + 1 ops (neg, or shift by 1) on a
 * tensor of at most 64 elements, so that ag_backward's sort grows its
 * working memory past its first 1024 entries. */
static void op_chain(vm *m)
{
    int d = dst(m);
    ag_tensor *x = arg(m);
    int n = 8 * get(m) + 1;
    if (ag_numel(x) > 64) return;
    ag_tensor *t = x;
    uint64_t h = hash_inputs(1, &x);
    ag_clear_error();
    for (int i = 0; i < n; i++)
        t = i % 2 ? ag_neg(m->step, t) : ag_shift(m->step, t, 1);
    expect e = like(x, is_float(x));
    finish(m, "chain", 1, &x, h, t, &e, d);
}

/* COPY d x */
static void op_copy(vm *m)
{
    int d = dst(m);
    m->slot[d] = arg(m);
}

/* CONV d x w bias-bit b options...: ag_conv2d, or ag_conv1d when the bias
 * byte's bit 1 is set; the options from small tables (negatives
 * included), a NULL options pointer when the last byte's bit 7 is set.
 * Either outcome is allowed; an error must name the function. */
static void op_conv(vm *m)
{
    static const int64_t t[] = {0, 1, 2, 3, -1, 0, 1, 4};
    int d = dst(m);
    ag_tensor *in[3] = {NULL, NULL, NULL};
    in[0] = arg(m);
    in[1] = arg(m);
    uint8_t b = get(m);
    if (b & 1) in[2] = m->slot[(b >> 2) % SLOTS];
    ag_conv_options o;
    for (int k = 0; k < 2; k++) {
        o.stride[k] = t[get(m) % COUNT(t)];
        o.padding[k] = t[get(m) % COUNT(t)];
        o.dilation[k] = t[get(m) % COUNT(t)];
    }
    uint8_t g = get(m);
    o.groups = t[g % COUNT(t)];
    expect e = {-1, AG_F32, -1, {0}};
    uint64_t h = hash_inputs(3, in);
    ag_clear_error();
    const ag_conv_options *op = g & 128 ? NULL : &o;
    ag_tensor *r = b & 2 ? ag_conv1d(m->step, in[0], in[1], in[2], op)
                         : ag_conv2d(m->step, in[0], in[1], in[2], op);
    finish(m, b & 2 ? "ag_conv1d" : "ag_conv2d", 3, in, h, r, &e, d);
}

/* POOL d x kind kernel stride padding: ag_max_pool2d, ag_avg_pool2d,
 * ag_unfold (kernel x stride) or ag_fold (to a kernel x kernel output of
 * stride x stride blocks, padding as given). Either outcome is allowed. */
static void op_pool(vm *m)
{
    static const int64_t t[] = {0, 1, 2, 3, -1, 4, 1, 2};
    int d = dst(m);
    ag_tensor *x = arg(m);
    int kind = get(m) % 4;
    int64_t k = t[get(m) % COUNT(t)], s = t[get(m) % COUNT(t)];
    int64_t pad = t[get(m) % COUNT(t)];
    ag_conv_options o = {{s, s}, {pad, pad}, {1, 1}, 0};
    expect e = {-1, AG_F32, -1, {0}};
    uint64_t h = hash_inputs(1, &x);
    ag_clear_error();
    static const char *const funcs[] = {"ag_max_pool2d", "ag_avg_pool2d",
                                        "ag_unfold", "ag_fold"};
    ag_tensor *r = kind == 0   ? ag_max_pool2d(m->step, x, k, s, pad)
                   : kind == 1 ? ag_avg_pool2d(m->step, x, k, s, pad)
                   : kind == 2 ? ag_unfold(m->step, x, k, s, &o)
                               : ag_fold(m->step, x, k, k, s, s, &o);
    finish(m, funcs[kind], 1, &x, h, r, &e, d);
}

/* ------------------------------------------------------------------ */
/* The interpreter                                                     */
/* ------------------------------------------------------------------ */

/* EXPAND d x ndim sizes... (sizes from reshape's table, -1 included) */
static void op_expand(vm *m)
{
    static const int64_t sizes[] = {-1, 0, 1, 2, 3, 4, 8, -2};
    int d = dst(m);
    ag_tensor *x = arg(m);
    int ndim = get(m) % 10;
    int64_t shape[AG_MAX_DIMS + 1];
    for (int i = 0; i < ndim; i++) shape[i] = sizes[get(m) % COUNT(sizes)];
    expect e = {-1, AG_F32, -1, {0}};
    if (!x || !is_float(x) || ndim > AG_MAX_DIMS || ndim < x->ndim) e.want = 0;
    /* the result's size, a -1 read as x's size (or 1), must stay small */
    int64_t resolved[AG_MAX_DIMS + 1];
    for (int i = 0; i < ndim; i++) {
        int xd = x ? i - (ndim - x->ndim) : -1;
        resolved[i] = shape[i] >= 0                               ? shape[i]
                      : shape[i] == -1 && xd >= 0 && xd < x->ndim ? x->shape[xd]
                                                                  : 1;
    }
    if (ndim <= AG_MAX_DIMS && !bounded(ndim, resolved)) return;
    uint64_t h = hash_inputs(1, &x);
    ag_clear_error();
    ag_tensor *t = ag_expand(m->step, x, ndim, shape);
    finish(m, "ag_expand", 1, &x, h, t, &e, d);
}

/* CAST d x dtype */
static void op_cast(vm *m)
{
    int d = dst(m);
    ag_tensor *x = arg(m);
    ag_dtype dt = dtype(m);
    expect e = like(x, is_float(x) && (dt == AG_F32 || dt == AG_F64));
    e.dt = dt;
    uint64_t h = hash_inputs(1, &x);
    ag_clear_error();
    ag_tensor *t = ag_cast(m->step, x, dt);
    finish(m, "ag_cast", 1, &x, h, t, &e, d);
}

/* GRADIENTS d y x seed(255: NULL) create_graph: the gradient of y with
 * respect to x; the slots (values, flags, gradients) never change. */
static void op_gradients(vm *m)
{
    int d = dst(m);
    ag_tensor *in[3];
    in[0] = arg(m);
    in[1] = arg(m);
    uint8_t seed = get(m);
    in[2] = seed == 255 ? NULL : m->slot[seed % SLOTS];
    bool create_graph = get(m) & 1;
    uint64_t h = hash_slots(m);
    ag_clear_error();
    ag_tensor *g = NULL;
    int status =
        ag_gradients(m->step, 1, &in[0], &in[2], 1, &in[1], create_graph, &g);
    FUZZ_CHECK(hash_slots(m) == h, "ag_gradients changed a slot");
    fuzz_trace("  ag_gradients: %s", status ? ag_last_error() : "ok");
    if (status) {
        FUZZ_CHECK(!g, "ag_gradients failed but gave a gradient");
        fuzz_check_error("ag_");
        return;
    }
    check_result(m, g, "ag_gradients");
    FUZZ_CHECK(
        g->dtype == in[1]->dtype && g->ndim == in[1]->ndim &&
            !memcmp(g->shape, in[1]->shape, (size_t)g->ndim * sizeof *g->shape),
        "ag_gradients: the gradient's dtype or shape is not x's");
    if (bounded(g->ndim, g->shape)) m->slot[d] = g;
}

/* DUAL d x t: x carrying the tangent t, made in the step arena; then
 * TANGENT reads of it happen through later ops' results. */
static void op_dual(vm *m)
{
    int d = dst(m);
    ag_tensor *in[2];
    in[0] = arg(m);
    in[1] = arg(m);
    expect e = like(in[0], in[0] && in[1] && is_float(in[0]) &&
                               in[0]->dtype == in[1]->dtype &&
                               in[0]->ndim == in[1]->ndim &&
                               !memcmp(in[0]->shape, in[1]->shape,
                                       (size_t)in[0]->ndim * sizeof(int64_t)));
    uint64_t h = hash_inputs(2, in);
    ag_clear_error();
    ag_tensor *t = ag_make_dual(m->step, in[0], in[1]);
    finish(m, "ag_make_dual", 2, in, h, t, &e, d);
    if (t) {
        const ag_tensor *tan = ag_tangent(t);
        FUZZ_CHECK(tan && tan->numel == t->numel && tan->dtype == t->dtype,
                   "ag_make_dual: no tangent of the primal's shape");
    }
}

/* TANGENT d x: slot d gets the tangent x carries, when it is in the step
 * arena and has one. */
static void op_tangent(vm *m)
{
    int d = dst(m);
    ag_tensor *x = arg(m);
    ag_tensor *t = ag_tangent(x);
    if (!t) return;
    FUZZ_CHECK(
        t->dtype == x->dtype && t->ndim == x->ndim &&
            !memcmp(t->shape, x->shape, (size_t)t->ndim * sizeof *t->shape),
        "ag_tangent: the tangent's dtype or shape is not its primal's");
    if (t->arena == m->step && bounded(t->ndim, t->shape)) m->slot[d] = t;
}

/* NORM d kind x w b nd: ag_layer_norm(x, nd, w, b), ag_rms_norm(x, nd, w),
 * ag_batch_norm in training without running statistics (which would be
 * written in place) or in evaluation with w and b as them; w or b 255:
 * NULL. Either outcome is allowed; the inputs never change. */
static void op_norm(vm *m)
{
    int d = dst(m), kind = get(m) % 4;
    ag_tensor *in[3];
    in[0] = arg(m);
    uint8_t w = get(m), b = get(m);
    in[1] = w == 255 ? NULL : m->slot[w % SLOTS];
    in[2] = b == 255 ? NULL : m->slot[b % SLOTS];
    int nd = get(m) % 4;
    double eps = scalar(m);
    expect e = {-1, AG_F32, -1, {0}};
    uint64_t h = hash_inputs(3, in);
    ag_clear_error();
    static const char *const funcs[] = {"ag_layer_norm", "ag_rms_norm",
                                        "ag_batch_norm", "ag_batch_norm"};
    ag_tensor *r = kind == 0
                       ? ag_layer_norm(m->step, in[0], nd, in[1], in[2], eps)
                   : kind == 1 ? ag_rms_norm(m->step, in[0], nd, in[1], eps)
                   : kind == 2 ? ag_batch_norm(m->step, in[0], NULL, NULL,
                                               in[1], in[2], true, 0.1, eps)
                               : ag_batch_norm(m->step, in[0], in[1], in[2],
                                               NULL, NULL, false, 0.1, eps);
    finish(m, funcs[kind], 3, in, h, r, &e, d);
}

/* LOSS d kind x t s: ag_cross_entropy(x, t) (options from s: none, or
 * ignore_index s - 1 with smoothing 0.1), ag_binary_cross_entropy_with_
 * logits, ag_l1_loss or ag_huber_loss (delta a scalar). */
static void op_loss(vm *m)
{
    int d = dst(m), kind = get(m) % 4;
    ag_tensor *in[2];
    in[0] = arg(m);
    in[1] = arg(m);
    uint8_t sel = get(m);
    double delta = scalar(m);
    ag_cross_entropy_options o = {(int32_t)(sel % 4) - 1, 0.1};
    expect e = {-1, AG_F32, -1, {0}};
    uint64_t h = hash_inputs(2, in);
    ag_clear_error();
    static const char *const funcs[] = {"ag_cross_entropy",
                                        "ag_binary_cross_entropy_with_logits",
                                        "ag_l1_loss", "ag_huber_loss"};
    ag_tensor *r =
        kind == 0
            ? ag_cross_entropy(m->step, in[0], in[1], sel & 128 ? &o : NULL)
        : kind == 1 ? ag_binary_cross_entropy_with_logits(m->step, in[0], in[1])
        : kind == 2 ? ag_l1_loss(m->step, in[0], in[1])
                    : ag_huber_loss(m->step, in[0], in[1], delta);
    finish(m, funcs[kind], 2, in, h, r, &e, d);
}

/* The instructions, in opcode order (make_corpus.py's OPS follows it). */
static void (*const instructions[])(vm *) = {
    op_new,       op_new_bad,       op_binary,   op_unary,     op_scalar,
    op_matmul,    op_reduce,        op_reshape,  op_transpose, op_softmax,
    op_xent,      op_mse,           op_dropout,  op_linear,    op_argmax,
    op_detach,    op_requires_grad, op_backward, op_zero_grad, op_grad,
    op_mode,      op_reset,         op_inspect,  op_gradcheck, op_copy,
    op_chain,     op_expand,        op_cast,     op_gradients, op_dual,
    op_tangent,   op_conv,          op_pool,     op_norm,      op_loss,
    op_attention,
};

static const char *const names[] = {
    "new",       "new_bad",       "binary",   "unary",     "scalar",
    "matmul",    "reduce",        "reshape",  "transpose", "softmax",
    "xent",      "mse",           "dropout",  "linear",    "argmax",
    "detach",    "requires_grad", "backward", "zero_grad", "grad",
    "mode",      "reset",         "inspect",  "gradcheck", "copy",
    "chain",     "expand",        "cast",     "gradients", "dual",
    "tangent",   "conv",          "pool",     "norm",      "loss",
    "attention",
};
_Static_assert(COUNT(names) == COUNT(instructions), "a name per opcode");

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    if (!sink) sink = fopen("/dev/null", "w");
    FUZZ_CHECK(sink, "cannot open /dev/null");
    vm m = {.p = data,
            .n = size,
            .step = ag_arena_new(),
            .keep = ag_arena_new(),
            .rng = ag_rng_seed(size),
            .sink = sink};
    FUZZ_CHECK(m.step && m.keep, "ag_arena_new failed");
    while (m.n && ag_arena_capacity(m.keep) < ARENA_MAX) {
        int op = get(&m) % COUNT(instructions);
        fuzz_trace("%s", names[op]);
        instructions[op](&m);
        if (ag_arena_capacity(m.step) > ARENA_MAX) {
            drop(&m, m.step);
            ag_arena_reset(m.step);
        }
    }
    ag_arena_free(m.step);
    ag_arena_free(m.keep);
    ag_set_grad_enabled(true);
    ag_set_anomaly_detection(false);
    ag_clear_error();
    return 0;
}
