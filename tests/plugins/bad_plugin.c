/* bad_plugin.c - plugins that must be refused or caught, one per BAD_* macro (tests/meson.build
 * builds each): BAD_CRASH a row whose cost() crashes (selftest names it, the others still run),
 * BAD_ABI an object for another ABI version, BAD_CLASH a row named like a built-in one, BAD_ROW
 * an ill-formed row (knob range starting at 0), BAD_NONE no attnbench_plugin object at all. */
#include <signal.h>
#include <stddef.h>

#include "attnbench/method.h"

static int cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    *led = (struct ab_ledger){0};
#ifdef BAD_CRASH
    if (knob > 0) raise(SIGSEGV); /* as a wild pointer would */
#else
    (void)knob;
#endif
    ab_ledger_attend(led, p->h, 0);
    return AB_OK;
}

static int run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
               struct ab_ledger *led)
{
    (void)o, (void)keep;
    return cost(p, knob, led);
}

static const struct ab_method row = {
#ifdef BAD_CLASH
    .name = "snapkv",
#else
    .name = "bad-row",
#endif
    .family = AB_FAMILY_STATIC,
    .summary = "a row made to be refused",
    .citation = "none",
    .cost_words = "none",
    .phases = AB_PHASE_PREFILL,
    .masks = AB_MASKS_CAUSAL,
#ifdef BAD_ROW
    .knob = {.name = "k", .lo = 0, .hi = 10, .def = 1, .unit = "tokens"},
#else
    .knob = {.name = "k", .lo = 1, .hi = 10, .def = 1, .unit = "tokens"},
#endif
    .flags = AB_METHOD_ANALYTIC,
    .cost = cost,
    .run = run,
};

#if defined(BAD_ABI)
__attribute__((visibility("default"))) const struct ab_plugin attnbench_plugin = {
    AB_PLUGIN_ABI + 1, (uint32_t)sizeof(struct ab_method), "from the future",
    (const struct ab_method *const[]){&row, NULL}};
#elif defined(BAD_NONE)
__attribute__((visibility("default"))) const struct ab_method *const some_other_symbol = &row;
#else
AB_PLUGIN("bad", &row);
#endif
