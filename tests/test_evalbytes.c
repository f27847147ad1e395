/* test_evalbytes.c - tokens and bytes budgets end to end: `attnbench eval-model --kv-budget`
 * and `--bytes-budget` on the real debdoc model ($AB_SHARED/models/debdoc, a 14.2 M-parameter
 * Llama, 8 layers x 6 heads) fit every replaced head with run's solver (ab_method_apply with the
 * budget's kind) and record the kind, the token target and the means over heads of the
 * achieved tokens per step and bytes ratio in the /model table:
 * - int8 at a bytes budget of 1/2 meets it on all 48 heads (its fixed bytes ratio is about
 *   0.28) and keeps the perplexity of the held-out text within 1% of dense;
 * - snapkv at a tokens budget of 64 reads at most 64 tokens per decode step (the recorded
 *   mean, and every head met it);
 * - a bad value (--bytes-budget 0) exits 64 with one line and writes nothing.
 * The model is data from ../shared: a missing AB_SHARED or model fails the suite. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "helpers.h"
#include "io/results_io.h"

#define MODEL     t_debdoc("debdoc-f16.gguf")
#define HELDOUT_1 t_debdoc("texts/heldout-1.txt")

#define RUN_OK(...)                                                                                \
    do {                                                                                           \
        char *err_ = NULL;                                                                         \
        int st_ = t_run(NULL, &err_, __VA_ARGS__);                                                 \
        cr_assert_eq(st_, 0, "exit %d: %s", st_, err_ ? err_ : "");                                \
        free(err_);                                                                                \
    } while (0)

static void read_rows(const char *path, struct ab_results *r, int64_t n)
{
    ab_results_init(r);
    cr_assert_eq(ab_results_read_h5(path, r), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(r->n_model, n, "%lld /model rows", (long long)r->n_model);
}

Test(evalbytes, int8_meets_half_the_bytes_on_every_head_and_keeps_perplexity)
{
    const char *res = t_path("eb-int8.h5");
    RUN_OK("eval-model --model '%s' --text '%s' --methods int8 --phase decode "
           "--bytes-budget 0.5 --threads 2 --no-progress -o '%s'",
           MODEL, HELDOUT_1, res);
    struct ab_results r;
    read_rows(res, &r, 1);
    const struct ab_model_row *x = &r.model[0];
    cr_expect_str_eq(x->budget_kind, "bytes");
    cr_expect_eq(x->target_ratio, 0.5);
    cr_expect(isnan(x->target_tokens));
    cr_expect_eq(x->n_heads, 48);
    cr_expect_eq(x->heads_feasible, 48, "int8 met B=1/2 on %lld of 48 heads",
                 (long long)x->heads_feasible);
    cr_expect_eq(x->feasible, 1);
    cr_expect(x->bytes_ratio > 0.2 && x->bytes_ratio <= 0.5, "mean bytes ratio %g",
              x->bytes_ratio);
    cr_expect(isfinite(x->ppl) && isfinite(x->dense_ppl), "ppl %g dense %g", x->ppl, x->dense_ppl);
    cr_expect(fabs(x->ppl / x->dense_ppl - 1) < 0.01, "int8 ppl %.4f against dense %.4f",
              x->ppl, x->dense_ppl);
    cr_log_info("int8 B=1/2: bytes ratio %.4f, ppl %.4f (dense %.4f)", x->bytes_ratio, x->ppl,
                x->dense_ppl);
    ab_results_free(&r);
}

Test(evalbytes, snapkv_at_64_tokens_reads_at_most_64_per_step)
{
    const char *res = t_path("eb-snapkv.h5");
    RUN_OK("eval-model --model '%s' --text '%s' --methods snapkv --phase decode "
           "--kv-budget 64 --threads 2 --no-progress -o '%s'",
           MODEL, HELDOUT_1, res);
    struct ab_results r;
    read_rows(res, &r, 1);
    const struct ab_model_row *x = &r.model[0];
    cr_expect_str_eq(x->budget_kind, "tokens");
    cr_expect_eq(x->target_tokens, 64);
    cr_expect(isnan(x->target_ratio));
    cr_expect_eq(x->heads_feasible, x->n_heads);
    cr_expect(x->tokens_step > 0 && x->tokens_step <= 64, "mean tokens per step %g",
              x->tokens_step);
    /* the text is far longer than 64 tokens: the budget bites, bytes and FLOPs drop */
    cr_expect(x->bytes_ratio < 0.5 && x->flop_ratio < 0.5, "bytes %g flops %g", x->bytes_ratio,
              x->flop_ratio);
    cr_log_info("snapkv T=64: %.2f tokens/step, bytes ratio %.4f, ppl %.4f (dense %.4f)",
                x->tokens_step, x->bytes_ratio, x->ppl, x->dense_ppl);
    ab_results_free(&r);
}

Test(evalbytes, a_bad_bytes_budget_exits_64_in_one_line_and_writes_nothing)
{
    const char *res = t_path("eb-bad.h5");
    const char *bad[] = {"--bytes-budget 0", "--kv-budget 1.5", "--phase prefill --kv-budget 64",
                         "--knob C=8 --bytes-budget 0.5", "--layer-budget pyramid"};
    const char *opt[] = {"'--bytes-budget'", "'--kv-budget'", "'--kv-budget'", "'--knob'",
                         "'--layer-budget'"}; /* the option each message names */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *out = NULL, *err = NULL;
        int st = t_run(&out, &err, "eval-model --model '%s' --text '%s' --methods snapkv "
                       "%s%s -o '%s'", MODEL, HELDOUT_1, strstr(bad[i], "--phase") ? "" :
                       "--phase decode ", bad[i], res);
        cr_expect_eq(st, 64, "%s: exit %d: %s", bad[i], st, err);
        cr_expect(t_count_lines(err) == 1, "%s: %s", bad[i], err);
        cr_expect(strstr(err, opt[i]) != NULL, "%s: the message names %s: %s", bad[i], opt[i], err);
        cr_expect(!t_exists(res), "%s: %s was written", bad[i], res);
        char csv[1024];
        snprintf(csv, sizeof csv, "%.*s-model.csv", (int)(strlen(res) - 3), res);
        cr_expect(!t_exists(csv), "%s: %s was written", bad[i], csv);
        free(out), free(err);
    }
}
