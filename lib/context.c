/* context.c: the per-thread state (last error message, grad mode, anomaly
 * detection) and the thread count shared with OpenBLAS. */
#include "internal.h"

#include <stdarg.h>

static _Thread_local char last_error[512];
static _Thread_local bool grad_disabled;   /* zero-initialised: enabled */
static _Thread_local bool anomaly_enabled; /* off by default */

/* Formats "<func>: <message>" into this thread's message. The text is
 * made in a buffer of its own first, so that the arguments may include
 * the pending message itself (ag_last_error()). */
static void set_message(const char *func, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void set_message(const char *func, const char *fmt, va_list ap)
{
    char text[sizeof last_error];
    int n = snprintf(text, sizeof text, "%s: ", func ? func : "");
    if (n < 0 || (size_t)n >= sizeof text) return;
    vsnprintf(text + n, sizeof text - (size_t)n, fmt, ap);
    memcpy(last_error, text, sizeof text);
}

void ag__error(const char *func, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_message(func, fmt, ap);
    va_end(ap);
}

void ag_set_error(const char *func, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_message(func, fmt, ap);
    va_end(ap);
}

int ag__null_input(const char *func, int index)
{
    if (!last_error[0]) ag__error(func, "input %d is NULL", index);
    return -1;
}

const char *ag_last_error(void)
{
    return last_error;
}

void ag_clear_error(void)
{
    last_error[0] = '\0';
}

bool ag_set_grad_enabled(bool on)
{
    bool previous = !grad_disabled;
    grad_disabled = !on;
    return previous;
}

bool ag_is_grad_enabled(void)
{
    return !grad_disabled;
}

bool ag_set_anomaly_detection(bool on)
{
    bool previous = anomaly_enabled;
    anomaly_enabled = on;
    return previous;
}

bool ag_is_anomaly_detection_enabled(void)
{
    return anomaly_enabled;
}

const char *ag__shape_str(char *buf, int ndim, const int64_t *shape)
{
    size_t used = 0;
    buf[used++] = '(';
    for (int d = 0; d < ndim && d < AG_MAX_DIMS; d++) {
        int n = snprintf(buf + used, AG_SHAPE_STR_MAX - used, "%s%lld",
                         d ? "," : "", (long long)shape[d]);
        if (n < 0 || (size_t)n >= AG_SHAPE_STR_MAX - used - 2) break;
        used += (size_t)n;
    }
    buf[used++] = ')';
    buf[used] = '\0';
    return buf;
}
