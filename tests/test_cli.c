/* test_cli.c - the command-line conventions every command shares (outputs.md, "Command line"):
 * the command table, help, version, usage errors and their exit statuses, and `bench`. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/ab.h"
#include "helpers.h"
#include "io/h5_util.h"
#include "io/json_out.h"

Test(cli, version_names_build_facts)
{
    char *out, *err;
    cr_assert_eq(t_run(&out, &err, "--version"), 0);
    cr_expect(strstr(out, "attnbench ") == out, "%s", out);
    cr_expect(strstr(out, "blas: ") && strstr(out, "hdf5: 1.") && strstr(out, "openmp: "), "%s", out);
    cr_expect(strstr(out, "cpu: ") && strstr(out, "BLAS kernel set "), "%s", out);
    free(out), free(err);
}

Test(cli, help_lists_commands_and_each_command_has_help)
{
    char *out, *err;
    cr_assert_eq(t_run(&out, &err, "--help"), 0);
    const char *cmds[] = {"gen", "info", "render", "bench"};
    for (int i = 0; i < 4; i++) {
        cr_expect(strstr(out, cmds[i]) != NULL, "%s missing from help", cmds[i]);
        char *o2, *e2;
        cr_expect_eq(t_run(&o2, &e2, "%s --help", cmds[i]), 0, "%s --help", cmds[i]);
        cr_expect(strstr(o2, "usage: attnbench ") == o2, "%s", o2);
        cr_expect(strstr(o2, "--threads") != NULL, "%s: common options missing", cmds[i]);
        free(o2), free(e2);
        cr_expect_eq(t_run(&o2, &e2, "help %s", cmds[i]), 0);
        cr_expect(strstr(o2, "usage: attnbench ") == o2);
        free(o2), free(e2);
    }
    free(out), free(err);
}

Test(cli, usage_errors_exit_64_with_one_line)
{
    char *out, *err;
    cr_expect_eq(t_run(&out, &err, "%s", ""), 64);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "frobnicate"), 64);
    cr_expect_str_eq(err, "error: unknown command 'frobnicate' (see 'attnbench --help')\n");
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "bench dense --n"), 64);
    cr_expect_eq(t_count_lines(err), 1, "%s", err);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "bench dense --n abc"), 64);
    cr_expect(strstr(err, "wants an integer") != NULL, "%s", err);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "bench dense --bogus 3"), 64);
    cr_expect(strstr(err, "unknown option '--bogus'") != NULL, "%s", err);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "bench dense --threads -2"), 64);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "bench dense --n 0"), 64);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "bench sparse"), 64);
    free(out), free(err);
}

Test(cli, bench_reports_rates_and_ratio)
{
    char *out, *err;
    cr_assert_eq(t_run(&out, &err, "bench dense --n 512 --d 64 --reps 1 --gemm-n 256 --threads 1"), 0, "%s", err);
    double g = 0, gemm = 0, ratio = 0;
    const char *p = strstr(out, "\nGFLOP/s"), *q = strstr(out, "GEMM GFLOP/s"), *r = strstr(out, "ratio");
    cr_assert(p && q && r, "%s", out);
    sscanf(p, "\nGFLOP/s %lf", &g);
    sscanf(q, "GEMM GFLOP/s %lf", &gemm);
    sscanf(r, "ratio %lf", &ratio);
    cr_expect(g > 0 && gemm > 0, "%s", out);
    cr_expect(fabs(ratio - g / gemm) <= 0.02 * g / gemm + 0.001, "ratio %g vs %g/%g", ratio, g, gemm);
    free(out), free(err);
    /* too large for memory: a data error, not a crash */
    cr_expect_eq(t_run(&out, &err, "bench dense --n 100000000000 --d 128"), 65);
    cr_expect(strstr(err, "memory") != NULL, "%s", err);
    free(out), free(err);
}

/* bench machine: the limits, each a positive rate; sgemm's share of the FMA peak is the ratio of
 * the two numbers printed. bench decode: dense and compacted caches in one table, the kept
 * share as asked, time ratios against the same run's dense decode. Speeds are not asserted. */
Test(cli, bench_machine_and_decode_report_the_limits_and_the_table)
{
    char *out, *err;
    cr_assert_eq(t_run(&out, &err, "bench machine --gemm-n 256 --reps 3 --triad-mb 8"), 0, "%s", err);
    double peak = 0, med = 0, best = 0, share = 0, triad = 0;
    const char *p = strstr(out, "fma peak"), *g = strstr(out, "sgemm"), *t = strstr(out, "triad");
    cr_assert(strstr(out, "isa ") && p && g && t, "%s", out);
    sscanf(p, "fma peak %lf", &peak);
    sscanf(g, "sgemm %lf GFLOP/s median, %lf best (256^3, %*d runs) = %lf", &med, &best, &share);
    sscanf(t, "triad %lf", &triad);
    cr_expect(peak > 0 && med > 0 && best >= med && triad > 0, "%s", out);
    /* the printed numbers are rounded to 0.1: each carries up to 0.05 / value of relative error
     * (a sanitizer build's peak is ~1.6, so 3%) */
    cr_expect(fabs(share - med / peak) <= share * (0.06 / med + 0.06 / peak) + 0.01,
              "share %g vs %g / %g", share, med, peak);
    free(out), free(err);
    cr_assert_eq(t_run(&out, &err, "bench decode --n 4096 --d 64 --heads 2 --keep 0.25,0.125 "
                       "--reps 3 --triad-mb 8"), 0, "%s", err);
    cr_expect(strstr(out, "decode       2 heads, cache n 4096, d 64, dv 64, 1 query") != NULL, "%s", out);
    double kept = 0, ratio = 0;
    const char *k = strstr(out, "keep 0.25 ");
    cr_assert(strstr(out, "\ndense ") && k && strstr(out, "keep 0.125 "), "%s", out);
    sscanf(k, "keep 0.25 %*f %*f %*f %lf %lf", &ratio, &kept);
    cr_expect(fabs(kept - 0.25) < 0.01 && ratio > 0, "%s", out);
    free(out), free(err);
    /* bad input: one line, exit 64 */
    const char *bad[] = {"bench decode --keep 2", "bench decode --keep 0.5,x", "bench sideways",
                         "bench decode --n 64 --queries 64", "bench dense --keep 0.5"};
    for (int i = 0; i < 5; i++) {
        cr_expect_eq(t_run(&out, &err, "%s", bad[i]), 64, "%s", bad[i]);
        cr_expect_eq(t_count_lines(err), 1, "%s: %s", bad[i], err);
        free(out), free(err);
    }
}

/* bench methods: one row per (method, phase, budget) with the columns scripts rely on, the
 * times measured in the same run (time_ratio = time_s / dense_time_s, time_s = select_step_s +
 * attend_s, SnapKV's one-off selection spread over the horizon as its FLOP ratio is), an infeasible budget and methods without a sparse kernel as rows with a reason;
 * the HDF5 table reads back with the same rows as the CSV. Speeds are not asserted. */
Test(cli, bench_methods_writes_its_table)
{
    const char *out_h5 = t_path("bm.h5");
    char csv[1100];
    snprintf(csv, sizeof csv, "%.*s.csv", (int)(strlen(out_h5) - 3), out_h5);
    char *out, *err;
    cr_assert_eq(t_run(&out, &err, "bench methods --n 2048 --d 32 --methods streaming,block-topk,"
                       "quest,snapkv,linear-elu --budgets 0.25,0.001 --phase both --reps 1 -o '%s'",
                       out_h5), 0, "%s", err);
    free(out), free(err);
    char *text = (char *)t_slurp(csv, NULL);
    cr_assert(text, "no %s", csv);
    cr_expect(!strncmp(text, "method,family,phase,target_ratio,knob,flop_ratio,kept_share,"
                       "select_s,select_step_s,token_s,block_s,compact_s,kernel,attend_s,time_s,"
                       "dense_time_s,time_ratio,",
                       strlen("method,family,phase,target_ratio,knob,flop_ratio,kept_share,"
                              "select_s,select_step_s,token_s,block_s,compact_s,kernel,attend_s,"
                              "time_s,dense_time_s,time_ratio,")), "%.200s", text);
    /* two budgets: streaming in both phases, block-topk in prefill, quest and snapkv in decode,
       and linear-elu (no knob) once per phase; snapkv keeps one cache: the compacted kernel */
    int lines = t_count_lines(text) - 1;
    cr_expect_eq(lines, 2 * 2 + 2 + 2 + 2 + 2, "%d rows:\n%s", lines, text);
    cr_expect(strstr(text, "\nsnapkv,kv,decode,0.25,") != NULL, "%s", text);
    {
        const char *sk = strstr(text, "\nsnapkv,kv,decode,0.25,");
        const char *eol = sk ? strchr(sk + 1, '\n') : NULL;
        char line[1024] = "";
        if (sk) snprintf(line, sizeof line, "%.*s", (int)(eol ? eol - sk : 1000), sk + 1);
        /* column 12, compact_s: timed (the kept cache is one for every row); which kernel wins
           is the machine's business, not the test's. Columns 8, 9: the one-off selection
           (SnapKV's window scores) weighs m / G = 64 / 1024 of its time per step */
        const char *f = line;
        double col[13];
        for (int c = 0; c < 13; c++) {
            col[c] = f ? strtod(f, NULL) : NAN;
            f = f ? strchr(f, ',') : NULL;
            f = f ? f + 1 : NULL;
        }
        cr_expect(isfinite(col[11]) && col[11] > 0, "snapkv's compacted cache is timed: %s", line);
        cr_expect(col[7] > 0 && fabs(col[8] - col[7] * 64.0 / 1024) <= 1e-6 * col[7],
                  "snapkv's one-off selection amortised: %s", line);
    }
    cr_expect(strstr(text, "no kept set") != NULL, "linear-elu has no sparse kernel: %s", text);
    free(text);
    /* the figure: time ratio against FLOP ratio with y = x */
    char gp[1100];
    snprintf(gp, sizeof gp, "%.*s.gp", (int)(strlen(out_h5) - 3), out_h5);
    char *script = (char *)t_slurp(gp, NULL);
    cr_expect(script && strstr(script, "y = x") && strstr(script, "\"streaming\""), "%s",
              script ? script : gp);
    free(script);
    /* the HDF5 table: time_ratio is time_s / dense_time_s, time_s is select + attend */
    struct ab_h5 f;
    cr_assert_eq(ab_h5_open(&f, out_h5), AB_OK, "%s", ab_errmsg());
    int64_t dims[1];
    cr_assert_eq(ab_h5_shape(&f, "/bench/time_ratio", 1, H5T_FLOAT, dims, NULL), AB_OK, "%s", ab_errmsg());
    cr_expect_eq(dims[0], lines);
    double *tr = malloc(sizeof(double) * dims[0]), *ts = malloc(sizeof(double) * dims[0]);
    double *ds = malloc(sizeof(double) * dims[0]), *se = malloc(sizeof(double) * dims[0]);
    double *at = malloc(sizeof(double) * dims[0]);
    cr_assert_eq(ab_h5_get(&f, "/bench/time_ratio", H5T_NATIVE_DOUBLE, tr), AB_OK);
    cr_assert_eq(ab_h5_get(&f, "/bench/time_s", H5T_NATIVE_DOUBLE, ts), AB_OK);
    cr_assert_eq(ab_h5_get(&f, "/bench/dense_time_s", H5T_NATIVE_DOUBLE, ds), AB_OK);
    cr_assert_eq(ab_h5_get(&f, "/bench/select_step_s", H5T_NATIVE_DOUBLE, se), AB_OK);
    cr_assert_eq(ab_h5_get(&f, "/bench/attend_s", H5T_NATIVE_DOUBLE, at), AB_OK);
    int timed = 0;
    for (int64_t i = 0; i < dims[0]; i++) {
        if (isnan(tr[i])) continue;
        timed++;
        cr_expect(ds[i] > 0 && fabs(ts[i] - (se[i] + at[i])) <= 1e-12 * ts[i] &&
                      fabs(tr[i] - ts[i] / ds[i]) <= 1e-9 * tr[i],
                  "row %lld: %g %g %g %g", (long long)i, tr[i], ts[i], ds[i], se[i]);
    }
    cr_expect_geq(timed, 4, "%d rows timed", timed);
    free(tr), free(ts), free(ds), free(se), free(at);
    ab_h5_close(&f);
    /* bad input: one line each */
    cr_expect_eq(t_run(&out, &err, "bench methods --n 256 --methods no-such -o '%s'", out_h5), 64);
    cr_expect_eq(t_count_lines(err), 1, "%s", err);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "bench methods --n 256 --methods streaming"), 64);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "bench methods --workload /nonexistent/w.h5 -o '%s'", out_h5), 66);
    cr_expect_eq(t_count_lines(err), 1, "%s", err);
    free(out), free(err);
}

/* issue 8: the decode crossover comes from each row's own ledger. linear-elu's decode costs
 * 4 d^2 FLOPs per query (a d x d state read and update), exact decode 4d per cached key, so the
 * crossover is n* = d; its state is d (d + 1) floats against 4 (d + d) bytes per key. */
Test(cli, methods_crossover_is_computed_from_the_ledgers)
{
    char *out = NULL, *err = NULL;
    cr_assert_eq(t_run(&out, &err, "methods --crossover --d 32"), 0, "%s", err ? err : "");
    const char *line = strstr(out, "\nlinear-elu ");
    cr_assert(line, "%s", out);
    double f, b, nf, nb;
    cr_assert_eq(sscanf(line, "\nlinear-elu - %lf %lf %lf %lf", &f, &b, &nf, &nb), 4, "%s", line);
    cr_expect_eq(nf, 32);
    cr_expect_eq(f, 4.0 * 32 * 32);
    cr_expect(strstr(out, "sigmoid") && strstr(out, "grows with n"), "%s", out);
    free(out), free(err);
    cr_expect_eq(t_run(NULL, NULL, "methods --crossover --d 1"), 64);
}

/* ---- --json (README, "Machine-readable output"): each document parsed back and held against
 * the text output of the same command */

/* stdout of a --json run parsed strictly (one document, valid UTF-8), or a failed test. */
static json_t *parse_json(const char *out)
{
    json_error_t e;
    json_t *j = json_loads(out ? out : "", JSON_REJECT_DUPLICATES, &e);
    cr_assert(j, "not JSON (%s at line %d): %s", e.text, e.line, out ? out : "");
    return j;
}

static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    cr_assert(s, "no string '%s'", key);
    return s;
}

static double jnum(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    cr_assert(json_is_number(v), "no number '%s'", key);
    return json_number_value(v);
}

/* methods --json holds the table's rows, in its order, with the same names, families and
 * phases; methods NAME --json the row with its decode split as the text prints it. */
Test(cli, methods_json_holds_the_rows_of_the_table)
{
    char *out = NULL, *err = NULL, *txt = NULL;
    cr_assert_eq(t_run(&txt, &err, "methods"), 0, "%s", err);
    free(err);
    cr_assert_eq(t_run(&out, &err, "methods --json"), 0, "%s", err);
    cr_expect_str_eq(err, "");
    json_t *j = parse_json(out), *rows = json_object_get(j, "methods");
    cr_expect_str_eq(jstr(j, "schema"), "attnbench/methods/1");
    /* the text: a header line, one line per row, a blank line, the count line */
    int n_txt = 0;
    const char *s = strchr(txt, '\n') + 1;
    for (; *s && *s != '\n'; s = strchr(s, '\n') + 1, n_txt++) {
        char name[64], family[64], phases[64];
        cr_assert_eq(sscanf(s, "%63s %63s %63s", name, family, phases), 3, "%s", s);
        const json_t *row = json_array_get(rows, (size_t)n_txt);
        cr_assert(row, "row %d (%s) missing", n_txt, name);
        cr_expect_str_eq(jstr(row, "name"), name);
        cr_expect_str_eq(jstr(row, "family"), family);
        const json_t *ph = json_object_get(row, "phases");
        char joined[64] = "";
        for (size_t k = 0; k < json_array_size(ph); k++)
            snprintf(joined + strlen(joined), sizeof joined - strlen(joined), "%s%s",
                     k ? "," : "", json_string_value(json_array_get(ph, k)));
        cr_expect_str_eq(joined, phases, "%s", name);
    }
    cr_expect_gt(n_txt, 40);
    cr_expect_eq(json_array_size(rows), (size_t)n_txt);
    cr_expect_eq(jnum(j, "count"), n_txt);
    char count_line[64];
    snprintf(count_line, sizeof count_line, "\n%d methods;", n_txt);
    cr_expect(strstr(txt, count_line), "%s", txt);
    /* a knob whose top is n, and a real-valued one */
    for (size_t i = 0; i < json_array_size(rows); i++) {
        const json_t *row = json_array_get(rows, i), *k = json_object_get(row, "knob");
        if (!strcmp(jstr(row, "name"), "window")) {
            cr_expect_str_eq(jstr(k, "name"), "w");
            cr_expect_eq(jnum(k, "lo"), 1);
            cr_expect(json_is_null(json_object_get(k, "hi")) &&
                      json_is_true(json_object_get(k, "hi_is_n")) &&
                      json_is_true(json_object_get(k, "integer")));
        }
        if (!strcmp(jstr(row, "name"), "flexprefill")) {
            cr_expect_eq(jnum(k, "hi"), 1);
            cr_expect(json_is_false(json_object_get(k, "integer")));
        }
        if (!strcmp(jstr(row, "name"), "dense")) cr_expect(json_is_null(k));
    }
    json_decref(j);
    free(out), free(err), free(txt);

    /* one row: the decode split and the citation as the text says them */
    cr_assert_eq(t_run(&txt, &err, "methods h2o"), 0, "%s", err);
    free(err);
    cr_assert_eq(t_run(&out, &err, "methods h2o --json"), 0, "%s", err);
    j = parse_json(out);
    cr_expect_str_eq(jstr(j, "schema"), "attnbench/method/1");
    const json_t *m = json_object_get(j, "method"), *dc = json_object_get(m, "decode");
    cr_expect_str_eq(jstr(m, "name"), "h2o");
    cr_expect_str_eq(jstr(m, "family"), "kv");
    cr_expect_str_eq(jstr(m, "solver"), "analytic");
    char want[512];
    snprintf(want, sizeof want, ": per step %.3g of dense (K/V bytes read %.3g of dense's); "
             "no one-off work\n", jnum(dc, "ratio_step"), jnum(dc, "bytes_ratio"));
    cr_expect(jnum(dc, "bytes_ratio") > 0.2 && jnum(dc, "bytes_ratio") < 0.3,
              "h2o keeps C = 1024 of 4096 keys: a quarter of the bytes, %g", jnum(dc, "bytes_ratio"));
    cr_expect(strstr(txt, want), "'%s' not in:\n%s", want, txt);
    cr_expect_eq(jnum(dc, "flops_once"), 0);
    snprintf(want, sizeof want, "citation   %s\n", jstr(m, "citation"));
    cr_expect(strstr(txt, want), "%s", txt);
    json_decref(j);
    free(out), free(err), free(txt);

    /* the crossover: linear-elu's n* is d, sigmoid's cost grows with n (null) */
    cr_assert_eq(t_run(&out, &err, "methods --crossover --d 32 --json"), 0, "%s", err);
    j = parse_json(out);
    rows = json_object_get(j, "rows");
    int seen = 0;
    for (size_t i = 0; i < json_array_size(rows); i++) {
        const json_t *row = json_array_get(rows, i);
        if (!strcmp(jstr(row, "method"), "linear-elu")) {
            cr_expect_eq(jnum(row, "n_flops"), 32);
            cr_expect_eq(jnum(row, "flops_per_query"), 4.0 * 32 * 32);
            seen++;
        }
        if (!strcmp(jstr(row, "method"), "sigmoid")) {
            cr_expect(json_is_true(json_object_get(row, "grows")) &&
                      json_is_null(json_object_get(row, "n_flops")));
            seen++;
        }
    }
    cr_expect_eq(seen, 2);
    json_decref(j);
    free(out), free(err);

    /* errors stay one line on stderr, nothing on stdout */
    cr_expect_eq(t_run(&out, &err, "methods no-such --json"), 64);
    cr_expect_str_eq(out, "");
    cr_expect_eq(t_count_lines(err), 1, "%s", err);
    free(out), free(err);
}

/* info --json on a workload and on a results file: the facts of the text, as numbers. */
Test(cli, info_json_agrees_with_the_text)
{
    const char *w = t_path("info-w.h5");
    char *out = NULL, *err = NULL, *txt = NULL;
    cr_assert_eq(t_run(NULL, &err, "gen --n 512 --layers 3 --heads 4 --kv-heads 2 --d 32 "
                       "--tasks retrieve,aggregate --seed 5 -o '%s'", w), 0, "%s", err);
    free(err);
    cr_assert_eq(t_run(&txt, &err, "info '%s'", w), 0, "%s", err);
    free(err);
    cr_assert_eq(t_run(&out, &err, "info '%s' --json", w), 0, "%s", err);
    json_t *j = parse_json(out);
    cr_expect_str_eq(jstr(j, "schema"), "attnbench/info/1");
    cr_expect_str_eq(jstr(j, "kind"), "workload");
    cr_expect_str_eq(jstr(j, "file"), w);
    cr_expect_str_eq(jstr(j, "file_schema"), "attnbench/workload/1");
    cr_expect_eq(jnum(j, "seed"), 5);
    const json_t *sh = json_object_get(j, "shape");
    cr_expect(jnum(sh, "layers") == 3 && jnum(sh, "heads") == 4 && jnum(sh, "kv_heads") == 2 &&
              jnum(sh, "group") == 2 && jnum(sh, "seq") == 512 && jnum(sh, "d") == 32);
    cr_expect(json_is_null(json_object_get(sh, "d_model")));
    cr_expect_eq(jnum(json_object_get(j, "positions"), "last"), 511);
    cr_expect_str_eq(jstr(j, "mask"), "causal");
    const json_t *q = json_object_get(json_object_get(j, "datasets"), "q");
    cr_expect(json_array_size(q) == 4 && json_integer_value(json_array_get(q, 2)) == 512);
    /* tasks: the count of the text, split by kind */
    const json_t *tk = json_object_get(j, "tasks"), *bk = json_object_get(tk, "by_kind");
    long long n_tasks = -1;
    const char *at = strstr(txt, "\ntasks ");
    cr_assert(at && sscanf(at, "\ntasks %lld queries", &n_tasks) == 1, "%s", txt);
    cr_expect_eq(jnum(tk, "count"), n_tasks);
    cr_expect_eq(jnum(bk, "retrieve") + jnum(bk, "aggregate"), n_tasks);
    cr_expect(jnum(bk, "retrieve") > 0 && jnum(bk, "aggregate") > 0);
    /* the profile grid: each layer's names, through the kinds' letters, is the text's line */
    const json_t *pr = json_object_get(j, "profiles"), *kinds = json_object_get(pr, "kinds");
    const json_t *grid = json_object_get(pr, "grid");
    cr_assert_eq(json_array_size(grid), 3);
    for (size_t l = 0; l < 3; l++) {
        char letters[8] = "", line[64];
        const json_t *row = json_array_get(grid, l);
        cr_assert_eq(json_array_size(row), 2);
        for (size_t g = 0; g < 2; g++)
            for (size_t k = 0; k < json_array_size(kinds); k++)
                if (!strcmp(jstr(json_array_get(kinds, k), "name"),
                            json_string_value(json_array_get(row, g))))
                    strcat(letters, jstr(json_array_get(kinds, k), "code"));
        snprintf(line, sizeof line, "\n  %10zu %s\n", l, letters);
        cr_expect(strlen(letters) == 2 && strstr(txt, line), "'%s' not in:\n%s", line, txt);
    }
    size_t len = 0;
    free(t_slurp(w, &len));
    cr_expect_eq(jnum(json_object_get(j, "storage"), "file_bytes"), (double)len);
    json_decref(j);
    free(out), free(err), free(txt);

    /* a results file: the cell counts of the text */
    const char *src = getenv("AB_SRC");
    cr_assert(src != NULL, "AB_SRC is not set");
    cr_assert_eq(t_run(&txt, &err, "info '%s/reports/baseline/default.h5'", src), 0, "%s", err);
    free(err);
    cr_assert_eq(t_run(&out, &err, "info '%s/reports/baseline/default.h5' --json", src), 0);
    j = parse_json(out);
    long long n, me, pf, dc, inf, g;
    at = strstr(txt, "\ncells ");
    cr_assert(at && sscanf(at, "\ncells %lld (%lld methods, %lld prefill, %lld decode, %lld "
                           "infeasible)", &n, &me, &pf, &dc, &inf) == 5, "%s", txt);
    const json_t *c = json_object_get(j, "cells");
    cr_expect_str_eq(jstr(j, "kind"), "results");
    cr_expect(jnum(c, "rows") == n && jnum(c, "methods") == me && jnum(c, "prefill") == pf &&
              jnum(c, "decode") == dc && jnum(c, "infeasible") == inf, "%s", out);
    cr_expect_eq(jnum(json_object_get(j, "tables"), "cells"), n);
    at = strstr(txt, "G = ");
    cr_assert(at && sscanf(at, "G = %lld", &g) == 1);
    cr_expect_eq(jnum(j, "decode_horizon"), g);
    cr_expect_eq(json_array_size(json_object_get(j, "workloads")), 1);
    json_decref(j);
    free(out), free(err), free(txt);

    /* a path that is not UTF-8 and holds a control character still gives valid JSON */
    char odd[1100], cmd[2400];
    snprintf(odd, sizeof odd, "%s", t_path("we\001ird\377&.h5"));
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", w, odd);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(t_run(&out, &err, "info '%s' --json", odd), 0, "%s", err);
    j = parse_json(out);
    const char *f = jstr(j, "file"), tail[] = "-we\001ird\xEF\xBF\xBD&.h5";
    cr_expect(strlen(f) > sizeof tail && !strcmp(f + strlen(f) - (sizeof tail - 1), tail), "%s", f);
    cr_expect(strstr(out, "we\\u0001ird"), "%s", out);
    json_decref(j);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "info /nonexistent/w.h5 --json"), 66);
    cr_expect_str_eq(out, "");
    cr_expect_eq(t_count_lines(err), 1, "%s", err);
    free(out), free(err);
}

/* The document printer itself: NaN and infinities null, reals shortest and still reals,
 * integers exact, strings escaped and made UTF-8, plain arrays on one line. */
Test(cli, json_printer_writes_what_json_holds)
{
    struct ab_json_doc d;
    ab_json_begin(&d);
    ab_json_num(&d, d.root, "nan", NAN);
    ab_json_num(&d, d.root, "inf", -INFINITY);
    ab_json_num(&d, d.root, "x", 0.9);
    ab_json_num(&d, d.root, "tiny", 1e-300);
    ab_json_num(&d, d.root, "whole", 256);
    ab_json_int(&d, d.root, "big", INT64_MAX);
    ab_json_str(&d, d.root, "s", "a\"b\\c\n\001\377z");
    ab_json_str(&d, d.root, "none", NULL);
    struct ab_json *a = ab_json_arr(&d, d.root, "arr");
    ab_json_int(&d, a, NULL, 1);
    ab_json_num(&d, a, NULL, 2.5);
    ab_json_bool(&d, a, NULL, 1);
    ab_json_bool(&d, a, NULL, 0);
    ab_json_null(&d, a, NULL);
    ab_json_obj(&d, d.root, "empty");
    struct ab_json *o = ab_json_obj(&d, ab_json_arr(&d, d.root, "objs"), NULL);
    ab_json_int(&d, o, "k", -1);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert(f);
    cr_assert_eq(ab_json_print(&d, f), AB_OK);
    fclose(f);
    cr_expect_str_eq(buf, "{\n"
                          "  \"nan\": null,\n"
                          "  \"inf\": null,\n"
                          "  \"x\": 0.9,\n"
                          "  \"tiny\": 1e-300,\n"
                          "  \"whole\": 256.0,\n"
                          "  \"big\": 9223372036854775807,\n"
                          "  \"s\": \"a\\\"b\\\\c\\n\\u0001\xEF\xBF\xBDz\",\n"
                          "  \"none\": null,\n"
                          "  \"arr\": [1, 2.5, true, false, null],\n"
                          "  \"empty\": {},\n"
                          "  \"objs\": [\n"
                          "    {\n"
                          "      \"k\": -1\n"
                          "    }\n"
                          "  ]\n"
                          "}\n");
    json_t *j = parse_json(buf);
    cr_expect_eq(json_real_value(json_object_get(j, "x")), 0.9);
    cr_expect_eq(json_integer_value(json_object_get(j, "big")), INT64_MAX);
    json_decref(j);
    free(buf);
}

/* gen --full writes a full-mask workload on which full-mask-only rows run. */
Test(cli, gen_full_mask_runs_full_mask_only_rows)
{
    const char *w = t_path("full.h5"), *r = t_path("full-r.h5");
    char *out = NULL, *err = NULL;
    cr_assert_eq(t_run(NULL, &err, "gen --profile diffuse --layers 1 --heads 2 --kv-heads 1 --n 256 --full -o '%s'", w), 0, "%s", err ? err : "");
    free(err), err = NULL;
    cr_assert_eq(t_run(&out, &err, "info '%s'", w), 0);
    cr_expect(strstr(out, "full") != NULL, "%s", out);
    free(out), out = NULL;
    free(err), err = NULL;
    cr_assert_eq(t_run(&out, &err, "run '%s' --methods key-pooling,nystrom --budgets 0.5 --phase prefill -o '%s'", w, r), 0, "%s", err ? err : "");
    cr_expect(strstr(out, "key-pooling") && strstr(out, "nystrom"), "%s", out);
    free(out), free(err);
}

/* Two processes writing the same -o at the same time: each writes its own temporary and renames
 * it, so both succeed and the file is whole (one of the two) every time, with no temporary left
 * (issue 15: they shared NAME.tmp, and both failed). */
Test(cli, concurrent_writers_to_one_output)
{
    const char *bin = getenv("AB_BIN");
    cr_assert(bin != NULL, "AB_BIN is not set");
    const char *out = t_path("race.h5");
    for (int round = 0; round < 6; round++) {
        char cmd[4096];
        snprintf(cmd, sizeof cmd,
                 "'%s' gen --layers 1 --heads 2 --kv-heads 1 --n 512 --d 16 --seed 1 -o '%s' "
                 "--quiet >/dev/null 2>&1 & p1=$!; '%s' gen --layers 1 --heads 2 --kv-heads 1 "
                 "--n 512 --d 16 --seed 2 -o '%s' --quiet >/dev/null 2>&1 & p2=$!; "
                 "wait $p1; a=$?; wait $p2; b=$?; exit $((a * 16 + b))",
                 bin, out, bin, out);
        int st = system(cmd);
        cr_assert(st != -1 && WIFEXITED(st), "round %d: the shell failed", round);
        cr_expect_eq(WEXITSTATUS(st), 0, "round %d: exit statuses %d and %d", round,
                     WEXITSTATUS(st) / 16, WEXITSTATUS(st) % 16);
        char *o, *e;
        cr_expect_eq(t_run(&o, &e, "info '%s'", out), 0, "round %d: %s", round, e);
        free(o), free(e);
        cr_expect(!t_tmp_left(out), "round %d: a temporary was left", round);
    }
}

/* -o naming one of the inputs (itself, by another spelling, through a symbolic link, or as the
 * file of an option) is refused before anything is read or written: exit 64, one line, the
 * input byte for byte as it was (issue 15: `run x.h5 -o x.h5` replaced the workload). */
Test(cli, output_that_is_an_input_is_refused)
{
    const char *w = t_path("self.h5");
    char *o, *e;
    cr_assert_eq(t_run(&o, &e, "gen --layers 1 --heads 2 --kv-heads 1 --n 256 --d 16 -o '%s'", w),
                 0, "%s", e);
    free(o), free(e);
    size_t n0, n1;
    unsigned char *before = t_slurp(w, &n0);
    char link[1100], dotted[1100];
    snprintf(link, sizeof link, "%s.link.h5", w);
    remove(link);
    cr_assert_eq(symlink(w, link), 0);
    const char *slash = strrchr(w, '/');
    snprintf(dotted, sizeof dotted, "%.*s/./%s", (int)(slash - w), w, slash + 1);
    const char *cases[][2] = {
        {"run '%s' -o '%s'", "also an input"},
        {"heads '%s' -o '%s'", "also an input"},
        {"bench methods --workload '%s' -o '%s'", "also the input of --workload"},
    };
    for (int c = 0; c < 3; c++)
        for (int spelling = 0; spelling < 3; spelling++) {
            const char *out = spelling == 0 ? w : spelling == 1 ? link : dotted;
            cr_expect_eq(t_run(&o, &e, cases[c][0], w, out), 64, "%s: %s", cases[c][0], e);
            cr_expect(strstr(e, cases[c][1]) && t_count_lines(e) == 1, "%s", e);
            free(o), free(e);
        }
    unsigned char *after = t_slurp(w, &n1);
    cr_expect(n0 == n1 && !memcmp(before, after, n0), "the input changed");
    cr_expect(!t_tmp_left(w));
    free(before), free(after);
    remove(link);
}

/* The memory check counts the limits a process really has, not only physical memory: under
 * `ulimit -v` a workload that needs more is refused before anything is allocated (exit 65,
 * naming the limit), one that fits still runs (issue 15). */
Test(cli, memory_check_counts_the_address_space_limit)
{
    const char *bin = getenv("AB_BIN");
    cr_assert(bin != NULL, "AB_BIN is not set");
    const char *out = t_path("ulimit.h5"), *log = t_path("ulimit.err");
    char cmd[4096];
    /* a sanitizer build reserves terabytes of shadow memory and cannot start under ulimit -v */
    snprintf(cmd, sizeof cmd, "ulimit -v 1500000; '%s' --version >/dev/null 2>&1", bin);
    int can = system(cmd);
    if (!(can != -1 && WIFEXITED(can) && WEXITSTATUS(can) == 0))
        cr_skip_test("this build cannot start under ulimit -v (a sanitizer build)");
    /* 4 layers x 16 heads' Q, K, V at n = 131072, d = 64: 2.15 GB against 1.5 GB of address space */
    snprintf(cmd, sizeof cmd, "ulimit -v 1500000; '%s' gen --n 131072 --layers 4 -o '%s' "
             ">/dev/null 2>'%s'", bin, out, log);
    int st = system(cmd);
    cr_assert(st != -1 && WIFEXITED(st));
    cr_expect_eq(WEXITSTATUS(st), 65);
    char *err = (char *)t_slurp(log, NULL);
    cr_expect(err && strstr(err, "ulimit -v") && t_count_lines(err) == 1, "%s", err ? err : "");
    free(err);
    cr_expect(!t_exists(out) && !t_tmp_left(out));
    snprintf(cmd, sizeof cmd, "ulimit -v 1500000; '%s' gen --n 4096 --layers 1 -o '%s' "
             ">/dev/null 2>'%s'", bin, out, log);
    st = system(cmd);
    cr_expect(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "a small workload fits");
}

/* info reads results files too (issue 15: it refused them though its help says any attnbench
 * file): what made them and what they hold, at once. */
Test(cli, info_reads_a_results_file)
{
    const char *src = getenv("AB_SRC");
    cr_assert(src != NULL, "AB_SRC is not set");
    char *o, *e;
    cr_assert_eq(t_run(&o, &e, "info '%s/reports/baseline/default.h5'", src), 0, "%s", e);
    cr_expect(strstr(o, "schema       attnbench/results/2") && strstr(o, "cells        2864 (") &&
                  strstr(o, "workloads    1") && strstr(o, "G = 1024"),
              "%s", o);
    free(o), free(e);
}
