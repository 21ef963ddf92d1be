/* pp.c: pipeline parallelism: a model's layers split into stages, one per
 * rank (rank 0 the first), and each batch split into micro-batches that
 * flow through the stages, so that the stages work at once on different
 * micro-batches.
 *
 * Stage r runs, for micro-batch m, forward: its input (rank 0: rows of the
 * batch; the others: the activation rank r - 1 sends) through its layers,
 * the output sent on to rank r + 1 (the last stage takes the loss instead,
 * divided by the number of micro-batches, so that the gradients are the
 * whole batch's); and backward: from the gradient of its output that rank
 * r + 1 sends back (the last stage: from its loss), by ag_backward of
 * sum(output * gradient), whose gradient with respect to the output is
 * exactly that gradient; the gradient of its input goes to rank r - 1.
 * The parameters' gradients accumulate over the micro-batches, as over
 * the backward passes of gradient accumulation.
 *
 * Schedules: GPipe runs every forward, then every backward; 1F1B (as
 * PipeDream-Flush and Megatron-LM) runs S - r - 1 forwards, then one
 * forward and one backward in turn, then the backwards left, so that a
 * stage keeps at most S - r micro-batches' activations rather than all.
 * Sends never wait (each is waited for at the end of the step); receives
 * wait, with the timeout, and a stage that fails tells the others. */
#include "dist_internal.h"

#include <stdlib.h>
#include <string.h>

/* A transfer's header: dtype, ndim, shape. */
typedef struct {
    int64_t dtype, ndim, shape[AG_MAX_DIMS];
} header;

typedef struct {
    ag_tensor *in, *out, *loss; /* input leaf, output, scaled loss */
    header sent[2];             /* of the forward and backward sends */
} micro;

struct ag_pipeline {
    ag_dist *d;
    ag_module *stage;
    int micro_batches;
    ag_pipe_schedule schedule;
    ag_pipe_loss loss;
    void *user;
    micro *m;           /* micro_batches of them */
    MPI_Request *sends; /* 4 per micro-batch: header and data, two ways */
    int n_sends;
};

enum { FORWARD = 0, BACKWARD = 1 };

/* Tags: micro-batch m, direction. */
static int tag_of(int m, int dir)
{
    return 2 * m + dir;
}

ag_pipeline *ag_pipeline_new(ag_arena *a, ag_dist *d, ag_module *stage,
                             int micro_batches, ag_pipe_schedule schedule,
                             ag_pipe_loss loss, void *user)
{
    const char *func = "ag_pipeline_new";
    if (ag__dist_usable(func, d)) return NULL;
    ag_pipeline *p = NULL;
    int status = -1;
    bool last = d->rank == d->size - 1;
    if (!a || !stage)
        ag_set_error(func, "%s is NULL", !a ? "arena" : "the stage");
    else if (micro_batches < 1 || micro_batches > (INT32_MAX - 1) / 2)
        ag_set_error(func, "micro_batches must be in [1, 2^30), got %d",
                     micro_batches);
    else if (schedule != AG_PIPE_GPIPE && schedule != AG_PIPE_1F1B)
        ag_set_error(func, "unknown schedule %d", (int)schedule);
    else if (last && !loss)
        ag_set_error(func, "the last stage needs a loss function");
    else if ((p = ag_arena_alloc(a, sizeof *p)) &&
             (p->m = ag_arena_alloc(a, (size_t)micro_batches * sizeof *p->m)) &&
             (p->sends = ag_arena_alloc(a, (size_t)micro_batches * 4 *
                                               sizeof *p->sends))) {
        p->d = d;
        p->stage = stage;
        p->micro_batches = micro_batches;
        p->schedule = schedule;
        p->loss = loss;
        p->user = user;
        status = 0;
    }
    char desc[64];
    snprintf(desc, sizeof desc, "%d micro-batches, schedule %d", micro_batches,
             (int)schedule);
    return ag__dist_check(d, func, status, status ? "" : desc) ? NULL : p;
}

/* Sends t to rank `to` (header, then data), without waiting. */
static int send_tensor(ag_pipeline *p, header *h, ag_tensor *t, int to, int tag)
{
    *h = (header){.dtype = ag_type(t), .ndim = ag_ndim(t)};
    memcpy(h->shape, ag_shape(t), (size_t)ag_ndim(t) * sizeof *h->shape);
    int rc = MPI_Isend(h, sizeof *h, MPI_BYTE, to, tag, p->d->data,
                       &p->sends[p->n_sends++]);
    if (!rc)
        rc = MPI_Isend(ag_data(t), (int)ag_numel(t), ag__dist_type(ag_type(t)),
                       to, tag, p->d->data, &p->sends[p->n_sends++]);
    if (rc)
        return ag__dist_mpi_error("ag_pipeline_step", rc, "MPI_Isend"),
               ag__dist_break(p->d);
    return 0;
}

/* Receives a tensor from rank `from` into a new tensor of `a`, or NULL
 * with an error (d broken). */
static ag_tensor *recv_tensor(ag_pipeline *p, ag_arena *a, int from, int tag)
{
    const char *func = "ag_pipeline_step";
    header h;
    MPI_Request req;
    int rc = MPI_Irecv(&h, sizeof h, MPI_BYTE, from, tag, p->d->data, &req);
    if (rc) return ag__dist_mpi_error(func, rc, "MPI_Irecv"), NULL;
    if (ag__dist_wait(p->d, func, 1, &req, "receiving from another stage"))
        return NULL;
    ag_tensor *t = NULL;
    if (h.ndim >= 0 && h.ndim <= AG_MAX_DIMS &&
        (h.dtype == AG_F32 || h.dtype == AG_F64))
        t = ag_zeros(a, (ag_dtype)h.dtype, (int)h.ndim, h.shape);
    if (!t || ag__dist_check_count(func, "the activation", t)) {
        ag__dist_notify(p->d, func);
        return NULL;
    }
    rc = MPI_Irecv(ag_data(t), (int)ag_numel(t), ag__dist_type(ag_type(t)),
                   from, tag, p->d->data, &req);
    if (rc) return ag__dist_mpi_error(func, rc, "MPI_Irecv"), NULL;
    return ag__dist_wait(p->d, func, 1, &req, "receiving from another stage")
               ? NULL
               : t;
}

/* A copy of rows [lo, hi) of t (axis 0; any dtype: targets are often
 * i32), without history: the pipeline gives x no gradient. */
static ag_tensor *rows(ag_arena *a, ag_tensor *t, int64_t lo, int64_t hi)
{
    int64_t shape[AG_MAX_DIMS];
    memcpy(shape, ag_shape(t), (size_t)ag_ndim(t) * sizeof *shape);
    shape[0] = hi - lo;
    size_t row = ag_numel(t) / ag_shape(t)[0] *
                 (ag_type(t) == AG_F64 ? sizeof(double) : sizeof(float));
    return ag_from_data(a, ag_type(t), ag_ndim(t), shape,
                        (const char *)ag_data(t) + (size_t)lo * row);
}

/* The forward of micro-batch k on this stage. */
static int forward(ag_pipeline *p, ag_arena *a, int k, ag_tensor *x,
                   ag_tensor *y, double *loss_sum)
{
    ag_dist *d = p->d;
    micro *mb = &p->m[k];
    int64_t n = 0;
    if (d->rank == 0 || d->rank == d->size - 1) {
        ag_tensor *batch = d->rank == 0 ? x : y;
        n = ag_ndim(batch) ? ag_shape(batch)[0] / p->micro_batches : 0;
    }
    if (d->rank == 0) {
        mb->in = rows(a, x, n * k, n * (k + 1));
    } else {
        mb->in = recv_tensor(p, a, d->rank - 1, tag_of(k, FORWARD));
        if (!mb->in) return -1;
        ag_requires_grad(mb->in, true);
    }
    mb->out = ag_module_forward(p->stage, a, mb->in);
    if (mb->out && d->rank == d->size - 1) {
        ag_tensor *l =
            p->loss(a, mb->out, rows(a, y, n * k, n * (k + 1)), p->user);
        if (l) *loss_sum += ag_item(l);
        mb->loss = l ? ag_scale(a, l, 1.0 / p->micro_batches) : NULL;
        if (!mb->loss) return ag__dist_notify(d, "ag_pipeline_step");
        return 0;
    }
    if (!mb->out) return ag__dist_notify(d, "ag_pipeline_step");
    return send_tensor(p, &mb->sent[FORWARD], mb->out, d->rank + 1,
                       tag_of(k, FORWARD));
}

/* The backward of micro-batch k on this stage. */
static int backward(ag_pipeline *p, ag_arena *a, int k)
{
    ag_dist *d = p->d;
    micro *mb = &p->m[k];
    ag_tensor *seed = mb->loss;
    if (d->rank < d->size - 1) {
        ag_tensor *g = recv_tensor(p, a, d->rank + 1, tag_of(k, BACKWARD));
        if (!g) return -1;
        seed = ag_sum(a, ag_mul(a, mb->out, g), AG_ALL, false);
    }
    if (!seed || ag_backward(seed))
        return ag__dist_notify(d, "ag_pipeline_step");
    if (d->rank == 0) return 0;
    ag_tensor *gin = ag_grad(mb->in);
    if (!gin) {
        ag_set_error("ag_pipeline_step",
                     "the stage's output does not depend on its input");
        return ag__dist_notify(d, "ag_pipeline_step");
    }
    return send_tensor(p, &mb->sent[BACKWARD], gin, d->rank - 1,
                       tag_of(k, BACKWARD));
}

/* Runs the schedule; 0 or -1. */
static int run_schedule(ag_pipeline *p, ag_arena *a, ag_tensor *x, ag_tensor *y,
                        double *loss_sum)
{
    int m = p->micro_batches;
    if (p->schedule == AG_PIPE_GPIPE) {
        for (int k = 0; k < m; k++)
            if (forward(p, a, k, x, y, loss_sum)) return -1;
        for (int k = 0; k < m; k++)
            if (backward(p, a, k)) return -1;
        return 0;
    }
    int warm = p->d->size - p->d->rank - 1;
    if (warm > m) warm = m;
    for (int k = 0; k < warm; k++)
        if (forward(p, a, k, x, y, loss_sum)) return -1;
    for (int k = warm; k < m; k++)
        if (forward(p, a, k, x, y, loss_sum) || backward(p, a, k - warm))
            return -1;
    for (int k = m - warm; k < m; k++)
        if (backward(p, a, k)) return -1;
    return 0;
}

/* Checks the batch on the first stage and the targets on the last. */
static int check_batch(const ag_pipeline *p, ag_tensor *x, ag_tensor *y)
{
    const char *func = "ag_pipeline_step";
    ag_dist *d = p->d;
    ag_tensor *t[2] = {d->rank == 0 ? x : NULL,
                       d->rank == d->size - 1 ? y : NULL};
    for (int i = 0; i < 2; i++) {
        bool needed = i ? d->rank == d->size - 1 : d->rank == 0;
        if (!needed) continue;
        if (!t[i]) {
            if (!ag_last_error()[0])
                ag_set_error(func, "%s is NULL", i ? "y" : "x");
            return -1;
        }
        if (!ag_ndim(t[i]) || ag_shape(t[i])[0] % p->micro_batches) {
            ag_set_error(func,
                         "%s's first axis (%lld) does not split into %d "
                         "micro-batches",
                         i ? "y" : "x",
                         (long long)(ag_ndim(t[i]) ? ag_shape(t[i])[0] : 0),
                         p->micro_batches);
            return -1;
        }
    }
    return 0;
}

int ag_pipeline_step(ag_pipeline *p, ag_arena *step, ag_tensor *x, ag_tensor *y,
                     double *loss)
{
    const char *func = "ag_pipeline_step";
    if (!p) {
        ag_set_error(func, "the pipeline is NULL");
        return -1;
    }
    if (ag__dist_usable(func, p->d)) return -1;
    if (loss) *loss = 0;
    int status = step ? check_batch(p, x, y) : -1;
    if (!step) ag_set_error(func, "the arena is NULL");
    if (ag__dist_check(p->d, func, status, NULL)) return -1;
    double loss_sum = 0;
    p->n_sends = 0;
    if (run_schedule(p, step, x, y, &loss_sum) ||
        ag__dist_wait(p->d, func, p->n_sends, p->sends, "the stages' sends"))
        return -1;
    /* the mean loss, from the last stage to every rank */
    double mean = loss_sum / p->micro_batches;
    MPI_Request req;
    int rc = MPI_Ibcast(&mean, 1, MPI_DOUBLE, p->d->size - 1, p->d->data, &req);
    if (rc)
        return ag__dist_mpi_error(func, rc, "MPI_Ibcast"), ag__dist_break(p->d);
    if (ag__dist_wait(p->d, func, 1, &req, "the loss")) return -1;
    if (loss) *loss = mean;
    return 0;
}
