/* threadpool.c — a fixed set of workers created once per context. A job is published by bumping a
 * generation counter; workers spin briefly on it (a decode step issues jobs back to back), then
 * sleep on a condition variable, so an idle context costs no CPU. */
#define _POSIX_C_SOURCE 200809L
#include "base/base.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define SPIN_ITERS 2000

struct lfm_threadpool {
    int n_threads; /* including the caller */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv_job, cv_done;
    atomic_uint_fast64_t gen;   /* incremented once per job */
    atomic_int n_pending;       /* workers still running the current job */
    atomic_int stop;
    void (*fn)(void *, int, int);
    void *arg;
};

typedef struct {
    lfm_threadpool *tp;
    int ith;
} worker_arg;

static void *worker(void *p) {
    worker_arg wa = *(worker_arg *)p;
    free(p);
    lfm_threadpool *tp = wa.tp;
    uint64_t seen = 0;
    for (;;) {
        uint64_t g = atomic_load_explicit(&tp->gen, memory_order_acquire);
        for (int i = 0; g == seen && i < SPIN_ITERS && !atomic_load(&tp->stop); i++) {
            CPU_RELAX();
            g = atomic_load_explicit(&tp->gen, memory_order_acquire);
        }
        if (g == seen) {
            pthread_mutex_lock(&tp->mu);
            while ((g = atomic_load(&tp->gen)) == seen && !atomic_load(&tp->stop)) pthread_cond_wait(&tp->cv_job, &tp->mu);
            pthread_mutex_unlock(&tp->mu);
        }
        if (atomic_load(&tp->stop)) return NULL;
        seen = g;
        tp->fn(tp->arg, wa.ith, tp->n_threads);
        if (atomic_fetch_sub_explicit(&tp->n_pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&tp->mu);
            pthread_cond_signal(&tp->cv_done);
            pthread_mutex_unlock(&tp->mu);
        }
    }
}

lfm_status lfm_threadpool_create(int n_threads, lfm_threadpool **out) {
    *out = NULL;
    if (n_threads <= 0) n_threads = lfm_n_cores();
    if (n_threads > 256) n_threads = 256;
    lfm_threadpool *tp = calloc(1, sizeof *tp);
    if (!tp) return lfm_fail(LFM_ERR_OOM, "out of memory creating the thread pool");
    tp->n_threads = n_threads;
    pthread_mutex_init(&tp->mu, NULL);
    pthread_cond_init(&tp->cv_job, NULL);
    pthread_cond_init(&tp->cv_done, NULL);
    if (n_threads > 1) {
        tp->threads = calloc((size_t)n_threads - 1, sizeof *tp->threads);
        if (!tp->threads) {
            lfm_threadpool_free(tp);
            return lfm_fail(LFM_ERR_OOM, "out of memory creating the thread pool");
        }
        for (int i = 1; i < n_threads; i++) {
            worker_arg *wa = malloc(sizeof *wa);
            if (wa) wa->tp = tp, wa->ith = i;
            if (!wa || pthread_create(&tp->threads[i - 1], NULL, worker, wa) != 0) {
                free(wa);
                tp->n_threads = i; /* only join what was started */
                lfm_threadpool_free(tp);
                return lfm_fail(LFM_ERR_OOM, "cannot start worker thread %d of %d", i, n_threads);
            }
        }
    }
    *out = tp;
    return LFM_OK;
}

void lfm_threadpool_free(lfm_threadpool *tp) {
    if (!tp) return;
    pthread_mutex_lock(&tp->mu);
    atomic_store(&tp->stop, 1);
    pthread_cond_broadcast(&tp->cv_job);
    pthread_mutex_unlock(&tp->mu);
    for (int i = 1; i < tp->n_threads && tp->threads; i++) pthread_join(tp->threads[i - 1], NULL);
    free(tp->threads);
    pthread_mutex_destroy(&tp->mu);
    pthread_cond_destroy(&tp->cv_job);
    pthread_cond_destroy(&tp->cv_done);
    free(tp);
}

int lfm_threadpool_n_threads(const lfm_threadpool *tp) { return tp ? tp->n_threads : 1; }

void lfm_threadpool_run(lfm_threadpool *tp, void (*fn)(void *arg, int ith, int nth), void *arg) {
    if (!tp || tp->n_threads == 1) {
        fn(arg, 0, 1);
        return;
    }
    tp->fn = fn;
    tp->arg = arg;
    atomic_store(&tp->n_pending, tp->n_threads - 1);
    pthread_mutex_lock(&tp->mu);
    atomic_fetch_add_explicit(&tp->gen, 1, memory_order_release);
    pthread_cond_broadcast(&tp->cv_job);
    pthread_mutex_unlock(&tp->mu);
    fn(arg, 0, tp->n_threads);
    for (int i = 0; i < SPIN_ITERS && atomic_load_explicit(&tp->n_pending, memory_order_acquire) > 0; i++) CPU_RELAX();
    if (atomic_load_explicit(&tp->n_pending, memory_order_acquire) > 0) {
        pthread_mutex_lock(&tp->mu);
        while (atomic_load(&tp->n_pending) > 0) pthread_cond_wait(&tp->cv_done, &tp->mu);
        pthread_mutex_unlock(&tp->mu);
    }
}
