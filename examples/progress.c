/* progress.c: the examples' progress bar (see progress.h). */
#define _POSIX_C_SOURCE 200809L
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BAR_WIDTH 24
#define REDRAW_SECONDS 0.1

double progress_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_start(progress *p, const char *label, int64_t total)
{
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total > 0 ? total : 1;
    p->start = progress_now();
    p->interactive = isatty(fileno(stderr));
    p->unit = "samples";
}

static void draw(const progress *p, int64_t done, double loss, double now)
{
    char bar[BAR_WIDTH + 1];
    int filled = (int)(BAR_WIDTH * done / p->total);
    for (int i = 0; i < BAR_WIDTH; i++) bar[i] = i < filled ? '#' : '.';
    bar[BAR_WIDTH] = 0;
    double elapsed = now - p->start;
    fprintf(stderr, "%s%s [%s] %lld/%lld loss %.4f %.0f %s/s",
            p->interactive ? "\r" : "", p->label, bar, (long long)done,
            (long long)p->total, loss,
            elapsed > 0 ? (double)p->samples / elapsed : 0.0, p->unit);
    fflush(stderr);
}

void progress_step(progress *p, int64_t done, double loss, int64_t batch)
{
    p->samples += batch;
    if (!p->interactive) return;
    double now = progress_now();
    if (now - p->last_draw < REDRAW_SECONDS && done < p->total) return;
    p->last_draw = now;
    draw(p, done, loss, now);
}

double progress_finish(progress *p, double loss)
{
    double now = progress_now();
    draw(p, p->total, loss, now);
    fputc('\n', stderr);
    return now > p->start ? (double)p->samples / (now - p->start) : 0;
}
