/* fuzz_gpt_checkpoint.c: libFuzzer harness for the GPT's checkpoint reader
 * (examples/gpt/gpt.c). The input is the file. gpt_read_config reads its
 * config and gpt_load loads it into a tiny f32 model made once (vocab 5,
 * block 4, 1 layer, 2 heads, 4 channels, biases: make_corpus.py's
 * GPT_CONFIG).
 *
 * Checked on every input: no crash or leak; a failed call says why
 * (ag_last_error names gpt_read_config or gpt_load); a failed load leaves
 * every value of the model as it was; a config that reads is a valid one
 * (sizes >= 1, n_embd a multiple of n_head, dropout in [0, 1)); after a
 * load that succeeds, the model's state is the file's (the config read
 * back is the model's, the causal masks are lower-triangular ones) and a
 * forward pass and a cached token run. Seeds: corpus/fuzz_gpt_checkpoint
 * (tests/fuzz/make_corpus.py). */
#include "fuzz.h"
#include "gpt.h"

#include <string.h>

static ag_arena *arena, *step;
static gpt *model;
static gpt_cache *cache;
static ag_params *state;
static float *before; /* the state's values before each load */
static int64_t numel;

static void make_model(void)
{
    const gpt_config c = {.vocab_size = 5,
                          .block_size = 4,
                          .n_layer = 1,
                          .n_head = 2,
                          .n_embd = 4,
                          .dropout = 0,
                          .bias = true};
    arena = ag_arena_new();
    step = ag_arena_new();
    model = gpt_new(arena, AG_F32, &c, 1);
    FUZZ_CHECK(model, "cannot make the model");
    ag_module_set_training(gpt_module(model), false);
    cache = gpt_cache_new(arena, model, 4);
    state = ag_module_state(gpt_module(model));
    FUZZ_CHECK(cache && state, "cannot make the cache");
    numel = ag_params_numel(state);
    before = ag_arena_alloc(arena, (size_t)numel * sizeof *before);
    FUZZ_CHECK(before, "no memory");
}

/* Copies the state's values into `to`, or compares them with it. */
static bool state_is(float *to, bool copy)
{
    int64_t k = 0;
    for (int i = 0; i < ag_params_count(state); i++) {
        ag_tensor *t = ag_params_tensor(state, i);
        size_t n = (size_t)ag_numel(t) * sizeof(float);
        if (copy)
            memcpy(to + k, ag_data(t), n);
        else if (memcmp(to + k, ag_data(t), n))
            return false;
        k += ag_numel(t);
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!model) make_model();
    const char *path = fuzz_file(data, size);
    gpt_config c;
    if (gpt_read_config(path, &c) == 0) {
        FUZZ_CHECK(c.vocab_size >= 1 && c.block_size >= 1 && c.n_layer >= 1 &&
                       c.n_head >= 1 && c.n_embd >= 1 &&
                       c.n_embd % c.n_head == 0 && c.dropout >= 0 &&
                       c.dropout < 1,
                   "gpt_read_config gave a bad config");
    } else {
        fuzz_check_error("gpt_read_config");
    }
    ag_clear_error();
    state_is(before, true);
    if (gpt_load(model, path)) {
        fuzz_check_error("gpt_load");
        FUZZ_CHECK(state_is(before, false), "a failed load changed the model");
        return 0;
    }
    fuzz_trace("loaded");
    FUZZ_CHECK(gpt_read_config(path, &c) == 0 && c.vocab_size == 5 &&
                   c.block_size == 4 && c.n_layer == 1 && c.n_head == 2 &&
                   c.n_embd == 4 && c.bias,
               "a load from a file of another config");
    ag_tensor *mask = ag_params_find(state, "transformer.h.0.attn.bias");
    for (int r = 0; r < 4; r++)
        for (int s = 0; s < 4; s++)
            FUZZ_CHECK(((float *)ag_data(mask))[r * 4 + s] == (s <= r),
                       "mask[%d][%d] loaded wrong", r, s);
    ag_tensor *ids = ag_zeros(step, AG_I32, 2, (int64_t[]){1, 4});
    FUZZ_CHECK(gpt_forward(model, step, ids), "forward after a load");
    gpt_cache_reset(cache);
    FUZZ_CHECK(gpt_cache_push(cache, 1), "a cached token after a load");
    ag_arena_reset(step);
    return 0;
}
