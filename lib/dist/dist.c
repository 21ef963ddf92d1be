/* dist.c: the processes of a job over MPI: starting and ending, waiting
 * with a deadline, the agreement that carries one rank's failure to every
 * rank (ag_dist_check), failure notices, and the collectives on tensors.
 *
 * The agreement is a star: every rank sends rank 0 its status, rank 0
 * waits for all of them (so it knows which rank is silent when one is) and
 * sends every rank the verdict. Its messages, and the notices a failing
 * rank sends from inside a collective, travel on a communicator of their
 * own (ctrl), so that they never match the collectives on tensors (data). */
#define _POSIX_C_SOURCE 200809L
#include "dist_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { TAG_STATUS = 1, TAG_VERDICT = 2, TAG_NOTICE = 3 };

/* What each rank tells rank 0 in an agreement. */
typedef struct {
    int32_t status, seq;
    char where[48];              /* the function that asks */
    char desc[128];              /* its arguments, to compare */
    char text[AG_DIST_TEXT_MAX]; /* the error, when status != 0 */
} status_msg;

/* Rank 0's answer: ok, or why not (and whether d is broken). */
typedef struct {
    int32_t ok, broken;
    char text[AG_DIST_TEXT_MAX];
} verdict_msg;

/* The buffers and requests of an agreement: this rank's status and the
 * verdict; on rank 0, the other ranks' statuses (in[r] from rank r + 1),
 * whether each came, and the requests. */
struct ag_dist_msgs {
    status_msg own;
    verdict_msg verdict;
    status_msg *in;
    int *done;
    MPI_Request *recvs, *sends;
};

double ag__dist_now(void)
{
    return MPI_Wtime();
}

int ag__dist_mpi_error(const char *func, int rc, const char *what)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) len = 0;
    text[len] = '\0';
    ag_set_error(func, "%s failed: MPI error %d (%s)", what, rc,
                 len ? text : "unknown");
    return -1;
}

int ag__dist_break(ag_dist *d)
{
    if (!d->broken) {
        snprintf(d->broken_text, sizeof d->broken_text, "%s", ag_last_error());
        d->broken = true;
    }
    return -1;
}

int ag__dist_usable(const char *func, ag_dist *d)
{
    if (!d) {
        ag_set_error(func, "the process group is NULL");
        return -1;
    }
    if (d->broken) {
        ag_set_error(func, "communication broke down earlier: %s",
                     d->broken_text);
        return -1;
    }
    return 0;
}

/* Sleeps about `us` microseconds. */
static void pause_us(long us)
{
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

/* `text` without a leading "func: " (the caller adds its own). */
static const char *without_prefix(const char *text, const char *func)
{
    size_t n = strlen(func);
    if (!strncmp(text, func, n) && !strncmp(text + n, ": ", 2))
        return text + n + 2;
    return text;
}

/* Receives a failure notice when one has come: sets func's error naming
 * its rank, breaks d and returns -1; 0 when none. */
static int take_notice(ag_dist *d, const char *func)
{
    int flag = 0;
    MPI_Status st;
    int rc = MPI_Iprobe(MPI_ANY_SOURCE, TAG_NOTICE, d->ctrl, &flag, &st);
    if (rc)
        return ag__dist_mpi_error(func, rc, "MPI_Iprobe"), ag__dist_break(d);
    if (!flag) return 0;
    char text[AG_DIST_TEXT_MAX] = "";
    rc = MPI_Recv(text, sizeof text, MPI_CHAR, st.MPI_SOURCE, TAG_NOTICE,
                  d->ctrl, MPI_STATUS_IGNORE);
    text[sizeof text - 1] = '\0';
    if (rc) return ag__dist_mpi_error(func, rc, "MPI_Recv"), ag__dist_break(d);
    ag_set_error(func, "rank %d: %s", st.MPI_SOURCE,
                 without_prefix(text, func));
    return ag__dist_break(d);
}

/* Polls the n requests until all completed (0) or the deadline passed (1,
 * with done[i] saying which completed when done is not NULL), watching
 * for notices when `notices`; -1 with an error (a notice, or MPI
 * failing). Waits that cannot hang on a failed rank (rank 0's verdicts,
 * whose receives are posted before the statuses are sent) leave notices
 * for later: one may come from a rank that already got its verdict and
 * failed after it. */
static int poll_until(ag_dist *d, const char *func, int n, MPI_Request *reqs,
                      double deadline, int *done, bool notices)
{
    double start = ag__dist_now();
    for (;;) {
        int all = 0;
        int rc = MPI_Testall(n, reqs, &all, MPI_STATUSES_IGNORE);
        if (rc) return ag__dist_mpi_error(func, rc, "MPI_Testall");
        if (all) return 0;
        if (notices && take_notice(d, func)) return -1;
        double now = ag__dist_now();
        if (now > deadline) break;
        /* spin briefly (a step's sums take microseconds to milliseconds),
         * then leave the core to the other processes */
        if (now - start > 2e-4) pause_us(20);
    }
    for (int i = 0; done && i < n; i++) {
        int rc = MPI_Test(&reqs[i], &done[i], MPI_STATUS_IGNORE);
        if (rc) return ag__dist_mpi_error(func, rc, "MPI_Test");
    }
    return 1;
}

int ag__dist_wait(ag_dist *d, const char *func, int n, MPI_Request *reqs,
                  const char *what)
{
    if (ag__dist_usable(func, d)) return -1;
    int rc =
        poll_until(d, func, n, reqs, ag__dist_now() + d->timeout, NULL, true);
    if (rc > 0)
        ag_set_error(func,
                     "%s did not finish within %g s: some rank did not take "
                     "part (hung, or called collective functions in another "
                     "order)",
                     what, d->timeout);
    return rc ? ag__dist_break(d) : 0;
}

int ag__dist_notify(ag_dist *d, const char *func)
{
    if (!d || d->broken) return -1;
    const char *text = ag_last_error()[0] ? ag_last_error() : "failed";
    /* the notices are sent from broken_text, which outlives the sends */
    snprintf(d->broken_text, sizeof d->broken_text, "%s", text);
    d->broken = true;
    for (int r = 0; r < d->size; r++) {
        if (r == d->rank) continue;
        MPI_Request req;
        if (MPI_Isend(d->broken_text, (int)strlen(d->broken_text) + 1, MPI_CHAR,
                      r, TAG_NOTICE, d->ctrl, &req) == MPI_SUCCESS)
            MPI_Request_free(&req);
    }
    (void)func;
    return -1;
}

MPI_Datatype ag__dist_type(ag_dtype dt)
{
    return dt == AG_F64 ? MPI_DOUBLE : dt == AG_F32 ? MPI_FLOAT : MPI_INT32_T;
}

const char *ag__dist_describe(char *buf, size_t size, const ag_tensor *t)
{
    int used = snprintf(buf, size, "%s (", ag_dtype_name(ag_type(t)));
    for (int i = 0; i < ag_ndim(t) && used > 0 && (size_t)used < size; i++)
        used += snprintf(buf + used, size - (size_t)used, "%s%lld",
                         i ? "," : "", (long long)ag_shape(t)[i]);
    if (used > 0 && (size_t)used < size)
        snprintf(buf + used, size - (size_t)used, ")");
    return buf;
}

int ag__dist_check_count(const char *func, const char *name, const ag_tensor *t)
{
    if (!t) {
        if (!ag_last_error()[0]) ag_set_error(func, "%s is NULL", name);
        return -1;
    }
    if (ag_numel(t) > INT32_MAX) {
        ag_set_error(func, "%s has %lld elements; MPI counts stop at 2^31 - 1",
                     name, (long long)ag_numel(t));
        return -1;
    }
    return 0;
}

/* ---- starting and ending ---- */

/* Frees d's message buffers. */
static void free_msgs(ag_dist *d)
{
    if (!d->msgs) return;
    free(d->msgs->in);
    free(d->msgs->done);
    free(d->msgs->recvs);
    free(d->msgs->sends);
    free(d->msgs);
    d->msgs = NULL;
}

/* The timeout from the options or the environment: 0, or -1 with an
 * error. */
static int pick_timeout(const ag_dist_options *o, double *timeout)
{
    const char *func = "ag_dist_init";
    double t = o ? o->timeout : 0;
    if (!(t >= 0) || !isfinite(t)) {
        ag_set_error(func, "the timeout must be >= 0 and finite, got %g", t);
        return -1;
    }
    if (t == 0) {
        const char *env = getenv("AG_DIST_TIMEOUT");
        t = 300;
        if (env && *env) {
            char *end;
            t = strtod(env, &end);
            if (*end || !(t > 0) || !isfinite(t)) {
                ag_set_error(func,
                             "AG_DIST_TIMEOUT is \"%s\", not a positive "
                             "number of seconds",
                             env);
                return -1;
            }
        }
    }
    *timeout = t;
    return 0;
}

ag_dist *ag_dist_init(int *argc, char ***argv, const ag_dist_options *options)
{
    const char *func = "ag_dist_init";
    double timeout;
    if (pick_timeout(options, &timeout)) return NULL;
    int initialised = 0, provided = 0, rc;
    MPI_Initialized(&initialised);
    if (!initialised)
        rc = MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
    else
        rc = MPI_Query_thread(&provided);
    if (rc) {
        ag__dist_mpi_error(func, rc, "MPI_Init_thread");
        return NULL;
    }
    ag_dist *d = calloc(1, sizeof *d);
    if (!d) {
        ag_set_error(func, "out of memory");
        if (!initialised) MPI_Finalize();
        return NULL;
    }
    d->timeout = timeout;
    d->finalize_mpi = !initialised;
    d->data = d->ctrl = MPI_COMM_NULL;
    if (provided < MPI_THREAD_SERIALIZED) {
        ag_set_error(func,
                     "MPI gives thread level %d, below "
                     "MPI_THREAD_SERIALIZED",
                     provided);
        goto fail;
    }
    /* errors come back as codes, on the library's communicators only */
    if ((rc = MPI_Comm_dup(MPI_COMM_WORLD, &d->data)) ||
        (rc = MPI_Comm_dup(MPI_COMM_WORLD, &d->ctrl)) ||
        (rc = MPI_Comm_set_errhandler(d->data, MPI_ERRORS_RETURN)) ||
        (rc = MPI_Comm_set_errhandler(d->ctrl, MPI_ERRORS_RETURN)) ||
        (rc = MPI_Comm_rank(d->data, &d->rank)) ||
        (rc = MPI_Comm_size(d->data, &d->size))) {
        ag__dist_mpi_error(func, rc, "setting up the communicators");
        goto fail;
    }
    size_t n = d->rank == 0 ? (size_t)d->size - 1 : 0;
    d->msgs = calloc(1, sizeof *d->msgs);
    if (d->msgs && n) {
        d->msgs->in = calloc(n, sizeof *d->msgs->in);
        d->msgs->done = calloc(n, sizeof *d->msgs->done);
        d->msgs->recvs = calloc(n, sizeof *d->msgs->recvs);
        d->msgs->sends = calloc(n, sizeof *d->msgs->sends);
    }
    if (!d->msgs || (n && (!d->msgs->in || !d->msgs->done || !d->msgs->recvs ||
                           !d->msgs->sends))) {
        ag_set_error(func, "out of memory for the messages of %d ranks",
                     d->size);
        goto fail;
    }
    return d;

fail:
    if (d->data != MPI_COMM_NULL) MPI_Comm_free(&d->data);
    if (d->ctrl != MPI_COMM_NULL) MPI_Comm_free(&d->ctrl);
    if (d->finalize_mpi) MPI_Finalize();
    free_msgs(d);
    free(d);
    return NULL;
}

int ag_dist_rank(const ag_dist *d)
{
    return d ? d->rank : 0;
}

int ag_dist_size(const ag_dist *d)
{
    return d ? d->size : 1;
}

double ag_dist_timeout(const ag_dist *d)
{
    return d ? d->timeout : 0;
}

bool ag_dist_broken(const ag_dist *d)
{
    return d && d->broken;
}

void ag_dist_abort(ag_dist *d, int code)
{
    (void)d;
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
}

void ag_dist_finalize(ag_dist *d)
{
    if (!d) return;
    if (d->broken) {
        /* the others may be a moment from their own error (a notice on its
         * way): let them report it before the job ends, moving MPI on
         * meanwhile (a notice sent is delivered by later MPI calls) */
        fflush(stdout);
        fflush(stderr);
        for (double end = ag__dist_now() + 0.5; ag__dist_now() < end;) {
            int flag;
            MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, d->ctrl, &flag,
                       MPI_STATUS_IGNORE);
            pause_us(1000);
        }
        ag_dist_abort(d, 1);
    }
    MPI_Comm_free(&d->data);
    MPI_Comm_free(&d->ctrl);
    if (d->finalize_mpi) MPI_Finalize();
    free_msgs(d);
    free(d);
}

/* ---- the agreement ---- */

/* Rank 0's judgement of the n statuses `in` (of ranks 1..n; done[r]:
 * whether rank r + 1's came before the deadline, timed_out: not all did)
 * and its own: the verdict. */
static verdict_msg judge(ag_dist *d, const char *func, const status_msg *own,
                         const status_msg *in, const int *done, int n,
                         bool timed_out)
{
    verdict_msg v = {.ok = 0};
    if (timed_out) { /* some rank is silent */
        int first = -1, missing = 0;
        for (int r = 0; r < n; r++)
            if (!done[r]) {
                if (first < 0) first = r + 1;
                missing++;
            }
        snprintf(v.text, sizeof v.text,
                 "rank %d did not answer within %g s (hung, or gone)%s", first,
                 d->timeout, missing > 1 ? " (and more ranks did not)" : "");
        v.broken = 1;
        return v;
    }
    for (int r = 0; r < n; r++)
        if (in[r].seq != own->seq || strcmp(in[r].where, own->where)) {
            snprintf(v.text, sizeof v.text,
                     "rank %d is at its collective call %d (%.48s), rank 0 at "
                     "%d (%.48s): the ranks call collective functions in "
                     "different orders",
                     r + 1, in[r].seq, in[r].where, own->seq, own->where);
            v.broken = 1;
            return v;
        }
    /* the lowest failing rank, with a count of the others */
    int failed = own->status ? 1 : 0, first = own->status ? 0 : -1;
    for (int r = 0; r < n; r++)
        if (in[r].status) {
            if (first < 0) first = r + 1;
            failed++;
        }
    if (first >= 0) {
        const char *text = first ? in[first - 1].text : own->text;
        snprintf(v.text, sizeof v.text, "rank %d: %.480s", first,
                 without_prefix(text, func));
        if (failed > 1) {
            size_t used = strlen(v.text);
            snprintf(v.text + used, sizeof v.text - used, " (%d ranks failed)",
                     failed);
        }
        return v;
    }
    for (int r = 0; r < n; r++)
        if (strcmp(in[r].desc, own->desc)) {
            snprintf(v.text, sizeof v.text,
                     "rank %d passes %.120s, rank 0 %.120s", r + 1, in[r].desc,
                     own->desc);
            return v;
        }
    v.ok = 1;
    return v;
}

/* Rank 0's side: gathers every status, judges, answers every rank that
 * answered. */
static int check_root(ag_dist *d, const char *func)
{
    struct ag_dist_msgs *m = d->msgs;
    int n = d->size - 1, rc = 0;
    for (int r = 0; r < n && !rc; r++)
        if ((rc = MPI_Irecv(&m->in[r], sizeof m->in[r], MPI_BYTE, r + 1,
                            TAG_STATUS, d->ctrl, &m->recvs[r])))
            rc = ag__dist_mpi_error(func, rc, "MPI_Irecv");
    if (!rc)
        rc = poll_until(d, func, n, m->recvs, ag__dist_now() + d->timeout,
                        m->done, true);
    if (rc < 0) return ag__dist_break(d);
    bool timed_out = rc > 0;
    for (int r = 0; r < n && !timed_out; r++) m->done[r] = 1;
    m->verdict = judge(d, func, &m->own, m->in, m->done, n, timed_out);
    rc = 0;
    for (int r = 0; r < n && !rc; r++) {
        m->sends[r] = MPI_REQUEST_NULL;
        if (m->done[r] &&
            (rc = MPI_Isend(&m->verdict, sizeof m->verdict, MPI_BYTE, r + 1,
                            TAG_VERDICT, d->ctrl, &m->sends[r])))
            rc = ag__dist_mpi_error(func, rc, "MPI_Isend");
    }
    if (!rc) {
        rc = poll_until(d, func, n, m->sends, ag__dist_now() + d->timeout, NULL,
                        false);
        if (rc > 0)
            ag_set_error(func, "sending the verdict took over %g s",
                         d->timeout);
    }
    if (rc) return ag__dist_break(d);
    if (m->verdict.ok) return 0;
    ag_set_error(func, "%s", m->verdict.text);
    return m->verdict.broken ? ag__dist_break(d) : -1;
}

int ag__dist_check(ag_dist *d, const char *func, int status, const char *desc)
{
    if (ag__dist_usable(func, d)) return -1;
    status_msg *own = &d->msgs->own;
    verdict_msg *v = &d->msgs->verdict;
    *own = (status_msg){.status = status ? 1 : 0, .seq = ++d->checks};
    snprintf(own->where, sizeof own->where, "%s", func);
    snprintf(own->desc, sizeof own->desc, "%s", desc ? desc : "");
    if (status)
        snprintf(own->text, sizeof own->text, "%s",
                 ag_last_error()[0] ? ag_last_error() : "failed");
    if (d->size == 1) {
        if (status)
            ag_set_error(func, "rank 0: %s", without_prefix(own->text, func));
        return status ? -1 : 0;
    }
    if (d->rank == 0) return check_root(d, func);
    MPI_Request reqs[2];
    int rc =
        MPI_Irecv(v, sizeof *v, MPI_BYTE, 0, TAG_VERDICT, d->ctrl, &reqs[0]);
    if (!rc)
        rc = MPI_Isend(own, sizeof *own, MPI_BYTE, 0, TAG_STATUS, d->ctrl,
                       &reqs[1]);
    if (rc) return ag__dist_mpi_error(func, rc, "MPI_Isend"), ag__dist_break(d);
    /* rank 0 may wait a whole timeout for a silent rank before answering */
    rc = poll_until(d, func, 2, reqs, ag__dist_now() + 2 * d->timeout, NULL,
                    true);
    if (rc > 0)
        ag_set_error(func, "rank 0 did not answer within %g s (hung, or gone)",
                     2 * d->timeout);
    if (rc) return ag__dist_break(d);
    v->text[sizeof v->text - 1] = '\0';
    if (v->ok) return 0;
    ag_set_error(func, "%s", v->text);
    return v->broken ? ag__dist_break(d) : -1;
}

int ag_dist_check(ag_dist *d, int status)
{
    return ag__dist_check(d, "ag_dist_check", status, NULL);
}

/* ---- collectives on tensors ---- */

/* The checks every rank makes before a collective on t, then the
 * agreement on them and on t's dtype and shape (and `extra`). */
static int agree_on_tensor(ag_dist *d, const char *func, const ag_tensor *t,
                           int status, const char *extra)
{
    char desc[128] = "", shape[100];
    if (!status) status = ag__dist_check_count(func, "the tensor", t);
    if (!status)
        snprintf(desc, sizeof desc, "%s%s",
                 ag__dist_describe(shape, sizeof shape, t), extra);
    return ag__dist_check(d, func, status, desc);
}

int ag_dist_broadcast(ag_dist *d, ag_tensor *t, int root)
{
    const char *func = "ag_dist_broadcast";
    if (ag__dist_usable(func, d)) return -1;
    int status = 0;
    if (root < 0 || root >= d->size) {
        ag_set_error(func, "root %d is not one of the %d ranks", root, d->size);
        status = -1;
    }
    char extra[32];
    snprintf(extra, sizeof extra, " from rank %d", root);
    if (agree_on_tensor(d, func, t, status, extra)) return -1;
    MPI_Request req;
    int rc = MPI_Ibcast(ag_data(t), (int)ag_numel(t), ag__dist_type(ag_type(t)),
                        root, d->data, &req);
    if (rc)
        return ag__dist_mpi_error(func, rc, "MPI_Ibcast"), ag__dist_break(d);
    return ag__dist_wait(d, func, 1, &req, "the broadcast");
}

int ag__dist_sum(ag_dist *d, const char *func, ag_tensor *t)
{
    MPI_Request req;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, ag_data(t), (int)ag_numel(t),
                            ag__dist_type(ag_type(t)), MPI_SUM, d->data, &req);
    if (rc)
        return ag__dist_mpi_error(func, rc, "MPI_Iallreduce"),
               ag__dist_break(d);
    return ag__dist_wait(d, func, 1, &req, "the sum over the ranks");
}

int ag_dist_allreduce(ag_dist *d, ag_tensor *t, bool average)
{
    const char *func = "ag_dist_allreduce";
    if (ag__dist_usable(func, d)) return -1;
    int status = 0;
    if (t && average && ag_type(t) == AG_I32) {
        ag_set_error(func, "cannot average an i32 tensor");
        status = -1;
    }
    if (agree_on_tensor(d, func, t, status, average ? " averaged" : ""))
        return -1;
    if (ag__dist_sum(d, func, t)) return -1;
    if (average && ag_type(t) == AG_F64) {
        double *v = ag_data(t);
        for (int64_t i = 0; i < ag_numel(t); i++) v[i] /= d->size;
    } else if (average) {
        float *v = ag_data(t);
        for (int64_t i = 0; i < ag_numel(t); i++) v[i] /= (float)d->size;
    }
    return 0;
}
