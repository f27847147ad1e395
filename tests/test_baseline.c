/* test_baseline.c - the regression gate: the default scenario at its quick size must reproduce
 * the committed baseline (reports/baseline/default.h5) in every number, to tolerance. A change
 * that moves a number on purpose regenerates the baseline with `make baseline` in the same
 * commit (reports/README.md). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

Test(baseline, default_quick_scenario_matches_the_committed_baseline, .timeout = 600)
{
    const char *src = getenv("AB_SRC");
    cr_assert(src != NULL, "AB_SRC is not set");
    const char *dir = t_path("default-quick");
    char *out = NULL, *err = NULL;
    int st = t_run(NULL, &err, "scenario '%s/scenarios/default.yaml' --quick --no-progress -o '%s'",
                   src, dir);
    cr_assert_eq(st, 0, "scenario failed (%d): %s", st, err ? err : "");
    free(err);
    err = NULL;
    st = t_run(&out, &err, "check '%s/results.h5' --baseline '%s/reports/baseline/default.h5' "
               "--any-change", dir, src);
    cr_expect_eq(st, 0, "check against the baseline failed (%d):\n%s%s", st, out ? out : "",
                 err ? err : "");
    cr_expect(out && strstr(out, " 0 regressions, 0 missing, 0 added"), "check said: %s",
              out ? out : "");
    free(out);
    free(err);
}
