/* cpu.c — CPU feature detection (once) and the number of usable cores. */
#define _GNU_SOURCE
#include "base/base.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

/* ---- CPU features ---- */

static lfm_cpu_features cpu_features;
static int cpu_detected;

static void detect_cpu(void) {
    lfm_cpu_features f = {0};
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        f.fma = (c >> 12) & 1;
        f.f16c = (c >> 29) & 1;
        bool osxsave = (c >> 27) & 1;
        unsigned long long xcr0 = 0;
        if (osxsave) {
            unsigned lo, hi;
            __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
            xcr0 = ((unsigned long long)hi << 32) | lo;
        }
        bool ymm_ok = (xcr0 & 0x6) == 0x6;
        bool zmm_ok = (xcr0 & 0xe6) == 0xe6;
        if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
            f.avx2 = ymm_ok && ((b >> 5) & 1);
            f.avx512f = zmm_ok && ((b >> 16) & 1);
            f.avx512bw = zmm_ok && ((b >> 30) & 1);
            f.avx512vl = zmm_ok && ((b >> 31) & 1);
            f.avx512vnni = zmm_ok && ((c >> 11) & 1);
        }
        if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) f.avxvnni = ymm_ok && ((a >> 4) & 1);
        f.fma = f.fma && ymm_ok;
        f.f16c = f.f16c && ymm_ok;
    }
#elif defined(__aarch64__)
    f.neon = true;
#if defined(__ARM_FEATURE_DOTPROD)
    f.dotprod = true;
#endif
#endif
    const char *force = getenv("LFM_KERNELS");
    f.force_ref = force && strcmp(force, "ref") == 0;
    cpu_features = f;
}

const lfm_cpu_features *lfm_cpu(void) {
    /* Benign race: every thread computes the same bits. */
    if (!cpu_detected) {
        detect_cpu();
        cpu_detected = 1;
    }
    return &cpu_features;
}

int lfm_n_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
