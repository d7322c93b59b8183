/* sampler.c — pick the next token from a row of logits.
 *
 * Order of operations (transformers' logits-processor order, docs/architecture.md §8):
 *   0. the allowed-token mask (lfm_sampler_set_allowed, for constrained decoding): a disallowed
 *      token's logit is -inf from here on, so nothing below can bring it back
 *   1. logit bias (added; -INFINITY bans a token)
 *   2. penalties over the last penalty_last_n accepted tokens:
 *        repetition (transformers: a seen token's logit is divided by p if > 0, multiplied by p if < 0),
 *        then frequency / presence (OpenAI: logit -= count * frequency + (count > 0) * presence)
 *   3. temperature <= 0: greedy argmax (first index on ties), no randomness
 *   4. logits / temperature
 *   5. top-k (ties with the k-th value are kept, like transformers' TopKLogitsWarper)
 *   6. top-p over the top-k distribution (keep a token while the mass ranked above it is < top_p)
 *   7. min-p (keep tokens with prob >= min_p * max prob)
 *   8. draw from the softmax of what is left with our own xoshiro256** generator.
 *
 * Non-finite values: the input row must be finite or -inf (NaN and +inf are refused with the index,
 * so a model whose forward pass produced NaN ends in a ValueError, never in a token). Steps 1-2 can
 * leave that set only by float overflow with extreme user values; they are put back in it: +inf
 * becomes FLT_MAX (the largest logit), NaN becomes -inf (banned), and a banned token stays banned
 * through the penalties. If no finite logit is left, sampling fails with LFM_ERR_ARG ("no token can
 * be sampled"); a returned id is always in [0, n_vocab) with a finite processed logit.
 *
 * Cost per token: one O(V) pass (copy or masked copy + bias + penalties + max); the vocabulary is never sorted.
 * top-k finds the k-th largest logit with a k-element min-heap (one compare per token), min-p
 * pre-filters in logit space (no exp per token), and only the surviving candidates are ordered
 * (heap, popped only as far as top-p needs). Plain temperature sampling and top-p without top-k
 * pay one exp per token for the normaliser. The sampler allocates nothing per token.
 */
#include "base/base.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

struct lfm_sampler {
    lfm_sampler_params p;
    int32_t n_vocab;
    uint64_t rng[4];

    /* penalty history: counts over the window and the list of distinct tokens in it */
    int32_t *counts;    /* [n_vocab] occurrences of each token in the window */
    int32_t *slot;      /* [n_vocab] index into seen[], -1 when absent */
    lfm_token *seen;    /* [n_vocab] distinct tokens with counts > 0 */
    int32_t n_seen;
    lfm_token *ring;    /* [penalty_last_n] most recent tokens (only when penalty_last_n > 0) */
    int32_t ring_len, ring_head;

    /* allowed-token mask: bit i of allowed[i / 32] set = token i may be sampled */
    uint32_t *allowed;  /* [(n_vocab + 31) / 32], allocated on the first lfm_sampler_set_allowed */
    int allowed_on;     /* 0: no mask (the buffer is kept for the next one) */

    /* logit bias, sparse */
    lfm_token *bias_ids; /* [n_bias] */
    float *bias_val;     /* [n_bias] */
    int32_t n_bias;

    /* scratch, allocated once */
    float *x;           /* [n_vocab] processed logits */
    int32_t *heap;      /* [n_vocab] candidate heap */
    int32_t *ord;       /* [n_vocab] kept candidates, descending */
    float *w;           /* [n_vocab] unnormalised probabilities of ord[] */
    float *e;           /* [n_vocab] unnormalised probabilities of the heap candidates (top-p) */
    uint16_t *bucket;   /* [n_vocab] top-p bucket of each candidate */
    int32_t n_kept;
    double z_kept;      /* sum of w[0..n_kept) */
};

/* ---- random numbers: xoshiro256** seeded through splitmix64 ---- */

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(uint64_t st[4]) {
    uint64_t result = rotl64(st[1] * 5, 7) * 9;
    uint64_t t = st[1] << 17;
    st[2] ^= st[0];
    st[3] ^= st[1];
    st[1] ^= st[2];
    st[0] ^= st[3];
    st[2] ^= t;
    st[3] = rotl64(st[3], 45);
    return result;
}

static void rng_seed(uint64_t st[4], uint64_t seed) {
    uint64_t s = seed;
    for (int i = 0; i < 4; i++) st[i] = splitmix64(&s);
}

/* Uniform double in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t st[4]) { return (double)(rng_next(st) >> 11) * 0x1.0p-53; }

/* ---- params ---- */

lfm_sampler_params lfm_sampler_default_params(void) {
    lfm_sampler_params p;
    memset(&p, 0, sizeof p);
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repetition_penalty = 1.0f;
    p.presence_penalty = 0.0f;
    p.frequency_penalty = 0.0f;
    p.penalty_last_n = -1;
    p.seed = 0;
    return p;
}

static lfm_status check_params(const lfm_sampler_params *p) {
    if (isnan(p->temperature) || isinf(p->temperature))
        return lfm_fail(LFM_ERR_ARG, "sampler: temperature must be a finite number (<= 0 for greedy), got %g",
                        (double)p->temperature);
    if (p->top_k < 0)
        return lfm_fail(LFM_ERR_ARG, "sampler: top_k must be >= 0 (0 = off), got %d", (int)p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return lfm_fail(LFM_ERR_ARG, "sampler: top_p must be in (0, 1] (1 = off), got %g", (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return lfm_fail(LFM_ERR_ARG, "sampler: min_p must be in [0, 1] (0 = off), got %g", (double)p->min_p);
    if (!(p->repetition_penalty > 0.0f) || isinf(p->repetition_penalty))
        return lfm_fail(LFM_ERR_ARG, "sampler: repetition_penalty must be a finite number > 0 (1 = off), got %g",
                        (double)p->repetition_penalty);
    if (!isfinite(p->presence_penalty))
        return lfm_fail(LFM_ERR_ARG, "sampler: presence_penalty must be finite, got %g", (double)p->presence_penalty);
    if (!isfinite(p->frequency_penalty))
        return lfm_fail(LFM_ERR_ARG, "sampler: frequency_penalty must be finite, got %g",
                        (double)p->frequency_penalty);
    /* the window is allocated up front, so a user's number must not become gigabytes */
    if (p->penalty_last_n > LFM_SAMPLER_MAX_LAST_N)
        return lfm_fail(LFM_ERR_ARG, "sampler: penalty_last_n must be < 0 (all), 0 (off) or at most %d, got %d",
                        LFM_SAMPLER_MAX_LAST_N, (int)p->penalty_last_n);
    return LFM_OK;
}

/* ---- lifetime ---- */

lfm_status lfm_sampler_init(const lfm_sampler_params *p, int32_t n_vocab, lfm_sampler **out) {
    *out = NULL;
    lfm_sampler_params dp = lfm_sampler_default_params();
    if (!p) p = &dp;
    if (n_vocab <= 0) return lfm_fail(LFM_ERR_ARG, "sampler: n_vocab must be > 0, got %d", (int)n_vocab);
    lfm_status st = check_params(p);
    if (st != LFM_OK) return st;

    lfm_sampler *s = calloc(1, sizeof *s);
    if (!s) return lfm_fail(LFM_ERR_OOM, "sampler: out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    size_t nv = (size_t)n_vocab;
    s->counts = calloc(nv, sizeof *s->counts);
    s->slot = malloc(nv * sizeof *s->slot);
    s->seen = malloc(nv * sizeof *s->seen);
    s->x = malloc(nv * sizeof *s->x);
    s->heap = malloc(nv * sizeof *s->heap);
    s->ord = malloc(nv * sizeof *s->ord);
    s->w = malloc(nv * sizeof *s->w);
    s->e = malloc(nv * sizeof *s->e);
    s->bucket = malloc(nv * sizeof *s->bucket);
    if (p->penalty_last_n > 0) s->ring = malloc((size_t)p->penalty_last_n * sizeof *s->ring);
    if (!s->counts || !s->slot || !s->seen || !s->x || !s->heap || !s->ord || !s->w || !s->e || !s->bucket ||
        (p->penalty_last_n > 0 && !s->ring)) {
        lfm_sampler_free(s);
        return lfm_fail(LFM_ERR_OOM, "sampler: out of memory for n_vocab = %d", (int)n_vocab);
    }
    for (int32_t i = 0; i < n_vocab; i++) s->slot[i] = -1;
    rng_seed(s->rng, p->seed);
    *out = s;
    return LFM_OK;
}

void lfm_sampler_free(lfm_sampler *s) {
    if (!s) return;
    free(s->counts);
    free(s->slot);
    free(s->seen);
    free(s->ring);
    free(s->bias_ids);
    free(s->bias_val);
    free(s->allowed);
    free(s->x);
    free(s->heap);
    free(s->ord);
    free(s->w);
    free(s->e);
    free(s->bucket);
    free(s);
}

const lfm_sampler_params *lfm_sampler_get_params(const lfm_sampler *s) { return &s->p; }

int32_t lfm_sampler_n_vocab(const lfm_sampler *s) { return s->n_vocab; }

/* ---- logit bias ---- */

lfm_status lfm_sampler_set_logit_bias(lfm_sampler *s, const lfm_token *ids, const float *bias, int32_t n) {
    if (n < 0) return lfm_fail(LFM_ERR_ARG, "logit_bias: negative count %d", (int)n);
    if (n > 0 && (!ids || !bias)) return lfm_fail(LFM_ERR_ARG, "logit_bias: NULL ids or values");
    for (int32_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= s->n_vocab)
            return lfm_fail(LFM_ERR_ARG, "logit_bias: token id %d out of range [0, %d)", (int)ids[i],
                            (int)s->n_vocab);
        if (isnan(bias[i]) || (isinf(bias[i]) && bias[i] > 0))
            return lfm_fail(LFM_ERR_ARG, "logit_bias: value for token %d must be finite or -inf, got %g",
                            (int)ids[i], (double)bias[i]);
    }
    lfm_token *nids = NULL;
    float *nval = NULL;
    if (n > 0) {
        nids = malloc((size_t)n * sizeof *nids);
        nval = malloc((size_t)n * sizeof *nval);
        if (!nids || !nval) {
            free(nids);
            free(nval);
            return lfm_fail(LFM_ERR_OOM, "logit_bias: out of memory");
        }
        memcpy(nids, ids, (size_t)n * sizeof *nids);
        memcpy(nval, bias, (size_t)n * sizeof *nval);
    }
    free(s->bias_ids);
    free(s->bias_val);
    s->bias_ids = nids;
    s->bias_val = nval;
    s->n_bias = n;
    return LFM_OK;
}

/* ---- allowed-token mask ---- */

static int32_t mask_words(int32_t n_vocab) { return (int32_t)(((int64_t)n_vocab + 31) / 32); }

lfm_status lfm_sampler_set_allowed(lfm_sampler *s, const uint32_t *bits, int32_t n_words) {
    if (!s) return lfm_fail(LFM_ERR_ARG, "lfm_sampler_set_allowed: NULL sampler");
    if (!bits) {
        s->allowed_on = 0;
        return LFM_OK;
    }
    const int32_t want = mask_words(s->n_vocab);
    if (n_words != want)
        return lfm_fail(LFM_ERR_ARG, "allowed-token mask: expected %d words of 32 bits for n_vocab = %d, got %d",
                        (int)want, (int)s->n_vocab, (int)n_words);
    if (!s->allowed) {
        s->allowed = malloc((size_t)want * sizeof *s->allowed);
        if (!s->allowed) return lfm_fail(LFM_ERR_OOM, "allowed-token mask: out of memory");
    }
    memcpy(s->allowed, bits, (size_t)want * sizeof *s->allowed);
    s->allowed_on = 1;
    return LFM_OK;
}

/* x := logits where the mask allows the token, -inf elsewhere (step 0). Returns the number of
 * allowed tokens, so an empty mask is reported as such instead of as "every logit is -inf". */
static int32_t copy_allowed(const lfm_sampler *s, const float *logits, float *x) {
    const int32_t V = s->n_vocab;
    int32_t n_allowed = 0;
    const int32_t n_words = mask_words(V);
    for (int32_t w = 0; w < n_words; w++) {
        const int32_t i0 = w * 32, n = V - i0 < 32 ? V - i0 : 32;
        /* bits past n_vocab in the last word are ignored */
        const uint32_t bits = s->allowed[w] & (n == 32 ? 0xffffffffu : ((1u << n) - 1u));
        if (bits == 0) {
            for (int32_t j = 0; j < n; j++) x[i0 + j] = -INFINITY;
        } else if (n == 32 && bits == 0xffffffffu) {
            memcpy(x + i0, logits + i0, 32 * sizeof *x);
            n_allowed += 32;
        } else { /* a mixed word: ban all, then copy the set bits (a grammar allows few tokens) */
            for (int32_t j = 0; j < n; j++) x[i0 + j] = -INFINITY;
            n_allowed += __builtin_popcount(bits);
            for (uint32_t b = bits; b; b &= b - 1) {
                int32_t j = __builtin_ctz(b);
                x[i0 + j] = logits[i0 + j];
            }
        }
    }
    return n_allowed;
}

/* ---- penalty history ---- */

static void count_add(lfm_sampler *s, lfm_token t) {
    if (s->counts[t]++ == 0) {
        s->slot[t] = s->n_seen;
        s->seen[s->n_seen++] = t;
    }
}

static void count_remove(lfm_sampler *s, lfm_token t) {
    if (--s->counts[t] == 0) {
        int32_t i = s->slot[t];
        lfm_token last = s->seen[--s->n_seen];
        s->seen[i] = last;
        s->slot[last] = i;
        s->slot[t] = -1;
    }
}

void lfm_sampler_accept(lfm_sampler *s, lfm_token t) {
    if (!s || t < 0 || t >= s->n_vocab) return; /* callers validate; never index out of range */
    int32_t n = s->p.penalty_last_n;
    if (n == 0) return;
    if (n > 0) {
        if (s->ring_len == n) {
            count_remove(s, s->ring[s->ring_head]);
            s->ring[s->ring_head] = t;
            s->ring_head = (s->ring_head + 1) % n;
        } else {
            s->ring[(s->ring_head + s->ring_len) % n] = t;
            s->ring_len++;
        }
    }
    count_add(s, t);
}

void lfm_sampler_reset(lfm_sampler *s) {
    if (!s) return;
    for (int32_t i = 0; i < s->n_seen; i++) {
        s->counts[s->seen[i]] = 0;
        s->slot[s->seen[i]] = -1;
    }
    s->n_seen = 0;
    s->ring_len = s->ring_head = 0;
    rng_seed(s->rng, s->p.seed);
}

int32_t lfm_sampler_token_count(const lfm_sampler *s, lfm_token t) {
    return (t >= 0 && t < s->n_vocab) ? s->counts[t] : 0;
}

/* ---- the processing pipeline ---- */

/* Maximum of x[0..n) (-inf for n == 0). */
static float max_value(const float *x, int32_t n) {
    int32_t i = 0;
    float r = -INFINITY;
#if defined(__SSE2__)
    __m128 m0 = _mm_set1_ps(-INFINITY), m1 = m0, m2 = m0, m3 = m0;
    for (; i + 16 <= n; i += 16) {
        m0 = _mm_max_ps(m0, _mm_loadu_ps(x + i));
        m1 = _mm_max_ps(m1, _mm_loadu_ps(x + i + 4));
        m2 = _mm_max_ps(m2, _mm_loadu_ps(x + i + 8));
        m3 = _mm_max_ps(m3, _mm_loadu_ps(x + i + 12));
    }
    float lanes[4];
    _mm_storeu_ps(lanes, _mm_max_ps(_mm_max_ps(m0, m1), _mm_max_ps(m2, m3)));
    for (int j = 0; j < 4; j++) r = lanes[j] > r ? lanes[j] : r;
#endif
    for (; i < n; i++) r = x[i] > r ? x[i] : r;
    return r;
}

/* Index of the first NaN or +inf in x, or -1; branch-free scan in blocks. */
static int32_t find_bad(const float *x, int32_t n) {
    for (int32_t i0 = 0; i0 < n; i0 += 1024) {
        int32_t i1 = i0 + 1024 < n ? i0 + 1024 : n;
        int bad = 0;
        for (int32_t i = i0; i < i1; i++) bad |= (x[i] != x[i]) | (x[i] == INFINITY);
        if (bad)
            for (int32_t i = i0; i < i1; i++)
                if (x[i] != x[i] || x[i] == INFINITY) return i;
    }
    return -1;
}

/* Steps 1-2 into s->x; returns the index of the maximum (first on ties). */
static lfm_status process_logits(lfm_sampler *s, const float *logits, int32_t *argmax) {
    const int32_t V = s->n_vocab;
    float *x = s->x;
    int32_t bad = find_bad(logits, V);
    if (bad >= 0)
        return lfm_fail(LFM_ERR_ARG, "sampler: logit %d is %g; logits must be finite or -inf", (int)bad,
                        (double)logits[bad]);
    if (s->allowed_on) {
        if (copy_allowed(s, logits, x) == 0)
            return lfm_fail(LFM_ERR_ARG, "sampler: no token can be sampled: the allowed-token mask allows none "
                                         "(constrained decoding with no valid continuation)");
    } else {
        memcpy(x, logits, (size_t)V * sizeof *x);
    }
    /* Only the biased and the penalized entries can leave "finite or -inf"; each is put back in
     * that set where it is written (the non-finite rule, top of file), so the filters below only
     * ever see finite values and -inf. */
    for (int32_t i = 0; i < s->n_bias; i++) {
        lfm_token t = s->bias_ids[i];
        x[t] = fminf(x[t] + s->bias_val[i], FLT_MAX); /* finite + finite may overflow to +inf */
    }

    const float rep = s->p.repetition_penalty, pres = s->p.presence_penalty, freq = s->p.frequency_penalty;
    if (rep != 1.0f || pres != 0.0f || freq != 0.0f) {
        for (int32_t j = 0; j < s->n_seen; j++) {
            lfm_token t = s->seen[j];
            float v = x[t];
            if (v == -INFINITY) continue; /* banned stays banned (-inf - -inf would be NaN) */
            if (rep != 1.0f) v = v < 0.0f ? v * rep : v / rep;
            v -= (float)s->counts[t] * freq + pres;
            x[t] = v != v ? -INFINITY : fminf(v, FLT_MAX); /* NaN: inf - inf from overflowing penalties */
        }
    }

    float bv = max_value(x, V);
    if (!(bv > -INFINITY))
        return lfm_fail(LFM_ERR_ARG, "sampler: no token can be sampled: every logit%s is -inf (banned) or NaN "
                                     "after logit bias and penalties",
                        s->allowed_on ? " the allowed-token mask lets through" : "");
    int32_t best = 0;
    while (best < V - 1 && x[best] != bv) best++;
    *argmax = best;
    return LFM_OK;
}

/* Max-heap of token ids ordered by x (larger first; lower id first on ties). */
static inline int heap_before(const float *x, int32_t a, int32_t b) {
    return x[a] > x[b] || (x[a] == x[b] && a < b);
}

static void heap_sift_down(int32_t *h, int32_t n, int32_t i, const float *x) {
    int32_t v = h[i];
    for (;;) {
        int32_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_before(x, h[c + 1], h[c])) c++;
        if (!heap_before(x, h[c], v)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
}

static void heap_build(int32_t *h, int32_t n, const float *x) {
    for (int32_t i = n / 2 - 1; i >= 0; i--) heap_sift_down(h, n, i, x);
}

static int32_t heap_pop(int32_t *h, int32_t *n, const float *x) {
    int32_t top = h[0];
    h[0] = h[--*n];
    if (*n > 0) heap_sift_down(h, *n, 0, x);
    return top;
}

/* The k-th largest finite value of x (-inf when fewer than k are finite); buf holds k floats. */
static float kth_largest(const float *x, int32_t V, int32_t k, float *buf) {
    int32_t n = 0;
    for (int32_t i = 0; i < V; i++) {
        float v = x[i];
        if (v == -INFINITY) continue;
        if (n < k) { /* push, sift up (min-heap) */
            int32_t j = n++;
            while (j > 0 && buf[(j - 1) / 2] > v) {
                buf[j] = buf[(j - 1) / 2];
                j = (j - 1) / 2;
            }
            buf[j] = v;
        } else if (v > buf[0]) { /* replace the minimum, sift down */
            int32_t j = 0;
            for (;;) {
                int32_t c = 2 * j + 1;
                if (c >= n) break;
                if (c + 1 < n && buf[c + 1] < buf[c]) c++;
                if (!(buf[c] < v)) break;
                buf[j] = buf[c];
                j = c;
            }
            buf[j] = v;
        }
    }
    return n < k ? -INFINITY : buf[0];
}

/* top-p buckets: bucket b holds candidates with p / p_max in (e^-(b+1)/8, e^-b/8]. */
#define TOP_P_BUCKETS 512
#define TOP_P_PER_NAT 8.0f

/* Steps 4-7: fill s->ord / s->w / s->n_kept / s->z_kept for temperature > 0. */
static void select_candidates(lfm_sampler *s, int32_t argmax) {
    const int32_t V = s->n_vocab;
    const float *x = s->x;
    const float T = s->p.temperature;
    const float xmax = x[argmax];
    const int32_t top_k = s->p.top_k;
    const float top_p = s->p.top_p, min_p = s->p.min_p;
    int32_t *ord = s->ord;
    float *w = s->w;
    int32_t m = 0;
    double z = 0.0;

    if (top_k <= 0 && top_p >= 1.0f && min_p <= 0.0f) { /* plain temperature sampling */
        for (int32_t i = 0; i < V; i++) {
            if (x[i] == -INFINITY) continue;
            float e = expf((x[i] - xmax) / T);
            ord[m] = i;
            w[m++] = e;
            z += e;
        }
        s->n_kept = m;
        s->z_kept = z;
        return;
    }

    int32_t *h = s->heap;
    int32_t nh = 0;
    if (top_k > 0) {
        /* top-k, keeping ties with the k-th value: find the k-th largest logit with a k-element
         * min-heap (one compare per token once it is full), then collect everything >= it. */
        float kth = kth_largest(x, V, top_k, w);
        for (int32_t i = 0; i < V; i++)
            if (x[i] >= kth && x[i] != -INFINITY) h[nh++] = i;
        heap_build(h, nh, x);
        while (nh > 0) {
            int32_t t = heap_pop(h, &nh, x);
            ord[m] = t;
            w[m] = expf((x[t] - xmax) / T);
            z += w[m++];
        }
        /* top-p over the top-k distribution */
        int32_t keep = m;
        if (top_p < 1.0f) {
            double above = 0.0, lim = (double)top_p * z;
            keep = 0;
            while (keep < m && (keep == 0 || above < lim)) above += w[keep++];
        }
        /* min-p (relative to the max, which top-k and top-p always keep) */
        if (min_p > 0.0f) {
            int32_t k2 = 1;
            while (k2 < keep && w[k2] >= min_p) k2++;
            keep = k2;
        }
        z = 0.0;
        for (int32_t i = 0; i < keep; i++) z += w[i];
        m = keep;
    } else {
        /* min-p's kept set {p >= min_p * p_max} is a prefix of the descending order, and so is
         * top-p's, so min-p pre-filters the candidates (compared in logit space, no exp per
         * token); top-p's normaliser still needs every token (z_all). */
        const float lmin = min_p > 0.0f ? logf(min_p) : -INFINITY;
        if (top_p < 1.0f) {
            float *e = s->e;
            uint16_t *bk = s->bucket;
            double z_all = 0.0;
            for (int32_t i = 0; i < V; i++) {
                if (x[i] == -INFINITY) continue;
                float d = (x[i] - xmax) / T;
                float ei = expf(d);
                z_all += ei;
                if (d >= lmin) {
                    float bd = -d * TOP_P_PER_NAT;
                    bk[nh] = (uint16_t)(bd < (float)(TOP_P_BUCKETS - 1) ? (int32_t)bd : TOP_P_BUCKETS - 1);
                    e[nh] = ei;
                    h[nh++] = i;
                }
            }
            const double lim = (double)top_p * z_all;
            if (nh > 256) {
                /* Walk the buckets from the top until their mass reaches lim: buckets above the
                 * cut bucket are kept whole (every token in them ranks above the cut), buckets
                 * below are dropped, and only the cut bucket is ordered. */
                double mass[TOP_P_BUCKETS];
                memset(mass, 0, sizeof mass);
                for (int32_t j = 0; j < nh; j++) mass[bk[j]] += e[j];
                double cum = 0.0;
                int32_t cut = TOP_P_BUCKETS - 1;
                for (int32_t b = 0; b < TOP_P_BUCKETS; b++) {
                    if (cum + mass[b] >= lim) {
                        cut = b;
                        break;
                    }
                    cum += mass[b];
                }
                int32_t n = 0;
                for (int32_t j = 0; j < nh; j++) {
                    if (bk[j] < cut) {
                        ord[m] = h[j];
                        w[m] = e[j];
                        z += e[j];
                        m++;
                    } else if (bk[j] == cut) {
                        h[n++] = h[j];
                    }
                }
                nh = n;
            }
            heap_build(h, nh, x);
            while (nh > 0) {
                if (m > 0 && z >= lim) break;
                int32_t t = heap_pop(h, &nh, x);
                ord[m] = t;
                w[m] = expf((x[t] - xmax) / T);
                z += w[m++];
            }
        } else {
            for (int32_t i = 0; i < V; i++)
                if (x[i] != -INFINITY && (x[i] - xmax) / T >= lmin) h[nh++] = i;
            heap_build(h, nh, x);
            while (nh > 0) {
                int32_t t = heap_pop(h, &nh, x);
                ord[m] = t;
                w[m] = expf((x[t] - xmax) / T);
                z += w[m++];
            }
        }
    }
    s->n_kept = m;
    s->z_kept = z;
}

lfm_status lfm_sampler_sample(lfm_sampler *s, const float *logits, lfm_token *out) {
    if (!s || !logits || !out) return lfm_fail(LFM_ERR_ARG, "lfm_sampler_sample: NULL argument");
    int32_t argmax;
    lfm_status st = process_logits(s, logits, &argmax);
    if (st != LFM_OK) return st;
    if (s->p.temperature <= 0.0f) {
        *out = argmax;
        return LFM_OK;
    }
    select_candidates(s, argmax);
    if (s->n_kept <= 0 || !(s->z_kept > 0.0)) /* unreachable: the maximum is finite and always kept */
        return lfm_fail(LFM_ERR_ARG, "sampler: no token can be sampled: the filters kept no token with a "
                                     "finite probability");
    double u = rng_uniform(s->rng) * s->z_kept;
    double acc = 0.0;
    int32_t pick = s->ord[s->n_kept - 1];
    for (int32_t i = 0; i < s->n_kept; i++) {
        acc += s->w[i];
        if (u < acc) {
            pick = s->ord[i];
            break;
        }
    }
    *out = pick;
    return LFM_OK;
}

lfm_status lfm_sampler_dist(lfm_sampler *s, const float *logits, lfm_token *ids, float *probs, int32_t cap,
                            int32_t *n_out) {
    if (!s || !logits || !n_out) return lfm_fail(LFM_ERR_ARG, "lfm_sampler_dist: NULL argument");
    *n_out = 0;
    int32_t argmax;
    lfm_status st = process_logits(s, logits, &argmax);
    if (st != LFM_OK) return st;
    if (s->p.temperature <= 0.0f) {
        *n_out = 1;
        if (cap >= 1) {
            ids[0] = argmax;
            probs[0] = 1.0f;
        }
        return LFM_OK;
    }
    select_candidates(s, argmax);
    if (s->n_kept <= 0 || !(s->z_kept > 0.0))
        return lfm_fail(LFM_ERR_ARG, "sampler: no token can be sampled: the filters kept no token with a "
                                     "finite probability");
    *n_out = s->n_kept;
    for (int32_t i = 0; i < s->n_kept && i < cap; i++) {
        ids[i] = s->ord[i];
        probs[i] = (float)(s->w[i] / s->z_kept);
    }
    return LFM_OK;
}

lfm_status lfm_sampler_processed_logits(lfm_sampler *s, const float *logits, float *out) {
    if (!s || !logits || !out) return lfm_fail(LFM_ERR_ARG, "lfm_sampler_processed_logits: NULL argument");
    int32_t argmax;
    lfm_status st = process_logits(s, logits, &argmax);
    if (st != LFM_OK) return st;
    memcpy(out, s->x, (size_t)s->n_vocab * sizeof *out);
    return LFM_OK;
}
