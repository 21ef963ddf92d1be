/* fuzz_safetensors.c: libFuzzer harness for the safetensors reader. The
 * input is the file. ag_load_safetensors loads it into a fixed parameter set
 * (the tensors of tests/fixtures/arange.safetensors: "layer.weight" f32
 * (2,3), "layer.bias" f32 (3), "scale" f64 0-d, "table" f64 (2,2), "empty"
 * f32 (0,2)) and ag_load_safetensors_metadata reads its metadata.
 *
 * Checked on every input: no crash or leak; a failed call says why
 * (ag_last_error names the function); a failed load leaves every value as it
 * was; dtypes, shapes and data pointers never change; a successful load
 * copies exactly the file's bytes of each tensor (the offsets read back
 * independently by find_values); a file that loads has readable metadata,
 * a NULL-terminated list of key, value pairs. Seeds: corpus/fuzz_safetensors
 * (tests/fuzz/make_corpus.py). */
#define _GNU_SOURCE /* memmem */
#include "fuzz.h"

#include <string.h>

#define NPARAMS 5

static const struct {
    const char *name;
    ag_dtype dt;
    int ndim;
    int64_t shape[2];
} specs[NPARAMS] = {
    {"layer.weight", AG_F32, 2, {2, 3}}, {"layer.bias", AG_F32, 1, {3}},
    {"scale", AG_F64, 0, {0}},           {"table", AG_F64, 2, {2, 2}},
    {"empty", AG_F32, 2, {0, 2}},
};

/* The parameter set, made once, and a copy of its values before each load
 * (every byte 0xA5, a value no seed holds). */
static ag_arena *arena, *meta_arena;
static ag_params *params;
static ag_tensor *tensors[NPARAMS];
static void *data_ptr[NPARAMS];
static size_t bytes[NPARAMS];

static void make_params(void)
{
    arena = ag_arena_new();
    meta_arena = ag_arena_new();
    params = ag_params_new(arena);
    FUZZ_CHECK(params, "cannot make the parameter set");
    for (int i = 0; i < NPARAMS; i++) {
        tensors[i] =
            ag_zeros(arena, specs[i].dt, specs[i].ndim, specs[i].shape);
        FUZZ_CHECK(tensors[i] &&
                       !ag_params_add(params, specs[i].name, tensors[i]),
                   "cannot add %s", specs[i].name);
        data_ptr[i] = ag_data(tensors[i]);
        bytes[i] = (size_t)ag_numel(tensors[i]) *
                   (specs[i].dt == AG_F32 ? sizeof(float) : sizeof(double));
    }
}

/* Checks that parameter i still has its dtype, shape and data. */
static void check_layout(int i)
{
    const ag_tensor *t = tensors[i];
    FUZZ_CHECK(ag_params_tensor(params, i) == t, "tensor %d replaced", i);
    FUZZ_CHECK(ag_type(t) == specs[i].dt && ag_ndim(t) == specs[i].ndim &&
                   memcmp(ag_shape(t), specs[i].shape,
                          (size_t)specs[i].ndim * sizeof(int64_t)) == 0,
               "%s changed dtype or shape", specs[i].name);
    FUZZ_CHECK(ag_data(tensors[i]) == data_ptr[i], "%s moved", specs[i].name);
}

/* Little-endian uint64 at p. */
static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* Where the values of `name` lie in a file that loaded: finds
 * "<name>":{ ... "data_offsets":[begin,end] in the header text (the harness
 * reads it with a scan of its own, not the library's parser) and returns a
 * pointer to them, or NULL when the text is not in that plain form (a
 * file the scan cannot read is not checked). */
static const uint8_t *find_values(const uint8_t *data, size_t size,
                                  const char *name, size_t want)
{
    uint64_t n = le64(data);
    char key[64];
    snprintf(key, sizeof key, "\"%s\":", name);
    const char *h = (const char *)data + 8, *end = h + n;
    const char *at = memmem(h, n, key, strlen(key));
    if (!at || memmem(at + 1, (size_t)(end - at - 1), key, strlen(key)))
        return NULL; /* absent, or the name also appears elsewhere */
    const char *close = memchr(at, '}', (size_t)(end - at));
    const char *off = memmem(at, (size_t)(end - at), "\"data_offsets\":[", 16);
    unsigned long long b, e;
    if (!close || !off || off > close ||
        sscanf(off + 16, "%llu,%llu]", &b, &e) != 2 || e < b || e - b != want ||
        e > size - 8 - n)
        return NULL;
    return data + 8 + n + b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!params) make_params();
    for (int i = 0; i < NPARAMS; i++) memset(data_ptr[i], 0xA5, bytes[i]);
    const char *path = fuzz_file(data, size);
    ag_clear_error();
    int rc = ag_load_safetensors(path, params);
    FUZZ_CHECK(rc == 0 || rc == -1, "ag_load_safetensors returned %d", rc);
    fuzz_trace("load: %d %s", rc, ag_last_error());
    for (int i = 0; i < NPARAMS; i++) {
        check_layout(i);
        const uint8_t *want = NULL;
        if (rc == 0) want = find_values(data, size, specs[i].name, bytes[i]);
        for (size_t k = 0; rc && k < bytes[i]; k++)
            FUZZ_CHECK(((uint8_t *)data_ptr[i])[k] == 0xA5,
                       "failed load changed %s", specs[i].name);
        FUZZ_CHECK(!want || memcmp(want, data_ptr[i], bytes[i]) == 0,
                   "%s does not hold the file's bytes", specs[i].name);
    }
    if (rc) fuzz_check_error("ag_load_safetensors");

    ag_clear_error();
    const char *const *meta = ag_load_safetensors_metadata(meta_arena, path);
    if (!meta) fuzz_check_error("ag_load_safetensors_metadata");
    fuzz_trace("metadata: %s %s", meta ? "ok" : "failed", ag_last_error());
    FUZZ_CHECK(meta || rc, "the file loads but its metadata does not");
    for (size_t i = 0; meta && meta[i]; i += 2)
        FUZZ_CHECK(meta[i + 1], "metadata key \"%s\" has no value", meta[i]);
    ag_arena_reset(meta_arena);
    return 0;
}
