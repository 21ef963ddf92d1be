/* conv.c: the convolution and pooling modules, as torch.nn's Conv1d,
 * Conv2d, MaxPool2d and AvgPool2d: "weight" (O, C/groups, k...) and "bias"
 * (O), initialised as PyTorch's reset_parameters (Kaiming uniform with
 * a = sqrt(5), so U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the bias from
 * the same bound; fan_in = C/groups times the kernel's size). The
 * arithmetic is the ops' (lib/ops/conv.c, pool.c). */
#include "../internal.h"

#include <math.h>

typedef struct {
    ag_tensor *weight, *bias; /* bias NULL without one */
    ag_conv_options options;
    int rank; /* of the input: 3 for Conv1d, 4 for Conv2d */
    const char *name;
} conv_module;

static ag_tensor *conv_forward(ag_module *m, ag_arena *step, ag_tensor *x)
{
    conv_module *c = ag_module_self(m);
    if (x->ndim != c->rank) {
        char bx[AG_SHAPE_STR_MAX];
        ag__error(c->name, "expected a %s input, got %s (%d dimensions)",
                  c->rank == 4 ? "4-D (N,C,H,W)" : "3-D (N,C,L)",
                  ag__shape_str(bx, x->ndim, x->shape), x->ndim);
        return NULL;
    }
    return c->rank == 4 ? ag_conv2d(step, x, c->weight, c->bias, &c->options)
                        : ag_conv1d(step, x, c->weight, c->bias, &c->options);
}

static const ag_module_type conv1d_type = {"Conv1d", conv_forward};
static const ag_module_type conv2d_type = {"Conv2d", conv_forward};

static ag_module *conv_new(const char *func, int rank, ag_arena *a, ag_dtype dt,
                           int64_t in, int64_t out, const int64_t *kernel,
                           const ag_conv_options *o, bool bias, ag_rng *rng)
{
    ag_conv_options opt = o ? *o : (ag_conv_options){0};
    int64_t groups = opt.groups ? opt.groups : 1;
    int spatial = rank - 2;
    bool ok = a && rng && (dt == AG_F32 || dt == AG_F64) && in >= 1 &&
              out >= 1 && groups >= 1 && in % groups == 0 &&
              out % groups == 0 && kernel;
    for (int d = 0; ok && d < spatial; d++) ok = kernel[d] >= 1;
    if (!ok) {
        ag__error(func,
                  "needs an arena, an rng, a float dtype, channels >= 1 "
                  "divisible by groups and kernel sizes >= 1; got %s, %s, "
                  "%s, in %lld, out %lld, groups %lld%s",
                  a ? "an arena" : "arena NULL", rng ? "an rng" : "rng NULL",
                  ag_dtype_name(dt), (long long)in, (long long)out,
                  (long long)groups, kernel ? "" : ", kernel NULL");
        return NULL;
    }
    int64_t shape[4] = {out, in / groups, kernel[0],
                        spatial > 1 ? kernel[1] : 1};
    int64_t numel;
    size_t bytes;
    if (ag__check_size(func, dt, rank, shape, &numel, &bytes)) return NULL;
    conv_module *c = ag_arena_alloc(a, sizeof *c);
    if (!c) return NULL;
    *c = (conv_module){
        .options = opt, .rank = rank, .name = rank == 4 ? "Conv2d" : "Conv1d"};
    ag_module *m = ag_module_new(a, rank == 4 ? &conv2d_type : &conv1d_type, c);
    c->weight = m ? ag_zeros(a, dt, rank, shape) : NULL;
    if (!c->weight || ag_init_kaiming_uniform(c->weight, sqrt(5.0), rng) ||
        ag_module_add_parameter(m, "weight", c->weight))
        return NULL;
    if (bias) {
        double fan_in = (double)(numel / out);
        double bound = 1 / sqrt(fan_in);
        c->bias = ag_zeros(a, dt, 1, &out);
        if (!c->bias || ag_init_uniform(c->bias, -bound, bound, rng) ||
            ag_module_add_parameter(m, "bias", c->bias))
            return NULL;
    }
    return m;
}

ag_module *ag_nn_conv2d(ag_arena *a, ag_dtype dt, int64_t in, int64_t out,
                        int64_t kernel_h, int64_t kernel_w,
                        const ag_conv_options *o, bool bias, ag_rng *rng)
{
    return conv_new("ag_nn_conv2d", 4, a, dt, in, out,
                    (int64_t[]){kernel_h, kernel_w}, o, bias, rng);
}

ag_module *ag_nn_conv1d(ag_arena *a, ag_dtype dt, int64_t in, int64_t out,
                        int64_t kernel, const ag_conv_options *o, bool bias,
                        ag_rng *rng)
{
    return conv_new("ag_nn_conv1d", 3, a, dt, in, out, (int64_t[]){kernel}, o,
                    bias, rng);
}

/* The pools: kernel, stride (0: the kernel) and padding. */
typedef struct {
    int64_t kernel, stride, padding;
    bool average;
} pool_module;

static ag_tensor *pool_forward(ag_module *m, ag_arena *step, ag_tensor *x)
{
    pool_module *p = ag_module_self(m);
    if (x->ndim != 4) {
        char bx[AG_SHAPE_STR_MAX];
        ag__error(p->average ? "AvgPool2d" : "MaxPool2d",
                  "expected a 4-D (N,C,H,W) input, got %s (%d dimensions)",
                  ag__shape_str(bx, x->ndim, x->shape), x->ndim);
        return NULL;
    }
    return p->average
               ? ag_avg_pool2d(step, x, p->kernel, p->stride, p->padding)
               : ag_max_pool2d(step, x, p->kernel, p->stride, p->padding);
}

static const ag_module_type max_pool_type = {"MaxPool2d", pool_forward};
static const ag_module_type avg_pool_type = {"AvgPool2d", pool_forward};

static ag_module *pool_new(const char *func, bool average, ag_arena *a,
                           int64_t kernel, int64_t stride, int64_t padding)
{
    if (kernel < 1 || stride < 0 || padding < 0 || padding > kernel / 2) {
        ag__error(func,
                  "needs kernel >= 1, stride >= 0 (0: the kernel) and "
                  "padding in [0, kernel / 2]; got kernel %lld, stride %lld, "
                  "padding %lld",
                  (long long)kernel, (long long)stride, (long long)padding);
        return NULL;
    }
    pool_module *p = ag_arena_alloc(a, sizeof *p);
    if (!p) return NULL;
    *p = (pool_module){kernel, stride, padding, average};
    return ag_module_new(a, average ? &avg_pool_type : &max_pool_type, p);
}

ag_module *ag_nn_max_pool2d(ag_arena *a, int64_t kernel, int64_t stride,
                            int64_t padding)
{
    return pool_new("ag_nn_max_pool2d", false, a, kernel, stride, padding);
}

ag_module *ag_nn_avg_pool2d(ag_arena *a, int64_t kernel, int64_t stride,
                            int64_t padding)
{
    return pool_new("ag_nn_avg_pool2d", true, a, kernel, stride, padding);
}
