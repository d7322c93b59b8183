/* base/base.h — the plumbing every other file uses: errors, CPU features, files, memory, threads,
 * clocks, UTF-8, profiling. Every OS call goes through base/ (os.c, threadpool.c, cpu.c,
 * profile.c), so porting to another OS changes one folder: no other folder includes an OS header
 * (unistd.h, sys/..., pthread.h, time.h, windows.h) or calls getenv. */
#ifndef LFM_BASE_H
#define LFM_BASE_H

#include "lfm.h"
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- errors ---- */

/* Record a printf-style message for lfm_last_error() on this thread and return status, so call
 * sites read `return lfm_fail(LFM_ERR_FORMAT, "tensor '%s': expected ...", name);`. */
lfm_status lfm_fail(lfm_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* lfm_fail(LFM_ERR_IO, ...) for a failed OS call, also recording err (an errno value) for
 * lfm_last_errno(), so Python can raise FileNotFoundError / PermissionError by errno, not by
 * reading the message. lfm_fail records 0. */
lfm_status lfm_fail_io(int err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---- CPU features (detected once) ---- */

/* The target architecture, from the compiler's own macros (so a cross or universal2 build, which
 * compiles each file once per architecture, needs no -D from the build script). */
#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#define LFM_IS_X86 1
#elif defined(__aarch64__) || defined(_M_ARM64)
#define LFM_IS_ARM64 1
#endif

typedef struct {
    bool avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512vnni, avxvnni; /* x86 */
    bool avx512_full_width; /* 512-bit operations run at full width, not split in two 256-bit halves (cpu.c) */
    bool neon, dotprod, i8mm;                                                /* arm64: ASIMD, SDOT, SMMLA */
    bool force_ref;       /* LFM_KERNELS=ref in the environment */
    char kernels_env[16]; /* LFM_KERNELS as given ("" when unset): the level to force (kernels/quants/type_traits.c) */
} lfm_cpu_features;

const lfm_cpu_features *lfm_cpu(void);
/* The cores this process may use: its CPU affinity mask, capped by a cgroup CPU quota (Linux); the
 * performance cores (macOS, where an equal row split would wait for the efficiency cores); else
 * the online CPUs. At least 1. */
int lfm_n_cores(void);

/* ---- files ---- */

typedef struct {
    void *addr;   /* read-only mapping of the whole file (NULL for an empty file) */
    size_t size;
} lfm_mapping;

lfm_status lfm_map_file(const char *path, lfm_mapping *out); /* LFM_ERR_IO with lfm_last_errno() */
void lfm_unmap_file(lfm_mapping *m);
bool lfm_path_exists(const char *path);
bool lfm_path_is_dir(const char *path);

/* ---- memory ---- */

/* size bytes aligned to align (a power of two, at least sizeof(void *)), NULL on failure.
 * Released with free() (lfm_model_own frees what it owns that way). */
void *lfm_aligned_alloc(size_t align, size_t size);
size_t lfm_page_size(void);
/* Drop this process's pages wholly inside [p, p + n) of a file mapping: they stay in the page
 * cache and fault back in if read again. */
void lfm_release_pages(const void *p, size_t n);
/* [p, p + n) of a file mapping will be read at random: no read-ahead around each access. */
void lfm_advise_random(const void *p, size_t n);

/* ---- shared libraries ---- */

/* A shared library loaded at run time (dlopen): for optional back ends such as OpenBLAS
 * (runtime/blas.c), so the engine neither links against them nor needs them installed. */
typedef struct lfm_library lfm_library;
/* Load the library at path, resolving all its symbols now; LFM_ERR_IO saying why not (the loader's
 * own message: no such file, wrong architecture, a missing dependency). */
lfm_status lfm_library_open(const char *path, lfm_library **out);
void *lfm_library_symbol(lfm_library *lib, const char *name); /* NULL if the library has no such symbol */
/* Unload (NULL: no-op). Only for a library none of whose functions is in use or will be called. */
void lfm_library_close(lfm_library *lib);

/* ---- environment ---- */

const char *lfm_env(const char *name); /* NULL if unset */

/* ---- once, threads, clocks ---- */

/* lfm_once(&flag, fn) runs fn exactly once per flag; concurrent callers wait until it returned.
 * static lfm_once_flag flag = LFM_ONCE_INIT; */
typedef struct {
    atomic_int state; /* 0 not run, 1 running, 2 done */
} lfm_once_flag;
#define LFM_ONCE_INIT {0}
void lfm_once(lfm_once_flag *flag, void (*fn)(void));

/* One OS thread running fn(arg); NULL if it could not start. lfm_thread_join waits for it and
 * frees the handle (NULL: no-op). For load-time jobs; per-token work uses the context's pool. */
typedef struct lfm_thread lfm_thread;
lfm_thread *lfm_thread_start(void *(*fn)(void *), void *arg);
void lfm_thread_join(lfm_thread *t);

double lfm_time_now(void);        /* seconds, monotonic */
double lfm_thread_cpu_time(void); /* seconds of CPU used by the calling thread */

/* ---- threads ---- */

typedef struct lfm_threadpool lfm_threadpool;

/* Workers are created once and sleep between jobs. n_threads counts the calling thread. */
lfm_status lfm_threadpool_create(int n_threads, lfm_threadpool **out);
void lfm_threadpool_free(lfm_threadpool *tp);
int lfm_threadpool_n_threads(const lfm_threadpool *tp);
/* Run fn(arg, ith, nth) on every thread (ith = 0 is the caller) and wait for all. */
void lfm_threadpool_run(lfm_threadpool *tp, void (*fn)(void *arg, int ith, int nth), void *arg);

/* ---- UTF-8 (base/utf8.c) ---- */

/* The one UTF-8 reader/writer (tokenizer, JSON, GGUF strings, messages handed to Python). Well-formed
 * means RFC 3629: shortest form, no surrogates (U+D800..DFFF), at most U+10FFFF. */

/* Decode the code point at s[0] (n >= 1 bytes readable). Returns its length 1..4, or 0 if the bytes
 * there are not well-formed (overlong, surrogate, > U+10FFFF, truncated, stray continuation byte). */
static inline size_t lfm_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) len = 2, v = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, v = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, v = c & 0x07, min = 0x10000;
    else return 0;
    if (len > n) return 0;
    for (size_t k = 1; k < len; k++) {
        uint8_t d = s[k];
        if ((d & 0xC0) != 0x80) return 0;
        v = (v << 6) | (d & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

/* Write the scalar value cp (<= U+10FFFF) to dst as 1..4 bytes; returns the length. */
static inline size_t lfm_utf8_encode(char *dst, uint32_t cp) {
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (char)(0xC0 | (cp >> 6));
        dst[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (char)(0xE0 | (cp >> 12));
        dst[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        dst[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    dst[0] = (char)(0xF0 | (cp >> 18));
    dst[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    dst[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    dst[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the longest well-formed prefix of s[0..n): n if all of it is valid UTF-8, else the
 * byte offset of the first sequence that is not. */
size_t lfm_utf8_valid_prefix(const uint8_t *s, size_t n);

/* ---- profiling (base/profile.c) ---- */

/* Off unless LFM_PROFILE=1 in the environment or lfm_profile_enable(true): then lfm_matmul adds its
 * wall time per weight name, so a decode step can be split into matmuls per weight and the rest. */
bool lfm_profile_on(void);
void lfm_profile_enable(bool on);
double lfm_profile_now(void); /* seconds, monotonic (lfm_time_now) */
void lfm_profile_add(const char *name, double seconds, int64_t T);
/* Copy up to cap entries (name, calls, rows, seconds) out; returns the number of entries. */
typedef struct {
    char name[96];
    int64_t calls, rows;
    double seconds;
} lfm_profile_entry;
int lfm_profile_get(lfm_profile_entry *out, int cap, bool reset);

/* ---- misc ---- */

static inline int64_t lfm_min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t lfm_max64(int64_t a, int64_t b) { return a > b ? a : b; }

#endif /* LFM_BASE_H */
