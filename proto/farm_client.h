/* farm_client: the C client of the front door (spec: front-door.md).
 *
 * A client is one REQ socket to one ventilator, driven as a lazy pirate:
 * send the request, poll for the reply up to a timeout, and when none comes
 * close the socket (LINGER 0 drops the stale request), open a new one and
 * send again, a bounded number of times. A REQ socket that lost its reply
 * is stuck in "expect a reply" state, so reopening, not resending on the
 * same socket, is what makes a retry possible at all. Resending means the
 * server may see a request twice: reads are harmless, and a `submit` is
 * safe only when it carries an idempotency `key` (the `farm` command always
 * sends one).
 *
 * The reply is unpacked in place: strings and binaries of the returned
 * msgpack_object point into the received message, which the client keeps
 * until the next call on it or its destruction. The object tree itself
 * lives in the caller's zone. So a reply is usable while both live:
 *
 *     msgpack_zone z; msgpack_zone_init(&z, 4096);
 *     msgpack_object r; farm_error_t e;
 *     int rc = farm_client_call(c, buf, len, &z, &r, &e);
 *     ... use r (until the next farm_client_call on c) ...
 *     msgpack_zone_destroy(&z);
 *
 * Copy what must outlive the next call. The client checks the shape every
 * reply must have (a map with a boolean "ok"; when ok is false an "error"
 * map with a string "code") and nothing more: the meaning of the other keys
 * is the caller's business. A client is not thread-safe; use one per
 * thread. It owns its own ZeroMQ context.
 *
 * CURVE: a client takes the process's client keys (farm_curve.h) when it
 * is made, or those given to farm_client_set_curve, and applies them to
 * every socket it opens, retries included. A head that refuses the key
 * never answers, so that shows as FARM_ETIMEOUT, with a hint in the text.
 */
#ifndef FARM_CLIENT_H
#define FARM_CLIENT_H

#include "farm_curve.h"
#include "farm_msg.h"

#include <msgpack.h>
#include <stddef.h>

/* High-water marks of the REQ socket. A REQ socket has at most one request
 * in flight, so anything small bounds it; explicit rather than libzmq's
 * default of 1000. */
#define FARM_CLIENT_HWM 16

typedef struct farm_client_t farm_client_t;

/* A client of the front door at `endpoint` ("tcp://host:port", "ipc://...";
 * use farm_endpoint_set first to accept "host:port"). Each attempt waits
 * timeout_ms (1..INT_MAX) for its reply; a request is resent up to
 * `retries` (>= 0) more times on fresh sockets. The socket is connected at
 * once, so an endpoint libzmq rejects fails here; connecting is
 * asynchronous, so an unreachable server only shows as a timeout later.
 * Returns NULL with errno set on failure (EINVAL for bad arguments or an
 * endpoint libzmq refuses, ENOMEM, or whatever libzmq reports). The caller
 * owns the result and frees it with farm_client_destroy. */
farm_client_t *farm_client_new(const char *endpoint, int timeout_ms, int retries);

/* Use CURVE with keys (copied) on this client's sockets from now on, or
 * plain connections when keys is NULL; the socket is reopened at once.
 * farm_client_new starts with the process's keys (farm_curve_client_keys(),
 * set up by farm_curve_client_setup), so most programs never call this.
 * Returns 0 or -errno (the endpoint or the keys were refused; the next call
 * tries again). */
int farm_client_set_curve(farm_client_t *c, const farm_curve_keys_t *keys);

/* Close the socket, drop the last reply and free the client; *c becomes
 * NULL. Safe with c or *c NULL, so safe twice. Objects returned by earlier
 * calls are invalid afterwards. */
void farm_client_destroy(farm_client_t **c);

/* The endpoint the client talks to (borrowed, lives as long as c). */
const char *farm_client_endpoint(const farm_client_t *c);

/* Send the request req[0..len) (one complete MessagePack map, borrowed,
 * copied before return) and wait for the one-frame reply, retrying as
 * described above. The reply is unpacked into *reply with zone z (the
 * caller initialises and destroys z); see the top of this file for how
 * long it stays valid. Any earlier reply of this client becomes invalid
 * at the start of the call.
 *
 * Returns:
 *   0              the reply has ok true; *reply is the whole reply map.
 *   FARM_E* code   the reply has ok false: the code of error.code through
 *                  farm_err_from_name (FARM_EINTERNAL for a name this
 *                  library does not know), e->message and e->field (""
 *                  when absent) copied from the reply, cut to their sizes;
 *                  *reply is the whole reply, so the caller can read the
 *                  code's wire name or other keys.
 *   FARM_ETIMEOUT  no reply on any attempt; e->message is
 *                  "no reply from EP within N ms" (N: timeout_ms, with the
 *                  number of attempts appended when more than one).
 *   FARM_EPROTO    a reply came but is not one MessagePack map with a
 *                  boolean "ok" (and an error map with a string "code"
 *                  when ok is false), or has more than one frame.
 *                  e->message starts with "malformed reply". *reply holds
 *                  the unpacked value when there was one, else nil.
 *   -errno         libzmq or the system failed (e filled); the socket is
 *                  reopened on the next call.
 * *reply is nil on every result that does not say otherwise. */
int farm_client_call(farm_client_t *c, const void *req, size_t len, msgpack_zone *z, msgpack_object *reply,
                     farm_error_t *e);

/* farm_client_call with the request in a msgpack_sbuffer (borrowed). */
int farm_client_callv(farm_client_t *c, const msgpack_sbuffer *req, msgpack_zone *z, msgpack_object *reply,
                      farm_error_t *e);

#endif
