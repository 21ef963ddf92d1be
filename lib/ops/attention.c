/* attention.c: scaled dot-product attention as one fused op,
 *   O = softmax(S) v,  S = q k^T / sqrt(E) + mask (+ causal),
 * over the last two axes, with batch axes broadcast. Shapes: q (...,T,E),
 * k (...,S,E), v (...,S,Ev), mask broadcast to (...,T,S), O (...,T,Ev);
 * P = softmax(S) along the key axis s, scale = 1 / sqrt(E).
 *
 * The kernels never hold a whole (T,S) score matrix: per (batch, block of
 * BLOCK_Q query rows) the forward walks the keys in blocks of BLOCK_K with
 * an online softmax (a running maximum m and sum l per row, FlashAttention's
 * rescaling of the rows already accumulated) and keeps only each row's
 * logsumexp L = m + log l; the backward recomputes every score block from q,
 * k and L. Products of blocks go through ag__gemm. A row whose every score
 * is -inf (fully masked) has L = -inf and gives a zero output row with zero
 * gradients (PyTorch's formula gives NaN there).
 *
 * forward:  O = P v,  P = exp(S - L)
 * backward: D = rowsum(dO * O),  dS = P (dO v^T - D)    (kernel)
 *           dv = P^T dO,  dq = dS k scale,  dk = dS^T q scale,
 *           dmask = dS summed over the mask's broadcast axes
 * vjp:      the same in ops, with P rebuilt from q and k (attention_probs)
 * jvp:      tS = (tq k^T + q tk^T) scale + tmask,
 *           tP = P (tS - rowsum(P tS)),  tO = tP v + P tv */
#include "../internal.h"

#include <tgmath.h>

/* Query rows and key rows of one score block. */
#define BLOCK_Q 64
#define BLOCK_K 256

typedef struct {
    bool causal;   /* s > t is masked (PyTorch's tril, top-left aligned) */
    bool has_mask; /* input 3 is an additive mask */
} attention_params;

/* The logsumexp of every score row, (batch..., T) of out's dtype: -inf for
 * a fully masked row. */
typedef struct {
    void *lse;
} attention_saved;

/* 1/k! for k = 12 down to 0: the Taylor series of e^x, for exp_d and
 * exp_f below. */
static const double exp_taylor[13] = {1.0 / 479001600,
                                      1.0 / 39916800,
                                      1.0 / 3628800,
                                      1.0 / 362880,
                                      1.0 / 40320,
                                      1.0 / 5040,
                                      1.0 / 720,
                                      1.0 / 120,
                                      1.0 / 24,
                                      1.0 / 6,
                                      0.5,
                                      1,
                                      1};

/* e^x, inlined and branch-free so that the loops calling it vectorise (a
 * libm call per score took a fifth of the op's time): x = n ln 2 + r with
 * |r| <= ln 2 / 2 (n rounded by adding 1.5 2^52, or 2^23, whose low bits
 * then hold n: no float-to-integer conversion), e^r by its Taylor series
 * to degree 12 (double) or 7 (float), 2^n put into the exponent bits.
 * Within 5e-16 (double) and 1e-7 (float) of e^x for the x <= 0 of the
 * kernels (scores less a row's maximum or logsumexp) down to -708 (double)
 * or -87 (float); 0 below, -inf included (chosen on the bits of x, as
 * integers: a float comparison would keep the loop from vectorising); NaN
 * stays NaN.
 *
 * DEFINE_EXP defines name(x) = e^x for a real type whose bits are the unsigned
 * integer type uint: shift = 1.5 2^mant, whose bits are `magic`; the
 * exponent's bias; `lowest`, at and below which the result is 0; the
 * degree of the series; log2(e), and ln(2) split in a part whose products
 * by n are exact and the rest. */
#define DEFINE_EXP(name, real, uint, magic, bias, mant, lowest, degree, shift, \
                   log2e, ln2_hi, ln2_lo)                                      \
    static inline real name(real x)                                            \
    {                                                                          \
        real t = x * (real)(log2e) + (real)(shift), n = t - (real)(shift);     \
        real hi = (real)(ln2_hi), lo = (real)(ln2_lo),                         \
             r = x - n * hi - n * lo;                                          \
        real p = (real)exp_taylor[12 - (degree)];                              \
        for (int i = 13 - (degree); i < 13; i++)                               \
            p = p * r + (real)exp_taylor[i];                                   \
        real y, bound = (real)(lowest), minus_inf = -(real)INFINITY;           \
        uint tb, xb, yb, low, top;                                             \
        memcpy(&tb, &t, sizeof tb);                                            \
        memcpy(&xb, &x, sizeof xb);                                            \
        memcpy(&low, &bound, sizeof low);                                      \
        memcpy(&top, &minus_inf, sizeof top);                                  \
        tb = (tb - (magic) + (bias)) << (mant); /* 2^n */                      \
        memcpy(&y, &tb, sizeof y);                                             \
        y *= p;                                                                \
        memcpy(&yb, &y, sizeof yb);                                            \
        yb &= xb >= low && xb <= top ? 0 : ~(uint)0; /* -inf <= x <= lowest */ \
        memcpy(&y, &yb, sizeof y);                                             \
        return y;                                                              \
    }

DEFINE_EXP(exp_d, double, uint64_t, 0x4338000000000000u, 1023, 52, -708, 12,
           0x1.8p52, 0x1.71547652b82fep0, 0x1.62e42fefa3800p-1,
           0x1.ef35793c76730p-45)
DEFINE_EXP(exp_f, float, uint32_t, 0x4B400000u, 127, 23, -87, 7, 0x1.8p23,
           1.44269504, 0.693359375, -2.12194440e-4)

#define EXP(x) _Generic((x), float : exp_f, default : exp_d)(x)

/* Where an op result's blocks are: sizes, the broadcast batch shape, and
 * the element strides of q, k, v and the mask along it. */
typedef struct {
    int nb; /* batch axes of out */
    int64_t batch, T, S, E, Ev;
    int64_t bshape[AG_MAX_DIMS];
    int64_t stride[4][AG_MAX_DIMS]; /* q, k, v, mask: per batch axis */
    int64_t mask_t, mask_s;         /* the mask's strides along t and s */
    double scale;
    bool causal;
    const ag_tensor *in[4]; /* q, k, v, mask (NULL when none) */
} geometry;

static void geometry_of(const ag_tensor *out, geometry *g)
{
    const attention_params *p = AG_PARAMS(out, attention_params);
    memset(g, 0, sizeof *g);
    for (int i = 0; i < 3 + p->has_mask; i++) g->in[i] = out->inputs[i];
    const ag_tensor *q = g->in[0], *v = g->in[2];
    g->nb = out->ndim - 2;
    g->T = q->shape[q->ndim - 2];
    g->E = q->shape[q->ndim - 1];
    g->S = v->shape[v->ndim - 2];
    g->Ev = v->shape[v->ndim - 1];
    g->scale = 1 / sqrt((double)g->E);
    g->causal = p->causal;
    g->batch = 1;
    for (int d = 0; d < g->nb; d++) g->batch *= g->bshape[d] = out->shape[d];
    int64_t unit[3] = {g->T * g->E, g->S * g->E, g->S * g->Ev};
    for (int i = 0; i < 3; i++)
        ag__broadcast_strides(g->in[i], 2, unit[i], g->nb, g->stride[i]);
    if (g->in[3]) { /* strides over (batch..., T, S) */
        int64_t full[AG_MAX_DIMS + 2];
        ag__broadcast_strides(g->in[3], 0, 1, g->nb + 2, full);
        memcpy(g->stride[3], full, (size_t)g->nb * sizeof *full);
        g->mask_t = full[g->nb];
        g->mask_s = full[g->nb + 1];
    }
}

/* The element offset of input i's matrix for batch b of out. */
static int64_t batch_offset(const geometry *g, int i, int64_t b)
{
    int64_t offset = 0;
    for (int d = g->nb - 1; d >= 0; d--) {
        offset += b % g->bshape[d] * g->stride[i][d];
        b /= g->bshape[d];
    }
    return offset;
}

/* One block of scores, sc (nq, ns) = q_blk k_blk^T scale + mask, with -inf
 * where causal masks it: query rows t0.., key rows s0.. of one batch (q and
 * k point at those rows, mask at element (t0, s0) or is NULL). */
static void score_block(const geometry *g, ag_dtype dt, const void *q,
                        const void *k, const void *mask, int64_t t0, int64_t s0,
                        int64_t nq, int64_t ns, void *sc)
{
    ag__gemm(dt, false, true, nq, ns, g->E, q, k, 0.0, sc);
    AG_DISPATCH_FLOAT(dt, {
        const real scale = (real)g->scale;
        for (int64_t r = 0; r < nq; r++) {
            real *restrict row = (real *)sc + r * ns;
            for (int64_t c = 0; c < ns; c++) row[c] *= scale;
            if (mask) {
                const real *m = (const real *)mask + r * g->mask_t;
                int64_t ms = g->mask_s;
                for (int64_t c = 0; c < ns; c++) row[c] += m[c * ms];
            }
            if (g->causal) /* s0 + c > t0 + r */
                for (int64_t c = t0 + r - s0 + 1 < 0 ? 0 : t0 + r - s0 + 1;
                     c < ns; c++)
                    row[c] = -INFINITY;
        }
    });
}

/* Row-wise kernels on (nq, ns) blocks, compiled for AVX2 too
 * (AG_KERNEL). Maxima and sums run in LANES partial results, so that they
 * vectorise without a compiler flag that reorders every float sum. */
#define LANES 8

/* The online softmax over one block of scores sc (nq, ns), for rows whose
 * running maximum is m, sum l and output o (nq, Ev):
 *   m' = max(m, max_s S),  P = e^(S - m') (into sc),
 *   l = l e^(m - m') + rowsum(P),  o = o e^(m - m')
 * A row with nothing unmasked yet (m' = -inf) gets P = 0, and l = NaN
 * when it met a NaN score (the maximum passes over NaN), so that NaN
 * reaches the output as in PyTorch rather than a zero row. */
AG_KERNEL static void online_softmax(ag_dtype dt, void *sc, int64_t nq,
                                     int64_t ns, void *m, void *l, void *o,
                                     int64_t Ev)
{
    AG_DISPATCH_FLOAT(dt, {
        real *mr = m, *lr = l;
        for (int64_t r = 0; r < nq; r++) {
            real *restrict row = (real *)sc + r * ns;
            real lane[LANES], mx = mr[r], sum = 0;
            for (int j = 0; j < LANES; j++) lane[j] = mx;
            int64_t c = 0;
            for (; c + LANES <= ns; c += LANES)
                for (int j = 0; j < LANES; j++)
                    lane[j] = row[c + j] > lane[j] ? row[c + j] : lane[j];
            for (; c < ns; c++) lane[0] = row[c] > lane[0] ? row[c] : lane[0];
            for (int j = 0; j < LANES; j++) mx = lane[j] > mx ? lane[j] : mx;
            if (mx == -INFINITY) { /* nothing unmasked yet */
                bool nan = false;
                for (c = 0; c < ns; c++) {
                    nan |= row[c] != row[c];
                    row[c] = 0;
                }
                if (nan) lr[r] = NAN;
                continue;
            }
            for (int j = 0; j < LANES; j++) lane[j] = 0;
            for (c = 0; c + LANES <= ns; c += LANES)
                for (int j = 0; j < LANES; j++) {
                    row[c + j] = EXP(row[c + j] - mx);
                    lane[j] += row[c + j];
                }
            for (; c < ns; c++) {
                row[c] = EXP(row[c] - mx);
                sum += row[c];
            }
            for (int j = 0; j < LANES; j++) sum += lane[j];
            real alpha = EXP(mr[r] - mx);
            lr[r] = lr[r] * alpha + sum;
            mr[r] = mx;
            if (alpha != 1) {
                real *restrict orow = (real *)o + r * Ev;
                for (int64_t e = 0; e < Ev; e++) orow[e] *= alpha;
            }
        }
    });
}

/* P = e^(S - L) in place over a block (nq, ns) of scores, L the rows'
 * logsumexp; 0 in a fully masked row (L = -inf). */
AG_KERNEL static void block_probs(ag_dtype dt, void *p, const void *lse,
                                  int64_t nq, int64_t ns)
{
    AG_DISPATCH_FLOAT(dt, {
        for (int64_t r = 0; r < nq; r++) {
            real *restrict row = (real *)p + r * ns;
            real L = ((const real *)lse)[r];
            if (L == -INFINITY)
                for (int64_t c = 0; c < ns; c++) row[c] = 0;
            else
                for (int64_t c = 0; c < ns; c++) row[c] = EXP(row[c] - L);
        }
    });
}

/* dS = P (dP - D) in place over a block (nq, ns) holding dP = dO v^T, D
 * the rows' rowsum(dO * O). */
AG_KERNEL static void block_ds(ag_dtype dt, void *ds, const void *p,
                               const void *d, int64_t nq, int64_t ns)
{
    AG_DISPATCH_FLOAT(dt, {
        for (int64_t r = 0; r < nq; r++) {
            real *restrict dr = (real *)ds + r * ns;
            const real *restrict pr = (const real *)p + r * ns;
            real dd = ((const real *)d)[r];
            for (int64_t c = 0; c < ns; c++) dr[c] = pr[c] * (dr[c] - dd);
        }
    });
}

/* The keys that query rows [t0, t0 + nq) see: [0, key_end). */
static int64_t key_end(const geometry *g, int64_t t0, int64_t nq)
{
    return g->causal && t0 + nq < g->S ? t0 + nq : g->S;
}

/* The reals of scratch each part of the forward uses: a score block and
 * the running maximum and sum of its rows. */
#define FORWARD_SCRATCH (BLOCK_Q * BLOCK_K + 2 * BLOCK_Q)

typedef struct {
    const geometry *g;
    ag_tensor *out;
    void *scratch; /* FORWARD_SCRATCH reals per part */
} forward_job;

/* Work items [lo, hi) of the forward, an item being one block of query
 * rows of one batch. */
static void forward_part(void *arg, int part, int parts)
{
    const forward_job *job = arg;
    const geometry *g = job->g;
    ag_tensor *out = job->out;
    int64_t qblocks = (g->T + BLOCK_Q - 1) / BLOCK_Q, lo, hi;
    ag__part_range(g->batch * qblocks, 1, part, parts, &lo, &hi);
    AG_DISPATCH_FLOAT(out->dtype, {
        real *sc = (real *)job->scratch + (size_t)part * FORWARD_SCRATCH;
        real *m = sc + BLOCK_Q * BLOCK_K, *l = m + BLOCK_Q;
        const int64_t E = g->E, Ev = g->Ev;
        for (int64_t w = lo; w < hi; w++) {
            int64_t b = w / qblocks, t0 = w % qblocks * BLOCK_Q;
            int64_t nq = g->T - t0 < BLOCK_Q ? g->T - t0 : BLOCK_Q;
            const real *q =
                (const real *)g->in[0]->data + batch_offset(g, 0, b) + t0 * E;
            const real *k =
                (const real *)g->in[1]->data + batch_offset(g, 1, b);
            const real *v =
                (const real *)g->in[2]->data + batch_offset(g, 2, b);
            const real *mask = g->in[3]
                                   ? (const real *)g->in[3]->data +
                                         batch_offset(g, 3, b) + t0 * g->mask_t
                                   : NULL;
            real *o = (real *)out->data + (b * g->T + t0) * Ev;
            real *lse =
                (real *)AG_SAVED(out, attention_saved)->lse + b * g->T + t0;
            memset(o, 0, (size_t)(nq * Ev) * sizeof *o);
            for (int64_t r = 0; r < nq; r++) {
                m[r] = -INFINITY;
                l[r] = 0;
            }
            int64_t end = key_end(g, t0, nq);
            for (int64_t s0 = 0; s0 < end; s0 += BLOCK_K) {
                int64_t ns = end - s0 < BLOCK_K ? end - s0 : BLOCK_K;
                score_block(g, out->dtype, q, k + s0 * E,
                            mask ? mask + s0 * g->mask_s : NULL, t0, s0, nq, ns,
                            sc);
                online_softmax(out->dtype, sc, nq, ns, m, l, o, Ev);
                ag__gemm(out->dtype, false, false, nq, Ev, ns, sc, v + s0 * Ev,
                         1.0, o);
            }
            /* O = O / l,  L = m + log l (-inf and a zero row when l = 0;
             * NaN when l is) */
            for (int64_t r = 0; r < nq; r++) {
                bool some = l[r] > 0, none = l[r] == 0;
                lse[r] = some ? m[r] + log(l[r]) : none ? -INFINITY : NAN;
                real inv = some ? 1 / l[r] : none ? 0 : NAN;
                for (int64_t e = 0; e < Ev; e++) o[r * Ev + e] *= inv;
            }
        }
    });
}

/* The parts to split `items` independent work items in: the library's
 * threads, at most one part an item. */
static int threads_for(int64_t items)
{
    int parts = ag_get_num_threads();
    if (parts > AG_MAX_THREADS) parts = AG_MAX_THREADS;
    if (parts > items) parts = items > 0 ? (int)items : 1;
    return parts;
}

static int attention_forward(ag_tensor *out)
{
    geometry g;
    geometry_of(out, &g);
    int64_t items = g.batch * ((g.T + BLOCK_Q - 1) / BLOCK_Q);
    int parts = threads_for(items);
    size_t elem = ag__dtype_size(out->dtype);
    attention_saved *saved = AG_SAVED(out, attention_saved);
    saved->lse =
        ag__arena_alloc(out->arena, (size_t)(g.batch * g.T) * elem, 64);
    void *scratch =
        ag__arena_alloc(out->arena, (size_t)parts * FORWARD_SCRATCH * elem, 64);
    if (!saved->lse || !scratch) {
        ag__error("ag_scaled_dot_product_attention", "out of memory");
        return -1;
    }
    forward_job job = {&g, out, scratch};
    ag__parallel(parts, forward_part, &job);
    return 0;
}

/* The fast backward, block by block as the forward (see the top), the
 * batches split over the threads unless a broadcast input that requires
 * a gradient meets several of them. Every gradient is added to
 * (ag__grad_accumulate), block after block. */
/* The reals of scratch each part of the backward uses: P and dS of a
 * block and D of its rows. */
#define BACKWARD_SCRATCH (2 * BLOCK_Q * BLOCK_K + BLOCK_Q)

typedef struct {
    const geometry *g;
    ag_tensor *out;
    void *grad[4]; /* the gradient buffers of q, k, v, mask, or NULL */
    void *scratch; /* BACKWARD_SCRATCH reals per part */
} backward_job;

/* The batches [lo, hi) of the backward. */
static void backward_part(void *arg, int part, int parts)
{
    const backward_job *job = arg;
    const geometry g = *job->g;
    ag_tensor *out = job->out;
    void *const *grad = job->grad;
    bool need_ds = grad[0] || grad[1] || grad[3];
    const int64_t E = g.E, Ev = g.Ev, T = g.T;
    const ag_dtype dt = out->dtype;
    int64_t lo, hi;
    ag__part_range(g.batch, 1, part, parts, &lo, &hi);
    AG_DISPATCH_FLOAT(dt, {
        real *p = (real *)job->scratch + (size_t)part * BACKWARD_SCRATCH,
             *ds = p + BLOCK_Q * BLOCK_K, *d = ds + BLOCK_Q * BLOCK_K;
        const real scale = (real)g.scale;
        const real *lse_all = AG_SAVED(out, attention_saved)->lse;
        for (int64_t b = lo; b < hi; b++) {
            int64_t off[4];
            for (int i = 0; i < 4; i++)
                off[i] = g.in[i] ? batch_offset(&g, i, b) : 0;
            const real *k = (const real *)g.in[1]->data + off[1];
            const real *v = (const real *)g.in[2]->data + off[2];
            real *dk = grad[1] ? (real *)grad[1] + off[1] : NULL;
            real *dv = grad[2] ? (real *)grad[2] + off[2] : NULL;
            for (int64_t t0 = 0; t0 < T; t0 += BLOCK_Q) {
                int64_t nq = T - t0 < BLOCK_Q ? T - t0 : BLOCK_Q;
                const real *q = (const real *)g.in[0]->data + off[0] + t0 * E;
                const real *o = (const real *)out->data + (b * T + t0) * Ev;
                const real *dout =
                    (const real *)out->grad->data + (b * T + t0) * Ev;
                const real *lse = lse_all + b * T + t0;
                const real *mask = g.in[3] ? (const real *)g.in[3]->data +
                                                 off[3] + t0 * g.mask_t
                                           : NULL;
                real *dq = grad[0] ? (real *)grad[0] + off[0] + t0 * E : NULL;
                real *dmask =
                    grad[3] ? (real *)grad[3] + off[3] + t0 * g.mask_t : NULL;
                /* D = rowsum(dO * O) */
                for (int64_t r = 0; r < nq; r++) {
                    real s = 0;
                    for (int64_t e = 0; e < Ev; e++)
                        s += dout[r * Ev + e] * o[r * Ev + e];
                    d[r] = s;
                }
                int64_t end = key_end(&g, t0, nq);
                for (int64_t s0 = 0; s0 < end; s0 += BLOCK_K) {
                    int64_t ns = end - s0 < BLOCK_K ? end - s0 : BLOCK_K;
                    score_block(&g, dt, q, k + s0 * E,
                                mask ? mask + s0 * g.mask_s : NULL, t0, s0, nq,
                                ns, p);
                    block_probs(dt, p, lse, nq, ns);
                    if (dv) /* dv += P^T dO: (ns,nq) @ (nq,Ev) */
                        ag__gemm(dt, true, false, ns, Ev, nq, p, dout, 1.0,
                                 dv + s0 * Ev);
                    if (!need_ds) continue;
                    /* dS = P (dO v^T - D) */
                    ag__gemm(dt, false, true, nq, ns, Ev, dout, v + s0 * Ev,
                             0.0, ds);
                    block_ds(dt, ds, p, d, nq, ns);
                    if (dmask) /* dmask += dS, summed where it broadcasts */
                        for (int64_t r = 0; r < nq; r++) {
                            real *dm = dmask + r * g.mask_t + s0 * g.mask_s;
                            for (int64_t c = 0; c < ns; c++)
                                dm[c * g.mask_s] += ds[r * ns + c];
                        }
                    for (int64_t i = 0; i < nq * ns; i++) ds[i] *= scale;
                    if (dq) /* dq += dS k scale: (nq,ns) @ (ns,E) */
                        ag__gemm(dt, false, false, nq, E, ns, ds, k + s0 * E,
                                 1.0, dq);
                    if (dk) /* dk += dS^T q scale: (ns,nq) @ (nq,E) */
                        ag__gemm(dt, true, false, ns, E, nq, ds, q, 1.0,
                                 dk + s0 * E);
                }
            }
        }
    });
}

/* The fast backward, block by block as the forward (see the top), the
 * batches split over the threads unless a broadcast input that requires
 * a gradient meets several of them. Every gradient is added to
 * (ag__grad_accumulate), block after block. */
static int attention_backward(ag_tensor *out)
{
    geometry g;
    geometry_of(out, &g);
    backward_job job = {&g, out, {NULL, NULL, NULL, NULL}, NULL};
    bool shared = false; /* a gradient buffer met by several batches */
    for (int i = 0; i < 4; i++) {
        if (!g.in[i] || !g.in[i]->requires_grad) continue;
        job.grad[i] = ag__grad_accumulate(out->inputs[i]);
        for (int d = 0; d < g.nb; d++)
            shared |= g.stride[i][d] == 0 && g.bshape[d] > 1;
    }
    int parts = shared ? 1 : threads_for(g.batch);
    job.scratch = ag__arena_alloc(
        out->arena,
        (size_t)parts * BACKWARD_SCRATCH * ag__dtype_size(out->dtype), 64);
    if (!job.scratch) {
        ag__error("ag_backward", "out of memory");
        return -1;
    }
    ag__parallel(parts, backward_part, &job);
    return 0;
}

/* P = softmax(S) in differentiable ops, from q, k and the mask, so that
 * its graph reaches back to them:
 *   P = e^(S - L) / (rowsum(e^(S - L)) + Z)
 * with L the saved logsumexp (0 in a fully masked row) and Z 1 in a fully
 * masked row, 0 elsewhere: constants, which leave P's value and
 * derivatives those of the softmax (a shift of S by a constant does not
 * change them), and make a fully masked row zero, as the forward. */
static ag_tensor *attention_probs(ag_arena *a, const ag_tensor *out)
{
    geometry g;
    geometry_of(out, &g);
    ag_tensor *q = out->inputs[0], *k = out->inputs[1];
    ag_tensor *s =
        ag_matmul(a, ag_scale(a, q, g.scale), ag_transpose(a, k, -1, -2));
    if (g.in[3]) s = ag_add(a, s, out->inputs[3]);
    int64_t shape[AG_MAX_DIMS];
    memcpy(shape, out->shape, sizeof shape);
    if (g.causal) { /* 0 for s <= t, -inf for s > t */
        ag_tensor *c = ag_zeros(a, out->dtype, 2, (int64_t[]){g.T, g.S});
        if (!c) return NULL;
        AG_DISPATCH_FLOAT(out->dtype, {
            real *cv = c->data;
            for (int64_t t = 0; t < g.T; t++)
                for (int64_t j = t + 1; j < g.S; j++)
                    cv[t * g.S + j] = -INFINITY;
        });
        s = ag_add(a, s, c);
    }
    shape[out->ndim - 1] = 1;
    ag_tensor *L = ag_zeros(a, out->dtype, out->ndim, shape);
    ag_tensor *Z = ag_zeros(a, out->dtype, out->ndim, shape);
    if (!L || !Z) return NULL;
    bool masked_rows = false;
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *lse = AG_SAVED(out, attention_saved)->lse;
        real *lv = L->data, *zv = Z->data;
        for (int64_t i = 0; i < g.batch * g.T; i++) {
            bool masked = lse[i] == -INFINITY;
            lv[i] = masked ? 0 : lse[i];
            zv[i] = masked;
            masked_rows |= masked;
        }
    });
    ag_tensor *e = ag_exp(a, ag_sub(a, s, L));
    ag_tensor *sum = ag_sum(a, e, -1, true);
    if (masked_rows) sum = ag_add(a, sum, Z);
    return ag_div(a, e, sum);
}

/* dv = P^T g,  dS = P (g v^T - rowsum(g O)),  dmask = dS,
 * dq = dS k scale,  dk = dS^T q scale, each summed to its input's shape */
static int attention_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g,
                         const bool *want, ag_tensor **dx)
{
    ag_tensor *q = out->inputs[0], *k = out->inputs[1], *v = out->inputs[2];
    bool has_mask = AG_PARAMS(out, attention_params)->has_mask;
    ag_tensor *p;
    AG_TRY(p = attention_probs(a, out));
    if (want[2])
        AG_TRY(dx[2] =
                   ag__sum_to(a, ag_matmul(a, ag_transpose(a, p, -1, -2), g),
                              v->ndim, v->shape));
    if (!want[0] && !want[1] && !(has_mask && want[3])) return 0;
    ag_tensor *ds;
    AG_TRY(ds = ag_mul(a, p,
                       ag_sub(a, ag_matmul(a, g, ag_transpose(a, v, -1, -2)),
                              ag_sum(a, ag_mul(a, g, out), -1, true))));
    if (has_mask && want[3]) {
        ag_tensor *m = out->inputs[3];
        AG_TRY(dx[3] = ag__sum_to(a, ds, m->ndim, m->shape));
    }
    AG_TRY(ds = ag_scale(a, ds, 1 / sqrt((double)q->shape[q->ndim - 1])));
    if (want[0])
        AG_TRY(dx[0] = ag__sum_to(a, ag_matmul(a, ds, k), q->ndim, q->shape));
    if (want[1])
        AG_TRY(dx[1] =
                   ag__sum_to(a, ag_matmul(a, ag_transpose(a, ds, -1, -2), q),
                              k->ndim, k->shape));
    return 0;
}

/* tS = (tq k^T + q tk^T) scale + tmask,  tP = P (tS - rowsum(P tS)),
 * tO = tP v + P tv */
static int attention_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *tx,
                         ag_tensor **t_out)
{
    ag_tensor *q = out->inputs[0], *k = out->inputs[1], *v = out->inputs[2];
    bool has_mask = AG_PARAMS(out, attention_params)->has_mask;
    ag_tensor *p;
    AG_TRY(p = attention_probs(a, out));
    ag_tensor *ts = ag__add_or(
        a, tx[0] ? ag_matmul(a, tx[0], ag_transpose(a, k, -1, -2)) : NULL,
        tx[1] ? ag_matmul(a, q, ag_transpose(a, tx[1], -1, -2)) : NULL);
    if (ts)
        AG_TRY(ts = ag_scale(a, ts, 1 / sqrt((double)q->shape[q->ndim - 1])));
    if (has_mask) ts = ag__add_or(a, ts, tx[3]);
    ag_tensor *to = NULL;
    if (ts)
        AG_TRY(to = ag_matmul(
                   a,
                   ag_mul(a, p,
                          ag_sub(a, ts, ag_sum(a, ag_mul(a, p, ts), -1, true))),
                   v));
    if (tx[2]) AG_TRY(to = ag__add_or(a, to, ag_matmul(a, p, tx[2])));
    AG_TRY(*t_out = ag__expand_to(a, to, out->ndim, out->shape));
    return 0;
}

ag_tensor *ag_scaled_dot_product_attention(ag_arena *a, ag_tensor *q,
                                           ag_tensor *k, ag_tensor *v,
                                           ag_tensor *mask, bool causal)
{
    const char *func = "ag_scaled_dot_product_attention";
    ag_tensor *inputs[4] = {q, k, v, mask};
    int n = mask ? 4 : 3;
    if (ag__check_float_inputs(func, a, n, inputs)) return NULL;
    char bq[AG_SHAPE_STR_MAX], bk[AG_SHAPE_STR_MAX], bv[AG_SHAPE_STR_MAX];
    ag__shape_str(bq, q->ndim, q->shape);
    ag__shape_str(bk, k->ndim, k->shape);
    ag__shape_str(bv, v->ndim, v->shape);
    if (q->ndim < 2 || k->ndim < 2 || v->ndim < 2) {
        ag__error(func,
                  "q (...,T,E), k (...,S,E) and v (...,S,Ev) need at least 2 "
                  "dimensions: q %s, k %s, v %s",
                  bq, bk, bv);
        return NULL;
    }
    int64_t T = q->shape[q->ndim - 2], E = q->shape[q->ndim - 1];
    int64_t S = k->shape[k->ndim - 2], Ev = v->shape[v->ndim - 1];
    if (k->shape[k->ndim - 1] != E) {
        ag__error(func, "q %s and k %s differ in E (the last axis): %lld, %lld",
                  bq, bk, (long long)E, (long long)k->shape[k->ndim - 1]);
        return NULL;
    }
    if (v->shape[v->ndim - 2] != S) {
        ag__error(func, "k %s and v %s differ in S (axis -2): %lld, %lld", bk,
                  bv, (long long)S, (long long)v->shape[v->ndim - 2]);
        return NULL;
    }
    if (E == 0) {
        ag__error(func, "q %s has E = 0: the scale 1/sqrt(E) is infinite", bq);
        return NULL;
    }
    if (T > INT_MAX || S > INT_MAX || E > INT_MAX || Ev > INT_MAX) {
        ag__error(func, "a size of q %s, k %s, v %s exceeds the BLAS limit %d",
                  bq, bk, bv, INT_MAX);
        return NULL;
    }
    /* the batch axes of q, k and v broadcast together */
    int ndim = 0;
    int64_t shape[AG_MAX_DIMS + 2];
    for (int i = 0; i < 3; i++) {
        const ag_tensor *t = inputs[i];
        int nt = t->ndim - 2;
        if (nt > ndim) { /* align to the right: new leading axes of 1 */
            memmove(shape + (nt - ndim), shape, (size_t)ndim * sizeof *shape);
            for (int d = 0; d < nt - ndim; d++) shape[d] = 1;
            ndim = nt;
        }
        for (int d = 0; d < nt; d++) {
            int64_t have = shape[d + ndim - nt], size = t->shape[d];
            if (have != size && have != 1 && size != 1) {
                ag__error(func,
                          "the batch axes of q %s, k %s and v %s do not "
                          "broadcast",
                          bq, bk, bv);
                return NULL;
            }
            if (have == 1) shape[d + ndim - nt] = size;
        }
    }
    if (mask) { /* it broadcasts to the scores' shape (batch..., T, S) */
        shape[ndim] = T;
        shape[ndim + 1] = S;
        bool fits = mask->ndim <= ndim + 2;
        for (int d = 0; fits && d < mask->ndim; d++) {
            int64_t size = mask->shape[d],
                    want = shape[d + ndim + 2 - mask->ndim];
            fits = size == want || size == 1;
        }
        if (!fits) {
            char bm[AG_SHAPE_STR_MAX], bs[AG_SHAPE_STR_MAX];
            ag__error(func,
                      "mask %s does not broadcast to the scores' shape %s "
                      "(q %s, k %s)",
                      ag__shape_str(bm, mask->ndim, mask->shape),
                      ag__shape_str(bs, ndim + 2, shape), bq, bk);
            return NULL;
        }
    }
    shape[ndim] = T;
    shape[ndim + 1] = Ev;
    attention_params p = {causal, mask != NULL};
    return ag__apply(func, a, &ag__op_scaled_dot_product_attention, n, inputs,
                     q->dtype, ndim + 2, shape, &p);
}

/* The op-table entry: q, k, v and, when given, the additive mask, which is
 * differentiable as the others. */
const ag_op ag__op_scaled_dot_product_attention = {
    .name = "scaled_dot_product_attention",
    .arity = AG_VARIADIC,
    .params_size = sizeof(attention_params),
    .saved_size = sizeof(attention_saved),
    .forward = attention_forward,
    .backward = attention_backward,
    .vjp = attention_vjp,
    .jvp = attention_jvp};
