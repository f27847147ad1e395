/* methods.c - `attnbench methods [NAME]`: the registry as a table, or one method in full. */
#include <stdio.h>
#include <string.h>

#include "methods/method.h"
#include "opts.h"

static const char *usage_text = "attnbench methods [NAME]";

static void phases_text(unsigned phases, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s%s", phases & AB_PHASE_PREFILL ? "prefill" : "",
             phases == (AB_PHASE_PREFILL | AB_PHASE_DECODE) ? "," : "",
             phases & AB_PHASE_DECODE ? "decode" : "");
}

static void masks_text(unsigned masks, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s%s", masks & AB_MASKS_CAUSAL ? "causal" : "",
             masks == (AB_MASKS_CAUSAL | AB_MASKS_FULL) ? "," : "",
             masks & AB_MASKS_FULL ? "full" : "");
}

static void knob_text(const struct ab_method *m, char *buf, size_t cap)
{
    if (!m->knob.name) {
        snprintf(buf, cap, "-");
        return;
    }
    char hi[32];
    if (m->knob.hi > 0) snprintf(hi, sizeof hi, "%g", m->knob.hi);
    else snprintf(hi, sizeof hi, "n");
    snprintf(buf, cap, "%s in [%g, %s]%s", m->knob.name, m->knob.lo, hi,
             m->knob.integer ? "" : " (real)");
}

int cmd_methods(int argc, char **argv)
{
    const struct ab_opt opts[] = {{NULL, AB_OPT_END, NULL, NULL, NULL}};
    char *pos[1];
    int n_pos, st = ab_opts_parse("methods", usage_text, opts, argc, argv, pos, 1, &n_pos);
    if (st >= 0) return st;
    char ph[32], mk[32], kn[64];
    if (n_pos == 1) {
        const struct ab_method *m = ab_method_find(pos[0]);
        if (!m)
            return ab_cmd_error(EX_AB_USAGE, "unknown method '%s' (see 'attnbench methods')", pos[0]);
        phases_text(m->phases, ph, sizeof ph);
        masks_text(m->masks, mk, sizeof mk);
        knob_text(m, kn, sizeof kn);
        printf("name       %s\n", m->name);
        printf("family     %s\n", ab_family_name(m->family));
        printf("summary    %s\n", m->summary);
        printf("phases     %s\n", ph);
        printf("masks      %s\n", mk);
        printf("knob       %s", kn);
        if (m->knob.name) printf(", default %g %s", m->knob.def, m->knob.unit ? m->knob.unit : "");
        printf("\ncost       %s\n", m->cost_words);
        printf("solver     %s\n", m->flags & AB_METHOD_ANALYTIC
                                      ? "bisection on the analytic cost"
                                      : "bisection on selection-only runs (data-dependent cost)");
        printf("selection  %s%s%s\n", m->flags & AB_METHOD_SELECTS ? "exported (recall, masks)" : "none",
               m->flags & AB_METHOD_ORACLE ? "; oracle: reads the exact map, selection not counted" : "",
               m->flags & AB_METHOD_LAYER ? "; reads every head of the layer" : "");
        if (m->flags & AB_METHOD_OPERATOR)
            printf("operator   a different attention operator, not an approximation of softmax: "
                   "its error against dense measures the operator's distance from softmax\n");
        if (m->convention) printf("convention %s\n", m->convention);
        if (m->flags & AB_METHOD_MODEL)
            printf("budget     model level: one knob per phase and target for the whole workload\n");
        printf("citation   %s\n", m->citation);
        return EX_AB_OK;
    }
    printf("%-16s %-8s %-15s %-13s %-22s %s\n", "name", "family", "phases", "masks", "knob",
           "cost");
    for (int i = 0; i < ab_n_methods; i++) {
        const struct ab_method *m = ab_methods[i];
        phases_text(m->phases, ph, sizeof ph);
        masks_text(m->masks, mk, sizeof mk);
        knob_text(m, kn, sizeof kn);
        printf("%-16s %-8s %-15s %-13s %-22s %s%s\n", m->name, ab_family_name(m->family), ph, mk,
               kn, m->flags & AB_METHOD_OPERATOR ? "[operator, not softmax] " : "",
               m->cost_words ? m->cost_words : "");
    }
    printf("\n%d methods; 'attnbench methods NAME' shows one with its citation.\n", ab_n_methods);
    return EX_AB_OK;
}
