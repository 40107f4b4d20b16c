/* worker_slot: the worker's slots, threads that take tasks from a shared
 * queue and run them one at a time each.
 *
 * The pool holds the tasks a worker received and has not started (ordered
 * as dispatch orders them: priority, then id), the slot threads, and a list
 * of events for the main thread (a task started, a task finished). A slot
 * that is free takes the head of the queue itself, runs it, puts the
 * outcome on the event list and takes the next, without waiting for the
 * main thread: a slot working through short tasks never sleeps between
 * them, and the main thread handles what piled up in one go. Whenever the
 * event list goes from empty to not empty, or a handler reports progress,
 * the pool writes the worker's wake fd (an eventfd the main thread polls),
 * so the main thread never waits on a task.
 *
 * One mutex guards the queue, the event list and what each slot holds; a
 * second one per slot guards the progress mailbox and the handler's error
 * text, which a handler may write from any of its threads (taken after the
 * pool's when both are). The mailbox coalesces a chatty handler's updates
 * into the latest one; the main thread applies the rate limit when it
 * takes them.
 *
 * Stopping: worker_pool_cancel(), worker_pool_timeouts() and
 * worker_pool_stop_all() record why (cancel, timeout, drain) for the task
 * a slot runs and make its stop fd readable; the handler notices through
 * farm_task_stopping() or by polling the fd. A stop is only delivered to
 * the task it was meant for: the slot's task is checked under the mutex.
 * A task that returns after its deadline is timed out as well.
 *
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
/* Bytes of an error text kept, NUL included. */
#define WORKER_ERROR_MAX 1024

/* Why a task was stopped before its handler returned. */
typedef enum {
    WORKER_STOP_NONE = 0, /* not stopped */
    WORKER_STOP_CANCEL,   /* a cancel from the ventilator */
    WORKER_STOP_TIMEOUT,  /* the task's timeout_ms passed */
    WORKER_STOP_DRAIN,    /* the worker drains and its grace period is over */
} worker_stop_t;

typedef struct worker_pool worker_pool_t;

/* One progress update to send. */
typedef struct {
    int64_t task, attempt;                   /* whose progress */
    int pct;                                 /* 0..100 */
    bool has_msg;                            /* msg is meaningful (the handler gave one) */
    char msg[WORKER_PROGRESS_MSG_MAX + 1];   /* NUL terminated */
} worker_progress_t;

typedef enum {
    WORKER_EV_START,  /* a slot started task (attempt) at started_ms */
    WORKER_EV_RESULT, /* a slot finished it: msg is the packed "result" message */
} worker_event_kind_t;

/* What the slots tell the main thread, in the order it happened. */
typedef struct worker_event {
    worker_event_kind_t kind;
    int slot;                   /* which slot, for logs */
    int64_t task, attempt;      /* which task */
    int64_t started_ms;         /* wall time the slot took it */
    /* WORKER_EV_RESULT: */
    bool ok;                    /* the attempt succeeded */
    bool cancelled;             /* it was stopped by a cancel */
    char *msg;                  /* the complete packed "result" message for the sink; malloc'd, the
                                   caller's to take (set to NULL) or worker_events_free frees it;
                                   NULL only when packing ran out of memory */
    size_t len;                 /* bytes at msg */
    char error[WORKER_ERROR_MAX]; /* why it failed, for the log ("" when ok) */
    int64_t duration_ms;        /* start to the handler's return */
    bool has_progress;          /* progress holds the last update, not yet sent: send it first */
    worker_progress_t progress; /* that update */
    struct worker_event *next;  /* the next event */
} worker_event_t;

/* Start `slots` slot threads. worker is the worker's name (borrowed, for
 * results); wake_fd the eventfd the main thread polls. NULL on failure
 * (logged; nothing left running). */
worker_pool_t *worker_pool_new(int slots, const char *worker, int wake_fd);

/* Stop what runs (as a drain), wait for the handlers to return, join the
 * threads and free everything; sets *p to NULL. Safe on NULL. */
void worker_pool_destroy(worker_pool_t **p);

/* Queue task t (decoded from raw, len bytes, which are copied) to run with
 * handler h. Returns 0 or -ENOMEM. */
int worker_pool_push(worker_pool_t *p, const farm_msg_task_t *t, const farm_handler_t *h, const void *raw,
                     size_t len);

/* Tasks in hand (slots running one, plus finished ones whose result
 * worker_pool_events has not handed over yet), and tasks waiting in the
 * queue. */
void worker_pool_counts(worker_pool_t *p, int64_t *busy, int64_t *queued);

/* True when task is running or waiting here, or finished with its result
 * not yet handed over. */
bool worker_pool_has(worker_pool_t *p, int64_t task);

/* Write the ids of the tasks held (running, then waiting, then finished
 * with the result not yet taken by worker_pool_events) into ids, at most
 * max of them. Returns how many there are: more than max when they did
 * not all fit. */
size_t worker_pool_held(worker_pool_t *p, int64_t *ids, size_t max);

/* While closed, slots take nothing from the queue (a drain). */
void worker_pool_set_open(worker_pool_t *p, bool open);

/* Take up to n waiting tasks back, newest first: their ids and attempts go
 * to ids/attempts (room for n). Returns how many. */
size_t worker_pool_take_back(worker_pool_t *p, size_t n, int64_t *ids, int64_t *attempts);

/* Cancel task: 1 when it was waiting (taken out; *attempt set), 2 when a
 * slot runs it and the stop was delivered, 3 when a slot runs it and it
 * was already stopped or finishing, 0 when it is not here. */
int worker_pool_cancel(worker_pool_t *p, int64_t task, int64_t *attempt);

/* Stop every running task that is past its deadline at now (monotonic
 * ms); returns how many were stopped (each logged). */
int worker_pool_timeouts(worker_pool_t *p, int64_t now);

/* The nearest deadline of a running task not yet stopped, 0 none. */
int64_t worker_pool_next_deadline(worker_pool_t *p);

/* Stop every running task for why. Returns how many stops were delivered. */
int worker_pool_stop_all(worker_pool_t *p, worker_stop_t why);

/* Take the progress updates of running tasks that the rate limit lets go
 * at now (monotonic ms; force: all that wait) into out (room for max).
 * *due gets the time the next held-back update may go, 0 none. Returns
 * how many were taken. */
size_t worker_pool_progress(worker_pool_t *p, int64_t now, bool force, worker_progress_t *out, size_t max,
                            int64_t *due);

/* Take every event that happened since the last call, oldest first (NULL
 * none). Free the list with worker_events_free. */
worker_event_t *worker_pool_events(worker_pool_t *p);

/* Free a list of events and the messages still in them. */
void worker_events_free(worker_event_t *e);

#endif
