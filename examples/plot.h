/* plot.h: the examples' plots and training curves. plot_csv runs a gnuplot
 * script over a CSV file the example wrote, when gnuplot is on PATH, and
 * says so when it is not; a plot_curve is a training run's loss (and
 * accuracy, or whatever else it follows) per epoch or per logged step,
 * written as CSV while the run goes and plotted as SVG at its end. */
#ifndef EXAMPLES_PLOT_H
#define EXAMPLES_PLOT_H

#include <stdbool.h>
#include <stdio.h>

/* Feeds gnuplot the lines "CSV = '<csv>'", "set output '<image>'" and then
 * `script`, which sets the terminal (svg, png, ...) and plots from CSV.
 * Prints what happened: the image plotted, gnuplot missing (with the
 * package that installs it) or failing, or a path it cannot quote.
 * Returns 0 when the image was plotted, -1 otherwise; an example carries
 * on either way, its data being in the CSV. */
int plot_csv(const char *csv, const char *image, const char *script);

#define PLOT_CURVE_MAX_COLUMNS 8
#define PLOT_PATH_MAX 1024

/* Writes `path` with its ending `from` (".csv") replaced by `to` (".svg"),
 * or with `to` appended when it does not end in `from`, into buf of `size`
 * bytes. Returns 0, or -1 when that does not fit. */
int plot_path_replace(char *buf, size_t size, const char *path,
                      const char *from, const char *to);

/* A training curve: rows of (x, values...) in <name>.csv, plotted at the
 * end to <name>.svg (the CSV's path with .svg for .csv), one panel per
 * column against x, each on a log scale when its values are positive and
 * span a factor of 100 or more (a falling loss). */
typedef struct {
    FILE *file; /* NULL when the curve could not be opened (then every call
                   below does nothing) */
    char csv[PLOT_PATH_MAX], svg[PLOT_PATH_MAX], title[128], x_name[48];
    int columns;
    char names[PLOT_CURVE_MAX_COLUMNS][48];
    double min[PLOT_CURVE_MAX_COLUMNS], max[PLOT_CURVE_MAX_COLUMNS];
    bool positive[PLOT_CURVE_MAX_COLUMNS]; /* every value so far > 0 */
    long rows;
} plot_curve;

/* Starts the curve in `csv` (a path ending in .csv, or any other, which
 * gets .svg appended for the plot), titled `title`, its header
 * "<x_name>,<header>" where header names the columns, comma separated
 * ("loss" or "loss,test_accuracy", at most PLOT_CURVE_MAX_COLUMNS). On
 * failure (the file cannot be written, a bad header) says why on stderr
 * and returns -1; c->file is then NULL and the run goes on without a
 * curve. */
int plot_curve_open(plot_curve *c, const char *csv, const char *title,
                    const char *x_name, const char *header);

/* Appends the row (x, values[0..columns-1]); a NaN value is written as an
 * empty field (a gap in its panel). */
void plot_curve_add(plot_curve *c, double x, const double *values);

/* Closes the CSV, says where it is, and plots it (plot_csv). Returns 0, or
 * -1 when the CSV could not be written completely (a plot that could not
 * be made is not an error: gnuplot may be missing). */
int plot_curve_close(plot_curve *c);

#endif /* EXAMPLES_PLOT_H */
