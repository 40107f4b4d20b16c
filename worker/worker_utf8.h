/* worker_utf8: strict UTF-8 for the handlers that read text.
 *
 * Task args are untrusted, and a MessagePack str promises nothing about its
 * bytes, so ingest (string lengths in characters) and text (word and
 * character counts, case changes) decode with the farm's one strict decoder
 * (proto/farm_utf8.h) and, in addition, refuse NUL. What it refuses, they
 * refuse with a message, so they never emit invalid UTF-8 in a result.
 */
#ifndef WORKER_UTF8_H
#define WORKER_UTF8_H

#include "farm_utf8.h"

/* farm_utf8_next, but 0 for NUL too. */
static inline size_t worker_utf8_next(const unsigned char *p, size_t n, uint32_t *cp) {
    if (n > 0 && p[0] == 0)
        return 0;
    return farm_utf8_next(p, n, cp);
}

#define worker_utf8_put farm_utf8_put

/* The number of code points of p[0..n), or -1 when it is not valid UTF-8
 * or holds a NUL. */
static inline int64_t worker_utf8_count(const char *p, size_t n) {
    const unsigned char *u = (const unsigned char *)p;
    int64_t count = 0;
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        size_t k = worker_utf8_next(u + i, n - i, &cp);
        if (k == 0)
            return -1;
        i += k;
        count++;
    }
    return count;
}

#endif
