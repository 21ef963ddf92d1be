/* sample.c: the next token from a row of logits (autograd/sample.h):
 * temperature, top-k and top-p (nucleus) filtering as transformers' logits
 * warpers apply them, then one uniform draw over what is left; greedy at
 * temperature 0. Every buffer is the sampler's, made once in its arena. */
#include "internal.h"

#include <autograd.h>

#include <math.h>
#include <stdlib.h>

/* A candidate token: its logit over the temperature and its id. */
typedef struct {
    double z;
    int32_t id;
} candidate;

struct ag_sampler {
    ag_sampler_options options;
    int64_t vocab;
    candidate *cand; /* the tokens still in the running, in draw order */
    double *weight;  /* exp(z - z_max) of cand[i] */
    int64_t kept;    /* how many of cand stay */
    double total;    /* the sum of weight[0..kept) */
};

ag_sampler_options ag_sampler_defaults(void)
{
    ag_sampler_options o = {.temperature = 1.0, .top_k = 0, .top_p = 1.0};
    return o;
}

ag_sampler *ag_sampler_new(ag_arena *a, int64_t vocab,
                           const ag_sampler_options *options)
{
    static const char fn[] = "ag_sampler_new";
    ag_sampler_options o = options ? *options : ag_sampler_defaults();
    if (!a) {
        ag_set_error(fn, "NULL arena");
        return NULL;
    }
    if (vocab < 1 || vocab > INT32_MAX) {
        ag_set_error(fn, "vocab %lld outside [1, %d]", (long long)vocab,
                     INT32_MAX);
        return NULL;
    }
    if (!(o.temperature >= 0) || !isfinite(o.temperature)) {
        ag_set_error(fn, "temperature %g is not a finite number >= 0",
                     o.temperature);
        return NULL;
    }
    if (o.top_k < 0) {
        ag_set_error(fn, "top_k %lld < 0 (0 turns it off)", (long long)o.top_k);
        return NULL;
    }
    if (!(o.top_p > 0 && o.top_p <= 1)) {
        ag_set_error(fn, "top_p %g outside (0, 1] (1 turns it off)", o.top_p);
        return NULL;
    }
    ag_sampler *s = ag__arena_alloc(a, sizeof *s, _Alignof(ag_sampler));
    candidate *cand =
        ag__arena_alloc(a, (size_t)vocab * sizeof *cand, _Alignof(candidate));
    double *weight =
        ag__arena_alloc(a, (size_t)vocab * sizeof *weight, _Alignof(double));
    if (!s || !cand || !weight) {
        ag_set_error(fn, "out of memory for a vocabulary of %lld",
                     (long long)vocab);
        return NULL;
    }
    *s = (ag_sampler){
        .options = o, .vocab = vocab, .cand = cand, .weight = weight};
    return s;
}

ag_sampler_options ag_sampler_get_options(const ag_sampler *s)
{
    ag_sampler_options none = {0};
    return s ? s->options : none;
}

/* Larger logit first; among equal logits the smaller id first, so that the
 * order (and the draw) does not depend on qsort's. */
static int by_logit_desc(const void *pa, const void *pb)
{
    const candidate *a = pa, *b = pb;
    if (a->z != b->z) return a->z > b->z ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

/* Fills s->cand[0..kept) and s->weight with the tokens that stay and their
 * unnormalised probabilities, from logits read as float (f) or double
 * (d). Greedy leaves the one argmax. Returns 0, or -1 and an error. */
static int filter(ag_sampler *s, const char *fn, const float *f,
                  const double *d)
{
    const int64_t v = s->vocab;
    const ag_sampler_options *o = &s->options;
    int64_t finite = 0, argmax = -1;
    double zmax = -INFINITY;
    for (int64_t i = 0; i < v; i++) {
        double z = f ? (double)f[i] : d[i];
        if (isnan(z) || z == INFINITY) {
            ag_set_error(fn, "logit %lld is %g", (long long)i, z);
            return -1;
        }
        if (z == -INFINITY) continue;
        if (z > zmax) zmax = z, argmax = i;
        /* z / T: the temperature's scaling (greedy keeps raw logits). */
        s->cand[finite++] = (candidate){
            .z = o->temperature > 0 ? z / o->temperature : z, .id = (int32_t)i};
    }
    if (finite == 0) {
        ag_set_error(fn, "every one of the %lld logits is -inf", (long long)v);
        return -1;
    }
    if (o->temperature == 0) {
        s->cand[0] = (candidate){.z = zmax, .id = (int32_t)argmax};
        s->weight[0] = 1, s->kept = 1, s->total = 1;
        return 0;
    }
    int64_t kept = finite;
    bool sorted = false;
    if ((o->top_k > 0 && o->top_k < finite) || o->top_p < 1) {
        qsort(s->cand, (size_t)finite, sizeof *s->cand, by_logit_desc);
        sorted = true;
    }
    if (o->top_k > 0 && o->top_k < finite) {
        /* Top-k: keep z >= the k-th largest (its ties too). */
        double kth = s->cand[o->top_k - 1].z;
        kept = o->top_k;
        while (kept < finite && s->cand[kept].z >= kth) kept++;
    }
    /* p_i = exp(z_i - z_max) / sum: softmax(z / T) over the kept tokens. */
    double top = sorted ? s->cand[0].z : zmax / o->temperature, total = 0;
    for (int64_t i = 0; i < kept; i++)
        total += s->weight[i] = exp(s->cand[i].z - top);
    if (o->top_p < 1) {
        /* Top-p: the smallest leading set whose share reaches p. */
        double cum = 0, need = o->top_p * total;
        int64_t n = 0;
        while (n < kept) {
            cum += s->weight[n++];
            if (cum >= need) break;
        }
        kept = n, total = cum;
    }
    s->kept = kept, s->total = total;
    return 0;
}

/* One uniform u in [0, 1) picks the token where the running sum of the kept
 * weights passes u * total. */
static int32_t draw(ag_sampler *s, ag_rng *rng)
{
    if (s->kept == 1) return s->cand[0].id;
    double target = ag_rng_uniform(rng) * s->total, cum = 0;
    for (int64_t i = 0; i < s->kept; i++) {
        cum += s->weight[i];
        if (target < cum) return s->cand[i].id;
    }
    return s->cand[s->kept - 1].id; /* rounding of the last sum */
}

static int32_t next(ag_sampler *s, const char *fn, const float *f,
                    const double *d, ag_rng *rng)
{
    if (!s || (!f && !d)) {
        ag_set_error(fn, "NULL %s", s ? "logits" : "sampler");
        return -1;
    }
    if (!rng && s->options.temperature > 0) {
        ag_set_error(fn, "NULL rng (needed unless temperature is 0)");
        return -1;
    }
    if (filter(s, fn, f, d) < 0) return -1;
    return draw(s, rng);
}

int32_t ag_sampler_next(ag_sampler *s, const float *logits, ag_rng *rng)
{
    return next(s, "ag_sampler_next", logits, NULL, rng);
}

int32_t ag_sampler_next_f64(ag_sampler *s, const double *logits, ag_rng *rng)
{
    return next(s, "ag_sampler_next_f64", NULL, logits, rng);
}

int64_t ag_sampler_probs(ag_sampler *s, const float *logits, double *probs)
{
    static const char fn[] = "ag_sampler_probs";
    if (!s || !logits || !probs) {
        ag_set_error(fn, "NULL %s",
                     !s        ? "sampler"
                     : !logits ? "logits"
                               : "probs");
        return -1;
    }
    if (filter(s, fn, logits, NULL) < 0) return -1;
    for (int64_t i = 0; i < s->vocab; i++) probs[i] = 0;
    int64_t nonzero = 0;
    for (int64_t i = 0; i < s->kept; i++) {
        probs[s->cand[i].id] = s->weight[i] / s->total;
        nonzero += s->weight[i] > 0;
    }
    return nonzero;
}
