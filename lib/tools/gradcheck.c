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
 * rtol |numeric|). */
#include "../internal.h"

#include <math.h>
#include <stdlib.h>

/* The state of one check. */
typedef struct {
    ag_gradcheck_fn f;
    void *user;
    int n;
    ag_tensor *x[AG_FUNCTION_MAX_INPUTS]; /* the copies, in work */
    ag_arena *work;                       /* copies, selections, buffers */
    ag_arena *eval;                       /* one evaluation of f; reset */
    int out_ndim;                         /* -1 until f first ran */
    int64_t out_shape[AG_MAX_DIMS];
    int64_t m; /* output elements */
    ag_gradcheck_options opt;
    int64_t *sel[AG_FUNCTION_MAX_INPUTS]; /* checked elements; NULL: all */
    int64_t nsel[AG_FUNCTION_MAX_INPUTS];
    double worst; /* the report's |a - n| / (atol + rtol |n|) */
    ag_gradcheck_report *r;
} checker;

ag_gradcheck_options ag_gradcheck_defaults(void)
{
    return (ag_gradcheck_options){.eps = 1e-6, .atol = 1e-5, .rtol = 1e-3};
}

/* Checks the arguments; reports as ag_gradcheck. */
static int check_args(ag_gradcheck_fn f, int n, ag_tensor *const *inputs,
                      const ag_gradcheck_options *o)
{
    const char *func = "ag_gradcheck";
    if (ag__refuse_in_backward(func)) return -1;
    if (!f || !inputs || n < 1 || n > AG_FUNCTION_MAX_INPUTS) {
        ag__error(func, "needs a function and 1 to %d inputs, got %s, %d %s",
                  AG_FUNCTION_MAX_INPUTS, f ? "f" : "f NULL", n,
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

/* Reports that f failed (at input i element j moved by sign * eps, or at
 * the inputs as given when sign is 0), keeping f's own message. */
static int f_failed(int i, int64_t j, int sign)
{
    char cause[400], where[96] = "at the inputs";
    snprintf(cause, sizeof cause, "%s",
             ag_last_error()[0] ? ag_last_error()
                                : "returned NULL without an error");
    if (sign)
        snprintf(where, sizeof where, "with input %d element %lld %ceps", i,
                 (long long)j, sign > 0 ? '+' : '-');
    ag__error("ag_gradcheck", "f failed %s: %s", where, cause);
    return -1;
}

/* Runs f in ck->eval; checks that its output is an f64 tensor of the same
 * shape every time. Returns it, or NULL with an error. */
static ag_tensor *run_f(checker *ck, int i, int64_t j, int sign)
{
    ag_clear_error();
    ag_tensor *y = ck->f(ck->eval, ck->x, ck->n, ck->user);
    if (!y) {
        f_failed(i, j, sign);
        return NULL;
    }
    char b0[AG_SHAPE_STR_MAX], b1[AG_SHAPE_STR_MAX];
    if (y->dtype != AG_F64) {
        ag__error("ag_gradcheck",
                  "f's output is %s %s; it must be f64 like its inputs",
                  ag_dtype_name(y->dtype),
                  ag__shape_str(b0, y->ndim, y->shape));
        return NULL;
    }
    if (ck->out_ndim < 0) {
        ck->out_ndim = y->ndim;
        memcpy(ck->out_shape, y->shape, sizeof y->shape);
        ck->m = y->numel;
    } else if (y->ndim != ck->out_ndim ||
               memcmp(y->shape, ck->out_shape,
                      (size_t)y->ndim * sizeof *y->shape)) {
        ag__error("ag_gradcheck", "f's output changed shape from %s to %s",
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
            ag__error("ag_gradcheck", "backward failed: %s", cause);
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

/* Picks the elements to check of each input that requires a gradient: all,
 * or max_elements of them without repetition, in increasing order, by
 * selection sampling (Knuth's algorithm S: element j of n is taken with
 * probability (still wanted) / (n - j)), so memory stays at max_elements. */
static int select_elements(checker *ck, ag_rng *rng)
{
    for (int i = 0; i < ck->n; i++) {
        int64_t numel = ck->x[i]->numel;
        ck->nsel[i] = ck->x[i]->requires_grad ? numel : 0;
        int64_t k = ck->opt.max_elements;
        if (!k || k >= ck->nsel[i]) continue;
        int64_t *idx = ag__arena_alloc(ck->work, (size_t)k * sizeof *idx,
                                       _Alignof(int64_t));
        if (!idx) {
            ag__error("ag_gradcheck", "out of memory sampling %lld elements",
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

/* Counts one entry and keeps it in the report when it is the worst yet. */
static void compare(checker *ck, int i, int64_t j, int64_t o, double a,
                    double num)
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
    const ag_tensor *x = ck->x[i];
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
        ag__error("ag_gradcheck", "out of memory for %s (%lld values)", what,
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

/* Makes the copies, finds the output's shape and runs the chosen mode. */
static int run_check(checker *ck, ag_tensor *const *inputs)
{
    for (int i = 0; i < ck->n; i++) {
        ck->x[i] = ag_detach(ck->work, inputs[i]);
        if (!ck->x[i]) return -1;
        ck->x[i]->requires_grad = inputs[i]->requires_grad;
    }
    ag_rng rng = ag_rng_seed(ck->opt.seed);
    if (select_elements(ck, &rng)) return -1;
    bool was = ag_set_grad_enabled(false);
    ag_tensor *y = run_f(ck, 0, 0, 0); /* learns the output's shape */
    ag_set_grad_enabled(was);
    ag_arena_reset(ck->eval);
    if (!y) return -1;
    return ck->opt.projection ? check_projection(ck, &rng) : check_full(ck);
}

int ag_gradcheck(ag_gradcheck_fn f, int n, ag_tensor *const *inputs, void *user,
                 const ag_gradcheck_options *options,
                 ag_gradcheck_report *report)
{
    ag_gradcheck_report scratch_report;
    ag_gradcheck_report *r = report ? report : &scratch_report;
    *r = (ag_gradcheck_report){
        .passed = true, .input = -1, .element = -1, .output_element = -1};
    checker ck = {
        .f = f, .user = user, .n = n, .out_ndim = -1, .worst = -1, .r = r};
    ck.opt = options ? *options : ag_gradcheck_defaults();
    int status = check_args(f, n, inputs, &ck.opt);
    if (!status) {
        ck.work = ag_arena_new();
        ck.eval = ag_arena_new();
        if (ck.work && ck.eval)
            status = run_check(&ck, inputs);
        else {
            ag__error("ag_gradcheck", "out of memory for its arenas");
            status = -1;
        }
        ag_arena_free(ck.work);
        ag_arena_free(ck.eval);
    }
    if (status) {
        r->passed = false;
        return -1;
    }
    return r->passed ? 0 : 1;
}

void ag_gradcheck_print(FILE *out, const ag_gradcheck_report *r)
{
    if (!out || !r) return;
    const char *verdict = r->passed ? "passed" : "FAILED";
    if (r->checked == 0 || r->input < 0) {
        fprintf(out, "gradcheck %s: no entries checked\n", verdict);
        return;
    }
    char index[AG_SHAPE_STR_MAX], output[32] = "v.J";
    ag__shape_str(index, r->ndim, r->index);
    if (r->output_element >= 0)
        snprintf(output, sizeof output, "%lld", (long long)r->output_element);
    fprintf(out,
            "gradcheck %s: %sinput %d element %s output %s: analytic %.10g "
            "numeric %.10g abs error %.3g rel error %.3g (%lld entries "
            "checked)\n",
            verdict, r->passed ? "worst " : "", r->input, index, output,
            r->analytic, r->numeric, r->abs_error, r->rel_error,
            (long long)r->checked);
}
