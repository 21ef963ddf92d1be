/* tokenizer.c: the byte-level BPE tokenizer's speed (autograd/text.h):
 * training on the given files (concatenated) to a vocabulary, and encoding
 * them on one thread, both the first pass (an empty cache) and later ones.
 * Prints medians over --rounds rounds; with --save DIR it writes the
 * trained tokenizer's vocab.json and merges.txt there and the ids of the
 * text as little-endian int32 to DIR/ids.bin, for bench/run_tokenizer's
 * reference to check and time against. */
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends the file at path to *text (*n bytes so far). Returns 0 or -1. */
static int append_file(const char *path, char **text, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    char buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        char *t = realloc(*text, *n + got);
        if (!t) {
            fclose(f);
            return -1;
        }
        memcpy(t + *n, buf, got);
        *text = t;
        *n += got;
    }
    fclose(f);
    return 0;
}

int main(int argc, char **argv)
{
    int vocab = 4096, rounds = 3;
    const char *save = NULL;
    char *text = NULL;
    size_t n = 0;
    int files = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--vocab") && i + 1 < argc)
            vocab = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--save") && i + 1 < argc)
            save = argv[++i];
        else if (append_file(argv[i], &text, &n))
            return 1;
        else
            files++;
    }
    if (!files || rounds < 1 || rounds > 100) {
        fprintf(stderr, "usage: tokenizer [--vocab V] [--rounds R] [--save "
                        "DIR] FILE...\n");
        return 2;
    }
    const char *special[] = {"<|endoftext|>"};
    double train_s[100], cold_s[100], warm_s[100];
    ag_bpe *t = NULL;
    int64_t count = 0;
    int32_t *ids = NULL;
    for (int r = 0; r < rounds; r++) {
        ag_bpe_free(t);
        double t0 = bench_now_us();
        t = ag_bpe_train(text, n, vocab, special, 1);
        double t1 = bench_now_us();
        if (!t) {
            fprintf(stderr, "%s\n", ag_last_error());
            return 1;
        }
        train_s[r] = (t1 - t0) / 1e6;
        if (!ids) {
            count = ag_bpe_encode(t, text, n, NULL, 0);
            ids = malloc((size_t)(count + 1) * sizeof *ids);
        }
        /* The first encode fills the cache; the second finds it full. */
        for (int pass = 0; pass < 2; pass++) {
            double e0 = bench_now_us();
            int64_t got = ag_bpe_encode(t, text, n, ids, count);
            double e1 = bench_now_us();
            if (got != count) {
                fprintf(stderr, "encode: %s\n", ag_last_error());
                return 1;
            }
            (pass ? warm_s : cold_s)[r] = (e1 - e0) / 1e6;
        }
    }
    double mb = (double)n / 1e6;
    printf("bytes=%zu files=%d vocab=%d tokens=%lld bytes_per_token=%.3f\n", n,
           files, (int)ag_bpe_vocab_size(t), (long long)count,
           (double)n / (double)count);
    printf("train_s=%.3f encode_cold_MBps=%.2f encode_warm_MBps=%.2f\n",
           bench_median(train_s, rounds), mb / bench_median(cold_s, rounds),
           mb / bench_median(warm_s, rounds));
    int rc = 0;
    if (save) {
        char v[4096], m[4096], b[4096];
        snprintf(v, sizeof v, "%s/vocab.json", save);
        snprintf(m, sizeof m, "%s/merges.txt", save);
        snprintf(b, sizeof b, "%s/ids.bin", save);
        FILE *f = NULL;
        if (ag_bpe_save(t, v, m) || !(f = fopen(b, "wb")) ||
            fwrite(ids, sizeof *ids, (size_t)count, f) != (size_t)count) {
            fprintf(stderr, "save: %s\n", f ? b : ag_last_error());
            rc = 1;
        }
        if (f && fclose(f)) rc = 1;
    }
    free(ids);
    free(text);
    ag_bpe_free(t);
    return rc;
}
