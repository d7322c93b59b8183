/* hf_config.c — read an LFM2 / LFM2.5 (new- and old-style keys, docs/architecture.md §5.1) or LFM2-MoE
 * config.json. */
#include "format/format.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* First of several synonymous keys that is present (and not null). */
static const lfm_json *get_any(const lfm_json *root, const char *const *keys, const char **which) {
    for (int i = 0; keys[i]; i++) {
        const lfm_json *v = lfm_json_get(root, keys[i]);
        if (v && v->type != LFM_JSON_NULL) {
            if (which) *which = keys[i];
            return v;
        }
    }
    return NULL;
}

static lfm_status get_int(const lfm_json *root, const char *what, const char *const *keys, bool required,
                          int64_t def, int64_t lo, int64_t hi, int64_t *out) {
    const char *key = keys[0];
    const lfm_json *v = get_any(root, keys, &key);
    if (!v) {
        if (required) {
            char names[160] = "";
            for (int i = 0; keys[i]; i++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s\"%s\"", i ? " or " : "", keys[i]);
            return lfm_fail(LFM_ERR_FORMAT, "%s: missing required field %s", what, names);
        }
        *out = def;
        return LFM_OK;
    }
    int64_t x;
    if (v->type == LFM_JSON_NUMBER && v->is_int) x = v->i;
    else if (v->type == LFM_JSON_NUMBER && v->num == floor(v->num) && fabs(v->num) < 9e15) x = (int64_t)v->num;
    else return lfm_fail(LFM_ERR_FORMAT, "%s: field \"%s\" must be an integer", what, key);
    if (x < lo || x > hi)
        return lfm_fail(LFM_ERR_FORMAT, "%s: field \"%s\" = %lld out of range [%lld, %lld]", what, key, (long long)x,
                        (long long)lo, (long long)hi);
    *out = x;
    return LFM_OK;
}

static lfm_status get_num(const lfm_json *root, const char *what, const char *const *keys, double def, double *out) {
    const char *key = keys[0];
    const lfm_json *v = get_any(root, keys, &key);
    if (!v) {
        *out = def;
        return LFM_OK;
    }
    if (v->type != LFM_JSON_NUMBER || !isfinite(v->num))
        return lfm_fail(LFM_ERR_FORMAT, "%s: field \"%s\" must be a number", what, key);
    *out = v->num;
    return LFM_OK;
}

static lfm_status get_bool(const lfm_json *root, const char *what, const char *const *keys, bool def, bool *out) {
    const char *key = keys[0];
    const lfm_json *v = get_any(root, keys, &key);
    if (!v) {
        *out = def;
        return LFM_OK;
    }
    if (v->type != LFM_JSON_BOOL) return lfm_fail(LFM_ERR_FORMAT, "%s: field \"%s\" must be true or false", what, key);
    *out = v->b;
    return LFM_OK;
}

/* bos/eos/pad: an integer, a list of integers (first one), or null/absent (-1). */
static lfm_status get_token(const lfm_json *root, const char *what, const char *key, int64_t n_vocab, lfm_token *out) {
    const lfm_json *v = lfm_json_get(root, key);
    *out = -1;
    if (!v || v->type == LFM_JSON_NULL) return LFM_OK;
    if (v->type == LFM_JSON_ARRAY && v->n > 0) v = v->items[0];
    if (v->type != LFM_JSON_NUMBER || !v->is_int || v->i < 0 || v->i >= n_vocab)
        return lfm_fail(LFM_ERR_FORMAT, "%s: field \"%s\" must be a token id in [0, %lld)", what, key, (long long)n_vocab);
    *out = (lfm_token)v->i;
    return LFM_OK;
}

#define KEYS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define TRY(expr)                                                                                                      \
    do {                                                                                                               \
        lfm_status st_ = (expr);                                                                                       \
        if (st_ != LFM_OK) return st_;                                                                                 \
    } while (0)

/* Which model config.json describes: dense LFM2 / LFM2.5 (model_type "lfm2") or LFM2-MoE
 * ("lfm2_moe"); anything else, vision-language models included, is refused by name. */
static lfm_status check_variant(const lfm_json *root, const char *what, bool *moe) {
    const lfm_json *mt = lfm_json_get(root, "model_type");
    if (mt && mt->type != LFM_JSON_STRING) return lfm_fail(LFM_ERR_FORMAT, "%s: \"model_type\" must be a string", what);
    *moe = mt && strcmp(mt->str, "lfm2_moe") == 0;
    if (mt && !*moe && strcmp(mt->str, "lfm2") != 0) {
        if (strstr(mt->str, "vl"))
            return lfm_fail(LFM_ERR_UNSUPPORTED, "%s: model_type \"%s\" is a vision-language model; only text LFM2/LFM2.5 "
                            "(model_type \"lfm2\") and LFM2-MoE (\"lfm2_moe\") are supported", what, mt->str);
        return lfm_fail(LFM_ERR_UNSUPPORTED, "%s: model_type \"%s\" is not supported (expected \"lfm2\" or \"lfm2_moe\")", what,
                        mt->str);
    }
    if (!*moe) { /* MoE keys under another model_type: a config we would misread as dense */
        static const char *const moe_keys[] = {"num_experts", "num_experts_per_tok", "num_dense_layers", "moe_intermediate_size", NULL};
        for (int i = 0; moe_keys[i]; i++)
            if (lfm_json_get(root, moe_keys[i]))
                return lfm_fail(LFM_ERR_UNSUPPORTED, "%s: \"%s\" marks a mixture-of-experts model, but model_type is not "
                                "\"lfm2_moe\"", what, moe_keys[i]);
    }
    static const char *const vl_keys[] = {"vision_config", "text_config", "image_token_index", "image_token_id", NULL};
    for (int i = 0; vl_keys[i]; i++)
        if (lfm_json_get(root, vl_keys[i]))
            return lfm_fail(LFM_ERR_UNSUPPORTED, "%s: \"%s\" marks a vision-language model, which is not supported", what, vl_keys[i]);
    const lfm_json *arch = lfm_json_get(root, "architectures");
    const char *want = *moe ? "Lfm2MoeForCausalLM" : "Lfm2ForCausalLM", *base = *moe ? "Lfm2MoeModel" : "Lfm2Model";
    if (arch && arch->type == LFM_JSON_ARRAY) {
        for (int64_t i = 0; i < arch->n; i++) {
            const lfm_json *a = arch->items[i];
            if (a->type == LFM_JSON_STRING && strncmp(a->str, "Lfm2", 4) == 0 && strcmp(a->str, want) != 0 && strcmp(a->str, base) != 0)
                return lfm_fail(LFM_ERR_UNSUPPORTED, "%s: architecture \"%s\" is not supported (expected %s)", what, a->str, want);
        }
    }
    return LFM_OK;
}

/* LFM2-MoE's router and experts (transformers' Lfm2MoeConfig; its defaults where a key is absent). */
static lfm_status read_moe(const lfm_json *root, const char *what, int64_t n_layer, lfm_config *cfg) {
    int64_t E, k, fe, dense;
    TRY(get_int(root, what, KEYS("num_experts"), true, 0, 1, LFM_MAX_EXPERTS, &E));
    TRY(get_int(root, what, KEYS("num_experts_per_tok"), true, 0, 1, LFM_MAX_EXPERTS_USED, &k));
    TRY(get_int(root, what, KEYS("moe_intermediate_size"), true, 0, 1, 1 << 20, &fe));
    TRY(get_int(root, what, KEYS("num_dense_layers"), false, 2, 0, INT32_MAX, &dense));
    if (k > E)
        return lfm_fail(LFM_ERR_FORMAT, "%s: num_experts_per_tok %lld is larger than num_experts %lld", what, (long long)k, (long long)E);
    bool bias = true, norm = true;
    double scale = 1.0;
    TRY(get_bool(root, what, KEYS("use_expert_bias"), true, &bias));
    TRY(get_bool(root, what, KEYS("norm_topk_prob"), true, &norm));
    TRY(get_num(root, what, KEYS("routed_scaling_factor"), 1.0, &scale));
    cfg->n_expert = (int32_t)E;
    cfg->n_expert_used = (int32_t)k;
    cfg->n_ff_exp = (int32_t)fe;
    cfg->n_layer_dense = (int32_t)(dense < n_layer ? dense : n_layer);
    cfg->expert_bias = bias;
    cfg->expert_norm = norm;
    cfg->expert_scale = (float)scale;
    return LFM_OK;
}

lfm_status lfm_config_from_json(const lfm_json *root, const char *what, lfm_config *cfg, lfm_ff_candidates *ffc) {
    memset(cfg, 0, sizeof *cfg);
    if (!root || root->type != LFM_JSON_OBJECT) return lfm_fail(LFM_ERR_FORMAT, "%s: expected a JSON object", what);
    bool moe = false;
    TRY(check_variant(root, what, &moe));

    int64_t V, H, L, nh, nkv, hd, ff, mult_of, K, n_ctx;
    TRY(get_int(root, what, KEYS("vocab_size"), true, 0, 1, 1 << 24, &V));
    TRY(get_int(root, what, KEYS("hidden_size", "block_dim", "conv_dim"), true, 0, 1, 1 << 16, &H));
    TRY(get_int(root, what, KEYS("num_hidden_layers"), true, 0, 1, LFM_MAX_LAYERS, &L));
    TRY(get_int(root, what, KEYS("num_attention_heads", "num_heads"), true, 0, 1, 4096, &nh));
    TRY(get_int(root, what, KEYS("num_key_value_heads"), true, 0, 1, 4096, &nkv));
    TRY(get_int(root, what, KEYS("head_dim"), false, H / nh, 2, 1 << 16, &hd)); /* kernel limit: lfm_model_validate */
    /* LFM2-MoE's dense layers take intermediate_size as it is (Lfm2MoeMLP), LFM2's FFN block_ff_dim first */
    TRY(get_int(root, what, moe ? KEYS("intermediate_size") : KEYS("block_ff_dim", "intermediate_size"), true, 0, 1, 1 << 20, &ff));
    TRY(get_int(root, what, KEYS("block_multiple_of"), false, 256, 1, 1 << 20, &mult_of));
    TRY(get_int(root, what, KEYS("conv_L_cache"), false, 3, 1, 64, &K));
    TRY(get_int(root, what, KEYS("max_position_embeddings"), false, 128000, 1, INT32_MAX, &n_ctx));
    if (H % nh != 0 && !lfm_json_get(root, "head_dim"))
        return lfm_fail(LFM_ERR_FORMAT, "%s: hidden_size %lld is not a multiple of num_attention_heads %lld", what, (long long)H, (long long)nh);
    if (nh % nkv != 0)
        return lfm_fail(LFM_ERR_FORMAT, "%s: num_attention_heads %lld is not a multiple of num_key_value_heads %lld", what, (long long)nh, (long long)nkv);
    if (hd % 2 != 0) return lfm_fail(LFM_ERR_FORMAT, "%s: head_dim %lld must be even for RoPE", what, (long long)hd);

    bool auto_adjust, conv_bias, tied;
    TRY(get_bool(root, what, KEYS("block_auto_adjust_ff_dim"), true, &auto_adjust));
    if (moe) auto_adjust = false;
    TRY(get_bool(root, what, KEYS("conv_bias"), false, &conv_bias));
    TRY(get_bool(root, what, KEYS("tie_word_embeddings", "tie_embedding"), true, &tied));
    if (conv_bias) return lfm_fail(LFM_ERR_UNSUPPORTED, "%s: conv_bias = true is not supported (no released LFM2 model uses it)", what);

    /* FFN width (§2.4): transformers' reading first, then the converters' ones */
    const lfm_json *mj = lfm_json_get(root, "block_ffn_dim_multiplier");
    bool has_mult = mj && mj->type != LFM_JSON_NULL;
    double mult = 1.0;
    if (has_mult) {
        if (mj->type != LFM_JSON_NUMBER || !(mj->num > 0) || !isfinite(mj->num))
            return lfm_fail(LFM_ERR_FORMAT, "%s: \"block_ffn_dim_multiplier\" must be a positive number or null", what);
        mult = mj->num;
    }
    int64_t f_hf = ff, f_round = ff;
    if (auto_adjust) {
        int64_t f = (int64_t)(2.0 * (double)ff / 3.0);
        if (has_mult) f = (int64_t)(mult * (double)f);
        int64_t rounded = mult_of * ((f + mult_of - 1) / mult_of);
        f_hf = has_mult ? rounded : f;
        f_round = rounded;
    }
    if (f_hf < 1) return lfm_fail(LFM_ERR_FORMAT, "%s: derived FFN width %lld is not positive", what, (long long)f_hf);
    ffc->ff_hf = f_hf;
    ffc->ff_alt[0] = f_round;
    ffc->ff_alt[1] = ff;

    double eps, theta = 1e6;
    TRY(get_num(root, what, KEYS("norm_eps", "block_norm_eps"), 1e-5, &eps));
    if (!(eps > 0) || eps > 1) return lfm_fail(LFM_ERR_FORMAT, "%s: norm_eps %g must be in (0, 1]", what, eps);
    const lfm_json *rp = get_any(root, KEYS("rope_parameters", "rope_scaling"), NULL);
    if (rp && rp->type != LFM_JSON_OBJECT) return lfm_fail(LFM_ERR_FORMAT, "%s: rope_parameters must be an object", what);
    if (rp) {
        const lfm_json *rt = get_any(rp, KEYS("rope_type", "type"), NULL);
        if (rt && (rt->type != LFM_JSON_STRING || strcmp(rt->str, "default") != 0))
            return lfm_fail(LFM_ERR_UNSUPPORTED, "%s: rope_type \"%s\" is not supported (only \"default\")", what,
                            rt->type == LFM_JSON_STRING ? rt->str : "?");
        TRY(get_num(rp, what, KEYS("rope_theta"), 0, &theta));
    }
    if (!rp || theta == 0) TRY(get_num(root, what, KEYS("rope_theta", "theta"), 1e6, &theta));
    if (!(theta > 1)) return lfm_fail(LFM_ERR_FORMAT, "%s: rope_theta %g must be > 1", what, theta);

    /* layer pattern */
    const lfm_json *lt = lfm_json_get(root, "layer_types");
    const lfm_json *fi = lfm_json_get(root, "full_attn_idxs");
    if (lt && lt->type != LFM_JSON_NULL) {
        if (lt->type != LFM_JSON_ARRAY || lt->n != L)
            return lfm_fail(LFM_ERR_FORMAT, "%s: \"layer_types\" must be a list of %lld strings", what, (long long)L);
        for (int64_t i = 0; i < L; i++) {
            const lfm_json *s = lt->items[i];
            if (s->type == LFM_JSON_STRING && strcmp(s->str, "conv") == 0) cfg->is_attn[i] = 0;
            else if (s->type == LFM_JSON_STRING && strcmp(s->str, "full_attention") == 0) cfg->is_attn[i] = 1;
            else
                return lfm_fail(LFM_ERR_UNSUPPORTED, "%s: layer_types[%lld] = \"%s\": expected \"conv\" or \"full_attention\"", what,
                                (long long)i, s->type == LFM_JSON_STRING ? s->str : "?");
        }
    } else if (fi && fi->type != LFM_JSON_NULL) {
        if (fi->type != LFM_JSON_ARRAY) return lfm_fail(LFM_ERR_FORMAT, "%s: \"full_attn_idxs\" must be a list of layer indices", what);
        for (int64_t i = 0; i < fi->n; i++) {
            const lfm_json *x = fi->items[i];
            if (x->type != LFM_JSON_NUMBER || !x->is_int || x->i < 0 || x->i >= L)
                return lfm_fail(LFM_ERR_FORMAT, "%s: full_attn_idxs[%lld] must be a layer index in [0, %lld)", what, (long long)i, (long long)L);
            cfg->is_attn[x->i] = 1;
        }
    } else {
        return lfm_fail(LFM_ERR_FORMAT, "%s: missing required field \"layer_types\" (or \"full_attn_idxs\")", what);
    }

    cfg->n_vocab = (int32_t)V;
    cfg->n_embd = (int32_t)H;
    cfg->n_layer = (int32_t)L;
    cfg->n_head = (int32_t)nh;
    cfg->n_head_kv = (int32_t)nkv;
    cfg->head_dim = (int32_t)hd;
    cfg->n_ff = (int32_t)f_hf;
    cfg->conv_l_cache = (int32_t)K;
    cfg->n_ctx_train = (int32_t)n_ctx;
    cfg->norm_eps = (float)eps;
    cfg->rope_theta = (float)theta;
    cfg->tied_output = tied ? 1 : 0;
    if (moe) TRY(read_moe(root, what, L, cfg));
    TRY(get_token(root, what, "bos_token_id", V, &cfg->bos_id));
    TRY(get_token(root, what, "eos_token_id", V, &cfg->eos_id));
    TRY(get_token(root, what, "pad_token_id", V, &cfg->pad_id));
    return LFM_OK;
}
