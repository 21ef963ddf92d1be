/* safetensors.c: checkpoints in the safetensors format. ag_save_safetensors
 * writes a parameter set and string metadata atomically;
 * ag_load_safetensors checks a whole file, then copies its values into a
 * parameter set; ag_load_safetensors_metadata reads the metadata back.
 *
 * Layout: an 8-byte little-endian header length N; N bytes of JSON header,
 * padded with spaces so that 8 + N is a multiple of 8; the data buffer. The
 * header maps each tensor's name to {"dtype", "shape", "data_offsets":
 * [begin, end]} (byte offsets into the data buffer), plus an optional
 * "__metadata__" object of strings. We write compact JSON with
 * "__metadata__" first, then the tensors in parameter order, their values
 * packed one after the other in that order. (The reference implementation
 * orders tensors by dtype alignment, then name; readers accept any order.)
 * The JSON is read and written by json.c. */
#define _POSIX_C_SOURCE 200809L
#include "io.h"

#include <assert.h>
#include <stdarg.h>
#include <stdlib.h>

#define METADATA_KEY "__metadata__"

/* The longest header accepted, as in the reference implementation. */
#define MAX_HEADER_BYTES 100000000u

/* The format's names of the library's dtypes, indexed by ag_dtype. */
static const char *const dtype_names[] = {
    [AG_F32] = "F32", [AG_F64] = "F64", [AG_I32] = "I32"};

/* The format's other dtypes, which the library has no tensors for. */
static const char *const unsupported_dtypes[] = {
    "BOOL", "U8",  "I8",   "F8_E5M2", "F8_E4M3", "I16",
    "U16",  "F16", "BF16", "U32",     "I64",     "U64"};

#define COUNT(a) (sizeof(a) / sizeof *(a))

/* ------------------------------------------------------------------ */
/* Saving                                                              */
/* ------------------------------------------------------------------ */

static const char SAVE[] = "ag_save_safetensors";

/* Checks what the header will hold: every metadata key has a value and
 * appears once, no tensor is named "__metadata__", names and metadata are
 * valid UTF-8. (Metadata keys are compared pairwise: a checkpoint's
 * metadata is a handful of strings.) */
static int check_names(const char *path, const ag_params *params,
                       const char *const *metadata)
{
    for (size_t i = 0; metadata && metadata[i]; i += 2) {
        const char *key = metadata[i], *value = metadata[i + 1];
        if (!value)
            return ag__file_error(SAVE, path,
                                  "metadata key \"%s\" has no value", key);
        for (size_t j = 0; j < i; j += 2)
            if (strcmp(metadata[j], key) == 0)
                return ag__file_error(SAVE, path,
                                      "metadata key \"%s\" appears twice", key);
        if (!ag__utf8_valid(key))
            return ag__file_error(
                SAVE, path, "metadata key \"%s\" is not valid UTF-8", key);
        if (!ag__utf8_valid(value))
            return ag__file_error(SAVE, path,
                                  "metadata \"%s\" is not valid UTF-8", key);
    }
    for (int i = 0; i < ag_params_count(params); i++) {
        const char *name = ag_params_name(params, i);
        if (strcmp(name, METADATA_KEY) == 0)
            return ag__file_error(SAVE, path, "a tensor cannot be named \"%s\"",
                                  METADATA_KEY);
        if (!ag__utf8_valid(name))
            return ag__file_error(
                SAVE, path, "tensor name \"%s\" is not valid UTF-8", name);
    }
    return 0;
}

/* Writes (or counts, see ag__json_out) the header of params and metadata:
 * {"__metadata__":{"key":"value",...},"name":{"dtype":"F32","shape":[2,3],
 * "data_offsets":[0,24]},...}, without spaces, as the reference writes it. */
static void put_header(ag__json_out *o, const ag_params *params,
                       const char *const *metadata)
{
    ag__json_put(o, "{");
    if (metadata) {
        ag__json_put(o, "\"" METADATA_KEY "\":{");
        for (size_t i = 0; metadata[i]; i += 2) {
            ag__json_put(o, i ? "," : "");
            ag__json_put_string(o, metadata[i]);
            ag__json_put(o, ":");
            ag__json_put_string(o, metadata[i + 1]);
        }
        ag__json_put(o, "}");
    }
    uint64_t offset = 0;
    for (int i = 0; i < ag_params_count(params); i++) {
        const ag_tensor *t = ag_params_tensor(params, i);
        ag__json_put(o, i || metadata ? "," : "");
        ag__json_put_string(o, ag_params_name(params, i));
        ag__json_put(o, ":{\"dtype\":");
        ag__json_put_string(o, dtype_names[t->dtype]);
        ag__json_put(o, ",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            ag__json_put(o, d ? "," : "");
            ag__json_put_integer(o, t->shape[d]);
        }
        ag__json_put(o, "],\"data_offsets\":[");
        ag__json_put_integer(o, (int64_t)offset);
        offset += ag__tensor_bytes(t);
        ag__json_put(o, ",");
        ag__json_put_integer(o, (int64_t)offset);
        ag__json_put(o, "]}");
    }
    ag__json_put(o, "}");
}

/* The bytes before the data: the header length and the header padded with
 * spaces to a multiple of 8 bytes. Returns a buffer of *len bytes (freed
 * with ag__free), or NULL when out of memory. */
static unsigned char *header_bytes(const ag_params *params,
                                   const char *const *metadata, size_t *len)
{
    ag__json_out o = {NULL, 0};
    put_header(&o, params, metadata);
    size_t n = o.len, padded = n + (8 - n % 8) % 8;
    unsigned char *buf = ag__malloc(8 + padded);
    if (!buf) return NULL;
    o = (ag__json_out){(char *)buf + 8, 0};
    put_header(&o, params, metadata);
    assert(o.len == n);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(padded >> 8 * i);
    memset(buf + 8 + n, ' ', padded - n);
    *len = 8 + padded;
    return buf;
}

/* Writes the values of every tensor of params, in order. */
static int write_values(ag__atomic_file *f, const ag_params *params)
{
    for (int i = 0; i < ag_params_count(params); i++) {
        const ag_tensor *t = ag_params_tensor(params, i);
        size_t bytes = ag__tensor_bytes(t);
        if (bytes && ag__atomic_write(f, t->data, bytes)) return -1;
    }
    return 0;
}

int ag_save_safetensors(const char *path, const ag_params *params,
                        const char *const *metadata)
{
    if (!path || !params) {
        ag__error(SAVE, "%s is NULL", !path ? "path" : "parameter set");
        return -1;
    }
    if (check_names(path, params, metadata)) return -1;
    size_t len;
    unsigned char *head = header_bytes(params, metadata, &len);
    if (!head) return ag__file_error(SAVE, path, "out of memory");
    ag__atomic_file f;
    int rc = ag__atomic_begin(&f, SAVE, path) ||
                     ag__atomic_write(&f, head, len) ||
                     write_values(&f, params) || ag__atomic_commit(&f)
                 ? -1
                 : 0;
    ag__free(head);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Loading: a file read and checked                                    */
/* ------------------------------------------------------------------ */

/* One tensor of the header, checked against the file. */
typedef struct {
    const char *name; /* owned by the header */
    ag_dtype dtype;
    int ndim;
    int64_t shape[AG_MAX_DIMS];
    int64_t numel;
    uint64_t begin, end; /* byte offsets into the data buffer */
    ag_tensor *param;    /* the parameter of that name (match_names) */
} st_entry;

/* A whole file in memory with its parsed header. */
typedef struct {
    const char *func, *path;
    unsigned char *bytes; /* the file (ag__malloc'd) */
    size_t size;
    ag_arena *arena; /* the parsed header's */
    const ag__json *header;
    const ag__json *metadata; /* "__metadata__" of the header, or NULL */
    const unsigned char *data;
    uint64_t data_size;
    st_entry *entries; /* ag__malloc'd */
    int count;
} st_file;

/* Reads the file, its header length and its JSON header. */
static int read_header(st_file *f)
{
    if (ag__read_file(f->func, f->path, &f->bytes, &f->size)) return -1;
    if (f->size < 8)
        return ag__file_error(f->func, f->path,
                              "file is %zu bytes, too short for the 8-byte "
                              "header length",
                              f->size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | f->bytes[i];
    if (n > f->size - 8)
        return ag__file_error(f->func, f->path,
                              "header length %llu is more than the %zu bytes "
                              "that follow it (truncated, or not safetensors)",
                              (unsigned long long)n, f->size - 8);
    if (n > MAX_HEADER_BYTES)
        return ag__file_error(f->func, f->path,
                              "header length %llu is over the limit of %u "
                              "bytes",
                              (unsigned long long)n, MAX_HEADER_BYTES);
    f->arena = ag_arena_new();
    ag__json_error err = {.out_of_memory = true};
    if (f->arena)
        f->header = ag__json_parse(f->arena, f->bytes + 8, (size_t)n, &err);
    if (!f->header && err.out_of_memory)
        return ag__file_error(f->func, f->path,
                              "out of memory parsing the %llu-byte header",
                              (unsigned long long)n);
    if (!f->header)
        return ag__file_error(f->func, f->path,
                              "header is not valid JSON: line %zu, column %zu: "
                              "%s",
                              err.line, err.column, err.text);
    if (f->header->type != AG__JSON_OBJECT)
        return ag__file_error(f->func, f->path,
                              "header is %s, not a JSON object",
                              ag__json_kind(f->header));
    f->data = f->bytes + 8 + n;
    f->data_size = f->size - 8 - n;
    return 0;
}

/* Checks that "__metadata__" is an object of strings. */
static int check_metadata(st_file *f, const ag__json *m)
{
    if (m->type != AG__JSON_OBJECT)
        return ag__file_error(f->func, f->path, "%s is %s, not an object",
                              METADATA_KEY, ag__json_kind(m));
    for (size_t i = 0; i < m->object.count; i++) {
        const ag__json_member *e = &m->object.members[i];
        if (e->value.type != AG__JSON_STRING)
            return ag__file_error(
                f->func, f->path, "%s value of \"%s\" is %s, not a string",
                METADATA_KEY, e->key, ag__json_kind(&e->value));
    }
    f->metadata = m;
    return 0;
}

/* The dtype named by v. `where` ("<func>: <path>: tensor "<name>"")
 * prefixes the error, as in the functions below. */
static int parse_dtype(const char *where, const ag__json *v, ag_dtype *dt)
{
    if (v->type != AG__JSON_STRING) {
        ag__error(where, "dtype is %s, not a string", ag__json_kind(v));
        return -1;
    }
    const char *s = v->string.chars;
    for (size_t i = 0; i < COUNT(dtype_names); i++)
        if (strcmp(s, dtype_names[i]) == 0) {
            *dt = (ag_dtype)i;
            return 0;
        }
    for (size_t i = 0; i < COUNT(unsupported_dtypes); i++)
        if (strcmp(s, unsupported_dtypes[i]) == 0) {
            ag__error(where,
                      "unsupported dtype \"%s\" (this library reads F32, "
                      "F64 and I32)",
                      s);
            return -1;
        }
    ag__error(where, "unknown dtype \"%s\"", s);
    return -1;
}

/* The shape given by v: an array of at most AG_MAX_DIMS sizes >= 0 whose
 * element count fits int64_t. */
static int parse_shape(const char *where, const ag__json *v, st_entry *e)
{
    if (v->type != AG__JSON_ARRAY) {
        ag__error(where, "shape is %s, not an array", ag__json_kind(v));
        return -1;
    }
    size_t ndim = v->array.count;
    if (ndim > AG_MAX_DIMS) {
        ag__error(where, "shape has %zu dimensions, more than %d", ndim,
                  AG_MAX_DIMS);
        return -1;
    }
    e->ndim = (int)ndim;
    for (size_t d = 0; d < ndim; d++) {
        const ag__json *size = &v->array.items[d];
        if (size->type != AG__JSON_INTEGER) {
            ag__error(where, "dimension %zu of the shape is %s, not an integer",
                      d, ag__json_kind(size));
            return -1;
        }
        e->shape[d] = size->integer;
    }
    return ag__check_shape(where, e->ndim, e->shape, &e->numel);
}

/* The byte range given by v: [begin, end] with begin <= end <= data size,
 * holding exactly the bytes of e's dtype and shape. */
static int parse_offsets(const char *where, const ag__json *v, st_entry *e,
                         uint64_t data_size)
{
    const ag__json *o = v->type == AG__JSON_ARRAY ? v->array.items : NULL;
    if (!o || v->array.count != 2 || o[0].type != AG__JSON_INTEGER ||
        o[1].type != AG__JSON_INTEGER || o[0].integer < 0 || o[1].integer < 0) {
        ag__error(where, "data_offsets is not [begin, end] with two integers "
                         ">= 0");
        return -1;
    }
    e->begin = (uint64_t)o[0].integer;
    e->end = (uint64_t)o[1].integer;
    if (e->begin > e->end || e->end > data_size) {
        ag__error(where,
                  "data_offsets [%llu, %llu] are not a range within the "
                  "%llu bytes of data",
                  (unsigned long long)e->begin, (unsigned long long)e->end,
                  (unsigned long long)data_size);
        return -1;
    }
    uint64_t elem = ag__dtype_size(e->dtype), bytes;
    if (__builtin_mul_overflow((uint64_t)e->numel, elem, &bytes) ||
        bytes != e->end - e->begin) {
        char buf[AG_SHAPE_STR_MAX];
        ag__error(where,
                  "%s shape %s has %lld elements of %llu bytes but "
                  "data_offsets [%llu, %llu] hold %llu bytes",
                  dtype_names[e->dtype], ag__shape_str(buf, e->ndim, e->shape),
                  (long long)e->numel, (unsigned long long)elem,
                  (unsigned long long)e->begin, (unsigned long long)e->end,
                  (unsigned long long)(e->end - e->begin));
        return -1;
    }
    return 0;
}

/* Checks the header entry `name`: v must be an object with exactly the keys
 * dtype, shape and data_offsets, each valid. */
static int parse_entry(const st_file *f, const char *name, const ag__json *v,
                       st_entry *e)
{
    char where[512];
    snprintf(where, sizeof where, "%s: %s: tensor \"%s\"", f->func, f->path,
             name);
    if (v->type != AG__JSON_OBJECT) {
        ag__error(where, "is %s, not an object", ag__json_kind(v));
        return -1;
    }
    const ag__json *fields[3] = {NULL, NULL, NULL};
    static const char *const keys[3] = {"dtype", "shape", "data_offsets"};
    for (size_t i = 0; i < v->object.count; i++) {
        const ag__json_member *m = &v->object.members[i];
        size_t k = 0;
        while (k < 3 && strcmp(m->key, keys[k]) != 0) k++;
        if (k == 3) {
            ag__error(where, "unknown key \"%s\"", m->key);
            return -1;
        }
        fields[k] = &m->value;
    }
    for (int k = 0; k < 3; k++)
        if (!fields[k]) {
            ag__error(where, "no \"%s\"", keys[k]);
            return -1;
        }
    e->name = name;
    return parse_dtype(where, fields[0], &e->dtype) ||
                   parse_shape(where, fields[1], e) ||
                   parse_offsets(where, fields[2], e, f->data_size)
               ? -1
               : 0;
}

/* Checks every entry of the header and fills f->entries. */
static int parse_entries(st_file *f)
{
    size_t n = f->header->object.count;
    f->entries = ag__malloc((n ? n : 1) * sizeof *f->entries);
    if (!f->entries) return ag__file_error(f->func, f->path, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const ag__json_member *m = &f->header->object.members[i];
        if (strcmp(m->key, METADATA_KEY) == 0) {
            if (check_metadata(f, &m->value)) return -1;
        } else if (parse_entry(f, m->key, &m->value, &f->entries[f->count++])) {
            return -1;
        }
    }
    return 0;
}

static int by_begin(const void *pa, const void *pb)
{
    const st_entry *a = pa, *b = pb;
    if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
    return (a->end > b->end) - (a->end < b->end);
}

/* Reports that bytes [from, to) of the data belong to no tensor, and
 * where they lie (`fmt`, naming the tensors around them). */
__attribute__((format(printf, 4, 5))) static int
uncovered(const st_file *f, uint64_t from, uint64_t to, const char *fmt, ...)
{
    char where[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(where, sizeof where, fmt, ap);
    va_end(ap);
    return ag__file_error(f->func, f->path,
                          "bytes [%llu, %llu) of the data belong to no "
                          "tensor: %s",
                          (unsigned long long)from, (unsigned long long)to,
                          where);
}

/* Checks that entry e begins where prev (NULL for the first) ends. */
static int check_follows(const st_file *f, const st_entry *prev,
                         const st_entry *e)
{
    unsigned long long at = prev ? prev->end : 0, b = e->begin, n = e->end;
    if (b == at) return 0;
    if (!prev)
        return uncovered(f, 0, b,
                         "the first, \"%s\" [%llu, %llu], does not begin at 0",
                         e->name, b, n);
    unsigned long long pb = prev->begin;
    if (b > at)
        return uncovered(f, at, b,
                         "a gap between \"%s\" [%llu, %llu] and \"%s\" "
                         "[%llu, %llu]",
                         prev->name, pb, at, e->name, b, n);
    if (b == n)
        return ag__file_error(f->func, f->path,
                              "tensor \"%s\" [%llu, %llu] lies inside \"%s\" "
                              "[%llu, %llu]",
                              e->name, b, n, prev->name, pb, at);
    return ag__file_error(f->func, f->path,
                          "tensors \"%s\" [%llu, %llu] and \"%s\" [%llu, "
                          "%llu] overlap",
                          prev->name, pb, at, e->name, b, n);
}

/* Checks, as the reference implementation does, that the tensors cover the
 * data exactly: sorted by offsets, the first begins at 0, each begins where
 * the one before ends (no overlap, no gap; a tensor without elements may
 * sit between two others or at either end), and the last ends at the end
 * of the data. */
static int check_layout(st_file *f)
{
    if (f->count)
        qsort(f->entries, (size_t)f->count, sizeof *f->entries, by_begin);
    for (int i = 0; i < f->count; i++)
        if (check_follows(f, i ? &f->entries[i - 1] : NULL, &f->entries[i]))
            return -1;
    const st_entry *last = f->count ? &f->entries[f->count - 1] : NULL;
    uint64_t end = last ? last->end : 0;
    if (end == f->data_size) return 0;
    if (!last) return uncovered(f, 0, f->data_size, "the header lists none");
    return uncovered(f, end, f->data_size,
                     "they follow the last, \"%s\" [%llu, %llu]", last->name,
                     (unsigned long long)last->begin, (unsigned long long)end);
}

/* Reads and checks the file at path; st_close frees what it holds, also
 * after a failure. */
static int st_open(st_file *f, const char *func, const char *path)
{
    *f = (st_file){.func = func, .path = path};
    return read_header(f) || parse_entries(f) || check_layout(f) ? -1 : 0;
}

static void st_close(st_file *f)
{
    ag_arena_free(f->arena);
    ag__free(f->entries);
    ag__free(f->bytes);
}

/* ------------------------------------------------------------------ */
/* Loading: matching the file to a parameter set                       */
/* ------------------------------------------------------------------ */

static const char LOAD[] = "ag_load_safetensors";

/* Checks that the file's names are the set's names exactly and points each
 * entry at its parameter. */
static int match_names(st_file *f, const ag_params *params)
{
    const char *unexpected = NULL, *missing = NULL;
    int n_unexpected = 0, n_missing = 0;
    for (int i = 0; i < f->count; i++) {
        st_entry *e = &f->entries[i];
        e->param = ag_params_find(params, e->name);
        if (!e->param && !n_unexpected++) unexpected = e->name;
    }
    for (int i = 0; i < ag_params_count(params); i++) {
        const char *name = ag_params_name(params, i);
        if ((strcmp(name, METADATA_KEY) == 0 ||
             !ag__json_get(f->header, name)) &&
            !n_missing++)
            missing = name;
    }
    if (!n_missing && !n_unexpected) return 0;
    char a[300] = "", b[300] = "";
    if (n_missing)
        snprintf(a, sizeof a, "no tensor \"%s\" in the file (%d missing)",
                 missing, n_missing);
    if (n_unexpected)
        snprintf(b, sizeof b,
                 "unexpected tensor \"%s\" in the file (%d not in the "
                 "parameter set)",
                 unexpected, n_unexpected);
    return ag__file_error(f->func, f->path, "%s%s%s", a,
                          n_missing && n_unexpected ? "; " : "", b);
}

/* Checks that each entry has its parameter's dtype and shape. */
static int match_types(const st_file *f)
{
    for (int i = 0; i < f->count; i++) {
        const st_entry *e = &f->entries[i];
        const ag_tensor *t = e->param;
        if (e->dtype == t->dtype && e->ndim == t->ndim &&
            memcmp(e->shape, t->shape, (size_t)e->ndim * sizeof *e->shape) == 0)
            continue;
        char fs[AG_SHAPE_STR_MAX], ps[AG_SHAPE_STR_MAX];
        return ag__file_error(
            f->func, f->path,
            "tensor \"%s\" is %s %s in the file but %s %s in the parameter "
            "set",
            e->name, dtype_names[e->dtype],
            ag__shape_str(fs, e->ndim, e->shape), dtype_names[t->dtype],
            ag__shape_str(ps, t->ndim, t->shape));
    }
    return 0;
}

int ag_load_safetensors(const char *path, ag_params *params)
{
    if (!path || !params) {
        ag__error(LOAD, "%s is NULL", !path ? "path" : "parameter set");
        return -1;
    }
    st_file f;
    int rc =
        st_open(&f, LOAD, path) || match_names(&f, params) || match_types(&f)
            ? -1
            : 0;
    for (int i = 0; rc == 0 && i < f.count; i++) {
        const st_entry *e = &f.entries[i];
        if (e->end > e->begin)
            memcpy(e->param->data, f.data + e->begin, e->end - e->begin);
    }
    st_close(&f);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Metadata                                                            */
/* ------------------------------------------------------------------ */

static const char METADATA[] = "ag_load_safetensors_metadata";

/* A copy of s in arena a, or NULL. */
static const char *arena_strdup(ag_arena *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = ag__arena_alloc(a, n, 1);
    if (copy) memcpy(copy, s, n);
    return copy;
}

/* The metadata of f as a NULL-terminated list of pairs in arena a. */
static const char *const *metadata_list(ag_arena *a, const st_file *f)
{
    size_t n = f->metadata ? f->metadata->object.count : 0;
    const char **list =
        ag__arena_alloc(a, (2 * n + 1) * sizeof *list, _Alignof(const char *));
    if (!list) return NULL;
    for (size_t i = 0; i < n; i++) {
        const ag__json_member *m = &f->metadata->object.members[i];
        list[2 * i] = arena_strdup(a, m->key);
        list[2 * i + 1] = arena_strdup(a, m->value.string.chars);
        if (!list[2 * i] || !list[2 * i + 1]) return NULL;
    }
    list[2 * n] = NULL;
    return list;
}

const char *const *ag_load_safetensors_metadata(ag_arena *a, const char *path)
{
    if (!a || !path) {
        ag__error(METADATA, "%s is NULL", !a ? "arena" : "path");
        return NULL;
    }
    st_file f;
    const char *const *list = NULL;
    if (st_open(&f, METADATA, path) == 0) {
        list = metadata_list(a, &f);
        if (!list) ag__file_error(METADATA, path, "out of memory");
    }
    st_close(&f);
    return list;
}
