/* capture.h - `attnbench capture` as a library call: a model and a token sequence in, a
 * workload file of its Q, K, V (and hidden states) out (lib/run/capture.c says how). The
 * command line (cmd/capture.c) and the scenario runner fill struct ab_capture_run_opts from the
 * same table, ab_capture_run_decl, and call ab_capture_run. */
#ifndef AB_RUN_CAPTURE_H
#define AB_RUN_CAPTURE_H

#include <stdint.h>

#include "core/decl.h"

struct ab_capture_run_opts {
    uint64_t seed; /* of the copy task */
    char *model, *tokenizer;
    char *text, *prompt, *tokens; /* exactly one input: these, or ... */
    int64_t copy_task;            /* ... R > 0 (0: not given) */
    int64_t generate;             /* tokens generated greedily after the input */
    int64_t offset, length;       /* a window of text / tokens when offset > 0 or length > 0
                                     (0: not given) */
    int no_bos, hidden;
    char *out;
};

extern const struct ab_decl ab_capture_run_decl[];

/* What the capture made, for the caller's summary. */
struct ab_capture_run_out {
    int64_t n_seq, n_generated;
    int64_t n_layer, n_head, n_kv_head, head_dim;
    double t_gen, t_cap; /* seconds of generation and of the capture pass */
};

/* Checks the options, runs the model and writes o->out (a temporary name renamed on success).
 * AB_OK; AB_E_USAGE naming the bad option; AB_E_DATA for a bad model, tokenizer, token ids or
 * a sequence longer than the context (messages start with "capture: "). */
int ab_capture_run(const struct ab_capture_run_opts *o, struct ab_capture_run_out *out);

#endif
