/* report_study_pending.c - the studies whose findings are being written (issue 13); each is
 * replaced by its own file report_study_<name>.c. Until then --study NAME says so and writes
 * nothing. */
#include "core/ab.h"
#include "report/report_internal.h"

static int pending(const char *name)
{
    return ab_fail(AB_E_USAGE, "report: the study '%s' has no findings section yet", name);
}

int ab_rep_study_streaming_llm(struct rep *R, FILE *f) { (void)R, (void)f; return pending("streaming-llm"); }
int ab_rep_study_retrieval_heads(struct rep *R, FILE *f) { (void)R, (void)f; return pending("retrieval-heads"); }
