/* test_core.c - the core: status messages, allocation, the Philox generator (known answers from
 * the Random123 distribution's kat vectors), replayable streams and draw distributions. */
#include <cblas.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/ab.h"
#include "core/decl.h"
#include "core/list.h"
#include "core/rng.h"

Test(core, philox_known_answers)
{
    uint32_t w[4];
    ab_philox(0, 0, 0, w);
    cr_expect_eq(w[0], 0x6627e8d5u);
    cr_expect_eq(w[1], 0xe169c58du);
    cr_expect_eq(w[2], 0xbc57ac4cu);
    cr_expect_eq(w[3], 0x9b00dbd8u);
    ab_philox(UINT64_MAX, UINT64_MAX, UINT64_MAX, w);
    cr_expect_eq(w[0], 0x408f276du);
    cr_expect_eq(w[1], 0x41c83b0eu);
    cr_expect_eq(w[2], 0xa20bc7c6u);
    cr_expect_eq(w[3], 0x6d5451fdu);
}

Test(core, rng_streams_replay)
{
    struct ab_rng a, b;
    ab_rng_init(&a, 42, 7);
    ab_rng_init(&b, 42, 7);
    for (int i = 0; i < 1000; i++) cr_assert_eq(ab_rng_u32(&a), ab_rng_u32(&b));
    /* the sequential cursor is the counter-indexed function: block 10 replays alone */
    ab_rng_init(&a, 42, 7);
    for (int i = 0; i < 40; i++) ab_rng_u32(&a);
    uint32_t w[4];
    ab_philox(42, 7, 10, w);
    for (int i = 0; i < 4; i++) cr_expect_eq(ab_rng_u32(&a), w[i]);
    /* random access agrees with itself and differs across streams and seeds */
    cr_expect_eq(ab_rng_normal_at(3, 4, 5), ab_rng_normal_at(3, 4, 5));
    cr_expect_neq(ab_rng_normal_at(3, 4, 5), ab_rng_normal_at(3, 5, 5));
    cr_expect_neq(ab_rng_normal_at(3, 4, 5), ab_rng_normal_at(4, 4, 5));
    cr_expect_neq(ab_stream(1, 2, 3, 4), ab_stream(1, 2, 4, 3));
}

Test(core, rng_distributions)
{
    struct ab_rng r;
    ab_rng_init(&r, 1, 2);
    enum { N = 200000 };
    double s = 0, s2 = 0, u = 0;
    int64_t hist[10] = {0};
    for (int i = 0; i < N; i++) {
        double z = ab_rng_normal(&r);
        s += z, s2 += z * z;
        double x = ab_rng_uniform(&r);
        cr_assert(x >= 0 && x < 1);
        u += x;
        int64_t b = ab_rng_below(&r, 10);
        cr_assert(b >= 0 && b < 10);
        hist[b]++;
    }
    /* tolerances of about 5 standard errors */
    cr_expect(fabs(s / N) < 5 / sqrt(N), "normal mean %g", s / N);
    cr_expect(fabs(s2 / N - 1) < 5 * sqrt(2.0 / N), "normal variance %g", s2 / N);
    cr_expect(fabs(u / N - 0.5) < 5 * sqrt(1.0 / 12 / N), "uniform mean %g", u / N);
    for (int b = 0; b < 10; b++)
        cr_expect(fabs(hist[b] - N / 10.0) < 5 * sqrt(N * 0.09), "bin %d: %lld", b, (long long)hist[b]);
}

Test(core, errors_and_alloc)
{
    cr_expect_eq(ab_fail(AB_E_DATA, "'%s': truncated", "x.h5"), AB_E_DATA);
    cr_expect_str_eq(ab_errmsg(), "'x.h5': truncated");
    cr_expect_str_eq(ab_strerror(AB_E_NOFILE), "input file missing");
    double *p = ab_alloc(1000 * sizeof(double));
    cr_assert_not_null(p);
    cr_expect_eq((uintptr_t)p % 64, 0);
    for (int i = 0; i < 1000; i++) cr_assert_eq(p[i], 0.0);
    ab_free(p);
    cr_expect_null(ab_alloc(0));
    cr_expect_eq(ab_size_mul(SIZE_MAX / 2, 3), 0);
    cr_expect_eq(ab_size_mul(6, 7), 42);
    cr_expect_eq(ab_check_fits("x", 1e6), AB_OK);
    cr_expect_eq(ab_check_fits("the workload", 1e30), AB_E_TOOBIG);
    cr_expect(strstr(ab_errmsg(), "the workload") != NULL);
}

/* "LAYER:HEAD": digits on both sides, below 2^31, end just past the pair */
Test(core, layer_head_pairs)
{
    int64_t l, h;
    const char *end;
    cr_expect_eq(ab_layer_head("12:3,4:5", &l, &h, &end), 0);
    cr_expect(l == 12 && h == 3 && *end == ',');
    cr_expect_eq(ab_layer_head(end + 1, &l, &h, &end), 0);
    cr_expect(l == 4 && h == 5 && *end == 0);
    const char *bad[] = {"", "1", "1:", ":2", "-1:2", "1:-2", "a:2", "1:b", "2147483648:0",
                         "0:2147483648", " 1:2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(ab_layer_head(bad[i], &l, &h, &end), -1, "'%s' read as a pair", bad[i]);
}

Test(core, list_tokenizer)
{
    const char *s = "a=1.5,bb=-2";
    char name[8];
    double v;
    cr_assert_eq(ab_list_next(&s, '=', name, sizeof name, &v, "x"), 1);
    cr_expect_str_eq(name, "a");
    cr_expect_eq(v, 1.5);
    cr_assert_eq(ab_list_next(&s, '=', name, sizeof name, &v, "x"), 1);
    cr_expect_str_eq(name, "bb");
    cr_expect_eq(v, -2);
    cr_expect_eq(ab_list_next(&s, '=', name, sizeof name, &v, "x"), 0);
    const char *plain = "dense,window";
    cr_assert_eq(ab_list_next(&plain, 0, name, sizeof name, NULL, "x"), 1);
    cr_expect_str_eq(name, "dense");
    const char *bad[] = {"a=", "a", "=3", "a=3x", ",a=1", "toolongname=1"};
    for (int i = 0; i < 6; i++) {
        const char *b = bad[i];
        cr_expect_eq(ab_list_next(&b, '=', name, sizeof name, &v, "--opt"), AB_E_USAGE, "%s", bad[i]);
        cr_expect(strncmp(ab_errmsg(), "--opt: ", 7) == 0, "%s", ab_errmsg());
    }
}

Test(core, fail_can_prefix_its_own_detail)
{
    ab_fail(AB_E_DATA, "truncated file");
    cr_expect_eq(ab_fail(AB_E_DATA, "'%s': %s", "w.h5", ab_errmsg()), AB_E_DATA);
    cr_expect_str_eq(ab_errmsg(), "'w.h5': truncated file");
}

/* BLAS holds nest: BLAS stays serial until the outermost hold ends (eval-model holds around
 * e2e's own hold; the inner end used to give BLAS its threads back inside the outer hold). */
Test(core, blas_serial_holds_nest)
{
    ab_threads_set(2);
    cr_assert_eq(openblas_get_num_threads(), 2);
    ab_blas_serial_begin();
    ab_blas_serial_begin();
    ab_blas_serial_end();
    cr_expect_eq(openblas_get_num_threads(), 1, "an inner end released the outer hold");
    ab_threads_set(2); /* during a hold: takes effect at its end */
    cr_expect_eq(openblas_get_num_threads(), 1);
    ab_blas_serial_end();
    cr_expect_eq(openblas_get_num_threads(), 2);
}

/* ---- declared options (core/decl.h) ------------------------------------------------------- */

struct toy_opts {
    int64_t n;
    double eps;
    int flag, mode;
    char *name, *list, *reals, *out;
};
static const char *const toy_modes[] = {"fast", "exact", NULL};
static const char *const toy_words[] = {"prefill", "decode", NULL};
static const char *const toy_aliases[] = {"both", "prefill,decode", NULL};
static const char *const toy_real_aliases[] = {"paper", "0.7,0.5", "none", NULL, NULL};
#define TOY(f) AB_DECL_ROW(struct toy_opts, f)
static const struct ab_decl toy_decl[] = {
    {"n-items", AB_DECL_INT, TOY(n), "64", 1, 1000, "N", "items"},
    {"eps", AB_DECL_REAL, TOY(eps), "0.5", 0, 1, "E", "epsilon", .lo_open = 1},
    {"flag", AB_DECL_FLAG, TOY(flag), NULL, 0, 0, NULL, "a flag"},
    {"mode", AB_DECL_WORD, TOY(mode), "exact", 0, 0, "M", "mode", .choices = toy_modes},
    {"name", AB_DECL_STR, TOY(name), NULL, 0, 0, "S", "a name"},
    {"phase", AB_DECL_LIST, TOY(list), "both", 0, 2, "P", "phases", .key = "phases",
     .choices = toy_words, .aliases = toy_aliases},
    {"budgets", AB_DECL_LIST, TOY(reals), NULL, 0, 1, "B", "ratios", .item_real = 1,
     .lo_open = 1, .aliases = toy_real_aliases},
    {"o", AB_DECL_STR, TOY(out), NULL, 0, 0, "F", "output", .flags = AB_DECL_CLI | AB_DECL_OUTPUT},
    {0},
};

/* Every default reads back through its own row, and the defaults of the tables the commands
 * declare are valid (a typo in a default would otherwise fail only when the command runs). */
Test(core, decl_defaults_parse)
{
    struct toy_opts o;
    cr_assert_eq(ab_decl_defaults(toy_decl, &o), AB_OK);
    cr_expect_eq(o.n, 64);
    cr_expect_eq(o.eps, 0.5);
    cr_expect_eq(o.mode, 1);
    cr_expect_str_eq(o.list, "prefill,decode");
    cr_expect_null(o.name);
    cr_expect_null(o.reals);
    for (const struct ab_decl *d = toy_decl; d->name; d++)
        cr_expect(ab_decl_is_default(d, &o), "row %s holds its default", d->name);
    ab_decl_free(toy_decl, &o);
}

/* Values of each type: parsed, range-checked, refused with a message naming the expected type
 * and the value, and the field left as it was. */
Test(core, decl_set_checks_type_and_range)
{
    struct toy_opts o;
    ab_decl_defaults(toy_decl, &o);
    const struct ab_decl *n = ab_decl_find(toy_decl, "n_items"), *e = ab_decl_find(toy_decl, "eps");
    cr_assert(n && n == ab_decl_find(toy_decl, "n-items"), "- and _ alike");
    cr_expect_eq(ab_decl_set(n, &o, "12"), AB_OK);
    cr_expect_eq(o.n, 12);
    cr_expect_eq(ab_decl_set(n, &o, "abc"), AB_E_USAGE);
    cr_expect_str_eq(ab_errmsg(), "wants an integer in [1, 1000], got 'abc'");
    cr_expect_eq(ab_decl_set(n, &o, "1001"), AB_E_USAGE);
    cr_expect_eq(ab_decl_set(n, &o, "12.5"), AB_E_USAGE);
    cr_expect_eq(o.n, 12, "unchanged after a refused value");
    cr_expect_eq(ab_decl_set(e, &o, "0"), AB_E_USAGE, "(0, 1]: 0 is out");
    cr_expect_str_eq(ab_errmsg(), "wants a number in (0, 1], got '0'");
    cr_expect_eq(ab_decl_set(e, &o, "nan"), AB_E_USAGE);
    cr_expect_eq(ab_decl_set(e, &o, "1"), AB_OK);
    const struct ab_decl *m = ab_decl_find(toy_decl, "mode");
    cr_expect_eq(ab_decl_set(m, &o, "fats"), AB_E_USAGE);
    cr_expect_str_eq(ab_errmsg(), "wants fast or exact, got 'fats' (did you mean 'fast'?)");
    cr_expect_eq(ab_decl_set(ab_decl_find(toy_decl, "flag"), &o, "yes"), AB_OK);
    cr_expect_eq(o.flag, 1);
    cr_expect_eq(ab_decl_set(ab_decl_find(toy_decl, "flag"), &o, "maybe"), AB_E_USAGE);
    /* lists: words, aliases, duplicates, empty items, reals */
    const struct ab_decl *p = ab_decl_find(toy_decl, "phases"), *b = ab_decl_find(toy_decl, "budgets");
    cr_assert(p && p == ab_decl_find(toy_decl, "phase"), "the YAML key finds the row");
    cr_expect_eq(ab_decl_set(p, &o, "decode"), AB_OK);
    cr_expect_str_eq(o.list, "decode");
    cr_expect_eq(ab_decl_set(p, &o, "bth"), AB_E_USAGE);
    cr_expect_str_eq(ab_errmsg(), "has an unknown item 'bth' (did you mean 'both'?)");
    cr_expect_eq(ab_decl_set(p, &o, "decode,decode"), AB_E_USAGE);
    cr_expect_str_eq(ab_errmsg(), "lists 'decode' twice");
    cr_expect_eq(ab_decl_set(p, &o, "prefill,,decode"), AB_E_USAGE);
    cr_expect_str_eq(o.list, "decode", "unchanged");
    cr_expect_eq(ab_decl_set(b, &o, "0.5,1.5"), AB_E_USAGE);
    cr_expect_str_eq(ab_errmsg(), "wants a number in (0, 1], got '1.5'");
    cr_expect_eq(ab_decl_set(b, &o, "paper"), AB_OK);
    cr_expect_str_eq(o.reals, "0.7,0.5");
    char buf[64];
    cr_expect_str_eq(ab_decl_format(b, &o, buf, sizeof buf), "paper", "the alias prints back");
    cr_expect_eq(ab_decl_set(b, &o, "none"), AB_OK);
    cr_expect_null(o.reals, "an alias for not given");
    ab_decl_free(toy_decl, &o);
}

/* The command line and the JSON echo: non-defaults only, in table order, output last, quoted
 * where a shell would split; JSON typed (numbers, booleans, arrays, null). */
Test(core, decl_command_and_json)
{
    struct toy_opts o;
    ab_decl_defaults(toy_decl, &o);
    ab_decl_set(ab_decl_find(toy_decl, "o"), &o, "out dir/r.h5");
    ab_decl_set(ab_decl_find(toy_decl, "budgets"), &o, "0.25,1e-1");
    ab_decl_set(ab_decl_find(toy_decl, "flag"), &o, "true");
    const char *pos[] = {"w.h5"};
    char *line = ab_decl_command("toy", toy_decl, &o, pos, 1, "--seed 1");
    cr_assert_not_null(line);
    cr_expect_str_eq(line, "attnbench toy w.h5 --flag --budgets 0.25,1e-1 --seed 1 -o 'out dir/r.h5'");
    free(line);
    char *j = ab_decl_json(toy_decl, &o);
    cr_assert_not_null(j);
    cr_expect_str_eq(j, "{\"n_items\": 64, \"eps\": 0.5, \"flag\": true, \"mode\": \"exact\", "
                        "\"name\": null, \"phases\": [\"prefill\", \"decode\"], "
                        "\"budgets\": [0.25, 0.1], \"o\": \"out dir/r.h5\"}");
    free(j);
    ab_decl_free(toy_decl, &o);
}
