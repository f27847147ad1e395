/* method.h - the engine's side of the method interface. The interface itself (struct
 * ab_method, the problem a method sees, the ledger, keep sets, the conventions every method
 * follows) is the public ABI, include/attnbench/method.h, which built-in rows and plugins share;
 * this header adds what only the tool uses: the registry, name lists, and the prepare step as
 * the engine drives it. */
#ifndef AB_METHODS_METHOD_H
#define AB_METHODS_METHOD_H

#include <stdint.h>

#include "attn/attn.h"
#include "attnbench/method.h"

/* The registry (registry.c): every method, in catalogue order; every reader goes through these
 * two, so rows that are not compiled in (plugins, issue 18) can join the built-in table.
 * ab_method_at(i) for i in [0, ab_method_count()), NULL outside. */
int ab_method_count(void);
const struct ab_method *ab_method_at(int i);
const struct ab_method *ab_method_find(const char *name); /* NULL if unknown */

/* A composition `A+B` of two rows (compose.c: a decode chain, cache compression then per-step
 * selection, or a prefill row with a decode row), built the first time it is named and the
 * same row after; ab_method_find calls it for names with a '+'. NULL with AB_E_USAGE's message
 * (ab_errmsg) naming what cannot be composed and why. */
const struct ab_method *ab_method_compose(const char *name);

/* Plugins (plugin.c, include/attnbench/method.h's AB_PLUGIN): loads the rows of the shared
 * object at path behind ab_method_count / ab_method_at, after the built-in rows. Refused with one
 * line naming the file: a missing file (AB_E_NOFILE), an object dlopen cannot load or with
 * unresolved symbols, no `attnbench_plugin` object, another ABI version, an ill-formed row
 * (AB_E_DATA), a row whose name a built-in or loaded row has (AB_E_USAGE). Nothing is added
 * unless every row is accepted. Loading the same file twice adds nothing the second time.
 * Call before any engine work (not thread-safe); rows stay loaded until the process ends. */
int ab_plugin_load(const char *path);
/* ab_plugin_load of each path of a comma list (NULL or "": none). */
int ab_plugins_load(const char *list);
/* The plugin file a row came from, NULL for a built-in row. */
const char *ab_method_origin(const struct ab_method *m);
/* The loader's side of the registry (registry.c): appends n checked rows from the file `from`
 * (kept, not copied), all or none. AB_OK or AB_E_USAGE past the registry's room. */
int ab_registry_add(const struct ab_method *const *rows, int n, const char *from);

/* A row's static facts, as ab_plugin_load checks them and the battery's first property:
 * name [a-z0-9-]+ of at most 63 characters, a known family, phases and masks among the defined
 * bits and not empty, run, summary, citation and cost_words set, a knob range lo > 0 and
 * hi <= 0 or hi > lo, cost() for ANALYTIC, prepare with prepare_free, plan only for MODEL rows,
 * no unknown flag bits. AB_OK or AB_E_DATA "row 'NAME': <problem>". */
int ab_method_check_row(const struct ab_method *m);

/* The rows named by the comma list (registry names, each once), each checked to have one of
 * the phases (and, with causal, the causal mask), into out[0..*n); list NULL means every row
 * with one of the phases (and the mask). AB_OK, or AB_E_USAGE naming the first bad name (with
 * a did-you-mean for a typo). */
int ab_methods_resolve(const char *list, unsigned phases, int causal,
                       const struct ab_method **out, int cap, int *n);

/* AB_PHASE_* bits of a checked phase list ("prefill", "decode", "prefill,decode"; a declared
 * option's value); 0 for NULL or "". */
unsigned ab_phases_parse(const char *list);

/* --knob NAME=V for methods m[0..n): *value, after checking that every row with a knob calls
 * it NAME. AB_OK, or AB_E_USAGE naming the problem. */
int ab_methods_knob(const char *knob, const struct ab_method *const *m, int n, double *value);

/* The engine's side of prepare (the header comment): m->prepare's state of p into p->prep,
 * NULL when m has no prepare. Once per (head instance, phase), before any cost / run / dist call
 * on p; ab_problem_unprepare after the last. AB_OK or the prepare's error (p->prep NULL then). */
int ab_problem_prepare(const struct ab_method *m, struct ab_problem *p);
/* Frees p->prep with m->prepare_free and sets it to NULL (nothing when it is NULL). */
void ab_problem_unprepare(const struct ab_method *m, struct ab_problem *p);

/* The knob range on problem p (resolving hi <= 0 to n). */
void ab_method_knob_range(const struct ab_method *m, const struct ab_problem *p, double *lo,
                          double *hi);

#endif
