/* gen_internal.h - what the generator's files share and nobody else needs: random stream tags,
 * the per-head pair allocation, the component writers and the task planting.
 *
 * Coordinates. Every head dimension pair (2p, 2p+1) belongs to one component. Components that
 * work through RoPE (local, the slash look-back, diffuse) write pre-rotation coordinates;
 * content components (sinks, vertical, slash content, topic, needle) write post-rotation
 * coordinates, counter-rotated before RoPE is applied to the whole head, so their logits do not
 * depend on the distance between query and key (as in rotary dims too slow to matter, or NoPE
 * dims). With d = 64 and theta = 10^4 only the lowest few pairs turn by less than a radian over
 * 4096 tokens, too few to carry content at a distance, hence the compensation. */
#ifndef AB_GEN_GEN_INTERNAL_H
#define AB_GEN_GEN_INTERNAL_H

#include <stdint.h>

#include "core/rng.h"
#include "gen/gen.h"

/* Random stream tags: stream = ab_stream(AB_GEN_TAG_x, layer, head, part). */
enum {
    AB_GEN_TAG_ASSIGN = 0x61737367,  /* profile assignment (layer, kv) */
    AB_GEN_TAG_COMP = 0x636f6d70,    /* component content (layer, kv, component) */
    AB_GEN_TAG_POS = 0x706f7369,     /* component positions (layer, kv, component) */
    AB_GEN_TAG_VALUE = 0x76616c75,   /* values (layer, kv, 0) */
    AB_GEN_TAG_GAIN = 0x6761696e,    /* query head gains (layer, head, component) */
    AB_GEN_TAG_TASK = 0x7461736b,    /* task layout (0, 0, part) */
    AB_GEN_TAG_TASKDIR = 0x74646972, /* task directions (layer, kv, 0) */
};

/* Logit scale and amplitude: a component with strength S (nats) puts sqrt(S / scale) on both
 * the query and the key side of its direction, so scale * q.k = S for aligned unit directions. */
double ab_gen_amp(double strength, double scale);

/* Per-component allocation rules (min / weight / max pairs), and the allocation itself:
 * fills pair_comp[0 .. d/2) for the components with strength > 0 (and the needle when the head
 * is planted). AB_E_USAGE when d is too small. */
int ab_gen_alloc_pairs(const struct ab_gen_opts *o, struct ab_gen_head *hd, int64_t slash_period,
                       const char *profile_name);

/* Lists the pairs owned by comp in the order they were allocated; returns the count. */
int64_t ab_gen_pairs_of(const struct ab_gen_head *hd, int64_t n_pair, int comp, int64_t *pairs);

/* RoPE frequency of pair p: theta^(-2p/d) (attn.h convention). */
double ab_gen_freq(int64_t p, int64_t d, double theta);

/* Scratch of one head's generation. The component writers add their part of Q (the kv head's
 * base query, before per-query-head gains) and K into pre (pre-rotation coordinates) and post
 * (post-rotation coordinates, counter-rotated later); they also set V where they own it. */
struct ab_gen_ctx {
    const struct ab_gen_opts *o;
    const struct ab_gen_plan *plan;
    const struct ab_gen_head *hd;
    int64_t layer, kv, n, d, d_v, n_pair;
    double scale;
    double *q_pre, *q_post; /* (n, d) */
    double *k_pre, *k_post; /* (n, d) */
    float *v;               /* (n, d_v) the kv head's values */
    uint8_t *task_pos;      /* (n) 1 at task rows and task keys (generic choices avoid them) */
    int64_t *pairs;         /* (n_pair) scratch for ab_gen_pairs_of */
};

/* Writes component comp of the head (strength hd->strength[comp] > 0). AB_OK, or AB_E_NOMEM
 * without a detail when its scratch cannot be allocated (the head is then incomplete). */
int ab_gen_component(struct ab_gen_ctx *c, int comp);

/* Task layout of the plan (rows, keys, answers, codebook); planted[] is filled by the caller.
 * AB_E_USAGE when the tasks do not fit the sequence. */
int ab_gen_tasks_layout(const struct ab_gen_opts *o, struct ab_gen_plan *plan);

/* Plants the tasks in a planted head: task query rows carry only the sink direction and their
 * task direction; task keys get their task direction in the needle pairs and their codeword as
 * value. Runs after the components. */
void ab_gen_tasks_plant(struct ab_gen_ctx *c);

/* Profile assignment of every (layer, kv head) slot from opts (preset, profile or mix):
 * profile[slot] = index into ab_profiles, secondary[slot] = 1 when the model preset adds a
 * secondary sink. AB_E_USAGE with a message on bad options. */
int ab_gen_assign(const struct ab_gen_opts *o, int *profile, int8_t *secondary);

/* u[0..m) = a uniformly random unit vector (a Gaussian draw normalised). */
void ab_gen_rand_unit(struct ab_rng *r, double *u, int64_t m);

#endif
