/* worker_slot: the pool of slot threads and the task context of
 * farm_plugin.h (see worker_slot.h).
 *
 * Locking: the pool's `mu` guards the queue, the event list, the open and
 * quit flags and, per slot, its phase and the task it holds (fields marked
 * "pool"); `pmu` of a slot guards its progress mailbox, the handler's error
 * text and records, which a handler may write from any of its threads. The
 * order is mu, then pmu. The stop reason is an atomic so that
 * farm_task_stopping() is a plain load; it is only set under `mu` while
 * the slot runs the task it is meant for, and read under `mu` once the
 * handler returns, so the outcome and a late stop cannot disagree. Fields
 * marked "thread" belong to the slot's thread.
 *
 * The slot thread packs the whole "result" message itself and checks it by
 * decoding it again: a handler that packed zero or several values, or ran
 * the packer out of memory, is caught here, on its own thread, and reported
 * as a failure instead of sending the sink a malformed message.
 *
 * Records (farm_task_record) are packed as they come into one buffer that
 * starts with a 5-byte array32 header, patched with the count when the
 * result is packed, so the list goes into the message without a copy. They
 * only travel with a successful result.
 */
#include "worker_slot.h"

#include "farm_config.h"
#include "farm_err.h"
#include "farm_log.h"
#include "farm_time.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define S_ERROR_MAX WORKER_ERROR_MAX /* bytes of an error text, NUL included */
#define S_TIMEOUT_MAX_MS (100LL * 365 * 24 * 3600 * 1000) /* longer timeouts are ignored */
#define S_RECS_HEADER 5 /* bytes of the array32 header at the front of the records buffer */
#define S_RECS_KEEP (1024 * 1024) /* a records buffer larger than this is freed between tasks */
_Static_assert(FARM_TASK_RECORDS_MAX == FARM_RESULT_RECORDS_MAX, "record limits of the plugin API and the wire must agree");

typedef struct worker_slot worker_slot_t;

typedef enum {
    S_IDLE,      /* no task */
    S_RUNNING,   /* the handler runs */
    S_FINISHING, /* the handler returned; the outcome is being packed */
} s_phase_t;

/* A task waiting for a slot: its message, kept whole, is decoded again by
 * the slot that takes it. */
typedef struct s_task {
    char *raw;                   /* the task message as it came */
    size_t len;                  /* its bytes */
    int64_t id, job, attempt;    /* for cancel, take-back and heartbeats */
    int64_t priority;            /* the queue is ordered by priority, then id */
    int64_t timeout_ms;          /* as submitted */
    const farm_handler_t *h;     /* its handler, borrowed from the registry */
    struct s_task *prev, *next;  /* neighbours: towards the head (runs first) and the tail */
} s_task_t;

struct farm_task_ctx {
    worker_slot_t *slot;     /* the slot running the task */
    int64_t id, job, attempt;
    int64_t timeout_ms;      /* as submitted, 0 none */
    int64_t deadline;        /* monotonic ms, 0 none */
    _Atomic int stop;        /* a worker_stop_t; set under the pool's mu while running */
    int stop_fd;             /* eventfd, readable once stopped; reset when the task ends */
    void *ud;                /* the handler's ud */
    char error[S_ERROR_MAX]; /* farm_task_fail() text, under slot->pmu; "" none */
    msgpack_sbuffer recs;    /* farm_task_record()s, under slot->pmu: header + [idx, bin] pairs */
    size_t nrecs;            /* records in recs */
};

struct worker_slot {
    int index;                  /* for logs */
    struct worker_pool *pool;   /* its pool */
    const char *worker;         /* the worker's name, borrowed */
    int wake_fd;                /* the main thread's eventfd, borrowed */
    int64_t max_result;         /* bytes a packed result value may have (max_frame less headroom) */
    pthread_t thread;           /* the slot thread */
    bool started;               /* the thread was created */
    /* pool */
    s_phase_t phase;            /* see s_phase_t */
    int64_t task, attempt;      /* the task held, 0 when idle */
    int64_t deadline;           /* its deadline (monotonic ms), 0 none */
    bool stopping;              /* a stop was delivered or the deadline passed */
    /* thread */
    const farm_handler_t *handler; /* borrowed from the registry */
    int64_t started_ms;         /* wall time the task was taken */
    int64_t started_mono;       /* monotonic time it was taken */
    msgpack_sbuffer out;        /* the packed "result" message */
    farm_task_ctx_t ctx;        /* what the handler sees */
    /* progress mailbox, under pmu */
    pthread_mutex_t pmu;
    bool p_has;                 /* an update waits */
    int p_pct;                  /* its percentage */
    bool p_has_msg;             /* it has a message */
    char p_msg[WORKER_PROGRESS_MSG_MAX + 1]; /* the message */
    bool p_poked;               /* the wake fd was written for it and the update not taken yet */
    int64_t p_last;             /* monotonic time the last update was taken, 0 none yet */
};

/* The ids of the tasks in the pool: queued, in a slot, or finished with
 * the result not yet taken by the main thread. Open addressing with linear
 * probing; deletion shifts back, so there are no tombstones. Asked for
 * every task that arrives (is it here already?), which scanning the queue
 * made O(queue) under the pool's mutex: a quarter of a worker's time with
 * a deep prefetch, and the slots waiting on the mutex meanwhile. */
typedef struct {
    int64_t *keys;
    unsigned char *used;
    size_t cap, n; /* cap a power of two, or 0 */
} s_ids_t;

struct worker_pool {
    pthread_mutex_t mu;         /* see the top of the file */
    pthread_cond_t cv;          /* a task was queued, the pool opened, or quit */
    int wake_fd;                /* the main thread's eventfd, borrowed */
    int nslots;                 /* slots */
    worker_slot_t *slots;       /* nslots of them */
    s_task_t *qhead, *qtail;    /* waiting tasks, in the order they run */
    int64_t nqueued;            /* their number */
    worker_event_t *ehead, *etail; /* events the main thread has not taken */
    int64_t nresults;           /* result events among them */
    s_ids_t ids;                /* the tasks in the pool (see s_ids_t) */
    bool open;                  /* slots may take tasks */
    bool quit;                  /* slot threads exit */
};

/* Mutex and condition errors are programming errors: nothing from outside
 * can cause them, and no state is safe to continue with. */
static void s_check(int rc, const char *what) {
    if (rc != 0) {
        farm_log(FARM_LOG_ERROR, "worker", "event=fatal op=%s err=\"%s\"", what, strerror(rc));
        abort();
    }
}
static void s_lock(pthread_mutex_t *m) { s_check(pthread_mutex_lock(m), "pthread_mutex_lock"); }
static void s_unlock(pthread_mutex_t *m) { s_check(pthread_mutex_unlock(m), "pthread_mutex_unlock"); }

/* Add one to an eventfd. A full counter (EAGAIN) is still readable. */
static void s_signal_fd(int fd, const char *what) {
    uint64_t one = 1;
    for (;;) {
        ssize_t n = write(fd, &one, sizeof one);
        if (n == (ssize_t)sizeof one || (n < 0 && errno == EAGAIN))
            return;
        if (n < 0 && errno == EINTR)
            continue;
        farm_log(FARM_LOG_ERROR, "worker", "event=eventfd-write fd=%s err=\"%s\"", what, strerror(errno));
        return;
    }
}

/* Read an eventfd back to zero. */
static void s_reset_fd(int fd) {
    uint64_t v;
    while (read(fd, &v, sizeof v) < 0 && errno == EINTR) {
    }
}

/* Copy at most WORKER_PROGRESS_MSG_MAX bytes of msg, never cutting a UTF-8
 * sequence in two. */
static void s_copy_msg(char *dst, const char *msg) {
    size_t n = strnlen(msg, WORKER_PROGRESS_MSG_MAX + 1);
    if (n > WORKER_PROGRESS_MSG_MAX) {
        n = WORKER_PROGRESS_MSG_MAX;
        while (n > 0 && ((unsigned char)msg[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, msg, n);
    dst[n] = '\0';
}

/* ---- the task context (farm_plugin.h) ----------------------------------- */

void farm_task_progress(farm_task_ctx_t *ctx, int pct, const char *msg) {
    if (!ctx)
        return;
    worker_slot_t *s = ctx->slot;
    pct = pct < 0 ? 0 : pct > 100 ? 100 : pct;
    s_lock(&s->pmu);
    /* A 100 waiting to be sent is never replaced by a lower value. */
    if (s->p_has && s->p_pct == 100 && pct != 100) {
        s_unlock(&s->pmu);
        return;
    }
    s->p_has = true;
    s->p_pct = pct;
    s->p_has_msg = msg != NULL;
    s_copy_msg(s->p_msg, msg ? msg : "");
    bool poke = !s->p_poked;
    s->p_poked = true;
    s_unlock(&s->pmu);
    if (poke)
        s_signal_fd(s->wake_fd, "wake");
}

bool farm_task_stopping(const farm_task_ctx_t *ctx) {
    if (atomic_load(&ctx->stop) != WORKER_STOP_NONE)
        return true;
    return ctx->deadline > 0 && farm_mono_ms() >= ctx->deadline;
}

int farm_task_stop_fd(const farm_task_ctx_t *ctx) { return ctx->stop_fd; }
int64_t farm_task_deadline_ms(const farm_task_ctx_t *ctx) { return ctx->deadline; }
int64_t farm_task_timeout_ms(const farm_task_ctx_t *ctx) { return ctx->timeout_ms; }
int64_t farm_task_id(const farm_task_ctx_t *ctx) { return ctx->id; }
int64_t farm_task_job(const farm_task_ctx_t *ctx) { return ctx->job; }
int64_t farm_task_attempt(const farm_task_ctx_t *ctx) { return ctx->attempt; }
void *farm_task_handler_data(const farm_task_ctx_t *ctx) { return ctx->ud; }

void farm_task_fail(farm_task_ctx_t *ctx, const char *fmt, ...) {
    if (!ctx || !fmt)
        return;
    char buf[S_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        snprintf(buf, sizeof buf, "%s", "handler failed (unprintable error)");
    s_lock(&ctx->slot->pmu);
    memcpy(ctx->error, buf, sizeof buf);
    s_unlock(&ctx->slot->pmu);
}

/* Empty the records buffer down to its header. Returns false when out of
 * memory (the buffer is then empty and farm_task_record fails). */
static bool s_recs_reset(farm_task_ctx_t *c) {
    if (c->recs.alloc > S_RECS_KEEP) { /* a big task's buffer is not kept for the next */
        msgpack_sbuffer_destroy(&c->recs);
        msgpack_sbuffer_init(&c->recs);
    }
    msgpack_sbuffer_clear(&c->recs);
    c->nrecs = 0;
    static const char hdr[S_RECS_HEADER] = {(char)0xdd, 0, 0, 0, 0};
    return msgpack_sbuffer_write(&c->recs, hdr, sizeof hdr) == 0;
}

int farm_task_record(farm_task_ctx_t *ctx, int64_t idx, const msgpack_object *record) {
    if (!ctx || !record || idx < 0)
        return -1;
    /* Pack the record alone first, outside the lock. */
    msgpack_sbuffer one;
    msgpack_sbuffer_init(&one);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &one, msgpack_sbuffer_write);
    if (msgpack_pack_object(&pk, *record) != 0 || one.size == 0) {
        msgpack_sbuffer_destroy(&one);
        return -1;
    }
    worker_slot_t *s = ctx->slot;
    int rc = -1;
    s_lock(&s->pmu);
    if (ctx->recs.size >= S_RECS_HEADER && ctx->nrecs < FARM_TASK_RECORDS_MAX &&
        (int64_t)(ctx->recs.size + one.size + 32) <= s->max_result) {
        size_t mark = ctx->recs.size;
        msgpack_packer rp;
        msgpack_packer_init(&rp, &ctx->recs, msgpack_sbuffer_write);
        if (msgpack_pack_array(&rp, 2) == 0 && msgpack_pack_int64(&rp, idx) == 0 &&
            msgpack_pack_bin(&rp, one.size) == 0 && msgpack_pack_bin_body(&rp, one.data, one.size) == 0) {
            ctx->nrecs++;
            rc = 0;
        } else {
            ctx->recs.size = mark; /* drop the half-written pair */
        }
    }
    s_unlock(&s->pmu);
    msgpack_sbuffer_destroy(&one);
    return rc;
}

static void s_stop_text(char *dst, size_t n, worker_stop_t why, int64_t timeout_ms) {
    switch (why) {
    case WORKER_STOP_CANCEL: snprintf(dst, n, "cancelled"); break;
    case WORKER_STOP_TIMEOUT: snprintf(dst, n, "timeout after %" PRId64 " ms", timeout_ms); break;
    case WORKER_STOP_DRAIN: snprintf(dst, n, "worker draining: grace period over"); break;
    case WORKER_STOP_NONE: dst[0] = '\0'; break;
    }
}

/* Pack the "result" message into s->out and check that it decodes as one
 * MessagePack value. Returns true when it does. */
static bool s_pack_result(worker_slot_t *s, bool ok, bool cancelled, const msgpack_sbuffer *value,
                          const char *error, int64_t finished_ms) {
    farm_task_ctx_t *c = &s->ctx;
    msgpack_sbuffer_clear(&s->out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &s->out, msgpack_sbuffer_write);
    /* Records go only with a successful result; the handler has returned,
     * so nothing writes them any more. */
    const char *recs = NULL;
    size_t recs_len = 0;
    if (ok && c->nrecs > 0 && c->recs.size >= S_RECS_HEADER) {
        uint32_t n = (uint32_t)c->nrecs;
        unsigned char *h = (unsigned char *)c->recs.data;
        h[0] = 0xdd;
        h[1] = (unsigned char)(n >> 24);
        h[2] = (unsigned char)(n >> 16);
        h[3] = (unsigned char)(n >> 8);
        h[4] = (unsigned char)n;
        recs = c->recs.data;
        recs_len = c->recs.size;
    }
    farm_pack_result_records(&pk, c->id, c->attempt, s->worker, ok, cancelled, value ? value->data : NULL,
                             value ? value->size : 0, ok ? NULL : error, s->started_ms, finished_ms, recs,
                             recs_len);
    msgpack_zone z;
    if (!msgpack_zone_init(&z, 1024))
        return false;
    msgpack_object o;
    farm_error_t e;
    int rc = farm_msg_unpack(s->out.data, s->out.size, &z, &o, &e);
    msgpack_zone_destroy(&z);
    return rc == 0;
}

static size_t s_ids_home(const s_ids_t *d, int64_t id) {
    uint64_t x = (uint64_t)id * 0x9E3779B97F4A7C15u;
    return (size_t)(x ^ (x >> 32)) & (d->cap - 1);
}

/* The slot of id, or of the empty place where it would go. */
static size_t s_ids_find(const s_ids_t *d, int64_t id) {
    size_t i = s_ids_home(d, id);
    while (d->used[i] && d->keys[i] != id)
        i = (i + 1) & (d->cap - 1);
    return i;
}

static bool s_ids_has(const s_ids_t *d, int64_t id) { return d->cap && d->used[s_ids_find(d, id)]; }

/* Add id (once). Returns 0, or -ENOMEM with the set unchanged. */
static int s_ids_add(s_ids_t *d, int64_t id) {
    if ((d->n + 1) * 2 > d->cap) {
        s_ids_t g = {.cap = d->cap ? d->cap * 2 : 64};
        g.keys = malloc(g.cap * sizeof *g.keys);
        g.used = calloc(g.cap, 1);
        if (!g.keys || !g.used) {
            free(g.keys);
            free(g.used);
            return -ENOMEM;
        }
        for (size_t i = 0; i < d->cap; i++)
            if (d->used[i]) {
                size_t j = s_ids_find(&g, d->keys[i]);
                g.keys[j] = d->keys[i];
                g.used[j] = 1;
                g.n++;
            }
        free(d->keys);
        free(d->used);
        *d = g;
    }
    size_t i = s_ids_find(d, id);
    if (!d->used[i]) {
        d->keys[i] = id;
        d->used[i] = 1;
        d->n++;
    }
    return 0;
}

static void s_ids_del(s_ids_t *d, int64_t id) {
    if (!d->cap)
        return;
    size_t m = d->cap - 1, i = s_ids_find(d, id);
    if (!d->used[i])
        return;
    d->used[i] = 0;
    d->n--;
    /* Close the hole: a later key of the run moves into it unless its home
     * lies cyclically in (hole, its place]. */
    for (size_t j = (i + 1) & m; d->used[j]; j = (j + 1) & m) {
        size_t k = s_ids_home(d, d->keys[j]);
        bool stays = i <= j ? (k > i && k <= j) : (k > i || k <= j);
        if (!stays) {
            d->keys[i] = d->keys[j];
            d->used[i] = 1;
            d->used[j] = 0;
            i = j;
        }
    }
}

/* Append an event; true when the list was empty (the main thread must be
 * woken). Under the pool's mu. */
static bool s_event_put(worker_pool_t *p, worker_event_t *e) {
    bool was_empty = p->ehead == NULL;
    p->nresults += e->kind == WORKER_EV_RESULT;
    e->next = NULL;
    if (p->etail)
        p->etail->next = e;
    else
        p->ehead = e;
    p->etail = e;
    return was_empty;
}

/* Take the head of the queue and make it the slot's task. Under mu.
 * Returns the task (the caller frees it) and, in *start, its start event
 * (NULL when out of memory: the result carries the start time too). */
static s_task_t *s_take(worker_slot_t *s, worker_event_t **start) {
    worker_pool_t *p = s->pool;
    s_task_t *t = p->qhead;
    p->qhead = t->next;
    if (p->qhead)
        p->qhead->prev = NULL;
    else
        p->qtail = NULL;
    p->nqueued--;
    int64_t mono = farm_mono_ms();
    s->phase = S_RUNNING;
    s->task = t->id;
    s->attempt = t->attempt;
    /* The wire allows any int64; beyond a century a timeout means none and
     * could only overflow the clock arithmetic. */
    s->deadline = t->timeout_ms > 0 && t->timeout_ms <= S_TIMEOUT_MAX_MS ? mono + t->timeout_ms : 0;
    s->stopping = false;
    s->handler = t->h;
    s->started_ms = farm_now_ms();
    s->started_mono = mono;
    farm_task_ctx_t *c = &s->ctx;
    c->id = t->id;
    c->job = t->job;
    c->attempt = t->attempt;
    c->timeout_ms = t->timeout_ms;
    c->deadline = s->deadline;
    c->ud = t->h->ud;
    atomic_store(&c->stop, WORKER_STOP_NONE);
    worker_event_t *e = calloc(1, sizeof *e);
    if (e)
        *e = (worker_event_t){.kind = WORKER_EV_START, .slot = s->index, .task = t->id, .attempt = t->attempt,
                              .started_ms = s->started_ms};
    *start = e;
    return t;
}

/* Run task t in slot s and pack its outcome into s->out. Returns the error
 * text's outcome: ok, cancelled and error are filled. */
static void s_run(worker_slot_t *s, const s_task_t *t, bool *ok_out, bool *cancelled_out, char *error) {
    farm_task_ctx_t *c = &s->ctx;
    error[0] = '\0';
    s_lock(&s->pmu);
    s->p_has = s->p_poked = false;
    s->p_last = 0;
    c->error[0] = '\0';
    bool recs_ok = s_recs_reset(c);
    s_unlock(&s->pmu);
    msgpack_sbuffer value;
    msgpack_sbuffer_init(&value);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &value, msgpack_sbuffer_write);
    msgpack_zone zone;
    bool zone_ok = msgpack_zone_init(&zone, 4096);
    msgpack_object o, nil = {.type = MSGPACK_OBJECT_NIL};
    farm_msg_task_t m;
    farm_error_t e;
    int rc = -1;
    if (!zone_ok || !recs_ok)
        snprintf(error, S_ERROR_MAX, "worker out of memory");
    else if (farm_msg_unpack(t->raw, t->len, &zone, &o, &e) != 0 || farm_msg_task_decode(&o, &m, &e) != 0)
        snprintf(error, S_ERROR_MAX, "worker cannot read the task: %s", e.message);
    else
        rc = s->handler->run(c, m.args ? m.args : &nil, &pk);
    if (zone_ok)
        msgpack_zone_destroy(&zone);

    int64_t finished_ms = farm_now_ms();
    int64_t now = farm_mono_ms();
    worker_pool_t *p = s->pool;
    s_lock(&p->mu);
    s->phase = S_FINISHING;
    worker_stop_t stop = (worker_stop_t)atomic_load(&c->stop);
    if (stop == WORKER_STOP_NONE && c->deadline > 0 && now >= c->deadline) {
        stop = WORKER_STOP_TIMEOUT;
        atomic_store(&c->stop, stop);
    }
    s_unlock(&p->mu);

    bool ok = false;
    if (error[0]) {
        /* the worker's own failure, said above */
    } else if (stop != WORKER_STOP_NONE) {
        s_stop_text(error, S_ERROR_MAX, stop, c->timeout_ms);
    } else if (rc != 0) {
        s_lock(&s->pmu);
        if (c->error[0])
            memcpy(error, c->error, S_ERROR_MAX);
        else
            snprintf(error, S_ERROR_MAX, "%s failed", s->handler->type);
        s_unlock(&s->pmu);
    } else {
        ok = true;
    }
    size_t result_size = value.size + (ok && c->nrecs ? c->recs.size : 0);
    if ((int64_t)result_size > s->max_result) {
        snprintf(error, S_ERROR_MAX, "%s: result is %zu bytes, over the limit max-frame=%" PRId64, s->handler->type,
                 result_size, s->max_result);
        ok = false;
        msgpack_sbuffer_clear(&value);
    }
    bool cancelled = stop == WORKER_STOP_CANCEL;
    if (!s_pack_result(s, ok, cancelled, &value, error, finished_ms)) {
        /* The handler packed zero or several values, or memory ran out. */
        snprintf(error, S_ERROR_MAX, "%s: the handler did not pack exactly one result value", s->handler->type);
        ok = false;
        if (!s_pack_result(s, false, cancelled, NULL, error, finished_ms))
            msgpack_sbuffer_clear(&s->out);
    }
    msgpack_sbuffer_destroy(&value);
    if (ok)
        error[0] = '\0';
    *ok_out = ok;
    *cancelled_out = cancelled;
}

/* Take the slot's pending progress update, if any. Under mu. */
static bool s_progress_take(worker_slot_t *s, int64_t now, bool force, worker_progress_t *out, int64_t *due) {
    *due = 0;
    s_lock(&s->pmu);
    if (!s->p_has) {
        s_unlock(&s->pmu);
        return false;
    }
    if (!force && s->p_pct != 100 && s->p_last > 0 && now < s->p_last + WORKER_PROGRESS_MIN_MS) {
        *due = s->p_last + WORKER_PROGRESS_MIN_MS;
        s_unlock(&s->pmu);
        return false;
    }
    out->task = s->task;
    out->attempt = s->attempt;
    out->pct = s->p_pct;
    out->has_msg = s->p_has_msg;
    memcpy(out->msg, s->p_msg, sizeof out->msg);
    s->p_has = s->p_poked = false;
    s->p_last = now;
    s_unlock(&s->pmu);
    return true;
}

static void *s_thread(void *arg) {
    worker_slot_t *s = arg;
    worker_pool_t *p = s->pool;
    s_lock(&p->mu);
    for (;;) {
        while (!p->quit && !(p->open && p->qhead))
            s_check(pthread_cond_wait(&p->cv, &p->mu), "pthread_cond_wait");
        if (p->quit)
            break;
        worker_event_t *start;
        s_task_t *t = s_take(s, &start);
        bool wake = start && s_event_put(p, start);
        s_unlock(&p->mu);
        if (wake)
            s_signal_fd(p->wake_fd, "wake");

        bool ok, cancelled;
        char error[S_ERROR_MAX];
        s_run(s, t, &ok, &cancelled, error);
        free(t->raw);
        free(t);

        worker_event_t *r = calloc(1, sizeof *r);
        s_lock(&p->mu);
        if (r) {
            *r = (worker_event_t){.kind = WORKER_EV_RESULT, .slot = s->index, .task = s->task,
                                  .attempt = s->attempt, .started_ms = s->started_ms, .ok = ok,
                                  .cancelled = cancelled, .duration_ms = farm_mono_ms() - s->started_mono};
            memcpy(r->error, error, sizeof r->error);
            r->len = s->out.size;
            r->msg = r->len ? msgpack_sbuffer_release(&s->out) : NULL;
            int64_t due;
            r->has_progress = s_progress_take(s, 0, true, &r->progress, &due);
            wake = s_event_put(p, r);
        } else {
            /* Out of memory: the result stays unsent; the ventilator
             * releases the task when this worker stops reporting it. */
            farm_log(FARM_LOG_ERROR, "worker", "event=result-lost task=%" PRId64 " err=\"out of memory\"", s->task);
            msgpack_sbuffer_clear(&s->out);
            s_ids_del(&p->ids, s->task);
            wake = false;
        }
        if (atomic_load(&s->ctx.stop) != WORKER_STOP_NONE) {
            s_reset_fd(s->ctx.stop_fd);
            atomic_store(&s->ctx.stop, WORKER_STOP_NONE);
        }
        s->phase = S_IDLE;
        s->task = s->attempt = s->deadline = 0;
        s->stopping = false;
        if (wake) {
            s_unlock(&p->mu);
            s_signal_fd(p->wake_fd, "wake");
            s_lock(&p->mu);
        }
    }
    s_unlock(&p->mu);
    return NULL;
}

/* ---- the main thread's side --------------------------------------------- */

static void s_slot_fini(worker_slot_t *s) {
    pthread_mutex_destroy(&s->pmu);
    if (s->ctx.stop_fd >= 0)
        close(s->ctx.stop_fd);
    msgpack_sbuffer_destroy(&s->out);
    msgpack_sbuffer_destroy(&s->ctx.recs);
}

static int s_slot_init(worker_pool_t *p, worker_slot_t *s, int index, const char *worker) {
    s->index = index;
    s->pool = p;
    s->worker = worker;
    s->wake_fd = p->wake_fd;
    farm_limits_t lim;
    farm_limits_default(&lim);
    s->max_result = lim.max_frame - 64 * 1024; /* room for the rest of the message */
    s->ctx.slot = s;
    msgpack_sbuffer_init(&s->out);
    msgpack_sbuffer_init(&s->ctx.recs);
    s->ctx.stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->ctx.stop_fd < 0) {
        farm_log(FARM_LOG_ERROR, "worker", "event=slot-new slot=%d op=eventfd err=\"%s\"", index, strerror(errno));
        return -1;
    }
    int rc = pthread_mutex_init(&s->pmu, NULL);
    if (rc != 0) {
        farm_log(FARM_LOG_ERROR, "worker", "event=slot-new slot=%d op=pthread_init err=\"%s\"", index, strerror(rc));
        close(s->ctx.stop_fd);
        s->ctx.stop_fd = -1;
        return -1;
    }
    return 0;
}

worker_pool_t *worker_pool_new(int slots, const char *worker, int wake_fd) {
    worker_pool_t *p = calloc(1, sizeof *p);
    worker_slot_t *ss = p && slots > 0 ? calloc((size_t)slots, sizeof *ss) : NULL;
    if (!ss) {
        farm_log(FARM_LOG_ERROR, "worker", "event=pool-new err=\"out of memory\"");
        free(p);
        return NULL;
    }
    p->slots = ss;
    p->wake_fd = wake_fd;
    p->open = true;
    int rc = pthread_mutex_init(&p->mu, NULL);
    if (rc == 0 && (rc = pthread_cond_init(&p->cv, NULL)) != 0)
        pthread_mutex_destroy(&p->mu);
    if (rc != 0) {
        farm_log(FARM_LOG_ERROR, "worker", "event=pool-new op=pthread_init err=\"%s\"", strerror(rc));
        free(ss);
        free(p);
        return NULL;
    }
    for (int i = 0; i < slots; i++) {
        if (s_slot_init(p, &ss[i], i, worker)) {
            worker_pool_destroy(&p);
            return NULL;
        }
        p->nslots = i + 1;
        /* The thread starts with every signal blocked: SIGTERM and SIGINT
         * are the main thread's business, and handlers must not be
         * interrupted by them. Children spawned by exec reset their mask. */
        sigset_t all, old;
        sigfillset(&all);
        rc = pthread_sigmask(SIG_SETMASK, &all, &old);
        if (rc == 0) {
            rc = pthread_create(&ss[i].thread, NULL, s_thread, &ss[i]);
            s_check(pthread_sigmask(SIG_SETMASK, &old, NULL), "pthread_sigmask");
        }
        if (rc != 0) {
            farm_log(FARM_LOG_ERROR, "worker", "event=slot-new slot=%d op=pthread_create err=\"%s\"", i, strerror(rc));
            worker_pool_destroy(&p);
            return NULL;
        }
        ss[i].started = true;
    }
    return p;
}

/* Deliver a stop to slot s if it runs `task` (0: whatever it runs) and
 * was not stopped yet. Under mu. */
static bool s_stop(worker_slot_t *s, int64_t task, worker_stop_t why) {
    if (s->phase != S_RUNNING || s->stopping || (task && s->task != task))
        return false;
    s->stopping = true;
    if (atomic_load(&s->ctx.stop) != WORKER_STOP_NONE)
        return false;
    atomic_store(&s->ctx.stop, why);
    s_signal_fd(s->ctx.stop_fd, "stop");
    return true;
}

void worker_pool_destroy(worker_pool_t **pp) {
    if (!pp || !*pp)
        return;
    worker_pool_t *p = *pp;
    s_lock(&p->mu);
    for (int i = 0; i < p->nslots; i++)
        (void)s_stop(&p->slots[i], 0, WORKER_STOP_DRAIN);
    p->quit = true;
    s_check(pthread_cond_broadcast(&p->cv), "pthread_cond_broadcast");
    s_unlock(&p->mu);
    for (int i = 0; i < p->nslots; i++) {
        if (p->slots[i].started)
            s_check(pthread_join(p->slots[i].thread, NULL), "pthread_join");
        s_slot_fini(&p->slots[i]);
    }
    while (p->qhead) {
        s_task_t *t = p->qhead;
        p->qhead = t->next;
        free(t->raw);
        free(t);
    }
    worker_events_free(p->ehead);
    free(p->ids.keys);
    free(p->ids.used);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->slots);
    free(p);
    *pp = NULL;
}

int worker_pool_push(worker_pool_t *p, const farm_msg_task_t *t, const farm_handler_t *h, const void *raw,
                     size_t len) {
    s_task_t *q = calloc(1, sizeof *q);
    char *copy = q ? malloc(len ? len : 1) : NULL;
    if (!copy) {
        free(q);
        return -ENOMEM;
    }
    memcpy(copy, raw, len);
    *q = (s_task_t){.raw = copy, .len = len, .id = t->id, .job = t->job, .attempt = t->attempt,
                    .priority = t->priority, .timeout_ms = t->timeout_ms, .h = h};
    s_lock(&p->mu);
    if (s_ids_add(&p->ids, q->id)) {
        s_unlock(&p->mu);
        free(copy);
        free(q);
        return -ENOMEM;
    }
    /* In dispatch order: higher priority first, then submission order. The
     * ventilator sends in that order, so the place is nearly always the tail. */
    s_task_t *after = p->qtail;
    while (after && (after->priority < q->priority || (after->priority == q->priority && after->id > q->id)))
        after = after->prev;
    q->prev = after;
    q->next = after ? after->next : p->qhead;
    if (q->next)
        q->next->prev = q;
    else
        p->qtail = q;
    if (after)
        after->next = q;
    else
        p->qhead = q;
    p->nqueued++;
    s_check(pthread_cond_signal(&p->cv), "pthread_cond_signal");
    s_unlock(&p->mu);
    return 0;
}

void worker_pool_counts(worker_pool_t *p, int64_t *busy, int64_t *queued) {
    s_lock(&p->mu);
    int64_t n = 0;
    for (int i = 0; i < p->nslots; i++)
        n += p->slots[i].phase != S_IDLE;
    /* A result the main thread has not taken yet is still work in hand:
     * a drain that saw nothing busy would exit without it. */
    *busy = n + p->nresults;
    *queued = p->nqueued;
    s_unlock(&p->mu);
}

bool worker_pool_has(worker_pool_t *p, int64_t task) {
    s_lock(&p->mu);
    bool has = s_ids_has(&p->ids, task);
    s_unlock(&p->mu);
    return has;
}

size_t worker_pool_held(worker_pool_t *p, int64_t *ids, size_t max) {
    size_t n = 0;
    s_lock(&p->mu);
    for (int i = 0; i < p->nslots; i++)
        if (p->slots[i].phase != S_IDLE && n++ < max)
            ids[n - 1] = p->slots[i].task;
    for (const s_task_t *t = p->qhead; t; t = t->next)
        if (n++ < max)
            ids[n - 1] = t->id;
    /* Finished, but the main thread has not taken the result yet: still
     * held (a heartbeat that left them out would have the ventilator
     * release a task whose result is on its way). */
    for (const worker_event_t *e = p->ehead; e; e = e->next)
        if (e->kind == WORKER_EV_RESULT && n++ < max)
            ids[n - 1] = e->task;
    s_unlock(&p->mu);
    return n;
}

void worker_pool_set_open(worker_pool_t *p, bool open) {
    s_lock(&p->mu);
    p->open = open;
    if (open)
        s_check(pthread_cond_broadcast(&p->cv), "pthread_cond_broadcast");
    s_unlock(&p->mu);
}

/* Unlink t from the queue. Under mu. */
static void s_unlink(worker_pool_t *p, s_task_t *t) {
    if (t->prev)
        t->prev->next = t->next;
    else
        p->qhead = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        p->qtail = t->prev;
    p->nqueued--;
}

size_t worker_pool_take_back(worker_pool_t *p, size_t n, int64_t *ids, int64_t *attempts) {
    size_t k = 0;
    s_lock(&p->mu);
    while (k < n && p->qtail) {
        s_task_t *t = p->qtail;
        s_unlink(p, t);
        s_ids_del(&p->ids, t->id);
        ids[k] = t->id;
        attempts[k++] = t->attempt;
        free(t->raw);
        free(t);
    }
    s_unlock(&p->mu);
    return k;
}

int worker_pool_cancel(worker_pool_t *p, int64_t task, int64_t *attempt) {
    int rc = 0;
    s_lock(&p->mu);
    for (s_task_t *t = p->qhead; t; t = t->next)
        if (t->id == task) {
            s_unlink(p, t);
            s_ids_del(&p->ids, t->id);
            *attempt = t->attempt;
            free(t->raw);
            free(t);
            rc = 1;
            break;
        }
    for (int i = 0; !rc && i < p->nslots; i++) {
        worker_slot_t *s = &p->slots[i];
        if (s->phase != S_IDLE && s->task == task)
            rc = s_stop(s, task, WORKER_STOP_CANCEL) ? 2 : 3;
    }
    s_unlock(&p->mu);
    return rc;
}

int worker_pool_timeouts(worker_pool_t *p, int64_t now) {
    int n = 0;
    s_lock(&p->mu);
    for (int i = 0; i < p->nslots; i++) {
        worker_slot_t *s = &p->slots[i];
        if (s->phase == S_RUNNING && !s->stopping && s->deadline > 0 && now >= s->deadline) {
            int64_t task = s->task;
            if (s_stop(s, task, WORKER_STOP_TIMEOUT)) {
                n++;
                farm_log(FARM_LOG_INFO, "worker", "event=timeout task=%" PRId64 " slot=%d", task, i);
            }
        }
    }
    s_unlock(&p->mu);
    return n;
}

int64_t worker_pool_next_deadline(worker_pool_t *p) {
    int64_t next = 0;
    s_lock(&p->mu);
    for (int i = 0; i < p->nslots; i++) {
        const worker_slot_t *s = &p->slots[i];
        if (s->phase == S_RUNNING && !s->stopping && s->deadline > 0 && (next == 0 || s->deadline < next))
            next = s->deadline;
    }
    s_unlock(&p->mu);
    return next;
}

int worker_pool_stop_all(worker_pool_t *p, worker_stop_t why) {
    int n = 0;
    s_lock(&p->mu);
    for (int i = 0; i < p->nslots; i++)
        n += s_stop(&p->slots[i], 0, why);
    s_unlock(&p->mu);
    return n;
}

size_t worker_pool_progress(worker_pool_t *p, int64_t now, bool force, worker_progress_t *out, size_t max,
                            int64_t *due) {
    size_t n = 0;
    *due = 0;
    s_lock(&p->mu);
    for (int i = 0; i < p->nslots && n < max; i++) {
        worker_slot_t *s = &p->slots[i];
        if (s->phase != S_RUNNING)
            continue;
        int64_t d;
        if (s_progress_take(s, now, force, &out[n], &d))
            n++;
        else if (d > 0 && (*due == 0 || d < *due))
            *due = d;
    }
    s_unlock(&p->mu);
    return n;
}

worker_event_t *worker_pool_events(worker_pool_t *p) {
    s_lock(&p->mu);
    worker_event_t *e = p->ehead;
    p->ehead = p->etail = NULL;
    p->nresults = 0;
    /* Taken results leave the pool: they are the main thread's now. */
    for (const worker_event_t *x = e; x; x = x->next)
        if (x->kind == WORKER_EV_RESULT)
            s_ids_del(&p->ids, x->task);
    s_unlock(&p->mu);
    return e;
}

void worker_events_free(worker_event_t *e) {
    while (e) {
        worker_event_t *next = e->next;
        free(e->msg);
        free(e);
        e = next;
    }
}
