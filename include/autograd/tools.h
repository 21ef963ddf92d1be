/* autograd/tools.h: the research toolkit: user-defined differentiable
 * functions, the gradient checker, anomaly detection and graph pictures.
 * Included by autograd.h; include that instead. */
#ifndef AUTOGRAD_TOOLS_H
#define AUTOGRAD_TOOLS_H

#include "../autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* User-defined differentiable functions                               */
/* ------------------------------------------------------------------ */

/* The most saved tensors of one function call (its inputs: any number). */
#define AG_FUNCTION_MAX_SAVED 8

/* What a call of a user-defined function keeps for its backward. */
typedef struct ag_function_ctx ag_function_ctx;

/* A differentiable function defined by the user, the C counterpart of
 * torch.autograd.Function. Define one as a static constant and call it
 * with ag_function_apply.
 *
 * forward computes the output from the inputs (all float, of one dtype)
 * and returns it as a new tensor made in arena `a` during this call, for
 * example with ag_zeros and a loop, or with library ops (grad mode is off
 * while forward runs, so they record nothing). It may save tensors for
 * backward with ag_function_save. Returns NULL with an error (ag_function_
 * error) to fail.
 *
 * backward adds the gradient of the loss with respect to each input to
 * grad_inputs[i] (a tensor of input i's shape and dtype), given the
 * gradient of the loss with respect to the output, grad_output (the
 * output's shape; read its values with ag_data and leave them as they
 * are); grad_inputs[i] is NULL for an input that needs no
 * gradient (an input given twice gets the same buffer twice: add both
 * contributions). It runs with grad mode off, and must not start another
 * walk of a graph: ag_backward, ag_write_dot and ag_gradcheck called from
 * a backward fail with an error. Returns 0, or non-zero with
 * an error, which ag_backward then returns (-1) at once; gradients that
 * earlier ops of that pass added to stay added.
 *
 * backward_ops (optional) is the same derivative written in library ops:
 * it sets grad_inputs[i] (NULL on entry; leave it NULL for no gradient) to
 * the gradient with respect to input i, a tensor of input i's dtype and
 * shape made in arena `a` by ops from grad_output, the inputs, the output
 * and the saved tensors. ag_gradients with create_graph runs it with grad
 * mode on, so that its result has a graph of its own and the function is
 * twice (any number of times) differentiable; without it, such a call
 * fails naming the function. When backward is NULL, ag_backward uses
 * backward_ops too (grad mode off, the results added into the gradients).
 *
 * jvp (optional) is the forward-mode rule: it returns the output's tangent,
 * sum_i J_i tangents[i], a tensor of the output's dtype and shape made in
 * `a` by ops (tangents[i] is NULL for an input that carries none: zero).
 * Without it, a tangent reaching the function (ag_make_dual, ag_jvp) is an
 * error naming the function.
 *
 * All are called with no pending error, so a NULL or failure without a
 * message is reported as "<name>: forward returned NULL without an
 * error" (or "backward returned <n> ..."). Examples: examples/custom_op.c,
 * examples/newton.c. */
typedef struct {
    const char *name; /* shown in errors, anomaly reports and DOT */
    /* computes the output from the n inputs (see above) */
    ag_tensor *(*forward)(ag_function_ctx *ctx, ag_arena *a,
                          ag_tensor *const *inputs, int n);
    /* adds the inputs' gradients into grad_inputs (see above) */
    int (*backward)(ag_function_ctx *ctx, ag_tensor *grad_output,
                    ag_tensor *const *grad_inputs);
    /* the same derivative in library ops (optional) */
    int (*backward_ops)(ag_function_ctx *ctx, ag_arena *a,
                        ag_tensor *grad_output, ag_tensor **grad_inputs);
    /* the forward-mode rule (optional) */
    ag_tensor *(*jvp)(ag_function_ctx *ctx, ag_arena *a,
                      ag_tensor *const *tangents);
} ag_function;

/* Calls fn on n >= 1 inputs and records it in
 * the graph like a built-in op when grad mode is on and some input requires
 * a gradient; ag_tensor_op_name of the output is then fn->name. `user` is
 * handed to forward and backward through ag_function_user. The context
 * lives in `a`, with the output. Returns the output (in arena `a`) or NULL
 * and an error named after the function: NULL arguments, n below 1, a
 * function with neither backward nor backward_ops,
 * inputs that are not float or differ in dtype (a NULL input keeps the
 * pending message, as ops do), a forward that fails or returns something
 * other than a new float tensor of the inputs' dtype made in `a` (one of
 * the inputs or a view of one, a tensor of another arena, or one that
 * requires or has a gradient), or an anomaly in the output
 * (ag_set_anomaly_detection). A tensor made in `a` before the call and
 * returned by forward cannot be told from a new one: don't. */
AG_API ag_tensor *ag_function_apply(ag_arena *a, const ag_function *fn, int n,
                                    ag_tensor *const *inputs, void *user);

/* Inside forward and backward: the user pointer, input i, the output
 * (NULL during forward), the arena of the output (for scratch tensors). */
AG_API void *ag_function_user(const ag_function_ctx *ctx);
AG_API ag_tensor *ag_function_input(const ag_function_ctx *ctx, int i);
AG_API ag_tensor *ag_function_output(const ag_function_ctx *ctx);
AG_API ag_arena *ag_function_arena(const ag_function_ctx *ctx);

/* Keeps `t` for backward (up to AG_FUNCTION_MAX_SAVED; t must live at
 * least as long as the output) and returns its index, or -1 and an error.
 * ag_function_saved returns saved tensor i, or NULL. */
AG_API int ag_function_save(ag_function_ctx *ctx, ag_tensor *t);
AG_API ag_tensor *ag_function_saved(const ag_function_ctx *ctx, int i);

/* Reports an error from inside forward or backward, as
 * "<function name>: <message>". */
AG_API void ag_function_error(const ag_function_ctx *ctx, const char *fmt, ...)
    AG_PRINTF(2, 3);

/* ------------------------------------------------------------------ */
/* Gradient checking                                                   */
/* ------------------------------------------------------------------ */

/* A function of tensors, as the checkers and the functional API take it:
 * builds one output tensor from n inputs in arena `a` (any mix of built-in
 * ops and user-defined functions) or returns NULL with an error. It is
 * called many times and must be deterministic. */
typedef ag_tensor *(*ag_fn)(ag_arena *a, ag_tensor *const *inputs, int n,
                            void *user);

/* The same type under the name the gradient checker first used. */
typedef ag_fn ag_gradcheck_fn;

/* Options; NULL means PyTorch's gradcheck defaults, ag_gradcheck_defaults(). */
typedef struct {
    double eps;           /* finite-difference step, 1e-6 */
    double atol;          /* an entry passes when |analytic - numeric| <= */
    double rtol;          /*   atol + rtol * |numeric|; 1e-5 and 1e-3 */
    bool projection;      /* compare v . J for one random unit-variance v over
                             the output instead of the whole Jacobian */
    int64_t max_elements; /* check at most this many elements per input,
                             sampled from seed; 0 checks all */
    uint64_t seed;        /* draws the sampled elements and v; 0 by default */
    bool allow_unused;    /* an input that requires a gradient but that the
                             output does not depend on passes (its gradient
                             is compared as zero) instead of failing the
                             check; false by default */
} ag_gradcheck_options;

/* The defaults, as torch.autograd.gradcheck's: eps 1e-6, atol 1e-5, rtol
 * 1e-3, the full Jacobian, every element, seed 0. Returned by value. */
AG_API ag_gradcheck_options ag_gradcheck_defaults(void);

/* What the check found: the entry furthest beyond its tolerance (or, when
 * all pass, the one closest to failing; on a tie, the first in the order
 * inputs, elements, outputs). */
typedef struct {
    bool passed;                /* every entry within its tolerance */
    int64_t checked;            /* entries compared */
    int input;                  /* the worst entry: its input, */
    int ndim;                   /* the element as a multi-index into input, */
    int64_t index[AG_MAX_DIMS]; /* (its first ndim entries) */
    int64_t element;            /* the same as a flat index, */
    int64_t output_element;     /* the output element (flat; -1 in projection
                                   mode, where the entry is v . J) */
    double analytic;            /* the entry by the backward pass */
    double numeric;             /* by central differences */
    double abs_error;           /* |analytic - numeric| */
    double rel_error;           /* abs_error / |numeric| */
    bool unreached;             /* the check failed because the output does not
                                   depend on `input` at all (no path in the graph) */
    const char *name; /* ag_gradcheck_params: the parameter's name (owned
                         by the set); NULL otherwise */
} ag_gradcheck_report;

/* Compares the gradient that ag_backward computes for f with central
 * finite differences, (f(x + eps) - f(x - eps)) / 2 eps, for every element
 * (or the sampled ones) of every input that requires a gradient. In full
 * mode every entry of the Jacobian d output[o] / d input[k] is compared:
 * one backward pass per output element and two evaluations of f per
 * input element, with (output elements x checked elements) doubles of
 * memory; projection mode needs one backward pass and no Jacobian. Inputs
 * must be AG_F64 (differences in f32 are too coarse to mean anything; make
 * f64 copies to check f32 code paths). The inputs, their values and
 * gradients, are left as they were: the check works on copies in its own
 * arena. `report` may be NULL. Returns 0 when every entry passes, 1 when
 * one fails (the report says where), -1 and an error when the check could
 * not run (NULL, n out of [1, AG_FUNCTION_MAX_INPUTS], a non-f64 input, no
 * input that requires a gradient, options out of range, f failing (the
 * message includes f's) or giving an output that is not f64 or changes
 * shape, a backward that fails, out of memory). f runs with grad mode off
 * for the differences and on for the backward passes; the thread's grad
 * mode is as it was afterwards. An output that does not depend on the
 * inputs has an analytic gradient of zero. */
AG_API int ag_gradcheck(ag_gradcheck_fn f, int n, ag_tensor *const *inputs,
                        void *user, const ag_gradcheck_options *options,
                        ag_gradcheck_report *report);

/* The second-order check, as torch.autograd.gradgradcheck: draws random
 * grad_outputs u (normal, from options' seed) of f's output shape, then
 * gradchecks the vector-Jacobian product (x, u) -> u^T df/dx, computed by
 * ag_gradients with create_graph, with respect to the inputs that require
 * a gradient and u: so the derivative rules in ops (and user functions'
 * backward_ops) are checked against central differences of the first
 * derivative. Same options, report and return values as ag_gradcheck
 * (report->input counts inputs first, then n for u; checked counts all
 * entries compared). An input that f's output does not depend on fails as
 * in ag_gradcheck; a first derivative that does not depend on x (f linear
 * in x) is fine. Errors as ag_gradcheck's, and f's output must be f64
 * with at least one element. */
AG_API int ag_gradgradcheck(ag_fn f, int n, ag_tensor *const *inputs,
                            void *user, const ag_gradcheck_options *options,
                            ag_gradcheck_report *report);

/* The loss of a model whose parameters are used in place: built in arena
 * a from the model the user pointer leads to, returning a one-element f64
 * tensor, or NULL with an error. Called many times; must be deterministic
 * (put dropout in evaluation mode). */
typedef ag_tensor *(*ag_loss_fn)(ag_arena *a, void *user);

/* "Is my model's backward right?" in one call: compares the gradient of
 * loss(user) with respect to every parameter of `params` that requires a
 * gradient, computed by ag_gradients (the parameters' own ag_grad are not
 * touched), with central differences taken by perturbing each checked
 * element of the parameter in place by +-eps and putting it back exactly.
 * options->max_elements samples that many elements per parameter (all when
 * 0); projection mode does not apply (the loss is one element). Parameters
 * must be f64 (make an f64 copy of an f32 model, with ag_cast or by
 * loading its checkpoint into an f64 one). The report names the worst
 * parameter (report->name, report->input its index in the set). Returns 0
 * when every entry passes, 1 when one fails (also when the loss does not
 * depend on a parameter, unless options->allow_unused), -1 and an error
 * when the check could not run: NULLs, an empty set, a non-f64 parameter,
 * no parameter requiring a gradient, options out of range, a loss that
 * fails or is not one f64 element. The parameters' values are as they
 * were afterwards, and so is the thread's grad mode. */
AG_API int ag_gradcheck_params(ag_loss_fn loss, void *user,
                               const ag_params *params,
                               const ag_gradcheck_options *options,
                               ag_gradcheck_report *report);

/* Writes the report as one line, ending with a newline, for example
 * "gradcheck FAILED: input 0 element (1,2) output 3: analytic 0.51
 * numeric 0.5 abs error 0.01 rel error 0.02 (24 entries checked)";
 * "passed: worst input ..." when all passed, "output v.J" in projection
 * mode; "FAILED: input 1 does not reach the output" when the output does
 * not depend on it; a parameter's name when the report has one. NULL out
 * or report writes nothing. */
AG_API void ag_gradcheck_print(FILE *out, const ag_gradcheck_report *report);

/* ------------------------------------------------------------------ */
/* The functional API (torch.autograd.functional)                      */
/* ------------------------------------------------------------------ */

/* Each of these applies f to fresh leaves in arena a that share the values
 * of inputs (which need not require a gradient, and whose ag_grad are not
 * touched), and returns plain tensors in a (differentiate them further with
 * ag_gradients). `output`, when not NULL, receives f's value. Inputs are
 * float tensors of one dtype, n >= 1. Each returns 0, or -1 with an error
 * (naming the function, and including f's own message when f fails): NULL
 * arguments, a vector whose dtype or shape differs from what it pairs
 * with, f returning NULL or a tensor of another dtype, or, for ag_hvp and
 * ag_hessian, an f whose output is not one element. An input that f does
 * not use gets zeros. */

/* Vector-Jacobian products: vjps[i] = v^T df/dinputs[i] (inputs[i]'s
 * shape); v has f's output shape (NULL for a one-element output). */
AG_API int ag_vjp(ag_arena *a, ag_fn f, int n, ag_tensor *const *inputs,
                  void *user, ag_tensor *v, ag_tensor **output,
                  ag_tensor **vjps);

/* The Jacobian-vector product sum_i (df/dinputs[i]) v[i] (f's output
 * shape) by true forward mode: the tangents v[i] (inputs[i]'s shape; an
 * entry may be NULL: zero) ride along one forward pass (ag_make_dual);
 * no backward pass is run. */
AG_API int ag_jvp(ag_arena *a, ag_fn f, int n, ag_tensor *const *inputs,
                  void *user, ag_tensor *const *v, ag_tensor **output,
                  ag_tensor **jvp);

/* Hessian-vector products of a one-element f: hvps[i] = sum_j
 * (d2f / dinputs[i] dinputs[j]) v[j], by a backward pass with create_graph
 * and a second, first-order one (double backward). v[j] has inputs[j]'s
 * shape (an entry may be NULL: zero). */
AG_API int ag_hvp(ag_arena *a, ag_fn f, int n, ag_tensor *const *inputs,
                  void *user, ag_tensor *const *v, ag_tensor **output,
                  ag_tensor **hvps);

/* jacobians[i]: d f / d inputs[i], of shape f's output shape followed by
 * inputs[i]'s shape (one backward pass per output element). */
AG_API int ag_jacobian(ag_arena *a, ag_fn f, int n, ag_tensor *const *inputs,
                       void *user, ag_tensor **jacobians);

/* hessians[i * n + j]: d2 f / d inputs[i] d inputs[j] of a one-element f,
 * of shape inputs[i]'s followed by inputs[j]'s. */
AG_API int ag_hessian(ag_arena *a, ag_fn f, int n, ag_tensor *const *inputs,
                      void *user, ag_tensor **hessians);

/* ------------------------------------------------------------------ */
/* Anomaly detection                                                   */
/* ------------------------------------------------------------------ */

/* Turns anomaly detection on or off for this thread and returns the
 * previous setting; off by default. When on, every op's output is checked
 * for NaN and infinity after its forward, and every gradient an op adds to
 * after its backward; the first one found fails the op (NULL) or
 * ag_backward (-1) with an error naming the op, its input shapes, forward
 * or backward, and the element, for example
 * "ag_log: anomaly in forward of op log: element 3 is nan; inputs (2,3)"
 * "ag_backward: anomaly in backward of op sqrt: gradient of input 0 (2,3)
 * element 1 is inf". Integer results are not checked; user-defined
 * functions are, under their name, and so are the library ops their
 * forward runs (an input that is already inf makes the first such op
 * report it). A gradient is blamed on the first op
 * whose backward leaves it non-finite, so a leaf gradient already NaN from
 * an earlier pass is blamed on the first op that adds to it. Off, it costs
 * one test per op. */
AG_API bool ag_set_anomaly_detection(bool on);
AG_API bool ag_is_anomaly_detection_enabled(void);

/* ------------------------------------------------------------------ */
/* Graph pictures                                                      */
/* ------------------------------------------------------------------ */

/* Writes the graph that produced `t` as Graphviz DOT: one node per tensor
 * reachable through recorded inputs, also those that need no gradient (its
 * op name or "leaf", shape, dtype, "requires_grad" when set, and "grad
 * norm" with the 2-norm of its gradient when it has one; leaves are
 * ellipses, op results boxes) and one edge from each input to the tensor
 * made from it (two for an input used twice). Nodes are named n0, n1, ...
 * in topological order, inputs first and t last, so the same graph gives
 * the same text. The walk is iterative (any depth) and uses t's arena's
 * working memory, as ag_backward does. Render with `dot -Tsvg`; see
 * examples/graph_dot.c. Returns 0, or -1 and an error for a NULL t (which
 * keeps a pending message, as ops do), a NULL FILE, out of memory or a
 * failed write (the stream is flushed to find out). */
AG_API int ag_write_dot(const ag_tensor *t, FILE *out);

/* ag_write_dot with names, as torchviz's make_dot(params=...): a node
 * whose tensor is tensors[i] (i < n) has names[i] as its first label line,
 * for example the parameter names of a model:
 *   for (int i = 0; i < ag_params_count(p); i++) {
 *       tensors[i] = ag_params_tensor(p, i);
 *       names[i] = ag_params_name(p, i);
 *   }
 * The arrays are the caller's and only read. Returns 0, or -1 and an error
 * as ag_write_dot, and for n < 0 or a NULL array, tensor or name (nothing
 * is written then). */
AG_API int ag_write_dot_named(const ag_tensor *t, int n,
                              ag_tensor *const *tensors,
                              const char *const *names, FILE *out);

#ifdef __cplusplus
}
#endif

#endif /* AUTOGRAD_TOOLS_H */
