/* test_lm.c: the language-model programs' pieces (examples/gpt/): the
 * regular-poem check (poem.c) on tang300's forms and their breakages; the
 * fortune-file reader (data.c): entries, escapes, the held-out share,
 * token files and their damage; lm_logprob against log-softmax of
 * gpt_forward's logits computed here; the DPO loss against its formula and
 * its gradient through a tiny f64 GPT against central finite differences. */
#include "data.h"
#include "gpt.h"
#include "lm.h"
#include "poem.h"

#include <autograd.h>

#include "support.h"
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int regular(const char *s)
{
    return poem_regular(s, strlen(s));
}

START_TEST(test_poem_forms)
{
    /* tang300's own: five- and seven-character, with title and author */
    ck_assert_int_eq(regular("《感遇・其一》\n作者：张九龄\n"
                             "兰叶春葳蕤，桂华秋皎洁。\n"
                             "欣欣此生意，自尔为佳节。\n"
                             "谁知林栖者，闻风坐相悦。\n"
                             "草木有本心，何求美人折？\n"),
                     5);
    ck_assert_int_eq(regular("《无题》\n作者：李商隐\n"
                             "相见时难别亦难，东风无力百花残。\n"
                             "春蚕到死丝方尽，蜡炬成灰泪始干。\n"
                             "晓镜但愁云鬓改，夜吟应觉月光寒。\n"
                             "蓬山此去无多路，青鸟殷勤为探看。\n"),
                     7);
    /* without the header lines, ending in ？ and ！, with blank lines */
    ck_assert_int_eq(regular("\n草木有本心，何求美人折？\n  \n"
                             "欣欣此生意，自尔为佳节！\n"
                             "谁知林栖者，闻风坐相悦。\n\n"
                             "兰叶春葳蕤，桂华秋皎洁。\n"),
                     5);
    /* broken forms */
    const char *bad[] = {
        "兰叶春葳蕤，桂华秋皎洁。\n", /* one line only */
        "兰叶春葳蕤，桂华秋皎。\n欣欣此生意，自尔为佳节。\n",   /* 5 then 4 */
        "青山中庭花，白日夕阳春。\n青山中庭花，江上月明人。\n", /* again */
        "相见时难别亦难，东风无力百花残。\n欣欣此生意，自尔为佳节。\n",
        "兰叶春葳蕤，桂华秋皎洁\n欣欣此生意，自尔为佳节。\n",   /* no mark */
        "兰叶春葳蕤，桂华秋皎洁。欣欣此生意，\n自尔为佳节。\n", /* 3 halves */
        "兰叶春葳蕤，桂华abc洁。\n欣欣此生意，自尔为佳节。\n",  /* Latin */
        "兰叶春葳，桂华秋皎。\n欣欣此生，自尔为佳。\n",         /* four */
        "念天地之悠悠，独怆然而泪下。\n前不见古人，后不见来者。\n",
        "《题》\n作者：某\n",                         /* no body */
        "，桂华秋皎洁。\n欣欣此生意，自尔为佳节。\n", /* empty half */
        "白日依山尽，黄河入海流。\n欲穷千里目，白日依山\r尽。\n", /* \r in */
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(regular(bad[i]) == 0, "case %zu taken as regular", i);
    /* a cut UTF-8 sequence is irregular, not a crash */
    const char *cut = "兰叶春葳蕤，桂华秋皎洁。\n欣欣此生意，自尔为佳节。";
    ck_assert_int_eq(poem_regular(cut, strlen(cut) - 1), 0);
}
END_TEST

START_TEST(test_poem_score)
{
    const char *reg = "《题》\n作者：某\n兰叶春葳蕤，桂华秋皎洁。\n"
                      "欣欣此生意，自尔为佳节。\n谁知林栖者，闻风坐相悦。\n"
                      "草木有本心，何求美人折？\n";
    ck_assert_double_eq(poem_form_score(reg, strlen(reg)), 1.0);
    /* one perfect line of a quatrain's two: 2 of its 4 half-lines */
    const char *short_poem = "兰叶春葳蕤，桂华秋皎洁。\n";
    ck_assert_double_eq_tol(poem_form_score(short_poem, strlen(short_poem)),
                            2.0 / 4, 1e-15);
    /* halves: 5, 4, 5, "ab"+3 (not clean), 5 without a mark, then two
     * lines of 5: 6 of 9 keep it (the fifth is not closed) */
    const char *half = "兰叶春葳蕤，桂华秋皎。\n欣欣此生意，ab自尔为。\n"
                       "欣欣此生意\n谁知林栖者，闻风坐相悦。\n"
                       "草木有本心，何求美人折？\n";
    ck_assert_double_eq_tol(poem_form_score(half, strlen(half)), 6.0 / 9,
                            1e-15);
    /* a half-line written again does not keep the form: 3 of 4 */
    const char *again = "青山中庭花，白日夕阳春。\n青山中庭花，江上月明人。\n";
    ck_assert_double_eq_tol(poem_form_score(again, strlen(again)), 3.0 / 4,
                            1e-15);
    /* so does one with a \r inside (a \r only ends a line): 3 of 4, as
     * without it, where a \r at the end of each line changes nothing */
    const char *cr = "白日依山尽，黄河入海流。\n欲穷千里目，白日依山\r尽。\n";
    ck_assert_double_eq_tol(poem_form_score(cr, strlen(cr)), 3.0 / 4, 1e-15);
    const char *crlf =
        "兰叶春葳蕤，桂华秋皎洁。\r\n欣欣此生意，自尔为佳节。\r\n";
    ck_assert_int_eq(poem_regular(crlf, strlen(crlf)), 5);
    ck_assert_double_eq(poem_form_score(crlf, strlen(crlf)), 1.0);
    /* seven wins over five when more halves have it */
    const char *seven = "相见时难别亦难，东风无力百花残。\n兰叶春葳蕤，x。\n";
    ck_assert_double_eq_tol(poem_form_score(seven, strlen(seven)), 2.0 / 4,
                            1e-15);
    ck_assert_double_eq(poem_form_score("", 0), 0.0);
    ck_assert_double_eq(poem_form_score("《题》\n", 10), 0.0);
}
END_TEST

/* The half-lines of many poems and the distinct ones among them: Han
 * characters only, without their marks, the title and author skipped. */
START_TEST(test_poem_lines)
{
    poem_lines l = {0};
    const char *a = "《题》\n作者：某\n青山中庭花，白日夕阳春。\n";
    const char *b = "青山中庭花，x江上。\n江上月明人，白日夕阳春\n";
    ck_assert_int_eq(poem_lines_add(&l, a, strlen(a)), 0);
    ck_assert_int_eq(poem_lines_add(&l, b, strlen(b)), 0);
    /* a's two, then b's 青山中庭花 and 江上月明人: neither "x江上" nor
     * the unclosed 白日夕阳春 keeps the form */
    ck_assert_uint_eq(l.n, 4);
    ck_assert_uint_eq(poem_lines_distinct(&l), 3);
    ck_assert_str_eq(l.half[0], "江上月明人"); /* sorted by bytes */
    poem_lines_free(&l);
    ck_assert_uint_eq(l.n, 0);
    ck_assert_uint_eq(poem_lines_distinct(&l), 0);
}
END_TEST

/* The share of regular poems in tang300 itself, when fortunes-zh is
 * installed: 289 of its 313 poems (the others are irregular old-style
 * poems and ones with a preface). */
START_TEST(test_poem_tang300)
{
    FILE *f = fopen(LM_TANG300, "r");
    if (!f) return; /* fortunes-zh not installed */
    fclose(f);
    lm_corpus c = {0};
    ck_assert_int_eq(lm_corpus_add_file(&c, LM_TANG300, 0.05), 0);
    ck_assert_int_eq(c.train_entries + c.val_entries, 313);
    ck_assert_int_eq(c.val_entries, 16); /* ceil(0.05 * 313) */
    ck_assert_ptr_null(strstr(c.train.data, "\033"));
    int n = 0;
    for (lm_text *t = &c.train; t; t = t == &c.train ? &c.val : NULL)
        for (char *e = t->data, *end; (end = strstr(e, LM_EOT));
             e = end + strlen(LM_EOT))
            n += poem_regular(e, (size_t)(end - e)) != 0;
    ck_assert_int_eq(n, 289);
    lm_corpus_free(&c);
}
END_TEST

START_TEST(test_corpus_reader)
{
    const char *dir = test_dir_make("lm");
    const char *path = path_of("fortunes");
    const char *text = "\033[32mfirst\033[m entry\n%\n\n%\nsecond\nline\n\n%\n"
                       "third\r\n%\r\nfourth\n";
    write_bytes(path, text, strlen(text));
    lm_corpus c = {0};
    ck_assert_int_eq(lm_corpus_add_file(&c, path, 0.3), 0);
    /* 4 entries (the empty one skipped), the last ceil(1.2) = 2 held out */
    ck_assert_int_eq(c.train_entries, 2);
    ck_assert_int_eq(c.val_entries, 2);
    ck_assert_str_eq(c.train.data, "first entry" LM_EOT "second\nline" LM_EOT);
    ck_assert_str_eq(c.val.data, "third" LM_EOT "fourth" LM_EOT);
    lm_corpus_free(&c);
    /* errors: missing, no entry, a NUL byte */
    ck_assert_int_ne(lm_corpus_add_file(&c, path_of("missing"), 0.1), 0);
    write_bytes(path, "%\n\n%\n", 5);
    ck_assert_int_ne(lm_corpus_add_file(&c, path, 0.1), 0);
    write_bytes(path, "a\0b", 3);
    ck_assert_int_ne(lm_corpus_add_file(&c, path, 0.1), 0);
    lm_corpus_free(&c);
    char esc[] = "a\033[1;33mb\033[mc\033[";
    ck_assert_int_eq(lm_strip_ansi(esc, strlen(esc)), 5);
    ck_assert(memcmp(esc, "abc\033[", 5) == 0);

    /* token files: round trip, then every kind of damage */
    const char *tok = path_of("t.tok");
    int32_t ids[5] = {0, 4, 2, 9, 1}, *got;
    int64_t n;
    ck_assert_int_eq(lm_tokens_save(tok, ids, 5), 0);
    ck_assert_int_eq(lm_tokens_load(tok, 10, &got, &n), 0);
    ck_assert_int_eq(n, 5);
    ck_assert(memcmp(got, ids, sizeof ids) == 0);
    free(got);
    ck_assert_int_ne(lm_tokens_load(tok, 9, &got, &n), 0); /* id 9 >= 9 */
    size_t len;
    unsigned char *bytes = read_bytes(tok, &len);
    write_bytes(tok, bytes, len - 1); /* truncated */
    ck_assert_int_ne(lm_tokens_load(tok, 10, &got, &n), 0);
    bytes[0] = 'X';
    write_bytes(tok, bytes, len); /* not a token file */
    ck_assert_int_ne(lm_tokens_load(tok, 10, &got, &n), 0);
    write_bytes(tok, bytes, 3);
    ck_assert_int_ne(lm_tokens_load(tok, 10, &got, &n), 0);
    free(bytes);
    (void)dir;
    test_dir_remove();
}
END_TEST

static gpt *tiny_model(ag_arena *a, uint64_t seed)
{
    gpt_config c = {.vocab_size = 11,
                    .block_size = 8,
                    .n_layer = 1,
                    .n_head = 2,
                    .n_embd = 8,
                    .dropout = 0,
                    .bias = true};
    gpt *m = gpt_new(a, AG_F64, &c, seed);
    ck_assert_msg(m != NULL, "%s", ag_last_error());
    return m;
}

static const int32_t CHOSEN[7] = {3, 1, 4, 1, 5, 9, 2};
static const int32_t REJECTED[6] = {3, 1, 6, 5, 3, 5};

/* log p(ids[from..n)) from gpt_forward's logits, by hand. */
static double logprob_by_hand(gpt *m, ag_arena *a, const int32_t *ids,
                              int64_t n, int64_t from)
{
    int64_t shape[2] = {1, n - 1};
    ag_tensor *logits =
        gpt_forward(m, a, ag_from_data(a, AG_I32, 2, shape, ids));
    ck_assert_ptr_nonnull(logits);
    const double *z = ag_data(logits);
    double sum = 0;
    for (int64_t t = from - 1; t < n - 1; t++) {
        const double *row = z + t * 11;
        double mx = row[0], s = 0;
        for (int v = 1; v < 11; v++) mx = fmax(mx, row[v]);
        for (int v = 0; v < 11; v++) s += exp(row[v] - mx);
        sum += row[ids[t + 1]] - mx - log(s);
    }
    return sum;
}

START_TEST(test_logprob)
{
    ag_arena *a = ag_arena_new();
    gpt *m = tiny_model(a, 3);
    for (int64_t from = 1; from < 7; from++) {
        ag_tensor *lp = lm_logprob(m, a, CHOSEN, 7, from);
        ck_assert_msg(lp != NULL, "%s", ag_last_error());
        ck_assert_double_eq_tol(ag_item(lp),
                                logprob_by_hand(m, a, CHOSEN, 7, from), 1e-12);
    }
    /* bad arguments */
    ck_assert_ptr_null(lm_logprob(m, a, CHOSEN, 1, 1));
    ck_assert_ptr_null(lm_logprob(m, a, CHOSEN, 7, 0));
    ck_assert_ptr_null(lm_logprob(m, a, CHOSEN, 7, 7));
    int32_t long_ids[10] = {0};
    ck_assert_ptr_null(lm_logprob(m, a, long_ids, 10, 1)); /* > block + 1 */
    ck_assert(strstr(ag_last_error(), "lm_logprob"));
    ck_assert_ptr_null(lm_logprob(NULL, a, CHOSEN, 7, 1));
    ag_arena_free(a);
}
END_TEST

/* The DPO loss through the policy's log-probabilities, one pair. */
static double dpo_value(gpt *policy, ag_arena *a, double rc, double rr,
                        double beta, bool backward)
{
    ag_tensor *pc = lm_logprob(policy, a, CHOSEN, 7, 2);
    ag_tensor *pr = lm_logprob(policy, a, REJECTED, 6, 2);
    ag_tensor *l = lm_dpo_loss(a, pc, pr, rc, rr, beta);
    ck_assert_msg(l != NULL, "%s", ag_last_error());
    if (backward) ck_assert_int_eq(ag_backward(l), 0);
    return ag_item(l);
}

START_TEST(test_dpo_loss_and_gradient)
{
    ag_arena *a = ag_arena_new(), *step = ag_arena_new();
    gpt *policy = tiny_model(a, 5), *ref = tiny_model(a, 6);
    const double beta = 0.5;
    double rc = ag_item(lm_logprob(ref, step, CHOSEN, 7, 2));
    double rr = ag_item(lm_logprob(ref, step, REJECTED, 6, 2));
    double pc = ag_item(lm_logprob(policy, step, CHOSEN, 7, 2));
    double pr = ag_item(lm_logprob(policy, step, REJECTED, 6, 2));
    /* the formula: -log sigmoid(beta * ((pc - rc) - (pr - rr))) */
    double margin = beta * ((pc - rc) - (pr - rr));
    double want = -log(1 / (1 + exp(-margin)));
    ck_assert_double_eq_tol(dpo_value(policy, step, rc, rr, beta, false), want,
                            1e-12);
    /* the same policy as reference: margin 0, loss log 2 */
    ck_assert_double_eq_tol(dpo_value(policy, step, pc, pr, beta, false),
                            log(2.0), 1e-12);
    ag_arena_reset(step);

    /* gradient of every parameter against central differences (h 1e-6,
     * f64: truncation error ~h^2 = 1e-12; rounding ~eps |log p| / h =
     * 2.2e-16 * 15 / 1e-6 = 3e-9, the log-probabilities being sums of
     * about 15 in magnitude): within 2e-8 + 1e-6 |g| */
    ag_params *params = ag_module_parameters(gpt_module(policy));
    ag_params_zero_grad(params);
    dpo_value(policy, step, rc, rr, beta, true);
    ag_arena_reset(step);
    int checked = 0;
    for (int i = 0; i < ag_params_count(params); i++) {
        ag_tensor *p = ag_params_tensor(params, i);
        const double *g = ag_data(ag_grad(p));
        double *x = ag_data(p);
        int64_t n = ag_numel(p), stride = n > 16 ? n / 16 : 1;
        for (int64_t k = 0; k < n; k += stride) {
            const double h = 1e-6, keep = x[k];
            x[k] = keep + h;
            double up = dpo_value(policy, step, rc, rr, beta, false);
            x[k] = keep - h;
            double down = dpo_value(policy, step, rc, rr, beta, false);
            x[k] = keep;
            ag_arena_reset(step);
            double fd = (up - down) / (2 * h);
            ck_assert_msg(fabs(fd - g[k]) <= 2e-8 + 1e-6 * fabs(g[k]),
                          "%s[%lld]: backward %.10g, differences %.10g",
                          ag_params_name(params, i), (long long)k, g[k], fd);
            checked++;
        }
    }
    ck_assert_int_gt(checked, 50);
    /* the embedding of the chosen tokens moves: a nonzero gradient */
    ck_assert(fabs(tensor_at(ag_grad(ag_params_tensor(params, 0)), 4 * 8)) > 0);
    ck_assert_ptr_null(lm_dpo_loss(step, NULL, NULL, 0, 0, beta));
    ag_arena_free(step);
    ag_arena_free(a);
}
END_TEST

static Suite *lm_suite(void)
{
    Suite *s = suite_create("lm");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_poem_forms);
    tcase_add_test(tc, test_poem_score);
    tcase_add_test(tc, test_poem_lines);
    tcase_add_test(tc, test_poem_tang300);
    tcase_add_test(tc, test_corpus_reader);
    tcase_add_test(tc, test_logprob);
    tcase_add_test(tc, test_dpo_loss_and_gradient);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(lm_suite());
}
