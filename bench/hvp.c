/* hvp.c: times higher-order derivatives of an MLP's softmax cross-entropy
 * loss with respect to all its parameters (weights and biases), in one
 * process, interleaved step by step so that all four see the same machine:
 *   hvp:  a Hessian-vector product, double backward: ag_gradients with
 *         create_graph, then a second, first-order ag_gradients of those
 *         gradients seeded with v (v^T H, which is H v: H is symmetric);
 *   grad: the first-order forward and backward (ag_gradients without
 *         create_graph) of the same loss;
 *   jvp:  a Jacobian-vector product by forward mode: every parameter made a
 *         dual (ag_make_dual, tangent v) and one forward pass carrying
 *         tangents, grad mode off;
 *   fwd:  the plain forward pass, grad mode off.
 * Every step builds its graph in a step arena that is reset afterwards.
 * Prints the median of each, hvp/grad and jvp/fwd, v.Hv and the loss's
 * tangent (to compare runs), and the heap allocations per hvp and per jvp
 * after warm-up (common.c counts them, as for bench/mlp_step).
 * bench/torch_hvp.py does the same in PyTorch; bench/run_hvp runs both.
 *
 * Usage: hvp [--batch B] [--sizes 784,1024,1024,10] [--dtype f32|f64]
 *            [--act tanh|relu|gelu] [--threads N] [--steps S]
 *            [--only hvp|grad|jvp|fwd]
 * --only times just that one (for a profiler: perf record ... --only hvp);
 * the others print 0. */
#include "common.h"

#include <autograd.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- options ---- */

enum { HVP, GRAD, JVP, FWD, KINDS };
static const char *const kind_names[KINDS] = {"hvp", "grad", "jvp", "fwd"};

typedef struct {
    bench_options b; /* the model, batch, dtype, threads, steps */
    ag_activation act;
    const char *act_name;
    int only; /* -1: all kinds; else the one kind to run */
} options;

static int parse_act(const char *text, options *o)
{
    static const struct {
        const char *name;
        ag_activation act;
    } acts[] = {
        {"tanh", AG_ACT_TANH}, {"relu", AG_ACT_RELU}, {"gelu", AG_ACT_GELU}};
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++)
        if (!strcmp(text, acts[i].name)) {
            o->act = acts[i].act;
            o->act_name = acts[i].name;
            return 0;
        }
    return -1;
}

/* hvp's own flags, --act and --only (a bench_flag_fn). */
static int parse_flag(void *ctx, const char *flag, const char *value)
{
    options *o = ctx;
    if (!strcmp(flag, "--act")) return parse_act(value, o) ? -1 : 0;
    if (strcmp(flag, "--only")) return 1;
    for (int k = 0; k < KINDS; k++)
        if (!strcmp(value, kind_names[k])) {
            o->only = k;
            return 0;
        }
    return -1;
}

static int parse(int argc, char **argv, options *o)
{
    o->only = -1;
    parse_act("tanh", o);
    return bench_parse(argc, argv, 20, &o->b, parse_flag, o);
}

/* ---- the model and the four measured steps ---- */

/* params[2l] is layer l's weight (out, in), params[2l+1] its bias; v holds
 * one direction of the same shapes. */
typedef struct {
    const options *o;
    int n; /* number of parameter tensors */
    ag_tensor *params[2 * MAX_LAYERS], *v[2 * MAX_LAYERS];
    ag_tensor *x, *y;
} problem;

/* The loss of the MLP with parameters p: ag_linear layers with the
 * activation between them, softmax cross-entropy of the logits. */
static ag_tensor *loss_of(ag_arena *a, const problem *pb, ag_tensor *const *p)
{
    ag_tensor *h = pb->x;
    for (int l = 0; l < pb->o->b.layers; l++) {
        h = ag_linear(a, h, p[2 * l], p[2 * l + 1]);
        if (l + 1 < pb->o->b.layers) h = ag_activate(a, h, pb->o->act);
    }
    return ag_softmax_cross_entropy(a, h, pb->y);
}

/* sum_i <a_i, b_i> over n tensors (plain values, no graph). */
static double dot(int n, ag_tensor *const *a, ag_tensor *const *b)
{
    double s = 0;
    for (int i = 0; i < n; i++) {
        int64_t k = ag_numel(a[i]);
        if (ag_type(a[i]) == AG_F32) {
            const float *x = ag_data(a[i]), *y = ag_data(b[i]);
            for (int64_t j = 0; j < k; j++) s += (double)x[j] * y[j];
        } else {
            const double *x = ag_data(a[i]), *y = ag_data(b[i]);
            for (int64_t j = 0; j < k; j++) s += x[j] * y[j];
        }
    }
    return s;
}

/* Hv into step; v.Hv into *vhv. */
static int hvp_step(ag_arena *step, const problem *pb, double *vhv)
{
    ag_tensor *g[2 * MAX_LAYERS], *hv[2 * MAX_LAYERS];
    ag_tensor *loss = loss_of(step, pb, pb->params);
    if (!loss ||
        ag_gradients(step, 1, &loss, NULL, pb->n, pb->params, true, g) ||
        ag_gradients(step, pb->n, g, pb->v, pb->n, pb->params, false, hv))
        return -1;
    if (vhv) *vhv = dot(pb->n, hv, pb->v);
    ag_arena_reset(step);
    return 0;
}

static int grad_step(ag_arena *step, const problem *pb)
{
    ag_tensor *g[2 * MAX_LAYERS];
    ag_tensor *loss = loss_of(step, pb, pb->params);
    if (!loss ||
        ag_gradients(step, 1, &loss, NULL, pb->n, pb->params, false, g))
        return -1;
    ag_arena_reset(step);
    return 0;
}

static int fwd_step(ag_arena *step, const problem *pb)
{
    bool was = ag_set_grad_enabled(false);
    ag_tensor *loss = loss_of(step, pb, pb->params);
    ag_set_grad_enabled(was);
    if (!loss) return -1;
    ag_arena_reset(step);
    return 0;
}

/* The loss's tangent, sum_i dloss/dparams[i] . v[i], into *tangent. */
static int jvp_step(ag_arena *step, const problem *pb, double *tangent)
{
    ag_tensor *duals[2 * MAX_LAYERS];
    bool was = ag_set_grad_enabled(false);
    for (int i = 0; i < pb->n; i++)
        duals[i] = ag_make_dual(step, pb->params[i], pb->v[i]);
    ag_tensor *t = ag_tangent(loss_of(step, pb, duals));
    ag_set_grad_enabled(was);
    if (!t) return -1;
    if (tangent) *tangent = ag_item(t);
    ag_arena_reset(step);
    return 0;
}

int main(int argc, char **argv)
{
    options o;
    if (parse(argc, argv, &o)) {
        fprintf(stderr,
                "usage: %s [--batch B] [--sizes 784,1024,1024,10] "
                "[--dtype f32|f64] [--act tanh|relu|gelu] [--threads N] "
                "[--steps S] [--only hvp|grad|jvp|fwd]\n",
                argv[0]);
        return 2;
    }
    ag_set_num_threads(o.b.threads);
    ag_arena *params = ag_arena_new(), *step = ag_arena_new();
    ag_rng rng = ag_rng_seed(1);
    ag_mlp *mlp = ag_mlp_new(
        params, o.b.layers + 1, o.b.sizes,
        &(ag_mlp_options){.dtype = o.b.dtype, .activation = o.act, .seed = 1});
    problem pb = {.o = &o, .n = 2 * o.b.layers};
    for (int l = 0; mlp && l < o.b.layers; l++) {
        pb.params[2 * l] = mlp->layers[l]->weight;
        pb.params[2 * l + 1] = mlp->layers[l]->bias;
    }
    for (int i = 0; mlp && i < pb.n; i++)
        pb.v[i] = ag_randn(params, o.b.dtype, ag_ndim(pb.params[i]),
                           ag_shape(pb.params[i]), 0, 1, &rng);
    int32_t *labels = malloc((size_t)o.b.batch * sizeof *labels);
    for (int64_t i = 0; labels && i < o.b.batch; i++)
        labels[i] =
            (int32_t)(ag_rng_next(&rng) % (uint64_t)o.b.sizes[o.b.layers]);
    pb.x = ag_rand(params, o.b.dtype, 2, (int64_t[]){o.b.batch, o.b.sizes[0]},
                   -1, 1, &rng);
    pb.y = labels
               ? ag_from_data(params, AG_I32, 1, (int64_t[]){o.b.batch}, labels)
               : NULL;
    double *times[KINDS];
    for (int k = 0; k < KINDS; k++)
        times[k] = malloc((size_t)o.b.steps * sizeof *times[k]);
    if (!mlp || !pb.v[pb.n - 1] || !pb.x || !pb.y || !times[KINDS - 1]) {
        fprintf(stderr, "hvp: setup failed: %s\n", ag_last_error());
        return 1;
    }

    double vhv = 0, tangent = 0;
    for (int warm = 0; warm < 2; warm++) /* grow the arenas, warm BLAS */
        if (hvp_step(step, &pb, &vhv) || grad_step(step, &pb) ||
            jvp_step(step, &pb, &tangent) || fwd_step(step, &pb)) {
            fprintf(stderr, "hvp: %s\n", ag_last_error());
            return 1;
        }
    long hvp_allocs = 0, jvp_allocs = 0;
    for (int s = 0; s < o.b.steps; s++) {
        int rc = 0;
        for (int k = 0; k < KINDS; k++) {
            times[k][s] = 0;
            if (o.only >= 0 && k != o.only) continue;
            long before = bench_allocations();
            double t0 = bench_now_us();
            rc |= k == HVP    ? hvp_step(step, &pb, NULL)
                  : k == GRAD ? grad_step(step, &pb)
                  : k == JVP  ? jvp_step(step, &pb, NULL)
                              : fwd_step(step, &pb);
            times[k][s] = bench_now_us() - t0;
            if (k == HVP) hvp_allocs += bench_allocations() - before;
            if (k == JVP) jvp_allocs += bench_allocations() - before;
        }
        if (rc) {
            fprintf(stderr, "hvp: %s\n", ag_last_error());
            return 1;
        }
    }
    double hvp = bench_median(times[HVP], o.b.steps),
           grad = bench_median(times[GRAD], o.b.steps),
           jvp = bench_median(times[JVP], o.b.steps),
           fwd = bench_median(times[FWD], o.b.steps);
    printf("batch=%lld layers=%d dtype=%s act=%s threads=%d steps=%d "
           "hvp_us=%.1f grad_us=%.1f jvp_us=%.1f fwd_us=%.1f hvp_grad=%.3f "
           "jvp_fwd=%.3f vhv=%.6g tangent=%.6g allocs_per_hvp=%.2f "
           "allocs_per_jvp=%.2f\n",
           (long long)o.b.batch, o.b.layers, ag_dtype_name(o.b.dtype),
           o.act_name, o.b.threads, o.b.steps, hvp, grad, jvp, fwd,
           grad > 0 ? hvp / grad : 0, fwd > 0 ? jvp / fwd : 0, vhv, tangent,
           (double)hvp_allocs / o.b.steps, (double)jvp_allocs / o.b.steps);
    free(labels);
    for (int k = 0; k < KINDS; k++) free(times[k]);
    ag_arena_free(params);
    ag_arena_free(step);
    return 0;
}
