/* worker_loop: the poll loop, credit, drain (see worker_loop.h).
 *
 * The loop keeps everything in one struct owned by the main thread. Slot
 * state it needs every turn (held task, deadline) is read through
 * worker_slot functions that touch main-only fields, so scanning the slots
 * takes no lock; the mutexes are only taken when the wake fd says a slot
 * has something (a result or progress) or a rate-limited progress update
 * falls due.
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

/* A task received while every slot was busy: its frame, kept whole, is
 * decoded again when a slot frees. */
typedef struct s_queued {
    char *raw;              /* the task message as it came */
    size_t len;             /* its bytes */
    int64_t id, attempt;    /* for cancel, revoke and heartbeats */
    int64_t priority;       /* the queue is ordered by priority, then id */
    struct s_queued *next;  /* towards the tail (lowest priority, newest) */
} s_queued_t;

typedef struct {
    const worker_config_t *cfg;  /* borrowed */
    const worker_registry_t *reg; /* borrowed */
    worker_link_t *link;         /* the sockets */
    worker_outbox_t *outbox;     /* what the sink is owed */
    worker_slot_t **slots;       /* cfg->slots of them */
    int64_t *prog_due;           /* per slot: when its rate-limited progress may go, 0 none */
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
    s_queued_t *qhead, *qtail;   /* tasks waiting for a slot, oldest first */
    int64_t nqueued;             /* their number, at most cfg->prefetch */
    int64_t *held;               /* scratch for heartbeats */
    size_t held_cap;             /* entries allocated at held */
} s_loop_t;

/* ---- small helpers ------------------------------------------------------ */

static int s_busy(const s_loop_t *l) {
    int n = 0;
    for (int i = 0; i < l->cfg->slots; i++)
        n += worker_slot_task(l->slots[i]) != 0;
    return n;
}

/* Tasks this worker can take now: idle slots plus room in the prefetch
 * queue, bounded by the results it may still hold for the sink. */
static int64_t s_free(const s_loop_t *l) {
    if (l->phase != S_RUN)
        return 0;
    int64_t busy = s_busy(l);
    int64_t take = l->cfg->slots - busy + l->cfg->prefetch - l->nqueued;
    int64_t room = l->cfg->max_unacked - (int64_t)worker_outbox_count(l->outbox) - busy - l->nqueued;
    int64_t f = take < room ? take : room;
    return f > 0 ? f : 0;
}

/* Slots with nothing to run and nothing waiting for them. */
static int64_t s_idle(const s_loop_t *l) {
    if (l->phase != S_RUN)
        return 0;
    int64_t idle = l->cfg->slots - s_busy(l) - l->nqueued;
    return idle > 0 ? idle : 0;
}

static int s_slot_of(const s_loop_t *l, int64_t task) {
    for (int i = 0; i < l->cfg->slots; i++)
        if (worker_slot_task(l->slots[i]) == task)
            return i;
    return -1;
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
    size_t need = (size_t)l->cfg->slots + (size_t)l->nqueued + worker_outbox_count(l->outbox);
    if (need > l->held_cap) {
        int64_t *p = realloc(l->held, need * sizeof *p);
        if (p) {
            l->held = p;
            l->held_cap = need;
        }
    }
    size_t nheld = 0;
    for (int i = 0; i < l->cfg->slots && nheld < l->held_cap; i++)
        if (worker_slot_task(l->slots[i]))
            l->held[nheld++] = worker_slot_task(l->slots[i]);
    for (s_queued_t *q = l->qhead; q && nheld < l->held_cap; q = q->next)
        l->held[nheld++] = q->id;
    nheld += worker_outbox_held(l->outbox, l->held + nheld, l->held_cap - nheld);

    const char *state = l->phase == S_RUN ? "alive" : "draining";
    farm_msg_hb_t m = {
        .id = {l->cfg->name, (uint32_t)strlen(l->cfg->name)},
        .host = {l->cfg->host, (uint32_t)strlen(l->cfg->host)},
        .pid = getpid(),
        .slots = l->cfg->slots,
        .free = s_free(l),
        .epoch = l->epoch,
        .seq = l->seq,
        .state = {state, (uint32_t)strlen(state)},
        .completed = l->completed,
        .failed = l->failed,
        .idle = s_idle(l),
        .queued = l->nqueued,
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

static void s_send_ready(s_loop_t *l, int64_t free) {
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    farm_pack_ready(&pk, free, l->epoch, l->seq, s_idle(l), l->nqueued);
    s_send_vent(l, &b, "ready");
    msgpack_sbuffer_destroy(&b);
    l->adv_free = free;
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

/* Start task t (handler h) in the idle slot `slot`. */
static void s_start(s_loop_t *l, int slot, const farm_handler_t *h, const farm_msg_task_t *t, int64_t now) {
    char error[512];
    int64_t wall = farm_now_ms();
    int rc = worker_slot_assign(l->slots[slot], h, t, wall, now);
    if (rc < 0) {
        snprintf(error, sizeof error, "worker %s could not start the task: %s", l->cfg->name, strerror(-rc));
        s_fail_now(l, t->id, t->attempt, error, now);
        return;
    }
    l->prog_due[slot] = 0;
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    farm_pack_start(&pk, t->id, t->attempt, l->cfg->name, wall);
    s_note(l, &b, now);
    msgpack_sbuffer_destroy(&b);
    farm_log(FARM_LOG_DEBUG, "worker", "event=task task=%" PRId64 " job=%" PRId64 " attempt=%" PRId64
             " slot=%d timeout_ms=%" PRId64, t->id, t->job, t->attempt, slot, t->timeout_ms);
}

static int s_idle_slot(const s_loop_t *l) {
    for (int i = 0; i < l->cfg->slots; i++)
        if (worker_slot_task(l->slots[i]) == 0)
            return i;
    return -1;
}

static bool s_is_queued(const s_loop_t *l, int64_t task) {
    for (const s_queued_t *q = l->qhead; q; q = q->next)
        if (q->id == task)
            return true;
    return false;
}

/* Remove and return the queued entry of task (NULL: not queued). */
static s_queued_t *s_unqueue(s_loop_t *l, int64_t task) {
    s_queued_t *prev = NULL;
    for (s_queued_t *q = l->qhead; q; prev = q, q = q->next) {
        if (q->id != task)
            continue;
        if (prev)
            prev->next = q->next;
        else
            l->qhead = q->next;
        if (l->qtail == q)
            l->qtail = prev;
        l->nqueued--;
        return q;
    }
    return NULL;
}

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
    if (s_slot_of(l, t->id) >= 0 || s_is_queued(l, t->id)) {
        farm_log(FARM_LOG_WARN, "worker", "event=duplicate-task task=%" PRId64 " attempt=%" PRId64
                 " reason=\"already here\"", t->id, t->attempt);
        return;
    }
    int slot = -1;
    error[0] = '\0';
    if (l->phase != S_RUN) {
        snprintf(error, sizeof error, "worker draining: not taking new tasks");
    } else if (!t->type.ptr) {
        snprintf(error, sizeof error, "task has no type");
    } else if (!h && farm_str_eq(t->type, "exec")) {
        snprintf(error, sizeof error, "exec is not enabled on worker %s (start it with --allow-exec)", l->cfg->name);
    } else if (!h) {
        snprintf(error, sizeof error, "type '%s' is not offered by worker %s", type, l->cfg->name);
    } else if (l->nqueued == 0 && (slot = s_idle_slot(l)) >= 0) {
        s_start(l, slot, h, t, now);
        return;
    } else if (l->nqueued < l->cfg->prefetch) {
        /* Every slot is busy: keep the task, to start the moment one frees. */
        s_queued_t *q = calloc(1, sizeof *q);
        char *copy = q ? malloc(len) : NULL;
        if (copy) {
            memcpy(copy, raw, len);
            *q = (s_queued_t){copy, len, t->id, t->attempt, t->priority, NULL};
            /* In dispatch order: higher priority first, then submission order. */
            s_queued_t **pp = &l->qhead;
            while (*pp && ((*pp)->priority > q->priority || ((*pp)->priority == q->priority && (*pp)->id < q->id)))
                pp = &(*pp)->next;
            q->next = *pp;
            *pp = q;
            if (!q->next)
                l->qtail = q;
            l->nqueued++;
            return;
        }
        free(q);
        snprintf(error, sizeof error, "worker %s out of memory queueing the task", l->cfg->name);
    } else {
        snprintf(error, sizeof error, "no free slot on worker %s (%d busy, %" PRId64 " waiting)", l->cfg->name,
                 l->cfg->slots, l->nqueued);
    }
    s_fail_now(l, t->id, t->attempt, error, now);
}

/* Start waiting tasks while slots are idle. */
static void s_start_queued(s_loop_t *l, int64_t now) {
    int slot;
    while (l->qhead && l->phase == S_RUN && (slot = s_idle_slot(l)) >= 0) {
        s_queued_t *q = s_unqueue(l, l->qhead->id);
        msgpack_zone z;
        msgpack_object o;
        farm_msg_task_t t;
        farm_error_t e;
        if (msgpack_zone_init(&z, 1024)) {
            if (farm_msg_unpack(q->raw, q->len, &z, &o, &e) == 0 && farm_msg_task_decode(&o, &t, &e) == 0) {
                const farm_handler_t *h = worker_registry_find(l->reg, t.type.ptr, t.type.len);
                if (h)
                    s_start(l, slot, h, &t, now);
                else
                    s_fail_now(l, q->id, q->attempt, "handler vanished", now);
            } else {
                s_fail_now(l, q->id, q->attempt, "worker could not decode a queued task", now);
            }
            msgpack_zone_destroy(&z);
        } else {
            s_fail_now(l, q->id, q->attempt, "worker out of memory starting a queued task", now);
        }
        free(q->raw);
        free(q);
    }
}

/* Give back up to n waiting tasks, newest first; they never started. */
static void s_give_back(s_loop_t *l, int64_t n) {
    int64_t ids[256];
    size_t k = 0;
    while (n-- > 0 && l->qtail && k < 256) {
        s_queued_t *q = s_unqueue(l, l->qtail->id);
        ids[k++] = q->id;
        free(q->raw);
        free(q);
    }
    if (!k)
        return;
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    int64_t free_now = s_free(l);
    farm_pack_give(&pk, ids, k, l->epoch, l->seq, free_now, s_idle(l), l->nqueued);
    s_send_vent(l, &b, "give");
    msgpack_sbuffer_destroy(&b);
    l->adv_free = free_now;
    farm_log(FARM_LOG_DEBUG, "worker", "event=give-back tasks=%zu", k);
}

static void s_on_cancel(s_loop_t *l, int64_t task, int64_t now) {
    s_queued_t *q = s_unqueue(l, task);
    if (q) {
        s_fail_now2(l, q->id, q->attempt, "cancelled", true, now);
        free(q->raw);
        free(q);
        return;
    }
    int i = s_slot_of(l, task);
    if (i < 0 || task <= 0) {
        farm_log(FARM_LOG_DEBUG, "worker", "event=cancel task=%" PRId64 " running=false", task);
        return;
    }
    bool delivered = worker_slot_stop(l->slots[i], WORKER_STOP_CANCEL);
    farm_log(FARM_LOG_INFO, "worker", "event=cancel task=%" PRId64 " slot=%d delivered=%s", task, i,
             delivered ? "true" : "false");
}

static void s_on_vent(s_loop_t *l, const worker_link_in_t *in, int64_t now) {
    const farm_msg_task_t *m = &in->msg;
    if (farm_str_eq(m->m, "task")) {
        s_on_task(l, m, zmq_msg_data((zmq_msg_t *)&in->frame), zmq_msg_size((zmq_msg_t *)&in->frame), now);
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

static void s_collect(s_loop_t *l, int64_t now) {
    for (int i = 0; i < l->cfg->slots; i++) {
        worker_slot_result_t r;
        if (!worker_slot_collect(l->slots[i], &r))
            continue;
        l->prog_due[i] = 0;
        if (r.has_progress)
            s_send_prog(l, &r.progress, now);
        if (!r.msg) { /* the slot ran out of memory packing it; s_fail_now counts it */
            s_fail_now(l, r.task, r.attempt, "worker out of memory packing the result", now);
            continue;
        }
        worker_outbox_result(l->outbox, r.task, r.attempt, r.msg, r.len, now);
        if (r.ok)
            l->completed++;
        else
            l->failed++;
        if (r.ok)
            farm_log(FARM_LOG_DEBUG, "worker", "event=done task=%" PRId64 " attempt=%" PRId64 " ok=true ms=%" PRId64
                     " slot=%d", r.task, r.attempt, r.duration_ms, i);
        else
            farm_log(FARM_LOG_INFO, "worker", "event=done task=%" PRId64 " attempt=%" PRId64 " ok=false cancelled=%s"
                     " ms=%" PRId64 " slot=%d err=\"%s\"", r.task, r.attempt, r.cancelled ? "true" : "false",
                     r.duration_ms, i, r.error);
    }
}

/* True when a rate-limited progress update may go now. */
static bool s_progress_due(const s_loop_t *l, int64_t now) {
    for (int i = 0; i < l->cfg->slots; i++)
        if (l->prog_due[i] > 0 && now >= l->prog_due[i])
            return true;
    return false;
}

/* Forward the progress updates the rate limit lets through. */
static void s_progress(s_loop_t *l, int64_t now) {
    for (int i = 0; i < l->cfg->slots; i++) {
        if (!worker_slot_task(l->slots[i]))
            continue;
        worker_progress_t p;
        if (worker_slot_progress_take(l->slots[i], now, false, &p, &l->prog_due[i]))
            s_send_prog(l, &p, now);
    }
}

static void s_timeouts(s_loop_t *l, int64_t now) {
    for (int i = 0; i < l->cfg->slots; i++) {
        int64_t d = worker_slot_deadline(l->slots[i]);
        if (d > 0 && now >= d) {
            int64_t task = worker_slot_task(l->slots[i]);
            if (worker_slot_stop(l->slots[i], WORKER_STOP_TIMEOUT))
                farm_log(FARM_LOG_INFO, "worker", "event=timeout task=%" PRId64 " slot=%d", task, i);
        }
    }
}

static int s_stop_all(s_loop_t *l, worker_stop_t why) {
    int n = 0;
    for (int i = 0; i < l->cfg->slots; i++)
        n += worker_slot_stop(l->slots[i], why);
    return n;
}

/* ---- drain -------------------------------------------------------------- */

static void s_drain_begin(s_loop_t *l, int64_t now) {
    s_give_back(l, l->nqueued); /* nothing waiting starts now: let others have it */
    l->phase = S_DRAIN_FINISH;
    l->until = now + l->cfg->grace_ms;
    farm_log(FARM_LOG_INFO, "worker", "event=drain running=%d grace_ms=%" PRId64 " unacked=%zu", s_busy(l),
             l->cfg->grace_ms, worker_outbox_count(l->outbox));
    s_send_hb(l, now);
}

/* Advance the drain. Returns -1 while it goes on, or the exit status. */
static int s_drain_step(s_loop_t *l, int64_t now) {
    int busy = s_busy(l);
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
        farm_log(FARM_LOG_ERROR, "worker", "event=drain-stuck busy=%d err=\"handlers did not return after a stop\"",
                 busy);
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
        for (int i = 0; i < l->cfg->slots; i++) {
            worker_slot_result_t r;
            if (worker_slot_collect(l->slots[i], &r))
                free(r.msg);
        }
    }
    return 1;
}

/* ---- the loop ----------------------------------------------------------- */

/* Milliseconds until the nearest timer, at most one heartbeat. */
static long s_timeout(const s_loop_t *l, int64_t now) {
    int64_t next = l->next_hb;
    for (int i = 0; i < l->cfg->slots; i++) {
        int64_t d = worker_slot_deadline(l->slots[i]);
        if (d > 0 && d < next)
            next = d;
        if (l->prog_due[i] > 0 && l->prog_due[i] < next)
            next = l->prog_due[i];
    }
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
    if (zmq_poll(items, nitems, s_timeout(l, now)) < 0) {
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
    if (items[0].revents & ZMQ_POLLIN) {
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
    s_start_queued(l, now);
    if (woken || s_progress_due(l, now))
        s_progress(l, now);
    s_timeouts(l, now);
    worker_outbox_flush(l->outbox, now);
    int rc = s_drain_step(l, now);
    if (rc >= 0)
        return rc;
    if (now >= l->next_hb)
        s_send_hb(l, now);
    int64_t f = s_free(l);
    if (f != l->adv_free)
        s_send_ready(l, f);
    return -1;
}

static void s_cleanup(s_loop_t *l, bool abort) {
    if (!abort)
        for (int i = 0; l->slots && i < l->cfg->slots; i++)
            worker_slot_destroy(&l->slots[i]);
    worker_link_destroy(&l->link, abort);
    worker_outbox_destroy(&l->outbox);
    if (!abort) {
        free(l->slots);
        free(l->prog_due);
        if (l->wake_fd >= 0)
            close(l->wake_fd);
    }
    free(l->held);
    while (l->qhead) {
        s_queued_t *q = l->qhead;
        l->qhead = q->next;
        free(q->raw);
        free(q);
    }
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
    l.slots = calloc((size_t)cfg->slots, sizeof *l.slots);
    l.prog_due = calloc((size_t)cfg->slots, sizeof *l.prog_due);
    if (!l.link || !l.outbox || !l.slots || !l.prog_due) {
        farm_log(FARM_LOG_ERROR, "worker", "event=fatal err=\"cannot set up the sockets or out of memory\"");
        s_cleanup(&l, false);
        return 1;
    }
    for (int i = 0; i < cfg->slots; i++)
        if (!(l.slots[i] = worker_slot_new(i, cfg->name, l.wake_fd))) {
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
