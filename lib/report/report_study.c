/* report_study.c - `report --study NAME`: the findings of one of the seed papers' studies,
 * stated from the data at the top of report.md (report.h lists them). One table row per study;
 * each study lives in its own file (report_study_<name>.c) and writes its Markdown to a memory
 * stream, so a study that fails leaves no half section. */
/* open_memstream: POSIX 2008 (the build defines _GNU_SOURCE) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "report/report_internal.h"

static const struct {
    const char *name;
    ab_rep_study_fn fn;
} studies[] = {
    {"streaming-llm", ab_rep_study_streaming_llm},
    {"sink-emergence", ab_rep_study_sink_emergence},
    {"retrieval-heads", ab_rep_study_retrieval_heads},
    {"sparse-frontier", ab_rep_study_sparse_frontier},
};

const char *const ab_report_studies[] = {"streaming-llm", "sink-emergence", "retrieval-heads",
                                         "sparse-frontier", NULL};

int ab_rep_study(struct rep *R)
{
    const char *name = R->o->study;
    if (!name) return AB_OK;
    for (size_t i = 0; i < sizeof studies / sizeof studies[0]; i++) {
        if (strcmp(studies[i].name, name)) continue;
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f) return ab_fail(AB_E_NOMEM, "out of memory");
        int rc = studies[i].fn(R, f);
        fclose(f);
        if (rc != AB_OK) {
            free(buf);
            return rc;
        }
        R->study_md = buf;
        return AB_OK;
    }
    return ab_fail(AB_E_USAGE, "report: unknown study '%s' (streaming-llm, sink-emergence, "
                   "retrieval-heads, sparse-frontier)", name);
}
