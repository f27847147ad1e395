/* set.h - overrides of a scenario's keys from the command line (`scenario --set`), applied to
 * its YAML document before the reader checks it (set.c says how a KEY.PATH walks the file). */
#ifndef AB_SCENARIO_SET_H
#define AB_SCENARIO_SET_H

#include <yaml.h>

/* Nodes made by override k (from 1) carry line AB_SCENARIO_SET_LINE + k - 1 (0-based, as
 * libyaml's marks): the reader names the override instead of a line. */
#define AB_SCENARIO_SET_LINE 100000000

/* Applies sets[0..n_sets) ("run.budgets=0.5,0.1") to doc, in order (a later one wins). AB_OK;
 * AB_E_USAGE with a one-line message naming file and the override (malformed, a list entry
 * that does not exist, a path through a value); AB_E_NOMEM. Keys are not checked here: the
 * reader checks them like any key of the file. */
int ab_scenario_apply_sets(yaml_document_t *doc, const char *file, const char *const *sets,
                           int n_sets);

#endif
