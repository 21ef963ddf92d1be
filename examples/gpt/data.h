/* data.h: the text the language model learns from, read from fortune
 * files (entries separated by lines "%"): Debian's English collections
 * (package fortunes) and the Chinese ones (fortunes-zh: "chinese" for
 * pretraining, the Tang poems "tang300" for fine-tuning), their ANSI
 * colour escapes removed, entries joined by "<|endoftext|>", the last
 * share of each file's entries held out for validation; and token files,
 * the corpora encoded once as int32 ids. */
#ifndef EXAMPLES_GPT_DATA_H
#define EXAMPLES_GPT_DATA_H

#include <stddef.h>
#include <stdint.h>

/* The separator between entries, the tokenizer's special token. */
#define LM_EOT "<|endoftext|>"

/* Where fortune files live, and the files of the Chinese collections. */
#define LM_FORTUNE_DIR "/usr/share/games/fortunes"
#define LM_CHINESE LM_FORTUNE_DIR "/chinese"
#define LM_TANG300 LM_FORTUNE_DIR "/tang300"

/* A growing byte string (heap). */
typedef struct {
    char *data;
    size_t len, cap;
} lm_text;

/* A corpus: the training and the validation text, each entry followed by
 * LM_EOT; counts of entries. */
typedef struct {
    lm_text train, val;
    int64_t train_entries, val_entries;
} lm_corpus;

/* Appends n bytes; returns 0, or -1 when out of memory (message on
 * stderr). */
int lm_text_append(lm_text *t, const char *s, size_t n);

/* Frees the bytes; the text is then empty. */
void lm_text_free(lm_text *t);

/* Removes ANSI escape sequences "ESC [ parameters letter" (the colours of
 * tang300: "\033[32m", "\033[m") from s[0..n) in place; returns the new
 * length. */
size_t lm_strip_ansi(char *s, size_t n);

/* Reads the fortune file at path and appends its entries to c: every entry
 * (the lines between lines "%", escapes removed, leading and trailing
 * blank lines dropped; empty entries skipped) followed by LM_EOT, the last
 * ceil(val_share * entries) of them to c->val, the others to c->train.
 * Returns 0, or -1 with a message on stderr naming the file (cannot be
 * read, no entry, not UTF-8 text with a NUL byte). */
int lm_corpus_add_file(lm_corpus *c, const char *path, double val_share);

/* The English collections of Debian's fortunes package: the extension-less
 * files under LM_FORTUNE_DIR that dpkg lists for the package (its
 * /var/lib/dpkg/info/fortunes.list), none under off/ (the offensive ones),
 * sorted by name. Writes at most cap paths (heap strings, freed with
 * lm_paths_free) to paths and returns how many there are, or -1 with a
 * message saying to install fortunes. */
int lm_fortunes_english(char **paths, int cap);

/* Frees n paths of lm_fortunes_english. */
void lm_paths_free(char **paths, int n);

/* Frees both texts. */
void lm_corpus_free(lm_corpus *c);

/* Writes n token ids to path as "LMTOKENS", a little-endian uint64 count
 * and the int32 ids, through a temporary renamed over path. Returns 0, or
 * -1 with a message on stderr. */
int lm_tokens_save(const char *path, const int32_t *ids, int64_t n);

/* Reads a token file into a heap array (*ids, freed by the caller) of *n
 * ids, each checked to be in [0, vocab). Returns 0, or -1 with a message
 * naming the path (missing, truncated, not a token file, an id out of
 * range with its position). */
int lm_tokens_load(const char *path, int64_t vocab, int32_t **ids, int64_t *n);

#endif /* EXAMPLES_GPT_DATA_H */
