/* autograd/sample.h: drawing the next token from a row of logits, as a
 * language model's generation does: temperature, top-k and top-p (nucleus)
 * sampling with the semantics of Hugging Face's logits warpers, greedy
 * decoding at temperature 0. Included by autograd.h; include that instead.
 */
#ifndef AUTOGRAD_SAMPLE_H
#define AUTOGRAD_SAMPLE_H

#include "../autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How a sampler turns logits z into a distribution, in this order (as
 * transformers' TemperatureLogitsWarper, TopKLogitsWarper and
 * TopPLogitsWarper):
 *   temperature T: p = softmax(z / T); T = 0 means greedy (the first
 *     largest logit, no randomness);
 *   top_k k >= 1: only the tokens whose logit is at least the k-th largest
 *     stay (ties with the k-th all stay, as torch.topk's threshold does);
 *     0 keeps every token;
 *   top_p p in (0, 1]: of the tokens left, sorted by probability
 *     (renormalised over them), only the smallest leading set whose
 *     probability reaches p stays (its sum >= p; at least one token);
 *     1 keeps every token.
 * The token is then drawn from p restricted to the tokens that stayed,
 * renormalised. */
typedef struct {
    double temperature; /* >= 0 and finite */
    int64_t top_k;      /* >= 0; 0: off */
    double top_p;       /* in (0, 1]; 1: off */
} ag_sampler_options;

/* A sampler (opaque): its options and its scratch buffers. */
typedef struct ag_sampler ag_sampler;

/* Temperature 1, no top-k, no top-p: plain sampling from softmax(z). */
AG_API ag_sampler_options ag_sampler_defaults(void);

/* A sampler for rows of `vocab` logits (the options copied), its scratch
 * buffers (a probability and an index per token) made once in arena `a`
 * (freed with it), so that drawing allocates nothing. options NULL means
 * ag_sampler_defaults(). Returns NULL and an error "ag_sampler_new: ..."
 * for a NULL arena, vocab < 1 or above INT32_MAX, a temperature negative
 * or not finite, top_k < 0, top_p outside (0, 1] or NaN, or no memory. */
AG_API ag_sampler *ag_sampler_new(ag_arena *a, int64_t vocab,
                                  const ag_sampler_options *options);

/* The options the sampler was made with (a zeroed struct for NULL). */
AG_API ag_sampler_options ag_sampler_get_options(const ag_sampler *s);

/* Draws a token id from `logits` (vocab floats; -inf masks a token out)
 * with one ag_rng_uniform(rng) (none when greedy), so the same seed gives
 * the same tokens. Returns the id in [0, vocab), or -1 and an error
 * "ag_sampler_next: ..." for a NULL argument (rng may be NULL only when
 * greedy), a logit that is NaN or +inf (its index), or every logit -inf.
 */
AG_API int32_t ag_sampler_next(ag_sampler *s, const float *logits, ag_rng *rng);

/* The same for a row of doubles ("ag_sampler_next_f64: ..."). */
AG_API int32_t ag_sampler_next_f64(ag_sampler *s, const double *logits,
                                   ag_rng *rng);

/* The distribution ag_sampler_next draws from for `logits`: probs[i] for
 * every token i (vocab doubles written by the caller's buffer; zero for
 * the tokens filtered out, summing to 1; greedy puts 1 on its token).
 * Returns the number of tokens with nonzero probability, or -1 and an
 * error "ag_sampler_probs: ..." as ag_sampler_next's (probs NULL too). */
AG_API int64_t ag_sampler_probs(ag_sampler *s, const float *logits,
                                double *probs);

#ifdef __cplusplus
}
#endif

#endif /* AUTOGRAD_SAMPLE_H */
