/* dot.c: writes the graph behind a tensor as Graphviz DOT (ag_write_dot,
 * and ag_write_dot_named with names for some tensors, as torchviz's
 * params=).
 *
 * The walk is graph.c's iterative topological sort through every recorded
 * input, so any depth works and node ids (n0, n1, ... in that order, inputs
 * first) do not depend on addresses: the same graph gives the same file. */
#include "../internal.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

/* A tensor's address and its node id, sorted by address for lookups. */
typedef struct {
    uintptr_t key;
    int64_t id;
} node_id;

static int compare_key(const void *p, const void *q)
{
    uintptr_t a = ((const node_id *)p)->key, b = ((const node_id *)q)->key;
    return (a > b) - (a < b);
}

/* The id of t, which the walk listed. */
static int64_t id_of(const node_id *ids, int64_t count, const ag_tensor *t)
{
    node_id want = {(uintptr_t)t, 0};
    const node_id *found =
        bsearch(&want, ids, (size_t)count, sizeof *ids, compare_key);
    assert(found);
    return found->id;
}

/* Writes s inside a quoted DOT string, escaping quotes, backslashes and
 * line breaks. */
static void write_escaped(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', out);
        if (*s == '\n')
            fputs("\\n", out);
        else
            fputc(*s, out);
    }
}

/* The 2-norm of a float tensor. */
static double norm2(const ag_tensor *g)
{
    double sum = 0;
    AG_DISPATCH_FLOAT(g->dtype, {
        const real *v = g->data;
        for (int64_t i = 0; i < g->numel; i++) sum += (double)v[i] * v[i];
    });
    return sqrt(sum);
}

/* The names the caller gave tensors. */
typedef struct {
    int n;
    ag_tensor *const *tensors;
    const char *const *names;
} dot_names;

/* The name given to t, or NULL. */
static const char *name_of(const dot_names *names, const ag_tensor *t)
{
    for (int i = 0; i < names->n; i++)
        if (names->tensors[i] == t) return names->names[i];
    return NULL;
}

/* One node: its given name, op name or "leaf", shape and dtype,
 * requires_grad, grad norm. */
static int write_node(FILE *out, int64_t id, const ag_tensor *t,
                      const char *name)
{
    char shape[AG_SHAPE_STR_MAX];
    fprintf(out, "  n%lld [label=\"", (long long)id);
    if (name) {
        write_escaped(out, name);
        fputs("\\n", out);
    }
    write_escaped(out, t->op ? t->op->name : "leaf");
    fprintf(out, "\\n%s %s", ag__shape_str(shape, t->ndim, t->shape),
            ag_dtype_name(t->dtype));
    if (t->requires_grad) fputs("\\nrequires_grad", out);
    if (t->grad) fprintf(out, "\\ngrad norm %.4g", norm2(t->grad));
    return fprintf(out, "\"%s];\n", t->op ? "" : ", shape=ellipse");
}

/* Writes the nodes, then one edge per recorded input. */
static int write_graph(FILE *out, ag_tensor *const *order, int64_t count,
                       const node_id *ids, const dot_names *names)
{
    int status = fprintf(out, "digraph autograd {\n"
                              "  node [shape=box, fontname=\"Helvetica\"];\n");
    for (int64_t i = 0; i < count && status >= 0; i++)
        status = write_node(out, i, order[i], name_of(names, order[i]));
    for (int64_t i = 0; i < count && status >= 0; i++)
        for (int k = 0; k < order[i]->n_inputs; k++)
            status = fprintf(out, "  n%lld -> n%lld;\n",
                             (long long)id_of(ids, count, order[i]->inputs[k]),
                             (long long)i);
    if (status >= 0) status = fprintf(out, "}\n");
    return status < 0 || fflush(out) ? -1 : 0;
}

static int write_dot(const char *func, const ag_tensor *t,
                     const dot_names *names, FILE *out)
{
    if (!t) return ag__null_input(func, 0);
    if (!out) {
        ag__error(func, "the FILE is NULL");
        return -1;
    }
    if (ag__refuse_in_backward(func)) return -1;
    ag_tensor **order; /* the walk only sets and clears marks */
    ag_tensor *root = (ag_tensor *)t;
    int64_t count = ag__topological_order(1, &root, true, &order);
    node_id *ids = count > 0 ? ag__malloc((size_t)count * sizeof *ids) : NULL;
    for (int64_t i = 0; i < count; i++) {
        order[i]->mark = 0;
        if (ids) ids[i] = (node_id){(uintptr_t)order[i], i};
    }
    if (!ids) {
        if (count < 0)
            ag__error(func, "out of memory sorting the graph");
        else
            ag__error(func, "out of memory for the graph of %lld tensors",
                      (long long)count);
        return -1;
    }
    qsort(ids, (size_t)count, sizeof *ids, compare_key);
    errno = 0;
    int status = write_graph(out, order, count, ids, names);
    ag__free(ids);
    if (status)
        ag__error(func, "writing failed: %s",
                  errno ? strerror(errno) : "stream error");
    return status;
}

int ag_write_dot(const ag_tensor *t, FILE *out)
{
    dot_names none = {0, NULL, NULL};
    return write_dot("ag_write_dot", t, &none, out);
}

int ag_write_dot_named(const ag_tensor *t, int n, ag_tensor *const *tensors,
                       const char *const *names, FILE *out)
{
    const char *func = "ag_write_dot_named";
    if (n < 0 || (n > 0 && (!tensors || !names))) {
        ag__error(func, "%d names need %d tensors and names, not NULL", n, n);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (!tensors[i] || !names[i]) {
            ag__error(func, "name %d of %d: a NULL %s", i, n,
                      tensors[i] ? "name" : "tensor");
            return -1;
        }
    dot_names given = {n, tensors, names};
    return write_dot(func, t, &given, out);
}
