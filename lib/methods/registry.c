/* registry.c - the static table of methods (ggml's op table idea): one row per method, in
 * catalogue order (../shared/spec/methods.md). Adding a method = writing its file and a row here;
 * the generic battery in tests/test_methods.c then runs it. */
#include "methods/method.h"

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
extern const struct ab_method ab_method_tidal, ab_method_duo;
extern const struct ab_method ab_method_razor, ab_method_moa;
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

int ab_method_count(void) { return N_BUILTIN; }

const struct ab_method *ab_method_at(int i) { return i >= 0 && i < N_BUILTIN ? builtin[i] : NULL; }
