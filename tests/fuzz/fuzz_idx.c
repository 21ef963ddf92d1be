/* fuzz_idx.c: libFuzzer harness for ag_load_idx. The first input byte picks
 * the dtype (bits 0-1: f32, f64, i32, an unknown one) and how the rest, the
 * IDX file, is stored (bits 2-3): as it is; gzipped by zlib at level
 * (bits 4-7) % 10; gzipped in two members; or gzipped and cut short by
 * 1 + (bits 4-7) bytes. So the inflate path reads the same fuzzed IDX
 * content as the plain one, and corrupt gzip comes from plain inputs that
 * start with gzip's magic bytes.
 *
 * Checked on every input: no crash or leak; a failure says why
 * (ag_last_error names ag_load_idx); a cut gzip file fails; and, against a
 * decoder of the harness's own, a file loads exactly when it is a valid IDX
 * file for that dtype (no f64 value beyond f32 for f32), with the
 * header's shape and each value converted as C converts it. Seeds:
 * corpus/fuzz_idx (tests/fuzz/make_corpus.py). */
#include "fuzz.h"

#include <math.h>
#include <string.h>
#include <zlib.h>

enum { PLAIN, GZIP, TWO_MEMBERS, CUT };

/* Appends the gzip member of in[0, n) at `level` to out (of *len bytes,
 * room for compressBound(n) + 64 more). */
static void gzip_member(const uint8_t *in, size_t n, int level, uint8_t *out,
                        size_t *len)
{
    z_stream zs = {0};
    FUZZ_CHECK(deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8,
                            Z_DEFAULT_STRATEGY) == Z_OK,
               "deflateInit2");
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)n;
    zs.next_out = out + *len;
    zs.avail_out = (uInt)(compressBound((uLong)n) + 64);
    FUZZ_CHECK(deflate(&zs, Z_FINISH) == Z_STREAM_END, "deflate");
    *len += zs.total_out;
    deflateEnd(&zs);
}

/* The file for payload p[0, n) stored as `how`; malloc'd, *len bytes. */
static uint8_t *encode(const uint8_t *p, size_t n, int how, int arg,
                       size_t *len)
{
    *len = 0;
    uint8_t *out = malloc(2 * (compressBound((uLong)n) + 64) + 1);
    FUZZ_CHECK(out, "out of memory");
    if (how == PLAIN) {
        memcpy(out, p, n);
        *len = n;
    } else if (how == TWO_MEMBERS) {
        gzip_member(p, n / 2, arg % 10, out, len);
        gzip_member(p + n / 2, n - n / 2, arg % 10, out, len);
    } else {
        gzip_member(p, n, how == GZIP ? arg % 10 : 6, out, len);
        if (how == CUT) *len -= (size_t)arg + 1 < *len ? (size_t)arg + 1 : *len;
    }
    return out;
}

/* The harness's own reading of an IDX file. */
typedef struct {
    bool valid; /* a complete IDX file of a known type */
    unsigned char type;
    int ndim;
    int64_t shape[AG_MAX_DIMS];
    int64_t numel;
    size_t size; /* bytes per value */
    const uint8_t *values;
} idx_ref;

static uint64_t be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

static idx_ref decode(const uint8_t *p, size_t n)
{
    static const unsigned char types[] = {0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E};
    static const size_t sizes[] = {1, 1, 2, 4, 4, 8};
    idx_ref r = {0};
    if (n < 4 || p[0] || p[1] || p[3] < 1 || p[3] > AG_MAX_DIMS) return r;
    for (int i = 0; i < 6; i++)
        if (p[2] == types[i]) r.size = sizes[i];
    r.type = p[2];
    r.ndim = p[3];
    if (!r.size || n < 4 + 4 * (size_t)r.ndim) return r;
    r.numel = 1;
    for (int d = 0; d < r.ndim; d++) {
        r.shape[d] = (int64_t)be(p + 4 + 4 * d, 4);
        if (!r.shape[d] || r.numel > (int64_t)n / r.shape[d]) return r;
        r.numel *= r.shape[d];
    }
    r.values = p + 4 + 4 * r.ndim;
    r.valid = (size_t)r.numel * r.size == n - 4 - 4 * (size_t)r.ndim;
    return r;
}

/* Value i of r as a double. */
static double ref_value(const idx_ref *r, int64_t i)
{
    uint64_t v = be(r->values + (size_t)i * r->size, r->size);
    switch (r->type) {
    case 0x08:
        return (double)v;
    case 0x09:
        return (int8_t)v;
    case 0x0B:
        return (int16_t)v;
    case 0x0C:
        return (int32_t)v;
    case 0x0D: {
        uint32_t u = (uint32_t)v;
        float f;
        memcpy(&f, &u, sizeof f);
        return f;
    }
    default: {
        double d;
        memcpy(&d, &v, sizeof d);
        return d;
    }
    }
}

/* Whether a finite v rounds to an infinity as f32 (from FLT_MAX plus half
 * an ulp on). */
static bool beyond_f32(double v)
{
    return isfinite(v) && fabs(v) >= 0x1.ffffffp127;
}

/* Whether a valid r can load as dt: a known dtype, i32 only from integer
 * types, no f64 value beyond f32 for f32. */
static bool loadable(const idx_ref *r, ag_dtype dt)
{
    if (dt != AG_F32 && dt != AG_F64 && dt != AG_I32) return false;
    if (dt == AG_I32) return r->type < 0x0D;
    for (int64_t i = 0; dt == AG_F32 && r->type == 0x0E && i < r->numel; i++)
        if (beyond_f32(ref_value(r, i))) return false;
    return true;
}

/* Checks a loaded tensor against the harness's reading of the file. */
static void check_tensor(const ag_tensor *t, const idx_ref *r, ag_dtype dt)
{
    FUZZ_CHECK(r->valid, "loaded a file that is not a valid IDX file");
    FUZZ_CHECK(
        ag_type(t) == dt && ag_ndim(t) == r->ndim &&
            !memcmp(ag_shape(t), r->shape, (size_t)r->ndim * sizeof(int64_t)),
        "wrong dtype or shape");
    for (int64_t i = 0; i < r->numel; i++)
        fuzz_check_element(t, i, ref_value(r, i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const ag_dtype dtypes[] = {AG_F32, AG_F64, AG_I32, (ag_dtype)7};
    uint8_t sel = size ? data[0] : 0;
    const uint8_t *payload = size ? data + 1 : data;
    size_t n = size ? size - 1 : 0;
    ag_dtype dt = dtypes[sel & 3];
    int how = (sel >> 2) & 3, arg = sel >> 4;
    size_t len;
    uint8_t *file = encode(payload, n, how, arg, &len);
    ag_arena *a = ag_arena_new();
    ag_clear_error();
    ag_tensor *t = ag_load_idx(a, fuzz_file(file, len), dt);
    idx_ref r = decode(payload, n);
    /* A plain file that starts with gzip's magic is inflated: no oracle. */
    bool known =
        !(how == PLAIN && n >= 2 && payload[0] == 0x1f && payload[1] == 0x8b);
    bool expect = r.valid && loadable(&r, dt) && how != CUT;
    fuzz_trace("%s", t ? "loaded" : ag_last_error());
    if (!t) {
        fuzz_check_error("ag_load_idx");
        FUZZ_CHECK(!known || !expect, "a valid file did not load");
    } else {
        FUZZ_CHECK(how != CUT, "a cut gzip file loaded");
        FUZZ_CHECK(!known || expect, "a file that should fail loaded");
        if (known) check_tensor(t, &r, dt);
    }
    ag_arena_free(a);
    free(file);
    return 0;
}
