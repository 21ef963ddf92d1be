/* graph.c: recording ops into the graph and running it backward.
 *
 * An op's result keeps its op and its inputs when grad mode is on and some
 * input requires a gradient; that is the whole graph. ag_backward sorts the
 * tensors the loss depends on into topological order with an explicit stack
 * (no recursion, so a chain of any length works), makes sure each has a
 * gradient buffer, seeds the loss gradient with 1, and calls each op's
 * backward in reverse order, stopping at the first that fails. Buffers that
 * start the pass at zero are not cleared up front: the first op to write
 * one stores into it (see ag__grad_begin in internal.h). */
#include "internal.h"

/* Marks during ag_backward; FRESH: done, and its gradient buffer was made
 * (or taken back from spare_grad) by this pass. During ag_gradients,
 * NEEDED: done, and one of the inputs asked for is reached through it. */
enum { UNSEEN = 0, OPEN = 1, DONE = 2, FRESH = 3, NEEDED = 4 };

int ag__record(const char *func, ag_tensor *out, const ag_op *op, int n,
               ag_tensor *const *inputs)
{
    ag_tensor **slots = NULL;
    if (n > 0) {
        slots = ag__arena_alloc(out->arena, (size_t)n * sizeof *slots,
                                _Alignof(ag_tensor *));
        if (!slots) {
            ag__error(func, "out of memory recording %d inputs", n);
            return -1;
        }
        memcpy(slots, inputs, (size_t)n * sizeof *slots);
    }
    out->op = op;
    out->n_inputs = n;
    out->inputs = slots;
    bool record = false;
    if (ag_is_grad_enabled())
        for (int i = 0; i < n; i++)
            record |= ag__differentiable(out, i) && inputs[i]->requires_grad;
    out->requires_grad = record;
    return 0;
}

int ag__finish(const char *func, ag_tensor *out)
{
    if (ag_is_anomaly_detection_enabled() && ag__anomaly_forward(func, out))
        return -1;
    if (!out->requires_grad) { /* its tangent, if any, is already made */
        /* a leaf: no references into inputs' arenas */
        out->op = NULL;
        out->n_inputs = 0;
        out->inputs = NULL;
        out->params = out->saved = NULL;
    }
    return 0;
}

/* Forward mode is suspended while an op's jvp runs, so that the ops of a
 * tangent's formula carry no tangents of their own (one level, as
 * torch.autograd.forward_ad). */
static _Thread_local bool tangents_suspended;

int ag__forward_tangent(const char *func, ag_tensor *out)
{
    if (tangents_suspended) return 0;
    ag_tensor *tx_small[4], **tx = tx_small;
    bool any = false;
    for (int i = 0; i < out->n_inputs; i++)
        any |= ag__differentiable(out, i) && out->inputs[i]->tangent;
    if (!any) return 0;
    if (!out->op->jvp) {
        ag__error(func,
                  "op %s has no forward-mode rule (a user-defined function "
                  "needs a jvp to carry tangents)",
                  out->op->name);
        return -1;
    }
    if (out->n_inputs > 4) {
        tx = ag__arena_alloc(out->arena, (size_t)out->n_inputs * sizeof *tx,
                             _Alignof(ag_tensor *));
        if (!tx) {
            ag__error(func, "out of memory for tangents");
            return -1;
        }
    }
    for (int i = 0; i < out->n_inputs; i++)
        tx[i] = ag__differentiable(out, i) ? out->inputs[i]->tangent : NULL;
    ag_tensor *t = NULL;
    tangents_suspended = true;
    int status = out->op->jvp(out->arena, out, tx, &t);
    tangents_suspended = false;
    if (status) return -1;
    if (!t) t = ag_zeros(out->arena, out->dtype, out->ndim, out->shape);
    if (!t) return -1;
    char b0[AG_SHAPE_STR_MAX], b1[AG_SHAPE_STR_MAX];
    if (t->dtype != out->dtype || t->ndim != out->ndim ||
        memcmp(t->shape, out->shape, (size_t)t->ndim * sizeof *t->shape)) {
        ag__error(func,
                  "the forward-mode rule of %s gave a %s %s tangent for a %s "
                  "%s result",
                  out->op->name, ag_dtype_name(t->dtype),
                  ag__shape_str(b0, t->ndim, t->shape),
                  ag_dtype_name(out->dtype),
                  ag__shape_str(b1, out->ndim, out->shape));
        return -1;
    }
    out->tangent = t;
    return 0;
}

ag_tensor *ag__apply(const char *func, ag_arena *a, const ag_op *op, int n,
                     ag_tensor *const *inputs, ag_dtype dt, int ndim,
                     const int64_t *shape, const void *params)
{
    ag_tensor *out = ag__tensor_new(func, a, dt, ndim, shape, !op->view);
    if (!out) return NULL;
    if (op->params_size) {
        out->params = ag__arena_alloc(a, op->params_size, 16);
        if (!out->params) goto out_of_memory;
        if (params)
            memcpy(out->params, params, op->params_size);
        else
            memset(out->params, 0, op->params_size);
    }
    if (op->saved_size) {
        out->saved = ag__arena_alloc(a, op->saved_size, 16);
        if (!out->saved) goto out_of_memory;
        memset(out->saved, 0, op->saved_size);
    }
    if (ag__record(func, out, op, n, inputs) || op->forward(out) ||
        ag__forward_tangent(func, out) || ag__finish(func, out))
        return NULL;
    return out;

out_of_memory:
    ag__error(func, "out of memory");
    return NULL;
}

int64_t ag__topological_order(int n, ag_tensor *const *roots, bool all_inputs,
                              ag_tensor ***order_out)
{
    ag_arena *a = roots[0]->arena;
    size_t cap = 1024;
    ag_tensor **stack = ag__arena_scratch(a, 0, cap);
    ag_tensor **order = ag__arena_scratch(a, 1, cap);
    if (!stack || !order) return -1;
    size_t depth = 0, count = 0;
    /* One depth-first walk per root not already listed: a tensor on the
     * stack is then always below those made from it. */
    for (int r = 0; r < n; r++) {
        if (roots[r]->mark != UNSEEN) continue;
        if (count == cap) { /* depth is 0 here */
            cap *= 2;
            stack = ag__arena_scratch(a, 0, cap);
            order = ag__arena_scratch(a, 1, cap);
            if (!stack || !order) goto out_of_memory;
        }
        stack[depth++] = roots[r];
        roots[r]->mark = OPEN;
        while (depth > 0) {
            ag_tensor *t = stack[depth - 1];
            ag_tensor *next = NULL;
            for (int i = 0; i < t->n_inputs && !next; i++) {
                ag_tensor *in = t->inputs[i];
                if ((all_inputs || in->requires_grad) && in->mark == UNSEEN)
                    next = in;
            }
            if (next) {
                /* Every visited tensor is on the stack or in the order,
                 * never both, so depth + count bounds both arrays. */
                if (depth + count == cap) {
                    cap *= 2;
                    stack = ag__arena_scratch(a, 0, cap);
                    order = ag__arena_scratch(a, 1, cap);
                    if (!stack || !order) goto out_of_memory;
                }
                next->mark = OPEN;
                stack[depth++] = next;
            } else {
                t->mark = DONE;
                order[count++] = t;
                depth--;
            }
        }
    }
    *order_out = order;
    return (int64_t)count;

out_of_memory: /* the arrays still hold what was marked so far */
    stack = ag__arena_scratch(a, 0, 0);
    order = ag__arena_scratch(a, 1, 0);
    for (size_t i = 0; i < depth; i++) stack[i]->mark = UNSEEN;
    for (size_t i = 0; i < count; i++) order[i]->mark = UNSEEN;
    return -1;
}

/* Whether t was made by an op some of whose inputs (still) require a
 * gradient; a leaf whose flag was cleared after use gets none. Ops with two
 * inputs check each one themselves. */
static bool needs_backward(const ag_tensor *t)
{
    for (int i = 0; i < t->n_inputs; i++)
        if (t->inputs[i]->requires_grad && ag__differentiable(t, i))
            return true;
    return false;
}

/* Whether this thread is inside ag_backward: the pass keeps marks on its
 * tensors and its order in the loss's arena until it ends, so another walk
 * of a graph (from a user-defined function's backward) must wait. */
static _Thread_local bool backward_running;

int ag__refuse_in_backward(const char *func)
{
    if (!backward_running) return 0;
    ag__error(func, "cannot run during a backward pass (called from a "
                    "user-defined function's backward?)");
    return -1;
}

void *ag__grad_begin(ag_tensor *x, bool *assign)
{
    *assign = x->grad_unwritten;
    x->grad_unwritten = false;
    return x->grad->data;
}

void *ag__grad_accumulate(ag_tensor *x)
{
    if (x->grad_unwritten) {
        ag_zero_grad(x);
        x->grad_unwritten = false;
    }
    return x->grad->data;
}

int ag_set_grad_hook(ag_tensor *t, ag_grad_hook hook, void *user)
{
    const char *func = "ag_set_grad_hook";
    if (!t) return ag__null_input(func, 0);
    if (t->dtype == AG_I32) {
        ag__error(func, "an i32 tensor never has a gradient to hook");
        return -1;
    }
    t->grad_hook = hook;
    t->grad_hook_user = hook ? user : NULL;
    return 0;
}

/* Calls t's gradient hook: its gradient is final, every tensor made from
 * t being later in the order, so already run. An unwritten buffer is
 * cleared first, so that the hook reads zeros. */
static int call_grad_hook(ag_tensor *t)
{
    ag__grad_accumulate(t);
    ag_clear_error();
    int rc = t->grad_hook(t, t->grad_hook_user);
    if (rc && !ag_last_error()[0])
        ag__error("ag_backward", "a gradient hook returned %d without an error",
                  rc);
    return rc ? -1 : 0;
}

/* Runs the backward of every op in `order` (inputs first) from the last to
 * the first, checking gradients in anomaly mode, and with `hooks` calling
 * each tensor's gradient hook as its turn comes; stops at a failure. An op
 * that received no gradient contributes none. */
static int run_backward(ag_tensor **order, int64_t count, bool hooks)
{
    bool anomaly = ag_is_anomaly_detection_enabled();
    int status = 0;
    backward_running = true;
    for (int64_t i = count - 1; i >= 0 && !status; i--) {
        if (hooks && order[i]->grad_hook && (status = call_grad_hook(order[i])))
            break;
        if (!needs_backward(order[i]) || order[i]->grad_unwritten) continue;
        status = order[i]->op->backward(order[i]) ? -1 : 0;
        if (!status && anomaly) status = ag__anomaly_backward(order[i]);
    }
    backward_running = false;
    return status;
}

int ag_backward(ag_tensor *loss)
{
    const char *func = "ag_backward";
    if (!loss) return ag__null_input(func, 0);
    if (ag__refuse_in_backward(func)) return -1;
    char buf[AG_SHAPE_STR_MAX];
    if (loss->numel != 1 || loss->dtype == AG_I32) {
        ag__error(func, "the loss must be one float element, got %s %s",
                  ag_dtype_name(loss->dtype),
                  ag__shape_str(buf, loss->ndim, loss->shape));
        return -1;
    }
    if (!loss->requires_grad) {
        ag__error(func, "the loss has no recorded history: no tensor it was "
                        "computed from required a gradient, or grad mode was "
                        "off when it was computed");
        return -1;
    }
    ag_tensor **order;
    int64_t count = ag__topological_order(1, &loss, false, &order);
    if (count < 0) {
        ag__error(func, "out of memory sorting the graph");
        return -1;
    }
    /* Allocate every missing buffer before changing any, so that running
     * out of memory leaves all gradients as they were. */
    int status = 0;
    for (int64_t i = 0; i < count && !status; i++) {
        ag_tensor *t = order[i];
        if (t->grad) continue;
        t->grad = t->spare_grad ? t->spare_grad
                                : ag__tensor_new(func, t->arena, t->dtype,
                                                 t->ndim, t->shape, true);
        t->spare_grad = NULL;
        t->mark = FRESH;
        if (!t->grad) status = -1;
    }
    if (status) { /* the buffers made so far are kept as spares */
        for (int64_t i = 0; i < count; i++)
            if (order[i]->mark == FRESH) {
                order[i]->spare_grad = order[i]->grad;
                order[i]->grad = NULL;
            }
        ag__error(func, "out of memory for gradients");
    } else {
        /* Leaves accumulate across passes; op results start from zero. */
        for (int64_t i = 0; i < count; i++)
            order[i]->grad_unwritten = order[i]->op || order[i]->mark == FRESH;
        AG_DISPATCH_FLOAT(loss->dtype,
                          { *(real *)ag__grad_accumulate(loss) += 1; });
        status = run_backward(order, count, true);
        for (int64_t i = 0; i < count; i++) ag__grad_accumulate(order[i]);
    }
    for (int64_t i = 0; i < count; i++) order[i]->mark = UNSEEN;
    return status;
}

/* ---- forward mode ---- */

ag_tensor *ag_make_dual(ag_arena *a, ag_tensor *primal, ag_tensor *tangent)
{
    const char *func = "ag_make_dual";
    ag_tensor *pair[2] = {primal, tangent};
    if (ag__check_float_inputs(func, a, 2, pair)) return NULL;
    char b0[AG_SHAPE_STR_MAX], b1[AG_SHAPE_STR_MAX];
    if (!ag__same_shape(tangent, primal->ndim, primal->shape)) {
        ag__error(func, "the tangent's shape %s differs from the primal's %s",
                  ag__shape_str(b0, tangent->ndim, tangent->shape),
                  ag__shape_str(b1, primal->ndim, primal->shape));
        return NULL;
    }
    ag_tensor *dual = ag_detach(a, primal);
    ag_tensor *t = dual ? ag_detach(a, tangent) : NULL;
    if (!t) return NULL;
    dual->tangent = t;
    return dual;
}

ag_tensor *ag_tangent(const ag_tensor *t)
{
    return t ? t->tangent : NULL;
}

/* ---- ag_gradients ---- */

/* What ag_gradients changes on each tensor it walks, put back after. */
typedef struct {
    ag_tensor *grad, *spare_grad;
    bool requires_grad, grad_unwritten;
} kept_state;

/* Checks ag_gradients' arguments; reports as func. */
static int check_gradients_args(const char *func, ag_arena *a, int n_outputs,
                                ag_tensor *const *outputs,
                                ag_tensor *const *grad_outputs, int n_inputs,
                                ag_tensor *const *inputs, ag_tensor **grads)
{
    if (ag__refuse_in_backward(func)) return -1;
    if (!a || !outputs || !inputs || !grads || n_outputs < 1 || n_inputs < 1) {
        ag__error(func,
                  "needs an arena, at least one output and one input, and "
                  "the grads array: got %s, %d outputs%s, %d inputs%s%s",
                  a ? "an arena" : "arena NULL", n_outputs,
                  outputs ? "" : " (array NULL)", n_inputs,
                  inputs ? "" : " (array NULL)", grads ? "" : ", grads NULL");
        return -1;
    }
    char b0[AG_SHAPE_STR_MAX], b1[AG_SHAPE_STR_MAX];
    for (int i = 0; i < n_outputs; i++) {
        const ag_tensor *y = outputs[i];
        if (!y) return ag__null_input(func, i);
        ag__shape_str(b0, y->ndim, y->shape);
        if (y->dtype == AG_I32 || !y->requires_grad) {
            ag__error(func,
                      "output %d (%s %s) does not depend on anything that "
                      "requires a gradient%s",
                      i, ag_dtype_name(y->dtype), b0,
                      y->dtype == AG_I32 ? " (it is i32)"
                                         : " (or grad mode was off)");
            return -1;
        }
        const ag_tensor *g = grad_outputs ? grad_outputs[i] : NULL;
        if (!g && y->numel != 1) {
            ag__error(func,
                      "grad_outputs[%d] is missing for output %d of shape %s "
                      "(%lld elements); only a one-element output may go "
                      "without one",
                      i, i, b0, (long long)y->numel);
            return -1;
        }
        if (g &&
            (g->dtype != y->dtype || g->ndim != y->ndim ||
             memcmp(g->shape, y->shape, (size_t)y->ndim * sizeof *y->shape))) {
            ag__error(func, "grad_outputs[%d] is %s %s, but output %d is %s %s",
                      i, ag_dtype_name(g->dtype),
                      ag__shape_str(b1, g->ndim, g->shape), i,
                      ag_dtype_name(y->dtype), b0);
            return -1;
        }
    }
    for (int j = 0; j < n_inputs; j++) {
        const ag_tensor *x = inputs[j];
        if (!x) {
            ag__error(func, "input %d is NULL", j);
            return -1;
        }
        if (!x->requires_grad) {
            ag__error(func, "input %d (%s %s) does not require a gradient", j,
                      ag_dtype_name(x->dtype),
                      ag__shape_str(b0, x->ndim, x->shape));
            return -1;
        }
    }
    return 0;
}

/* Marks NEEDED every tensor of the order through which one of the inputs
 * is reached: the inputs, then (inputs first) every tensor with a NEEDED
 * differentiable input. */
static void mark_needed(ag_tensor **order, int64_t count, int n_inputs,
                        ag_tensor *const *inputs)
{
    for (int j = 0; j < n_inputs; j++)
        if (inputs[j]->mark == DONE) inputs[j]->mark = NEEDED;
    for (int64_t i = 0; i < count; i++) {
        ag_tensor *t = order[i];
        for (int k = 0; k < t->n_inputs && t->mark != NEEDED; k++)
            if (t->inputs[k]->mark == NEEDED && ag__differentiable(t, k))
                t->mark = NEEDED;
    }
}

/* First order by the fast kernels: every NEEDED tensor gets a fresh
 * unwritten buffer in a, the others stop requiring a gradient for the
 * pass, so that no kernel computes theirs. */
static int gradients_by_kernels(ag_arena *a, ag_tensor **order, int64_t count,
                                int n_outputs, ag_tensor *const *outputs,
                                ag_tensor *const *grad_outputs)
{
    for (int64_t i = 0; i < count; i++) {
        ag_tensor *t = order[i];
        t->spare_grad = NULL;
        t->grad = NULL;
        if (t->mark != NEEDED) {
            t->requires_grad = false;
            continue;
        }
        t->grad = ag__tensor_new("ag_gradients", a, t->dtype, t->ndim, t->shape,
                                 true);
        if (!t->grad) return -1;
        t->grad_unwritten = true;
    }
    for (int i = 0; i < n_outputs; i++) {
        ag_tensor *y = outputs[i];
        if (y->mark != NEEDED) continue;
        const ag_tensor *seed = grad_outputs ? grad_outputs[i] : NULL;
        AG_DISPATCH_FLOAT(y->dtype, {
            real *g = ag__grad_accumulate(y);
            const real *s = seed ? seed->data : NULL;
            for (int64_t e = 0; e < y->numel; e++) g[e] += s ? s[e] : 1;
        });
    }
    return run_backward(order, count, false);
}

/* Every order by the ops' vjp rules, with grad mode on: grad holds each
 * NEEDED tensor's gradient as a tensor with a graph (NULL: zero). */
static int gradients_by_ops(ag_arena *a, ag_tensor **order, int64_t count,
                            int n_outputs, ag_tensor *const *outputs,
                            ag_tensor *const *grad_outputs)
{
    const char *func = "ag_gradients";
    for (int64_t i = 0; i < count; i++) {
        order[i]->grad = order[i]->spare_grad = NULL;
        order[i]->grad_unwritten = false;
    }
    for (int i = 0; i < n_outputs; i++) {
        ag_tensor *y = outputs[i];
        if (y->mark != NEEDED) continue;
        ag_tensor *seed = grad_outputs ? grad_outputs[i] : NULL;
        if (!seed) seed = ag_ones(a, y->dtype, y->ndim, y->shape);
        y->grad = y->grad ? ag_add(a, y->grad, seed) : seed;
        if (!y->grad) return -1;
    }
    ag_tensor *dx_small[8], **dx = dx_small;
    bool want_small[8], *want = want_small;
    for (int64_t i = count - 1; i >= 0; i--) {
        ag_tensor *t = order[i];
        if (!t->op || t->mark != NEEDED || !t->grad) continue;
        if (!t->op->vjp) {
            ag__error(func,
                      "op %s has no derivative in ops, so a graph of the "
                      "gradient (create_graph) cannot go through it (a "
                      "user-defined function needs a backward in ops)",
                      t->op->name);
            return -1;
        }
        if (t->n_inputs > 8) {
            dx = ag__arena_alloc(a, (size_t)t->n_inputs * sizeof *dx,
                                 _Alignof(ag_tensor *));
            want = ag__arena_alloc(a, (size_t)t->n_inputs, 1);
            if (!dx || !want) {
                ag__error(func, "out of memory");
                return -1;
            }
        }
        for (int k = 0; k < t->n_inputs; k++) {
            dx[k] = NULL;
            want[k] = ag__differentiable(t, k) && t->inputs[k]->requires_grad &&
                      t->inputs[k]->mark == NEEDED;
        }
        if (t->op->vjp(a, t, t->grad, want, dx)) return -1;
        for (int k = 0; k < t->n_inputs; k++) {
            ag_tensor *in = t->inputs[k];
            if (!want[k] || !dx[k]) continue;
            in->grad = in->grad ? ag_add(a, in->grad, dx[k]) : dx[k];
            if (!in->grad) return -1;
        }
        dx = dx_small;
        want = want_small;
    }
    return 0;
}

int ag_gradients(ag_arena *a, int n_outputs, ag_tensor *const *outputs,
                 ag_tensor *const *grad_outputs, int n_inputs,
                 ag_tensor *const *inputs, bool create_graph, ag_tensor **grads)
{
    const char *func = "ag_gradients";
    if (check_gradients_args(func, a, n_outputs, outputs, grad_outputs,
                             n_inputs, inputs, grads)) {
        for (int j = 0; grads && j < n_inputs; j++) grads[j] = NULL;
        return -1;
    }
    ag_tensor **order;
    int64_t count = ag__topological_order(n_outputs, outputs, false, &order);
    kept_state *kept = NULL;
    if (count >= 0) {
        kept = ag__arena_alloc(a, (size_t)count * sizeof *kept,
                               _Alignof(kept_state));
        if (!kept)
            for (int64_t i = 0; i < count; i++) order[i]->mark = UNSEEN;
    }
    if (!kept) {
        ag__error(func, "out of memory sorting the graph");
        return -1;
    }
    for (int64_t i = 0; i < count; i++) {
        ag_tensor *t = order[i];
        kept[i] = (kept_state){t->grad, t->spare_grad, t->requires_grad,
                               t->grad_unwritten};
    }
    mark_needed(order, count, n_inputs, inputs);
    bool was = ag_set_grad_enabled(create_graph);
    backward_running = true;
    int status = create_graph ? gradients_by_ops(a, order, count, n_outputs,
                                                 outputs, grad_outputs)
                              : gradients_by_kernels(a, order, count, n_outputs,
                                                     outputs, grad_outputs);
    backward_running = false;
    ag_set_grad_enabled(was);
    /* The results, before the tensors get their own state back. */
    for (int j = 0; j < n_inputs && !status; j++) {
        ag_tensor *x = inputs[j];
        if (x->mark == NEEDED && x->grad) {
            if (!create_graph) ag__grad_accumulate(x); /* unwritten: zero */
            grads[j] = x->grad;
            /* a seed given as the gradient itself (an input that is an
             * output) lives in the caller's arena: a differentiable copy */
            if (grads[j]->arena != a) {
                bool mode = ag_set_grad_enabled(create_graph);
                grads[j] = ag_cast(a, grads[j], grads[j]->dtype);
                ag_set_grad_enabled(mode);
            }
            if (!grads[j]) status = -1;
        } else {
            grads[j] = ag_zeros(a, x->dtype, x->ndim, x->shape);
            if (!grads[j]) status = -1;
        }
    }
    for (int64_t i = 0; i < count; i++) {
        ag_tensor *t = order[i];
        t->grad = kept[i].grad;
        t->spare_grad = kept[i].spare_grad;
        t->requires_grad = kept[i].requires_grad;
        t->grad_unwritten = kept[i].grad_unwritten;
        t->mark = UNSEEN;
    }
    if (status)
        for (int j = 0; j < n_inputs; j++) grads[j] = NULL;
    return status;
}

int ag_op_count(void)
{
    return ag__op_table_size;
}

const char *ag_op_name(int i)
{
    return i >= 0 && i < ag__op_table_size ? ag__op_table[i]->name : NULL;
}
