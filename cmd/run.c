/* run.c - `attnbench run`: evaluates methods x budgets x phases on workloads against exact
 * attention and writes the results file (HDF5) with its CSV tables next to it (outputs.md).
 * The work is ab_run (lib/run/run.c), declared by ab_run_decl; this file is argv -> struct ->
 * call -> print: the answer of the run on stdout (or, with --json, one JSON document). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/decl.h"
#include "eval/eval.h"
#include "io/json_out.h"
#include "methods/method.h"
#include "opts.h"
#include "run/run.h"
#ifdef AB_HAVE_MPI
#include <mpi.h>
#endif

static const char *usage_text =
    "attnbench run WORKLOAD.h5... [--methods a,b,...] [--budgets 0.5,0.25,...] [--knob k=v]\n"
    "              [--kv-budget T,...] [--bytes-budget R,...] [--layer-budget RULE]\n"
    "              [--phase prefill|decode|both] [--decode-queries M] [--rows N] [--json]\n"
    "              [--resume] [--shard I/N] -o RESULTS.h5\n"
    "       mpirun -np K attnbench run ... -o RESULTS.h5   (a build with MPI)";

/* One (method, phase, target) over every workload of the run: feasible cells, all cells, and
 * the sums of their mean metrics weighted by feasible heads. */
struct pooled {
    const char *method, *phase, *reason, *kind;
    double target, rel_l2, task_acc, n_task; /* target: the ratio, or the tokens of a tokens
                                                budget */
    int64_t n_heads, n_cells;
};

/* The mean rel_l2 over the feasible heads of a pooled group. */
static double pooled_rel_l2(const struct pooled *p) { return p->rel_l2 / (double)p->n_heads; }

/* The (method, phase, target) groups of the summary pooled over workloads: malloc'd, *n_g of
 * them; NULL when out of memory. */
static struct pooled *pool(const struct ab_results *r, int64_t *n_g)
{
    struct pooled *g = calloc((size_t)(r->n_summary + 1), sizeof *g);
    *n_g = 0;
    if (!g) return NULL;
    for (int64_t i = 0; i < r->n_summary; i++) {
        const struct ab_summary_row *s = &r->summary[i];
        const char *kind = s->budget_kind ? s->budget_kind : "";
        double t = strcmp(kind, "tokens") ? s->target_ratio : s->target_tokens;
        int64_t k = 0;
        for (; k < *n_g; k++)
            if (!strcmp(g[k].method, s->method) && !strcmp(g[k].phase, s->phase) &&
                !strcmp(g[k].kind, kind) &&
                (g[k].target == t || (isnan(g[k].target) && isnan(t))))
                break;
        if (k == *n_g) g[(*n_g)++] = (struct pooled){.method = s->method, .phase = s->phase,
                                                     .kind = kind, .target = t};
        struct pooled *p = &g[k];
        p->n_cells += s->n_cells, p->n_heads += s->n_heads;
        if (s->n_heads) p->rel_l2 += s->rel_l2_mean * (double)s->n_heads;
        if (s->n_heads && !isnan(s->task_acc_mean))
            p->task_acc += s->task_acc_mean * (double)s->n_heads, p->n_task += (double)s->n_heads;
        if (!p->reason && s->reason && s->reason[0]) p->reason = s->reason;
    }
    return g;
}

/* The best and the runner-up group of phase at target: the lowest mean rel_l2 among methods
 * feasible on every head, oracles and operators aside (they answer other questions); -1 when
 * none. */
static void best_two(const struct pooled *g, int64_t n_g, const char *phase, const char *kind,
                     double target, int64_t *best, int64_t *second)
{
    *best = *second = -1;
    for (int64_t k = 0; k < n_g; k++) {
        const struct ab_method *m = ab_method_find(g[k].method);
        if (strcmp(g[k].phase, phase) || strcmp(g[k].kind, kind) || g[k].target != target || !m ||
            (m->flags & (AB_METHOD_ORACLE | AB_METHOD_OPERATOR)) || g[k].n_heads == 0 ||
            g[k].n_heads < g[k].n_cells)
            continue;
        double v = pooled_rel_l2(&g[k]);
        if (*best < 0 || v < pooled_rel_l2(&g[*best])) *second = *best, *best = k;
        else if (*second < 0 || v < pooled_rel_l2(&g[*second])) *second = k;
    }
}

static const char *const phase_names[] = {"prefill", "decode"};

/* A budget as people write it: "1/8" (FLOPs), "T=128" (tokens per step), "B=1/8" (bytes). */
static void budget_label(const char *kind, double t, char *buf, size_t cap)
{
    char r[24];
    ab_ratio_label(t, r, sizeof r);
    if (!strcmp(kind, "tokens")) snprintf(buf, cap, "T=%.0f", t);
    else if (!strcmp(kind, "bytes")) snprintf(buf, cap, "B=%s", r);
    else snprintf(buf, cap, "%s", r);
}

/* The budgets of a phase, in the order given: FLOP targets, then (decode) tokens and bytes. */
static int phase_budgets(const struct ab_sweep_opts *so, int ph, const char **kind, double *t)
{
    int n = 0;
    if (so->has_knob) return 0;
    for (int i = 0; i < so->n_targets; i++) kind[n] = "flops", t[n++] = so->targets[i];
    for (int i = 0; ph == 1 && i < so->n_kv_tokens; i++) kind[n] = "tokens", t[n++] = so->kv_tokens[i];
    for (int i = 0; ph == 1 && i < so->n_kv_bytes; i++) kind[n] = "bytes", t[n++] = so->kv_bytes[i];
    return n;
}

/* The answer of the run, not its table (the table is RESULTS-summary.csv): per phase and
 * budget the best method and the runner-up (best_two), and then each method with infeasible
 * cells, once, with its reason. */
static void print_answer(const struct ab_results *r, const struct ab_sweep_opts *so)
{
    int64_t n_g;
    struct pooled *g = pool(r, &n_g);
    if (!g) return;
    printf("best per phase and budget (mean rel_l2 over every head; oracles and operators aside");
    if (so->phases & AB_PHASE_DECODE)
        printf("; decode one-off work spread over G = %lld generated tokens", (long long)so->horizon);
    printf("):\n");
    printf("  %-8s %-7s %-16s %9s %8s   %-16s %9s\n", "phase", "budget", "best", "rel_l2",
           "task_acc", "runner-up", "rel_l2");
    for (int ph = 0; ph < 2; ph++) {
        if (!(so->phases & (1u << ph))) continue;
        const char *kinds[3 * AB_RUN_MAX_TARGETS];
        double ts[3 * AB_RUN_MAX_TARGETS];
        int n_b = phase_budgets(so, ph, kinds, ts);
        for (int t = 0; t < n_b; t++) {
            int64_t best, second;
            best_two(g, n_g, phase_names[ph], kinds[t], ts[t], &best, &second);
            char lab[32];
            budget_label(kinds[t], ts[t], lab, sizeof lab);
            if (best < 0) {
                printf("  %-8s %-7s %s\n", phase_names[ph], lab, "(no method feasible on every head)");
                continue;
            }
            printf("  %-8s %-7s %-16s %9.3g %8.3f   %-16s %9.3g\n", phase_names[ph], lab,
                   g[best].method, pooled_rel_l2(&g[best]),
                   g[best].n_task ? g[best].task_acc / g[best].n_task : NAN,
                   second < 0 ? "-" : g[second].method,
                   second < 0 ? NAN : pooled_rel_l2(&g[second]));
        }
    }
    /* infeasible: once per method, its (phase, budget) list and the first reason */
    int header = 0;
    for (int64_t k = 0; k < n_g; k++) {
        int first = 1;
        for (int64_t j = 0; j < k && first; j++)
            first = strcmp(g[j].method, g[k].method) != 0 || g[j].n_heads == g[j].n_cells;
        if (g[k].n_heads == g[k].n_cells || !first) continue;
        if (!header++) printf("infeasible (the smallest knob is above the budget):\n");
        printf("  %-16s", g[k].method);
        const char *sep = " ";
        for (int64_t j = k; j < n_g; j++) {
            if (strcmp(g[j].method, g[k].method) || g[j].n_heads == g[j].n_cells) continue;
            char lab[32];
            budget_label(g[j].kind, g[j].target, lab, sizeof lab);
            printf("%s%s %s", sep, g[j].phase, lab);
            if (g[j].n_heads) printf(" (%lld of %lld heads)", (long long)(g[j].n_cells - g[j].n_heads),
                                     (long long)g[j].n_cells);
            sep = ", ";
        }
        printf(": %s\n", g[k].reason ? g[k].reason : "");
    }
    free(g);
}

/* The answer as one JSON document (schema attnbench/run/1) on stdout: the outputs, the options
 * as recorded, per phase and budget the best method and the runner-up, and every (method,
 * phase, budget) with infeasible cells. */
static int print_json(const struct ab_run_out *out)
{
    const struct ab_sweep_opts *so = &out->sweep;
    int64_t n_g;
    struct pooled *g = pool(&out->res, &n_g);
    struct ab_json_doc d;
    ab_json_begin(&d);
    struct ab_json *o = d.root, *csv, *best, *inf;
    ab_json_str(&d, o, "schema", "attnbench/run/1");
    ab_json_str(&d, o, "results", out->res_path);
    if ((csv = ab_json_arr(&d, o, "csv")))
        ab_json_str(&d, csv, NULL, out->csv_cells), ab_json_str(&d, csv, NULL, out->csv_summary);
    ab_json_int(&d, o, "cells", out->res.n_cells);
    ab_json_int(&d, o, "infeasible_cells", out->infeasible);
    ab_json_num(&d, o, "seconds", out->seconds);
    ab_json_int(&d, o, "heads", out->units);
    ab_json_int(&d, o, "heads_resumed", out->units_resumed);
    ab_json_int(&d, o, "heads_computed", out->units_computed);
    if (out->shard_count) {
        char sh[48];
        snprintf(sh, sizeof sh, "%lld/%lld", (long long)out->shard_index,
                 (long long)out->shard_count);
        ab_json_str(&d, o, "shard", sh);
    }
    ab_json_text(&d, o, "options", out->res.options);
    best = ab_json_arr(&d, o, "best");
    for (int ph = 0; g && ph < 2; ph++) {
        if (!(so->phases & (1u << ph))) continue;
        const char *kinds[3 * AB_RUN_MAX_TARGETS];
        double ts[3 * AB_RUN_MAX_TARGETS];
        int n_b = phase_budgets(so, ph, kinds, ts);
        for (int t = 0; t < n_b; t++) {
            int64_t b, r;
            best_two(g, n_g, phase_names[ph], kinds[t], ts[t], &b, &r);
            struct ab_json *row = ab_json_obj(&d, best, NULL);
            ab_json_str(&d, row, "phase", phase_names[ph]);
            ab_json_str(&d, row, "budget_kind", kinds[t]);
            ab_json_num(&d, row, "budget", ts[t]);
            ab_json_str(&d, row, "method", b < 0 ? NULL : g[b].method);
            ab_json_num(&d, row, "rel_l2", b < 0 ? NAN : pooled_rel_l2(&g[b]));
            ab_json_num(&d, row, "task_acc",
                        b < 0 || !g[b].n_task ? NAN : g[b].task_acc / g[b].n_task);
            ab_json_str(&d, row, "runner_up", r < 0 ? NULL : g[r].method);
            ab_json_num(&d, row, "runner_up_rel_l2", r < 0 ? NAN : pooled_rel_l2(&g[r]));
        }
    }
    inf = ab_json_arr(&d, o, "infeasible");
    for (int64_t k = 0; g && k < n_g; k++) {
        if (g[k].n_heads >= g[k].n_cells) continue;
        struct ab_json *row = ab_json_obj(&d, inf, NULL);
        ab_json_str(&d, row, "method", g[k].method);
        ab_json_str(&d, row, "phase", g[k].phase);
        ab_json_str(&d, row, "budget_kind", g[k].kind);
        ab_json_num(&d, row, "budget", g[k].target);
        ab_json_int(&d, row, "infeasible_heads", g[k].n_cells - g[k].n_heads);
        ab_json_int(&d, row, "heads", g[k].n_cells);
        ab_json_str(&d, row, "reason", g[k].reason ? g[k].reason : "");
    }
    if (!g) d.failed = 1;
    free(g);
    return ab_json_print(&d, stdout);
}

/* Testing hook (README "Long sweeps"): with AB_TEST_KILL_AFTER_HEADS=K in the environment,
 * run kills itself with SIGKILL once K heads have been journaled by this process: the
 * interruption of the resume tests, at a known point. */
static int64_t kill_after = -1, journaled_here;
static void journaled(void *user, int64_t records)
{
    (void)user, (void)records;
    if (++journaled_here >= kill_after) raise(SIGKILL);
}

/* Under mpirun (Open MPI's OMPI_COMM_WORLD_SIZE, or PMI_SIZE, in the environment) with an MPI
 * build: initialises MPI and returns 1 with *rank and *size; 0 otherwise. */
static int mpi_start(int *rank, int *size)
{
    *rank = 0, *size = 0;
#ifdef AB_HAVE_MPI
    const char *env = getenv("OMPI_COMM_WORLD_SIZE");
    if (!env) env = getenv("PMI_SIZE");
    if (!env) return 0;
    int provided;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) return 0;
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
    return 1;
#else
    return getenv("OMPI_COMM_WORLD_SIZE") && atoi(getenv("OMPI_COMM_WORLD_SIZE")) > 1
               ? (*size = atoi(getenv("OMPI_COMM_WORLD_SIZE")), 0)
               : 0;
#endif
}

static void mpi_stop(int started)
{
#ifdef AB_HAVE_MPI
    if (started) MPI_Finalize();
#else
    (void)started;
#endif
}

/* run's progress: the first call carries the cells resumed from the journal (ab_run reports
 * them before any work), which the time left does not count as this process's rate. */
struct run_prog {
    struct ab_progress p;
    int started;
};
static void run_progress(void *user, int64_t done, int64_t total)
{
    struct run_prog *rp = user;
    if (!rp->started) {
        rp->started = 1;
        if (rp->p.ticking) pthread_mutex_lock(&rp->p.lock); /* the ticker reads it */
        rp->p.skipped = done;
        if (rp->p.ticking) pthread_mutex_unlock(&rp->p.lock);
    }
    ab_progress_engine_total(&rp->p, done, total);
}
static void run_work(void *user, double done, double total)
{
    ab_progress_work(&((struct run_prog *)user)->p, done, total);
}

int cmd_run_opts(const struct ab_run_opts *given)
{
    struct ab_run_opts oo = *given, *o = &oo;
    int json = o->json;
    const char *k_env = getenv("AB_TEST_KILL_AFTER_HEADS");
    if (k_env && atoll(k_env) > 0) {
        kill_after = atoll(k_env), journaled_here = 0;
        o->journaled = journaled, o->journaled_user = NULL;
    }
    /* a scenario step continues what an interrupted run of the scenario left, and replaces
     * the journal of a run of other options (the scenario has no --resume to say it) */
    if (ab_common.nested && !o->resume) o->resume = 2;
    int rank, size, mpi = mpi_start(&rank, &size);
    o->mpi_rank = rank, o->mpi_size = size;
    int root = rank == 0;
    struct ab_run_out out;
    struct run_prog rprog = {0};
    struct ab_progress *pprog = &rprog.p;
    ab_progress_start(pprog, "run", "cells", 0);
    if (!root) ab_progress_stop(pprog); /* rank 0 shows the progress of its part */
    if (root) o->work = run_work, o->work_user = &rprog;
    int rc = ab_run(o, root ? run_progress : NULL, &rprog, &out);
    if (rc) {
        if (root) ab_progress_stop(pprog);
        ab_run_out_free(&out);
        int st = root ? ab_cmd_error(ab_exit_status(rc), "run: %s", ab_errmsg())
                      : ab_exit_status(rc);
        mpi_stop(mpi);
        return st;
    }
    if (!out.wrote) { /* a rank other than 0: its cells went to rank 0 */
        ab_run_out_free(&out);
        mpi_stop(mpi);
        return EX_AB_OK;
    }
    ab_progress_end(pprog);
    if (json) {
        if ((rc = print_json(&out))) {
            ab_run_out_free(&out);
            mpi_stop(mpi);
            return ab_cmd_fail(rc);
        }
    } else if (!ab_common.quiet) {
        print_answer(&out.res, &out.sweep);
        fflush(stdout);
        if (out.units_resumed)
            fprintf(stderr, "resumed: %lld of %lld heads from the journal, %lld computed\n",
                    (long long)out.units_resumed, (long long)out.units,
                    (long long)out.units_computed);
        if (size > 1)
            fprintf(stderr, "%d MPI ranks: rank 0 computed %lld of the heads\n", size,
                    (long long)out.units_computed);
        fprintf(stderr, "%lld cells in %.1f s (%lld infeasible)\n", (long long)out.res.n_cells,
                out.seconds, (long long)out.infeasible);
    }
    ab_out_file(o->out), ab_out_file(out.csv_cells), ab_out_file(out.csv_summary);
    if (!json && out.shard_count)
        ab_out_main("run", o->out, "shard %lld/%lld: %lld cells of %lld heads; %s and %s beside "
                    "it; join the pieces with `attnbench merge`", (long long)out.shard_index,
                    (long long)out.shard_count, (long long)out.res.n_cells,
                    (long long)out.units, ab_path_base(out.csv_cells),
                    ab_path_base(out.csv_summary));
    else if (!json)
        ab_out_main("run", o->out, "%lld cells; %s and %s beside it", (long long)out.res.n_cells,
                    ab_path_base(out.csv_cells), ab_path_base(out.csv_summary));
    ab_run_out_free(&out);
    mpi_stop(mpi);
    return EX_AB_OK;
}

int cmd_run(int argc, char **argv)
{
    struct ab_run_opts o = {0};
    if (ab_decl_defaults(ab_run_decl, &o)) return ab_cmd_fail(AB_E_NOMEM);
    char *pos[AB_RUN_MAX_WORKLOADS + 1];
    int n_pos, st = ab_opts_parse_decl("run", usage_text, ab_run_decl, &o, argc, argv, pos,
                                       AB_RUN_MAX_WORKLOADS, &n_pos);
    if (st < 0) {
        o.workloads = (const char *const *)pos, o.n_workloads = n_pos;
        o.seed = ab_common.seed;
        st = cmd_run_opts(&o);
    }
    ab_decl_free(ab_run_decl, &o);
    return st;
}
