/* test_print.c: ag_print and ag_snprint against PyTorch's repr, byte for
 * byte (tests/fixtures/print_torch.h, made by make_print_fixture.py): 0-d,
 * 1-d to 4-d, summarised, integer, fixed and scientific modes, nan and inf,
 * f64 and i32 suffixes, empty tensors, wrapped rows, views; then what the
 * fixture cannot show (grad_fn, snprintf's cutting, the errors, a failed
 * allocation writing nothing). */
#include "../lib/internal.h"
#include "fixtures/print_torch.h"
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The tensor of fixture case c in a (the pattern's values for a large
 * one), the view the case prints, requiring a gradient when it says so. */
static ag_tensor *case_tensor(ag_arena *a, const print_torch_case *c)
{
    ag_tensor *t = ag_zeros(a, c->dtype, c->ndim, c->shape);
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; i < ag_numel(t); i++) {
        double v = c->values_at >= 0
                       ? print_torch_values[c->values_at + i]
                       : (double)((i * c->pattern.mul) % c->pattern.mod -
                                  c->pattern.mod / 2) *
                             c->pattern.scale;
        if (c->dtype == AG_I32)
            ((int32_t *)ag_data(t))[i] = (int32_t)v;
        else
            tensor_set(t, i, v);
    }
    if (c->view == 1) t = ag_transpose(a, t, 0, 1);
    if (c->view == 2) t = ag_slice(a, t, 1, 0, INT64_MAX, 2);
    ck_assert_ptr_nonnull(t);
    if (c->requires_grad) ag_requires_grad(t, true);
    return t;
}

/* What ag_print wrote for t (malloc'd, NUL-terminated; free it). */
static char *printed(const ag_tensor *t, int64_t threshold)
{
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(ag_print(t, f, threshold), 0);
    long n = ftell(f);
    ck_assert_int_ge(n, 0);
    char *s = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(s);
    rewind(f);
    ck_assert_uint_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

START_TEST(test_against_torch)
{
    const print_torch_case *c = &print_torch[_i];
    ag_arena *a = ag_arena_new();
    ag_tensor *t = case_tensor(a, c);
    size_t want = strlen(c->expected);
    char *buf = malloc(want + 16);
    ck_assert_ptr_nonnull(buf);
    int64_t n = ag_snprint(buf, want + 16, t, c->threshold);
    ck_assert_msg(n == (int64_t)want && strcmp(buf, c->expected) == 0,
                  "%s: ag_snprint gave\n%s\nPyTorch printed\n%s", c->label, buf,
                  c->expected);
    char *line = printed(t, c->threshold);
    ck_assert_msg(strncmp(line, c->expected, want) == 0 &&
                      strcmp(line + want, "\n") == 0,
                  "%s: ag_print wrote\n%s", c->label, line);
    free(line);
    free(buf);
    ag_arena_free(a);
}
END_TEST

START_TEST(test_views_and_history)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *x =
        ag_from_data(a, AG_F32, 1, (int64_t[]){4}, (float[]){0.5f, 1, 2, 4});
    ag_requires_grad(x, true);
    /* a view sharing x's storage; a result of recorded ops */
    ag_tensor *m = ag_reshape(a, x, 2, (int64_t[]){2, 2});
    char buf[256];
    ag_snprint(buf, sizeof buf, m, AG_PRINT_THRESHOLD);
    ck_assert_str_eq(buf, "tensor([[0.5000, 1.0000],\n"
                          "        [2.0000, 4.0000]], grad_fn=<reshape>)");
    ag_snprint(buf, sizeof buf, ag_add(a, x, x), AG_PRINT_THRESHOLD);
    ck_assert_str_eq(buf, "tensor([1., 2., 4., 8.], grad_fn=<add>)");
    /* no history while grad mode is off */
    bool was = ag_set_grad_enabled(false);
    ag_snprint(buf, sizeof buf, ag_add(a, x, x), AG_PRINT_THRESHOLD);
    ag_set_grad_enabled(was);
    ck_assert_str_eq(buf, "tensor([1., 2., 4., 8.])");
    ag_arena_free(a);
}
END_TEST

START_TEST(test_threshold_negative_shows_all)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *t = ag_zeros(a, AG_I32, 1, (int64_t[]){2000});
    char *all = printed(t, -1), *summary = printed(t, AG_PRINT_THRESHOLD);
    int commas = 0;
    for (const char *p = all; *p; p++) commas += *p == ',';
    ck_assert_int_eq(commas, 1999 + 1); /* and the dtype's */
    ck_assert_ptr_null(strstr(all, "..."));
    ck_assert_ptr_nonnull(strstr(summary, "0, 0, 0,  ..., 0, 0, 0]"));
    free(all);
    free(summary);
    ag_arena_free(a);
}
END_TEST

START_TEST(test_snprint_cuts_as_snprintf)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *t =
        ag_from_data(a, AG_F64, 1, (int64_t[]){2}, (double[]){1.5, -2});
    const char *whole = "tensor([ 1.5000, -2.0000], dtype=torch.float64)";
    ck_assert_int_eq(ag_snprint(NULL, 0, t, 10), (int64_t)strlen(whole));
    char buf[10];
    memset(buf, 'x', sizeof buf);
    ck_assert_int_eq(ag_snprint(buf, sizeof buf, t, 10),
                     (int64_t)strlen(whole));
    ck_assert_str_eq(buf, "tensor([ ");
    ck_assert_int_eq(ag_snprint(buf, 1, t, 10), (int64_t)strlen(whole));
    ck_assert_str_eq(buf, "");
    ag_arena_free(a);
}
END_TEST

START_TEST(test_errors)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *t = ag_zeros(a, AG_F32, 1, (int64_t[]){3});
    char buf[64];
    ag__error("earlier", "a message");
    ck_assert_int_eq(ag_print(NULL, stdout, 10), -1);
    ck_assert_int_eq(ag_snprint(buf, sizeof buf, NULL, 10), -1);
    ck_assert_str_eq(ag_last_error(), "earlier: a message"); /* kept */
    ck_assert_int_eq(ag_print(t, NULL, 10), -1);
    ck_assert_str_eq(ag_last_error(), "ag_print: the FILE is NULL");
    ck_assert_int_eq(ag_snprint(NULL, 8, t, 10), -1);
    ck_assert_str_eq(ag_last_error(),
                     "ag_snprint: the buffer is NULL but its size is 8");

    /* out of memory: an error, and nothing written */
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ag__fail_allocation(1);
    ck_assert_int_eq(ag_print(t, f, 10), -1);
    ck_assert_ptr_nonnull(strstr(ag_last_error(), "ag_print: out of memory"));
    ck_assert_int_eq(ftell(f), 0);
    fclose(f);
    ag__fail_allocation(1);
    ck_assert_int_eq(ag_snprint(buf, sizeof buf, t, 10), -1);
    ck_assert_ptr_nonnull(strstr(ag_last_error(), "ag_snprint: out of memory"));
    ag__fail_allocation(0);
    ag_arena_free(a);
}
END_TEST

static Suite *print_suite(void)
{
    Suite *s = suite_create("print");
    TCase *tc = tcase_create("print");
    tcase_add_loop_test(tc, test_against_torch, 0, PRINT_TORCH_CASES);
    tcase_add_test(tc, test_views_and_history);
    tcase_add_test(tc, test_threshold_negative_shows_all);
    tcase_add_test(tc, test_snprint_cuts_as_snprintf);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(print_suite());
}
