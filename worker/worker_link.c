/* worker_link: sockets, their options and the decoding of what arrives
 * (see worker_link.h).
 *
 * The ack message has no table in farm_proto yet, so its one field is
 * declared here, with the same generic decoder; each [task, attempt] pair is
 * checked before any ack is applied, so a malformed message changes
 * nothing. The SUB matches topics by prefix ("ack/w1" also receives
 * "ack/w10"), so the topic frame is compared whole.
 */
#include "worker_link.h"

#include "farm_curve.h"
#include "farm_err.h"
#include "farm_log.h"
#include "farm_sock.h"
#include "farm_time.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define S_HWM 1000              /* messages per pipe, each direction */
#define S_LINGER_MS 1000        /* at a clean exit: time for the last messages */
#define S_ZMTP_HB_IVL_MS 1000   /* ZMTP ping interval ... */
#define S_ZMTP_HB_TIMEOUT_MS 5000 /* ... and silence before a connection is dropped */
#define S_ACKS_MAX 1000000      /* acks in one message */
#define S_TOPIC_MAX 256         /* "ack/" + a name */
#define S_RECV_BATCH 1000       /* messages read per call, so one socket cannot starve the others */

struct worker_link {
    void *ctx;                 /* the ZeroMQ context */
    void *dealer;              /* to the ventilator */
    void *push;                /* to the sink */
    void *sub;                 /* from the sink's feed */
    char identity[256];        /* routing id of the DEALER */
    char topic[S_TOPIC_MAX];   /* "ack/<name>" */
    size_t topic_len;          /* strlen(topic) */
    zmq_msg_t cur;             /* the frame from the ventilator being read */
    bool has_cur;              /* cur holds one */
    size_t cur_off;            /* where its next message starts */
};

typedef struct {
    const msgpack_object *acks; /* array of [task, attempt] */
} s_acks_t;

static const farm_field_t s_acks_fields[] = {
    {"acks", FARM_T_ARRAY, true, 0, S_ACKS_MAX, 0, offsetof(s_acks_t, acks), NULL},
};

static int s_setopt(void *s, int opt, const void *v, size_t n, const char *what) {
    if (zmq_setsockopt(s, opt, v, n) == 0)
        return 0;
    int err = errno;
    farm_log(FARM_LOG_ERROR, "worker", "event=setsockopt opt=%s err=\"%s\"", what, zmq_strerror(err));
    return -err;
}

static int s_setint(void *s, int opt, int v, const char *what) { return s_setopt(s, opt, &v, sizeof v, what); }

/* Options shared by the three sockets. */
static int s_common(void *s, int64_t max_frame) {
    if (s_setint(s, ZMQ_HEARTBEAT_IVL, S_ZMTP_HB_IVL_MS, "heartbeat_ivl") ||
        s_setint(s, ZMQ_HEARTBEAT_TIMEOUT, S_ZMTP_HB_TIMEOUT_MS, "heartbeat_timeout"))
        return -1;
    int rc = farm_sock_maxmsg(s, max_frame);
    if (rc) {
        farm_log(FARM_LOG_ERROR, "worker", "event=setsockopt opt=maxmsgsize err=\"%s\"", zmq_strerror(-rc));
        return -1;
    }
    rc = farm_curve_client_apply(s); /* --curve-server/--curve-cert, if given */
    if (rc) {
        farm_log(FARM_LOG_ERROR, "worker", "event=setsockopt opt=curve err=\"%s\"", zmq_strerror(-rc));
        return -1;
    }
    return 0;
}

/* 16 hex digits that differ between two processes of the same name. */
static void s_random_hex(char out[17]) {
    uint64_t r = 0;
    ssize_t n;
    while ((n = getrandom(&r, sizeof r, 0)) < 0 && errno == EINTR) {
    }
    if (n != (ssize_t)sizeof r) {
        farm_log(FARM_LOG_WARN, "worker", "event=getrandom err=\"%s\" fallback=clock", strerror(errno));
        r = (uint64_t)farm_mono_us() * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid() << 32 ^ (uint64_t)farm_now_ms();
    }
    snprintf(out, 17, "%016" PRIx64, r);
}

worker_link_t *worker_link_new(const farm_endpoints_t *ep, const char *name, int64_t max_frame) {
    worker_link_t *l = calloc(1, sizeof *l);
    if (!l) {
        farm_log(FARM_LOG_ERROR, "worker", "event=link-new err=\"out of memory\"");
        return NULL;
    }
    char hex[17];
    s_random_hex(hex);
    snprintf(l->identity, sizeof l->identity, "%s#%s", name, hex);
    int n = snprintf(l->topic, sizeof l->topic, "ack/%s", name);
    l->topic_len = n > 0 && (size_t)n < sizeof l->topic ? (size_t)n : 0;
    if (!l->topic_len) {
        farm_log(FARM_LOG_ERROR, "worker", "event=link-new err=\"name too long\"");
        free(l);
        return NULL;
    }
    l->ctx = zmq_ctx_new();
    if (!l->ctx) {
        farm_log(FARM_LOG_ERROR, "worker", "event=zmq_ctx_new err=\"%s\"", zmq_strerror(errno));
        free(l);
        return NULL;
    }
    /* Created with LINGER 0: if set-up fails, closing must not wait. */
    l->dealer = farm_sock_new(l->ctx, ZMQ_DEALER, S_HWM, 0);
    l->push = farm_sock_new(l->ctx, ZMQ_PUSH, S_HWM, 0);
    l->sub = farm_sock_new(l->ctx, ZMQ_SUB, S_HWM, 0);
    if (!l->dealer || !l->push || !l->sub)
        goto fail;
    if (s_setopt(l->dealer, ZMQ_ROUTING_ID, l->identity, strlen(l->identity), "routing_id") ||
        s_setint(l->dealer, ZMQ_IMMEDIATE, 1, "immediate") || s_setint(l->push, ZMQ_IMMEDIATE, 1, "immediate") ||
        s_setopt(l->sub, ZMQ_SUBSCRIBE, l->topic, l->topic_len, "subscribe") || s_common(l->dealer, max_frame) ||
        s_common(l->push, max_frame) || s_common(l->sub, max_frame))
        goto fail;
    /* With CURVE, a head that refuses our key is silent: say so in the log. */
    if (farm_curve_client_keys() &&
        (farm_curve_client_watch(l->ctx, l->dealer, "ventilator") || farm_curve_client_watch(l->ctx, l->push, "sink") ||
         farm_curve_client_watch(l->ctx, l->sub, "feed")))
        farm_log(FARM_LOG_WARN, "worker", "event=curve-watch err=\"cannot watch the handshakes\"");
    if (farm_sock_attach(l->dealer, ep->dispatch, false) || farm_sock_attach(l->push, ep->results, false) ||
        farm_sock_attach(l->sub, ep->feed, false))
        goto fail;
    return l;
fail:
    worker_link_destroy(&l, true);
    return NULL;
}

static void s_close(void *s, int linger) {
    if (!s)
        return;
    if (zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger) != 0)
        farm_log(FARM_LOG_WARN, "worker", "event=setsockopt opt=linger err=\"%s\"", zmq_strerror(errno));
    if (zmq_close(s) != 0)
        farm_log(FARM_LOG_WARN, "worker", "event=zmq_close err=\"%s\"", zmq_strerror(errno));
}

void worker_link_destroy(worker_link_t **p, bool abort) {
    if (!p || !*p)
        return;
    worker_link_t *l = *p;
    int linger = abort ? 0 : S_LINGER_MS;
    s_close(l->dealer, linger);
    s_close(l->push, linger);
    s_close(l->sub, 0);
    if (l->has_cur)
        zmq_msg_close(&l->cur);
    if (l->ctx) {
        int rc;
        while ((rc = zmq_ctx_term(l->ctx)) != 0 && errno == EINTR) {
        }
        if (rc != 0)
            farm_log(FARM_LOG_WARN, "worker", "event=zmq_ctx_term err=\"%s\"", zmq_strerror(errno));
    }
    free(l);
    *p = NULL;
}

void *worker_link_dealer(const worker_link_t *l) { return l->dealer; }
void *worker_link_push(const worker_link_t *l) { return l->push; }
void *worker_link_sub(const worker_link_t *l) { return l->sub; }
const char *worker_link_identity(const worker_link_t *l) { return l->identity; }

static int s_send(void *s, const void *data, size_t len) {
    if (zmq_send(s, data, len, ZMQ_DONTWAIT) >= 0)
        return 0;
    return errno == EAGAIN ? -EAGAIN : -errno;
}

int worker_link_send_vent(worker_link_t *l, const void *data, size_t len) { return s_send(l->dealer, data, len); }

int worker_link_send_sink(void *link, const void *data, size_t len) {
    worker_link_t *l = link;
    return s_send(l->push, data, len);
}

/* Receive one frame without waiting. Returns 1, 0 when none, -errno. */
static int s_recv(void *s, zmq_msg_t *m, const char *from) {
    if (zmq_msg_recv(m, s, ZMQ_DONTWAIT) >= 0)
        return 1;
    if (errno == EAGAIN || errno == EINTR)
        return 0;
    int err = errno;
    farm_log(FARM_LOG_ERROR, "worker", "event=recv from=%s err=\"%s\"", from, zmq_strerror(err));
    return -err;
}

static bool s_more(void *s) {
    int more = 0;
    size_t sz = sizeof more;
    return zmq_getsockopt(s, ZMQ_RCVMORE, &more, &sz) == 0 && more;
}

void worker_link_in_release(worker_link_in_t *in) { msgpack_zone_destroy(&in->zone); }

bool worker_link_vent_pending(const worker_link_t *l) {
    return l->has_cur && l->cur_off < zmq_msg_size((zmq_msg_t *)&l->cur);
}

/* Make l->cur a frame with bytes left to read. Returns 1, 0 none, -errno. */
static int s_next_frame(worker_link_t *l) {
    for (;;) {
        if (worker_link_vent_pending(l))
            return 1;
        if (l->has_cur) {
            zmq_msg_close(&l->cur);
            l->has_cur = false;
        }
        if (zmq_msg_init(&l->cur) != 0)
            return -errno;
        int rc = s_recv(l->dealer, &l->cur, "ventilator");
        if (rc <= 0) {
            zmq_msg_close(&l->cur);
            return rc;
        }
        l->has_cur = true;
        l->cur_off = 0;
        if (s_more(l->dealer)) {
            int extra = farm_sock_drain(l->dealer);
            farm_log(FARM_LOG_WARN, "worker", "event=bad-message from=ventilator err=\"%d frames, expected 1\"",
                     extra + 1);
            l->cur_off = zmq_msg_size(&l->cur); /* dropped whole */
        }
    }
}

int worker_link_recv_vent(worker_link_t *l, worker_link_in_t *in) {
    for (;;) {
        int rc = s_next_frame(l);
        if (rc <= 0)
            return rc;
        if (!msgpack_zone_init(&in->zone, 2048)) {
            farm_log(FARM_LOG_ERROR, "worker", "event=recv from=ventilator err=\"out of memory\"");
            return -ENOMEM;
        }
        const char *data = zmq_msg_data(&l->cur);
        size_t size = zmq_msg_size(&l->cur), start = l->cur_off;
        farm_error_t e;
        rc = farm_msg_unpack_next(data, size, &l->cur_off, &in->zone, &in->obj, &e);
        if (rc != 0) {
            farm_log(FARM_LOG_WARN, "worker", "event=bad-message from=ventilator bytes=%zu err=\"%s\"", size - start,
                     e.message);
            l->cur_off = size; /* the rest of the frame cannot be framed */
            msgpack_zone_destroy(&in->zone);
            continue;
        }
        in->raw = data + start;
        in->len = l->cur_off - start;
        rc = farm_msg_task_decode(&in->obj, &in->msg, &e);
        if (rc == 0 && !farm_str_eq(in->msg.m, "welcome") && !farm_str_eq(in->msg.m, "task") &&
            !farm_str_eq(in->msg.m, "cancel") && !farm_str_eq(in->msg.m, "revoke"))
            rc = farm_error_set(&e, FARM_EBADREQ, "m", "unknown message kind '%.*s'",
                                (int)(in->msg.m.len > 16 ? 16 : in->msg.m.len), in->msg.m.ptr);
        if (rc == 0)
            return 1;
        farm_log(FARM_LOG_WARN, "worker", "event=bad-message from=ventilator bytes=%zu err=\"%s\"", in->len,
                 e.message);
        worker_link_in_release(in);
    }
}

/* Decode one ack body and apply it. Returns 0, or FARM_EBADREQ with e set
 * (nothing applied). */
static int s_apply_acks(const void *buf, size_t len, worker_link_ack_fn on_ack, void *ud, farm_error_t *e) {
    msgpack_zone z;
    if (!msgpack_zone_init(&z, 2048))
        return farm_error_set(e, FARM_EINTERNAL, NULL, "out of memory");
    msgpack_object o;
    s_acks_t a;
    int rc = farm_msg_unpack(buf, len, &z, &o, e);
    if (rc == 0)
        rc = farm_msg_decode(s_acks_fields, 1, &o, &a, NULL, NULL, e);
    for (uint32_t i = 0; rc == 0 && i < a.acks->via.array.size; i++) {
        const msgpack_object *p = &a.acks->via.array.ptr[i];
        if (p->type != MSGPACK_OBJECT_ARRAY || p->via.array.size != 2 ||
            p->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            p->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            p->via.array.ptr[0].via.u64 > INT64_MAX || p->via.array.ptr[1].via.u64 > INT64_MAX)
            rc = farm_error_set(e, FARM_EBADREQ, "acks", "acks[%" PRIu32 "] must be [task, attempt]", i);
    }
    for (uint32_t i = 0; rc == 0 && i < a.acks->via.array.size; i++) {
        const msgpack_object *p = a.acks->via.array.ptr[i].via.array.ptr;
        on_ack(ud, (int64_t)p[0].via.u64, (int64_t)p[1].via.u64);
    }
    msgpack_zone_destroy(&z);
    return rc;
}

int worker_link_recv_acks(worker_link_t *l, worker_link_ack_fn on_ack, void *ud) {
    int count = 0;
    while (count < S_RECV_BATCH) {
        zmq_msg_t topic, body;
        if (zmq_msg_init(&topic) != 0)
            return -errno;
        int rc = s_recv(l->sub, &topic, "feed");
        if (rc <= 0) {
            zmq_msg_close(&topic);
            return rc < 0 ? rc : count;
        }
        count++;
        bool mine = zmq_msg_size(&topic) == l->topic_len &&
                    memcmp(zmq_msg_data(&topic), l->topic, l->topic_len) == 0;
        zmq_msg_close(&topic);
        if (!s_more(l->sub)) {
            farm_log(FARM_LOG_WARN, "worker", "event=bad-message from=feed err=\"1 frame, expected 2\"");
            continue;
        }
        if (zmq_msg_init(&body) != 0)
            return -errno;
        if (zmq_msg_recv(&body, l->sub, ZMQ_DONTWAIT) < 0) {
            int err = errno;
            zmq_msg_close(&body);
            farm_log(FARM_LOG_ERROR, "worker", "event=recv from=feed err=\"%s\"", zmq_strerror(err));
            return -err;
        }
        if (s_more(l->sub)) {
            int extra = farm_sock_drain(l->sub);
            farm_log(FARM_LOG_WARN, "worker", "event=bad-message from=feed err=\"%d frames, expected 2\"",
                     extra + 2);
        } else if (mine) {
            farm_error_t e;
            if (s_apply_acks(zmq_msg_data(&body), zmq_msg_size(&body), on_ack, ud, &e) != 0)
                farm_log(FARM_LOG_WARN, "worker", "event=bad-message from=feed bytes=%zu err=\"%s\"",
                         zmq_msg_size(&body), e.message);
        }
        zmq_msg_close(&body);
    }
    return count;
}
