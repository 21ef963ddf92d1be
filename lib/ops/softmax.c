/* softmax.c: softmax and log_softmax over an axis, and the fused
 * softmax-cross-entropy loss built on the same stable kernel.
 *
 * Along the axis (viewed as (outer, len, inner), one column per (o, i)),
 * with m the column's maximum:
 *   softmax(x)_l     = e^(x_l - m) / sum_j e^(x_j - m)
 *   log_softmax(x)_l = x_l - m - log sum_j e^(x_j - m)
 * so no exponent is ever positive and logits of any size are safe (and
 * fastmath.h's AG_EXP_NONPOS, e^x for x <= 0, serves). */
#include "../internal.h"

#include "fastmath.h"

#include <math.h>
#include <stdio.h>
#include <tgmath.h>

enum { SOFTMAX, LOG_SOFTMAX };

typedef struct {
    int axis; /* normalised */
} softmax_params;

/* Cross-entropy keeps log_softmax(logits), (N, C), and a copy of the
 * checked targets, so that a later change to the targets' values cannot
 * reach the backward. */
typedef struct {
    void *logp;
    int32_t *targets;
} cross_entropy_saved;

/* Writes softmax (or log_softmax when take_log) of every column of x into y.
 * Both are (outer, len, inner) arrays of dtype dt. The maximum and the sum
 * of each column run in SOFTMAX_PARTS interleaved parts (combined in a
 * fixed order), which the compiler vectorises for rows without
 * reassociating anything; the maximum is the same as a sequential one. */
#define SOFTMAX_PARTS 8
AG_KERNEL static void softmax_columns(ag_dtype dt, const void *xv, void *yv,
                                      int64_t outer, int64_t len, int64_t inner,
                                      bool take_log)
{
/* One column of stride S: written out twice below, for S = 1 (rows, whose
 * loops vectorise) and S = inner. */
#define SOFTMAX_COLUMN(S)                                                      \
    do {                                                                       \
        real mp[SOFTMAX_PARTS], sp[SOFTMAX_PARTS] = {0};                       \
        for (int j = 0; j < SOFTMAX_PARTS; j++) mp[j] = -INFINITY;             \
        int64_t l = 0;                                                         \
        for (; l + SOFTMAX_PARTS <= len; l += SOFTMAX_PARTS)                   \
            for (int j = 0; j < SOFTMAX_PARTS; j++)                            \
                mp[j] = x[(l + j) * (S)] > mp[j] ? x[(l + j) * (S)] : mp[j];   \
        real m = -INFINITY;                                                    \
        for (; l < len; l++)                                                   \
            if (x[l * (S)] > m) m = x[l * (S)];                                \
        for (int j = 0; j < SOFTMAX_PARTS; j++)                                \
            if (mp[j] > m) m = mp[j];                                          \
        for (l = 0; l < len; l++) y[l * (S)] = AG_EXP_NONPOS(x[l * (S)] - m);  \
        for (l = 0; l + SOFTMAX_PARTS <= len; l += SOFTMAX_PARTS)              \
            for (int j = 0; j < SOFTMAX_PARTS; j++) sp[j] += y[(l + j) * (S)]; \
        real sum = 0;                                                          \
        for (; l < len; l++) sum += y[l * (S)];                                \
        for (int j = 0; j < SOFTMAX_PARTS; j++) sum += sp[j];                  \
        if (take_log) {                                                        \
            real log_sum = log(sum); /* (x - m) - log_sum: exact at the max */ \
            for (l = 0; l < len; l++) y[l * (S)] = x[l * (S)] - m - log_sum;   \
        } else {                                                               \
            for (l = 0; l < len; l++) y[l * (S)] = y[l * (S)] / sum;           \
        }                                                                      \
    } while (0)
    AG_DISPATCH_FLOAT(dt, {
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                const real *restrict x = (const real *)xv + o * len * inner + i;
                real *restrict y = (real *)yv + o * len * inner + i;
                if (inner == 1)
                    SOFTMAX_COLUMN(1);
                else
                    SOFTMAX_COLUMN(inner);
            }
    });
#undef SOFTMAX_COLUMN
}

static int softmax_forward(ag_tensor *out)
{
    int64_t outer, len, inner;
    ag__split_axis(out, AG_PARAMS(out, softmax_params)->axis, &outer, &len,
                   &inner);
    softmax_columns(out->dtype, out->inputs[0]->data, out->data, outer, len,
                    inner, out->op->kind == LOG_SOFTMAX);
    return 0;
}

/* softmax:     dx_l = y_l (g_l - sum_j g_j y_j)
 * log_softmax: dx_l = g_l - e^(y_l) sum_j g_j */
static int softmax_backward(ag_tensor *out)
{
    int64_t outer, len, inner;
    ag__split_axis(out, AG_PARAMS(out, softmax_params)->axis, &outer, &len,
                   &inner);
    bool take_log = out->op->kind == LOG_SOFTMAX;
    void *dx_data = ag__grad_accumulate(out->inputs[0]);
    AG_DISPATCH_FLOAT(out->dtype, {
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t base = o * len * inner + i;
                const real *y = (const real *)out->data + base;
                const real *g = (const real *)out->grad->data + base;
                real *dx = (real *)dx_data + base;
                real s = 0;
                for (int64_t l = 0; l < len; l++)
                    s += take_log ? g[l * inner] : g[l * inner] * y[l * inner];
                for (int64_t l = 0; l < len; l++)
                    dx[l * inner] +=
                        take_log
                            ? g[l * inner] - AG_EXP_NONPOS(y[l * inner]) * s
                            : y[l * inner] * (g[l * inner] - s);
            }
    });
    return 0;
}

/* The same in ops (v is g for the VJP or tx for the JVP; both rules are
 * symmetric in the Jacobian, J = diag(y) - y y^T for softmax):
 *   softmax:     dx = y (v - sum(v y))      ty likewise
 *   log_softmax: dx = v - e^y sum(v)        ty = v - sum(v e^y) */
static int softmax_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g,
                       const bool *want, ag_tensor **dx)
{
    int axis = AG_PARAMS(out, softmax_params)->axis;
    if (out->op->kind == SOFTMAX)
        AG_TRY(dx[0] = ag_mul(
                   a, out,
                   ag_sub(a, g, ag_sum(a, ag_mul(a, g, out), axis, true))));
    else
        AG_TRY(dx[0] = ag_sub(
                   a, g, ag_mul(a, ag_exp(a, out), ag_sum(a, g, axis, true))));
    return 0;
}

static int softmax_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *tx,
                       ag_tensor **ty)
{
    int axis = AG_PARAMS(out, softmax_params)->axis;
    ag_tensor *v = tx[0];
    if (out->op->kind == SOFTMAX)
        AG_TRY(*ty = ag_mul(
                   a, out,
                   ag_sub(a, v, ag_sum(a, ag_mul(a, v, out), axis, true))));
    else
        AG_TRY(*ty = ag_sub(
                   a, v, ag_sum(a, ag_mul(a, v, ag_exp(a, out)), axis, true)));
    return 0;
}

static ag_tensor *softmax_op(const char *func, const ag_op *op, ag_arena *a,
                             ag_tensor *x, int axis)
{
    if (ag__check_float_inputs(func, a, 1, &x)) return NULL;
    softmax_params p;
    if (ag__normalize_axis(func, axis, x, &p.axis)) return NULL;
    return ag__apply(func, a, op, 1, &x, x->dtype, x->ndim, x->shape, &p);
}

ag_tensor *ag_softmax(ag_arena *a, ag_tensor *x, int axis)
{
    return softmax_op("ag_softmax", &ag__op_softmax, a, x, axis);
}

ag_tensor *ag_log_softmax(ag_arena *a, ag_tensor *x, int axis)
{
    return softmax_op("ag_log_softmax", &ag__op_log_softmax, a, x, axis);
}

/* Saves, in out's arena, log_softmax over axis 1 of the logits (N, C, L)
 * (out->inputs[0]) and a copy of the targets (out->inputs[1]). */
static int save_log_softmax(const char *func, ag_tensor *out, int64_t N,
                            int64_t C, int64_t L)
{
    const ag_tensor *logits = out->inputs[0], *targets = out->inputs[1];
    void *logp = ag__arena_alloc(
        out->arena, ag__tensor_bytes(logits) + ag__tensor_bytes(targets), 64);
    if (!logp) {
        ag__error(func, "out of memory");
        return -1;
    }
    cross_entropy_saved *saved = AG_SAVED(out, cross_entropy_saved);
    saved->logp = logp;
    saved->targets = (int32_t *)((char *)logp + ag__tensor_bytes(logits));
    memcpy(saved->targets, targets->data, ag__tensor_bytes(targets));
    softmax_columns(out->dtype, logits->data, logp, N, C, L, true);
    return 0;
}

/* Softmax cross-entropy. logits (N, C), targets (N) int32.
 *   loss = -1/N sum_n logp[n, t_n] */
static int cross_entropy_forward(ag_tensor *out)
{
    const ag_tensor *logits = out->inputs[0];
    int64_t N = logits->shape[0], C = logits->shape[1];
    if (save_log_softmax("ag_softmax_cross_entropy", out, N, C, 1)) return -1;
    const cross_entropy_saved *saved = AG_SAVED(out, cross_entropy_saved);
    const int32_t *t = saved->targets;
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *lp = saved->logp;
        double loss = 0;
        for (int64_t n = 0; n < N; n++) loss -= lp[n * C + t[n]];
        *(real *)out->data = (real)(loss / (double)N);
    });
    return 0;
}

/* dlogits[n, c] = g * (e^(logp[n, c]) - [c == t_n]) / N */
AG_KERNEL static int cross_entropy_backward(ag_tensor *out)
{
    ag_tensor *logits = out->inputs[0];
    int64_t N = logits->shape[0], C = logits->shape[1];
    const cross_entropy_saved *saved = AG_SAVED(out, cross_entropy_saved);
    const int32_t *t = saved->targets;
    bool set;
    void *dx_data = ag__grad_begin(out->inputs[0], &set);
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *lp = saved->logp;
        real *dx = dx_data;
        const real scale = *(const real *)out->grad->data / (real)N;
        for (int64_t n = 0; n < N; n++) {
            real *restrict row = dx + n * C;
            const real *restrict lp_row = lp + n * C;
            AG_GRAD_LOOP(set, C, row, scale * AG_EXP_NONPOS(lp_row[i]));
            row[t[n]] -= scale;
        }
    });
    return 0;
}

/* The one-hot rows of the saved targets, (N, C), without history. */
static ag_tensor *one_hot(ag_arena *a, const ag_tensor *out)
{
    const ag_tensor *logits = out->inputs[0];
    const int32_t *t = AG_SAVED(out, cross_entropy_saved)->targets;
    int64_t N = logits->shape[0], C = logits->shape[1];
    ag_tensor *h = ag_zeros(a, logits->dtype, 2, logits->shape);
    if (h)
        AG_DISPATCH_FLOAT(h->dtype, {
            real *hv = h->data;
            for (int64_t n = 0; n < N; n++) hv[n * C + t[n]] = 1;
        });
    return h;
}

/* In ops, with p = softmax(logits) recorded (so that it is differentiated
 * again) and h the one-hot targets:
 *   dlogits = g (p - h) / N        t_loss = sum(tx (p - h)) / N */
static ag_tensor *probability_gap(ag_arena *a, ag_tensor *out)
{
    ag_tensor *logits = out->inputs[0];
    return ag_scale(a, ag_sub(a, ag_softmax(a, logits, 1), one_hot(a, out)),
                    1.0 / (double)logits->shape[0]);
}

static int cross_entropy_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g,
                             const bool *want, ag_tensor **dx)
{
    AG_TRY(dx[0] = ag_mul(a, probability_gap(a, out), g));
    return 0;
}

static int cross_entropy_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *tx,
                             ag_tensor **ty)
{
    AG_TRY(*ty = ag_sum(a, ag_mul(a, probability_gap(a, out), tx[0]), AG_ALL,
                        false));
    return 0;
}

/* Checks the targets of logits (N, C, d...): AG_I32 of shape (N, d...),
 * every one in [0, C) or, when use_ignore, equal to ignore. Sets *count to
 * the number of targets not ignored. */
static int check_targets(const char *func, const ag_tensor *logits,
                         const ag_tensor *targets, bool use_ignore,
                         int32_t ignore, int64_t *count)
{
    char bl[AG_SHAPE_STR_MAX], bt[AG_SHAPE_STR_MAX];
    if (targets->dtype != AG_I32) {
        ag__error(func, "targets must be i32 class indices, got %s %s",
                  ag_dtype_name(targets->dtype),
                  ag__shape_str(bt, targets->ndim, targets->shape));
        return -1;
    }
    int64_t want[AG_MAX_DIMS], C = logits->shape[1];
    want[0] = logits->shape[0];
    for (int d = 2; d < logits->ndim; d++) want[d - 1] = logits->shape[d];
    if (!ag__same_shape(targets, logits->ndim - 1, want)) {
        char bw[AG_SHAPE_STR_MAX];
        ag__error(func, "targets %s must have shape %s for logits %s",
                  ag__shape_str(bt, targets->ndim, targets->shape),
                  ag__shape_str(bw, logits->ndim - 1, want),
                  ag__shape_str(bl, logits->ndim, logits->shape));
        return -1;
    }
    const int32_t *t = targets->data;
    *count = 0;
    for (int64_t i = 0; i < targets->numel; i++) {
        if (use_ignore && t[i] == ignore) continue;
        if (t[i] < 0 || t[i] >= C) {
            /* the position: a number for 1-D targets, else (n,d1,...) */
            int64_t at[AG_MAX_DIMS], q = i;
            for (int d = targets->ndim - 1; d >= 0; d--) {
                at[d] = q % targets->shape[d];
                q /= targets->shape[d];
            }
            char bp[AG_SHAPE_STR_MAX];
            if (targets->ndim == 1)
                snprintf(bp, sizeof bp, "%lld", (long long)i);
            else
                ag__shape_str(bp, targets->ndim, at);
            ag__error(func, "target %d at index %s is out of [0, %lld)", t[i],
                      bp, (long long)C);
            return -1;
        }
        ++*count;
    }
    return 0;
}

ag_tensor *ag_softmax_cross_entropy(ag_arena *a, ag_tensor *logits,
                                    ag_tensor *targets)
{
    const char *func = "ag_softmax_cross_entropy";
    if (ag__check_float_inputs(func, a, 1, &logits)) return NULL;
    if (!targets) {
        ag__null_input(func, 1);
        return NULL;
    }
    char bl[AG_SHAPE_STR_MAX];
    if (logits->ndim != 2) {
        ag__error(func, "logits must be 2-D (N,C), got %s",
                  ag__shape_str(bl, logits->ndim, logits->shape));
        return NULL;
    }
    if (logits->shape[0] == 0) {
        ag__error(func, "empty batch: logits %s",
                  ag__shape_str(bl, logits->ndim, logits->shape));
        return NULL;
    }
    int64_t count;
    if (check_targets(func, logits, targets, false, 0, &count)) return NULL;
    ag_tensor *inputs[2] = {logits, targets};
    return ag__apply(func, a, &ag__op_softmax_cross_entropy, 2, inputs,
                     logits->dtype, 0, NULL, NULL);
}

/* The op-table entries. */
const ag_op ag__op_softmax = {.name = "softmax",
                              .arity = 1,
                              .kind = SOFTMAX,
                              .params_size = sizeof(softmax_params),
                              .forward = softmax_forward,
                              .backward = softmax_backward,
                              .vjp = softmax_vjp,
                              .jvp = softmax_jvp};
const ag_op ag__op_log_softmax = {.name = "log_softmax",
                                  .arity = 1,
                                  .kind = LOG_SOFTMAX,
                                  .params_size = sizeof(softmax_params),
                                  .forward = softmax_forward,
                                  .backward = softmax_backward,
                                  .vjp = softmax_vjp,
                                  .jvp = softmax_jvp};
const ag_op ag__op_softmax_cross_entropy = {
    .name = "softmax_cross_entropy",
    .arity = 2,
    .nondiff_inputs = 1u << 1, /* the targets */
    .saved_size = sizeof(cross_entropy_saved),
    .forward = cross_entropy_forward,
    .backward = cross_entropy_backward,
    .vjp = cross_entropy_vjp,
    .jvp = cross_entropy_jvp};

/* Cross-entropy, PyTorch's F.cross_entropy with reduction 'mean'. logits
 * (N, C, L) (L the product of the trailing d..., 1 for (N, C)), targets
 * (N, L) int32; with e the label smoothing, the valid targets those not
 * equal to ignore_index, count their number and q the smoothed target
 * distribution (1 - e) [c == t] + e / C of a valid target (0 for an ignored
 * one):
 *   loss = -1/count sum_(n,l) sum_c q[n,c,l] logp[n,c,l]
 *        = mean over valid targets of (1 - e) nll + e mean_c(-logp)
 *   backward: dlogits = g (p - q) / count at valid targets, 0 at ignored
 *   vjp, jvp: dlogits = g (softmax(logits) - q) w,  t_loss = sum(tx (p - q) w)
 *             with w = [valid] / count, q and w constants */
typedef struct {
    int32_t ignore; /* the ignored class; -1 (no valid target) for none */
    double smoothing;
    int64_t count; /* the valid targets */
} ce_params;

/* The (N, C, L) view of the logits. */
static void ce_dims(const ag_tensor *out, int64_t *N, int64_t *C, int64_t *L)
{
    ag__split_axis(out->inputs[0], 1, N, C, L);
}

static int ce_forward(ag_tensor *out)
{
    const ce_params *p = AG_PARAMS(out, ce_params);
    int64_t N, C, L;
    ce_dims(out, &N, &C, &L);
    if (save_log_softmax("ag_cross_entropy", out, N, C, L)) return -1;
    const cross_entropy_saved *saved = AG_SAVED(out, cross_entropy_saved);
    const int32_t *t = saved->targets;
    const double e = p->smoothing;
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *lp = saved->logp;
        double loss = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t l = 0; l < L; l++) {
                int32_t c_t = t[n * L + l];
                if (c_t == p->ignore) continue;
                const real *col = lp + n * C * L + l;
                double all = 0;
                if (e != 0)
                    for (int64_t c = 0; c < C; c++) all += col[c * L];
                loss -= (1 - e) * col[c_t * L] + e / (double)C * all;
            }
        *(real *)out->data = (real)(loss / (double)p->count);
    });
    return 0;
}

/* dlogits[n,c,l] = g ([valid] e^logp - q[n,c,l]) / count */
AG_KERNEL static int ce_backward(ag_tensor *out)
{
    const ce_params *p = AG_PARAMS(out, ce_params);
    int64_t N, C, L;
    ce_dims(out, &N, &C, &L);
    const cross_entropy_saved *saved = AG_SAVED(out, cross_entropy_saved);
    const int32_t *t = saved->targets;
    const int32_t ignore = p->ignore;
    bool set;
    void *dx_data = ag__grad_begin(out->inputs[0], &set);
    AG_DISPATCH_FLOAT(out->dtype, {
        const real s = *(const real *)out->grad->data / (real)p->count;
        const real hit = s * (real)(1 - p->smoothing);
        const real spread = s * (real)(p->smoothing / (double)C);
        const real *lp = saved->logp;
        real *dx = dx_data;
        for (int64_t n = 0; n < N; n++) {
            const int32_t *tn = t + n * L;
            if (L == 1) { /* one target per row: the row at once */
                const real sn = tn[0] == ignore ? 0 : s;
                const real sp = tn[0] == ignore ? 0 : spread;
                const real *restrict lr = lp + n * C;
                AG_GRAD_LOOP(set, C, dx + n * C,
                             sn * AG_EXP_NONPOS(lr[i]) - sp);
            } else {
                for (int64_t c = 0; c < C; c++) {
                    const real *restrict lr = lp + (n * C + c) * L;
                    AG_GRAD_LOOP(set, L, dx + (n * C + c) * L,
                                 AG_SELECT(tn[i] != ignore,
                                           s * AG_EXP_NONPOS(lr[i]) - spread,
                                           (real)0));
                }
            }
            for (int64_t l = 0; l < L; l++)
                if (tn[l] != ignore) dx[(n * C + tn[l]) * L + l] -= hit;
        }
    });
    return 0;
}

/* The constants of the rules: q (N, C, d...) and w (N, 1, d...). */
static int ce_constants(ag_arena *a, const ag_tensor *out, ag_tensor **q,
                        ag_tensor **w)
{
    const ce_params *p = AG_PARAMS(out, ce_params);
    const ag_tensor *logits = out->inputs[0];
    int64_t N, C, L, shape[AG_MAX_DIMS];
    ce_dims(out, &N, &C, &L);
    memcpy(shape, logits->shape, (size_t)logits->ndim * sizeof *shape);
    shape[1] = 1;
    AG_TRY(*q = ag_zeros(a, logits->dtype, logits->ndim, logits->shape));
    AG_TRY(*w = ag_zeros(a, logits->dtype, logits->ndim, shape));
    const int32_t *t = AG_SAVED(out, cross_entropy_saved)->targets;
    AG_DISPATCH_FLOAT(logits->dtype, {
        real *qv = (*q)->data, *wv = (*w)->data;
        const real e = (real)p->smoothing;
        for (int64_t n = 0; n < N; n++)
            for (int64_t l = 0; l < L; l++) {
                int32_t c_t = t[n * L + l];
                if (c_t == p->ignore) continue;
                wv[n * L + l] = (real)(1.0 / (double)p->count);
                for (int64_t c = 0; c < C; c++)
                    qv[(n * C + c) * L + l] = e / (real)C;
                qv[(n * C + c_t) * L + l] += 1 - e;
            }
    });
    return 0;
}

/* (softmax(logits) - q) w, recorded (so that it is differentiated again) */
static ag_tensor *ce_gap(ag_arena *a, ag_tensor *out)
{
    ag_tensor *q, *w;
    if (ce_constants(a, out, &q, &w)) return NULL;
    return ag_mul(a, ag_sub(a, ag_softmax(a, out->inputs[0], 1), q), w);
}

static int ce_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g, const bool *want,
                  ag_tensor **dx)
{
    AG_TRY(dx[0] = ag_mul(a, ce_gap(a, out), g));
    return 0;
}

static int ce_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *tx,
                  ag_tensor **ty)
{
    AG_TRY(*ty = ag_sum(a, ag_mul(a, ce_gap(a, out), tx[0]), AG_ALL, false));
    return 0;
}

ag_tensor *ag_cross_entropy(ag_arena *a, ag_tensor *logits, ag_tensor *targets,
                            const ag_cross_entropy_options *o)
{
    const char *func = "ag_cross_entropy";
    if (ag__check_float_inputs(func, a, 1, &logits)) return NULL;
    if (!targets) {
        ag__null_input(func, 1);
        return NULL;
    }
    char bl[AG_SHAPE_STR_MAX];
    if (logits->ndim < 2) {
        ag__error(func, "logits must be (N,C) or (N,C,d...), got %s",
                  ag__shape_str(bl, logits->ndim, logits->shape));
        return NULL;
    }
    ce_params p = {-1, o ? o->label_smoothing : 0, 0};
    if (!(p.smoothing >= 0 && p.smoothing <= 1)) {
        ag__error(func, "label_smoothing must be in [0, 1], got %g",
                  p.smoothing);
        return NULL;
    }
    if (check_targets(func, logits, targets, o != NULL, o ? o->ignore_index : 0,
                      &p.count))
        return NULL;
    if (o) p.ignore = o->ignore_index;
    if (p.count == 0) {
        if (targets->numel == 0)
            ag__error(func, "no targets to average over: logits %s",
                      ag__shape_str(bl, logits->ndim, logits->shape));
        else
            ag__error(func,
                      "every target is ignore_index %d: no target to "
                      "average over",
                      (int)p.ignore);
        return NULL;
    }
    ag_tensor *inputs[2] = {logits, targets};
    return ag__apply(func, a, &ag__op_cross_entropy, 2, inputs, logits->dtype,
                     0, NULL, &p);
}

const ag_op ag__op_cross_entropy = {.name = "cross_entropy",
                                    .arity = 2,
                                    .nondiff_inputs = 1u << 1, /* the targets */
                                    .params_size = sizeof(ce_params),
                                    .saved_size = sizeof(cross_entropy_saved),
                                    .forward = ce_forward,
                                    .backward = ce_backward,
                                    .vjp = ce_vjp,
                                    .jvp = ce_jvp};
