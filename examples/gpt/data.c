/* data.c: the corpora of the language model (data.h): fortune files split
 * into entries, escapes removed, joined by <|endoftext|>, a validation
 * share held out; the English file list from dpkg; token files. */
#define _POSIX_C_SOURCE 200809L /* strdup, mkstemp, fdopen, fileno */
#include "data.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int lm_text_append(lm_text *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + n + 1) cap *= 2;
        char *d = realloc(t->data, cap);
        if (!d) {
            fprintf(stderr, "out of memory for %zu bytes of text\n", cap);
            return -1;
        }
        t->data = d, t->cap = cap;
    }
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
    return 0;
}

void lm_text_free(lm_text *t)
{
    free(t->data);
    *t = (lm_text){0};
}

size_t lm_strip_ansi(char *s, size_t n)
{
    size_t w = 0;
    for (size_t r = 0; r < n; r++) {
        if (s[r] == '\033' && r + 1 < n && s[r + 1] == '[') {
            size_t e = r + 2; /* parameters: digits and ';' */
            while (e < n && ((s[e] >= '0' && s[e] <= '9') || s[e] == ';')) e++;
            if (e < n && ((s[e] >= 'A' && s[e] <= 'Z') ||
                          (s[e] >= 'a' && s[e] <= 'z'))) {
                r = e;
                continue;
            }
        }
        s[w++] = s[r];
    }
    return w;
}

static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return NULL;
    }
    lm_text t = {0};
    char buf[65536];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        if (lm_text_append(&t, buf, got)) break;
    int bad = ferror(f) || (!feof(f));
    fclose(f);
    if (bad) {
        fprintf(stderr, "%s: read error\n", path);
        lm_text_free(&t);
        return NULL;
    }
    if (!t.data && lm_text_append(&t, "", 0)) return NULL;
    *n = t.len;
    return t.data;
}

/* The entry at s[0..n) without its leading and trailing blank lines. */
static void trim_blank_lines(const char **s, size_t *n)
{
    while (*n > 0 && ((*s)[0] == '\n' || (*s)[0] == '\r')) (*s)++, (*n)--;
    while (*n > 0 && ((*s)[*n - 1] == '\n' || (*s)[*n - 1] == '\r' ||
                      (*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

int lm_corpus_add_file(lm_corpus *c, const char *path, double val_share)
{
    size_t n;
    char *s = read_file(path, &n);
    if (!s) return -1;
    if (memchr(s, '\0', n)) {
        fprintf(stderr, "%s: holds a NUL byte: not a fortune file\n", path);
        free(s);
        return -1;
    }
    n = lm_strip_ansi(s, n);
    /* Entry boundaries: lines that are exactly "%". Two passes: count, then
     * split, so that the held-out share is known. */
    int64_t entries = 0;
    for (int pass = 0; pass < 2; pass++) {
        int64_t index = 0;
        int64_t val_from = entries - (int64_t)ceil(val_share * entries);
        size_t start = 0;
        for (size_t pos = 0; pos <= n;) {
            size_t eol = pos;
            while (eol < n && s[eol] != '\n') eol++;
            size_t width = eol - pos - (eol > pos && s[eol - 1] == '\r');
            bool separator = width == 1 && s[pos] == '%';
            if (separator || eol >= n) {
                const char *e = s + start;
                size_t len = (separator ? pos : n) - start;
                trim_blank_lines(&e, &len);
                start = eol + 1;
                if (len > 0 && pass == 0) entries++;
                if (len > 0 && pass == 1) {
                    bool val = index++ >= val_from;
                    lm_text *to = val ? &c->val : &c->train;
                    *(val ? &c->val_entries : &c->train_entries) += 1;
                    if (lm_text_append(to, e, len) ||
                        lm_text_append(to, LM_EOT, strlen(LM_EOT))) {
                        free(s);
                        return -1;
                    }
                }
            }
            pos = eol + 1;
        }
        if (entries == 0) {
            fprintf(stderr,
                    "%s: no entry (entries are separated by lines "
                    "\"%%\")\n",
                    path);
            free(s);
            return -1;
        }
    }
    free(s);
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int lm_fortunes_english(char **paths, int cap)
{
    const char *list = "/var/lib/dpkg/info/fortunes.list";
    FILE *f = fopen(list, "r");
    if (!f) {
        fprintf(stderr,
                "%s: %s: install Debian's fortunes "
                "(apt-get install fortunes fortunes-zh)\n",
                list, strerror(errno));
        return -1;
    }
    const char *dir = LM_FORTUNE_DIR "/";
    size_t dlen = strlen(dir);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        const char *name = line + dlen;
        /* a file right in the folder (not off/), no extension */
        if (strncmp(line, dir, dlen) || !*name || strchr(name, '/') ||
            strchr(name, '.'))
            continue;
        if (access(line, R_OK)) continue;
        if (n == cap) {
            fprintf(stderr, "%s: more than %d collections\n", list, cap);
            break;
        }
        paths[n] = strdup(line);
        if (!paths[n]) break;
        n++;
    }
    fclose(f);
    if (n == 0) {
        fprintf(stderr, "%s lists no collection under %s\n", list, dir);
        return -1;
    }
    qsort(paths, (size_t)n, sizeof *paths, by_name);
    return n;
}

void lm_paths_free(char **paths, int n)
{
    for (int i = 0; i < n; i++) free(paths[i]);
}

void lm_corpus_free(lm_corpus *c)
{
    lm_text_free(&c->train);
    lm_text_free(&c->val);
    c->train_entries = c->val_entries = 0;
}

static const char MAGIC[8] = "LMTOKENS";

int lm_tokens_save(const char *path, const int32_t *ids, int64_t n)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp) {
        fprintf(stderr, "%s: path too long\n", path);
        return -1;
    }
    int fd = mkstemp(tmp);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        fprintf(stderr, "%s: %s\n", tmp, strerror(errno));
        if (fd >= 0) close(fd), unlink(tmp);
        return -1;
    }
    uint64_t count = (uint64_t)n;
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(count >> (8 * i));
    bool ok = fwrite(MAGIC, 1, 8, f) == 8 && fwrite(le, 1, 8, f) == 8 &&
              fwrite(ids, sizeof *ids, (size_t)n, f) == (size_t)n;
    ok = fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path)) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int lm_tokens_load(const char *path, int64_t vocab, int32_t **ids, int64_t *n)
{
    size_t len;
    char *s = read_file(path, &len);
    if (!s) return -1;
    uint64_t count = 0;
    if (len >= 16)
        for (int i = 0; i < 8; i++)
            count |= (uint64_t)(unsigned char)s[8 + i] << (8 * i);
    if (len < 16 || memcmp(s, MAGIC, 8)) {
        fprintf(stderr, "%s: not a token file (run gpt tokenize)\n", path);
        free(s);
        return -1;
    }
    if (count > (len - 16) / 4 || len - 16 != count * 4) {
        fprintf(stderr,
                "%s: %zu bytes of ids for a count of %llu: "
                "truncated or corrupt\n",
                path, len - 16, (unsigned long long)count);
        free(s);
        return -1;
    }
    int32_t *out = malloc(count ? count * 4 : 1);
    if (!out) {
        free(s);
        return -1;
    }
    memcpy(out, s + 16, count * 4);
    free(s);
    for (uint64_t i = 0; i < count; i++)
        if (out[i] < 0 || out[i] >= vocab) {
            fprintf(stderr,
                    "%s: id %d at %llu outside the vocabulary of "
                    "%lld\n",
                    path, out[i], (unsigned long long)i, (long long)vocab);
            free(out);
            return -1;
        }
    *ids = out, *n = (int64_t)count;
    return 0;
}
