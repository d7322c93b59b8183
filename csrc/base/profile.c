/* profile.c — opt-in wall-time accounting per weight matrix (LFM_PROFILE=1), read back from Python
 * by benchmarks/bench_gguf.py --profile. Costs one branch per matmul when off. */
#define _POSIX_C_SOURCE 200809L
#include "base/base.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define PROFILE_CAP 1024

static int state = -1; /* -1: environment not read yet */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static lfm_profile_entry table[PROFILE_CAP];
static int n_entries;

bool lfm_profile_on(void) {
    if (state < 0) {
        const char *e = getenv("LFM_PROFILE");
        state = e && *e && strcmp(e, "0") != 0;
    }
    return state > 0;
}

void lfm_profile_enable(bool on) { state = on ? 1 : 0; }

double lfm_profile_now(void) { return lfm_time_now(); }

void lfm_profile_add(const char *name, double seconds, int64_t T) {
    pthread_mutex_lock(&mu);
    int i = 0;
    while (i < n_entries && strcmp(table[i].name, name) != 0) i++;
    if (i == n_entries && n_entries < PROFILE_CAP) {
        memset(&table[i], 0, sizeof table[i]);
        strncpy(table[i].name, name, sizeof table[i].name - 1);
        n_entries++;
    }
    if (i < n_entries) {
        table[i].calls++;
        table[i].rows += T;
        table[i].seconds += seconds;
    }
    pthread_mutex_unlock(&mu);
}

int lfm_profile_get(lfm_profile_entry *out, int cap, bool reset) {
    pthread_mutex_lock(&mu);
    int n = n_entries < cap ? n_entries : cap;
    if (out) memcpy(out, table, (size_t)n * sizeof *out);
    if (reset) n_entries = 0;
    pthread_mutex_unlock(&mu);
    return n;
}
