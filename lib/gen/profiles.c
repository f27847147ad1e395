/* profiles.c - the components' names and default strengths, the head profile table
 * (workloads.md), and the assignment of profiles to (layer, kv head) slots: the `model` preset,
 * a single profile, or a seeded mix at given rates.
 *
 * Strengths are logits in nats (after the 1/sqrt(d) scale), so they read directly as "how much
 * more likely": the sink strength is the logit of key 0 for every query; local the logit of the
 * diagonal, falling with distance as a mean of RoPE cosines; vertical the bonus of the heavy-hitter
 * keys; slash the bonus of the same content one period back (half of it is a positional
 * look-back that prefers the copy at distance p to the token itself); topic the bonus of keys
 * in same-topic segments; needle the bonus of a partner key (and of a task query's keys);
 * diffuse the standard deviation of i.i.d. logit noise. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/list.h"
#include "gen/gen_internal.h"

static const char *const comp_names[AB_COMP_COUNT] = {
    [AB_COMP_LOCAL] = "local",
    [AB_COMP_SINK] = "sink",
    [AB_COMP_SECONDARY_SINK] = "secondary-sink",
    [AB_COMP_VERTICAL] = "vertical",
    [AB_COMP_SLASH] = "slash",
    [AB_COMP_TOPIC] = "topic",
    [AB_COMP_NEEDLE] = "needle",
    [AB_COMP_DIFFUSE] = "diffuse",
};

/* Strength of a component switched on outside its profiles (nats). */
static const double comp_default[AB_COMP_COUNT] = {
    [AB_COMP_LOCAL] = 12,    [AB_COMP_SINK] = 13,   [AB_COMP_SECONDARY_SINK] = 12,
    [AB_COMP_VERTICAL] = 11, [AB_COMP_SLASH] = 12,  [AB_COMP_TOPIC] = 10,
    [AB_COMP_NEEDLE] = 16,   [AB_COMP_DIFFUSE] = 1,
};

const char *ab_component_name(int comp)
{
    return comp >= 0 && comp < AB_COMP_COUNT ? comp_names[comp] : "unknown";
}

int ab_component_parse(const char *name)
{
    for (int c = 0; c < AB_COMP_COUNT; c++)
        if (!strcmp(name, comp_names[c])) return c;
    return -1;
}

double ab_component_default(int comp)
{
    return comp >= 0 && comp < AB_COMP_COUNT ? comp_default[comp] : 0;
}

#define S(local, sink, sec, vert, slash, topic, needle, diffuse)                                   \
    {                                                                                              \
        [AB_COMP_LOCAL] = local, [AB_COMP_SINK] = sink, [AB_COMP_SECONDARY_SINK] = sec,            \
        [AB_COMP_VERTICAL] = vert, [AB_COMP_SLASH] = slash, [AB_COMP_TOPIC] = topic,               \
        [AB_COMP_NEEDLE] = needle, [AB_COMP_DIFFUSE] = diffuse                                     \
    }

/* The profile table (workloads.md). Strengths in nats; 0 = absent. */
#define N_PROFILES 7
const struct ab_profile ab_profiles[N_PROFILES] = {
    {"streaming", "sink + local: most heads of long-context LLMs", S(12, 13, 0, 0, 0, 0, 0, 0)},
    {"retrieval", "sink + needle + diffuse: fetches from anywhere", S(0, 6, 0, 0, 0, 0, 16, 1)},
    {"induction", "sink + slash: copy / induction heads", S(0, 13, 0, 0, 12, 0, 0, 0)},
    {"vertical-slash", "sink + vertical + local + slash: MInference's prefill pattern",
     S(12, 13, 0, 10, 7, 0, 0, 0)},
    {"block", "topic + local: block-sparse friendly", S(4, 0, 0, 0, 0, 10, 0, 0)},
    {"diffuse", "diffuse + weak sink: little structure", S(0, 2.5, 0, 0, 0, 0, 0, 0.5)},
    {"dormant", "very strong sink: parks almost all attention on token 0",
     S(0, 14, 0, 0, 0, 0, 0, 0)},
};
const int ab_n_profiles = N_PROFILES;

#undef S

const struct ab_profile *ab_profile_find(const char *name)
{
    for (int i = 0; i < ab_n_profiles; i++)
        if (!strcmp(name, ab_profiles[i].name)) return &ab_profiles[i];
    return NULL;
}

static int profile_index(const char *name)
{
    const struct ab_profile *p = ab_profile_find(name);
    return p ? (int)(p - ab_profiles) : -1;
}

int ab_gen_parse_strengths(const char *spec, double strength[AB_COMP_COUNT])
{
    char name[32];
    double v;
    int rc;
    while ((rc = ab_list_next(&spec, '=', name, sizeof name, &v, "--strength")) == 1) {
        int c = ab_component_parse(name);
        if (c < 0) return ab_fail(AB_E_USAGE, "unknown component '%s' in --strength", name);
        if (v < 0 || v > 100)
            return ab_fail(AB_E_USAGE, "strength of %s must be in [0, 100], got %g", name, v);
        strength[c] = v;
    }
    return rc;
}

int ab_gen_parse_tasks(const char *list, unsigned *tasks)
{
    *tasks = 0;
    if (!*list) return ab_fail(AB_E_USAGE, "empty task list");
    char name[32];
    int rc;
    while ((rc = ab_list_next(&list, 0, name, sizeof name, NULL, "--tasks")) == 1) {
        int k = ab_task_kind_parse(name);
        if (k < 0)
            return ab_fail(AB_E_USAGE,
                           "unknown task '%s' (want retrieve, multi-retrieve, aggregate)", name);
        *tasks |= 1u << k;
    }
    return rc;
}

/* Parses "name:rate,..." into rate[profile], normalised to sum 1. */
static int parse_mix(const char *mix, double rate[])
{
    for (int i = 0; i < ab_n_profiles; i++) rate[i] = 0;
    const char *s = mix;
    double total = 0, v;
    char name[32];
    int rc;
    while ((rc = ab_list_next(&s, ':', name, sizeof name, &v, "--mix")) == 1) {
        int p = profile_index(name);
        if (p < 0) return ab_fail(AB_E_USAGE, "unknown profile '%s' in --mix", name);
        if (v < 0) return ab_fail(AB_E_USAGE, "--mix: rate of %s is negative (%g)", name, v);
        rate[p] += v;
        total += v;
    }
    if (rc < 0) return rc;
    if (!(total > 0)) return ab_fail(AB_E_USAGE, "mix '%s' has no positive rate", mix);
    for (int i = 0; i < ab_n_profiles; i++) rate[i] /= total;
    return AB_OK;
}

/* Draws a profile index from rates (summing to 1) with uniform u in [0, 1). */
static int draw(const double rate[], double u)
{
    double c = 0;
    int last = 0;
    for (int i = 0; i < ab_n_profiles; i++) {
        if (rate[i] <= 0) continue;
        last = i;
        c += rate[i];
        if (u < c) return i;
    }
    return last;
}

/* Layer classes of the model preset. Early layers hold dormant heads (layers 0-1 when there
 * are at least 4 layers, layer 0 otherwise); the middle holds retrieval and induction heads. */
enum { EARLY, MIDDLE, LATE };
static int layer_class(int64_t l, int64_t n_layer)
{
    if (n_layer == 1) return MIDDLE;
    if (l == 0 || (l == 1 && n_layer >= 4)) return EARLY;
    return l < (3 * n_layer + 3) / 4 ? MIDDLE : LATE;
}

/* Per-class rates of the model preset, in ab_profiles order: streaming, retrieval, induction,
 * vertical-slash, block, diffuse, dormant. */
static const double model_rate[3][N_PROFILES] = {
    [EARLY] = {0.55, 0, 0, 0, 0.05, 0.10, 0.30},
    [MIDDLE] = {0.55, 0.05, 0.10, 0.15, 0.08, 0.07, 0},
    [LATE] = {0.65, 0, 0, 0.15, 0.10, 0.10, 0},
};

/* Seeded slot of class cls whose profile is not `keep` (or any slot of class cls when every
 * one is), -1 when the class is empty. */
static int64_t pick_slot(const struct ab_gen_opts *o, const int *profile, int cls, int keep,
                         uint64_t part)
{
    int64_t n_slot = o->n_layer * o->n_kv_head, cand = 0, any = 0;
    for (int64_t s = 0; s < n_slot; s++)
        if (layer_class(s / o->n_kv_head, o->n_layer) == cls) {
            any++;
            if (profile[s] != keep) cand++;
        }
    if (!any) return -1;
    int strict = cand > 0;
    int64_t n_pick = strict ? cand : any;
    struct ab_rng r;
    ab_rng_init(&r, o->seed, ab_stream(AB_GEN_TAG_ASSIGN, 0, 0, part));
    int64_t k = ab_rng_below(&r, n_pick);
    for (int64_t s = 0; s < n_slot; s++) {
        if (layer_class(s / o->n_kv_head, o->n_layer) != cls) continue;
        if (strict && profile[s] == keep) continue;
        if (k-- == 0) return s;
    }
    return -1;
}

static void assign_model(const struct ab_gen_opts *o, int *profile, int8_t *secondary)
{
    enum { STREAMING = 0, RETRIEVAL = 1, INDUCTION = 2, DORMANT = 6 };
    int64_t n_slot = o->n_layer * o->n_kv_head;
    for (int64_t s = 0; s < n_slot; s++) {
        int cls = layer_class(s / o->n_kv_head, o->n_layer);
        double u = ab_rng_uniform_at(o->seed, ab_stream(AB_GEN_TAG_ASSIGN, s, 1, 0), 0);
        profile[s] = draw(model_rate[cls], u);
    }
    /* a real model has a few of each kind: with at least 4 kv heads in all, one retrieval head
     * in the middle; with 3 middle kv heads, one induction head; with more than one layer, one
     * dormant head in layer 0; retrieval heads stay at or below max(1, 10%) of the heads */
    int64_t n_ret = 0, n_ind = 0, n_dorm0 = 0, n_mid = 0;
    for (int64_t s = 0; s < n_slot; s++) {
        n_ret += profile[s] == RETRIEVAL;
        n_ind += profile[s] == INDUCTION;
        n_dorm0 += profile[s] == DORMANT && s < o->n_kv_head;
        n_mid += layer_class(s / o->n_kv_head, o->n_layer) == MIDDLE;
    }
    int64_t cap = AB_MAX(1, n_slot / 10);
    for (int64_t s = n_slot - 1; s >= 0 && n_ret > cap; s--)
        if (profile[s] == RETRIEVAL) profile[s] = STREAMING, n_ret--;
    if (n_ret == 0 && n_slot >= 4) {
        int64_t s = pick_slot(o, profile, MIDDLE, RETRIEVAL, 1);
        if (s >= 0) profile[s] = RETRIEVAL;
    }
    if (n_ind == 0 && n_mid >= 3) {
        int64_t s = pick_slot(o, profile, MIDDLE, RETRIEVAL, 2);
        if (s >= 0 && profile[s] != RETRIEVAL) profile[s] = INDUCTION;
    }
    if (n_dorm0 == 0 && o->n_layer > 1) {
        int64_t k = (int64_t)(ab_rng_uniform_at(o->seed, ab_stream(AB_GEN_TAG_ASSIGN, 0, 0, 3), 0) *
                              (double)o->n_kv_head);
        profile[AB_MIN(k, o->n_kv_head - 1)] = DORMANT;
    }
    /* secondary sinks in a quarter of the streaming heads past the early layers */
    for (int64_t s = 0; s < n_slot; s++) {
        int cls = layer_class(s / o->n_kv_head, o->n_layer);
        double u = ab_rng_uniform_at(o->seed, ab_stream(AB_GEN_TAG_ASSIGN, s, 2, 0), 0);
        secondary[s] = profile[s] == STREAMING && cls != EARLY && u < 0.25;
    }
}

int ab_gen_assign(const struct ab_gen_opts *o, int *profile, int8_t *secondary)
{
    int64_t n_slot = o->n_layer * o->n_kv_head;
    int given = (o->preset != NULL) + (o->profile != NULL) + (o->mix != NULL);
    if (given > 1) return ab_fail(AB_E_USAGE, "give only one of --preset, --profile and --mix");
    for (int64_t s = 0; s < n_slot; s++) secondary[s] = 0;
    if (o->profile) {
        int p = profile_index(o->profile);
        if (p < 0) return ab_fail(AB_E_USAGE, "unknown profile '%s'", o->profile);
        for (int64_t s = 0; s < n_slot; s++) profile[s] = p;
        return AB_OK;
    }
    if (o->mix) {
        double rate[N_PROFILES];
        int rc = parse_mix(o->mix, rate);
        if (rc) return rc;
        for (int64_t s = 0; s < n_slot; s++) {
            double u = ab_rng_uniform_at(o->seed, ab_stream(AB_GEN_TAG_ASSIGN, s, 3, 0), 0);
            profile[s] = draw(rate, u);
        }
        return AB_OK;
    }
    if (o->preset && strcmp(o->preset, "model"))
        return ab_fail(AB_E_USAGE, "unknown preset '%s' (want model)", o->preset);
    assign_model(o, profile, secondary);
    return AB_OK;
}
