/* machine.h - the machine's own limits, measured in the same run as the kernel they judge
 * (issue 14: benchmarks quote ratios, never absolute speeds from another day): the widest
 * vector ISA the CPU has, its single-precision FMA peak measured by a small vector loop at that
 * ISA, the sgemm rate of the BLAS it runs (min and median over enough repetitions to be stable
 * to a few percent), and its copy bandwidth (STREAM's triad a = b + s c). `attnbench bench`
 * prints them; speed claims never come from tests. */
#ifndef AB_CORE_MACHINE_H
#define AB_CORE_MACHINE_H

#include <stdint.h>

/* The widest single-precision FMA ISA of this CPU: "avx512f", "avx2+fma" or "sse2" (no FMA:
 * the peak loop then counts a multiply and an add). Never NULL. */
const char *ab_machine_isa(void);

/* Lanes of float per vector at that ISA (16, 8 or 4). */
int ab_machine_lanes(void);

/* The FMA peak in GFLOP/s of `threads` threads (<= 0: the OpenMP team), each running
 * independent chains of vector FMAs at ab_machine_isa() for about `seconds` (2 flops per lane
 * per FMA). */
double ab_machine_fma_peak(int threads, double seconds);

/* The median of v[0..n), which is sorted in place (NaN when n < 1): benchmarks quote medians,
 * and so do the report's tables. */
double ab_median(double *v, int64_t n);

/* A rate measured several times: the best and the median of the repetitions. */
struct ab_rate {
    double best, median; /* GFLOP/s or GB/s */
    int reps;
};

/* sgemm C = A B on n x n float matrices through the BLAS (its own threads), repeated after one
 * warm-up until at least `reps` runs and `seconds` of timing are done (at most 200 runs).
 * AB_OK or AB_E_NOMEM. */
int ab_machine_sgemm(int64_t n, int reps, double seconds, struct ab_rate *r);

/* STREAM triad a[i] = b[i] + 3 c[i] over float arrays of `bytes` each (make them larger than
 * the last-level cache: 128 MB by default in bench), OpenMP over the team, best and median of
 * `reps` runs after one warm-up; bandwidth counts 3 x 4 bytes per element (STREAM's rule: two
 * reads and a write, no write-allocate). AB_OK or AB_E_NOMEM. */
int ab_machine_triad(int64_t bytes, int reps, struct ab_rate *r);

/* The BLAS kernel set in use (OpenBLAS's core name, e.g. "Haswell", "Zen", "SkylakeX",
 * "Prescott"), or "unknown". */
const char *ab_machine_blas_core(void);

/* The OPENBLAS_CORETYPE that would use this CPU's FMA width ("SkylakeX" for AVX-512, "Haswell"
 * for AVX2) when the BLAS kernel set in use is one for an older CPU without it (OpenBLAS's
 * DYNAMIC_ARCH fell back, e.g. to "Prescott", on a CPU it did not recognise); NULL when the
 * kernel set fits the CPU or is unknown. */
const char *ab_machine_blas_fix(void);

#endif
