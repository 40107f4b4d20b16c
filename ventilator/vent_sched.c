/* vent_sched: workers, credit and dispatch.
 *
 * A dispatch round asks the database, per type that some worker with
 * credit offers, for the best dispatchable tasks (priority, then id), as
 * many as that credit allows; merges them in the same order; and gives
 * each to the worker offering its type with the most credit. Leases are
 * written in one transaction and the tasks sent after COMMIT, so a worker
 * can never report on a task the database does not yet know it holds.
 *
 * A worker may also take tasks beyond its idle slots (--prefetch) to hide
 * the round trip, but only while it is freeing slots every few tens of
 * milliseconds (working through short tasks), and only as many as it
 * finishes in VENT_QUEUE_HORIZON_MS at the rate it has been finishing them
 * (its `done` counter over time): a worker held by a long task gets nothing
 * to wait behind it, and one working through 100 ms tasks gets none queued,
 * while one running thousands of no-ops a second gets hundreds. When a round finds the database dry while
 * a worker sits idle and another has tasks waiting, the ventilator asks for
 * them back (revoke/give): they return to pending unstarted and go to the
 * idle one. So no task waits on a busy worker while another could start it.
 *
 * Heartbeats carry what a worker holds. A task the database leases to a
 * worker that no longer holds it (and that was not sent after the
 * worker's last confirmed sequence) is released: its result is already
 * stored, or it was lost on the way. A worker silent for lost_after_ms is
 * lost: its tasks are released at once and go through retry.
 */
#include "vent.h"

#include "farm_err.h"
#include "farm_log.h"
#include "farm_proto.h"
#include "farm_state.h"
#include "farm_time.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static const char *s_wstate[] = {"alive", "draining", "lost"};

/* ---- feed events ----------------------------------------------------------- */

void vent_publish(vent_t *v, const char *topic, const msgpack_sbuffer *body) {
    if (!v->report)
        return;
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    farm_pack_pub(&pk, topic, body->data, body->size);
    /* The feed is for watching: when the sink is away, events are dropped. */
    if (zmq_send(v->report, b.data, b.size, ZMQ_DONTWAIT) < 0 && errno != EAGAIN)
        farm_log(FARM_LOG_WARN, "vent", "op=report_send err=\"%s\"", zmq_strerror(errno));
    msgpack_sbuffer_destroy(&b);
}

void vent_on_change(void *ud, const farm_change_t *c) {
    vent_t *v = ud;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &v->events, msgpack_sbuffer_write);
    farm_pack_task_event(&pk, c->id, c->job, c->state, c->progress, c->attempt, c->worker, c->ms);
    v->nevents++;
    if (c->state == FARM_TASK_PENDING)
        vent_work_added(v);
}

void vent_work_added(vent_t *v) {
    v->work_maybe = true;
    v->db_dry = false;
}

void vent_flush_events(vent_t *v) {
    if (!v->nevents)
        return;
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    farm_pack_task_events(&pk, v->events.data, v->events.size, v->nevents);
    vent_publish(v, "task", &b);
    msgpack_sbuffer_destroy(&b);
    v->events.size = 0;
    v->nevents = 0;
}

/* ---- workers --------------------------------------------------------------- */

void vent_pack_worker(msgpack_packer *pk, const vent_worker_t *w) {
    msgpack_pack_map(pk, 10);
    farm_pack_kv_str(pk, "id", w->id);
    farm_pack_kv_str(pk, "host", w->host);
    farm_pack_kv_int(pk, "pid", w->pid);
    farm_pack_kv_int(pk, "slots", w->slots);
    int64_t busy = w->state == VENT_W_LOST ? 0 : w->slots - w->free;
    farm_pack_kv_int(pk, "busy", busy < 0 ? 0 : busy);
    farm_pack_str(pk, "types");
    msgpack_pack_array(pk, w->ntypes);
    for (size_t i = 0; i < w->ntypes; i++)
        farm_pack_str(pk, w->types[i]);
    farm_pack_kv_str(pk, "state", s_wstate[w->state]);
    farm_pack_kv_int(pk, "last_seen_ms", w->last_seen_ms);
    farm_pack_kv_int(pk, "completed", w->completed);
    farm_pack_kv_int(pk, "failed", w->failed);
}

static void s_publish_worker(vent_t *v, const vent_worker_t *w) {
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    vent_pack_worker(&pk, w);
    vent_publish(v, "worker", &b);
    msgpack_sbuffer_destroy(&b);
}

static void s_worker_free(vent_worker_t *w) {
    for (size_t i = 0; i < w->ntypes; i++)
        free(w->types[i]);
    free(w->sent);
    free(w);
}

void vent_sched_destroy(vent_t *v) {
    for (size_t i = 0; i < v->nworkers; i++)
        s_worker_free(v->workers[i]);
    free(v->workers);
    v->workers = NULL;
    v->nworkers = v->capworkers = 0;
}

static vent_worker_t *s_by_routing(vent_t *v, const void *rid, size_t len) {
    for (size_t i = 0; i < v->nworkers; i++)
        if (v->workers[i]->routing_len == len && memcmp(v->workers[i]->routing, rid, len) == 0)
            return v->workers[i];
    return NULL;
}

static vent_worker_t *s_by_id(vent_t *v, const char *id) {
    for (size_t i = 0; i < v->nworkers; i++)
        if (strcmp(v->workers[i]->id, id) == 0)
            return v->workers[i];
    return NULL;
}

/* A new worker entry named id (alive, not yet welcomed), or NULL. */
static vent_worker_t *s_add(vent_t *v, const char *id) {
    if (v->nworkers == v->capworkers) {
        size_t cap = v->capworkers ? v->capworkers * 2 : 16;
        vent_worker_t **p = realloc(v->workers, cap * sizeof *p);
        if (!p)
            return NULL;
        v->workers = p;
        v->capworkers = cap;
    }
    vent_worker_t *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    snprintf(w->id, sizeof w->id, "%s", id);
    w->state = VENT_W_ALIVE;
    v->workers[v->nworkers++] = w;
    return w;
}

/* The rate a worker finishes attempts, from its `done` counter: sampled at
 * most every VENT_RATE_SAMPLE_MS, smoothed over samples. */
#define VENT_RATE_SAMPLE_MS 10
#define VENT_QUEUE_HORIZON_MS 25
static void s_rate(vent_worker_t *w, int64_t done, int64_t now) {
    if (done < 0)
        return; /* a worker that does not say */
    if (w->rate_mono == 0 || done < w->done_seen) {
        w->done_seen = done;
        w->rate_mono = now;
        return;
    }
    int64_t dt = now - w->rate_mono;
    if (dt < VENT_RATE_SAMPLE_MS)
        return;
    double r = (double)(done - w->done_seen) / (double)dt;
    w->rate = w->rate > 0 ? (w->rate + r) / 2 : r;
    w->done_seen = done;
    w->rate_mono = now;
}

/* Tasks worth queueing on w beyond its idle slots: what it finishes in
 * VENT_QUEUE_HORIZON_MS at its recent rate. */
static int64_t s_queue_allowance(const vent_worker_t *w) {
    return (int64_t)(w->rate * VENT_QUEUE_HORIZON_MS);
}

static int64_t s_credit(const vent_worker_t *w) {
    if (w->state != VENT_W_ALIVE || !w->welcomed)
        return 0;
    int64_t c = w->free - (w->sent_seq - w->acked_seq);
    return c > 0 ? c : 0;
}

/* Idle slots not yet promised to a task we sent. */
static int64_t s_idle_now(const vent_worker_t *w) {
    if (w->state != VENT_W_ALIVE || !w->welcomed)
        return 0;
    int64_t c = w->idle - (w->sent_seq - w->acked_seq);
    return c > 0 ? c : 0;
}

void vent_sched_capacity(const vent_t *v, int64_t *workers, int64_t *slots, int64_t *busy) {
    *workers = *slots = *busy = 0;
    for (size_t i = 0; i < v->nworkers; i++) {
        const vent_worker_t *w = v->workers[i];
        if (w->state == VENT_W_LOST || w->restored)
            continue;
        (*workers)++;
        *slots += w->slots;
        int64_t b = w->slots - w->free;
        *busy += b > 0 ? b : 0;
    }
}

const char *vent_why(void *ud, const char *type) {
    vent_t *v = ud;
    for (size_t i = 0; i < v->nworkers; i++) {
        const vent_worker_t *w = v->workers[i];
        if (w->state == VENT_W_LOST)
            continue;
        for (size_t t = 0; t < w->ntypes; t++)
            if (strcmp(w->types[t], type) == 0)
                return NULL;
    }
    snprintf(v->why, sizeof v->why, "no live worker offers type \"%s\"", type);
    return v->why;
}

static void s_send(vent_t *v, const vent_worker_t *w, const msgpack_sbuffer *b) {
    v->dispatch_sends++;
    if (zmq_send(v->dispatch, w->routing, w->routing_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(v->dispatch, b->data, b->size, ZMQ_DONTWAIT) < 0)
        /* A worker that went away: its tasks come back through lost or
         * reconciliation; one line per task would flood the log. */
        farm_log(FARM_LOG_DEBUG, "vent", "op=send worker=%s err=\"%s\"", w->id, zmq_strerror(errno));
}

static void s_welcome(vent_t *v, vent_worker_t *w) {
    w->welcome_mono = farm_mono_ms();
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    farm_pack_welcome(&pk, v->epoch);
    s_send(v, w, &b);
    msgpack_sbuffer_destroy(&b);
}

void vent_sched_stop(void *ud, int64_t task, const char *worker) {
    vent_t *v = ud;
    vent_worker_t *w = s_by_id(v, worker);
    if (!w || w->state == VENT_W_LOST)
        return; /* its release will end the task as cancelled */
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    farm_pack_cancel(&pk, task);
    s_send(v, w, &b);
    msgpack_sbuffer_destroy(&b);
}

/* Release in the database every task worker w holds. */
static void s_release_all(vent_t *v, vent_worker_t *w, const char *reason) {
    int64_t n = 0;
    int64_t now = farm_now_ms();
    vent_work_added(v); /* leased tasks not yet started change no state */
    if (farm_store_release_worker(v->store, w->id, reason, now, &n) == 0 && n)
        farm_log(FARM_LOG_INFO, "vent", "event=released worker=%s tasks=%" PRId64 " reason=\"%s\"", w->id, n, reason);
}

static void s_set_types(vent_worker_t *w, const msgpack_object *types) {
    for (size_t i = 0; i < w->ntypes; i++)
        free(w->types[i]);
    w->ntypes = 0;
    if (!types)
        return;
    for (uint32_t i = 0; i < types->via.array.size && w->ntypes < VENT_TYPES_MAX; i++) {
        const msgpack_object *t = &types->via.array.ptr[i];
        if (t->type != MSGPACK_OBJECT_STR)
            continue;
        farm_str_t s = {t->via.str.ptr, t->via.str.size};
        if (!farm_type_valid(s))
            continue;
        char *c = strndup(s.ptr, s.len);
        if (c)
            w->types[w->ntypes++] = c;
    }
}

/* Forget confirmed sends. */
static void s_prune_sent(vent_worker_t *w) {
    size_t k = 0;
    for (size_t i = 0; i < w->nsent; i++)
        if (w->sent[i].seq > w->acked_seq)
            w->sent[k++] = w->sent[i];
    w->nsent = k;
}

typedef struct {
    vent_t *v;
    vent_worker_t *w;
    const msgpack_object *held;
} s_reconcile_t;

static void s_reconcile_cb(void *ud, int64_t task, int state) {
    s_reconcile_t *c = ud;
    for (uint32_t i = 0; c->held && i < c->held->via.array.size; i++) {
        const msgpack_object *h = &c->held->via.array.ptr[i];
        if (h->type == MSGPACK_OBJECT_POSITIVE_INTEGER && (int64_t)h->via.u64 == task)
            return;
    }
    for (size_t i = 0; i < c->w->nsent; i++)
        if (c->w->sent[i].task == task)
            return; /* sent after what it confirmed: still on its way */
    (void)farm_store_release(c->v->store, task, c->w->id, "the worker no longer holds the task", false,
                             farm_now_ms());
    vent_work_added(c->v);
}

/* Tasks leased to w in the database that w does not hold go back. */
static void s_reconcile(vent_t *v, vent_worker_t *w, const msgpack_object *held) {
    if (farm_store_begin(v->store))
        return;
    s_reconcile_t c = {v, w, held};
    farm_store_worker_tasks(v->store, w->id, s_reconcile_cb, &c);
    if (farm_store_commit(v->store))
        farm_store_rollback(v->store);
}

void vent_sched_on_worker(vent_t *v, const void *rid, size_t rid_len, const void *body, size_t len) {
    msgpack_zone z;
    if (!msgpack_zone_init(&z, 2048))
        return;
    msgpack_object o;
    farm_error_t e;
    farm_msg_hb_t m;
    if (rid_len == 0 || rid_len > sizeof(((vent_worker_t *)0)->routing) || farm_msg_unpack(body, len, &z, &o, &e) ||
        farm_msg_hb_decode(&o, &m, &e)) {
        farm_log(FARM_LOG_WARN, "vent", "event=bad_worker_message err=\"%s\"", e.message);
        goto out;
    }
    bool hb = farm_str_eq(m.m, "hb"), give = farm_str_eq(m.m, "give");
    if (!hb && !give && !farm_str_eq(m.m, "ready")) {
        farm_log(FARM_LOG_WARN, "vent", "event=bad_worker_message err=\"unknown kind\"");
        goto out;
    }
    vent_worker_t *w = s_by_routing(v, rid, rid_len);
    bool joined = false;
    if (!w) {
        if (!hb || !m.id.ptr) {
            /* A worker we do not know yet (we restarted): ask for a full hello. */
            vent_worker_t tmp = {.routing_len = rid_len};
            memcpy(tmp.routing, rid, rid_len);
            s_welcome(v, &tmp);
            goto out;
        }
        char id[201];
        farm_str_copy(id, sizeof id, m.id);
        w = s_by_id(v, id);
        if (w && w->restored) {
            /* A worker that held tasks before we restarted: it still does. */
            w->restored = false;
        } else if (w) {
            /* Same name, new process: whatever the old one held is gone. */
            if (w->state != VENT_W_LOST)
                farm_log(FARM_LOG_WARN, "vent", "event=worker_replaced worker=%s", id);
            s_release_all(v, w, "the worker restarted");
            w->nsent = 0;
        } else if (!(w = s_add(v, id))) {
            goto out;
        }
        memcpy(w->routing, rid, rid_len);
        w->routing_len = rid_len;
        w->welcomed = false;
        w->sent_seq = w->acked_seq = 0;
        w->state = VENT_W_ALIVE;
        w->free = 0;
        joined = true;
    }
    vent_wstate_t before = w->state;
    w->last_seen_ms = farm_now_ms();
    w->last_seen_mono = farm_mono_ms();
    if (!hb && !give)
        w->done_mono = w->last_seen_mono; /* a `ready`: one of its slots just freed */
    s_rate(w, m.done, w->last_seen_mono);
    if (m.epoch != v->epoch)
        w->welcomed = false;
    if (!w->welcomed) {
        /* Credit counts only once the worker numbers our sends from zero:
         * it says so with our epoch and sequence 0. Until then, ask again. */
        if (m.epoch == v->epoch && m.seq == 0) {
            w->welcomed = true;
            w->sent_seq = w->acked_seq = 0;
            w->nsent = 0;
            w->free = m.free;
            w->idle = m.idle;
            w->queued = m.queued;
        } else if (w->last_seen_mono - w->welcome_mono >= 500) {
            s_welcome(v, w);
        }
    } else if (m.seq >= w->acked_seq && m.seq <= w->sent_seq) {
        w->acked_seq = m.seq;
        w->free = m.free;
        w->idle = m.idle;
        w->queued = m.queued;
        s_prune_sent(w);
    }
    if (give && m.held) {
        /* Tasks it took but never started, given back so an idle worker
         * can have them: pending again, no attempt spent. */
        if (farm_store_begin(v->store) == 0) {
            int64_t now = farm_now_ms();
            for (uint32_t i = 0; i < m.held->via.array.size; i++) {
                const msgpack_object *id = &m.held->via.array.ptr[i];
                if (id->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                    (void)farm_store_release(v->store, (int64_t)id->via.u64, w->id, "given back", false, now);
            }
            if (farm_store_commit(v->store))
                farm_store_rollback(v->store);
        }
        vent_work_added(v);
    }
    if (hb) {
        v->db_dry = false; /* the types it offers may have changed */
        farm_str_copy(w->host, sizeof w->host, m.host);
        w->pid = m.pid;
        w->slots = m.slots;
        w->completed = m.completed;
        w->failed = m.failed;
        s_set_types(w, m.types);
        w->state = farm_str_eq(m.state, "draining") ? VENT_W_DRAINING : VENT_W_ALIVE;
        if (w->welcomed)
            s_reconcile(v, w, m.held);
    } else if (w->state == VENT_W_LOST) {
        w->state = VENT_W_ALIVE;
    }
    if (joined || before != w->state) {
        farm_log(FARM_LOG_INFO, "vent", "event=worker_%s worker=%s host=%s slots=%" PRId64, s_wstate[w->state], w->id,
                 w->host, w->slots);
        s_publish_worker(v, w);
    }
    if (s_credit(w) > 0)
        v->work_maybe = true;
out:
    msgpack_zone_destroy(&z);
}

/* ---- dispatch --------------------------------------------------------------- */

typedef struct {
    int64_t id, job, priority, timeout_ms;
    char type[FARM_TYPE_MAX + 1];
    void *args;
    size_t args_len;
    bool idle;        /* planned for an idle slot (else it waits in a queue) */
} s_cand_t;

typedef struct {
    s_cand_t *c;
    size_t n, cap;
} s_cands_t;

static int s_collect(void *ud, const farm_ready_t *t) {
    s_cands_t *cs = ud;
    if (cs->n == cs->cap) {
        size_t cap = cs->cap ? cs->cap * 2 : 64;
        s_cand_t *p = realloc(cs->c, cap * sizeof *p);
        if (!p)
            return 1;
        cs->c = p;
        cs->cap = cap;
    }
    s_cand_t *c = &cs->c[cs->n];
    c->id = t->id;
    c->job = t->job;
    c->priority = t->priority;
    c->timeout_ms = t->timeout_ms;
    snprintf(c->type, sizeof c->type, "%s", t->type ? t->type : "");
    c->args = NULL;
    c->args_len = 0;
    if (t->args && t->args_len) {
        c->args = malloc(t->args_len);
        if (!c->args)
            return 1;
        memcpy(c->args, t->args, t->args_len);
        c->args_len = t->args_len;
    }
    cs->n++;
    return 0;
}

static int s_cand_cmp(const void *a, const void *b) {
    const s_cand_t *x = a, *y = b;
    if (x->priority != y->priority)
        return x->priority > y->priority ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static bool s_offers(const vent_worker_t *w, const char *type) {
    for (size_t i = 0; i < w->ntypes; i++)
        if (strcmp(w->types[i], type) == 0)
            return true;
    return false;
}

/* True when worker a offers every type worker b offers. */
static bool s_covers(const vent_worker_t *a, const vent_worker_t *b) {
    for (size_t i = 0; i < b->ntypes; i++)
        if (!s_offers(a, b->types[i]))
            return false;
    return true;
}

/* A worker with idle slots and nothing in the database for it, while
 * another has tasks waiting for a slot: ask that one to give some back
 * (they return to pending and come to the idle one). This is how a task
 * never waits on a busy worker while another could start it. */
#define VENT_REVOKE_EVERY_MS 20
static void s_steal(vent_t *v) {
    if (!v->dry)
        return;
    v->dry = false;
    int64_t now = farm_mono_ms();
    for (size_t i = 0; i < v->nworkers; i++) {
        vent_worker_t *b = v->workers[i];
        if (b->queued <= 0 || b->state == VENT_W_LOST || !b->welcomed || now - b->revoke_mono < VENT_REVOKE_EVERY_MS)
            continue;
        int64_t idle = 0;
        for (size_t k = 0; k < v->nworkers; k++)
            if (k != i && s_covers(v->workers[k], b))
                idle += s_idle_now(v->workers[k]);
        if (!idle)
            continue;
        int64_t n = idle < b->queued ? idle : b->queued;
        msgpack_sbuffer buf;
        msgpack_sbuffer_init(&buf);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        farm_pack_revoke(&pk, n);
        s_send(v, b, &buf);
        msgpack_sbuffer_destroy(&buf);
        b->revoke_mono = now;
        b->queued -= n; /* what it still has comes in its next report */
        farm_log(FARM_LOG_DEBUG, "vent", "event=revoke worker=%s tasks=%" PRId64, b->id, n);
    }
}

/* What one worker is sent in a dispatch round, waiting for COMMIT: its
 * task messages one after another, in frames of up to VENT_FRAME_BYTES. */
#define VENT_PREFETCH_RECENT_MS 50
#define VENT_FRAME_BYTES (256 * 1024)
typedef struct {
    vent_worker_t *w;
    msgpack_sbuffer b; /* the messages, one after another */
    size_t n;          /* tasks packed for w this round */
    size_t *cuts;      /* where frames end in b (the last one ends at b.size) */
    size_t ncuts, capcuts;
} s_out_t;

/* Pack task t for o's worker; a message that would take the frame past
 * VENT_FRAME_BYTES starts the next one. Returns 0, or -ENOMEM. */
static int s_out_pack(s_out_t *o, const farm_msg_task_t *t, const void *args, size_t args_len) {
    size_t before = o->b.size, start = o->ncuts ? o->cuts[o->ncuts - 1] : 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &o->b, msgpack_sbuffer_write);
    farm_pack_task(&pk, t, args, args_len);
    if (before > start && o->b.size - start > VENT_FRAME_BYTES) {
        if (o->ncuts == o->capcuts) {
            size_t cap = o->capcuts ? o->capcuts * 2 : 8;
            size_t *p = realloc(o->cuts, cap * sizeof *p);
            if (!p) {
                o->b.size = before;
                return -ENOMEM;
            }
            o->cuts = p;
            o->capcuts = cap;
        }
        o->cuts[o->ncuts++] = before;
    }
    o->n++;
    return 0;
}

/* Send the frames o holds and free them. */
static void s_out_send_all(vent_t *v, s_out_t *o) {
    size_t start = 0;
    for (size_t i = 0; i <= o->ncuts; i++) {
        size_t end = i < o->ncuts ? o->cuts[i] : o->b.size;
        if (end > start) {
            msgpack_sbuffer f = {.size = end - start, .data = o->b.data + start, .alloc = 0};
            s_send(v, o->w, &f);
        }
        start = end;
    }
    msgpack_sbuffer_destroy(&o->b);
    free(o->cuts);
}

/* Leases a round got back from the store, looked up by task id. */
typedef struct {
    int64_t id, attempt;
} s_claim_t;
typedef struct {
    s_claim_t *got;
    size_t n;
} s_claims_t;

static void s_on_claimed(void *ud, int64_t task, int64_t attempt) {
    s_claims_t *cl = ud;
    cl->got[cl->n++] = (s_claim_t){task, attempt};
}

static int s_claim_cmp(const void *a, const void *b) {
    int64_t x = ((const s_claim_t *)a)->id, y = ((const s_claim_t *)b)->id;
    return x < y ? -1 : x > y;
}

/* Tasks a round may give w: its idle slots, plus room in its queue while
 * it works through short tasks (see s_queue_allowance), never more than
 * its credit. A round reads no more candidates than this adds up to: a
 * worker with 1000 credit that finishes a task every few ms takes a few,
 * and reading 1000 rows to hand out 4 was most of the ventilator's work. */
static int64_t s_usable(const vent_worker_t *w, int64_t mono) {
    int64_t c = s_credit(w), n = s_idle_now(w);
    if (mono - w->done_mono <= VENT_PREFETCH_RECENT_MS) {
        int64_t q = s_queue_allowance(w) - w->queued;
        if (q > 0)
            n += q;
    }
    return n < c ? n : c;
}

void vent_sched_dispatch(vent_t *v) {
    if (!v->work_maybe)
        return;
    v->work_maybe = false;
    /* What the workers can take now, per type offered. */
    const char *types[256];
    int64_t credit[256];
    size_t nt = 0;
    int64_t total = 0, mono0 = farm_mono_ms();
    for (size_t i = 0; i < v->nworkers; i++) {
        vent_worker_t *w = v->workers[i];
        int64_t c = s_usable(w, mono0);
        if (c <= 0)
            continue;
        total += c;
        for (size_t t = 0; t < w->ntypes; t++) {
            size_t k = 0;
            while (k < nt && strcmp(types[k], w->types[t]) != 0)
                k++;
            if (k == nt) {
                if (nt == 256)
                    continue;
                types[nt] = w->types[t];
                credit[nt++] = 0;
            }
            credit[k] += c;
        }
    }
    if (!total)
        return;
    if (v->db_dry) { /* nothing to ask the database for: a `ready` of every finished task comes here */
        v->dry = true;
        s_steal(v);
        return;
    }
    int64_t now = farm_now_ms();
    s_cands_t cs = {0};
    bool all_dry = true; /* every type got less than it asked for */
    for (size_t k = 0; k < nt; k++) {
        size_t before = cs.n;
        if (farm_store_ready(v->store, types[k], now, credit[k], s_collect, &cs)) {
            all_dry = false;
            break;
        }
        if ((int64_t)(cs.n - before) >= credit[k])
            all_dry = false;
    }
    if ((int64_t)cs.n < total)
        v->dry = true; /* the database had less than the credit: idle workers may steal */
    if (!cs.n) {
        v->db_dry = all_dry;
        free(cs.c);
        s_steal(v);
        return;
    }
    qsort(cs.c, cs.n, sizeof *cs.c, s_cand_cmp);
    s_out_t *out = calloc(v->nworkers, sizeof *out);
    size_t nout = 0;
    bool undo = false;
    if (!out || farm_store_begin(v->store)) {
        v->work_maybe = true;
        goto done;
    }
    /* Choose a worker for each candidate, in dispatch order, within what
     * each can take (s_usable: idle slots, plus queue room only while it
     * works through short tasks, so a worker held by a long task gets
     * nothing to wait behind it). An idle slot first (the task starts
     * now), then the most credit. */
    int64_t *planned = calloc(v->nworkers * 2, sizeof *planned), *room = planned ? planned + v->nworkers : NULL;
    int *pick = calloc(cs.n, sizeof *pick);
    int64_t *ids = calloc(cs.n, sizeof *ids);
    s_claims_t cl = {calloc(cs.n, sizeof *cl.got), 0};
    if (!planned || !pick || !ids || !cl.got) {
        undo = true;
        goto claimed;
    }
    for (size_t k = 0; k < v->nworkers; k++)
        room[k] = s_usable(v->workers[k], mono0);
    for (size_t i = 0; i < cs.n; i++) {
        s_cand_t *c = &cs.c[i];
        int best = -1;
        int64_t bi = -1, bc = 0;
        for (size_t k = 0; k < v->nworkers; k++) {
            vent_worker_t *w = v->workers[k];
            if (planned[k] >= room[k] || !s_offers(w, c->type))
                continue;
            int64_t wc = s_credit(w) - planned[k], wi = s_idle_now(w) - planned[k];
            wi = wi > 0 ? wi : 0;
            if (wi > bi || (wi == bi && wc > bc))
                best = (int)k, bi = wi, bc = wc;
        }
        pick[i] = best;
        if (best >= 0) {
            planned[best]++;
            c->idle = bi > 0;
        }
    }
    /* Lease each worker's share in one statement. */
    for (size_t k = 0; k < v->nworkers && !undo; k++) {
        size_t n = 0;
        for (size_t i = 0; i < cs.n; i++)
            if (pick[i] == (int)k)
                ids[n++] = cs.c[i].id;
        if (n && farm_store_claim_many(v->store, ids, n, v->workers[k]->id, s_on_claimed, &cl))
            undo = true;
    }
    if (!undo)
        qsort(cl.got, cl.n, sizeof *cl.got, s_claim_cmp);
    /* Then, in dispatch order, what was leased is numbered and packed. */
    for (size_t i = 0; i < cs.n && !undo; i++) {
        s_cand_t *c = &cs.c[i];
        s_claim_t key = {c->id, 0}, *got = pick[i] < 0 ? NULL : bsearch(&key, cl.got, cl.n, sizeof *cl.got, s_claim_cmp);
        if (!got)
            continue; /* no worker for it, or no longer dispatchable */
        vent_worker_t *best = v->workers[pick[i]];
        int64_t attempt = got->attempt;
        if (best->nsent == best->capsent) {
            size_t cap = best->capsent ? best->capsent * 2 : 8;
            vent_sent_t *p = realloc(best->sent, cap * sizeof *p);
            if (!p) {
                undo = true;
                break;
            }
            best->sent = p;
            best->capsent = cap;
        }
        if (!c->idle)
            best->queued++; /* it waits there: steal knows without a report */
        best->sent_seq++;
        best->sent[best->nsent++] = (vent_sent_t){c->id, best->sent_seq, farm_mono_ms()};
        farm_msg_task_t t = {.epoch = v->epoch, .seq = best->sent_seq, .id = c->id, .job = c->job,
                             .type = {c->type, (uint32_t)strlen(c->type)}, .attempt = attempt,
                             .timeout_ms = c->timeout_ms, .priority = c->priority};
        s_out_t *o = out;
        while (o < out + nout && o->w != best)
            o++;
        if (o == out + nout) {
            o->w = best;
            msgpack_sbuffer_init(&o->b);
            nout++;
        }
        if (s_out_pack(o, &t, c->args, c->args_len)) {
            best->sent_seq--;
            best->nsent--;
            undo = true;
            break;
        }
    }
claimed:
    free(planned);
    free(pick);
    free(ids);
    free(cl.got);
    /* Sent only after COMMIT: a frame may not leave before its leases are
     * stored, so a round is held whole until then. Out of memory half way,
     * the round is undone rather than leave a lease without its send. */
    if (undo || farm_store_commit(v->store)) {
        /* Nothing was leased: forget the sends and try again later. */
        farm_store_rollback(v->store);
        for (size_t i = 0; i < nout; i++) {
            out[i].w->sent_seq -= (int64_t)out[i].n;
            out[i].w->nsent -= out[i].n;
            out[i].b.size = 0;
            out[i].n = out[i].ncuts = 0;
        }
        v->work_maybe = true;
    } else if (all_dry && cl.n == cs.n) {
        v->db_dry = true; /* all it found is leased now */
    }
    bool sent = false;
    for (size_t i = 0; i < nout; i++) {
        sent |= out[i].n > 0;
        s_out_send_all(v, &out[i]);
    }
    /* A full round may leave more to do. */
    if (sent)
        v->work_maybe = true;
done:
    for (size_t i = 0; i < cs.n; i++)
        free(cs.c[i].args);
    free(cs.c);
    free(out);
    s_steal(v);
}

/* ---- periodic duties ------------------------------------------------------ */

/* Sends a worker has not confirmed for this long were lost on the way
 * (a reconnect drops what was queued for the old connection). */
#define VENT_SEND_LOST_MS 5000

void vent_sched_tick(vent_t *v) {
    int64_t mono = farm_mono_ms();
    for (size_t i = 0; i < v->nworkers; i++) {
        vent_worker_t *w = v->workers[i];
        if (w->welcomed && w->state != VENT_W_LOST && w->nsent > 0 && mono - w->sent[0].mono > VENT_SEND_LOST_MS &&
            mono - w->last_seen_mono < 2000) {
            /* It is alive but never got our last sends: start the sequence
             * again; its next heartbeat releases what it does not hold. */
            farm_log(FARM_LOG_WARN, "vent", "event=resync worker=%s unconfirmed=%zu", w->id, w->nsent);
            w->welcomed = false;
            w->nsent = 0;
            s_welcome(v, w);
        }
        if (w->state == VENT_W_LOST || mono - w->last_seen_mono < v->lost_after_ms)
            continue;
        w->state = VENT_W_LOST;
        w->welcomed = false;
        w->free = 0;
        w->nsent = 0;
        farm_log(FARM_LOG_WARN, "vent", "event=worker_lost worker=%s silent_ms=%" PRId64, w->id,
                 mono - w->last_seen_mono);
        s_release_all(v, w, "worker lost");
        s_publish_worker(v, w);
    }
    int64_t n = 0;
    (void)farm_store_promote_due(v->store, farm_now_ms(), &n);
    /* Delayed tasks become due without any event: look again. */
    vent_work_added(v);
}

void vent_pack_stats(vent_t *v, msgpack_packer *pk, bool with_ok) {
    int64_t counts[6] = {0}, jobs = 0, nw, slots, busy, c10, c60;
    uint32_t hist[FARM_HIST_N];
    (void)farm_store_counts(v->store, counts, &jobs);
    vent_sched_capacity(v, &nw, &slots, &busy);
    int64_t now_sec = farm_now_ms() / 1000;
    /* The current second is still being filled; count the ten before it. */
    if (farm_store_perf_read(v->store, now_sec - 1, &c10, &c60, hist))
        c10 = c60 = 0;
    msgpack_pack_map(pk, with_ok ? 9 : 8);
    if (with_ok)
        farm_pack_kv_bool(pk, "ok", true);
    farm_pack_str(pk, "counts");
    msgpack_pack_map(pk, 6);
    for (int i = 0; i < 6; i++)
        farm_pack_kv_int(pk, farm_state_name(i), counts[i]);
    farm_pack_kv_int(pk, "jobs", jobs);
    farm_pack_kv_int(pk, "workers", nw);
    farm_pack_kv_int(pk, "slots", slots);
    farm_pack_kv_int(pk, "busy", busy);
    farm_pack_str(pk, "throughput");
    msgpack_pack_map(pk, 2);
    farm_pack_kv_double(pk, "10s", (double)c10 / 10.0);
    farm_pack_kv_double(pk, "60s", (double)c60 / 60.0);
    farm_pack_str(pk, "latency_ms");
    msgpack_pack_map(pk, 2);
    farm_pack_kv_int(pk, "p50", farm_hist_quantile(hist, 0.50));
    farm_pack_kv_int(pk, "p99", farm_hist_quantile(hist, 0.99));
    farm_pack_kv_int(pk, "uptime_s", (farm_mono_ms() - v->started_mono) / 1000);
}

static void s_restore_cb(void *ud, const char *worker) {
    vent_t *v = ud;
    if (s_by_id(v, worker))
        return;
    vent_worker_t *w = s_add(v, worker);
    if (!w)
        return;
    w->restored = true;
    w->last_seen_ms = farm_now_ms();
    w->last_seen_mono = farm_mono_ms();
    farm_log(FARM_LOG_INFO, "vent", "event=worker_expected worker=%s", worker);
}

void vent_sched_restore(vent_t *v) { (void)farm_store_lease_holders(v->store, s_restore_cb, v); }
