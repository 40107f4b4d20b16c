/*
 * worker_exec.c - run one external command for a worker slot.
 *
 * Design. Every run is self-contained on the caller's stack/heap: there is no
 * global state, no signal handler and no SIGCHLD handling, so several slot
 * threads may run commands concurrently. The child is started with
 * posix_spawn() in a new process group (pgid = its pid) with an empty signal
 * mask and default dispositions for every signal. Its stdin (a pipe, or
 * /dev/null when there is no input), stdout, stderr and a progress pipe (fd 3,
 * announced as FARM_PROGRESS_FD=3) are created with pipe2(O_CLOEXEC) and moved
 * above fd 3 so that concurrent spawns in other threads never inherit them and
 * the dup2 file actions cannot clobber each other; the parent's ends are
 * non-blocking. A single poll() loop then serves everything: it writes stdin
 * in chunks (so a child that writes a lot before reading cannot deadlock us),
 * reads the three output pipes (keeping at most out_limit bytes per stream and
 * discarding the rest), splits the progress pipe into lines, watches cancel_fd
 * and waits for the child's exit through a pidfd (SYS_pidfd_open; when that is
 * unavailable the loop wakes every 10 ms and asks waitid(WNOHANG)). Only our
 * own pid is ever waited for. A bare program name is looked up in the
 * worker's PATH here, before the spawn (the child then makes one execve
 * instead of one per PATH entry before the right one: with `true` in the
 * seventh entry that was most of the cost of a short command). Exit is detected with waitid(WNOWAIT): the leader
 * stays a zombie until the very end, which pins its pid and therefore the
 * process group id, so the final kill(-pgid, SIGKILL) can never hit an
 * unrelated group that reused the number. On timeout or cancel the group gets
 * SIGTERM, then SIGKILL after kill_grace_ms. Once the leader has exited, the
 * pipes are drained until EOF or for at most 100 ms more (background
 * grandchildren may keep them open; while a termination is in progress the
 * drain may last until the SIGKILL time), the group is SIGKILLed and the
 * leader reaped.
 *
 * SIGPIPE: writing to the stdin pipe of a child that has closed it raises a
 * thread-directed SIGPIPE. worker_exec_run() blocks SIGPIPE in the calling
 * thread only (pthread_sigmask), turns such a write into EPIPE (which is not
 * an error: the child simply did not want more input), and before restoring
 * the mask consumes the SIGPIPE it caused with sigtimedwait() (unless one was
 * already pending on entry). Other threads and the process-wide dispositions
 * are untouched.
 *
 * Environment: the child's environment is the parent's environ (read, never
 * modified; callers must not setenv() concurrently, as usual) with env_extra
 * applied on top. PATH lookup of argv[0] uses the parent's PATH.
 */
#include "worker_exec.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define S_PROGRESS_FD       3           /* child fd of the progress pipe */
#define S_PROGRESS_ENV      "FARM_PROGRESS_FD=3"
#define S_PROGRESS_LINE_MAX 512         /* longer progress lines are discarded */
#define S_CHUNK             (64 * 1024) /* read / write unit */
#define S_DRAIN_MS          100         /* pipe draining after the leader exited */
#define S_DEFAULT_GRACE_MS  2000
#define S_FALLBACK_POLL_MS  10          /* exit polling period without a pidfd */

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))
#define S_HAVE_ADDCHDIR 1
#endif
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define S_HAVE_CLOSEFROM 1
#endif

/* One captured stream (stdout or stderr). */
typedef struct {
    char *buf;       /* malloc'd, NUL terminated after len when non-NULL */
    size_t len;      /* bytes kept, <= limit */
    size_t cap;      /* allocated bytes */
    size_t limit;    /* out_limit */
    bool truncated;  /* something was discarded */
    bool broken;     /* allocation failed: discard everything from now on */
} s_capture_t;

/* Line splitter of the progress pipe. */
typedef struct {
    char line[S_PROGRESS_LINE_MAX + 1];               /* current partial line + NUL */
    size_t len;                                       /* bytes in line */
    bool overlong;                                    /* current line exceeded the max: skip to '\n' */
    void (*cb)(void *ud, int pct, const char *msg);   /* on_progress, may be NULL */
    void *ud;                                         /* its user data */
} s_progress_t;

/* Everything one run owns. */
typedef struct {
    pid_t pid;                   /* the child (process group leader), 0 before spawn */
    int pidfd;                   /* pidfd of the child or -1 (fallback polling) */
    int in_r, in_w;              /* stdin pipe (-1 when /dev/null is used) */
    int out_r, out_w;            /* stdout pipe */
    int err_r, err_w;            /* stderr pipe */
    int prog_r, prog_w;          /* progress pipe */
    const unsigned char *in_data;/* stdin bytes */
    size_t in_len, in_off;       /* their size and how much was written */
    bool epipe;                  /* a stdin write failed with EPIPE (SIGPIPE pending) */
    s_capture_t out, err;        /* captured streams */
    s_progress_t prog;           /* progress parser */
    char *scratch;               /* S_CHUNK read buffer */
    char **env;                  /* child environment (pointers into environ/env_extra) */
} s_run_t;

/* ------------------------------------------------------------------------ */
/* small helpers                                                            */

static int64_t s_now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0; /* cannot happen with CLOCK_MONOTONIC */
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* a + b, or INT64_MAX on overflow (both non-negative). */
static int64_t s_add_ms(int64_t a, int64_t b)
{
    return b > INT64_MAX - a ? INT64_MAX : a + b;
}

__attribute__((format(printf, 3, 4)))
static int s_fail(worker_exec_result_t *r, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
    return rc;
}

static const char *s_strerror(int err, char *buf, size_t len)
{
    return strerror_r(err, buf, len); /* GNU variant: thread-safe */
}

static void s_close(int *fd)
{
    if (*fd >= 0) {
        /* On Linux the fd is released even when close() reports EINTR or EIO;
         * there is nothing useful to do about an error on a pipe here. */
        if (close(*fd) != 0 && errno != EINTR) { /* ignored, see above */ }
        *fd = -1;
    }
}

static int s_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

/* Move fd above S_PROGRESS_FD (keeping FD_CLOEXEC) so that the child's dup2
 * actions onto 0..3 can never overwrite a pipe end still to be duplicated. */
static int s_fd_high(int fd)
{
    if (fd > S_PROGRESS_FD)
        return fd;
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, S_PROGRESS_FD + 1);
    int e = errno;
    s_close(&fd);
    if (nfd < 0) {
        errno = e;
        return -1;
    }
    return nfd;
}

/* Look a bare program name up in PATH as posix_spawnp() would (the
 * first entry holding an executable regular file of that name) and write
 * its path to out. False when name has a '/', is not found, or an entry is
 * relative (it would depend on the child's cwd): posix_spawnp() decides. */
static bool s_lookup(const char *name, char *out, size_t n) {
    const char *dirs = getenv("PATH");
    if (!name[0] || strchr(name, '/') || !dirs)
        return false;
    for (const char *d = dirs; *d;) {
        size_t len = strcspn(d, ":");
        if (len == 0 || d[0] != '/')
            return false;
        int w = snprintf(out, n, "%.*s/%s", (int)len, d, name);
        struct stat st;
        if (w > 0 && (size_t)w < n && stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
            return true;
        d += len + (d[len] == ':');
    }
    return false;
}

/* pipe2(O_CLOEXEC) with both ends above fd 3. Returns 0 or -errno. */
static int s_pipe(int *rd, int *wr)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -errno;
    p[0] = s_fd_high(p[0]);
    if (p[0] < 0) {
        int e = errno;
        s_close(&p[1]);
        return -e;
    }
    p[1] = s_fd_high(p[1]);
    if (p[1] < 0) {
        int e = errno;
        s_close(&p[0]);
        return -e;
    }
    *rd = p[0];
    *wr = p[1];
    return 0;
}

/* Signal the child's process group; when the leader has left its group (it
 * called setpgid/setsid itself) and the group is gone, signal the leader. The
 * leader is never reaped before we stop signalling, so its pid is pinned. */
static void s_signal_group(pid_t pid, int sig)
{
    if (kill(-pid, sig) != 0 && errno == ESRCH) {
        if (kill(pid, sig) != 0) { /* ESRCH: nothing left to signal */ }
    }
}

/* ------------------------------------------------------------------------ */
/* environment                                                              */

static size_t s_keylen(const char *kv)
{
    const char *eq = strchr(kv, '=');
    return eq ? (size_t)(eq - kv) : strlen(kv);
}

static bool s_same_key(const char *a, const char *b)
{
    size_t la = s_keylen(a);
    return la == s_keylen(b) && memcmp(a, b, la) == 0;
}

/* environ minus the keys named in extra and FARM_PROGRESS_FD, then the
 * "KEY=VALUE" entries of extra (last one wins), then FARM_PROGRESS_FD=3.
 * Only the pointer array is allocated. NULL on ENOMEM. */
static char **s_build_env(char *const *extra)
{
    size_t ne = 0, nx = 0;
    for (char **e = environ; e && *e; e++)
        ne++;
    for (char *const *x = extra; x && *x; x++)
        nx++;
    char **env = calloc(ne + nx + 2, sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < ne; i++) {
        char *e = environ[i];
        bool skip = s_same_key(e, S_PROGRESS_ENV);
        for (size_t j = 0; !skip && j < nx; j++)
            skip = s_same_key(e, extra[j]);
        if (!skip)
            env[k++] = e;
    }
    for (size_t i = 0; i < nx; i++) {
        char *x = extra[i];
        bool skip = !strchr(x, '=') || s_same_key(x, S_PROGRESS_ENV);
        for (size_t j = i + 1; !skip && j < nx; j++)
            skip = s_same_key(x, extra[j]);
        if (!skip)
            env[k++] = x;
    }
    env[k++] = S_PROGRESS_ENV;
    env[k] = NULL;
    return env;
}

/* ------------------------------------------------------------------------ */
/* capture and progress                                                     */

static void s_capture_add(s_capture_t *c, const char *data, size_t n)
{
    if (n == 0)
        return;
    size_t room = c->limit - c->len;
    size_t take = n < room ? n : room;
    if (take < n || c->broken)
        c->truncated = true;
    if (take == 0 || c->broken)
        return;
    size_t need = c->len + take + 1; /* + NUL */
    if (need == 0) {                 /* limit == SIZE_MAX wrapped */
        c->truncated = true;
        return;
    }
    if (need > c->cap) {
        size_t ncap = c->cap < 4096 ? 4096 : c->cap;
        while (ncap < need)
            ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
        if (c->limit < SIZE_MAX && ncap > c->limit + 1)
            ncap = c->limit + 1; /* still >= need */
        char *nb = realloc(c->buf, ncap);
        if (!nb) {
            c->broken = true;
            c->truncated = true;
            return;
        }
        c->buf = nb;
        c->cap = ncap;
    }
    memcpy(c->buf + c->len, data, take);
    c->len += take;
    c->buf[c->len] = '\0';
}

static bool s_is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* Parse "NN message" (NN an optionally signed decimal; message optional,
 * separated by white space). Modifies line. */
static bool s_progress_parse(char *line, size_t len, int *pct, const char **msg)
{
    if (strlen(line) != len)
        return false; /* embedded NUL */
    char *p = line;
    while (s_is_space(*p))
        p++;
    bool neg = false;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    if (*p < '0' || *p > '9')
        return false;
    int v = 0;
    for (; *p >= '0' && *p <= '9'; p++)
        if (v < 1000)
            v = v * 10 + (*p - '0');
    if (*p != '\0' && !s_is_space(*p))
        return false;
    while (s_is_space(*p))
        p++;
    char *end = p + strlen(p);
    while (end > p && s_is_space(end[-1]))
        end--;
    *end = '\0';
    if (neg)
        v = -v;
    *pct = v < 0 ? 0 : v > 100 ? 100 : v;
    *msg = p;
    return true;
}

static void s_progress_feed(s_progress_t *pg, const char *data, size_t n)
{
    if (!pg->cb)
        return; /* nobody listens: just drain the pipe */
    for (size_t i = 0; i < n; i++) {
        char ch = data[i];
        if (ch == '\n') {
            int pct;
            const char *msg;
            pg->line[pg->len] = '\0';
            if (!pg->overlong && s_progress_parse(pg->line, pg->len, &pct, &msg))
                pg->cb(pg->ud, pct, msg);
            pg->len = 0;
            pg->overlong = false;
        } else if (!pg->overlong) {
            if (pg->len < S_PROGRESS_LINE_MAX)
                pg->line[pg->len++] = ch;
            else
                pg->overlong = true;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* poll loop pieces                                                         */

/* One read from *fd; dispatch to the capture / progress parser. Closes the fd
 * on EOF or on a read error. */
static void s_pump(s_run_t *s, int *fd, s_capture_t *cap)
{
    ssize_t n;
    do
        n = read(*fd, s->scratch, S_CHUNK);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0) { /* EOF (or an unexpected error: treat as EOF) */
        s_close(fd);
        return;
    }
    if (cap)
        s_capture_add(cap, s->scratch, (size_t)n);
    else
        s_progress_feed(&s->prog, s->scratch, (size_t)n);
}

/* Write the next chunk of stdin; close the pipe when done or when the child
 * closed its end (EPIPE is not an error). */
static void s_feed_stdin(s_run_t *s)
{
    size_t left = s->in_len - s->in_off;
    size_t n = left > S_CHUNK ? S_CHUNK : left;
    ssize_t w;
    do
        w = write(s->in_w, s->in_data + s->in_off, n);
    while (w < 0 && errno == EINTR);
    if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        if (errno == EPIPE)
            s->epipe = true;
        s_close(&s->in_w);
        return;
    }
    s->in_off += (size_t)w;
    if (s->in_off >= s->in_len)
        s_close(&s->in_w);
}

/* Has the child exited? Uses WNOWAIT so the zombie keeps pinning the pid.
 * Returns 1 exited, 0 still running, -errno when its status is unavailable. */
static int s_check_exit(pid_t pid)
{
    siginfo_t si;
    for (;;) {
        memset(&si, 0, sizeof si);
        if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0)
            return si.si_pid == pid ? 1 : 0;
        if (errno != EINTR)
            return -errno;
    }
}

/* ------------------------------------------------------------------------ */
/* spawn                                                                    */

static int s_spawn(const worker_exec_opts_t *o, s_run_t *s, worker_exec_result_t *r)
{
    char ebuf[128];
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t mask, def;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc != 0)
        return s_fail(r, -rc, "posix_spawn_file_actions_init: %s", s_strerror(rc, ebuf, sizeof ebuf));
    rc = posix_spawnattr_init(&at);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return s_fail(r, -rc, "posix_spawnattr_init: %s", s_strerror(rc, ebuf, sizeof ebuf));
    }

    const char *step = "file actions";
#ifdef S_HAVE_ADDCHDIR
    if (rc == 0 && o->cwd)
        rc = posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
#endif
    if (rc == 0)
        rc = s->in_r >= 0 ? posix_spawn_file_actions_adddup2(&fa, s->in_r, STDIN_FILENO)
                          : posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(&fa, s->out_w, STDOUT_FILENO);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(&fa, s->err_w, STDERR_FILENO);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(&fa, s->prog_w, S_PROGRESS_FD);
#ifdef S_HAVE_CLOSEFROM
    /* Belt and braces against fds some other code opened without O_CLOEXEC. */
    if (rc == 0)
        rc = posix_spawn_file_actions_addclosefrom_np(&fa, S_PROGRESS_FD + 1);
#endif
    if (rc == 0) {
        step = "attributes";
        rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                               POSIX_SPAWN_SETSIGDEF);
    }
    if (rc == 0)
        rc = posix_spawnattr_setpgroup(&at, 0);
    if (rc == 0 && (sigemptyset(&mask) != 0 || sigfillset(&def) != 0))
        rc = errno;
    if (rc == 0)
        rc = posix_spawnattr_setsigmask(&at, &mask);
    if (rc == 0)
        rc = posix_spawnattr_setsigdefault(&at, &def);
    if (rc != 0) {
        posix_spawnattr_destroy(&at);
        posix_spawn_file_actions_destroy(&fa);
        return s_fail(r, -rc, "spawn '%s': %s: %s", o->argv[0], step, s_strerror(rc, ebuf, sizeof ebuf));
    }

    char path[PATH_MAX];
    if (s_lookup(o->argv[0], path, sizeof path))
        rc = posix_spawn(&s->pid, path, &fa, &at, o->argv, s->env);
    else /* not found, or a PATH entry that depends on cwd: the usual search, and its error */
        rc = posix_spawnp(&s->pid, o->argv[0], &fa, &at, o->argv, s->env);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        s->pid = 0;
        if (o->cwd)
            return s_fail(r, -rc, "spawn '%s' (cwd '%s'): %s", o->argv[0], o->cwd,
                          s_strerror(rc, ebuf, sizeof ebuf));
        return s_fail(r, -rc, "spawn '%s': %s", o->argv[0], s_strerror(rc, ebuf, sizeof ebuf));
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* supervision                                                              */

enum { S_RUNNING, S_TERMINATING, S_KILLED };

/* Supervise the spawned child until it is reaped. Returns 0 or -errno. */
static int s_supervise(const worker_exec_opts_t *o, s_run_t *s, worker_exec_result_t *r, int64_t t0)
{
    char ebuf[128];
    int64_t grace = o->kill_grace_ms > 0 ? o->kill_grace_ms : S_DEFAULT_GRACE_MS;
    int64_t deadline = o->timeout_ms > 0 ? s_add_ms(t0, o->timeout_ms) : 0;
    int64_t kill_at = 0, drain_until = 0;
    int phase = S_RUNNING;
    bool exited = false, lost = false, watch_cancel = o->cancel_fd >= 0;
    int rc = 0;

    for (;;) {
        int64_t now = s_now_ms();
        if (!exited) {
            if (phase == S_RUNNING && deadline && now >= deadline) {
                r->timed_out = true;
                s_signal_group(s->pid, SIGTERM);
                phase = S_TERMINATING;
                kill_at = s_add_ms(now, grace);
            }
            if (phase == S_TERMINATING && now >= kill_at) {
                s_signal_group(s->pid, SIGKILL);
                phase = S_KILLED;
            }
        } else if ((s->out_r < 0 && s->err_r < 0 && s->prog_r < 0) || now >= drain_until) {
            break;
        }

        struct pollfd pf[6];
        int ix_in = -1, ix_out = -1, ix_err = -1, ix_prog = -1, ix_pid = -1, ix_cancel = -1;
        nfds_t nf = 0;
        if (s->in_w >= 0) {
            ix_in = (int)nf;
            pf[nf++] = (struct pollfd){ .fd = s->in_w, .events = POLLOUT };
        }
        if (s->out_r >= 0) {
            ix_out = (int)nf;
            pf[nf++] = (struct pollfd){ .fd = s->out_r, .events = POLLIN };
        }
        if (s->err_r >= 0) {
            ix_err = (int)nf;
            pf[nf++] = (struct pollfd){ .fd = s->err_r, .events = POLLIN };
        }
        if (s->prog_r >= 0) {
            ix_prog = (int)nf;
            pf[nf++] = (struct pollfd){ .fd = s->prog_r, .events = POLLIN };
        }
        if (!exited && s->pidfd >= 0) {
            ix_pid = (int)nf;
            pf[nf++] = (struct pollfd){ .fd = s->pidfd, .events = POLLIN };
        }
        if (!exited && phase == S_RUNNING && watch_cancel) {
            ix_cancel = (int)nf;
            pf[nf++] = (struct pollfd){ .fd = o->cancel_fd, .events = POLLIN };
        }

        int64_t wait = -1;
        if (!exited && phase == S_RUNNING && deadline)
            wait = deadline - now;
        if (!exited && phase == S_TERMINATING)
            wait = kill_at - now;
        if (exited)
            wait = drain_until - now;
        if (!exited && s->pidfd < 0 && (wait < 0 || wait > S_FALLBACK_POLL_MS))
            wait = S_FALLBACK_POLL_MS;
        if (wait > INT_MAX)
            wait = INT_MAX;
        if (wait < -1)
            wait = 0;

        int n = poll(pf, nf, (int)wait);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            s_fail(r, rc, "poll: %s", s_strerror(-rc, ebuf, sizeof ebuf));
            s_signal_group(s->pid, SIGKILL);
            break; /* reaped below with a blocking waitpid() */
        }

        if (ix_in >= 0 && (pf[ix_in].revents & (POLLOUT | POLLERR | POLLHUP | POLLNVAL)))
            s_feed_stdin(s);
        if (ix_out >= 0 && pf[ix_out].revents)
            s_pump(s, &s->out_r, &s->out);
        if (ix_err >= 0 && pf[ix_err].revents)
            s_pump(s, &s->err_r, &s->err);
        if (ix_prog >= 0 && pf[ix_prog].revents)
            s_pump(s, &s->prog_r, NULL);
        if (ix_cancel >= 0 && pf[ix_cancel].revents) {
            if (pf[ix_cancel].revents & POLLNVAL) {
                watch_cancel = false; /* not an open fd: nothing to watch */
            } else {
                r->cancelled = true;
                s_signal_group(s->pid, SIGTERM);
                phase = S_TERMINATING;
                kill_at = s_add_ms(s_now_ms(), grace);
            }
        }
        if (!exited && (s->pidfd < 0 || (ix_pid >= 0 && pf[ix_pid].revents))) {
            int e = s_check_exit(s->pid);
            if (e == 0 && s->pidfd >= 0) {
                /* pidfd readable but no exit status (should not happen):
                 * avoid spinning, fall back to periodic polling. */
                s_close(&s->pidfd);
            } else if (e != 0) {
                exited = true;
                lost = e < 0;
                now = s_now_ms();
                drain_until = s_add_ms(now, S_DRAIN_MS);
                if (phase == S_TERMINATING && kill_at > drain_until)
                    drain_until = kill_at;
            }
        }
    }

    if (lost) {
        /* Someone else reaped our child (SIGCHLD ignored?): the pgid is no
         * longer pinned, so do not signal it. */
        r->duration_ms = s_now_ms() - t0;
        s->pid = 0;
        return s_fail(r, -ECHILD, "exit status of '%s' unavailable (reaped elsewhere)", o->argv[0]);
    }

    /* Leave nothing behind. The unreaped leader pins the group id. */
    s_signal_group(s->pid, SIGKILL);

    int st = 0;
    pid_t w;
    do
        w = waitpid(s->pid, &st, 0);
    while (w < 0 && errno == EINTR);
    r->duration_ms = s_now_ms() - t0;
    if (w < 0) {
        int e = errno;
        s->pid = 0;
        return s_fail(r, -e, "waitpid '%s': %s", o->argv[0], s_strerror(e, ebuf, sizeof ebuf));
    }
    s->pid = 0;
    if (WIFEXITED(st)) {
        r->exit_code = WEXITSTATUS(st);
        r->signal = 0;
    } else if (WIFSIGNALED(st)) {
        r->exit_code = -1;
        r->signal = WTERMSIG(st);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* public API                                                               */

static void s_run_cleanup(s_run_t *s)
{
    s_close(&s->in_r);
    s_close(&s->in_w);
    s_close(&s->out_r);
    s_close(&s->out_w);
    s_close(&s->err_r);
    s_close(&s->err_w);
    s_close(&s->prog_r);
    s_close(&s->prog_w);
    s_close(&s->pidfd);
    free(s->out.buf);
    free(s->err.buf);
    free(s->scratch);
    free(s->env);
}

static int s_run(const worker_exec_opts_t *o, s_run_t *s, worker_exec_result_t *r)
{
    char ebuf[128];
    int rc;

    s->scratch = malloc(S_CHUNK);
    s->env = s_build_env(o->env_extra);
    if (!s->scratch || !s->env)
        return s_fail(r, -ENOMEM, "spawn '%s': out of memory", o->argv[0]);

    if (o->stdin_data && o->stdin_len > 0) {
        rc = s_pipe(&s->in_r, &s->in_w);
        if (rc == 0)
            rc = s_set_nonblock(s->in_w);
        if (rc != 0)
            return s_fail(r, rc, "stdin pipe: %s", s_strerror(-rc, ebuf, sizeof ebuf));
        s->in_data = o->stdin_data;
        s->in_len = o->stdin_len;
    }
    rc = s_pipe(&s->out_r, &s->out_w);
    if (rc == 0)
        rc = s_pipe(&s->err_r, &s->err_w);
    if (rc == 0)
        rc = s_pipe(&s->prog_r, &s->prog_w);
    if (rc == 0)
        rc = s_set_nonblock(s->out_r);
    if (rc == 0)
        rc = s_set_nonblock(s->err_r);
    if (rc == 0)
        rc = s_set_nonblock(s->prog_r);
    if (rc != 0)
        return s_fail(r, rc, "output pipes: %s", s_strerror(-rc, ebuf, sizeof ebuf));

    int64_t t0 = s_now_ms();
    rc = s_spawn(o, s, r);
    if (rc != 0)
        return rc;

    /* The child holds its own copies now; EOF on our read ends requires
     * closing ours. */
    s_close(&s->in_r);
    s_close(&s->out_w);
    s_close(&s->err_w);
    s_close(&s->prog_w);

#ifdef SYS_pidfd_open
    long pfd = syscall(SYS_pidfd_open, s->pid, 0); /* always O_CLOEXEC */
    s->pidfd = pfd >= 0 ? (int)pfd : -1;           /* ENOSYS etc.: fall back to polling */
#endif

    rc = s_supervise(o, s, r, t0);

    r->out = s->out.buf;
    r->out_len = s->out.len;
    r->err = s->err.buf;
    r->err_len = s->err.len;
    s->out.buf = s->err.buf = NULL;
    r->truncated = s->out.truncated || s->err.truncated;
    return rc;
}

int worker_exec_run(const worker_exec_opts_t *o, worker_exec_result_t *r)
{
    char ebuf[128];
    if (!r)
        return -EINVAL;
    memset(r, 0, sizeof *r);
    r->exit_code = -1;
    if (!o || !o->argv || !o->argv[0] || !o->argv[0][0])
        return s_fail(r, -EINVAL, "invalid options: argv[0] is required");
    if (o->timeout_ms < 0 || o->kill_grace_ms < 0)
        return s_fail(r, -EINVAL, "invalid options: negative timeout or kill grace");
    if (!o->stdin_data && o->stdin_len > 0)
        return s_fail(r, -EINVAL, "invalid options: stdin_len without stdin_data");
#ifndef S_HAVE_ADDCHDIR
    if (o->cwd)
        return s_fail(r, -ENOTSUP, "spawn '%s': cwd not supported by this C library", o->argv[0]);
#endif

    /* Block SIGPIPE in this thread only; remember whether one was pending. */
    sigset_t pipe_set, old_mask, pending;
    if (sigemptyset(&pipe_set) != 0 || sigaddset(&pipe_set, SIGPIPE) != 0)
        return s_fail(r, -EINVAL, "sigset: %s", s_strerror(errno, ebuf, sizeof ebuf));
    int prc = pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);
    if (prc != 0)
        return s_fail(r, -prc, "pthread_sigmask: %s", s_strerror(prc, ebuf, sizeof ebuf));
    bool was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;

    s_run_t s = {
        .pid = 0, .pidfd = -1,
        .in_r = -1, .in_w = -1, .out_r = -1, .out_w = -1,
        .err_r = -1, .err_w = -1, .prog_r = -1, .prog_w = -1,
        .out = { .limit = o->out_limit },
        .err = { .limit = o->out_limit },
        .prog = { .cb = o->on_progress, .ud = o->ud },
    };
    int rc = s_run(o, &s, r);
    s_run_cleanup(&s);

    /* Swallow the SIGPIPE our own stdin write raised, then restore the mask. */
    if (s.epipe && !was_pending) {
        const struct timespec zero = { 0, 0 };
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    prc = pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    if (prc != 0 && rc == 0) /* cannot fail with valid arguments */
        rc = s_fail(r, -prc, "pthread_sigmask: %s", s_strerror(prc, ebuf, sizeof ebuf));
    return rc;
}

void worker_exec_result_free(worker_exec_result_t *r)
{
    if (!r)
        return;
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
    r->out_len = r->err_len = 0;
}
