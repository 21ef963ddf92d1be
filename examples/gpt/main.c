/* main.c: the `gpt` program, a language model end to end, as the primer
 * tells it: a byte-level BPE tokenizer trained on Debian's fortunes, a GPT
 * (gpt.h) pretrained on them, fine-tuned on the Tang poems, preference
 * tuned by DPO towards the regular five- and seven-character form, and
 * sampled with the KV cache: streaming generation and a chat whose
 * context window is a first-in-first-out queue.
 *
 *   gpt tokenize   train the BPE, encode the corpora into token files
 *   gpt pretrain   train the GPT on the fortunes (resumable)
 *   gpt finetune   continue on tang300 (resumable)
 *   gpt dpo        sample pairs, prefer the regular poem, DPO
 *   gpt generate   stream a continuation of --prompt
 *   gpt chat       a dialogue over stdin
 *
 * Every file lives in --dir (default gpt_out). `gpt help` lists the
 * options. Pretraining and fine-tuning train data parallel over processes
 * with --dist under mpirun (when built with libautograd-dist):
 *
 *   mpirun -np 2 gpt pretrain --dist ...
 *
 * every rank the same model, its own batches; see the "Data parallel
 * training" part below. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, strdup */
#include "data.h"
#include "gpt.h"
#include "lm.h"
#include "plot.h"
#include "poem.h"
#include "progress.h"

#include <autograd.h>
#include <autograd/text.h>
#ifdef AG_EXAMPLE_DIST
#include <autograd/dist.h>
#endif

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Options                                                             */

typedef struct {
    const char *command, *dir, *model, *prompt, *from;
    const char *pretrain_files[64], *finetune_file;
    int n_pretrain_files;
    int64_t vocab, bpe_bytes, threads;
    int64_t han_words, whole_chars; /* tokenize: 0 or 1 */
    uint64_t seed;
    /* model */
    gpt_config cfg;
    bool cfg_given[5]; /* layers, heads, embd, block, dropout asked for */
    /* training */
    int64_t steps, batch, accum, warmup, eval_every, eval_batches, ckpt_every,
        stop_after;
    double lr, min_lr, weight_decay, clip, val_share;
    bool resume, dist; /* --resume, --dist (data parallel) */
    /* sampling */
    double temperature, top_p, beta, nll, margin;
    int64_t top_k, tokens, max_reply, pairs, tries, eval_samples, epochs,
        rounds, samples;
    bool fixed_ref; /* dpo --fixed-ref */
} options;

_Noreturn static void fail(const char *fmt, ...) AG_PRINTF(1, 2);
_Noreturn static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("gpt: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void usage(void)
{
    fputs(
        "usage: gpt COMMAND [options]\n"
        "commands: tokenize pretrain finetune dpo generate chat\n"
        "common:   --dir DIR (gpt_out) --threads N (1) --seed N (1)\n"
        "tokenize: --vocab N (4096) --bpe-bytes N (all) --val-share F (0.05)\n"
        "          --han-words 0|1 (1: each Han character a training word)\n"
        "          --whole-chars 0|1 (1: the fine-tuning text's characters\n"
        "          made whole tokens first)\n"
        "          --pretrain FILE (repeatable; default: fortunes, chinese)\n"
        "          --finetune FILE (tang300)\n"
        "model:    --layers N (4) --heads N (4) --embd N (256) --block N "
        "(128)\n"
        "          --dropout F (0)\n"
        "train:    --steps N --batch N (16) --accum N (1) --lr F --min-lr F\n"
        "          --warmup N --weight-decay F (0.1) --clip F (1)\n"
        "          --eval-every N (100) --eval-batches N (8) --ckpt-every N\n"
        "          --stop-after N (stop there, as if interrupted) --resume\n"
        "          --dist (data parallel under mpirun: --batch per process)\n"
        "          finetune, dpo: --from MODEL\n"
        "dpo:      --pairs N (64, a round) --tries N (titles prompted at "
        "most, 5 per pair)\n"
        "          --samples N (poems a title, 2) --rounds N (1) --epochs N "
        "(2)\n"
        "          --beta F (0.1) --nll F (weight of the chosen's NLL, 0)\n"
        "          --fixed-ref (every round against the fine-tuned model)\n"
        "          --margin F (form scores apart for a pair, 0.2)\n"
        "          --eval-samples N (100) --tokens N (max new tokens, 96)\n"
        "sample:   --model FILE --prompt TEXT --tokens N (200) --temperature "
        "F\n"
        "          (0.8) --top-k N (40) --top-p F (0.95) --max-reply N (120)\n",
        stderr);
}

static int64_t parse_int(const char *name, const char *v, int64_t lo)
{
    char *end;
    errno = 0;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || errno || *end || end == v || x < lo)
        fail("%s: \"%s\" is not a whole number >= %lld", name, v ? v : "",
             (long long)lo);
    return x;
}

static double parse_real(const char *name, const char *v)
{
    char *end;
    double x = v ? strtod(v, &end) : NAN;
    if (!v || *end || end == v || !isfinite(x))
        fail("%s: \"%s\" is not a finite number", name, v ? v : "");
    return x;
}

static options parse(int argc, char **argv)
{
    options o = {.dir = "gpt_out",
                 .vocab = 4096,
                 .threads = 1,
                 .seed = 1,
                 .cfg = {.vocab_size = 0,
                         .block_size = 128,
                         .n_layer = 4,
                         .n_head = 4,
                         .n_embd = 256,
                         .dropout = 0,
                         .bias = true},
                 .batch = 16,
                 .accum = 1,
                 .eval_every = 100,
                 .eval_batches = 8,
                 .weight_decay = 0.1,
                 .clip = 1.0,
                 .val_share = 0.05,
                 .han_words = 1,
                 .whole_chars = 1,
                 .lr = -1,
                 .min_lr = -1,
                 .warmup = -1,
                 .steps = -1,
                 .ckpt_every = -1,
                 .temperature = 0.8,
                 .top_k = 40,
                 .top_p = 0.95,
                 .tokens = -1,
                 .max_reply = 120,
                 .pairs = 64,
                 .epochs = 2,
                 .rounds = 1,
                 .samples = 2,
                 .beta = 0.1,
                 .margin = 0.2,
                 .eval_samples = 100,
                 .finetune_file = LM_TANG300};
    if (argc < 2) {
        usage();
        exit(2);
    }
    o.command = argv[1];
    if (!strcmp(o.command, "help") || !strcmp(o.command, "--help")) {
        usage();
        exit(0);
    }
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(k, "--resume")) {
            o.resume = true;
            continue;
        }
        if (!strcmp(k, "--dist")) {
            o.dist = true;
            continue;
        }
        if (!strcmp(k, "--fixed-ref")) {
            o.fixed_ref = true;
            continue;
        }
        if (!v) fail("%s needs a value (gpt help)", k);
        i++;
        if (!strcmp(k, "--dir"))
            o.dir = v;
        else if (!strcmp(k, "--model"))
            o.model = v;
        else if (!strcmp(k, "--from"))
            o.from = v;
        else if (!strcmp(k, "--prompt"))
            o.prompt = v;
        else if (!strcmp(k, "--pretrain")) {
            if (o.n_pretrain_files == 64) fail("more than 64 --pretrain");
            o.pretrain_files[o.n_pretrain_files++] = v;
        } else if (!strcmp(k, "--finetune"))
            o.finetune_file = v;
        else if (!strcmp(k, "--vocab"))
            o.vocab = parse_int(k, v, 258);
        else if (!strcmp(k, "--bpe-bytes"))
            o.bpe_bytes = parse_int(k, v, 1);
        else if (!strcmp(k, "--han-words"))
            o.han_words = parse_int(k, v, 0) != 0;
        else if (!strcmp(k, "--whole-chars"))
            o.whole_chars = parse_int(k, v, 0) != 0;
        else if (!strcmp(k, "--threads"))
            o.threads = parse_int(k, v, 1);
        else if (!strcmp(k, "--seed"))
            o.seed = (uint64_t)parse_int(k, v, 0);
        else if (!strcmp(k, "--layers"))
            o.cfg.n_layer = parse_int(k, v, 1), o.cfg_given[0] = true;
        else if (!strcmp(k, "--heads"))
            o.cfg.n_head = parse_int(k, v, 1), o.cfg_given[1] = true;
        else if (!strcmp(k, "--embd"))
            o.cfg.n_embd = parse_int(k, v, 1), o.cfg_given[2] = true;
        else if (!strcmp(k, "--block"))
            o.cfg.block_size = parse_int(k, v, 2), o.cfg_given[3] = true;
        else if (!strcmp(k, "--dropout"))
            o.cfg.dropout = parse_real(k, v), o.cfg_given[4] = true;
        else if (!strcmp(k, "--steps"))
            o.steps = parse_int(k, v, 1);
        else if (!strcmp(k, "--batch"))
            o.batch = parse_int(k, v, 1);
        else if (!strcmp(k, "--accum"))
            o.accum = parse_int(k, v, 1);
        else if (!strcmp(k, "--warmup"))
            o.warmup = parse_int(k, v, 0);
        else if (!strcmp(k, "--eval-every"))
            o.eval_every = parse_int(k, v, 1);
        else if (!strcmp(k, "--eval-batches"))
            o.eval_batches = parse_int(k, v, 1);
        else if (!strcmp(k, "--ckpt-every"))
            o.ckpt_every = parse_int(k, v, 1);
        else if (!strcmp(k, "--stop-after"))
            o.stop_after = parse_int(k, v, 1);
        else if (!strcmp(k, "--lr"))
            o.lr = parse_real(k, v);
        else if (!strcmp(k, "--min-lr"))
            o.min_lr = parse_real(k, v);
        else if (!strcmp(k, "--weight-decay"))
            o.weight_decay = parse_real(k, v);
        else if (!strcmp(k, "--clip"))
            o.clip = parse_real(k, v);
        else if (!strcmp(k, "--val-share"))
            o.val_share = parse_real(k, v);
        else if (!strcmp(k, "--temperature"))
            o.temperature = parse_real(k, v);
        else if (!strcmp(k, "--top-k"))
            o.top_k = parse_int(k, v, 0);
        else if (!strcmp(k, "--top-p"))
            o.top_p = parse_real(k, v);
        else if (!strcmp(k, "--tokens"))
            o.tokens = parse_int(k, v, 1);
        else if (!strcmp(k, "--max-reply"))
            o.max_reply = parse_int(k, v, 1);
        else if (!strcmp(k, "--pairs"))
            o.pairs = parse_int(k, v, 1);
        else if (!strcmp(k, "--tries"))
            o.tries = parse_int(k, v, 1);
        else if (!strcmp(k, "--epochs"))
            o.epochs = parse_int(k, v, 1);
        else if (!strcmp(k, "--beta"))
            o.beta = parse_real(k, v);
        else if (!strcmp(k, "--margin"))
            o.margin = parse_real(k, v);
        else if (!strcmp(k, "--nll"))
            o.nll = parse_real(k, v);
        else if (!strcmp(k, "--rounds"))
            o.rounds = parse_int(k, v, 1);
        else if (!strcmp(k, "--samples"))
            o.samples = parse_int(k, v, 2);
        else if (!strcmp(k, "--eval-samples"))
            o.eval_samples = parse_int(k, v, 1);
        else
            fail("unknown option %s (gpt help)", k);
    }
    if (!(o.val_share > 0 && o.val_share < 1))
        fail("--val-share %g outside (0, 1)", o.val_share);
    if (ag_set_num_threads((int)o.threads) < 0) fail("%s", ag_last_error());
    return o;
}

static const char *path_in(const options *o, const char *name)
{
    static char buf[8][4096];
    static int next;
    char *p = buf[next++ % 8];
    if (snprintf(p, 4096, "%s/%s", o->dir, name) >= 4096)
        fail("path too long: %s/%s", o->dir, name);
    return p;
}

/* "<dir>/<name>" into out (4096 bytes), or a failure when it is longer. */
static char *join(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, 4096, "%s/%s", dir, name);
    if (n < 0 || n >= 4096) fail("path too long: %s/%s", dir, name);
    return out;
}

static void make_dir(const char *dir)
{
    if (mkdir(dir, 0777) && errno != EEXIST)
        fail("cannot make %s: %s", dir, strerror(errno));
}

/* ------------------------------------------------------------------ */
/* Tokenizer                                                           */

static ag_bpe *load_tokenizer(const options *o)
{
    ag_bpe *t = ag_bpe_load(path_in(o, "vocab.json"), path_in(o, "merges.txt"));
    if (!t) fail("%s (run gpt tokenize --dir %s)", ag_last_error(), o->dir);
    if (ag_bpe_special_id(t, LM_EOT) < 0)
        fail("%s: the tokenizer has no %s token", path_in(o, "vocab.json"),
             LM_EOT);
    return t;
}

/* Encodes text[0..n) into a heap array; returns the count. */
static int64_t encode(ag_bpe *t, const char *text, size_t n, int32_t **ids)
{
    int64_t need = ag_bpe_encode(t, text, n, NULL, 0);
    if (need < 0) fail("%s", ag_last_error());
    *ids = malloc((size_t)(need > 0 ? need : 1) * sizeof **ids);
    if (!*ids) fail("out of memory for %lld tokens", (long long)need);
    if (ag_bpe_encode(t, text, n, *ids, need) != need)
        fail("%s", ag_last_error());
    return need;
}

/* Encodes a corpus: the text between the separators LM_EOT as ordinary
 * text, each separator as the special token (ag_bpe_encode reads the
 * separator's text as ordinary text), into a heap array; returns the
 * count. */
static int64_t encode_corpus(ag_bpe *t, const char *text, size_t n,
                             int32_t **ids)
{
    const size_t sep = strlen(LM_EOT);
    int32_t eot = ag_bpe_special_id(t, LM_EOT);
    int64_t total = 0, cap = 0;
    *ids = NULL;
    for (int pass = 0; pass < 2; pass++) {
        total = 0;
        for (size_t at = 0; at < n;) {
            const char *next = strstr(text + at, LM_EOT);
            size_t end = next ? (size_t)(next - text) : n;
            int64_t got = ag_bpe_encode(t, text + at, end - at,
                                        pass ? *ids + total : NULL,
                                        pass ? cap - total : 0);
            if (got < 0) fail("%s", ag_last_error());
            total += got;
            if (next) {
                if (pass) (*ids)[total] = eot;
                total++;
            }
            at = next ? end + sep : n;
        }
        if (pass == 0) {
            cap = total;
            *ids = malloc((size_t)(cap > 0 ? cap : 1) * sizeof **ids);
            if (!*ids) fail("out of memory for %lld tokens", (long long)cap);
        }
    }
    return total;
}

static double mb_per_s(size_t bytes, double seconds)
{
    return seconds > 0 ? (double)bytes / 1e6 / seconds : 0;
}

static void encode_to_file(const options *o, ag_bpe *t, const lm_text *text,
                           const char *name)
{
    double t0 = progress_now();
    int32_t *ids;
    int64_t n = encode_corpus(t, text->data ? text->data : "", text->len, &ids);
    double dt = progress_now() - t0;
    if (lm_tokens_save(path_in(o, name), ids, n)) exit(1);
    printf("%-18s %9zu bytes -> %8lld tokens (%.2f bytes/token) in %.1f s, "
           "%.2f MB/s\n",
           name, text->len, (long long)n, n ? (double)text->len / n : 0, dt,
           mb_per_s(text->len, dt));
    free(ids);
}

static void read_corpora(const options *o, lm_corpus *pre, lm_corpus *fine)
{
    char *english[256];
    int n_english = 0;
    if (o->n_pretrain_files == 0) {
        n_english = lm_fortunes_english(english, 256);
        if (n_english < 0) exit(1);
        for (int i = 0; i < n_english; i++)
            if (lm_corpus_add_file(pre, english[i], o->val_share)) exit(1);
        if (lm_corpus_add_file(pre, LM_CHINESE, o->val_share)) exit(1);
    }
    for (int i = 0; i < o->n_pretrain_files; i++)
        if (lm_corpus_add_file(pre, o->pretrain_files[i], o->val_share))
            exit(1);
    if (lm_corpus_add_file(fine, o->finetune_file, o->val_share)) exit(1);
    printf("pretraining: %d English collections%s, %lld + %lld entries, "
           "%.2f MB\n",
           n_english, o->n_pretrain_files ? " (given files)" : " + chinese",
           (long long)pre->train_entries, (long long)pre->val_entries,
           (double)(pre->train.len + pre->val.len) / 1e6);
    printf("fine-tuning: %s, %lld + %lld entries, %.2f MB\n", o->finetune_file,
           (long long)fine->train_entries, (long long)fine->val_entries,
           (double)(fine->train.len + fine->val.len) / 1e6);
    lm_paths_free(english, n_english);
}

/* The share of the non-ASCII characters of text[0, n) (valid UTF-8 ones
 * and stray bytes alike, counted where they occur) that t encodes, each
 * alone, to one token; their count in *chars. */
static double whole_char_share(ag_bpe *t, const char *text, size_t n,
                               int64_t *chars)
{
    const unsigned char *u = (const unsigned char *)text;
    int64_t whole = 0;
    *chars = 0;
    for (size_t at = 0, len; at < n; at += len) {
        len = u[at] < 0x80         ? 1
              : (u[at] >> 5) == 6  ? 2
              : (u[at] >> 4) == 14 ? 3
              : (u[at] >> 3) == 30 ? 4
                                   : 1;
        if (at + len > n) len = 1;
        if (u[at] < 0x80) continue;
        (*chars)++;
        whole += ag_bpe_encode(t, text + at, len, NULL, 0) == 1;
    }
    return *chars ? (double)whole / (double)*chars : 1;
}

static int cmd_tokenize(const options *o)
{
    lm_corpus pre = {0}, fine = {0};
    read_corpora(o, &pre, &fine);
    make_dir(o->dir);
    size_t n = pre.train.len;
    if (o->bpe_bytes > 0 && (size_t)o->bpe_bytes < n) n = (size_t)o->bpe_bytes;
    const char *special[] = {LM_EOT};
    double t0 = progress_now();
    ag_bpe_train_options bpe = {.vocab_size = (int32_t)o->vocab,
                                .special = special,
                                .n_special = 1,
                                .han_words = (int)o->han_words,
                                .chars =
                                    o->whole_chars ? fine.train.data : NULL,
                                .n_chars = o->whole_chars ? fine.train.len : 0};
    ag_bpe *t = ag_bpe_train_with(pre.train.data, n, &bpe);
    if (!t) fail("%s", ag_last_error());
    double dt = progress_now() - t0;
    printf("BPE: vocabulary %lld trained on %.2f MB in %.1f s (%.2f MB/s)\n",
           (long long)ag_bpe_vocab_size(t), (double)n / 1e6, dt,
           mb_per_s(n, dt));
    if (ag_bpe_save(t, path_in(o, "vocab.json"), path_in(o, "merges.txt")))
        fail("%s", ag_last_error());
    printf("saved %s and %s\n", path_in(o, "vocab.json"),
           path_in(o, "merges.txt"));
    int64_t chars;
    double share = whole_char_share(t, fine.train.data ? fine.train.data : "",
                                    fine.train.len, &chars);
    printf("fine-tuning text: %.1f%% of its %lld non-ASCII characters are "
           "one token each\n",
           100 * share, (long long)chars);
    encode_to_file(o, t, &pre.train, "pretrain_train.tok");
    encode_to_file(o, t, &pre.val, "pretrain_val.tok");
    encode_to_file(o, t, &fine.train, "finetune_train.tok");
    encode_to_file(o, t, &fine.val, "finetune_val.tok");
    ag_bpe_free(t);
    lm_corpus_free(&pre);
    lm_corpus_free(&fine);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Models                                                              */

static gpt *load_model(ag_arena *a, const char *path, double dropout)
{
    gpt_config c;
    if (gpt_read_config(path, &c)) fail("%s", ag_last_error());
    c.dropout = dropout;
    gpt *m = gpt_new(a, AG_F32, &c, 1);
    if (!m || gpt_load(m, path)) fail("%s", ag_last_error());
    return m;
}

static void check_vocab(const ag_bpe *t, const gpt *m, const char *path)
{
    int64_t v = ag_bpe_vocab_size(t), mv = gpt_get_config(m)->vocab_size;
    if (v != mv)
        fail("%s: a model of vocabulary %lld, the tokenizer has %lld", path,
             (long long)mv, (long long)v);
}

/* The newest model of the pipeline in --dir, or --model. */
static const char *default_model(const options *o)
{
    if (o->model) return o->model;
    const char *names[] = {"dpo.safetensors", "finetune.ckpt/model.safetensors",
                           "pretrain.ckpt/model.safetensors"};
    for (int i = 0; i < 3; i++)
        if (access(path_in(o, names[i]), R_OK) == 0)
            return path_in(o, names[i]);
    fail("no model in %s (run gpt pretrain, or give --model)", o->dir);
}

/* ------------------------------------------------------------------ */
/* Data parallel training (--dist)                                     */

/* The processes of a --dist run (rank 0 of 1 without it): each trains the
 * same model (rank 0's, copied by ag_ddp_new) on its own batches (its data
 * rng seeded by its rank), the gradients averaged over the ranks by
 * ag_ddp_backward (not on the accumulation micro-steps, sync off), so that
 * a step is one process's step on world x --batch rows. Rank 0 alone
 * prints (the others' stdout goes to /dev/null) and writes the
 * checkpoints while the others wait; validation splits its batches over
 * the ranks and adds them up, the same loss on every rank. A rank that
 * fails exits, and mpirun ends the job. */
typedef struct {
    int rank, world;
#ifdef AG_EXAMPLE_DIST
    ag_dist *dist;
    ag_ddp *ddp;
#endif
} dist_job;
static dist_job job = {.rank = 0, .world = 1};

/* Starts the job for --dist (pretrain and finetune only; resume refused:
 * the checkpoint holds rank 0's data rng alone). Training under mpirun
 * without --dist is refused too. */
static void dist_start(const options *o)
{
    const char *procs = getenv("OMPI_COMM_WORLD_SIZE");
    bool trains =
        !strcmp(o->command, "pretrain") || !strcmp(o->command, "finetune");
    if (!o->dist && trains && procs && atoi(procs) > 1)
        fail("%s under mpirun with %s processes but without --dist: each "
             "would train alone and write the same files (add --dist)",
             o->command, procs);
    if (!o->dist) return;
    if (!trains)
        fail("--dist: %s does not train data parallel (pretrain and "
             "finetune do)",
             o->command);
    if (o->resume)
        fail("--dist --resume: a data parallel run cannot be resumed (its "
             "checkpoint holds rank 0's data rng alone); start it again");
#ifdef AG_EXAMPLE_DIST
    job.dist = ag_dist_init(NULL, NULL, NULL);
    if (!job.dist) fail("--dist: %s", ag_last_error());
    job.rank = ag_dist_rank(job.dist), job.world = ag_dist_size(job.dist);
    if (job.rank != 0 && !freopen("/dev/null", "w", stdout))
        fail("rank %d: cannot silence stdout: %s", job.rank, strerror(errno));
#else
    fail("--dist needs libautograd-dist, which was not built (no MPI found)");
#endif
}

/* Ends the job (waiting for every rank). */
static void dist_end(void)
{
#ifdef AG_EXAMPLE_DIST
    ag_dist_finalize(job.dist);
    job.dist = NULL;
#endif
}

/* Every rank takes rank 0's values of the trainable parameters `all` (the
 * ddp lives in the model's arena a). */
static void dist_attach(ag_arena *a, ag_params *all)
{
#ifdef AG_EXAMPLE_DIST
    if (job.dist && !(job.ddp = ag_ddp_new(a, job.dist, all, NULL, NULL)))
        fail("%s", ag_last_error());
#else
    (void)a, (void)all;
#endif
}

/* The backward pass of a micro-step; with sync (the last of a step) the
 * gradients are then averaged over the ranks. */
static void dist_backward(ag_tensor *loss, bool sync)
{
#ifdef AG_EXAMPLE_DIST
    if (job.ddp) {
        ag_ddp_set_sync(job.ddp, sync);
        if (ag_ddp_backward(job.ddp, loss)) fail("%s", ag_last_error());
        return;
    }
#else
    (void)sync;
#endif
    if (!loss || ag_backward(loss)) fail("%s", ag_last_error());
}

/* The sum of x over the ranks (x itself on one process). */
static double dist_sum(double x)
{
#ifdef AG_EXAMPLE_DIST
    if (job.dist) {
        ag_arena *a = ag_arena_new();
        ag_tensor *t = ag_from_data(a, AG_F64, 1, (const int64_t[]){1}, &x);
        if (!t || ag_dist_allreduce(job.dist, t, false))
            fail("%s", ag_last_error());
        x = ag_item(t);
        ag_arena_free(a);
    }
#endif
    return x;
}

/* Waits for every rank (after rank 0's checkpoint). */
static void dist_wait(void)
{
#ifdef AG_EXAMPLE_DIST
    if (job.dist && ag_dist_check(job.dist, 0)) fail("%s", ag_last_error());
#endif
}

/* ------------------------------------------------------------------ */
/* Training (pretraining and fine-tuning)                              */

typedef struct {
    const char *name; /* "pretrain" or "finetune" */
    const int32_t *train, *val;
    int64_t n_train, n_val;
    gpt *model;
    ag_params *decay, *no_decay, *all;
    ag_optimizer *opt_decay, *opt_no_decay;
    int64_t step;                  /* steps done */
    ag_rng data_rng;               /* draws the batches' offsets */
    double *train_loss, *val_loss; /* per step; NaN where not measured */
    int32_t *batch_x, *batch_y;
} trainer;

/* B rows of T tokens at offsets drawn from rng (x) and the next tokens (y),
 * as nanoGPT's get_batch. */
static void draw_batch(const int32_t *data, int64_t n, int64_t b, int64_t t,
                       ag_rng *rng, int32_t *x, int32_t *y)
{
    for (int64_t r = 0; r < b; r++) {
        int64_t at = (int64_t)(ag_rng_uniform(rng) * (double)(n - t - 1));
        memcpy(x + r * t, data + at, (size_t)t * sizeof *x);
        memcpy(y + r * t, data + at + 1, (size_t)t * sizeof *y);
    }
}

/* The mean loss over `batches` batches of b rows at evenly spaced offsets
 * of data (the same every time), in evaluation mode without a graph.
 * Under --dist, the rows of one process with batches of world x b: world x
 * `batches` batches of b, each rank measuring every world-th, the sums
 * added up (the same loss on every rank). */
static double evaluate(gpt *m, const int32_t *data, int64_t n, int64_t b,
                       int64_t batches, int32_t *x, int32_t *y)
{
    const gpt_config *c = gpt_get_config(m);
    int64_t t = c->block_size < n - 1 ? c->block_size : n - 1;
    ag_arena *step = ag_arena_new();
    bool was = ag_module_is_training(gpt_module(m));
    ag_module_set_training(gpt_module(m), false);
    bool grad = ag_set_grad_enabled(false);
    double sum = 0;
    batches *= job.world;
    int64_t rows = b * batches, shape[2] = {b, t};
    for (int64_t k = job.rank; k < batches; k += job.world) {
        for (int64_t r = 0; r < b; r++) {
            int64_t at = (k * b + r) * (n - t - 1) / rows;
            memcpy(x + r * t, data + at, (size_t)t * sizeof *x);
            memcpy(y + r * t, data + at + 1, (size_t)t * sizeof *y);
        }
        ag_tensor *loss =
            gpt_loss(m, step, ag_from_data(step, AG_I32, 2, shape, x),
                     ag_from_data(step, AG_I32, 2, shape, y));
        if (!loss) fail("%s", ag_last_error());
        sum += ag_item(loss);
        ag_arena_reset(step);
    }
    ag_set_grad_enabled(grad);
    ag_module_set_training(gpt_module(m), was);
    ag_arena_free(step);
    return dist_sum(sum) / (double)batches;
}

/* Weight decay on the matrices (every parameter of 2 or more dimensions:
 * the Linear weights and the embeddings, as nanoGPT's
 * configure_optimizers), none on biases and LayerNorm. */
static void make_optimizers(ag_arena *a, trainer *tr, const options *o)
{
    tr->all = ag_module_parameters(gpt_module(tr->model));
    tr->decay = ag_params_new(a);
    tr->no_decay = ag_params_new(a);
    for (int i = 0; i < ag_params_count(tr->all); i++) {
        ag_tensor *p = ag_params_tensor(tr->all, i);
        if (ag_params_add(ag_ndim(p) >= 2 ? tr->decay : tr->no_decay,
                          ag_params_name(tr->all, i), p))
            fail("%s", ag_last_error());
    }
    ag_adam_options ao = ag_adamw_defaults();
    ao.lr = o->lr, ao.beta2 = 0.95, ao.weight_decay = o->weight_decay;
    tr->opt_decay = ag_adamw_new(a, tr->decay, &ao);
    ao.weight_decay = 0;
    tr->opt_no_decay = ag_adamw_new(a, tr->no_decay, &ao);
    if (!tr->opt_decay || !tr->opt_no_decay) fail("%s", ag_last_error());
}

/* The checkpoint folder <dir>/<name>.ckpt: model.safetensors,
 * adamw_decay.safetensors, adamw_no_decay.safetensors and
 * state.safetensors (the step, the data rng, the loss history, the
 * training options). Written as a new folder <name>.ckpt.tmp.XXXXXX and
 * renamed over the old one, so a crash leaves the previous checkpoint. */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(dir);
}

/* The training options a checkpoint must agree with to be resumed. */
static void training_metadata(const options *o, char vals[][64])
{
    snprintf(vals[8], 64, "%d", job.world);
    snprintf(vals[0], 64, "%lld", (long long)o->steps);
    snprintf(vals[1], 64, "%lld", (long long)o->batch);
    snprintf(vals[2], 64, "%lld", (long long)o->accum);
    snprintf(vals[3], 64, "%.17g", o->lr);
    snprintf(vals[4], 64, "%.17g", o->min_lr);
    snprintf(vals[5], 64, "%lld", (long long)o->warmup);
    snprintf(vals[6], 64, "%.17g", o->weight_decay);
    snprintf(vals[7], 64, "%.17g", o->clip);
}
#define N_TRAINING_KEYS 9
static const char *const TRAINING_KEYS[N_TRAINING_KEYS] = {
    "steps",  "batch",        "accum", "lr",   "min_lr",
    "warmup", "weight_decay", "clip",  "world"};

static void save_checkpoint(const options *o, trainer *tr)
{
    char final[4096], tmp[4096], old[4096], p[4096];
    snprintf(final, sizeof final, "%s", path_in(o, tr->name));
    strncat(final, ".ckpt", sizeof final - strlen(final) - 1);
    snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", final);
    snprintf(old, sizeof old, "%s.old", final);
    if (!mkdtemp(tmp)) fail("cannot make %s: %s", tmp, strerror(errno));
#define IN_TMP(name) join(p, tmp, name)
    ag_arena *a = ag_arena_new();
    ag_params *state = ag_params_new(a);
    int64_t n = o->steps, shape1[1] = {n}, one[1] = {1};
    double stepd = (double)tr->step;
    ag_params_add(state, "step", ag_from_data(a, AG_F64, 1, one, &stepd));
    ag_params_add(state, "train_loss",
                  ag_from_data(a, AG_F64, 1, shape1, tr->train_loss));
    ag_params_add(state, "val_loss",
                  ag_from_data(a, AG_F64, 1, shape1, tr->val_loss));
    char vals[N_TRAINING_KEYS][64], rng[8][32], stepv[32];
    training_metadata(o, vals);
    const char *meta[2 * (N_TRAINING_KEYS + 9) + 1];
    int k = 0;
    for (int i = 0; i < N_TRAINING_KEYS; i++)
        meta[k++] = TRAINING_KEYS[i], meta[k++] = vals[i];
    /* the generators of the batches and of the dropout masks */
    const ag_rng *dropout = gpt_dropout_rng(tr->model);
    for (int i = 0; i < 8; i++) {
        snprintf(rng[i], sizeof rng[i], "%" PRIu64,
                 i < 4 ? tr->data_rng.s[i] : dropout->s[i - 4]);
        static const char *const names[8] = {
            "rng0", "rng1", "rng2", "rng3", "drop0", "drop1", "drop2", "drop3"};
        meta[k++] = names[i], meta[k++] = rng[i];
    }
    snprintf(stepv, sizeof stepv, "%lld", (long long)tr->step);
    meta[k++] = "done", meta[k++] = stepv;
    meta[k] = NULL;
    bool ok =
        gpt_save(tr->model, IN_TMP("model.safetensors")) == 0 &&
        ag_optimizer_save(tr->opt_decay, IN_TMP("adamw_decay.safetensors")) ==
            0 &&
        ag_optimizer_save(tr->opt_no_decay,
                          IN_TMP("adamw_no_decay.safetensors")) == 0 &&
        ag_save_safetensors(IN_TMP("state.safetensors"), state, meta) == 0;
#undef IN_TMP
    ag_arena_free(a);
    if (!ok) {
        remove_dir(tmp);
        fail("checkpoint not written (the previous one is kept): %s",
             ag_last_error());
    }
    remove_dir(old);
    if (rename(final, old) && errno != ENOENT)
        fail("cannot move %s aside: %s", final, strerror(errno));
    if (rename(tmp, final)) fail("cannot rename %s: %s", tmp, strerror(errno));
    remove_dir(old);
}

static const char *meta_get(const char *const *meta, const char *key)
{
    for (int i = 0; meta && meta[i]; i += 2)
        if (!strcmp(meta[i], key)) return meta[i + 1];
    return NULL;
}

/* Loads <name>.ckpt into the trainer (model, both optimizers, step, rng,
 * history) after checking that it was made with the same options. */
static void load_checkpoint(const options *o, trainer *tr, const char *dir)
{
    char p[4096];
#define IN(name) join(p, dir, name)
    ag_arena *a = ag_arena_new();
    const char *const *meta =
        ag_load_safetensors_metadata(a, IN("state.safetensors"));
    if (!meta) fail("%s", ag_last_error());
    char vals[N_TRAINING_KEYS][64];
    training_metadata(o, vals);
    for (int i = 0; i < N_TRAINING_KEYS; i++) {
        const char *v = meta_get(meta, TRAINING_KEYS[i]);
        if (!v || strcmp(v, vals[i]))
            fail("%s: made with %s %s, resumed with %s (the same options "
                 "continue the same run)",
                 dir, TRAINING_KEYS[i], v ? v : "(none)", vals[i]);
    }
    ag_params *state = ag_params_new(a);
    int64_t n = o->steps, shape1[1] = {n}, one[1] = {1};
    ag_tensor *stept = ag_zeros(a, AG_F64, 1, one);
    ag_tensor *tl = ag_zeros(a, AG_F64, 1, shape1);
    ag_tensor *vl = ag_zeros(a, AG_F64, 1, shape1);
    ag_params_add(state, "step", stept);
    ag_params_add(state, "train_loss", tl);
    ag_params_add(state, "val_loss", vl);
    if (ag_load_safetensors(IN("state.safetensors"), state) ||
        gpt_load(tr->model, IN("model.safetensors")) ||
        ag_optimizer_load(tr->opt_decay, IN("adamw_decay.safetensors")) ||
        ag_optimizer_load(tr->opt_no_decay, IN("adamw_no_decay.safetensors")))
        fail("%s", ag_last_error());
    tr->step = (int64_t)ag_item(stept);
    memcpy(tr->train_loss, ag_data(tl), (size_t)n * sizeof(double));
    memcpy(tr->val_loss, ag_data(vl), (size_t)n * sizeof(double));
    ag_rng *dropout = gpt_dropout_rng(tr->model);
    for (int i = 0; i < 8; i++) {
        char key[8];
        snprintf(key, sizeof key, i < 4 ? "rng%d" : "drop%d", i % 4);
        const char *v = meta_get(meta, key);
        /* a checkpoint from before the dropout generator was kept resumes
         * exactly only without dropout */
        if (!v && i >= 4 && o->cfg.dropout == 0) continue;
        if (!v) fail("%s: no %s in the state", dir, key);
        (i < 4 ? tr->data_rng.s : dropout->s)[i % 4] = strtoull(v, NULL, 10);
    }
#undef IN
    ag_arena_free(a);
    printf("resumed %s at step %lld of %lld\n", dir, (long long)tr->step,
           (long long)o->steps);
}

/* The same model design as the checkpoint's, or an error naming the
 * field: a checkpoint of another configuration is refused before anything
 * is written. */
static void check_config(const options *o, const gpt_config *want,
                         const gpt_config *have, const char *path)
{
    const char *names[4] = {"n_layer (--layers)", "n_head (--heads)",
                            "n_embd (--embd)", "block_size (--block)"};
    const int64_t w[4] = {want->n_layer, want->n_head, want->n_embd,
                          want->block_size};
    const int64_t h[4] = {have->n_layer, have->n_head, have->n_embd,
                          have->block_size};
    for (int i = 0; i < 4; i++)
        if (o->cfg_given[i] && w[i] != h[i])
            fail("%s: a checkpoint of another configuration: %s %lld there, "
                 "%lld asked",
                 path, names[i], (long long)h[i], (long long)w[i]);
}

static void write_curve(const options *o, const trainer *tr)
{
    char csv[256];
    snprintf(csv, sizeof csv, "%s_curve.csv", tr->name);
    plot_curve c;
    char title[64];
    snprintf(title, sizeof title, "GPT %s", tr->name);
    if (plot_curve_open(&c, path_in(o, csv), title, "step",
                        "train_loss,val_loss"))
        return;
    for (int64_t s = 0; s < tr->step; s++) {
        double v[2] = {tr->train_loss[s], tr->val_loss[s]};
        plot_curve_add(&c, (double)(s + 1), v);
    }
    plot_curve_close(&c);
}

/* The training loop shared by pretraining and fine-tuning: AdamW (decay on
 * matrices only), linear warmup then cosine decay, gradient accumulation,
 * clipping, validation every eval_every steps, checkpoints, resume. */
static void train(const options *o, trainer *tr)
{
    const gpt_config *c = gpt_get_config(tr->model);
    int64_t b = o->batch, t = c->block_size, shape[2] = {b, t};
    if (tr->n_train < t + 2 || tr->n_val < t + 2)
        fail("%s: %lld training and %lld validation tokens, fewer than the "
             "block of %lld + 2",
             tr->name, (long long)tr->n_train, (long long)tr->n_val,
             (long long)t);
    tr->batch_x = malloc((size_t)(b * t) * sizeof(int32_t));
    tr->batch_y = malloc((size_t)(b * t) * sizeof(int32_t));
    if (!tr->batch_x || !tr->batch_y) fail("out of memory");
    ag_arena *step = ag_arena_new();
    int64_t stop = o->stop_after > 0 && o->stop_after < o->steps ? o->stop_after
                                                                 : o->steps;
    int64_t every = o->ckpt_every > 0 ? o->ckpt_every : o->eval_every;
    bool speak = job.rank == 0; /* the progress bar is rank 0's */
    progress bar = {0};
    char label[64];
    snprintf(label, sizeof label, "%s %lld-%lld", tr->name,
             (long long)tr->step + 1, (long long)stop);
    if (speak) progress_start(&bar, label, stop - tr->step);
    bar.unit = "tokens";
    int64_t first = tr->step;
    double loss = NAN;
    while (tr->step < stop) {
        double lr =
            ag_lr_cosine(o->lr, o->min_lr, tr->step, o->warmup,
                         o->steps > o->warmup ? o->steps : o->warmup + 1);
        ag_optimizer_set_lr(tr->opt_decay, lr);
        ag_optimizer_set_lr(tr->opt_no_decay, lr);
        loss = 0;
        for (int64_t k = 0; k < o->accum; k++) {
            draw_batch(tr->train, tr->n_train, b, t, &tr->data_rng, tr->batch_x,
                       tr->batch_y);
            ag_tensor *l =
                gpt_loss(tr->model, step,
                         ag_from_data(step, AG_I32, 2, shape, tr->batch_x),
                         ag_from_data(step, AG_I32, 2, shape, tr->batch_y));
            /* the mean over the accumulated micro-batches (and over the
             * ranks, by the averaging at the last one) */
            ag_tensor *scaled = ag_scale(step, l, 1.0 / (double)o->accum);
            dist_backward(scaled, k == o->accum - 1);
            loss += ag_item(l) / (double)o->accum;
            ag_arena_reset(step);
        }
        loss = dist_sum(loss) / job.world; /* the global batch's */
        double norm = ag_clip_grad_norm(tr->all, o->clip);
        if (!isfinite(norm))
            fail("%s step %lld: gradient norm %g", tr->name,
                 (long long)tr->step + 1, norm);
        if (ag_optimizer_step(tr->opt_decay) ||
            ag_optimizer_step(tr->opt_no_decay))
            fail("%s", ag_last_error());
        ag_optimizer_zero_grad(tr->opt_decay);
        ag_optimizer_zero_grad(tr->opt_no_decay);
        tr->train_loss[tr->step] = loss;
        tr->val_loss[tr->step] = NAN;
        tr->step++;
        if (speak)
            progress_step(&bar, tr->step - first, loss,
                          b * t * o->accum * job.world);
        bool eval = tr->step % o->eval_every == 0 || tr->step == o->steps;
        if (eval) {
            double v = evaluate(tr->model, tr->val, tr->n_val, b,
                                o->eval_batches, tr->batch_x, tr->batch_y);
            tr->val_loss[tr->step - 1] = v;
            if (bar.interactive) fputc('\n', stderr);
            if (speak)
                fprintf(stderr,
                        "%s step %lld: train loss %.4f, val loss %.4f, "
                        "lr %.3g\n",
                        tr->name, (long long)tr->step, loss, v, lr);
        }
        printf("step %lld loss %.9g\n", (long long)tr->step, loss);
        if (tr->step % every == 0 || tr->step == stop) {
            if (speak) save_checkpoint(o, tr);
            dist_wait();
        }
    }
    double tps = speak ? progress_finish(&bar, loss) : 0;
    printf("%s: %lld steps, %.0f tokens/s\n", tr->name,
           (long long)(tr->step - first), tps);
    if (tr->step == o->steps && speak) write_curve(o, tr);
    ag_arena_free(step);
    free(tr->batch_x);
    free(tr->batch_y);
}

static void print_sample(const options *o, gpt *m, ag_bpe *tok, int64_t n);

static void load_tokens(const options *o, const char *name, int64_t vocab,
                        int32_t **ids, int64_t *n)
{
    if (lm_tokens_load(path_in(o, name), vocab, ids, n)) exit(1);
}

static int cmd_train(options *o, bool pretrain)
{
    const char *name = pretrain ? "pretrain" : "finetune";
    if (o->steps < 0) o->steps = pretrain ? 2000 : 300;
    if (o->lr < 0) o->lr = pretrain ? 1e-3 : 3e-4;
    if (o->min_lr < 0) o->min_lr = o->lr / 10;
    if (o->warmup < 0) o->warmup = o->steps / 20;
    if (o->warmup >= o->steps) o->warmup = o->steps - 1;
    ag_bpe *tok = load_tokenizer(o);
    ag_arena *a = ag_arena_new();
    /* each rank its own batches; rank 0's those of one process */
    trainer tr = {.name = name,
                  .data_rng =
                      ag_rng_seed(o->seed + 1000 +
                                  0x9E3779B97F4A7C15u * (uint64_t)job.rank)};
    char ckpt[4096];
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", path_in(o, name));
    if (pretrain && !o->resume) {
        o->cfg.vocab_size = ag_bpe_vocab_size(tok);
        tr.model = gpt_new(a, AG_F32, &o->cfg, o->seed);
        if (!tr.model) fail("%s", ag_last_error());
    } else {
        /* resume: the checkpoint's own model; fine-tuning starts from the
         * pretrained one */
        char model_path[4096];
        join(model_path, o->resume ? ckpt : path_in(o, "pretrain.ckpt"),
             "model.safetensors");
        const char *path = !o->resume && o->from ? o->from : model_path;
        gpt_config have;
        if (gpt_read_config(path, &have)) fail("%s", ag_last_error());
        check_config(o, &o->cfg, &have, path);
        tr.model = load_model(a, path, o->cfg.dropout);
    }
    check_vocab(tok, tr.model, name);
    o->cfg = *gpt_get_config(tr.model);
    /* each rank its own dropout masks; rank 0's those of one process */
    if (job.rank > 0)
        *gpt_dropout_rng(tr.model) = ag_rng_seed(
            o->seed + 2000 + 0x9E3779B97F4A7C15u * (uint64_t)job.rank);
    int32_t *train_ids, *val_ids;
    char tn[64], vn[64];
    snprintf(tn, sizeof tn, "%s_train.tok", name);
    snprintf(vn, sizeof vn, "%s_val.tok", name);
    load_tokens(o, tn, o->cfg.vocab_size, &train_ids, &tr.n_train);
    load_tokens(o, vn, o->cfg.vocab_size, &val_ids, &tr.n_val);
    tr.train = train_ids, tr.val = val_ids;
    make_optimizers(a, &tr, o);
    dist_attach(a, tr.all);
    tr.train_loss = calloc((size_t)o->steps, sizeof(double));
    tr.val_loss = calloc((size_t)o->steps, sizeof(double));
    if (!tr.train_loss || !tr.val_loss) fail("out of memory");
    if (o->resume) load_checkpoint(o, &tr, ckpt);
    printf("%s: %lld parameters, config layers %lld heads %lld embd %lld "
           "block %lld vocab %lld; %lld training tokens, %lld validation\n",
           name, (long long)ag_params_numel(tr.all), (long long)o->cfg.n_layer,
           (long long)o->cfg.n_head, (long long)o->cfg.n_embd,
           (long long)o->cfg.block_size, (long long)o->cfg.vocab_size,
           (long long)tr.n_train, (long long)tr.n_val);
    if (job.world > 1)
        printf("%s: data parallel on %d processes, a global batch of %lld "
               "rows (%d x --batch %lld)\n",
               name, job.world, (long long)(job.world * o->batch), job.world,
               (long long)o->batch);
    int32_t *bx = malloc((size_t)(o->batch * o->cfg.block_size) * 4);
    int32_t *by = malloc((size_t)(o->batch * o->cfg.block_size) * 4);
    if (!bx || !by) fail("out of memory");
    if (tr.step == 0) {
        double v = evaluate(tr.model, tr.val, tr.n_val, o->batch,
                            o->eval_batches, bx, by);
        printf("%s: validation loss before %.4f\n", name, v);
    }
    double t0 = progress_now();
    train(o, &tr);
    double dt = progress_now() - t0;
    double v =
        evaluate(tr.model, tr.val, tr.n_val, o->batch, o->eval_batches, bx, by);
    printf("%s: validation loss after step %lld: %.4f (%.1f s)\n", name,
           (long long)tr.step, v, dt);
    if (tr.step == o->steps && job.rank == 0)
        print_sample(o, tr.model, tok, 60);
    free(bx);
    free(by);
    free(train_ids);
    free(val_ids);
    free(tr.train_loss);
    free(tr.val_loss);
    ag_bpe_free(tok);
    ag_arena_free(a);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Sampling                                                            */

typedef struct {
    ag_bpe *tok;
    int64_t count;
} stream;

static void write_token(int32_t id, void *user)
{
    stream *s = user;
    size_t len;
    const char *bytes = ag_bpe_token_bytes(s->tok, id, &len);
    if (bytes) fwrite(bytes, 1, len, stdout);
    fflush(stdout);
    s->count++;
}

static ag_sampler *make_sampler(ag_arena *a, const options *o, int64_t vocab)
{
    ag_sampler_options so = {
        .temperature = o->temperature, .top_k = o->top_k, .top_p = o->top_p};
    ag_sampler *s = ag_sampler_new(a, vocab, &so);
    if (!s) fail("%s", ag_last_error());
    return s;
}

/* A continuation of the start token, for the end of a training run. */
static void print_sample(const options *o, gpt *m, ag_bpe *tok, int64_t n)
{
    ag_arena *a = ag_arena_new();
    gpt_cache *cache = gpt_cache_new(a, m, gpt_get_config(m)->block_size);
    ag_sampler *s = make_sampler(a, o, gpt_get_config(m)->vocab_size);
    int32_t start = ag_bpe_special_id(tok, LM_EOT),
            *out = malloc((size_t)n * 4);
    ag_rng rng = ag_rng_seed(o->seed);
    stream st = {.tok = tok};
    printf("sample: ");
    if (!cache || !out ||
        lm_sample(cache, s, &rng, &start, 1, n, -1, false, out, write_token,
                  &st) < 0)
        fail("%s", ag_last_error());
    printf("\n");
    free(out);
    ag_arena_free(a);
}

/* The prompt's tokens, or an error for an empty or over-long one. */
static int64_t prompt_tokens(ag_bpe *tok, const char *text, int64_t window,
                             int32_t **ids, const char **why)
{
    *why = NULL;
    if (!text || !*text) {
        *why = "an empty prompt (give some text)";
        return -1;
    }
    int64_t n = encode(tok, text, strlen(text), ids);
    if (n > window) {
        static char msg[160];
        snprintf(msg, sizeof msg,
                 "a prompt of %lld tokens, over the context window of %lld",
                 (long long)n, (long long)window);
        *why = msg;
        free(*ids);
        return -1;
    }
    return n;
}

/* What generate and chat sample with: the newest model of --dir (or
 * --model, default_model), the tokenizer (its vocabulary checked against
 * the model's), a KV cache of the model's whole window and the sampler of
 * the options, all in arena `a` but the tokenizer; sampling_end frees
 * them. Fails (exits) naming the file that could not be used. */
typedef struct {
    const char *path;
    ag_bpe *tok;
    ag_arena *a;
    gpt *m;
    const gpt_config *c;
    gpt_cache *cache;
    ag_sampler *s;
} sampling;

static sampling sampling_start(const options *o)
{
    sampling x = {.path = default_model(o), .tok = load_tokenizer(o)};
    x.a = ag_arena_new();
    if (!x.a) fail("out of memory");
    x.m = load_model(x.a, x.path, 0);
    check_vocab(x.tok, x.m, x.path);
    x.c = gpt_get_config(x.m);
    x.cache = gpt_cache_new(x.a, x.m, x.c->block_size);
    if (!x.cache) fail("%s", ag_last_error());
    x.s = make_sampler(x.a, o, x.c->vocab_size);
    return x;
}

static void sampling_end(sampling *x)
{
    ag_bpe_free(x->tok);
    ag_arena_free(x->a);
}

static int cmd_generate(const options *o)
{
    sampling x = sampling_start(o);
    const char *path = x.path;
    ag_bpe *tok = x.tok;
    const gpt_config *c = x.c;
    int32_t *prompt;
    const char *why;
    int64_t np = prompt_tokens(tok, o->prompt, c->block_size, &prompt, &why);
    if (np < 0) fail("generate: %s", why);
    int64_t n = o->tokens > 0 ? o->tokens : 200;
    int32_t *out = malloc((size_t)n * sizeof *out);
    if (!out) fail("out of memory");
    ag_rng rng = ag_rng_seed(o->seed);
    stream st = {.tok = tok};
    fwrite(o->prompt, 1, strlen(o->prompt), stdout);
    double t0 = progress_now();
    if (lm_sample(x.cache, x.s, &rng, prompt, np, n, -1, false, out,
                  write_token, &st) < 0)
        fail("%s", ag_last_error());
    double dt = progress_now() - t0;
    printf("\n");
    fprintf(stderr,
            "%lld tokens in %.2f s: %.1f tokens/s (model %s, window "
            "%lld)\n",
            (long long)st.count, dt, dt > 0 ? (double)st.count / dt : 0, path,
            (long long)c->block_size);
    free(out);
    free(prompt);
    sampling_end(&x);
    return 0;
}

/* The chat: the context window holds the dialogue as a FIFO queue; every
 * prompt and every reply join it (gpt_cache_push), the oldest tokens
 * leave when it is full. A reply ends at <|endoftext|> or --max-reply. */
static int cmd_chat(const options *o)
{
    sampling x = sampling_start(o);
    const char *path = x.path;
    ag_bpe *tok = x.tok;
    const gpt_config *c = x.c;
    gpt_cache *cache = x.cache;
    ag_sampler *s = x.s;
    ag_rng rng = ag_rng_seed(o->seed);
    int32_t eot = ag_bpe_special_id(tok, LM_EOT);
    const float *logits = gpt_cache_push(cache, eot);
    if (!logits) fail("%s", ag_last_error());
    stream st = {.tok = tok};
    char line[8194];
    int64_t turns = 0;
    fprintf(stderr, "chat with %s (window %lld tokens); end with ctrl-D\n",
            path, (long long)c->block_size);
    while (fgets(line, 8192, stdin)) {
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] != '\n' && !feof(stdin))
            fail("chat: a line over 8191 bytes");
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        int32_t *ids;
        const char *why;
        /* the prompt and its newline; it must leave room for a reply */
        strcat(line, "\n");
        int64_t np =
            prompt_tokens(tok, len ? line : "", c->block_size - 1, &ids, &why);
        if (np < 0) {
            printf("(%s)\n", why);
            fflush(stdout);
            continue;
        }
        for (int64_t i = 0; i < np; i++)
            if (!(logits = gpt_cache_push(cache, ids[i])))
                fail("%s", ag_last_error());
        free(ids);
        printf("> ");
        int64_t n = 0;
        for (; n < o->max_reply; n++) {
            int32_t id = ag_sampler_next(s, logits, &rng);
            if (id < 0) fail("%s", ag_last_error());
            if (!(logits = gpt_cache_push(cache, id)))
                fail("%s", ag_last_error());
            if (id == eot) break;
            write_token(id, &st);
        }
        /* the reply ends its entry, so the next prompt starts one */
        if (n == o->max_reply && !(logits = gpt_cache_push(cache, eot)))
            fail("%s", ag_last_error());
        printf("\n");
        fflush(stdout);
        turns++;
        fprintf(stderr, "[turn %lld: %lld reply tokens, context %lld/%lld]\n",
                (long long)turns, (long long)n, (long long)gpt_cache_len(cache),
                (long long)c->block_size);
    }
    sampling_end(&x);
    return 0;
}

/* ------------------------------------------------------------------ */
/* DPO                                                                 */

/* One sampled poem: the prompt's and the continuation's ids. */
typedef struct {
    int32_t *ids;
    int64_t n, from;
    int regular;  /* poem_regular */
    double score; /* poem_form_score */
} sample_seq;

/* The text of ids[0..n) (none when n <= 0), NUL-terminated, in a buffer the
 * caller frees, its length in *len; NULL when decoding fails (the
 * library's error says why) or memory runs out. */
static char *decode_ids(const ag_bpe *tok, const int32_t *ids, int64_t n,
                        int64_t *len)
{
    int64_t need = n > 0 ? ag_bpe_decode(tok, ids, n, NULL, 0) : 0;
    char *text = need >= 0 ? malloc((size_t)need + 1) : NULL;
    if (!text) return NULL;
    if (need > 0 && ag_bpe_decode(tok, ids, n, text, (size_t)need) != need) {
        free(text);
        return NULL;
    }
    text[need] = 0;
    *len = need;
    return text;
}

/* Samples a continuation of prompt (poem title or start token) within the
 * window and checks its form: the decoded prompt and continuation up to
 * <|endoftext|>. */
static sample_seq sample_poem(gpt_cache *cache, ag_sampler *s, ag_rng *rng,
                              ag_bpe *tok, const int32_t *prompt, int64_t np,
                              int64_t max_new, int32_t eot)
{
    sample_seq q = {.ids = malloc((size_t)(np + max_new) * 4), .from = np};
    if (!q.ids) fail("out of memory");
    memcpy(q.ids, prompt, (size_t)np * 4);
    int64_t n = lm_sample(cache, s, rng, prompt, np, max_new, eot, true,
                          q.ids + np, NULL, NULL);
    if (n < 0) fail("%s", ag_last_error());
    q.n = np + n;
    /* the text without the start token and the end token */
    int64_t b = q.ids[0] == eot ? 1 : 0, e = q.n - (q.ids[q.n - 1] == eot);
    bool ended = q.ids[q.n - 1] == eot;
    int64_t need;
    char *text = decode_ids(tok, q.ids + b, e - b, &need);
    if (!text) fail("decode: %s", ag_last_error());
    /* a poem cut off by the length cap is not regular */
    q.regular = ended ? poem_regular(text, (size_t)need) : 0;
    q.score = poem_form_score(text, (size_t)need);
    free(text);
    return q;
}

/* What n samples from the start token (the seeds seed*1000003 + i, the
 * same for every model) show: the share of regular poems, the mean form
 * score, and how varied the half-lines are (distinct of all). */
typedef struct {
    double regular, score;
    size_t halves, distinct;
} sample_stats;

static void print_poem(ag_bpe *tok, const sample_seq *q, const char *label,
                       int64_t i)
{
    int64_t need;
    char *text = decode_ids(tok, q->ids + 1, q->n - 1, &need);
    if (text)
        printf("%s sample %lld (%s):\n%s\n", label, (long long)i,
               q->regular ? "regular" : "irregular", text);
    free(text);
}

/* Samples n poems and measures them; prints the first two and the first
 * two regular ones. */
static sample_stats measure_samples(gpt *m, ag_arena *a, ag_sampler *s,
                                    ag_bpe *tok, int64_t n, uint64_t seed,
                                    int64_t max_new, int32_t eot,
                                    const char *label)
{
    gpt_cache *cache = gpt_cache_new(a, m, gpt_get_config(m)->block_size);
    if (!cache) fail("%s", ag_last_error());
    sample_stats st = {0};
    poem_lines lines = {0};
    int64_t regular = 0;
    for (int64_t i = 0; i < n; i++) {
        ag_rng rng = ag_rng_seed(seed * 1000003 + (uint64_t)i);
        sample_seq q = sample_poem(cache, s, &rng, tok, &eot, 1, max_new, eot);
        if (i < 2 || (q.regular && regular < 2)) print_poem(tok, &q, label, i);
        regular += q.regular != 0;
        st.score += q.score / (double)n;
        int64_t need;
        char *text = decode_ids(tok, q.ids + 1, q.n - 1, &need);
        if (!text) fail("decode: %s", ag_last_error());
        if (poem_lines_add(&lines, text, (size_t)need)) fail("out of memory");
        free(text);
        free(q.ids);
    }
    st.regular = (double)regular / (double)n;
    st.halves = lines.n;
    st.distinct = poem_lines_distinct(&lines);
    poem_lines_free(&lines);
    return st;
}

/* The preference pairs of one round, sampled from `sampler_model` through
 * its cache: for each tang300 title (its first line "《...》", cycling
 * through the training poems; the start token alone for a title the
 * tokenizer makes too long) o->samples poems, of which the best (regular
 * first, then the higher form score) is chosen and the worst rejected
 * when one is regular and the other not, or their form scores are
 * o->margin (--margin, 0.2) or more apart (of poems alike, the first is
 * the best and the last the worst, so that --margin 0 pairs every
 * title's). Fills chosen/rejected (o->pairs each) and returns the
 * number of pairs; *tried counts the titles prompted. */
typedef struct {
    const options *o;
    gpt_cache *cache;
    ag_sampler *sampler;
    ag_bpe *tok;
    const char *titles, *cursor;
    int64_t max_new;
    int32_t eot;
    ag_rng rng;
    sample_seq *chosen, *rejected, *drawn;
    int64_t tried, by_form, by_score;
} pair_search;

static bool better_poem(const sample_seq *a, const sample_seq *b)
{
    if ((a->regular != 0) != (b->regular != 0)) return a->regular != 0;
    return a->score > b->score;
}

static int64_t make_pairs(pair_search *ps)
{
    const options *o = ps->o;
    int64_t pairs = 0, tries = o->tries > 0 ? o->tries : 5 * o->pairs;
    ps->tried = ps->by_form = ps->by_score = 0;
    while (pairs < o->pairs && ps->tried < tries) {
        if (!ps->cursor || !*ps->cursor) ps->cursor = ps->titles;
        const char *cur = ps->cursor, *nl = strchr(cur, '\n');
        const char *end = strstr(cur, LM_EOT);
        char title[512] = "";
        size_t tl = nl && (!end || nl < end) ? (size_t)(nl - cur + 1) : 0;
        if (tl > 0 && tl < sizeof title && !strncmp(cur, "《", 3))
            memcpy(title, cur, tl), title[tl] = 0;
        ps->cursor = end ? end + strlen(LM_EOT) : NULL;
        int32_t prompt[64], *tids = NULL;
        int64_t np = 1;
        prompt[0] = ps->eot;
        if (*title) {
            int64_t n = encode(ps->tok, title, strlen(title), &tids);
            if (n + 1 <= 32) memcpy(prompt + 1, tids, (size_t)n * 4), np += n;
            free(tids);
        }
        int64_t best = 0, worst = 0;
        for (int64_t k = 0; k < o->samples; k++) {
            ps->drawn[k] =
                sample_poem(ps->cache, ps->sampler, &ps->rng, ps->tok, prompt,
                            np, ps->max_new, ps->eot);
            if (better_poem(&ps->drawn[k], &ps->drawn[best])) best = k;
            if (!better_poem(&ps->drawn[k], &ps->drawn[worst])) worst = k;
        }
        ps->tried++;
        const sample_seq *b = &ps->drawn[best], *w = &ps->drawn[worst];
        bool by_form = (b->regular != 0) != (w->regular != 0);
        bool keep =
            best != worst && (by_form || b->score - w->score >= o->margin);
        for (int64_t k = 0; k < o->samples; k++)
            if (!keep || (k != best && k != worst)) free(ps->drawn[k].ids);
        if (!keep) continue;
        ps->by_form += by_form, ps->by_score += !by_form;
        ps->chosen[pairs] = *b, ps->rejected[pairs] = *w;
        pairs++;
    }
    return pairs;
}

/* Preference tuning by DPO in o->rounds rounds (iterative DPO): each
 * round samples its pairs from the policy as the round begins (the
 * fine-tuned model in the first), takes that policy as the round's
 * reference (with --fixed-ref, the fine-tuned model stays the reference of
 * every round, which holds the policy near it) and trains the policy
 * o->epochs times over them on
 *   -log sigmoid(beta ((log pi(c) - log ref(c)) - (log pi(r) - log ref(r))))
 *   + nll * (-log pi(c)) / |c|
 * the second term (--nll; Pang et al. 2024's DPO + NLL) keeping the
 * chosen poems likely, not only the rejected ones unlikely. */
static int cmd_dpo(options *o)
{
    const char *from =
        o->from ? o->from : path_in(o, "finetune.ckpt/model.safetensors");
    if (o->steps > 0) fail("dpo: use --epochs and --pairs, not --steps");
    if (o->nll < 0 || o->margin < 0)
        fail("dpo: --nll %g and --margin %g must not be negative", o->nll,
             o->margin);
    if (o->lr < 0) o->lr = 1e-5;
    int64_t max_new = o->tokens > 0 ? o->tokens : 96;
    ag_bpe *tok = load_tokenizer(o);
    ag_arena *a = ag_arena_new();
    gpt *policy = load_model(a, from, 0), *ref = load_model(a, from, 0);
    check_vocab(tok, policy, from);
    const gpt_config *c = gpt_get_config(policy);
    if (max_new > c->block_size) max_new = c->block_size;
    int32_t eot = ag_bpe_special_id(tok, LM_EOT);
    ag_sampler *s = make_sampler(a, o, c->vocab_size);
    int32_t *val_ids;
    int64_t n_val;
    load_tokens(o, "finetune_val.tok", c->vocab_size, &val_ids, &n_val);
    int64_t eb = o->batch < 4 ? o->batch : 4;
    int32_t *bx = malloc((size_t)(eb * c->block_size) * 4);
    int32_t *by = malloc((size_t)(eb * c->block_size) * 4);
    if (!bx || !by) fail("out of memory");
    double val_before =
        evaluate(ref, val_ids, n_val, eb, o->eval_batches, bx, by);
    sample_stats before = measure_samples(ref, a, s, tok, o->eval_samples,
                                          o->seed + 7, max_new, eot, "before");
    printf("dpo: before: validation loss %.4f, regular poems %.1f%% of %lld, "
           "mean form score %.3f, distinct half-lines %zu of %zu\n",
           val_before, 100 * before.regular, (long long)o->eval_samples,
           before.score, before.distinct, before.halves);

    lm_corpus titles = {0};
    if (lm_corpus_add_file(&titles, o->finetune_file, o->val_share)) exit(1);
    pair_search ps = {.o = o,
                      .cache = gpt_cache_new(a, policy, c->block_size),
                      .sampler = s,
                      .tok = tok,
                      .titles = titles.train.data,
                      .cursor = titles.train.data,
                      .max_new = max_new,
                      .eot = eot,
                      .rng = ag_rng_seed(o->seed + 11),
                      .chosen = calloc((size_t)o->pairs, sizeof(sample_seq)),
                      .rejected = calloc((size_t)o->pairs, sizeof(sample_seq)),
                      .drawn = calloc((size_t)o->samples, sizeof(sample_seq))};
    double *ref_c = calloc((size_t)o->pairs, sizeof(double));
    double *ref_r = calloc((size_t)o->pairs, sizeof(double));
    if (!ps.chosen || !ps.rejected || !ps.drawn || !ref_c || !ref_r)
        fail("out of memory");
    if (!ps.cache) fail("%s", ag_last_error());
    ag_arena *step = ag_arena_new();
    ag_params *params = ag_module_parameters(gpt_module(policy));
    ag_adam_options ao = ag_adamw_defaults();
    ao.lr = o->lr, ao.weight_decay = 0;
    ag_optimizer *opt = ag_adamw_new(a, params, &ao);
    if (!step || !opt) fail("%s", ag_last_error());
    plot_curve curve;
    int have_curve =
        plot_curve_open(&curve, path_in(o, "dpo_curve.csv"), "GPT DPO", "step",
                        "dpo_loss,reward_accuracy") == 0;
    int64_t done = 0, pairs = 0;
    int rc = 0;
    for (int64_t round = 0; round < o->rounds; round++) {
        if (round > 0 && !o->fixed_ref && gpt_copy(ref, policy))
            fail("%s", ag_last_error());
        double t0 = progress_now();
        pairs = make_pairs(&ps);
        printf("dpo: round %lld of %lld: %lld preference pairs (%lld regular "
               "against irregular, %lld by form score) from %lld titles, %lld "
               "poems each (%.1f s)\n",
               (long long)round + 1, (long long)o->rounds, (long long)pairs,
               (long long)ps.by_form, (long long)ps.by_score,
               (long long)ps.tried, (long long)o->samples, progress_now() - t0);
        /* No pair is an outcome of sampling, not bad input (a model that
         * writes no regular poem yet): said, and everything released on
         * the way out as after training, so that Valgrind sees no leak. */
        if (pairs == 0) {
            fprintf(stderr,
                    "gpt: dpo: no pair with one poem preferred (regular, or a "
                    "form score %g higher)\n",
                    o->margin);
            rc = 1;
            goto out;
        }
        /* the reference's log-probabilities, once a round */
        bool grad = ag_set_grad_enabled(false);
        for (int64_t i = 0; i < pairs; i++) {
            const sample_seq *pc = &ps.chosen[i], *pr = &ps.rejected[i];
            ag_tensor *lc = lm_logprob(ref, step, pc->ids, pc->n, pc->from);
            ag_tensor *lr = lm_logprob(ref, step, pr->ids, pr->n, pr->from);
            if (!lc || !lr) fail("%s", ag_last_error());
            ref_c[i] = ag_item(lc), ref_r[i] = ag_item(lr);
            ag_arena_reset(step);
        }
        ag_set_grad_enabled(grad);

        int64_t per_step = o->batch < pairs ? o->batch : pairs;
        progress bar;
        progress_start(&bar, "dpo",
                       o->epochs * ((pairs + per_step - 1) / per_step));
        bar.unit = "pairs";
        double loss = NAN;
        int64_t round_steps = 0;
        for (int64_t e = 0; e < o->epochs; e++)
            for (int64_t first = 0; first < pairs; first += per_step) {
                int64_t last =
                    first + per_step < pairs ? first + per_step : pairs;
                double sum = 0, right = 0, scale = 1.0 / (double)(last - first);
                for (int64_t i = first; i < last; i++) {
                    const sample_seq *qc = &ps.chosen[i], *qr = &ps.rejected[i];
                    ag_tensor *pc =
                        lm_logprob(policy, step, qc->ids, qc->n, qc->from);
                    ag_tensor *pr =
                        lm_logprob(policy, step, qr->ids, qr->n, qr->from);
                    ag_tensor *l =
                        lm_dpo_loss(step, pc, pr, ref_c[i], ref_r[i], o->beta);
                    /* + nll * (-log pi(c)) / |c| */
                    double per_token = -o->nll / (double)(qc->n - qc->from);
                    ag_tensor *total =
                        o->nll > 0
                            ? ag_add(step, l, ag_scale(step, pc, per_token))
                            : l;
                    ag_tensor *mean = ag_scale(step, total, scale);
                    if (!mean || ag_backward(mean)) fail("%s", ag_last_error());
                    sum += ag_item(l);
                    right +=
                        (ag_item(pc) - ref_c[i]) > (ag_item(pr) - ref_r[i]);
                    ag_arena_reset(step);
                }
                ag_clip_grad_norm(params, o->clip);
                if (ag_optimizer_step(opt)) fail("%s", ag_last_error());
                ag_optimizer_zero_grad(opt);
                loss = sum * scale;
                double row[2] = {loss, right * scale};
                if (have_curve) plot_curve_add(&curve, (double)(done + 1), row);
                done++;
                progress_step(&bar, ++round_steps, loss, last - first);
            }
        progress_finish(&bar, loss);
        for (int64_t i = 0; i < pairs; i++)
            free(ps.chosen[i].ids), free(ps.rejected[i].ids);
        pairs = 0;
    }
    double val_after =
        evaluate(policy, val_ids, n_val, eb, o->eval_batches, bx, by);
    sample_stats after = measure_samples(policy, a, s, tok, o->eval_samples,
                                         o->seed + 7, max_new, eot, "after");
    printf("dpo: after %lld steps: validation loss %.4f, regular poems %.1f%% "
           "of %lld, mean form score %.3f, distinct half-lines %zu of %zu "
           "(before %.1f%%, %.3f, %zu of %zu)\n",
           (long long)done, val_after, 100 * after.regular,
           (long long)o->eval_samples, after.score, after.distinct,
           after.halves, 100 * before.regular, before.score, before.distinct,
           before.halves);
    if (gpt_save(policy, path_in(o, "dpo.safetensors")))
        fail("%s", ag_last_error());
    printf("saved %s\n", path_in(o, "dpo.safetensors"));
out:
    if (have_curve) plot_curve_close(&curve);
    for (int64_t i = 0; i < pairs; i++)
        free(ps.chosen[i].ids), free(ps.rejected[i].ids);
    free(ps.chosen), free(ps.rejected), free(ps.drawn), free(ref_c),
        free(ref_r);
    free(bx), free(by), free(val_ids);
    lm_corpus_free(&titles);
    ag_arena_free(step);
    ag_bpe_free(tok);
    ag_arena_free(a);
    return rc;
}

int main(int argc, char **argv)
{
    options o = parse(argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    dist_start(&o);
    if (!strcmp(o.command, "tokenize")) return cmd_tokenize(&o);
    if (!strcmp(o.command, "pretrain") || !strcmp(o.command, "finetune")) {
        int status = cmd_train(&o, o.command[0] == 'p');
        dist_end();
        return status;
    }
    if (!strcmp(o.command, "dpo")) return cmd_dpo(&o);
    if (!strcmp(o.command, "generate")) return cmd_generate(&o);
    if (!strcmp(o.command, "chat")) return cmd_chat(&o);
    fprintf(stderr, "gpt: unknown command %s\n", o.command);
    usage();
    return 2;
}
