/* maps.c: the text layer's two hash maps, open addressing with linear
 * probing: byte strings -> their number, and token pairs -> a value. */
#include "text.h"

#include <stdlib.h>

uint64_t ag__hash_bytes(const void *s, size_t n)
{
    /* FNV-1a over 8-byte words, then a final mix (splitmix64's). */
    const unsigned char *p = s;
    uint64_t h = 0xcbf29ce484222325u ^ n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0x100000001b3u;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    h = (h ^ w) * 0x100000001b3u;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9u;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebu;
    return h ^ h >> 31;
}

/* ---- strings ---- */

int32_t ag__str_map_find(const ag__str_map *m, const void *s, size_t n)
{
    if (!m->slot_cap) return -1;
    uint64_t h = ag__hash_bytes(s, n);
    for (size_t i = h & (m->slot_cap - 1);; i = (i + 1) & (m->slot_cap - 1)) {
        int32_t k = m->slots[i];
        if (k < 0) return -1;
        size_t len;
        const unsigned char *str = ag__str_map_at(m, k, &len);
        if (m->hashes[k] == h && len == n && !memcmp(str, s, n)) return k;
    }
}

/* Puts string k in the first free slot of its probe sequence. */
static void place(ag__str_map *m, int32_t k)
{
    size_t i = m->hashes[k] & (m->slot_cap - 1);
    while (m->slots[i] >= 0) i = (i + 1) & (m->slot_cap - 1);
    m->slots[i] = k;
}

int ag__grow(void *p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    if (c > SIZE_MAX / size) return -1;
    void *q = ag__realloc(*(void **)p, c * size);
    if (!q) return -1;
    *(void **)p = q;
    *cap = c;
    return 0;
}

int32_t ag__str_map_add(ag__str_map *m, const void *s, size_t n)
{
    if (m->count >= INT32_MAX) return -1;
    if (m->count == m->cap) { /* offset has cap + 1 items */
        size_t c = m->cap ? m->cap * 2 : 16;
        uint64_t *hashes = ag__realloc(m->hashes, c * sizeof *hashes);
        if (!hashes) return -1;
        m->hashes = hashes;
        size_t *offset = ag__realloc(m->offset, (c + 1) * sizeof *offset);
        if (!offset) return -1;
        if (!m->offset) offset[0] = 0;
        m->offset = offset;
        m->cap = c;
    }
    if (ag__grow(&m->chars, &m->chars_cap, m->chars_len + n + 1, 1)) return -1;
    if ((m->count + 1) * 2 > m->slot_cap) {
        size_t sc = m->slot_cap ? m->slot_cap * 2 : 64;
        int32_t *slots = ag__malloc(sc * sizeof *slots);
        if (!slots) return -1;
        ag__free(m->slots);
        m->slots = slots;
        m->slot_cap = sc;
        memset(slots, 0xff, sc * sizeof *slots);
        for (size_t k = 0; k < m->count; k++) place(m, (int32_t)k);
    }
    int32_t k = (int32_t)m->count++;
    if (n) memcpy(m->chars + m->chars_len, s, n);
    m->chars_len += n;
    m->offset[k + 1] = m->chars_len;
    m->hashes[k] = ag__hash_bytes(s, n);
    place(m, k);
    return k;
}

void ag__str_map_clear(ag__str_map *m)
{
    m->count = 0;
    m->chars_len = 0;
    if (m->slots) memset(m->slots, 0xff, m->slot_cap * sizeof *m->slots);
}

void ag__str_map_free(ag__str_map *m)
{
    ag__free(m->chars);
    ag__free(m->offset);
    ag__free(m->hashes);
    ag__free(m->slots);
    *m = (ag__str_map){0};
}

/* ---- pairs ---- */

static size_t pair_slot(uint64_t key, size_t cap)
{
    key *= 0x9e3779b97f4a7c15u;
    return (size_t)(key >> 32 ^ key) & (cap - 1);
}

int32_t ag__pair_map_get(const ag__pair_map *m, int32_t left, int32_t right)
{
    if (!m->cap) return -1;
    uint64_t key = ag__pair_key(left, right);
    for (size_t i = pair_slot(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key) return m->values[i];
        if (m->keys[i] == UINT64_MAX) return -1;
    }
}

/* Puts key -> value in the first free or matching slot. */
static void pair_put(uint64_t *keys, int32_t *values, size_t cap, uint64_t key,
                     int32_t value, size_t *count)
{
    size_t i = pair_slot(key, cap);
    while (keys[i] != UINT64_MAX && keys[i] != key) i = (i + 1) & (cap - 1);
    if (keys[i] == UINT64_MAX) ++*count;
    keys[i] = key;
    values[i] = value;
}

int ag__pair_map_set(ag__pair_map *m, int32_t left, int32_t right,
                     int32_t value)
{
    if ((m->count + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64, count = 0;
        uint64_t *keys = ag__malloc(cap * sizeof *keys);
        int32_t *values = ag__malloc(cap * sizeof *values);
        if (!keys || !values) {
            ag__free(keys);
            ag__free(values);
            return -1;
        }
        memset(keys, 0xff, cap * sizeof *keys);
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i] != UINT64_MAX)
                pair_put(keys, values, cap, m->keys[i], m->values[i], &count);
        ag__free(m->keys);
        ag__free(m->values);
        m->keys = keys;
        m->values = values;
        m->cap = cap;
        m->count = count;
    }
    pair_put(m->keys, m->values, m->cap, ag__pair_key(left, right), value,
             &m->count);
    return 0;
}

void ag__pair_map_free(ag__pair_map *m)
{
    ag__free(m->keys);
    ag__free(m->values);
    *m = (ag__pair_map){0};
}
