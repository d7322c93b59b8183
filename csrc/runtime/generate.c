/* generate.c — one step of the C generation loop: sample, accept, stop check, decode.
 * Constrained decoding needs nothing here: the sampler applies its allowed-token mask. */
#include "runtime/runtime.h"

lfm_status lfm_generate_step(lfm_ctx *c, lfm_sampler *s, const lfm_token *stop_ids, int32_t n_stop,
                             lfm_token *out_token, lfm_finish_reason *finish) {
    if (!c || !s || !out_token || !finish) return lfm_fail(LFM_ERR_ARG, "lfm_generate_step: NULL argument");
    if (n_stop < 0 || (n_stop > 0 && !stop_ids))
        return lfm_fail(LFM_ERR_ARG, "lfm_generate_step: bad stop list (n_stop = %d)", (int)n_stop);
    *finish = LFM_FINISH_NONE;
    const int32_t V = c->model->cfg.n_vocab;
    if (lfm_sampler_n_vocab(s) != V)
        return lfm_fail(LFM_ERR_ARG, "lfm_generate_step: the sampler is for n_vocab = %d, the model has %d",
                        (int)lfm_sampler_n_vocab(s), (int)V);
    int32_t n_rows = 0;
    const float *logits = lfm_ctx_logits(c, &n_rows);
    if (!logits || n_rows <= 0 || !c->has_last_logits)
        return lfm_fail(LFM_ERR_ARG, "lfm_generate_step: the context has no logits for its last token "
                                     "(prefill a prompt first)");
    const float *row = logits + (size_t)(n_rows - 1) * (size_t)V;

    lfm_token t;
    lfm_status st = lfm_sampler_sample(s, row, &t);
    if (st != LFM_OK) return st;
    lfm_sampler_accept(s, t);
    *out_token = t;

    for (int32_t i = 0; i < n_stop; i++) {
        if (stop_ids[i] == t) {
            *finish = LFM_FINISH_STOP;
            return LFM_OK;
        }
    }
    if (lfm_ctx_pos(c) >= lfm_ctx_n_ctx(c)) { /* the token is returned but cannot be decoded */
        *finish = LFM_FINISH_LENGTH;
        return LFM_OK;
    }
    st = lfm_ctx_decode(c, &t, 1, LFM_LOGITS_LAST);
    if (st != LFM_OK) return st;
    if (lfm_ctx_pos(c) >= lfm_ctx_n_ctx(c)) *finish = LFM_FINISH_LENGTH;
    return LFM_OK;
}
