/* norm.c: layer norm, RMS norm and batch norm (training and eval), each one
 * fused kernel for the forward and one for the first-order backward, as
 * llm.c's layernorm_forward / layernorm_backward, beside the same
 * derivatives written in differentiable ops.
 *
 * All of them view x as (A, B, K): B groups, each normalised over its A * K
 * elements (a, k), n = A K of them:
 *   layer and RMS norm: (1, rows, normalised size), weight and bias indexed
 *                       by k (one value per normalised element);
 *   batch norm:         (N, C, spatial size), weight and bias indexed by
 *                       the group b (one value per channel).
 * With mu the group's mean (0 for RMS norm), var = mean((x - mu)^2) (the
 * biased variance; for RMS norm the mean square), r = 1 / sqrt(var + eps):
 *   forward:  xhat = (x - mu) r,  y = xhat w + b
 *   backward: dx = r (gw - mean(gw) - xhat mean(gw xhat)),  gw = g w
 *             (RMS norm: no mean(gw) term); dw = sum g xhat, db = sum g
 *   jvp:      ty = r (tx - mean(tx) - xhat mean(tx xhat)) w + xhat tw + tb
 * The map v -> r (v - mean(v) - xhat mean(v xhat)) is the Jacobian of xhat
 * (symmetric), so the VJP and the JVP share it (project, below). In eval
 * mode batch norm uses the running statistics, an affine map of x:
 * dx = g w r, ty = tx w r + xhat tw + tb. */
#include "../internal.h"

#include <math.h>
#include <string.h>
#include <tgmath.h>

enum { LAYER_NORM, RMS_NORM, BATCH_NORM, BATCH_NORM_EVAL };

typedef struct {
    int normalized_ndim; /* layer and RMS norm: the trailing axes normalised */
    bool has_weight, has_bias;
    double eps;
    /* Batch norm in training: 2 B doubles in the caller's arena where the
     * forward writes the batch mean and biased variance of each channel
     * (for the running statistics); NULL otherwise. */
    double *batch_stats;
} norm_params;

/* Per group: the mean and 1 / sqrt(var + eps) the forward used. */
typedef struct {
    double *mean, *rstd;
} norm_saved;

/* The (A, B, K) view of out's input x. */
static void norm_dims(const ag_tensor *out, int64_t *A, int64_t *B, int64_t *K)
{
    const ag_tensor *x = out->inputs[0];
    if (out->op->kind == LAYER_NORM || out->op->kind == RMS_NORM) {
        int k = AG_PARAMS(out, norm_params)->normalized_ndim;
        *A = 1;
        *B = *K = 1;
        for (int d = 0; d < x->ndim - k; d++) *B *= x->shape[d];
        for (int d = x->ndim - k; d < x->ndim; d++) *K *= x->shape[d];
    } else {
        ag__split_axis(x, 1, A, B, K);
    }
}

/* Whether weight and bias have one value per group (batch norm) rather than
 * one per normalised element. */
static bool affine_per_group(const ag_tensor *out)
{
    return out->op->kind == BATCH_NORM || out->op->kind == BATCH_NORM_EVAL;
}

/* The weight and bias inputs (NULL when absent): after x, and after the
 * running mean and variance in eval mode. */
static ag_tensor *norm_weight(const ag_tensor *out)
{
    int first = out->op->kind == BATCH_NORM_EVAL ? 3 : 1;
    return AG_PARAMS(out, norm_params)->has_weight ? out->inputs[first] : NULL;
}

static ag_tensor *norm_bias(const ag_tensor *out)
{
    const norm_params *p = AG_PARAMS(out, norm_params);
    int first = out->op->kind == BATCH_NORM_EVAL ? 3 : 1;
    return p->has_bias ? out->inputs[first + p->has_weight] : NULL;
}

/* total (a double) += the sum of expr over i in [0, n), in LANES partial
 * sums of real, so that the loop vectorises (one running sum is a chain of
 * dependent additions); the partial sums join total every BLOCK elements,
 * so that each rounds over at most BLOCK / LANES terms. Used inside
 * AG_DISPATCH_FLOAT (real). */
#define LANES 16
#define BLOCK 1024
#define LANE_SUM(n, total, expr)                                               \
    do {                                                                       \
        for (int64_t b0_ = 0; b0_ < (n); b0_ += BLOCK) {                       \
            int64_t end_ = b0_ + BLOCK < (n) ? b0_ + BLOCK : (n), i0_ = b0_;   \
            real lane_[LANES] = {0};                                           \
            for (; i0_ + LANES <= end_; i0_ += LANES)                          \
                for (int64_t i = i0_; i < i0_ + LANES; i++)                    \
                    lane_[i - i0_] += (expr);                                  \
            for (int64_t i = i0_; i < end_; i++) lane_[0] += (expr);           \
            for (int j_ = 0; j_ < LANES; j_++) (total) += (double)lane_[j_];   \
        }                                                                      \
    } while (0)

/* LANE_SUM of two sums in one pass: total1 += the sum of expr1 and total2
 * += the sum of expr2, each in its own lanes exactly as LANE_SUM would (so
 * the same bits), with the statement `also` run for each i as well (the
 * backward's chunk sums of dw and db, while the elements are loaded). */
#define LANE_SUM2(n, total1, expr1, total2, expr2, also)                       \
    do {                                                                       \
        for (int64_t b0_ = 0; b0_ < (n); b0_ += BLOCK) {                       \
            int64_t end_ = b0_ + BLOCK < (n) ? b0_ + BLOCK : (n), i0_ = b0_;   \
            real l1_[LANES] = {0}, l2_[LANES] = {0};                           \
            for (; i0_ + LANES <= end_; i0_ += LANES)                          \
                for (int64_t i = i0_; i < i0_ + LANES; i++) {                  \
                    l1_[i - i0_] += (expr1);                                   \
                    l2_[i - i0_] += (expr2);                                   \
                    also;                                                      \
                }                                                              \
            for (int64_t i = i0_; i < end_; i++) {                             \
                l1_[0] += (expr1);                                             \
                l2_[0] += (expr2);                                             \
                also;                                                          \
            }                                                                  \
            for (int j_ = 0; j_ < LANES; j_++) {                               \
                (total1) += (double)l1_[j_];                                   \
                (total2) += (double)l2_[j_];                                   \
            }                                                                  \
        }                                                                      \
    } while (0)

/* The work of a forward or backward, split over the threads by groups (and,
 * for a weight per normalised element, its sums by elements). */
typedef struct {
    ag_tensor *out;
    int64_t A, B, K;
    void *dx, *dw, *db; /* the backward's gradient buffers, or NULL */
    bool set;           /* dx is written, not added to */
    /* A weight per normalised element: the sums of g xhat and of g over
     * each CHUNK of groups, (chunks, K) each, added to dw and db in chunk
     * order at the end (so the same bits whatever the thread count). */
    void *chunk_dw, *chunk_db;
} norm_job;

/* The groups of one partial sum of dw and db. */
#define CHUNK 32

/* The thread count for n elements of work: 1 below the size where waking a
 * worker costs more than the work. */
static int norm_parts(int64_t n)
{
    return n >= AG_PARALLEL_MIN_ELEMENTS ? AG_MAX_THREADS : 1;
}

/* forward of groups [lo, hi): mu, var per group (or the running ones),
 * xhat = (x - mu) r, y = xhat w + b */
static void forward_groups(const norm_job *job, int64_t lo, int64_t hi)
{
    ag_tensor *out = job->out;
    const norm_params *p = AG_PARAMS(out, norm_params);
    int kind = out->op->kind;
    const int64_t A = job->A, B = job->B, K = job->K;
    norm_saved *s = AG_SAVED(out, norm_saved);
    const ag_tensor *w = norm_weight(out), *bias = norm_bias(out);
    bool per_group = affine_per_group(out);
    double n = (double)(A * K);
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *x = out->inputs[0]->data;
        real *y = out->data;
        const real *wv = w ? w->data : NULL, *bv = bias ? bias->data : NULL;
        for (int64_t b = lo; b < hi; b++) {
            double mu = 0, var = 0;
            if (kind == BATCH_NORM_EVAL) {
                mu = (double)((const real *)out->inputs[1]->data)[b];
                var = (double)((const real *)out->inputs[2]->data)[b];
            } else {
                if (kind != RMS_NORM) {
                    for (int64_t a = 0; a < A; a++) {
                        const real *row = x + (a * B + b) * K;
                        LANE_SUM(K, mu, row[i]);
                    }
                    mu /= n;
                }
                const real m = (real)mu;
                for (int64_t a = 0; a < A; a++) {
                    const real *row = x + (a * B + b) * K;
                    LANE_SUM(K, var, (row[i] - m) * (row[i] - m));
                }
                var /= n;
            }
            if (p->batch_stats) {
                p->batch_stats[b] = mu;
                p->batch_stats[B + b] = var;
            }
            s->mean[b] = mu;
            s->rstd[b] = 1 / sqrt(var + p->eps);
            const real m = (real)mu, r = (real)s->rstd[b];
            for (int64_t a = 0; a < A; a++) {
                const real *restrict xr = x + (a * B + b) * K;
                real *restrict yr = y + (a * B + b) * K;
                if (per_group) { /* y = x s + t, s = r w, t = b - mu s */
                    real sc = wv ? r * wv[b] : r;
                    real sh = (bv ? bv[b] : 0) - m * sc;
                    for (int64_t k = 0; k < K; k++) yr[k] = xr[k] * sc + sh;
                } else if (wv && bv) {
                    for (int64_t k = 0; k < K; k++)
                        yr[k] = (xr[k] - m) * r * wv[k] + bv[k];
                } else if (wv) {
                    for (int64_t k = 0; k < K; k++)
                        yr[k] = (xr[k] - m) * r * wv[k];
                } else {
                    for (int64_t k = 0; k < K; k++) yr[k] = (xr[k] - m) * r;
                }
                if (!per_group && bv && !wv)
                    for (int64_t k = 0; k < K; k++) yr[k] += bv[k];
            }
        }
    });
}

/* One thread's share of the groups; each group is computed alone, so the
 * result is the same bits whatever the thread count. */
static void forward_part(void *arg, int part, int parts)
{
    const norm_job *job = arg;
    int64_t lo, hi;
    ag__part_range(job->B, 1, part, parts, &lo, &hi);
    forward_groups(job, lo, hi);
}

static int norm_forward(ag_tensor *out)
{
    norm_job job = {.out = out};
    norm_dims(out, &job.A, &job.B, &job.K);
    norm_saved *s = AG_SAVED(out, norm_saved);
    s->mean = ag__arena_alloc(
        out->arena, 2 * (size_t)(job.B ? job.B : 1) * sizeof(double), 64);
    if (!s->mean) {
        ag__error(out->op->name, "out of memory");
        return -1;
    }
    s->rstd = s->mean + job.B;
    ag__parallel(norm_parts(out->numel), forward_part, &job);
    return 0;
}

/* In backward_groups: xhat of element i of the row xr. */
#define XHAT ((xr[i] - m) * r)

/* backward of groups [lo, hi): gw = g w;
 * dx = r (gw - [centred] mean(gw) - xhat mean(gw xhat)) (eval: dx = gw r),
 * and for a weight per group dw += sum g xhat, db += sum g over the group */
AG_KERNEL static void backward_groups(const norm_job *job, int64_t lo,
                                      int64_t hi)
{
    ag_tensor *out = job->out;
    int kind = out->op->kind;
    const int64_t A = job->A, B = job->B, K = job->K;
    const norm_saved *s = AG_SAVED(out, norm_saved);
    ag_tensor *x = out->inputs[0], *w = norm_weight(out);
    bool per_group = affine_per_group(out), set = job->set;
    bool centred = kind != RMS_NORM, eval = kind == BATCH_NORM_EVAL;
    double n = (double)(A * K);
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *xv = x->data, *g = out->grad->data;
        const real *wv = w ? w->data : NULL;
        real *dx = job->dx;
        real *dw = per_group ? job->dw : NULL, *db = per_group ? job->db : NULL;
        real *chunk_dw = job->chunk_dw, *chunk_db = job->chunk_db;
        for (int64_t b = lo; b < hi; b++) {
            /* a weight per element: this group's g xhat and g join its
             * chunk's sums while the rows are in cache */
            real *restrict cdw = chunk_dw ? chunk_dw + b / CHUNK * K : NULL;
            real *restrict cdb = chunk_db ? chunk_db + b / CHUNK * K : NULL;
            if (b % CHUNK == 0 || b == lo) {
                if (cdw) memset(cdw, 0, (size_t)K * sizeof *cdw);
                if (cdb) memset(cdb, 0, (size_t)K * sizeof *cdb);
            }
            const real m = (real)s->mean[b], r = (real)s->rstd[b];
            /* the group's sums: of gw and gw xhat (for dx), of g xhat and
             * g (for a weight and bias per group) */
            double s_gw = 0, s_gwx = 0, s_gx = 0, s_g = 0;
            /* a weight per element with dx: the chunk sums join the pass
             * of the row's sums (fused below) */
            bool fused = !per_group && wv && dx;
            for (int64_t a = 0; a < A; a++) {
                const real *restrict xr = xv + (a * B + b) * K;
                const real *restrict gr = g + (a * B + b) * K;
                if (per_group || !wv) {
                    LANE_SUM(K, s_g, gr[i]);
                    LANE_SUM(K, s_gx, gr[i] * XHAT);
                } else if (dx && cdw && cdb) {
                    LANE_SUM2(K, s_gw, gr[i] * wv[i], s_gwx,
                              gr[i] * wv[i] * XHAT, {
                                  cdw[i] += gr[i] * XHAT;
                                  cdb[i] += gr[i];
                              });
                } else if (dx && cdw) {
                    LANE_SUM2(K, s_gw, gr[i] * wv[i], s_gwx,
                              gr[i] * wv[i] * XHAT, cdw[i] += gr[i] * XHAT);
                } else if (dx && cdb) {
                    LANE_SUM2(K, s_gw, gr[i] * wv[i], s_gwx,
                              gr[i] * wv[i] * XHAT, cdb[i] += gr[i]);
                } else if (dx) {
                    LANE_SUM2(K, s_gw, gr[i] * wv[i], s_gwx,
                              gr[i] * wv[i] * XHAT, (void)0);
                }
            }
            if (per_group || !wv) { /* gw = g times one weight */
                double wg = per_group && wv ? (double)wv[b] : 1;
                s_gw = s_g * wg;
                s_gwx = s_gx * wg;
            }
            if (dw) dw[b] += (real)s_gx;
            if (db) db[b] += (real)s_g;
            for (int64_t a = 0; a < A && !fused && (cdw || cdb); a++) {
                const real *restrict xr = xv + (a * B + b) * K;
                const real *restrict gr = g + (a * B + b) * K;
                if (cdw && cdb) { /* one pass for both */
                    for (int64_t k = 0; k < K; k++) {
                        cdw[k] += gr[k] * ((xr[k] - m) * r);
                        cdb[k] += gr[k];
                    }
                } else if (cdw) {
                    for (int64_t k = 0; k < K; k++)
                        cdw[k] += gr[k] * ((xr[k] - m) * r);
                } else {
                    for (int64_t k = 0; k < K; k++) cdb[k] += gr[k];
                }
            }
            if (!dx) continue;
            const real c1 = centred && !eval ? (real)(s_gw / n) : 0;
            const real c2 = eval ? 0 : (real)(s_gwx / n);
            for (int64_t a = 0; a < A; a++) {
                const real *restrict xr = xv + (a * B + b) * K;
                const real *restrict gr = g + (a * B + b) * K;
                real *restrict dxr = dx + (a * B + b) * K;
                if (per_group) {
                    real wg = wv ? wv[b] : 1;
                    AG_GRAD_LOOP(set, K, dxr,
                                 r * (gr[i] * wg - c1 - (xr[i] - m) * r * c2));
                } else if (wv) {
                    AG_GRAD_LOOP(
                        set, K, dxr,
                        r * (gr[i] * wv[i] - c1 - (xr[i] - m) * r * c2));
                } else {
                    AG_GRAD_LOOP(set, K, dxr,
                                 r * (gr[i] - c1 - (xr[i] - m) * r * c2));
                }
            }
        }
    });
}

#undef XHAT

/* A weight and bias per normalised element: dw[k] += the chunks' sums of
 * g xhat, db[k] += their sums of g, the chunks in order. */
static void add_chunk_sums(const norm_job *job)
{
    int64_t chunks = (job->B + CHUNK - 1) / CHUNK, K = job->K;
    AG_DISPATCH_FLOAT(job->out->dtype, {
        real *restrict dw = job->dw, *restrict db = job->db;
        const real *cdw = job->chunk_dw, *cdb = job->chunk_db;
        for (int64_t c = 0; c < chunks; c++) {
            if (dw)
                for (int64_t k = 0; k < K; k++) dw[k] += cdw[c * K + k];
            if (db)
                for (int64_t k = 0; k < K; k++) db[k] += cdb[c * K + k];
        }
    });
}

/* One thread's share of the groups, whole chunks of them. */
static void backward_part(void *arg, int part, int parts)
{
    const norm_job *job = arg;
    int64_t lo, hi;
    ag__part_range(job->B, CHUNK, part, parts, &lo, &hi);
    backward_groups(job, lo, hi);
}

static int norm_backward(ag_tensor *out)
{
    ag_tensor *x = out->inputs[0], *w = norm_weight(out),
              *bias = norm_bias(out);
    norm_job job = {.out = out};
    norm_dims(out, &job.A, &job.B, &job.K);
    job.dx = x->requires_grad ? ag__grad_begin(x, &job.set) : NULL;
    job.dw = w && w->requires_grad ? ag__grad_accumulate(w) : NULL;
    job.db = bias && bias->requires_grad ? ag__grad_accumulate(bias) : NULL;
    bool per_element = !affine_per_group(out) && (job.dw || job.db);
    if (per_element) {
        size_t bytes = (size_t)((job.B + CHUNK - 1) / CHUNK * job.K) *
                       ag__dtype_size(out->dtype);
        job.chunk_dw = job.dw ? ag__arena_alloc(out->arena, bytes, 64) : NULL;
        job.chunk_db = job.db ? ag__arena_alloc(out->arena, bytes, 64) : NULL;
        if ((job.dw && !job.chunk_dw) || (job.db && !job.chunk_db)) {
            ag__error(out->op->name, "out of memory");
            return -1;
        }
    }
    ag__parallel(norm_parts(out->numel), backward_part, &job);
    if (per_element) add_chunk_sums(&job);
    return 0;
}

/* ---- the same in ops, on the (A, B, K) view ---- */

/* The mean of t (A, B, K) over each group, (1, B, 1). */
static ag_tensor *group_mean(ag_arena *a, ag_tensor *t)
{
    return ag_mean(a, ag_mean(a, t, 0, true), 2, true);
}

/* t (A, B, K) summed to one value per weight: (B) or (K). */
static ag_tensor *affine_sum(ag_arena *a, const ag_tensor *out, ag_tensor *t)
{
    return ag_sum(a, ag_sum(a, t, 0, false), affine_per_group(out) ? 1 : 0,
                  false);
}

/* A per-group or per-element tensor (weight, bias or their tangents) in a
 * shape that broadcasts against (A, B, K): (B, 1) or (K). NULL stays NULL. */
static ag_tensor *affine_view(ag_arena *a, const ag_tensor *out, ag_tensor *t)
{
    if (!t) return NULL;
    int64_t shape[2] = {t->numel, 1};
    return ag_reshape(a, t, affine_per_group(out) ? 2 : 1, shape);
}

/* t in the (A, B, K) view, or NULL for NULL. */
static ag_tensor *grouped(ag_arena *a, const ag_tensor *out, ag_tensor *t)
{
    if (!t) return NULL;
    int64_t shape[3];
    norm_dims(out, &shape[0], &shape[1], &shape[2]);
    return ag_reshape(a, t, 3, shape);
}

/* A constant (1, B, 1) of the saved per-group values v. */
static ag_tensor *group_constant(ag_arena *a, const ag_tensor *out,
                                 const double *v)
{
    int64_t A, B, K;
    norm_dims(out, &A, &B, &K);
    ag_tensor *c = ag_zeros(a, out->dtype, 3, (int64_t[]){1, B, 1});
    if (c)
        AG_DISPATCH_FLOAT(out->dtype, {
            real *cv = c->data;
            for (int64_t b = 0; b < B; b++) cv[b] = (real)v[b];
        });
    return c;
}

/* The pieces every rule needs: xhat and r, built from x in ops (so that they
 * are differentiated again), from the saved running statistics in eval. */
typedef struct {
    ag_tensor *xhat, *r;
} normalised;

static int normalise(ag_arena *a, const ag_tensor *out, normalised *nz)
{
    const norm_params *p = AG_PARAMS(out, norm_params);
    ag_tensor *x = grouped(a, out, out->inputs[0]), *xc = x;
    if (out->op->kind == BATCH_NORM_EVAL) {
        const norm_saved *s = AG_SAVED(out, norm_saved);
        AG_TRY(nz->r = group_constant(a, out, s->rstd));
        AG_TRY(xc = ag_sub(a, x, group_constant(a, out, s->mean)));
    } else {
        if (out->op->kind != RMS_NORM)
            AG_TRY(xc = ag_sub(a, x, group_mean(a, x)));
        AG_TRY(nz->r = ag_pow(
                   a, ag_shift(a, group_mean(a, ag_mul(a, xc, xc)), p->eps),
                   -0.5));
    }
    AG_TRY(nz->xhat = ag_mul(a, xc, nz->r));
    return 0;
}

/* The Jacobian of xhat applied to v (A, B, K), symmetric:
 * r (v - mean(v) - xhat mean(v xhat)) (RMS norm: no mean(v); eval: r v).
 * NULL stays NULL. */
static ag_tensor *project(ag_arena *a, const ag_tensor *out,
                          const normalised *nz, ag_tensor *v)
{
    if (!v) return NULL;
    if (out->op->kind == BATCH_NORM_EVAL) return ag_mul(a, v, nz->r);
    ag_tensor *d = ag_sub(
        a, v, ag_mul(a, nz->xhat, group_mean(a, ag_mul(a, v, nz->xhat))));
    if (out->op->kind != RMS_NORM) d = ag_sub(a, d, group_mean(a, v));
    return ag_mul(a, d, nz->r);
}

/* t times the weight view w3 (t itself without a weight). */
static ag_tensor *times_weight(ag_arena *a, ag_tensor *t, ag_tensor *w3)
{
    return w3 ? ag__mul_or(a, t, w3) : t;
}

/* vjp: dx = project(g w), dw = sum g xhat, db = sum g */
static int norm_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g, const bool *want,
                    ag_tensor **dx)
{
    ag_tensor *w = norm_weight(out), *bias = norm_bias(out);
    int iw = out->op->kind == BATCH_NORM_EVAL ? 3 : 1;
    int ib = iw + (w != NULL);
    normalised nz;
    if (normalise(a, out, &nz)) return -1;
    ag_tensor *g3, *x = out->inputs[0];
    AG_TRY(g3 = grouped(a, out, g));
    if (want[0]) {
        ag_tensor *gw = g3;
        if (w) AG_TRY(gw = ag_mul(a, g3, affine_view(a, out, w)));
        AG_TRY(dx[0] =
                   ag_reshape(a, project(a, out, &nz, gw), x->ndim, x->shape));
    }
    if (w && want[iw])
        AG_TRY(dx[iw] =
                   ag_reshape(a, affine_sum(a, out, ag_mul(a, g3, nz.xhat)),
                              w->ndim, w->shape));
    if (bias && want[ib])
        AG_TRY(dx[ib] = ag_reshape(a, affine_sum(a, out, g3), bias->ndim,
                                   bias->shape));
    return 0;
}

/* jvp: ty = project(tx) w + xhat tw + tb */
static int norm_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *tx,
                    ag_tensor **ty)
{
    ag_tensor *w = norm_weight(out), *bias = norm_bias(out);
    int iw = out->op->kind == BATCH_NORM_EVAL ? 3 : 1;
    int ib = iw + (w != NULL);
    normalised nz;
    if (normalise(a, out, &nz)) return -1;
    ag_tensor *t = times_weight(a, project(a, out, &nz, grouped(a, out, tx[0])),
                                affine_view(a, out, w));
    if (w)
        t = ag__add_or(a, t,
                       ag__mul_or(a, nz.xhat, affine_view(a, out, tx[iw])));
    if (bias) t = ag__add_or(a, t, affine_view(a, out, tx[ib]));
    AG_TRY(t = ag__expand_to(a, t, 3, nz.xhat->shape));
    AG_TRY(*ty = ag_reshape(a, t, out->ndim, out->shape));
    return 0;
}

/* ---- the public functions ---- */

/* Checks that eps is finite and not negative. */
static int check_eps(const char *func, double eps)
{
    if (!isfinite(eps) || eps < 0) {
        ag__error(func, "eps must be finite and >= 0, got %g", eps);
        return -1;
    }
    return 0;
}

/* Checks an optional per-element or per-channel tensor t (named what) of
 * ndim sizes `shape` and x's dtype. */
static int check_affine(const char *func, const char *what, const ag_tensor *t,
                        const ag_tensor *x, int ndim, const int64_t *shape)
{
    if (!t) return 0;
    char bt[AG_SHAPE_STR_MAX], bw[AG_SHAPE_STR_MAX], bx[AG_SHAPE_STR_MAX];
    if (t->dtype != x->dtype) {
        ag__error(func, "%s is %s %s, x is %s %s", what,
                  ag_dtype_name(t->dtype), ag__shape_str(bt, t->ndim, t->shape),
                  ag_dtype_name(x->dtype),
                  ag__shape_str(bx, x->ndim, x->shape));
        return -1;
    }
    if (!ag__same_shape(t, ndim, shape)) {
        ag__error(func, "%s %s must have shape %s for x %s", what,
                  ag__shape_str(bt, t->ndim, t->shape),
                  ag__shape_str(bw, ndim, shape),
                  ag__shape_str(bx, x->ndim, x->shape));
        return -1;
    }
    return 0;
}

/* Layer and RMS norm over the last k axes of x. */
static ag_tensor *norm_last_axes(const char *func, const ag_op *op, ag_arena *a,
                                 ag_tensor *x, int k, ag_tensor *w,
                                 ag_tensor *bias, double eps)
{
    if (ag__check_float_inputs(func, a, 1, &x)) return NULL;
    char bx[AG_SHAPE_STR_MAX];
    if (k < 1 || k > x->ndim) {
        ag__error(func, "normalized_ndim %d is out of [1, %d] for x %s", k,
                  x->ndim, ag__shape_str(bx, x->ndim, x->shape));
        return NULL;
    }
    const int64_t *shape = x->shape + x->ndim - k;
    if (check_affine(func, "weight", w, x, k, shape) ||
        check_affine(func, "bias", bias, x, k, shape) || check_eps(func, eps))
        return NULL;
    norm_params p = {k, w != NULL, bias != NULL, eps, NULL};
    ag_tensor *inputs[3] = {x, w ? w : bias, bias};
    return ag__apply(func, a, op, 1 + (w != NULL) + (bias != NULL), inputs,
                     x->dtype, x->ndim, x->shape, &p);
}

ag_tensor *ag_layer_norm(ag_arena *a, ag_tensor *x, int normalized_ndim,
                         ag_tensor *weight, ag_tensor *bias, double eps)
{
    return norm_last_axes("ag_layer_norm", &ag__op_layer_norm, a, x,
                          normalized_ndim, weight, bias, eps);
}

ag_tensor *ag_rms_norm(ag_arena *a, ag_tensor *x, int normalized_ndim,
                       ag_tensor *weight, double eps)
{
    return norm_last_axes("ag_rms_norm", &ag__op_rms_norm, a, x,
                          normalized_ndim, weight, NULL, eps);
}

ag_tensor *ag_batch_norm(ag_arena *a, ag_tensor *x, ag_tensor *running_mean,
                         ag_tensor *running_var, ag_tensor *weight,
                         ag_tensor *bias, bool training, double momentum,
                         double eps)
{
    const char *func = "ag_batch_norm";
    if (ag__check_float_inputs(func, a, 1, &x)) return NULL;
    char bx[AG_SHAPE_STR_MAX];
    if (x->ndim < 2) {
        ag__error(func, "x must be (N,C,...), got %s",
                  ag__shape_str(bx, x->ndim, x->shape));
        return NULL;
    }
    const int64_t *C = &x->shape[1];
    if (check_affine(func, "weight", weight, x, 1, C) ||
        check_affine(func, "bias", bias, x, 1, C) ||
        check_affine(func, "running_mean", running_mean, x, 1, C) ||
        check_affine(func, "running_var", running_var, x, 1, C) ||
        check_eps(func, eps))
        return NULL;
    if (!running_mean != !running_var) {
        ag__error(func, "running_mean and running_var must be given together "
                        "(or both NULL)");
        return NULL;
    }
    if (!training && !running_mean) {
        ag__error(func, "eval mode (training false) needs running_mean and "
                        "running_var");
        return NULL;
    }
    if (!isfinite(momentum)) {
        ag__error(func, "momentum must be finite, got %g", momentum);
        return NULL;
    }
    int64_t n = x->numel / (x->shape[1] ? x->shape[1] : 1);
    if (training && n == 1 && x->shape[1] > 0) {
        ag__error(func,
                  "expected more than 1 value per channel when training, got "
                  "x %s",
                  ag__shape_str(bx, x->ndim, x->shape));
        return NULL;
    }
    norm_params p = {0, weight != NULL, bias != NULL, eps, NULL};
    ag_tensor *inputs[5];
    int count = 0;
    inputs[count++] = x;
    if (!training) {
        inputs[count++] = running_mean;
        inputs[count++] = running_var;
    } else if (running_mean && n > 0) {
        p.batch_stats = ag__arena_alloc(a, 2 * (size_t)*C * sizeof(double), 64);
        if (!p.batch_stats) {
            ag__error(func, "out of memory");
            return NULL;
        }
    }
    if (weight) inputs[count++] = weight;
    if (bias) inputs[count++] = bias;
    ag_tensor *y = ag__apply(
        func, a, training ? &ag__op_batch_norm : &ag__op_batch_norm_eval, count,
        inputs, x->dtype, x->ndim, x->shape, &p);
    if (y && p.batch_stats) /* running = (1 - momentum) running + momentum
                               batch, with the unbiased batch variance */
        AG_DISPATCH_FLOAT(x->dtype, {
            real *rm = running_mean->data, *rv = running_var->data;
            double unbias = (double)n / (double)(n - 1);
            for (int64_t c = 0; c < *C; c++) {
                rm[c] = (real)((1 - momentum) * (double)rm[c] +
                               momentum * p.batch_stats[c]);
                rv[c] = (real)((1 - momentum) * (double)rv[c] +
                               momentum * p.batch_stats[*C + c] * unbias);
            }
        });
    return y;
}

/* The op-table entries. */
#define NORM_OP(op_name, op_kind, nondiff)                                     \
    {                                                                          \
        .name = op_name, .arity = AG_VARIADIC, .kind = op_kind,                \
        .nondiff_inputs = nondiff, .params_size = sizeof(norm_params),         \
        .saved_size = sizeof(norm_saved), .forward = norm_forward,             \
        .backward = norm_backward, .vjp = norm_vjp, .jvp = norm_jvp            \
    }
const ag_op ag__op_layer_norm = NORM_OP("layer_norm", LAYER_NORM, 0);
const ag_op ag__op_rms_norm = NORM_OP("rms_norm", RMS_NORM, 0);
const ag_op ag__op_batch_norm = NORM_OP("batch_norm", BATCH_NORM, 0);
/* the running mean and variance (inputs 1 and 2) are not differentiable */
const ag_op ag__op_batch_norm_eval =
    NORM_OP("batch_norm_eval", BATCH_NORM_EVAL, 3u << 1);
