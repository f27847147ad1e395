/* test_plugin.c - methods from outside the tree (issue 18): the example plugin (plugins/top_p.c,
 * built by meson against include/attnbench/method.h alone) loads, joins the registry, passes the
 * generic battery in-process and through `selftest`, runs in `run`, a scenario and its report;
 * plugins made to be refused (tests/plugins/bad_plugin.c) get one line, their exit status, and
 * leave nothing behind; a crash in a plugin's cost() is reported by row and property while the
 * other checks still run. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "eval/battery.h"
#include "helpers.h"
#include "methods/method.h"

static const char *env(const char *name)
{
    const char *v = getenv(name);
    cr_assert(v && *v, "%s is not set (tests/meson.build sets it)", name);
    return v;
}
#define TOP_P env("AB_PLUGIN_TOP_P")

Test(plugin, loads_joins_the_registry_and_passes_the_battery)
{
    int before = ab_method_count();
    cr_assert_null(ab_method_find("top-p"));
    cr_assert_eq(ab_plugin_load(TOP_P), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(ab_method_count(), before + 1);
    const struct ab_method *m = ab_method_find("top-p");
    cr_assert_not_null(m);
    cr_expect_eq(ab_method_at(before), m, "plugin rows come after the built-in ones");
    cr_expect_null(ab_method_origin(ab_method_at(0)));
    cr_expect(strstr(ab_method_origin(m), "top_p.so"), "%s", ab_method_origin(m));
    /* loading it again adds nothing */
    cr_assert_eq(ab_plugin_load(TOP_P), AB_OK);
    cr_expect_eq(ab_method_count(), before + 1);
    int applied = 0;
    for (int p = 0; p < AB_PROP_COUNT; p++) {
        char why[512];
        int v = ab_battery_check(m, p, why, sizeof why);
        cr_expect(v != AB_VERDICT_FAIL, "top-p: %s: %s", ab_prop_name(p), why);
        applied += v == AB_VERDICT_PASS;
    }
    cr_expect_geq(applied, 8, "only %d properties applied to top-p", applied);
}

/* top-p's rule on a seeded problem: each decode row keeps the fewest keys whose exact mass
 * reaches p, so its recall is at least p and dropping its least probable kept key falls below. */
Test(plugin, top_p_keeps_the_fewest_keys_reaching_the_mass)
{
    cr_assert_eq(ab_plugin_load(TOP_P), AB_OK, "%s", ab_errmsg());
    char *out = NULL, *err = NULL;
    const char *w = t_path("tp-w.h5"), *r = t_path("tp-r.h5");
    cr_assert_eq(t_run(&out, &err, "gen --preset model --layers 1 --heads 2 --kv-heads 1 --n 256 --d 32 -o %s", w), 0, "%s", err);
    free(out), free(err);
    cr_assert_eq(t_run(&out, &err, "run %s --plugin %s --methods top-p --phase decode --knob p=0.8 --decode-queries 16 -o %s",
                       w, TOP_P, r), 0, "%s", err);
    free(out), free(err);
    /* the CSV's recall column: the mean exact mass on kept keys, >= p on every head */
    char csv[4096];
    snprintf(csv, sizeof csv, "%.*s.csv", (int)(strlen(r) - 3), r);
    size_t len;
    char *text = (char *)t_slurp(csv, &len);
    cr_assert_not_null(text);
    char *line = strtok(text, "\n");
    int col = -1, i = 0;
    for (char *c = line, *next; c; c = next, i++) {
        next = strchr(c, ',');
        if (next) *next++ = 0;
        if (!strcmp(c, "recall")) col = i;
    }
    cr_assert_geq(col, 0);
    int rows = 0;
    for (line = strtok(NULL, "\n"); line; line = strtok(NULL, "\n"), rows++) {
        char *c = line;
        for (int k = 0; k < col; k++) c = strchr(c, ',') + 1;
        double recall = strtod(c, NULL);
        cr_expect(recall >= 0.8 - 1e-6 && recall < 1, "recall %g at p = 0.8", recall);
    }
    cr_expect_eq(rows, 2, "one cell per head");
    free(text);
}

Test(plugin, methods_lists_and_shows_a_plugin_row)
{
    char *out = NULL, *err = NULL;
    cr_assert_eq(t_run(&out, &err, "methods --plugin %s", TOP_P), 0, "%s", err);
    cr_expect(strstr(out, "top-p") && strstr(out, "[plugin]") && strstr(out, "(1 from plugins)"), "%s", out);
    free(out), free(err);
    cr_assert_eq(t_run(&out, &err, "methods top-p --plugin %s", TOP_P), 0, "%s", err);
    cr_expect(strstr(out, "plugin     ") && strstr(out, "top_p.so") && strstr(out, "2502.02770"), "%s", out);
    free(out), free(err);
    cr_assert_eq(t_run(&out, &err, "methods top-p --plugin %s --json", TOP_P), 0, "%s", err);
    cr_expect(strstr(out, "\"plugin\": \"") && strstr(out, "top_p.so\""), "%s", out);
    free(out), free(err);
    cr_assert_eq(t_run(&out, &err, "methods snapkv --json"), 0, "%s", err);
    cr_expect(strstr(out, "\"plugin\": null"), "a built-in row: %s", out);
    free(out), free(err);
    /* without the plugin the row is unknown */
    cr_expect_eq(t_run(&out, &err, "methods top-p"), 64);
    free(out), free(err);
}

Test(plugin, selftest_passes_the_example)
{
    char *out = NULL, *err = NULL;
    int st = t_run(&out, &err, "selftest --plugin %s", TOP_P);
    cr_expect_eq(st, 0, "%s%s", out, err);
    cr_expect(strstr(out, "top-p (plugin ") && strstr(out, "1 row: 1 passed every property that applies, 0 failed"), "%s", out);
    cr_expect(!strstr(out, "FAIL") && !strstr(out, "CRASH"), "%s", out);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "selftest --plugin %s --json --property cost,mask", TOP_P), 0);
    cr_expect(strstr(out, "\"schema\": \"attnbench/selftest/1\"") || strstr(out, "\"schema\":\"attnbench/selftest/1\""), "%s", out);
    cr_expect(strstr(out, "\"failed_checks\": 0") || strstr(out, "\"failed_checks\":0"), "%s", out);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "selftest --plugin %s --property cots", TOP_P), 64);
    cr_expect(strstr(err, "did you mean 'cost'"), "%s", err);
    free(out), free(err);
}

/* The battery runs each check in a child: the crash in cost() is named, and the checks that do
 * not call cost() still pass. */
Test(plugin, a_plugin_crashing_in_its_cost_is_named_and_the_rest_still_run)
{
    char *out = NULL, *err = NULL;
    int st = t_run(&out, &err, "selftest --plugin %s", env("AB_PLUGIN_BAD_CRASH"));
    cr_expect_eq(st, 1, "%s%s", out, err);
    cr_expect(strstr(out, "bad-row (plugin "), "%s", out);
    cr_expect(strstr(out, "CRASH   cost     crashed in cost(): signal 11 (Segmentation fault)"), "%s", out);
    cr_expect(strstr(out, "pass    row "), "%s", out);
    cr_expect(strstr(out, "1 row: 0 passed every property that applies, 1 failed"), "%s", out);
    free(out), free(err);
}

/* Each refused plugin: one line naming the file and the problem, its exit status, nothing
 * written (a run's results file never appears). */
Test(plugin, refused_plugins_get_one_line_and_write_nothing)
{
    const char *w = t_path("bad-w.h5");
    char *out = NULL, *err = NULL;
    cr_assert_eq(t_run(&out, &err, "gen --preset model --layers 1 --heads 2 --kv-heads 1 --n 128 --d 32 -o %s", w), 0, "%s", err);
    free(out), free(err);
    FILE *f = fopen(t_path("not-elf.so"), "w");
    fputs("this is not a shared object\n", f);
    fclose(f);
    char notelf[4096];
    snprintf(notelf, sizeof notelf, "%s", t_path("not-elf.so"));
    const struct {
        const char *path, *says;
        int status;
    } cases[] = {
        {env("AB_PLUGIN_BAD_ABI"), "built for plugin ABI 2, this attnbench speaks ABI 1", 65},
        {env("AB_PLUGIN_BAD_CLASH"), "method 'snapkv' is already a built-in row", 64},
        {env("AB_PLUGIN_BAD_ROW"), "row 'bad-row': knob range [0, 10]", 65},
        {env("AB_PLUGIN_BAD_NONE"), "not an attnbench plugin (no symbol 'attnbench_plugin'", 65},
        {notelf, "cannot load the plugin", 65},
        {"/nonexistent/x.so", "no such plugin file", 66},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *r = t_path("bad-r.h5");
        int st = t_run(&out, &err, "run %s --plugin %s --methods window -o %s", w, cases[i].path, r);
        cr_expect_eq(st, cases[i].status, "%s: %d: %s", cases[i].path, st, err);
        cr_expect(strstr(err, cases[i].says), "%s: %s", cases[i].path, err);
        cr_expect(strstr(err, cases[i].path), "the message names the file: %s", err);
        cr_expect_eq(t_count_lines(err), 1, "%s", err);
        cr_expect(!t_exists(r) && !t_tmp_left(r), "%s: a results file was written", cases[i].path);
        free(out), free(err);
        st = t_run(&out, &err, "selftest --plugin %s", cases[i].path);
        cr_expect_eq(st, cases[i].status, "selftest %s: %d", cases[i].path, st);
        free(out), free(err);
    }
}

/* The example in a scenario (top-level plugins:), through run and report. */
Test(plugin, runs_in_a_scenario_and_its_report)
{
    const char *dir = t_path("tp-scen");
    char yaml[4096], cmd[8192];
    snprintf(yaml, sizeof yaml, "%s.yaml", dir);
    FILE *f = fopen(yaml, "w");
    cr_assert_not_null(f);
    fprintf(f, "schema: attnbench/scenario/1\nname: plugin-example\nplugins: [%s]\n"
               "workloads:\n  - name: small\n    gen: {preset: model, layers: 2, heads: 2, kv_heads: 1, n: 256, d: 32}\n"
               "run:\n  methods: [top-p, quest]\n  phases: decode\n  budgets: [0.9, 0.7]\n  decode_queries: 16\n",
            TOP_P);
    fclose(f);
    snprintf(cmd, sizeof cmd, "scenario %s -o %s --no-progress", yaml, dir);
    char *out = NULL, *err = NULL;
    int st = t_run(&out, &err, "%s", cmd);
    cr_assert_eq(st, 0, "%s\n%s", out, err);
    cr_expect(strstr(err, "(run): attnbench run ") && strstr(err, "--plugin ") && strstr(err, "(report): attnbench report"),
              "each step's command line carries the plugin: %s", err);
    free(out), free(err);
    char md[4096];
    snprintf(md, sizeof md, "%s/report/report.md", dir);
    size_t len;
    char *text = (char *)t_slurp(md, &len);
    cr_assert_not_null(text, "%s", md);
    cr_expect(strstr(text, "top-p"), "the report names the plugin's row");
    free(text);
    /* a plugin the scenario cannot load fails at its line */
    f = fopen(yaml, "w");
    fprintf(f, "schema: attnbench/scenario/1\nname: plugin-bad\nplugins: %s\n"
               "workloads:\n  - name: small\n    gen: {preset: model, n: 256}\n",
            env("AB_PLUGIN_BAD_ABI"));
    fclose(f);
    st = t_run(&out, &err, "scenario %s -o %s-bad --no-progress", yaml, dir);
    cr_expect_eq(st, 65, "%s", err);
    cr_expect(strstr(err, "line 3: plugins:") && strstr(err, "ABI"), "%s", err);
    free(out), free(err);
}
