/* graph_dot.c: draws the graph of a small MLP's loss, after a backward
 * pass, as Graphviz DOT: every tensor with its op, shape, dtype, whether
 * it requires a gradient and its gradient's norm, the parameters labelled
 * with their names ("layers.0.weight", ...), as torchviz's params= does.
 *
 *   usage: graph_dot [out.dot]        (default mlp.dot)
 *
 * When Graphviz's `dot` is on PATH it also renders out.svg; otherwise it
 * says how to install it. */
#include "plot.h"
#include <autograd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Renders `dot_path` as SVG next to it with Graphviz, when it is there. */
static void render(const char *dot_path)
{
    if (system("command -v dot >/dev/null 2>&1") != 0) {
        printf("Graphviz's dot is not on PATH; install it (Debian/Ubuntu: "
               "apt-get install graphviz) and run\n  dot -Tsvg %s -o "
               "graph.svg\n",
               dot_path);
        return;
    }
    char svg[PLOT_PATH_MAX], cmd[2 * PLOT_PATH_MAX + 32];
    /* out.dot -> out.svg; any other name gets .svg appended */
    if (strchr(dot_path, '\'') ||
        plot_path_replace(svg, sizeof svg, dot_path, ".dot", ".svg")) {
        printf("not rendering: unusual path %s\n", dot_path);
        return;
    }
    snprintf(cmd, sizeof cmd, "dot -Tsvg '%s' -o '%s'", dot_path, svg);
    if (system(cmd) == 0)
        printf("rendered %s\n", svg);
    else
        printf("dot failed: %s\n", cmd);
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "mlp.dot";
    ag_arena *a = ag_arena_new();
    ag_rng rng = ag_rng_seed(1);

    /* a 3 -> 5 -> 2 MLP (ReLU) on a batch of 4, squared error */
    ag_mlp *mlp =
        ag_mlp_new(a, 3, (int64_t[]){3, 5, 2}, &(ag_mlp_options){.seed = 1});
    ag_tensor *x = ag_rand(a, AG_F32, 2, (int64_t[]){4, 3}, -1, 1, &rng);
    ag_tensor *y = ag_rand(a, AG_F32, 2, (int64_t[]){4, 2}, -1, 1, &rng);
    ag_tensor *out = ag_mlp_forward(a, mlp, x);
    ag_tensor *loss = ag_mse_loss(a, out, y);
    if (!loss || ag_backward(loss)) {
        fprintf(stderr, "%s\n", ag_last_error());
        return 1;
    }

    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return 1;
    }
    /* the parameters' names on their leaves */
    ag_tensor *params[16];
    const char *names[16];
    int n = ag_params_count(mlp->params);
    for (int i = 0; i < n && i < 16; i++) {
        params[i] = ag_params_tensor(mlp->params, i);
        names[i] = ag_params_name(mlp->params, i);
    }
    int status = ag_write_dot_named(loss, n < 16 ? n : 16, params, names, f);
    if (fclose(f) != 0) status = -1;
    if (status) {
        fprintf(stderr, "writing %s: %s\n", path, ag_last_error());
        return 1;
    }
    printf("loss %.4f; wrote the graph to %s\n", ag_item(loss), path);
    render(path);
    ag_arena_free(a);
    return 0;
}
