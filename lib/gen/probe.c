/* probe.c - the token probes of `gen --probe` (metrics.md, "echo and induction scores",
 * RazorAttention): the repeat probe gives a workload the tokens BOS + a block R repeated 4
 * times, so the `heads` command can score echo (attention to earlier copies of the token) and
 * induction (attention to the token after an earlier copy). The synthetic Q and K are not built
 * from tokens: paired with a slash period equal to the block length (cmd/gen.c does this), the
 * slash component's look-back to "the same content one period back" lands on the earlier copy,
 * so slash (induction-profile) heads score as echo heads. */
#include <stdlib.h>

#include "core/ab.h"
#include "gen/gen.h"

int64_t ab_gen_repeat_block(int64_t n_seq)
{
    return (n_seq - 1) / AB_GEN_REPEAT_COPIES;
}

int ab_gen_probe_repeat(struct ab_workload *w)
{
    int64_t block = ab_gen_repeat_block(w->n_seq);
    if (block < 2)
        return ab_fail(AB_E_USAGE, "the repeat probe needs n >= %d (got %lld)",
                       2 * AB_GEN_REPEAT_COPIES + 1, (long long)w->n_seq);
    int32_t *tok = ab_alloc((size_t)w->n_seq * sizeof *tok);
    if (!tok) return ab_fail(AB_E_NOMEM, "cannot allocate %lld tokens", (long long)w->n_seq);
    /* token 0 is BOS; row 1 + x holds block id 1 + x mod block (rows past the 4 copies, at most
     * 3, start a fifth) */
    tok[0] = 0;
    for (int64_t x = 0; x + 1 < w->n_seq; x++) tok[x + 1] = (int32_t)(1 + x % block);
    ab_free(w->tokens);
    w->tokens = tok;
    return AB_OK;
}
