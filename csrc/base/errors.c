/* errors.c — the thread-local error message and errno behind lfm_last_error() / lfm_last_errno(),
 * and status names. */
#include "base/base.h"

#include <stdarg.h>
#include <stdio.h>

/* ---- errors ---- */

static _Thread_local char last_error[1024];
static _Thread_local int last_errno; /* errno of the OS call behind the last failure, else 0 */

lfm_status lfm_fail(lfm_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    last_errno = 0;
    return status;
}

lfm_status lfm_fail_io(int err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    last_errno = err;
    return LFM_ERR_IO;
}

const char *lfm_last_error(void) { return last_error; }
int lfm_last_errno(void) { return last_errno; }

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
