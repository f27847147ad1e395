/* e2e.h - end-to-end evaluation (`attnbench eval-model`, architecture.md): a registry method
 * replaces attention inside a real model's forward pass, in every layer (or on chosen heads),
 * and the model's next-token predictions are scored: perplexity on a text, accuracy on a copy
 * task, next to dense on the same input. ab_e2e_eval and ab_e2e_eval_windows make one pass;
 * ab_eval_model (eval_model.c) is the command's engine over methods x budgets x head sets.
 *
 * Protocol. The model runs the whole input in one batched pass. In each layer, once Q, K, V of
 * every row are known, every replaced head is a problem (lib/methods/method.h) whose rows are
 * the phase's queries: prefill, every row 0..n-1; decode, the last m rows (the prefix is
 * computed exactly, as a model that prefilled it densely would). The method's knob is fitted per
 * head to the target FLOP ratio by the same solver as `run` (ab_method_apply); a head where not
 * even the smallest knob fits runs at that smallest knob and counts as infeasible, so the
 * method is never silently replaced by dense (the caller reports no score for a pass with an
 * infeasible head: eval-model's rows then carry a reason instead of a perplexity). Heads not replaced use exact attention. Errors
 * compound across layers: a later layer's method sees inputs its predecessors changed, which is
 * what the end-to-end number measures; rel_l2 is measured on each head's own inputs. */
#ifndef AB_EVAL_E2E_H
#define AB_EVAL_E2E_H

#include <stdint.h>

#include "eval/eval.h"
#include "model/model.h"

struct ab_e2e_opts {
    const struct ab_method *method; /* NULL: exact attention everywhere (the dense baseline) */
    double target;                  /* per-head target in apply.kind's measure (a FLOP ratio,
                                       tokens per decode step, a bytes ratio); NaN with a
                                       direct knob */
    struct ab_apply_opts apply;     /* direct knob, and the kind of target */
    int phase;                      /* AB_PHASE_PREFILL or AB_PHASE_DECODE */
    int64_t decode_m;               /* decode: the last m rows are the method's queries */
    int64_t horizon;                /* decode horizon G (0: AB_DECODE_HORIZON): one-off work is
                                       amortised over G generated tokens */
    const int8_t *replace;          /* (n_layer * n_head): 1 where the method replaces the head;
                                       NULL: every head */
    uint64_t seed;
};

/* Scoring: position t predicts token t + 1. Prefill scores t in [0, n - 1); decode only the
 * method's rows, t in [n - m, n - 1). copy_from > 0 marks a copy task whose second copy starts
 * at row copy_from: copy_acc is the accuracy over the scored t in [copy_from, n - 1) (the
 * first token of the second copy is not predictable from the first copy's position; every
 * later one is). */
struct ab_e2e_result {
    int64_t n_scored;
    double nll, ppl, acc, copy_acc; /* copy_acc NaN without a copy task */
    double flops_method, flops_dense, bytes_kv; /* summed over replaced heads, in the phase;
                                                   flops_method amortised as ab_ledger_ratio */
    int64_t n_replaced, n_feasible;
    char reason[96]; /* why the first infeasible head (by layer, head; window) missed the target
                        (ab_applied.reason), "" when none did */
    double rel_l2; /* mean over replaced heads */
    double tokens_step, bytes_ratio; /* means over replaced heads of ab_ledger_tokens_step
                                        (NaN in prefill) and ab_ledger_bytes_ratio */
    double time_s;
    int64_t n_windows; /* ab_e2e_eval_windows: forward passes made (ab_e2e_eval: 0) */
};

/* Runs tokens[0 .. n) through m with o's method and scores it as above. AB_OK, AB_E_USAGE
 * (decode m outside [1, n - 1], a method that does not support the phase or the causal mask),
 * or an error of the model or the method. */
int ab_e2e_eval(const struct ab_model *m, const int32_t *tokens, int64_t n, int64_t copy_from,
                const struct ab_e2e_opts *o, struct ab_e2e_result *r);

/* Sliding-window evaluation of a text longer than the model's context (the standard protocol
 * of perplexity over long text): windows of `window` tokens (<= seq_len) ending at
 * min(n, window + k stride), k = 0, 1, ..., each a fresh forward pass over its tokens at
 * positions 0 .. window-1: the slice as it is when bos < 0 (the convention of Hugging Face's
 * perplexity guide), else with token bos in place of its first token in every window after
 * the first (for models trained with BOS at position 0, whose sink is that token: the window
 * keeps its sink; the replaced token was context only). Window 0 scores its every target;
 * window k > 0 only the targets after the previous window's end, so each target of the text
 * is scored once, every one after the first window with at least window - stride tokens of
 * context (one fewer with bos). In decode each window's last m rows are the method's and only
 * the new targets among them are scored (with stride <= m - 1 that is every target after the
 * first window's last m). Totals: FLOPs summed over windows, bytes_kv their largest,
 * n_replaced the heads replaced per window, n_feasible the fewest that met the target in any
 * window, rel_l2, tokens_step and bytes_ratio the means over windows. 2 <= window <= seq_len, 1 <= stride <= window - 1
 * (window - 2 with bos: every scored row has a token of the text before it), decode m below
 * the window (AB_E_USAGE otherwise). With n <= window it is one pass, as ab_e2e_eval
 * (copy_from not used: texts only). */
int ab_e2e_eval_windows(const struct ab_model *m, const int32_t *tokens, int64_t n,
                        int64_t window, int64_t stride, int32_t bos, const struct ab_e2e_opts *o,
                        struct ab_e2e_result *r);

/* The number of windows of ab_e2e_eval_windows, and window k's extent [*begin, *end) and its
 * first scored row (relative to *begin). */
int64_t ab_e2e_n_windows(int64_t n, int64_t window, int64_t stride);
void ab_e2e_windows(int64_t n, int64_t window, int64_t stride, int64_t k, int64_t *begin,
                    int64_t *end, int64_t *score_from);

/* A column of a /heads table for --heads-top / --heads-bottom, one value per row of the file's
 * first workload: the rows' layer and head and the column's value (NaN: that head has no
 * score). Three malloc'd arrays; ab_eval_model frees them. */
struct ab_head_scores {
    int64_t n;
    int64_t *layer, *head; /* (n) */
    double *score;         /* (n) */
};

/* `attnbench eval-model`'s options, typed (the command checks the combinations first: an input,
 * at most one way of choosing heads, the methods against the phases, the knob against the
 * methods, decode_m >= 1 and horizon >= decode_m). Strings are not copied. */
struct ab_eval_model_opts {
    const char *model;     /* llama2.c checkpoint or GGUF file */
    const char *tokenizer; /* NULL: the GGUF's own, or tok<vocab>.bin / tokenizer.bin beside it */
    const char *text;      /* a text to score (perplexity, next-token accuracy), or NULL */
    int64_t copy_task;     /* R > 0: also score BOS + R seeded random tokens + the same R again */
    const struct ab_method *const *methods; /* (n_methods) causal rows with one of the phases */
    int n_methods;
    const double *targets; /* (n_targets) per-head target FLOP ratios in (0, 1] */
    int n_targets;
    const double *kv_tokens; /* (n_kv_tokens) decode budgets: tokens read per step, >= 1 */
    int n_kv_tokens;
    const double *kv_bytes;  /* (n_kv_bytes) decode budgets: bytes ratios in (0, 1] */
    int n_kv_bytes;          /* (tokens and bytes budgets give no prefill passes, as in run) */
    struct ab_apply_opts apply; /* a direct knob for every method instead of the targets */
    unsigned phases;            /* AB_PHASE_* bits */
    int64_t decode_m;           /* decode: rows served by the method at the end of the input */
    int64_t horizon;            /* decode horizon G >= decode_m */
    int64_t stride;             /* texts longer than the context: windows every stride tokens
                                   (0: half the context) */
    int window_bos;             /* windows after the first start with BOS */
    /* the heads replaced: every head, or one of these */
    const char *heads;          /* "L:H,..." */
    const char *heads_top, *heads_bottom, *heads_random; /* "K,..." lists: a head set per K */
    const char *heads_score, *heads_file; /* top / bottom: the ranking column and its file */
    /* top / bottom: reads column col of file's /heads table (the file is read per K, when the
     * head sets are built: lib/eval reads no results files); AB_OK or the error to stop with */
    int (*heads_read)(void *user, const char *file, const char *col, struct ab_head_scores *out);
    int heads_select;        /* ACT: keep the heads where the method alone lowers the NLL of ... */
    const char *calibrate;   /* ... this text, or ... */
    int64_t calibrate_copy;  /* ... a copy task of R tokens (its own seed stream) */
    double select_min;       /* ... by more than this (nats/token) */
    uint64_t seed;
    /* what the caller hears, on the calling thread; each may be NULL */
    int (*begin)(void *user, int64_t total);    /* every check passed, total model passes to
                                                   come (a windowed text: one per window); a
                                                   nonzero return stops with that status */
    void (*progress)(void *user, int64_t done, int64_t total); /* passes done so far */
    void (*row)(void *user, const struct ab_model_row *row);  /* a row was added to the table */
    void (*note)(void *user, const char *msg);  /* for people: how a long text is windowed */
    void *user;
};

/* The engine of `attnbench eval-model`: loads o->model and its inputs (the text, the copy task,
 * the calibration input), checks them against the model (stride, decode_m, head choice), then
 * per phase runs the dense pass of each input and, per (method, target, head set), one pass per
 * input, appending a /model row to res (the caller initialises it; its provenance is the
 * caller's) with res->notes, stride, window_bos and decode_horizon set. A pass where a
 * replaced head cannot reach the target carries no score and a reason. BLAS is held serial
 * throughout. AB_OK, or the first error (with its message; res then holds the rows made so
 * far): AB_E_USAGE for options the model or the inputs refuse, an error of the model, the
 * inputs, heads_read, begin or a method. */
int ab_eval_model(const struct ab_eval_model_opts *o, struct ab_results *res);

#endif
