/* cpu.c — CPU feature detection (once) and the number of usable cores. */
#define _GNU_SOURCE
#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__linux__)
#include <sched.h>
#if defined(__aarch64__)
#include <sys/auxv.h>
#endif
#endif
#if defined(__APPLE__)
#include <sys/sysctl.h>
#include <sys/types.h>
#endif

/* ---- CPU features ---- */

static lfm_cpu_features cpu_features;
static int cpu_detected;

#if defined(__APPLE__)
static bool sysctl_flag(const char *name) {
    int v = 0;
    size_t len = sizeof v;
    return sysctlbyname(name, &v, &len, NULL, 0) == 0 && v != 0;
}
#endif

#if defined(__x86_64__) || defined(__i386__)
/* Whether this AVX-512 CPU executes a 512-bit operation at full width. No CPUID bit says so; it is
 * known per family: Intel's AVX-512 cores do (one or two 512-bit FMA ports), AMD's Zen 4 (family
 * 19h) splits each into two 256-bit halves, Zen 5 (family 1Ah) servers and desktops run them whole
 * while its mobile parts (models 20h-2Fh Strix, 60h-7Fh Krackan) keep the 256-bit data path. On a
 * split machine 256-bit kernels are as fast and leave the 8-row layouts whole, so they stay the
 * default there (kernels/quants/type_traits.c). */
static bool avx512_runs_full_width(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return false;
    const bool amd = b == 0x68747541u && d == 0x69746e65u && c == 0x444d4163u; /* "AuthenticAMD" */
    const bool intel = b == 0x756e6547u && d == 0x49656e69u && c == 0x6c65746eu; /* "GenuineIntel" */
    if (intel) return true;
    if (!amd || !__get_cpuid(1, &a, &b, &c, &d)) return false;
    const unsigned family = ((a >> 8) & 0xf) + ((a >> 20) & 0xff), model = ((a >> 4) & 0xf) | ((a >> 12) & 0xf0);
    if (family < 0x1a) return false;
    return family > 0x1a || !((model >= 0x20 && model <= 0x2f) || (model >= 0x60 && model <= 0x7f));
}
#endif

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
        f.avx512_full_width = f.avx512f && avx512_runs_full_width();
    }
#elif defined(__aarch64__)
    f.neon = true; /* ASIMD is mandatory in AArch64 */
#if defined(__linux__)
    /* the kernel's HWCAP bits (Linux and Android; qemu-user reports its emulated CPU's) */
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    f.dotprod = (hw >> 20) & 1; /* HWCAP_ASIMDDP */
    f.i8mm = (hw2 >> 13) & 1;   /* HWCAP2_I8MM */
#elif defined(__APPLE__)
    f.dotprod = sysctl_flag("hw.optional.arm.FEAT_DotProd");
    f.i8mm = sysctl_flag("hw.optional.arm.FEAT_I8MM");
#else
    /* no run-time query known here: what the compiler was told the target has */
#if defined(__ARM_FEATURE_DOTPROD)
    f.dotprod = true;
#endif
#if defined(__ARM_FEATURE_MATMUL_INT8)
    f.i8mm = true;
#endif
#endif
    f.i8mm = f.i8mm && f.dotprod; /* our i8mm level builds on the dotprod one */
#endif
    const char *force = getenv("LFM_KERNELS");
    if (force) snprintf(f.kernels_env, sizeof f.kernels_env, "%s", force);
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

/* ---- usable cores ---- */

#if defined(__linux__)
/* The CPU quota of this process's cgroup, rounded up, or 0 when there is none: cgroup v2's
 * "cpu.max" ("max 100000" or "<quota> <period>"), else v1's cfs_quota_us / cfs_period_us. */
static int read_two_numbers(const char *path, const char *path2, long long *a, long long *b) {
    FILE *fp = fopen(path, "r");
    if (!fp) return 0;
    int n;
    if (path2) {
        n = fscanf(fp, "%lld", a);
        fclose(fp);
        if (n != 1 || !(fp = fopen(path2, "r"))) return 0;
        n = fscanf(fp, "%lld", b) == 1 ? 2 : 0;
    } else {
        n = fscanf(fp, "%lld %lld", a, b);
    }
    fclose(fp);
    return n;
}

static int cgroup_cpu_quota(void) {
    long long quota = 0, period = 0;
    FILE *fp = fopen("/sys/fs/cgroup/cpu.max", "r");
    if (fp) {
        char first[32] = {0};
        int ok = fscanf(fp, "%31s %lld", first, &period) == 2;
        fclose(fp);
        if (!ok || strcmp(first, "max") == 0) return 0;
        quota = strtoll(first, NULL, 10);
    } else if (read_two_numbers("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us", &quota,
                                &period) != 2) {
        return 0;
    }
    if (quota <= 0 || period <= 0) return 0;
    long long n = (quota + period - 1) / period;
    return n > 4096 ? 4096 : (int)n;
}
#endif

int lfm_n_cores(void) {
    long n = 0;
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
    int quota = cgroup_cpu_quota();
    if (quota > 0 && (n <= 0 || quota < n)) n = quota;
#elif defined(__APPLE__)
    int perf = 0;
    size_t len = sizeof perf;
    if (sysctlbyname("hw.perflevel0.logicalcpu", &perf, &len, NULL, 0) == 0 && perf > 0) n = perf;
#endif
    if (n <= 0) n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
