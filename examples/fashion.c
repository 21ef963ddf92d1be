/* fashion.c: the Fashion-MNIST examples' shared parts (see fashion.h):
 * options, the IDX splits, the epoch loop, the test accuracy, and the
 * checkpoint's save and reload. */
#include "fashion.h"
#include "plot.h"
#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLASSES 10
#define BATCH 128
#define EVAL_BATCH 1000
#define DEFAULT_DATA "/usr/share/datasets/fashion-mnist"

typedef struct {
    const char *data, *save, *eval, *curve;
    long epochs, threads;
    uint64_t seed;
} options;

typedef struct {
    ag_tensor *x, *y; /* (N, image shape) in [0, 1], (N) labels */
    ag_batcher *eval; /* the test split's batches of EVAL_BATCH, in order */
} split;

/* What every function here needs: the example's description, its options
 * and its model. */
typedef struct {
    const fashion_spec *spec;
    options o;
    fashion_model m;
} run_state;

/* Whether this process prints progress and results: the only one, or
 * rank 0 of a data parallel job. */
static bool speaks(const fashion_spec *spec)
{
    return !spec->dist || spec->dist->rank == 0;
}

static int fail(const fashion_spec *spec, const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", spec->program, what, ag_last_error());
    return 1;
}

/* A whole number >= min from text, or -1 (after a message) when it is not
 * one. */
static long parse_count(const fashion_spec *spec, const char *flag,
                        const char *text, long min)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (end == text || *end || v < min) {
        fprintf(stderr, "%s: %s needs a whole number >= %ld, got \"%s\"\n",
                spec->program, flag, min, text);
        return -1;
    }
    return v;
}

/* Reads the flags into o (the default names of the checkpoint and the
 * training curve in save and curve, of `size` bytes each); returns -1
 * after a message for a bad one. */
static int parse_options(const fashion_spec *spec, int argc, char **argv,
                         options *o, char *save, char *curve, size_t size)
{
    snprintf(save, size, "%s.safetensors", spec->program);
    snprintf(curve, size, "%s_curve.csv", spec->program);
    *o = (options){
        .data = DEFAULT_DATA, .save = save, .curve = curve, .epochs = 10};
    for (int i = 1; i < argc; i += 2) {
        const char *flag = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!value) {
            fprintf(stderr, "%s: %s needs a value\n", spec->program, flag);
            return -1;
        }
        if (strcmp(flag, "--data") == 0)
            o->data = value;
        else if (strcmp(flag, "--save") == 0)
            o->save = value;
        else if (strcmp(flag, "--eval") == 0)
            o->eval = value;
        else if (strcmp(flag, "--curve") == 0)
            o->curve = value;
        else if (strcmp(flag, "--epochs") == 0)
            o->epochs = parse_count(spec, flag, value, 1);
        else if (strcmp(flag, "--threads") == 0)
            o->threads = parse_count(spec, flag, value, 1);
        else if (strcmp(flag, "--seed") == 0)
            o->seed = (uint64_t)parse_count(spec, flag, value, 0);
        else {
            fprintf(stderr, "%s: unknown option %s\n", spec->program, flag);
            return -1;
        }
        if (o->epochs < 0 || o->threads < 0 || o->seed == UINT64_MAX) return -1;
    }
    return 0;
}

/* Loads <dir>/<name>.gz, or <dir>/<name> when there is no gzipped file,
 * into `a`; the path it read is left in path. */
static ag_tensor *load_idx_file(ag_arena *a, const char *dir, const char *name,
                                ag_dtype dt, char *path, size_t size)
{
    snprintf(path, size, "%s/%s.gz", dir, name);
    FILE *gz = fopen(path, "rb");
    if (gz)
        fclose(gz);
    else
        snprintf(path, size, "%s/%s", dir, name);
    return ag_load_idx(a, path, dt);
}

/* Says in why (empty when all is well) what is wrong with images (N, 28,
 * 28) and labels (N) classes in [0, 10) read from the paths given. */
static void check_split(const ag_tensor *images, const ag_tensor *labels,
                        const char *images_path, const char *labels_path,
                        char *why, size_t size)
{
    const int64_t *shape = ag_shape(images);
    int64_t n = ag_shape(labels)[0];
    const int32_t *label = ag_data((ag_tensor *)labels);
    if (ag_ndim(images) != 3 || shape[1] != 28 || shape[2] != 28)
        snprintf(why, size,
                 "%s holds %d-D data of %lld values; need (N, 28, 28) images",
                 images_path, ag_ndim(images), (long long)ag_numel(images));
    else if (ag_ndim(labels) != 1)
        snprintf(why, size, "%s holds %d-D data; need (N) labels", labels_path,
                 ag_ndim(labels));
    else if (n != shape[0])
        snprintf(why, size, "%s holds %lld labels for %lld images", labels_path,
                 (long long)n, (long long)shape[0]);
    for (int64_t i = 0; !*why && i < n; i++)
        if (label[i] < 0 || label[i] >= CLASSES)
            snprintf(why, size,
                     "%s: label %d of example %lld is not a class in [0, %d)",
                     labels_path, label[i], (long long)i, CLASSES);
}

/* Loads the <prefix> split's images and labels (IDX files, gzipped or not)
 * into `a`, the pixels scaled to [0, 1] and each image shaped as the spec
 * says. Returns 0; -1 when a file cannot be loaded (ag_last_error() says
 * why); or -2, after a message on stderr that names the file, when the
 * images are not (N, 28, 28) or the labels not (N) classes in [0, 10). */
static int load_split(const fashion_spec *spec, ag_arena *a, const char *dir,
                      const char *prefix, split *s)
{
    char images_path[4096], labels_path[4096], name[64], why[4400] = "";
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", prefix);
    ag_tensor *images =
        load_idx_file(a, dir, name, AG_F32, images_path, sizeof images_path);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", prefix);
    s->y = images ? load_idx_file(a, dir, name, AG_I32, labels_path,
                                  sizeof labels_path)
                  : NULL;
    if (!s->y) return -1;
    check_split(images, s->y, images_path, labels_path, why, sizeof why);
    if (*why) {
        fprintf(stderr, "%s: %s\n", spec->program, why);
        return -2;
    }
    int64_t shape[4] = {-1};
    memcpy(shape + 1, spec->image_shape,
           (size_t)spec->image_ndim * sizeof *shape);
    s->x = ag_reshape(a, images, spec->image_ndim + 1, shape);
    if (!s->x) return -1;
    float *pixel = ag_data(s->x);
    for (int64_t i = 0; i < ag_numel(s->x); i++) pixel[i] /= 255.0f;
    return 0;
}

/* Percentage of the split's examples the model classifies correctly, or a
 * negative number on error; each batch is built in `scratch`, reset after
 * it. */
static double test_accuracy(const fashion_model *m, const split *s,
                            ag_arena *scratch)
{
    ag_batcher *b = s->eval;
    bool was = ag_set_grad_enabled(false);
    m->set_training(m->model, false);
    int64_t correct = 0;
    ag_tensor *bx, *by;
    int got;
    while ((got = ag_batcher_next(b, scratch, &bx, &by)) == 1) {
        ag_tensor *predicted =
            ag_argmax(scratch, m->forward(m->model, scratch, bx), 1);
        if (!predicted) {
            got = -1;
            break;
        }
        const int32_t *p = ag_data(predicted), *label = ag_data(by);
        for (int64_t i = 0; i < ag_numel(by); i++) correct += p[i] == label[i];
        ag_arena_reset(scratch);
    }
    m->set_training(m->model, true);
    ag_set_grad_enabled(was);
    return got < 0 ? -1 : 100.0 * (double)correct / (double)ag_shape(s->y)[0];
}

/* One pass over the training split, the learning rate constant or
 * following a cosine from the spec's at the first step of training to 0
 * after the last (`total` steps); returns the epoch's mean loss or a
 * negative number on error. */
static double train_epoch(const run_state *r, ag_optimizer *opt,
                          ag_batcher *batches, ag_arena *step, int64_t total,
                          const char *label)
{
    const fashion_dist *dist = r->spec->dist;
    bool speak = speaks(r->spec);
    progress bar;
    if (speak) progress_start(&bar, label, ag_batcher_count(batches));
    double loss_sum = 0, lr = r->spec->learning_rate;
    ag_tensor *bx, *by;
    int got;
    int64_t n = 0;
    while ((got = ag_batcher_next(batches, step, &bx, &by)) == 1) {
        ag_optimizer_set_lr(
            opt, r->spec->cosine
                     ? ag_lr_cosine(lr, 0, ag_optimizer_steps(opt), 0, total)
                     : lr);
        ag_tensor *loss = ag_softmax_cross_entropy(
            step, r->m.forward(r->m.model, step, bx), by);
        int failed = dist ? dist->backward(dist->self, loss)
                          : !loss || ag_backward(loss);
        if (failed || ag_optimizer_step(opt)) return -1;
        ag_optimizer_clear_grad(opt);
        loss_sum += ag_item(loss);
        n++;
        if (speak)
            progress_step(&bar, n, loss_sum / (double)n,
                          ag_shape(bx)[0] * (dist ? dist->world : 1));
        ag_arena_reset(step);
    }
    if (speak) progress_finish(&bar, loss_sum / (double)n);
    return got < 0 ? -1 : loss_sum / (double)n;
}

static int save_checkpoint(const run_state *r, double accuracy)
{
    char acc[32], epochs[32];
    snprintf(acc, sizeof acc, "%.2f", accuracy);
    snprintf(epochs, sizeof epochs, "%ld", r->o.epochs);
    const char *metadata[] = {
        "model", r->spec->model, "test_accuracy", acc, "epochs", epochs, NULL};
    const fashion_dist *dist = r->spec->dist;
    return dist ? dist->save(dist->self, r->o.save, r->m.state, metadata)
                : ag_save_safetensors(r->o.save, r->m.state, metadata);
}

/* Measures the checkpoint o.eval on the test split. */
static int evaluate(const run_state *r, const split *test, ag_arena *step)
{
    if (ag_load_safetensors(r->o.eval, r->m.state))
        return fail(r->spec, "loading the checkpoint");
    double accuracy = test_accuracy(&r->m, test, step);
    if (accuracy < 0) return fail(r->spec, "evaluating");
    if (speaks(r->spec))
        printf("%s: %s: test accuracy %.2f%%\n", r->spec->program, r->o.eval,
               accuracy);
    return 0;
}

/* Trains for o.epochs, reporting the test accuracy after each, and saves
 * the checkpoint. */
static int train(const run_state *r, const split *train_split,
                 const split *test, ag_arena *data, ag_arena *step)
{
    const char *program = r->spec->program;
    ag_optimizer *opt = ag_adam_new(data, r->m.parameters, NULL);
    ag_batcher *batches = ag_batcher_new(data, train_split->x, train_split->y,
                                         BATCH, true, r->o.seed, false);
    const fashion_dist *dist = r->spec->dist;
    bool speak = speaks(r->spec);
    if (!opt || !batches ||
        (dist && (dist->start(dist->self, data, r->m.parameters) ||
                  ag_batcher_shard(batches, dist->rank, dist->world))))
        return fail(r->spec, "setting up training");
    if (speak)
        printf("%s: %lld training and %lld test images, %lld parameters%s\n",
               program, (long long)ag_shape(train_split->y)[0],
               (long long)ag_shape(test->y)[0],
               (long long)ag_params_numel(r->m.parameters),
               dist ? ", data parallel" : "");
    if (dist && speak)
        printf("%s: %d processes, each with 1/%d of every batch of %d (the "
               "loss shown is rank 0's part's)\n",
               program, dist->world, dist->world, BATCH);
    plot_curve curve = {0};
    if (speak)
        plot_curve_open(&curve, r->o.curve, program, "epoch",
                        "training_loss,test_accuracy_percent");
    double start = progress_now(), accuracy = 0;
    long epochs = r->o.epochs;
    int64_t total = epochs * ag_batcher_count(batches);
    for (long e = 1; e <= epochs; e++) {
        char label[64];
        snprintf(label, sizeof label, "epoch %ld/%ld", e, epochs);
        double loss = train_epoch(r, opt, batches, step, total, label);
        accuracy = loss < 0 ? -1 : test_accuracy(&r->m, test, step);
        ag_arena_reset(step);
        if (accuracy < 0) return fail(r->spec, "training");
        if (speak)
            printf("epoch %ld/%ld: loss %.4f, test accuracy %.2f%%\n", e,
                   epochs, loss, accuracy);
        plot_curve_add(&curve, (double)e, (double[]){loss, accuracy});
        fflush(stdout);
    }
    if (speak) plot_curve_close(&curve);
    if (save_checkpoint(r, accuracy)) return fail(r->spec, "saving");
    if (speak)
        printf("%s: test accuracy %.2f%% after %ld epochs (%.1f s); "
               "checkpoint saved to %s\n",
               program, accuracy, epochs, progress_now() - start, r->o.save);
    return 0;
}

/* Loads the data and runs what the options ask for; data and the model
 * live in `data`, each step's graph in `step`. */
static int run(run_state *r, ag_arena *data, ag_arena *step)
{
    const options *o = &r->o;
    split train_split, test;
    int loaded = load_split(r->spec, data, o->data, "train", &train_split);
    if (!loaded) loaded = load_split(r->spec, data, o->data, "t10k", &test);
    if (loaded == -1) { /* a file that could not be read */
        fail(r->spec, "loading the data");
        if (strcmp(o->data, DEFAULT_DATA) == 0)
            fprintf(stderr, "Install the data set with `apt-get install "
                            "dataset-fashion-mnist`, or pass --data DIR.\n");
        else
            fprintf(stderr,
                    "%s must hold train-images-idx3-ubyte, "
                    "train-labels-idx1-ubyte, t10k-images-idx3-ubyte "
                    "and t10k-labels-idx1-ubyte (each may end in "
                    ".gz).\n",
                    o->data);
    }
    if (loaded) return 1;
    test.eval =
        ag_batcher_new(data, test.x, test.y, EVAL_BATCH, false, 0, false);
    if (!test.eval) return fail(r->spec, "setting up the test batches");
    if (r->spec->make(data, o->seed, &r->m) ||
        (r->spec->describe && speaks(r->spec) && r->spec->describe(r->m.model)))
        return fail(r->spec, "making the model");
    return o->eval ? evaluate(r, &test, step)
                   : train(r, &train_split, &test, data, step);
}

int fashion_main(int argc, char **argv, const fashion_spec *spec)
{
    char usage[256], save[256], curve[256];
    snprintf(usage, sizeof usage,
             "usage: %s [--data DIR] [--epochs N] [--save FILE] [--eval FILE] "
             "[--curve FILE] [--threads N] [--seed N] [--dist]\n",
             spec->program);
    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    run_state r = {.spec = spec};
    if (parse_options(spec, argc, argv, &r.o, save, curve, sizeof save)) {
        fputs(usage, stderr);
        return 2;
    }
    if (r.o.threads) ag_set_num_threads((int)r.o.threads);
    ag_arena *data = ag_arena_new(), *step = ag_arena_new();
    int status = data && step ? run(&r, data, step) : fail(spec, "starting");
    ag_arena_free(step);
    ag_arena_free(data);
    return status;
}
