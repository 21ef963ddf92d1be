/* progress.h: a one-line progress bar for the examples' long loops:
 * "epoch 2/10 [########......] 120/469 loss 0.4821 25310 samples/s".
 * On a terminal it redraws in place a few times a second; otherwise it
 * prints only the finished line of each run. */
#ifndef EXAMPLES_PROGRESS_H
#define EXAMPLES_PROGRESS_H

#include <stdint.h>

typedef struct {
    char label[64];
    int64_t total;    /* steps in this run */
    int64_t samples;  /* samples seen so far */
    double start;     /* seconds, monotonic */
    double last_draw; /* when the bar was last drawn */
    int interactive;  /* stderr is a terminal */
    const char *unit; /* what samples count ("samples", "tokens") */
} progress;

/* Seconds on a monotonic clock. */
double progress_now(void);

/* Starts a run of `total` steps, labelled for example "epoch 2/10". */
void progress_start(progress *p, const char *label, int64_t total);

/* Records that step `done` (1-based) finished with `loss` after `batch`
 * samples, and redraws when due. */
void progress_step(progress *p, int64_t done, double loss, int64_t batch);

/* Draws the final state of the run and ends the line. Returns the run's
 * samples per second. */
double progress_finish(progress *p, double loss);

#endif /* EXAMPLES_PROGRESS_H */
