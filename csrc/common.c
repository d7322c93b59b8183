/* common.c — errors, CPU feature detection, file mapping: the plumbing every other file uses. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

/* ---- errors ---- */

static _Thread_local char last_error[1024];

lfm_status lfm_fail(lfm_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

const char *lfm_last_error(void) { return last_error; }

const char *lfm_status_str(lfm_status s) {
    switch (s) {
    case LFM_OK: return "ok";
    case LFM_ERR_IO: return "I/O error";
    case LFM_ERR_FORMAT: return "invalid model file";
    case LFM_ERR_UNSUPPORTED: return "unsupported model";
    case LFM_ERR_OOM: return "out of memory";
    case LFM_ERR_ARG: return "invalid argument";
    case LFM_ERR_CTX_FULL: return "context full";
    case LFM_ERR_ABORTED: return "aborted";
    case LFM_ERR_BUSY: return "context busy";
    }
    return "unknown status";
}

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

/* ---- files ---- */

lfm_status lfm_map_file(const char *path, lfm_mapping *out) {
    out->addr = NULL;
    out->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lfm_fail(LFM_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return lfm_fail(LFM_ERR_IO, "cannot stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return lfm_fail(LFM_ERR_IO, "'%s' is not a regular file", path);
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return lfm_fail(LFM_ERR_IO, "cannot mmap '%s': %s", path, strerror(e));
        }
        out->addr = p;
        out->size = (size_t)st.st_size;
    }
    close(fd);
    return LFM_OK;
}

void lfm_unmap_file(lfm_mapping *m) {
    if (m->addr) munmap(m->addr, m->size);
    m->addr = NULL;
    m->size = 0;
}
