/* worker_loop: the worker's main thread.
 *
 * One zmq_poll loop over the ventilator's DEALER, the feed's SUB, the
 * slots' wake fd, the signal pipe and (when the outbox is stalled) the
 * sink's PUSH. It takes tasks and hands them to free slots, collects
 * results into the outbox, forwards progress, enforces timeouts, applies
 * acks, sends heartbeats and credit, and drains on a signal. It never
 * waits on a task: every wait is the poll, with a timeout set by the
 * nearest timer (heartbeat, a deadline, a rate-limited progress update, a
 * resend, a drain step).
 *
 * Credit. `free` in hb and ready is what the worker can start now: idle
 * slots, but never more than the room left in the unacknowledged results
 * (--max-unacked), and 0 while draining. The loop remembers the value the
 * ventilator last heard, less one per task received since, and sends
 * "ready" whenever the real value differs: a slot freed, an ack made room,
 * or a task had to be refused.
 *
 * Drain (first SIGTERM/SIGINT): state "draining", free 0, tasks that still
 * arrive are refused; running tasks get --grace-ms to finish, then are
 * stopped ("worker draining: grace period over"); then the loop waits up
 * to 5 s for the sink's acks, sends a final heartbeat and returns 0. A
 * second signal stops every task and returns 1 at once.
 */
#ifndef WORKER_LOOP_H
#define WORKER_LOOP_H

#include "farm_config.h"
#include "worker_registry.h"

#include <stdint.h>

#define WORKER_NAME_MAX 200   /* bytes of a worker name */
#define WORKER_SLOTS_MAX 4096 /* slots per worker */

/* Everything the loop needs from the command line. */
typedef struct {
    farm_endpoints_t ep;                /* dispatch, results and feed are used */
    char name[WORKER_NAME_MAX + 1];     /* the worker's name (hb id, ack topic) */
    char host[256];                     /* host name for heartbeats */
    int slots;                          /* 1..WORKER_SLOTS_MAX */
    int64_t heartbeat_ms;               /* between heartbeats */
    int64_t grace_ms;                   /* drain: time running tasks get to finish */
    int64_t kill_grace_ms;              /* drain: time a stopped task gets to return before giving up */
    int64_t max_unacked;                /* results held for the sink before free drops to 0 */
    int64_t prefetch;                   /* tasks accepted beyond the slots, waiting for one */
    int64_t max_frame;                  /* bytes of an incoming message */
} worker_config_t;

/* Run the worker until it has drained (returns 0) or is aborted by a
 * second signal or a fatal error (returns 1). sig_fd is the read end of a
 * non-blocking pipe with one byte written per SIGTERM/SIGINT. cfg and reg
 * are borrowed. After 1, slot threads may still be running handlers: the
 * caller must exit without freeing reg. */
int worker_loop_run(const worker_config_t *cfg, const worker_registry_t *reg, int sig_fd);

#endif
