/* worker_allow: which programs an exec task may run on this worker.
 *
 * exec is off unless the operator says --allow-exec. Plain --allow-exec
 * allows any program; --allow-exec=LIST (repeatable, lists add up) allows
 * only the programs named, each entry either
 *
 *   a name without '/' ("convert"): matches argv[0] exactly when argv[0] has
 *     no '/' either; the program is then found through the worker's own PATH
 *     (never the task's env), so "convert" cannot be swapped for another
 *     file by the submitter; or
 *   an absolute path ("/usr/bin/convert"): matches argv[0] when it is that
 *     exact path.
 *
 * "./convert", "bin/convert" or "/tmp/x/convert" therefore never match the
 * name "convert". Anything else fails the attempt with
 * "exec: program 'rm' is not in this worker's allow-list". An allowed shell
 * or interpreter (sh, python3) can run anything: allow only what you would
 * let every submitter run.
 *
 * The list is built once from the command line and read-only afterwards,
 * so slot threads read it without locks.
 */
#ifndef WORKER_ALLOW_H
#define WORKER_ALLOW_H

#include <stdbool.h>
#include <stddef.h>

#define WORKER_ALLOW_MAX 256   /* entries of the list */
#define WORKER_ALLOW_LEN 4096  /* bytes of one entry (PATH_MAX) */

typedef struct {
    bool any;                             /* plain --allow-exec: every program */
    const char *progs[WORKER_ALLOW_MAX];  /* names and absolute paths, borrowed from the lists */
    size_t lens[WORKER_ALLOW_MAX];        /* bytes of each (not NUL terminated) */
    size_t n;                             /* entries of progs */
} worker_allow_t;

/* Add the comma-separated entries of list to a. list is borrowed and must
 * outlive a (argv does); nothing is allocated. Returns 0, or -1 with why
 * (n bytes) filled: an empty list or entry, a relative path with '/', a
 * control byte, too many or too long entries. */
int worker_allow_add(worker_allow_t *a, const char *list, char *why, size_t n);

/* True when argv0 may run under a (see the top of this file). */
bool worker_allow_check(const worker_allow_t *a, const char *argv0);

/* The list as text for a log line ("any" or "sh,/usr/bin/convert"), cut to n. */
void worker_allow_describe(const worker_allow_t *a, char *buf, size_t n);

/* Log a warning, once per process, when the worker runs as root (effective
 * uid 0): every exec task then runs as root too. Thread-safe; call before
 * each exec task starts. */
void worker_allow_root_warning(void);

#endif
