/* fashion_dist.c: fashion_run (fashion.h), the Fashion-MNIST examples'
 * data parallel mode: under mpirun (or with --dist) it starts
 * libautograd-dist and gives fashion_main the fashion_dist hooks (ag_ddp:
 * the same model on every rank from rank 0, the gradients averaged, rank 0
 * writing the checkpoint). Built with AG_EXAMPLE_DIST when libautograd-dist
 * is; without it --dist is refused. */
#include "fashion.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef AG_EXAMPLE_DIST
#include <autograd/dist.h>
#endif

#ifdef AG_EXAMPLE_DIST
/* What the hooks share: the process group and the data parallel wrapper. */
typedef struct {
    ag_dist *dist;
    ag_ddp *ddp;
} dist_state;

static int dist_start(void *self, ag_arena *a, ag_params *parameters)
{
    dist_state *s = self;
    s->ddp = ag_ddp_new(a, s->dist, parameters, NULL, NULL);
    return s->ddp ? 0 : -1;
}

static int dist_backward(void *self, ag_tensor *loss)
{
    return ag_ddp_backward(((dist_state *)self)->ddp, loss);
}

static int dist_save(void *self, const char *path, const ag_params *state,
                     const char *const *metadata)
{
    return ag_ddp_save(((dist_state *)self)->ddp, path, state, metadata);
}
#endif

/* Whether to train data parallel: --dist (taken out of argv), or a run
 * under Open MPI's mpirun. */
static bool wants_dist(int *argc, char **argv)
{
    bool on = getenv("OMPI_COMM_WORLD_SIZE") != NULL;
    for (int i = 1; i < *argc; i++)
        if (strcmp(argv[i], "--dist") == 0) {
            on = true;
            memmove(argv + i, argv + i + 1, (size_t)(*argc - i) * sizeof *argv);
            (*argc)--;
            i--;
        }
    return on;
}

int fashion_run(int argc, char **argv, fashion_spec *spec)
{
    if (!wants_dist(&argc, argv)) return fashion_main(argc, argv, spec);
#ifdef AG_EXAMPLE_DIST
    dist_state s = {ag_dist_init(&argc, &argv, NULL), NULL};
    if (!s.dist) {
        fprintf(stderr, "%s: %s\n", spec->program, ag_last_error());
        return 1;
    }
    fashion_dist d = {.rank = ag_dist_rank(s.dist),
                      .world = ag_dist_size(s.dist),
                      .self = &s,
                      .start = dist_start,
                      .backward = dist_backward,
                      .save = dist_save};
    spec->dist = &d;
    int status = fashion_main(argc, argv, spec);
    spec->dist = NULL;
    ag_dist_finalize(s.dist);
    return status;
#else
    fprintf(stderr,
            "%s: --dist needs libautograd-dist, which was not built (no MPI "
            "found)\n",
            spec->program);
    return 2;
#endif
}
