/* vent: the ventilator's state, shared by its nouns.
 *
 * The ventilator owns the front door (vent_front.c) and the dispatch of
 * tasks to workers (vent_sched.c). Workers connect a DEALER to its ROUTER:
 * PUSH/PULL cannot address a worker, and the farm must send a task only to
 * a worker that offers its type and has a free slot now. Each worker
 * grants credit: its free slots as of the last task sequence number it
 * received, so credit = free - (sent_seq - acked_seq), never more tasks in
 * flight than it can start at once. Nothing queues on a busy worker.
 *
 * The ventilator is the one that decides a worker is lost (its heartbeats
 * stop) and releases what it held; it rebuilds its view of workers from
 * their heartbeats after a restart (a new epoch), and of tasks from the
 * database. It reports what it changes to the sink, which owns the feed.
 */
#ifndef VENT_H
#define VENT_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "farm_config.h"
#include "farm_store.h"

#define VENT_TYPES_MAX 64

typedef enum { VENT_W_ALIVE, VENT_W_DRAINING, VENT_W_LOST } vent_wstate_t;

/* A task sent in this epoch whose receipt the worker has not confirmed. */
typedef struct {
    int64_t task; /* task id */
    int64_t seq;  /* its sequence number */
    int64_t mono; /* when it was sent (monotonic ms) */
} vent_sent_t;

typedef struct {
    char id[201];                  /* worker name, the identity in the database */
    unsigned char routing[256];    /* ROUTER identity of its DEALER */
    size_t routing_len;            /* bytes of routing */
    char host[256];                /* host name it reported */
    int64_t pid, slots;            /* as reported */
    char *types[VENT_TYPES_MAX];   /* handler names it offers (owned) */
    size_t ntypes;                 /* entries of types */
    int64_t free;                  /* tasks it can take at acked_seq: idle slots + prefetch room */
    int64_t idle;                  /* of those, idle slots (nothing running, nothing waiting) */
    int64_t queued;                /* tasks waiting on it for a slot, as last reported */
    int64_t revoke_mono;           /* when we last asked it to give waiting tasks back */
    int64_t done_mono;             /* when it last freed a slot (a `ready`): it is churning */
    int64_t done_seen;             /* attempts it had finished at rate_mono (its `done` counter) */
    int64_t rate_mono;             /* when done_seen was taken, 0 not yet */
    double rate;                   /* attempts it finishes per ms, smoothed */
    int64_t acked_seq;             /* last seq it confirmed in this epoch */
    int64_t sent_seq;              /* last seq sent in this epoch */
    bool welcomed;                 /* it speaks our epoch */
    bool restored;                 /* known only from leases in the database (we restarted) */
    int64_t welcome_mono;          /* when we last asked it to start our sequence */
    vent_wstate_t state;           /* alive, draining or lost */
    int64_t last_seen_ms;          /* wall time of its last message */
    int64_t last_seen_mono;        /* monotonic time of the same */
    int64_t completed, failed;     /* its counters */
    vent_sent_t *sent;             /* unconfirmed sends (<= slots) */
    size_t nsent, capsent;         /* entries and capacity of sent */
} vent_worker_t;

typedef struct {
    farm_store_t *store;           /* the database */
    farm_limits_t limits;          /* input limits */
    void *dispatch;                /* ROUTER to workers */
    uint64_t dispatch_sends;       /* messages sent on dispatch, ever (the loop re-checks it after any) */
    void *report;                  /* PUSH to the sink (feed events), may be NULL */
    vent_worker_t **workers;       /* every worker seen, lost ones too */
    size_t nworkers, capworkers;   /* entries and capacity */
    int64_t epoch;                 /* this run's epoch (start time in ms) */
    int64_t started_mono;          /* for uptime */
    int64_t lost_after_ms;         /* silence that makes a worker lost */
    bool work_maybe;               /* a dispatch round may find work */
    bool db_dry;                   /* the last round took every ready task of every type offered: none
                                    * until the ventilator makes some ready or a tick (delayed tasks) */
    bool dry;                      /* the last round found less work than credit */
    msgpack_sbuffer events;        /* pending "task" feed events (packed maps) */
    size_t nevents;                /* number of them */
    char why[256];                 /* buffer of vent_why */
} vent_t;

/* ---- vent_front.c -------------------------------------------------------- */

/* Answer one front-door request (req[0..len), untrusted) into reply,
 * which receives exactly one msgpack map. Never fails: every error
 * becomes an error reply. */
void vent_front_handle(vent_t *v, const void *req, size_t len, msgpack_sbuffer *reply);

/* ---- vent_sched.c -------------------------------------------------------- */

/* Handle one message from a worker (routing identity + body). */
void vent_sched_on_worker(vent_t *v, const void *rid, size_t rid_len, const void *body, size_t len);
/* The ventilator made tasks ready (stored, released, promoted, retried):
 * the next round asks the database again. */
void vent_work_added(vent_t *v);
/* Send as many dispatchable tasks as workers have credit for. */
void vent_sched_dispatch(vent_t *v);
/* Periodic duties: lost workers, due retries. */
void vent_sched_tick(vent_t *v);
/* Ask the worker holding task to stop it (a cancel). */
void vent_sched_stop(void *v, int64_t task, const char *worker);
/* Why a pending task of type waits, or NULL (farm_why_fn). */
const char *vent_why(void *v, const char *type);
/* Totals over live workers. */
void vent_sched_capacity(const vent_t *v, int64_t *workers, int64_t *slots, int64_t *busy);
/* Pack one worker map as in the `workers` reply. */
void vent_pack_worker(msgpack_packer *pk, const vent_worker_t *w);
/* Pack the body of a stats reply (without "ok" when with_ok is false). */
void vent_pack_stats(vent_t *v, msgpack_packer *pk, bool with_ok);
/* Store change hook: queue a task feed event. */
void vent_on_change(void *v, const farm_change_t *c);
/* Send the queued task events and a message on topic to the sink. */
void vent_flush_events(vent_t *v);
void vent_publish(vent_t *v, const char *topic, const msgpack_sbuffer *body);
/* After a restart: every worker the database says holds tasks is
 * expected back; one that does not return within lost_after_ms is lost. */
void vent_sched_restore(vent_t *v);
/* Free every worker. */
void vent_sched_destroy(vent_t *v);

#endif
