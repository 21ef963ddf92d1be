/* norms.c: the normalisation modules, as torch.nn's: LayerNorm, RMSNorm,
 * BatchNorm1d and BatchNorm2d, with their parameter and buffer names and
 * default initialisation (weight ones, bias zeros, running mean zeros,
 * running variance ones, num_batches_tracked 0). The arithmetic is the ops'
 * (ag_layer_norm, ag_rms_norm, ag_batch_norm in lib/ops/norm.c). */
#include "../internal.h"

#include <float.h>
#include <math.h>

/* LayerNorm and RMSNorm: the normalised shape's rank, eps, affine
 * parameters (NULL without). */
typedef struct {
    int ndim;
    int64_t shape[AG_MAX_DIMS];
    double eps;
    ag_tensor *weight, *bias;
} norm_module;

/* Checks that x ends with the normalised shape; reports as `name`. */
static int check_trailing(const char *name, const norm_module *n,
                          const ag_tensor *x)
{
    bool ok = x->ndim >= n->ndim;
    for (int d = 0; ok && d < n->ndim; d++)
        ok = x->shape[x->ndim - n->ndim + d] == n->shape[d];
    if (ok) return 0;
    char bx[AG_SHAPE_STR_MAX], bs[AG_SHAPE_STR_MAX];
    ag__error(name, "input %s does not end with the normalised shape %s",
              ag__shape_str(bx, x->ndim, x->shape),
              ag__shape_str(bs, n->ndim, n->shape));
    return -1;
}

static ag_tensor *layer_norm_forward(ag_module *m, ag_arena *step, ag_tensor *x)
{
    norm_module *n = ag_module_self(m);
    if (check_trailing("LayerNorm", n, x)) return NULL;
    return ag_layer_norm(step, x, n->ndim, n->weight, n->bias, n->eps);
}

static ag_tensor *rms_norm_forward(ag_module *m, ag_arena *step, ag_tensor *x)
{
    norm_module *n = ag_module_self(m);
    if (check_trailing("RMSNorm", n, x)) return NULL;
    /* nn.RMSNorm's eps None: the dtype's machine epsilon */
    double eps = n->eps > 0           ? n->eps
                 : x->dtype == AG_F32 ? (double)FLT_EPSILON
                                      : DBL_EPSILON;
    return ag_rms_norm(step, x, n->ndim, n->weight, eps);
}

static const ag_module_type layer_norm_type = {"LayerNorm", layer_norm_forward};
static const ag_module_type rms_norm_type = {"RMSNorm", rms_norm_forward};

/* The shared constructor: checks, the struct, weight (ones) and bias
 * (zeros, LayerNorm only) registered. */
static ag_module *norm_new(const char *func, const ag_module_type *type,
                           ag_arena *a, ag_dtype dt, int ndim,
                           const int64_t *shape, double eps, bool affine,
                           bool with_bias)
{
    if (!a || (dt != AG_F32 && dt != AG_F64) || ndim < 1 ||
        ndim > AG_MAX_DIMS || !shape || !(eps >= 0) || !isfinite(eps)) {
        ag__error(func,
                  "needs an arena, a float dtype, a normalised shape of 1 "
                  "to %d axes and eps >= 0; got %s, %s, %d axes%s, eps %g",
                  AG_MAX_DIMS, a ? "an arena" : "arena NULL", ag_dtype_name(dt),
                  ndim, shape ? "" : " (shape NULL)", eps);
        return NULL;
    }
    int64_t numel;
    size_t bytes;
    if (ag__check_size(func, dt, ndim, shape, &numel, &bytes)) return NULL;
    if (numel < 1) {
        char bs[AG_SHAPE_STR_MAX];
        ag__error(func, "the normalised shape %s has no elements",
                  ag__shape_str(bs, ndim, shape));
        return NULL;
    }
    norm_module *n = ag_arena_alloc(a, sizeof *n);
    if (!n) return NULL;
    n->ndim = ndim;
    memcpy(n->shape, shape, (size_t)ndim * sizeof *shape);
    n->eps = eps;
    ag_module *m = ag_module_new(a, type, n);
    if (!m) return NULL;
    if (affine) {
        n->weight = ag_ones(a, dt, ndim, shape);
        if (!n->weight || ag_module_add_parameter(m, "weight", n->weight))
            return NULL;
        if (with_bias) {
            n->bias = ag_zeros(a, dt, ndim, shape);
            if (!n->bias || ag_module_add_parameter(m, "bias", n->bias))
                return NULL;
        }
    }
    return m;
}

ag_module *ag_nn_layer_norm(ag_arena *a, ag_dtype dt, int ndim,
                            const int64_t *shape, double eps, bool affine)
{
    return norm_new("ag_nn_layer_norm", &layer_norm_type, a, dt, ndim, shape,
                    eps, affine, true);
}

ag_module *ag_nn_rms_norm(ag_arena *a, ag_dtype dt, int ndim,
                          const int64_t *shape, double eps, bool affine)
{
    return norm_new("ag_nn_rms_norm", &rms_norm_type, a, dt, ndim, shape, eps,
                    affine, false);
}

/* BatchNorm1d and BatchNorm2d: per-channel affine parameters and running
 * statistics, and the input ranks the module takes. */
typedef struct {
    double eps, momentum;
    ag_tensor *weight, *bias;              /* NULL without affine */
    ag_tensor *running_mean, *running_var; /* NULL without tracking */
    ag_tensor *batches;                    /* num_batches_tracked, i32 () */
    int rank_lo, rank_hi;                  /* 1d: 2 or 3; 2d: 4 */
    const char *name;
} batch_norm_module;

/* Training mode normalises with the batch's statistics and updates the
 * running ones (and counts the batch); evaluation mode uses the running
 * statistics, or the batch's when the module tracks none (as PyTorch). */
static ag_tensor *batch_norm_forward(ag_module *m, ag_arena *step, ag_tensor *x)
{
    batch_norm_module *b = ag_module_self(m);
    if (x->ndim < b->rank_lo || x->ndim > b->rank_hi) {
        char bx[AG_SHAPE_STR_MAX];
        ag__error(b->name, "expected a %s input, got %s (%d dimensions)",
                  b->rank_lo == b->rank_hi ? "4-D (N,C,H,W)"
                                           : "2-D (N,C) or 3-D (N,C,L)",
                  ag__shape_str(bx, x->ndim, x->shape), x->ndim);
        return NULL;
    }
    bool training = ag_module_is_training(m) || !b->running_mean;
    ag_tensor *y =
        ag_batch_norm(step, x, b->running_mean, b->running_var, b->weight,
                      b->bias, training, b->momentum, b->eps);
    if (y && training && b->batches) ((int32_t *)b->batches->data)[0]++;
    return y;
}

static const ag_module_type batch_norm1d_type = {"BatchNorm1d",
                                                 batch_norm_forward};
static const ag_module_type batch_norm2d_type = {"BatchNorm2d",
                                                 batch_norm_forward};

static ag_module *batch_norm_new(const char *func, const ag_module_type *type,
                                 int rank_lo, int rank_hi, ag_arena *a,
                                 ag_dtype dt, int64_t channels, double eps,
                                 double momentum, bool affine,
                                 bool track_running_stats)
{
    if (!a || (dt != AG_F32 && dt != AG_F64) || channels < 1 || !(eps >= 0) ||
        !isfinite(eps) || !isfinite(momentum)) {
        ag__error(func,
                  "needs an arena, a float dtype, channels >= 1, eps >= 0 "
                  "and a finite momentum; got %s, %s, %lld channels, eps %g, "
                  "momentum %g",
                  a ? "an arena" : "arena NULL", ag_dtype_name(dt),
                  (long long)channels, eps, momentum);
        return NULL;
    }
    batch_norm_module *b = ag_arena_alloc(a, sizeof *b);
    if (!b) return NULL;
    *b = (batch_norm_module){.eps = eps,
                             .momentum = momentum,
                             .rank_lo = rank_lo,
                             .rank_hi = rank_hi,
                             .name = type->name};
    ag_module *m = ag_module_new(a, type, b);
    if (!m) return NULL;
    const int64_t c[1] = {channels};
    if (affine) {
        b->weight = ag_ones(a, dt, 1, c);
        b->bias = ag_zeros(a, dt, 1, c);
        if (!b->weight || !b->bias ||
            ag_module_add_parameter(m, "weight", b->weight) ||
            ag_module_add_parameter(m, "bias", b->bias))
            return NULL;
    }
    if (track_running_stats) {
        b->running_mean = ag_zeros(a, dt, 1, c);
        b->running_var = ag_ones(a, dt, 1, c);
        b->batches = ag_zeros(a, AG_I32, 0, NULL);
        if (!b->running_mean || !b->running_var || !b->batches ||
            ag_module_add_buffer(m, "running_mean", b->running_mean) ||
            ag_module_add_buffer(m, "running_var", b->running_var) ||
            ag_module_add_buffer(m, "num_batches_tracked", b->batches))
            return NULL;
    }
    return m;
}

ag_module *ag_nn_batch_norm1d(ag_arena *a, ag_dtype dt, int64_t channels,
                              double eps, double momentum, bool affine,
                              bool track_running_stats)
{
    return batch_norm_new("ag_nn_batch_norm1d", &batch_norm1d_type, 2, 3, a, dt,
                          channels, eps, momentum, affine, track_running_stats);
}

ag_module *ag_nn_batch_norm2d(ag_arena *a, ag_dtype dt, int64_t channels,
                              double eps, double momentum, bool affine,
                              bool track_running_stats)
{
    return batch_norm_new("ag_nn_batch_norm2d", &batch_norm2d_type, 4, 4, a, dt,
                          channels, eps, momentum, affine, track_running_stats);
}
