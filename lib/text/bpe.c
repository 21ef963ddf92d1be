/* bpe.c: the byte-level BPE tokenizer's core: building one (tokens and
 * merges), encoding (words from the pre-tokenizer, each merged by rank
 * with a heap, through a bounded cache), decoding and the accessors.
 * Training is in train.c, the files in files.c. */
#include "text.h"

ag_bpe *ag__bpe_new(const char *func)
{
    ag_bpe *t = ag__calloc(1, sizeof *t);
    if (!t) ag__error(func, "out of memory");
    return t;
}

int32_t ag__bpe_add_token(ag_bpe *t, const char *func, const void *s, size_t n,
                          bool special)
{
    size_t count = (size_t)t->vocab_size;
    if (count >= INT32_MAX ||
        ag__grow(&t->offset, &t->offset_cap, count + 2, sizeof *t->offset) ||
        ag__grow(&t->special, &t->special_cap, count + 1, sizeof *t->special) ||
        ag__grow(&t->bytes, &t->bytes_cap, t->bytes_len + n + 1, 1)) {
        ag__error(func, "out of memory");
        return -1;
    }
    t->offset[count] = t->bytes_len;
    if (n) memcpy(t->bytes + t->bytes_len, s, n);
    t->bytes_len += n;
    t->offset[count + 1] = t->bytes_len;
    t->special[count] = special;
    if (n == 1 && !special)
        t->byte_id[*(const unsigned char *)s] = (int32_t)count;
    return t->vocab_size++;
}

int ag__bpe_add_merge(ag_bpe *t, const char *func, int32_t left, int32_t right,
                      int32_t result)
{
    size_t n = (size_t)t->n_merges, cap = t->merges_cap;
    if (ag__grow(&t->merge_left, &cap, n + 1, sizeof(int32_t)) ||
        (cap = t->merges_cap,
         ag__grow(&t->merge_right, &cap, n + 1, sizeof(int32_t))) ||
        (cap = t->merges_cap,
         ag__grow(&t->merge_result, &cap, n + 1, sizeof(int32_t))) ||
        ag__pair_map_set(&t->ranks, left, right, (int32_t)n)) {
        ag__error(func, "out of memory");
        return -1;
    }
    t->merges_cap = cap;
    t->merge_left[n] = left;
    t->merge_right[n] = right;
    t->merge_result[n] = result;
    t->n_merges++;
    return 0;
}

void ag_bpe_free(ag_bpe *t)
{
    if (!t) return;
    ag__free(t->bytes);
    ag__free(t->offset);
    ag__free(t->special);
    ag__free(t->merge_left);
    ag__free(t->merge_right);
    ag__free(t->merge_result);
    ag__pair_map_free(&t->ranks);
    ag__str_map_free(&t->cache_words);
    ag__free(t->cache_ids);
    ag__free(t->cache_start);
    ag__free(t->work);
    ag__free(t);
}

int32_t ag_bpe_vocab_size(const ag_bpe *t)
{
    if (!t) {
        ag__error("ag_bpe_vocab_size", "tokenizer is NULL");
        return -1;
    }
    return t->vocab_size;
}

int32_t ag_bpe_special_id(const ag_bpe *t, const char *name)
{
    if (!t || !name) {
        ag__error("ag_bpe_special_id", "%s is NULL", !t ? "tokenizer" : "name");
        return -1;
    }
    size_t n = strlen(name);
    for (int32_t id = 0; id < t->vocab_size; id++) {
        size_t len;
        const unsigned char *s = ag__bpe_token(t, id, &len);
        if (t->special[id] && len == n && !memcmp(s, name, n)) return id;
    }
    ag__error("ag_bpe_special_id", "no special token \"%s\"", name);
    return -1;
}

const char *ag_bpe_token_bytes(const ag_bpe *t, int32_t id, size_t *len)
{
    if (!t || !len) {
        ag__error("ag_bpe_token_bytes", "%s is NULL", !t ? "tokenizer" : "len");
        return NULL;
    }
    if (id < 0 || id >= t->vocab_size) {
        ag__error("ag_bpe_token_bytes", "id %d is out of range [0, %d)",
                  (int)id, (int)t->vocab_size);
        return NULL;
    }
    return (const char *)ag__bpe_token(t, id, len);
}

int64_t ag_bpe_decode(const ag_bpe *t, const int32_t *ids, int64_t n, char *out,
                      size_t cap)
{
    static const char func[] = "ag_bpe_decode";
    if (!t || (!ids && n > 0) || n < 0 || (!out && cap > 0)) {
        ag__error(func, !t          ? "tokenizer is NULL"
                        : n < 0     ? "negative number of ids"
                        : !ids && n ? "ids is NULL"
                                    : "out is NULL with cap > 0");
        return -1;
    }
    size_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->vocab_size) {
            ag__error(func, "id %d at position %lld is out of range [0, %d)",
                      (int)ids[i], (long long)i, (int)t->vocab_size);
            return -1;
        }
        total += t->offset[ids[i] + 1] - t->offset[ids[i]];
    }
    if (total > INT64_MAX) {
        ag__error(func, "the text is too long");
        return -1;
    }
    size_t at = 0;
    for (int64_t i = 0; i < n && at < cap; i++) {
        size_t len;
        const unsigned char *s = ag__bpe_token(t, ids[i], &len);
        if (len > cap - at) len = cap - at;
        memcpy(out + at, s, len);
        at += len;
    }
    return (int64_t)total;
}

/* ---- encoding ---- */

/* The min-heap of the merges waiting in one word: rank << 32 | position. */
static void heap_push(uint64_t *heap, size_t *n, uint64_t v)
{
    size_t i = (*n)++;
    while (i > 0 && heap[(i - 1) / 2] > v) {
        heap[i] = heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    heap[i] = v;
}

static uint64_t heap_pop(uint64_t *heap, size_t *n)
{
    uint64_t top = heap[0], v = heap[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && heap[c + 1] < heap[c]) c++;
        if (heap[c] >= v) break;
        heap[i] = heap[c];
        i = c;
    }
    if (*n) heap[i] = v;
    return top;
}

/* Pushes the merge of the tokens at positions p and q (q may be the end,
 * len) when there is one. */
static void push_pair(const ag_bpe *t, const int32_t *ids, int32_t p, int32_t q,
                      int32_t len, uint64_t *heap, size_t *n)
{
    if (p < 0 || q >= len) return;
    int32_t rank = ag__pair_map_get(&t->ranks, ids[p], ids[q]);
    if (rank >= 0) heap_push(heap, n, (uint64_t)rank << 32 | (uint32_t)p);
}

/* Encodes the word w[0, len) (0 < len <= INT32_MAX / 4) into t->work, as
 * GPT-2's bpe(): while some adjacent pair has a merge, merge every
 * occurrence of the one of lowest rank, from left to right. Merges of the
 * same rank come out of the heap by position, and a merge's result only
 * takes part in merges of higher ranks (a merge's parts come from earlier
 * merges), so the heap gives the same result. Returns the number of ids,
 * or -1 when out of memory. */
static int64_t encode_word(ag_bpe *t, const unsigned char *w, size_t len)
{
    /* ids, next and prev (int32_t each), then a heap of 3 len entries. */
    size_t need = len * 3 * sizeof(int32_t) + 3 * len * sizeof(uint64_t) + 8;
    size_t cap = t->work_cap;
    if (ag__grow(&t->work, &cap, need / sizeof(int32_t) + 1, sizeof(int32_t)))
        return -1;
    t->work_cap = cap;
    int32_t n = (int32_t)len, *ids = t->work, *next = ids + n, *prev = next + n;
    uint64_t *heap =
        (uint64_t *)(void *)(((uintptr_t)(prev + n) + 7) & ~(uintptr_t)7);
    size_t heap_n = 0;
    for (int32_t i = 0; i < n; i++) {
        ids[i] = t->byte_id[w[i]];
        next[i] = i + 1;
        prev[i] = i - 1;
    }
    for (int32_t i = 0; i + 1 < n; i++)
        push_pair(t, ids, i, i + 1, n, heap, &heap_n);
    while (heap_n) {
        uint64_t top = heap_pop(heap, &heap_n);
        int32_t rank = (int32_t)(top >> 32), p = (int32_t)(uint32_t)top;
        int32_t q = next[p];
        /* Stale: p was merged into its left neighbour (its id is then
         * -1), or the pair at p is no longer the one of this rank. */
        if (ids[p] < 0 || q >= n ||
            ag__pair_map_get(&t->ranks, ids[p], ids[q]) != rank)
            continue;
        ids[p] = t->merge_result[rank];
        ids[q] = -1;
        next[p] = next[q];
        if (next[q] < n) prev[next[q]] = p;
        push_pair(t, ids, prev[p], p, n, heap, &heap_n);
        push_pair(t, ids, p, next[p], n, heap, &heap_n);
    }
    int32_t count = 0;
    for (int32_t i = 0; i < n; i = next[i]) ids[count++] = ids[i];
    return count;
}

/* Adds word w and its ids to the cache (emptied when full); a failure to
 * grow it only leaves the word out. */
static void cache_add(ag_bpe *t, const unsigned char *w, size_t len,
                      const int32_t *ids, size_t n)
{
    if (t->cache_words.count >= AG__BPE_CACHE_WORDS) {
        ag__str_map_clear(&t->cache_words);
        t->cache_ids_len = 0;
    }
    size_t words = t->cache_words.count;
    if (ag__grow(&t->cache_ids, &t->cache_ids_cap, t->cache_ids_len + n,
                 sizeof *t->cache_ids) ||
        ag__grow(&t->cache_start, &t->cache_start_cap, words + 2,
                 sizeof *t->cache_start) ||
        ag__str_map_add(&t->cache_words, w, len) < 0)
        return;
    t->cache_start[0] = 0;
    memcpy(t->cache_ids + t->cache_ids_len, ids, n * sizeof *ids);
    t->cache_ids_len += n;
    t->cache_start[words + 1] = t->cache_ids_len;
}

int64_t ag_bpe_encode(ag_bpe *t, const char *text, size_t n, int32_t *ids,
                      int64_t cap)
{
    static const char func[] = "ag_bpe_encode";
    if (!t || (!text && n > 0) || cap < 0 || (!ids && cap > 0)) {
        ag__error(func, !t           ? "tokenizer is NULL"
                        : !text && n ? "text is NULL"
                        : cap < 0    ? "negative cap"
                                     : "ids is NULL with cap > 0");
        return -1;
    }
    const unsigned char *s = (const unsigned char *)text;
    int64_t total = 0;
    for (size_t at = 0; at < n;) {
        size_t len = ag__next_word(s + at, n - at);
        const unsigned char *w = s + at;
        at += len;
        const int32_t *word_ids;
        int64_t count;
        int32_t hit = len <= AG__BPE_CACHE_WORD_MAX
                          ? ag__str_map_find(&t->cache_words, w, len)
                          : -1;
        if (hit >= 0) {
            word_ids = t->cache_ids + t->cache_start[hit];
            count = (int64_t)(t->cache_start[hit + 1] - t->cache_start[hit]);
        } else {
            if (len > INT32_MAX / 4) { /* an endless word: split it */
                len = INT32_MAX / 4;
                at = (size_t)(w - s) + len;
            }
            count = encode_word(t, w, len);
            if (count < 0) {
                ag__error(func, "out of memory");
                return -1;
            }
            word_ids = t->work;
            if (len <= AG__BPE_CACHE_WORD_MAX)
                cache_add(t, w, len, word_ids, (size_t)count);
        }
        for (int64_t i = 0; i < count && total + i < cap; i++)
            ids[total + i] = word_ids[i];
        total += count;
    }
    return total;
}
