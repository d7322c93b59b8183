/* neon_common.h — helpers shared by the arm64 kernel files (static inline).
 *
 * The x86 kernels' float order is written for 8-lane AVX2 vectors; here such a vector is a pair of
 * float32x4 (lanes 0..3, lanes 4..7), and these helpers repeat the AVX2 steps the orders depend on.
 * The int8 dot products give, in int32 lane j of a 16-byte operand pair, the sum over bytes
 * 4j..4j+3: the grouping of AVX2's vpmaddubsw + vpmaddwd and of SDOT, so the lanes (exact integers)
 * are the AVX2 kernel's lanes at every level. */
#ifndef LFM_NEON_COMMON_H
#define LFM_NEON_COMMON_H
#if defined(__aarch64__)
#include <arm_neon.h>
#include <stdint.h>
#include <string.h>

#define NEON_INLINE static inline __attribute__((always_inline))

/* hsum_ps of the 8-lane vector (lo, hi): ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)) */
NEON_INLINE float neon_hsum8(float32x4_t lo, float32x4_t hi) {
    const float32x4_t s = vaddq_f32(lo, hi);
    const float32x2_t t = vadd_f32(vget_low_f32(s), vget_high_f32(s));
    return vget_lane_f32(t, 0) + vget_lane_f32(t, 1);
}

/* fp16 bits -> float, exact (the hardware conversion, as F16C's on x86) */
NEON_INLINE float neon_h2f(uint16_t h) { return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0); }

/* 4 consecutive fp16 at p -> float32x4 */
NEON_INLINE float32x4_t neon_h2f4(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

NEON_INLINE int32_t neon_load_i32(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* acc + the int8 dot product of a and b per 4-byte lane: lane j += sum of a[k]*b[k], k = 4j..4j+3.
 * Exact for all int8 inputs (products fit int16, -128*-128 included; pair sums are widened). */
NEON_INLINE int32x4_t neon_dot4(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(acc, a, b);
#else
    const int16x8_t p0 = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    const int16x8_t p1 = vmull_high_s8(a, b);
    return vaddq_s32(acc, vpaddq_s32(vpaddlq_s16(p0), vpaddlq_s16(p1)));
#endif
}

/* neon_dot4 where no byte of a is -128: then a pair of products is within int16 (|2 * 127 * 128| < 2^15),
 * so plain NEON sums the pairs before widening (one instruction less). */
NEON_INLINE int32x4_t neon_dot4_a127(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(acc, a, b);
#else
    const int16x8_t pairs = vpaddq_s16(vmull_s8(vget_low_s8(a), vget_low_s8(b)), vmull_high_s8(a, b));
    return vaddq_s32(acc, vpaddlq_s16(pairs));
#endif
}

/* neon_dot4 against 4-byte group `lane` (a constant 0..3) of b broadcast to every lane */
#if defined(__ARM_FEATURE_DOTPROD)
#define NEON_DOT4_LANE(acc, a, b, lane) vdotq_laneq_s32((acc), (a), (b), (lane))
#else
#define NEON_DOT4_LANE(acc, a, b, lane) \
    neon_dot4((acc), (a), vreinterpretq_s8_s32(vdupq_laneq_s32(vreinterpretq_s32_s8(b), (lane))))
#endif

#endif /* __aarch64__ */
#endif /* LFM_NEON_COMMON_H */
