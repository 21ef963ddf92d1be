/* char_lstm.c: a character-level language model, Embedding -> LSTM ->
 * Linear over bytes, trained on the text of Debian's fortunes by truncated
 * backpropagation through time (Adam, gradient clipping); reports bits per
 * character on held-out text (the last 2% of every file) after each epoch,
 * saves the model's state as safetensors (PyTorch's names: "embed.weight",
 * "lstm.weight_ih_l0", ..., "head.weight", "head.bias"; the sizes in the
 * metadata; examples/torch_char_lstm.py loads it into PyTorch) and writes
 * text sampled from a prompt; each step's training bits/char and each
 * epoch's held-out ones go to a training curve (--curve FILE, default
 * char_lstm_curve.csv, and an SVG beside it when gnuplot is on PATH).
 * --eval reloads a checkpoint, measures it and samples from it.
 *
 * The training text is cut into --batch streams read side by side, each
 * step taking the next --seq bytes of every stream and starting from the
 * state the previous step ended in (detached); an epoch is one pass.
 *
 * Run: ./build/examples/char_lstm [--data FILE|DIR] [--epochs N]
 *          [--steps N] [--hidden N] [--layers N] [--seq N] [--batch N]
 *          [--lr X] [--save FILE] [--eval FILE] [--curve FILE] [--prompt TEXT]
 *          [--temperature X] [--length N] [--seed N] [--threads N]
 * Data: every plain-text file of /usr/share/games/fortunes (Debian's
 * fortunes package) by default, in the order of their names (with --eval,
 * the checkpoint's). */
#define _POSIX_C_SOURCE 200809L
#include "plot.h"
#include "progress.h"
#include <autograd.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_DATA "/usr/share/games/fortunes"
#define VOCAB 256 /* bytes */
#define EMBED 64  /* embedding width */
#define HELDOUT 2 /* percent of the text, at its end */
#define EVAL_STREAMS 32
#define CLIP 1.0 /* the gradients' largest norm */

typedef struct {
    const char *data, *save, *eval, *prompt, *curve;
    long epochs, steps, hidden, layers, seq, batch, length, threads;
    double lr, temperature;
    uint64_t seed;
} options;

typedef struct {
    ag_module *model, *embed, *lstm, *head;
    ag_params *state, *params;
    long hidden, layers;
} char_model;

typedef struct {
    unsigned char *bytes;
    int64_t n, train; /* all of it; the training part, bytes [0, train) */
} text;

static int fail(const char *what)
{
    fprintf(stderr, "char_lstm: %s: %s\n", what, ag_last_error());
    return 1;
}

/* ---- options ---- */

static long parse_count(const char *flag, const char *s, long min)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < min) {
        fprintf(stderr,
                "char_lstm: %s needs a whole number >= %ld, got "
                "\"%s\"\n",
                flag, min, s);
        return -1;
    }
    return v;
}

static double parse_positive(const char *flag, const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v > 0) || !isfinite(v)) {
        fprintf(stderr, "char_lstm: %s needs a number > 0, got \"%s\"\n", flag,
                s);
        return -1;
    }
    return v;
}

static int parse_options(int argc, char **argv, options *o)
{
    *o = (options){.save = "char_lstm.safetensors",
                   .curve = "char_lstm_curve.csv",
                   .prompt = "The ",
                   .epochs = 1,
                   .hidden = 256,
                   .layers = 2,
                   .seq = 64,
                   .batch = 32,
                   .length = 400,
                   .lr = 2e-3,
                   .temperature = 0.8};
    for (int i = 1; i < argc; i += 2) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "char_lstm: %s needs a value\n", f);
            return -1;
        }
        long *count = NULL, min = 1;
        double *real = NULL;
        if (!strcmp(f, "--data"))
            o->data = v;
        else if (!strcmp(f, "--save"))
            o->save = v;
        else if (!strcmp(f, "--eval"))
            o->eval = v;
        else if (!strcmp(f, "--curve"))
            o->curve = v;
        else if (!strcmp(f, "--prompt"))
            o->prompt = v;
        else if (!strcmp(f, "--epochs"))
            count = &o->epochs;
        else if (!strcmp(f, "--steps"))
            count = &o->steps;
        else if (!strcmp(f, "--hidden"))
            count = &o->hidden;
        else if (!strcmp(f, "--layers"))
            count = &o->layers;
        else if (!strcmp(f, "--seq"))
            count = &o->seq;
        else if (!strcmp(f, "--batch"))
            count = &o->batch;
        else if (!strcmp(f, "--threads"))
            count = &o->threads;
        else if (!strcmp(f, "--length"))
            count = &o->length, min = 0;
        else if (!strcmp(f, "--lr"))
            real = &o->lr;
        else if (!strcmp(f, "--temperature"))
            real = &o->temperature;
        else if (!strcmp(f, "--seed")) {
            long s = parse_count(f, v, 0);
            if (s < 0) return -1;
            o->seed = (uint64_t)s;
        } else {
            fprintf(stderr, "char_lstm: unknown option %s\n", f);
            return -1;
        }
        if (count && (*count = parse_count(f, v, min)) < 0) return -1;
        if (real && (*real = parse_positive(f, v)) < 0) return -1;
    }
    return 0;
}

/* ---- the text ---- */

/* Appends the file at path to t; -1 after a message on failure. */
static int append_file(text *t, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    int status = 0;
    for (;;) {
        unsigned char buf[65536];
        size_t got = fread(buf, 1, sizeof buf, f);
        if (got) {
            unsigned char *more = realloc(t->bytes, (size_t)t->n + got);
            if (!more) {
                status = -1;
                break;
            }
            memcpy(more + t->n, buf, got);
            t->bytes = more, t->n += (int64_t)got;
        }
        if (got < sizeof buf) {
            if (ferror(f)) perror(path), status = -1;
            break;
        }
    }
    fclose(f);
    return status;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether a folder entry is one of the texts: not hidden, not a fortune
 * index (.dat) or UTF-8 link (.u8), and a regular file. */
static int is_text(const char *dir, const char *name, char *path, size_t size)
{
    size_t len = strlen(name);
    struct stat st;
    if (name[0] == '.' || (len > 4 && !strcmp(name + len - 4, ".dat")) ||
        (len > 3 && !strcmp(name + len - 3, ".u8")))
        return 0;
    snprintf(path, size, "%s/%s", dir, name);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Appends the file at path to t, its last HELDOUT percent to `held`. */
static int append_split(text *t, text *held, const char *path)
{
    int64_t begin = t->n;
    if (append_file(t, path)) return -1;
    int64_t keep = (t->n - begin) * HELDOUT / 100;
    unsigned char *more = realloc(held->bytes, (size_t)(held->n + keep) + 1);
    if (!more) return -1;
    memcpy(more + held->n, t->bytes + t->n - keep, (size_t)keep);
    held->bytes = more, held->n += keep, t->n -= keep;
    return 0;
}

/* Reads `path`, a file or a folder of texts (read in the order of their
 * names), into t: every file's first 100 - HELDOUT percent for training,
 * then every file's last HELDOUT percent, held out. */
static int load_text(const char *path, text *t)
{
    *t = (text){0};
    text held = {0};
    struct stat st;
    if (stat(path, &st)) {
        perror(path);
        return -1;
    }
    char **names = NULL, file[4096];
    size_t count = 0;
    int status = 0;
    DIR *d = S_ISDIR(st.st_mode) ? opendir(path) : NULL;
    if (S_ISDIR(st.st_mode) && !d) {
        perror(path);
        return -1;
    }
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!is_text(path, e->d_name, file, sizeof file)) continue;
        char **more = realloc(names, (count + 1) * sizeof *names);
        char *copy = strdup(e->d_name);
        if (more) names = more;
        if (!more || !copy) {
            free(copy);
            status = -1;
            break;
        }
        names[count++] = copy;
    }
    if (d) closedir(d);
    if (names) qsort(names, count, sizeof *names, by_name);
    for (size_t i = 0; i < count; i++) {
        snprintf(file, sizeof file, "%s/%s", path, names[i]);
        if (!status) status = append_split(t, &held, file);
        free(names[i]);
    }
    free(names);
    if (!d) status = append_split(t, &held, path);
    if (!status && d && count == 0)
        fprintf(stderr, "char_lstm: %s holds no text files\n", path),
            status = -1;
    t->train = t->n;
    unsigned char *all =
        status ? NULL : realloc(t->bytes, (size_t)(t->n + held.n) + 1);
    if (all) {
        memcpy(all + t->n, held.bytes, (size_t)held.n);
        t->bytes = all, t->n += held.n;
    } else {
        status = -1;
    }
    free(held.bytes);
    return status;
}

/* ---- the model ---- */

static ag_tensor *model_forward(ag_module *m, ag_arena *step, ag_tensor *ids)
{
    char_model *cm = ag_module_self(m);
    ag_tensor *e = ag_module_forward(cm->embed, step, ids);
    return ag_module_forward(cm->head, step,
                             ag_module_forward(cm->lstm, step, e));
}

static const ag_module_type model_type = {"CharLSTM", model_forward};

static char_model *model_new(ag_arena *a, long hidden, long layers,
                             uint64_t seed)
{
    ag_rng rng = ag_rng_seed(seed);
    char_model *cm = ag_arena_alloc(a, sizeof *cm);
    if (!cm) return NULL;
    cm->hidden = hidden, cm->layers = layers;
    cm->model = ag_module_new(a, &model_type, cm);
    cm->embed = ag_nn_embedding(a, AG_F32, VOCAB, EMBED, &rng);
    cm->lstm = ag_nn_lstm(a, AG_F32, EMBED, hidden, (int)layers, true, &rng);
    cm->head = ag_nn_linear(a, AG_F32, hidden, VOCAB, true, &rng);
    if (!cm->model || !cm->embed || !cm->lstm || !cm->head ||
        ag_module_add_child(cm->model, "embed", cm->embed) ||
        ag_module_add_child(cm->model, "lstm", cm->lstm) ||
        ag_module_add_child(cm->model, "head", cm->head) ||
        !(cm->state = ag_module_state(cm->model)) ||
        !(cm->params = ag_module_parameters(cm->model)))
        return NULL;
    return cm;
}

/* One stretch of `len` steps of `streams` streams of text starting at
 * bytes[start[s] + offset]: the mean cross-entropy (nats) of predicting
 * each next byte, from the states h, c (L, streams, H); the stretch's last
 * states in *hn, *cn. NULL on error. */
static ag_tensor *stretch_loss(char_model *cm, ag_arena *step,
                               const unsigned char *bytes, const int64_t *start,
                               int64_t streams, int64_t offset, int64_t len,
                               ag_tensor *h, ag_tensor *c, ag_tensor **hn,
                               ag_tensor **cn)
{
    ag_tensor *ids = ag_zeros(step, AG_I32, 2, (int64_t[]){streams, len});
    ag_tensor *next = ag_zeros(step, AG_I32, 1, (int64_t[]){streams * len});
    if (!ids || !next) return NULL;
    int32_t *in = ag_data(ids), *out = ag_data(next);
    for (int64_t s = 0; s < streams; s++)
        for (int64_t j = 0; j < len; j++) {
            in[s * len + j] = bytes[start[s] + offset + j];
            out[s * len + j] = bytes[start[s] + offset + j + 1];
        }
    ag_tensor *y = ag_nn_lstm_forward(
        cm->lstm, step, ag_module_forward(cm->embed, step, ids), h, c, hn, cn);
    ag_tensor *logits = ag_reshape(step, ag_module_forward(cm->head, step, y),
                                   2, (int64_t[]){-1, VOCAB});
    return ag_softmax_cross_entropy(step, logits, next);
}

/* Sets the states h, c to the values of hn, cn (dropping their history);
 * after backward, which may read h and c. */
static void carry(ag_tensor *h, ag_tensor *c, const ag_tensor *hn,
                  const ag_tensor *cn)
{
    size_t bytes = (size_t)ag_numel(h) * sizeof(float);
    memcpy(ag_data(h), ag_data((ag_tensor *)hn), bytes);
    memcpy(ag_data(c), ag_data((ag_tensor *)cn), bytes);
}

/* Zero states (L, streams, H) for the model in `a`. */
static int make_states(ag_arena *a, const char_model *cm, int64_t streams,
                       ag_tensor **h, ag_tensor **c)
{
    int64_t shape[3] = {cm->layers, streams, cm->hidden};
    *h = ag_zeros(a, AG_F32, 3, shape);
    *c = ag_zeros(a, AG_F32, 3, shape);
    return *h && *c ? 0 : -1;
}

/* Bits per character on the held-out text (bytes [train, n)): EVAL_STREAMS
 * equal streams read side by side in stretches of `seq`, the state carried
 * over (kept in `data`; each stretch in `step`). Negative on error. */
static double heldout_bits(char_model *cm, const text *t, int64_t seq,
                           ag_arena *data, ag_arena *step)
{
    int64_t len = (t->n - t->train - 1) / EVAL_STREAMS;
    int64_t start[EVAL_STREAMS];
    for (int s = 0; s < EVAL_STREAMS; s++) start[s] = t->train + s * len;
    ag_tensor *h, *c, *hn, *cn;
    if (len < 1 || make_states(data, cm, EVAL_STREAMS, &h, &c)) return -1;
    bool was = ag_set_grad_enabled(false);
    double nats = 0;
    for (int64_t at = 0; at < len; at += seq) {
        int64_t n = at + seq <= len ? seq : len - at;
        ag_tensor *loss = stretch_loss(cm, step, t->bytes, start, EVAL_STREAMS,
                                       at, n, h, c, &hn, &cn);
        if (!loss) {
            nats = -1;
            break;
        }
        nats += ag_item(loss) * (double)n;
        carry(h, c, hn, cn);
        ag_arena_reset(step);
    }
    ag_set_grad_enabled(was);
    return nats < 0 ? -1 : nats / (double)len / log(2.0);
}

/* ---- sampling ---- */

/* Feeds `prompt` then writes `length` bytes sampled at `temperature` to
 * stdout. */
static int generate(char_model *cm, const options *o, ag_arena *data,
                    ag_arena *step)
{
    ag_tensor *h, *c;
    if (make_states(data, cm, 1, &h, &c)) return -1;
    ag_rng rng = ag_rng_seed(o->seed + 1);
    bool was = ag_set_grad_enabled(false);
    int64_t plen = (int64_t)strlen(o->prompt);
    unsigned char byte = plen ? (unsigned char)o->prompt[0] : '\n';
    fputs(o->prompt, stdout);
    int status = 0;
    for (int64_t i = 1; i < plen + o->length; i++) {
        ag_tensor *ids = ag_full(step, AG_I32, 2, (int64_t[]){1, 1}, byte);
        ag_tensor *hn, *cn;
        ag_tensor *y = ag_nn_lstm_forward(
            cm->lstm, step, ag_module_forward(cm->embed, step, ids), h, c, &hn,
            &cn);
        ag_tensor *logits = ag_module_forward(cm->head, step, y);
        if (!logits) {
            status = -1;
            break;
        }
        carry(h, c, hn, cn);
        if (i < plen) {
            byte = (unsigned char)o->prompt[i];
        } else { /* softmax(logits / temperature), sampled */
            const float *z = ag_data(logits);
            double p[VOCAB], top = z[0], sum = 0;
            for (int k = 1; k < VOCAB; k++) top = fmax(top, z[k]);
            for (int k = 0; k < VOCAB; k++)
                sum += p[k] = exp((z[k] - top) / o->temperature);
            double u = ag_rng_uniform(&rng) * sum;
            int k = 0;
            while (k < VOCAB - 1 && (u -= p[k]) >= 0) k++;
            byte = (unsigned char)k;
            putchar(byte);
        }
        ag_arena_reset(step);
    }
    putchar('\n');
    ag_set_grad_enabled(was);
    return status;
}

/* ---- training ---- */

static int save_checkpoint(const options *o, const char_model *cm, double bits)
{
    char hidden[32], layers[32], seq[32], b[32], held[32];
    snprintf(hidden, sizeof hidden, "%ld", cm->hidden);
    snprintf(layers, sizeof layers, "%ld", cm->layers);
    snprintf(seq, sizeof seq, "%ld", o->seq);
    snprintf(b, sizeof b, "%.4f", bits);
    snprintf(held, sizeof held, "%d", HELDOUT);
    const char *metadata[] = {"model",
                              "char_lstm",
                              "vocab",
                              "256",
                              "embed",
                              "64",
                              "hidden",
                              hidden,
                              "layers",
                              layers,
                              "seq",
                              seq,
                              "heldout_percent",
                              held,
                              "eval_streams",
                              "32",
                              "heldout_bits_per_char",
                              b,
                              "data",
                              o->data,
                              NULL};
    return ag_save_safetensors(o->save, cm->state, metadata);
}

static int train(const options *o, char_model *cm, const text *t,
                 ag_arena *data, ag_arena *step)
{
    int64_t streams = o->batch, len = (t->train - 1) / streams;
    int64_t per_epoch = len / o->seq;
    if (per_epoch < 1) {
        fprintf(stderr,
                "char_lstm: %lld training bytes are too few for %ld "
                "streams of %ld\n",
                (long long)t->train, o->batch, o->seq);
        return 1;
    }
    int64_t *start = ag_arena_alloc(data, (size_t)streams * sizeof *start);
    ag_adam_options adam = ag_adam_defaults();
    adam.lr = o->lr;
    ag_optimizer *opt = ag_adam_new(data, cm->params, &adam);
    ag_tensor *h, *c;
    if (!start || !opt || make_states(data, cm, streams, &h, &c))
        return fail("setting up training");
    for (int64_t s = 0; s < streams; s++) start[s] = s * len;
    printf("char_lstm: %lld bytes (%lld for training, %lld held out), %lld "
           "parameters, %lld steps an epoch\n",
           (long long)t->n, (long long)t->train, (long long)(t->n - t->train),
           (long long)ag_params_numel(cm->params), (long long)per_epoch);
    double begin = progress_now(), bits = 0, first = -1, last = 0;
    int64_t done = 0;
    plot_curve curve; /* each step's bits/char; held-out after each epoch */
    plot_curve_open(&curve, o->curve, "char_lstm", "step",
                    "training_bits_per_char,heldout_bits_per_char");
    for (long e = 1; e <= o->epochs && (!o->steps || done < o->steps); e++) {
        char label[64];
        snprintf(label, sizeof label, "epoch %ld/%ld", e, o->epochs);
        int64_t steps = per_epoch;
        if (o->steps && o->steps - done < steps) steps = o->steps - done;
        progress bar;
        progress_start(&bar, label, steps);
        memset(ag_data(h), 0, (size_t)ag_numel(h) * sizeof(float));
        memset(ag_data(c), 0, (size_t)ag_numel(c) * sizeof(float));
        double sum = 0;
        for (int64_t k = 0; k < steps; k++) {
            ag_tensor *hn, *cn;
            ag_tensor *loss = stretch_loss(cm, step, t->bytes, start, streams,
                                           k * o->seq, o->seq, h, c, &hn, &cn);
            if (!loss || ag_backward(loss) ||
                ag_clip_grad_norm(cm->params, CLIP) < 0 ||
                ag_optimizer_step(opt))
                return fail("training");
            carry(h, c, hn, cn);
            ag_optimizer_zero_grad(opt);
            last = ag_item(loss) / log(2.0);
            if (first < 0) first = last;
            sum += last;
            if (k + 1 < steps)
                plot_curve_add(&curve, (double)(done + k + 1),
                               (double[]){last, NAN});
            progress_step(&bar, k + 1, sum / (double)(k + 1), streams * o->seq);
            ag_arena_reset(step);
        }
        done += steps;
        progress_finish(&bar, sum / (double)steps);
        bits = heldout_bits(cm, t, o->seq, data, step);
        if (bits < 0) return fail("evaluating");
        plot_curve_add(&curve, (double)done, (double[]){last, bits});
        printf("epoch %ld: %lld steps, training %.4f bits/char, held-out "
               "%.4f bits/char (%.1f s)\n",
               e, (long long)steps, sum / (double)steps, bits,
               progress_now() - begin);
        fflush(stdout);
    }
    plot_curve_close(&curve);
    if (save_checkpoint(o, cm, bits)) return fail("saving");
    printf("char_lstm: training loss %.4f -> %.4f bits/char; held-out %.4f "
           "bits/char; checkpoint saved to %s\n",
           first, last, bits, o->save);
    return last < first ? 0
                        : (fprintf(stderr, "char_lstm: the loss did "
                                           "not fall\n"),
                           1);
}

/* The value of `key` in checkpoint metadata, as a count, or -1. */
static long meta_count(const char *const *kv, const char *key)
{
    for (; kv && kv[0]; kv += 2)
        if (!strcmp(kv[0], key)) return strtol(kv[1], NULL, 10);
    return -1;
}

static int run(options *o, ag_arena *data, ag_arena *step)
{
    if (o->eval) { /* the sizes come from the checkpoint */
        const char *const *kv = ag_load_safetensors_metadata(data, o->eval);
        if (!kv) return fail("reading the checkpoint");
        o->hidden = meta_count(kv, "hidden");
        o->layers = meta_count(kv, "layers");
        o->seq = meta_count(kv, "seq");
        for (; !o->data && kv[0]; kv += 2) /* the text it was trained on */
            if (!strcmp(kv[0], "data")) o->data = kv[1];
        if (o->hidden < 1 || o->layers < 1 || o->seq < 1) {
            fprintf(stderr, "char_lstm: %s is not a char_lstm checkpoint\n",
                    o->eval);
            return 1;
        }
    }
    if (!o->data) o->data = DEFAULT_DATA;
    char_model *cm = model_new(data, o->hidden, o->layers, o->seed);
    if (!cm) return fail("making the model");
    text t;
    if (load_text(o->data, &t)) {
        if (!strcmp(o->data, DEFAULT_DATA))
            fprintf(stderr, "Install the text with `apt-get install "
                            "fortunes`, or pass --data FILE|DIR.\n");
        free(t.bytes);
        return 1;
    }
    int status = 0;
    if (t.n - t.train < EVAL_STREAMS + 1) {
        fprintf(stderr, "char_lstm: %lld bytes are too few\n", (long long)t.n);
        status = 1;
    } else if (o->eval) {
        double bits = ag_load_safetensors(o->eval, cm->state)
                          ? -1
                          : heldout_bits(cm, &t, o->seq, data, step);
        if (bits < 0)
            status = fail("evaluating the checkpoint");
        else
            printf("char_lstm: %s: held-out %.4f bits/char\n", o->eval, bits);
    } else {
        status = train(o, cm, &t, data, step);
    }
    free(t.bytes);
    if (!status && o->length) {
        printf("--- sampled at temperature %.2f ---\n", o->temperature);
        if (generate(cm, o, data, step)) status = fail("sampling");
    }
    return status;
}

int main(int argc, char **argv)
{
    const char *usage =
        "usage: char_lstm [--data FILE|DIR] [--epochs N] [--steps N] "
        "[--hidden N] [--layers N] [--seq N] [--batch N] [--lr X] [--save "
        "FILE] [--eval FILE] [--curve FILE] [--prompt TEXT] [--temperature X] "
        "[--length N] [--seed N] [--threads N]\n";
    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    options o;
    if (parse_options(argc, argv, &o)) {
        fputs(usage, stderr);
        return 2;
    }
    if (o.threads) ag_set_num_threads((int)o.threads);
    ag_arena *data = ag_arena_new(), *step = ag_arena_new();
    int status = data && step ? run(&o, data, step) : fail("starting");
    ag_arena_free(step);
    ag_arena_free(data);
    return status;
}
