/* registry.c - the static table of methods (ggml's op table idea): one row per method, in
 * catalogue order (../shared/spec/methods.md), then the rows of loaded plugins (plugin.c). Adding a
 * method = writing its file and a row here; the generic battery (lib/eval/battery.c, run by
 * tests/test_methods.c and by `attnbench selftest`) then checks it. */
#include "methods/method.h"

#include "core/ab.h"

#include <stddef.h>

extern const struct ab_method ab_method_dense, ab_method_window, ab_method_streaming,
    ab_method_streaming1, ab_method_streaming16,
    ab_method_block_topk, ab_method_block_oracle, ab_method_vertical_slash,
    ab_method_flexprefill, ab_method_quest, ab_method_snapkv, ab_method_ada_snapkv, ab_method_pyramidkv,
    ab_method_h2o, ab_method_tova;
extern const struct ab_method ab_method_sale, ab_method_permuted_block, ab_method_biformer,
    ab_method_dhsa;
extern const struct ab_method ab_method_a2sf, ab_method_keyformer, ab_method_recycled,
    ab_method_retrieval_attn;
extern const struct ab_method ab_method_xattention, ab_method_hip, ab_method_routing,
    ab_method_hyper;
extern const struct ab_method ab_method_dilated, ab_method_bigbird, ab_method_power,
    ab_method_shard;
extern const struct ab_method ab_method_a_shape, ab_method_tri_shape, ab_method_strided,
    ab_method_s2, ab_method_s2_sink;
extern const struct ab_method ab_method_moba, ab_method_sampleattention, ab_method_cca;
extern const struct ab_method ab_method_tidal, ab_method_duo;
extern const struct ab_method ab_method_razor, ab_method_moa;
extern const struct ab_method ab_method_kivi_2, ab_method_kivi_4, ab_method_int8;
extern const struct ab_method ab_method_knorm, ab_method_random, ab_method_keydiff,
    ab_method_lagkv, ab_method_expected_attention, ab_method_q_filters;
extern const struct ab_method ab_method_observed_attention, ab_method_criticalkv,
    ab_method_chunkkv, ab_method_simlayerkv, ab_method_think;
extern const struct ab_method ab_method_infllm, ab_method_tokenselect, ab_method_spatten,
    ab_method_longheads, ab_method_alisa;
extern const struct ab_method ab_method_mala, ab_method_sigmoid, ab_method_softplus,
    ab_method_delta_const;
extern const struct ab_method ab_method_nystrom, ab_method_key_pooling, ab_method_agent,
    ab_method_window_linear;
extern const struct ab_method ab_method_linear_elu, ab_method_performer, ab_method_cosformer,
    ab_method_lightning;
extern const struct ab_method ab_method_based, ab_method_retnet, ab_method_gated_delta;
extern const struct ab_method ab_method_act, ab_method_zerotuning, ab_method_redistribute,
    ab_method_sink_logit, ab_method_off_by_one, ab_method_uniform_head;

static const struct ab_method *const builtin[] = {
    &ab_method_dense,
    /* static */
    &ab_method_window,
    &ab_method_streaming,
    &ab_method_streaming1,
    &ab_method_streaming16,
    &ab_method_dilated,
    &ab_method_bigbird,
    &ab_method_power,
    &ab_method_shard,
    /* MInference / SCBench shapes, strided, S2 (issue 18) */
    &ab_method_a_shape,
    &ab_method_tri_shape,
    &ab_method_strided,
    &ab_method_s2,
    &ab_method_s2_sink,
    /* dynamic (prefill) */
    &ab_method_block_topk,
    &ab_method_block_oracle,
    &ab_method_vertical_slash,
    &ab_method_flexprefill,
    &ab_method_xattention,
    &ab_method_hip,
    &ab_method_routing,
    &ab_method_hyper,
    &ab_method_sale,
    &ab_method_permuted_block,
    &ab_method_biformer,
    &ab_method_dhsa,
    /* MoBA, SampleAttention, CCA (issue 18) */
    &ab_method_moba,
    &ab_method_sampleattention,
    &ab_method_cca,
    /* kv (decode) */
    &ab_method_quest,
    &ab_method_snapkv,
    &ab_method_ada_snapkv,
    &ab_method_pyramidkv,
    &ab_method_h2o,
    &ab_method_tova,
    &ab_method_a2sf,
    &ab_method_keyformer,
    &ab_method_tidal,
    &ab_method_recycled,
    &ab_method_retrieval_attn,
    &ab_method_duo,
    &ab_method_razor,
    &ab_method_moa,
    /* kvpress scorers and more eviction rules (issue 18) */
    &ab_method_knorm,
    &ab_method_random,
    &ab_method_keydiff,
    &ab_method_lagkv,
    &ab_method_expected_attention,
    &ab_method_q_filters,
    &ab_method_observed_attention,
    &ab_method_criticalkv,
    &ab_method_chunkkv,
    &ab_method_simlayerkv,
    &ab_method_think,
    /* per-step retrieval from the cache (issue 18) */
    &ab_method_infllm,
    &ab_method_tokenselect,
    &ab_method_spatten,
    &ab_method_longheads,
    &ab_method_alisa,
    /* kv quantization (issue 18): accuracy against bytes_kv */
    &ab_method_kivi_2,
    &ab_method_kivi_4,
    &ab_method_int8,
    /* linear and approximate kernels (issue 8) */
    &ab_method_linear_elu,
    &ab_method_performer,
    &ab_method_cosformer,
    &ab_method_nystrom,
    &ab_method_key_pooling,
    &ab_method_lightning,
    &ab_method_mala,
    &ab_method_agent,
    &ab_method_window_linear,
    &ab_method_sigmoid,
    &ab_method_softplus,
    &ab_method_delta_const,
    /* Based, RetNet, gated delta rule (issue 18) */
    &ab_method_based,
    &ab_method_retnet,
    &ab_method_gated_delta,
    /* calibration */
    &ab_method_act,
    &ab_method_zerotuning,
    &ab_method_redistribute,
    &ab_method_sink_logit,
    &ab_method_off_by_one,
    &ab_method_uniform_head,
};
enum { N_BUILTIN = sizeof builtin / sizeof builtin[0] };

/* Rows loaded at run time (plugin.c), after the built-in ones, in load order; each with the
 * file it came from. Written only while loading, before any engine work starts. */
enum { MAX_LOADED = 1024 };
static const struct ab_method *loaded[MAX_LOADED];
static const char *loaded_from[MAX_LOADED];
static int n_loaded;

int ab_method_count(void) { return N_BUILTIN + n_loaded; }

const struct ab_method *ab_method_at(int i)
{
    if (i >= 0 && i < N_BUILTIN) return builtin[i];
    if (i >= N_BUILTIN && i < N_BUILTIN + n_loaded) return loaded[i - N_BUILTIN];
    return NULL;
}

const char *ab_method_origin(const struct ab_method *m)
{
    for (int i = 0; i < n_loaded; i++)
        if (loaded[i] == m) return loaded_from[i];
    return NULL;
}

int ab_registry_add(const struct ab_method *const *rows, int n, const char *from)
{
    if (n < 0 || n > MAX_LOADED - n_loaded)
        return ab_fail(AB_E_USAGE, "more than %d plugin rows in all", MAX_LOADED);
    for (int i = 0; i < n; i++) loaded[n_loaded + i] = rows[i], loaded_from[n_loaded + i] = from;
    n_loaded += n;
    return AB_OK;
}
