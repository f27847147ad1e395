/* ingest.h - `attnbench ingest` as a library call: the outputs of a method computed elsewhere
 * (PyTorch, JAX, a GPU kernel) for a workload enter the results table (/cells) with the metrics
 * of a built-in row, computed by the same code (eval.h, ab_sweep_external), and the row is
 * marked external with its declared provenance (README, "Outputs from any framework").
 *
 * OUTPUTS is one container `import` reads (.npz, .safetensors, HDF5; not a lone .npy) holding
 * arrays by name (B budgets, L layers, H query heads of the workload, R rows of the phase: n in
 * prefill, the last m = --decode-queries in decode, d_v and n of the workload):
 *   o         (B, L, H, R, d_v)  float32 / float16 / bfloat16 / float64: the outputs (required)
 *   flops     (B, L, H)          the declared FLOPs of the whole phase of each head (required;
 *                                divided by the dense FLOPs of the phase, as `run` does)
 *   bytes_kv  (B, L, H)          K and V bytes read (optional; NaN without)
 *   keep      (B, L, H, R, n)    bool / uint8 kept masks (optional: then recall, topk_recall,
 *                                kl, density and sparsity are computed as for selecting rows)
 *   budget    (B)                the target ratio each budget aimed at (optional; without it a
 *                                cell's target_ratio is its achieved ratio)
 *   knob      (B)                the knob of each budget (optional; NaN without)
 * Everything is checked before anything is written: ranks and shapes against the workload,
 * NaN / infinities, negative costs, mask values other than 0 / 1, kept keys outside the causal
 * mask, budgets outside (0, 1]. The method name must be [a-z0-9-]+ and not a registry row. */
#ifndef AB_RUN_INGEST_H
#define AB_RUN_INGEST_H

#include <stdint.h>

#include "core/decl.h"
#include "eval/results.h"

struct ab_ingest_run_opts {
    const char *workload;   /* positional: the workload the outputs were computed on */
    const char *outputs;    /* positional: the container of arrays above */
    uint64_t seed;          /* the common --seed: the prefill row sample, as `run`'s */
    char *name;             /* the cells' method column (required) */
    int phase;              /* 0 auto (from R), 1 prefill, 2 decode */
    char *family;           /* a registry family name, or NULL: kv in decode, dynamic in
                               prefill */
    char *provenance;       /* free text: where the outputs come from, or NULL */
    char *knob_name;        /* the knob column's name when `knob` is given, or NULL */
    int64_t decode_queries; /* m, as `run` */
    int64_t rows;           /* prefill rows evaluated, as `run` */
    int64_t decode_horizon; /* G, as `run` (the ratio has no one-off work: recorded only) */
    int64_t topk;           /* k of topk_recall */
    int bf16;               /* --dtype: 2-byte void .npy members are bfloat16 */
    char *out;              /* the results file, or NULL: OUTPUTS' stem + "-results.h5" */
};

extern const struct ab_decl ab_ingest_run_decl[];

/* What ab_ingest_run did, for the caller to print. */
struct ab_ingest_out {
    struct ab_results res;  /* the cells and summary written (free with ab_ingest_out_free) */
    char res_path[4096];    /* the results file written */
    char csv_cells[4096], csv_summary[4096];
    int phase;              /* AB_PHASE_* ingested */
    int64_t n_budget;       /* B */
    int has_keep;           /* masks were given */
    int64_t infeasible;     /* cells whose declared ratio is above their budget */
    char sha256[65];        /* of OUTPUTS */
};

/* Checks the options (AB_E_USAGE naming the option: a missing or malformed --name, a name of
 * the registry, an unknown family, a phase that does not match R), reads the workload and
 * every array of OUTPUTS and checks them against it (AB_E_DATA with one line naming the file
 * and the problem; AB_E_NOFILE for a missing file), then measures the cells
 * (ab_sweep_external), summarises them and writes the results file with its root attribute
 * `external` ({"external": {NAME: {"source", "sha256", "provenance"}}}), its options and
 * command line, and its two CSV tables beside it (temporary names renamed on success: a
 * failure leaves nothing behind). The inputs are only read. *out is filled as far as it got;
 * free it with ab_ingest_out_free in every case. */
int ab_ingest_run(const struct ab_ingest_run_opts *o, struct ab_ingest_out *out);

void ab_ingest_out_free(struct ab_ingest_out *out);

#endif
