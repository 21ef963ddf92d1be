/* ddp.c: data parallel training, as PyTorch's DistributedDataParallel.
 *
 * At the start every rank checks that its model is rank 0's (names,
 * dtypes, shapes) and takes rank 0's values. The parameters are split in
 * buckets in reverse order (the order in which a backward pass finishes
 * their gradients). During ag_ddp_backward each parameter's gradient hook
 * copies its final gradient into its bucket, and a bucket whose gradients
 * are all there starts its sum over the ranks (MPI_Iallreduce), in bucket
 * order, so that every rank starts the same sums in the same order; the
 * hooks also poll the running sums, which is what moves them forward while
 * the pass computes. After the pass: the buckets not started yet start, the
 * ranks agree that every one of them succeeded, the sums finish, and each
 * gradient becomes its bucket's sum divided by the number of ranks.
 *
 * A rank that fails (its loss is NULL, its backward fails) still starts
 * every bucket, with whatever they hold, so that the collectives match on
 * every rank; the agreement then makes every rank return the failure. */
#include "dist_internal.h"

#include <stdlib.h>
#include <string.h>

/* PyTorch's default bucket size, bucket_cap_mb = 25. */
#define DEFAULT_BUCKET_BYTES ((int64_t)25 << 20)

typedef struct {
    ag_dtype dtype;
    int64_t numel;
    ag_tensor *sums; /* (numel): the gradients packed, then their sums */
    int params;      /* how many parameters it holds */
    int pending;     /* of them, not final yet in this pass */
    bool early;      /* started during the pass */
} bucket;

typedef struct {
    ag_ddp *ddp;
    ag_tensor *t;
    const char *name;
    int bucket;
    int64_t offset; /* in the bucket, in elements */
    bool ready;     /* its gradient is in the bucket */
} entry;

struct ag_ddp {
    ag_dist *d;
    int n_entries, n_buckets;
    entry *entries; /* the parameters that require a gradient, in order */
    bucket *buckets;
    MPI_Request *reqs; /* one per bucket: its sum */
    int next;          /* the next bucket to start */
    bool sync, in_pass, no_overlap;
    /* a failure of a step without sync, reported at the next sync */
    bool failed_alone;
    char failed_text[AG_DIST_TEXT_MAX];
    ag_ddp_stats stats;
};

/* Starts, in order, every bucket whose gradients are all in. Returns 0,
 * or -1 with an error (MPI failed; d is broken then). */
static int start_ready(ag_ddp *ddp, const char *func)
{
    while (ddp->next < ddp->n_buckets && !ddp->buckets[ddp->next].pending) {
        bucket *b = &ddp->buckets[ddp->next];
        b->early = ddp->in_pass;
        int rc = MPI_Iallreduce(MPI_IN_PLACE, ag_data(b->sums), (int)b->numel,
                                ag__dist_type(b->dtype), MPI_SUM, ddp->d->data,
                                &ddp->reqs[ddp->next]);
        if (rc)
            return ag__dist_mpi_error(func, rc, "MPI_Iallreduce"),
                   ag__dist_break(ddp->d);
        ddp->next++;
    }
    return 0;
}

/* Puts e's gradient (zeros if it has none) into its bucket. */
static void pack(entry *e)
{
    bucket *b = &e->ddp->buckets[e->bucket];
    size_t elem = b->dtype == AG_F64 ? sizeof(double) : sizeof(float);
    char *dst = (char *)ag_data(b->sums) + (size_t)e->offset * elem;
    ag_tensor *g = ag_grad(e->t);
    if (g)
        memcpy(dst, ag_data(g), (size_t)ag_numel(e->t) * elem);
    else
        memset(dst, 0, (size_t)ag_numel(e->t) * elem);
    e->ready = true;
    b->pending--;
}

/* The gradient hook: packs the final gradient, starts what is ready, and
 * moves the running sums on. */
static int gradient_ready(ag_tensor *t, void *user)
{
    (void)t;
    entry *e = user;
    ag_ddp *ddp = e->ddp;
    if (!ddp->in_pass || e->ready) return 0; /* a plain ag_backward */
    pack(e);
    if (ddp->no_overlap) return 0;
    if (start_ready(ddp, "ag_ddp_backward")) return -1;
    int all;
    MPI_Testall(ddp->next, ddp->reqs, &all, MPI_STATUSES_IGNORE);
    return 0;
}

/* ---- making it ---- */

/* Appends "kind name dtype shape\n" for every tensor of p to *text (a
 * malloc'd string of *len bytes); 0, or -1 when out of memory. */
static int describe(char **text, size_t *len, const char *kind,
                    const ag_params *p)
{
    for (int i = 0; i < ag_params_count(p); i++) {
        char shape[160];
        ag__dist_describe(shape, sizeof shape, ag_params_tensor(p, i));
        size_t need =
            strlen(kind) + strlen(ag_params_name(p, i)) + strlen(shape) + 4;
        char *grown = realloc(*text, *len + need);
        if (!grown) return -1;
        *text = grown;
        *len += (size_t)snprintf(*text + *len, need, "%s %s %s\n", kind,
                                 ag_params_name(p, i), shape);
    }
    return 0;
}

/* Line k (from 0) of text, into buf: its length, or -1 past the end. */
static int line_at(const char *text, int k, char *buf, size_t size)
{
    for (; k > 0 && text; k--) {
        text = strchr(text, '\n');
        if (text) text++;
    }
    if (!text || !*text) return -1;
    size_t n = strcspn(text, "\n");
    if (n >= size) n = size - 1;
    memcpy(buf, text, n);
    buf[n] = '\0';
    return (int)n;
}

/* Compares this rank's description `mine` with rank 0's `theirs`: 0, or
 * -1 with an error naming the first entry that differs. */
static int compare_models(const char *func, const char *mine,
                          const char *theirs)
{
    if (!strcmp(mine, theirs)) return 0;
    char a[200], b[200];
    int k = 0;
    for (;; k++) {
        int la = line_at(mine, k, a, sizeof a);
        int lb = line_at(theirs, k, b, sizeof b);
        if (la < 0 || lb < 0) {
            int count_a = k, count_b = k;
            while (line_at(mine, count_a, a, sizeof a) >= 0) count_a++;
            while (line_at(theirs, count_b, b, sizeof b) >= 0) count_b++;
            ag_set_error(func,
                         "this process's model differs from rank 0's: it "
                         "has %d parameters and buffers here, %d on rank 0",
                         count_a, count_b);
            return -1;
        }
        if (strcmp(a, b)) break;
    }
    ag_set_error(func,
                 "this process's model differs from rank 0's: entry %d is "
                 "'%s' here, '%s' on rank 0",
                 k, a, b);
    return -1;
}

/* Every rank gets rank 0's description of the model (data communicator)
 * into *theirs (malloc'd); 0, or -1 with an error (d broken). */
static int share_description(ag_dist *d, const char *func, const char *mine,
                             size_t len, char **theirs)
{
    int64_t n = (int64_t)len;
    MPI_Request req;
    int rc = MPI_Ibcast(&n, 1, MPI_INT64_T, 0, d->data, &req);
    if (rc)
        return ag__dist_mpi_error(func, rc, "MPI_Ibcast"), ag__dist_break(d);
    if (ag__dist_wait(d, func, 1, &req, "sharing the model's description"))
        return -1;
    if (n < 0 || n >= INT32_MAX || !(*theirs = calloc((size_t)n + 1, 1))) {
        /* the others wait for the next broadcast in vain: they time out */
        ag_set_error(func, "no memory for rank 0's description (%lld bytes)",
                     (long long)n);
        return ag__dist_break(d);
    }
    if (d->rank == 0) memcpy(*theirs, mine, (size_t)n);
    rc = MPI_Ibcast(*theirs, (int)n, MPI_CHAR, 0, d->data, &req);
    if (rc)
        return ag__dist_mpi_error(func, rc, "MPI_Ibcast"), ag__dist_break(d);
    return ag__dist_wait(d, func, 1, &req, "sharing the model's description");
}

/* Copies rank 0's values of every tensor of p to every rank. */
static int broadcast_all(ag_dist *d, const char *func, const ag_params *p)
{
    int n = ag_params_count(p);
    if (!n) return 0;
    MPI_Request *reqs = malloc((size_t)n * sizeof *reqs);
    int rc = 0, started = 0;
    if (!reqs) {
        ag_set_error(func, "out of memory");
        return ag__dist_break(d); /* the others time out */
    }
    for (; started < n && !rc; started++) {
        ag_tensor *t = ag_params_tensor(p, started);
        rc = MPI_Ibcast(ag_data(t), (int)ag_numel(t), ag__dist_type(ag_type(t)),
                        0, d->data, &reqs[started]);
    }
    if (rc)
        rc = ag__dist_mpi_error(func, rc, "MPI_Ibcast"), ag__dist_break(d);
    else
        rc = ag__dist_wait(d, func, n, reqs, "the broadcast of rank 0's model");
    free(reqs);
    return rc;
}

/* Checks ag_ddp_new's arguments and makes the entries and buckets (in
 * arena a); 0, or -1 with an error. */
static int build(ag_ddp *ddp, ag_arena *a, ag_params *params,
                 const ag_params *buffers, const ag_ddp_options *o)
{
    const char *func = "ag_ddp_new";
    if (!a || !params) {
        ag_set_error(func, "%s is NULL", !a ? "arena" : "params");
        return -1;
    }
    int64_t cap = o && o->bucket_bytes ? o->bucket_bytes : DEFAULT_BUCKET_BYTES;
    if (cap < 0) {
        ag_set_error(func, "bucket_bytes must be >= 0, got %lld",
                     (long long)cap);
        return -1;
    }
    int n = ag_params_count(params);
    for (int i = 0; i < n; i++)
        if (ag__dist_check_count(func, ag_params_name(params, i),
                                 ag_params_tensor(params, i)))
            return -1;
    for (int i = 0; i < ag_params_count(buffers); i++)
        if (ag__dist_check_count(func, ag_params_name(buffers, i),
                                 ag_params_tensor(buffers, i)))
            return -1;
    ddp->entries = ag_arena_alloc(a, (size_t)(n ? n : 1) * sizeof(entry));
    ddp->buckets = ag_arena_alloc(a, (size_t)(n ? n : 1) * sizeof(bucket));
    ddp->reqs = ag_arena_alloc(a, (size_t)(n ? n : 1) * sizeof(MPI_Request));
    if (!ddp->entries || !ddp->buckets || !ddp->reqs) return -1;
    /* reverse order: the last parameters are the first to be final */
    bucket *b = NULL;
    for (int i = n - 1; i >= 0; i--) {
        ag_tensor *t = ag_params_tensor(params, i);
        if (!ag_is_requires_grad(t)) continue;
        int64_t elem = ag_type(t) == AG_F64 ? 8 : 4;
        if (!b || b->dtype != ag_type(t) ||
            (b->numel + ag_numel(t)) * elem > cap ||
            b->numel + ag_numel(t) > INT32_MAX) {
            b = &ddp->buckets[ddp->n_buckets++];
            *b = (bucket){.dtype = ag_type(t)};
        }
        ddp->entries[ddp->n_entries++] =
            (entry){.ddp = ddp,
                    .t = t,
                    .name = ag_params_name(params, i),
                    .bucket = (int)(b - ddp->buckets),
                    .offset = b->numel};
        b->numel += ag_numel(t);
        b->params++;
    }
    if (!ddp->n_entries) {
        ag_set_error(func, "no parameter of the %d requires a gradient", n);
        return -1;
    }
    for (int k = 0; k < ddp->n_buckets; k++) {
        bucket *bk = &ddp->buckets[k];
        bk->sums = ag_zeros(a, bk->dtype, 1, (int64_t[]){bk->numel});
        if (!bk->sums) return -1;
        ddp->reqs[k] = MPI_REQUEST_NULL;
    }
    ddp->no_overlap = o && o->no_overlap;
    ddp->sync = true;
    return 0;
}

ag_ddp *ag_ddp_new(ag_arena *a, ag_dist *d, ag_params *params,
                   ag_params *buffers, const ag_ddp_options *options)
{
    const char *func = "ag_ddp_new";
    if (ag__dist_usable(func, d)) return NULL;
    ag_ddp *ddp = a ? ag_arena_alloc(a, sizeof *ddp) : NULL;
    int status = -1;
    if (ddp) {
        ddp->d = d;
        status = build(ddp, a, params, buffers, options);
    } else if (!a) {
        ag_set_error(func, "arena is NULL");
    }
    /* every rank learns whether all could start, then compares models */
    if (ag__dist_check(d, func, status, NULL)) return NULL;
    char *mine = NULL, *theirs = NULL;
    size_t len = 0;
    status = describe(&mine, &len, "parameter", params) ||
                     describe(&mine, &len, "buffer", buffers)
                 ? -1
                 : 0;
    if (status) ag_set_error(func, "out of memory describing the model");
    if (share_description(d, func, status ? "" : mine, status ? 0 : len,
                          &theirs)) {
        free(mine);
        free(theirs);
        return NULL;
    }
    if (!status) status = compare_models(func, mine, theirs);
    free(mine);
    free(theirs);
    if (ag__dist_check(d, func, status, NULL) ||
        broadcast_all(d, func, params) || broadcast_all(d, func, buffers))
        return NULL;
    for (int i = 0; i < ddp->n_entries; i++)
        ag_set_grad_hook(ddp->entries[i].t, gradient_ready, &ddp->entries[i]);
    ddp->stats.buckets = ddp->n_buckets;
    return ddp;
}

/* ---- the step ---- */

void ag_ddp_set_sync(ag_ddp *ddp, bool on)
{
    if (ddp) ddp->sync = on;
}

/* ag_backward(loss), or -1 keeping the pending message for a NULL loss. */
static int local_backward(const char *func, ag_tensor *loss)
{
    if (loss) return ag_backward(loss);
    if (!ag_last_error()[0]) ag_set_error(func, "the loss is NULL");
    return -1;
}

/* After the pass: packs what no hook packed (every bucket when this rank
 * failed, so that the sums still match), or finds a parameter without a
 * gradient. Returns the local status. */
static int pack_rest(ag_ddp *ddp, const char *func, int status)
{
    for (int i = 0; i < ddp->n_entries; i++) {
        entry *e = &ddp->entries[i];
        if (e->ready) continue;
        if (!status && !ag_grad(e->t)) {
            ag_set_error(func,
                         "parameter '%s' got no gradient: the loss does not "
                         "use it (every parameter must get one on every rank)",
                         e->name);
            status = -1;
        }
        pack(e);
    }
    return status;
}

int ag_ddp_backward(ag_ddp *ddp, ag_tensor *loss)
{
    const char *func = "ag_ddp_backward";
    if (!ddp) {
        ag_set_error(func, "ddp is NULL");
        return -1;
    }
    if (ag__dist_usable(func, ddp->d)) return -1;
    if (!ddp->sync) {
        if (!local_backward(func, loss)) return 0;
        if (!ddp->failed_alone) /* the first failure is the one to tell */
            snprintf(ddp->failed_text, sizeof ddp->failed_text, "%s",
                     ag_last_error());
        ddp->failed_alone = true;
        return -1;
    }
    double start = ag__dist_now();
    for (int i = 0; i < ddp->n_entries; i++) ddp->entries[i].ready = false;
    for (int k = 0; k < ddp->n_buckets; k++) {
        ddp->buckets[k].pending = ddp->buckets[k].params;
        ddp->buckets[k].early = false;
    }
    ddp->next = 0;
    ddp->in_pass = true;
    int status = local_backward(func, loss);
    ddp->in_pass = false;
    if (ag_dist_broken(ddp->d)) return -1; /* a hook could not start a sum */
    if (!status && ddp->failed_alone) {
        ag_set_error(func, "in a step without sync: %s", ddp->failed_text);
        status = -1;
    }
    ddp->failed_alone = false;
    status = pack_rest(ddp, func, status);
    if (start_ready(ddp, func)) return -1;
    double waiting = ag__dist_now();
    status = ag__dist_check(ddp->d, func, status, NULL);
    if (ag_dist_broken(ddp->d)) return -1;
    /* the sums were started on every rank: they finish (a wait that
     * succeeds leaves the agreement's message as it is) */
    if (ag__dist_wait(ddp->d, func, ddp->n_buckets, ddp->reqs,
                      "the sums of the gradients") ||
        status)
        return -1;
    for (int i = 0; i < ddp->n_entries; i++) {
        entry *e = &ddp->entries[i];
        bucket *b = &ddp->buckets[e->bucket];
        int64_t n = ag_numel(e->t);
        if (b->dtype == AG_F64) {
            const double *s = (const double *)ag_data(b->sums) + e->offset;
            double *g = ag_data(ag_grad(e->t)), p = ddp->d->size;
            for (int64_t j = 0; j < n; j++) g[j] = s[j] / p;
        } else {
            const float *s = (const float *)ag_data(b->sums) + e->offset;
            float *g = ag_data(ag_grad(e->t)), p = (float)ddp->d->size;
            for (int64_t j = 0; j < n; j++) g[j] = s[j] / p;
        }
    }
    double end = ag__dist_now();
    ddp->stats.started_early = 0;
    for (int k = 0; k < ddp->n_buckets; k++)
        ddp->stats.started_early += ddp->buckets[k].early;
    ddp->stats.wait_seconds = end - waiting;
    ddp->stats.total_seconds = end - start;
    return 0;
}

int ag_ddp_save(ag_ddp *ddp, const char *path, const ag_params *state,
                const char *const *metadata)
{
    const char *func = "ag_ddp_save";
    if (!ddp) {
        ag_set_error(func, "ddp is NULL");
        return -1;
    }
    if (ag__dist_usable(func, ddp->d)) return -1;
    int status = 0;
    if (ddp->d->rank == 0) status = ag_save_safetensors(path, state, metadata);
    return ag__dist_check(ddp->d, func, status, NULL);
}

ag_ddp_stats ag_ddp_get_stats(const ag_ddp *ddp)
{
    return ddp ? ddp->stats : (ag_ddp_stats){0};
}

void ag_ddp_detach(ag_ddp *ddp)
{
    if (!ddp) return;
    for (int i = 0; i < ddp->n_entries; i++)
        ag_set_grad_hook(ddp->entries[i].t, NULL, NULL);
    ddp->n_entries = 0;
}
