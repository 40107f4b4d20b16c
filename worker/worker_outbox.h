/* worker_outbox: what a worker owes the sink.
 *
 * Two kinds of messages go to the sink. Notes ("start", "prog") are sent
 * once: when the socket cannot take them they wait in a bounded FIFO, and
 * when that is full the oldest is dropped (a later note or the result says
 * more). Results are never dropped: one stays in the outbox from the moment
 * it is made until the sink acknowledges (task, attempt), and is sent again
 * every resend interval until then, at most a burst of them per tick, so a
 * sink that restarted or lost a batch gets them back. Sending never blocks:
 * a send that would block leaves the message queued and marks the outbox
 * stalled, and the caller polls for POLLOUT before flushing again.
 *
 * Order: queued notes go before results, and results in the order they were
 * made, so a task's "start" and "prog" reach the sink before its result.
 * The outbox does not know about sockets: it sends through a function, so
 * it can be tested alone.
 */
#ifndef WORKER_OUTBOX_H
#define WORKER_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Send one message without blocking. Returns 0 when sent, -EAGAIN when it
 * would block (try later), another negative errno on a hard error. */
typedef int (*worker_outbox_send_fn)(void *ud, const void *data, size_t len);

typedef struct {
    size_t notes_max;        /* notes kept while stalled */
    int64_t resend_ms;       /* a result unacknowledged this long is sent again */
    int64_t tick_ms;         /* resends happen at most once per tick ... */
    size_t resend_burst;     /* ... and at most this many per tick */
    worker_outbox_send_fn send; /* how to send */
    void *ud;                /* its first argument */
} worker_outbox_cfg_t;

typedef struct worker_outbox worker_outbox_t;

/* A new empty outbox (cfg is copied), or NULL when out of memory. */
worker_outbox_t *worker_outbox_new(const worker_outbox_cfg_t *cfg);

/* Free *p and everything queued, set *p to NULL; safe on NULL and twice. */
void worker_outbox_destroy(worker_outbox_t **p);

/* Queue the result message data (len bytes, malloc'd; the outbox takes
 * ownership) of (task, attempt), made at now (monotonic ms); the next
 * worker_outbox_flush() sends it. */
void worker_outbox_result(worker_outbox_t *ob, int64_t task, int64_t attempt, char *data, size_t len, int64_t now);

/* Queue a note (the outbox takes ownership of the malloc'd data) behind
 * what is already waiting; the next worker_outbox_flush() sends it. */
void worker_outbox_note(worker_outbox_t *ob, char *data, size_t len, int64_t now);

/* The sink stored (task, attempt): forget its result. Returns true when it
 * was held. */
bool worker_outbox_ack(worker_outbox_t *ob, int64_t task, int64_t attempt);

/* Send what is queued and what is due again at now, until the socket would
 * block. Messages go several to a frame, one after another. */
void worker_outbox_flush(worker_outbox_t *ob, int64_t now);

/* True when a send would have blocked and something still waits: poll the
 * socket for POLLOUT and flush when it is writable. */
bool worker_outbox_stalled(const worker_outbox_t *ob);

/* The monotonic time of the next resend, 0 when no result waits for one. */
int64_t worker_outbox_next_due(const worker_outbox_t *ob);

/* Results held (sent or not, not yet acknowledged). */
size_t worker_outbox_count(const worker_outbox_t *ob);

/* Write the task ids of the held results into ids (room for max); returns
 * how many were written. */
size_t worker_outbox_held(const worker_outbox_t *ob, int64_t *ids, size_t max);

/* Counters for logs: results sent again, notes dropped. */
uint64_t worker_outbox_resent(const worker_outbox_t *ob);
uint64_t worker_outbox_dropped(const worker_outbox_t *ob);

#endif
