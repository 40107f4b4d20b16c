/* worker_allow: the exec allow-list and the root warning (see worker_allow.h). */
#include "worker_allow.h"

#include "farm_log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int s_fail(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int s_fail(char *why, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return -1;
}

int worker_allow_add(worker_allow_t *a, const char *list, char *why, size_t n) {
    if (!list || !*list)
        return s_fail(why, n, "an empty list (plain --allow-exec allows every program)");
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char entry[WORKER_ALLOW_LEN];
        if (len == 0)
            return s_fail(why, n, "an empty entry in '%s'", list);
        if (len >= sizeof entry)
            return s_fail(why, n, "an entry longer than 4095 bytes in '%.64s...'", list);
        memcpy(entry, p, len);
        entry[len] = '\0';
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)entry[i] < 0x20 || entry[i] == 0x7f)
                return s_fail(why, n, "a control character in '%s'", entry);
        if (strchr(entry, '/') && entry[0] != '/')
            return s_fail(why, n, "'%s': an entry is a program name without '/' or an absolute path", entry);
        if (entry[0] == '/' && entry[len - 1] == '/')
            return s_fail(why, n, "'%s' names a folder, not a program", entry);
        if (a->n == WORKER_ALLOW_MAX)
            return s_fail(why, n, "more than %d programs", WORKER_ALLOW_MAX);
        a->progs[a->n] = p;
        a->lens[a->n] = len;
        a->n++;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

bool worker_allow_check(const worker_allow_t *a, const char *argv0) {
    if (!a || a->any)
        return true;
    if (!argv0 || !*argv0)
        return false;
    bool is_path = strchr(argv0, '/') != NULL;
    for (size_t i = 0; i < a->n; i++) {
        bool entry_path = a->progs[i][0] == '/';
        /* a name matches a bare name; a path matches the same absolute path */
        if (entry_path == is_path && strlen(argv0) == a->lens[i] && memcmp(a->progs[i], argv0, a->lens[i]) == 0)
            return true;
    }
    return false;
}

void worker_allow_describe(const worker_allow_t *a, char *buf, size_t n) {
    if (!n)
        return;
    buf[0] = '\0';
    if (a->any || !a->n) {
        snprintf(buf, n, "%s", a->any ? "any" : "none");
        return;
    }
    size_t used = 0;
    for (size_t i = 0; i < a->n && used < n - 1; i++) {
        int w = snprintf(buf + used, n - used, "%s%.*s", i ? "," : "", (int)a->lens[i], a->progs[i]);
        if (w < 0)
            break;
        used += (size_t)w < n - used ? (size_t)w : n - 1 - used;
    }
}

static pthread_once_t s_root_once = PTHREAD_ONCE_INIT;

static void s_root_warn(void) {
    if (geteuid() == 0)
        farm_log(FARM_LOG_WARN, "worker",
                 "event=exec-as-root msg=\"this worker runs as root: exec tasks run as root too; run farm-worker as "
                 "an unprivileged user\"");
}

void worker_allow_root_warning(void) { (void)pthread_once(&s_root_once, s_root_warn); }
