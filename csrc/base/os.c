/* os.c — every OS call outside the thread pool, CPU detection and profiling: files (read-only
 * whole-file mappings, existence tests), memory (aligned allocation, page advice), shared
 * libraries loaded at run time, the environment, run-once, load-time threads and clocks. A port
 * to another OS replaces this file. */
#define _GNU_SOURCE
#include "base/base.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- files ---- */

lfm_status lfm_map_file(const char *path, lfm_mapping *out) {
    out->addr = NULL;
    out->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return lfm_fail_io(e, "cannot open '%s': %s", path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return lfm_fail_io(e, "cannot stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return lfm_fail_io(S_ISDIR(st.st_mode) ? EISDIR : 0, "'%s' is not a regular file", path);
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return lfm_fail_io(e, "cannot mmap '%s': %s", path, strerror(e));
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

bool lfm_path_exists(const char *path) {
    struct stat s;
    return stat(path, &s) == 0;
}

bool lfm_path_is_dir(const char *path) {
    struct stat s;
    return stat(path, &s) == 0 && S_ISDIR(s.st_mode);
}

/* ---- memory ---- */

void *lfm_aligned_alloc(size_t align, size_t size) {
    void *p = NULL;
    return posix_memalign(&p, align, size) == 0 ? p : NULL;
}

size_t lfm_page_size(void) {
    long ps = sysconf(_SC_PAGESIZE);
    return ps > 0 ? (size_t)ps : 4096;
}

void lfm_release_pages(const void *p, size_t n) {
    const uintptr_t ps = lfm_page_size();
    uintptr_t a = ((uintptr_t)p + ps - 1) & ~(ps - 1); /* whole pages only: round inwards */
    uintptr_t b = ((uintptr_t)p + n) & ~(ps - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

void lfm_advise_random(const void *p, size_t n) {
    const uintptr_t ps = lfm_page_size();
    uintptr_t a = (uintptr_t)p & ~(ps - 1); /* madvise wants a page-aligned start */
    uintptr_t b = (uintptr_t)p + n;
    if (b > a) madvise((void *)a, b - a, MADV_RANDOM);
}

/* ---- shared libraries ---- */

struct lfm_library {
    void *handle;
};

lfm_status lfm_library_open(const char *path, lfm_library **out) {
    *out = NULL;
    /* RTLD_LOCAL: the library's symbols stay out of the global namespace, where they could
     * capture another module's calls to a same-named function */
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        return lfm_fail_io(0, "cannot load '%s': %s", path, why ? why : "unknown error");
    }
    lfm_library *lib = malloc(sizeof *lib);
    if (!lib) {
        dlclose(h);
        return lfm_fail(LFM_ERR_OOM, "out of memory");
    }
    lib->handle = h;
    *out = lib;
    return LFM_OK;
}

void *lfm_library_symbol(lfm_library *lib, const char *name) { return lib ? dlsym(lib->handle, name) : NULL; }

void lfm_library_close(lfm_library *lib) {
    if (!lib) return;
    dlclose(lib->handle);
    free(lib);
}

/* ---- environment ---- */

const char *lfm_env(const char *name) { return getenv(name); }

/* ---- once, threads, clocks ---- */

void lfm_once(lfm_once_flag *flag, void (*fn)(void)) {
    if (atomic_load_explicit(&flag->state, memory_order_acquire) == 2) return;
    int expected = 0;
    if (atomic_compare_exchange_strong(&flag->state, &expected, 1)) {
        fn();
        atomic_store_explicit(&flag->state, 2, memory_order_release);
        return;
    }
    while (atomic_load_explicit(&flag->state, memory_order_acquire) != 2) sched_yield();
}

struct lfm_thread {
    pthread_t id;
};

lfm_thread *lfm_thread_start(void *(*fn)(void *), void *arg) {
    lfm_thread *t = malloc(sizeof *t);
    if (t && pthread_create(&t->id, NULL, fn, arg) != 0) {
        free(t);
        t = NULL;
    }
    return t;
}

void lfm_thread_join(lfm_thread *t) {
    if (!t) return;
    pthread_join(t->id, NULL);
    free(t);
}

static double seconds(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double lfm_time_now(void) { return seconds(CLOCK_MONOTONIC); }
double lfm_thread_cpu_time(void) { return seconds(CLOCK_THREAD_CPUTIME_ID); }
