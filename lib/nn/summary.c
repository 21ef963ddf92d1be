/* summary.c: ag_nn_summary, a model's module tree as torchinfo.summary
 * prints it: each module's output shape in one forward on a given input
 * (recorded by a forward hook on every module, which also calls the
 * module's own hook), its parameter count, the totals and the sizes.
 *
 *   ==========================================================================================
 *   Layer (type:depth-idx)                   Output Shape              Param #
 *   ==========================================================================================
 *   Sequential                               [1, 10]                   --
 *   ├─Conv2d: 1-1                            [1, 32, 28, 28]           320
 *   ...
 *
 * The forward runs with grad mode off, in evaluation mode, in an arena of
 * its own; the modules' modes and hooks are put back afterwards. */
#include "../internal.h"

#include <inttypes.h>

#define NAME_COLUMN 40  /* display columns of "Layer (type:depth-idx)" */
#define SHAPE_COLUMN 25 /* of "Output Shape" */
#define RULE_WIDTH 90

/* One row of the table: a module of the tree, in tree order. */
typedef struct {
    ag_module *module;
    int depth;  /* 0 for the model itself */
    int index;  /* torchinfo's idx: the count of modules at this depth */
    int parent; /* the parent's row, -1 for the model */
    bool last;  /* the last child of its parent */
    bool was_training;
    ag_module_forward_hook user_hook; /* the module's own, called too */
    void *user_hook_user;
    bool ran; /* the forward ran it; its last output: */
    int out_ndim;
    int64_t out_shape[AG_MAX_DIMS];
    int64_t out_bytes;
} summary_row;

/* The number of modules in m's tree. */
static int count_modules(const ag_module *m)
{
    int n = 1;
    for (int i = 0; i < ag_module_child_count(m); i++)
        n += count_modules(ag_module_child_at(m, i));
    return n;
}

/* Fills rows from *next on with m's tree, m at `depth` under row parent;
 * per_depth[d] counts the rows at depth d so far. */
static void list_rows(ag_module *m, int depth, int parent, bool last,
                      summary_row *rows, int *next, int *per_depth)
{
    int me = (*next)++;
    rows[me] = (summary_row){.module = m,
                             .depth = depth,
                             .index = ++per_depth[depth],
                             .parent = parent,
                             .last = last,
                             .was_training = ag_module_is_training(m)};
    int n = ag_module_child_count(m);
    for (int i = 0; i < n; i++)
        list_rows(ag_module_child_at(m, i), depth + 1, me, i == n - 1, rows,
                  next, per_depth);
}

/* The summary's forward hook: keeps the output's shape, then calls the
 * module's own hook. */
static void record_output(ag_module *m, ag_tensor *input, ag_tensor *output,
                          void *user)
{
    summary_row *r = user;
    r->ran = true;
    r->out_ndim = ag_ndim(output);
    memcpy(r->out_shape, ag_shape(output),
           (size_t)r->out_ndim * sizeof *r->out_shape);
    r->out_bytes = ag_numel(output) * (int64_t)ag__dtype_size(ag_type(output));
    if (r->user_hook) r->user_hook(m, input, output, r->user_hook_user);
}

/* n with thousands separated by commas ("421,642") into buf (32 bytes). */
static const char *with_commas(char *buf, int64_t n)
{
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%" PRId64, n), o = 0;
    for (int i = 0; i < len; i++) {
        if (i > 0 && digits[i - 1] != '-' && (len - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

/* Columns taken by UTF-8 text (one per code point). */
static int display_width(const char *s)
{
    int w = 0;
    for (; *s; s++) w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

/* Writes s and spaces up to `width` columns (at least one space). */
static void put_column(FILE *out, const char *s, int width)
{
    int pad = width - display_width(s);
    fprintf(out, "%s%*s", s, pad > 1 ? pad : 1, "");
}

static void put_rule(FILE *out, char c)
{
    for (int i = 0; i < RULE_WIDTH; i++) fputc(c, out);
    fputc('\n', out);
}

/* The tree drawing and name of row r ("│    └─Linear: 2-1") into buf. */
static void row_name(char *buf, size_t size, const summary_row *rows, int r)
{
    const summary_row *row = &rows[r];
    if (row->depth == 0) {
        snprintf(buf, size, "%s", ag_module_type_name(row->module));
        return;
    }
    /* the ancestors between the model and the row, outermost first:
     * a bar under each that has siblings still to come */
    const char *bars[AG_PARAM_NAME_MAX];
    int n = 0;
    for (int a = row->parent; rows[a].depth > 0 && n < AG_PARAM_NAME_MAX;
         a = rows[a].parent)
        bars[n++] = rows[a].last ? "     " : "│    ";
    size_t len = 0;
    buf[0] = '\0';
    for (int i = n - 1; i >= 0 && len < size; i--)
        len += (size_t)snprintf(buf + len, size - len, "%s", bars[i]);
    if (len < size)
        snprintf(buf + len, size - len, "%s%s: %d-%d", row->last ? "└─" : "├─",
                 ag_module_type_name(row->module), row->depth, row->index);
}

/* The shape as torchinfo writes it, "[1, 32, 28, 28]", into buf. */
static const char *shape_text(char *buf, size_t size, int ndim,
                              const int64_t *shape)
{
    size_t len = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < ndim && len < size; d++)
        len += (size_t)snprintf(buf + len, size - len,
                                d ? ", %" PRId64 : "%" PRId64, shape[d]);
    if (len < size) snprintf(buf + len, size - len, "]");
    return buf;
}

/* Prints the table of the rows, whose forward ran on `input`. */
static void print_table(FILE *out, const summary_row *rows, int n,
                        const ag_tensor *input)
{
    int64_t total = 0, trainable = 0, param_bytes = 0, pass_bytes = 0;
    char name[512], shape[AG_SHAPE_STR_MAX + 8], count[32];
    put_rule(out, '=');
    put_column(out, "Layer (type:depth-idx)", NAME_COLUMN);
    put_column(out, "Output Shape", SHAPE_COLUMN);
    fprintf(out, "Param #\n");
    put_rule(out, '=');
    for (int r = 0; r < n; r++) {
        const summary_row *row = &rows[r];
        const ag_params *own = ag_module_own_parameters(row->module);
        int64_t params = ag_params_numel(own);
        for (int i = 0; i < ag_params_count(own); i++) {
            const ag_tensor *p = ag_params_tensor(own, i);
            if (ag_is_requires_grad(p)) trainable += ag_numel(p);
            param_bytes += ag_numel(p) * (int64_t)ag__dtype_size(ag_type(p));
        }
        total += params;
        if (row->ran && ag_module_child_count(row->module) == 0)
            pass_bytes += 2 * row->out_bytes;
        row_name(name, sizeof name, rows, r);
        put_column(out, name, NAME_COLUMN);
        put_column(out,
                   row->ran ? shape_text(shape, sizeof shape, row->out_ndim,
                                         row->out_shape)
                            : "--",
                   SHAPE_COLUMN);
        fprintf(out, "%s\n", params ? with_commas(count, params) : "--");
    }
    put_rule(out, '=');
    fprintf(out, "Total params: %s\n", with_commas(count, total));
    fprintf(out, "Trainable params: %s\n", with_commas(count, trainable));
    fprintf(out, "Non-trainable params: %s\n",
            with_commas(count, total - trainable));
    put_rule(out, '=');
    double input_mb = (double)(ag_numel(input) *
                               (int64_t)ag__dtype_size(ag_type(input))) /
                      1e6,
           pass_mb = (double)pass_bytes / 1e6,
           params_mb = (double)param_bytes / 1e6;
    fprintf(out, "Input size (MB): %.2f\n", input_mb);
    fprintf(out, "Forward/backward pass size (MB): %.2f\n", pass_mb);
    fprintf(out, "Params size (MB): %.2f\n", params_mb);
    fprintf(out, "Estimated Total Size (MB): %.2f\n",
            input_mb + pass_mb + params_mb);
    put_rule(out, '=');
}

int ag_nn_summary(ag_module *m, ag_tensor *input, FILE *out)
{
    const char *func = "ag_nn_summary";
    if (!m || !input || !out) {
        ag__error(func, "%s is NULL",
                  !m       ? "the module"
                  : !input ? "the input"
                           : "the FILE");
        return -1;
    }
    int n = count_modules(m);
    ag_arena *scratch = ag_arena_new();
    summary_row *rows = scratch
                            ? ag__arena_alloc(scratch, (size_t)n * sizeof *rows,
                                              _Alignof(summary_row))
                            : NULL;
    int *per_depth =
        rows ? ag__arena_alloc(scratch, (size_t)n * sizeof(int), _Alignof(int))
             : NULL;
    if (!per_depth) {
        ag_arena_free(scratch);
        ag__error(func, "out of memory for the %d modules' rows", n);
        return -1;
    }
    memset(per_depth, 0, (size_t)n * sizeof(int));
    int next = 0;
    list_rows(m, 0, -1, true, rows, &next, per_depth);

    for (int r = 0; r < n; r++) {
        summary_row *row = &rows[r];
        row->user_hook =
            ag_module_get_forward_hook(row->module, &row->user_hook_user);
        ag_module_set_forward_hook(row->module, record_output, row);
    }
    ag_module_set_training(m, false);
    bool grad_was = ag_set_grad_enabled(false);
    ag_tensor *y = ag_module_forward(m, scratch, input);
    ag_set_grad_enabled(grad_was);
    /* back as they were: hooks in reverse order (a module listed twice gets
     * its own hook back last), modes in tree order (a module's mode is set
     * on its children, then each child's own) */
    for (int r = n - 1; r >= 0; r--)
        ag_module_set_forward_hook(rows[r].module, rows[r].user_hook,
                                   rows[r].user_hook_user);
    for (int r = 0; r < n; r++)
        ag_module_set_training(rows[r].module, rows[r].was_training);
    if (y) print_table(out, rows, n, input);
    ag_arena_free(scratch);
    if (!y) return -1; /* the forward's error stands */
    if (ferror(out)) {
        ag__error(func, "writing the summary failed");
        return -1;
    }
    return 0;
}
