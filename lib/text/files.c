/* files.c: GPT-2's bytes_to_unicode mapping, and the tokenizer's two files
 * as GPT-2 and Hugging Face's GPT2Tokenizer lay them out: vocab.json (token
 * -> id, each token written as its bytes mapped to characters) and
 * merges.txt ("#version: 0.2", then "left right" a line in rank order). */
#define _POSIX_C_SOURCE 200809L
#include "text.h"

#include "../io/io.h"

#include <stdarg.h>
#include <stdio.h>

/* ---- bytes_to_unicode ---- */

/* Whether GPT-2 writes byte b as itself: '!'..'~', 0xA1..0xAC, 0xAE..0xFF. */
static bool printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) ||
           (b >= 0xAE && b <= 0xFF);
}

unsigned char ag__bpe_byte_of_id(int i)
{
    if (i < 94) return (unsigned char)(0x21 + i);
    if (i < 106) return (unsigned char)(0xA1 + i - 94);
    if (i < 188) return (unsigned char)(0xAE + i - 106);
    int k = i - 188; /* the k-th byte that is not printable */
    if (k < 33) return (unsigned char)k;
    if (k < 67) return (unsigned char)(0x7F + k - 33);
    return 0xAD;
}

uint32_t ag__bpe_byte_char(unsigned char b)
{
    /* The bytes that are not printable go to 256, 257, ... in order. */
    if (printable(b)) return b;
    if (b <= 0x20) return 256u + b;
    if (b <= 0xA0) return 256u + 33 + (b - 0x7Fu);
    return 256u + 67; /* 0xAD */
}

/* The byte that code point cp stands for, or -1 when it stands for none. */
static int char_byte(uint32_t cp)
{
    if (cp < 256) return printable(cp) ? (int)cp : -1;
    if (cp < 256 + 33) return (int)(cp - 256);
    if (cp < 256 + 67) return (int)(cp - 256 - 33 + 0x7F);
    return cp == 256 + 67 ? 0xAD : -1;
}

ptrdiff_t ag__bpe_unmap(const unsigned char *s, size_t n, unsigned char *out)
{
    size_t len = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp = s[i];
        if (s[i] >= 0xC0 && s[i] < 0xE0 && i + 1 < n) {
            cp = (s[i] & 0x1Fu) << 6 | (s[i + 1] & 0x3Fu);
            i += 2;
        } else if (s[i] < 0x80) {
            i++;
        } else {
            return -1; /* 3- and 4-byte characters are over U+0143 */
        }
        int b = char_byte(cp);
        if (b < 0) return -1;
        out[len++] = (unsigned char)b;
    }
    return (ptrdiff_t)len;
}

/* ---- a growing text ---- */

typedef struct {
    char *chars;
    size_t len, cap;
    bool failed; /* out of memory */
} text_buf;

static void put(text_buf *b, const void *s, size_t n)
{
    if (b->failed) return;
    if (ag__grow(&b->chars, &b->cap, b->len + n + 1, 1)) {
        b->failed = true;
        return;
    }
    memcpy(b->chars + b->len, s, n);
    b->len += n;
}

/* Appends bytes s[0, n) mapped to characters (UTF-8). */
static void put_mapped(text_buf *b, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = ag__bpe_byte_char(s[i]);
        unsigned char u[2] = {(unsigned char)(0xC0 | cp >> 6),
                              (unsigned char)(0x80 | (cp & 0x3F))};
        if (cp < 0x80)
            put(b, &s[i], 1);
        else
            put(b, u, 2);
    }
}

/* Appends s[0, n) as a JSON string, escaped as Python's json.dumps with
 * ensure_ascii=False: \" \\ \n \r \t \b \f, \u00xx for the other control
 * characters, everything else as it is. */
static void put_json_string(text_buf *b, const unsigned char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        const char *esc = c == '"'    ? "\\\""
                          : c == '\\' ? "\\\\"
                          : c == '\n' ? "\\n"
                          : c == '\r' ? "\\r"
                          : c == '\t' ? "\\t"
                          : c == '\b' ? "\\b"
                          : c == '\f' ? "\\f"
                                      : NULL;
        if (esc) {
            put(b, esc, 2);
        } else if (c < 0x20) {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put(b, u, 6);
        } else {
            put(b, &c, 1);
        }
    }
    put(b, "\"", 1);
}

/* Appends token id's text as vocab.json (json: quoted and escaped) and
 * merges.txt write it: a special token's text as it is, any other token's
 * bytes mapped to characters. */
static void put_token(text_buf *b, const ag_bpe *t, int32_t id, bool json)
{
    size_t len;
    const unsigned char *s = ag__bpe_token(t, id, &len);
    text_buf text = {0};
    if (t->special[id])
        put(&text, s, len);
    else
        put_mapped(&text, s, len);
    if (text.failed)
        b->failed = true;
    else if (json)
        put_json_string(b, (const unsigned char *)text.chars, text.len);
    else
        put(b, text.chars, text.len);
    ag__free(text.chars);
}

/* ---- saving ---- */

/* Writes b's text to path atomically. Returns 0 or -1. */
static int write_file(const char *func, const char *path, const text_buf *b)
{
    ag__atomic_file f;
    if (ag__atomic_begin(&f, func, path) ||
        ag__atomic_write(&f, b->chars, b->len) || ag__atomic_commit(&f))
        return -1;
    return 0;
}

int ag_bpe_save(const ag_bpe *t, const char *vocab_json_path,
                const char *merges_txt_path)
{
    static const char func[] = "ag_bpe_save";
    if (!t || !vocab_json_path || !merges_txt_path) {
        ag__error(func, "%s is NULL",
                  !t                 ? "tokenizer"
                  : !vocab_json_path ? "vocab_json_path"
                                     : "merges_txt_path");
        return -1;
    }
    text_buf vocab = {0}, merges = {0};
    put(&vocab, "{", 1);
    for (int32_t id = 0; id < t->vocab_size; id++) {
        char num[24];
        if (id) put(&vocab, ", ", 2);
        put_token(&vocab, t, id, true);
        put(&vocab, num, (size_t)snprintf(num, sizeof num, ": %d", (int)id));
    }
    put(&vocab, "}", 1);
    static const char header[] = "#version: 0.2\n";
    put(&merges, header, sizeof header - 1);
    for (int32_t r = 0; r < t->n_merges; r++) {
        put_token(&merges, t, t->merge_left[r], false);
        put(&merges, " ", 1);
        put_token(&merges, t, t->merge_right[r], false);
        put(&merges, "\n", 1);
    }
    int rc = -1;
    if (vocab.failed || merges.failed)
        ag__error(func, "out of memory");
    else if (!write_file(func, vocab_json_path, &vocab) &&
             !write_file(func, merges_txt_path, &merges))
        rc = 0;
    ag__free(vocab.chars);
    ag__free(merges.chars);
    return rc;
}

/* ---- loading ---- */

/* What ag_bpe_load works with: vocab.json's entries and what the merges
 * make of them. */
typedef struct {
    const char *vocab_path, *merges_path;
    const unsigned char *json; /* vocab.json's text */
    size_t json_size;
    const ag__json *root;     /* its object */
    ag__str_map keys;         /* key i is member i */
    int32_t *member_of_id;    /* [count] */
    int32_t *id_of_member;    /* [count] */
    bool *is_byte, *is_merge; /* [count], by id */
    int32_t *merges;          /* [3 n_merges]: left, right, result */
    size_t n_merges, merges_cap;
    ag__pair_map ranks; /* (left, right) -> line of the merge */
} loader;

static const char load_func[] = "ag_bpe_load";

/* The line and column (in characters, from 1) of byte `offset` of text. */
static void line_col(const unsigned char *text, size_t offset, size_t *line,
                     size_t *column)
{
    *line = 1;
    *column = 1;
    for (size_t i = 0; i < offset; i++) {
        if (text[i] == '\n') {
            ++*line;
            *column = 1;
        } else if ((text[i] & 0xC0) != 0x80) {
            ++*column;
        }
    }
}

/* Reports a problem with vocab.json's member m, at its key. */
__attribute__((format(printf, 3, 4))) static void
member_error(const loader *ld, const ag__json_member *m, const char *fmt, ...)
{
    char msg[300], key[AG_QUOTE_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t line, column;
    line_col(ld->json, m->offset, &line, &column);
    ag__quote(key, m->key, m->key_length);
    ag__file_error(load_func, ld->vocab_path, "line %zu, column %zu: \"%s\" %s",
                   line, column, key, msg);
}

/* Reads vocab.json's entries into ld. Returns 0 or -1. */
static int read_vocab(loader *ld, ag_arena *arena)
{
    const char *path = ld->vocab_path;
    ag__json_error err = {0};
    ld->root = ag__json_parse(arena, ld->json, ld->json_size, &err);
    if (!ld->root)
        return err.out_of_memory
                   ? ag__file_error(load_func, path, "out of memory")
                   : ag__file_error(load_func, path, "line %zu, column %zu: %s",
                                    err.line, err.column, err.text);
    if (ld->root->type != AG__JSON_OBJECT)
        return ag__file_error(load_func, path,
                              "is not a JSON object (token -> id) but %s",
                              ag__json_kind(ld->root));
    size_t count = ld->root->object.count;
    if (count > INT32_MAX)
        return ag__file_error(load_func, path, "has too many tokens (%zu)",
                              count);
    ld->member_of_id = ag__malloc((count + 1) * sizeof(int32_t));
    ld->id_of_member = ag__malloc((count + 1) * sizeof(int32_t));
    ld->is_byte = ag__calloc(count + 1, sizeof(bool));
    ld->is_merge = ag__calloc(count + 1, sizeof(bool));
    if (!ld->member_of_id || !ld->id_of_member || !ld->is_byte || !ld->is_merge)
        return ag__file_error(load_func, path, "out of memory");
    for (size_t i = 0; i < count; i++) ld->member_of_id[i] = -1;
    for (size_t i = 0; i < count; i++) {
        const ag__json_member *m = &ld->root->object.members[i];
        if (m->value.type != AG__JSON_INTEGER || m->value.integer < 0 ||
            m->value.integer >= (int64_t)count) {
            member_error(ld, m, "has an id that is not an integer in [0, %zu)",
                         count);
            return -1;
        }
        int32_t id = (int32_t)m->value.integer;
        if (ld->member_of_id[id] >= 0) {
            const ag__json_member *first =
                &ld->root->object.members[ld->member_of_id[id]];
            char other[AG_QUOTE_SIZE];
            ag__quote(other, first->key, first->key_length);
            member_error(ld, m, "has id %d, which \"%s\" has already", (int)id,
                         other);
            return -1;
        }
        ld->member_of_id[id] = (int32_t)i;
        ld->id_of_member[i] = id;
        if (ag__str_map_add(&ld->keys, m->key, m->key_length) < 0)
            return ag__file_error(load_func, path, "out of memory");
        unsigned char b[4];
        ld->is_byte[id] =
            m->key_length <= 2 &&
            ag__bpe_unmap((const unsigned char *)m->key, m->key_length, b) == 1;
    }
    /* Every byte must be there. */
    for (unsigned b = 0; b < 256; b++) {
        text_buf key = {0};
        unsigned char byte = (unsigned char)b;
        put_mapped(&key, &byte, 1);
        if (key.failed) return ag__file_error(load_func, path, "out of memory");
        int32_t k = ag__str_map_find(&ld->keys, key.chars, key.len);
        char name[3] = {key.chars[0], key.len > 1 ? key.chars[1] : 0, 0};
        ag__free(key.chars);
        if (k < 0)
            return ag__file_error(load_func, path,
                                  "has no token for byte 0x%02x (\"%s\")", b,
                                  name);
    }
    return 0;
}

/* The id of the vocab.json token s[0, n), or -1. */
static int32_t id_of_key(const loader *ld, const void *s, size_t n)
{
    int32_t k = ag__str_map_find(&ld->keys, s, n);
    return k < 0 ? -1 : ld->id_of_member[k];
}

/* Reads merges.txt's text[0, size) into ld. Returns 0 or -1. */
static int read_merges(loader *ld, const unsigned char *text, size_t size)
{
    const char *path = ld->merges_path;
    static const char version[] = "#version:";
    char quoted[AG_QUOTE_SIZE];
    size_t line_no = 1;
    if (size < sizeof version - 1 || memcmp(text, version, sizeof version - 1))
        return ag__file_error(load_func, path,
                              "line 1: does not start with \"%s\"", version);
    const unsigned char *p = text, *end = text + size;
    const unsigned char *eol = memchr(p, '\n', size);
    if (!eol)
        return ag__file_error(load_func, path,
                              "line 1 does not end with a newline "
                              "(a truncated file?)");
    text_buf joined = {0};
    int rc = -1;
    for (p = eol + 1; p < end; p = eol + 1) {
        line_no++;
        eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) {
            ag__quote(quoted, (const char *)p, (size_t)(end - p));
            ag__file_error(load_func, path,
                           "line %zu (\"%s\") does not end with a newline "
                           "(a truncated file?)",
                           line_no, quoted);
            goto done;
        }
        size_t len = (size_t)(eol - p);
        const unsigned char *space = memchr(p, ' ', len);
        ag__quote(quoted, (const char *)p, len);
        if (!space || space == p || space == eol - 1 ||
            memchr(space + 1, ' ', (size_t)(eol - space - 1))) {
            ag__file_error(load_func, path,
                           "line %zu: \"%s\" is not two tokens separated by "
                           "one space",
                           line_no, quoted);
            goto done;
        }
        size_t left_len = (size_t)(space - p), right_len = len - left_len - 1;
        int32_t part[2] = {id_of_key(ld, p, left_len),
                           id_of_key(ld, space + 1, right_len)};
        for (int i = 0; i < 2; i++) {
            if (part[i] < 0 ||
                !(ld->is_byte[part[i]] || ld->is_merge[part[i]])) {
                char token[AG_QUOTE_SIZE];
                if (i == 0)
                    ag__quote(token, (const char *)p, left_len);
                else
                    ag__quote(token, (const char *)space + 1, right_len);
                ag__file_error(load_func, path,
                               "line %zu: \"%s\" is neither a byte nor the "
                               "result of an earlier merge",
                               line_no, token);
                goto done;
            }
        }
        int32_t earlier = ag__pair_map_get(&ld->ranks, part[0], part[1]);
        if (earlier >= 0) {
            ag__file_error(load_func, path,
                           "line %zu: the merge \"%s\" is on line %d already",
                           line_no, quoted, (int)earlier);
            goto done;
        }
        joined.len = 0;
        put(&joined, p, left_len);
        put(&joined, space + 1, right_len);
        if (joined.failed || ld->n_merges >= INT32_MAX / 4 ||
            ag__grow(&ld->merges, &ld->merges_cap, 3 * ld->n_merges + 3,
                     sizeof *ld->merges) ||
            ag__pair_map_set(&ld->ranks, part[0], part[1], (int32_t)line_no)) {
            ag__file_error(load_func, path, "out of memory");
            goto done;
        }
        int32_t result = id_of_key(ld, joined.chars, joined.len);
        if (result < 0) {
            ag__quote(quoted, joined.chars, joined.len);
            ag__file_error(load_func, path,
                           "line %zu: the merge's result \"%s\" is not in %s",
                           line_no, quoted, ld->vocab_path);
            goto done;
        }
        ld->is_merge[result] = true;
        int32_t *m = ld->merges + 3 * ld->n_merges++;
        m[0] = part[0];
        m[1] = part[1];
        m[2] = result;
    }
    rc = 0;
done:
    ag__free(joined.chars);
    return rc;
}

/* Makes the tokenizer ld describes, or NULL. */
static ag_bpe *build(const loader *ld)
{
    ag_bpe *t = ag__bpe_new(load_func);
    if (!t) return NULL;
    size_t count = ld->root->object.count;
    unsigned char *bytes = NULL;
    for (size_t id = 0; id < count; id++) {
        const ag__json_member *m =
            &ld->root->object.members[ld->member_of_id[id]];
        bool special = !ld->is_byte[id] && !ld->is_merge[id];
        const void *s = m->key;
        size_t len = m->key_length;
        if (!special) {
            unsigned char *b = ag__realloc(bytes, len + 1);
            if (!b) goto fail;
            bytes = b;
            len = (size_t)ag__bpe_unmap((const unsigned char *)m->key, len,
                                        bytes);
            s = bytes;
        }
        if (ag__bpe_add_token(t, load_func, s, len, special) < 0) goto fail;
    }
    for (size_t r = 0; r < ld->n_merges; r++) {
        const int32_t *m = ld->merges + 3 * r;
        if (ag__bpe_add_merge(t, load_func, m[0], m[1], m[2])) goto fail;
    }
    ag__free(bytes);
    return t;
fail:
    if (!bytes) ag__error(load_func, "out of memory");
    ag__free(bytes);
    ag_bpe_free(t);
    return NULL;
}

ag_bpe *ag_bpe_load(const char *vocab_json_path, const char *merges_txt_path)
{
    if (!vocab_json_path || !merges_txt_path) {
        ag__error(load_func, "%s is NULL",
                  !vocab_json_path ? "vocab_json_path" : "merges_txt_path");
        return NULL;
    }
    loader ld = {.vocab_path = vocab_json_path, .merges_path = merges_txt_path};
    unsigned char *json = NULL, *merges = NULL;
    size_t json_size, merges_size;
    ag_bpe *t = NULL;
    ag_arena *arena = ag_arena_new();
    if (!arena) {
        ag__error(load_func, "out of memory");
        return NULL;
    }
    if (!ag__read_file(load_func, vocab_json_path, &json, &json_size) &&
        !ag__read_file(load_func, merges_txt_path, &merges, &merges_size)) {
        ld.json = json;
        ld.json_size = json_size;
        if (!read_vocab(&ld, arena) && !read_merges(&ld, merges, merges_size))
            t = build(&ld);
    }
    ag__str_map_free(&ld.keys);
    ag__pair_map_free(&ld.ranks);
    ag__free(ld.member_of_id);
    ag__free(ld.id_of_member);
    ag__free(ld.is_byte);
    ag__free(ld.is_merge);
    ag__free(ld.merges);
    ag__free(json);
    ag__free(merges);
    ag_arena_free(arena);
    return t;
}
