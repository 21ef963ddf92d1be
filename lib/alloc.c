/* alloc.c: the library's one door to the heap. Every malloc, calloc,
 * realloc and free of the library (arena blocks, the backward pass's
 * scratch arrays, file buffers, zlib's state, the DOT exporter's table, the
 * JSON reader's stack) goes through these functions, which tests can make
 * fail on purpose, as SQLite's fault injection does: a per-thread countdown
 * makes the n-th allocation from now return NULL, and a per-thread counter
 * tells how many allocations a call makes, so that a test can fail each of
 * them in turn and check every failure path. The cost is a thread-local
 * increment and test per call to malloc; the arena's bump allocation never
 * comes here. */
#include "internal.h"

#include <stdlib.h>

static _Thread_local long countdown;   /* 0: no failure planned */
static _Thread_local bool persist;     /* the planned failure repeats */
static _Thread_local bool failing;     /* it has come and repeats */
static _Thread_local long allocations; /* attempts so far, failed included */

bool ag__alloc_fails(void)
{
    allocations++;
    if (failing) return true;
    if (countdown == 0 || --countdown > 0) return false;
    failing = persist;
    return true;
}

void *ag__malloc(size_t size)
{
    return ag__alloc_fails() ? NULL : malloc(size);
}

void *ag__calloc(size_t count, size_t size)
{
    return ag__alloc_fails() ? NULL : calloc(count, size);
}

void *ag__realloc(void *p, size_t size)
{
    return ag__alloc_fails() ? NULL : realloc(p, size);
}

void ag__free(void *p)
{
    free(p);
}

void ag__fail_allocation(long n)
{
    countdown = n > 0 ? n : 0;
    persist = false;
    failing = false;
}

void ag__fail_allocations_from(long n)
{
    ag__fail_allocation(n);
    persist = n > 0;
}

long ag__allocation_count(void)
{
    return allocations;
}
