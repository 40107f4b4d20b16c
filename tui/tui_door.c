/* tui_door: front-door requests off the loop's thread.
 *
 * A helper thread owns a farm_client (timeout TUI_DOOR_TIMEOUT_MS, no
 * retries: a lost reply shows as "no reply" at once and the next poll
 * cycle asks again on a fresh socket). The loop and the thread talk over
 * an inproc PAIR: the loop sends [seq][request], the thread answers
 * [seq, rc, farm_error_t][reply re-packed as MessagePack]. The reply is
 * re-packed because farm_client's objects point into its own receive
 * buffer, which the next call replaces.
 *
 * The queue lives on the loop's side and at most one request is with the
 * thread at a time, so an action (cancel, retry) jumps ahead of queued
 * polls and waits at most for the one request in flight. The inproc
 * messages never leave the process, so the fixed header is a raw struct.
 */
#include "tui.h"

#include "farm_client.h"
#include "farm_err.h"
#include "farm_time.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

typedef struct {
    tui_rq_kind_t kind;
    int64_t a, b;
    int prio;
    uint64_t order;                /* FIFO within a priority */
    char text[128];
    msgpack_sbuffer req;           /* owned */
} s_rq_t;

/* The header of a reply on the inproc socket. */
typedef struct {
    uint64_t seq;
    int rc;
    farm_error_t err;
} s_hdr_t;

struct tui_door_t {
    void *pair;                    /* the loop's end */
    pthread_t thread;
    bool started;
    char endpoint[FARM_EP_MAX];
    char inproc[64];
    int timeout_ms;
    void *ctx;                     /* borrowed */
    s_rq_t *q;                     /* queued, not yet sent */
    size_t nq, capq;
    bool busy;                     /* a request is with the thread */
    s_rq_t cur;                    /* that request (req already freed) */
    int64_t sent_mono;             /* when it went to the thread */
    uint64_t seq, order;
};

/* ---- the thread -------------------------------------------------------- */

static void *s_thread(void *arg) {
    tui_door_t *d = arg;
    void *pair = zmq_socket(d->ctx, ZMQ_PAIR);
    int hwm = 64, linger = 0;
    if (!pair)
        return NULL;
    if (zmq_setsockopt(pair, ZMQ_SNDHWM, &hwm, sizeof hwm) || zmq_setsockopt(pair, ZMQ_RCVHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(pair, ZMQ_LINGER, &linger, sizeof linger) || zmq_connect(pair, d->inproc)) {
        zmq_close(pair);
        return NULL;
    }
    farm_client_t *c = NULL;
    msgpack_zone z;
    if (!msgpack_zone_init(&z, 8192)) {
        zmq_close(pair);
        return NULL;
    }
    for (bool run = true; run;) {
        zmq_msg_t hm, rm;
        zmq_msg_init(&hm);
        zmq_msg_init(&rm);
        if (zmq_msg_recv(&hm, pair, 0) < 0) {
            run = errno == EINTR; /* anything else: the context is ending */
        } else if (zmq_msg_size(&hm) != sizeof(uint64_t) || !zmq_msg_more(&hm) || zmq_msg_recv(&rm, pair, 0) < 0) {
            run = false; /* the stop message (or something broken) */
        } else {
            s_hdr_t h = {0};
            memcpy(&h.seq, zmq_msg_data(&hm), sizeof h.seq);
            msgpack_zone_clear(&z);
            msgpack_object reply = {.type = MSGPACK_OBJECT_NIL};
            if (!c)
                c = farm_client_new(d->endpoint, d->timeout_ms, 0);
            if (!c) {
                int e = errno ? errno : ENOMEM;
                h.rc = farm_error_set(&h.err, -e, NULL, "cannot open a client for %s: %s", d->endpoint, strerror(e));
            } else {
                h.rc = farm_client_call(c, zmq_msg_data(&rm), zmq_msg_size(&rm), &z, &reply, &h.err);
            }
            msgpack_sbuffer b;
            msgpack_sbuffer_init(&b);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
            if (msgpack_pack_object(&pk, reply) != 0) {
                b.size = 0;
                msgpack_pack_nil(&pk);
            }
            run = zmq_send(pair, &h, sizeof h, ZMQ_SNDMORE) >= 0 && zmq_send(pair, b.data, b.size, 0) >= 0;
            msgpack_sbuffer_destroy(&b);
        }
        zmq_msg_close(&hm);
        zmq_msg_close(&rm);
    }
    farm_client_destroy(&c);
    msgpack_zone_destroy(&z);
    zmq_close(pair);
    return NULL;
}

/* ---- the loop's side --------------------------------------------------- */

tui_door_t *tui_door_new(void *ctx, const char *endpoint, int timeout_ms) {
    tui_door_t *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->ctx = ctx;
    d->timeout_ms = timeout_ms;
    snprintf(d->endpoint, sizeof d->endpoint, "%s", endpoint);
    snprintf(d->inproc, sizeof d->inproc, "inproc://tui-door-%p", (void *)d);
    d->pair = zmq_socket(ctx, ZMQ_PAIR);
    int hwm = 64, linger = 0;
    if (!d->pair || zmq_setsockopt(d->pair, ZMQ_SNDHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(d->pair, ZMQ_RCVHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(d->pair, ZMQ_LINGER, &linger, sizeof linger) || zmq_bind(d->pair, d->inproc))
        goto fail;
    /* The thread must not take the signals the loop waits for. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&d->thread, NULL, s_thread, d);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        errno = rc;
        goto fail;
    }
    d->started = true;
    return d;
fail:;
    int e = errno;
    if (d->pair)
        zmq_close(d->pair);
    free(d);
    errno = e;
    return NULL;
}

void tui_door_destroy(tui_door_t **dp) {
    tui_door_t *d = dp ? *dp : NULL;
    if (!d)
        return;
    if (d->started) {
        /* One frame without "more" is the stop message. */
        if (zmq_send(d->pair, "", 0, 0) < 0) {
            /* The thread cannot be told; it ends when the context does.
             * Detach so that nothing waits for it. */
            pthread_detach(d->thread);
        } else {
            pthread_join(d->thread, NULL);
        }
    }
    zmq_close(d->pair);
    for (size_t i = 0; i < d->nq; i++)
        msgpack_sbuffer_destroy(&d->q[i].req);
    free(d->q);
    free(d);
    *dp = NULL;
}

void *tui_door_socket(tui_door_t *d) { return d->pair; }

/* Hand the best queued request to the thread when it is free. */
static void s_pump(tui_door_t *d) {
    if (d->busy || d->nq == 0)
        return;
    size_t best = 0;
    for (size_t i = 1; i < d->nq; i++)
        if (d->q[i].prio > d->q[best].prio || (d->q[i].prio == d->q[best].prio && d->q[i].order < d->q[best].order))
            best = i;
    s_rq_t r = d->q[best];
    uint64_t seq = ++d->seq;
    if (zmq_send(d->pair, &seq, sizeof seq, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(d->pair, r.req.data, r.req.size, ZMQ_DONTWAIT) < 0)
        return; /* stays queued; tried again on the next push or reply */
    d->q[best] = d->q[--d->nq];
    msgpack_sbuffer_destroy(&r.req);
    d->cur = r;
    d->busy = true;
    d->sent_mono = farm_mono_ms();
}

int tui_door_push(tui_door_t *d, tui_rq_kind_t kind, int64_t a, int64_t b, int prio, const char *text,
                  msgpack_sbuffer *req) {
    if (d->nq == d->capq) {
        size_t cap = d->capq ? d->capq * 2 : 16;
        s_rq_t *q = realloc(d->q, cap * sizeof *q);
        if (!q) {
            msgpack_sbuffer_destroy(req);
            msgpack_sbuffer_init(req);
            return -ENOMEM;
        }
        d->q = q;
        d->capq = cap;
    }
    s_rq_t *r = &d->q[d->nq++];
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->a = a;
    r->b = b;
    r->prio = prio;
    r->order = ++d->order;
    snprintf(r->text, sizeof r->text, "%s", text ? text : "");
    r->req = *req;
    msgpack_sbuffer_init(req); /* taken over */
    s_pump(d);
    return 0;
}

bool tui_door_pending(const tui_door_t *d, tui_rq_kind_t kind, int64_t a) {
    if (d->busy && d->cur.kind == kind && (a < 0 || d->cur.a == a))
        return true;
    for (size_t i = 0; i < d->nq; i++)
        if (d->q[i].kind == kind && (a < 0 || d->q[i].a == a))
            return true;
    return false;
}

size_t tui_door_count(const tui_door_t *d) { return d->nq + (d->busy ? 1 : 0); }

int tui_door_recv(tui_door_t *d, tui_reply_t *r) {
    memset(r, 0, sizeof *r);
    r->obj.type = MSGPACK_OBJECT_NIL;
    s_pump(d);
    zmq_msg_t hm, bm;
    zmq_msg_init(&hm);
    if (zmq_msg_recv(&hm, d->pair, ZMQ_DONTWAIT) < 0) {
        int e = errno;
        zmq_msg_close(&hm);
        return e == EAGAIN || e == EINTR ? 0 : -e;
    }
    zmq_msg_init(&bm);
    bool shape = zmq_msg_size(&hm) == sizeof(s_hdr_t) && zmq_msg_more(&hm);
    if (shape && zmq_msg_recv(&bm, d->pair, ZMQ_DONTWAIT) < 0)
        shape = false;
    if (!shape || !d->busy) {
        zmq_msg_close(&hm);
        zmq_msg_close(&bm);
        return -EPROTO;
    }
    s_hdr_t h;
    memcpy(&h, zmq_msg_data(&hm), sizeof h);
    d->busy = false;
    r->kind = d->cur.kind;
    r->a = d->cur.a;
    r->b = d->cur.b;
    snprintf(r->text, sizeof r->text, "%s", d->cur.text);
    r->rc = h.rc;
    r->latency_ms = farm_mono_ms() - d->sent_mono;
    r->err = h.err;
    r->err.message[sizeof r->err.message - 1] = '\0';
    r->err.field[sizeof r->err.field - 1] = '\0';
    if (!msgpack_zone_init(&r->zone, 4096)) {
        zmq_msg_close(&hm);
        zmq_msg_close(&bm);
        s_pump(d);
        return -ENOMEM;
    }
    r->has_zone = true;
    /* msgpack-c's strings point into the buffer they were unpacked from, so
     * the buffer is copied into memory the zone frees with itself. */
    size_t n = zmq_msg_size(&bm);
    if (n > 0) {
        farm_error_t e;
        char *copy = malloc(n);
        if (!copy || !msgpack_zone_push_finalizer(&r->zone, free, copy)) {
            free(copy);
        } else {
            memcpy(copy, zmq_msg_data(&bm), n);
            if (farm_msg_unpack(copy, n, &r->zone, &r->obj, &e) != 0)
                r->obj.type = MSGPACK_OBJECT_NIL;
        }
    }
    zmq_msg_close(&hm);
    zmq_msg_close(&bm);
    s_pump(d);
    return 1;
}

void tui_door_reply_free(tui_reply_t *r) {
    if (r->has_zone)
        msgpack_zone_destroy(&r->zone);
    memset(r, 0, sizeof *r);
}
