/* client_feed: the status feed as a hint, for `farm wait` and `farm map`.
 *
 * The feed (a PUB on the sink, spec section 4) says promptly that something
 * changed, but it drops messages for slow subscribers and says nothing to
 * a subscriber that connected a moment too late, so the commands use it
 * only to know *when* to ask the front door, never for the answer: every
 * event is followed by a front-door request, and when no event comes a
 * command still asks every second or so. So a feed that is absent,
 * unreachable or wrong costs only latency, never correctness, and opening
 * one never fails a command.
 *
 * Where the feed is: --feed EP (or FARM_FEED), else the front door's host
 * with the feed's default port (tcp://HOST:5559), as `--connect HOST`
 * derives it for the programs; "none" turns it off. An ipc or inproc front
 * door has no host, hence no derived feed.
 *
 * The SUB socket has its own ZeroMQ context (the front-door client keeps
 * its own), LINGER 0, bounded high-water marks (a command that falls
 * behind loses events, which the polling covers), and the process's CURVE
 * client keys when CURVE is on, as the front-door client has.
 */
#include "client.h"
#include "farm_config.h"
#include "farm_curve.h"
#include "farm_time.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define S_FEED_HWM 10000 /* messages queued for this subscriber */

struct cli_feed_t {
    void *ctx;          /* own context */
    void *sub;          /* SUB, connected */
    char topic[64];     /* the last message's topic, NUL-terminated */
    zmq_msg_t body;     /* the last message's body (kept until the next) */
    bool has_body;      /* body is initialised */
    msgpack_zone zone;  /* the last body's objects */
    msgpack_object obj; /* the last body */
};

void cli_feed_endpoint(const cli_t *cli, char out[FARM_EP_MAX]) {
    out[0] = '\0';
    if (cli->feed[0]) {
        if (strcmp(cli->feed, "none") != 0)
            snprintf(out, FARM_EP_MAX, "%s", cli->feed);
        return;
    }
    const char *s = cli->server;
    if (strncmp(s, "tcp://", 6) != 0)
        return;
    const char *host = s + 6, *colon = strrchr(host, ':');
    if (!colon || colon == host)
        return;
    int n = (int)(colon - host);
    /* "*" and 0.0.0.0 are bind addresses; a client means this machine. */
    if ((n == 1 && host[0] == '*') || (n == 7 && strncmp(host, "0.0.0.0", 7) == 0))
        snprintf(out, FARM_EP_MAX, "tcp://127.0.0.1:%d", FARM_PORT_FEED);
    else
        snprintf(out, FARM_EP_MAX, "tcp://%.*s:%d", n, host, FARM_PORT_FEED);
}

cli_feed_t *cli_feed_open(const cli_t *cli, const char *const *topics, size_t ntopics) {
    char ep[FARM_EP_MAX];
    cli_feed_endpoint(cli, ep);
    if (!ep[0])
        return NULL;
    cli_feed_t *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    if (!msgpack_zone_init(&f->zone, 4096)) {
        free(f);
        return NULL;
    }
    int linger = 0, hwm = S_FEED_HWM, ivl = 200;
    f->ctx = zmq_ctx_new();
    f->sub = f->ctx ? zmq_socket(f->ctx, ZMQ_SUB) : NULL;
    bool ok = f->sub && zmq_setsockopt(f->sub, ZMQ_LINGER, &linger, sizeof linger) == 0 &&
              zmq_setsockopt(f->sub, ZMQ_RCVHWM, &hwm, sizeof hwm) == 0 &&
              zmq_setsockopt(f->sub, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl) == 0 &&
              farm_curve_client_apply(f->sub) == 0; /* CURVE keys of cli_parse, if any */
    for (size_t i = 0; ok && i < ntopics; i++)
        ok = zmq_setsockopt(f->sub, ZMQ_SUBSCRIBE, topics[i], strlen(topics[i])) == 0;
    /* A CURVE head's feed takes the same client keys as its front door. */
    if (ok && farm_curve_client_apply(f->sub) != 0) {
        fprintf(stderr, "farm %s: status feed %s: CURVE keys refused; polling instead\n", cli->cmd ? cli->cmd : "",
                ep);
        ok = false;
    }
    if (ok && zmq_connect(f->sub, ep) != 0) {
        /* Not fatal: polling works without the feed. */
        fprintf(stderr, "farm %s: status feed %s: %s; polling instead\n", cli->cmd ? cli->cmd : "", ep,
                zmq_strerror(errno));
        ok = false;
    }
    if (!ok) {
        cli_feed_close(&f);
        return NULL;
    }
    return f;
}

void cli_feed_close(cli_feed_t **fp) {
    cli_feed_t *f = *fp;
    if (!f)
        return;
    if (f->has_body)
        zmq_msg_close(&f->body);
    if (f->sub)
        zmq_close(f->sub);
    if (f->ctx)
        while (zmq_ctx_term(f->ctx) != 0 && errno == EINTR)
            ;
    msgpack_zone_destroy(&f->zone);
    free(f);
    *fp = NULL;
}

/* Sleep until the monotonic deadline, or until a signal arrives. */
static void s_nap_until(int64_t deadline) {
    int64_t left = deadline - farm_mono_ms();
    if (left <= 0)
        return;
    struct timespec ts = {.tv_sec = left / 1000, .tv_nsec = (long)(left % 1000) * 1000000L};
    (void)nanosleep(&ts, NULL); /* EINTR: return early so the caller sees the signal */
}

/* Drop the rest of a multi-part message. */
static void s_drain_parts(void *sub) {
    int more = 1;
    size_t sz = sizeof more;
    while (zmq_getsockopt(sub, ZMQ_RCVMORE, &more, &sz) == 0 && more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        int r = zmq_msg_recv(&m, sub, ZMQ_DONTWAIT);
        zmq_msg_close(&m);
        if (r < 0)
            break;
    }
}

int cli_feed_next(cli_feed_t *f, int64_t deadline, const char **topic, const msgpack_object **body) {
    if (!f) {
        s_nap_until(deadline);
        return 0;
    }
    if (f->has_body) {
        zmq_msg_close(&f->body);
        f->has_body = false;
    }
    for (;;) {
        /* Past the deadline nothing more is read, so a busy feed cannot
         * keep the caller from its own timers. */
        int64_t left = deadline - farm_mono_ms();
        if (left <= 0)
            return 0;
        zmq_pollitem_t it = {.socket = f->sub, .events = ZMQ_POLLIN};
        int n = zmq_poll(&it, 1, (long)left);
        if (n < 0)
            return 0; /* EINTR (a signal for the caller) or a broken context: poll again later */
        if (n == 0 || !(it.revents & ZMQ_POLLIN))
            return 0;
        zmq_msg_t t;
        zmq_msg_init(&t);
        if (zmq_msg_recv(&t, f->sub, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&t);
            return 0;
        }
        size_t tl = zmq_msg_size(&t);
        bool ok = tl < sizeof f->topic && zmq_msg_more(&t);
        if (ok) {
            memcpy(f->topic, zmq_msg_data(&t), tl);
            f->topic[tl] = '\0';
        }
        zmq_msg_close(&t);
        if (!ok) {
            s_drain_parts(f->sub);
            continue;
        }
        zmq_msg_init(&f->body);
        f->has_body = true;
        if (zmq_msg_recv(&f->body, f->sub, ZMQ_DONTWAIT) < 0 || zmq_msg_more(&f->body)) {
            s_drain_parts(f->sub);
            zmq_msg_close(&f->body);
            f->has_body = false;
            continue;
        }
        farm_error_t e;
        msgpack_zone_clear(&f->zone);
        if (farm_msg_unpack(zmq_msg_data(&f->body), zmq_msg_size(&f->body), &f->zone, &f->obj, &e) != 0 ||
            f->obj.type != MSGPACK_OBJECT_MAP) {
            zmq_msg_close(&f->body);
            f->has_body = false;
            continue; /* the feed is a hint: skip what cannot be read */
        }
        *topic = f->topic;
        *body = &f->obj;
        return 1;
    }
}
