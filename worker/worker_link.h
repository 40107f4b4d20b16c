/* worker_link: a worker's three sockets to the head.
 *
 *   DEALER -> ventilator (dispatch endpoint; the ventilator binds a ROUTER)
 *             heartbeats and credit out, welcome/task/cancel in. Its routing
 *             id is "<name>#<16 hex>", random per process, so the ventilator
 *             tells a restarted worker from the one it replaces.
 *   PUSH   -> sink (results endpoint): start, prog, result.
 *   SUB    <- sink (feed endpoint), topic "ack/<name>" only: acknowledgements
 *             of stored results, two frames: topic, {"acks": [[task, attempt], ...]}.
 *
 * Every socket has explicit high-water marks and LINGER, ZMQ_IMMEDIATE on
 * the two outgoing ones (a message for a peer that is not connected fails
 * with EAGAIN at once instead of piling up in a pipe to nowhere: the
 * outbox keeps results itself and a stale heartbeat is worth nothing), a
 * bound on incoming message size, and ZMTP heartbeats so a vanished head is
 * noticed. Only the thread that created the link may use it. Everything
 * that arrives is decoded with the farm_proto tables; garbage is logged and
 * dropped here and never reaches the caller.
 */
#ifndef WORKER_LINK_H
#define WORKER_LINK_H

#include "farm_config.h"
#include "farm_proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

typedef struct worker_link worker_link_t;

/* One decoded message from the ventilator; the strings and objects in msg
 * borrow from the link's current frame and from zone until
 * worker_link_in_release() and the next worker_link_recv_vent(). */
typedef struct {
    const char *raw;     /* the message's bytes, in the frame */
    size_t len;          /* their number */
    msgpack_zone zone;   /* the decoded objects */
    msgpack_object obj;  /* the whole message */
    farm_msg_task_t msg; /* its fields; msg.m is "welcome", "task" or "cancel" */
} worker_link_in_t;

/* Called once per acknowledged result. */
typedef void (*worker_link_ack_fn)(void *ud, int64_t task, int64_t attempt);

/* Create the context and the three sockets and connect them to ep. name is
 * the worker's name (1..200 bytes): it makes the routing id and the ack
 * topic. max_frame bounds an incoming message. Returns NULL on failure
 * (logged). */
worker_link_t *worker_link_new(const farm_endpoints_t *ep, const char *name, int64_t max_frame);

/* Close the sockets and the context; sets *p to NULL, safe on NULL and
 * twice. Unless abort, the DEALER and the PUSH linger briefly so a final
 * heartbeat and the last results can still leave; with abort nothing does. */
void worker_link_destroy(worker_link_t **p, bool abort);

/* The sockets, for zmq_poll. Borrowed. */
void *worker_link_dealer(const worker_link_t *l);
void *worker_link_push(const worker_link_t *l);
void *worker_link_sub(const worker_link_t *l);

/* The routing id ("<name>#<16 hex>"). Borrowed. */
const char *worker_link_identity(const worker_link_t *l);

/* Send data to the ventilator without blocking. Returns 0, -EAGAIN when it
 * would block or no ventilator is connected, or another -errno. */
int worker_link_send_vent(worker_link_t *l, const void *data, size_t len);

/* Send data to the sink without blocking; same returns. The signature of
 * a worker_outbox_send_fn, with the link as ud. */
int worker_link_send_sink(void *link, const void *data, size_t len);

/* Receive the next valid message from the ventilator into *in. A frame
 * may carry several messages, one after another: they come one per call.
 * Returns 1 when *in holds one (release it with worker_link_in_release()),
 * 0 when nothing more is waiting, or -errno on a socket error (logged).
 * Invalid messages are logged and skipped; bytes that cannot be framed
 * drop the rest of their frame. */
int worker_link_recv_vent(worker_link_t *l, worker_link_in_t *in);

/* True when a received frame still holds messages: the socket's poll does
 * not see them, so the caller must not wait before reading them. */
bool worker_link_vent_pending(const worker_link_t *l);

/* Release what worker_link_recv_vent() filled. */
void worker_link_in_release(worker_link_in_t *in);

/* Read the ack messages waiting on the SUB (up to a batch of 1000; poll
 * again for more) and call on_ack for each ack in them. Returns the number
 * of messages read, or -errno on a socket error
 * (logged). Invalid messages are logged and skipped whole. */
int worker_link_recv_acks(worker_link_t *l, worker_link_ack_fn on_ack, void *ud);

#endif
