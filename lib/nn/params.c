/* params.c: parameter sets, the ordered named lists of tensors that
 * optimizers update and checkpoints save and load. A set lives in an arena;
 * its array of entries doubles when full (the old array stays in the arena
 * until it is freed, a few bytes per model). */
#include "../internal.h"

typedef struct {
    char *name;
    ag_tensor *tensor;
} param_entry;

struct ag_params {
    ag_arena *arena;
    param_entry *entries;
    int count, cap;
    bool holds_i32; /* a set of buffers or state: i32 tensors allowed */
};

ag_params *ag_params_new(ag_arena *a)
{
    if (!a) {
        ag__error("ag_params_new", "arena is NULL");
        return NULL;
    }
    ag_params *p = ag__arena_alloc(a, sizeof *p, _Alignof(ag_params));
    if (!p) {
        ag__error("ag_params_new", "out of memory");
        return NULL;
    }
    *p = (ag_params){.arena = a};
    return p;
}

/* Makes room for one more entry: 0, or -1 and an error. */
static int reserve_one(const char *func, ag_params *p)
{
    if (p->count < p->cap) return 0;
    if (p->cap > INT_MAX / 2) { /* the count is an int */
        ag__error(func, "the set is full: it holds %d tensors", p->count);
        return -1;
    }
    int cap = p->cap ? 2 * p->cap : 16;
    param_entry *e = ag__arena_alloc(p->arena, (size_t)cap * sizeof *e,
                                     _Alignof(param_entry));
    if (!e) {
        ag__error(func, "out of memory");
        return -1;
    }
    if (p->count) memcpy(e, p->entries, (size_t)p->count * sizeof *e);
    p->entries = e;
    p->cap = cap;
    return 0;
}

/* Adds `t` as prefix.name (or name when prefix is NULL or empty); an i32
 * tensor only when allow_i32 (a buffer such as num_batches_tracked). */
static int add_named(const char *func, ag_params *p, const char *prefix,
                     const char *name, ag_tensor *t, bool allow_i32)
{
    if (!p || !name || !t) {
        ag__error(func, "%s is NULL",
                  !p      ? "parameter set"
                  : !name ? "name"
                          : "tensor");
        return -1;
    }
    size_t plen = prefix && *prefix ? strlen(prefix) + 1 : 0;
    size_t len = plen + strlen(name);
    if (!*name || len > AG_PARAM_NAME_MAX) {
        ag__error(func, "name \"%s%s%s\" is %s", plen ? prefix : "",
                  plen ? "." : "", name,
                  *name ? "longer than AG_PARAM_NAME_MAX (127) bytes"
                        : "empty");
        return -1;
    }
    char full[AG_PARAM_NAME_MAX + 1];
    if (plen) {
        memcpy(full, prefix, plen - 1);
        full[plen - 1] = '.';
    }
    memcpy(full + plen, name, len - plen + 1);
    if (ag_params_find(p, full)) {
        ag__error(func, "name \"%s\" is already in the set", full);
        return -1;
    }
    for (int i = 0; i < p->count; i++)
        if (p->entries[i].tensor == t) {
            ag__error(func,
                      "\"%s\": the tensor is already in the set as \"%s\"",
                      full, p->entries[i].name);
            return -1;
        }
    if (t->dtype == AG_I32 && !allow_i32) {
        ag__error(func, "\"%s\" is an i32 tensor; parameters are float", full);
        return -1;
    }
    if (reserve_one(func, p)) return -1;
    char *copy = ag__arena_alloc(p->arena, len + 1, 1);
    if (!copy) {
        ag__error(func, "out of memory");
        return -1;
    }
    memcpy(copy, full, len + 1);
    p->entries[p->count++] = (param_entry){copy, t};
    return 0;
}

int ag_params_add(ag_params *p, const char *name, ag_tensor *t)
{
    return add_named("ag_params_add", p, NULL, name, t, false);
}

int ag_params_extend(ag_params *p, const char *prefix, const ag_params *from)
{
    if (!from) {
        ag__error("ag_params_extend", "source set is NULL");
        return -1;
    }
    int count = from->count; /* from may be p itself */
    for (int i = 0; i < count; i++)
        if (add_named("ag_params_extend", p, prefix, from->entries[i].name,
                      from->entries[i].tensor, p && p->holds_i32))
            return -1;
    return 0;
}

ag_params *ag__params_new_any(ag_arena *a)
{
    ag_params *p = ag_params_new(a);
    if (p) p->holds_i32 = true;
    return p;
}

int ag__params_add_any(ag_params *p, const char *name, ag_tensor *t)
{
    return add_named("ag_params_add", p, NULL, name, t, true);
}

int ag_params_count(const ag_params *p)
{
    return p ? p->count : 0;
}

ag_tensor *ag_params_tensor(const ag_params *p, int i)
{
    return p && i >= 0 && i < p->count ? p->entries[i].tensor : NULL;
}

const char *ag_params_name(const ag_params *p, int i)
{
    return p && i >= 0 && i < p->count ? p->entries[i].name : NULL;
}

ag_tensor *ag_params_find(const ag_params *p, const char *name)
{
    if (!p || !name) return NULL;
    for (int i = 0; i < p->count; i++)
        if (strcmp(p->entries[i].name, name) == 0) return p->entries[i].tensor;
    return NULL;
}

int64_t ag_params_numel(const ag_params *p)
{
    int64_t n = 0;
    for (int i = 0; p && i < p->count; i++) n += p->entries[i].tensor->numel;
    return n;
}

void ag_params_requires_grad(ag_params *p, bool on)
{
    for (int i = 0; p && i < p->count; i++)
        ag_requires_grad(p->entries[i].tensor, on);
}

void ag_params_zero_grad(ag_params *p)
{
    for (int i = 0; p && i < p->count; i++) ag_zero_grad(p->entries[i].tensor);
}
