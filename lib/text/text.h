/* text.h: what the text layer's files share and users never see: the
 * character classes and the pre-tokenizer, GPT-2's byte-to-unicode mapping,
 * the two hash maps (string -> index, token pair -> value) and the
 * tokenizer's struct. */
#ifndef AG_TEXT_H
#define AG_TEXT_H

#include "../internal.h"

#include "autograd/text.h"

/* ---- characters and words (pretokenize.c) ---- */

/* The classes of GPT-2's pattern: \p{L}, \p{N}, \s, and everything else. */
typedef enum {
    AG__CHAR_OTHER,
    AG__CHAR_LETTER,
    AG__CHAR_NUMBER,
    AG__CHAR_SPACE,
} ag__char_class;

/* Code points first..last (inclusive) are all of class cls. */
typedef struct {
    uint32_t first, last;
    uint8_t cls;
} ag__char_range;

/* The class of the character at s (n > 0 bytes there) and, in *len, its
 * length in bytes: a valid UTF-8 character, or one byte (of class
 * AG__CHAR_OTHER) when s does not start with one. */
ag__char_class ag__char_at(const unsigned char *s, size_t n, size_t *len);

/* The length in bytes of the first word of s[0, n) (n > 0) as GPT-2's
 * pattern splits text (see autograd/text.h); words cover the text. */
size_t ag__next_word(const unsigned char *s, size_t n);

/* ---- GPT-2's bytes_to_unicode (files.c) ---- */

/* The byte of id i (0 <= i < 256) of a trained tokenizer: the printable
 * bytes '!'..'~', 0xA1..0xAC, 0xAE..0xFF, then the others ascending. */
unsigned char ag__bpe_byte_of_id(int i);

/* The code point byte b is written as in vocab.json and merges.txt. */
uint32_t ag__bpe_byte_char(unsigned char b);

/* Decodes the valid UTF-8 s[0, n) as mapped bytes into out (room for n
 * bytes). Returns the number of bytes, or -1 when some character stands
 * for no byte. */
ptrdiff_t ag__bpe_unmap(const unsigned char *s, size_t n, unsigned char *out);

/* ---- hash maps (maps.c) ---- */

/* Grows the ag__malloc'd array *p (a pointer to the array's pointer) of
 * *cap items of `size` bytes to hold at least `need`, doubling. Returns 0,
 * or -1 when out of memory (*p and *cap unchanged). */
int ag__grow(void *p, size_t *cap, size_t need, size_t size);

/* 64-bit hash of n bytes. */
uint64_t ag__hash_bytes(const void *s, size_t n);

/* A set of byte strings, each numbered by the order it was added (0, 1,
 * ...); it keeps copies of them. Zero-initialise; ag__str_map_free. */
typedef struct {
    unsigned char *chars; /* the strings one after the other */
    size_t chars_len, chars_cap;
    size_t *offset;   /* [count + 1]: where string i starts in chars */
    uint64_t *hashes; /* [count] */
    size_t count, cap;
    int32_t *slots; /* [slot_cap]: string numbers, -1 for empty */
    size_t slot_cap;
} ag__str_map;

/* The number of string s[0, n) in m, or -1 when m does not hold it. */
int32_t ag__str_map_find(const ag__str_map *m, const void *s, size_t n);
/* Adds s[0, n), which m must not hold yet, and returns its number, or -1
 * when out of memory (m is then as it was). */
int32_t ag__str_map_add(ag__str_map *m, const void *s, size_t n);
/* String i's bytes and length. */
static inline const unsigned char *ag__str_map_at(const ag__str_map *m,
                                                  int32_t i, size_t *len)
{
    *len = m->offset[i + 1] - m->offset[i];
    return m->chars + m->offset[i];
}
/* Empties m, keeping its memory. */
void ag__str_map_clear(ag__str_map *m);
void ag__str_map_free(ag__str_map *m);

/* A map from a pair of token ids (left, right) to an int32_t value.
 * Zero-initialise; ag__pair_map_free. */
typedef struct {
    uint64_t *keys; /* UINT64_MAX for empty */
    int32_t *values;
    size_t count, cap;
} ag__pair_map;

static inline uint64_t ag__pair_key(int32_t left, int32_t right)
{
    return (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
}
/* The value of (left, right), or -1 when there is none. */
int32_t ag__pair_map_get(const ag__pair_map *m, int32_t left, int32_t right);
/* Sets the value of (left, right). Returns 0, or -1 when out of memory. */
int ag__pair_map_set(ag__pair_map *m, int32_t left, int32_t right,
                     int32_t value);
void ag__pair_map_free(ag__pair_map *m);

/* ---- the tokenizer (bpe.c) ---- */

/* The most words the encoder's cache holds, and the longest word it keeps
 * (in bytes); when full it is emptied. */
#define AG__BPE_CACHE_WORDS 65536
#define AG__BPE_CACHE_WORD_MAX 64

struct ag_bpe {
    int32_t vocab_size;
    unsigned char *bytes; /* token i: bytes[offset[i], offset[i + 1]) */
    size_t *offset;
    size_t bytes_len, bytes_cap, offset_cap;
    bool *special;        /* [vocab_size]: whether token i is special */
    int32_t byte_id[256]; /* the id of each single byte */
    int32_t n_merges;
    int32_t *merge_left, *merge_right, *merge_result; /* by rank */
    size_t merges_cap;
    size_t special_cap;
    ag__pair_map ranks; /* (left, right) -> rank */
    /* The encoder's cache: word i of cache_words encodes to
     * cache_ids[cache_start[i], cache_start[i + 1]). */
    ag__str_map cache_words;
    int32_t *cache_ids;
    size_t *cache_start;
    size_t cache_ids_len, cache_ids_cap, cache_start_cap;
    /* The encoder's working memory for one word. */
    int32_t *work;
    size_t work_cap;
};

/* An empty tokenizer (no tokens), or NULL (out of memory, reported as
 * func). */
ag_bpe *ag__bpe_new(const char *func);

/* Token id's bytes and length. */
static inline const unsigned char *ag__bpe_token(const ag_bpe *t, int32_t id,
                                                 size_t *len)
{
    *len = t->offset[id + 1] - t->offset[id];
    return t->bytes + t->offset[id];
}

/* Appends a token of n bytes at s (special or not). Returns its id, or -1
 * (out of memory, reported as func). */
int32_t ag__bpe_add_token(ag_bpe *t, const char *func, const void *s, size_t n,
                          bool special);

/* Appends the merge (left, right) -> result, of the next rank. Returns 0
 * or -1 (out of memory, reported as func). */
int ag__bpe_add_merge(ag_bpe *t, const char *func, int32_t left, int32_t right,
                      int32_t result);

#endif /* AG_TEXT_H */
