/* tp_transformer.c: tensor parallel training of a pre-LayerNorm
 * transformer block, h = x + attn(ln1(x)), y = h + mlp(ln2(h)), split over
 * the processes as Megatron-LM splits it: causal self-attention with its
 * heads split across the ranks (ag_tp_attention: each rank its heads'
 * q, k, v projections and the matching columns of the output projection),
 * the GELU MLP (E -> 4E -> E) split by columns then rows (ag_tp_mlp), the
 * layer norms replicated; one sum over the ranks per sub-block forward and
 * one backward. It learns a next-token-like regression on random
 * sequences: at position t the target is a fixed smooth function of the
 * token at t - 1, which only the causal attention can bring forward (mean
 * squared error, Adam). Each rank also trains the unsplit block
 * (ag_nn_multihead_attention, two Linears) on its own, from the same
 * weights, and at the end rank 0 prints how far the two are apart: every
 * parameter of the split block against its part of the unsplit one.
 *
 * Run: mpirun -np 2 ./build/examples/tp_transformer [--steps N]
 * [--embed E] [--heads H] [--seq T] (H divisible by the number of
 * processes, E by H; as root add --allow-run-as-root). Exits 1 when the
 * loss did not fall below half its start, or the two runs differ by more
 * than 1e-10. */
#include <autograd.h>
#include <autograd/dist.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The unsplit block on x (N,T,E). */
static ag_tensor *whole_block(ag_arena *step, ag_module *ln1, ag_module *attn,
                              ag_module *ln2, ag_module *fc1, ag_module *fc2,
                              ag_tensor *x)
{
    ag_tensor *h =
        ag_add(step, x,
               ag_module_forward(attn, step, ag_module_forward(ln1, step, x)));
    ag_tensor *m = ag_module_forward(
        fc2, step,
        ag_gelu(step,
                ag_module_forward(fc1, step, ag_module_forward(ln2, step, h))));
    return ag_add(step, h, m);
}

/* The split block on x: the same, its attention and MLP split. */
static ag_tensor *split_block(ag_arena *step, ag_module *ln1,
                              ag_tp_attention *attn, ag_module *ln2,
                              ag_tp_mlp *mlp, ag_tensor *x)
{
    ag_tensor *h = ag_add(
        step, x,
        ag_tp_attention_forward(step, attn, ag_module_forward(ln1, step, x)));
    return ag_add(
        step, h, ag_tp_mlp_forward(step, mlp, ag_module_forward(ln2, step, h)));
}

/* The largest |part - full[row0 + i, col0 + j]| over the part (rows, cols)
 * of the full (., full_cols) matrix; a vector is one row. */
static double part_diff(const ag_tensor *part, const ag_tensor *full,
                        int64_t row0, int64_t col0)
{
    int vec = ag_ndim(part) == 1;
    int64_t rows = vec ? 1 : ag_shape(part)[0];
    int64_t cols = vec ? ag_shape(part)[0] : ag_shape(part)[1];
    int64_t full_cols = vec ? ag_shape(full)[0] : ag_shape(full)[1];
    const double *q = ag_data((ag_tensor *)part);
    const double *w = ag_data((ag_tensor *)full);
    double worst = 0;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            worst = fmax(worst, fabs(q[i * cols + j] -
                                     w[(row0 + i) * full_cols + col0 + j]));
    return worst;
}

int main(int argc, char **argv)
{
    long steps = 100, embed = 16, heads = 4, seq = 8;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--steps")) steps = strtol(argv[i + 1], NULL, 10);
        if (!strcmp(argv[i], "--embed")) embed = strtol(argv[i + 1], NULL, 10);
        if (!strcmp(argv[i], "--heads")) heads = strtol(argv[i + 1], NULL, 10);
        if (!strcmp(argv[i], "--seq")) seq = strtol(argv[i + 1], NULL, 10);
    }
    ag_dist *d = ag_dist_init(&argc, &argv, NULL);
    if (!d) return fprintf(stderr, "tp_transformer: %s\n", ag_last_error()), 1;
    int rank = ag_dist_rank(d);
    if (steps < 1 || embed < 1 || heads < 1 || seq < 2) {
        if (rank == 0)
            fprintf(stderr,
                    "tp_transformer: needs --steps >= 1, --embed >= 1, "
                    "--heads >= 1, --seq >= 2 (got %ld, %ld, %ld, %ld)\n",
                    steps, embed, heads, seq);
        ag_dist_finalize(d);
        return 1;
    }
    ag_arena *a = ag_arena_new(), *step = ag_arena_new();
    /* the same data and weights on every rank, from one seed */
    ag_rng rng = ag_rng_seed(1);
    int64_t n = 8, t = seq, e = embed, hid = 4 * embed;
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
    const int64_t shape[1] = {e};
    ag_module *ln1 = ag_nn_layer_norm(a, AG_F64, 1, shape, 1e-5, true);
    ag_module *ln2 = ag_nn_layer_norm(a, AG_F64, 1, shape, 1e-5, true);
    ag_module *attn =
        ag_nn_multihead_attention(a, AG_F64, e, heads, true, true, true, &rng);
    ag_module *fc1 = ag_nn_linear(a, AG_F64, e, hid, true, &rng);
    ag_module *fc2 = ag_nn_linear(a, AG_F64, hid, e, true, &rng);
    /* the split block's layer norms: replicated, the same start */
    ag_module *sln1 = ag_nn_layer_norm(a, AG_F64, 1, shape, 1e-5, true);
    ag_module *sln2 = ag_nn_layer_norm(a, AG_F64, 1, shape, 1e-5, true);
    ag_params *whole = ag_params_new(a);
    ag_params *pa = attn ? ag_module_parameters(attn) : NULL;
    ag_params *p1 = fc1 ? ag_module_parameters(fc1) : NULL;
    ag_params *p2 = fc2 ? ag_module_parameters(fc2) : NULL;
    ag_params *pl1 = ln1 ? ag_module_parameters(ln1) : NULL;
    ag_params *pl2 = ln2 ? ag_module_parameters(ln2) : NULL;
    ag_params *sl1 = sln1 ? ag_module_parameters(sln1) : NULL;
    ag_params *sl2 = sln2 ? ag_module_parameters(sln2) : NULL;
    if (!y || !z || !whole || !pa || !p1 || !p2 || !pl1 || !pl2 || !sl1 ||
        !sl2 || ag_params_extend(whole, "ln1", pl1) ||
        ag_params_extend(whole, "attn", pa) ||
        ag_params_extend(whole, "ln2", pl2) ||
        ag_params_extend(whole, "fc1", p1) ||
        ag_params_extend(whole, "fc2", p2)) {
        /* the same on every rank: nothing collective has run */
        fprintf(stderr, "tp_transformer: %s\n", ag_last_error());
        ag_dist_finalize(d);
        return 1;
    }
    /* collective; on bad arguments (heads the ranks do not divide, ...)
     * every rank gets the library's error */
    ag_tp_attention *sattn =
        ag_tp_attention_new(a, d, ag_params_find(pa, "in_proj_weight"),
                            ag_params_find(pa, "in_proj_bias"),
                            ag_params_find(pa, "out_proj.weight"),
                            ag_params_find(pa, "out_proj.bias"), heads, true);
    ag_tp_mlp *smlp =
        sattn ? ag_tp_mlp_new(a, d, ag_params_find(p1, "weight"),
                              ag_params_find(p1, "bias"), AG_ACT_GELU,
                              ag_params_find(p2, "weight"),
                              ag_params_find(p2, "bias"))
              : NULL;
    ag_params *split = ag_params_new(a);
    if (!sattn || !smlp || !split || ag_params_extend(split, "ln1", sl1) ||
        ag_params_extend(split, "attn", sattn->params) ||
        ag_params_extend(split, "ln2", sl2) ||
        ag_params_extend(split, "mlp", smlp->params)) {
        if (rank == 0) fprintf(stderr, "tp_transformer: %s\n", ag_last_error());
        ag_dist_finalize(d);
        return 1;
    }
    ag_optimizer *split_opt = ag_adam_new(a, split, NULL);
    ag_optimizer *whole_opt = ag_adam_new(a, whole, NULL);
    if (rank == 0)
        printf("tp_transformer: block E %lld, %ld heads, MLP %lld on %d "
               "processes, %lld heads and %lld of the hidden features each\n",
               (long long)e, heads, (long long)hid, ag_dist_size(d),
               (long long)sattn->local_heads,
               (long long)(smlp->fc1->hi - smlp->fc1->lo));
    double first = 0, last = 0;
    for (long s = 0; s < steps; s++) {
        ag_tensor *loss =
            ag_mse_loss(step, split_block(step, sln1, sattn, sln2, smlp, x), y);
        ag_tensor *ref = ag_mse_loss(
            step, whole_block(step, ln1, attn, ln2, fc1, fc2, x), y);
        if (!loss || !ref || ag_backward(loss) || ag_backward(ref) ||
            ag_optimizer_step(split_opt) || ag_optimizer_step(whole_opt)) {
            fprintf(stderr, "tp_transformer: rank %d: %s\n", rank,
                    ag_last_error());
            ag_dist_finalize(d); /* after a failed collective: ends the job */
            return 1;
        }
        last = ag_item(loss);
        if (s == 0) first = last;
        if (rank == 0 && (s % 25 == 0 || s == steps - 1))
            printf("step %4ld  loss %.6f (unsplit %.6f)\n", s, last,
                   ag_item(ref));
        ag_optimizer_zero_grad(split_opt);
        ag_optimizer_zero_grad(whole_opt);
        ag_arena_reset(step);
    }
    /* every parameter of this rank against its part of the unsplit ones */
    int64_t lo = sattn->out->lo; /* this rank's heads' features */
    double worst = 0;
    static const char *const ln_names[2] = {"weight", "bias"};
    for (int k = 0; k < 2; k++) {
        worst = fmax(worst, part_diff(ag_params_find(sl1, ln_names[k]),
                                      ag_params_find(pl1, ln_names[k]), 0, 0));
        worst = fmax(worst, part_diff(ag_params_find(sl2, ln_names[k]),
                                      ag_params_find(pl2, ln_names[k]), 0, 0));
    }
    const ag_tensor *in_w = ag_params_find(pa, "in_proj_weight");
    const ag_tensor *in_b = ag_params_find(pa, "in_proj_bias");
    /* the key bias apart: its gradient is zero in exact arithmetic (the
     * softmax over s does not change when every score gains q_t . b_k),
     * so it holds rounding noise, which Adam scales up to ~lr 1e-17 / eps */
    double key_bias = 0;
    for (int k = 0; k < 3; k++) {
        worst = fmax(worst, part_diff(sattn->proj[k], in_w, k * e + lo, 0));
        double b = part_diff(sattn->proj_bias[k], in_b, 0, k * e + lo);
        if (k == 1)
            key_bias = b;
        else
            worst = fmax(worst, b);
    }
    worst =
        fmax(worst, part_diff(sattn->out->weight,
                              ag_params_find(pa, "out_proj.weight"), 0, lo));
    worst = fmax(worst, part_diff(sattn->out->bias,
                                  ag_params_find(pa, "out_proj.bias"), 0, 0));
    worst =
        fmax(worst, part_diff(smlp->fc1->weight, ag_params_find(p1, "weight"),
                              smlp->fc1->lo, 0));
    worst = fmax(worst, part_diff(smlp->fc1->bias, ag_params_find(p1, "bias"),
                                  0, smlp->fc1->lo));
    worst =
        fmax(worst, part_diff(smlp->fc2->weight, ag_params_find(p2, "weight"),
                              0, smlp->fc2->lo));
    worst = fmax(worst,
                 part_diff(smlp->fc2->bias, ag_params_find(p2, "bias"), 0, 0));
    bool learned = last < first / 2, same = fmax(worst, key_bias) <= 1e-10;
    int ok = ag_dist_check(d, learned && same ? 0 : -1) == 0;
    if (rank == 0)
        printf("tp_transformer: loss %.6f -> %.6f; the split weights differ "
               "from the unsplit run's by at most %.3g (the key bias, whose "
               "gradient is rounding noise, by %.3g)\n",
               first, last, worst, key_bias);
    if (!ok && rank == 0)
        fprintf(stderr, "tp_transformer: %s\n",
                !learned ? "did not learn" : "the runs differ");
    ag_arena_free(step);
    ag_arena_free(a);
    ag_dist_finalize(d);
    return ok ? 0 : 1;
}
