/* bench.c - `attnbench bench`: kernel throughput measured against the machine's own limits,
 * measured in the same run (lib/core/machine.h), so ratios are comparable across noisy shared
 * machines. Speed claims in this project come from here, never from tests.
 *   bench machine    the CPU's widest FMA ISA and its FMA peak, the BLAS kernel set and its
 *                    sgemm (best and median), the copy bandwidth (STREAM triad); a warning when
 *                    sgemm is far below the FMA peak (a misdetected CPU), naming the fix;
 *   bench dense      the blocked causal kernel against the same run's sgemm (median and best);
 *   bench reference  the double-precision reference, for scale;
 *   bench decode     one or a few queries against a long cache on many heads: dense decode and
 *                    cache-compressed decode (the kept keys compacted once, lib/attn/compact.c)
 *                    in GB/s against the same run's triad bandwidth;
 *   bench methods    selection methods at fitted knobs: selection and token-sparse attention
 *                    time against dense in the same run (bench_methods.c). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "core/ab.h"
#include "core/machine.h"
#include "core/rng.h"
#include "opts.h"

static const char *usage_text =
    "attnbench bench machine|dense|reference|decode [--n N] [--d D] [--dv DV]\n"
    "                (bench methods --help: the methods' measured speed)\n"
    "                [--mask causal|full] [--reps R] [--gemm-n N] [--heads H] [--queries M]\n"
    "                [--keep 0.25,0.125,...] [--triad-mb MB] [--threads T]";

/* sgemm below this share of the FMA peak means generic kernels (a misdetected CPU) */
#define SGEMM_WARN 0.5

/* The machine's limits, printed as `bench machine` does; warns on a misdetected CPU. */
static int print_machine(int64_t gemm_n, int reps, int64_t triad_mb, struct ab_rate *gemm,
                         struct ab_rate *triad)
{
    const char *isa = ab_machine_isa();
    double peak = ab_machine_fma_peak(0, 0.2);
    int rc = ab_machine_sgemm(gemm_n, reps, 2.0, gemm);
    if (!rc) rc = ab_machine_triad(triad_mb << 20, reps < 5 ? 5 : reps, triad);
    if (rc) return rc;
    printf("isa          %s (%d float lanes; the widest FMA this CPU has)\n", isa, ab_machine_lanes());
    printf("threads      %d\n", ab_threads_get());
    printf("fma peak     %.1f GFLOP/s (vector FMA loop at %s, every thread)\n", peak, isa);
    printf("blas         %s (kernel set %s)\n", ab_blas_config(), ab_machine_blas_core());
    printf("sgemm        %.1f GFLOP/s median, %.1f best (%lld^3, %d runs) = %.2f of the FMA peak\n",
           gemm->median, gemm->best, (long long)gemm_n, gemm->reps, gemm->median / peak);
    printf("triad        %.1f GB/s median, %.1f best (3 arrays of %lld MB, %d runs)\n",
           triad->median, triad->best, (long long)triad_mb, triad->reps);
    if (gemm->median < SGEMM_WARN * peak)
        ab_log(AB_LOG_WARN, "bench: sgemm reaches only %.2f of this CPU's FMA peak: OpenBLAS may "
               "run generic kernels for a misdetected CPU (kernel set %s); set OPENBLAS_CORETYPE="
               "%s and compare", gemm->median / peak, ab_machine_blas_core(),
               ab_machine_lanes() == 16 ? "SkylakeX" : "Haswell");
    return AB_OK;
}

/* Seeded Gaussian rows: x (n, d) for stream `tag` (opts.h). */
void ab_bench_fill(float *x, int64_t n, int64_t d, uint64_t tag)
{
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++) {
        struct ab_rng r;
        ab_rng_init(&r, ab_common.seed, ab_stream(tag, (uint64_t)i, 0, 0));
        for (int64_t c = 0; c < d; c++) x[i * d + c] = (float)ab_rng_normal(&r);
    }
}

/* Median wall time of `reps` decode steps over H heads (one head per thread at a time; BLAS
 * serial inside), after one warm-up. */
static double decode_time(const struct ab_head *heads, int64_t H, float *o, int reps, int *fail)
{
    double t[64];
    if (reps > 64) reps = 64;
    for (int r = -1; r < reps; r++) {
        double t0 = ab_now();
        ab_blas_serial_begin();
#pragma omp parallel for schedule(static)
        for (int64_t h = 0; h < H; h++)
            if (ab_attn_fast(&heads[h], o + h * heads[h].n_q * heads[h].d_v, NULL)) {
#pragma omp atomic write
                *fail = 1;
            }
        ab_blas_serial_end();
        if (r >= 0) t[r] = ab_now() - t0;
    }
    return ab_median(t, reps);
}

/* `bench decode`: M queries at the end of a cache of n keys on H heads, dense and compacted. */
static int bench_decode(int64_t n, int64_t d, int64_t dv, int64_t H, int64_t m, const char *keep,
                        int reps, int64_t triad_mb)
{
    double bytes = 4.0 * (double)H * (double)n * (double)(d + dv);
    int rc = ab_check_fits("the decode cache", 2.0 * bytes + 4.0 * (double)H * (double)m * (double)d);
    if (rc) return ab_cmd_fail(rc);
    double ratios[16];
    int n_r = 0;
    if (keep) {
        const char *s = keep;
        while (*s && n_r < 16) {
            char *end;
            ratios[n_r] = strtod(s, &end);
            if (end == s || !(ratios[n_r] > 0 && ratios[n_r] <= 1))
                return ab_cmd_error(EX_AB_USAGE, "bench: --keep wants shares of the cache in (0, 1], "
                                    "got '%s'", keep);
            n_r++;
            s = *end == ',' ? end + 1 : end;
            if (*end && *end != ',')
                return ab_cmd_error(EX_AB_USAGE, "bench: --keep wants a comma list, got '%s'", keep);
        }
    }
    struct ab_rate triad;
    if ((rc = ab_machine_triad(triad_mb << 20, 5, &triad))) return ab_cmd_fail(rc);
    float *q = ab_alloc(ab_size_mul((size_t)(H * m * d), sizeof(float)));
    float *k = ab_alloc(ab_size_mul((size_t)(H * n * d), sizeof(float)));
    float *v = ab_alloc(ab_size_mul((size_t)(H * n * dv), sizeof(float)));
    float *o = ab_alloc(ab_size_mul((size_t)(H * m * dv), sizeof(float)));
    int32_t *pos = ab_alloc((size_t)n * sizeof(int32_t));
    struct ab_head *heads = calloc((size_t)H, sizeof *heads);
    int st = EX_AB_OK, fail = 0;
    if (!q || !k || !v || !o || !pos || !heads) {
        st = ab_cmd_error(EX_AB_DATA, "bench: out of memory for the decode cache");
        goto done;
    }
    ab_bench_fill(q, H * m, d, 21), ab_bench_fill(k, H * n, d, 22), ab_bench_fill(v, H * n, dv, 23);
    for (int64_t i = 0; i < n; i++) pos[i] = (int32_t)i;
    for (int64_t h = 0; h < H; h++) /* (m, d) queries at the last m positions, (n, d) cache */
        heads[h] = (struct ab_head){.n_q = m, .n_k = n, .d = d, .d_v = dv, .q = q + h * m * d,
                                    .k = k + h * n * d, .v = v + h * n * dv,
                                    .q_pos = pos + n - m, .k_pos = pos,
                                    .mask = AB_MASK_CAUSAL, .scale = 1.0 / sqrt((double)d)};
    double t_dense = decode_time(heads, H, o, reps, &fail);
    printf("decode       %lld heads, cache n %lld, d %lld, dv %lld, %lld quer%s, %d threads\n",
           (long long)H, (long long)n, (long long)d, (long long)dv, (long long)m,
           m == 1 ? "y" : "ies", ab_threads_get());
    printf("triad        %.1f GB/s median (%.1f best, 3 arrays of %lld MB)\n", triad.median,
           triad.best, (long long)triad_mb);
    printf("%-10s %10s %10s %9s %10s %9s\n", "cache", "time_s", "GB/s", "of triad", "time_ratio",
           "kept");
    printf("%-10s %10.5f %10.1f %9.2f %10.3f %9.3f\n", "dense", t_dense, bytes / t_dense / 1e9,
           bytes / t_dense / 1e9 / triad.median, 1.0, 1.0);
    for (int i = 0; i < n_r && !fail; i++) {
        /* every 1/rho-th key of the prefix and the m decode keys, compacted once per head */
        int64_t n_keep = 0, step = (int64_t)(1.0 / ratios[i] + 0.5);
        int64_t *idx = malloc(sizeof(int64_t) * (size_t)n);
        struct ab_compact *cc = calloc((size_t)H, sizeof *cc);
        struct ab_head *ch = calloc((size_t)H, sizeof *ch);
        if (!idx || !cc || !ch) {
            free(idx), free(cc), free(ch);
            st = ab_cmd_error(EX_AB_DATA, "bench: out of memory");
            goto done;
        }
        for (int64_t j = 0; j < n; j++)
            if (j >= n - m || j % step == 0) idx[n_keep++] = j;
        for (int64_t h = 0; h < H && !rc; h++) {
            rc = ab_attn_compact(&heads[h], idx, n_keep, &cc[h]);
            ch[h] = cc[h].h;
        }
        if (!rc) {
            double t = decode_time(ch, H, o, reps, &fail), kb = bytes * (double)n_keep / (double)n;
            char name[32];
            snprintf(name, sizeof name, "keep %g", ratios[i]);
            printf("%-10s %10.5f %10.1f %9.2f %10.3f %9.3f\n", name, t, kb / t / 1e9,
                   kb / t / 1e9 / triad.median, t / t_dense, (double)n_keep / (double)n);
        }
        for (int64_t h = 0; h < H; h++) ab_attn_compact_free(&cc[h]);
        free(idx), free(cc), free(ch);
        if (rc) {
            st = ab_cmd_fail(rc);
            goto done;
        }
    }
    if (fail) st = ab_cmd_error(EX_AB_DATA, "bench: out of memory in the decode kernel");
    else
        printf("(bytes: K and V of the cache read once per step, 4 (d + dv) per key per head; "
               "time: median of %d steps; kept caches compacted before timing)\n", reps);
done:
    ab_free(q), ab_free(k), ab_free(v), ab_free(o), ab_free(pos), free(heads);
    return st;
}

int cmd_bench(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "methods")) return cmd_bench_methods(argc - 1, argv + 1);
    int64_t n = -1, d = 128, dv = 0, reps = -1, gemm_n = 2048, heads = 8, queries = 1, triad_mb = 128;
    const char *mask = "causal", *keep = NULL;
    const struct ab_opt opts[] = {
        {"n", AB_OPT_INT, &n, "N", "sequence length, or decode's cache length (default 8192; decode 65536)"},
        {"d", AB_OPT_INT, &d, "D", "head dimension (default 128)"},
        {"dv", AB_OPT_INT, &dv, "DV", "value dimension (default d)"},
        {"mask", AB_OPT_STRING, &mask, "M", "causal (prefill, default) or full"},
        {"reps", AB_OPT_INT, &reps, "R", "timed repetitions (default 3; decode 20, median kept)"},
        {"gemm-n", AB_OPT_INT, &gemm_n, "N", "size of the reference square GEMM (default 2048)"},
        {"heads", AB_OPT_INT, &heads, "H", "decode: heads, each with its own cache (default 8)"},
        {"queries", AB_OPT_INT, &queries, "M", "decode: queries per step at the end of the cache (default 1)"},
        {"keep", AB_OPT_STRING, &keep, "LIST", "decode: compacted caches keeping these shares, e.g. 0.25,0.125"},
        {"triad-mb", AB_OPT_INT, &triad_mb, "MB", "size of each triad array (default 128, beyond the caches)"},
        {NULL, AB_OPT_END, NULL, NULL, NULL},
    };
    char *pos[1];
    int n_pos, st = ab_opts_parse("bench", usage_text, opts, argc, argv, pos, 1, &n_pos);
    if (st >= 0) return st;
    static const char *const kernels[] = {"machine", "dense", "reference", "decode"};
    int kind = -1;
    for (int i = 0; n_pos == 1 && i < 4; i++)
        if (!strcmp(pos[0], kernels[i])) kind = i;
    if (kind < 0)
        return ab_cmd_error(EX_AB_USAGE, "bench: name what to measure: machine, dense, reference, "
                            "decode or methods (see 'attnbench bench --help')");
    int ref = kind == 2;
    if (dv == 0) dv = d;
    if (n == -1) n = kind == 3 ? 65536 : 8192; /* not given */
    if (reps == -1) reps = kind == 3 ? 20 : 3;
    if (n <= 0 || d <= 0 || dv <= 0 || reps <= 0 || gemm_n <= 0 || heads <= 0 || queries <= 0 ||
        triad_mb <= 0)
        return ab_cmd_error(EX_AB_USAGE, "bench: --n, --d, --dv, --reps, --gemm-n, --heads, "
                            "--queries and --triad-mb must be positive");
    if (kind == 3 && queries >= n)
        return ab_cmd_error(EX_AB_USAGE, "bench: --queries %lld must be below the cache of %lld",
                            (long long)queries, (long long)n);
    if (keep && kind != 3)
        return ab_cmd_error(EX_AB_USAGE, "bench: --keep is for bench decode");
    if (kind == 0 || kind == 3) {
        int frc = ab_check_fits("the triad arrays", 3.0 * (double)(triad_mb << 20));
        if (frc) return ab_cmd_fail(frc);
    }
    if (kind == 0) {
        struct ab_rate g, t;
        int mrc = print_machine(gemm_n, (int)reps, triad_mb, &g, &t);
        return mrc ? ab_cmd_fail(mrc) : EX_AB_OK;
    }
    if (kind == 3)
        return bench_decode(n, d, dv, heads, queries, keep, (int)reps, triad_mb);
    if (strcmp(mask, "causal") && strcmp(mask, "full"))
        return ab_cmd_error(EX_AB_USAGE, "bench: --mask must be causal or full, got '%s'", mask);
    int rc = ab_check_fits("the benchmark head", 4.0 * (double)n * (double)(2 * d + 2 * dv) +
                                                     (ref ? 8.0 * (double)n * (double)dv : 0));
    if (rc) return ab_cmd_fail(rc);

    /* the machine's rate first, so its buffers are gone before the head's are allocated */
    struct ab_rate gemm;
    if ((rc = ab_machine_sgemm(gemm_n, (int)reps, 2.0, &gemm))) return ab_cmd_fail(rc);

    /* one head of seeded Gaussian inputs, scaled so logits have unit variance */
    float *q = ab_alloc((size_t)(n * d) * sizeof(float)), *k = ab_alloc((size_t)(n * d) * sizeof(float));
    float *v = ab_alloc((size_t)(n * dv) * sizeof(float));
    int32_t *p = ab_alloc((size_t)n * sizeof(int32_t));
    float *o = ref ? NULL : ab_alloc((size_t)(n * dv) * sizeof(float));
    double *od = ref ? ab_alloc((size_t)(n * dv) * sizeof(double)) : NULL;
    if (!q || !k || !v || !p || (!o && !od)) {
        st = ab_cmd_error(EX_AB_DATA, "bench: out of memory for n = %lld, d = %lld", (long long)n, (long long)d);
        goto done;
    }
    ab_bench_fill(q, n, d, 11), ab_bench_fill(k, n, d, 12), ab_bench_fill(v, n, dv, 13);
    for (int64_t i = 0; i < n; i++) p[i] = (int32_t)i;
    struct ab_head h = {.n_q = n, .n_k = n, .d = d, .d_v = dv, .q = q, .k = k, .v = v, .q_pos = p,
                        .k_pos = p, .mask = strcmp(mask, "full") ? AB_MASK_CAUSAL : AB_MASK_FULL,
                        .scale = 1.0 / sqrt((double)d)};
    double flops = ab_attn_dense_flops(&h), best = INFINITY;
    int runs = ref ? 1 : (int)reps + 1;
    for (int t = 0; t < runs; t++) {
        double t0 = ab_now();
        rc = ref ? ab_attn_ref(&h, NULL, n, od, NULL) : ab_attn_fast(&h, o, NULL);
        double dt = ab_now() - t0;
        if (rc) {
            st = ab_cmd_fail(rc);
            goto done;
        }
        if ((ref || t > 0) && dt < best) best = dt;
    }
    double gflops = flops / best / 1e9;
    printf("kernel      %s (%s, %s precision)\n", pos[0], mask, ref ? "double" : "single");
    printf("shape       n %lld, d %lld, dv %lld, 1 head\n", (long long)n, (long long)d, (long long)dv);
    printf("threads     %d\n", ab_threads_get());
    printf("flops       %.4g (4d per allowed cell)\n", flops);
    printf("time_s      %.4f (best of %d)\n", best, ref ? 1 : (int)reps);
    printf("GFLOP/s     %.2f\n", gflops);
    printf("isa         %s (BLAS kernel set %s)\n", ab_machine_isa(), ab_machine_blas_core());
    printf("GEMM GFLOP/s %.2f median, %.2f best (sgemm %lld^3, %d runs)\n", gemm.median, gemm.best,
           (long long)gemm_n, gemm.reps);
    printf("ratio       %.3f of the median sgemm (%.3f of the best)\n", gflops / gemm.median,
           gflops / gemm.best);
    st = EX_AB_OK;
done:
    ab_free(q), ab_free(k), ab_free(v), ab_free(p), ab_free(o), ab_free(od);
    return st;
}
