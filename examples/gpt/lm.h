/* lm.h: what the language-model programs share beyond the model (gpt.h):
 * the log-probability of a continuation, the DPO loss, and sampling a
 * continuation through the KV cache. */
#ifndef EXAMPLES_GPT_LM_H
#define EXAMPLES_GPT_LM_H

#include "gpt.h"

#include <autograd.h>

/* log p(ids[from..n) | ids[0..from)) = sum over t in [from, n) of
 * log softmax(logits[t - 1])[ids[t]], for one sequence (batch 1) of
 * 2 <= n <= block_size + 1 ids and 1 <= from < n: a scalar in arena step,
 * recorded for ag_backward when grad mode is on. It is minus gpt_loss of
 * ids[0..n-1) against ids[1..n) (the targets before `from` ignored) times
 * the number of targets. NULL and an error "lm_logprob: ..." for bad
 * arguments or the model's errors. */
ag_tensor *lm_logprob(gpt *m, ag_arena *step, const int32_t *ids, int64_t n,
                      int64_t from);

/* Direct Preference Optimisation (Rafailov et al., 2023) for one pair:
 *   loss = -log sigmoid(beta * ((pc - rc) - (pr - rr)))
 *        = softplus(-beta * ((pc - pr) - (rc - rr)))
 * with pc, pr the policy's log-probabilities of the chosen and the
 * rejected continuation (scalars, differentiable) and rc, rr the frozen
 * reference model's (numbers). d loss / d pc = -beta * sigmoid(-margin),
 * d loss / d pr = +beta * sigmoid(-margin), margin = beta * (...). A scalar
 * in arena step; NULL (and the error) for NULL inputs. */
ag_tensor *lm_dpo_loss(ag_arena *step, ag_tensor *pc, ag_tensor *pr, double rc,
                       double rr, double beta);

/* Called with each token as it is sampled (for streaming); may be NULL. */
typedef void (*lm_token_fn)(int32_t id, void *user);

/* Samples a continuation of prompt[0..np) (np >= 1) into out (at most
 * max_new ids): the cache is reset and fed the prompt, then each token is
 * drawn by the sampler and pushed (gpt_cache_push: past the cache's
 * capacity the oldest tokens leave), until max_new tokens or `stop` (kept
 * as the last id of out; stop < 0: none). With `within_window`, generation
 * also ends when the cache is full, so that prompt and continuation fit
 * one forward pass. Returns the number of ids written, or -1 and the
 * error of the cache or the sampler. */
int64_t lm_sample(gpt_cache *cache, ag_sampler *s, ag_rng *rng,
                  const int32_t *prompt, int64_t np, int64_t max_new,
                  int32_t stop, bool within_window, int32_t *out,
                  lm_token_fn on_token, void *user);

#endif /* EXAMPLES_GPT_LM_H */
