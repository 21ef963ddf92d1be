/* plot.c: the examples' gnuplot runner (see plot.h). */
#define _POSIX_C_SOURCE 200809L /* popen */
#include "plot.h"

#include <stdio.h>
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
