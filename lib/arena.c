/* arena.c: bump-pointer arenas that own every tensor and graph node.
 *
 * An arena is a list of blocks. Allocation bumps a pointer in the current
 * block and moves on to the next block (or a new one) when it is full. Reset
 * rewinds every block; when the arena grew more than one block it is first
 * merged into one block of the total size, so that a training step that
 * repeats the same allocations runs out of a single block with no call to
 * malloc from the second step on. */
#include "internal.h"

/* Under AddressSanitizer the unused part of every block is poisoned, so
 * that reading or writing past the end of a tensor is reported even though
 * the bytes belong to the arena's malloc'd block. */
#if defined(__SANITIZE_ADDRESS__)
#define AG_ARENA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AG_ARENA_ASAN 1
#endif
#endif
#ifdef AG_ARENA_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define ARENA_MIN_BLOCK ((size_t)1 << 16)
#define ARENA_ALIGN 64

typedef struct block {
    struct block *next;
    size_t size; /* usable bytes after the header */
    size_t used;
} block;

struct ag_arena {
    block *first;
    block *current;
    size_t capacity;        /* sum of the blocks' sizes */
    ag_tensor **scratch[2]; /* ag_backward's working arrays */
    size_t scratch_cap[2];
};

/* The usable bytes of a block start at the first 64-byte boundary after its
 * header. */
static unsigned char *block_base(block *b)
{
    uintptr_t p = (uintptr_t)(b + 1);
    return (unsigned char *)((p + ARENA_ALIGN - 1) &
                             ~(uintptr_t)(ARENA_ALIGN - 1));
}

static block *block_new(size_t size)
{
    /* malloc gives no object over PTRDIFF_MAX bytes; asking would only
     * make Valgrind and the sanitizers report a "negative" size. */
    if (size > (size_t)PTRDIFF_MAX - sizeof(block) - ARENA_ALIGN) return NULL;
    block *b = ag__malloc(sizeof(block) + ARENA_ALIGN + size);
    if (!b) return NULL;
    b->next = NULL;
    b->size = size;
    b->used = 0;
    POISON(block_base(b), size);
    return b;
}

ag_arena *ag_arena_new(void)
{
    ag_arena *a = ag__calloc(1, sizeof *a);
    if (!a) {
        ag__error("ag_arena_new", "out of memory");
        return NULL;
    }
    return a;
}

/* Takes `size` bytes at `align` from block b, or returns NULL if they don't
 * fit. */
static void *block_take(block *b, size_t size, size_t align)
{
    size_t start = (b->used + align - 1) & ~(align - 1);
    if (start > b->size || size > b->size - start) return NULL;
    b->used = start + size;
    UNPOISON(block_base(b) + start, size);
    return block_base(b) + start;
}

void *ag__arena_alloc(ag_arena *a, size_t size, size_t align)
{
    for (block *b = a->current; b; b = b->next) {
        void *p = block_take(b, size, align);
        if (p) {
            a->current = b;
            return p;
        }
    }
    size_t want = a->capacity > ARENA_MIN_BLOCK ? a->capacity : ARENA_MIN_BLOCK;
    if (want < size + align) want = size + align;
    if (want < size) return NULL; /* size + align overflowed */
    block *b = block_new(want);
    if (!b) return NULL;
    if (!a->first) {
        a->first = b;
    } else {
        block *last = a->first;
        while (last->next) last = last->next;
        last->next = b;
    }
    a->capacity += want;
    a->current = b;
    return block_take(b, size, align);
}

static void free_blocks(block *b)
{
    while (b) {
        block *next = b->next;
        ag__free(b);
        b = next;
    }
}

void ag_arena_reset(ag_arena *a)
{
    if (!a || !a->first) return;
    if (a->first->next) {
        block *merged = block_new(a->capacity);
        if (merged) { /* otherwise keep the old blocks: they still work */
            free_blocks(a->first);
            a->first = merged;
        }
    }
    for (block *b = a->first; b; b = b->next) {
        b->used = 0;
        POISON(block_base(b), b->size);
    }
    a->current = a->first;
}

void ag_arena_free(ag_arena *a)
{
    if (!a) return;
    free_blocks(a->first);
    ag__free(a->scratch[0]);
    ag__free(a->scratch[1]);
    ag__free(a);
}

size_t ag_arena_capacity(const ag_arena *a)
{
    return a ? a->capacity : 0;
}

ag_tensor **ag__arena_scratch(ag_arena *a, int which, size_t count)
{
    if (count <= a->scratch_cap[which]) return a->scratch[which];
    size_t cap = a->scratch_cap[which] ? a->scratch_cap[which] : 1024;
    while (cap < count) {
        if (cap > SIZE_MAX / 2 / sizeof(ag_tensor *)) return NULL;
        cap *= 2;
    }
    ag_tensor **grown = ag__realloc(a->scratch[which], cap * sizeof *grown);
    if (!grown) return NULL;
    a->scratch[which] = grown;
    a->scratch_cap[which] = cap;
    return grown;
}
