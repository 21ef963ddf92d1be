/* gradcheck.c: the gradient checker (ag_gradcheck), the C counterpart of
 * torch.autograd.gradcheck.
 *
 * It compares the gradients that ag_backward computes for a function f
 * with central differences, on f64 copies of f's inputs in its own arenas:
 *   full mode:       J[o, k] from backward of sum(f(x) * e_o), one pass per
 *                    output element o, against (f(x + eps e_k) -
 *                    f(x - eps e_k))[o] / 2 eps for every checked element k;
 *   projection mode: (v . J)[k] from one backward of sum(f(x) * v), for one
 *                    random normal v, against v . (f(x + eps e_k) -
 *                    f(x - eps e_k)) / 2 eps.
 * An entry passes when |analytic - numeric| <= atol + rtol |numeric|; the
 * report keeps the entry with the largest |analytic - numeric| / (atol +
 * rtol |numeric|). Before any of that, an input that requires a gradient
 * but that the output has no path to fails the check (unless allowed): a
 * function that ignores its inputs would otherwise pass with 0 against 0.
 *
 * gradgradcheck runs the same check on the first derivative, (x, u) ->
 * u^T df/dx by ag_gradients with create_graph; gradcheck_params checks a
 * model's loss against its parameters, perturbed in place. */
#include "../internal.h"

#include <math.h>
#include <stdlib.h>

/* The state of one check. */
typedef struct {
    ag_gradcheck_fn f;
    void *user;
    int n;
    ag_tensor **x;  /* the copies, in work */
    ag_arena *work; /* copies, selections, buffers */
    ag_arena *eval; /* one evaluation of f; reset */
    int out_ndim;   /* -1 until f first ran */
    int64_t out_shape[AG_MAX_DIMS];
    int64_t m; /* output elements */
    ag_gradcheck_options opt;
    int64_t **sel;    /* per input: checked elements; NULL: all */
    int64_t *nsel;    /* per input: how many */
    double worst;     /* the report's |a - n| / (atol + rtol |n|) */
    const char *func; /* the name errors are reported under */
    ag_gradcheck_report *r;
} checker;

ag_gradcheck_options ag_gradcheck_defaults(void)
{
    return (ag_gradcheck_options){.eps = 1e-6, .atol = 1e-5, .rtol = 1e-3};
}

/* Checks the options; reports as func. */
static int check_options(const char *func, const ag_gradcheck_options *o)
{
    if (!(o->eps > 0) || !isfinite(o->eps) || !(o->atol >= 0) ||
        !isfinite(o->atol) || !(o->rtol >= 0) || !isfinite(o->rtol) ||
        o->max_elements < 0) {
        ag__error(func,
                  "options out of range: eps %g (> 0), atol %g, rtol %g "
                  "(>= 0), max_elements %lld (>= 0)",
                  o->eps, o->atol, o->rtol, (long long)o->max_elements);
        return -1;
    }
    return 0;
}

/* Checks the arguments; reports as func. */
static int check_args(const char *func, ag_gradcheck_fn f, int n,
                      ag_tensor *const *inputs, const ag_gradcheck_options *o)
{
    if (ag__refuse_in_backward(func)) return -1;
    if (!f || !inputs || n < 1) {
        ag__error(func, "needs a function and at least 1 input, got %s, %d %s",
                  f ? "f" : "f NULL", n,
                  inputs ? "inputs" : "inputs (array NULL)");
        return -1;
    }
    bool any = false;
    for (int i = 0; i < n; i++) {
        if (!inputs[i]) return ag__null_input(func, i);
        if (inputs[i]->dtype != AG_F64) {
            ag__error(func,
                      "input %d is %s; the check needs f64 inputs (make "
                      "f64 copies to check f32 code)",
                      i, ag_dtype_name(inputs[i]->dtype));
            return -1;
        }
        any |= inputs[i]->requires_grad;
    }
    if (!any) {
        ag__error(func, "none of the %d inputs requires a gradient", n);
        return -1;
    }
    return check_options(func, o);
}

/* Reports that f failed (at input i element j moved by sign * eps, or at
 * the inputs as given when sign is 0), keeping f's own message. */
static int f_failed(const char *func, int i, int64_t j, int sign)
{
    char cause[400], where[96] = "at the inputs";
    snprintf(cause, sizeof cause, "%s",
             ag_last_error()[0] ? ag_last_error()
                                : "returned NULL without an error");
    if (sign)
        snprintf(where, sizeof where, "with input %d element %lld %ceps", i,
                 (long long)j, sign > 0 ? '+' : '-');
    ag__error(func, "f failed %s: %s", where, cause);
    return -1;
}

/* Runs f in ck->eval; checks that its output is an f64 tensor of the same
 * shape every time. Returns it, or NULL with an error. */
static ag_tensor *run_f(checker *ck, int i, int64_t j, int sign)
{
    ag_clear_error();
    ag_tensor *y = ck->f(ck->eval, ck->x, ck->n, ck->user);
    if (!y) {
        f_failed(ck->func, i, j, sign);
        return NULL;
    }
    char b0[AG_SHAPE_STR_MAX], b1[AG_SHAPE_STR_MAX];
    if (y->dtype != AG_F64) {
        ag__error(
            ck->func, "f's output is %s %s; it must be f64 like its inputs",
            ag_dtype_name(y->dtype), ag__shape_str(b0, y->ndim, y->shape));
        return NULL;
    }
    if (ck->out_ndim < 0) {
        ck->out_ndim = y->ndim;
        memcpy(ck->out_shape, y->shape, sizeof y->shape);
        ck->m = y->numel;
    } else if (y->ndim != ck->out_ndim ||
               memcmp(y->shape, ck->out_shape,
                      (size_t)y->ndim * sizeof *y->shape)) {
        ag__error(ck->func, "f's output changed shape from %s to %s",
                  ag__shape_str(b0, ck->out_ndim, ck->out_shape),
                  ag__shape_str(b1, y->ndim, y->shape));
        return NULL;
    }
    return y;
}

/* Writes f's values, at the copies as they are now, into y (ck->m of them),
 * without recording. */
static int evaluate(checker *ck, double *y, int i, int64_t j, int sign)
{
    bool was = ag_set_grad_enabled(false);
    ag_tensor *out = run_f(ck, i, j, sign);
    ag_set_grad_enabled(was);
    if (out && out->numel) memcpy(y, out->data, ag__tensor_bytes(out));
    ag_arena_reset(ck->eval);
    return out ? 0 : -1;
}

/* Sets the copies' gradients to w . J: the backward of sum(f(x) * w). A
 * copy that f's output does not depend on keeps a zero (or no) gradient. */
static int vector_jacobian(checker *ck, const double *w)
{
    for (int i = 0; i < ck->n; i++) ag_zero_grad(ck->x[i]);
    bool was = ag_set_grad_enabled(true);
    ag_tensor *y = run_f(ck, 0, 0, 0);
    int status = y ? 0 : -1;
    if (y && y->requires_grad) {
        ag_tensor *wt = ag_from_data(ck->eval, AG_F64, y->ndim, y->shape, w);
        ag_tensor *loss =
            ag_sum(ck->eval, ag_mul(ck->eval, y, wt), AG_ALL, false);
        if (!loss || ag_backward(loss)) {
            char cause[400];
            snprintf(cause, sizeof cause, "%s", ag_last_error());
            ag__error(ck->func, "backward failed: %s", cause);
            status = -1;
        }
    }
    ag_set_grad_enabled(was);
    ag_arena_reset(ck->eval);
    return status;
}

/* The analytic value of element j of input i after vector_jacobian. */
static double analytic_at(const checker *ck, int i, int64_t j)
{
    const ag_tensor *g = ck->x[i]->grad;
    return g ? ((const double *)g->data)[j] : 0.0;
}

/* Flat index of the c-th checked element of input i. */
static int64_t element_of(const checker *ck, int i, int64_t c)
{
    return ck->sel[i] ? ck->sel[i][c] : c;
}

/* Picks the elements to check of each of the n tensors t that requires a
 * gradient: all, or max_elements of them without repetition, in
 * increasing order, by selection sampling (Knuth's algorithm S: element j
 * of n is taken with probability (still wanted) / (n - j)), so memory
 * stays at max_elements. */
static int select_elements(checker *ck, int n, ag_tensor *const *t, ag_rng *rng)
{
    ck->sel = ag__arena_alloc(ck->work, (size_t)n * sizeof *ck->sel,
                              _Alignof(int64_t *));
    ck->nsel = ag__arena_alloc(ck->work, (size_t)n * sizeof *ck->nsel,
                               _Alignof(int64_t));
    if (!ck->sel || !ck->nsel) {
        ag__error(ck->func, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        int64_t numel = t[i]->numel;
        ck->sel[i] = NULL;
        ck->nsel[i] = t[i]->requires_grad ? numel : 0;
        int64_t k = ck->opt.max_elements;
        if (!k || k >= ck->nsel[i]) continue;
        int64_t *idx = ag__arena_alloc(ck->work, (size_t)k * sizeof *idx,
                                       _Alignof(int64_t));
        if (!idx) {
            ag__error(ck->func, "out of memory sampling %lld elements",
                      (long long)k);
            return -1;
        }
        int64_t taken = 0;
        for (int64_t j = 0; j < numel && taken < k; j++)
            if (ag_rng_uniform(rng) * (double)(numel - j) < (double)(k - taken))
                idx[taken++] = j;
        ck->sel[i] = idx;
        ck->nsel[i] = k;
    }
    return 0;
}

/* Which of the n tensors t that require a gradient the output y reaches
 * through the graph: reached[i] false for the others. */
static int find_reached(const ag_tensor *y, int n, ag_tensor *const *t,
                        bool *reached)
{
    for (int i = 0; i < n; i++) reached[i] = false;
    if (!y->requires_grad) return 0;
    ag_tensor **order, *root = (ag_tensor *)y;
    int64_t count = ag__topological_order(1, &root, false, &order);
    if (count < 0) return -1;
    for (int i = 0; i < n; i++) reached[i] = t[i]->mark != 0;
    for (int64_t i = 0; i < count; i++) order[i]->mark = 0;
    return 0;
}

/* Fails the check for the first of the n tensors t that requires a
 * gradient and that y does not reach (unless options allow it): returns 1
 * with the report saying so, 0 when all are reached, -1 on error. */
static int check_reached(checker *ck, const ag_tensor *y, int n,
                         ag_tensor *const *t)
{
    if (ck->opt.allow_unused) return 0;
    bool *reached = ag__arena_alloc(ck->work, (size_t)n, 1);
    if (!reached || find_reached(y, n, t, reached)) {
        ag__error(ck->func, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (!t[i]->requires_grad || reached[i]) continue;
        ck->r->passed = false;
        ck->r->unreached = true;
        ck->r->input = i;
        ck->r->ndim = 0;
        ck->r->element = ck->r->output_element = -1;
        return 1;
    }
    return 0;
}

/* Counts one entry (element j of tensor x, input i) and keeps it in the
 * report when it is the worst yet. */
static void compare_at(checker *ck, const ag_tensor *x, int i, int64_t j,
                       int64_t o, double a, double num)
{
    ag_gradcheck_report *r = ck->r;
    double diff = fabs(a - num), tol = ck->opt.atol + ck->opt.rtol * fabs(num);
    bool pass = diff <= tol; /* false for NaN */
    double ratio =
        !pass ? (tol > 0 ? diff / tol : INFINITY) : (diff > 0 ? diff / tol : 0);
    if (isnan(ratio)) ratio = INFINITY;
    r->checked++;
    r->passed &= pass;
    if (!(ratio > ck->worst)) return;
    ck->worst = ratio;
    r->input = i;
    r->ndim = x->ndim;
    for (int64_t d = x->ndim - 1, rest = j; d >= 0; d--) {
        r->index[d] = x->shape[d] ? rest % x->shape[d] : 0;
        rest = x->shape[d] ? rest / x->shape[d] : 0;
    }
    r->element = j;
    r->output_element = o;
    r->analytic = a;
    r->numeric = num;
    r->abs_error = diff;
    r->rel_error = diff == 0 ? 0 : diff / fabs(num);
}

static void compare(checker *ck, int i, int64_t j, int64_t o, double a,
                    double num)
{
    compare_at(ck, ck->x[i], i, j, o, a, num);
}

/* f at element j of input i moved by +eps and -eps, into plus and minus;
 * the element is put back exactly. */
static int central(checker *ck, int i, int64_t j, double *plus, double *minus)
{
    double *v = ck->x[i]->data, saved = v[j];
    v[j] = saved + ck->opt.eps;
    int status = evaluate(ck, plus, i, j, 1);
    v[j] = saved - ck->opt.eps;
    if (!status) status = evaluate(ck, minus, i, j, -1);
    v[j] = saved;
    return status;
}

/* doubles from the work arena, or NULL with an error. */
static double *doubles(checker *ck, int64_t count, const char *what)
{
    size_t bytes;
    double *p = NULL;
    if (count >= 0 &&
        !__builtin_mul_overflow((size_t)count, sizeof(double), &bytes))
        p = ag__arena_alloc(ck->work, bytes ? bytes : 1, _Alignof(double));
    if (!p)
        ag__error(ck->func, "out of memory for %s (%lld values)", what,
                  (long long)count);
    return p;
}

/* Projection mode: one backward of sum(f(x) * v) against v . the central
 * difference, for each checked element. */
static int check_projection(checker *ck, ag_rng *rng)
{
    double *v = doubles(ck, ck->m, "v"), *plus = doubles(ck, ck->m, "f(x+)"),
           *minus = doubles(ck, ck->m, "f(x-)");
    if (!v || !plus || !minus) return -1;
    for (int64_t o = 0; o < ck->m; o++) v[o] = ag_rng_normal(rng);
    if (vector_jacobian(ck, v)) return -1;
    for (int i = 0; i < ck->n; i++)
        for (int64_t c = 0; c < ck->nsel[i]; c++) {
            int64_t j = element_of(ck, i, c);
            if (central(ck, i, j, plus, minus)) return -1;
            double num = 0;
            for (int64_t o = 0; o < ck->m; o++)
                num += v[o] * (plus[o] - minus[o]);
            compare(ck, i, j, -1, analytic_at(ck, i, j),
                    num / (2 * ck->opt.eps));
        }
    return 0;
}

/* Full mode: the analytic Jacobian row by row (one backward per output
 * element), then each checked element's numeric column against it. */
static int check_full(checker *ck)
{
    int64_t cols = 0, cells;
    for (int i = 0; i < ck->n; i++) cols += ck->nsel[i];
    if (__builtin_mul_overflow(ck->m, cols, &cells)) cells = -1;
    double *jac = doubles(ck, cells,
                          "the Jacobian; check with projection or "
                          "max_elements"),
           *e = doubles(ck, ck->m, "e_o"), *plus = doubles(ck, ck->m, "f(x+)"),
           *minus = doubles(ck, ck->m, "f(x-)");
    if (!jac || !e || !plus || !minus) return -1;
    memset(e, 0, (size_t)ck->m * sizeof *e);
    for (int64_t o = 0; o < ck->m; o++) {
        e[o] = 1;
        if (vector_jacobian(ck, e)) return -1;
        e[o] = 0;
        for (int i = 0, col = 0; i < ck->n; i++)
            for (int64_t c = 0; c < ck->nsel[i]; c++, col++)
                jac[o * cols + col] = analytic_at(ck, i, element_of(ck, i, c));
    }
    for (int i = 0, col = 0; i < ck->n; i++)
        for (int64_t c = 0; c < ck->nsel[i]; c++, col++) {
            int64_t j = element_of(ck, i, c);
            if (central(ck, i, j, plus, minus)) return -1;
            for (int64_t o = 0; o < ck->m; o++)
                compare(ck, i, j, o, jac[o * cols + col],
                        (plus[o] - minus[o]) / (2 * ck->opt.eps));
        }
    return 0;
}

/* Makes the copies, finds the output's shape, checks that it reaches
 * every input that requires a gradient, and runs the chosen mode. Returns
 * 0, 1 (an unreached input) or -1. */
static int run_check(checker *ck, ag_tensor *const *inputs)
{
    ck->x = ag__arena_alloc(ck->work, (size_t)ck->n * sizeof *ck->x,
                            _Alignof(ag_tensor *));
    if (!ck->x) {
        ag__error(ck->func, "out of memory");
        return -1;
    }
    for (int i = 0; i < ck->n; i++) {
        ck->x[i] = ag_detach(ck->work, inputs[i]);
        if (!ck->x[i]) return -1;
        ck->x[i]->requires_grad = inputs[i]->requires_grad;
    }
    ag_rng rng = ag_rng_seed(ck->opt.seed);
    if (select_elements(ck, ck->n, ck->x, &rng)) return -1;
    bool was = ag_set_grad_enabled(true);
    ag_tensor *y = run_f(ck, 0, 0, 0); /* learns the output's shape */
    ag_set_grad_enabled(was);
    int status = y ? check_reached(ck, y, ck->n, ck->x) : -1;
    ag_arena_reset(ck->eval);
    if (status) return status;
    return ck->opt.projection ? check_projection(ck, &rng) : check_full(ck);
}

/* Opens a check's arenas, runs `body` and closes them; returns body's
 * status (0 passed, 1 failed, -1 error), with the report's verdict set. */
static int with_arenas(checker *ck, int (*body)(checker *, const void *),
                       const void *arg)
{
    int status;
    ck->work = ag_arena_new();
    ck->eval = ag_arena_new();
    if (ck->work && ck->eval) {
        status = body(ck, arg);
    } else {
        ag__error(ck->func, "out of memory for its arenas");
        status = -1;
    }
    ag_arena_free(ck->work);
    ag_arena_free(ck->eval);
    if (status) ck->r->passed = false;
    if (status < 0) return -1;
    return ck->r->passed ? 0 : 1;
}

static int gradcheck_body(checker *ck, const void *inputs)
{
    return run_check(ck, inputs);
}

/* A fresh report and a checker for it. */
static void start_check(checker *ck, ag_gradcheck_report *r, const char *func,
                        const ag_gradcheck_options *options)
{
    *r = (ag_gradcheck_report){
        .passed = true, .input = -1, .element = -1, .output_element = -1};
    *ck = (checker){.out_ndim = -1, .worst = -1, .func = func, .r = r};
    ck->opt = options ? *options : ag_gradcheck_defaults();
}

/* ag_gradcheck and ag_gradgradcheck: a checker for f, the arguments
 * checked, then body in the check's arenas. */
static int check_function(const char *func, ag_gradcheck_fn f, int n,
                          ag_tensor *const *inputs, void *user,
                          const ag_gradcheck_options *options,
                          ag_gradcheck_report *report,
                          int (*body)(checker *, const void *), const void *arg)
{
    ag_gradcheck_report scratch_report;
    ag_gradcheck_report *r = report ? report : &scratch_report;
    checker ck;
    start_check(&ck, r, func, options);
    ck.f = f;
    ck.user = user;
    ck.n = n;
    if (check_args(ck.func, f, n, inputs, &ck.opt)) {
        r->passed = false;
        return -1;
    }
    return with_arenas(&ck, body, arg);
}

int ag_gradcheck(ag_gradcheck_fn f, int n, ag_tensor *const *inputs, void *user,
                 const ag_gradcheck_options *options,
                 ag_gradcheck_report *report)
{
    return check_function("ag_gradcheck", f, n, inputs, user, options, report,
                          gradcheck_body, inputs);
}

/* ---- gradgradcheck ---- */

/* The first derivative as a function of (x_0 .. x_{n-1}, u): output `which`
 * of the VJP u^T df/dx over the inputs that require a gradient. */
typedef struct {
    ag_gradcheck_fn f;
    void *user;
    int n;
    int which; /* the input whose gradient is the output */
} vjp_call;

static ag_tensor *vjp_output(ag_arena *a, ag_tensor *const *in, int n_in,
                             void *user)
{
    const vjp_call *c = user;
    ag_tensor *u = in[c->n];
    /* grad mode is on when the checker wants a graph of the result */
    bool create_graph = ag_set_grad_enabled(true);
    ag_tensor *y = c->f(a, in, c->n, c->user);
    ag_tensor **xs =
        ag__arena_alloc(a, (size_t)c->n * sizeof *xs, _Alignof(ag_tensor *));
    ag_tensor **grads =
        ag__arena_alloc(a, (size_t)c->n * sizeof *grads, _Alignof(ag_tensor *));
    int m = 0, slot = -1;
    for (int i = 0; i < c->n && xs; i++)
        if (in[i]->requires_grad) {
            if (i == c->which) slot = m;
            xs[m++] = in[i];
        }
    ag_tensor *result = NULL;
    if (y && xs && grads && slot >= 0) {
        if (!y->requires_grad) /* f ignores x: the checker reports it */
            result = ag_zeros(a, in[c->which]->dtype, in[c->which]->ndim,
                              in[c->which]->shape);
        else if (!ag_gradients(a, 1, &y, &u, m, xs, create_graph, grads))
            result = grads[slot];
    }
    ag_set_grad_enabled(create_graph);
    return result;
}

typedef struct {
    ag_tensor *const *inputs;
} gradgrad_arg;

/* Checks that f reaches its inputs, draws u, then gradchecks each
 * first-derivative output in turn, keeping the worst report. */
static int gradgrad_body(checker *ck, const void *arg)
{
    ag_tensor *const *inputs = ((const gradgrad_arg *)arg)->inputs;
    int n = ck->n;
    bool was = ag_set_grad_enabled(true);
    ag_clear_error();
    ag_tensor *y = ck->f(ck->eval, inputs, n, ck->user);
    ag_set_grad_enabled(was);
    if (!y) return f_failed(ck->func, 0, 0, 0);
    if (y->dtype != AG_F64 || y->numel == 0) {
        char b[AG_SHAPE_STR_MAX];
        ag__error(ck->func,
                  "f's output is %s %s; it must be f64 with at least one "
                  "element",
                  ag_dtype_name(y->dtype), ag__shape_str(b, y->ndim, y->shape));
        return -1;
    }
    int status = check_reached(ck, y, n, inputs);
    if (status) return status;
    ag_rng rng = ag_rng_seed(ck->opt.seed ^ 0x9e3779b97f4a7c15u);
    ag_tensor *u = ag_randn(ck->work, AG_F64, y->ndim, y->shape, 0, 1, &rng);
    ag_tensor **in = ag__arena_alloc(ck->work, (size_t)(n + 1) * sizeof *in,
                                     _Alignof(ag_tensor *));
    if (!u || !in) {
        ag__error(ck->func, "out of memory");
        return -1;
    }
    memcpy(in, inputs, (size_t)n * sizeof *in);
    in[n] = u;
    u->requires_grad = true;
    ag_arena_reset(ck->eval);
    ag_gradcheck_options inner = ck->opt;
    inner.allow_unused = true; /* f linear in x: df/dx does not depend on x */
    double worst = -1;
    for (int k = 0; k < n; k++) {
        if (!inputs[k]->requires_grad) continue;
        vjp_call call = {ck->f, ck->user, n, k};
        ag_gradcheck_report r;
        if (ag_gradcheck(vjp_output, n + 1, in, &call, &inner, &r) < 0) {
            char cause[400];
            snprintf(cause, sizeof cause, "%s", ag_last_error());
            ag__error(ck->func, "the gradient of input %d: %s", k, cause);
            return -1;
        }
        int64_t checked = ck->r->checked + r.checked;
        double ratio =
            r.abs_error / (inner.atol + inner.rtol * fabs(r.numeric));
        if (!r.passed) ratio = INFINITY;
        if (r.input >= 0 && (ratio > worst || worst < 0)) {
            worst = ratio;
            bool failed = !ck->r->passed;
            *ck->r = r;
            ck->r->passed = !failed && r.passed;
        } else {
            ck->r->passed &= r.passed;
        }
        ck->r->checked = checked;
    }
    return 0;
}

int ag_gradgradcheck(ag_fn f, int n, ag_tensor *const *inputs, void *user,
                     const ag_gradcheck_options *options,
                     ag_gradcheck_report *report)
{
    gradgrad_arg arg = {inputs};
    return check_function("ag_gradgradcheck", f, n, inputs, user, options,
                          report, gradgrad_body, &arg);
}

/* ---- gradcheck_params ---- */

typedef struct {
    ag_loss_fn loss;
    const ag_params *params;
} params_arg;

/* The loss in ck->eval under grad mode `record`, checked to be one f64
 * element; NULL with an error. */
static ag_tensor *run_loss(checker *ck, const params_arg *p, bool record, int i,
                           int64_t j, int sign)
{
    ag_clear_error();
    bool was = ag_set_grad_enabled(record);
    ag_tensor *y = p->loss(ck->eval, ck->user);
    ag_set_grad_enabled(was);
    if (!y) {
        f_failed(ck->func, i, j, sign);
        return NULL;
    }
    if (y->dtype != AG_F64 || y->numel != 1) {
        char b[AG_SHAPE_STR_MAX];
        ag__error(ck->func, "the loss is %s %s; it must be one f64 element",
                  ag_dtype_name(y->dtype), ag__shape_str(b, y->ndim, y->shape));
        return NULL;
    }
    return y;
}

static int params_body(checker *ck, const void *arg)
{
    const params_arg *p = arg;
    int n = ag_params_count(p->params);
    ag_tensor **t =
        ag__arena_alloc(ck->work, (size_t)n * sizeof *t, _Alignof(ag_tensor *));
    ag_tensor **req = ag__arena_alloc(ck->work, (size_t)n * sizeof *req,
                                      _Alignof(ag_tensor *));
    ag_tensor **grads = ag__arena_alloc(ck->work, (size_t)n * sizeof *grads,
                                        _Alignof(ag_tensor *));
    if (!t || !req || !grads) {
        ag__error(ck->func, "out of memory");
        return -1;
    }
    int m = 0;
    for (int i = 0; i < n; i++) {
        t[i] = ag_params_tensor(p->params, i);
        if (t[i]->requires_grad) req[m++] = t[i];
    }
    ag_rng rng = ag_rng_seed(ck->opt.seed);
    if (select_elements(ck, n, t, &rng)) return -1;
    ag_tensor *y = run_loss(ck, p, true, 0, 0, 0);
    if (!y) return -1;
    int status = check_reached(ck, y, n, t);
    if (status) {
        if (status > 0) ck->r->name = ag_params_name(p->params, ck->r->input);
        return status;
    }
    if (!y->requires_grad) { /* allowed: every gradient is zero */
        for (int k = 0; k < m; k++)
            if (!(grads[k] =
                      ag_zeros(ck->work, AG_F64, req[k]->ndim, req[k]->shape)))
                return -1;
    } else if (ag_gradients(ck->work, 1, &y, NULL, m, req, false, grads)) {
        char cause[400];
        snprintf(cause, sizeof cause, "%s", ag_last_error());
        ag__error(ck->func, "the backward pass failed: %s", cause);
        return -1;
    }
    ag_arena_reset(ck->eval);
    for (int i = 0, k = 0; i < n; i++) {
        if (!t[i]->requires_grad) continue;
        const double *g = grads[k++]->data;
        double *v = t[i]->data;
        for (int64_t c = 0; c < ck->nsel[i]; c++) {
            int64_t j = ck->sel[i] ? ck->sel[i][c] : c;
            double kept = v[j], plus, minus;
            v[j] = kept + ck->opt.eps;
            ag_tensor *yp = run_loss(ck, p, false, i, j, 1);
            plus = yp ? ((double *)yp->data)[0] : 0;
            ag_arena_reset(ck->eval);
            v[j] = kept - ck->opt.eps;
            ag_tensor *ym = yp ? run_loss(ck, p, false, i, j, -1) : NULL;
            minus = ym ? ((double *)ym->data)[0] : 0;
            ag_arena_reset(ck->eval);
            v[j] = kept;
            if (!ym) return -1;
            double before = ck->worst;
            compare_at(ck, t[i], i, j, -1, g[j],
                       (plus - minus) / (2 * ck->opt.eps));
            if (ck->worst != before) ck->r->name = ag_params_name(p->params, i);
        }
    }
    return 0;
}

int ag_gradcheck_params(ag_loss_fn loss, void *user, const ag_params *params,
                        const ag_gradcheck_options *options,
                        ag_gradcheck_report *report)
{
    ag_gradcheck_report scratch_report;
    ag_gradcheck_report *r = report ? report : &scratch_report;
    checker ck;
    start_check(&ck, r, "ag_gradcheck_params", options);
    ck.user = user;
    const char *func = ck.func;
    int n = params ? ag_params_count(params) : 0;
    int status = ag__refuse_in_backward(func);
    if (!status && (!loss || !params || n < 1)) {
        ag__error(func,
                  "needs a loss function and a non-empty parameter "
                  "set, got %s and %s",
                  loss ? "a loss" : "loss NULL",
                  !params ? "params NULL" : "an empty set");
        status = -1;
    }
    bool any = false;
    for (int i = 0; i < n && !status; i++) {
        const ag_tensor *t = ag_params_tensor(params, i);
        any |= t->requires_grad;
        if (t->dtype != AG_F64) {
            ag__error(func,
                      "parameter %d '%s' is %s; the check needs f64 "
                      "parameters (make an f64 copy of the model)",
                      i, ag_params_name(params, i), ag_dtype_name(t->dtype));
            status = -1;
        }
    }
    if (!status && !any) {
        ag__error(func, "none of the %d parameters requires a gradient", n);
        status = -1;
    }
    if (!status) status = check_options(func, &ck.opt);
    if (status) {
        r->passed = false;
        return -1;
    }
    params_arg arg = {loss, params};
    return with_arenas(&ck, params_body, &arg);
}

void ag_gradcheck_print(FILE *out, const ag_gradcheck_report *r)
{
    if (!out || !r) return;
    const char *verdict = r->passed ? "passed" : "FAILED";
    char name[160] = "";
    if (r->name) snprintf(name, sizeof name, " '%s'", r->name);
    if (r->unreached) {
        fprintf(out,
                "gradcheck FAILED: input %d%s does not reach the output (it "
                "requires a gradient, but the output was computed without "
                "it)\n",
                r->input, name);
        return;
    }
    if (r->checked == 0 || r->input < 0) {
        fprintf(out, "gradcheck %s: no entries checked\n", verdict);
        return;
    }
    char index[AG_SHAPE_STR_MAX], output[32] = "v.J";
    ag__shape_str(index, r->ndim, r->index);
    if (r->output_element >= 0)
        snprintf(output, sizeof output, "%lld", (long long)r->output_element);
    fprintf(out,
            "gradcheck %s: %sinput %d%s element %s output %s: analytic %.10g "
            "numeric %.10g abs error %.3g rel error %.3g (%lld entries "
            "checked)\n",
            verdict, r->passed ? "worst " : "", r->input, name, index, output,
            r->analytic, r->numeric, r->abs_error, r->rel_error,
            (long long)r->checked);
}
