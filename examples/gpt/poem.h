/* poem.h: the regular form of a Tang poem, the preference that the DPO
 * stage teaches. A poem as tang300 writes it: a title line "《...》", an
 * author line "作者：...", then the body. The body is regular when
 *   - it has at least two lines (POEM_MIN_LINES: a quatrain, the
 *     shortest regular form), every line non-empty,
 *   - every line is exactly two half-lines, each a run of Han characters
 *     (U+3400-U+4DBF, U+4E00-U+9FFF, U+F900-U+FAFF) closed by one of the
 *     marks "，。？！；",
 *   - every half-line has the same number of Han characters, 5 or 7
 *     ("兰叶春葳蕤，桂华秋皎洁。": two halves of five).
 *   - no half-line is written twice (a poem that repeats one line is a
 *     loop, not the form: tang300 has none).
 * Blank lines (spaces only) are ignored; anything else in the body (Latin
 * letters, a third half-line, a missing mark) makes it irregular. */
#ifndef EXAMPLES_GPT_POEM_H
#define EXAMPLES_GPT_POEM_H

#include <stddef.h>

/* The lines of the shortest regular poem, a quatrain (tang300 writes a
 * couplet, two half-lines, a line). */
#define POEM_MIN_LINES 2

/* 5 or 7 when the poem text s[0..n) (UTF-8) is regular, its characters per
 * half-line; 0 otherwise. The title and author lines are optional (a
 * leading line beginning "《" is the title, then one beginning "作者" the
 * author). */
int poem_regular(const char *s, size_t n);

/* How much of the body keeps the form, in [0, 1], for comparing poems
 * that are not regular (a small model's are seldom): the body (as above)
 * cut into half-lines, each a run ended by one of the marks or by the end
 * of its line; W is 5 or 7, whichever more half-lines have (5 on a tie);
 * the score is the share of half-lines made of exactly W Han characters
 * and nothing else, and not written before in the poem, counting the half-lines
 * a poem shorter than a quatrain misses as not keeping it (the share of 2
 * POEM_MIN_LINES when it has fewer: one perfect line scores 0.5, so that a
 * preference for the score does not favour stopping short). A regular poem
 * scores 1; 0 for no half-line. */
double poem_form_score(const char *s, size_t n);

/* The half-lines of many poems, to measure how varied they are: a model
 * that writes the form by repeating a few lines from poem to poem keeps
 * the form, not the poetry. Zero-initialise; poem_lines_free. */
typedef struct {
    char **half; /* each a copy, NUL-terminated */
    size_t n, cap;
} poem_lines;

/* Adds the half-lines of poem s[0..n) that are Han characters only (the
 * body's, as poem_form_score cuts them). Returns 0, or -1 when out of
 * memory (the lines added so far stay). */
int poem_lines_add(poem_lines *l, const char *s, size_t n);

/* The number of distinct half-lines in l (it sorts them). */
size_t poem_lines_distinct(poem_lines *l);

void poem_lines_free(poem_lines *l);

#endif /* EXAMPLES_GPT_POEM_H */
