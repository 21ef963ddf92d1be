/* module.c: modules, the C counterpart of torch.nn.Module. A module has a
 * type (its name and forward), the user's struct behind it (self), its own
 * parameters and buffers under short names ("weight", "running_mean"),
 * named sub-modules, and a training flag. Listing a module's parameters,
 * buffers or state walks the tree and names each tensor by its path
 * ("0.weight", "encoder.layers.1.bias"), parameters then buffers of a
 * module before its children's, as state_dict() orders them; the lists are
 * made once in the module's arena, and the tree is complete from then on
 * (adding to it is an error), so an optimizer's list never goes stale.
 *
 * The generic modules live here too: Sequential, Flatten, the activations
 * and Dropout. Layers with weights are in layers.c. */
#include "../internal.h"

#include <stdarg.h>

typedef struct {
    char *name;
    ag_module *module;
} child_entry;

struct ag_module {
    const ag_module_type *type;
    void *self;
    ag_arena *arena;
    ag_params *params, *buffers; /* this module's own, short names */
    child_entry *children;
    int n_children, cap_children;
    bool training;
    bool complete; /* listed: nothing may be added any more */
    ag_module_forward_hook forward_hook; /* or NULL */
    void *forward_hook_user;
    ag_params *all_params, *all_buffers, *state; /* the lists, once made */
};

void *ag_arena_alloc(ag_arena *a, size_t size)
{
    if (!a) {
        ag__error("ag_arena_alloc", "arena is NULL");
        return NULL;
    }
    void *p = ag__arena_alloc(a, size ? size : 1, 64);
    if (!p) {
        ag__error("ag_arena_alloc", "out of memory for %zu bytes", size);
        return NULL;
    }
    memset(p, 0, size);
    return p;
}

ag_module *ag_module_new(ag_arena *a, const ag_module_type *type, void *self)
{
    const char *func = "ag_module_new";
    if (!a || !type || !type->name || !type->forward) {
        ag__error(func, "%s is NULL",
                  !a            ? "the arena"
                  : !type       ? "the module type"
                  : !type->name ? "the type's name"
                                : "the type's forward");
        return NULL;
    }
    ag_module *m = ag__arena_alloc(a, sizeof *m, _Alignof(ag_module));
    ag_params *params = m ? ag_params_new(a) : NULL;
    ag_params *buffers = params ? ag__params_new_any(a) : NULL;
    if (!buffers) {
        ag__error(func, "out of memory");
        return NULL;
    }
    *m = (ag_module){.type = type,
                     .self = self,
                     .arena = a,
                     .params = params,
                     .buffers = buffers,
                     .training = true};
    return m;
}

void *ag_module_self(const ag_module *m)
{
    return m ? m->self : NULL;
}

const ag_module_type *ag__module_type(const ag_module *m)
{
    return m ? m->type : NULL;
}

const char *ag_module_type_name(const ag_module *m)
{
    return m ? m->type->name : NULL;
}

ag_arena *ag_module_arena(const ag_module *m)
{
    return m ? m->arena : NULL;
}

/* Checks that something may be added to m; reports as func. */
static int check_open(const char *func, const ag_module *m, const char *name)
{
    if (!m || !name) {
        ag__error(func, "%s is NULL", !m ? "the module" : "the name");
        return -1;
    }
    if (m->complete) {
        ag__error(func,
                  "cannot add \"%s\" to %s: its parameters were already "
                  "listed (build the whole model first)",
                  name, m->type->name);
        return -1;
    }
    if (!*name || strchr(name, '.')) {
        ag__error(func, "name \"%s\" must be non-empty and without dots", name);
        return -1;
    }
    if (ag_params_find(m->params, name) || ag_params_find(m->buffers, name) ||
        ag_module_child(m, name)) {
        ag__error(func, "%s already has a member named \"%s\"", m->type->name,
                  name);
        return -1;
    }
    return 0;
}

int ag_module_add_parameter(ag_module *m, const char *name, ag_tensor *t)
{
    const char *func = "ag_module_add_parameter";
    if (check_open(func, m, name)) return -1;
    if (!t) {
        ag__error(func, "the tensor for \"%s\" is NULL", name);
        return -1;
    }
    if (ag_params_add(m->params, name, t)) return -1;
    ag_requires_grad(t, true);
    return 0;
}

int ag_module_add_buffer(ag_module *m, const char *name, ag_tensor *t)
{
    const char *func = "ag_module_add_buffer";
    if (check_open(func, m, name)) return -1;
    if (!t) {
        ag__error(func, "the tensor for \"%s\" is NULL", name);
        return -1;
    }
    return ag__params_add_any(m->buffers, name, t);
}

int ag_module_add_child(ag_module *m, const char *name, ag_module *child)
{
    const char *func = "ag_module_add_child";
    if (check_open(func, m, name)) return -1;
    if (!child || child == m) {
        ag__error(func, "the module for \"%s\" is %s", name,
                  child ? "the module itself" : "NULL");
        return -1;
    }
    if (m->n_children == m->cap_children) {
        int cap = m->cap_children ? 2 * m->cap_children : 8;
        child_entry *e = ag__arena_alloc(m->arena, (size_t)cap * sizeof *e,
                                         _Alignof(child_entry));
        if (!e) {
            ag__error(func, "out of memory");
            return -1;
        }
        if (m->n_children)
            memcpy(e, m->children, (size_t)m->n_children * sizeof *e);
        m->children = e;
        m->cap_children = cap;
    }
    size_t len = strlen(name);
    char *copy = ag__arena_alloc(m->arena, len + 1, 1);
    if (!copy) {
        ag__error(func, "out of memory");
        return -1;
    }
    memcpy(copy, name, len + 1);
    m->children[m->n_children++] = (child_entry){copy, child};
    child->training = m->training;
    return 0;
}

int ag_module_child_count(const ag_module *m)
{
    return m ? m->n_children : 0;
}

ag_module *ag_module_child_at(const ag_module *m, int i)
{
    return m && i >= 0 && i < m->n_children ? m->children[i].module : NULL;
}

ag_module *ag_module_child(const ag_module *m, const char *name)
{
    for (int i = 0; m && name && i < m->n_children; i++)
        if (strcmp(m->children[i].name, name) == 0)
            return m->children[i].module;
    return NULL;
}

ag_tensor *ag_module_forward(ag_module *m, ag_arena *step, ag_tensor *x)
{
    if (!m) {
        ag__error("ag_module_forward", "the module is NULL");
        return NULL;
    }
    if (!x) { /* keeps the pending message, as ops do */
        ag__null_input(m->type->name, 0);
        return NULL;
    }
    ag_tensor *y = m->type->forward(m, step, x);
    if (y && m->forward_hook) m->forward_hook(m, x, y, m->forward_hook_user);
    return y;
}

void ag_module_set_forward_hook(ag_module *m, ag_module_forward_hook hook,
                                void *user)
{
    if (!m) return;
    m->forward_hook = hook;
    m->forward_hook_user = hook ? user : NULL;
}

ag_module_forward_hook ag_module_get_forward_hook(const ag_module *m,
                                                  void **user)
{
    if (user) *user = m ? m->forward_hook_user : NULL;
    return m ? m->forward_hook : NULL;
}

void ag_module_set_training(ag_module *m, bool training)
{
    if (!m) return;
    m->training = training;
    for (int i = 0; i < m->n_children; i++)
        ag_module_set_training(m->children[i].module, training);
}

bool ag_module_is_training(const ag_module *m)
{
    return m && m->training;
}

/* Adds m's own parameters (or buffers) and then its children's, named by
 * their path under prefix, to out; marks every module complete. */
static int collect(ag_module *m, const char *prefix, bool buffers, bool params,
                   ag_params *out)
{
    m->complete = true;
    if (params && ag_params_extend(out, prefix, m->params)) return -1;
    if (buffers && ag_params_extend(out, prefix, m->buffers)) return -1;
    for (int i = 0; i < m->n_children; i++) {
        char path[AG_PARAM_NAME_MAX + 1];
        int n = snprintf(path, sizeof path, "%s%s%s", prefix ? prefix : "",
                         prefix && *prefix ? "." : "", m->children[i].name);
        if (n < 0 || (size_t)n >= sizeof path) {
            ag__error("ag_module_parameters",
                      "the path of \"%s\" under \"%s\" is longer than %d "
                      "bytes",
                      m->children[i].name, prefix ? prefix : "",
                      AG_PARAM_NAME_MAX);
            return -1;
        }
        if (collect(m->children[i].module, path, buffers, params, out))
            return -1;
    }
    return 0;
}

/* The list of m's tree kept in *slot, made on first use. */
static ag_params *listed(ag_module *m, ag_params **slot, bool params,
                         bool buffers)
{
    if (!m) {
        ag__error("ag_module_parameters", "the module is NULL");
        return NULL;
    }
    if (*slot) return *slot;
    ag_params *p =
        buffers ? ag__params_new_any(m->arena) : ag_params_new(m->arena);
    if (!p) return NULL;
    if (collect(m, NULL, buffers, params, p)) return NULL;
    *slot = p;
    return p;
}

ag_params *ag_module_parameters(ag_module *m)
{
    return listed(m, m ? &m->all_params : NULL, true, false);
}

ag_params *ag_module_buffers(ag_module *m)
{
    return listed(m, m ? &m->all_buffers : NULL, false, true);
}

ag_params *ag_module_state(ag_module *m)
{
    return listed(m, m ? &m->state : NULL, true, true);
}

ag_params *ag_module_own_parameters(const ag_module *m)
{
    return m ? m->params : NULL;
}

/* ---- Sequential ---- */

/* Runs the children in order; an error is prefixed with the failing
 * child's index and type. */
static ag_tensor *sequential_forward(ag_module *m, ag_arena *step, ag_tensor *x)
{
    for (int i = 0; i < m->n_children && x; i++) {
        ag_module *c = m->children[i].module;
        x = ag_module_forward(c, step, x);
        if (!x) {
            char cause[400];
            snprintf(cause, sizeof cause, "%s", ag_last_error());
            ag__error("Sequential", "module %d (%s): %s", i, c->type->name,
                      cause);
        }
    }
    return x;
}

static const ag_module_type sequential_type = {"Sequential",
                                               sequential_forward};

ag_module *ag_nn_sequential(ag_arena *a, int n, ag_module *const *modules)
{
    if (n < 0 || (n > 0 && !modules)) {
        ag__error("ag_nn_sequential", "needs n >= 0 modules, got %d%s", n,
                  modules ? "" : " (array NULL)");
        return NULL;
    }
    ag_module *m = ag_module_new(a, &sequential_type, NULL);
    for (int i = 0; m && i < n; i++)
        if (ag_nn_sequential_append(m, modules[i])) return NULL;
    return m;
}

int ag_nn_sequential_append(ag_module *seq, ag_module *module)
{
    if (!seq || seq->type != &sequential_type) {
        ag__error("ag_nn_sequential_append", "%s",
                  seq ? "the module is not a Sequential" : "seq is NULL");
        return -1;
    }
    char name[16];
    snprintf(name, sizeof name, "%d", seq->n_children);
    return ag_module_add_child(seq, name, module);
}

/* ---- modules without parameters ---- */

/* Flatten: (N, d1, d2, ...) -> (N, d1 d2 ...), as nn.Flatten(). */
static ag_tensor *flatten_forward(ag_module *m, ag_arena *step, ag_tensor *x)
{
    if (ag_ndim(x) < 1) {
        ag__error("Flatten", "input must have at least 1 dimension, got 0");
        return NULL;
    }
    return ag_reshape(step, x, 2, (int64_t[]){ag_shape(x)[0], -1});
}

static const ag_module_type flatten_type = {"Flatten", flatten_forward};

ag_module *ag_nn_flatten(ag_arena *a)
{
    return ag_module_new(a, &flatten_type, NULL);
}

/* The activation modules: nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU. */
static ag_tensor *activation_forward(ag_module *m, ag_arena *step, ag_tensor *x)
{
    return ag_activate(step, x, *(const ag_activation *)m->self);
}

static const ag_module_type activation_types[] = {
    [AG_ACT_RELU] = {"ReLU", activation_forward},
    [AG_ACT_TANH] = {"Tanh", activation_forward},
    [AG_ACT_SIGMOID] = {"Sigmoid", activation_forward},
    [AG_ACT_GELU] = {"GELU", activation_forward},
    [AG_ACT_LEAKY_RELU] = {"LeakyReLU", activation_forward},
    [AG_ACT_NONE] = {"Identity", activation_forward},
};

ag_module *ag_nn_activation(ag_arena *a, ag_activation act)
{
    if ((unsigned)act > AG_ACT_NONE) {
        ag__error("ag_nn_activation", "unknown activation %d", (int)act);
        return NULL;
    }
    ag_activation *self = ag_arena_alloc(a, sizeof *self);
    if (!self) return NULL;
    *self = act;
    return ag_module_new(a, &activation_types[act], self);
}

/* Dropout: zeroes elements with probability p in training mode, from its
 * own generator; the identity in evaluation mode. */
typedef struct {
    double p;
    ag_rng rng;
} dropout_module;

static ag_tensor *dropout_forward(ag_module *m, ag_arena *step, ag_tensor *x)
{
    dropout_module *d = m->self;
    if (!m->training || d->p == 0) return x;
    return ag_dropout(step, x, d->p, &d->rng);
}

static const ag_module_type dropout_type = {"Dropout", dropout_forward};

ag_module *ag_nn_dropout(ag_arena *a, double p, uint64_t seed)
{
    if (!(p >= 0 && p < 1)) {
        ag__error("ag_nn_dropout", "the probability must be in [0, 1), got %g",
                  p);
        return NULL;
    }
    dropout_module *d = ag_arena_alloc(a, sizeof *d);
    if (!d) return NULL;
    *d = (dropout_module){p, ag_rng_seed(seed)};
    return ag_module_new(a, &dropout_type, d);
}
