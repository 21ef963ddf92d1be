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
 * (or taken back from spare_grad) by this pass. */
enum { UNSEEN = 0, OPEN = 1, DONE = 2, FRESH = 3 };

void ag__record(ag_tensor *out, const ag_op *op, ag_tensor *const *inputs)
{
    bool record = false;
    if (ag_is_grad_enabled())
        for (int i = 0; i < op->arity; i++) record |= inputs[i]->requires_grad;
    out->op = op;
    for (int i = 0; i < op->arity; i++) out->inputs[i] = inputs[i];
    out->requires_grad = record;
}

int ag__finish(const char *func, ag_tensor *out)
{
    if (ag_is_anomaly_detection_enabled() && ag__anomaly_forward(func, out))
        return -1;
    if (!out->requires_grad) { /* a leaf: no references into inputs' arenas */
        out->op = NULL;
        memset(out->inputs, 0, sizeof out->inputs);
        out->saved = NULL;
    }
    return 0;
}

ag_tensor *ag__apply(const char *func, ag_arena *a, const ag_op *op,
                     ag_tensor *const *inputs, ag_dtype dt, int ndim,
                     const int64_t *shape, const ag_op_args *args)
{
    ag_tensor *out = ag__tensor_new(func, a, dt, ndim, shape, !op->view);
    if (!out) return NULL;
    if (args) out->args = *args;
    ag__record(out, op, inputs);
    if (op->forward(out) || ag__finish(func, out)) return NULL;
    return out;
}

int64_t ag__topological_order(ag_tensor *root, bool all_inputs,
                              ag_tensor ***order_out)
{
    ag_arena *a = root->arena;
    size_t cap = 1024;
    ag_tensor **stack = ag__arena_scratch(a, 0, cap);
    ag_tensor **order = ag__arena_scratch(a, 1, cap);
    if (!stack || !order) return -1;
    size_t depth = 0, count = 0;
    stack[depth++] = root;
    root->mark = OPEN;
    while (depth > 0) {
        ag_tensor *t = stack[depth - 1];
        ag_tensor *next = NULL;
        for (int i = 0; t->op && i < t->op->arity && !next; i++) {
            ag_tensor *in = t->inputs[i];
            if ((all_inputs || in->requires_grad) && in->mark == UNSEEN)
                next = in;
        }
        if (next) {
            /* Every visited tensor is on the stack or in the order, never
             * both, so depth + count bounds both arrays. */
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
    if (!t->op) return false;
    for (int i = 0; i < t->op->arity; i++)
        if (t->inputs[i]->requires_grad) return true;
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

/* Runs the backward of every op in `order` (inputs first) from the last to
 * the first, checking gradients in anomaly mode; stops at a failure. An op
 * that received no gradient contributes none. */
static int run_backward(ag_tensor **order, int64_t count)
{
    bool anomaly = ag_is_anomaly_detection_enabled();
    int status = 0;
    backward_running = true;
    for (int64_t i = count - 1; i >= 0 && !status; i--) {
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
    int64_t count = ag__topological_order(loss, false, &order);
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
        status = run_backward(order, count);
        for (int64_t i = 0; i < count; i++) ag__grad_accumulate(order[i]);
    }
    for (int64_t i = 0; i < count; i++) order[i]->mark = UNSEEN;
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
