/* train.c: training a byte-level BPE (ag_bpe_train, ag_bpe_train_with).
 * The text's words (pre-tokenized, with each Han character a word of its
 * own when asked; counted once each) start as bytes; each step merges the
 * adjacent pair of tokens that occurs most often, weighed by the words'
 * counts (ties: the smallest left id, then right id). The pair counts and
 * an index pair -> words that hold it are updated only for the words a
 * merge touches (around each place it merges), and a lazy max-heap of (count,
 * pair) gives the next pair: an entry whose count is no longer the pair's is
 * skipped. */
#include "text.h"

#include "../io/io.h"

#include <stdlib.h>

/* A heap entry: a pair and its count when pushed. */
typedef struct {
    int64_t count;
    int32_t left, right;
} entry;

/* Whether a comes out of the heap before b. */
static bool before(const entry *a, const entry *b)
{
    if (a->count != b->count) return a->count > b->count;
    if (a->left != b->left) return a->left < b->left;
    return a->right < b->right;
}

typedef struct {
    /* Words: word w holds ids[start[w], start[w] + len[w]). */
    int32_t *ids;
    size_t *start;
    int32_t *len;
    int64_t *weight; /* how often the word occurs in the text */
    int32_t *stamp;  /* the last merge that visited it */
    size_t n_words;
    /* Pairs: pair p is (left[p], right[p]), occurring count[p] times. */
    ag__pair_map index; /* (left, right) -> p */
    int32_t *left, *right, *head, *pair_stamp;
    int64_t *count, *old_count;
    bool *banned; /* merging it would make a token that exists */
    size_t n_pairs, pairs_cap;
    /* The words of each pair: a list through node_next from head[p]
     * (node i holds word node_word[i]); a word may be listed twice, or
     * after it lost the pair. */
    int32_t *node_word, *node_next;
    size_t n_nodes, nodes_cap;
    /* The pairs the current merge changed. */
    int32_t *changed;
    size_t n_changed, changed_cap;
    entry *heap;
    size_t heap_n, heap_cap;
    ag__str_map token_bytes; /* token i's bytes is string i */
} trainer;

static int push(trainer *tr, int32_t p)
{
    if (ag__grow(&tr->heap, &tr->heap_cap, tr->heap_n + 1, sizeof *tr->heap))
        return -1;
    entry e = {tr->count[p], tr->left[p], tr->right[p]};
    size_t i = tr->heap_n++;
    while (i > 0 && before(&e, &tr->heap[(i - 1) / 2])) {
        tr->heap[i] = tr->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    tr->heap[i] = e;
    return 0;
}

static entry pop(trainer *tr)
{
    entry top = tr->heap[0], e = tr->heap[--tr->heap_n];
    size_t i = 0, n = tr->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && before(&tr->heap[c + 1], &tr->heap[c])) c++;
        if (!before(&tr->heap[c], &e)) break;
        tr->heap[i] = tr->heap[c];
        i = c;
    }
    if (n) tr->heap[i] = e;
    return top;
}

/* The index of pair (l, r), added with count 0 when new; -1 when out of
 * memory. */
static int32_t pair_of(trainer *tr, int32_t l, int32_t r)
{
    int32_t p = ag__pair_map_get(&tr->index, l, r);
    if (p >= 0) return p;
    size_t n = tr->n_pairs, cap = tr->pairs_cap;
    if (n >= INT32_MAX) return -1;
#define GROW(field)                                                            \
    (cap = tr->pairs_cap, ag__grow(&tr->field, &cap, n + 1, sizeof *tr->field))
    if (GROW(left) || GROW(right) || GROW(head) || GROW(pair_stamp) ||
        GROW(count) || GROW(old_count) || GROW(banned))
        return -1;
#undef GROW
    if (ag__pair_map_set(&tr->index, l, r, (int32_t)n)) return -1;
    tr->pairs_cap = cap;
    tr->left[n] = l;
    tr->right[n] = r;
    tr->head[n] = -1;
    tr->pair_stamp[n] = -1;
    tr->count[n] = 0;
    tr->banned[n] = false;
    tr->n_pairs++;
    return (int32_t)n;
}

/* Adds delta (+1 or -1) times word w's weight to the count of pair
 * (a, b), noting it as changed by merge `stamp` and, when adding, listing
 * w under it. Returns 0 or -1 (out of memory). */
static int add_count(trainer *tr, size_t w, int32_t a, int32_t b, int delta,
                     int32_t stamp)
{
    int32_t p = pair_of(tr, a, b);
    if (p < 0) return -1;
    if (tr->pair_stamp[p] != stamp) {
        if (ag__grow(&tr->changed, &tr->changed_cap, tr->n_changed + 1,
                     sizeof *tr->changed))
            return -1;
        tr->pair_stamp[p] = stamp;
        tr->old_count[p] = tr->count[p];
        tr->changed[tr->n_changed++] = p;
    }
    tr->count[p] += delta * tr->weight[w];
    if (delta > 0 &&
        (tr->head[p] < 0 || tr->node_word[tr->head[p]] != (int32_t)w)) {
        size_t cap = tr->nodes_cap;
        if (tr->n_nodes >= INT32_MAX ||
            ag__grow(&tr->node_word, &cap, tr->n_nodes + 1,
                     sizeof *tr->node_word) ||
            (cap = tr->nodes_cap,
             ag__grow(&tr->node_next, &cap, tr->n_nodes + 1,
                      sizeof *tr->node_next)))
            return -1;
        tr->nodes_cap = cap;
        tr->node_word[tr->n_nodes] = (int32_t)w;
        tr->node_next[tr->n_nodes] = tr->head[p];
        tr->head[p] = (int32_t)tr->n_nodes++;
    }
    return 0;
}

/* Merges every occurrence of (l, r) in word w into z, from left to right,
 * and updates the counts of the pairs around each: with x the token before
 * (already merged, so z for two occurrences in a row) and y the one after,
 *   x l r y  ->  x z y:  (l, r), (x, l), (r, y) lose w's weight, (x, z)
 *   and (z, y) gain it.
 * Returns 0 or -1 (out of memory). */
static int merge_word(trainer *tr, size_t w, int32_t l, int32_t r, int32_t z,
                      int32_t m)
{
    int32_t *ids = tr->ids + tr->start[w], n = tr->len[w], out = 0;
    for (int32_t i = 0; i < n; i++) {
        if (i + 1 < n && ids[i] == l && ids[i + 1] == r) {
            if (add_count(tr, w, l, r, -1, m)) return -1;
            if (out > 0 && (add_count(tr, w, ids[out - 1], l, -1, m) ||
                            add_count(tr, w, ids[out - 1], z, +1, m)))
                return -1;
            if (i + 2 < n && (add_count(tr, w, r, ids[i + 2], -1, m) ||
                              add_count(tr, w, z, ids[i + 2], +1, m)))
                return -1;
            ids[out++] = z;
            i++;
        } else {
            ids[out++] = ids[i];
        }
    }
    tr->len[w] = out;
    return 0;
}

/* Applies merge number m of pair p, making token z, to every word that
 * holds p, and queues the pairs whose counts changed. Returns 0 or -1. */
static int apply_merge(trainer *tr, int32_t p, int32_t z, int32_t m)
{
    int32_t l = tr->left[p], r = tr->right[p];
    tr->n_changed = 0;
    for (int32_t node = tr->head[p]; node >= 0; node = tr->node_next[node]) {
        size_t w = (size_t)tr->node_word[node];
        if (tr->stamp[w] == m) continue;
        tr->stamp[w] = m;
        if (merge_word(tr, w, l, r, z, m)) return -1;
    }
    for (size_t i = 0; i < tr->n_changed; i++) {
        int32_t q = tr->changed[i];
        if (tr->count[q] != tr->old_count[q] && tr->count[q] > 0 && push(tr, q))
            return -1;
    }
    return 0;
}

/* The length in bytes of the Han character (Unicode's CJK Unified
 * Ideographs, their extensions A to H and the compatibility ideographs:
 * U+3400-4DBF, U+4E00-9FFF, U+F900-FAFF, U+20000-3FFFF) that starts s[0, n),
 * or 0 when s starts with another character. */
static size_t han_length(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80 ? 1 : ag__utf8_char(s, n);
    uint32_t cp =
        len == 3   ? (s[0] & 0x0Fu) << 12 | (s[1] & 0x3Fu) << 6 | (s[2] & 0x3Fu)
        : len == 4 ? (s[0] & 0x07u) << 18 | (s[1] & 0x3Fu) << 12 |
                         (s[2] & 0x3Fu) << 6 | (s[3] & 0x3Fu)
                   : 0;
    bool han =
        (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x4E00 && cp <= 0x9FFF) ||
        (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x20000 && cp <= 0x3FFFF);
    return han ? len : 0;
}

/* The length of the first training word of s[0, n): GPT-2's word, or with
 * han_words the part of it before its first Han character, or that
 * character when the word starts with it. */
static size_t training_word(const unsigned char *s, size_t n, bool han_words)
{
    size_t len = ag__next_word(s, n);
    if (!han_words) return len;
    for (size_t at = 0; at < len;) {
        size_t han = han_length(s + at, len - at);
        if (han) return at > 0 ? at : han;
        size_t step;
        ag__char_at(s + at, len - at, &step);
        at += step;
    }
    return len;
}

/* Counts the training words of text into tr (their bytes as ids of t). */
static int count_words(trainer *tr, const ag_bpe *t, const unsigned char *s,
                       size_t n, bool han_words)
{
    ag__str_map words = {0};
    int64_t *weight = NULL;
    size_t weight_cap = 0;
    int rc = -1;
    for (size_t at = 0; at < n;) {
        size_t len = training_word(s + at, n - at, han_words);
        int32_t w = ag__str_map_find(&words, s + at, len);
        if (w < 0) {
            if (len > INT32_MAX ||
                ag__grow(&weight, &weight_cap, words.count + 1,
                         sizeof *weight) ||
                (w = ag__str_map_add(&words, s + at, len)) < 0)
                goto done;
            weight[w] = 0;
        }
        weight[w]++;
        at += len;
    }
    tr->n_words = words.count;
    tr->ids = ag__malloc((words.chars_len + 1) * sizeof *tr->ids);
    tr->start = ag__malloc((words.count + 1) * sizeof *tr->start);
    tr->len = ag__malloc((words.count + 1) * sizeof *tr->len);
    tr->stamp = ag__malloc((words.count + 1) * sizeof *tr->stamp);
    if (!tr->ids || !tr->start || !tr->len || !tr->stamp) goto done;
    for (size_t w = 0; w < words.count; w++) {
        size_t len;
        const unsigned char *b = ag__str_map_at(&words, (int32_t)w, &len);
        tr->start[w] = words.offset[w];
        tr->len[w] = (int32_t)len;
        tr->stamp[w] = -1;
        for (size_t i = 0; i < len; i++)
            tr->ids[tr->start[w] + i] = t->byte_id[b[i]];
    }
    tr->weight = weight;
    weight = NULL;
    rc = 0;
done:
    ag__free(weight);
    ag__str_map_free(&words);
    return rc;
}

/* Checks ag_bpe_train's arguments but the ones that need the learned
 * tokens. Returns 0 or -1. */
static int check_args(const char *func, const char *text, size_t n,
                      int32_t vocab_size, const char *const *special,
                      int n_special)
{
    if (!text && n > 0) {
        ag__error(func, "text is NULL");
        return -1;
    }
    if (n_special < 0 || (!special && n_special > 0)) {
        ag__error(func,
                  n_special < 0 ? "n_special %d is negative"
                                : "special is NULL with n_special %d",
                  n_special);
        return -1;
    }
    if (vocab_size < 256 || vocab_size - 256 < n_special) {
        ag__error(func,
                  "vocab_size %d is less than the 256 byte tokens and %d "
                  "special tokens",
                  (int)vocab_size, n_special);
        return -1;
    }
    for (int i = 0; i < n_special; i++) {
        const char *why = !special[i]                   ? "is NULL"
                          : !*special[i]                ? "is empty"
                          : !ag__utf8_valid(special[i]) ? "is not valid UTF-8"
                                                        : NULL;
        for (int j = 0; j < i && !why; j++)
            if (!strcmp(special[i], special[j])) why = "is given twice";
        if (why) {
            ag__error(func, "special token %d %s", i, why);
            return -1;
        }
    }
    return 0;
}

/* Appends the special tokens, refusing one whose vocab.json key would be
 * that of a learned token (its text, read as mapped bytes, is a token's
 * bytes). Returns 0 or -1. */
static int add_specials(const char *func, ag_bpe *t,
                        const ag__str_map *token_bytes,
                        const char *const *special, int n_special)
{
    for (int i = 0; i < n_special; i++) {
        size_t len = strlen(special[i]);
        unsigned char *b = ag__malloc(len + 1);
        if (!b) {
            ag__error(func, "out of memory");
            return -1;
        }
        ptrdiff_t blen =
            ag__bpe_unmap((const unsigned char *)special[i], len, b);
        int32_t same =
            blen < 0 ? -1 : ag__str_map_find(token_bytes, b, (size_t)blen);
        ag__free(b);
        if (same >= 0) {
            ag__error(func,
                      "special token \"%s\" is written as the learned token "
                      "%d is",
                      special[i], (int)same);
            return -1;
        }
        if (ag__bpe_add_token(t, func, special[i], len, true) < 0) return -1;
    }
    return 0;
}

static void trainer_free(trainer *tr)
{
    ag__free(tr->ids);
    ag__free(tr->start);
    ag__free(tr->len);
    ag__free(tr->weight);
    ag__free(tr->stamp);
    ag__pair_map_free(&tr->index);
    ag__free(tr->left);
    ag__free(tr->right);
    ag__free(tr->head);
    ag__free(tr->pair_stamp);
    ag__free(tr->count);
    ag__free(tr->old_count);
    ag__free(tr->banned);
    ag__free(tr->node_word);
    ag__free(tr->node_next);
    ag__free(tr->changed);
    ag__free(tr->heap);
    ag__str_map_free(&tr->token_bytes);
}

/* The characters of the chars option, each once, made whole tokens first:
 * most frequent in the training text first, then by their bytes. */
typedef struct {
    const unsigned char *bytes;
    size_t len;
    int64_t count;
} whole_char;

static int whole_char_order(const void *pa, const void *pb)
{
    const whole_char *a = pa, *b = pb;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->bytes, b->bytes, n);
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

/* Makes each of the characters whole a token, through the merges of its
 * prefixes that no token has yet (the lead byte and the next, then that
 * and the next byte, ...), applied to the words; merge numbers from
 * *m on. Returns 0 or -1 (out of memory). */
static int merge_whole_chars(const char *func, trainer *tr, ag_bpe *t,
                             const whole_char *whole, size_t n_whole,
                             int32_t *m)
{
    for (size_t c = 0; c < n_whole; c++) {
        const unsigned char *b = whole[c].bytes;
        int32_t cur = t->byte_id[b[0]];
        for (size_t k = 2; k <= whole[c].len; k++) {
            int32_t next = t->byte_id[b[k - 1]];
            int32_t have = ag__str_map_find(&tr->token_bytes, b, k);
            if (have >= 0) { /* token numbers are token_bytes' numbers */
                cur = have;
                continue;
            }
            int32_t z = ag__bpe_add_token(t, func, b, k, false);
            if (z < 0 || ag__str_map_add(&tr->token_bytes, b, k) < 0 ||
                ag__bpe_add_merge(t, func, cur, next, z))
                return -1;
            int32_t p = ag__pair_map_get(&tr->index, cur, next);
            if (p >= 0 && apply_merge(tr, p, z, *m)) return -1;
            cur = z;
            (*m)++;
        }
    }
    return 0;
}

/* Learns the merges of the whole characters, then more up to n_merges in
 * all, into t. Returns 0 or -1 (out of memory). */
static int learn(const char *func, trainer *tr, ag_bpe *t, int32_t n_merges,
                 const whole_char *whole, size_t n_whole)
{
    for (size_t w = 0; w < tr->n_words; w++) {
        const int32_t *ids = tr->ids + tr->start[w];
        for (int32_t i = 0; i + 1 < tr->len[w]; i++)
            if (add_count(tr, w, ids[i], ids[i + 1], +1, -2)) return -1;
    }
    for (size_t p = 0; p < tr->n_pairs; p++)
        if (tr->count[p] > 0 && push(tr, (int32_t)p)) return -1;
    unsigned char *joined = NULL;
    size_t joined_cap = 0;
    int rc = -1;
    int32_t m = 0;
    if (merge_whole_chars(func, tr, t, whole, n_whole, &m)) goto done;
    while (m < n_merges && tr->heap_n) {
        entry e = pop(tr);
        int32_t p = ag__pair_map_get(&tr->index, e.left, e.right);
        if (tr->banned[p] || tr->count[p] != e.count) continue; /* stale */
        size_t llen, rlen;
        const unsigned char *lb = ag__bpe_token(t, e.left, &llen);
        const unsigned char *rb = ag__bpe_token(t, e.right, &rlen);
        if (ag__grow(&joined, &joined_cap, llen + rlen + 1, 1)) goto done;
        memcpy(joined, lb, llen);
        memcpy(joined + llen, rb, rlen);
        if (ag__str_map_find(&tr->token_bytes, joined, llen + rlen) >= 0) {
            tr->banned[p] = true; /* a second way to make an existing token */
            continue;
        }
        int32_t z = ag__bpe_add_token(t, func, joined, llen + rlen, false);
        if (z < 0 ||
            ag__str_map_add(&tr->token_bytes, joined, llen + rlen) < 0 ||
            ag__bpe_add_merge(t, func, e.left, e.right, z) ||
            apply_merge(tr, p, z, m))
            goto done;
        m++;
    }
    rc = 0;
done:
    ag__free(joined);
    return rc;
}

/* The characters of o->chars of two or more bytes (valid UTF-8; other
 * bytes are skipped), each once, with their counts in the training text,
 * in merge order, into *whole (their bytes in o->chars; NULL for none;
 * free with ag__free). Errors: their merges would leave no room for the
 * special tokens in vocab_size; out of memory. Returns 0 or -1. */
static int whole_chars(const char *func, const ag_bpe_train_options *o,
                       const unsigned char *text, size_t n, whole_char **whole,
                       size_t *n_whole)
{
    *whole = NULL;
    *n_whole = 0;
    ag__str_map set = {0}, prefixes = {0};
    size_t cap = 0;
    const unsigned char *c = (const unsigned char *)o->chars;
    for (size_t at = 0, len; c && at < o->n_chars; at += len) {
        ag__char_at(c + at, o->n_chars - at, &len);
        if (len < 2 || ag__str_map_find(&set, c + at, len) >= 0) continue;
        if (ag__str_map_add(&set, c + at, len) < 0 ||
            ag__grow(whole, &cap, set.count, sizeof **whole))
            goto oom;
        (*whole)[set.count - 1] = (whole_char){c + at, len, 0};
        for (size_t k = 2; k <= len; k++)
            if (ag__str_map_find(&prefixes, c + at, k) < 0 &&
                ag__str_map_add(&prefixes, c + at, k) < 0)
                goto oom;
    }
    int64_t room = (int64_t)o->vocab_size - 256 - o->n_special;
    if ((int64_t)prefixes.count > room) {
        ag__error(func,
                  "the %zu characters of chars need %zu merges, and "
                  "vocab_size %d leaves room for %lld",
                  set.count, prefixes.count, (int)o->vocab_size,
                  (long long)room);
        goto fail;
    }
    for (size_t at = 0, len; set.count && at < n; at += len) {
        ag__char_at(text + at, n - at, &len);
        int32_t i = len < 2 ? -1 : ag__str_map_find(&set, text + at, len);
        if (i >= 0) (*whole)[i].count++;
    }
    *n_whole = set.count;
    if (set.count > 1)
        qsort(*whole, set.count, sizeof **whole, whole_char_order);
    ag__str_map_free(&set);
    ag__str_map_free(&prefixes);
    return 0;
oom:
    ag__error(func, "out of memory");
fail:
    ag__str_map_free(&set);
    ag__str_map_free(&prefixes);
    ag__free(*whole);
    *whole = NULL;
    return -1;
}

static ag_bpe *train(const char *func, const char *text, size_t n,
                     const ag_bpe_train_options *o)
{
    if (check_args(func, text, n, o->vocab_size, o->special, o->n_special))
        return NULL;
    if (!o->chars && o->n_chars > 0) {
        ag__error(func, "chars is NULL with n_chars %zu", o->n_chars);
        return NULL;
    }
    whole_char *whole;
    size_t n_whole;
    if (whole_chars(func, o, (const unsigned char *)text, n, &whole, &n_whole))
        return NULL;
    ag_bpe *t = ag__bpe_new(func);
    if (!t) {
        ag__free(whole);
        return NULL;
    }
    trainer tr = {0};
    bool ok = true;
    for (int i = 0; i < 256 && ok; i++) {
        unsigned char b = ag__bpe_byte_of_id(i);
        ok = ag__bpe_add_token(t, func, &b, 1, false) >= 0 &&
             ag__str_map_add(&tr.token_bytes, &b, 1) >= 0;
    }
    ok = ok &&
         !count_words(&tr, t, (const unsigned char *)text, n,
                      o->han_words != 0) &&
         !learn(func, &tr, t, o->vocab_size - 256 - o->n_special, whole,
                n_whole);
    if (!ok) ag__error(func, "out of memory");
    ok =
        ok && !add_specials(func, t, &tr.token_bytes, o->special, o->n_special);
    trainer_free(&tr);
    ag__free(whole);
    if (!ok) {
        ag_bpe_free(t);
        return NULL;
    }
    return t;
}

ag_bpe *ag_bpe_train(const char *text, size_t n, int32_t vocab_size,
                     const char *const *special, int n_special)
{
    ag_bpe_train_options o = {
        .vocab_size = vocab_size, .special = special, .n_special = n_special};
    return train("ag_bpe_train", text, n, &o);
}

ag_bpe *ag_bpe_train_with(const char *text, size_t n,
                          const ag_bpe_train_options *options)
{
    if (!options) {
        ag__error("ag_bpe_train_with", "options is NULL");
        return NULL;
    }
    return train("ag_bpe_train_with", text, n, options);
}
