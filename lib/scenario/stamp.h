/* stamp.h - whether a scenario step is up to date (issue 17): a step's key is a digest of the
 * tool's version and executable, the command line that gives its options (threads aside:
 * results do not depend on them) and the bytes of every file it reads. After a step succeeds its key, with the
 * digest of the file it wrote, goes to a stamp beside the output (DIR/.NAME.stamp); the next
 * scenario run skips the step when the stamp holds the same key and the output is still the
 * file it wrote. A changed option, input, upstream step or attnbench re-runs it. */
#ifndef AB_SCENARIO_STAMP_H
#define AB_SCENARIO_STAMP_H

#include "core/decl.h"

/* The key of a step: options struct o of table t (run as `cmd` with the positional files
 * pos[0..n_pos) and seed), the digests of pos and of every AB_DECL_INPUT file o names, into
 * hex. AB_OK; AB_E_NOFILE / AB_E_IO naming an input that cannot be read (the step would fail
 * on it anyway: it is then simply not up to date); AB_E_NOMEM. */
int ab_step_key(const char *cmd, const struct ab_decl *t, const void *o, const char *const *pos,
                int n_pos, unsigned long long seed, char hex[65]);

/* The stamp of output out: "DIR/.BASE.stamp" into buf. */
void ab_step_stamp_path(const char *out, char *buf, size_t cap);

/* 1 when out's stamp holds key and out is what the step wrote (a file: same digest; a folder:
 * it exists), else 0. */
int ab_step_fresh(const char *out, const char *key);

/* Writes out's stamp (key and out's digest) atomically. AB_OK or AB_E_CREATE / AB_E_IO. */
int ab_step_stamp(const char *out, const char *key);

/* Removes out's stamp (before the step runs: a step that fails is not up to date). */
void ab_step_unstamp(const char *out);

#endif
