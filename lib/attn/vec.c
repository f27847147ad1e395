/* vec.c - the portable and the AVX2 + FMA versions of vec.h's loops, and the choice between them.
 *
 * e^x (x <= 0) is computed the same way in both (expf.h): x = n ln2 + r, |r| <= ln2 / 2, e^r by
 * its Taylor polynomial to r^6, 2^n written into the exponent field, arguments below -87 clamped
 * there; -inf (a masked cell) gives exactly 0. */
#include <math.h>
#include <string.h>

#include "attn/expf.h"
#include "attn/vec.h"

/* ------------------------------------------------------------------ portable */

static float max_c(const float *x, int64_t n, float m)
{
    for (int64_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
    return m;
}

static float exp_sum_c(const float *s, float *p, int64_t n, float mx)
{
    /* eight partial sums: a fixed order the compiler may keep in vector lanes */
    float part[8] = {0}, sum = 0;
    int64_t n8 = n / 8 * 8;
    for (int64_t j = 0; j < n8; j += 8)
        for (int t = 0; t < 8; t++)
            part[t] += p[j + t] = s[j + t] == -INFINITY ? 0.0f : ab_expf_nonpos(s[j + t] - mx);
    for (int64_t j = n8; j < n; j++)
        part[0] += p[j] = s[j] == -INFINITY ? 0.0f : ab_expf_nonpos(s[j] - mx);
    for (int t = 0; t < 8; t++) sum += part[t];
    return sum;
}

static float exp_move_c(float *s, float *p, int64_t n, float mx)
{
    float sum = exp_sum_c(s, p, n, mx);
    memset(s, 0, sizeof(float) * (size_t)n);
    return sum;
}

static void scale_c(float *x, int64_t n, float f)
{
    for (int64_t j = 0; j < n; j++) x[j] *= f;
}

static float dot_c(const float *a, const float *b, int64_t n)
{
    float part[8] = {0}, s = 0;
    int64_t n8 = n / 8 * 8;
    for (int64_t c = 0; c < n8; c += 8)
        for (int t = 0; t < 8; t++) part[t] += a[c + t] * b[c + t];
    for (int64_t c = n8; c < n; c++) part[0] += a[c] * b[c];
    for (int t = 0; t < 8; t++) s += part[t];
    return s;
}

static void axpby_c(float *y, float f, float w, const float *x, int64_t n)
{
    for (int64_t c = 0; c < n; c++) y[c] = y[c] * f + w * x[c];
}

static const struct ab_vec vec_portable = {"portable", max_c, exp_sum_c, exp_move_c,
                                           scale_c,    dot_c, axpby_c};

/* ------------------------------------------------------------------ AVX2 + FMA */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static inline float hmax8(__m256 v)
{
    __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    x = _mm_max_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

AVX2 static inline float hsum8(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

/* e^x on eight lanes, x <= 0 (expf.h's method with fused multiply-adds) */
AVX2 static inline __m256 exp8(__m256 x)
{
    const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
    const __m256 ln2_hi = _mm256_set1_ps(0.693359375f), ln2_lo = _mm256_set1_ps(-2.12194440e-4f);
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    __m256 n =
        _mm256_round_ps(_mm256_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, ln2_hi, x);
    r = _mm256_fnmadd_ps(n, ln2_lo, r);
    __m256 p = _mm256_set1_ps(1.0f / 720); /* Horner: sum_{t <= 6} r^t / t! */
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

AVX2 static float max_avx2(const float *x, int64_t n, float m)
{
    __m256 a = _mm256_set1_ps(m), b = a, c = a, e = a;
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) { /* four chains: vmaxps latency, not throughput, would bind */
        a = _mm256_max_ps(a, _mm256_loadu_ps(x + j));
        b = _mm256_max_ps(b, _mm256_loadu_ps(x + j + 8));
        c = _mm256_max_ps(c, _mm256_loadu_ps(x + j + 16));
        e = _mm256_max_ps(e, _mm256_loadu_ps(x + j + 24));
    }
    for (; j + 8 <= n; j += 8) a = _mm256_max_ps(a, _mm256_loadu_ps(x + j));
    m = hmax8(_mm256_max_ps(_mm256_max_ps(a, b), _mm256_max_ps(c, e)));
    for (; j < n; j++) m = x[j] > m ? x[j] : m;
    return m;
}

/* p = exp(s - mx) (0 where s = -inf) and its sum; clear: s = 0 behind the read (exp_move).
 * Inlined into both callers with clear a constant. */
AVX2 static inline float exp_pass_avx2(float *s, float *p, int64_t n, float mx, int clear)
{
    const __m256 ninf = _mm256_set1_ps(-INFINITY), vmx = _mm256_set1_ps(mx), zero = _mm256_setzero_ps();
    __m256 a = zero, b = zero;
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        __m256 x0 = _mm256_loadu_ps(s + j), x1 = _mm256_loadu_ps(s + j + 8);
        __m256 e0 = _mm256_andnot_ps(_mm256_cmp_ps(x0, ninf, _CMP_EQ_OQ), exp8(_mm256_sub_ps(x0, vmx)));
        __m256 e1 = _mm256_andnot_ps(_mm256_cmp_ps(x1, ninf, _CMP_EQ_OQ), exp8(_mm256_sub_ps(x1, vmx)));
        _mm256_storeu_ps(p + j, e0);
        _mm256_storeu_ps(p + j + 8, e1);
        if (clear) {
            _mm256_storeu_ps(s + j, zero);
            _mm256_storeu_ps(s + j + 8, zero);
        }
        a = _mm256_add_ps(a, e0);
        b = _mm256_add_ps(b, e1);
    }
    float sum = hsum8(_mm256_add_ps(a, b));
    for (; j < n; j++) {
        sum += p[j] = s[j] == -INFINITY ? 0.0f : ab_expf_nonpos(s[j] - mx);
        if (clear) s[j] = 0;
    }
    return sum;
}

AVX2 static float exp_sum_avx2(const float *s, float *p, int64_t n, float mx)
{
    return exp_pass_avx2((float *)s, p, n, mx, 0); /* clear = 0: s is only read */
}

AVX2 static float exp_move_avx2(float *s, float *p, int64_t n, float mx)
{
    return exp_pass_avx2(s, p, n, mx, 1);
}

AVX2 static void scale_avx2(float *x, int64_t n, float f)
{
    __m256 vf = _mm256_set1_ps(f);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(x + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), vf));
    for (; j < n; j++) x[j] *= f;
}

AVX2 static float dot_avx2(const float *a, const float *b, int64_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0;
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 8), _mm256_loadu_ps(b + j + 8), s1);
    }
    for (; j + 8 <= n; j += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j), s0);
    float s = hsum8(_mm256_add_ps(s0, s1));
    for (; j < n; j++) s += a[j] * b[j];
    return s;
}

AVX2 static void axpby_avx2(float *y, float f, float w, const float *x, int64_t n)
{
    __m256 vf = _mm256_set1_ps(f), vw = _mm256_set1_ps(w);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(y + j, _mm256_fmadd_ps(_mm256_loadu_ps(y + j), vf,
                                                _mm256_mul_ps(vw, _mm256_loadu_ps(x + j))));
    for (; j < n; j++) y[j] = y[j] * f + w * x[j];
}

static const struct ab_vec vec_avx2 = {"avx2+fma", max_avx2, exp_sum_avx2, exp_move_avx2,
                                       scale_avx2, dot_avx2, axpby_avx2};

static int have_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#else
static int have_avx2(void)
{
    return 0;
}
#endif

/* ------------------------------------------------------------------ choice */

const struct ab_vec *ab_vec_named(const char *isa)
{
    if (!strcmp(isa, "portable")) return &vec_portable;
#if defined(__x86_64__) && defined(__GNUC__)
    if (!strcmp(isa, "avx2+fma") && have_avx2()) return &vec_avx2;
#endif
    return NULL;
}

const struct ab_vec *ab_vec(void)
{
    static const struct ab_vec *best; /* benign race: every thread computes the same pointer */
    const struct ab_vec *v = __atomic_load_n(&best, __ATOMIC_ACQUIRE);
    if (!v) {
        v = ab_vec_named("avx2+fma");
        if (!v) v = &vec_portable;
        __atomic_store_n(&best, v, __ATOMIC_RELEASE);
    }
    return v;
}
