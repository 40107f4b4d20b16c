/* worker_slot: one slot of a worker, a thread that runs one task at a time.
 *
 * The main thread owns every slot: it assigns a task, stops it, takes its
 * progress and collects its result; the slot's thread only runs the handler
 * and packs the result. They share a small mailbox under a mutex instead of
 * a socket: a handler may report progress from any of its threads, the
 * mailbox coalesces a chatty handler's updates into the latest one (the
 * main thread applies the rate limit when it takes it), and a finished
 * result waits in the slot, never in a queue that could fill. Whenever
 * there is something to take, the slot writes to the worker's wake fd (an
 * eventfd the main thread polls), so the main thread never waits on a task.
 *
 * Stopping: worker_slot_stop() records why (cancel, timeout, drain) and
 * makes the task's stop fd readable; the handler notices through
 * farm_task_stopping() or by polling the fd. The main thread enforces
 * deadlines with its poll timeout, and the slot itself also treats a task
 * that returns after its deadline as timed out.
 *
 * A slot's phases: idle -> assigned -> running -> finishing -> done -> idle.
 * The functions below are for the main thread only, except that the
 * farm_task_* functions of farm_plugin.h (implemented here) are for the
 * handler.
 */
#ifndef WORKER_SLOT_H
#define WORKER_SLOT_H

#include "farm_plugin.h"
#include "farm_proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Progress is sent at most once per this many ms per task (100 is exempt). */
#define WORKER_PROGRESS_MIN_MS 100
/* Bytes of a progress message kept, NUL excluded. */
#define WORKER_PROGRESS_MSG_MAX 255

/* Why a task was stopped before its handler returned. */
typedef enum {
    WORKER_STOP_NONE = 0, /* not stopped */
    WORKER_STOP_CANCEL,   /* a cancel from the ventilator */
    WORKER_STOP_TIMEOUT,  /* the task's timeout_ms passed */
    WORKER_STOP_DRAIN,    /* the worker drains and its grace period is over */
} worker_stop_t;

typedef struct worker_slot worker_slot_t;

/* One progress update to send. */
typedef struct {
    int64_t task, attempt;                   /* whose progress */
    int pct;                                 /* 0..100 */
    bool has_msg;                            /* msg is meaningful (the handler gave one) */
    char msg[WORKER_PROGRESS_MSG_MAX + 1];   /* NUL terminated */
} worker_progress_t;

/* A finished task, taken from its slot. */
typedef struct {
    int64_t task, attempt;      /* which task */
    bool ok;                    /* the attempt succeeded */
    bool cancelled;             /* it was stopped by a cancel */
    char *msg;                  /* the complete packed "result" message for the sink; malloc'd, the
                                   caller's to free; NULL only when packing ran out of memory */
    size_t len;                 /* bytes at msg */
    char error[1024];           /* why it failed, for the log ("" when ok) */
    int64_t duration_ms;        /* assignment to the handler's return */
    bool has_progress;          /* progress holds the last update, not yet sent: send it first */
    worker_progress_t progress; /* that update */
} worker_slot_result_t;

/* A new idle slot with its thread started. index is for logs; worker is the
 * worker's name put into result messages and wake_fd the eventfd to poke,
 * both borrowed for the slot's life. Returns NULL on failure (logged). */
worker_slot_t *worker_slot_new(int index, const char *worker, int wake_fd);

/* Stop the slot's thread and free the slot; sets *p to NULL, safe on NULL
 * and twice. A task still running is stopped (WORKER_STOP_DRAIN) and
 * waited for, so call it on idle slots or accept the wait. */
void worker_slot_destroy(worker_slot_t **p);

/* Hand task t to the idle slot s, to run with handler h (borrowed, must
 * outlive the task). The args of t are copied; t may be freed on return.
 * The deadline is now_mono + t->timeout_ms when that is > 0 (and under a
 * century: longer means none); now_wall is the
 * started_ms of the result. Returns 0, -EBUSY when the slot holds a task,
 * -ENOMEM. */
int worker_slot_assign(worker_slot_t *s, const farm_handler_t *h, const farm_msg_task_t *t, int64_t now_wall,
                       int64_t now_mono);

/* The task id the slot holds from assignment until it is collected, 0
 * when idle. */
int64_t worker_slot_task(const worker_slot_t *s);

/* The monotonic deadline (ms) the main thread must enforce, 0 when there is
 * none: idle, no timeout, or the task has already been told to stop. */
int64_t worker_slot_deadline(const worker_slot_t *s);

/* Stop the slot's task for reason why (not WORKER_STOP_NONE). Returns true
 * when the stop was delivered, false when the slot is idle, its handler has
 * already returned or the task was already stopped. */
bool worker_slot_stop(worker_slot_t *s, worker_stop_t why);

/* Take the pending progress update of the slot's task into *p when the rate
 * limit allows it at now_mono (force: ignore the limit). Returns true when
 * *p is to be sent. Otherwise *due is the monotonic time at which the
 * pending update may go, or 0 when nothing is pending. */
bool worker_slot_progress_take(worker_slot_t *s, int64_t now_mono, bool force, worker_progress_t *p,
                               int64_t *due);

/* When the slot's task is done, move its outcome into *r (the caller owns
 * r->msg), make the slot idle and return true; otherwise return false and
 * leave *r untouched. */
bool worker_slot_collect(worker_slot_t *s, worker_slot_result_t *r);

#endif
