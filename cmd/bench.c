/* bench.c - `attnbench bench`: kernel throughput measured against the machine's own peak,
 * measured in the same run (single-precision GEMM through OpenBLAS), so ratios are comparable
 * across noisy shared machines. Speed claims in this project come from here, never from tests. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "core/ab.h"
#include "core/rng.h"
#include "opts.h"

static const char *usage_text =
    "attnbench bench dense|reference [--n N] [--d D] [--dv DV] [--mask causal|full] [--reps R]\n"
    "                [--gemm-n N] [--threads T]";

/* Best-of-reps GFLOP/s of C = A B with square n x n float matrices. */
static double gemm_gflops(int64_t n, int reps)
{
    float *a = ab_alloc((size_t)(n * n) * sizeof(float)), *b = ab_alloc((size_t)(n * n) * sizeof(float));
    float *c = ab_alloc((size_t)(n * n) * sizeof(float));
    if (!a || !b || !c) {
        ab_free(a), ab_free(b), ab_free(c);
        return NAN;
    }
    struct ab_rng r;
    ab_rng_init(&r, 7, 1);
    for (int64_t i = 0; i < n * n; i++) a[i] = (float)ab_rng_normal(&r), b[i] = (float)ab_rng_normal(&r);
    double best = INFINITY;
    for (int t = 0; t < reps + 1; t++) { /* the first run warms up */
        double t0 = ab_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0f, a, (int)n,
                    b, (int)n, 0.0f, c, (int)n);
        double dt = ab_now() - t0;
        if (t > 0 && dt < best) best = dt;
    }
    ab_free(a), ab_free(b), ab_free(c);
    return 2.0 * (double)n * (double)n * (double)n / best / 1e9;
}

int cmd_bench(int argc, char **argv)
{
    int64_t n = 8192, d = 128, dv = 0, reps = 3, gemm_n = 2048;
    const char *mask = "causal";
    const struct ab_opt opts[] = {
        {"n", AB_OPT_INT, &n, "N", "sequence length (default 8192)"},
        {"d", AB_OPT_INT, &d, "D", "head dimension (default 128)"},
        {"dv", AB_OPT_INT, &dv, "DV", "value dimension (default d)"},
        {"mask", AB_OPT_STRING, &mask, "M", "causal (prefill, default) or full"},
        {"reps", AB_OPT_INT, &reps, "R", "timed repetitions, best kept (default 3)"},
        {"gemm-n", AB_OPT_INT, &gemm_n, "N", "size of the reference square GEMM (default 2048)"},
        {NULL, AB_OPT_END, NULL, NULL, NULL},
    };
    char *pos[1];
    int n_pos, st = ab_opts_parse("bench", usage_text, opts, argc, argv, pos, 1, &n_pos);
    if (st >= 0) return st;
    if (n_pos != 1 || (strcmp(pos[0], "dense") && strcmp(pos[0], "reference")))
        return ab_cmd_error(EX_AB_USAGE, "bench: name a kernel: dense or reference (see 'attnbench bench --help')");
    int ref = !strcmp(pos[0], "reference");
    if (dv == 0) dv = d;
    if (n <= 0 || d <= 0 || dv <= 0 || reps <= 0 || gemm_n <= 0)
        return ab_cmd_error(EX_AB_USAGE, "bench: --n, --d, --dv, --reps and --gemm-n must be positive");
    if (strcmp(mask, "causal") && strcmp(mask, "full"))
        return ab_cmd_error(EX_AB_USAGE, "bench: --mask must be causal or full, got '%s'", mask);
    int rc = ab_check_fits("the benchmark head", 4.0 * (double)n * (double)(2 * d + 2 * dv) +
                                                     (ref ? 8.0 * (double)n * (double)dv : 0));
    if (rc) return ab_cmd_fail(rc);

    /* the machine's rate first, so its buffers are gone before the head's are allocated */
    double gemm = gemm_gflops(gemm_n, (int)reps);

    /* one head of seeded Gaussian inputs, scaled so logits have unit variance */
    float *q = ab_alloc((size_t)(n * d) * sizeof(float)), *k = ab_alloc((size_t)(n * d) * sizeof(float));
    float *v = ab_alloc((size_t)(n * dv) * sizeof(float));
    int32_t *p = ab_alloc((size_t)n * sizeof(int32_t));
    float *o = ref ? NULL : ab_alloc((size_t)(n * dv) * sizeof(float));
    double *od = ref ? ab_alloc((size_t)(n * dv) * sizeof(double)) : NULL;
    if (!q || !k || !v || !p || (!o && !od)) {
        st = ab_cmd_error(EX_AB_SOFTWARE, "bench: out of memory for n = %lld, d = %lld", (long long)n, (long long)d);
        goto done;
    }
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++) {
        struct ab_rng r;
        ab_rng_init(&r, ab_common.seed, ab_stream(11, (uint64_t)i, 0, 0));
        for (int64_t c = 0; c < d; c++) q[i * d + c] = (float)ab_rng_normal(&r), k[i * d + c] = (float)ab_rng_normal(&r);
        for (int64_t c = 0; c < dv; c++) v[i * dv + c] = (float)ab_rng_normal(&r);
        p[i] = (int32_t)i;
    }
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
    printf("GEMM GFLOP/s %.2f (sgemm %lld^3, best of %lld)\n", gemm, (long long)gemm_n, (long long)reps);
    printf("ratio       %.3f\n", gflops / gemm);
    st = EX_AB_OK;
done:
    ab_free(q), ab_free(k), ab_free(v), ab_free(p), ab_free(o), ab_free(od);
    return st;
}
