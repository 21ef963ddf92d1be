/* plot.c: the examples' gnuplot runner and training curves (see plot.h). */
#define _POSIX_C_SOURCE 200809L /* popen */
#include "plot.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int plot_csv(const char *csv, const char *image, const char *script)
{
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
        printf("gnuplot is not on PATH; skipping the plot (install it, "
               "e.g. apt-get install gnuplot-nox, to get %s)\n",
               image);
        return -1;
    }
    if (strchr(csv, '\'') || strchr(image, '\'')) {
        printf("not plotting: unusual path %s\n", image);
        return -1;
    }
    FILE *gp = popen("gnuplot", "w");
    if (!gp) {
        perror("gnuplot");
        return -1;
    }
    fprintf(gp, "CSV = '%s'\nset output '%s'\n%s", csv, image, script);
    if (pclose(gp) != 0) {
        printf("gnuplot failed; the data is in %s\n", csv);
        return -1;
    }
    printf("plotted %s\n", image);
    return 0;
}

int plot_path_replace(char *buf, size_t size, const char *path,
                      const char *from, const char *to)
{
    size_t len = strlen(path), from_len = strlen(from);
    if (len > from_len && strcmp(path + len - from_len, from) == 0)
        len -= from_len;
    int n = snprintf(buf, size, "%.*s%s", (int)len, path, to);
    return n >= 0 && (size_t)n < size ? 0 : -1;
}

/* Splits the comma separated header into c->names; -1 when it has no
 * column, too many, or a name too long. */
static int parse_header(plot_curve *c, const char *header)
{
    c->columns = 0;
    for (const char *s = header; *s;) {
        size_t len = strcspn(s, ",");
        if (len == 0 || len >= sizeof c->names[0] ||
            c->columns == PLOT_CURVE_MAX_COLUMNS)
            return -1;
        memcpy(c->names[c->columns], s, len);
        c->names[c->columns][len] = 0;
        c->columns++;
        s += len + (s[len] == ',');
    }
    return c->columns > 0 ? 0 : -1;
}

int plot_curve_open(plot_curve *c, const char *csv, const char *title,
                    const char *x_name, const char *header)
{
    memset(c, 0, sizeof *c);
    bool too_long =
        strlen(csv) >= sizeof c->csv ||
        plot_path_replace(c->svg, sizeof c->svg, csv, ".csv", ".svg");
    if (too_long || parse_header(c, header)) {
        fprintf(stderr, "not writing a curve: %s\n",
                too_long ? "its path is too long" : "bad column names");
        return -1;
    }
    snprintf(c->csv, sizeof c->csv, "%s", csv);
    snprintf(c->title, sizeof c->title, "%s", title);
    snprintf(c->x_name, sizeof c->x_name, "%s", x_name);
    for (int k = 0; k < c->columns; k++) {
        c->min[k] = INFINITY, c->max[k] = -INFINITY;
        c->positive[k] = true;
    }
    c->file = fopen(csv, "w");
    if (!c->file) {
        perror(csv);
        return -1;
    }
    fprintf(c->file, "%s,%s\n", x_name, header);
    return 0;
}

void plot_curve_add(plot_curve *c, double x, const double *values)
{
    if (!c->file) return;
    fprintf(c->file, "%.10g", x);
    for (int k = 0; k < c->columns; k++) {
        double v = values[k];
        if (isnan(v)) {
            fputc(',', c->file);
            continue;
        }
        fprintf(c->file, ",%.8g", v);
        c->min[k] = fmin(c->min[k], v), c->max[k] = fmax(c->max[k], v);
        c->positive[k] = c->positive[k] && v > 0;
    }
    fputc('\n', c->file);
    c->rows++;
}

/* The gnuplot script: one panel per column, stacked, titled by the
 * column's name. */
static void write_script(const plot_curve *c, char *script, size_t size)
{
    size_t n = (size_t)snprintf(
        script, size,
        "set terminal svg size 800,%d dynamic\n"
        "set datafile separator ','\n"
        "set grid\n"
        "set key off\n"
        "set multiplot layout %d,1 title '%s' noenhanced\n",
        60 + 240 * c->columns, c->columns, c->title);
    for (int k = 0; k < c->columns && n < size; k++) {
        bool log_scale = c->positive[k] && c->max[k] >= 100 * c->min[k];
        n += (size_t)snprintf(
            script + n, size - n,
            "%s\nset title '%s' noenhanced\n%s%s%s"
            "plot CSV using 1:%d with linespoints pointtype 7 "
            "pointsize 0.3\n",
            log_scale ? "set logscale y" : "unset logscale y", c->names[k],
            k + 1 == c->columns ? "set xlabel '" : "",
            k + 1 == c->columns ? c->x_name : "",
            k + 1 == c->columns ? "' noenhanced\n" : "", k + 2);
    }
    if (n < size) snprintf(script + n, size - n, "unset multiplot\n");
}

int plot_curve_close(plot_curve *c)
{
    if (!c->file) return -1;
    int status = ferror(c->file) ? -1 : 0;
    if (fclose(c->file) != 0) status = -1;
    c->file = NULL;
    if (status) {
        fprintf(stderr, "writing %s failed\n", c->csv);
        return -1;
    }
    printf("wrote the training curve (%ld rows) to %s\n", c->rows, c->csv);
    char script[4096];
    if (strchr(c->title, '\'') || strchr(c->x_name, '\'')) /* unquotable */
        c->title[0] = c->x_name[0] = 0;
    write_script(c, script, sizeof script);
    if (c->rows > 0) plot_csv(c->csv, c->svg, script);
    return 0;
}
