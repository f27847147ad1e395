/* test_longrun.c - long sweeps (issue 17, README "Long sweeps: resume, shards, MPI"): `run`
 * killed and resumed, a torn journal, refusals of a journal of other options, --shard's
 * parsing, the cost-balanced split, 4 shards merged against one process, merge's refusals, and
 * a 2-rank mpirun against one process. Every comparison is `check --any-change --rtol 0
 * --atol 0` (time_s aside) against the uninterrupted single-process run. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/ab.h"
#include "helpers.h"
#include "io/results_io.h"
#include "run/shard.h"
#include "core/decl.h"
#include "run/run.h"
#include "io/h5_workload.h"

/* methods with a model-level fit (pyramidkv, duo) among per-head ones, both phases */
#define METHODS "--methods streaming,quest,pyramidkv,duo --budgets 0.5,0.25 --no-progress"

/* A workload of 2 layers x 4 heads (8 units) at w, and the uninterrupted run's results at ref. */
static void fixture(const char *w, const char *ref)
{
    char *out, *err;
    cr_assert_eq(t_run(&out, &err, "gen --layers 2 --heads 4 --kv-heads 2 --n 256 --d 32 "
                       "--seed 5 --quiet -o '%s'", w), 0, "%s", err);
    free(out), free(err);
    cr_assert_eq(t_run(&out, &err, "run '%s' " METHODS " --threads 1 --quiet -o '%s'", w, ref), 0,
                 "%s", err);
    free(out), free(err);
}

/* 1 when results a and b hold the same cells in the same order, every column bit for bit
 * but time_s (measured), and the same summary; `check --any-change` agrees (it matches rows by
 * their keys, so the row order is compared here). */
static int same_results(const char *a, const char *b)
{
    char *out, *err;
    int st = t_run(&out, &err, "check '%s' --baseline '%s' --any-change --rtol 0 --atol 0", a, b);
    int same = st == 0 && strstr(out, " 0 regressions, 0 missing, 0 added");
    if (!same) cr_log_error("check %s vs %s: %d %s %s", a, b, st, out, err);
    free(out), free(err);
    struct ab_results ra, rb;
    int rc = ab_results_read_h5(a, &ra) || ab_results_read_h5(b, &rb);
    if (rc) {
        cr_log_error("cannot read %s or %s", a, b);
        return 0;
    }
    int n_cols;
    const struct ab_column *cols = ab_results_cell_columns(&n_cols);
    if (ra.n_cells != rb.n_cells) same = 0;
    for (int64_t i = 0; same && i < ra.n_cells; i++)
        for (int c = 0; same && c < n_cols; c++) {
            if (!strcmp(cols[c].name, "time_s")) continue;
            const char *x = (const char *)&ra.cells[i] + cols[c].offset;
            const char *y = (const char *)&rb.cells[i] + cols[c].offset;
            if (cols[c].type == AB_COL_STR)
                same = !strcmp(*(char *const *)(const void *)x, *(char *const *)(const void *)y);
            else
                same = !memcmp(x, y, 8);
            if (!same)
                cr_log_error("%s vs %s: row %lld column %s differs", a, b, (long long)i,
                             cols[c].name);
        }
    if (same && ra.n_summary != rb.n_summary) same = 0;
    for (int64_t i = 0; same && i < ra.n_summary; i++)
        same = !strcmp(ra.summary[i].method, rb.summary[i].method) &&
               !memcmp(&ra.summary[i].rel_l2_mean, &rb.summary[i].rel_l2_mean, 8) &&
               ra.summary[i].n_heads == rb.summary[i].n_heads;
    ab_results_free(&ra), ab_results_free(&rb);
    return same;
}

/* The run killed (SIGKILL) after k heads journaled: its journal, no results. */
static void killed_run(const char *w, const char *r, int k, const char *threads)
{
    char kk[16];
    snprintf(kk, sizeof kk, "%d", k);
    setenv("AB_TEST_KILL_AFTER_HEADS", kk, 1);
    char *out, *err;
    int st = t_run(&out, &err, "run '%s' " METHODS " --threads %s -o '%s'", w, threads, r);
    unsetenv("AB_TEST_KILL_AFTER_HEADS");
    free(out), free(err);
    cr_assert_neq(st, 0, "the run was not killed");
    char j[1100];
    snprintf(j, sizeof j, "%s.journal", r);
    cr_assert(t_exists(j), "no journal after the kill");
    cr_assert(!t_exists(r), "results written by a killed run");
}

/* "resumed: R of T heads from the journal, C computed" of a resumed run's stderr. */
static void resumed_counts(const char *err, int *r, int *t, int *c)
{
    *r = *t = *c = -1;
    const char *p = strstr(err, "resumed: ");
    cr_assert(p, "%s", err);
    cr_assert_eq(sscanf(p, "resumed: %d of %d heads from the journal, %d computed", r, t, c), 3,
                 "%s", err);
}

Test(longrun, resume_after_a_kill_computes_only_the_missing_heads)
{
    const char *w = t_path("lr-w.h5"), *ref = t_path("lr-ref.h5"), *r = t_path("lr-r.h5");
    fixture(w, ref);
    killed_run(w, r, 3, "1");
    char *out, *err;
    cr_assert_eq(t_run(&out, &err, "run '%s' " METHODS " --threads 2 --resume -o '%s'", w, r), 0,
                 "%s", err);
    int rs, tot, comp;
    resumed_counts(err, &rs, &tot, &comp);
    cr_expect_eq(rs, 3);
    cr_expect_eq(tot, 8);
    cr_expect_eq(comp, 8 - 3, "computed %d heads, missing %d", comp, 8 - 3);
    free(out), free(err);
    cr_expect(same_results(r, ref));
    char j[1100];
    snprintf(j, sizeof j, "%s.journal", r);
    cr_expect(!t_exists(j), "the journal stayed after the results were written");
    /* --resume with no journal: everything computed, the same file */
    remove(r);
    cr_assert_eq(t_run(&out, &err, "run '%s' " METHODS " --threads 1 --resume -o '%s'", w, r), 0,
                 "%s", err);
    cr_expect(!strstr(err, "resumed: "), "%s", err);
    free(out), free(err);
    cr_expect(same_results(r, ref));
}

Test(longrun, a_torn_last_record_is_dropped_and_recomputed)
{
    const char *w = t_path("lt-w.h5"), *ref = t_path("lt-ref.h5"), *r = t_path("lt-r.h5");
    fixture(w, ref);
    killed_run(w, r, 4, "1");
    char j[1100];
    snprintf(j, sizeof j, "%s.journal", r);
    struct stat st;
    cr_assert_eq(stat(j, &st), 0);
    cr_assert_eq(truncate(j, st.st_size - 7), 0); /* power lost in the last record's write */
    char *out, *err;
    cr_assert_eq(t_run(&out, &err, "run '%s' " METHODS " --threads 1 --resume -o '%s'", w, r), 0,
                 "%s", err);
    int rs, tot, comp;
    resumed_counts(err, &rs, &tot, &comp);
    cr_expect_eq(rs, 3, "%s", err);
    cr_expect_eq(comp, 5, "%s", err);
    free(out), free(err);
    cr_expect(same_results(r, ref));
    /* a flipped byte inside a record: its CRC fails, it and what follows are recomputed */
    remove(r);
    killed_run(w, r, 5, "1");
    FILE *f = fopen(j, "r+b");
    cr_assert(f);
    cr_assert_eq(stat(j, &st), 0);
    fseek(f, st.st_size / 2, SEEK_SET);
    int c = fgetc(f);
    fseek(f, st.st_size / 2, SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
    cr_assert_eq(t_run(&out, &err, "run '%s' " METHODS " --threads 1 --resume -o '%s'", w, r), 0,
                 "%s", err);
    resumed_counts(err, &rs, &tot, &comp);
    cr_expect(rs < 5 && rs + comp == 8, "%s", err);
    free(out), free(err);
    cr_expect(same_results(r, ref));
}

Test(longrun, a_journal_is_refused_without_resume_and_with_other_options)
{
    const char *w = t_path("lj-w.h5"), *ref = t_path("lj-ref.h5"), *r = t_path("lj-r.h5");
    fixture(w, ref);
    killed_run(w, r, 2, "1");
    char j[1100];
    snprintf(j, sizeof j, "%s.journal", r);
    size_t n0, n1;
    unsigned char *before = t_slurp(j, &n0);
    cr_assert(before);
    char *out, *err;
    cr_expect_eq(t_run(&out, &err, "run '%s' " METHODS " --threads 1 -o '%s'", w, r), 64);
    cr_expect_eq(t_count_lines(err), 1, "%s", err);
    cr_expect(strstr(err, "--resume") && strstr(err, ".journal"), "%s", err);
    free(out), free(err);
    const char *changed[] = {"--methods streaming,quest,pyramidkv,duo --budgets 0.5 --no-progress",
                             METHODS " --rows 100", METHODS " --seed 2"};
    const char *names[] = {"options", "options", "seed"};
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(t_run(&out, &err, "run '%s' %s --threads 1 --resume -o '%s'", w, changed[i],
                           r), 64, "%s", changed[i]);
        cr_expect_eq(t_count_lines(err), 1, "%s", err);
        cr_expect(strstr(err, names[i]) != NULL, "%s: %s", changed[i], err);
        free(out), free(err);
    }
    cr_expect(!t_exists(r) && !t_tmp_left(r), "something written");
    unsigned char *after = t_slurp(j, &n1);
    cr_expect(after && n0 == n1 && !memcmp(before, after, n0), "the journal changed");
    free(before), free(after);
}

Test(longrun, shard_is_parsed_and_checked)
{
    const char *w = t_path("ls-w.h5"), *r = t_path("ls-r.h5");
    char *out, *err;
    cr_assert_eq(t_run(&out, &err, "gen --layers 1 --heads 2 --kv-heads 1 --n 256 --d 32 --quiet "
                       "-o '%s'", w), 0, "%s", err);
    free(out), free(err);
    const char *bad[] = {"3/2", "0/2", "a/b", "2", "1/0", "1/2x", "-1/2", "1/"};
    for (int i = 0; i < 8; i++) {
        cr_expect_eq(t_run(&out, &err, "run '%s' --methods streaming --shard '%s' -o '%s'", w,
                           bad[i], r), 64, "%s", bad[i]);
        cr_expect_eq(t_count_lines(err), 1, "%s: %s", bad[i], err);
        cr_expect(strstr(err, "--shard") != NULL, "%s: %s", bad[i], err);
        free(out), free(err);
        cr_expect(!t_exists(r), "%s: results written", bad[i]);
    }
    cr_expect_eq(t_run(&out, &err, "run '%s' --methods streaming --shard 3/2 -o '%s'", w, r), 64);
    cr_expect(strstr(err, "shard 3 of 2 does not exist") != NULL, "%s", err);
    free(out), free(err);
}

/* The split: by cost, not by count, a pure function of the costs and N. */
Test(longrun, shards_balance_estimated_cost)
{
    /* 2 heads of a long workload, 8 of a short one 64 times cheaper: by count each of 2 parts
     * would take 5 heads; by cost each long head goes alone with half the short ones */
    uint64_t cost[10] = {64, 64, 1, 1, 1, 1, 1, 1, 1, 1};
    struct ab_units u = {.n = 10, .cost = cost};
    int64_t part[10], again[10];
    cr_assert_eq(ab_units_assign(&u, 2, part), AB_OK);
    cr_expect_neq(part[0], part[1], "the two long heads in one part");
    uint64_t load[2] = {0};
    for (int k = 0; k < 10; k++) load[part[k]] += cost[k];
    cr_expect_eq(load[0], 68);
    cr_expect_eq(load[1], 68);
    cr_assert_eq(ab_units_assign(&u, 2, again), AB_OK);
    cr_expect(!memcmp(part, again, sizeof part), "not deterministic");
    /* the rule: largest first, ties by index, to the least loaded part, ties to the lowest */
    uint64_t even[5] = {1, 1, 1, 1, 1};
    struct ab_units v = {.n = 5, .cost = even};
    int64_t p3[5], want[5] = {0, 1, 2, 0, 1};
    cr_assert_eq(ab_units_assign(&v, 3, p3), AB_OK);
    cr_expect(!memcmp(p3, want, sizeof want), "%lld %lld %lld %lld %lld", (long long)p3[0],
              (long long)p3[1], (long long)p3[2], (long long)p3[3], (long long)p3[4]);
    /* heads at n = 131072 cost far more than heads at 2048 */
    struct ab_workload a = {.n_seq = 131072, .d = 64, .d_v = 64, .causal = 1};
    struct ab_workload b = a;
    b.n_seq = 2048;
    struct ab_sweep_opts so;
    ab_sweep_defaults(&so);
    cr_expect_gt(ab_unit_cost(&a, &so), 32 * ab_unit_cost(&b, &so));
}

/* The work reports of ab_run (its time left): estimated cost, not cells. */
struct work_seen {
    double done[64], total;
    int n, bad;
};
static void seen_work(void *user, double done, double total)
{
    struct work_seen *ws = user;
    if (ws->n && (done < ws->done[ws->n - 1] || total != ws->total)) ws->bad = 1;
    ws->total = total;
    if (ws->n < 64) ws->done[ws->n++] = done;
}
static void no_progress(void *user, int64_t done, int64_t total)
{
    (void)user, (void)done, (void)total;
}

/* Two workloads of 2 heads, n = 256 and 1024, cells alike: after the short one the cells are
 * half done but the work is its share of the estimated cost, which ab_unit_cost says. */
Test(longrun, progress_work_is_estimated_cost_not_cells)
{
    const char *ws_path[2] = {t_path("lw-short.h5"), t_path("lw-long.h5")};
    const int n[2] = {256, 1024};
    char *out, *err;
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(t_run(&out, &err, "gen --preset model --layers 1 --heads 2 --kv-heads 1 "
                           "--n %d --d 16 -o '%s'", n[i], ws_path[i]), 0, "%s", err);
        free(out), free(err);
    }
    struct ab_run_opts o = {0};
    cr_assert_eq(ab_decl_defaults(ab_run_decl, &o), AB_OK);
    cr_assert_eq(ab_decl_set(ab_decl_find(ab_run_decl, "methods"), &o, "streaming,quest"), AB_OK);
    cr_assert_eq(ab_decl_set(ab_decl_find(ab_run_decl, "budgets"), &o, "0.5"), AB_OK);
    cr_assert_eq(ab_decl_set(ab_decl_find(ab_run_decl, "o"), &o, t_path("lw-r.h5")), AB_OK);
    o.workloads = ws_path, o.n_workloads = 2, o.seed = 1;
    struct work_seen seen = {0};
    o.work = seen_work, o.work_user = &seen;
    struct ab_run_out res;
    cr_assert_eq(ab_run(&o, no_progress, NULL, &res), AB_OK, "%s", ab_errmsg());
    /* the estimate, per head of each workload, as the run resolved its options */
    struct ab_workload w[2];
    uint64_t c[2];
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(ab_h5_workload_read(ws_path[i], &w[i]), AB_OK);
        c[i] = ab_unit_cost(&w[i], &res.sweep);
        ab_workload_free(&w[i]);
    }
    cr_expect(!seen.bad, "work went back or its total moved");
    cr_assert_geq(seen.n, 3);
    cr_expect_eq(seen.total, 2.0 * (double)c[0] + 2.0 * (double)c[1]);
    cr_expect_eq(seen.done[seen.n - 1], seen.total, "the run ends with all of its work done");
    /* a report at exactly the short workload's work: after it, before any long head */
    int at_short = 0;
    for (int k = 0; k < seen.n; k++) at_short |= seen.done[k] == 2.0 * (double)c[0];
    cr_expect(at_short, "no report at the end of the short workload");
    cr_expect_gt(c[1], 3 * c[0], "a head 4 times longer costs more than 3 times as much");
    ab_run_out_free(&res);
    ab_decl_free(ab_run_decl, &o);
}

Test(longrun, four_shards_merged_equal_one_process)
{
    const char *w = t_path("lm-w.h5"), *ref = t_path("lm-ref.h5"), *m = t_path("lm-m.h5");
    fixture(w, ref);
    char p[4][1100];
    char *out, *err;
    for (int i = 0; i < 4; i++) {
        snprintf(p[i], sizeof p[i], "%s", t_path("lm-piece.h5"));
        p[i][strlen(p[i]) - 3] = 0;
        snprintf(p[i] + strlen(p[i]), 16, "%d.h5", i + 1);
        cr_assert_eq(t_run(&out, &err, "run '%s' " METHODS " --threads 1 --shard %d/4 -o '%s'", w,
                           i + 1, p[i]), 0, "%s", err);
        free(out), free(err);
    }
    cr_assert_eq(t_run(&out, &err, "merge '%s' '%s' '%s' '%s' -o '%s'", p[2], p[0], p[3], p[1], m),
                 0, "%s", err);
    cr_expect(strstr(out, "merge: ") == out, "%s", out);
    free(out), free(err);
    cr_expect(same_results(m, ref));
    char csv[1100];
    snprintf(csv, sizeof csv, "%.*s.csv", (int)strlen(m) - 3, m);
    cr_expect(t_exists(csv), "no CSV beside the merged file");
    /* the merged file records the unsharded run's command line */
    cr_assert_eq(t_run(&out, &err, "info '%s'", m), 0, "%s", err);
    cr_expect(!strstr(out, "--shard"), "%s", out);
    free(out), free(err);

    /* refusals: one line, exit 65, nothing written, the pieces unchanged */
    const char *other = t_path("lm-other.h5");
    cr_assert_eq(t_run(&out, &err, "run '%s' --methods streaming,quest --budgets 0.5 --threads 1 "
                       "--no-progress --shard 2/4 -o '%s'", w, other), 0, "%s", err);
    free(out), free(err);
    const char *m2 = t_path("lm-m2.h5");
    size_t n0;
    unsigned char *before = t_slurp(p[0], &n0);
    struct {
        const char *args, *says;
    } bad[] = {
        {"'%s' '%s' '%s' -o '%s'", "shard 4/4 missing"},
        {"'%s' '%s' '%s' '%s' '%s' -o '%s'", "are both shard"},
        {"'%s' '%s' '%s' '%s' -o '%s'", "another run"},
        {"'%s' -o '%s'", "not a shard piece"},
    };
    char args[6000];
    snprintf(args, sizeof args, bad[0].args, p[0], p[1], p[2], m2);
    cr_expect_eq(t_run(&out, &err, "merge %s", args), 65, "%s", err);
    cr_expect(strstr(err, bad[0].says) && t_count_lines(err) == 1, "%s", err);
    free(out), free(err);
    snprintf(args, sizeof args, bad[1].args, p[0], p[1], p[2], p[3], p[1], m2);
    cr_expect_eq(t_run(&out, &err, "merge %s", args), 65, "%s", err);
    cr_expect(strstr(err, bad[1].says) && t_count_lines(err) == 1, "%s", err);
    free(out), free(err);
    snprintf(args, sizeof args, bad[2].args, p[0], other, p[2], p[3], m2);
    cr_expect_eq(t_run(&out, &err, "merge %s", args), 65, "%s", err);
    cr_expect(strstr(err, bad[2].says) && t_count_lines(err) == 1, "%s", err);
    free(out), free(err);
    snprintf(args, sizeof args, bad[3].args, ref, m2);
    cr_expect_eq(t_run(&out, &err, "merge %s", args), 65, "%s", err);
    cr_expect(strstr(err, bad[3].says) && t_count_lines(err) == 1, "%s", err);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "merge '%s' '%s' -o '%s'", p[0], t_path("lm-nope.h5"), m2), 66);
    free(out), free(err);
    cr_expect(!t_exists(m2) && !t_tmp_left(m2), "merge wrote after a refusal");
    size_t n1;
    unsigned char *after = t_slurp(p[0], &n1);
    cr_expect(before && after && n0 == n1 && !memcmp(before, after, n0), "a piece changed");
    free(before), free(after);
}

/* 1 when this attnbench was built with MPI and mpirun is on PATH. */
static int have_mpi(void)
{
    char *out, *err;
    int st = t_run(&out, &err, "--version");
    int built = st == 0 && strstr(out, "mpi: yes") != NULL;
    free(out), free(err);
    return built && system("command -v mpirun >/dev/null 2>&1") == 0;
}

Test(longrun, two_mpi_ranks_equal_one_process)
{
    if (!have_mpi()) cr_skip_test("no MPI in this build or no mpirun (Debian: libopenmpi-dev, openmpi-bin)");
    const char *w = t_path("lp-w.h5"), *ref = t_path("lp-ref.h5"), *r = t_path("lp-r.h5");
    fixture(w, ref);
    const char *log = t_path("lp-log.txt");
    char cmd[6000];
    /* root in CI: Open MPI wants both variables; --oversubscribe: 2 ranks on any machine; in a
     * sanitizer build, Open MPI's own allocations at MPI_Init are not ours to report */
    snprintf(cmd, sizeof cmd, "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
             "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 "
             "OMPI_MCA_rmaps_base_oversubscribe=1 mpirun --oversubscribe -np 2 '%s' run '%s' "
             METHODS " --threads 1 -o '%s' >'%s' 2>&1 </dev/null", getenv("AB_BIN"), w, r, log);
    int st = system(cmd);
    char *text = (char *)t_slurp(log, NULL);
    cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", text ? text : "");
    cr_expect(text && strstr(text, "2 MPI ranks"), "%s", text ? text : "");
    free(text);
    cr_expect(same_results(r, ref));
}

/* A scenario interrupted in its run step and started again continues from the journal (a
 * scenario step resumes by itself: it has no --resume to say so) and ends with the results of
 * an uninterrupted scenario. The workload is a `file:` one: a generated workload is written
 * again by each scenario run, with a new creation time, so its digest changes and the journal
 * of the interrupted run is replaced instead (the second half). */
Test(longrun, an_interrupted_scenario_continues_its_run_step)
{
    const char *w = t_path("lsc-w.h5"), *yaml = t_path("lsc.yaml");
    char *out, *err;
    cr_assert_eq(t_run(&out, &err, "gen --preset model --layers 2 --heads 4 --kv-heads 2 --n 256 "
                       "--d 32 --quiet -o '%s'", w), 0, "%s", err);
    free(out), free(err);
    FILE *f = fopen(yaml, "w");
    cr_assert(f);
    fprintf(f, "schema: attnbench/scenario/1\nname: t\nworkloads:\n  - name: w\n    file: '%s'\n"
            "run:\n  methods: [streaming, quest, pyramidkv]\n  budgets: [0.5, 0.25]\n", w);
    fclose(f);
    char ref[1100], dir[1100], res[1200], refres[1200], j[1300];
    snprintf(ref, sizeof ref, "%s", t_path("lsc-ref"));
    snprintf(dir, sizeof dir, "%s", t_path("lsc-out"));
    snprintf(res, sizeof res, "%s/results.h5", dir);
    snprintf(refres, sizeof refres, "%s/results.h5", ref);
    snprintf(j, sizeof j, "%s.journal", res);
    cr_assert_eq(t_run(&out, &err, "scenario '%s' -o '%s' --no-progress", yaml, ref), 0, "%s", err);
    free(out), free(err);
    setenv("AB_TEST_KILL_AFTER_HEADS", "3", 1);
    int st = t_run(&out, &err, "scenario '%s' -o '%s' --no-progress", yaml, dir);
    unsetenv("AB_TEST_KILL_AFTER_HEADS");
    free(out), free(err);
    cr_assert_neq(st, 0, "the scenario was not killed");
    cr_assert(t_exists(j) && !t_exists(res), "no journal, or results, after the kill");
    cr_assert_eq(t_run(&out, &err, "scenario '%s' -o '%s' --no-progress", yaml, dir), 0, "%s", err);
    cr_expect(strstr(err, "resumed: 3 of 8 heads from the journal, 5 computed"), "%s", err);
    free(out), free(err);
    cr_expect(same_results(res, refres));
    cr_expect(!t_exists(j), "the journal stayed");
    /* interrupted again, then the scenario edited: the journal of the old options is replaced */
    remove(res);
    setenv("AB_TEST_KILL_AFTER_HEADS", "3", 1);
    st = t_run(&out, &err, "scenario '%s' -o '%s' --no-progress", yaml, dir);
    unsetenv("AB_TEST_KILL_AFTER_HEADS");
    free(out), free(err);
    cr_assert(st != 0 && t_exists(j));
    cr_assert_eq(t_run(&out, &err, "scenario '%s' -o '%s' --no-progress --set run.budgets=0.5",
                       yaml, dir), 0, "%s", err);
    cr_expect(!strstr(err, "resumed: "), "%s", err);
    free(out), free(err);
    cr_expect(t_exists(res) && !t_exists(j));
}
