/* parallel.c: the library's own worker threads, which split large matrix
 * products and elementwise kernels.
 *
 * ag_set_num_threads(n) asks for n threads: the calling thread and n - 1
 * workers, started on first use and kept (waiting on a condition variable)
 * until the process exits, when they are stopped and joined. OpenBLAS is then
 * held to one thread, so each part of a product runs OpenBLAS's single-threaded
 * kernel and the cores are never oversubscribed; OpenBLAS's own threading
 * allocates on every call, these workers never do. One job runs at a time: a
 * thread that finds the workers busy runs the parts of its job one after
 * another. A job is always split in as many parts as ag_set_num_threads asked
 * for, so its rounding, and every result, depends on that count alone, never on
 * which thread got the workers. A worker runs its part in the floating-point
 * mode of the thread that gave the job (flushing subnormals or not), so that
 * a part computes the same on a worker as on the caller. */
#include "fpenv.h"
#include "internal.h"

#include <cblas.h>
#include <pthread.h>

static struct {
    pthread_mutex_t lock; /* guards every field below */
    pthread_cond_t wake;  /* a new job (generation changed) */
    pthread_cond_t done;  /* pending reached 0 */
    int threads; /* asked for: the caller and threads - 1 workers; 0 until
                    ag_set_num_threads, when OpenBLAS threads as it likes */
    int started; /* workers running */
    bool busy;   /* a job is being run */
    bool quit;   /* the process is exiting: workers return */
    pthread_t worker[AG_MAX_THREADS];
    uint64_t generation; /* counts jobs */
    ag_parallel_fn *fn;
    void *arg;
    ag_fp_mode mode; /* the job's floating-point mode: its caller's */
    uint64_t born[AG_MAX_THREADS]; /* generation when worker i started */
    int parts;   /* of the current job; part 0 runs on the caller */
    int pending; /* parts still running on workers */
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER,
          .threads = 0};

static void *worker(void *index_ptr)
{
    int index = (int)(intptr_t)index_ptr; /* runs part `index` of each job */
    pthread_mutex_lock(&pool.lock);
    uint64_t seen = pool.born[index]; /* the job it was started for is new */
    while (true) {
        while (pool.generation == seen && !pool.quit)
            pthread_cond_wait(&pool.wake, &pool.lock);
        if (pool.quit) break;
        seen = pool.generation;
        if (index >= pool.parts) continue;
        ag_parallel_fn *fn = pool.fn;
        void *arg = pool.arg;
        int parts = pool.parts;
        ag_fp_mode mode = pool.mode;
        pthread_mutex_unlock(&pool.lock);
        ag__fp_set_mode(mode);
        fn(arg, index, parts);
        pthread_mutex_lock(&pool.lock);
        if (--pool.pending == 0) pthread_cond_signal(&pool.done);
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

/* In the child of a fork only the forking thread exists: the pool starts
 * again from no workers (the parent's lock state is not inherited in use:
 * a fork during a job is the caller's error, as with any library). */
static void forget_workers(void)
{
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pthread_cond_init(&pool.done, NULL);
    pool.started = 0;
    pool.busy = false;
}

/* At exit the workers are stopped and joined, so that nothing the library
 * started outlives it (and leak checkers see every thread's memory back). */
__attribute__((destructor)) static void stop_workers(void)
{
    pthread_mutex_lock(&pool.lock);
    pool.quit = true;
    int started = pool.started;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    for (int i = 1; i <= started; i++) pthread_join(pool.worker[i], NULL);
    pthread_mutex_lock(&pool.lock);
    pool.started = 0;
    pthread_mutex_unlock(&pool.lock);
}

/* Starts workers up to threads - 1 (with pool.lock held); returns how many
 * run. A worker that cannot start leaves the pool smaller (and jobs are run
 * part by part on the caller). */
static int start_workers(void)
{
    static bool fork_handler;
    if (!fork_handler && pool.started < pool.threads - 1)
        fork_handler = pthread_atfork(NULL, NULL, forget_workers) == 0;
    while (pool.started < pool.threads - 1 && !pool.quit) {
        int index = pool.started + 1;
        pool.born[index] = pool.generation;
        if (pthread_create(&pool.worker[index], NULL, worker,
                           (void *)(intptr_t)index))
            break;
        pool.started++;
    }
    return pool.started;
}

int ag_set_num_threads(int n)
{
    if (n < 1) {
        ag__error("ag_set_num_threads", "thread count must be >= 1, got %d", n);
        return -1;
    }
    pthread_mutex_lock(&pool.lock);
    pool.threads = n < AG_MAX_THREADS ? n : AG_MAX_THREADS;
    pthread_mutex_unlock(&pool.lock);
    openblas_set_num_threads(1);
    return 0;
}

int ag_get_num_threads(void)
{
    pthread_mutex_lock(&pool.lock);
    int n = pool.threads;
    pthread_mutex_unlock(&pool.lock);
    return n ? n : openblas_get_num_threads();
}

void ag__parallel(int parts, ag_parallel_fn *fn, void *arg)
{
    pthread_mutex_lock(&pool.lock);
    if (parts > pool.threads) parts = pool.threads > 1 ? pool.threads : 1;
    bool alone = parts <= 1 || pool.busy || start_workers() < parts - 1;
    if (alone) { /* the same parts, so the same rounding, one by one */
        pthread_mutex_unlock(&pool.lock);
        for (int part = 0; part < parts; part++) fn(arg, part, parts);
        return;
    }
    pool.busy = true;
    pool.fn = fn;
    pool.arg = arg;
    pool.mode = ag__fp_mode();
    pool.parts = parts;
    pool.pending = parts - 1;
    pool.generation++;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    fn(arg, 0, parts);
    pthread_mutex_lock(&pool.lock);
    while (pool.pending > 0) pthread_cond_wait(&pool.done, &pool.lock);
    pool.busy = false;
    pthread_mutex_unlock(&pool.lock);
}

void ag__part_range(int64_t n, int64_t align, int part, int parts, int64_t *lo,
                    int64_t *hi)
{
    int64_t chunk = (n + parts - 1) / parts;
    chunk = (chunk + align - 1) / align * align;
    *lo = part * chunk < n ? part * chunk : n;
    *hi = *lo + chunk < n ? *lo + chunk : n;
}

/* ag__parallel_for's job: the range function and its argument. */
typedef struct {
    int64_t n;
    ag_range_fn *fn;
    void *arg;
} range_job;

static void range_part(void *arg, int part, int parts)
{
    const range_job *j = arg;
    int64_t lo, hi;
    ag__part_range(j->n, 16, part, parts, &lo, &hi);
    if (hi > lo) j->fn(j->arg, lo, hi);
}

void ag__parallel_for(int64_t n, ag_range_fn *fn, void *arg)
{
    if (n < AG_PARALLEL_MIN_ELEMENTS) {
        if (n > 0) fn(arg, 0, n);
        return;
    }
    range_job job = {n, fn, arg};
    ag__parallel(AG_MAX_THREADS, range_part, &job);
}
