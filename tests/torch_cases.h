/* torch_cases.h: cases of an op family computed by PyTorch (the headers
 * that tests/fixtures/c_fixture.py's write_torch_cases makes), and the
 * check that runs one against the library: values, the gradients of
 * sum(y * cot) and the state the op updates in place, in f64 and f32. */
#ifndef TESTS_TORCH_CASES_H
#define TESTS_TORCH_CASES_H

#include <autograd.h>
#include <stdint.h>

#define TORCH_MAX_INPUTS 6

/* What an input of a case is. */
enum {
    TORCH_GRAD,  /* float, requires a gradient (compared after backward) */
    TORCH_CONST, /* float, no gradient */
    TORCH_INT,   /* i32 (class targets) */
    TORCH_STATE, /* float, no gradient, updated in place by the call and
                    compared with state_at after it */
};

typedef struct {
    const char *label;
    int n_inputs;
    int kind[TORCH_MAX_INPUTS];
    int ndim[TORCH_MAX_INPUTS];
    int64_t shape[TORCH_MAX_INPUTS][4];
    int at[TORCH_MAX_INPUTS]; /* where each input's values start */
    int out_ndim;
    int64_t out_shape[4];
    int out_at, cot_at;
    int grad_at[TORCH_MAX_INPUTS]; /* -1 for an input without gradient */
    int state_at; /* the TORCH_STATE inputs after the call, one after the
                     other; -1 for none */
} torch_case;

/* The library's expression of a case, on its inputs. */
typedef ag_tensor *(*torch_case_fn)(ag_arena *a, ag_tensor **x);

/* Runs case c (its values in `values`) through fn in dtype dt and asserts
 * that the result, every gradient and every state agree with PyTorch's
 * within tol relative to max(1, |PyTorch's|). */
void torch_case_check(const torch_case *c, const double *values,
                      torch_case_fn fn, ag_dtype dt, double tol);

#endif /* TESTS_TORCH_CASES_H */
