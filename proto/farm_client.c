/* farm_client: lazy-pirate REQ client of the front door (see farm_client.h).
 *
 * State is one socket (NULL between a failed attempt and the next send) and
 * one zmq_msg_t holding the last reply, whose bytes the caller's unpacked
 * object may point into. Every path that leaves the REQ socket in a state
 * other than "ready to send" (a timeout, a failed send or receive, a
 * multi-frame reply) closes it, so the next attempt or call starts clean.
 */
#include "farm_client.h"
#include "farm_config.h"
#include "farm_curve.h"
#include "farm_err.h"
#include "farm_log.h"
#include "farm_time.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

struct farm_client_t {
    void *ctx;                   /* own ZeroMQ context */
    void *sock;                  /* REQ socket, NULL until (re)opened */
    char endpoint[FARM_EP_MAX];  /* where to connect */
    int timeout_ms;              /* wait for one reply */
    int retries;                 /* resends after the first attempt */
    zmq_msg_t last;              /* bytes of the last reply; the caller's
                                    object points into them */
    farm_curve_keys_t curve;     /* CURVE keys applied to every socket */
    bool curve_on;               /* whether curve is used */
};

static void s_close(farm_client_t *c) {
    if (c->sock) {
        if (zmq_close(c->sock) != 0)
            farm_log(FARM_LOG_WARN, "client", "op=close error=\"%s\"", zmq_strerror(errno));
        c->sock = NULL;
    }
}

/* Open and connect a fresh REQ socket. Returns 0 or -errno. */
static int s_open(farm_client_t *c) {
    s_close(c);
    void *s = zmq_socket(c->ctx, ZMQ_REQ);
    if (!s)
        return -errno;
    int linger = 0, hwm = FARM_CLIENT_HWM, sndtimeo = c->timeout_ms;
    if (zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(s, ZMQ_SNDTIMEO, &sndtimeo, sizeof sndtimeo) != 0 ||
        (c->curve_on && farm_curve_keys_apply(&c->curve, s) != 0) || zmq_connect(s, c->endpoint) != 0) {
        int err = errno;
        (void)zmq_close(s);
        return -err;
    }
    c->sock = s;
    return 0;
}

farm_client_t *farm_client_new(const char *endpoint, int timeout_ms, int retries) {
    if (!endpoint || !*endpoint || strlen(endpoint) >= FARM_EP_MAX || timeout_ms <= 0 || retries < 0) {
        errno = EINVAL;
        return NULL;
    }
    farm_client_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    memcpy(c->endpoint, endpoint, strlen(endpoint) + 1);
    c->timeout_ms = timeout_ms;
    c->retries = retries;
    const farm_curve_keys_t *keys = farm_curve_client_keys();
    if (keys) {
        c->curve = *keys;
        c->curve_on = true;
    }
    if (zmq_msg_init(&c->last) != 0) {
        int err = errno;
        free(c);
        errno = err;
        return NULL;
    }
    c->ctx = zmq_ctx_new();
    if (!c->ctx) {
        int err = errno;
        (void)zmq_msg_close(&c->last);
        free(c);
        errno = err;
        return NULL;
    }
    int rc = s_open(c);
    if (rc) {
        farm_client_destroy(&c);
        errno = -rc;
        return NULL;
    }
    return c;
}

void farm_client_destroy(farm_client_t **cp) {
    if (!cp || !*cp)
        return;
    farm_client_t *c = *cp;
    s_close(c);
    (void)zmq_msg_close(&c->last);
    /* LINGER 0 on every socket, so terminating cannot block on queued sends. */
    while (zmq_ctx_term(c->ctx) != 0 && errno == EINTR)
        ;
    free(c);
    *cp = NULL;
}

const char *farm_client_endpoint(const farm_client_t *c) { return c->endpoint; }

int farm_client_set_curve(farm_client_t *c, const farm_curve_keys_t *keys) {
    c->curve_on = keys != NULL;
    if (keys)
        c->curve = *keys;
    else
        memset(&c->curve, 0, sizeof c->curve);
    return s_open(c);
}

static void s_nil(msgpack_object *o) {
    memset(o, 0, sizeof *o);
    o->type = MSGPACK_OBJECT_NIL;
}

static int s_sys(farm_client_t *c, farm_error_t *e, const char *what, int err) {
    s_close(c);
    return farm_error_set(e, -err, NULL, "%s %s: %s", what, c->endpoint, zmq_strerror(err));
}

/* Check the reply's shape and turn ok:false into its code. */
static int s_check(const msgpack_object *r, farm_error_t *e) {
    if (r->type != MSGPACK_OBJECT_MAP)
        return farm_error_set(e, FARM_EPROTO, NULL, "malformed reply: not a map");
    const msgpack_object *ok = farm_msg_get(r, "ok");
    if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN)
        return farm_error_set(e, FARM_EPROTO, "ok", "malformed reply: no boolean \"ok\"");
    if (ok->via.boolean)
        return 0;
    const msgpack_object *err = farm_msg_get(r, "error");
    const msgpack_object *code = farm_msg_get(err, "code");
    if (!code || code->type != MSGPACK_OBJECT_STR)
        return farm_error_set(e, FARM_EPROTO, "error.code", "malformed reply: ok is false without an error code");
    const msgpack_object *msg = farm_msg_get(err, "message");
    const msgpack_object *field = farm_msg_get(err, "field");
    if ((msg && msg->type != MSGPACK_OBJECT_STR && msg->type != MSGPACK_OBJECT_NIL) ||
        (field && field->type != MSGPACK_OBJECT_STR && field->type != MSGPACK_OBJECT_NIL))
        return farm_error_set(e, FARM_EPROTO, "error", "malformed reply: error message or field is not a string");
    e->code = farm_err_from_name(code->via.str.ptr, code->via.str.size);
    if (msg && msg->type == MSGPACK_OBJECT_STR)
        farm_str_copy(e->message, sizeof e->message, (farm_str_t){msg->via.str.ptr, msg->via.str.size});
    else
        snprintf(e->message, sizeof e->message, "%s", farm_strerror(e->code));
    if (field && field->type == MSGPACK_OBJECT_STR)
        farm_str_copy(e->field, sizeof e->field, (farm_str_t){field->via.str.ptr, field->via.str.size});
    else
        e->field[0] = '\0';
    return e->code;
}

/* Wait until deadline (monotonic ms) for the reply, into c->last; *got
 * says whether it came. Returns 0, or a code with e filled (and the
 * socket closed). A blocking receive with a timeout rather than zmq_poll,
 * which asks the socket for its events before and after it sleeps: system
 * calls a submit's round trip would pay for nothing. */
static int s_recv(farm_client_t *c, int64_t deadline, bool *got, farm_error_t *e) {
    *got = false;
    for (;;) {
        int64_t left = deadline - farm_mono_ms();
        if (left <= 0)
            return 0;
        int tmo = left > INT_MAX ? INT_MAX : (int)left;
        if (zmq_setsockopt(c->sock, ZMQ_RCVTIMEO, &tmo, sizeof tmo) != 0)
            return s_sys(c, e, "setting the reply timeout of", errno);
        if (zmq_msg_recv(&c->last, c->sock, 0) >= 0)
            break;
        if (errno != EINTR && errno != EAGAIN)
            return s_sys(c, e, "receiving from", errno);
    }
    if (zmq_msg_more(&c->last)) {
        s_close(c); /* drops the remaining frames with the socket */
        return farm_error_set(e, FARM_EPROTO, NULL, "malformed reply: more than one frame");
    }
    *got = true;
    return 0;
}

int farm_client_call(farm_client_t *c, const void *req, size_t len, msgpack_zone *z, msgpack_object *reply,
                     farm_error_t *e) {
    assert(c && (req || len == 0) && z && reply && e);
    s_nil(reply);
    farm_error_set(e, 0, NULL, "%s", "");
    /* Release the previous reply's bytes: the caller was told they die here. */
    if (zmq_msg_close(&c->last) != 0 || zmq_msg_init(&c->last) != 0)
        return farm_error_set(e, -errno, NULL, "resetting the reply buffer: %s", zmq_strerror(errno));

    for (int attempt = 0; attempt <= c->retries; attempt++) {
        if (!c->sock) {
            int rc = s_open(c);
            if (rc)
                return farm_error_set(e, rc, NULL, "connecting to %s: %s", c->endpoint, zmq_strerror(-rc));
        }
        if (attempt > 0)
            farm_log(FARM_LOG_DEBUG, "client", "op=resend endpoint=%s attempt=%d", c->endpoint, attempt + 1);
        int64_t deadline = farm_mono_ms() + c->timeout_ms;
        int sent;
        while ((sent = zmq_send(c->sock, req, len, 0)) < 0 && errno == EINTR)
            ;
        if (sent < 0 && errno != EAGAIN)
            return s_sys(c, e, "sending to", errno);
        bool got = false;
        int rc = sent >= 0 ? s_recv(c, deadline, &got, e) : 0;
        if (rc)
            return rc;
        if (!got) {
            /* The REQ socket waits for a reply that may never come: drop it. */
            s_close(c);
            continue;
        }
        const void *data = zmq_msg_data(&c->last);
        size_t size = zmq_msg_size(&c->last);
        farm_error_t ue;
        if (farm_msg_unpack(data, size, z, reply, &ue) != 0) {
            s_nil(reply);
            return farm_error_set(e, FARM_EPROTO, NULL, "malformed reply: %s", ue.message);
        }
        return s_check(reply, e);
    }
    /* With CURVE, a refused key looks exactly like a server that is away. */
    const char *hint = c->curve_on ? " (CURVE is on: is this client's key authorised by the head?)" : "";
    if (c->retries > 0)
        return farm_error_set(e, FARM_ETIMEOUT, NULL, "no reply from %s within %d ms (%d attempts)%s", c->endpoint,
                              c->timeout_ms, c->retries + 1, hint);
    return farm_error_set(e, FARM_ETIMEOUT, NULL, "no reply from %s within %d ms%s", c->endpoint, c->timeout_ms,
                          hint);
}

int farm_client_callv(farm_client_t *c, const msgpack_sbuffer *req, msgpack_zone *z, msgpack_object *reply,
                      farm_error_t *e) {
    assert(req);
    return farm_client_call(c, req->data, req->size, z, reply, e);
}
