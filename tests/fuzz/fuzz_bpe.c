/* fuzz_bpe.c: libFuzzer harness for ag_bpe_load. The input is two files:
 * its first two bytes (little-endian) give the length of vocab.json, which
 * follows; the rest is merges.txt.
 *
 * Checked on every input: no crash or leak; a failure says why
 * (ag_last_error names ag_bpe_load); a tokenizer that loads has every byte
 * as a token, gives every id's bytes, encodes a small text (Chinese,
 * invalid UTF-8, NULs, contractions, runs of spaces) to ids in range, the
 * same ids twice (through its cache), and decodes them back to the text.
 * Seeds: corpus/fuzz_bpe (tests/fuzz/make_corpus.py). */
#include "fuzz.h"

#include <string.h>

static const char sample[] =
    "Hello, world! It's 2024:  \xe4\xb8\xad\xe6\x96\x87 they'll\n\n"
    "\xff\xfe\x00 x\xed\xa0\x80 <|endoftext|>   ";

/* Encodes sample with t (checking the ids) into ids[cap]; their count. */
static int64_t encode_sample(ag_bpe *t, int32_t *ids, int64_t cap)
{
    int64_t n = ag_bpe_encode(t, sample, sizeof sample - 1, ids, cap);
    FUZZ_CHECK(n > 0 && n <= cap, "encode gave %lld ids", (long long)n);
    for (int64_t i = 0; i < n; i++)
        FUZZ_CHECK(ids[i] >= 0 && ids[i] < ag_bpe_vocab_size(t), "id %d",
                   ids[i]);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    size_t vocab_len = (size_t)data[0] | (size_t)data[1] << 8;
    if (vocab_len > size - 2) vocab_len = size - 2;
    const char *vocab = fuzz_file_n(0, data + 2, vocab_len);
    const char *merges =
        fuzz_file_n(1, data + 2 + vocab_len, size - 2 - vocab_len);
    ag_clear_error();
    ag_bpe *t = ag_bpe_load(vocab, merges);
    if (!t) {
        fuzz_check_error("ag_bpe_load");
        fuzz_trace("load failed: %s", ag_last_error());
        return 0;
    }
    int32_t vocab_size = ag_bpe_vocab_size(t);
    fuzz_trace("loaded %d tokens", (int)vocab_size);
    FUZZ_CHECK(vocab_size >= 256, "vocab size %d", (int)vocab_size);
    int bytes_seen[256] = {0};
    for (int32_t id = 0; id < vocab_size; id++) {
        size_t len;
        const char *s = ag_bpe_token_bytes(t, id, &len);
        FUZZ_CHECK(s, "token %d", (int)id);
        if (len == 1) bytes_seen[(unsigned char)s[0]] = 1;
    }
    for (int b = 0; b < 256; b++) FUZZ_CHECK(bytes_seen[b], "byte %d", b);
    int32_t ids[2 * sizeof sample], again[2 * sizeof sample];
    int64_t n = encode_sample(t, ids, 2 * sizeof sample);
    FUZZ_CHECK(encode_sample(t, again, 2 * sizeof sample) == n &&
                   !memcmp(ids, again, (size_t)n * sizeof *ids),
               "the second encoding differs");
    char back[sizeof sample];
    FUZZ_CHECK(ag_bpe_decode(t, ids, n, back, sizeof back) ==
                       (int64_t)sizeof sample - 1 &&
                   !memcmp(back, sample, sizeof sample - 1),
               "the round trip differs");
    ag_bpe_free(t);
    return 0;
}
