/* custom_module.c: a module written by the user in C, the way one would
 * subclass torch.nn.Module: a pre-norm residual block
 *     y = x + W2 GELU(W1 LayerNorm(x) + b1) + b2
 * whose state lives in a struct of its own (allocated in the model's arena
 * with ag_arena_alloc) and whose members are a LayerNorm and two Linear
 * sub-modules. Two blocks between an input and an output Linear learn to
 * tell the points of two noisy concentric rings apart; the model's state is
 * saved with PyTorch's state_dict names (printed), loaded into a second
 * model built from other random weights, and both must then give the same
 * outputs. The same checkpoint loads into
 *     nn.Sequential(nn.Linear(2, 32), Block(32), Block(32), nn.Linear(32, 2))
 * with Block having attributes norm, fc1 and fc2.
 *
 * Run: ./build/examples/custom_module [--steps N] [--save FILE]
 *          [--curve FILE]
 * (default 300 steps, custom_module.safetensors, and the loss of each step
 * in custom_module_curve.csv and .svg). Exits non-zero if the accuracy on
 * held-out points is below 95% or the reload differs. */
#include "plot.h"
#include <autograd.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WIDTH 32
#define POINTS 512

/* ---- the user's module ---- */

typedef struct {
    ag_module *norm, *fc1, *fc2; /* the sub-modules, also held by the module */
} residual_block;

static ag_tensor *block_forward(ag_module *m, ag_arena *step, ag_tensor *x)
{
    residual_block *b = ag_module_self(m);
    ag_tensor *h = ag_module_forward(b->norm, step, x);
    h = ag_gelu(step, ag_module_forward(b->fc1, step, h));
    return ag_add(step, x, ag_module_forward(b->fc2, step, h));
}

static const ag_module_type block_type = {"Block", block_forward};

/* A block of width d in arena a: its struct, then its members by name. */
static ag_module *block_new(ag_arena *a, int64_t d, ag_rng *rng)
{
    residual_block *b = ag_arena_alloc(a, sizeof *b);
    if (!b) return NULL;
    b->norm = ag_nn_layer_norm(a, AG_F32, 1, &d, 1e-5, true);
    b->fc1 = ag_nn_linear(a, AG_F32, d, d, true, rng);
    b->fc2 = ag_nn_linear(a, AG_F32, d, d, true, rng);
    ag_module *m = ag_module_new(a, &block_type, b);
    if (!m || ag_module_add_child(m, "norm", b->norm) ||
        ag_module_add_child(m, "fc1", b->fc1) ||
        ag_module_add_child(m, "fc2", b->fc2))
        return NULL;
    return m;
}

/* The model: Linear(2, WIDTH), two blocks, Linear(WIDTH, 2). */
static ag_module *model_new(ag_arena *a, uint64_t seed)
{
    ag_rng rng = ag_rng_seed(seed);
    ag_module *parts[4] = {ag_nn_linear(a, AG_F32, 2, WIDTH, true, &rng),
                           block_new(a, WIDTH, &rng), block_new(a, WIDTH, &rng),
                           ag_nn_linear(a, AG_F32, WIDTH, 2, true, &rng)};
    return ag_nn_sequential(a, 4, parts);
}

/* ---- data: two rings, radius 0.5 (class 0) and 1 (class 1) ---- */

static void make_rings(uint64_t seed, float *xy, int32_t *label)
{
    ag_rng rng = ag_rng_seed(seed);
    for (int i = 0; i < POINTS; i++) {
        label[i] = i % 2;
        double r = (label[i] ? 1.0 : 0.5) + 0.1 * ag_rng_normal(&rng);
        double t = 2 * 3.14159265358979 * ag_rng_uniform(&rng);
        xy[2 * i] = (float)(r * cos(t));
        xy[2 * i + 1] = (float)(r * sin(t));
    }
}

static int fail(const char *what)
{
    fprintf(stderr, "custom_module: %s: %s\n", what, ag_last_error());
    return 1;
}

/* The model's logits for the points, without recording. */
static ag_tensor *logits(ag_arena *a, ag_module *m, const float *xy)
{
    bool was = ag_set_grad_enabled(false);
    ag_tensor *x = ag_from_data(a, AG_F32, 2, (int64_t[]){POINTS, 2}, xy);
    ag_tensor *y = ag_module_forward(m, a, x);
    ag_set_grad_enabled(was);
    return y;
}

int main(int argc, char **argv)
{
    long steps = 300;
    const char *save = "custom_module.safetensors";
    const char *curve_path = "custom_module_curve.csv";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--steps"))
            steps = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--save"))
            save = argv[i + 1];
        else if (!strcmp(argv[i], "--curve"))
            curve_path = argv[i + 1];
    }
    ag_arena *model_arena = ag_arena_new(), *step = ag_arena_new();
    ag_module *model = model_new(model_arena, 1);
    if (!model) return fail("building the model");
    ag_params *state = ag_module_state(model);
    printf("state_dict of the model:");
    for (int i = 0; i < ag_params_count(state); i++)
        printf("%s %s", i % 4 ? "," : "\n ", ag_params_name(state, i));
    printf("\n");

    float xy[2 * POINTS], test_xy[2 * POINTS];
    int32_t label[POINTS], test_label[POINTS];
    make_rings(2, xy, label);
    make_rings(3, test_xy, test_label);
    ag_adam_options o = ag_adam_defaults();
    o.lr = 3e-3;
    ag_optimizer *opt =
        ag_adam_new(model_arena, ag_module_parameters(model), &o);
    if (!opt) return fail("making the optimizer");
    plot_curve curve;
    plot_curve_open(&curve, curve_path, "custom_module: two rings", "step",
                    "loss");
    for (long s = 0; s < steps; s++) {
        ag_tensor *x =
            ag_from_data(step, AG_F32, 2, (int64_t[]){POINTS, 2}, xy);
        ag_tensor *t =
            ag_from_data(step, AG_I32, 1, (int64_t[]){POINTS}, label);
        ag_tensor *loss =
            ag_cross_entropy(step, ag_module_forward(model, step, x), t, NULL);
        if (!loss || ag_backward(loss)) return fail("training");
        double value = ag_item(loss);
        if (s % 50 == 0 || s == steps - 1)
            printf("step %4ld  loss %.5f\n", s, value);
        plot_curve_add(&curve, (double)s, &value);
        ag_optimizer_step(opt);
        ag_optimizer_clear_grad(opt);
        ag_arena_reset(step);
    }

    plot_curve_close(&curve);
    ag_tensor *predicted = ag_argmax(step, logits(step, model, test_xy), 1);
    if (!predicted) return fail("evaluating");
    int correct = 0;
    for (int i = 0; i < POINTS; i++)
        correct += ((int32_t *)ag_data(predicted))[i] == test_label[i];
    double accuracy = (double)correct / POINTS;
    printf("held-out accuracy %.2f%%\n", 100 * accuracy);

    /* save, load into a model with other weights, compare */
    if (ag_save_safetensors(save, state, NULL)) return fail("saving");
    ag_arena *other_arena = ag_arena_new();
    ag_module *other = model_new(other_arena, 99);
    if (!other || ag_load_safetensors(save, ag_module_state(other)))
        return fail("loading");
    ag_tensor *y1 = logits(step, model, test_xy),
              *y2 = logits(step, other, test_xy);
    if (!y1 || !y2) return fail("comparing");
    bool same =
        !memcmp(ag_data(y1), ag_data(y2), (size_t)ag_numel(y1) * sizeof(float));
    printf("saved to %s; reloaded into a fresh model: %s outputs\n", save,
           same ? "the same" : "DIFFERENT");
    ag_arena_free(other_arena);
    ag_arena_free(step);
    ag_arena_free(model_arena);
    if (accuracy < 0.95) {
        fprintf(stderr, "custom_module: the model did not learn\n");
        return 1;
    }
    return same ? 0 : 1;
}
