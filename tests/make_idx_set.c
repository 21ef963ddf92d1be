/* make_idx_set.c: writes a tiny stand-in for the Fashion-MNIST files, so
 * that the fashion_mnist example can be run end to end by the test suite
 * without the real data set: DIR/{train,t10k}-{images-idx3,labels-idx1}-
 * ubyte.gz with 28x28 pictures whose class shows as a bright row band.
 *
 * Run: make_idx_set DIR [TRAIN_COUNT TEST_COUNT]   (default 600 100) */
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#define SIDE 28

/* Writes one gzipped IDX file: magic 0 0 0x08 ndim, big-endian sizes, then
 * the bytes. */
static int write_idx(const char *dir, const char *name, int ndim,
                     const unsigned *dims, const unsigned char *bytes,
                     size_t count)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    gzFile f = gzopen(path, "wb");
    if (!f) return -1;
    unsigned char head[4 + 4 * 3] = {0, 0, 0x08, (unsigned char)ndim};
    for (int d = 0; d < ndim; d++)
        for (int b = 0; b < 4; b++)
            head[4 + 4 * d + b] = (unsigned char)(dims[d] >> (24 - 8 * b));
    int ok = gzwrite(f, head, (unsigned)(4 + 4 * ndim)) == 4 + 4 * ndim &&
             gzwrite(f, bytes, (unsigned)count) == (int)count;
    return gzclose(f) == Z_OK && ok ? 0 : -1;
}

/* Writes `n` examples: example i has class i % 10, drawn as rows
 * 2c+1 .. 2c+3 lit, plus noise from a fixed sequence. */
static int write_split(const char *dir, const char *prefix, unsigned n)
{
    unsigned char *pixels = malloc((size_t)n * SIDE * SIDE);
    unsigned char *labels = malloc(n);
    if (!pixels || !labels) return -1;
    unsigned noise = 12345;
    for (unsigned i = 0; i < n; i++) {
        labels[i] = (unsigned char)(i % 10);
        for (int p = 0; p < SIDE * SIDE; p++) {
            int row = p / SIDE, band = 2 * labels[i] + 1;
            noise = noise * 1103515245u + 12345u;
            int value = (int)((noise >> 16) % 64);
            if (row >= band && row < band + 3) value += 24;
            pixels[(size_t)i * SIDE * SIDE + p] = (unsigned char)value;
        }
    }
    char images[64], names[64];
    snprintf(images, sizeof images, "%s-images-idx3-ubyte.gz", prefix);
    snprintf(names, sizeof names, "%s-labels-idx1-ubyte.gz", prefix);
    int status = write_idx(dir, images, 3, (unsigned[]){n, SIDE, SIDE}, pixels,
                           (size_t)n * SIDE * SIDE) ||
                 write_idx(dir, names, 1, (unsigned[]){n}, labels, n);
    free(pixels);
    free(labels);
    return status;
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 4) {
        fprintf(stderr, "usage: make_idx_set DIR [TRAIN_COUNT TEST_COUNT]\n");
        return 2;
    }
    unsigned train = argc == 4 ? (unsigned)atoi(argv[2]) : 600;
    unsigned test = argc == 4 ? (unsigned)atoi(argv[3]) : 100;
    if (write_split(argv[1], "train", train) ||
        write_split(argv[1], "t10k", test)) {
        fprintf(stderr, "make_idx_set: cannot write into %s\n", argv[1]);
        return 1;
    }
    return 0;
}
