/* worker_slot: slot threads and the task context of farm_plugin.h (see
 * worker_slot.h).
 *
 * Locking: `mu` guards the phase and the hand-over of a task and of its
 * outcome; `pmu` guards the progress mailbox and the handler's error text,
 * which a handler may write from any of its threads. The stop reason is an
 * atomic so that farm_task_stopping() is a plain load; it is only ever set
 * under `mu` while the handler runs, and read under `mu` once it returns,
 * so the outcome and a late stop cannot disagree. Fields marked "main" are
 * touched by the main thread only.
 *
 * The slot thread packs the whole "result" message itself and checks it by
 * decoding it again: a handler that packed zero or several values, or ran
 * the packer out of memory, is caught here, on its own thread, and reported
 * as a failure instead of sending the sink a malformed message.
 *
 * Records (farm_task_record) are packed as they come into one buffer that
 * starts with a 5-byte array32 header, patched with the count when the
 * result is packed, so the list goes into the message without a copy. They
 * are under `pmu` like the rest of what a handler's threads may write, and
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

#define S_ERROR_MAX 1024 /* bytes of an error text, NUL included */
#define S_TIMEOUT_MAX_MS (100LL * 365 * 24 * 3600 * 1000) /* longer timeouts are ignored */
#define S_RECS_HEADER 5 /* bytes of the array32 header at the front of the records buffer */
#define S_RECS_KEEP (1024 * 1024) /* a records buffer larger than this is freed between tasks */
_Static_assert(FARM_TASK_RECORDS_MAX == FARM_RESULT_RECORDS_MAX, "record limits of the plugin API and the wire must agree");
_Static_assert(sizeof(((worker_slot_result_t *)0)->error) == S_ERROR_MAX, "error buffers must agree");

typedef enum {
    S_IDLE,      /* no task */
    S_ASSIGNED,  /* a task is waiting for the thread */
    S_RUNNING,   /* the handler runs */
    S_FINISHING, /* the handler returned; the outcome is being packed */
    S_DONE,      /* the outcome waits to be collected */
} s_phase_t;

struct farm_task_ctx {
    worker_slot_t *slot;     /* the slot running the task */
    int64_t id, job, attempt;
    int64_t timeout_ms;      /* as submitted, 0 none */
    int64_t deadline;        /* monotonic ms, 0 none */
    _Atomic int stop;        /* a worker_stop_t; set under slot->mu while running */
    int stop_fd;             /* eventfd, readable once stopped; reset when collected */
    void *ud;                /* the handler's ud */
    char error[S_ERROR_MAX]; /* farm_task_fail() text, under slot->pmu; "" none */
    msgpack_sbuffer recs;    /* farm_task_record()s, under slot->pmu: header + [idx, bin] pairs */
    size_t nrecs;            /* records in recs */
};

struct worker_slot {
    int index;                  /* for logs */
    const char *worker;         /* the worker's name, borrowed */
    int wake_fd;                /* the main thread's eventfd, borrowed */
    int64_t max_result;         /* bytes a packed result value may have (max_frame less headroom) */
    pthread_t thread;           /* the slot thread */
    pthread_mutex_t mu;         /* guards phase, quit and the hand-over fields */
    pthread_cond_t cv;          /* signalled on assignment and quit */
    s_phase_t phase;            /* see s_phase_t */
    bool quit;                  /* the thread must exit once idle */
    /* the task, written by main while idle, read by the thread once assigned */
    const farm_handler_t *handler; /* borrowed from the registry */
    msgpack_sbuffer args;       /* the task's args, packed (nil when absent) */
    int64_t started_ms;         /* wall time of the assignment */
    int64_t assigned_mono;      /* monotonic time of the assignment */
    farm_task_ctx_t ctx;        /* what the handler sees */
    /* the outcome, written by the thread before S_DONE */
    msgpack_sbuffer out;        /* the packed "result" message */
    bool out_ok, out_cancelled; /* what it says */
    char out_error[S_ERROR_MAX]; /* its error, for the log */
    int64_t out_mono;           /* monotonic time the handler returned */
    /* main */
    int64_t held_task, held_attempt; /* the task held, 0 when idle */
    int64_t held_deadline;      /* its deadline, 0 none */
    bool stopping;              /* a stop was delivered */
    /* progress mailbox, under pmu */
    pthread_mutex_t pmu;
    bool p_has;                 /* an update waits */
    int p_pct;                  /* its percentage */
    bool p_has_msg;             /* it has a message */
    char p_msg[WORKER_PROGRESS_MSG_MAX + 1]; /* the message */
    bool p_poked;               /* the wake fd was written for it and the update not taken yet */
    int64_t p_last;             /* monotonic time the last update was taken, 0 none yet */
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

/* ---- the slot thread ---------------------------------------------------- */

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

/* Run the assigned task and leave its outcome in the slot. */
static void s_run(worker_slot_t *s) {
    farm_task_ctx_t *c = &s->ctx;
    char error[S_ERROR_MAX] = "";
    msgpack_sbuffer value;
    msgpack_sbuffer_init(&value);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &value, msgpack_sbuffer_write);
    msgpack_zone zone;
    bool zone_ok = msgpack_zone_init(&zone, 4096);
    msgpack_object args = {.type = MSGPACK_OBJECT_NIL};
    farm_error_t e;
    int rc = -1;
    if (!zone_ok)
        snprintf(error, sizeof error, "worker out of memory");
    else if (farm_msg_unpack(s->args.data, s->args.size, &zone, &args, &e) != 0)
        snprintf(error, sizeof error, "worker cannot read the task's args: %s", e.message);
    else
        rc = s->handler->run(c, &args, &pk);
    if (zone_ok)
        msgpack_zone_destroy(&zone);

    int64_t finished_ms = farm_now_ms();
    int64_t now = farm_mono_ms();
    s_lock(&s->mu);
    s->phase = S_FINISHING;
    worker_stop_t stop = (worker_stop_t)atomic_load(&c->stop);
    if (stop == WORKER_STOP_NONE && c->deadline > 0 && now >= c->deadline) {
        stop = WORKER_STOP_TIMEOUT;
        atomic_store(&c->stop, stop);
    }
    s_unlock(&s->mu);

    bool ok = false;
    if (error[0]) {
        /* the worker's own failure, said above */
    } else if (stop != WORKER_STOP_NONE) {
        s_stop_text(error, sizeof error, stop, c->timeout_ms);
    } else if (rc != 0) {
        s_lock(&s->pmu);
        if (c->error[0])
            memcpy(error, c->error, sizeof error);
        else
            snprintf(error, sizeof error, "%s failed", s->handler->type);
        s_unlock(&s->pmu);
    } else {
        ok = true;
    }
    size_t result_size = value.size + (ok && c->nrecs ? c->recs.size : 0);
    if ((int64_t)result_size > s->max_result) {
        snprintf(error, sizeof error, "%s: result is %zu bytes, over the limit max-frame=%" PRId64,
                 s->handler->type, result_size, s->max_result);
        ok = false;
        msgpack_sbuffer_clear(&value);
    }
    bool cancelled = stop == WORKER_STOP_CANCEL;
    if (!s_pack_result(s, ok, cancelled, &value, error, finished_ms)) {
        /* The handler packed zero or several values, or memory ran out. */
        snprintf(error, sizeof error, "%s: the handler did not pack exactly one result value", s->handler->type);
        ok = false;
        if (!s_pack_result(s, false, cancelled, NULL, error, finished_ms))
            msgpack_sbuffer_clear(&s->out);
    }
    msgpack_sbuffer_destroy(&value);
    s->out_ok = ok;
    s->out_cancelled = cancelled;
    memcpy(s->out_error, ok ? "" : error, ok ? 1 : sizeof error);
    s->out_mono = now;
}

static void *s_thread(void *arg) {
    worker_slot_t *s = arg;
    for (;;) {
        s_lock(&s->mu);
        while (!s->quit && s->phase != S_ASSIGNED)
            s_check(pthread_cond_wait(&s->cv, &s->mu), "pthread_cond_wait");
        if (s->phase != S_ASSIGNED) {
            s_unlock(&s->mu);
            break;
        }
        s->phase = S_RUNNING;
        s_unlock(&s->mu);
        s_run(s);
        s_lock(&s->mu);
        s->phase = S_DONE;
        s_unlock(&s->mu);
        s_signal_fd(s->wake_fd, "wake");
    }
    return NULL;
}

/* ---- the main thread's side --------------------------------------------- */

worker_slot_t *worker_slot_new(int index, const char *worker, int wake_fd) {
    worker_slot_t *s = calloc(1, sizeof *s);
    if (!s) {
        farm_log(FARM_LOG_ERROR, "worker", "event=slot-new slot=%d err=\"out of memory\"", index);
        return NULL;
    }
    s->index = index;
    s->worker = worker;
    s->wake_fd = wake_fd;
    farm_limits_t lim;
    farm_limits_default(&lim);
    s->max_result = lim.max_frame - 64 * 1024; /* room for the rest of the message */
    s->ctx.slot = s;
    msgpack_sbuffer_init(&s->args);
    msgpack_sbuffer_init(&s->out);
    msgpack_sbuffer_init(&s->ctx.recs);
    s->ctx.stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->ctx.stop_fd < 0) {
        farm_log(FARM_LOG_ERROR, "worker", "event=slot-new slot=%d op=eventfd err=\"%s\"", index, strerror(errno));
        free(s);
        return NULL;
    }
    int rc = pthread_mutex_init(&s->mu, NULL);
    if (rc == 0 && (rc = pthread_mutex_init(&s->pmu, NULL)) != 0)
        pthread_mutex_destroy(&s->mu);
    if (rc == 0 && (rc = pthread_cond_init(&s->cv, NULL)) != 0) {
        pthread_mutex_destroy(&s->pmu);
        pthread_mutex_destroy(&s->mu);
    }
    if (rc != 0) {
        farm_log(FARM_LOG_ERROR, "worker", "event=slot-new slot=%d op=pthread_init err=\"%s\"", index, strerror(rc));
        close(s->ctx.stop_fd);
        free(s);
        return NULL;
    }
    /* The thread starts with every signal blocked: SIGTERM and SIGINT are
     * the main thread's business, and handlers must not be interrupted by
     * them. Children spawned by exec reset their mask. */
    sigset_t all, old;
    sigfillset(&all);
    rc = pthread_sigmask(SIG_SETMASK, &all, &old);
    if (rc == 0) {
        rc = pthread_create(&s->thread, NULL, s_thread, s);
        s_check(pthread_sigmask(SIG_SETMASK, &old, NULL), "pthread_sigmask");
    }
    if (rc != 0) {
        farm_log(FARM_LOG_ERROR, "worker", "event=slot-new slot=%d op=pthread_create err=\"%s\"", index,
                 strerror(rc));
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->pmu);
        pthread_mutex_destroy(&s->mu);
        close(s->ctx.stop_fd);
        free(s);
        return NULL;
    }
    return s;
}

void worker_slot_destroy(worker_slot_t **p) {
    if (!p || !*p)
        return;
    worker_slot_t *s = *p;
    worker_slot_stop(s, WORKER_STOP_DRAIN);
    s_lock(&s->mu);
    s->quit = true;
    s_check(pthread_cond_signal(&s->cv), "pthread_cond_signal");
    s_unlock(&s->mu);
    s_check(pthread_join(s->thread, NULL), "pthread_join");
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->pmu);
    pthread_mutex_destroy(&s->mu);
    close(s->ctx.stop_fd);
    msgpack_sbuffer_destroy(&s->args);
    msgpack_sbuffer_destroy(&s->out);
    msgpack_sbuffer_destroy(&s->ctx.recs);
    free(s);
    *p = NULL;
}

int worker_slot_assign(worker_slot_t *s, const farm_handler_t *h, const farm_msg_task_t *t, int64_t now_wall,
                       int64_t now_mono) {
    if (s->held_task != 0)
        return -EBUSY;
    /* The slot is idle: its thread touches nothing but the phase now. */
    msgpack_sbuffer_clear(&s->args);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &s->args, msgpack_sbuffer_write);
    int rc = t->args ? msgpack_pack_object(&pk, *t->args) : msgpack_pack_nil(&pk);
    if (rc != 0)
        return -ENOMEM;
    farm_task_ctx_t *c = &s->ctx;
    c->id = t->id;
    c->job = t->job;
    c->attempt = t->attempt;
    c->timeout_ms = t->timeout_ms;
    /* The wire allows any int64; beyond a century a timeout means none and
     * could only overflow the clock arithmetic. */
    c->deadline = t->timeout_ms > 0 && t->timeout_ms <= S_TIMEOUT_MAX_MS ? now_mono + t->timeout_ms : 0;
    c->ud = h->ud;
    c->error[0] = '\0';
    atomic_store(&c->stop, WORKER_STOP_NONE);
    s->handler = h;
    s->started_ms = now_wall;
    s->assigned_mono = now_mono;
    s->held_task = t->id;
    s->held_attempt = t->attempt;
    s->held_deadline = c->deadline;
    s->stopping = false;
    s_lock(&s->pmu);
    s->p_has = s->p_poked = false;
    s->p_last = 0;
    bool recs_ok = s_recs_reset(c);
    s_unlock(&s->pmu);
    if (!recs_ok) {
        s->held_task = s->held_attempt = s->held_deadline = 0;
        return -ENOMEM;
    }
    s_lock(&s->mu);
    s->phase = S_ASSIGNED;
    s_check(pthread_cond_signal(&s->cv), "pthread_cond_signal");
    s_unlock(&s->mu);
    return 0;
}

int64_t worker_slot_task(const worker_slot_t *s) { return s->held_task; }

int64_t worker_slot_deadline(const worker_slot_t *s) {
    return s->held_task && !s->stopping ? s->held_deadline : 0;
}

bool worker_slot_stop(worker_slot_t *s, worker_stop_t why) {
    if (why == WORKER_STOP_NONE || s->held_task == 0 || s->stopping)
        return false;
    bool delivered = false;
    s_lock(&s->mu);
    if ((s->phase == S_ASSIGNED || s->phase == S_RUNNING) && atomic_load(&s->ctx.stop) == WORKER_STOP_NONE) {
        atomic_store(&s->ctx.stop, why);
        s_signal_fd(s->ctx.stop_fd, "stop");
        delivered = true;
    }
    s_unlock(&s->mu);
    /* Delivered or not, there is nothing more to tell this task. */
    s->stopping = true;
    return delivered;
}

bool worker_slot_progress_take(worker_slot_t *s, int64_t now_mono, bool force, worker_progress_t *p,
                               int64_t *due) {
    *due = 0;
    if (s->held_task == 0)
        return false;
    s_lock(&s->pmu);
    if (!s->p_has) {
        s_unlock(&s->pmu);
        return false;
    }
    if (!force && s->p_pct != 100 && s->p_last > 0 && now_mono < s->p_last + WORKER_PROGRESS_MIN_MS) {
        *due = s->p_last + WORKER_PROGRESS_MIN_MS;
        s_unlock(&s->pmu);
        return false;
    }
    p->task = s->held_task;
    p->attempt = s->held_attempt;
    p->pct = s->p_pct;
    p->has_msg = s->p_has_msg;
    memcpy(p->msg, s->p_msg, sizeof p->msg);
    s->p_has = s->p_poked = false;
    s->p_last = now_mono;
    s_unlock(&s->pmu);
    return true;
}

bool worker_slot_collect(worker_slot_t *s, worker_slot_result_t *r) {
    if (s->held_task == 0)
        return false;
    s_lock(&s->mu);
    bool done = s->phase == S_DONE;
    s_unlock(&s->mu);
    if (!done)
        return false;
    /* Done: the thread waits for the next assignment and touches nothing. */
    int64_t due;
    r->has_progress = worker_slot_progress_take(s, 0, true, &r->progress, &due);
    r->task = s->held_task;
    r->attempt = s->held_attempt;
    r->ok = s->out_ok;
    r->cancelled = s->out_cancelled;
    memcpy(r->error, s->out_error, sizeof r->error);
    r->duration_ms = s->out_mono - s->assigned_mono;
    r->len = s->out.size;
    r->msg = r->len ? msgpack_sbuffer_release(&s->out) : NULL;
    s_reset_fd(s->ctx.stop_fd);
    atomic_store(&s->ctx.stop, WORKER_STOP_NONE);
    s->held_task = s->held_attempt = s->held_deadline = 0;
    s->stopping = false;
    s_lock(&s->mu);
    s->phase = S_IDLE;
    s_unlock(&s->mu);
    return true;
}
