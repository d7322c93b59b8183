/* os.c — files: read-only whole-file mappings. Every OS call the engine makes belongs in base/. */
#define _GNU_SOURCE
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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
