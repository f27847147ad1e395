/* battery.h - the generic battery (ggml's test-backend-ops idea): the properties every method
 * row must hold, whoever wrote it, checked on seeded random layers in every phase the row
 * offers. tests/test_methods.c asserts them for the built-in rows; `attnbench selftest` checks
 * them for any row, a plugin's included, each check in a child process so a crash is reported
 * by row and property.
 *
 * The problems: one layer of 4 query heads over 2 kv heads, n = 320 rows, d = d_v = 32,
 * Gaussian Q, K with logit spread 4 (seeded per property); decode takes the last 32 rows as
 * queries. A row supporting only the full mask is checked under it. */
#ifndef AB_EVAL_BATTERY_H
#define AB_EVAL_BATTERY_H

#include <stddef.h>

#include "methods/method.h"

enum ab_prop {
    AB_PROP_ROW,     /* the row is well formed (ab_method_check_row) */
    AB_PROP_COST,    /* cost is pure (same ledger twice) and its ratio non-decreasing in the knob
                        (13 knobs); an analytic cost() is the ledger run() fills */
    AB_PROP_LARGEST, /* selecting rows: at the largest knob O equals dense (rel_l2 <= 1e-5) */
    AB_PROP_MASK,    /* no attention outside the causal mask: poisoning the values (static, kv
                        and dense rows: the keys too) after a cut changes no row before it */
    AB_PROP_CONST_V, /* normalised rows reading an exact cache: constant V is a fixed point
                        (|O - v| <= 1e-5) */
    AB_PROP_LEDGER,  /* the ledger's cells are the cells computed (ab_attend_kept's counter) and
                        those of the keep sets, which hold visible keys only */
    AB_PROP_DIST,    /* rows with dist(): rows are distributions over visible keys, O = A V */
    AB_PROP_SUBSET,  /* evaluating a subset of the rows changes nothing but which rows are
                        written: same ledger, same keep sets and outputs bit for bit */
    AB_PROP_PREPARE, /* rows with prepare(): the state belongs to its problem (A, B, A
                        interleaved equals A alone, bit for bit) */
    AB_PROP_ENGINE,  /* swept by the engine over 4 layers, both phases, two budgets: each
                        (head, phase) prepared once and freed, every call given its own
                        problem's state, run() always given a keep set */
    AB_PROP_COUNT
};

/* Name ("cost") and one-line statement of property p. */
const char *ab_prop_name(int p);
const char *ab_prop_says(int p);
/* The property called name, or -1. */
int ab_prop_find(const char *name);

enum ab_verdict {
    AB_VERDICT_PASS = 0,
    AB_VERDICT_SKIP = 1, /* the property does not apply to the row (why says so) */
    AB_VERDICT_FAIL = 2, /* why names the first violation: phase, knob, row, values */
};

/* Checks property p of row m in the calling process (which it may crash if m does). Writes one
 * line into why (cap bytes): the first violation, or why the property does not apply, or "".
 * The row need not be in the registry (AB_PROP_ROW then skips the registry lookup). Uses the
 * engine's threads (ab_threads_set). Returns an enum ab_verdict. */
int ab_battery_check(const struct ab_method *m, int p, char *why, size_t cap);

/* Which of the row's functions the check was calling last ("cost()", "run()", "prepare()",
 * ...; "" before any): what a crash handler reports. Async-signal-safe to read. */
const char *ab_battery_where(void);

#endif
