/* test_summary.c: ag_nn_summary against PyTorch (tests/fixtures/
 * summary_torch.h, made by make_summary_fixture.py): on examples/
 * cnn_model.c's CNN, an MLP Sequential with BatchNorm, Dropout and a
 * frozen bias, and a model of modules with a forward of their own (as
 * examples/custom_module.c's), every row's type, output shape and
 * parameter count as printed, and the totals. Then the table's layout, the
 * model left as it was (modes, hooks, BatchNorm's statistics, no
 * gradients), a child the forward did not run and a 0-d output, the
 * errors, and the forward hooks the summary is built on. */
#include "../examples/cnn_model.h"
#include "fixtures/summary_torch.h"
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the models, as the fixture's ---- */

/* examples/custom_module.c's block: x + fc2(gelu(fc1(norm(x)))). */
typedef struct {
    ag_module *norm, *fc1, *fc2;
} block;

static ag_tensor *block_forward(ag_module *m, ag_arena *step, ag_tensor *x)
{
    block *b = ag_module_self(m);
    ag_tensor *h =
        ag_gelu(step, ag_module_forward(b->fc1, step,
                                        ag_module_forward(b->norm, step, x)));
    return ag_add(step, x, ag_module_forward(b->fc2, step, h));
}

static const ag_module_type block_type = {"Block", block_forward};

static ag_module *block_new(ag_arena *a, int64_t d, ag_rng *rng)
{
    block *b = ag_arena_alloc(a, sizeof *b);
    ck_assert_ptr_nonnull(b);
    b->norm = ag_nn_layer_norm(a, AG_F32, 1, &d, 1e-5, true);
    b->fc1 = ag_nn_linear(a, AG_F32, d, d, true, rng);
    b->fc2 = ag_nn_linear(a, AG_F32, d, d, true, rng);
    ag_module *m = ag_module_new(a, &block_type, b);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(ag_module_add_child(m, "norm", b->norm), 0);
    ck_assert_int_eq(ag_module_add_child(m, "fc1", b->fc1), 0);
    ck_assert_int_eq(ag_module_add_child(m, "fc2", b->fc2), 0);
    return m;
}

/* Linear(10, 20), BatchNorm1d(20), ReLU, Dropout(0.5), Linear(20, 5), the
 * first bias frozen. */
static ag_module *mlp_new(ag_arena *a)
{
    ag_rng rng = ag_rng_seed(1);
    ag_module *parts[] = {
        ag_nn_linear(a, AG_F32, 10, 20, true, &rng),
        ag_nn_batch_norm1d(a, AG_F32, 20, 1e-5, 0.1, true, true),
        ag_nn_activation(a, AG_ACT_RELU), ag_nn_dropout(a, 0.5, 7),
        ag_nn_linear(a, AG_F32, 20, 5, true, &rng)};
    ag_module *m = ag_nn_sequential(a, 5, parts);
    ck_assert_ptr_nonnull(m);
    ag_requires_grad(ag_params_find(ag_module_own_parameters(parts[0]), "bias"),
                     false);
    return m;
}

static ag_module *blocks_new(ag_arena *a)
{
    ag_rng rng = ag_rng_seed(2);
    ag_module *parts[] = {ag_nn_linear(a, AG_F32, 2, 32, true, &rng),
                          block_new(a, 32, &rng), block_new(a, 32, &rng),
                          ag_nn_linear(a, AG_F32, 32, 2, true, &rng)};
    ag_module *m = ag_nn_sequential(a, 4, parts);
    ck_assert_ptr_nonnull(m);
    return m;
}

/* Fixture model i, built in a. */
static ag_module *model_new(ag_arena *a, int i)
{
    switch (i) {
    case 0:
        return cnn_model_new(a, 0);
    case 1:
        return mlp_new(a);
    default:
        return blocks_new(a);
    }
}

static ag_tensor *input_of(ag_arena *a, const summary_torch_model *fm)
{
    ag_tensor *x = ag_zeros(a, AG_F32, fm->input_ndim, fm->input_shape);
    ck_assert_ptr_nonnull(x);
    return x;
}

/* What ag_nn_summary printed (malloc'd; free it), and its return value. */
static char *summary_text(ag_module *m, ag_tensor *x, int *rc)
{
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    *rc = ag_nn_summary(m, x, f);
    long n = ftell(f);
    char *s = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(s);
    rewind(f);
    ck_assert_uint_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

/* ---- reading the table back ---- */

/* The integer with thousands commas at s ("421,642"; "--" reads as 0). */
static int64_t read_count(const char *s)
{
    int64_t v = 0;
    for (; *s == ',' || (*s >= '0' && *s <= '9'); s++)
        if (*s != ',') v = 10 * v + (*s - '0');
    return v;
}

/* The number after `label` in the text, failing when it is absent. */
static int64_t total_after(const char *text, const char *label)
{
    const char *p = strstr(text, label);
    ck_assert_msg(p != NULL, "no '%s' in\n%s", label, text);
    return read_count(p + strlen(label));
}

/* Checks one row line against the fixture's row: the type after the tree
 * drawing, the output shape and the parameter count. */
static void check_row(const char *model, int r, const char *line,
                      const summary_torch_row *want)
{
    const char *p = line;
    while (*p == ' ' || (unsigned char)*p >= 0x80) p++; /* the tree */
    size_t type_len = strcspn(p, ": ");
    ck_assert_msg(type_len == strlen(want->type) &&
                      !strncmp(p, want->type, type_len),
                  "%s row %d: '%s', PyTorch's %s", model, r, line, want->type);
    const char *open = strchr(p, '[');
    ck_assert_msg(open, "%s row %d: no shape in '%s'", model, r, line);
    int ndim = 0;
    int64_t shape[4] = {0};
    for (const char *q = open + 1; *q && *q != ']'; ndim++) {
        ck_assert_int_lt(ndim, 4);
        shape[ndim] = strtoll(q, (char **)&q, 10);
        if (*q == ',') q++;
    }
    ck_assert_msg(ndim == want->ndim &&
                      !memcmp(shape, want->shape, (size_t)ndim * sizeof *shape),
                  "%s row %d: shape in '%s' is not PyTorch's", model, r, line);
    const char *last = strrchr(line, ' ') + 1;
    ck_assert_msg(read_count(last) == want->params &&
                      (want->params || !strcmp(last, "--")),
                  "%s row %d: '%s', PyTorch counts %lld parameters", model, r,
                  line, (long long)want->params);
}

START_TEST(test_against_torch)
{
    const summary_torch_model *fm = &summary_torch[_i];
    ag_arena *a = ag_arena_new();
    ag_module *m = model_new(a, _i);
    ck_assert_ptr_nonnull(m);
    int rc;
    char *text = summary_text(m, input_of(a, fm), &rc);
    ck_assert_msg(rc == 0, "%s: %s", fm->name, ag_last_error());

    /* the rows: after the header's two rules, up to the next */
    char *line = strtok(text, "\n");
    for (int rules = 0; line && rules < 2; line = strtok(NULL, "\n"))
        rules += line[0] == '=';
    int r = 0;
    for (; line && line[0] != '='; line = strtok(NULL, "\n"), r++) {
        ck_assert_int_lt(r, fm->rows);
        check_row(fm->name, r, line, &summary_torch_rows[fm->rows_at + r]);
    }
    ck_assert_int_eq(r, fm->rows);
    free(text);

    text = summary_text(m, input_of(a, fm), &rc);
    ck_assert_int_eq(total_after(text, "\nTotal params: "), fm->total);
    ck_assert_int_eq(total_after(text, "\nTrainable params: "), fm->trainable);
    ck_assert_int_eq(total_after(text, "\nNon-trainable params: "),
                     fm->total - fm->trainable);
    free(text);
    ag_arena_free(a);
}
END_TEST

/* The layout, as torchinfo's: the columns, the tree and the sizes. */
START_TEST(test_layout)
{
    ag_arena *a = ag_arena_new();
    int rc;
    char *text =
        summary_text(cnn_model_new(a, 0), input_of(a, &summary_torch[0]), &rc);
    ck_assert_int_eq(rc, 0);
    char rule[92];
    memset(rule, '=', 90);
    rule[90] = '\n';
    rule[91] = '\0';
    ck_assert_msg(!strncmp(text, rule, 91), "'%s'", text);
    const char *lines[] = {"\nLayer (type:depth-idx)                  "
                           "Output Shape             "
                           "Param #\n",
                           "\nSequential                              "
                           "[2, 10]                  "
                           "--\n",
                           "\n├─Conv2d: 1-1                           "
                           "[2, 32, 28, 28]          "
                           "320\n",
                           "\n├─Linear: 1-8                           "
                           "[2, 128]                 "
                           "401,536\n",
                           "\n└─Linear: 1-10                          "
                           "[2, 10]                  "
                           "1,290\n",
                           "\nTotal params: 421,642\n",
                           "\nInput size (MB): 0.01\n", /* 2 x 784 floats */
                           "\nParams size (MB): 1.69\n" /* 421,642 floats */};
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++)
        ck_assert_msg(strstr(text, lines[i]), "no '%s' in\n%s", lines[i], text);
    free(text);

    text = summary_text(blocks_new(a), input_of(a, &summary_torch[2]), &rc);
    ck_assert_int_eq(rc, 0);
    const char *tree[] = {"\n├─Block: 1-2 ",       "\n│    ├─LayerNorm: 2-1 ",
                          "\n│    ├─Linear: 2-2 ", "\n│    └─Linear: 2-3 ",
                          "\n├─Block: 1-3 ",       "\n│    └─Linear: 2-6 ",
                          "\n└─Linear: 1-4 "};
    for (size_t i = 0; i < sizeof tree / sizeof *tree; i++)
        ck_assert_msg(strstr(text, tree[i]), "no '%s' in\n%s", tree[i], text);
    free(text);
    ag_arena_free(a);
}
END_TEST

/* A module that leaves its child unused and returns a scalar. */
static ag_tensor *sum_forward(ag_module *m, ag_arena *step, ag_tensor *x)
{
    (void)m;
    return ag_sum(step, x, AG_ALL, false);
}

static const ag_module_type sum_type = {"Sum", sum_forward};

START_TEST(test_unused_child_and_scalar)
{
    ag_arena *a = ag_arena_new();
    ag_rng rng = ag_rng_seed(4);
    ag_module *m = ag_module_new(a, &sum_type, NULL);
    ck_assert_int_eq(
        ag_module_add_child(m, "unused",
                            ag_nn_linear(a, AG_F64, 2, 3, false, &rng)),
        0);
    int rc;
    char *text =
        summary_text(m, ag_zeros(a, AG_F64, 2, (int64_t[]){4, 2}), &rc);
    ck_assert_int_eq(rc, 0);
    const char *lines[] = {
        "\nSum                                     []                       "
        "--\n",
        "\n└─Linear: 1-1                           --                       "
        "6\n",
        "\nInput size (MB): 0.00\n", "\nParams size (MB): 0.00\n"};
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++)
        ck_assert_msg(strstr(text, lines[i]), "no '%s' in\n%s", lines[i], text);
    free(text);
    ag_arena_free(a);
}
END_TEST

/* A forward hook that counts its calls in *user. */
static void count_call(ag_module *m, ag_tensor *in, ag_tensor *out, void *user)
{
    (void)m;
    ck_assert_ptr_nonnull(in);
    ck_assert_ptr_nonnull(out);
    ++*(int *)user;
}

START_TEST(test_model_left_as_it_was)
{
    ag_arena *a = ag_arena_new();
    ag_module *m = mlp_new(a);
    ag_module *batch_norm = ag_module_child_at(m, 1);
    ag_module *dropout = ag_module_child_at(m, 3);
    ag_module_set_training(dropout, false); /* modes mixed */
    int calls = 0;
    ag_module_set_forward_hook(ag_module_child_at(m, 0), count_call, &calls);
    ag_tensor *x = ag_ones(a, AG_F32, 2, (int64_t[]){4, 10});
    int rc;
    free(summary_text(m, x, &rc));
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(calls, 1); /* the user's hook ran in the summary */

    ck_assert(ag_module_is_training(m));
    ck_assert(ag_module_is_training(batch_norm));
    ck_assert(!ag_module_is_training(dropout));
    void *user = NULL;
    ck_assert(ag_module_get_forward_hook(ag_module_child_at(m, 0), &user) ==
              count_call);
    ck_assert_ptr_eq(user, &calls);
    for (int i = 1; i < 5; i++)
        ck_assert(!ag_module_get_forward_hook(ag_module_child_at(m, i), NULL));
    /* evaluation mode: BatchNorm's statistics untouched; nothing recorded */
    ag_params *buffers = ag_module_buffers(batch_norm);
    const ag_tensor *mean = ag_params_find(buffers, "running_mean");
    for (int i = 0; i < 20; i++) ck_assert(tensor_at(mean, i) == 0);
    ck_assert(tensor_at(ag_params_find(buffers, "num_batches_tracked"), 0) ==
              0);
    ag_params *params = ag_module_parameters(m);
    for (int i = 0; i < ag_params_count(params); i++)
        ck_assert_ptr_null(ag_grad(ag_params_tensor(params, i)));

    /* the hook still fires on a forward of the user's */
    ck_assert_ptr_nonnull(ag_module_forward(m, a, x));
    ck_assert_int_eq(calls, 2);
    ag_arena_free(a);
}
END_TEST

START_TEST(test_errors)
{
    ag_arena *a = ag_arena_new();
    ag_module *m = mlp_new(a);
    ag_tensor *x = ag_zeros(a, AG_F32, 2, (int64_t[]){4, 10});
    ck_assert_int_eq(ag_nn_summary(NULL, x, stdout), -1);
    ck_assert_str_eq(ag_last_error(), "ag_nn_summary: the module is NULL");
    ck_assert_int_eq(ag_nn_summary(m, NULL, stdout), -1);
    ck_assert_str_eq(ag_last_error(), "ag_nn_summary: the input is NULL");
    ck_assert_int_eq(ag_nn_summary(m, x, NULL), -1);
    ck_assert_str_eq(ag_last_error(), "ag_nn_summary: the FILE is NULL");

    /* a failing forward: its error, nothing printed, the model as before */
    int calls = 0, rc;
    ag_module_set_forward_hook(ag_module_child_at(m, 4), count_call, &calls);
    ag_tensor *wrong = ag_zeros(a, AG_F32, 2, (int64_t[]){4, 11});
    char *text = summary_text(m, wrong, &rc);
    ck_assert_int_eq(rc, -1);
    ck_assert_str_eq(text, "");
    ck_assert_msg(strstr(ag_last_error(), "Sequential: module 0 (Linear)") ==
                      ag_last_error(),
                  "'%s'", ag_last_error());
    free(text);
    ck_assert(ag_module_is_training(ag_module_child_at(m, 3)));
    ck_assert(ag_module_get_forward_hook(ag_module_child_at(m, 4), NULL) ==
              count_call);
    ck_assert(!ag_module_get_forward_hook(ag_module_child_at(m, 0), NULL));
    ck_assert_int_eq(calls, 0);
    ag_arena_free(a);
}
END_TEST

/* The forward hook itself: called after a successful forward only, with
 * the module's input and output; replaced and removed. */
typedef struct {
    int calls;
    ag_module *module;
    ag_tensor *input, *output;
} hook_log;

static void log_call(ag_module *m, ag_tensor *in, ag_tensor *out, void *user)
{
    hook_log *log = user;
    log->calls++;
    log->module = m;
    log->input = in;
    log->output = out;
}

START_TEST(test_forward_hook)
{
    ag_arena *a = ag_arena_new();
    ag_rng rng = ag_rng_seed(3);
    ag_module *lin = ag_nn_linear(a, AG_F64, 3, 2, true, &rng);
    ck_assert(!ag_module_get_forward_hook(lin, NULL));
    hook_log log = {0};
    ag_module_set_forward_hook(lin, log_call, &log);
    ag_tensor *x = ag_zeros(a, AG_F64, 2, (int64_t[]){5, 3});
    ag_tensor *y = ag_module_forward(lin, a, x);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(log.calls, 1);
    ck_assert_ptr_eq(log.module, lin);
    ck_assert_ptr_eq(log.input, x);
    ck_assert_ptr_eq(log.output, y);
    /* not after a failure */
    ck_assert_ptr_null(
        ag_module_forward(lin, a, ag_zeros(a, AG_F64, 2, (int64_t[]){5, 4})));
    ck_assert_int_eq(log.calls, 1);
    /* removed, and NULL modules */
    ag_module_set_forward_hook(lin, NULL, &log);
    void *user = &log;
    ck_assert(!ag_module_get_forward_hook(lin, &user));
    ck_assert_ptr_null(user);
    ck_assert_ptr_nonnull(ag_module_forward(lin, a, x));
    ck_assert_int_eq(log.calls, 1);
    ag_module_set_forward_hook(NULL, log_call, &log);
    ck_assert(!ag_module_get_forward_hook(NULL, &user));
    ag_arena_free(a);
}
END_TEST

static Suite *summary_suite(void)
{
    Suite *s = suite_create("summary");
    TCase *tc = tcase_create("summary");
    tcase_add_loop_test(tc, test_against_torch, 0, SUMMARY_TORCH_MODELS);
    tcase_add_test(tc, test_layout);
    tcase_add_test(tc, test_unused_child_and_scalar);
    tcase_add_test(tc, test_model_left_as_it_was);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_forward_hook);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(summary_suite());
}
