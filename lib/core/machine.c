/* machine.c - the machine's limits (machine.h): ISA, FMA peak, sgemm, triad bandwidth. */
#include "core/machine.h"

#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <strings.h>

#include "core/ab.h"

char *openblas_get_corename(void);

const char *ab_machine_isa(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return "avx512f";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2+fma";
    return "sse2";
}

int ab_machine_lanes(void)
{
    const char *isa = ab_machine_isa();
    return isa[3] == '5' ? 16 : isa[3] == '2' ? 8 : 4;
}

const char *ab_machine_blas_core(void)
{
    const char *c = openblas_get_corename();
    return c && *c ? c : "unknown";
}

const char *ab_machine_blas_fix(void)
{
    /* OpenBLAS kernel sets without FMA (x86-64 generations before Haswell / Piledriver) */
    static const char *const old[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem",
                                       "Atom", "Katmai", "Coppermine", "Northwood", "Banias",
                                       "Opteron", "Opteron_SSE3", "Barcelona", "Bobcat",
                                       "Sandybridge", "Bulldozer", "Nano", NULL};
    int lanes = ab_machine_lanes();
    const char *core = ab_machine_blas_core();
    if (lanes < 8) return NULL;
    for (int i = 0; old[i]; i++)
        if (!strcasecmp(core, old[i])) return lanes == 16 ? "SkylakeX" : "Haswell";
    if (lanes == 16 && !strcasecmp(core, "Haswell")) return "SkylakeX"; /* AVX-512 unused */
    return NULL;
}

/* Each loop runs `iters` rounds of CHAINS independent FMAs (enough chains to cover the FMA
 * latency of two pipes) and returns a value that depends on every chain, so nothing is
 * optimised away. Flops per round: 2 x lanes x CHAINS. */
enum { CHAINS = 12 };

__attribute__((target("avx512f"))) static float loop_avx512(int64_t iters)
{
    __m512 a[CHAINS], b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) a[i] = _mm512_set1_ps(1.0f + (float)i * 1e-3f);
    for (int64_t t = 0; t < iters; t++)
        for (int i = 0; i < CHAINS; i++) a[i] = _mm512_fmadd_ps(a[i], b, c);
    __m512 s = a[0];
    for (int i = 1; i < CHAINS; i++) s = _mm512_add_ps(s, a[i]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float loop_avx2(int64_t iters)
{
    __m256 a[CHAINS], b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) a[i] = _mm256_set1_ps(1.0f + (float)i * 1e-3f);
    for (int64_t t = 0; t < iters; t++)
        for (int i = 0; i < CHAINS; i++) a[i] = _mm256_fmadd_ps(a[i], b, c);
    __m256 s = a[0];
    for (int i = 1; i < CHAINS; i++) s = _mm256_add_ps(s, a[i]);
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}

/* SSE2: no FMA; a multiply and an add per lane count 2 flops, as one FMA would. */
static float loop_sse2(int64_t iters)
{
    __m128 a[CHAINS], b = _mm_set1_ps(0.999999f), c = _mm_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) a[i] = _mm_set1_ps(1.0f + (float)i * 1e-3f);
    for (int64_t t = 0; t < iters; t++)
        for (int i = 0; i < CHAINS; i++) a[i] = _mm_add_ps(_mm_mul_ps(a[i], b), c);
    __m128 s = a[0];
    for (int i = 1; i < CHAINS; i++) s = _mm_add_ps(s, a[i]);
    float out[4];
    _mm_storeu_ps(out, s);
    return out[0] + out[1] + out[2] + out[3];
}

static float fma_loop(int64_t iters)
{
    int lanes = ab_machine_lanes();
    return lanes == 16 ? loop_avx512(iters) : lanes == 8 ? loop_avx2(iters) : loop_sse2(iters);
}

double ab_machine_fma_peak(int threads, double seconds)
{
    if (threads <= 0) threads = ab_threads_get();
    /* calibrate the round count on one thread: about `seconds` per run */
    int64_t iters = 1 << 16;
    double dt = 0;
    volatile float sink = 0;
    for (;;) {
        double t0 = ab_now();
        sink += fma_loop(iters);
        dt = ab_now() - t0;
        if (dt > seconds / 8 || iters > ((int64_t)1 << 40)) break;
        iters *= 2;
    }
    iters = (int64_t)((double)iters * seconds / fmax(dt, 1e-6)) + 1;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = ab_now();
#pragma omp parallel num_threads(threads)
        {
            float v = fma_loop(iters);
#pragma omp atomic
            sink += v;
        }
        double el = ab_now() - t0;
        double gf = 2.0 * ab_machine_lanes() * CHAINS * (double)iters * threads / el / 1e9;
        if (gf > best) best = gf;
    }
    (void)sink;
    return best;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double ab_median(double *v, int64_t n)
{
    if (n < 1) return NAN;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* best and median of v[0..n) (sorted in place) */
static void rate_of(double *v, int n, struct ab_rate *r)
{
    r->median = ab_median(v, n);
    r->best = v[n - 1];
    r->reps = n;
}

int ab_machine_sgemm(int64_t n, int reps, double seconds, struct ab_rate *r)
{
    enum { MAX_RUNS = 200 };
    size_t bytes = ab_size_mul((size_t)(n * n), sizeof(float));
    float *a = ab_alloc(bytes), *b = ab_alloc(bytes), *c = ab_alloc(bytes);
    double *rate = malloc(sizeof(double) * MAX_RUNS);
    if (!a || !b || !c || !rate) {
        ab_free(a), ab_free(b), ab_free(c), free(rate);
        return ab_fail(AB_E_NOMEM, "sgemm reference: out of memory for n = %lld", (long long)n);
    }
    for (int64_t i = 0; i < n * n; i++)
        a[i] = (float)((i * 37) % 101) / 101.0f - 0.5f, b[i] = (float)((i * 53) % 97) / 97.0f - 0.5f;
    int runs = 0;
    double total = 0, warm = 0, flops = 2.0 * (double)n * (double)n * (double)n;
    /* warm-up of a quarter of the timed budget (clocks ramp up, pages fault in), then runs */
    while (runs < MAX_RUNS && (runs < reps || total < seconds)) {
        double t0 = ab_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0f, a,
                    (int)n, b, (int)n, 0.0f, c, (int)n);
        double dt = ab_now() - t0;
        if (warm < seconds / 4) {
            warm += dt;
            continue;
        }
        rate[runs++] = flops / dt / 1e9;
        total += dt;
    }
    rate_of(rate, runs, r);
    ab_free(a), ab_free(b), ab_free(c), free(rate);
    return AB_OK;
}

int ab_machine_triad(int64_t bytes, int reps, struct ab_rate *r)
{
    int64_t n = bytes / (int64_t)sizeof(float);
    float *a = ab_alloc((size_t)n * sizeof(float)), *b = ab_alloc((size_t)n * sizeof(float));
    float *c = ab_alloc((size_t)n * sizeof(float));
    double *rate = malloc(sizeof(double) * (size_t)(reps > 0 ? reps : 1));
    if (!a || !b || !c || !rate || reps < 1) {
        ab_free(a), ab_free(b), ab_free(c), free(rate);
        return ab_fail(AB_E_NOMEM, "triad: out of memory for 3 x %lld bytes", (long long)bytes);
    }
    /* first touch by the threads that will stream them */
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) a[i] = 0, b[i] = 1, c[i] = 2;
    for (int t = -1; t < reps; t++) {
        double t0 = ab_now();
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) a[i] = b[i] + 3.0f * c[i];
        double dt = ab_now() - t0;
        if (t >= 0) rate[t] = 3.0 * (double)n * sizeof(float) / dt / 1e9;
    }
    rate_of(rate, reps, r);
    ab_free(a), ab_free(b), ab_free(c), free(rate);
    return AB_OK;
}
