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

/* Which model config.json describes. */
typedef enum { VARIANT_LFM2, VARIANT_LFM2_MOE, VARIANT_LFM3 } variant;

/* Dense LFM2 / LFM2.5 (model_type "lfm2"), LFM2-MoE ("lfm2_moe") or LFM3 ("lfm3"); anything else,
 * vision-language models included, is refused by name. */
static lfm_status check_variant(const lfm_json *root, const char *what, variant *out) {
    const lfm_json *mt = lfm_json_get(root, "model_type");
    if (mt && mt->type != LFM_JSON_STRING) return lfm_fail(LFM_ERR_FORMAT, "%s: \"model_type\" must be a string", what);
    *out = !mt || strcmp(mt->str, "lfm2") == 0 ? VARIANT_LFM2
           : strcmp(mt->str, "lfm2_moe") == 0  ? VARIANT_LFM2_MOE
           : strcmp(mt->str, "lfm3") == 0      ? VARIANT_LFM3
                                               : (variant)-1;
    if ((int)*out < 0) {
        if (strstr(mt->str, "vl"))
            return lfm_fail(LFM_ERR_UNSUPPORTED, "%s: model_type \"%s\" is a vision-language model; only text LFM2/LFM2.5 "
                            "(model_type \"lfm2\"), LFM2-MoE (\"lfm2_moe\") and LFM3 (\"lfm3\") are supported", what, mt->str);
        return lfm_fail(LFM_ERR_UNSUPPORTED, "%s: model_type \"%s\" is not supported (expected \"lfm2\", \"lfm2_moe\" or \"lfm3\")",
                        what, mt->str);
    }
    if (*out != VARIANT_LFM2_MOE) { /* MoE keys under another model_type: a config we would misread as dense */
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
    static const char *const wants[] = {"Lfm2ForCausalLM", "Lfm2MoeForCausalLM", "Lfm3ForCausalLM"};
    static const char *const bases[] = {"Lfm2Model", "Lfm2MoeModel", "Lfm3Model"};
    const char *want = wants[*out], *base = bases[*out];
    if (arch && arch->type == LFM_JSON_ARRAY) {
        for (int64_t i = 0; i < arch->n; i++) {
            const lfm_json *a = arch->items[i];
            if (a->type == LFM_JSON_STRING && strncmp(a->str, "Lfm", 3) == 0 && strcmp(a->str, want) != 0 && strcmp(a->str, base) != 0)
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

/* One attention kind's RoPE from LFM3's rope_parameters[kind] (transformers' Lfm3RotaryEmbedding):
 * "default" rotates every pair at θ^(-2i/head_dim); "proportional" the first
 * int(partial_rotary_factor·head_dim // 2) pairs at those same angles (the denominator stays head_dim)
 * and leaves the others as they are (zero frequency: cos 1, sin 0). */
static lfm_status read_rope_kind(const lfm_json *rp, const char *what, const char *kind, int64_t hd, const char *def_type,
                                 double def_theta, double def_partial, float *theta, int32_t *pairs) {
    const lfm_json *o = rp ? lfm_json_get(rp, kind) : NULL;
    if (rp && (!o || o->type == LFM_JSON_NULL))
        return lfm_fail(LFM_ERR_FORMAT, "%s: rope_parameters has no \"%s\" entry (LFM3 keeps one per attention kind)", what, kind);
    if (o && o->type != LFM_JSON_OBJECT)
        return lfm_fail(LFM_ERR_FORMAT, "%s: rope_parameters[\"%s\"] must be an object", what, kind);
    const char *type = def_type;
    if (o) {
        const lfm_json *rt = get_any(o, KEYS("rope_type", "type"), NULL);
        if (rt && rt->type != LFM_JSON_STRING) return lfm_fail(LFM_ERR_FORMAT, "%s: rope_parameters[\"%s\"].rope_type must be a string", what, kind);
        type = rt ? rt->str : "default";
    }
    double th = def_theta, partial = def_partial, factor = 1.0;
    if (o) {
        TRY(get_num(o, what, KEYS("rope_theta"), def_theta, &th));
        TRY(get_num(o, what, KEYS("partial_rotary_factor"), 1.0, &partial));
        TRY(get_num(o, what, KEYS("factor"), 1.0, &factor));
    }
    if (!(th > 1)) return lfm_fail(LFM_ERR_FORMAT, "%s: rope_parameters[\"%s\"].rope_theta %g must be > 1", what, kind, th);
    if (strcmp(type, "default") == 0) {
        *pairs = (int32_t)(hd / 2);
    } else if (strcmp(type, "proportional") == 0) {
        if (factor != 1.0)
            return lfm_fail(LFM_ERR_UNSUPPORTED, "%s: rope_parameters[\"%s\"].factor %g: only an unscaled proportional RoPE (factor 1) "
                            "is supported", what, kind, factor);
        if (!(partial >= 0) || partial > 1)
            return lfm_fail(LFM_ERR_FORMAT, "%s: rope_parameters[\"%s\"].partial_rotary_factor %g must be in [0, 1]", what, kind, partial);
        *pairs = (int32_t)floor(partial * (double)hd / 2.0); /* Python's int(partial * head_dim // 2) */
    } else {
        return lfm_fail(LFM_ERR_UNSUPPORTED, "%s: rope_parameters[\"%s\"].rope_type \"%.40s\" is not supported (expected \"default\" "
                        "or \"proportional\")", what, kind, type);
    }
    *theta = (float)th;
    return LFM_OK;
}

/* LFM3's own keys (transformers' Lfm3Config; its defaults where a key is absent). */
static lfm_status read_lfm3(const lfm_json *root, const char *what, int64_t hd, lfm_config *cfg) {
    bool sandwich = true, gate = true;
    TRY(get_bool(root, what, KEYS("use_sandwich_norm"), true, &sandwich));
    TRY(get_bool(root, what, KEYS("use_attention_gate"), true, &gate));
    int64_t window = 256;
    const lfm_json *w = lfm_json_get(root, "sliding_window");
    if (w && w->type == LFM_JSON_NULL) window = 0; /* then no layer may slide (checked with the layer types) */
    else TRY(get_int(root, what, KEYS("sliding_window"), false, 256, 1, INT32_MAX, &window));
    const lfm_json *rp = lfm_json_get(root, "rope_parameters");
    if (rp && rp->type == LFM_JSON_NULL) rp = NULL;
    if (rp && rp->type != LFM_JSON_OBJECT) return lfm_fail(LFM_ERR_FORMAT, "%s: rope_parameters must be an object", what);
    if (rp && (lfm_json_get(rp, "rope_type") || lfm_json_get(rp, "rope_theta")))
        return lfm_fail(LFM_ERR_FORMAT, "%s: LFM3's rope_parameters must be keyed by attention kind (\"full_attention\", "
                        "\"sliding_attention\"), not one flat entry", what);
    cfg->arch = LFM_ARCH_LFM3;
    cfg->sandwich_norm = sandwich;
    cfg->attn_gate = gate;
    cfg->n_swa = (int32_t)window;
    /* a kind with no layer may have no entry: transformers reads only the kinds layer_types holds */
    bool has_full = false, has_swa = false;
    const lfm_json *lt = lfm_json_get(root, "layer_types");
    if (lt && lt->type == LFM_JSON_ARRAY)
        for (int64_t i = 0; i < lt->n; i++)
            if (lt->items[i]->type == LFM_JSON_STRING) {
                has_full |= strcmp(lt->items[i]->str, "full_attention") == 0;
                has_swa |= strcmp(lt->items[i]->str, "sliding_attention") == 0;
            }
    if (!lt || lt->type != LFM_JSON_ARRAY) has_full = has_swa = true; /* the default pattern has both */
    cfg->rope_theta = 1e6f, cfg->rope_pairs = (int32_t)(hd / 2);
    cfg->rope_theta_swa = 1e4f, cfg->rope_pairs_swa = (int32_t)(hd / 2);
    if (has_full || !rp)
        TRY(read_rope_kind(rp, what, "full_attention", hd, "proportional", 1e6, 0.5, &cfg->rope_theta, &cfg->rope_pairs));
    if (has_swa || !rp)
        TRY(read_rope_kind(rp, what, "sliding_attention", hd, "default", 1e4, 1.0, &cfg->rope_theta_swa, &cfg->rope_pairs_swa));
    return LFM_OK;
}

lfm_status lfm_config_from_json(const lfm_json *root, const char *what, lfm_config *cfg, lfm_ff_candidates *ffc) {
    memset(cfg, 0, sizeof *cfg);
    if (!root || root->type != LFM_JSON_OBJECT) return lfm_fail(LFM_ERR_FORMAT, "%s: expected a JSON object", what);
    variant var = VARIANT_LFM2;
    TRY(check_variant(root, what, &var));
    const bool moe = var == VARIANT_LFM2_MOE, lfm3 = var == VARIANT_LFM3;

    /* LFM3: transformers' Lfm3Config defaults where a key is absent (vocabulary 128000, head_dim 128,
     * conv kernel 7); LFM2 requires the vocabulary and derives head_dim */
    int64_t V, H, L, nh, nkv, hd, ff, mult_of, K, n_ctx;
    TRY(get_int(root, what, KEYS("vocab_size"), !lfm3, 128000, 1, 1 << 24, &V));
    TRY(get_int(root, what, KEYS("hidden_size", "block_dim", "conv_dim"), true, 0, 1, 1 << 16, &H));
    TRY(get_int(root, what, KEYS("num_hidden_layers"), true, 0, 1, LFM_MAX_LAYERS, &L));
    TRY(get_int(root, what, KEYS("num_attention_heads", "num_heads"), true, 0, 1, 4096, &nh));
    TRY(get_int(root, what, KEYS("num_key_value_heads"), true, 0, 1, 4096, &nkv));
    TRY(get_int(root, what, KEYS("head_dim"), false, lfm3 ? 128 : H / nh, 2, 1 << 16, &hd)); /* kernel limit: lfm_model_validate */
    /* LFM2-MoE's dense layers and LFM3's FFN take intermediate_size as it is (Lfm2MoeMLP), LFM2's FFN block_ff_dim first */
    TRY(get_int(root, what, moe || lfm3 ? KEYS("intermediate_size") : KEYS("block_ff_dim", "intermediate_size"), true, 0, 1, 1 << 20, &ff));
    TRY(get_int(root, what, KEYS("block_multiple_of"), false, 256, 1, 1 << 20, &mult_of));
    TRY(get_int(root, what, KEYS("conv_L_cache"), false, lfm3 ? 7 : 3, 1, 64, &K));
    TRY(get_int(root, what, KEYS("max_position_embeddings"), false, 128000, 1, INT32_MAX, &n_ctx));
    if (!lfm3 && H % nh != 0 && !lfm_json_get(root, "head_dim"))
        return lfm_fail(LFM_ERR_FORMAT, "%s: hidden_size %lld is not a multiple of num_attention_heads %lld", what, (long long)H, (long long)nh);
    if (nh % nkv != 0)
        return lfm_fail(LFM_ERR_FORMAT, "%s: num_attention_heads %lld is not a multiple of num_key_value_heads %lld", what, (long long)nh, (long long)nkv);
    if (hd % 2 != 0) return lfm_fail(LFM_ERR_FORMAT, "%s: head_dim %lld must be even for RoPE", what, (long long)hd);

    bool auto_adjust, conv_bias, tied;
    TRY(get_bool(root, what, KEYS("block_auto_adjust_ff_dim"), true, &auto_adjust));
    if (moe || lfm3) auto_adjust = false; /* Lfm2MoeMLP / Lfm3MLP: no width rule */
    TRY(get_bool(root, what, KEYS("conv_bias"), false, &conv_bias));
    TRY(get_bool(root, what, KEYS("tie_word_embeddings", "tie_embedding"), true, &tied));
    if (conv_bias) return lfm_fail(LFM_ERR_UNSUPPORTED, "%s: conv_bias = true is not supported (no released LFM2 or LFM3 model uses it)", what);
    if (lfm3) {
        bool attn_bias = false;
        TRY(get_bool(root, what, KEYS("attention_bias"), false, &attn_bias));
        if (attn_bias)
            return lfm_fail(LFM_ERR_UNSUPPORTED, "%s: attention_bias = true is not supported (LFM3's default and its released "
                            "shape have none)", what);
    }

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
    cfg->rope_pairs = (int32_t)(hd / 2);
    if (lfm3) TRY(read_lfm3(root, what, hd, cfg));
    /* LFM2: one plain RoPE for its attention layers (LFM3's per-kind ones were read above) */
    const lfm_json *rp = lfm3 ? NULL : get_any(root, KEYS("rope_parameters", "rope_scaling"), NULL);
    if (lfm3) theta = cfg->rope_theta;
    if (rp && rp->type != LFM_JSON_OBJECT) return lfm_fail(LFM_ERR_FORMAT, "%s: rope_parameters must be an object", what);
    if (rp) {
        const lfm_json *rt = get_any(rp, KEYS("rope_type", "type"), NULL);
        if (rt && (rt->type != LFM_JSON_STRING || strcmp(rt->str, "default") != 0))
            return lfm_fail(LFM_ERR_UNSUPPORTED, "%s: rope_type \"%s\" is not supported (only \"default\")", what,
                            rt->type == LFM_JSON_STRING ? rt->str : "?");
        TRY(get_num(rp, what, KEYS("rope_theta"), 0, &theta));
    }
    if (!lfm3 && (!rp || theta == 0)) TRY(get_num(root, what, KEYS("rope_theta", "theta"), 1e6, &theta));
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
            else if (lfm3 && s->type == LFM_JSON_STRING && strcmp(s->str, "sliding_attention") == 0) cfg->is_attn[i] = cfg->is_swa[i] = 1;
            else
                return lfm_fail(LFM_ERR_UNSUPPORTED, "%s: layer_types[%lld] = \"%.40s\": expected \"conv\", \"full_attention\"%s", what,
                                (long long)i, s->type == LFM_JSON_STRING ? s->str : "?", lfm3 ? " or \"sliding_attention\"" : "");
        }
    } else if (lfm3) { /* Lfm3Config's default pattern */
        for (int64_t i = 0; i < L; i++) {
            cfg->is_attn[i] = i % 4 == 2 || (i % 4 == 0 && i > 0);
            cfg->is_swa[i] = i % 4 == 0 && i > 0;
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

    if (lfm3)
        for (int64_t i = 0; i < L; i++)
            if (cfg->is_swa[i] && cfg->n_swa < 1)
                return lfm_fail(LFM_ERR_FORMAT, "%s: layer %lld is \"sliding_attention\" but sliding_window is null", what, (long long)i);

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
