/* pp_transformer.c: pipeline parallel training of a stack of four
 * pre-LayerNorm transformer blocks (h = x + attn(ln1(x)), y = h +
 * mlp(ln2(h)), causal self-attention, GELU MLP E -> 4E -> E), one module
 * each, split into one stage per process (stage r holds blocks
 * [4 r / p, 4 (r + 1) / p)), each batch of 16 sequences in 4 micro-batches
 * flowing through the stages with the 1F1B schedule (or GPipe's with
 * --gpipe) (ag_pipeline, autograd/dist.h). It learns a next-token-like
 * regression on random sequences (at position t a fixed smooth function
 * of the token at t - 1; mean squared error, Adam). Each rank also trains
 * the whole stack alone, from the same weights, and at the end every
 * stage compares its blocks with the same blocks of that run.
 *
 * Run: mpirun -np 2 ./build/examples/pp_transformer [--steps N] [--gpipe]
 * (2 to 4 processes; as root add --allow-run-as-root). Exits 1 when the
 * loss did not fall below half its start, or the runs differ by more than
 * 1e-10. */
#include <autograd.h>
#include <autograd/dist.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { LAYERS = 4, MICRO = 4, BATCH = 16, SEQ = 8, EMBED = 16, HEADS = 4 };

/* One block: its children are ln1, attn, ln2, fc1, fc2 (in that order). */
static ag_tensor *block_forward(ag_module *m, ag_arena *step, ag_tensor *x)
{
    ag_module *c[5];
    for (int i = 0; i < 5; i++) c[i] = ag_module_child_at(m, i);
    ag_tensor *h =
        ag_add(step, x,
               ag_module_forward(c[1], step, ag_module_forward(c[0], step, x)));
    ag_tensor *f = ag_module_forward(
        c[4], step,
        ag_gelu(step, ag_module_forward(c[3], step,
                                        ag_module_forward(c[2], step, h))));
    return ag_add(step, h, f);
}

static const ag_module_type block_type = {"Block", block_forward};

/* A block with weights from rng; NULL with an error. */
static ag_module *make_block(ag_arena *a, ag_rng *rng)
{
    const int64_t shape[1] = {EMBED};
    ag_module *m = ag_module_new(a, &block_type, NULL);
    ag_module *c[5] = {ag_nn_layer_norm(a, AG_F64, 1, shape, 1e-5, true),
                       ag_nn_multihead_attention(a, AG_F64, EMBED, HEADS, true,
                                                 true, true, rng),
                       ag_nn_layer_norm(a, AG_F64, 1, shape, 1e-5, true),
                       ag_nn_linear(a, AG_F64, EMBED, 4 * EMBED, true, rng),
                       ag_nn_linear(a, AG_F64, 4 * EMBED, EMBED, true, rng)};
    static const char *const names[5] = {"ln1", "attn", "ln2", "fc1", "fc2"};
    for (int i = 0; i < 5; i++)
        if (!m || ag_module_add_child(m, names[i], c[i])) return NULL;
    return m;
}

static ag_tensor *mse(ag_arena *a, ag_tensor *out, ag_tensor *y, void *user)
{
    (void)user;
    return ag_mse_loss(a, out, y);
}

/* The four blocks from one seed: the same on every rank. */
static ag_module *make_model(ag_arena *a)
{
    ag_rng rng = ag_rng_seed(2);
    ag_module *m[LAYERS];
    for (int i = 0; i < LAYERS; i++)
        if (!(m[i] = make_block(a, &rng))) return NULL;
    return ag_nn_sequential(a, LAYERS, m);
}

/* The largest difference between the parameters of modules [lo, hi) of
 * the two models: in *key_bias the attention's packed in-projection bias
 * (whose key part has a gradient zero in exact arithmetic, rounding noise
 * that Adam divides by its eps: see tp_transformer.c), the rest returned. */
static double distance(ag_module *x, ag_module *y, int lo, int hi,
                       double *key_bias)
{
    double worst = 0;
    *key_bias = 0;
    for (int i = lo; i < hi; i++) {
        ag_params *p = ag_module_parameters(ag_module_child_at(x, i));
        ag_params *q = ag_module_parameters(ag_module_child_at(y, i));
        for (int j = 0; j < ag_params_count(p); j++) {
            const double *u = ag_data(ag_params_tensor(p, j));
            const double *v = ag_data(ag_params_tensor(q, j));
            double *into = strstr(ag_params_name(p, j), "in_proj_bias")
                               ? key_bias
                               : &worst;
            for (int64_t e = 0; e < ag_numel(ag_params_tensor(p, j)); e++)
                *into = fmax(*into, fabs(u[e] - v[e]));
        }
    }
    return worst;
}

int main(int argc, char **argv)
{
    long steps = 100;
    ag_pipe_schedule schedule = AG_PIPE_1F1B;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = strtol(argv[++i], NULL, 10);
        if (!strcmp(argv[i], "--gpipe")) schedule = AG_PIPE_GPIPE;
    }
    ag_dist *d = ag_dist_init(&argc, &argv, NULL);
    if (!d) return fprintf(stderr, "pp_transformer: %s\n", ag_last_error()), 1;
    int rank = ag_dist_rank(d), world = ag_dist_size(d);
    int lo = LAYERS * rank / world, hi = LAYERS * (rank + 1) / world;
    ag_arena *a = ag_arena_new(), *step = ag_arena_new();
    ag_rng rng = ag_rng_seed(1);
    int64_t n = BATCH, t = SEQ, e = EMBED;
    ag_tensor *x = ag_randn(a, AG_F64, 3, (int64_t[]){n, t, e}, 0, 1, &rng);
    ag_tensor *mix = ag_randn(a, AG_F64, 2, (int64_t[]){e, e}, 0, 0.5, &rng);
    ag_tensor *z = ag_sin(a, ag_matmul(a, x, mix));
    ag_tensor *y = ag_zeros(a, AG_F64, 3, (int64_t[]){n, t, e});
    if (z && y) { /* y[:, s] = z[:, s - 1], y[:, 0] = 0 */
        const double *zd = ag_data(z);
        double *yd = ag_data(y);
        for (int64_t b = 0; b < n; b++)
            memcpy(yd + (b * t + 1) * e, zd + b * t * e,
                   (size_t)((t - 1) * e) * sizeof *yd);
    }
    ag_module *whole = make_model(a), *copy = make_model(a), *stage = NULL;
    if (copy && world <= LAYERS) {
        ag_module *mine[LAYERS];
        for (int i = lo; i < hi; i++)
            mine[i - lo] = ag_module_child_at(copy, i);
        stage = ag_nn_sequential(a, hi - lo, mine);
    }
    ag_pipeline *p = ag_pipeline_new(a, d, stage, MICRO, schedule, mse, NULL);
    ag_optimizer *opt =
        p ? ag_adam_new(a, ag_module_parameters(stage), NULL) : NULL;
    ag_optimizer *whole_opt =
        whole ? ag_adam_new(a, ag_module_parameters(whole), NULL) : NULL;
    if (!opt || !whole_opt || !y) {
        fprintf(stderr, "pp_transformer: rank %d: %s\n", rank, ag_last_error());
        ag_dist_finalize(d);
        return 1;
    }
    if (rank == 0)
        printf("pp_transformer: %d stages, %d micro-batches of %d, %s\n", world,
               MICRO, BATCH / MICRO,
               schedule == AG_PIPE_1F1B ? "1F1B" : "GPipe");
    double first = 0, loss = 0;
    for (long s = 0; s < steps; s++) {
        ag_tensor *ref = mse(step, ag_module_forward(whole, step, x), y, NULL);
        if (ag_pipeline_step(p, step, x, y, &loss) || ag_backward(ref) ||
            ag_optimizer_step(opt) || ag_optimizer_step(whole_opt)) {
            fprintf(stderr, "pp_transformer: rank %d: %s\n", rank,
                    ag_last_error());
            ag_dist_finalize(d); /* after a failed stage: ends the job */
            return 1;
        }
        if (s == 0) first = loss;
        if (rank == 0 && (s % 25 == 0 || s == steps - 1))
            printf("step %4ld  loss %.6f (one process %.6f)\n", s, loss,
                   ag_item(ref));
        ag_optimizer_zero_grad(opt);
        ag_optimizer_zero_grad(whole_opt);
        ag_arena_reset(step);
    }
    double key_bias, worst = distance(copy, whole, lo, hi, &key_bias);
    bool learned = loss < first / 2, same = fmax(worst, key_bias) <= 1e-10;
    printf("pp_transformer: stage %d (blocks %d to %d): its weights differ "
           "from the "
           "one-process run's by at most %.3g (the in-projection bias by "
           "%.3g)\n",
           rank, lo, hi - 1, worst, key_bias);
    fflush(stdout);
    int ok = ag_dist_check(d, learned && same ? 0 : -1) == 0;
    if (rank == 0)
        printf("pp_transformer: loss %.6f -> %.6f%s\n", first, loss,
               ok ? "" : " (did not learn, or the runs differ)");
    ag_arena_free(step);
    ag_arena_free(a);
    ag_dist_finalize(d);
    return ok ? 0 : 1;
}
