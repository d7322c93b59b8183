/* Read bandwidth of main memory with N threads: the ceiling a memory-bound decode can reach.
 *
 *   cc -O2 -march=native -pthread benchmarks/read_bandwidth.c -o read_bandwidth
 *   ./read_bandwidth THREADS MIB PASSES      -> prints one line: {"gb_s": ..., ...}
 *
 * bench_gguf.py compiles and runs this itself. Each thread first writes its own slice (so its pages
 * are local to it), then every pass all threads start together at a barrier and sum their slice
 * with 64-byte vector loads into four independent accumulators (one chain would be bound by the
 * add latency, not by memory). A pass lasts until the slowest thread is done; the best pass is
 * kept, as a shared machine only ever makes a pass slower. The buffer must be much larger than the
 * last-level cache, or this measures the cache. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* GCC/Clang vector extension: AVX-512, AVX2 or SSE2 loads depending on -march, NEON on arm64. */
typedef uint64_t u64x8 __attribute__((vector_size(64)));

typedef struct {
    const u64x8 *slice;
    size_t n_vec;
    uint64_t sum; /* kept so the loads cannot be optimised away */
} reader;

static pthread_barrier_t pass_start, pass_end;
static int n_pass;
static reader *readers;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t sum_slice(const u64x8 *v, size_t n) {
    u64x8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        a0 += v[i];
        a1 += v[i + 1];
        a2 += v[i + 2];
        a3 += v[i + 3];
    }
    for (; i < n; i++) a0 += v[i];
    u64x8 a = a0 + a1 + a2 + a3;
    uint64_t s = 0;
    for (int k = 0; k < 8; k++) s += a[k];
    return s;
}

static void *reader_main(void *arg) {
    reader *r = arg;
    memset((void *)r->slice, 1, r->n_vec * sizeof(u64x8));
    for (int p = 0; p < n_pass; p++) {
        pthread_barrier_wait(&pass_start);
        r->sum += sum_slice(r->slice, r->n_vec);
        pthread_barrier_wait(&pass_end);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s THREADS MIB PASSES\n", argv[0]);
        return 2;
    }
    int n_thread = atoi(argv[1]);
    long mib = atol(argv[2]);
    n_pass = atoi(argv[3]);
    if (n_thread < 1 || n_thread > 1024 || mib < 1 || n_pass < 1) {
        fprintf(stderr, "%s: THREADS must be 1..1024, MIB and PASSES at least 1\n", argv[0]);
        return 2;
    }
    size_t n_vec_total = (size_t)mib * 1024 * 1024 / sizeof(u64x8);
    size_t per_thread = n_vec_total / (size_t)n_thread;
    u64x8 *buf = aligned_alloc(4096, per_thread * (size_t)n_thread * sizeof(u64x8));
    readers = calloc((size_t)n_thread, sizeof(reader));
    pthread_t *threads = calloc((size_t)n_thread, sizeof(pthread_t));
    if (!buf || !readers || !threads) {
        fprintf(stderr, "%s: cannot allocate %ld MiB\n", argv[0], mib);
        return 1;
    }
    pthread_barrier_init(&pass_start, NULL, (unsigned)n_thread + 1);
    pthread_barrier_init(&pass_end, NULL, (unsigned)n_thread + 1);
    for (int t = 0; t < n_thread; t++) {
        readers[t].slice = buf + (size_t)t * per_thread;
        readers[t].n_vec = per_thread;
        if (pthread_create(&threads[t], NULL, reader_main, &readers[t]) != 0) {
            fprintf(stderr, "%s: cannot start thread %d\n", argv[0], t);
            return 1;
        }
    }
    double best = 1e30, worst = 0;
    for (int p = 0; p < n_pass; p++) {
        pthread_barrier_wait(&pass_start);
        double t0 = now_s();
        pthread_barrier_wait(&pass_end);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
        if (dt > worst) worst = dt;
    }
    uint64_t check = 0;
    for (int t = 0; t < n_thread; t++) {
        pthread_join(threads[t], NULL);
        check += readers[t].sum;
    }
    double bytes = (double)per_thread * (double)n_thread * sizeof(u64x8);
    printf("{\"gb_s\": %.3f, \"worst_gb_s\": %.3f, \"threads\": %d, \"mib\": %.0f, \"passes\": %d, \"check\": %llu}\n",
           bytes / best / 1e9, bytes / worst / 1e9, n_thread, bytes / 1048576.0, n_pass, (unsigned long long)check);
    free(threads);
    free(readers);
    free(buf);
    return 0;
}
