/* bpe.c: the byte-level BPE tokenizer of autograd/text.h (not built yet:
 * every function reports so). */
#include "../internal.h"

#include "autograd/text.h"

#define NOT_BUILT(func) ag__error(func, "not built yet")

ag_bpe *ag_bpe_train(const char *text, size_t n, int32_t vocab_size,
                     const char *const *special, int n_special)
{
    NOT_BUILT("ag_bpe_train");
    return NULL;
}

ag_bpe *ag_bpe_load(const char *vocab_json_path, const char *merges_txt_path)
{
    NOT_BUILT("ag_bpe_load");
    return NULL;
}

int ag_bpe_save(const ag_bpe *t, const char *vocab_json_path,
                const char *merges_txt_path)
{
    NOT_BUILT("ag_bpe_save");
    return -1;
}

void ag_bpe_free(ag_bpe *t) {}

int32_t ag_bpe_vocab_size(const ag_bpe *t)
{
    NOT_BUILT("ag_bpe_vocab_size");
    return -1;
}

int32_t ag_bpe_special_id(const ag_bpe *t, const char *name)
{
    NOT_BUILT("ag_bpe_special_id");
    return -1;
}

int64_t ag_bpe_encode(ag_bpe *t, const char *text, size_t n, int32_t *ids,
                      int64_t cap)
{
    NOT_BUILT("ag_bpe_encode");
    return -1;
}

int64_t ag_bpe_decode(const ag_bpe *t, const int32_t *ids, int64_t n, char *out,
                      size_t cap)
{
    NOT_BUILT("ag_bpe_decode");
    return -1;
}

const char *ag_bpe_token_bytes(const ag_bpe *t, int32_t id, size_t *len)
{
    NOT_BUILT("ag_bpe_token_bytes");
    return NULL;
}
