/* gradcheck.h: the table of op cases that test_gradcheck (f64 against
 * central differences) and test_f32 (f32 against f64) both run, and the
 * tests' checker, a thin use of the library's ag_gradcheck. */
#ifndef TESTS_GRADCHECK_H
#define TESTS_GRADCHECK_H

#include <autograd.h>

/* A function under test: maps inputs (all of one float dtype) to one
 * tensor made in arena a. */
typedef ag_tensor *(*gc_fn)(ag_arena *a, ag_tensor **inputs);

/* How a case draws its input values. */
typedef enum {
    GC_ANY,      /* uniform in [-2, 2] */
    GC_POSITIVE, /* uniform in [0.5, 2] (log, sqrt, pow, div's divisor) */
    GC_NONZERO,  /* |x| in [0.1, 2] with random sign (relu, abs kinks) */
} gc_values;

#define GC_MAX_INPUTS 3

typedef struct {
    const char *op;    /* the op-table name this case covers */
    const char *label; /* what the case shows, e.g. "(2,3)+(3) broadcast" */
    int n_inputs;
    int ndim[GC_MAX_INPUTS];
    int64_t shape[GC_MAX_INPUTS][4];
    gc_values values[GC_MAX_INPUTS];
    gc_fn fn;
} gc_case;

extern const gc_case gc_cases[];
extern const int gc_case_count;

/* The atol and rtol that gc_check hands ag_gradcheck. */
#define GC_TOLERANCE 1e-6

/* The worst Jacobian entry found by gc_check. */
typedef struct {
    double error; /* |analytic - numeric| / max(1, |analytic|, |numeric|) */
    int input;
    int64_t index; /* flat, into the input */
    double analytic, numeric;
} gc_report;

/* Makes the inputs of case c in arena a with dtype dt, drawn from seed. */
int gc_make_inputs(const gc_case *c, ag_arena *a, ag_dtype dt, uint64_t seed,
                   ag_tensor **inputs);

/* Runs ag_gradcheck on fn (full Jacobian, step eps, atol = rtol =
 * GC_TOLERANCE): compares every entry of the Jacobian from ag_backward with
 * central differences, for every element of every input that requires a
 * gradient. The inputs must be f64; they and their gradients are left as
 * they were. Fills *report with the worst entry (pass or fail is the
 * caller's test of report->error); returns 0, or -1 if the check could not
 * run (ag_last_error says why). */
int gc_check(gc_fn fn, int n_inputs, ag_tensor **inputs, double eps,
             gc_report *report);

#endif /* TESTS_GRADCHECK_H */
