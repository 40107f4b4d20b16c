/* client_map: `farm map`, GNU parallel's model on a farm.
 *
 * `farm map [OPTIONS] -- CMD ARGS... [::: INPUT...]` reads its inputs (one
 * per line from stdin, or the words after ":::"), makes one exec task per
 * input by substituting the input into every argv element (client_subst.c:
 * {} {.} {/} {//} {/.} {#}; with none of them, the input is appended as a
 * last argument, as parallel does), submits them and prints each task's
 * stdout on stdout and its stderr on stderr as it completes, or in input
 * order with --keep-order. No shell is involved unless the command asks
 * for one (`farm map -- sh -c 'gzip "$1"' sh {}`).
 *
 * The run. Inputs are read whole first (up to S_MAX_INPUTS lines and
 * S_MAX_BYTES bytes), then cut into batches of --batch inputs (and at most
 * S_BATCH_BYTES of estimated request), each batch one submit and so one job
 * of the farm: the front door has no "add tasks to a job", so a run of more
 * inputs than one batch is several jobs of the same name. Batch 0 is
 * submitted first; the others are submitted from the follow loop, so output
 * starts while later batches are still going in, and a `busy` farm is
 * retried with back-off while the loop keeps printing.
 *
 * How a run is identified (what --resume finds). Every batch is submitted
 * with an idempotency key
 *
 *     map-<H_b>-<R>        H_b: 128-bit hash, in hex; R: the run number
 *
 * where H_0 hashes a version tag, the job name (--name, default "map: CMD"),
 * the command template (each argv element as given, before substitution)
 * and batch 0's inputs, and H_b hashes H_{b-1}, b and batch b's inputs: a
 * batch's key depends on everything before it, so two runs share a key only
 * when their name, command and every input up to that batch are the same.
 * R counts the runs of the same content: a run without --resume submits
 * batch 0 with R = 1, 2, ... until the reply is not a duplicate (a
 * duplicate creates nothing), so each plain run is new and its R is the
 * first unused one. `--resume` looks for the latest R: it submits a probe
 * (one `noop` task delayed ten years, job name "farm map probe") with the
 * keys of R = 1, 2, ...; a duplicate is an earlier run (or a probe left by
 * a crash, which it deletes), and the first probe that is not a duplicate
 * is cancelled and deleted at once and ends the search. It then submits
 * every batch with the keys of that R: the farm answers each with the
 * earlier job and its task ids (a batch the earlier run never submitted,
 * or inputs added since, are submitted anew). Of those jobs, completed
 * tasks are skipped (neither run nor printed, as parallel's --resume skips
 * what its joblog lists), failed and cancelled ones are put back with the
 * `retry` op, and what is still pending or running is followed. With no
 * earlier run, --resume is a plain run. So: resume needs the same --name,
 * command, inputs (a longer input is fine: the new inputs are a new batch
 * or several) and --batch; --retries/--timeout/--priority are those of the
 * earlier run for its tasks; a job deleted with `farm delete` is no longer
 * found.
 *
 * Following. The loop listens to the status feed's "task" events and, for
 * an event saying a task of the run is final, asks the front door for its
 * result (with --keep-order for its status first, and for the result when
 * its turn comes). Every second, and always when the feed is missing or
 * silent, it asks each unfinished job's status and lists the tasks of a job
 * whose final count grew, so a lost event costs a second, never a task.
 * The front door is the truth; the feed only says when to ask. A front door
 * that stops answering while the run is followed is waited for (a note on
 * stderr), since a restarting farm loses nothing; other errors end the run.
 *
 * Exit status, as GNU parallel's: 0 every task completed; 1..100 that many
 * failed (failed or cancelled); 101 more than 100 failed; with
 * --halt now,fail=1 the exit status of the failing task (128+N when signal
 * N killed it, 1 when it has none); 255 any other error: usage, the farm
 * refused the submit or did not answer it, stdout closed. Ctrl-C (SIGINT)
 * or SIGTERM cancels the run's jobs through the front door, says so on
 * stderr and exits 130 (143): 128 + the signal, what shells report for a
 * command killed by it, where parallel itself exits 255; a second Ctrl-C
 * kills at once. A run that cannot deliver its output (stdout or the joblog
 * fails) cancels its jobs too.
 */
#include "client.h"
#include "client_subst.h"
#include "farm_config.h"
#include "farm_err.h"
#include "farm_state.h"
#include "farm_time.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_EXIT_OTHER 255
#define S_MAX_INPUTS 10000000                   /* lines of input */
#define S_MAX_BYTES (1024LL * 1024 * 1024)      /* bytes of input */
#define S_BATCH_DEFAULT 1000                    /* inputs per submit */
#define S_BATCH_BYTES (8LL * 1024 * 1024)       /* estimated request bytes per submit */
#define S_SWEEP_MS 1000                         /* ask the front door at least this often */
#define S_PAGE 1000                             /* tasks per list request */
#define S_MAX_RUNS 1000                         /* runs of one content */
#define S_PROBE_NAME "farm map probe"
#define S_PROBE_DELAY_MS (10LL * 365 * 86400 * 1000)
#define S_BUSY_FIRST_MS 200
#define S_BUSY_MAX_MS 5000
#define S_NAME_DEFAULT_MAX 100                  /* bytes of the default job name */

/* Where an input is. */
enum {
    S_NEW,   /* not submitted yet */
    S_WAIT,  /* submitted, not known to be final */
    S_FINAL, /* final (counted), output not shown yet: --keep-order */
    S_DONE,  /* final, output shown */
    S_SKIP,  /* completed in an earlier run (--resume): not shown */
};

typedef struct {
    const char *p; /* the input, borrowed from the input buffer or argv */
    uint32_t len;  /* its bytes */
    uint32_t batch;
    int64_t task;  /* its task id once submitted */
    uint8_t st;    /* S_NEW ... */
    int8_t fin;    /* the final state (farm_state index) */
    int16_t code;  /* exit status for --halt now,fail=1 */
} s_in_t;

typedef struct {
    size_t first, n; /* inputs [first, first + n) */
    size_t done;     /* of them handled: final or skipped */
    size_t cursor;   /* the inputs before first + cursor are handled */
    uint64_t h[2];   /* H_b */
    int64_t job;     /* its job once submitted */
    bool adopted;    /* found from an earlier run */
} s_batch_t;

typedef struct {
    int64_t id;
    size_t seq; /* index into in[] */
} s_idx_t;

typedef struct {
    cli_t *cli;
    /* what to run */
    char **cmd;        /* the template (borrowed from argv) */
    int ncmd;
    bool *has;         /* cmd[i] holds a replacement string */
    bool append;       /* no replacement string anywhere: append the input */
    char name[256];    /* the job name */
    int64_t attempts;  /* max_attempts */
    int64_t timeout;   /* timeout_ms, -1 when not given */
    cli_int_t prio;
    bool keep, resume;
    int64_t halt;      /* fail=N, 0 never */
    int64_t batch_max;
    FILE *joblog;
    /* inputs */
    char *text;        /* stdin, owned */
    s_in_t *in;
    size_t n;
    /* batches */
    s_batch_t *b;
    size_t nb, nsub;   /* batches, of them submitted */
    int64_t run;       /* R */
    s_idx_t *idx;      /* task id -> input, sorted by id */
    size_t nidx;
    int64_t submit_at, busy_ms; /* back-off of a busy farm */
    /* progress */
    size_t handled, failed, next_print;
    size_t halt_seq;   /* 1 + the input whose failure halts the run, 0 none */
    bool outage;       /* told the user the farm does not answer */
    bool busy_noted;   /* told the user the farm is busy */
    bool following;    /* in the follow loop: a silent farm is waited for */
    farm_client_t *subc; /* submits: no hidden resends (see s_submit) */
    cli_feed_t *feed;
    int64_t *page_id;  /* one list page: ids and states */
    int8_t *page_st;
} s_map_t;

static volatile sig_atomic_t s_sig;

static void s_on_signal(int sig) { s_sig = sig; }

/* Sleep ms, or less when a signal arrives. */
static void s_nap(int64_t ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    (void)nanosleep(&ts, NULL);
}

/* ---- messages ---------------------------------------------------------- */

/* "input 3 (photo 1.jpg)" for notes, the input made safe for a terminal. */
static const char *s_what(const s_map_t *m, size_t seq, char *buf, size_t n) {
    char arg[160];
    cli_fmt_text(arg, sizeof arg, (farm_str_t){m->in[seq].p, m->in[seq].len}, 60);
    snprintf(buf, n, "input %zu (%s)", seq + 1, arg);
    return buf;
}

/* ---- hashing: the run's keys ----------------------------------------- */

static void s_h_bytes(uint64_t h[2], const void *p, size_t n) {
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h[0] = (h[0] ^ s[i]) * 0x100000001b3ULL;       /* FNV-1a 64 */
        h[1] = (h[1] ^ s[i]) * 0x9e3779b97f4a7c15ULL;  /* a second lane, another odd multiplier */
    }
}

static void s_h_u64(uint64_t h[2], uint64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    s_h_bytes(h, b, 8);
}

/* A length-prefixed field, so ["a b"] and ["a", "b"] differ. */
static void s_h_field(uint64_t h[2], const char *p, size_t n) {
    s_h_u64(h, n);
    s_h_bytes(h, p, n);
}

static uint64_t s_fmix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

static void s_key(const s_map_t *m, size_t b, int64_t run, char *key, size_t n) {
    snprintf(key, n, "map-%016" PRIx64 "%016" PRIx64 "-%" PRId64, s_fmix(m->b[b].h[0]), s_fmix(m->b[b].h[1]), run);
}

/* ---- inputs and batches ---------------------------------------------- */

/* Read stdin whole. Returns 0, or the exit code after a message. */
static int s_read_stdin(s_map_t *m) {
    size_t cap = 64 * 1024, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fprintf(stderr, "farm map: out of memory\n");
        return S_EXIT_OTHER;
    }
    if (isatty(STDIN_FILENO))
        fprintf(stderr, "farm map: reading inputs from the terminal, one per line; end with Ctrl-D\n");
    for (;;) {
        if (len == cap) {
            if ((long long)cap >= S_MAX_BYTES) {
                free(buf);
                fprintf(stderr, "farm map: the input is over %lld bytes\n", S_MAX_BYTES);
                return S_EXIT_OTHER;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fprintf(stderr, "farm map: out of memory\n");
                return S_EXIT_OTHER;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(STDIN_FILENO, buf + len, cap - len);
        if (r < 0 && errno == EINTR) {
            if (s_sig) {
                free(buf);
                return 128 + s_sig; /* nothing submitted yet */
            }
            continue;
        }
        if (r < 0) {
            fprintf(stderr, "farm map: reading stdin: %s\n", strerror(errno));
            free(buf);
            return S_EXIT_OTHER;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    m->text = buf;
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += buf[i] == '\n';
    if (len && buf[len - 1] != '\n')
        lines++;
    if (lines > S_MAX_INPUTS) {
        fprintf(stderr, "farm map: %zu inputs, over the limit of %d\n", lines, S_MAX_INPUTS);
        return S_EXIT_OTHER;
    }
    m->in = calloc(lines ? lines : 1, sizeof *m->in);
    if (!m->in) {
        fprintf(stderr, "farm map: out of memory\n");
        return S_EXIT_OTHER;
    }
    for (size_t s = 0; s < len;) {
        size_t e = s;
        while (e < len && buf[e] != '\n')
            e++;
        if (memchr(buf + s, '\0', e - s)) {
            fprintf(stderr, "farm map: input %zu holds a NUL byte, which no argument can\n", m->n + 1);
            return S_EXIT_OTHER;
        }
        m->in[m->n].p = buf + s;
        m->in[m->n].len = (uint32_t)(e - s);
        m->n++;
        s = e + 1;
    }
    return 0;
}

/* Cut the inputs into batches and hash them. Returns 0 or the exit code. */
static int s_plan(s_map_t *m) {
    size_t tmpl = 0, ntok = m->append;
    for (int i = 0; i < m->ncmd; i++) {
        tmpl += strlen(m->cmd[i]) + 8;
        for (const char *p = m->cmd[i]; (p = strchr(p, '{')); p++)
            ntok++; /* an over-estimate is fine: it only bounds the request */
    }
    size_t cap = 0;
    uint64_t h[2] = {0xcbf29ce484222325ULL, 0x84222325cbf29ce4ULL};
    s_h_field(h, "farm map v1", 11);
    s_h_field(h, m->name, strlen(m->name));
    s_h_u64(h, (uint64_t)m->ncmd);
    for (int i = 0; i < m->ncmd; i++)
        s_h_field(h, m->cmd[i], strlen(m->cmd[i]));
    long long est = 0;
    for (size_t i = 0; i < m->n; i++) {
        long long cost = 64 + (long long)tmpl + (long long)ntok * ((long long)m->in[i].len + 24);
        s_batch_t *cur = m->nb ? &m->b[m->nb - 1] : NULL;
        if (!cur || (int64_t)cur->n >= m->batch_max || (cur->n > 0 && est + cost > S_BATCH_BYTES)) {
            if (m->nb == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                s_batch_t *nb = realloc(m->b, ncap * sizeof *nb);
                if (!nb) {
                    fprintf(stderr, "farm map: out of memory\n");
                    return S_EXIT_OTHER;
                }
                m->b = nb;
                cap = ncap;
            }
            cur = &m->b[m->nb];
            memset(cur, 0, sizeof *cur);
            cur->first = i;
            if (m->nb > 0) {
                /* H_b starts from H_{b-1} */
                s_batch_t *prev = &m->b[m->nb - 1];
                h[0] = s_fmix(prev->h[0]);
                h[1] = s_fmix(prev->h[1]);
            }
            s_h_u64(h, m->nb);
            m->nb++;
            est = 0;
        }
        s_h_field(h, m->in[i].p, m->in[i].len);
        cur->h[0] = h[0];
        cur->h[1] = h[1];
        cur->n++;
        m->in[i].batch = (uint32_t)(m->nb - 1);
        est += cost;
    }
    /* Close every batch with its count, so a batch is not a prefix of another. */
    for (size_t b = 0; b < m->nb; b++)
        s_h_u64(m->b[b].h, m->b[b].n);
    return 0;
}

/* ---- talking to the front door --------------------------------------- */

enum { S_OK = 0, S_LATER = 1, S_FATAL = -1 };

/* cli_send for the run: while following, a farm that does not answer is
 * waited for (S_LATER, with one note per outage); other failures, and any
 * before the follow loop, are reported (S_FATAL). *reply valid until the
 * next call. */
static int s_call(s_map_t *m, const cli_req_t *q, const msgpack_object **reply, int *code) {
    farm_error_t e;
    int rc = cli_send(m->cli, q, reply, &e);
    if (code)
        *code = rc;
    if (rc == 0) {
        if (m->outage)
            fprintf(stderr, "farm map: the farm answers again\n");
        m->outage = false;
        return S_OK;
    }
    if (rc == FARM_ETIMEOUT && m->following) {
        if (!m->outage)
            fprintf(stderr, "farm map: %s; still trying (Ctrl-C cancels)\n", e.message);
        m->outage = true;
        return S_LATER;
    }
    (void)cli_report(m->cli, rc, &e, *reply);
    return S_FATAL;
}

static int s_idx_cmp(const void *a, const void *b) {
    int64_t x = ((const s_idx_t *)a)->id, y = ((const s_idx_t *)b)->id;
    return x < y ? -1 : x > y;
}

/* Add the task ids of batch b to the index, keeping it sorted by id. */
static void s_index(s_map_t *m, size_t b) {
    const s_batch_t *bt = &m->b[b];
    bool sorted = m->nidx == 0 || m->idx[m->nidx - 1].id < m->in[bt->first].task;
    for (size_t i = 0; i < bt->n; i++) {
        size_t seq = bt->first + i;
        if (i > 0 && m->in[seq].task <= m->in[seq - 1].task)
            sorted = false;
        m->idx[m->nidx++] = (s_idx_t){m->in[seq].task, seq};
    }
    if (!sorted) /* ids come in ascending order from one farm; sort only if not */
        qsort(m->idx, m->nidx, sizeof *m->idx, s_idx_cmp);
}

/* The input of task id, or SIZE_MAX. */
static size_t s_lookup(const s_map_t *m, int64_t id) {
    size_t lo = 0, hi = m->nidx;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->idx[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < m->nidx && m->idx[lo].id == id ? m->idx[lo].seq : SIZE_MAX;
}

/* Pack the argv of input seq. Returns false when memory runs out. */
static bool s_pack_argv(const s_map_t *m, msgpack_packer *pk, size_t seq) {
    msgpack_pack_array(pk, (size_t)m->ncmd + m->append);
    for (int i = 0; i < m->ncmd; i++) {
        if (!m->has[i]) {
            farm_pack_str(pk, m->cmd[i]);
            continue;
        }
        size_t len;
        char *s = cli_subst(m->cmd[i], m->in[seq].p, m->in[seq].len, (int64_t)seq + 1, &len);
        if (!s)
            return false;
        farm_pack_strn(pk, s, len);
        free(s);
    }
    if (m->append)
        farm_pack_strn(pk, m->in[seq].p, m->in[seq].len);
    return true;
}

/* What a submit answered. */
typedef struct {
    int64_t job;
    bool dup;    /* the key was known */
    bool resent; /* an attempt went unanswered and the request was sent again */
} s_sub_t;

/* Submit batch b with the key of run `run` (probe: the resume probe
 * instead of the batch's tasks). Returns S_OK with *out filled and, unless
 * probe, the task ids in in[]; S_LATER when the farm is busy, or does not
 * answer while following; S_FATAL after a message.
 *
 * Submits go through a client of their own that never resends by itself:
 * this function resends (the --retries of the global flags), so it knows
 * when it did. That matters because a resent submit whose first copy was
 * stored comes back as a duplicate of itself, which must not be taken for
 * an earlier run (s_start_plain). */
static int s_submit(s_map_t *m, size_t b, int64_t run, bool probe, s_sub_t *out) {
    char key[80];
    s_key(m, b, run, key, sizeof key);
    const s_batch_t *bt = &m->b[b];
    size_t extra = probe ? 0 : (size_t)1 + (m->timeout >= 0) + m->prio.set; /* max_attempts ... */
    cli_req_t q;
    cli_req_init(&q, 5 + extra, "submit"); /* op v key name tasks ... */
    farm_pack_kv_str(&q.pk, "key", key);
    farm_pack_kv_str(&q.pk, "name", probe ? S_PROBE_NAME : m->name);
    if (!probe) {
        farm_pack_kv_int(&q.pk, "max_attempts", m->attempts);
        if (m->timeout >= 0)
            farm_pack_kv_int(&q.pk, "timeout_ms", m->timeout);
        if (m->prio.set)
            farm_pack_kv_int(&q.pk, "priority", m->prio.v);
    }
    farm_pack_str(&q.pk, "tasks");
    if (probe) {
        msgpack_pack_array(&q.pk, 1);
        msgpack_pack_map(&q.pk, 2);
        farm_pack_kv_str(&q.pk, "type", "noop");
        farm_pack_kv_int(&q.pk, "delay_ms", S_PROBE_DELAY_MS);
    } else {
        msgpack_pack_array(&q.pk, bt->n);
        for (size_t i = 0; i < bt->n && !q.oom; i++) {
            msgpack_pack_map(&q.pk, 2);
            farm_pack_kv_str(&q.pk, "type", "exec");
            farm_pack_str(&q.pk, "args");
            msgpack_pack_map(&q.pk, 1);
            farm_pack_str(&q.pk, "argv");
            if (!s_pack_argv(m, &q.pk, bt->first + i))
                q.oom = true;
        }
    }
    cli_t *cli = m->cli;
    if (q.oom) {
        cli_req_free(&q);
        fprintf(stderr, "farm map: out of memory\n");
        return S_FATAL;
    }
    if (!m->subc && !(m->subc = farm_client_new(cli->server, (int)cli->timeout_ms, 0))) {
        cli_req_free(&q);
        fprintf(stderr, "farm map: --server %s: %s\n", cli->server, strerror(errno ? errno : EINVAL));
        return S_FATAL;
    }
    msgpack_object obj;
    const msgpack_object *reply = &obj;
    farm_error_t e;
    int rc;
    out->resent = false;
    for (int64_t attempt = 0;; attempt++) {
        msgpack_zone_clear(&cli->zone);
        rc = farm_client_callv(m->subc, &q.sb, &cli->zone, &obj, &e);
        if (rc != FARM_ETIMEOUT || attempt >= cli->retries || s_sig)
            break;
        out->resent = true; /* the same key: safe to send again */
    }
    cli_req_free(&q);
    if (rc == FARM_EBUSY) {
        if (!m->busy_noted)
            fprintf(stderr, "farm map: %s; submitting again in a moment\n", e.message);
        m->busy_noted = true;
        return S_LATER;
    }
    if (rc == FARM_ETIMEOUT && m->following) {
        if (!m->outage)
            fprintf(stderr, "farm map: %s; still trying (Ctrl-C cancels)\n", e.message);
        m->outage = true;
        return S_LATER;
    }
    if (rc) {
        (void)cli_report(cli, rc, &e, reply);
        return S_FATAL;
    }
    if (m->outage)
        fprintf(stderr, "farm map: the farm answers again\n");
    m->outage = m->busy_noted = false;
    cli_rd_t r = {0};
    cli_rd_int(&r, reply, "job", true, &out->job);
    const msgpack_object *ids = cli_rd_array(&r, reply, "tasks", true);
    out->dup = false;
    cli_rd_bool(&r, reply, "duplicate", false, &out->dup);
    if (!r.bad && !probe && ids->via.array.size != bt->n)
        cli_rd_fail(&r, "job %" PRId64 " (key %s) has %" PRIu32 " tasks where batch %zu has %zu inputs", out->job,
                    key, ids->via.array.size, b + 1, bt->n);
    for (size_t i = 0; !r.bad && !probe && i < bt->n; i++) {
        const msgpack_object *t = &ids->via.array.ptr[i];
        if (t->type != MSGPACK_OBJECT_POSITIVE_INTEGER || t->via.u64 > (uint64_t)INT64_MAX || t->via.u64 == 0)
            cli_rd_fail(&r, "\"tasks\" holds a value that is not a task id");
        else
            m->in[bt->first + i].task = (int64_t)t->via.u64;
    }
    if (r.bad) {
        cli_malformed(r.why);
        return S_FATAL;
    }
    return S_OK;
}

/* A count op ("cancel", "retry", "delete") on job; *n the count. */
static int s_job_op(s_map_t *m, const char *op, const char *key, int64_t job, int64_t *n) {
    cli_req_t q;
    cli_req_init(&q, 3, op);
    farm_pack_kv_int(&q.pk, "job", job);
    const msgpack_object *reply;
    int rc = s_call(m, &q, &reply, NULL);
    cli_req_free(&q);
    if (rc != S_OK)
        return rc;
    cli_rd_t r = {0};
    *n = 0;
    cli_rd_int(&r, reply, key, true, n);
    if (r.bad) {
        cli_malformed(r.why);
        return S_FATAL;
    }
    return S_OK;
}

/* One page of `list job` after `after`: ids and states into m->page_*,
 * count in *np, the next cursor in *next (0 on the last page). */
static int s_list(s_map_t *m, int64_t job, int64_t after, size_t *np, int64_t *next) {
    cli_req_t q;
    cli_req_init(&q, 5, "list");
    farm_pack_kv_int(&q.pk, "job", job);
    farm_pack_kv_int(&q.pk, "after", after);
    farm_pack_kv_int(&q.pk, "limit", S_PAGE);
    const msgpack_object *reply;
    int rc = s_call(m, &q, &reply, NULL);
    cli_req_free(&q);
    if (rc != S_OK)
        return rc;
    cli_rd_t r = {0};
    const msgpack_object *ts = cli_rd_array(&r, reply, "tasks", true);
    *next = 0;
    bool more = cli_rd_int(&r, reply, "next", false, next);
    size_t n = ts ? ts->via.array.size : 0;
    if (n > S_PAGE)
        cli_rd_fail(&r, "a page of %zu tasks where at most %d were asked for", n, S_PAGE);
    for (size_t i = 0; i < n && !r.bad; i++) {
        farm_str_t st = {0};
        cli_rd_int(&r, &ts->via.array.ptr[i], "id", true, &m->page_id[i]);
        cli_rd_str(&r, &ts->via.array.ptr[i], "state", true, &st);
        m->page_st[i] = (int8_t)farm_state_parse(st.ptr, st.len);
    }
    if (!r.bad && more && *next <= after)
        cli_rd_fail(&r, "\"next\" (%" PRId64 ") does not move past \"after\" (%" PRId64 ")", *next, after);
    if (r.bad) {
        cli_malformed(r.why);
        return S_FATAL;
    }
    if (!more)
        *next = 0;
    *np = n;
    return S_OK;
}

/* ---- the joblog ------------------------------------------------------- */

/* s as a shell word: as is when plain, '...' otherwise, $'...' when it
 * holds control characters (so a joblog line never breaks). */
static void s_shq(FILE *f, const char *s, size_t n) {
    bool plain = n > 0, ctrl = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            ctrl = true;
        if (!(c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("_./=:,+@%^-", c)))
            plain = false;
    }
    if (plain) {
        fwrite(s, 1, n, f);
        return;
    }
    if (!ctrl) {
        fputc('\'', f);
        for (size_t i = 0; i < n; i++)
            s[i] == '\'' ? fputs("'\\''", f) : fputc(s[i], f);
        fputc('\'', f);
        return;
    }
    fputs("$'", f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c == '\\' || c == '\'')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
    fputc('\'', f);
}

/* What the joblog needs of a task view. */
typedef struct {
    char worker[256];
    int64_t start_ms;
} s_view_t;

/* Seq Host Starttime JobRuntime Send Receive Exitval Signal Command, tab
 * separated, as parallel --joblog. Returns 0 or -errno. */
static int s_joblog_line(s_map_t *m, size_t seq, const s_view_t *v, int64_t runtime_ms, size_t received,
                         int64_t exitval, int64_t sig) {
    FILE *f = m->joblog;
    int64_t st = v->start_ms > 0 ? v->start_ms : 0;
    fprintf(f, "%zu\t%s\t%" PRId64 ".%03" PRId64 "\t%10.3f\t0\t%zu\t%" PRId64 "\t%" PRId64 "\t", seq + 1,
            v->worker[0] ? v->worker : ":", st / 1000, st % 1000, (double)runtime_ms / 1000.0, received, exitval,
            sig);
    for (int i = 0; i < m->ncmd; i++) {
        if (i)
            fputc(' ', f);
        size_t len = strlen(m->cmd[i]);
        char *s = m->has[i] ? cli_subst(m->cmd[i], m->in[seq].p, m->in[seq].len, (int64_t)seq + 1, &len) : NULL;
        if (m->has[i] && !s)
            return -ENOMEM;
        s_shq(f, s ? s : m->cmd[i], len);
        free(s);
    }
    if (m->append) {
        fputc(' ', f);
        s_shq(f, m->in[seq].p, m->in[seq].len);
    }
    fputc('\n', f);
    if (fflush(f) != 0 || ferror(f))
        return -(errno ? errno : EIO);
    return 0;
}

/* ---- one task's end --------------------------------------------------- */

/* Count input seq as final in state st; may decide the halt. */
static void s_mark(s_map_t *m, size_t seq, int st) {
    s_in_t *in = &m->in[seq];
    in->st = S_FINAL;
    in->fin = (int8_t)st;
    m->handled++;
    m->b[in->batch].done++;
    if (st != FARM_TASK_COMPLETED) {
        m->failed++;
        if (m->halt && (int64_t)m->failed >= m->halt && !m->halt_seq)
            m->halt_seq = seq + 1;
    }
}

/* Show input seq's result: its stdout and stderr, notes, the joblog line;
 * mark it final first when it is not yet. Returns S_OK when shown, S_LATER
 * when not (not final after all, or the farm does not answer), S_FATAL. */
static int s_emit(s_map_t *m, size_t seq) {
    s_in_t *in = &m->in[seq];
    s_view_t v = {{0}, 0};
    cli_req_t q;
    const msgpack_object *reply;
    int rc;
    char what[256];
    if (m->joblog) {
        cli_req_init(&q, 3, "status");
        farm_pack_kv_int(&q.pk, "task", in->task);
        rc = s_call(m, &q, &reply, NULL);
        cli_req_free(&q);
        if (rc != S_OK)
            return rc;
        cli_rd_t r = {0};
        const msgpack_object *tv = cli_rd_map(&r, reply, "task", true);
        farm_str_t w = {0};
        int64_t created = 0, started = 0, finished = 0;
        bool hw = cli_rd_str(&r, tv, "worker", false, &w);
        cli_rd_int(&r, tv, "created_ms", true, &created);
        bool hs = cli_rd_int(&r, tv, "started_ms", false, &started);
        bool hf = cli_rd_int(&r, tv, "finished_ms", false, &finished);
        if (r.bad) {
            cli_malformed(r.why);
            return S_FATAL;
        }
        /* A task that failed or was put back has no worker of its own any
         * more: its last attempt in the history says where and when it ran. */
        const msgpack_object *hist = cli_rd_array(&r, tv, "history", false);
        if (!r.bad && hist && hist->via.array.size > 0 && (!hw || !hs)) {
            const msgpack_object *last = &hist->via.array.ptr[hist->via.array.size - 1];
            cli_rd_t hr = {0}; /* a history this client cannot read only costs the joblog detail */
            farm_str_t hw2 = {0};
            int64_t hs2 = 0;
            if (!hw && cli_rd_str(&hr, last, "worker", false, &hw2)) {
                w = hw2;
                hw = true;
            }
            if (!hs && cli_rd_int(&hr, last, "started_ms", false, &hs2)) {
                started = hs2;
                hs = true;
            }
        }
        if (r.bad) {
            cli_malformed(r.why);
            return S_FATAL;
        }
        if (hw) /* worker names are [A-Za-z0-9_.:@-]; cli_fmt_text keeps a hostile one on one line */
            cli_fmt_text(v.worker, sizeof v.worker, w, 200);
        v.start_ms = hs ? started : hf ? finished : created;
    }
    cli_req_init(&q, 3, "result");
    farm_pack_kv_int(&q.pk, "task", in->task);
    rc = s_call(m, &q, &reply, NULL);
    cli_req_free(&q);
    if (rc != S_OK)
        return rc;
    cli_rd_t r = {0};
    farm_str_t state = {0}, err = {0}, out = {"", 0}, errout = {"", 0};
    cli_rd_str(&r, reply, "state", true, &state);
    bool has_err = cli_rd_str(&r, reply, "error", false, &err);
    const msgpack_object *res = cli_rd_any(reply, "result");
    bool exec = res && res->type == MSGPACK_OBJECT_MAP && farm_msg_get(res, "exit_code");
    int64_t code = -1, sig = 0, dur = 0;
    bool trunc = false, has_dur = false;
    if (exec) {
        cli_rd_int(&r, res, "exit_code", true, &code);
        cli_rd_int(&r, res, "signal", false, &sig);
        cli_rd_bytes(&r, res, "stdout", false, &out);
        cli_rd_bytes(&r, res, "stderr", false, &errout);
        cli_rd_bool(&r, res, "truncated", false, &trunc);
        has_dur = cli_rd_int(&r, res, "duration_ms", false, &dur);
    }
    if (r.bad) {
        cli_malformed(r.why);
        return S_FATAL;
    }
    int st = farm_state_parse(state.ptr, state.len);
    if (!farm_state_final(st))
        return S_LATER; /* retried meanwhile: it will be final again */
    if (in->st == S_WAIT)
        s_mark(m, seq, st);
    in->code = (int16_t)(code > 0 && code < 256 ? code : sig > 0 && sig < 128 ? 128 + sig : 1);
    if (out.len && (fwrite(out.ptr, 1, out.len, stdout) != out.len || fflush(stdout) != 0)) {
        fprintf(stderr, "farm map: writing to stdout: %s\n", strerror(errno ? errno : EIO));
        /* Said once: what stdio still holds goes nowhere, not into a second error at exit. */
        int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (nul >= 0 && dup2(nul, STDOUT_FILENO) >= 0)
            clearerr(stdout);
        if (nul >= 0)
            close(nul);
        return S_FATAL;
    }
    if (errout.len) {
        (void)fwrite(errout.ptr, 1, errout.len, stderr);
        (void)fflush(stderr);
    }
    char eb[512];
    if (has_err)
        cli_fmt_text(eb, sizeof eb, err, 300);
    if (st == FARM_TASK_CANCELLED)
        fprintf(stderr, "farm map: %s: cancelled\n", s_what(m, seq, what, sizeof what));
    else if (st == FARM_TASK_FAILED && (!exec || sig || code < 0))
        fprintf(stderr, "farm map: %s: failed%s%s\n", s_what(m, seq, what, sizeof what), has_err ? ": " : "",
                has_err ? eb : "");
    if (trunc)
        fprintf(stderr, "farm map: %s: output cut at the worker's --max-output\n", s_what(m, seq, what, sizeof what));
    if (m->joblog) {
        int e = s_joblog_line(m, seq, &v, has_dur ? dur : 0, out.len, exec ? code : -1, sig);
        if (e) {
            fprintf(stderr, "farm map: writing the joblog: %s\n", strerror(-e));
            return S_FATAL;
        }
    }
    in->st = S_DONE;
    return S_OK;
}

/* Input seq is final by the feed or a list: count it, and show it unless
 * --keep-order waits for its turn. stv: its state when known from a
 * front-door reply, -1 when only the feed said so. */
static int s_found(s_map_t *m, size_t seq, int stv) {
    if (m->in[seq].st != S_WAIT)
        return S_OK;
    if (!m->keep)
        return s_emit(m, seq);
    if (stv < 0) {
        cli_req_t q;
        cli_req_init(&q, 3, "status");
        farm_pack_kv_int(&q.pk, "task", m->in[seq].task);
        const msgpack_object *reply;
        int rc = s_call(m, &q, &reply, NULL);
        cli_req_free(&q);
        if (rc != S_OK)
            return rc;
        cli_rd_t r = {0};
        farm_str_t st = {0};
        const msgpack_object *tv = cli_rd_map(&r, reply, "task", true);
        cli_rd_str(&r, tv, "state", true, &st);
        if (r.bad) {
            cli_malformed(r.why);
            return S_FATAL;
        }
        stv = farm_state_parse(st.ptr, st.len);
    }
    if (farm_state_final(stv))
        s_mark(m, seq, stv);
    return S_OK;
}

/* --keep-order: show the inputs whose turn it is. */
static int s_flush_order(s_map_t *m) {
    while (m->next_print < m->n && !m->halt_seq) {
        uint8_t st = m->in[m->next_print].st;
        if (st == S_FINAL) {
            int rc = s_emit(m, m->next_print);
            if (rc != S_OK)
                return rc;
        } else if (st != S_DONE && st != S_SKIP) {
            break;
        }
        m->next_print++;
    }
    return S_OK;
}

/* ---- following --------------------------------------------------------- */

static void s_advance(s_map_t *m, s_batch_t *bt) {
    while (bt->cursor < bt->n) {
        uint8_t st = m->in[bt->first + bt->cursor].st;
        if (st == S_WAIT || st == S_NEW)
            break;
        bt->cursor++;
    }
}

/* Ask batch b's job whether more of its tasks are final than we know, and
 * if so list them. */
static int s_sweep(s_map_t *m, size_t b) {
    s_batch_t *bt = &m->b[b];
    if (bt->done >= bt->n)
        return S_OK;
    cli_req_t q;
    cli_req_init(&q, 3, "status");
    farm_pack_kv_int(&q.pk, "job", bt->job);
    const msgpack_object *reply;
    int rc = s_call(m, &q, &reply, NULL);
    cli_req_free(&q);
    if (rc != S_OK)
        return rc;
    cli_rd_t r = {0};
    const msgpack_object *counts = cli_rd_map(&r, cli_rd_map(&r, reply, "job", true), "counts", true);
    int64_t c[FARM_STATE_COUNT] = {0};
    for (int i = 0; i < FARM_STATE_COUNT; i++)
        cli_rd_int(&r, counts, farm_state_name(i), true, &c[i]);
    if (r.bad) {
        cli_malformed(r.why);
        return S_FATAL;
    }
    int64_t final = c[FARM_TASK_COMPLETED] + c[FARM_TASK_FAILED] + c[FARM_TASK_CANCELLED];
    if (final <= (int64_t)bt->done)
        return S_OK;
    s_advance(m, bt);
    int64_t after = bt->cursor < bt->n ? m->in[bt->first + bt->cursor].task - 1 : 0;
    for (;;) {
        size_t np;
        int64_t next;
        if ((rc = s_list(m, bt->job, after, &np, &next)) != S_OK)
            return rc;
        for (size_t i = 0; i < np && !m->halt_seq; i++) {
            if (!farm_state_final(m->page_st[i]))
                continue;
            size_t seq = s_lookup(m, m->page_id[i]);
            if (seq != SIZE_MAX && (rc = s_found(m, seq, m->page_st[i])) == S_FATAL)
                return rc;
        }
        if (!next || m->halt_seq)
            break;
        after = next;
    }
    s_advance(m, bt);
    return S_OK;
}

static int s_sweep_all(s_map_t *m) {
    for (size_t b = 0; b < m->nsub && !m->halt_seq && !s_sig; b++) {
        int rc = s_sweep(m, b);
        if (rc != S_OK)
            return rc;
    }
    return S_OK;
}

/* A "task" message of the feed: look at the events of our tasks that say final. */
static int s_on_event(s_map_t *m, const char *topic, const msgpack_object *body) {
    if (strcmp(topic, "task") != 0)
        return S_OK;
    const msgpack_object *ev = farm_msg_get(body, "events");
    if (!ev || ev->type != MSGPACK_OBJECT_ARRAY)
        return S_OK;
    for (uint32_t i = 0; i < ev->via.array.size && !m->halt_seq && !s_sig; i++) {
        cli_rd_t r = {0};
        int64_t id = 0;
        farm_str_t st = {0};
        const msgpack_object *e = &ev->via.array.ptr[i];
        if (!cli_rd_int(&r, e, "id", true, &id) || !cli_rd_str(&r, e, "state", true, &st))
            continue;
        if (!farm_state_final(farm_state_parse(st.ptr, st.len)))
            continue;
        size_t seq = s_lookup(m, id);
        if (seq == SIZE_MAX)
            continue;
        int rc = s_found(m, seq, -1);
        if (rc == S_FATAL)
            return rc;
    }
    return S_OK;
}

/* An earlier run's job for batch b (--resume): skip what completed, put
 * failed and cancelled tasks back. */
static int s_adopt(s_map_t *m, size_t b) {
    s_batch_t *bt = &m->b[b];
    size_t skipped = 0, again = 0;
    int64_t after = 0;
    for (;;) {
        size_t np;
        int64_t next;
        int rc = s_list(m, bt->job, after, &np, &next);
        if (rc == S_LATER && !s_sig) { /* adoption must finish: wait for the farm */
            s_nap(S_SWEEP_MS);
            continue;
        }
        if (rc != S_OK)
            return rc == S_LATER ? S_OK : rc;
        for (size_t i = 0; i < np; i++) {
            size_t seq = s_lookup(m, m->page_id[i]);
            if (seq == SIZE_MAX || m->in[seq].st != S_WAIT)
                continue;
            if (m->page_st[i] == FARM_TASK_COMPLETED) {
                m->in[seq].st = S_SKIP;
                m->in[seq].fin = FARM_TASK_COMPLETED;
                m->handled++;
                bt->done++;
                skipped++;
            } else if (m->page_st[i] == FARM_TASK_FAILED || m->page_st[i] == FARM_TASK_CANCELLED) {
                again++;
            }
        }
        if (!next)
            break;
        after = next;
    }
    int64_t retried = 0;
    while (again) {
        int rc = s_job_op(m, "retry", "retried", bt->job, &retried);
        if (rc == S_LATER && !s_sig) {
            s_nap(S_SWEEP_MS);
            continue;
        }
        if (rc != S_OK)
            return rc == S_LATER ? S_OK : rc;
        break;
    }
    if (m->resume)
        fprintf(stderr, "farm map: resuming job %" PRId64 " (run %" PRId64 "): %zu of %zu completed earlier, %" PRId64
                    " to run again\n",
            bt->job, m->run, skipped, bt->n, retried);
    s_advance(m, bt);
    return S_OK;
}

/* Record a submitted batch: ids, index, adoption. */
static int s_submitted(s_map_t *m, size_t b, const s_sub_t *sub) {
    s_batch_t *bt = &m->b[b];
    bt->job = sub->job;
    for (size_t i = 0; i < bt->n; i++)
        m->in[bt->first + i].st = S_WAIT;
    s_index(m, b);
    m->nsub = b + 1;
    if (sub->dup) {
        bt->adopted = true;
        return s_adopt(m, b);
    }
    return S_OK;
}

/* Submit the next batch from the loop; a busy farm is retried later. */
static int s_submit_next(s_map_t *m) {
    s_sub_t sub;
    int rc = s_submit(m, m->nsub, m->run, false, &sub);
    if (rc == S_LATER) {
        m->busy_ms = m->busy_ms ? (m->busy_ms * 2 > S_BUSY_MAX_MS ? S_BUSY_MAX_MS : m->busy_ms * 2) : S_BUSY_FIRST_MS;
        m->submit_at = farm_mono_ms() + m->busy_ms;
        return S_OK;
    }
    if (rc != S_OK)
        return rc;
    m->busy_ms = 0;
    return s_submitted(m, m->nsub, &sub);
}

/* Submit batch 0 of a plain run: R = 1, 2, ... until a reply that is not a
 * duplicate. Waits out a busy farm. */
static int s_start_plain(s_map_t *m, int64_t first_run) {
    int64_t delay = S_BUSY_FIRST_MS;
    for (int64_t run = first_run; run <= S_MAX_RUNS;) {
        if (s_sig)
            return S_OK;
        s_sub_t sub;
        int rc = s_submit(m, 0, run, false, &sub);
        if (rc == S_LATER) {
            s_nap(delay);
            delay = delay * 2 > S_BUSY_MAX_MS ? S_BUSY_MAX_MS : delay * 2;
            continue;
        }
        if (rc != S_OK)
            return rc;
        /* A duplicate after a resend may be our own first copy: take it
         * as ours rather than risk running every task twice. */
        if (sub.dup && !sub.resent) {
            run++;
            continue;
        }
        m->run = run;
        return s_submitted(m, 0, &sub);
    }
    fprintf(stderr, "farm map: %d runs of this command and input exist; give another --name\n", S_MAX_RUNS);
    return S_FATAL;
}

/* Cancel and delete a probe's job. */
static void s_drop_probe(s_map_t *m, int64_t job) {
    int64_t n;
    if (s_job_op(m, "cancel", "cancelled", job, &n) != S_OK || s_job_op(m, "delete", "deleted", job, &n) != S_OK)
        fprintf(stderr, "farm map: could not delete the probe job %" PRId64 " (delete it with farm delete)\n", job);
}

/* The job name of job (into buf). */
static int s_job_name(s_map_t *m, int64_t job, char *buf, size_t n) {
    cli_req_t q;
    cli_req_init(&q, 3, "status");
    farm_pack_kv_int(&q.pk, "job", job);
    const msgpack_object *reply;
    int rc = s_call(m, &q, &reply, NULL);
    cli_req_free(&q);
    if (rc != S_OK)
        return rc == S_LATER ? S_FATAL : rc;
    cli_rd_t r = {0};
    farm_str_t name = {"", 0};
    cli_rd_str(&r, cli_rd_map(&r, reply, "job", true), "name", false, &name);
    if (r.bad) {
        cli_malformed(r.why);
        return S_FATAL;
    }
    farm_str_copy(buf, n, name);
    return S_OK;
}

/* --resume: find the latest run by probing, then submit batch 0 with its
 * key (or start a plain run when there is none). */
static int s_start_resume(s_map_t *m) {
    int64_t latest = 0, delay = S_BUSY_FIRST_MS;
    for (int64_t run = 1; run <= S_MAX_RUNS && !s_sig;) {
        s_sub_t sub;
        int rc = s_submit(m, 0, run, true, &sub);
        if (rc == S_LATER) {
            s_nap(delay);
            delay = delay * 2 > S_BUSY_MAX_MS ? S_BUSY_MAX_MS : delay * 2;
            continue;
        }
        if (rc != S_OK)
            return rc;
        if (!sub.dup) {
            s_drop_probe(m, sub.job);
            break;
        }
        char name[256];
        if ((rc = s_job_name(m, sub.job, name, sizeof name)) != S_OK)
            return rc;
        if (strcmp(name, S_PROBE_NAME) == 0)
            s_drop_probe(m, sub.job); /* a crash's leftover: not a run */
        else
            latest = run;
        run++;
    }
    if (s_sig)
        return S_OK;
    if (latest == 0) {
        fprintf(stderr, "farm map: no earlier run of this command and input: starting one\n");
        return s_start_plain(m, 1);
    }
    m->run = latest;
    s_sub_t sub;
    int64_t d = S_BUSY_FIRST_MS;
    for (;;) {
        int rc = s_submit(m, 0, latest, false, &sub);
        if (rc == S_OK)
            return s_submitted(m, 0, &sub);
        if (rc != S_LATER || s_sig)
            return rc == S_LATER ? S_OK : rc;
        s_nap(d);
        d = d * 2 > S_BUSY_MAX_MS ? S_BUSY_MAX_MS : d * 2;
    }
}

/* Cancel every submitted job; returns the tasks cancelled. */
static int64_t s_cancel_all(s_map_t *m) {
    int64_t total = 0;
    for (size_t b = 0; b < m->nsub; b++) {
        int64_t n = 0;
        if (s_job_op(m, "cancel", "cancelled", m->b[b].job, &n) == S_OK)
            total += n;
        else
            fprintf(stderr, "farm map: job %" PRId64 " may still run: cancel it with farm cancel --job %" PRId64
                            "\n",
                    m->b[b].job, m->b[b].job);
    }
    return total;
}

/* " (jobs 17, 18, ...)" */
static void s_jobs_text(const s_map_t *m, char *buf, size_t n) {
    size_t o = (size_t)snprintf(buf, n, " (job%s", m->nsub == 1 ? "" : "s");
    for (size_t b = 0; b < m->nsub && b < 5 && o < n; b++)
        o += (size_t)snprintf(buf + o, n - o, "%s %" PRId64, b ? "," : "", m->b[b].job);
    if (o < n)
        snprintf(buf + o, n - o, "%s)", m->nsub > 5 ? ", ..." : "");
}

static int s_exit_code(const s_map_t *m) {
    if (m->halt_seq && m->halt == 1)
        return m->in[m->halt_seq - 1].code > 0 ? m->in[m->halt_seq - 1].code : 1;
    return m->failed > 100 ? 101 : (int)m->failed;
}

static int s_follow(s_map_t *m) {
    m->following = true;
    int64_t next_sweep = farm_mono_ms() + S_SWEEP_MS;
    char jobs[128];
    for (;;) {
        int rc = S_OK;
        if (s_sig)
            break;
        if (m->keep && !m->halt_seq)
            rc = s_flush_order(m);
        if (rc == S_FATAL)
            goto fatal;
        if (m->halt_seq)
            break;
        if (m->handled == m->n && m->nsub == m->nb && (!m->keep || m->next_print == m->n))
            return s_exit_code(m);
        int64_t now = farm_mono_ms();
        if (m->nsub < m->nb && now >= m->submit_at) {
            if ((rc = s_submit_next(m)) == S_FATAL)
                goto fatal;
            continue;
        }
        int64_t deadline = next_sweep;
        if (m->nsub < m->nb && m->submit_at < deadline)
            deadline = m->submit_at;
        const char *topic;
        const msgpack_object *body;
        if (cli_feed_next(m->feed, deadline, &topic, &body) == 1 && s_on_event(m, topic, body) == S_FATAL)
            goto fatal;
        /* Checked after every event too: other jobs' events must not starve the sweep. */
        if (!s_sig && !m->halt_seq && farm_mono_ms() >= next_sweep) {
            if (s_sweep_all(m) == S_FATAL)
                goto fatal;
            next_sweep = farm_mono_ms() + S_SWEEP_MS;
        }
    }
    s_jobs_text(m, jobs, sizeof jobs);
    if (s_sig) {
        int sig = s_sig;
        int64_t n = s_cancel_all(m);
        fprintf(stderr, "farm map: %s: cancelled %" PRId64 " unfinished task%s%s%s\n",
                sig == SIGINT ? "interrupted" : "terminated", n, n == 1 ? "" : "s", m->nsub ? jobs : "",
                m->nsub ? "; `farm map --resume` with the same command and input runs the rest" : "");
        return 128 + sig;
    }
    /* --halt: show the failing task even if --keep-order has not reached it. */
    size_t seq = m->halt_seq - 1;
    if (m->in[seq].st == S_FINAL)
        (void)s_emit(m, seq);
    int64_t n = s_cancel_all(m);
    fprintf(stderr, "farm map: halting after %zu failed task%s (--halt now,fail=%" PRId64 "): cancelled %" PRId64
                    " unfinished%s\n",
            m->failed, m->failed == 1 ? "" : "s", m->halt, n, jobs);
    return s_exit_code(m);
fatal:
    if (m->nsub) {
        int64_t c = s_cancel_all(m);
        s_jobs_text(m, jobs, sizeof jobs);
        fprintf(stderr, "farm map: stopped: cancelled %" PRId64 " unfinished task%s%s\n", c, c == 1 ? "" : "s", jobs);
    }
    return S_EXIT_OTHER;
}

/* ---- options ---------------------------------------------------------- */

/* --timeout: seconds (maybe fractional), or with ms/s/m/h. */
static int s_parse_dur(const char *s, int64_t *ms) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !(v >= 0))
        return -1;
    double unit = 1000;
    if (strcmp(end, "ms") == 0)
        unit = 1;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        unit = 1000;
    else if (strcmp(end, "m") == 0)
        unit = 60000;
    else if (strcmp(end, "h") == 0)
        unit = 3600000;
    else
        return -1;
    double r = v * unit;
    if (r > (double)(INT64_MAX / 4))
        return -1;
    *ms = (int64_t)(r + 0.5);
    return 0;
}

/* --halt: "never" or "now,fail=N". */
static int s_parse_halt(const char *s, int64_t *n) {
    if (strcmp(s, "never") == 0) {
        *n = 0;
        return 0;
    }
    const char *pre = "now,fail=";
    if (strncmp(s, pre, strlen(pre)) != 0)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s + strlen(pre), &end, 10);
    if (errno || end == s + strlen(pre) || *end || v < 1)
        return -1;
    *n = v;
    return 0;
}

static void s_free(s_map_t *m) {
    cli_feed_close(&m->feed);
    farm_client_destroy(&m->subc);
    if (m->joblog && m->joblog != stdout)
        fclose(m->joblog);
    free(m->text);
    free(m->in);
    free(m->b);
    free(m->idx);
    free(m->has);
    free(m->page_id);
    free(m->page_st);
}

static int s_map(cli_t *cli, s_map_t *m, int argc, char **argv);

int cli_cmd_map(cli_t *cli, int argc, char **argv) {
    s_map_t m = {0};
    m.cli = cli;
    int rc = s_map(cli, &m, argc, argv);
    s_free(&m);
    return rc;
}

/* Usage errors are "other errors" here (255): 1..101 count failed tasks. */
#define S_USAGE(...) (cli_usage(cli, __VA_ARGS__), S_EXIT_OTHER)

static int s_map(cli_t *cli, s_map_t *m, int argc, char **argv) {
    static const cli_help_t help = {
        "[OPTIONS] -- CMD [ARG...] [::: INPUT...]",
        "Run CMD once per input line of stdin (or per INPUT after :::), like GNU parallel.",
        "Each input makes one exec task; in every argument of the command\n"
        "  {}  the input    {.}  without extension    {/}  basename    {//}  dirname\n"
        "  {/.}  basename without extension    {#}  the input's number, from 1\n"
        "are replaced (x/y.tar.gz: x/y.tar, y.tar.gz, x, y.tar); without any, the input is\n"
        "appended. No shell runs unless CMD is one: farm map -- sh -c 'gzip \"$1\"' sh {}\n"
        "Each task's stdout is printed as it completes (in input order with --keep-order),\n"
        "its stderr goes to stderr. Inputs are submitted in batches (--batch), each one job\n"
        "named --name.\n"
        "\n"
        "--resume continues the latest run of the same --name, command and inputs: what\n"
        "completed is skipped, failed and cancelled tasks run again, the rest is followed;\n"
        "without an earlier run it starts one. Runs are found by their idempotency keys,\n"
        "map-HASH-RUN, HASH covering the name, the command and the inputs batch by batch\n"
        "(so keep --batch), RUN counting the plain runs of that content.\n"
        "  ls *.tif | farm map -- convert {} {.}.png\n"
        "  farm map --keep-order --joblog log -- gzip -9 ::: a.txt b.txt\n"
        "  ls *.tif | farm map --resume -- convert {} {.}.png   (after a Ctrl-C)\n"
        "The global --timeout and --retries are shadowed by map's own: put them before `map`.\n"};
    cli->exit_help = "exit status (as GNU parallel): 0 every task completed, 1-100 that many failed or were\n"
                     "cancelled, 101 more than 100; with --halt now,fail=1 the failing task's exit status;\n"
                     "130 after Ctrl-C (the run's jobs are cancelled, 143 for SIGTERM); 255 any other error:\n"
                     "usage, the farm refused or did not answer, stdout could not be written\n";
    const char *name = NULL, *timeout = NULL, *joblog = NULL, *halt = NULL;
    cli_int_t retries = {0}, batch = {S_BATCH_DEFAULT, false};
    const cli_opt_t opts[] = {
        {"name", CLI_OPT_STR, &name, 0, 0, "N", "name of the job(s) (default \"map: CMD...\")"},
        {"retries", CLI_OPT_INT, &retries, 0, 99, "N", "run a failing task up to N more times (default 0)"},
        {"timeout", CLI_OPT_STR, &timeout, 0, 0, "T", "time limit of one attempt: seconds, or 500ms, 2m, 1h"},
        {"priority", CLI_OPT_INT, &m->prio, -100, 100, "P", "-100..100, higher runs first (default 0)"},
        {"keep-order", CLI_OPT_FLAG, &m->keep, 0, 0, NULL, "print outputs in input order"},
        {"joblog", CLI_OPT_STR, &joblog, 0, 0, "FILE", "log each task as parallel --joblog (+FILE appends)"},
        {"resume", CLI_OPT_FLAG, &m->resume, 0, 0, NULL, "continue the latest run of this command and input"},
        {"halt", CLI_OPT_STR, &halt, 0, 0, "now,fail=N", "after N failures cancel the rest and exit"},
        {"batch", CLI_OPT_INT, &batch, 1, 10000, "N", "inputs per submit, at most the farm's max-batch (1000)"},
    };
    char *pos[argc];
    char **rest;
    int npos, nrest;
    int rc = cli_parse(cli, &help, opts, sizeof opts / sizeof opts[0], argc, argv, pos, &npos, &rest, &nrest);
    if (rc != CLI_CONTINUE)
        return rc == CLI_OK ? 0 : S_EXIT_OTHER;
    farm_limits_t lim;
    farm_limits_default(&lim);
    if (npos)
        return S_USAGE("unexpected '%s': put the command after '--' (farm map -- CMD ARGS...)", pos[0]);
    if (!rest)
        return S_USAGE("no command: farm map [OPTIONS] -- CMD [ARG...]");
    if (cli->json)
        return S_USAGE("--json does not apply: map prints the tasks' own output");
    int sep = -1;
    for (int i = 0; i < nrest; i++) {
        if (strcmp(rest[i], "::::") == 0)
            return S_USAGE("'::::' (inputs from files) is not supported: cat FILE | farm map -- ...");
        if (strcmp(rest[i], ":::") == 0) {
            if (sep >= 0)
                return S_USAGE("only one ':::' list of inputs is supported");
            sep = i;
        }
    }
    m->cmd = rest;
    m->ncmd = sep >= 0 ? sep : nrest;
    if (m->ncmd == 0)
        return S_USAGE("no command after '--'");
    if (!m->cmd[0][0])
        return S_USAGE("the command name is empty");
    m->attempts = retries.v + 1;
    m->timeout = -1;
    if (timeout && s_parse_dur(timeout, &m->timeout) != 0)
        return S_USAGE("--timeout: '%s' is not a duration (10, 2.5, 500ms, 30s, 2m, 1h)", timeout);
    if (halt && s_parse_halt(halt, &m->halt) != 0)
        return S_USAGE("--halt: '%s' is not supported (now,fail=N or never)", halt);
    m->batch_max = batch.v;
    if (name && (!*name || (int64_t)strlen(name) > lim.max_name))
        return S_USAGE("--name: must be 1..%" PRId64 " bytes", lim.max_name);
    if (name) {
        snprintf(m->name, sizeof m->name, "%s", name);
    } else {
        size_t o = (size_t)snprintf(m->name, sizeof m->name, "map:");
        for (int i = 0; i < m->ncmd && o < S_NAME_DEFAULT_MAX; i++)
            o += (size_t)snprintf(m->name + o, sizeof m->name - o, " %s", m->cmd[i]);
        if (o > S_NAME_DEFAULT_MAX) {
            o = S_NAME_DEFAULT_MAX;
            while (o > 0 && ((unsigned char)m->name[o] & 0xC0) == 0x80)
                o--; /* cut on a character boundary */
            m->name[o] = '\0';
        }
    }
    m->has = calloc((size_t)m->ncmd, sizeof *m->has);
    m->page_id = calloc(S_PAGE, sizeof *m->page_id);
    m->page_st = calloc(S_PAGE, sizeof *m->page_st);
    if (!m->has || !m->page_id || !m->page_st) {
        fprintf(stderr, "farm map: out of memory\n");
        return S_EXIT_OTHER;
    }
    m->append = true;
    for (int i = 0; i < m->ncmd; i++)
        if ((m->has[i] = cli_subst_has(m->cmd[i])))
            m->append = false;

    /* Signals before reading: a Ctrl-C while stdin is read ends quietly. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C kills at once */
    sigemptyset(&sa.sa_mask);
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    s_sig = 0;
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 ||
        sigaction(SIGPIPE, &ign, NULL) != 0) {
        fprintf(stderr, "farm map: installing signal handlers: %s\n", strerror(errno));
        return S_EXIT_OTHER;
    }

    if (sep >= 0) {
        m->n = (size_t)(nrest - sep - 1);
        m->in = calloc(m->n ? m->n : 1, sizeof *m->in);
        if (!m->in) {
            fprintf(stderr, "farm map: out of memory\n");
            return S_EXIT_OTHER;
        }
        for (size_t i = 0; i < m->n; i++) {
            m->in[i].p = rest[sep + 1 + (int)i];
            m->in[i].len = (uint32_t)strlen(m->in[i].p);
        }
    } else if ((rc = s_read_stdin(m)) != 0) {
        return rc;
    }
    for (size_t i = 0; i < m->n; i++)
        if ((int64_t)m->in[i].len > lim.max_args) {
            char what[256];
            fprintf(stderr, "farm map: %s is over %" PRId64 " bytes (max-args)\n", s_what(m, i, what, sizeof what),
                    lim.max_args);
            return S_EXIT_OTHER;
        }
    if (m->n == 0)
        return 0; /* nothing to run, as parallel */
    if ((rc = s_plan(m)) != 0)
        return rc;
    m->idx = calloc(m->n, sizeof *m->idx);
    if (!m->idx) {
        fprintf(stderr, "farm map: out of memory\n");
        return S_EXIT_OTHER;
    }
    if (joblog) {
        bool append = m->resume || joblog[0] == '+';
        const char *path = joblog[0] == '+' ? joblog + 1 : joblog;
        m->joblog = fopen(path, append ? "a" : "w");
        struct stat sb;
        if (!m->joblog || fstat(fileno(m->joblog), &sb) != 0) {
            fprintf(stderr, "farm map: --joblog %s: %s\n", path, strerror(errno));
            return S_EXIT_OTHER;
        }
        if (sb.st_size == 0 &&
            (fputs("Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n", m->joblog) == EOF ||
             fflush(m->joblog) != 0)) {
            fprintf(stderr, "farm map: --joblog %s: %s\n", path, strerror(errno));
            return S_EXIT_OTHER;
        }
    }

    /* Subscribe before the first submit, so no event of the run is missed. */
    static const char *const topics[] = {"task"};
    m->feed = cli_feed_open(cli, topics, 1);
    rc = m->resume ? s_start_resume(m) : s_start_plain(m, 1);
    if (rc == S_FATAL) {
        if (m->nsub) {
            int64_t n = s_cancel_all(m);
            fprintf(stderr, "farm map: stopped: cancelled %" PRId64 " unfinished task%s\n", n, n == 1 ? "" : "s");
        }
        return S_EXIT_OTHER;
    }
    if (s_sig && !m->nsub) {
        fprintf(stderr, "farm map: %s before anything was submitted\n", s_sig == SIGINT ? "interrupted" : "terminated");
        return 128 + s_sig;
    }
    return s_follow(m);
}
