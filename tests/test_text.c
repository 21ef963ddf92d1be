/* test_text.c: the byte-level BPE tokenizer (autograd/text.h). Round trips
 * (random bytes with NULs and invalid UTF-8, committed English and Chinese
 * text); the special tokens' ids; save/load round trips (same encodings,
 * same files); the merges, files and encodings of the Python reference BPE
 * (tests/fixtures/make_bpe_fixture.py -> bpe_fixture.h, bpe/vocab.json,
 * bpe/merges.txt) compared merge for merge, byte for byte and id for id,
 * and so for its training with han_words and chars (bpe_han_fixture.h,
 * bpe/han_vocab.json, bpe/han_merges.txt); the pre-tokenizer on its cases
 * and, word for word, on random texts of tricky characters split by the
 * reference; and every bad input: files missing, truncated or corrupt, ids
 * out of range, NULL arguments, bad training arguments. */
#define _POSIX_C_SOURCE 200809L
#include <autograd.h>

#include "support.h"
#include "text/text.h"
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures/bpe_fixture.h"
#include "fixtures/bpe_han_fixture.h"

#define FIXTURE(name) AG_TEST_FIXTURES "/bpe/" name

static void setup(void)
{
    test_dir_make("ag_text");
    ag_clear_error();
}

static void teardown(void)
{
    test_dir_remove();
}

/* The committed corpus (malloc'd) and its length. */
static unsigned char *corpus(size_t *n)
{
    return read_bytes(FIXTURE("corpus.txt"), n);
}

/* The tokenizer the fixture was made with, trained here. */
static ag_bpe *train_fixture(void)
{
    size_t n;
    unsigned char *text = corpus(&n);
    const char *special[] = {BPE_FIXTURE_SPECIAL, BPE_FIXTURE_SPECIAL2};
    ag_bpe *t =
        ag_bpe_train((const char *)text, n, BPE_FIXTURE_VOCAB_SIZE, special, 2);
    free(text);
    ck_assert_msg(t, "%s", ag_last_error());
    return t;
}

/* Encodes text[0, n) with t (failing the test on error); *count ids,
 * malloc'd. */
static int32_t *encode(ag_bpe *t, const void *text, size_t n, int64_t *count)
{
    int64_t need = ag_bpe_encode(t, text, n, NULL, 0);
    ck_assert_msg(need >= 0, "%s", ag_last_error());
    int32_t *ids = malloc((size_t)(need + 1) * sizeof *ids);
    ck_assert_int_eq(ag_bpe_encode(t, text, n, ids, need), need);
    *count = need;
    return ids;
}

/* Asserts that decode(encode(text)) is text. */
static void expect_round_trip(ag_bpe *t, const void *text, size_t n)
{
    int64_t count;
    int32_t *ids = encode(t, text, n, &count);
    int64_t len = ag_bpe_decode(t, ids, count, NULL, 0);
    ck_assert_int_eq(len, (int64_t)n);
    char *back = malloc(n + 1);
    ck_assert_int_eq(ag_bpe_decode(t, ids, count, back, n), (int64_t)n);
    ck_assert_msg(n == 0 || !memcmp(back, text, n), "round trip differs");
    free(back);
    free(ids);
}

/* Asserts that t encodes text k, text[0, n), to the n_want ids at want. */
static void expect_text_ids(ag_bpe *t, int k, const char *text, size_t n,
                            const int32_t *want, int64_t n_want)
{
    int64_t count;
    int32_t *ids = encode(t, text, n, &count);
    ck_assert_msg(count == n_want, "text %d: %lld ids, want %lld", k,
                  (long long)count, (long long)n_want);
    for (int64_t i = 0; i < count; i++)
        ck_assert_msg(ids[i] == want[i], "text %d, id %lld: %d, want %d", k,
                      (long long)i, ids[i], want[i]);
    expect_round_trip(t, text, n);
    free(ids);
}

/* Asserts that t encodes every fixture text to the fixture's ids. */
static void expect_fixture_ids(ag_bpe *t)
{
    for (int k = 0; k < BPE_FIXTURE_N_TEXTS; k++) {
        size_t start = bpe_fixture_starts[k];
        expect_text_ids(t, k, bpe_fixture_texts[k].text,
                        bpe_fixture_texts[k].len, bpe_fixture_ids + start,
                        (int64_t)(bpe_fixture_starts[k + 1] - start));
    }
}

/* Asserts that t's merges are the n at want, merge i making id 256 + i. */
static void expect_merges(const ag_bpe *t, const int32_t (*want)[2], int n)
{
    ck_assert_int_eq(t->n_merges, n);
    for (int r = 0; r < n; r++) {
        ck_assert_msg(t->merge_left[r] == want[r][0] &&
                          t->merge_right[r] == want[r][1],
                      "merge %d: (%d, %d), want (%d, %d)", r, t->merge_left[r],
                      t->merge_right[r], want[r][0], want[r][1]);
        ck_assert_int_eq(t->merge_result[r], 256 + r);
    }
}

/* Asserts that the files at paths a and b hold the same bytes. */
static void expect_same_file(const char *a, const char *b)
{
    size_t na, nb;
    unsigned char *x = read_bytes(a, &na), *y = read_bytes(b, &nb);
    ck_assert_msg(na == nb && !memcmp(x, y, na), "%s and %s differ", a, b);
    free(x);
    free(y);
}

/* ------------------------------------------------------------------ */
/* The Python reference                                                */
/* ------------------------------------------------------------------ */

START_TEST(test_reference_merges)
{
    ag_bpe *t = train_fixture();
    ck_assert_int_eq(ag_bpe_vocab_size(t), BPE_FIXTURE_VOCAB_SIZE);
    expect_merges(t, bpe_fixture_merges, BPE_FIXTURE_N_MERGES);
    ck_assert_int_eq(ag_bpe_special_id(t, BPE_FIXTURE_SPECIAL),
                     256 + BPE_FIXTURE_N_MERGES);
    ck_assert_int_eq(ag_bpe_special_id(t, BPE_FIXTURE_SPECIAL2),
                     257 + BPE_FIXTURE_N_MERGES);
    ag_bpe_free(t);
}
END_TEST

START_TEST(test_reference_encodings)
{
    ag_bpe *t = train_fixture();
    expect_fixture_ids(t);
    ag_bpe_free(t);
}
END_TEST

START_TEST(test_reference_files)
{
    /* The files written here are the Python script's, byte for byte (the
     * second special token holds what JSON escapes). */
    ag_bpe *t = train_fixture();
    ck_assert_int_eq(
        ag_bpe_save(t, path_of("vocab.json"), path_of("merges.txt")), 0);
    expect_same_file(path_of("vocab.json"), FIXTURE("vocab.json"));
    expect_same_file(path_of("merges.txt"), FIXTURE("merges.txt"));
    ag_bpe_free(t);
    /* And the script's files load into a tokenizer that encodes as it. */
    t = ag_bpe_load(FIXTURE("vocab.json"), FIXTURE("merges.txt"));
    ck_assert_msg(t, "%s", ag_last_error());
    ck_assert_int_eq(ag_bpe_vocab_size(t), BPE_FIXTURE_VOCAB_SIZE);
    ck_assert_int_eq(ag_bpe_special_id(t, BPE_FIXTURE_SPECIAL),
                     BPE_FIXTURE_VOCAB_SIZE - 2);
    ck_assert_int_eq(ag_bpe_special_id(t, BPE_FIXTURE_SPECIAL2),
                     BPE_FIXTURE_VOCAB_SIZE - 1);
    expect_fixture_ids(t);
    ag_bpe_free(t);
}
END_TEST

/* Asserts that t encodes every text of the Han fixture to its ids. */
static void expect_han_fixture_ids(ag_bpe *t)
{
    for (int k = 0; k < BPE_HAN_FIXTURE_N_TEXTS; k++) {
        size_t start = bpe_han_fixture_starts[k];
        expect_text_ids(t, k, bpe_han_fixture_texts[k].text,
                        bpe_han_fixture_texts[k].len,
                        bpe_han_fixture_ids + start,
                        (int64_t)(bpe_han_fixture_starts[k + 1] - start));
    }
}

/* ag_bpe_train_with, han_words and chars, against the reference: the same
 * merges (the whole characters' first, then the learned ones), the same
 * files, and the ids GPT-2's encoder gives with those files, from the
 * tokenizer trained here and from the files loaded. */
START_TEST(test_reference_han)
{
    size_t n;
    unsigned char *text = corpus(&n);
    const char *special[] = {BPE_HAN_FIXTURE_SPECIAL};
    ag_bpe_train_options o = {.vocab_size = BPE_HAN_FIXTURE_VOCAB_SIZE,
                              .special = special,
                              .n_special = 1,
                              .han_words = 1,
                              .chars = BPE_HAN_FIXTURE_CHARS,
                              .n_chars = BPE_HAN_FIXTURE_N_CHARS};
    ag_bpe *t = ag_bpe_train_with((const char *)text, n, &o);
    free(text);
    ck_assert_msg(t, "%s", ag_last_error());
    ck_assert_int_eq(ag_bpe_vocab_size(t), BPE_HAN_FIXTURE_VOCAB_SIZE);
    /* the fixture has learned merges after the whole characters' */
    ck_assert_int_gt(BPE_HAN_FIXTURE_N_MERGES, BPE_HAN_FIXTURE_N_FORCED + 100);
    expect_merges(t, bpe_han_fixture_merges, BPE_HAN_FIXTURE_N_MERGES);
    ck_assert_int_eq(ag_bpe_special_id(t, BPE_HAN_FIXTURE_SPECIAL),
                     BPE_HAN_FIXTURE_VOCAB_SIZE - 1);
    expect_han_fixture_ids(t);
    ck_assert_int_eq(
        ag_bpe_save(t, path_of("vocab.json"), path_of("merges.txt")), 0);
    expect_same_file(path_of("vocab.json"), FIXTURE("han_vocab.json"));
    expect_same_file(path_of("merges.txt"), FIXTURE("han_merges.txt"));
    ag_bpe_free(t);
    t = ag_bpe_load(FIXTURE("han_vocab.json"), FIXTURE("han_merges.txt"));
    ck_assert_msg(t, "%s", ag_last_error());
    expect_han_fixture_ids(t);
    ag_bpe_free(t);
}
END_TEST

START_TEST(test_save_load_round_trip)
{
    size_t n;
    unsigned char *text = corpus(&n);
    const char *special[] = {"<|endoftext|>", "<|pad|>", "\"quoted\"\n\x01"};
    ag_bpe *t = ag_bpe_train((const char *)text, n, 600, special, 3);
    ck_assert_msg(t, "%s", ag_last_error());
    ck_assert_int_eq(ag_bpe_save(t, path_of("v.json"), path_of("m.txt")), 0);
    ck_assert_int_eq(folder_entries(NULL, 0), 2);
    ag_bpe *u = ag_bpe_load(path_of("v.json"), path_of("m.txt"));
    ck_assert_msg(u, "%s", ag_last_error());
    ck_assert_int_eq(ag_bpe_vocab_size(u), ag_bpe_vocab_size(t));
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(ag_bpe_special_id(u, special[i]),
                         ag_bpe_special_id(t, special[i]));
    for (int32_t id = 0; id < ag_bpe_vocab_size(t); id++) {
        size_t la, lb;
        const char *a = ag_bpe_token_bytes(t, id, &la);
        const char *b = ag_bpe_token_bytes(u, id, &lb);
        ck_assert(la == lb && !memcmp(a, b, la));
    }
    int64_t ca, cb;
    int32_t *a = encode(t, text, n, &ca), *b = encode(u, text, n, &cb);
    ck_assert_int_eq(ca, cb);
    ck_assert(!memcmp(a, b, (size_t)ca * sizeof *a));
    ck_assert_int_lt(ca, (int64_t)n / 2); /* the merges compress */
    free(a);
    free(b);
    /* Saving the loaded one writes the same files again. */
    ck_assert_int_eq(ag_bpe_save(u, path_of("v2.json"), path_of("m2.txt")), 0);
    expect_same_file(path_of("v.json"), path_of("v2.json"));
    expect_same_file(path_of("m.txt"), path_of("m2.txt"));
    ag_bpe_free(t);
    ag_bpe_free(u);
    free(text);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Round trips and ids                                                 */
/* ------------------------------------------------------------------ */

/* The length of the Han character at s[0, n) (U+3400-4DBF, U+4E00-9FFF,
 * U+F900-FAFF, U+20000-3FFFF, as autograd/text.h lists them), or 0. */
static size_t han_at(const unsigned char *s, size_t n)
{
    for (size_t k = 1; k < 4 && k < n; k++)
        if ((s[k] & 0xC0) != 0x80) n = k; /* the character ends before */
    uint32_t cp = 0;
    size_t len = 0;
    if (n >= 3 && (s[0] >> 4) == 0xE) {
        cp = (s[0] & 0xFu) << 12 | (s[1] & 0x3Fu) << 6 | (s[2] & 0x3Fu);
        len = 3; /* U+3400 and up: never an overlong form */
    } else if (n >= 4 && (s[0] >> 3) == 0x1E) {
        cp = (s[0] & 0x7u) << 18 | (s[1] & 0x3Fu) << 12 | (s[2] & 0x3Fu) << 6 |
             (s[3] & 0x3Fu);
        len = 4;
        if (cp < 0x10000) cp = 0; /* overlong: not a character */
    }
    bool han =
        (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x4E00 && cp <= 0x9FFF) ||
        (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x20000 && cp <= 0x3FFFF);
    return han ? len : 0;
}

/* The number of tokens of t's encoding of text[0, n) that hold bytes of a
 * Han character and anything outside that character. */
static int64_t tokens_across_han(ag_bpe *t, const unsigned char *text, size_t n)
{
    int64_t count, across = 0;
    int32_t *ids = encode(t, text, n, &count);
    /* han_start[i]: where the Han character holding byte i starts (or
     * SIZE_MAX), han_end[i] where it ends */
    size_t *start = malloc((n + 1) * sizeof *start);
    size_t *end = malloc((n + 1) * sizeof *end);
    ck_assert(start && end);
    for (size_t i = 0; i < n;) {
        size_t len = han_at(text + i, n - i);
        for (size_t k = 0; k < (len ? len : 1); k++)
            start[i + k] = len ? i : SIZE_MAX, end[i + k] = i + len;
        i += len ? len : 1;
    }
    size_t at = 0;
    for (int64_t j = 0; j < count; j++) {
        size_t len;
        ck_assert_ptr_nonnull(ag_bpe_token_bytes(t, ids[j], &len));
        /* every byte of the token in the same Han character, or none */
        for (size_t k = at + 1; k < at + len; k++)
            if (start[k] != start[at]) {
                across++;
                break;
            }
        at += len;
    }
    ck_assert_uint_eq(at, n);
    free(start);
    free(end);
    free(ids);
    return across;
}

START_TEST(test_random_bytes_round_trip)
{
    ag_bpe *t = train_fixture();
    unsigned state = 12345;
    unsigned char buf[4096];
    for (int round = 0; round < 40; round++) {
        size_t n = (size_t)(round * 97 % 4096);
        for (size_t i = 0; i < n; i++) {
            state = state * 1103515245u + 12345u;
            unsigned r = state >> 16;
            /* Mostly random bytes; some rounds mostly ASCII, spaces, NULs
             * and UTF-8 lead bytes, so that words get long. */
            buf[i] = round % 3 == 0 ? (unsigned char)r
                     : round % 3 == 1
                         ? (unsigned char)" a\0\xe4\xb8\xad'\n"[r % 8]
                         : (unsigned char)(r % 4 ? 'a' + r % 3 : r);
        }
        expect_round_trip(t, buf, n);
        /* trained on these bytes with Han words and, as chars, bytes of
         * their own (invalid UTF-8 passed over): a tokenizer, whose tokens
         * never cross a Han character, that round trips them */
        if (round % 8 == 1) {
            ag_bpe_train_options o = {.vocab_size = 700,
                                      .han_words = 1,
                                      .chars = (const char *)buf,
                                      .n_chars = n < 300 ? n : 300};
            ag_bpe *h = ag_bpe_train_with((const char *)buf, n, &o);
            ck_assert_msg(h, "%s", ag_last_error());
            expect_round_trip(h, buf, n);
            ck_assert_int_eq(tokens_across_han(h, buf, n), 0);
            ag_bpe_free(h);
        }
    }
    ag_bpe_free(t);
}
END_TEST

START_TEST(test_text_round_trip)
{
    ag_bpe *t = train_fixture();
    size_t n;
    unsigned char *text = corpus(&n);
    expect_round_trip(t, text, n);
    /* Encoding twice (through the cache) gives the same ids. */
    int64_t ca, cb;
    int32_t *a = encode(t, text, n, &ca), *b = encode(t, text, n, &cb);
    ck_assert_int_eq(ca, cb);
    ck_assert(!memcmp(a, b, (size_t)ca * sizeof *a));
    /* A short buffer gets the first ids, and the count of all. */
    int32_t few[5];
    ck_assert_int_eq(ag_bpe_encode(t, (const char *)text, n, few, 5), ca);
    ck_assert(!memcmp(few, a, sizeof few));
    char part[7];
    ck_assert_int_eq(ag_bpe_decode(t, a, ca, part, sizeof part), (int64_t)n);
    ck_assert(!memcmp(part, text, sizeof part));
    free(a);
    free(b);
    free(text);
    ag_bpe_free(t);
}
END_TEST

/* han_words: trained on the corpus (Chinese runs, 汉字 next to letters),
 * GPT-2's words give tokens of two Han characters or more, Han words none,
 * and the text still round trips. */
START_TEST(test_han_words)
{
    size_t n;
    unsigned char *text = corpus(&n);
    const char *special[] = {"<|endoftext|>"};
    ag_bpe_train_options o = {
        .vocab_size = 700, .special = special, .n_special = 1};
    ag_bpe *words = ag_bpe_train_with((const char *)text, n, &o);
    ck_assert_msg(words, "%s", ag_last_error());
    ck_assert_int_gt(tokens_across_han(words, text, n), 0);
    o.han_words = 1;
    ag_bpe *han = ag_bpe_train_with((const char *)text, n, &o);
    ck_assert_msg(han, "%s", ag_last_error());
    ck_assert_int_eq(tokens_across_han(han, text, n), 0);
    expect_round_trip(han, text, n);
    /* the merges learned from whole Han characters still make them */
    const char *word = "中文";
    int64_t k;
    int32_t *ids = encode(han, word, strlen(word), &k);
    ck_assert_int_eq(k, 2);
    free(ids);
    /* the same vocabulary size, and the special token last */
    ck_assert_int_eq(ag_bpe_vocab_size(han), 700);
    ck_assert_int_eq(ag_bpe_special_id(han, "<|endoftext|>"), 699);
    ag_bpe_free(words);
    ag_bpe_free(han);
    free(text);
}
END_TEST

/* chars: each of its characters of two or more bytes becomes one token
 * through the first merges, the most frequent in the training text first,
 * each prefix that is not a token yet; one byte long characters and
 * invalid bytes need none; a character absent from the text too. */
START_TEST(test_whole_chars)
{
    size_t n;
    unsigned char *text = corpus(&n);
    /* the corpus holds 字 10 times, 中 5, é once, 春 and 龘 never (ties
     * go by bytes); "a", a stray continuation byte and 中 again are passed
     * over */
    const char chars[] = "春中a\x80字龘中é";
    const char *order[] = {"字", "中", "é", "春", "龘"};
    ag_bpe_train_options o = {
        .vocab_size = 300, .chars = chars, .n_chars = sizeof chars - 1};
    ag_bpe *t = ag_bpe_train_with((const char *)text, n, &o);
    ck_assert_msg(t, "%s", ag_last_error());
    /* the expected first merges: each character's prefixes in order */
    int32_t id = 256;
    for (int c = 0; c < 5; c++) {
        size_t len = strlen(order[c]);
        for (size_t k = 2; k <= len; k++) {
            /* a prefix an earlier character made is not made again */
            bool made = false;
            for (int e = 0; e < c; e++)
                made |= strlen(order[e]) >= k && !memcmp(order[e], order[c], k);
            if (made) continue;
            size_t got_len;
            const char *got = ag_bpe_token_bytes(t, id, &got_len);
            ck_assert_msg(got_len == k && !memcmp(got, order[c], k),
                          "token %d is not the %zu-byte prefix of %s", id, k,
                          order[c]);
            id++;
        }
        int64_t count;
        int32_t *ids = encode(t, order[c], len, &count);
        ck_assert_int_eq(count, 1);
        free(ids);
    }
    /* the learned merges follow: one byte pair of the corpus */
    size_t len;
    const char *next = ag_bpe_token_bytes(t, id, &len);
    ck_assert_uint_eq(len, 2);
    bool occurs = false;
    for (size_t i = 0; i + 1 < n && !occurs; i++)
        occurs = !memcmp(text + i, next, 2);
    ck_assert(occurs);
    expect_round_trip(t, text, n);
    ag_bpe_free(t);
    free(text);
}
END_TEST

START_TEST(test_special_ids)
{
    const char *special[] = {"<|endoftext|>", "<|im_start|>"};
    const char text[] = "the quick brown fox jumps over the lazy dog";
    ag_bpe *t = ag_bpe_train(text, sizeof text - 1, 270, special, 2);
    ck_assert_msg(t, "%s", ag_last_error());
    ck_assert_int_eq(ag_bpe_vocab_size(t), 270);
    ck_assert_int_eq(ag_bpe_special_id(t, "<|endoftext|>"), 268);
    ck_assert_int_eq(ag_bpe_special_id(t, "<|im_start|>"), 269);
    ck_assert_int_eq(ag_bpe_special_id(t, "<|nope|>"), -1);
    ck_assert_ptr_nonnull(strstr(ag_last_error(), "<|nope|>"));
    size_t len;
    const char *s = ag_bpe_token_bytes(t, 269, &len);
    ck_assert(len == 12 && !memcmp(s, "<|im_start|>", 12));
    /* The special token's text in a text is encoded as text. */
    int64_t count;
    int32_t *ids = encode(t, "<|endoftext|>", 13, &count);
    for (int64_t i = 0; i < count; i++) ck_assert_int_lt(ids[i], 268);
    free(ids);
    /* Its id decodes to its text. */
    int32_t one = 268;
    char out[32];
    ck_assert_int_eq(ag_bpe_decode(t, &one, 1, out, sizeof out), 13);
    ck_assert(!memcmp(out, "<|endoftext|>", 13));
    /* The byte ids follow bytes_to_unicode: 0 is '!', 188 is 0x00. */
    ck_assert(ag_bpe_token_bytes(t, 0, &len)[0] == '!' && len == 1);
    ck_assert(ag_bpe_token_bytes(t, 188, &len)[0] == 0 && len == 1);
    ck_assert(ag_bpe_token_bytes(t, 255, &len)[0] == (char)0xAD);
    ag_bpe_free(t);
}
END_TEST

START_TEST(test_few_pairs)
{
    /* Training stops when no pair is left: "ab" makes one merge. */
    ag_bpe *t = ag_bpe_train("ab", 2, 1000, NULL, 0);
    ck_assert_msg(t, "%s", ag_last_error());
    ck_assert_int_eq(ag_bpe_vocab_size(t), 257);
    ag_bpe_free(t);
    t = ag_bpe_train(NULL, 0, 300, NULL, 0);
    ck_assert_int_eq(ag_bpe_vocab_size(t), 256);
    ck_assert_int_eq(ag_bpe_encode(t, NULL, 0, NULL, 0), 0);
    ck_assert_int_eq(ag_bpe_decode(t, NULL, 0, NULL, 0), 0);
    ag_bpe_free(t);
}
END_TEST

START_TEST(test_long_word)
{
    /* One word of 200,000 letters (not cached, merged by the heap). */
    size_t n = 200000;
    char *text = malloc(n);
    for (size_t i = 0; i < n; i++) text[i] = "ab"[i % 7 % 2];
    ag_bpe *t = ag_bpe_train(text, n, 300, NULL, 0);
    ck_assert_msg(t, "%s", ag_last_error());
    expect_round_trip(t, text, n);
    int64_t count;
    int32_t *ids = encode(t, text, n, &count);
    ck_assert_int_lt(count, (int64_t)n / 8);
    free(ids);
    ag_bpe_free(t);
    free(text);
}
END_TEST

START_TEST(test_cache_full)
{
    /* More distinct words than the cache holds: it empties and refills,
     * and the ids stay those of tokenizers whose caches never fill (each
     * given a part of the text that starts at a word). */
    size_t words = AG__BPE_CACHE_WORDS + 5000, n = 0, part = 20000;
    char *text = malloc(words * 12);
    size_t *at = malloc((words + 1) * sizeof *at);
    for (size_t i = 0; i < words; i++) {
        at[i] = n;
        text[n++] = ' '; /* " w" and i in base 26 letters: one word */
        text[n++] = 'w';
        for (size_t k = i + 1; k; k /= 26) text[n++] = (char)('a' + k % 26);
    }
    at[words] = n;
    ag_bpe *t = train_fixture();
    int64_t ca, cb;
    int32_t *a = encode(t, text, n, &ca), *b = encode(t, text, n, &cb);
    ck_assert_int_lt(t->cache_words.count, words - part); /* it emptied */
    ck_assert_int_eq(ca, cb);
    ck_assert(!memcmp(a, b, (size_t)ca * sizeof *a));
    int64_t done = 0;
    for (size_t w = 0; w < words; w += part) {
        size_t end = w + part < words ? w + part : words;
        ag_bpe *fresh = train_fixture();
        int64_t cc;
        int32_t *c = encode(fresh, text + at[w], at[end] - at[w], &cc);
        ck_assert_int_le(done + cc, ca);
        ck_assert(!memcmp(c, a + done, (size_t)cc * sizeof *c));
        done += cc;
        free(c);
        ag_bpe_free(fresh);
    }
    ck_assert_int_eq(done, ca);
    expect_round_trip(t, text, n);
    free(a);
    free(b);
    free(at);
    free(text);
    ag_bpe_free(t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The pre-tokenizer                                                   */
/* ------------------------------------------------------------------ */

/* Asserts that text splits into the words of want ("|"-separated). */
static void expect_words(const char *text, const char *want)
{
    char got[256] = "";
    size_t n = strlen(text);
    for (size_t at = 0; at < n;) {
        size_t len = ag__next_word((const unsigned char *)text + at, n - at);
        if (at) strcat(got, "|");
        strncat(got, text + at, len);
        at += len;
    }
    ck_assert_msg(!strcmp(got, want), "\"%s\": \"%s\", want \"%s\"", text, got,
                  want);
}

START_TEST(test_pretokenize_reference)
{
    /* Random texts of tricky characters split as the Python reference's
     * re pattern splits them, word for word. */
    for (int k = 0; k < BPE_FIXTURE_N_SPLITS; k++) {
        const unsigned char *text =
            (const unsigned char *)bpe_fixture_split_texts[k].text;
        size_t n = bpe_fixture_split_texts[k].len, at = 0;
        size_t w = bpe_fixture_split_starts[k];
        for (; at < n; w++) {
            size_t len = ag__next_word(text + at, n - at);
            ck_assert_msg(w < bpe_fixture_split_starts[k + 1] &&
                              len == bpe_fixture_word_lengths[w],
                          "text %d, word %zu at byte %zu: %zu bytes, want %d",
                          k, w - bpe_fixture_split_starts[k], at, len,
                          w < bpe_fixture_split_starts[k + 1]
                              ? (int)bpe_fixture_word_lengths[w]
                              : -1);
            at += len;
        }
        ck_assert_int_eq(w, bpe_fixture_split_starts[k + 1]);
    }
}
END_TEST

START_TEST(test_pretokenize)
{
    expect_words("Hello world", "Hello| world");
    expect_words("it's I'll we've 'RE", "it|'s| I|'ll| we|'ve| '|RE");
    expect_words("a  b   c", "a| | b|  | c");
    expect_words("x\n\ny", "x|\n|\n|y");
    expect_words("end   ", "end|   ");
    expect_words("12345 678", "12345| 678");
    expect_words("a,b!! ?", "a|,|b|!!| ?");
    expect_words("\xe4\xb8\xad\xe6\x96\x87\xef\xbc\x8c", /* 中文， */
                 "\xe4\xb8\xad\xe6\x96\x87|\xef\xbc\x8c");
    expect_words("a\xff\xfe b", "a|\xff\xfe| b");      /* invalid bytes */
    expect_words("\xc2\xa0x", "\xc2\xa0|x");           /* NBSP is a space */
    expect_words("caf\xc3\xa9 na", "caf\xc3\xa9| na"); /* é is a letter */
}
END_TEST

/* ------------------------------------------------------------------ */
/* Bad input                                                           */
/* ------------------------------------------------------------------ */

/* Asserts that the last error holds `part`. */
static void expect_error(const char *part)
{
    ck_assert_msg(strstr(ag_last_error(), part), "error \"%s\" lacks \"%s\"",
                  ag_last_error(), part);
}

/* Writes vocab and merges texts to files and asserts that loading them
 * fails with an error that holds `part`. */
static void expect_load_error(const char *vocab, const char *merges,
                              const char *part)
{
    write_bytes(path_of("bad.json"), vocab, strlen(vocab));
    write_bytes(path_of("bad.txt"), merges, strlen(merges));
    ag_clear_error();
    ck_assert_ptr_null(ag_bpe_load(path_of("bad.json"), path_of("bad.txt")));
    expect_error(part);
}

/* The fixture's vocab.json, with `from` (its first occurrence) replaced
 * by `to` (malloc'd text). */
static char *vocab_with(const char *from, const char *to)
{
    size_t n;
    unsigned char *v = read_bytes(FIXTURE("vocab.json"), &n);
    char *s = malloc(n + strlen(to) + 1);
    memcpy(s, v, n);
    s[n] = 0;
    free(v);
    char *at = strstr(s, from);
    ck_assert_ptr_nonnull(at);
    memmove(at + strlen(to), at + strlen(from), strlen(at + strlen(from)) + 1);
    memcpy(at, to, strlen(to));
    return s;
}

static char *fixture_text(const char *name)
{
    size_t n;
    unsigned char *v = read_bytes(name, &n);
    char *s = realloc(v, n + 1);
    s[n] = 0;
    return s;
}

START_TEST(test_bad_files)
{
    char *vocab = fixture_text(FIXTURE("vocab.json"));
    char *merges = fixture_text(FIXTURE("merges.txt"));
    /* Missing files. */
    ck_assert_ptr_null(
        ag_bpe_load(path_of("none.json"), FIXTURE("merges.txt")));
    expect_error("none.json: cannot open");
    ck_assert_ptr_null(ag_bpe_load(FIXTURE("vocab.json"), path_of("none.txt")));
    expect_error("none.txt: cannot open");
    /* vocab.json truncated, at every length up to a few entries in and
     * at some further ones. */
    size_t vn = strlen(vocab);
    for (size_t cut = 0; cut < vn; cut += cut < 40 ? 1 : 997) {
        char save = vocab[cut];
        vocab[cut] = 0;
        expect_load_error(vocab, merges, "bad.json");
        vocab[cut] = save;
    }
    expect_load_error("{\"a\": 0", merges, "line 1, column");
    /* Bad JSON escapes and other bad JSON. */
    char *v = vocab_with("\"!\": 0", "\"\\x21\": 0");
    expect_load_error(v, merges, "line 1, column");
    free(v);
    v = vocab_with("\"!\": 0", "\"\\ud800\": 0");
    expect_load_error(v, merges, "bad.json: line 1");
    free(v);
    expect_load_error("[1, 2]", merges, "is not a JSON object");
    /* Ids: not an integer, out of range, twice. */
    v = vocab_with("\"!\": 0", "\"!\": \"0\"");
    expect_load_error(v, merges, "\"!\" has an id that is not an integer");
    free(v);
    v = vocab_with("\"!\": 0", "\"!\": 400");
    expect_load_error(v, merges, "not an integer in [0, 400)");
    free(v);
    v = vocab_with("\"!\": 0", "\"!\": 1");
    expect_load_error(v, merges, "has id 1, which \"!\" has already");
    free(v);
    /* A byte missing (its key renamed: now a special token). */
    v = vocab_with("\"!\": 0", "\"!!!\": 0");
    expect_load_error(v, merges, "has no token for byte 0x21 (\"!\")");
    free(v);
    /* merges.txt: no header, a truncated last line, a bad line. */
    expect_load_error(vocab, merges + 1, "line 1: does not start with");
    expect_load_error(vocab, "", "line 1: does not start with");
    size_t mn = strlen(merges);
    merges[mn - 1] = 0;
    expect_load_error(vocab, merges, "does not end with a newline");
    merges[mn - 1] = '\n';
    expect_load_error(vocab, "#version: 0.2", "line 1 does not end");
    expect_load_error(vocab, "#version: 0.2\nh  e\n",
                      "line 2: \"h  e\" is not two");
    expect_load_error(vocab, "#version: 0.2\nhe\n", "is not two tokens");
    expect_load_error(vocab, "#version: 0.2\n\n", "is not two tokens");
    /* Unknown tokens, and a part that no earlier merge makes. */
    expect_load_error(vocab, "#version: 0.2\n\xe4\xb8\xad e\n",
                      "line 2: \"\xe4\xb8\xad\" is neither a byte nor");
    expect_load_error(vocab, "#version: 0.2\nĠt he\n",
                      "line 2: \"Ġt\" is neither a byte nor the result of an "
                      "earlier merge");
    /* A merge twice, and one whose result vocab.json lacks. */
    expect_load_error(vocab, "#version: 0.2\nh e\nh e\n",
                      "line 3: the merge \"h e\" is on line 2 already");
    expect_load_error(vocab, "#version: 0.2\nh e\nq z\n",
                      "line 3: the merge's result \"qz\" is not in");
    /* The same token made twice (" the" from " t" "he" and " " "the"). */
    expect_load_error(vocab, "#version: 0.2\nh e\nĠ t\nt he\nĠt he\nĠ the\n",
                      "line 6: the merge's result \"Ġthe\" is made on line 5 "
                      "already");
    ck_assert_ptr_null(ag_bpe_load(NULL, "x"));
    expect_error("vocab_json_path is NULL");
    free(vocab);
    free(merges);
}
END_TEST

START_TEST(test_bad_arguments)
{
    const char *special[] = {"<|a|>", "<|a|>", NULL, "", "\xff"};
    ck_assert_ptr_null(ag_bpe_train(NULL, 5, 300, NULL, 0));
    expect_error("ag_bpe_train: text is NULL");
    ck_assert_ptr_null(ag_bpe_train("ab", 2, 255, NULL, 0));
    expect_error("vocab_size 255 is less than the 256 byte tokens and 0");
    ck_assert_ptr_null(ag_bpe_train("ab", 2, 257, special, 2));
    expect_error("vocab_size 257 is less than the 256 byte tokens and 2");
    ck_assert_ptr_null(ag_bpe_train("ab", 2, 300, special, -1));
    expect_error("n_special -1 is negative");
    ck_assert_ptr_null(ag_bpe_train("ab", 2, 300, NULL, 1));
    expect_error("special is NULL");
    ck_assert_ptr_null(ag_bpe_train("ab", 2, 300, special, 2));
    expect_error("special token 1 is given twice");
    ck_assert_ptr_null(ag_bpe_train("ab", 2, 300, special + 1, 2));
    expect_error("special token 1 is NULL");
    ck_assert_ptr_null(ag_bpe_train("ab", 2, 300, special + 3, 1));
    expect_error("special token 0 is empty");
    ck_assert_ptr_null(ag_bpe_train("ab", 2, 300, special + 4, 1));
    expect_error("special token 0 is not valid UTF-8");
    /* A special token written as a learned token ("ab") or a byte. */
    const char *ab[] = {"ab"}, *bang[] = {"!"};
    ck_assert_ptr_null(ag_bpe_train("ab", 2, 300, ab, 1));
    expect_error("special token \"ab\" is written as the learned token 256");
    ck_assert_ptr_null(ag_bpe_train("ab", 2, 300, bang, 1));
    expect_error("special token \"!\" is written as the learned token 0");

    ck_assert_ptr_null(ag_bpe_train_with("ab", 2, NULL));
    expect_error("ag_bpe_train_with: options is NULL");
    ag_bpe_train_options o = {.vocab_size = 255};
    ck_assert_ptr_null(ag_bpe_train_with("ab", 2, &o));
    expect_error("ag_bpe_train_with: vocab_size 255 is less than");
    o = (ag_bpe_train_options){.vocab_size = 300, .n_chars = 3};
    ck_assert_ptr_null(ag_bpe_train_with("ab", 2, &o));
    expect_error("ag_bpe_train_with: chars is NULL with n_chars 3");
    /* 中 and 丁 share their first two bytes: three merges */
    o = (ag_bpe_train_options){
        .vocab_size = 258, .chars = "中丁", .n_chars = 6};
    ck_assert_ptr_null(ag_bpe_train_with("ab", 2, &o));
    expect_error("the 2 characters of chars need 3 merges, and vocab_size "
                 "258 leaves room for 2");
    o.vocab_size = 259;
    ag_bpe *fits = ag_bpe_train_with("ab", 2, &o);
    ck_assert_msg(fits, "%s", ag_last_error());
    ck_assert_int_eq(ag_bpe_vocab_size(fits), 259);
    ag_bpe_free(fits);
    ag_bpe *t = ag_bpe_train("ab ab", 5, 300, NULL, 0);
    int32_t ids[4] = {0, 1, 300, -2};
    char out[8];
    size_t len;
    ck_assert_int_eq(ag_bpe_decode(t, ids, 4, out, sizeof out), -1);
    expect_error(
        "ag_bpe_decode: id 300 at position 2 is out of range [0, 258)");
    ck_assert_int_eq(ag_bpe_decode(t, ids + 3, 1, out, sizeof out), -1);
    expect_error("id -2 at position 0");
    ck_assert_int_eq(ag_bpe_decode(NULL, ids, 1, out, 1), -1);
    expect_error("tokenizer is NULL");
    ck_assert_int_eq(ag_bpe_decode(t, NULL, 1, out, 1), -1);
    ck_assert_int_eq(ag_bpe_decode(t, ids, -1, out, 1), -1);
    ck_assert_int_eq(ag_bpe_decode(t, ids, 1, NULL, 1), -1);
    ck_assert_int_eq(ag_bpe_encode(NULL, "a", 1, ids, 4), -1);
    ck_assert_int_eq(ag_bpe_encode(t, NULL, 1, ids, 4), -1);
    expect_error("ag_bpe_encode: text is NULL");
    ck_assert_int_eq(ag_bpe_encode(t, "a", 1, NULL, 4), -1);
    ck_assert_int_eq(ag_bpe_encode(t, "a", 1, ids, -1), -1);
    ck_assert_ptr_null(ag_bpe_token_bytes(t, 258, &len));
    expect_error("ag_bpe_token_bytes: id 258 is out of range [0, 258)");
    ck_assert_ptr_null(ag_bpe_token_bytes(t, 0, NULL));
    ck_assert_ptr_null(ag_bpe_token_bytes(NULL, 0, &len));
    ck_assert_int_eq(ag_bpe_vocab_size(NULL), -1);
    ck_assert_int_eq(ag_bpe_special_id(NULL, "x"), -1);
    ck_assert_int_eq(ag_bpe_special_id(t, NULL), -1);
    ck_assert_int_eq(ag_bpe_save(NULL, "a", "b"), -1);
    ck_assert_int_eq(ag_bpe_save(t, NULL, "b"), -1);
    expect_error("vocab_json_path is NULL");
    ck_assert_int_eq(ag_bpe_save(t, path_of("nodir/v.json"), path_of("m.txt")),
                     -1);
    expect_error("nodir/v.json");
    ck_assert_int_eq(folder_entries(NULL, 0), 0); /* nothing half-written */
    /* A save that cannot write merges.txt leaves vocab.json as it was. */
    ck_assert_int_eq(ag_bpe_save(t, path_of("v.json"), path_of("m.txt")), 0);
    size_t before_len;
    unsigned char *before = read_bytes(path_of("v.json"), &before_len);
    ag_bpe *other = ag_bpe_train("xyz xyz", 7, 300, NULL, 0);
    ck_assert_int_eq(
        ag_bpe_save(other, path_of("v.json"), path_of("nodir/m.txt")), -1);
    expect_error("nodir/m.txt");
    ck_assert_int_eq(folder_entries(NULL, 0), 2);
    size_t after_len;
    unsigned char *after = read_bytes(path_of("v.json"), &after_len);
    ck_assert(before_len == after_len && !memcmp(before, after, after_len));
    free(before);
    free(after);
    ag_bpe_free(other);
    ag_bpe_free(t);
    ag_bpe_free(NULL);
}
END_TEST

START_TEST(test_out_of_memory)
{
    /* Each allocation of a train, a save, a load and an encode failing in
     * turn: an error, no leak, and nothing written. */
    const char text[] = "the cat and the hat, the bat and the mat. 中文 中文";
    const char *special[] = {"<|endoftext|>"};
    for (long k = 1;; k++) {
        ag__fail_allocation(k);
        ag_bpe *t = ag_bpe_train(text, sizeof text - 1, 300, special, 1);
        ag__fail_allocation(0);
        if (t) { /* the k-th allocation was not reached: all were tried */
            ag_bpe_free(t);
            ck_assert_int_gt(k, 20);
            break;
        }
        ck_assert_msg(strstr(ag_last_error(), "out of memory"), "%ld: %s", k,
                      ag_last_error());
    }
    /* the same with Han words and whole characters */
    ag_bpe_train_options o = {.vocab_size = 300,
                              .special = special,
                              .n_special = 1,
                              .han_words = 1,
                              .chars = "中文字é",
                              .n_chars = strlen("中文字é")};
    for (long k = 1;; k++) {
        ag__fail_allocation(k);
        ag_bpe *t = ag_bpe_train_with(text, sizeof text - 1, &o);
        ag__fail_allocation(0);
        if (t) {
            ag_bpe_free(t);
            ck_assert_int_gt(k, 20);
            break;
        }
        ck_assert_msg(strstr(ag_last_error(), "out of memory"), "%ld: %s", k,
                      ag_last_error());
    }
    ag_bpe *t = ag_bpe_train(text, sizeof text - 1, 300, special, 1);
    ck_assert_int_eq(ag_bpe_save(t, path_of("v.json"), path_of("m.txt")), 0);
    for (long k = 1; k < 400; k++) {
        ag__fail_allocation(k);
        ag_bpe *u = ag_bpe_load(path_of("v.json"), path_of("m.txt"));
        ag__fail_allocation(0);
        if (u) {
            ag_bpe_free(u);
        } else {
            ck_assert_msg(strstr(ag_last_error(), "memory"), "%ld: %s", k,
                          ag_last_error());
        }
    }
    for (long k = 1; k < 40; k++) {
        ag_bpe *u = ag_bpe_load(path_of("v.json"), path_of("m.txt"));
        ag__fail_allocation(k);
        int64_t got = ag_bpe_encode(u, text, sizeof text - 1, NULL, 0);
        ag__fail_allocation(0);
        int64_t want = ag_bpe_encode(t, text, sizeof text - 1, NULL, 0);
        ck_assert(got == want || got == -1);
        ag_bpe_free(u);
    }
    ag_bpe_free(t);
}
END_TEST

static Suite *text_suite(void)
{
    Suite *s = suite_create("text");
    TCase *tc = tcase_create("reference");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_reference_merges);
    tcase_add_test(tc, test_reference_encodings);
    tcase_add_test(tc, test_reference_files);
    tcase_add_test(tc, test_reference_han);
    tcase_add_test(tc, test_save_load_round_trip);
    suite_add_tcase(s, tc);

    tc = tcase_create("round trips");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_random_bytes_round_trip);
    tcase_add_test(tc, test_text_round_trip);
    tcase_add_test(tc, test_special_ids);
    tcase_add_test(tc, test_han_words);
    tcase_add_test(tc, test_whole_chars);
    tcase_add_test(tc, test_few_pairs);
    tcase_add_test(tc, test_long_word);
    tcase_add_test(tc, test_cache_full);
    tcase_add_test(tc, test_pretokenize);
    tcase_add_test(tc, test_pretokenize_reference);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_bad_files);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_test(tc, test_out_of_memory);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(text_suite());
}
