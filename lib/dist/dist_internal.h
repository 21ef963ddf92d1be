/* dist_internal.h: what the files of libautograd-dist share: the process
 * group's struct, waiting with a deadline, the agreement between ranks, and
 * tensors as MPI buffers. Built only when MPI is found; never seen by the
 * core library. */
#ifndef AG_DIST_INTERNAL_H
#define AG_DIST_INTERNAL_H

#include <autograd.h>
#include <autograd/dist.h>
#include <mpi.h>

/* The longest error message carried from one rank to another. */
#define AG_DIST_TEXT_MAX 512

struct ag_dist {
    int rank, size;
    double timeout;
    /* data: the collectives on tensors; ctrl: the agreement's messages
     * and failure notices, on a communicator of their own so that they
     * never match a collective */
    MPI_Comm data, ctrl;
    bool finalize_mpi; /* ag_dist_init initialised MPI */
    bool broken;
    char broken_text[AG_DIST_TEXT_MAX]; /* why, when broken */
    int checks;                         /* agreements so far */
    /* the agreement's messages, kept here rather than on the stack: after
     * a timeout a late message may still land in them (d is broken then,
     * and ag_dist_finalize ends the job without freeing them) */
    struct ag_dist_msgs *msgs;
};

/* Now, in seconds (MPI_Wtime). */
double ag__dist_now(void);

/* Reports an MPI error code rc of `what` as func's error and returns -1. */
int ag__dist_mpi_error(const char *func, int rc, const char *what);

/* Breaks d: the error (already set, "func: ...") is kept, and every later
 * call on d fails with it. Returns -1. */
int ag__dist_break(ag_dist *d);

/* Returns -1 with func's error when d is NULL or broken, else 0. */
int ag__dist_usable(const char *func, ag_dist *d);

/* Waits for the n requests, polling (MPI_Testall) so that a deadline of
 * d's timeout can end the wait, and watching for failure notices from
 * other ranks (ag__dist_notify). Returns 0 when all completed; -1 with
 * func's error naming `what` and breaks d when the time is up, a notice
 * came ("rank R: <its message>"), or MPI failed. */
int ag__dist_wait(ag_dist *d, const char *func, int n, MPI_Request *reqs,
                  const char *what);

/* Tells every other rank that this one failed, with its pending message,
 * so that those waiting for it in a collective stop at once with that
 * message; then breaks d (the collectives no longer match). Returns -1. */
int ag__dist_notify(ag_dist *d, const char *func);

/* The agreement of ag_dist_check, reported as func: every rank sends
 * rank 0 its status (with its message when it failed) and `desc` (NULL:
 * ""), a short description of its arguments that must be the same on
 * every rank ("f64 (3,4)"); rank 0 answers every rank with the verdict.
 * Returns 0 on every rank when all statuses are 0 and all descs equal,
 * else -1 with "func: rank R: <R's message>" (R's own "func: " prefix
 * left out) on every rank. A rank that does not answer within the timeout
 * is named, and breaks d (on rank 0, which waits timeout seconds for the
 * statuses; on the others, which wait twice that for the verdict). */
int ag__dist_check(ag_dist *d, const char *func, int status, const char *desc);

/* Replaces t with its sum over the ranks, in place (MPI_Iallreduce and
 * ag__dist_wait; no agreement first: the caller knows that every rank
 * passes the same dtype and shape). Returns 0, or -1 with func's error
 * (d broken). */
int ag__dist_sum(ag_dist *d, const char *func, ag_tensor *t);

/* The MPI type of a dtype's elements. */
MPI_Datatype ag__dist_type(ag_dtype dt);

/* Writes "f64 (3,4)" for t into buf of `size` bytes; returns buf. */
const char *ag__dist_describe(char *buf, size_t size, const ag_tensor *t);

/* Checks that t is a tensor whose element count fits an MPI count (an
 * int); reports as func. */
int ag__dist_check_count(const char *func, const char *name,
                         const ag_tensor *t);

#endif /* AG_DIST_INTERNAL_H */
