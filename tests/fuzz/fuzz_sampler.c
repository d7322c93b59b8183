/* fuzz_sampler — sampler parameters, logit bias, penalty history, an allowed-token mask and a logits
 * row from the fuzzer, including NaN, ±inf, huge and tiny values. Contract checked: init/bias/mask/
 * sample either refuse with a message or pick an allowed id in [0, n_vocab) whose processed logit is
 * neither -inf nor NaN; the distribution is allowed ids in range with finite probabilities summing to 1.
 * Input: byte 0 = n_vocab - 1 (mod 64); then values, each one byte: an index into INTERESTING, or
 * 0xff followed by 4 raw bytes of a float; the mask is a flag byte (odd: set) and 4 bytes per word,
 * with a word count that is sometimes wrong (must be refused). */
#include <math.h>
#include <float.h>

#include "fuzz_common.h"

static const float INTERESTING[] = {
    0.0f, 1.0f, -1.0f, 0.5f, 2.0f, 0.9f, 0.1f, 1e-30f, -1e-30f, 1e30f, -1e30f, FLT_MAX, -FLT_MAX,
    INFINITY, -INFINITY, NAN, -NAN, 100.0f, -100.0f, 1e-45f, 3.0f, 0.05f, 1.1f, 20.0f, -20.0f, 88.7f, -88.7f,
};
#define N_INTERESTING (int)(sizeof INTERESTING / sizeof INTERESTING[0])

typedef struct { const uint8_t *p, *end; } reader;

static uint8_t rd_byte(reader *r) { return r->p < r->end ? *r->p++ : 0; }

static float rd_float(reader *r) {
    uint8_t b = rd_byte(r);
    if (b == 0xff) {
        uint8_t raw[4] = {rd_byte(r), rd_byte(r), rd_byte(r), rd_byte(r)};
        float f;
        memcpy(&f, raw, 4);
        return f;
    }
    return INTERESTING[b % N_INTERESTING];
}

static int32_t rd_int(reader *r) {
    uint8_t b = rd_byte(r);
    return b < 0xf0 ? (int32_t)b - 8 : (int32_t)(rd_byte(r) | rd_byte(r) << 8 | rd_byte(r) << 16 | (uint32_t)rd_byte(r) << 24);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    reader r = {data, data + size};
    int32_t n_vocab = rd_byte(&r) % 64 + 1;
    lfm_sampler_params sp = lfm_sampler_default_params();
    sp.temperature = rd_float(&r);
    sp.top_k = rd_int(&r);
    sp.top_p = rd_float(&r);
    sp.min_p = rd_float(&r);
    sp.repetition_penalty = rd_float(&r);
    sp.presence_penalty = rd_float(&r);
    sp.frequency_penalty = rd_float(&r);
    sp.penalty_last_n = rd_int(&r);
    sp.seed = rd_byte(&r);

    lfm_sampler *s = NULL;
    lfm_status st = lfm_sampler_init(&sp, n_vocab, &s);
    fuzz_check_error(st);
    if (st != LFM_OK) return 0;

    int n_bias = rd_byte(&r) % 8;
    lfm_token bias_ids[8];
    float bias[8];
    for (int i = 0; i < n_bias; i++) bias_ids[i] = rd_int(&r), bias[i] = rd_float(&r);
    fuzz_check_error(lfm_sampler_set_logit_bias(s, bias_ids, bias, n_bias));
    int n_hist = rd_byte(&r) % 16;
    for (int i = 0; i < n_hist; i++) lfm_sampler_accept(s, rd_int(&r));

    float *logits = malloc((size_t)n_vocab * sizeof *logits), *proc = malloc((size_t)n_vocab * sizeof *proc);
    float *probs = malloc((size_t)n_vocab * sizeof *probs);
    lfm_token *ids = malloc((size_t)n_vocab * sizeof *ids);
    for (int32_t i = 0; i < n_vocab; i++) logits[i] = rd_float(&r);
    /* the mask after the logits, so the committed reproducers keep their meaning */
    uint32_t mask[3] = {0xffffffffu, 0xffffffffu, 0xffffffffu}; /* n_vocab <= 64: at most 2 words, 1 spare */
    int32_t n_words = (n_vocab + 31) / 32;
    uint8_t mask_flag = rd_byte(&r);
    if (mask_flag & 1) {
        int32_t given = (mask_flag & 2) ? n_words + (mask_flag & 4 ? 1 : -1) : n_words; /* sometimes wrong */
        for (int i = 0; i < 3; i++)
            mask[i] = rd_byte(&r) | rd_byte(&r) << 8 | rd_byte(&r) << 16 | (uint32_t)rd_byte(&r) << 24;
        st = lfm_sampler_set_allowed(s, mask, given);
        fuzz_check_error(st);
        if (given != n_words && st == LFM_OK) {
            fprintf(stderr, "a mask of %d words was accepted for n_vocab %d\n", (int)given, (int)n_vocab);
            abort();
        }
        if (st != LFM_OK) mask[0] = mask[1] = mask[2] = 0xffffffffu; /* refused: no mask in force */
    }
#define ALLOWED(t) ((mask[(t) / 32] >> ((t) % 32)) & 1u)

    for (int round = 0; round < 2; round++) {
        lfm_token tok = -12345;
        st = lfm_sampler_sample(s, logits, &tok);
        fuzz_check_error(st);
        if (st == LFM_OK) {
            if (tok < 0 || tok >= n_vocab) {
                fprintf(stderr, "sampled id %d outside [0, %d)\n", (int)tok, (int)n_vocab);
                abort();
            }
            if (lfm_sampler_processed_logits(s, logits, proc) != LFM_OK) abort();
            if (!ALLOWED(tok)) {
                fprintf(stderr, "sampled id %d, which the mask does not allow\n", (int)tok);
                abort();
            }
            if (proc[tok] == -INFINITY || isnan(proc[tok])) {
                fprintf(stderr, "sampled id %d whose processed logit is %g\n", (int)tok, (double)proc[tok]);
                abort();
            }
        }
        int32_t n_out = -1;
        st = lfm_sampler_dist(s, logits, ids, probs, n_vocab, &n_out);
        fuzz_check_error(st);
        if (st == LFM_OK) {
            if (n_out < 1 || n_out > n_vocab) {
                fprintf(stderr, "dist kept %d of %d tokens\n", (int)n_out, (int)n_vocab);
                abort();
            }
            double sum = 0;
            for (int32_t i = 0; i < n_out; i++) {
                if (ids[i] < 0 || ids[i] >= n_vocab || !ALLOWED(ids[i]) || !isfinite(probs[i]) || probs[i] < 0) {
                    fprintf(stderr, "dist entry %d: id %d p %g\n", (int)i, (int)ids[i], (double)probs[i]);
                    abort();
                }
                sum += probs[i];
            }
            if (fabs(sum - 1.0) > 1e-3) {
                fprintf(stderr, "dist probabilities sum to %g\n", sum);
                abort();
            }
        }
        if (st == LFM_OK) lfm_sampler_accept(s, ids[0]);
    }
#undef ALLOWED
    (void)lfm_sampler_token_count(s, rd_int(&r));
    lfm_sampler_reset(s);
    free(logits), free(proc), free(probs), free(ids);
    lfm_sampler_free(s);
    return 0;
}
