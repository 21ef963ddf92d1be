/* plot.h: the examples' plots. Runs a gnuplot script over a CSV file the
 * example wrote, when gnuplot is on PATH, and says so when it is not. */
#ifndef EXAMPLES_PLOT_H
#define EXAMPLES_PLOT_H

/* Feeds gnuplot the lines "CSV = '<csv>'", "set output '<image>'" and then
 * `script`, which sets the terminal (svg, png, ...) and plots from CSV.
 * Prints what happened: the image plotted, gnuplot missing (with the
 * package that installs it) or failing, or a path it cannot quote.
 * Returns 0 when the image was plotted, -1 otherwise; an example carries
 * on either way, its data being in the CSV. */
int plot_csv(const char *csv, const char *image, const char *script);

#endif /* EXAMPLES_PLOT_H */
