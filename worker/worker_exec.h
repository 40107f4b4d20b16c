/*
 * worker_exec.h - run one external command for a worker slot ("exec" tasks).
 *
 * A slot thread calls worker_exec_run() to spawn a program in its own process
 * group, feed it stdin, capture stdout/stderr up to a limit, forward progress
 * lines written to fd 3, and stop it on timeout or cancel (SIGTERM to the
 * group, SIGKILL after a grace period). The call is synchronous, thread-safe
 * and bounded: it returns at most about task lifetime + grace (+100 ms drain).
 * See worker_exec.c for the design notes.
 */
#ifndef FARM_WORKER_EXEC_H
#define FARM_WORKER_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Options of one run. Nothing here is modified or retained after the call. */
typedef struct {
    char *const *argv;        /* NULL-terminated; argv[0] looked up in PATH if it has no '/'. Required, argv[0] non-empty */
    char *const *env_extra;   /* NULL or NULL-terminated "KEY=VALUE" entries added to (overriding) the parent's environ;
                                 an entry "KEY" without '=' removes KEY. FARM_PROGRESS_FD cannot be overridden */
    const char *cwd;          /* NULL: inherit; otherwise the child's working directory (a relative argv[0]
                                 containing '/' is then resolved from it) */
    const void *stdin_data;   /* may be NULL; written to the child's stdin, then stdin closed (child gets /dev/null-like EOF when NULL) */
    size_t stdin_len;         /* bytes at stdin_data; must be 0 when stdin_data is NULL */
    size_t out_limit;         /* max bytes kept per stream (stdout, stderr); the rest is read and discarded, truncated=true.
                                 0 keeps nothing (any output sets truncated) */
    int64_t timeout_ms;       /* 0 = no limit; wall clock from spawn (measured on CLOCK_MONOTONIC); must be >= 0 */
    int64_t kill_grace_ms;    /* time between SIGTERM and SIGKILL to the process group; 0 means 2000; must be >= 0 */
    int cancel_fd;            /* -1, or an fd that becomes readable when the task must stop (cancel): treat like a timeout but set cancelled.
                                 Only polled, never read, so one fd can be shared by several runs */
    void (*on_progress)(void *ud, int pct, const char *msg); /* may be NULL; called on the caller's thread; msg is valid
                                                                 only during the call */
    void *ud;                 /* passed unchanged to on_progress */
} worker_exec_opts_t;

/* Outcome of one run. Owned by the caller; release with worker_exec_result_free(). */
typedef struct {
    int exit_code;      /* the child's exit status; -1 when it was killed by a signal or could not be spawned */
    int signal;         /* the terminating signal, 0 if none */
    char *out;          /* captured stdout, malloc'd, NUL terminated after out_len; NULL if empty */
    size_t out_len;     /* bytes in out (<= out_limit) */
    char *err;          /* captured stderr, same rules as out */
    size_t err_len;     /* bytes in err (<= out_limit) */
    bool truncated;     /* stdout or stderr exceeded out_limit */
    bool timed_out;     /* killed because of timeout_ms */
    bool cancelled;     /* killed because cancel_fd became readable */
    int64_t duration_ms;/* spawn to reap */
    char error[256];    /* when worker_exec_run returns < 0: why (e.g. "spawn 'nosuchprog': No such file or directory") */
} worker_exec_result_t;

/*
 * Run one command to completion.
 *
 * Zeroes *r first, then spawns o->argv in a new process group and supervises it
 * until the leader has exited and been reaped; whatever is left in the process
 * group at that point is SIGKILLed.
 *
 * Returns 0 when the child was spawned and reaped, whatever its exit status
 * (see exit_code, signal, timed_out, cancelled). Returns a negative -errno when
 * it could not be spawned (-EINVAL for bad options, -ENOENT for a missing
 * program, ...): error[] says why, exit_code is -1 and nothing is captured.
 * Two rare post-spawn failures also return < 0 with error[] set, the child
 * having been killed and/or reaped and captured output kept: poll() failing
 * (-errno) and the child's status being stolen by someone else, e.g. when
 * SIGCHLD is set to SIG_IGN in the process (-ECHILD).
 *
 * Thread-safe: no global state, signal handlers or reaping of foreign pids.
 * SIGPIPE is blocked in the calling thread for the duration of the call only.
 * Blocks at most the child's lifetime (bounded by timeout_ms when set) plus
 * kill_grace_ms plus ~100 ms of output draining. Caller frees with
 * worker_exec_result_free(), also after a failure.
 */
int worker_exec_run(const worker_exec_opts_t *o, worker_exec_result_t *r);

/* Free the captured buffers of r and reset them to NULL/0. Safe on a zeroed or
 * already freed result and on NULL. Other fields are left untouched. */
void worker_exec_result_free(worker_exec_result_t *r);

#ifdef __cplusplus
}
#endif

#endif /* FARM_WORKER_EXEC_H */
