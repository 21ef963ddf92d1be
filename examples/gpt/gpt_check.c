/* gpt_check.c: writes a checkpoint for examples/gpt/torch_check.py, which
 * loads it into nanoGPT's model in PyTorch: the GPT of gpt.h in a small
 * configuration (vocab 67, block 16, 2 layers, 2 heads, 32 channels),
 * drawn from a seed and trained three AdamW steps (lr 1e-2) on a fixed
 * batch (so that no LayerNorm weight is one nor bias zero), saved with
 * gpt_save; prints the loss of that batch after the steps, in eval mode,
 * as "loss=<value>".
 *
 * The batch (2, 16): ids[b][t] = (7 b + 3 t + 1) % 67, targets[b][t] =
 * (5 b + 11 t + 2) % 67, and targets[1][15] = -1 (ignored).
 *
 * Usage: gpt_check FILE [f32|f64] [bias|nobias] */
#include "gpt.h"
#include <autograd.h>

#include <stdio.h>
#include <string.h>

static int fail(void)
{
    fprintf(stderr, "gpt_check: %s\n", ag_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: gpt_check FILE [f32|f64] [bias|nobias]\n");
        return 2;
    }
    const ag_dtype dt = argc > 2 && !strcmp(argv[2], "f64") ? AG_F64 : AG_F32;
    const gpt_config c = {.vocab_size = 67,
                          .block_size = 16,
                          .n_layer = 2,
                          .n_head = 2,
                          .n_embd = 32,
                          .dropout = 0.1,
                          .bias = !(argc > 3 && !strcmp(argv[3], "nobias"))};
    ag_arena *a = ag_arena_new(), *step = ag_arena_new();
    gpt *m = gpt_new(a, dt, &c, 7);
    if (!m) return fail();
    int32_t ids[2 * 16], targets[2 * 16];
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < 16; t++) {
            ids[b * 16 + t] = (7 * b + 3 * t + 1) % 67;
            targets[b * 16 + t] = (5 * b + 11 * t + 2) % 67;
        }
    targets[31] = -1;
    const int64_t shape[2] = {2, 16};
    ag_tensor *x = ag_from_data(a, AG_I32, 2, shape, ids),
              *y = ag_from_data(a, AG_I32, 2, shape, targets);
    ag_adam_options o = ag_adamw_defaults();
    o.lr = 1e-2;
    ag_optimizer *opt =
        ag_adamw_new(a, ag_module_parameters(gpt_module(m)), &o);
    if (!x || !y || !opt) return fail();
    for (int s = 0; s < 3; s++) {
        ag_tensor *loss = gpt_loss(m, step, x, y);
        if (!loss || ag_backward(loss) || ag_optimizer_step(opt)) return fail();
        ag_optimizer_zero_grad(opt);
        ag_arena_reset(step);
    }
    ag_module_set_training(gpt_module(m), false);
    ag_tensor *loss = gpt_loss(m, step, x, y);
    if (!loss || gpt_save(m, argv[1])) return fail();
    printf("loss=%.17g\n", ag_item(loss));
    ag_arena_free(step);
    ag_arena_free(a);
    return 0;
}
