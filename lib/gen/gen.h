/* gen.h - the synthetic workload generator (workloads.md, "Synthetic generator").
 *
 * Plants recognisable attention patterns (components) in Q and K through the mechanisms real
 * models use, mixes them into named head profiles, assigns profiles to (layer, kv head) slots,
 * and adds task queries with ground truth. Everything is a pure function of the options and the
 * seed: the same options give the same bytes. */
#ifndef AB_GEN_GEN_H
#define AB_GEN_GEN_H

#include <stdint.h>

#include "core/workload.h"

/* Components; each has a strength in struct ab_gen_opts (0 = off, negative = profile default). */
enum ab_component {
    AB_COMP_LOCAL,
    AB_COMP_SINK,
    AB_COMP_SECONDARY_SINK,
    AB_COMP_VERTICAL,
    AB_COMP_SLASH,
    AB_COMP_TOPIC,
    AB_COMP_NEEDLE,
    AB_COMP_DIFFUSE,
    AB_COMP_COUNT
};

const char *ab_component_name(int comp);

/* A profile: a named mixture of component strengths (workloads.md table). */
struct ab_profile {
    const char *name;
    const char *summary;
    double strength[AB_COMP_COUNT]; /* default strengths; 0 = component absent */
};

/* The profile table, and lookup by name (NULL if unknown). */
extern const struct ab_profile ab_profiles[];
extern const int ab_n_profiles;
const struct ab_profile *ab_profile_find(const char *name);

struct ab_gen_opts {
    int64_t n_layer, n_head, n_kv_head, n_seq, d, d_v;
    uint64_t seed;
    /* profile assignment: exactly one of preset / profile / mix */
    const char *preset;  /* "model" */
    const char *profile; /* every head this profile */
    const char *mix;     /* "streaming:0.7,retrieval:0.05,..." rates, normalised */
    /* per-component strength override applied to every head (< 0: keep the profile's) */
    double strength[AB_COMP_COUNT];
    double rope_theta; /* 10000 */
    int slash_period;  /* p for the slash component (0: default) */
    /* tasks: bit set of (1 << enum ab_task_kind) */
    unsigned tasks;
    int64_t n_tasks;   /* task queries per kind (default 8) */
    int64_t task_rows; /* task queries are placed among the last task_rows rows (default 64) */
    double depth_min, depth_max; /* needle depth range as a fraction of the context (0, 1) */
    int64_t n_code;              /* codebook size P (default 64) */
    int full_mask;               /* 1: the workload's mask is full (every query sees every key:
                                    encoder-style, for full-mask-only methods); 0: causal */
};

/* Default strength of each component when it is switched on outside a profile (--strength),
 * in nats (see profiles.c for the meaning of each strength). */
double ab_component_default(int comp);

/* Component index by name ("secondary-sink"), -1 if unknown. */
int ab_component_parse(const char *name);

/* Fills opts with the defaults (seed 1, theta 10000, every strength -1, ...); shape fields 0. */
void ab_gen_defaults(struct ab_gen_opts *opts);

/* Generates the workload. Validates the options first: AB_E_USAGE with a message naming the
 * bad option (unknown profile, rates that do not parse, zero sizes, odd d, ...), AB_E_TOOBIG when
 * the shapes cannot fit in memory. On success *out is a complete workload (source "synthetic",
 * causal unless opts->full_mask, scale 1/sqrt(d), rope_applied 1) owned by the caller. Tasks are planted in the kv
 * heads whose profile has the needle component (retrieval heads) or, when no head has it, in
 * every head; out->tasks.planted says which. The same options give the same bytes, whatever
 * the thread count (OpenMP over kv heads). */
int ab_gen_workload(const struct ab_gen_opts *opts, struct ab_workload *out);

/* Parses "name=value,..." (component names, values >= 0 in nats) into strength[], leaving the
 * components not named untouched. AB_E_USAGE with a message on an unknown name or bad value. */
int ab_gen_parse_strengths(const char *spec, double strength[AB_COMP_COUNT]);

/* Parses a task list "retrieve,multi-retrieve,aggregate" into a bit set of (1 << kind).
 * AB_E_USAGE on an unknown or empty name. */
int ab_gen_parse_tasks(const char *list, unsigned *tasks);

/* Keys per task query: multi-retrieve has AB_GEN_MULTI_NEEDLES needles (the asked one first)
 * then AB_GEN_MULTI_DISTRACT distractors whose keys are aligned with the asked needle's key at
 * cosine AB_GEN_DISTRACT_COS; aggregate spreads over a set S of AB_GEN_AGG_KEYS keys. */
#define AB_GEN_MULTI_NEEDLES  4
#define AB_GEN_MULTI_DISTRACT 4
#define AB_GEN_DISTRACT_COS   0.6
#define AB_GEN_AGG_KEYS       16

/* What the generator plants in one (layer, kv head). Pair p of the head dimension is the RoPE
 * pair (2p, 2p+1); pair_comp[p] names the component that owns it (-1: unused, zero in Q and K;
 * AB_GEN_SLASH_LOOKBACK: the slash component's positional look-back pairs). Positions are rows
 * of the sequence. */
#define AB_GEN_SLASH_LOOKBACK AB_COMP_COUNT
struct ab_gen_head {
    int profile;                    /* index into ab_profiles */
    double strength[AB_COMP_COUNT]; /* effective strengths in nats, 0 = absent */
    int8_t *pair_comp;              /* (d / 2) */
    int64_t slash_period;           /* p of the slash component (0 when absent) */
    int64_t n_heavy;
    int32_t *heavy; /* (n_heavy) vertical: heavy-hitter key positions */
    int64_t n_sec;
    int32_t *sec;    /* (n_sec) secondary-sink positions */
    int64_t n_topic; /* topics of the topic component (0 when absent) */
    int32_t *topic;  /* (n_seq) topic of each position, NULL when absent */
    int planted;     /* tasks are planted in this head */
};

/* The resolved plan of a workload: every random choice that is not a Q/K/V entry. Tasks are
 * planted in the kv heads whose profile contains the needle component (retrieval heads); when
 * no head has it, in every head. tasks.planted records which. */
struct ab_gen_plan {
    int64_t n_layer, n_kv_head, n_seq, d;
    struct ab_gen_head *head; /* (n_layer * n_kv_head) */
    struct ab_tasks tasks;    /* layout, answers, codebook (tasks.n == 0: none) */
    int32_t *key_code;        /* (tasks.key_off[n]) codeword held by each task key, -1 for
                                 aggregate keys */
};

/* Validates opts and resolves the plan (cheap: no Q/K/V). Errors as ab_gen_workload. The
 * caller frees the plan with ab_gen_plan_free. ab_gen_workload(opts) plants exactly this plan. */
int ab_gen_plan_make(const struct ab_gen_opts *opts, struct ab_gen_plan *out);
void ab_gen_plan_free(struct ab_gen_plan *plan);

/* The repeat probe (probe.c): tokens BOS + a block repeated AB_GEN_REPEAT_COPIES times. The
 * block length for a sequence of n_seq rows is (n_seq - 1) / AB_GEN_REPEAT_COPIES; pass it as
 * the slash period so slash heads look back at the earlier copy. ab_gen_probe_repeat replaces
 * w->tokens with token 0 (BOS) at row 0 and block id 1 + x mod L at row 1 + x. AB_E_USAGE when
 * the block would be shorter than 2, AB_E_NOMEM. */
#define AB_GEN_REPEAT_COPIES 4
int64_t ab_gen_repeat_block(int64_t n_seq);
int ab_gen_probe_repeat(struct ab_workload *w);

#endif
