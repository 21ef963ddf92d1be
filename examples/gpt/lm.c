/* lm.c: continuation log-probabilities, the DPO loss and sampling through
 * the KV cache (lm.h). */
#include "lm.h"

#include <stdlib.h>

ag_tensor *lm_logprob(gpt *m, ag_arena *step, const int32_t *ids, int64_t n,
                      int64_t from)
{
    static const char fn[] = "lm_logprob";
    const gpt_config *c = gpt_get_config(m);
    if (!c || !step || !ids) {
        ag_set_error(fn, "NULL argument");
        return NULL;
    }
    if (n < 2 || n > c->block_size + 1 || from < 1 || from >= n) {
        ag_set_error(fn,
                     "%lld ids, continuation from %lld: need 2 <= n <= "
                     "block_size + 1 = %lld and 1 <= from < n",
                     (long long)n, (long long)from,
                     (long long)(c->block_size + 1));
        return NULL;
    }
    int64_t t = n - 1, shape[2] = {1, n - 1};
    ag_tensor *x = ag_from_data(step, AG_I32, 2, shape, ids);
    ag_tensor *y = ag_zeros(step, AG_I32, 2, shape);
    if (!x || !y) return NULL;
    int32_t *target = ag_data(y);
    /* position i predicts ids[i + 1]; only the continuation counts */
    for (int64_t i = 0; i < t; i++) target[i] = i + 1 >= from ? ids[i + 1] : -1;
    ag_tensor *mean = gpt_loss(m, step, x, y);
    /* sum log p = -(mean cross-entropy) * count */
    return mean ? ag_scale(step, mean, -(double)(n - from)) : NULL;
}

ag_tensor *lm_dpo_loss(ag_arena *step, ag_tensor *pc, ag_tensor *pr, double rc,
                       double rr, double beta)
{
    if (!step || !pc || !pr) {
        if (!ag_last_error()) ag_set_error("lm_dpo_loss", "NULL argument");
        return NULL;
    }
    /* margin = beta * ((pc - pr) - (rc - rr)); loss = softplus(-margin) */
    ag_tensor *offset = ag_full(step, ag_type(pc), 0, NULL, -(rc - rr));
    ag_tensor *margin =
        ag_scale(step, ag_add(step, ag_sub(step, pc, pr), offset), beta);
    return ag_softplus(step, ag_neg(step, margin));
}

int64_t lm_sample(gpt_cache *cache, ag_sampler *s, ag_rng *rng,
                  const int32_t *prompt, int64_t np, int64_t max_new,
                  int32_t stop, bool within_window, int32_t *out,
                  lm_token_fn on_token, void *user)
{
    gpt_cache_reset(cache);
    const float *logits = gpt_cache_feed(cache, prompt, np);
    if (!logits) return -1;
    int64_t n = 0;
    while (n < max_new) {
        int32_t id = ag_sampler_next(s, logits, rng);
        if (id < 0) return -1;
        out[n++] = id;
        if (on_token) on_token(id, user);
        if (id == stop) break;
        if (within_window && gpt_cache_len(cache) == gpt_cache_capacity(cache))
            break;
        if (n < max_new && !(logits = gpt_cache_push(cache, id))) return -1;
    }
    return n;
}
