/* autograd/dist.h: training on many processes over MPI: the processes and
 * their faults, and data parallelism (as PyTorch's DistributedDataParallel).
 *
 * Tensor parallelism (column- and row-parallel Linear, the MLP block,
 * attention with its heads split) and pipeline parallelism (stages on
 * ranks, micro-batches, GPipe and 1F1B) follow data parallelism.
 *
 * This is a library of its own, libautograd-dist (pkg-config autograd-dist),
 * built when Open MPI is found; libautograd itself never links MPI. It is
 * not included by autograd.h: include <autograd/dist.h>. Programs run under
 * mpirun, one process (rank) per copy:
 *
 *     mpirun -np 2 ./train          (as root: add --allow-run-as-root)
 *
 * Faults. No fault on one process leaves the others hanging. Every wait
 * for another process has a deadline (the timeout below), and the
 * functions that are collective (every rank calls them, in the same order)
 * tell each rank whether every other one succeeded: when one rank fails
 * (bad input, an error in its forward or backward pass, out of memory),
 * every rank's call returns -1 with the same error, naming the rank that
 * failed and its message, for example
 *   "ag_ddp_backward: rank 1: ag_linear: x (4,3) and weight (16,2) ..."
 * and the processes are still in step: they may skip the step and go on,
 * or stop (ag_dist_finalize). A rank that does not answer within the
 * timeout (hung, or gone without telling) makes the others stop with an
 * error naming it ("rank 2 did not answer within 30 s"); communication is
 * then broken: every later call fails at once with that error, and
 * ag_dist_finalize ends the whole job (MPI_Abort), so that the silent rank
 * is stopped too. A rank that dies (a crash, a signal, exit without
 * ag_dist_finalize) is seen by mpirun, which then stops every process of
 * the job at once and prints which rank died and how, for example
 * "mpirun noticed that process rank 1 with PID 4242 on node n1 exited on
 * signal 9 (Killed)." (Open MPI's default).
 *
 * Threads. Call the functions of one ag_dist (and of what is made with
 * it) from one thread at a time; MPI is initialised with
 * MPI_THREAD_SERIALIZED. The library's own worker threads never call MPI.
 */
#ifndef AUTOGRAD_DIST_H
#define AUTOGRAD_DIST_H

#include "../autograd.h"
#include "nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Processes                                                           */
/* ------------------------------------------------------------------ */

/* The processes of a job: this one's rank, their number, and the
 * communicators the library uses (duplicates of MPI_COMM_WORLD, so that
 * they never mix with the program's own MPI calls). */
typedef struct ag_dist ag_dist;

/* The options of ag_dist_init; all-zero gives the defaults. */
typedef struct {
    /* Seconds a process waits for the others at any one point (a
     * collective call, a check) before it stops with an error naming the
     * rank it waited for. 0 means the environment variable AG_DIST_TIMEOUT
     * (seconds) when it is set, else 300. Set it above the longest time
     * one rank may work alone between two collective calls (rank 0
     * writing a checkpoint, an evaluation). */
    double timeout;
} ag_dist_options;

/* Initialises MPI (MPI_Init_thread, unless the program did already; then
 * it is the program's to finalise) and returns the job's processes.
 * argc and argv may be NULL; options NULL means the defaults. Outside
 * mpirun the program is a job of one process. Returns NULL and an error
 * when MPI fails to initialise, gives less than MPI_THREAD_SERIALIZED, a
 * timeout is negative, not finite, or AG_DIST_TIMEOUT is not a positive
 * number, or out of memory. Free it with ag_dist_finalize (a program that
 * makes several: the one that initialised MPI last, since it finalises
 * MPI). */
AG_API ag_dist *ag_dist_init(int *argc, char ***argv,
                             const ag_dist_options *options);

/* This process's rank, 0 <= rank < size, and the number of processes
 * (0 and 1 for NULL). */
AG_API int ag_dist_rank(const ag_dist *d);
AG_API int ag_dist_size(const ag_dist *d);

/* The timeout in seconds (0 for NULL). */
AG_API double ag_dist_timeout(const ag_dist *d);

/* Whether communication is broken (a rank did not answer, or told of a
 * failure where the others could not follow it): every call on d then
 * fails at once. False for NULL. */
AG_API bool ag_dist_broken(const ag_dist *d);

/* Agreement, collective: every rank passes its own status (0: fine,
 * non-zero: failed, with its error pending in ag_last_error()). Returns 0
 * on every rank when every status is 0; otherwise -1 on every rank, with
 * the error "ag_dist_check: rank R: <R's message>" of the lowest failing
 * rank R (and how many failed, when more than one). A rank that does not call
 * it within the timeout makes the others fail naming it, and breaks d. Use it
 * at the points of a training loop where one rank alone may fail (reading its
 * data, its own forward pass before a collective), so that all stop or
 * skip together. Returns -1 with an error for NULL, or at once on a broken
 * d. */
AG_API int ag_dist_check(ag_dist *d, int status);

/* Collective: copies root's values of `t` into `t` on every rank (each
 * rank passes a tensor of the same dtype and shape; a rank whose tensor
 * differs fails, and so does every rank, as ag_dist_check). Returns 0, or
 * -1 and an error on every rank: NULL arguments, a root outside
 * [0, size), an MPI error, a rank that does not answer in time. */
AG_API int ag_dist_broadcast(ag_dist *d, ag_tensor *t, int root);

/* Collective: replaces `t` (float or i32, same dtype and shape on every
 * rank) with the sum over the ranks of their values, in place; with
 * `average`, a float t is then divided by the number of ranks. The sums are
 * MPI's (their order of additions is MPI's own). Errors as
 * ag_dist_broadcast (and an i32 tensor with average). */
AG_API int ag_dist_allreduce(ag_dist *d, ag_tensor *t, bool average);

/* Ends this process's part of the job and frees d: when communication is
 * intact, waits for every rank (MPI_Finalize, when ag_dist_init
 * initialised MPI); when it is broken, ends the whole job with
 * MPI_Abort(code 1) half a second later (so that the other ranks can
 * print their errors first), since a rank that stopped answering would
 * keep MPI_Finalize waiting forever. Print errors before calling it. NULL
 * is ignored. */
AG_API void ag_dist_finalize(ag_dist *d);

/* Ends the whole job at once (MPI_Abort with `code`), from any rank. */
AG_API void ag_dist_abort(ag_dist *d, int code);

/* ------------------------------------------------------------------ */
/* Data parallelism (torch.nn.parallel.DistributedDataParallel)        */
/* ------------------------------------------------------------------ */

/* Data parallel training: every rank holds the whole model, works on its
 * own part of each batch (ag_batcher_shard), and the gradients are
 * averaged over the ranks after each backward pass, so that every rank
 * takes the same optimizer step, the one a single process would take on
 * the whole batch (when each rank's loss is the mean over an equal part
 * of it). The averaging overlaps the backward pass: the gradients are
 * packed in buckets of about bucket_bytes, filled in about the reverse
 * order of the parameters (the order in which the backward pass finishes
 * them), and each bucket's sum over the ranks (MPI_Iallreduce) starts as
 * soon as its last gradient is final (ag_set_grad_hook), while the pass
 * goes on; the end of ag_ddp_backward waits for the sums that are still
 * running. */
typedef struct ag_ddp ag_ddp;

/* The options of ag_ddp_new; all-zero gives the defaults. */
typedef struct {
    /* Bucket size in bytes; 0 means PyTorch's default, 25 MiB. A
     * parameter larger than that has a bucket of its own. */
    int64_t bucket_bytes;
    /* Averages every bucket after the backward pass, blocking, instead of
     * during it: the same results, no overlap (to measure what the
     * overlap hides). */
    bool no_overlap;
} ag_ddp_options;

/* Makes data parallel training of `params` (the trainable parameters, an
 * optimizer's set) and `buffers` (NULL or the module's buffers, never
 * averaged: BatchNorm's running statistics), in arena `a` (the model's,
 * so that it lives as long as the parameters; it sets their gradient
 * hooks). Collective. First checks that every rank has the same model:
 * the same names, dtypes and shapes, in the same order; then copies rank
 * 0's values of every parameter and buffer to the others, so that they
 * start alike (as PyTorch's constructor does). Returns the ddp, or NULL
 * and an error on every rank: NULL arguments, an empty parameter set, a
 * bucket size below 0, a model that differs on some rank ("rank 2:
 * ag_ddp_new: this process's model differs from rank 0's: entry 3 is
 * 'layers.1.weight' f64 (16,9) here, 'layers.1.weight' f64 (16,8) on
 * rank 0"), a parameter of more than 2^31 - 1 elements, out of memory, an
 * MPI error or a rank that does not answer. */
AG_API ag_ddp *ag_ddp_new(ag_arena *a, ag_dist *d, ag_params *params,
                          ag_params *buffers, const ag_ddp_options *options);

/* The backward pass of one step, collective: ag_backward(loss), then the
 * gradients of the parameters averaged over the ranks (sum / size), the
 * same on every rank. Every parameter must get a gradient on every rank
 * (be used by the loss). With sync off (ag_ddp_set_sync), it is
 * ag_backward alone, and the gradients accumulate in each process; the
 * next backward with sync on averages the sums (gradient accumulation
 * without communication on the steps that only accumulate). A failure on
 * one rank (loss NULL from an op that failed, a failing backward, a
 * parameter without gradient, an earlier failure of a step without sync)
 * makes every rank return -1 with that rank's error, in step, with the
 * gradients undefined (zero them to go on); a rank that does not answer in
 * time breaks communication (see the top of this file). Returns 0, or -1
 * and an error. */
AG_API int ag_ddp_backward(ag_ddp *ddp, ag_tensor *loss);

/* Sync on (the default): ag_ddp_backward averages. Off: it only
 * accumulates, as PyTorch's no_sync(). */
AG_API void ag_ddp_set_sync(ag_ddp *ddp, bool on);

/* Collective: rank 0 saves `state` (the model's ag_module_state, or its
 * parameters) to `path` with ag_save_safetensors (atomic: a temporary file
 * renamed over path, so no reader ever sees half a checkpoint), while the
 * other ranks wait for it. Returns 0 on every rank when the file is in
 * place, or -1 on every rank with rank 0's error. The other ranks' state
 * argument is not read (NULL is fine there). */
AG_API int ag_ddp_save(ag_ddp *ddp, const char *path, const ag_params *state,
                       const char *const *metadata);

/* How the averaging went, for tests and benchmarks. */
typedef struct {
    int buckets;          /* how many */
    int started_early;    /* of them, started during the last backward
                             pass (before ag_backward returned) */
    double wait_seconds;  /* the last sync step's time waiting for the sums
                             after the pass, its check included */
    double total_seconds; /* the last sync step's ag_ddp_backward */
} ag_ddp_stats;

/* The stats of the last synchronised backward (zeros for NULL). */
AG_API ag_ddp_stats ag_ddp_get_stats(const ag_ddp *ddp);

/* Removes the gradient hooks from the parameters: they train alone again.
 * The ddp is unusable afterwards (its memory is the arena's). NULL is
 * ignored. */
AG_API void ag_ddp_detach(ag_ddp *ddp);

/* ------------------------------------------------------------------ */
/* Tensor parallelism (Megatron-LM)                                    */
/* ------------------------------------------------------------------ */

/* A layer split over the ranks: each rank holds part of its weights and
 * does part of its products, and two differentiable collectives join the
 * parts, so that the output, the loss and every gradient are those of the
 * unsplit layer (each rank's parameter gradients being its part of the
 * unsplit ones). Every rank runs the same forward and backward on the
 * same input. Faults: a rank whose input to a collective is NULL (an op
 * before it failed) tells the others, which stop at once with its error
 * ("ag_tp_reduce: rank 1: ag_linear: ..."); communication is broken then
 * (see the top of this file). A rank whose backward pass stops before a
 * collective makes the others time out in theirs. */

/* copy (Megatron's f): y = x on every rank; in backward, dx = the sum of
 * dy over the ranks. Put it where every rank starts its part of a
 * computation from the same x. Collective in backward only. Returns y in
 * arena a, or NULL with an error (x NULL: tells the other ranks). */
AG_API ag_tensor *ag_tp_copy(ag_arena *a, ag_dist *d, ag_tensor *x);

/* reduce (Megatron's g): y = the sum of x over the ranks (same dtype and
 * shape everywhere); in backward, dx = dy. Collective in forward. Returns
 * y in a, or NULL with an error. */
AG_API ag_tensor *ag_tp_reduce(ag_arena *a, ag_dist *d, ag_tensor *x);

/* How a tensor parallel Linear is split over the ranks. */
typedef enum {
    AG_TP_COLUMN, /* the output features split: y_r = x W_r^T + b_r */
    AG_TP_ROW,    /* the input features split: y = sum_r x_r W_r^T + b */
} ag_tp_split;

/* A Linear (out, in) split over the p ranks: rank r holds, for
 * AG_TP_COLUMN, rows [lo, hi) = [out r / p, out (r + 1) / p) of the weight
 * and bias, and gives output features [lo, hi); for AG_TP_ROW, columns
 * [lo, hi) = [in r / p, ...) of the weight (and the whole bias), takes
 * input features [lo, hi) and gives the whole output. */
typedef struct {
    ag_dist *d;        /* the ranks it is split over */
    ag_tp_split split; /* by columns or rows */
    int64_t in;        /* the full layer's input features */
    int64_t out;       /* and output features */
    int64_t lo;        /* this rank's part: from lo */
    int64_t hi;        /* to hi (excluded) */
    ag_tensor *weight; /* (hi - lo, in) or (out, hi - lo) */
    ag_tensor *bias;   /* (hi - lo) or (out), or NULL */
    ag_params *params; /* "weight", "bias": this rank's part */
} ag_tp_linear;

/* Collective: this rank's part of the Linear whose full weight (out, in)
 * and bias (out, or NULL) are given (the same on every rank: make them
 * from one seed), copied into arena a. Returns the layer, or NULL with an
 * error on every rank: NULL arena or weight, a bias that does not match,
 * a split size (out for columns, in for rows) that the number of ranks
 * does not divide, a layer that differs between ranks, no memory. */
AG_API ag_tp_linear *ag_tp_linear_new(ag_arena *a, ag_dist *d,
                                      ag_tp_split split,
                                      const ag_tensor *weight,
                                      const ag_tensor *bias);

/* The forward in arena `step`: columns take the whole x (..., in) and give
 * (..., hi - lo); rows take x (..., hi - lo) and give (..., out). */
AG_API ag_tensor *ag_tp_linear_forward(ag_arena *step, ag_tp_linear *l,
                                       ag_tensor *x);

/* The transformer's MLP block, y = fc2(act(fc1(x))), fc1 split by columns
 * and fc2 by rows: one sum over the ranks forward, one backward. */
typedef struct {
    ag_tp_linear *fc1; /* split by columns */
    ag_tp_linear *fc2; /* split by rows */
    ag_activation act; /* between them */
    ag_params *params; /* "fc1.weight", "fc1.bias", "fc2.weight", ... */
} ag_tp_mlp;

/* Collective: this rank's part of the block of full weights w1 (H, E), b1,
 * w2 (E, H), b2 (biases may be NULL), H divisible by the number of ranks.
 * Errors as ag_tp_linear_new. */
AG_API ag_tp_mlp *ag_tp_mlp_new(ag_arena *a, ag_dist *d, const ag_tensor *w1,
                                const ag_tensor *b1, ag_activation act,
                                const ag_tensor *w2, const ag_tensor *b2);
AG_API ag_tensor *ag_tp_mlp_forward(ag_arena *step, ag_tp_mlp *m, ag_tensor *x);

/* Self-attention with its heads split over the ranks: equal to
 * nn.MultiheadAttention(E, heads, batch_first=True) (ag_nn_multihead_
 * attention) with the same weights, each rank computing heads/p heads. */
typedef struct {
    ag_dist *d;              /* the ranks it is split over */
    int64_t embed;           /* E */
    int64_t heads;           /* in all */
    int64_t local_heads;     /* on this rank, heads / p */
    bool causal;             /* masks position s > t */
    ag_tensor *proj[3];      /* q, k, v: (E / p, E), this rank's heads */
    ag_tensor *proj_bias[3]; /* (E / p) or NULL */
    ag_tp_linear *out;       /* the output projection, split by rows */
    ag_params *params;       /* "q_proj.weight", ..., "out_proj.weight", ... */
} ag_tp_attention;

/* Collective: this rank's part of the module whose full parameters are
 * given, as nn.MultiheadAttention names them: in_proj_weight (3E, E),
 * in_proj_bias (3E) or NULL, out_proj.weight (E, E), out_proj.bias (E) or
 * NULL; `heads` divisible by the number of ranks; causal masks position
 * s > t. Errors as ag_tp_linear_new. The forward takes x (N,T,E) in arena
 * `step` and returns (N,T,E). */
AG_API ag_tp_attention *
ag_tp_attention_new(ag_arena *a, ag_dist *d, const ag_tensor *in_proj_weight,
                    const ag_tensor *in_proj_bias, const ag_tensor *out_weight,
                    const ag_tensor *out_bias, int64_t heads, bool causal);
AG_API ag_tensor *ag_tp_attention_forward(ag_arena *step, ag_tp_attention *m,
                                          ag_tensor *x);

/* ------------------------------------------------------------------ */
/* Pipeline parallelism (GPipe, 1F1B)                                  */
/* ------------------------------------------------------------------ */

/* A model's layers split into stages, stage r on rank r (rank 0 the
 * first, the last rank the last), and each batch into micro-batches that
 * flow through the stages; the gradients of each stage's parameters are
 * those of the unsplit model on the whole batch (each micro-batch's loss
 * is divided by their number, so that a mean loss over equal micro-batches
 * gives the batch's mean). */
typedef struct ag_pipeline ag_pipeline;

/* The order in which a stage runs its micro-batches. */
typedef enum {
    AG_PIPE_GPIPE, /* every micro-batch forward, then every one backward */
    AG_PIPE_1F1B,  /* one forward, one backward in turn after a warm-up of
                      S - r - 1 forwards: stage r keeps at most S - r
                      micro-batches' activations, not all of them */
} ag_pipe_schedule;

/* The last stage's loss of one micro-batch: a one-element tensor made in
 * arena a from the stage's output and the micro-batch's targets, or NULL
 * with an error. */
typedef ag_tensor *(*ag_pipe_loss)(ag_arena *a, ag_tensor *output,
                                   ag_tensor *target, void *user);

/* Collective: this rank's stage of a pipeline. `stage` is the module this
 * rank runs (an ag_nn_sequential of its layers), taking what the previous
 * stage gives (rank 0: the batch's examples) and giving what the next one
 * takes; `loss` (called with `user`) is needed on the last rank only.
 * Returns the pipeline (in arena a), or NULL with an error on every rank:
 * NULL arena or stage, micro_batches outside [1, 2^30), an unknown
 * schedule, no loss on the last rank, settings that differ between ranks,
 * no memory. */
AG_API ag_pipeline *ag_pipeline_new(ag_arena *a, ag_dist *d, ag_module *stage,
                                    int micro_batches,
                                    ag_pipe_schedule schedule,
                                    ag_pipe_loss loss, void *user);

/* Collective: one batch through the pipeline, forward and backward, its
 * graphs in arena `step`: x (N, ...) is read on rank 0, the targets y
 * (N, ...) on the last rank (the other ranks may pass NULL), N divisible
 * by the number of micro-batches (x itself gets no gradient). The
 * gradients of the stage's parameters
 * accumulate (+=, as ag_backward; zero them between steps), and *loss
 * (may be NULL) gets the batch's mean loss on every rank. Returns 0, or -1
 * and an error on every rank: a batch that does not split (told before any
 * work), a stage whose forward, loss or backward fails (it tells the
 * others, which stop with its error: communication is broken then), a
 * rank that does not answer in time. */
AG_API int ag_pipeline_step(ag_pipeline *p, ag_arena *step, ag_tensor *x,
                            ag_tensor *y, double *loss);

#ifdef __cplusplus
}
#endif

#endif /* AUTOGRAD_DIST_H */
