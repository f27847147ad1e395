/* workload.h - one sequence's attention inputs for every layer and head, and what is known about
 * them (workloads.md). This is the in-memory form of the workload file; lib/io/h5_workload.c
 * reads and writes it, lib/gen/ and lib/model/ produce it.
 *
 * Ownership: a workload owns every buffer it points to; ab_workload_free releases them all.
 * Numeric arrays (q, k, v, positions, tokens, hidden and the task arrays) come from ab_alloc;
 * strings (text, source, description, created_utc, version, each profile name) and the profile
 * pointer array come from malloc / strdup. */
#ifndef AB_CORE_WORKLOAD_H
#define AB_CORE_WORKLOAD_H

#include <stdint.h>

#include "core/head.h"

#define AB_WORKLOAD_SCHEMA "attnbench/workload/1"

enum ab_task_kind { AB_TASK_RETRIEVE = 0, AB_TASK_MULTI_RETRIEVE = 1, AB_TASK_AGGREGATE = 2 };

/* Task queries with ground truth (workloads.md, "Tasks with ground truth"). Task t asks query
 * row row[t]; its keys are key_pos[key_off[t] .. key_off[t+1]) (retrieve: the needle;
 * multi-retrieve: the asked needle first, then the other needles and distractors; aggregate:
 * the set S). answer[t] is the planted codeword index (-1 for aggregate). Tasks are planted in
 * the kv heads with planted[layer * n_kv_head + kv] != 0. */
struct ab_tasks {
    int64_t n;              /* number of task queries */
    int32_t *kind;          /* (n) enum ab_task_kind */
    int32_t *row;           /* (n) query row */
    int32_t *answer;        /* (n) codeword index or -1 */
    int64_t *key_off;       /* (n + 1) offsets into key_pos */
    int32_t *key_pos;       /* (key_off[n]) key rows */
    int64_t n_code;         /* P, codebook size */
    float *codebook;        /* (n_code, d_v) unit vectors */
    int8_t *planted;        /* (n_layer, n_kv_head) */
    double agg_threshold;   /* cosine needed to solve an aggregate task (0.9) */
};

struct ab_workload {
    int64_t n_layer, n_head, n_kv_head, n_seq, d, d_v;
    float *q;            /* (n_layer, n_head, n_seq, d), after RoPE when rope_applied */
    float *k;            /* (n_layer, n_kv_head, n_seq, d) */
    float *v;            /* (n_layer, n_kv_head, n_seq, d_v) */
    int32_t *positions;  /* (n_seq) */
    int32_t *tokens;     /* (n_seq) or NULL (real text only) */
    char *text;          /* decoded text or NULL */
    int64_t d_model;     /* 0 when hidden is NULL */
    float *hidden;       /* (n_layer + 1, n_seq, d_model) or NULL */
    char **profile;      /* (n_layer * n_kv_head) profile names, or NULL (synthetic only) */
    struct ab_tasks tasks; /* tasks.n == 0: none */

    /* root attributes */
    char *source;        /* "synthetic" | "capture" | "import" */
    char *description;   /* generator or model description */
    char *created_utc;   /* ISO 8601, or NULL */
    char *version;       /* attnbench version that wrote it, or NULL */
    uint64_t seed;
    int causal;
    double scale;        /* logit scale, default 1/sqrt(d) */
    int rope_applied;
    double rope_theta;
};

/* Allocates the q/k/v/positions buffers for the given shape (zeroed; positions 0..n_seq-1)
 * after validating it: sizes > 0, n_head a multiple of n_kv_head, and the total size fits in
 * memory (AB_E_TOOBIG otherwise). Other fields are zero / NULL. */
int ab_workload_alloc(struct ab_workload *w, int64_t n_layer, int64_t n_head, int64_t n_kv_head,
                      int64_t n_seq, int64_t d, int64_t d_v);
void ab_workload_free(struct ab_workload *w);

/* kv head serving query head h (grouped-query mapping). */
int64_t ab_workload_kv_of(const struct ab_workload *w, int64_t head);

/* Pointers into the workload's buffers. */
float *ab_workload_q(const struct ab_workload *w, int64_t layer, int64_t head);  /* (n_seq, d) */
float *ab_workload_k(const struct ab_workload *w, int64_t layer, int64_t kv);    /* (n_seq, d) */
float *ab_workload_v(const struct ab_workload *w, int64_t layer, int64_t kv);    /* (n_seq, d_v) */

/* The head instance of (layer, query head): all rows, the workload's mask and scale, no RoPE
 * (stored Q and K are already rotated). */
void ab_workload_head(const struct ab_workload *w, int64_t layer, int64_t head,
                      struct ab_head *out);

/* The largest logit magnitude a workload may reach (scale x largest |q| x largest |k|): beyond
 * it single precision overflows and metrics turn NaN. Real and synthetic heads stay below 1e4. */
#define AB_LOGIT_MAX 1e30

/* Checks internal consistency (shapes, positions, finite values, logits within AB_LOGIT_MAX,
 * task rows and keys in range). AB_E_DATA with a message. */
int ab_workload_validate(const struct ab_workload *w);

/* Allocates the task arrays for n tasks with n_keys keys in all, P codewords (zeroed). */
int ab_tasks_alloc(struct ab_tasks *t, int64_t n, int64_t n_keys, int64_t n_code, int64_t d_v,
                   int64_t n_layer, int64_t n_kv_head);
void ab_tasks_free(struct ab_tasks *t);

const char *ab_task_kind_name(int kind); /* "retrieve", ... */
int ab_task_kind_parse(const char *name); /* -1 if unknown */

#endif
