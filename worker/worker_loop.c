/* worker_loop: the poll loop, credit, drain (see worker_loop.h).
 *
 * The loop keeps everything in one struct owned by the main thread. Tasks
 * go to the slot pool's queue as they come; the slots take them from there
 * on their own and leave events (started, finished) that the loop takes
 * when the wake fd says there are some. What the loop sends in one turn
 * leaves together at its end (worker_outbox_flush), several messages to a
 * frame.
 */
#include "worker_loop.h"

#include "farm_err.h"
#include "farm_log.h"
#include "farm_proto.h"
#include "farm_time.h"
#include "worker_link.h"
#include "worker_outbox.h"
#include "worker_slot.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define S_RESEND_MS 3000       /* a result not acknowledged this long is sent again */
#define S_RESEND_TICK_MS 200   /* resends run at most once per tick ... */
#define S_RESEND_BURST 1000    /* ... and send at most this many */
#define S_NOTES_MAX 10000      /* start/prog messages queued while the sink is away */
#define S_ACK_WAIT_MS 5000     /* drain: how long to wait for the last acks */
#define S_STUCK_MS 5000        /* drain: a stopped task not back after kill grace + this is given up */
#define S_ABORT_WAIT_MS 200    /* abort: time for slots to pass the stop on to their children */
#define S_VENT_BATCH 1000      /* ventilator messages handled per turn */
#define S_HB_RETRY_MS 100      /* heartbeat retry while no ventilator is connected */

typedef enum {
    S_RUN,           /* taking tasks */
    S_DRAIN_FINISH,  /* draining: running tasks may finish until `until` */
    S_DRAIN_STOP,    /* draining: tasks told to stop, waiting for them until `until` */
    S_DRAIN_ACKS,    /* draining: all slots idle, waiting for acks until `until` */
} s_phase_t;

typedef struct {
    const worker_config_t *cfg;  /* borrowed */
    const worker_registry_t *reg; /* borrowed */
    worker_link_t *link;         /* the sockets */
    worker_outbox_t *outbox;     /* what the sink is owed */
    worker_pool_t *pool;         /* the slots and the tasks waiting for them */
    int64_t prog_due;            /* when a rate-limited progress update may go, 0 none */
    int wake_fd;                 /* eventfd the slots poke */
    int sig_fd;                  /* signal pipe, borrowed */
    int64_t epoch, seq;          /* the ventilator's epoch and the last task seq seen in it */
    int64_t completed, failed;   /* attempts finished since start */
    int64_t adv_free;            /* the free count the ventilator believes */
    int64_t next_hb;             /* monotonic time of the next heartbeat */
    bool vent_up;                /* the last message to the ventilator left (for logging changes only) */
    s_phase_t phase;             /* see s_phase_t */
    int64_t until;               /* end of the current drain phase */
    int signals;                 /* SIGTERM/SIGINT received */
    int64_t *held;               /* scratch for heartbeats */
    size_t held_cap;             /* entries allocated at held */
} s_loop_t;

/* ---- small helpers ------------------------------------------------------ */

/* Where the worker stands: slots busy, tasks waiting, what it can take
 * and what is idle. */
typedef struct {
    int64_t busy, queued; /* slots running a task; tasks waiting for one */
    int64_t free;         /* tasks it can take now: idle slots plus room in the prefetch queue, bounded by
                             the results it may still hold for the sink */
    int64_t idle;         /* slots with nothing to run and nothing waiting for them */
} s_load_t;

static s_load_t s_load(const s_loop_t *l) {
    s_load_t d = {0};
    worker_pool_counts(l->pool, &d.busy, &d.queued);
    if (l->phase != S_RUN)
        return d;
    int64_t take = l->cfg->slots - d.busy + l->cfg->prefetch - d.queued;
    int64_t room = l->cfg->max_unacked - (int64_t)worker_outbox_count(l->outbox) - d.busy - d.queued;
    int64_t f = take < room ? take : room;
    d.free = f > 0 ? f : 0;
    int64_t idle = l->cfg->slots - d.busy - d.queued;
    d.idle = idle > 0 ? idle : 0;
    return d;
}

/* Send to the ventilator; returns true when the message left. A message
 * that cannot leave is dropped: the next heartbeat says it all again. */
static bool s_send_vent(s_loop_t *l, msgpack_sbuffer *b, const char *what) {
    int rc = worker_link_send_vent(l->link, b->data, b->size);
    if (rc == 0 && !l->vent_up)
        farm_log(FARM_LOG_INFO, "worker", "event=ventilator-reachable endpoint=%s", l->cfg->ep.dispatch);
    else if (rc == -EAGAIN && l->vent_up)
        farm_log(FARM_LOG_WARN, "worker", "event=ventilator-unreachable endpoint=%s msg=%s", l->cfg->ep.dispatch,
                 what);
    else if (rc < 0 && rc != -EAGAIN)
        farm_log(FARM_LOG_WARN, "worker", "event=send-failed to=ventilator msg=%s err=\"%s\"", what,
                 zmq_strerror(-rc));
    l->vent_up = rc == 0;
    return rc == 0;
}

static void s_send_hb(s_loop_t *l, int64_t now) {
    s_load_t d = s_load(l);
    /* What the pool holds can change under us: ask, grow, ask again. */
    size_t nheld = 0;
    for (int tries = 0; tries < 4; tries++) {
        size_t need = worker_outbox_count(l->outbox);
        nheld = worker_pool_held(l->pool, l->held, l->held_cap);
        need += nheld;
        if (nheld <= l->held_cap && need <= l->held_cap)
            break;
        int64_t *p = realloc(l->held, (need + 64) * sizeof *p);
        if (!p)
            break;
        l->held = p;
        l->held_cap = need + 64;
    }
    if (nheld > l->held_cap)
        nheld = l->held_cap;
    nheld += worker_outbox_held(l->outbox, l->held + nheld, l->held_cap - nheld);

    const char *state = l->phase == S_RUN ? "alive" : "draining";
    farm_msg_hb_t m = {
        .id = {l->cfg->name, (uint32_t)strlen(l->cfg->name)},
        .host = {l->cfg->host, (uint32_t)strlen(l->cfg->host)},
        .pid = getpid(),
        .slots = l->cfg->slots,
        .free = d.free,
        .epoch = l->epoch,
        .seq = l->seq,
        .state = {state, (uint32_t)strlen(state)},
        .completed = l->completed,
        .failed = l->failed,
        .idle = d.idle,
        .queued = d.queued,
    };
    size_t ntypes;
    const char *const *types = worker_registry_types(l->reg, &ntypes);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    farm_pack_hb(&pk, &m, types, ntypes, l->held, nheld);
    bool sent = s_send_vent(l, &b, "hb");
    msgpack_sbuffer_destroy(&b);
    l->adv_free = m.free;
    /* Until a heartbeat gets through (no ventilator connected yet), try
     * again soon, so a ventilator hears of this worker as soon as it can. */
    int64_t next = sent ? l->cfg->heartbeat_ms : S_HB_RETRY_MS;
    l->next_hb = now + (next < l->cfg->heartbeat_ms ? next : l->cfg->heartbeat_ms);
    farm_log(FARM_LOG_DEBUG, "worker", "event=hb free=%" PRId64 " held=%zu epoch=%" PRId64 " seq=%" PRId64
             " state=%s", m.free, nheld, l->epoch, l->seq, state);
}

static void s_send_ready(s_loop_t *l, const s_load_t *d) {
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    farm_pack_ready(&pk, d->free, l->epoch, l->seq, d->idle, d->queued, l->completed + l->failed);
    s_send_vent(l, &b, "ready");
    msgpack_sbuffer_destroy(&b);
    l->adv_free = d->free;
}

/* Queue a note for the sink: the packed bytes go to the outbox. */
static void s_note(s_loop_t *l, msgpack_sbuffer *b, int64_t now) {
    size_t len = b->size;
    char *data = msgpack_sbuffer_release(b);
    if (data)
        worker_outbox_note(l->outbox, data, len, now);
}

static void s_send_prog(s_loop_t *l, const worker_progress_t *p, int64_t now) {
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    farm_pack_prog(&pk, p->task, p->attempt, p->pct, p->has_msg ? p->msg : NULL, farm_now_ms());
    s_note(l, &b, now);
    msgpack_sbuffer_destroy(&b);
}

/* Report a failed attempt that never reached a slot. */
static void s_fail_now2(s_loop_t *l, int64_t task, int64_t attempt, const char *error, bool cancelled, int64_t now);

static void s_fail_now(s_loop_t *l, int64_t task, int64_t attempt, const char *error, int64_t now) {
    s_fail_now2(l, task, attempt, error, false, now);
}

static void s_fail_now2(s_loop_t *l, int64_t task, int64_t attempt, const char *error, bool cancelled, int64_t now) {
    int64_t wall = farm_now_ms();
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    farm_pack_result(&pk, task, attempt, l->cfg->name, false, cancelled, NULL, 0, error, wall, wall);
    size_t len = b.size;
    char *data = msgpack_sbuffer_release(&b);
    if (data)
        worker_outbox_result(l->outbox, task, attempt, data, len, now);
    msgpack_sbuffer_destroy(&b);
    l->failed++;
    farm_log(FARM_LOG_INFO, "worker", "event=refused task=%" PRId64 " attempt=%" PRId64 " err=\"%s\"", task, attempt,
             error);
}

/* ---- what the ventilator says ------------------------------------------- */

static void s_on_task(s_loop_t *l, const farm_msg_task_t *t, const void *raw, size_t len, int64_t now) {
    if (t->id <= 0) {
        farm_log(FARM_LOG_WARN, "worker", "event=bad-message from=ventilator err=\"task without id\"");
        return;
    }
    if (t->epoch != l->epoch) {
        farm_log(FARM_LOG_INFO, "worker", "event=epoch-adopted epoch=%" PRId64 " was=%" PRId64, t->epoch, l->epoch);
        l->epoch = t->epoch;
    }
    l->seq = t->seq;
    if (l->adv_free > 0)
        l->adv_free--; /* the ventilator spent a credit on it */

    char type[FARM_TYPE_MAX + 1];
    farm_str_copy(type, sizeof type, t->type);
    char error[512];
    const farm_handler_t *h = t->type.ptr ? worker_registry_find(l->reg, t->type.ptr, t->type.len) : NULL;
    if (worker_pool_has(l->pool, t->id)) {
        farm_log(FARM_LOG_WARN, "worker", "event=duplicate-task task=%" PRId64 " attempt=%" PRId64
                 " reason=\"already here\"", t->id, t->attempt);
        return;
    }
    s_load_t d = s_load(l);
    error[0] = '\0';
    if (l->phase != S_RUN) {
        snprintf(error, sizeof error, "worker draining: not taking new tasks");
    } else if (!t->type.ptr) {
        snprintf(error, sizeof error, "task has no type");
    } else if (!h && farm_str_eq(t->type, "exec")) {
        snprintf(error, sizeof error, "exec is not enabled on worker %s (start it with --allow-exec)", l->cfg->name);
    } else if (!h) {
        snprintf(error, sizeof error, "type '%s' is not offered by worker %s", type, l->cfg->name);
    } else if (d.busy + d.queued < l->cfg->slots + l->cfg->prefetch) {
        /* A free slot takes it at once; with every slot busy it waits for the first that frees. */
        if (worker_pool_push(l->pool, t, h, raw, len) == 0) {
            farm_log(FARM_LOG_DEBUG, "worker", "event=task task=%" PRId64 " job=%" PRId64 " attempt=%" PRId64
                     " timeout_ms=%" PRId64, t->id, t->job, t->attempt, t->timeout_ms);
            return;
        }
        snprintf(error, sizeof error, "worker %s out of memory queueing the task", l->cfg->name);
    } else {
        snprintf(error, sizeof error, "no free slot on worker %s (%" PRId64 " busy, %" PRId64 " waiting)",
                 l->cfg->name, d.busy, d.queued);
    }
    s_fail_now(l, t->id, t->attempt, error, now);
}

/* Give back up to n waiting tasks, newest first; they never started. */
static void s_give_back(s_loop_t *l, int64_t n) {
    int64_t ids[256], attempts[256];
    size_t k = worker_pool_take_back(l->pool, n < 0 ? 0 : n > 256 ? 256 : (size_t)n, ids, attempts);
    if (!k)
        return;
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    s_load_t d = s_load(l);
    farm_pack_give(&pk, ids, k, l->epoch, l->seq, d.free, d.idle, d.queued);
    s_send_vent(l, &b, "give");
    msgpack_sbuffer_destroy(&b);
    l->adv_free = d.free;
    farm_log(FARM_LOG_DEBUG, "worker", "event=give-back tasks=%zu", k);
}

static void s_on_cancel(s_loop_t *l, int64_t task, int64_t now) {
    int64_t attempt = 0;
    int rc = task > 0 ? worker_pool_cancel(l->pool, task, &attempt) : 0;
    if (rc == 1)
        s_fail_now2(l, task, attempt, "cancelled", true, now);
    else if (rc == 0)
        farm_log(FARM_LOG_DEBUG, "worker", "event=cancel task=%" PRId64 " running=false", task);
    else
        farm_log(FARM_LOG_INFO, "worker", "event=cancel task=%" PRId64 " delivered=%s", task,
                 rc == 2 ? "true" : "false");
}

static void s_on_vent(s_loop_t *l, const worker_link_in_t *in, int64_t now) {
    const farm_msg_task_t *m = &in->msg;
    if (farm_str_eq(m->m, "task")) {
        s_on_task(l, m, in->raw, in->len, now);
    } else if (farm_str_eq(m->m, "cancel")) {
        s_on_cancel(l, m->id, now);
    } else if (farm_str_eq(m->m, "revoke")) {
        s_give_back(l, m->n);
    } else { /* welcome: worker_link lets nothing else through */
        farm_log(FARM_LOG_INFO, "worker", "event=welcome epoch=%" PRId64 " was=%" PRId64, m->epoch, l->epoch);
        l->epoch = m->epoch;
        l->seq = 0;
        s_send_hb(l, now);
    }
}

static void s_on_ack(void *ud, int64_t task, int64_t attempt) {
    s_loop_t *l = ud;
    if (!worker_outbox_ack(l->outbox, task, attempt))
        farm_log(FARM_LOG_DEBUG, "worker", "event=ack-unknown task=%" PRId64 " attempt=%" PRId64, task, attempt);
}

/* ---- what the slots say ------------------------------------------------- */

/* True when e's task also finished in the list from e on. */
static bool s_finished_later(const worker_event_t *e) {
    for (const worker_event_t *r = e->next; r; r = r->next)
        if (r->kind == WORKER_EV_RESULT && r->task == e->task && r->attempt == e->attempt)
            return true;
    return false;
}

static void s_collect(s_loop_t *l, int64_t now) {
    worker_event_t *list = worker_pool_events(l->pool);
    for (worker_event_t *e = list; e; e = e->next) {
        if (e->kind == WORKER_EV_START) {
            /* A task that finished by now needs no start report: its result says when it started. */
            if (s_finished_later(e))
                continue;
            msgpack_sbuffer b;
            msgpack_sbuffer_init(&b);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
            farm_pack_start(&pk, e->task, e->attempt, l->cfg->name, e->started_ms);
            s_note(l, &b, now);
            msgpack_sbuffer_destroy(&b);
            continue;
        }
        if (e->has_progress)
            s_send_prog(l, &e->progress, now);
        if (!e->msg) { /* the slot ran out of memory packing it; s_fail_now counts it */
            s_fail_now(l, e->task, e->attempt, "worker out of memory packing the result", now);
            continue;
        }
        worker_outbox_result(l->outbox, e->task, e->attempt, e->msg, e->len, now);
        e->msg = NULL;
        if (e->ok)
            l->completed++;
        else
            l->failed++;
        if (e->ok)
            farm_log(FARM_LOG_DEBUG, "worker", "event=done task=%" PRId64 " attempt=%" PRId64 " ok=true ms=%" PRId64
                     " slot=%d", e->task, e->attempt, e->duration_ms, e->slot);
        else
            farm_log(FARM_LOG_INFO, "worker", "event=done task=%" PRId64 " attempt=%" PRId64 " ok=false cancelled=%s"
                     " ms=%" PRId64 " slot=%d err=\"%s\"", e->task, e->attempt, e->cancelled ? "true" : "false",
                     e->duration_ms, e->slot, e->error);
    }
    worker_events_free(list);
}

/* Forward the progress updates the rate limit lets through. */
static void s_progress(s_loop_t *l, int64_t now) {
    worker_progress_t p[16];
    size_t n;
    do {
        n = worker_pool_progress(l->pool, now, false, p, 16, &l->prog_due);
        for (size_t i = 0; i < n; i++)
            s_send_prog(l, &p[i], now);
    } while (n == 16);
}

static int s_stop_all(s_loop_t *l, worker_stop_t why) { return worker_pool_stop_all(l->pool, why); }

static int64_t s_busy(const s_loop_t *l) {
    int64_t busy, queued;
    worker_pool_counts(l->pool, &busy, &queued);
    return busy;
}

/* ---- drain -------------------------------------------------------------- */

static void s_drain_begin(s_loop_t *l, int64_t now) {
    worker_pool_set_open(l->pool, false); /* nothing waiting starts now: let others have it */
    int64_t busy, queued;
    worker_pool_counts(l->pool, &busy, &queued);
    while (queued > 0) {
        s_give_back(l, queued);
        worker_pool_counts(l->pool, &busy, &queued);
    }
    l->phase = S_DRAIN_FINISH;
    l->until = now + l->cfg->grace_ms;
    farm_log(FARM_LOG_INFO, "worker", "event=drain running=%" PRId64 " grace_ms=%" PRId64 " unacked=%zu", s_busy(l),
             l->cfg->grace_ms, worker_outbox_count(l->outbox));
    s_send_hb(l, now);
}

/* Advance the drain. Returns -1 while it goes on, or the exit status. */
static int s_drain_step(s_loop_t *l, int64_t now) {
    if (l->phase != S_RUN) {
        /* A result a slot just posted goes to the outbox and out now, to be acknowledged. */
        s_collect(l, now);
        worker_outbox_flush(l->outbox, now);
    }
    int64_t busy = s_busy(l);
    switch (l->phase) {
    case S_RUN:
        return -1;
    case S_DRAIN_FINISH:
    case S_DRAIN_STOP:
        if (busy == 0) {
            l->phase = S_DRAIN_ACKS;
            l->until = now + S_ACK_WAIT_MS;
            farm_log(FARM_LOG_INFO, "worker", "event=drain-idle unacked=%zu", worker_outbox_count(l->outbox));
            return s_drain_step(l, now);
        }
        if (now < l->until)
            return -1;
        if (l->phase == S_DRAIN_FINISH) {
            int n = s_stop_all(l, WORKER_STOP_DRAIN);
            farm_log(FARM_LOG_INFO, "worker", "event=drain-grace-over stopped=%d", n);
            l->phase = S_DRAIN_STOP;
            l->until = now + l->cfg->kill_grace_ms + S_STUCK_MS;
            return -1;
        }
        farm_log(FARM_LOG_ERROR, "worker", "event=drain-stuck busy=%" PRId64
                 " err=\"handlers did not return after a stop\"", busy);
        return 1;
    case S_DRAIN_ACKS:
        if (worker_outbox_count(l->outbox) > 0 && now < l->until)
            return -1;
        s_send_hb(l, now);
        farm_log(worker_outbox_count(l->outbox) ? FARM_LOG_WARN : FARM_LOG_INFO, "worker",
                 "event=stop completed=%" PRId64 " failed=%" PRId64 " unacked=%zu", l->completed, l->failed,
                 worker_outbox_count(l->outbox));
        return 0;
    }
    return -1;
}

/* Second signal: stop everything, give the slots a moment to pass the stop
 * on to their children, and give up. */
static int s_abort(s_loop_t *l) {
    int n = s_stop_all(l, WORKER_STOP_DRAIN);
    farm_log(FARM_LOG_WARN, "worker", "event=abort stopped=%d unacked=%zu", n, worker_outbox_count(l->outbox));
    int64_t end = farm_mono_ms() + S_ABORT_WAIT_MS;
    while (s_busy(l) > 0) {
        int64_t left = end - farm_mono_ms();
        if (left <= 0)
            break;
        zmq_pollitem_t it = {.fd = l->wake_fd, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, (long)left) < 0 && errno != EINTR)
            break;
        uint64_t v;
        if (read(l->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN && errno != EINTR)
            break;
        worker_events_free(worker_pool_events(l->pool));
    }
    return 1;
}

/* ---- the loop ----------------------------------------------------------- */

/* Milliseconds until the nearest timer, at most one heartbeat. */
static long s_timeout(const s_loop_t *l, int64_t now) {
    int64_t next = l->next_hb;
    int64_t d = worker_pool_next_deadline(l->pool);
    if (d > 0 && d < next)
        next = d;
    if (l->prog_due > 0 && l->prog_due < next)
        next = l->prog_due;
    int64_t due = worker_outbox_next_due(l->outbox);
    if (due > 0 && due < next)
        next = due;
    if (l->phase != S_RUN && l->until < next)
        next = l->until;
    int64_t t = next - now;
    return t < 0 ? 0 : t > l->cfg->heartbeat_ms ? (long)l->cfg->heartbeat_ms : (long)t;
}

static int s_on_signals(s_loop_t *l, int64_t now) {
    char buf[64];
    ssize_t n;
    while ((n = read(l->sig_fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            l->signals++;
            if (l->signals == 1)
                s_drain_begin(l, now);
            else
                return s_abort(l);
        }
    }
    return -1;
}

static int s_turn(s_loop_t *l) {
    int64_t now = farm_mono_ms();
    zmq_pollitem_t items[5] = {
        {.socket = worker_link_dealer(l->link), .events = ZMQ_POLLIN},
        {.socket = worker_link_sub(l->link), .events = ZMQ_POLLIN},
        {.fd = l->wake_fd, .events = ZMQ_POLLIN},
        {.fd = l->sig_fd, .events = ZMQ_POLLIN},
        {.socket = worker_link_push(l->link), .events = ZMQ_POLLOUT},
    };
    int nitems = worker_outbox_stalled(l->outbox) ? 5 : 4;
    bool pending = worker_link_vent_pending(l->link);
    if (zmq_poll(items, nitems, pending ? 0 : s_timeout(l, now)) < 0) {
        if (errno == EINTR)
            return -1;
        farm_log(FARM_LOG_ERROR, "worker", "event=fatal op=zmq_poll err=\"%s\"", zmq_strerror(errno));
        return 1;
    }
    now = farm_mono_ms();
    if (items[3].revents & ZMQ_POLLIN) {
        int rc = s_on_signals(l, now);
        if (rc >= 0)
            return rc;
    }
    if ((items[0].revents & ZMQ_POLLIN) || pending) {
        for (int k = 0; k < S_VENT_BATCH; k++) {
            worker_link_in_t in;
            int rc = worker_link_recv_vent(l->link, &in);
            if (rc <= 0)
                break;
            s_on_vent(l, &in, now);
            worker_link_in_release(&in);
        }
    }
    if (items[1].revents & ZMQ_POLLIN)
        (void)worker_link_recv_acks(l->link, s_on_ack, l); /* errors are logged; the poll tells again */
    bool woken = items[2].revents & ZMQ_POLLIN;
    if (woken) {
        uint64_t v;
        if (read(l->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN && errno != EINTR)
            farm_log(FARM_LOG_ERROR, "worker", "event=eventfd-read err=\"%s\"", strerror(errno));
        s_collect(l, now);
    }
    if (woken || (l->prog_due > 0 && now >= l->prog_due))
        s_progress(l, now);
    (void)worker_pool_timeouts(l->pool, now);
    worker_outbox_flush(l->outbox, now);
    int rc = s_drain_step(l, now);
    if (rc >= 0)
        return rc;
    if (now >= l->next_hb)
        s_send_hb(l, now);
    s_load_t d = s_load(l);
    if (d.free != l->adv_free)
        s_send_ready(l, &d);
    return -1;
}

static void s_cleanup(s_loop_t *l, bool abort) {
    /* After an abort, handlers may still run: the process exits around them. */
    if (!abort)
        worker_pool_destroy(&l->pool);
    worker_link_destroy(&l->link, abort);
    worker_outbox_destroy(&l->outbox);
    if (!abort && l->wake_fd >= 0)
        close(l->wake_fd);
    free(l->held);
}

int worker_loop_run(const worker_config_t *cfg, const worker_registry_t *reg, int sig_fd) {
    s_loop_t l = {.cfg = cfg, .reg = reg, .sig_fd = sig_fd, .wake_fd = -1, .phase = S_RUN};
    int status = 1;
    l.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l.wake_fd < 0) {
        farm_log(FARM_LOG_ERROR, "worker", "event=fatal op=eventfd err=\"%s\"", strerror(errno));
        return 1;
    }
    l.link = worker_link_new(&cfg->ep, cfg->name, cfg->max_frame);
    worker_outbox_cfg_t ocfg = {
        .notes_max = S_NOTES_MAX,
        .resend_ms = S_RESEND_MS,
        .tick_ms = S_RESEND_TICK_MS,
        .resend_burst = S_RESEND_BURST,
        .send = worker_link_send_sink,
        .ud = l.link,
    };
    l.outbox = worker_outbox_new(&ocfg);
    if (!l.link || !l.outbox) {
        farm_log(FARM_LOG_ERROR, "worker", "event=fatal err=\"cannot set up the sockets or out of memory\"");
        s_cleanup(&l, false);
        return 1;
    }
    if (!(l.pool = worker_pool_new(cfg->slots, cfg->name, l.wake_fd))) {
        s_cleanup(&l, false);
        return 1;
    }

    size_t ntypes;
    const char *const *types = worker_registry_types(reg, &ntypes);
    char tlist[512] = "";
    for (size_t i = 0, off = 0; i < ntypes && off < sizeof tlist; i++) {
        int n = snprintf(tlist + off, sizeof tlist - off, "%s%s", i ? "," : "", types[i]);
        if (n < 0)
            break;
        off += (size_t)n;
    }
    farm_log(FARM_LOG_INFO, "worker", "event=start id=%s identity=%s pid=%d slots=%d types=%s dispatch=%s"
             " results=%s feed=%s", cfg->name, worker_link_identity(l.link), (int)getpid(), cfg->slots, tlist,
             cfg->ep.dispatch, cfg->ep.results, cfg->ep.feed);

    s_send_hb(&l, farm_mono_ms());
    while ((status = s_turn(&l)) < 0) {
    }
    bool abort = status != 0;
    s_cleanup(&l, abort);
    return status;
}
