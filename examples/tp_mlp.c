/* tp_mlp.c: tensor parallel training of a transformer's MLP block
 * (E -> 4E -> E, GELU, with a residual: y = x + fc2(gelu(fc1(x)))) split
 * over the processes as Megatron-LM splits it: fc1 by its output features
 * (columns), fc2 by its input features (rows), each rank holding 1/p of
 * the weights and doing 1/p of the products, one sum over the ranks
 * forward and one backward (ag_tp_mlp, autograd/dist.h). It learns to map
 * random inputs to a fixed smooth function of them (mean squared error,
 * Adam). Each rank also trains the unsplit block on its own, from the
 * same weights, and at the end rank 0 prints how far the two are apart:
 * Adam is elementwise, so the parts of the split block follow the parts of
 * the unsplit one to rounding.
 *
 * Run: mpirun -np 2 ./build/examples/tp_mlp [--steps N] [--embed E]
 * (E divisible by the number of processes; as root add
 * --allow-run-as-root). Exits 1 when the loss did not fall below a quarter
 * of its start, or the two runs differ by more than 1e-9. */
#include <autograd.h>
#include <autograd/dist.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The loss of the block on (x, y): mean (x + block(x) - y)^2. */
static ag_tensor *loss_of(ag_arena *step, ag_tensor *x, ag_tensor *y,
                          ag_tensor *block)
{
    return ag_mse_loss(step, ag_add(step, x, block), y);
}

int main(int argc, char **argv)
{
    long steps = 200, embed = 16;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--steps")) steps = strtol(argv[i + 1], NULL, 10);
        if (!strcmp(argv[i], "--embed")) embed = strtol(argv[i + 1], NULL, 10);
    }
    ag_dist *d = ag_dist_init(&argc, &argv, NULL);
    if (!d) return fprintf(stderr, "tp_mlp: %s\n", ag_last_error()), 1;
    int rank = ag_dist_rank(d);
    ag_arena *a = ag_arena_new(), *step = ag_arena_new();
    /* the same data and weights on every rank, from one seed */
    ag_rng rng = ag_rng_seed(1);
    int64_t e = embed, h = 4 * embed, n = 64;
    ag_tensor *x = ag_randn(a, AG_F64, 2, (int64_t[]){n, e}, 0, 1, &rng);
    ag_tensor *mix = ag_randn(a, AG_F64, 2, (int64_t[]){e, e}, 0, 0.5, &rng);
    ag_tensor *y = ag_sin(a, ag_matmul(a, x, mix));
    ag_module *fc1 = ag_nn_linear(a, AG_F64, e, h, true, &rng);
    ag_module *fc2 = ag_nn_linear(a, AG_F64, h, e, true, &rng);
    ag_params *p1 = fc1 ? ag_module_parameters(fc1) : NULL;
    ag_params *p2 = fc2 ? ag_module_parameters(fc2) : NULL;
    ag_tp_mlp *block =
        p1 && p2 ? ag_tp_mlp_new(a, d, ag_params_find(p1, "weight"),
                                 ag_params_find(p1, "bias"), AG_ACT_GELU,
                                 ag_params_find(p2, "weight"),
                                 ag_params_find(p2, "bias"))
                 : NULL;
    ag_params *whole = ag_params_new(a);
    if (!block || !y || ag_params_extend(whole, "fc1", p1) ||
        ag_params_extend(whole, "fc2", p2)) {
        fprintf(stderr, "tp_mlp: %s\n", ag_last_error());
        ag_dist_finalize(d);
        return 1;
    }
    ag_optimizer *split_opt = ag_adam_new(a, block->params, NULL);
    ag_optimizer *whole_opt = ag_adam_new(a, whole, NULL);
    if (rank == 0)
        printf("tp_mlp: block %lld -> %lld -> %lld on %d processes, %lld of "
               "the %lld hidden features each\n",
               (long long)e, (long long)h, (long long)e, ag_dist_size(d),
               (long long)(block->fc1->hi - block->fc1->lo), (long long)h);
    double first = 0, last = 0;
    for (long s = 0; s < steps; s++) {
        ag_tensor *loss =
            loss_of(step, x, y, ag_tp_mlp_forward(step, block, x));
        ag_tensor *ref = loss_of(
            step, x, y,
            ag_module_forward(fc2, step,
                              ag_gelu(step, ag_module_forward(fc1, step, x))));
        if (!loss || !ref || ag_backward(loss) || ag_backward(ref) ||
            ag_optimizer_step(split_opt) || ag_optimizer_step(whole_opt)) {
            fprintf(stderr, "tp_mlp: rank %d: %s\n", rank, ag_last_error());
            ag_dist_finalize(d); /* after a failed collective: ends the job */
            return 1;
        }
        last = ag_item(loss);
        if (s == 0) first = last;
        if (rank == 0 && (s % 50 == 0 || s == steps - 1))
            printf("step %4ld  loss %.6f (unsplit %.6f)\n", s, last,
                   ag_item(ref));
        ag_optimizer_zero_grad(split_opt);
        ag_optimizer_zero_grad(whole_opt);
        ag_arena_reset(step);
    }
    /* this rank's part of the unsplit weights against its own */
    double worst = 0;
    const ag_tensor *parts[2] = {block->fc1->weight, block->fc2->weight};
    const ag_tensor *fulls[2] = {ag_params_find(p1, "weight"),
                                 ag_params_find(p2, "weight")};
    for (int k = 0; k < 2; k++) {
        const double *w = ag_data((ag_tensor *)fulls[k]);
        const double *q = ag_data((ag_tensor *)parts[k]);
        int64_t rows = ag_shape(parts[k])[0], cols = ag_shape(parts[k])[1];
        int64_t full_cols = ag_shape(fulls[k])[1];
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < cols; j++) {
                double want = k == 0 ? w[(block->fc1->lo + i) * full_cols + j]
                                     : w[i * full_cols + block->fc2->lo + j];
                worst = fmax(worst, fabs(q[i * cols + j] - want));
            }
    }
    bool learned = last < first / 4, same = worst <= 1e-9;
    int ok = ag_dist_check(d, learned && same ? 0 : -1) == 0;
    if (rank == 0)
        printf("tp_mlp: loss %.6f -> %.6f; the split weights differ from the "
               "unsplit run's by at most %.3g\n",
               first, last, worst);
    if (!ok && rank == 0)
        fprintf(stderr, "tp_mlp: %s\n",
                !learned ? "did not learn" : "the runs differ");
    ag_arena_free(step);
    ag_arena_free(a);
    ag_dist_finalize(d);
    return ok ? 0 : 1;
}
