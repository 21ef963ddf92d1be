/* pool.c: 2-D max and average pooling over square windows of (N, C, H, W),
 * in floor mode, as PyTorch's F.max_pool2d and F.avg_pool2d (the latter with
 * count_include_pad): window (oh, ow) covers rows oh s - p .. oh s - p + k - 1
 * and the columns likewise; OH = (H + 2 p - k) / s + 1.
 *   max: y = the window's largest value (padding reads as -inf), its place
 *        saved; the gradient goes to that first maximum (a NaN counts as
 *        largest), as PyTorch's rule.
 *   avg: y = the window's sum / k^2 (padding reads as 0).
 * Their derivatives in ops go through unfold and fold (conv.c): a window's
 * values are a column of unfold(x) seen as (N, C, k^2, L).
 * Max pool with kernel 2, stride 2 and no padding (the usual CNN pool) has
 * its own forward and backward loops, with the same results bit for bit. */
#include "../internal.h"

#include <tgmath.h>

enum { MAX_POOL, AVG_POOL };

typedef struct {
    int64_t k, s, p, H, W, OH, OW;
} pool_params;

/* max pool keeps, per output, the place ih W + iw of its maximum in the
 * input's plane: as int32_t when H W fits one, else as int64_t (wide). */
typedef struct {
    void *argmax;
    bool wide;
} pool_saved;

/* The saved place of output i. */
static inline int64_t saved_place(const pool_saved *sv, int64_t i)
{
    return sv->wide ? ((const int64_t *)sv->argmax)[i]
                    : ((const int32_t *)sv->argmax)[i];
}

/* Whether the pool takes the 2x2 stride-2 unpadded loops (its argmax
 * int32_t). */
static bool pool_2x2(const ag_tensor *out, const pool_params *p)
{
    return out->op->kind == MAX_POOL && p->k == 2 && p->s == 2 && p->p == 0 &&
           p->H * p->W <= INT32_MAX;
}

/* The rows (or columns) [*lo, *hi) of window o that lie in [0, size). */
static void window(const pool_params *p, int64_t o, int64_t size, int64_t *lo,
                   int64_t *hi)
{
    int64_t start = o * p->s - p->p;
    *lo = start < 0 ? 0 : start;
    *hi = start + p->k < size ? start + p->k : size;
}

/* The forward of planes [lo, hi) (a plane is one image's channel). */
typedef struct {
    ag_tensor *out;
    pool_saved *arg; /* max pool's saved argmax, NULL for avg */
} pool_job;

/* The 2x2 stride-2 max pool of one plane: the best of a window is taken
 * as the general loop below takes it (in row-major order from -inf, a
 * value replacing the best when larger or NaN: the first of tied maxima,
 * the last NaN). That choice is associative, so it is made as
 * (a o b) o (c o d) for the window's rows (a, b) and (c, d), in branchless
 * selects that the compiler vectorizes (AG_KERNEL). `later` is written as
 * a sum of two comparisons: with -fno-trapping-math GCC 12 folds
 * `v > best || isnan(v)` into one unordered comparison that it does not
 * vectorize. The argmax is the place in the plane, int32_t. */
AG_KERNEL static void max_plane_2x2(ag_dtype dt, const void *xp, void *yp,
                                    int32_t *restrict ap, const pool_params *p)
{
    int64_t W = p->W, OW = p->OW;
#define later(v, best) ((int32_t)((v) > (best)) + (int32_t)isnan(v) > 0)
    AG_DISPATCH_FLOAT(dt, {
        for (int64_t oh = 0; oh < p->OH; oh++) {
            const real *restrict r0 = (const real *)xp + 2 * oh * W;
            const real *restrict r1 = r0 + W;
            real *restrict yr = (real *)yp + oh * OW;
            int32_t *restrict ar = ap + oh * OW;
            int32_t top = (int32_t)(2 * oh * W), w = (int32_t)W;
            for (int64_t ow = 0; ow < OW; ow++) {
                real a = r0[2 * ow], b = r0[2 * ow + 1];
                real c = r1[2 * ow], d = r1[2 * ow + 1];
                int32_t right0 = later(b, a);
                real m0 = right0 ? b : a;
                int32_t right1 = later(d, c);
                real m1 = right1 ? d : c;
                int32_t down = later(m1, m0);
                yr[ow] = down ? m1 : m0;
                ar[ow] = top + 2 * (int32_t)ow + (down ? w + right1 : right0);
            }
        }
    });
#undef later
}

/* max_plane_2x2 over planes [lo, hi). */
static void pool_planes_2x2(const pool_job *job, int64_t lo, int64_t hi)
{
    ag_tensor *out = job->out;
    const pool_params *p = AG_PARAMS(out, pool_params);
    const ag_tensor *x = out->inputs[0];
    int64_t HW = p->H * p->W, L = p->OH * p->OW;
    size_t size = ag__dtype_size(out->dtype);
    int32_t *arg = job->arg->argmax;
    for (int64_t pl = lo; pl < hi; pl++)
        max_plane_2x2(out->dtype, (const char *)x->data + pl * HW * size,
                      (char *)out->data + pl * L * size, arg + pl * L, p);
}

/* The forward of planes [lo, hi) for any kernel, stride and padding (the
 * 2x2 stride-2 unpadded max pool handed to its own loops). */
static void pool_planes(const pool_job *job, int64_t lo, int64_t hi)
{
    ag_tensor *out = job->out;
    const pool_params *p = AG_PARAMS(out, pool_params);
    const ag_tensor *x = out->inputs[0];
    int64_t HW = p->H * p->W, L = p->OH * p->OW;
    if (pool_2x2(out, p)) {
        pool_planes_2x2(job, lo, hi);
        return;
    }
    pool_saved *arg = job->arg;
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *xv = x->data;
        real *y = out->data;
        const real inv_area = (real)1 / (real)(p->k * p->k);
        for (int64_t pl = lo; pl < hi; pl++) {
            const real *xp = xv + pl * HW;
            for (int64_t oh = 0; oh < p->OH; oh++) {
                int64_t h0, h1;
                window(p, oh, p->H, &h0, &h1);
                for (int64_t ow = 0; ow < p->OW; ow++) {
                    int64_t w0, w1, at = pl * L + oh * p->OW + ow;
                    window(p, ow, p->W, &w0, &w1);
                    if (arg) { /* y = max over the window, first one kept */
                        real best = -INFINITY;
                        int64_t where = h0 * p->W + w0;
                        for (int64_t ih = h0; ih < h1; ih++)
                            for (int64_t iw = w0; iw < w1; iw++) {
                                real v = xp[ih * p->W + iw];
                                if (v > best || isnan(v)) {
                                    best = v;
                                    where = ih * p->W + iw;
                                }
                            }
                        y[at] = best;
                        if (arg->wide)
                            ((int64_t *)arg->argmax)[at] = where;
                        else
                            ((int32_t *)arg->argmax)[at] = (int32_t)where;
                    } else { /* y = sum over the window / k^2 */
                        real sum = 0;
                        for (int64_t ih = h0; ih < h1; ih++)
                            for (int64_t iw = w0; iw < w1; iw++)
                                sum += xp[ih * p->W + iw];
                        y[at] = sum * inv_area;
                    }
                }
            }
        }
    });
}

/* One thread's share of the planes; each plane is computed alone, so the
 * result is the same bits whatever the thread count. */
static void pool_part(void *arg, int part, int parts)
{
    const pool_job *job = arg;
    const ag_tensor *x = job->out->inputs[0];
    int64_t lo, hi;
    ag__part_range(x->shape[0] * x->shape[1], 1, part, parts, &lo, &hi);
    pool_planes(job, lo, hi);
}

static int pool_forward(ag_tensor *out)
{
    const ag_tensor *x = out->inputs[0];
    pool_job job = {out, NULL};
    if (out->op->kind == MAX_POOL) {
        const pool_params *p = AG_PARAMS(out, pool_params);
        job.arg = AG_SAVED(out, pool_saved);
        job.arg->wide = p->H * p->W > INT32_MAX;
        job.arg->argmax = ag__arena_alloc(
            out->arena,
            (size_t)out->numel *
                (job.arg->wide ? sizeof(int64_t) : sizeof(int32_t)),
            16);
        if (!job.arg->argmax && out->numel) {
            ag__error("ag_max_pool2d", "out of memory");
            return -1;
        }
    }
    if (x->numel >= AG_PARALLEL_MIN_ELEMENTS)
        ag__parallel(AG_MAX_THREADS, pool_part, &job);
    else
        pool_planes(&job, 0, x->shape[0] * x->shape[1]);
    return 0;
}

/* The backward's work: planes of dx, each written alone. */
typedef struct {
    ag_tensor *out;
    void *dx;
    bool assign; /* dx unwritten: the 2x2 loop stores every element */
} pool_grad_job;

/* The 2x2 stride-2 max pool's dx = g at the argmax, 0 elsewhere, for one
 * plane whose dx is unwritten: every element is stored, 0 + g at the
 * window's argmax (0 + g, as adding into a cleared buffer gives: -0 turns
 * to 0), 0 at its other three places and in the row and column that floor
 * mode drops; vectorized as max_plane_2x2. */
AG_KERNEL static void grad_plane_2x2(ag_dtype dt, const void *gp, void *dp,
                                     const int32_t *restrict ap,
                                     const pool_params *p)
{
    int64_t H = p->H, W = p->W, OW = p->OW;
    AG_DISPATCH_FLOAT(dt, {
        for (int64_t oh = 0; oh < p->OH; oh++) {
            real *restrict r0 = (real *)dp + 2 * oh * W;
            real *restrict r1 = r0 + W;
            const real *restrict gr = (const real *)gp + oh * OW;
            const int32_t *restrict ar = ap + oh * OW;
            int32_t top = (int32_t)(2 * oh * W), w = (int32_t)W;
            for (int64_t ow = 0; ow < OW; ow++) {
                int32_t at = ar[ow] - top - 2 * (int32_t)ow;
                real v = 0 + gr[ow];
                r0[2 * ow] = at == 0 ? v : 0;
                r0[2 * ow + 1] = at == 1 ? v : 0;
                r1[2 * ow] = at == w ? v : 0;
                r1[2 * ow + 1] = at == w + 1 ? v : 0;
            }
            if (W & 1) r0[W - 1] = r1[W - 1] = 0;
        }
        if (H & 1)
            memset((real *)dp + (H - 1) * W, 0, (size_t)W * sizeof(real));
    });
}

/* The 2x2 stride-2 max pool's dx[argmax] += g for planes [lo, hi), or
 * grad_plane_2x2 when dx is unwritten. */
static void pool_grad_2x2(const pool_grad_job *job, int64_t lo, int64_t hi)
{
    ag_tensor *out = job->out;
    const pool_params *p = AG_PARAMS(out, pool_params);
    const int32_t *arg = AG_SAVED(out, pool_saved)->argmax;
    int64_t HW = p->H * p->W, L = p->OH * p->OW;
    size_t size = ag__dtype_size(out->dtype);
    for (int64_t pl = lo; pl < hi; pl++) {
        const int32_t *ap = arg + pl * L;
        if (job->assign) {
            grad_plane_2x2(out->dtype,
                           (const char *)out->grad->data + pl * L * size,
                           (char *)job->dx + pl * HW * size, ap, p);
            continue;
        }
        AG_DISPATCH_FLOAT(out->dtype, {
            const real *gp = (const real *)out->grad->data + pl * L;
            real *dp = (real *)job->dx + pl * HW;
            for (int64_t l = 0; l < L; l++) dp[ap[l]] += gp[l];
        });
    }
}

/* max: dx[argmax] += g      avg: dx[window] += g / k^2
 * for planes [lo, hi) (windows of one plane only touch that plane). */
static void pool_grad_planes(const pool_grad_job *job, int64_t lo, int64_t hi)
{
    ag_tensor *out = job->out;
    const pool_params *p = AG_PARAMS(out, pool_params);
    if (pool_2x2(out, p)) {
        pool_grad_2x2(job, lo, hi);
        return;
    }
    int64_t HW = p->H * p->W, L = p->OH * p->OW;
    const pool_saved *sv =
        out->op->kind == MAX_POOL ? AG_SAVED(out, pool_saved) : NULL;
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *g = out->grad->data;
        real *dx = job->dx;
        const real inv_area = (real)1 / (real)(p->k * p->k);
        for (int64_t pl = lo; pl < hi; pl++) {
            real *dp = dx + pl * HW;
            const real *gp = g + pl * L;
            if (sv) {
                for (int64_t l = 0; l < L; l++)
                    dp[saved_place(sv, pl * L + l)] += gp[l];
                continue;
            }
            for (int64_t oh = 0; oh < p->OH; oh++) {
                int64_t h0, h1;
                window(p, oh, p->H, &h0, &h1);
                for (int64_t ow = 0; ow < p->OW; ow++) {
                    int64_t w0, w1;
                    window(p, ow, p->W, &w0, &w1);
                    real v = gp[oh * p->OW + ow] * inv_area;
                    for (int64_t ih = h0; ih < h1; ih++)
                        for (int64_t iw = w0; iw < w1; iw++)
                            dp[ih * p->W + iw] += v;
                }
            }
        }
    });
}

/* One thread's share of the backward's planes; as the forward, the same
 * bits whatever the thread count. */
static void pool_grad_part(void *arg, int part, int parts)
{
    const pool_grad_job *job = arg;
    const ag_tensor *x = job->out->inputs[0];
    int64_t lo, hi;
    ag__part_range(x->shape[0] * x->shape[1], 1, part, parts, &lo, &hi);
    pool_grad_planes(job, lo, hi);
}

static int pool_backward(ag_tensor *out)
{
    ag_tensor *x = out->inputs[0];
    pool_grad_job job = {out, NULL, false};
    if (pool_2x2(out, AG_PARAMS(out, pool_params)))
        job.dx = ag__grad_begin(x, &job.assign);
    else
        job.dx = ag__grad_accumulate(x);
    if (x->numel >= AG_PARALLEL_MIN_ELEMENTS)
        ag__parallel(AG_MAX_THREADS, pool_grad_part, &job);
    else
        pool_grad_planes(&job, 0, x->shape[0] * x->shape[1]);
    return 0;
}

/* The unfold/fold geometry of the pool's windows. */
static ag_conv_options window_options(const pool_params *p)
{
    return (ag_conv_options){{p->s, p->s}, {p->p, p->p}, {1, 1}, 1};
}

/* For max pool: a tensor without history, (N, C, k^2, L), 1 at the place
 * of each window's saved maximum, else 0. */
static ag_tensor *argmax_mask(ag_arena *a, const ag_tensor *out)
{
    const pool_params *p = AG_PARAMS(out, pool_params);
    const pool_saved *sv = AG_SAVED(out, pool_saved);
    int64_t N = out->shape[0], C = out->shape[1], kk = p->k * p->k;
    int64_t L = p->OH * p->OW;
    ag_tensor *m = ag_zeros(a, out->dtype, 4, (int64_t[]){N, C, kk, L});
    if (m)
        AG_DISPATCH_FLOAT(m->dtype, {
            real *mv = m->data;
            for (int64_t pl = 0; pl < N * C; pl++)
                for (int64_t l = 0; l < L; l++) {
                    int64_t at = saved_place(sv, pl * L + l);
                    int64_t i = at / p->W - ((l / p->OW) * p->s - p->p);
                    int64_t j = at % p->W - ((l % p->OW) * p->s - p->p);
                    mv[(pl * kk + i * p->k + j) * L + l] = 1;
                }
        });
    return m;
}

/* max: dx = fold(g * mask)       avg: dx = fold(g / k^2 on every place)
 * with g seen as (N, C, 1, L) against the windows (N, C, k^2, L). */
static int pool_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g, const bool *want,
                    ag_tensor **dx)
{
    const pool_params *p = AG_PARAMS(out, pool_params);
    int64_t N = out->shape[0], C = out->shape[1], kk = p->k * p->k;
    int64_t L = p->OH * p->OW;
    ag_tensor *g4 = ag_reshape(a, g, 4, (int64_t[]){N, C, 1, L});
    ag_tensor *spread = out->op->kind == MAX_POOL
                            ? ag_mul(a, g4, argmax_mask(a, out))
                            : ag_expand(a, ag_scale(a, g4, 1.0 / (double)kk), 4,
                                        (int64_t[]){N, C, kk, L});
    ag_conv_options o = window_options(p);
    AG_TRY(dx[0] =
               ag_fold(a, ag_reshape(a, spread, 3, (int64_t[]){N, C * kk, L}),
                       p->H, p->W, p->k, p->k, &o));
    return 0;
}

/* max: ty = sum over the window of unfold(tx) * mask
 * avg: ty = avg_pool2d(tx)   (linear) */
static int pool_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *tx,
                    ag_tensor **ty)
{
    const pool_params *p = AG_PARAMS(out, pool_params);
    if (out->op->kind == AVG_POOL) {
        AG_TRY(*ty = ag__apply("ag_avg_pool2d", a, out->op, 1, &tx[0],
                               out->dtype, 4, out->shape, p));
        return 0;
    }
    int64_t N = out->shape[0], C = out->shape[1], kk = p->k * p->k;
    int64_t L = p->OH * p->OW;
    ag_conv_options o = window_options(p);
    ag_tensor *cols = ag_reshape(a, ag_unfold(a, tx[0], p->k, p->k, &o), 4,
                                 (int64_t[]){N, C, kk, L});
    AG_TRY(*ty = ag_reshape(
               a, ag_sum(a, ag_mul(a, cols, argmax_mask(a, out)), 2, false), 4,
               out->shape));
    return 0;
}

static ag_tensor *pool(const char *func, const ag_op *op, ag_arena *a,
                       ag_tensor *x, int64_t kernel, int64_t stride,
                       int64_t padding)
{
    if (ag__check_float_inputs(func, a, 1, &x)) return NULL;
    char bx[AG_SHAPE_STR_MAX];
    if (x->ndim != 4) {
        ag__error(func, "x must be 4-D (N,C,H,W), got %s",
                  ag__shape_str(bx, x->ndim, x->shape));
        return NULL;
    }
    if (x->shape[1] == 0 || x->shape[2] == 0 || x->shape[3] == 0) {
        /* as PyTorch: only the batch may be empty (an empty plane would
         * leave a window with no element to take the maximum of) */
        ag__error(func, "x %s has an empty channel, height or width dimension",
                  ag__shape_str(bx, x->ndim, x->shape));
        return NULL;
    }
    if (kernel < 1 || stride < 0 || padding < 0) {
        ag__error(func,
                  "kernel %lld must be at least 1, stride %lld not negative "
                  "(0: the kernel) and padding %lld not negative",
                  (long long)kernel, (long long)stride, (long long)padding);
        return NULL;
    }
    if (padding > kernel / 2) {
        ag__error(func, "padding %lld is more than half the kernel %lld",
                  (long long)padding, (long long)kernel);
        return NULL;
    }
    pool_params p = {
        kernel, stride ? stride : kernel, padding, x->shape[2], x->shape[3], 0,
        0};
    if (p.H + 2 * p.p < p.k || p.W + 2 * p.p < p.k) {
        ag__error(func,
                  "kernel %lld is larger than the padded input %s with "
                  "padding %lld",
                  (long long)kernel, ag__shape_str(bx, x->ndim, x->shape),
                  (long long)padding);
        return NULL;
    }
    p.OH = (p.H + 2 * p.p - p.k) / p.s + 1;
    p.OW = (p.W + 2 * p.p - p.k) / p.s + 1;
    int64_t shape[4] = {x->shape[0], x->shape[1], p.OH, p.OW};
    return ag__apply(func, a, op, 1, &x, x->dtype, 4, shape, &p);
}

ag_tensor *ag_max_pool2d(ag_arena *a, ag_tensor *x, int64_t kernel,
                         int64_t stride, int64_t padding)
{
    return pool("ag_max_pool2d", &ag__op_max_pool2d, a, x, kernel, stride,
                padding);
}

ag_tensor *ag_avg_pool2d(ag_arena *a, ag_tensor *x, int64_t kernel,
                         int64_t stride, int64_t padding)
{
    return pool("ag_avg_pool2d", &ag__op_avg_pool2d, a, x, kernel, stride,
                padding);
}

/* The op-table entries. */
const ag_op ag__op_max_pool2d = {.name = "max_pool2d",
                                 .arity = 1,
                                 .kind = MAX_POOL,
                                 .params_size = sizeof(pool_params),
                                 .saved_size = sizeof(pool_saved),
                                 .forward = pool_forward,
                                 .backward = pool_backward,
                                 .vjp = pool_vjp,
                                 .jvp = pool_jvp};
const ag_op ag__op_avg_pool2d = {.name = "avg_pool2d",
                                 .arity = 1,
                                 .kind = AVG_POOL,
                                 .params_size = sizeof(pool_params),
                                 .forward = pool_forward,
                                 .backward = pool_backward,
                                 .vjp = pool_vjp,
                                 .jvp = pool_jvp};
