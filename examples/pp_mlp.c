/* pp_mlp.c: pipeline parallel training of an MLP (16-32-32-32-16, tanh:
 * seven modules in a Sequential) split into one stage per process (stage r
 * holds modules [7 r / p, 7 (r + 1) / p)), each batch of 64 in 8
 * micro-batches flowing through the stages with the 1F1B schedule (or
 * GPipe's with --gpipe) (ag_pipeline, autograd/dist.h). It learns a fixed
 * smooth function of random inputs (mean squared error, Adam). Each rank
 * also trains the whole model alone, from the same weights, and at the
 * end every stage compares its layers with the same layers of that run.
 *
 * Run: mpirun -np 2 ./build/examples/pp_mlp [--steps N] [--gpipe]
 * (2 to 7 processes; as root add --allow-run-as-root). Exits 1 when the
 * loss did not fall below a quarter of its start, or the runs differ by
 * more than 1e-9. */
#include <autograd.h>
#include <autograd/dist.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { LAYERS = 7, MICRO = 8, BATCH = 64 };

static ag_tensor *mse(ag_arena *a, ag_tensor *out, ag_tensor *y, void *user)
{
    (void)user;
    return ag_mse_loss(a, out, y);
}

/* The seven modules from one seed: the same on every rank. */
static ag_module *make_model(ag_arena *a)
{
    ag_rng rng = ag_rng_seed(2);
    const int64_t sizes[5] = {16, 32, 32, 32, 16};
    ag_module *m[LAYERS];
    for (int i = 0; i < 4; i++) {
        m[2 * i] = ag_nn_linear(a, AG_F64, sizes[i], sizes[i + 1], true, &rng);
        if (i < 3) m[2 * i + 1] = ag_nn_activation(a, AG_ACT_TANH);
    }
    return ag_nn_sequential(a, LAYERS, m);
}

/* The largest difference between the parameters of modules [lo, hi) of
 * the two models. */
static double distance(ag_module *x, ag_module *y, int lo, int hi)
{
    double worst = 0;
    for (int i = lo; i < hi; i++) {
        ag_params *p = ag_module_parameters(ag_module_child_at(x, i));
        ag_params *q = ag_module_parameters(ag_module_child_at(y, i));
        for (int j = 0; j < ag_params_count(p); j++) {
            const double *u = ag_data(ag_params_tensor(p, j));
            const double *v = ag_data(ag_params_tensor(q, j));
            for (int64_t e = 0; e < ag_numel(ag_params_tensor(p, j)); e++)
                worst = fmax(worst, fabs(u[e] - v[e]));
        }
    }
    return worst;
}

int main(int argc, char **argv)
{
    long steps = 300;
    ag_pipe_schedule schedule = AG_PIPE_1F1B;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = strtol(argv[++i], NULL, 10);
        if (!strcmp(argv[i], "--gpipe")) schedule = AG_PIPE_GPIPE;
    }
    ag_dist *d = ag_dist_init(&argc, &argv, NULL);
    if (!d) return fprintf(stderr, "pp_mlp: %s\n", ag_last_error()), 1;
    int rank = ag_dist_rank(d), world = ag_dist_size(d);
    int lo = LAYERS * rank / world, hi = LAYERS * (rank + 1) / world;
    ag_arena *a = ag_arena_new(), *step = ag_arena_new();
    ag_rng rng = ag_rng_seed(1);
    ag_tensor *x = ag_randn(a, AG_F64, 2, (int64_t[]){BATCH, 16}, 0, 1, &rng);
    ag_tensor *mix = ag_randn(a, AG_F64, 2, (int64_t[]){16, 16}, 0, 0.5, &rng);
    ag_tensor *y = ag_sin(a, ag_matmul(a, x, mix));
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
        fprintf(stderr, "pp_mlp: rank %d: %s\n", rank, ag_last_error());
        ag_dist_finalize(d);
        return 1;
    }
    if (rank == 0)
        printf("pp_mlp: %d stages, %d micro-batches of %d, %s\n", world, MICRO,
               BATCH / MICRO, schedule == AG_PIPE_1F1B ? "1F1B" : "GPipe");
    double first = 0, loss = 0;
    for (long s = 0; s < steps; s++) {
        ag_tensor *ref = mse(step, ag_module_forward(whole, step, x), y, NULL);
        if (ag_pipeline_step(p, step, x, y, &loss) || ag_backward(ref) ||
            ag_optimizer_step(opt) || ag_optimizer_step(whole_opt)) {
            fprintf(stderr, "pp_mlp: rank %d: %s\n", rank, ag_last_error());
            ag_dist_finalize(d); /* after a failed stage: ends the job */
            return 1;
        }
        if (s == 0) first = loss;
        if (rank == 0 && (s % 100 == 0 || s == steps - 1))
            printf("step %4ld  loss %.6f (one process %.6f)\n", s, loss,
                   ag_item(ref));
        ag_optimizer_zero_grad(opt);
        ag_optimizer_zero_grad(whole_opt);
        ag_arena_reset(step);
    }
    double worst = distance(copy, whole, lo, hi);
    bool learned = loss < first / 4, same = worst <= 1e-9;
    printf("pp_mlp: stage %d (modules %d to %d): its weights differ from the "
           "one-process run's by at most %.3g\n",
           rank, lo, hi - 1, worst);
    fflush(stdout);
    int ok = ag_dist_check(d, learned && same ? 0 : -1) == 0;
    if (rank == 0)
        printf("pp_mlp: loss %.6f -> %.6f%s\n", first, loss,
               ok ? "" : " (did not learn, or the runs differ)");
    ag_arena_free(step);
    ag_arena_free(a);
    ag_dist_finalize(d);
    return ok ? 0 : 1;
}
