/* batcher.c: mini-batches over a dataset held in two tensors, x (N, ...)
 * and y (N, ...). The batcher keeps a permutation of the N example indices,
 * made once in its arena and reshuffled in place (Fisher-Yates) at the
 * start of every epoch, and a cursor into it; a batch copies the rows the
 * cursor selects into new tensors of the step arena. */
#include "../internal.h"

struct ag_batcher {
    ag_tensor *x, *y;
    int64_t n;      /* examples */
    int64_t batch;  /* examples per batch */
    int64_t cursor; /* next position in perm */
    int64_t *perm;  /* the order of this epoch */
    bool shuffle, drop_last;
    ag_rng rng;
    int rank, world; /* this process's part of every batch (1 of 1: all) */
};

/* A uniform integer in [0, n), n > 0, without modulo bias: the lowest
 * 2^64 mod n draws are rejected, so that the others cover every residue
 * equally often. */
static uint64_t uniform_below(ag_rng *rng, uint64_t n)
{
    uint64_t limit = -n % n; /* 2^64 mod n */
    for (;;) {
        uint64_t r = ag_rng_next(rng);
        if (r >= limit) return r % n;
    }
}

/* Shuffles perm in place (Fisher-Yates): for i from n-1 down, swaps
 * perm[i] with a uniform perm[j], j in [0, i]. */
static void shuffle(ag_batcher *b)
{
    for (int64_t i = b->n - 1; i > 0; i--) {
        int64_t j = (int64_t)uniform_below(&b->rng, (uint64_t)i + 1);
        int64_t t = b->perm[i];
        b->perm[i] = b->perm[j];
        b->perm[j] = t;
    }
}

/* Checks the arguments of ag_batcher_new. */
static int check_new(ag_arena *a, const ag_tensor *x, const ag_tensor *y,
                     int64_t batch, bool drop_last)
{
    const char *func = "ag_batcher_new";
    if (!a || !x || !y) {
        ag__error(func, "%s is NULL", !a ? "arena" : !x ? "x" : "y");
        return -1;
    }
    if (!x->ndim || !y->ndim) {
        ag__error(func, "%s has no dimensions; need (N, ...)",
                  !x->ndim ? "x" : "y");
        return -1;
    }
    int64_t n = x->shape[0];
    if (y->shape[0] != n) {
        ag__error(func, "x has %lld examples, y has %lld", (long long)n,
                  (long long)y->shape[0]);
        return -1;
    }
    if (n == 0 || batch < 1) {
        ag__error(func,
                  n ? "batch size must be >= 1, got %lld"
                    : "x and y have no examples (batch size %lld)",
                  (long long)batch);
        return -1;
    }
    if (drop_last && batch > n) {
        ag__error(func,
                  "batch size %lld with drop_last leaves no batch of the %lld "
                  "examples",
                  (long long)batch, (long long)n);
        return -1;
    }
    if ((uint64_t)n > SIZE_MAX / sizeof(int64_t) ||
        (uint64_t)n > INT64_MAX / sizeof(int64_t)) { /* before allocating */
        ag__error(func,
                  "the order of %lld examples (8 bytes each) overflows "
                  "size_t or int64_t",
                  (long long)n);
        return -1;
    }
    return 0;
}

ag_batcher *ag_batcher_new(ag_arena *a, ag_tensor *x, ag_tensor *y,
                           int64_t batch, bool shuffle_each_epoch,
                           uint64_t seed, bool drop_last)
{
    if (check_new(a, x, y, batch, drop_last)) return NULL;
    int64_t n = x->shape[0];
    ag_batcher *b = ag__arena_alloc(a, sizeof *b, _Alignof(ag_batcher));
    int64_t *perm =
        b ? ag__arena_alloc(a, (size_t)n * sizeof *perm, _Alignof(int64_t))
          : NULL;
    if (!perm) {
        ag__error("ag_batcher_new", "out of memory for %lld examples",
                  (long long)n);
        return NULL;
    }
    *b = (ag_batcher){.x = x,
                      .y = y,
                      .n = n,
                      .batch = batch,
                      .perm = perm,
                      .shuffle = shuffle_each_epoch,
                      .drop_last = drop_last,
                      .rng = ag_rng_seed(seed),
                      .world = 1};
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    if (b->shuffle) shuffle(b);
    return b;
}

int ag_batcher_shard(ag_batcher *b, int rank, int world)
{
    const char *func = "ag_batcher_shard";
    if (!b) {
        ag__error(func, "batcher is NULL");
        return -1;
    }
    if (world < 1 || rank < 0 || rank >= world) {
        ag__error(func, "rank %d of a world of %d: need 0 <= rank < world",
                  rank, world);
        return -1;
    }
    if (b->batch < world) {
        ag__error(func,
                  "a batch of %lld examples shared by %d processes leaves "
                  "some of them none",
                  (long long)b->batch, world);
        return -1;
    }
    b->rank = rank;
    b->world = world;
    return 0;
}

int64_t ag_batcher_count(const ag_batcher *b)
{
    if (!b) return 0;
    /* n >= 1, and n - 1 + batch could overflow for a huge batch */
    return b->drop_last ? b->n / b->batch : (b->n - 1) / b->batch + 1;
}

/* A tensor in `step` of the rows of `src` at perm[from .. from+rows). */
static ag_tensor *gather(const ag_batcher *b, ag_arena *step,
                         const ag_tensor *src, int64_t from, int64_t rows)
{
    int64_t shape[AG_MAX_DIMS];
    memcpy(shape, src->shape, (size_t)src->ndim * sizeof *shape);
    shape[0] = rows;
    ag_tensor *t = ag__tensor_new("ag_batcher_next", step, src->dtype,
                                  src->ndim, shape, true);
    if (!t) return NULL;
    size_t row_bytes = ag__tensor_bytes(src) / (size_t)b->n;
    char *dst = t->data;
    const char *from_data = src->data;
    for (int64_t i = 0; i < rows; i++)
        memcpy(dst + (size_t)i * row_bytes,
               from_data + (size_t)b->perm[from + i] * row_bytes, row_bytes);
    return t;
}

int ag_batcher_next(ag_batcher *b, ag_arena *step, ag_tensor **bx,
                    ag_tensor **by)
{
    if (bx) *bx = NULL;
    if (by) *by = NULL;
    if (!b || !step || !bx || !by) {
        ag__error("ag_batcher_next", "%s is NULL",
                  !b      ? "batcher"
                  : !step ? "arena"
                  : !bx   ? "bx"
                          : "by");
        return -1;
    }
    int64_t left = b->n - b->cursor;
    if (left == 0 || (b->drop_last && left < b->batch)) {
        b->cursor = 0;
        if (b->shuffle) shuffle(b);
        return 0;
    }
    int64_t rows = left < b->batch ? left : b->batch;
    /* this rank's rows of the batch: [rows * rank / world, ...) */
    int64_t lo = rows * b->rank / b->world,
            hi = rows * (b->rank + 1) / b->world;
    ag_tensor *tx = gather(b, step, b->x, b->cursor + lo, hi - lo);
    ag_tensor *ty = tx ? gather(b, step, b->y, b->cursor + lo, hi - lo) : NULL;
    if (!ty) return -1;
    b->cursor += rows;
    *bx = tx;
    *by = ty;
    return 1;
}
