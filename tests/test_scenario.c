/* test_scenario.c - scenario files and `attnbench scenario` (issue 4; scenarios/README.md):
 * every shipped scenario parses and validates (plain and --quick); each kind of mistake in a
 * scenario file (malformed YAML, unknown key, wrong type, missing key, unknown method, budget
 * out of range, missing workload file, wrong schema, features not available yet) gives its exit
 * status, one line on stderr naming the file and the line, and writes nothing; sweeps and quick
 * overrides expand as documented; and a tiny scenario runs end to end through gen, run and
 * report, with a failing step's exit status passed on. The shipped scenarios are found under
 * $AB_SRC/scenarios (tests/meson.build sets AB_SRC to the source root). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/ab.h"
#include "helpers.h"
#include "scenario/scenario.h"
#include "methods/method.h"

static const char *src_dir(void)
{
    const char *s = getenv("AB_SRC");
    return s && *s ? s : "..";
}

/* Writes text to a fresh scratch file named name and returns its path. */
static const char *write_yaml(const char *name, const char *text)
{
    const char *path = t_path(name);
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
    return path;
}

/* Runs `scenario FILE -o OUT` on text and checks: exit status, exactly one stderr line that
 * starts with "error: 'FILE' line LINE: " (line <= 0: any line, or none for file-level errors
 * when line == -1) and contains want, nothing on stdout, OUT not created. */
static void expect_error(const char *text, int status, int line, const char *want)
{
    const char *path = write_yaml("bad.yaml", text);
    char out_dir[1024], head[1200];
    snprintf(out_dir, sizeof out_dir, "%s", t_path("bad-out"));
    char *out, *err;
    int st = t_run(&out, &err, "scenario '%s' -o '%s'", path, out_dir);
    cr_expect_eq(st, status, "exit %d, want %d: %s", st, status, err);
    cr_expect_eq(t_count_lines(err), 1, "want one line on stderr: %s", err);
    if (line > 0)
        snprintf(head, sizeof head, "error: '%s' line %d: ", path, line);
    else if (line == 0)
        snprintf(head, sizeof head, "error: '%s' line ", path);
    else
        snprintf(head, sizeof head, "error: '%s': ", path);
    cr_expect(strncmp(err, head, strlen(head)) == 0, "want '%s...', got: %s", head, err);
    cr_expect(strstr(err, want) != NULL, "want '%s' in: %s", want, err);
    cr_expect_str_eq(out, "", "stdout: %s", out);
    cr_expect(!t_exists(out_dir), "'%s' was created by a failing scenario", out_dir);
    free(out), free(err);
}

#define HEAD     "schema: attnbench/scenario/1\nname: t\n"
#define TINY_GEN "    gen: {preset: model, layers: 1, heads: 2, kv_heads: 1, n: 128, d: 16}\n"

/* ---- shipped scenarios --------------------------------------------------------------------- */

Test(scenario, every_shipped_scenario_parses_and_validates)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/scenarios", src_dir());
    DIR *d = opendir(dir);
    cr_assert(d, "cannot open %s (set AB_SRC to the source root)", dir);
    int n = 0, n_new = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".yaml")) continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        for (int quick = 0; quick < 2; quick++) {
            struct ab_scenario s;
            int rc = ab_scenario_load(path, quick, &s), has_run = rc == AB_OK && s.has_run;
            cr_expect_eq(rc, AB_OK, "%s%s: %s", path, quick ? " --quick" : "", ab_errmsg());
            if (!rc) {
                cr_expect(s.n_workloads >= 1);
                cr_expect(strlen(s.sha256) == 64);
                /* the file name is the scenario's name, so reports/<name>/ is predictable */
                cr_expect(strncmp(e->d_name, s.name, len - 5) == 0 && strlen(s.name) == len - 5,
                          "%s: name '%s'", path, s.name);
                cr_expect(s.text[0] == '#', "%s: starts with a header comment", path);
            }
            ab_scenario_free(&s);
            char *out, *err;
            cr_expect_eq(
                t_run(&out, &err, "scenario '%s' --dry-run%s", path, quick ? " --quick" : ""), 0,
                "%s", err);
            /* a heads: section without run: is statistics only (sinks, streaming-llm) */
            cr_expect(!strstr(out, "attnbench run ") == !has_run && strstr(out, "attnbench report "),
                      "%s", out);
            /* a heads: section adds the heads step and passes its file on to report */
            if (strstr(e->d_name, "sinks") || strstr(e->d_name, "calibration") ||
                strstr(e->d_name, "real-model") || strstr(e->d_name, "retrieval-heads") ||
                strstr(e->d_name, "streaming-llm"))
                cr_expect(strstr(out, "attnbench heads ") && strstr(out, "/heads.h5 "), "%s", out);
            /* eval_model entries run eval-model and report reads their results */
            if (strstr(e->d_name, "real-model") || strstr(e->d_name, "retrieval-heads") ||
                strstr(e->d_name, "calibration") || strstr(e->d_name, "streaming-llm"))
                cr_expect(strstr(out, "attnbench eval-model ") && strstr(out, "/model.h5 "), "%s",
                          out);
            free(out), free(err);
        }
        if (!strcmp(e->d_name, "sinks.yaml") || !strcmp(e->d_name, "calibration.yaml")) n_new++;
        n++;
    }
    closedir(d);
    cr_expect(n >= 4, "found %d scenarios in %s", n, dir);
    cr_expect_eq(n_new, 2, "sinks.yaml and calibration.yaml are shipped");
}

Test(scenario, default_is_the_quick_tour)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/scenarios/default.yaml", src_dir());
    struct ab_scenario s;
    cr_assert_eq(ab_scenario_load(path, 0, &s), AB_OK, "%s", ab_errmsg());
    cr_expect_eq(s.n_workloads, 1);
    cr_expect_eq(s.workloads[0].n, 4096);
    cr_expect_str_eq(s.workloads[0].preset, "model");
    cr_expect_str_eq(s.workloads[0].tasks, "retrieve,aggregate");
    cr_expect_null(s.run.methods, "all methods");
    cr_expect_str_eq(s.run.budgets, "0.5,0.25,0.125,0.0625,0.03125", "run's default grid");
    cr_expect_eq(s.run_phases, AB_PHASE_PREFILL | AB_PHASE_DECODE);
    cr_expect_eq(s.run.decode_queries, 64);
    cr_expect(s.report.maps && s.report.map_methods);
    ab_scenario_free(&s);
    cr_assert_eq(ab_scenario_load(path, 1, &s), AB_OK, "%s", ab_errmsg());
    cr_expect(s.quick && s.workloads[0].n <= 1024, "quick is small: n %lld",
              (long long)s.workloads[0].n);
    ab_scenario_free(&s);
}

Test(scenario, sparse_frontier_is_the_paper_grid)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/scenarios/sparse-frontier.yaml", src_dir());
    struct ab_scenario s;
    cr_assert_eq(ab_scenario_load(path, 0, &s), AB_OK, "%s", ab_errmsg());
    cr_expect_eq(s.n_workloads, 3);
    int64_t want_n[3] = {2048, 4096, 8192};
    for (int i = 0; i < 3 && i < s.n_workloads; i++) {
        cr_expect_eq(s.workloads[i].n, want_n[i]);
        cr_expect_str_eq(s.workloads[i].tasks, "retrieve,aggregate");
    }
    cr_expect_null(s.run.methods, "every method");
    cr_expect_eq(s.run_phases, AB_PHASE_PREFILL | AB_PHASE_DECODE);
    /* compression 1.43, 2, 3.33, 5, 10, 20 */
    double compression[6] = {1 / 0.7, 2, 1 / 0.3, 5, 10, 20};
    const char *b = s.run.budgets;
    for (int i = 0; i < 6; i++) {
        cr_assert(b && *b, "6 budgets: %s", s.run.budgets);
        double x = strtod(b, (char **)&b);
        cr_expect(fabs(1 / x - compression[i]) < 0.01, "budget %g", x);
        b += *b == ',';
    }
    cr_expect(!*b, "6 budgets: %s", s.run.budgets);
    ab_scenario_free(&s);
}

/* ---- errors: one line, the right exit status, nothing written ------------------------------ */

Test(scenario, malformed_yaml_names_libyaml_problem_and_line)
{
    expect_error(HEAD "workloads: [a, b\nrun: {}\n", 65, 4,
                 "malformed YAML: did not find "
                 "expected ',' or ']'");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "\tbad: 1\n", 65, 6, "malformed YAML: ");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "---\n" HEAD, 65, 7,
                 "second YAML document");
    expect_error("", 65, -1, "empty file");
}

/* Deep flow nesting is refused from the raw text at once: libyaml's scanner is quadratic in it
 * (issue 15: a 200 KB file of nested lists took 43 s before its type error). Brackets inside
 * quotes and comments do not count; 64 levels still reach the schema's own error. */
Test(scenario, deep_flow_nesting_is_refused_at_once)
{
    enum { DEPTH = 100000 };
    char *text = malloc(2 * DEPTH + 256);
    cr_assert(text);
    int n = sprintf(text, HEAD "workloads: ");
    memset(text + n, '[', DEPTH), memset(text + n + DEPTH, ']', DEPTH);
    strcpy(text + n + 2 * DEPTH, "\n");
    double t0 = ab_now();
    expect_error(text, 65, 3, "nested more than 64 deep");
    cr_expect_lt(ab_now() - t0, 2.0, "took %.1f s", ab_now() - t0);
    n = sprintf(text, HEAD "description: \"[[[[[[[[[[\"  # [[[[[[[[[[[[[[[\nworkloads: ");
    memset(text + n, '[', 64), memset(text + n + 64, ']', 64);
    strcpy(text + n + 128, "\n");
    expect_error(text, 65, 4, "workloads entry 1 wants a map");
    free(text);
}

Test(scenario, unknown_keys_name_the_key_and_line)
{
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "run:\n  budget: [0.5]\n", 65, 7,
                 "unknown key 'budget' in run (did you mean 'budgets'?)");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "colour: blue\n", 65, 6,
                 "unknown key 'colour' in the top level");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "methods: all\n", 65, 6,
                 "unknown key 'methods' in the top level (it belongs in run)");
    expect_error(HEAD
                 "workloads:\n  - name: w\n"
                 "    gen: {preset: model, layers: 1, heads: 2, kv_heads: 1, n: 128, dd: 16}\n",
                 65, 5, "unknown key 'dd' in gen of workload 'w' (did you mean 'd'?)");
    expect_error(HEAD "workloads:\n  - name: w\n    n: 128\n" TINY_GEN, 65, 5,
                 "unknown key 'n' in workload 'w' (it belongs in gen)");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "run:\n  rows: 8\n  rows: 9\n", 65, 8,
                 "duplicate key 'rows' in run (first on line 7)");
}

Test(scenario, wrong_types_name_the_line)
{
    expect_error(HEAD "workloads:\n  - name: w\n"
                      "    gen: {preset: model, layers: 1, heads: 2, kv_heads: 1, n: big, d: 16}\n",
                 65, 5, "'n' in gen of workload 'w' wants an integer, got 'big'");
    expect_error(HEAD
                 "workloads:\n  - name: w\n"
                 "    gen: {preset: model, layers: 1, heads: 2, kv_heads: 1, n: \"128\", d: 16}\n",
                 65, 5, "wants an integer, got the string '128'");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "run: [methods, all]\n", 65, 6,
                 "run wants a map of keys, got a list");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "run:\n  budgets: {a: 1}\n", 65, 7,
                 "'budgets' in run wants a list, got a map");
    /* run's keys read through run's table: a word where a list goes is a one-item list */
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "run:\n  phases: sideways\n", 65, 7,
                 "'phases' in run has an unknown item 'sideways' (prefill, decode or both)");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "run:\n  phases: [prefill, [decode]]\n",
                 65, 7, "'phases' in run wants a list of words, got a list");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "run:\n  rows: [1, 2]\n", 65, 7,
                 "'rows' in run wants one value, got a list");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "run:\n  topk: \"16\"\n", 65, 7,
                 "'topk' in run wants a number, got the string '16'");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "seed: [1]\n", 65, 6,
                 "'seed' wants an integer, got a list");
    expect_error(HEAD "workloads: w\n", 65, 3, "'workloads' wants a list, got 'w'");
}

Test(scenario, missing_required_keys)
{
    expect_error(HEAD "run: {rows: 8}\n", 65, 1, "missing key 'workloads'");
    expect_error("schema: attnbench/scenario/1\nworkloads:\n  - name: w\n" TINY_GEN, 65, 1,
                 "missing key 'name'");
    expect_error(HEAD "workloads:\n  - gen: {n: 128}\n", 65, 4, "workloads entry 1 has no 'name'");
    expect_error(HEAD "workloads:\n  - name: w\n", 65, 4,
                 "workload 'w' needs one of 'gen', 'file', 'capture' or 'import'");
    expect_error("name: t\nworkloads: []\n", 65, 1, "missing key 'schema'");
}

Test(scenario, schema_mismatch)
{
    expect_error("schema: attnbench/scenario/2\nname: t\n", 65, 1,
                 "schema 'attnbench/scenario/2' is not supported (this attnbench reads "
                 "'attnbench/scenario/1')");
    expect_error("schema: attnbench/results/1\nname: t\n", 65, 1, "is not supported");
}

Test(scenario, methods_and_budgets_are_checked_before_anything_runs)
{
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "run:\n  methods: [dense, strming]\n",
                 65, 7, "unknown method 'strming' in 'methods' in run (did you mean 'streaming'?)");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "run:\n  methods: [frobnicate]\n", 65, 7,
                 "unknown method 'frobnicate'");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "run:\n  budgets: [0.5,\n    1.5]\n", 65,
                 8, "'budgets' in run wants a number in (0, 1], got '1.5'");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "run:\n  budgets: [0]\n", 65, 7,
                 "'budgets' in run wants a number in (0, 1], got '0'");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN
                      "run:\n  phases: [prefill]\n  methods: [dense, quest]\n",
                 65, 8, "method 'quest' has no prefill phase");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "run:\n  decode_queries: 128\n", 65, 7,
                 "decode_queries 128 must be below the length 128 of workload 'w'");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "report:\n  maps: [\"1:0\"]\n", 65, 7,
                 "map '1:0' is outside workload 'w' (1 layers x 2 heads)");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "report:\n  map_methods: [nope]\n", 65,
                 7, "unknown method 'nope'");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "quick:\n  budgets: [2]\n", 65, 7,
                 "'budgets' in quick wants a number in (0, 1], got '2'");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "report:\n  family: [static,\n    foo]\n",
                 65, 8, "'family' in report has an unknown item 'foo' (static, dynamic, kv, linear "
                        "or calibration)");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "report:\n  methods: [windw]\n", 65,
                 7, "unknown method 'windw' in 'methods' in report (did you mean 'window'?)");
}

Test(scenario, report_methods_and_family_reach_the_report_not_the_run)
{
    const char *path = write_yaml("filter.yaml", HEAD "workloads:\n  - name: w\n" TINY_GEN
                                                      "run:\n  methods: [dense, window, quest, "
                                                      "h2o]\n  budgets: [0.5]\nreport:\n  "
                                                      "methods: [window]\n  family: [kv]\n");
    const char *dir = t_path("filter-out");
    char *out, *err;
    cr_assert_eq(t_run(&out, &err, "scenario '%s' -o '%s' --dry-run", path, dir), 0, "%s", err);
    cr_expect(strstr(out, "attnbench run ") && strstr(out, "--methods dense,window,quest,h2o "),
              "run keeps its methods: %s", out);
    const char *rep = strstr(out, "attnbench report ");
    cr_expect(rep && strstr(rep, " --methods window --family kv "), "%s", out);
    free(out), free(err);
}

Test(scenario, gen_options_are_checked_by_the_generator)
{
    expect_error(HEAD "workloads:\n  - name: w\n"
                      "    gen: {layers: 1, heads: 3, kv_heads: 2, n: 128, d: 16}\n",
                 65, 4, "workload 'w': heads (3) must be a multiple of kv heads (2)");
    expect_error(HEAD "workloads:\n  - name: w\n"
                      "    gen: {profile: streeming, n: 128}\n",
                 65, 5,
                 "unknown profile 'streeming' in gen of workload 'w' (did you mean 'streaming'?)");
    expect_error(HEAD "workloads:\n  - name: w\n    gen: {tasks: [retrieve, fetch], n: 128}\n", 65,
                 5, "unknown task 'fetch'");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "  - name: w\n" TINY_GEN, 65, 6,
                 "two workloads are named 'w'");
    expect_error(HEAD "workloads:\n  - name: ../w\n" TINY_GEN, 65, 4,
                 "workload name '../w' must be");
}

Test(scenario, missing_workload_file_exits_66)
{
    expect_error(HEAD "workloads:\n  - name: w\n    file: no-such-workload.h5\n", 66, 4,
                 "workload 'w': file '");
    char *out, *err;
    cr_expect_eq(t_run(&out, &err, "scenario '%s'", t_path("no-such-scenario.yaml")), 66);
    cr_expect(strstr(err, "no such file") && t_count_lines(err) == 1, "%s", err);
    free(out), free(err);
}

/* ---- real models: model, capture, import, eval_model (issue 6) ----------------------------- */

static const char *shared_dir(void)
{
    const char *s = getenv("AB_SHARED");
    return s && *s ? s : "../../shared";
}

/* HEAD plus "model: {path: <stories260K>, tokenizer: <tok512>}" into buf. */
static const char *model_head(char *buf, size_t cap)
{
    snprintf(buf, cap,
             HEAD "model: {path: %s/models/stories260K/stories260K.bin,\n"
                  "        tokenizer: %s/models/stories260K/tok512.bin}\n",
             shared_dir(), shared_dir());
    return buf;
}

/* A scratch text file (for text: keys), its absolute path. */
static const char *story_path(void)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/datasets/story.txt", src_dir());
    return path;
}

/* expect_error on model_head + body, where STORY in body stands for the story's path. */
static void expect_model_error(const char *body, int status, int line, const char *want)
{
    char head[2048], text[8192];
    model_head(head, sizeof head);
    size_t n = (size_t)snprintf(text, sizeof text, "%s", head);
    for (const char *p = body; *p && n < sizeof text - 1100;) {
        if (!strncmp(p, "STORY", 5)) {
            n += (size_t)snprintf(text + n, sizeof text - n, "%s", story_path());
            p += 5;
        } else {
            text[n++] = *p++;
        }
    }
    text[n] = 0;
    expect_error(text, status, line, want);
}

Test(scenario, model_capture_import_and_eval_model_parse)
{
    char head[2048], text[8192];
    model_head(head, sizeof head);
    /* an .npy to import (float32, (3, 1, 1, 8, 4): q, k, v stacked), written by hand */
    const char *npy = t_path("qkv.npy");
    FILE *f = fopen(npy, "wb");
    cr_assert(f);
    const char hdr[] = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 1, 1, 8, 4), }";
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
    size_t hl = sizeof hdr - 1, total = 10 + hl + 1, pad = (64 - total % 64) % 64;
    pre[8] = (unsigned char)((hl + 1 + pad) & 0xff), pre[9] = (unsigned char)((hl + 1 + pad) >> 8);
    fwrite(pre, 1, 10, f), fwrite(hdr, 1, hl, f);
    for (size_t i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    float x[96];
    for (int i = 0; i < 96; i++) x[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
    fwrite(x, sizeof x[0], 96, f);
    fclose(f);
    snprintf(
        text, sizeof text,
        "%sheads: {}\nworkloads:\n"
        "  - name: s\n    capture: {text: %s, hidden: true, generate: 4}\n"
        "  - name: c\n    capture: {copy_task: 40, seed: 3}\n"
        "  - name: t\n    capture: {tokens: [1, 403, 407], offset: 1, length: 2}\n"
        "  - name: i\n    import: {files: [%s], layout: [layer, head, seq, dim],\n"
        "              names: [q, k, v], causal: false, scale: 0.5}\n"
        "run: {methods: [dense], decode_queries: 2}\n"
        "eval_model:\n"
        "  - {text: %s, methods: [streaming], budgets: [0.5], phases: [prefill, decode],\n"
        "     decode_queries: 16, heads_top: {k: [1, 4], score: induction_score},\n"
        "     heads_bottom: {k: 2, score: induction_score}, stride: 100, window_bos: true}\n"
        "  - {copy_task: 40, methods: [quest], phases: [decode], decode_queries: 8,\n"
        "     heads_random: 3}\n"
        "  - {copy_task: 40, methods: [act], heads_select: {calibrate_copy: 20, min: 0.01}}\n"
        "  - {copy_task: 40, heads: [\"0:1\", \"2:3\"]}\n"
        "report: {study: retrieval-heads}\n"
        "quick: {copy_task: 20, generate: 2, eval_methods: [streaming], eval_budgets: [0.25]}\n",
        head, story_path(), npy, story_path());
    const char *path = write_yaml("real.yaml", text);
    struct ab_scenario s;
    cr_assert_eq(ab_scenario_load(path, 0, &s), AB_OK, "%s", ab_errmsg());
    cr_expect(s.model && strstr(s.model, "stories260K.bin") && s.tokenizer);
    cr_assert_eq(s.n_workloads, 4);
    cr_expect_eq(s.workloads[0].source, AB_SCENARIO_CAPTURE);
    cr_expect(s.workloads[0].capture.hidden && s.workloads[0].capture.generate == 4);
    cr_expect(s.workloads[1].capture.copy_task == 40 && s.workloads[1].seed == 3 &&
              s.workloads[1].n == 81);
    cr_expect_str_eq(s.workloads[2].capture.tokens, "1,403,407");
    cr_expect(s.workloads[2].capture.offset == 1 && s.workloads[2].capture.length == 2);
    cr_expect_str_eq(s.report.study, "retrieval-heads");
    cr_expect_eq(s.workloads[3].source, AB_SCENARIO_IMPORT);
    cr_expect(s.workloads[3].import.causal == 0 && s.workloads[3].import.scale == 0.5);
    cr_expect_str_eq(s.workloads[3].import.layout, "layer,head,seq,dim");
    cr_expect_str_eq(s.workloads[3].import.names, "q,k,v");
    cr_assert_eq(s.n_evals, 4);
    cr_expect(s.evals[0].heads_kind == AB_SCENARIO_HEADS_RANKED && s.evals[0].o.stride == 100);
    cr_expect_str_eq(s.evals[0].o.heads_top, "1,4");
    cr_expect_str_eq(s.evals[0].o.heads_bottom, "2");
    cr_expect_str_eq(s.evals[0].o.heads_score, "induction_score");
    cr_expect(s.evals[0].phases == (AB_PHASE_PREFILL | AB_PHASE_DECODE));
    cr_expect(s.evals[1].heads_kind == AB_SCENARIO_HEADS_RANKED);
    cr_expect_str_eq(s.evals[1].o.heads_random, "3");
    cr_expect(s.evals[2].heads_kind == AB_SCENARIO_HEADS_SELECT &&
              s.evals[2].o.calibrate_copy == 20 && s.evals[2].o.select_min == 0.01);
    cr_expect(s.evals[3].heads_kind == AB_SCENARIO_HEADS_LIST && !s.evals[3].o.methods);
    cr_expect_str_eq(s.evals[3].o.heads, "0:1,2:3");
    ab_scenario_free(&s);
    /* quick: copy tasks and generate shrink, eval methods and budgets replaced */
    cr_assert_eq(ab_scenario_load(path, 1, &s), AB_OK, "%s", ab_errmsg());
    cr_expect(s.workloads[0].capture.generate == 2 && s.workloads[1].capture.copy_task == 20);
    cr_expect(s.evals[1].o.copy_task == 20 && s.evals[2].o.calibrate_copy == 20);
    cr_expect(s.evals[1].o.methods && !strcmp(s.evals[1].o.methods, "streaming"));
    cr_expect(s.evals[0].o.budgets && !strcmp(s.evals[0].o.budgets, "0.25"));
    ab_scenario_free(&s);
    /* the commands: capture, import, eval-model with its head options, report reads model*.h5 */
    char *out, *err;
    cr_expect_eq(t_run(&out, &err, "scenario '%s' --dry-run -o D", path), 0, "%s", err);
    cr_expect(strstr(out, "attnbench capture --model ") && strstr(out, " --hidden ") &&
                  strstr(out, " --generate 4 ") && strstr(out, "-o D/s.h5"),
              "%s", out);
    cr_expect(strstr(out, " --copy-task 40 --seed 3 ") != NULL, "%s", out);
    cr_expect(strstr(out, "attnbench import ") && strstr(out, " --names q,k,v --full --scale 0.5 "),
              "%s (the default layout is not repeated)", out);
    cr_expect(
        strstr(out, " --stride 100 --window-bos --heads-top 1,4 --heads-bottom 2 --heads-score induction_score "
                    "--heads-file D/heads.h5 ") &&
            strstr(out, "--phase both --decode-queries 16 ") && strstr(out, "-o D/model.h5"),
        "%s", out);
    cr_expect(strstr(out, " --decode-queries 8 --heads-random 3 ") &&
                  strstr(out, "-o D/model-2.h5"),
              "%s", out);
    cr_expect(strstr(out, " --heads-select --calibrate-copy 20 --select-min 0.01 ") != NULL, "%s",
              out);
    cr_expect(strstr(out, " --heads 0:1,2:3 ") != NULL, "%s", out);
    cr_expect(strstr(out, " --tokens 1,403,407 --offset 1 --length 2 ") != NULL, "%s", out);
    cr_expect(strstr(out, " --study retrieval-heads") != NULL, "%s", out);
    cr_expect(strstr(out, "D/heads.h5 D/model.h5 D/model-2.h5 D/model-3.h5 D/model-4.h5 "
                          "--workload D/s.h5 --study retrieval-heads -o D/report") != NULL,
              "%s", out);
    free(out), free(err);
}

Test(scenario, real_model_keys_are_checked_with_their_line)
{
    /* capture: unknown key, two inputs, none, generate with copy_task, bad types */
    expect_model_error("workloads:\n  - name: w\n    capture: {copy_task: 9, prompts: x}\n", 65, 7,
                       "unknown key 'prompts' in capture of workload 'w' (did you mean "
                       "'prompt'?)");
    expect_model_error("workloads:\n  - name: w\n    capture: {text: STORY, copy_task: 9}\n", 65, 7,
                       "has two inputs, 'text' and 'copy_task'");
    expect_model_error("workloads:\n  - name: w\n    capture: {hidden: true}\n", 65, 7,
                       "needs one input");
    expect_model_error("workloads:\n  - name: w\n    capture: {copy_task: 9, generate: 3}\n", 65, 7,
                       "'generate' does not go with 'copy_task'");
    expect_model_error("workloads:\n  - name: w\n    capture: {copy_task: 9, hidden: yes}\n", 65, 7,
                       "'hidden' in capture of workload 'w' wants true or false");
    expect_model_error("workloads:\n  - name: w\n    capture: {tokens: \"1,,2\"}\n", 65, 7,
                       "wants token ids");
    expect_model_error("workloads:\n  - name: w\n    capture: {text: no-such.txt}\n", 66, 7,
                       "does not exist");
    /* capture without a model; a model file that is missing (66) */
    expect_error(HEAD "workloads:\n  - name: w\n    capture: {copy_task: 9}\n", 65, 5,
                 "needs a model: the top-level 'model: {path: FILE}' or its own");
    expect_error(HEAD "model: {path: no-such-model.bin}\nworkloads:\n  - name: w\n"
                      "    capture: {copy_task: 9}\n",
                 66, 3, "'path' in model: file '");
    expect_error(HEAD "model: {paht: m.bin}\nworkloads:\n  - name: w\n    file: x.h5\n", 65, 3,
                 "unknown key 'paht' in model (did you mean 'path'?)");
    /* import */
    expect_model_error("workloads:\n  - name: w\n    import: {layout: [layer, head, seq, dim]}\n",
                       65, 7, "needs 'files'");
    expect_model_error("workloads:\n  - name: w\n    import: {files: [STORY], layout: "
                       "[layer, head, seq, seq]}\n",
                       65, 7, "names axis 'seq' twice");
    expect_model_error("workloads:\n  - name: w\n    import: {files: [STORY], dtype: f8}\n", 65, 7,
                       "only bf16");
    expect_model_error("workloads:\n  - name: w\n    import: {files: [nope.npy]}\n", 66, 7,
                       "does not exist");
    /* eval_model: methods without the phase, unknown method, bad budgets, head choices */
    const char *wl = "workloads:\n  - name: w\n    capture: {copy_task: 40}\n";
    char body[2048];
    snprintf(body, sizeof body, "%seval_model:\n  copy_task: 40\n  methods: [streaming, quest]\n",
             wl);
    expect_model_error(body, 65, 10, "method 'quest' in eval_model has no prefill phase");
    snprintf(body, sizeof body,
             "%seval_model:\n  - {copy_task: 40, phases: [prefill, decode], methods: "
             "[block-topk]}\n",
             wl);
    expect_model_error(body, 65, 9, "method 'block-topk' in eval_model has no decode phase");
    snprintf(body, sizeof body, "%seval_model:\n  copy_task: 40\n  methods: [streamin]\n", wl);
    expect_model_error(body, 65, 10,
                       "unknown method 'streamin' in 'methods' in eval_model entry "
                       "1 (did you mean 'streaming'?)");
    snprintf(body, sizeof body, "%seval_model:\n  copy_task: 40\n  budgets: [0.5, 1.5]\n", wl);
    expect_model_error(body, 65, 10,
                       "'budgets' in eval_model entry 1 wants a number in (0, 1], got '1.5'");
    snprintf(body, sizeof body, "%seval_model:\n  copy_task: 40\n  budgets: {a: 1}\n", wl);
    expect_model_error(body, 65, 10, "'budgets' in eval_model entry 1 wants a list, got a map");
    snprintf(body, sizeof body,
             "%seval_model:\n  copy_task: 40\n  heads_top: {k: 4, score: "
             "induction_score}\n",
             wl);
    expect_model_error(body, 65, 10, "the scenario needs a 'heads:' section");
    snprintf(body, sizeof body,
             "%sheads: {}\neval_model:\n  copy_task: 40\n  heads_top: {k: 4, "
             "score: inductoin_score}\n",
             wl);
    expect_model_error(body, 65, 11, "did you mean 'induction_score'?");
    snprintf(body, sizeof body,
             "%seval_model:\n  copy_task: 40\n  heads_random: 4\n"
             "  heads: [\"0:1\"]\n",
             wl);
    expect_model_error(body, 65, 0, "choose one way to pick heads");
    snprintf(body, sizeof body, "%seval_model:\n  copy_task: 40\n  heads_select: {min: 0}\n", wl);
    expect_model_error(body, 65, 10, "needs exactly one of 'calibrate: FILE'");
    snprintf(body, sizeof body, "%seval_model:\n  methods: [streaming]\n", wl);
    expect_model_error(body, 65, 9, "needs an input: text and/or copy_task");
    snprintf(body, sizeof body, "%seval_model:\n  copy_task: 40\n  phase: [prefill]\n", wl);
    expect_model_error(body, 65, 10,
                       "unknown key 'phase' in eval_model entry 1 (did you mean "
                       "'phases'?)");
    snprintf(body, sizeof body,
             "%seval_model:\n  copy_task: 20\n  phases: [decode]\n  decode_queries: 41\n", wl);
    expect_model_error(body, 65, 11, "must be below the 41 tokens of its copy task");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "eval_model: {copy_task: 40}\n", 65, 6,
                 "needs the top-level 'model: {path: FILE}'");
    /* gen's probe */
    expect_error(HEAD "workloads:\n  - name: w\n    gen: {n: 128, probe: repat}\n", 65, 5,
                 "unknown probe 'repat'");
    expect_error(HEAD "workloads:\n  - name: w\n    gen: {n: 8, probe: repeat}\n", 65, 4,
                 "probe repeat needs n of at least 9");
}

Test(scenario, usage_errors_exit_64)
{
    char *out, *err;
    cr_expect_eq(t_run(&out, &err, "scenario"), 64);
    cr_expect_eq(t_count_lines(err), 1, "%s", err);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "scenario a.yaml b.yaml"), 64);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "scenario --help"), 0);
    cr_expect(strstr(out, "usage: attnbench scenario") == out, "%s", out);
    free(out), free(err);
}

/* ---- sweeps, quick, defaults --------------------------------------------------------------- */

Test(scenario, sweeps_expand_and_quick_overrides_them)
{
    const char *path = write_yaml(
        "sweep.yaml",
        HEAD "seed: 5\nworkloads:\n"
             "  - name: ctx\n"
             "    gen: {profile: streaming, layers: 1, heads: 2, kv_heads: 1, d: 16}\n"
             "    sweep: {n: [256, 512], seed: [1, 2]}\n"
             "  - name: plain\n" TINY_GEN "run:\n  budgets: paper\n  methods: [dense, streaming]\n"
             "quick:\n  n: 192\n  budgets: [0.5]\n  methods: all\n");
    struct ab_scenario s;
    cr_assert_eq(ab_scenario_load(path, 0, &s), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(s.n_workloads, 5);
    const char *names[5] = {"ctx-n256-seed1", "ctx-n256-seed2", "ctx-n512-seed1", "ctx-n512-seed2",
                            "plain"};
    int64_t ns[5] = {256, 256, 512, 512, 128};
    uint64_t seeds[5] = {1, 2, 1, 2, 5};
    for (int i = 0; i < 5; i++) {
        cr_expect_str_eq(s.workloads[i].name, names[i]);
        cr_expect_eq(s.workloads[i].n, ns[i], "%s", names[i]);
        cr_expect_eq(s.workloads[i].seed, seeds[i], "%s", names[i]);
    }
    cr_expect_str_eq(s.run.budgets, "0.7,0.5,0.3,0.2,0.1,0.05", "paper");
    cr_expect_str_eq(s.run.methods, "dense,streaming");
    cr_expect_eq(s.run.rows, 256, "default");
    cr_expect_eq(s.run.decode_queries, 64, "default");
    ab_scenario_free(&s);

    cr_assert_eq(ab_scenario_load(path, 1, &s), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(s.n_workloads, 3, "quick n replaces the sweep over n");
    cr_expect_str_eq(s.workloads[0].name, "ctx-seed1");
    cr_expect_str_eq(s.workloads[2].name, "plain");
    for (int i = 0; i < 3; i++) cr_expect_eq(s.workloads[i].n, 192);
    cr_expect_str_eq(s.run.budgets, "0.5");
    cr_expect_null(s.run.methods, "quick methods: all");
    ab_scenario_free(&s);
}

Test(scenario, dry_run_prints_the_commands_and_writes_nothing)
{
    const char *path = write_yaml("dry.yaml", HEAD "seed: 9\nworkloads:\n  - name: w\n" TINY_GEN
                                                   "run:\n  methods: [dense]\n  budgets: [0.5]\n");
    const char *dir = t_path("dry-out");
    char *out, *err;
    cr_assert_eq(t_run(&out, &err, "scenario '%s' -o '%s' --dry-run", path, dir), 0, "%s", err);
    cr_expect(!t_exists(dir));
    cr_expect_eq(t_count_lines(out), 4, "%s", out);
    char want[2048];
    snprintf(want, sizeof want,
             "attnbench gen --preset model --layers 1 --heads 2 --kv-heads 1 "
             "--n 128 --d 16 --seed 9 --threads 0 -o %s/w.h5\n",
             dir);
    cr_expect(strstr(out, want) != NULL, "want %s in %s", want, out);
    snprintf(want, sizeof want,
             "attnbench run %s/w.h5 --methods dense --budgets 0.5 --scenario %s/scenario.yaml "
             "--seed 9 --threads 0 -o %s/results.h5\n",
             dir, dir, dir);
    cr_expect(strstr(out, want) != NULL, "want %s in %s", want, out);
    snprintf(want, sizeof want, "attnbench report %s/results.h5 --workload %s/w.h5 -o %s/report",
             dir, dir, dir);
    cr_expect(strstr(out, want) != NULL, "want %s in %s", want, out);
    free(out), free(err);
    /* the command line's --seed and --threads win over the file's */
    cr_assert_eq(
        t_run(&out, &err, "scenario '%s' -o '%s' --dry-run --seed 4 --threads 1", path, dir), 0,
        "%s", err);
    cr_expect(strstr(out, "--seed 4 --threads 1 -o") && !strstr(out, "--seed 9"), "%s", out);
    free(out), free(err);
}

/* ---- end to end ---------------------------------------------------------------------------- */

static const char *tiny_scenario =
    "# tiny end-to-end scenario for tests\n"
    "schema: attnbench/scenario/1\n"
    "name: tiny\n"
    "seed: 3\n"
    "threads: 2\n"
    "workloads:\n"
    "  - name: w\n"
    "    gen: {preset: model, layers: 1, heads: 2, kv_heads: 1, n: 128, d: 16,\n"
    "          tasks: [retrieve], n_tasks: 2, task_rows: 32}\n"
    "run:\n"
    "  methods: [dense, streaming]\n"
    "  budgets: [0.5, 0.25]\n"
    "  phases: [prefill, decode]\n"
    "  decode_queries: 16\n"
    "  rows: 64\n"
    "report:\n"
    "  maps: [\"0:1\"]\n"
    "  map_methods: [streaming]\n";

Test(scenario, tiny_scenario_runs_end_to_end)
{
    const char *path = write_yaml("tiny.yaml", tiny_scenario);
    char dir[1024], p[1200];
    snprintf(dir, sizeof dir, "%s", t_path("tiny-out"));
    char *out, *err;
    int st = t_run(&out, &err, "scenario '%s' -o '%s' --no-progress", path, dir);
    cr_expect_eq(st, 0, "exit %d: %s", st, err);
    cr_expect(strstr(err, "step 1/3 (gen w): attnbench gen ") != NULL, "%s", err);
    cr_expect(strstr(err, "step 2/3 (run): attnbench run ") != NULL, "%s", err);
    cr_expect(strstr(err, "step 3/3 (report): attnbench report ") != NULL, "%s", err);
    cr_expect(strstr(err, "step 2/3 (run) done in ") != NULL, "%s", err);
    /* stdout: one line per step naming its main output, then the scenario's line */
    const char *files[] = {"w.h5",        "results.h5",    "report/report.md",
                           "results.csv", "scenario.yaml", "scenario.sha256"};
    const char *lines[] = {"gen: ", "\nrun: ", "\nreport: "};
    for (int i = 0; i < 6; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        cr_expect(t_exists(p), "%s missing", p);
        if (i >= 3) continue;
        char want[1300];
        snprintf(want, sizeof want, "%s%s (", lines[i], p);
        cr_expect(strstr(out, want) != NULL, "stdout does not name %s: %s", p, out);
    }
    snprintf(p, sizeof p, "\nscenario: %s/report/report.md ('tiny' done in ", dir);
    cr_expect(strstr(out, p) != NULL, "%s", out);
    /* the copy is byte-identical and its digest checks */
    snprintf(p, sizeof p, "%s/scenario.yaml", dir);
    unsigned char *copy = t_slurp(p, NULL);
    cr_expect(copy && !strcmp((char *)copy, tiny_scenario));
    free(copy);
    snprintf(p, sizeof p, "%s/scenario.sha256", dir);
    unsigned char *sha = t_slurp(p, NULL);
    struct ab_scenario s;
    cr_assert_eq(ab_scenario_load(path, 0, &s), AB_OK);
    char want[100];
    snprintf(want, sizeof want, "%s  scenario.yaml\n", s.sha256);
    cr_expect(sha && !strcmp((char *)sha, want), "%s", sha);
    ab_scenario_free(&s);
    free(sha);
    free(out), free(err);
}

/* The output contract (README, "Output"): --verbose lists every file, --quiet prints only the
 * report's path; off a terminal, progress is complete lines on stderr. */
Test(scenario, verbose_lists_every_file_quiet_prints_one_path_progress_lines_off_a_terminal)
{
    const char *path = write_yaml("tinyv.yaml", tiny_scenario);
    char dir[1024], p[1300];
    snprintf(dir, sizeof dir, "%s", t_path("tinyv-out"));
    char *out, *err;
    cr_assert_eq(t_run(&out, &err, "scenario '%s' -o '%s' --verbose", path, dir), 0, "%s", err);
    const char *files[] = {"scenario.yaml",    "scenario.sha256", "w.h5",
                           "results.h5",       "results.csv",     "results-summary.csv",
                           "report/report.md", "report/cells.csv"};
    for (int i = 0; i < 8; i++) {
        snprintf(p, sizeof p, "%s/%s\n", dir, files[i]);
        cr_expect(strstr(out, p) != NULL, "--verbose does not list %s: %s", p, out);
    }
    /* stderr is a file here: a line at each tenth of the run, none drawn with \r */
    cr_expect(strstr(err, "run: 100% (12/12 cells), ") != NULL, "%s", err);
    cr_expect(strchr(err, '\r') == NULL, "%s", err);
    free(out), free(err);

    cr_assert_eq(t_run(&out, &err, "scenario '%s' -o '%s' --quiet", path, dir), 0, "%s", err);
    snprintf(p, sizeof p, "%s/report/report.md\n", dir);
    cr_expect_str_eq(out, p);
    cr_expect_str_eq(err, "");
    free(out), free(err);

    cr_assert_eq(t_run(&out, &err, "scenario '%s' -o '%s' --no-progress --force", path, dir), 0,
                 "%s", err);
    cr_expect(strstr(err, "step 2/3 (run) done in ") != NULL, "--force ran run: %s", err);
    cr_expect(strstr(err, "% (") == NULL, "%s", err);
    free(out), free(err);
}

/* mtime of a file in nanoseconds, or -1 */
static long long mtime_ns(const char *path)
{
    struct stat st;
    if (stat(path, &st)) return -1;
    return (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
}

/* A re-run skips the steps whose options, inputs and attnbench are those of their output; a
 * changed option re-runs its step and the steps after it that read what it wrote; --force
 * re-runs all; a step whose output was changed by hand runs again. */
Test(scenario, up_to_date_steps_are_skipped_unless_forced)
{
    const char *path = write_yaml("fresh.yaml", tiny_scenario);
    char dir[1024], res[1200], wl[1200];
    snprintf(dir, sizeof dir, "%s", t_path("fresh-out"));
    snprintf(res, sizeof res, "%s/results.h5", dir);
    snprintf(wl, sizeof wl, "%s/w.h5", dir);
    char *out, *err;
    cr_assert_eq(t_run(&out, &err, "scenario '%s' -o '%s' --no-progress", path, dir), 0, "%s", err);
    free(out), free(err);
    long long t_wl = mtime_ns(wl), t_res = mtime_ns(res);
    cr_assert(t_wl > 0 && t_res > 0);

    cr_assert_eq(t_run(&out, &err, "scenario '%s' -o '%s' --no-progress", path, dir), 0, "%s", err);
    for (int i = 1; i <= 3; i++) {
        char want[64];
        snprintf(want, sizeof want, "step %d/3 (", i);
        const char *at = strstr(err, want);
        cr_expect(at && strstr(at, "): up to date ("), "step %d not skipped: %s", i, err);
    }
    cr_expect(strstr(err, "done in") == NULL, "a step ran: %s", err);
    cr_expect(mtime_ns(wl) == t_wl && mtime_ns(res) == t_res, "a skipped step wrote its output");
    free(out), free(err);

    /* a run option changed: gen stays, run and report run */
    cr_assert_eq(t_run(&out, &err, "scenario '%s' -o '%s' --no-progress --set run.rows=32", path,
                       dir), 0, "%s", err);
    cr_expect(strstr(err, "step 1/3 (gen w): up to date") != NULL, "%s", err);
    cr_expect(strstr(err, "step 2/3 (run) done in ") && strstr(err, "step 3/3 (report) done in "),
              "%s", err);
    cr_expect(mtime_ns(wl) == t_wl && mtime_ns(res) != t_res);
    free(out), free(err);

    /* the output changed by hand: its step runs again */
    FILE *f = fopen(res, "ab");
    cr_assert(f);
    fputc(0, f);
    fclose(f);
    cr_assert_eq(t_run(&out, &err, "scenario '%s' -o '%s' --no-progress --set run.rows=32", path,
                       dir), 0, "%s", err);
    cr_expect(strstr(err, "step 2/3 (run) done in ") != NULL, "%s", err);
    free(out), free(err);

    cr_assert_eq(t_run(&out, &err, "scenario '%s' -o '%s' --no-progress --force", path, dir), 0,
                 "%s", err);
    cr_expect(strstr(err, "up to date") == NULL && strstr(err, "step 1/3 (gen w) done in "), "%s",
              err);
    cr_expect(mtime_ns(wl) != t_wl, "--force did not re-run gen");
    free(out), free(err);
}

Test(scenario, failing_step_passes_its_exit_status_on)
{
    /* DIR/report is a file, so the report step cannot create its folder */
    const char *path = write_yaml("fail.yaml", tiny_scenario);
    char dir[1024], p[2200];
    snprintf(dir, sizeof dir, "%s", t_path("fail-out"));
    cr_assert_eq(t_run(NULL, NULL, "scenario '%s' -o '%s' --dry-run", path, dir), 0);
    char *out, *err;
    snprintf(p, sizeof p, "mkdir -p '%s' && : > '%s/report'", dir, dir);
    cr_assert_eq(system(p), 0);
    int st = t_run(&out, &err, "scenario '%s' -o '%s' --no-progress", path, dir);
    cr_expect(st != 0 && st != -1, "exit %d", st);
    char want[1400];
    snprintf(want, sizeof want,
             "error: scenario '%s': step 3/3 (report) failed with exit status "
             "%d\n",
             path, st);
    const char *last = err;
    for (const char *q = err; *q; q++)
        if (*q == '\n' && q[1]) last = q + 1;
    cr_expect_str_eq(last, want);
    snprintf(p, sizeof p, "%s/results.h5", dir);
    cr_expect(t_exists(p), "the steps before the failure kept their outputs");
    free(out), free(err);
}

/* ---- heads: section (issue 5, "Scenarios") ------------------------------------------------ */

Test(scenario, heads_section_is_read_and_checked)
{
    /* defaults with {}; values with keys; run optional once heads is there */
    const char *path = write_yaml("h.yaml", HEAD "workloads:\n  - name: w\n" TINY_GEN
                                                 "heads: {}\nrun: {methods: [dense]}\n");
    struct ab_scenario s;
    cr_assert_eq(ab_scenario_load(path, 0, &s), AB_OK, "%s", ab_errmsg());
    cr_expect(s.has_heads && s.has_run);
    cr_expect(s.heads.epsilon == 0.3 && s.heads.window == 64 && s.heads.top_fraction == 0.1,
              "heads' own defaults");
    ab_scenario_free(&s);
    path =
        write_yaml("h2.yaml", HEAD "workloads:\n  - name: w\n" TINY_GEN
                                   "heads:\n  epsilon: 0.2\n  window: 16\n  top_fraction: 0.5\n");
    cr_assert_eq(ab_scenario_load(path, 0, &s), AB_OK, "%s", ab_errmsg());
    cr_expect(s.has_heads && !s.has_run, "no run: with heads: means no run step");
    cr_expect(s.heads.epsilon == 0.2 && s.heads.window == 16 && s.heads.top_fraction == 0.5);
    ab_scenario_free(&s);
    char *out, *err;
    cr_expect_eq(t_run(&out, &err, "scenario '%s' --dry-run", path), 0, "%s", err);
    cr_expect(!strstr(out, "attnbench run "), "%s", out);
    cr_expect(strstr(out, " --epsilon 0.2 --window 16 --top-fraction 0.5 ") != NULL, "%s", out);
    cr_expect(strstr(out, "attnbench report ") && strstr(out, "/heads.h5 --workload ") &&
                  !strstr(out, "results.h5"),
              "%s", out);
    free(out), free(err);
    /* without heads: the run step stays, as before */
    path = write_yaml("h3.yaml", HEAD "workloads:\n  - name: w\n" TINY_GEN);
    cr_assert_eq(ab_scenario_load(path, 0, &s), AB_OK, "%s", ab_errmsg());
    cr_expect(!s.has_heads && s.has_run);
    ab_scenario_free(&s);

    /* mistakes name the line */
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "heads:\n  epsilon: 0.3\n  windw: 8\n",
                 65, 8, "unknown key 'windw' in heads (did you mean 'window'?)");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "heads:\n  frobnicate: 1\n", 65, 7,
                 "unknown key 'frobnicate' in heads");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "heads:\n  methods: [dense]\n", 65, 7,
                 "unknown key 'methods' in heads (it belongs in run)");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "heads: true\n", 65, 6,
                 "heads wants a map of keys ('heads: {}' for the defaults)");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "heads:\n  epsilon: 1.5\n", 65, 7,
                 "'epsilon' in heads wants a number in [0, 1), got '1.5'");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "heads:\n  window: 0\n", 65, 7,
                 "'window' in heads wants an integer in [1, 2147483647], got '0'");
    expect_error(HEAD "workloads:\n  - name: w\n" TINY_GEN "heads:\n  top_fraction: \"0.1\"\n", 65,
                 7, "'top_fraction' in heads wants a number");
}

static const char *tiny_heads_scenario =
    "# tiny end-to-end scenario with heads statistics, for tests\n"
    "schema: attnbench/scenario/1\n"
    "name: tinyheads\n"
    "seed: 3\n"
    "threads: 2\n"
    "workloads:\n"
    "  - name: s\n"
    "    gen: {profile: streaming, layers: 1, heads: 2, kv_heads: 1, n: 128, d: 16}\n"
    "  - name: w\n"
    "    gen: {preset: model, layers: 1, heads: 2, kv_heads: 1, n: 128, d: 16,\n"
    "          tasks: [retrieve], n_tasks: 2, task_rows: 32,\n"
    "          strength: {secondary-sink: 10}}\n"
    "heads: {window: 16}\n"
    "run:\n"
    "  methods: [dense, streaming]\n"
    "  budgets: [0.5]\n"
    "  phases: [prefill]\n"
    "  rows: 32\n";

Test(scenario, heads_scenario_runs_end_to_end)
{
    const char *path = write_yaml("tinyheads.yaml", tiny_heads_scenario);
    char dir[1024], p[1200];
    snprintf(dir, sizeof dir, "%s", t_path("tinyheads-out"));
    char *out, *err;
    int st = t_run(&out, &err, "scenario '%s' -o '%s' --no-progress", path, dir);
    cr_expect_eq(st, 0, "exit %d: %s", st, err);
    cr_expect(strstr(err, "step 3/5 (run): attnbench run ") != NULL, "%s", err);
    cr_expect(strstr(err, "step 4/5 (heads): attnbench heads ") != NULL, "%s", err);
    cr_expect(strstr(err, "--window 16 ") != NULL, "%s", err);
    cr_expect(strstr(err, "step 5/5 (report): attnbench report ") != NULL, "%s", err);
    const char *files[] = {"results.h5", "heads.h5", "heads-heads.csv", "report/report.md"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        cr_expect(t_exists(p), "%s missing", p);
    }
    snprintf(p, sizeof p, "%s/heads.h5", dir);
    cr_expect(strstr(out, p) != NULL, "stdout does not name %s: %s", p, out);
    snprintf(p, sizeof p, "%s/report/report.md", dir);
    char *md = (char *)t_slurp(p, NULL);
    cr_assert(md, "cannot read %s", p);
    /* the sink ratio over all 4 heads of both workloads, read from heads.h5 */
    const char *sr = strstr(md, "Sink ratio (metrics.md, epsilon 0.3): **");
    cr_expect(sr != NULL, "no sink ratio in report.md:\n%s", md);
    if (sr) cr_expect(strstr(sr, "%** of 4 heads.") != NULL, "%.200s", sr);
    free(md);
    free(out), free(err);

    /* heads only: no run step, report reads heads.h5 alone */
    char *text = strdup(tiny_heads_scenario);
    char *run = strstr(text, "run:\n");
    cr_assert(run);
    *run = 0;
    path = write_yaml("tinyheads-only.yaml", text);
    free(text);
    snprintf(dir, sizeof dir, "%s", t_path("tinyheads-only-out"));
    st = t_run(&out, &err, "scenario '%s' -o '%s' --no-progress", path, dir);
    cr_expect_eq(st, 0, "exit %d: %s", st, err);
    cr_expect(strstr(err, "step 3/4 (heads): attnbench heads ") != NULL, "%s", err);
    cr_expect(strstr(err, "attnbench run ") == NULL, "%s", err);
    snprintf(p, sizeof p, "%s/results.h5", dir);
    cr_expect(!t_exists(p), "no run step, no results.h5");
    snprintf(p, sizeof p, "%s/report/report.md", dir);
    md = (char *)t_slurp(p, NULL);
    cr_expect(md && strstr(md, "Sink ratio (metrics.md, epsilon 0.3): **"), "%s", md ? md : "");
    free(md);
    free(out), free(err);
}

/* A real-model scenario end to end on the tiny stories260K fixture (the shipped real-model.yaml
 * runs the debdoc model for minutes): captures, heads, run, eval-model in both phases, report. */
Test(scenario, real_model_quick_runs_end_to_end, .timeout = 120)
{
    char path[4096], dir[1024], p[1200], head[2048], text[8192];
    model_head(head, sizeof head);
    snprintf(text, sizeof text,
             "%sworkloads:\n"
             "  - name: story\n    capture: {text: %s, hidden: true}\n"
             "  - name: copy\n    capture: {copy_task: 255}\n"
             "heads: {}\n"
             "run: {methods: [dense, streaming, block-topk, quest], budgets: [0.5, 0.25],\n"
             "      phases: [prefill, decode], decode_queries: 64}\n"
             "eval_model:\n"
             "  - {text: %s, copy_task: 255, methods: [streaming, block-topk],\n"
             "     budgets: [0.5, 0.25], phases: [prefill]}\n"
             "  - {text: %s, copy_task: 255, methods: [streaming, quest], budgets: [0.5, 0.25],\n"
             "     phases: [decode], decode_queries: 64}\n"
             "quick: {copy_task: 100, budgets: [0.25], eval_methods: [streaming],\n"
             "        eval_budgets: [0.25], decode_queries: 32}\n",
             head, story_path(), story_path(), story_path());
    snprintf(path, sizeof path, "%s", write_yaml("real-tiny.yaml", text));
    snprintf(dir, sizeof dir, "%s", t_path("real-model-quick"));
    char *out, *err;
    int st = t_run(&out, &err, "scenario '%s' --quick -o '%s' --no-progress", path, dir);
    cr_assert_eq(st, 0, "exit %d: %s", st, err);
    cr_expect(strstr(err, "(capture story): attnbench capture ") &&
                  strstr(err, "(eval-model model-2): attnbench eval-model "),
              "%s", err);
    const char *files[] = {
        "story.h5",           "copy.h5",         "heads.h5",         "results.h5",
        "model.h5",           "model-2.h5",      "report/report.md", "report/e2e-ppl.png",
        "report/e2e-acc.png", "report/model.csv"};
    for (int i = 0; i < 10; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        cr_expect(t_exists(p), "%s missing", p);
    }
    snprintf(p, sizeof p, "%s/report/report.md", dir);
    char *md = (char *)t_slurp(p, NULL);
    cr_assert(md, "cannot read %s", p);
    const char *e2e = strstr(md, "## End to end (eval-model)");
    cr_expect(e2e != NULL, "no End to end section:\n%s", md);
    /* both inputs, and streaming in both phases at the quick budget, matched to the run */
    if (e2e) {
        cr_expect(strstr(e2e, "### copy-100\n") && strstr(e2e, "story.txt\n"), "%.2000s", e2e);
        cr_expect(strstr(e2e, "| streaming | prefill | 1/4 | ") &&
                      strstr(e2e, "| streaming | decode | 1/4 | "),
                  "%.2000s", e2e);
    }
    free(md);
    free(out), free(err);
}

/* `--set KEY.PATH=VALUE` overrides any key the reader knows, by the same checks: the dry run
 * shows the overridden values; a bad override is one line naming it (did-you-mean for a key or a
 * workload, the expected type for a value), exit 64, nothing written; a real run records the
 * overrides in its copy of the scenario, and run's options in the results as JSON. */
Test(scenario, set_overrides_keys_checked_like_the_file)
{
    const char *path = write_yaml("set.yaml", HEAD "workloads:\n  - name: w\n" TINY_GEN
                                              "run:\n  methods: [dense]\n  budgets: [0.5]\n");
    const char *dir = t_path("set-out");
    char *out, *err;
    cr_assert_eq(t_run(&out, &err, "scenario '%s' -o '%s' --dry-run --set run.budgets=0.25,0.125 "
                       "--set workloads.w.n=256 --set 'run.methods=[dense, streaming]'", path, dir),
                 0, "%s", err);
    cr_expect(strstr(out, "--n 256 ") && strstr(out, "--methods dense,streaming --budgets "
                                                     "0.25,0.125 "), "%s", out);
    free(out), free(err);
    struct {
        const char *set, *says;
    } bad[] = {
        {"run.budgts=0.5", "--set run.budgts=0.5: unknown key 'budgts' in run (did you mean "
                           "'budgets'?)"},
        {"run.rows=many", "--set run.rows=many: 'rows' in run wants an integer in [1, "
                          "2147483647], got 'many'"},
        {"run.budgets=0.5,2", "'budgets' in run wants a number in (0, 1], got '2'"},
        {"workloads.ww.n=64", "--set workloads.ww.n=64: no entry 'ww' in 'workloads' (did you "
                              "mean 'w'?)"},
        {"workloads.3.n=64", "'workloads' has 1 entries, not 3"},
        {"rnu.rows=8", "unknown key 'rnu' in the top level (did you mean 'run'?)"},
        {"run.rows", "want KEY.PATH=VALUE"},
        {"run.rows.x=1", "'rows' in run wants a value, got a map"},
        {"workloads.w.name.x=1", "'name' is a value, not a map with a key 'x'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st = t_run(&out, &err, "scenario '%s' -o '%s' --set '%s'", path, dir, bad[i].set);
        cr_expect_eq(st, 64, "%s: exit %d (%s)", bad[i].set, st, err);
        cr_expect(strstr(err, bad[i].says) != NULL, "%s: %s", bad[i].set, err);
        cr_expect_eq(t_count_lines(err), 1, "%s: %s", bad[i].set, err);
        cr_expect(!t_exists(dir), "%s wrote %s", bad[i].set, dir);
        free(out), free(err);
    }
    /* a real run: the copy records the override; the results hold run's options as JSON */
    cr_assert_eq(t_run(&out, &err, "scenario '%s' -o '%s' --set run.budgets=0.25", path, dir), 0,
                 "%s", err);
    char copy[4200];
    snprintf(copy, sizeof copy, "%s/scenario.yaml", dir);
    size_t len;
    char *text = (char *)t_slurp(copy, &len);
    cr_assert_not_null(text);
    cr_expect(strstr(text, "budgets: [0.5]\n") && strstr(text, "# --set run.budgets=0.25\n"),
              "%s", text);
    free(text), free(out), free(err);
    cr_assert_eq(t_run(&out, &err, "info '%s/results.h5'", dir), 0, "%s", err);
    cr_expect(strstr(out, "\"budgets\": [0.25]") && strstr(out, "\"methods\": [\"dense\"]"), "%s",
              out);
    free(out), free(err);
}
