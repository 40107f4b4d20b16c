/* tui_feed: the status feed, read with libzmq directly.
 *
 * One SUB socket subscribed to the four topics of the spec (§4). A message
 * is two frames, topic and a MessagePack map; anything else (one frame,
 * three frames, a body that is not a map, a topic we did not ask for, such
 * as the sink's "ack/..." messages that share the prefix space) is counted
 * and dropped. The receive high-water mark bounds what a slow monitor can
 * queue: PUB drops for slow subscribers, and the front door's polls repair
 * whatever the feed lost. ZeroMQ reconnects by itself when the sink comes
 * back; if no stats arrive for TUI_FEED_REOPEN_MS the loop also reopens
 * the socket, which costs nothing and covers a connection that went
 * half-open.
 */
#include "tui.h"

#include "farm_curve.h"
#include "farm_time.h"

#include <errno.h>
#include <string.h>
#include <zmq.h>

#define S_FEED_HWM 20000             /* messages queued in the TUI at most */
#define S_FEED_MAXMSG (32 << 20)     /* a frame larger than this is dropped by libzmq */

int tui_feed_open(tui_t *t) {
    tui_feed_close(t);
    void *s = zmq_socket(t->ctx, ZMQ_SUB);
    if (!s)
        return -errno;
    int hwm = S_FEED_HWM, linger = 0, ivl = 200, ivl_max = 1000;
    int64_t maxmsg = S_FEED_MAXMSG;
    static const char *const topics[] = {"task", "job", "worker", "stats"};
    int rc = 0;
    if (zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm) || zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl) ||
        zmq_setsockopt(s, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max) ||
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg))
        rc = -errno;
    if (rc == 0)
        rc = farm_curve_client_apply(s); /* the keys of --curve-server/--curve-cert, if any */
    for (size_t i = 0; rc == 0 && i < sizeof topics / sizeof topics[0]; i++)
        if (zmq_setsockopt(s, ZMQ_SUBSCRIBE, topics[i], strlen(topics[i])))
            rc = -errno;
    if (rc == 0 && zmq_connect(s, t->ep.feed))
        rc = -errno;
    if (rc) {
        zmq_close(s);
        return rc;
    }
    t->sub = s;
    t->m.feed_open_mono = farm_mono_ms();
    return 0;
}

void tui_feed_close(tui_t *t) {
    if (t->sub)
        zmq_close(t->sub);
    t->sub = NULL;
}

static bool s_topic(const char *topic, size_t tlen, const char *want) {
    return tlen == strlen(want) && memcmp(topic, want, tlen) == 0;
}

/* A task event: failures go to the failures panel; events of the open
 * job or task update those views. */
static void s_task_event(tui_t *t, const msgpack_object *e) {
    int64_t id, job = 0, attempt = 0, ms = 0, progress = -1;
    if (!e || e->type != MSGPACK_OBJECT_MAP || !tui_get_int(e, "id", &id) || id <= 0)
        return;
    tui_get_int(e, "job", &job);
    tui_get_int(e, "attempt", &attempt);
    tui_get_int(e, "ms", &ms);
    tui_get_int(e, "progress", &progress);
    const msgpack_object *so = farm_msg_get(e, "state");
    int st = so && so->type == MSGPACK_OBJECT_STR ? farm_state_parse(so->via.str.ptr, so->via.str.size) : -1;
    if (st < 0)
        return;
    if (st == FARM_TASK_FAILED || st == FARM_TASK_RETRYING) {
        char worker[TUI_NAME_MAX];
        tui_get_str(e, "worker", worker, sizeof worker);
        tui_model_fail(&t->m, id, job, attempt, st, worker, ms ? ms : 0);
    }
    if (t->jv.job && job == t->jv.job && t->jv.n) {
        /* The page is sorted by id: binary search. */
        size_t lo = 0, hi = t->jv.n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (t->jv.tasks[mid].id < id)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < t->jv.n && t->jv.tasks[lo].id == id) {
            tui_task_t *k = &t->jv.tasks[lo];
            k->state = st;
            if (progress >= 0 && progress <= 100)
                k->progress = progress;
            if (attempt > 0)
                k->attempts = attempt;
            char worker[TUI_NAME_MAX];
            if (tui_get_str(e, "worker", worker, sizeof worker))
                memcpy(k->worker, worker, sizeof worker);
        }
    }
    if (t->tv.task == id && st != t->tv.state) {
        t->tv.state = st;
        tui_req_task(t, farm_state_final(st));
    }
}

void tui_feed_apply(tui_t *t, const char *topic, size_t tlen, const void *body, size_t blen) {
    farm_error_t err;
    msgpack_object o;
    msgpack_zone_clear(&t->zone);
    if (farm_msg_unpack(body, blen, &t->zone, &o, &err) != 0 || o.type != MSGPACK_OBJECT_MAP) {
        t->m.feed_bad++;
        return;
    }
    int64_t now = farm_mono_ms();
    if (s_topic(topic, tlen, "stats")) {
        tui_model_stats(&t->m, &o, true, now);
    } else if (s_topic(topic, tlen, "job")) {
        tui_job_t *j = tui_model_job(&t->m, &o, now);
        if (!j)
            t->m.feed_bad++;
        else
            j->sweep = t->m.sweep;
    } else if (s_topic(topic, tlen, "worker")) {
        if (!tui_model_worker(&t->m, &o, 0))
            t->m.feed_bad++;
    } else if (s_topic(topic, tlen, "task")) {
        const msgpack_object *ev = farm_msg_get(&o, "events");
        if (!ev || ev->type != MSGPACK_OBJECT_ARRAY) {
            t->m.feed_bad++;
            return;
        }
        for (uint32_t i = 0; i < ev->via.array.size; i++)
            s_task_event(t, &ev->via.array.ptr[i]);
    } else {
        t->m.feed_bad++;
    }
}

int tui_feed_drain(tui_t *t, int budget) {
    int n = 0;
    zmq_msg_t topic, body;
    zmq_msg_init(&topic);
    zmq_msg_init(&body);
    while (t->sub && n < budget) {
        if (zmq_msg_recv(&topic, t->sub, ZMQ_DONTWAIT) < 0) {
            int e = errno;
            if (e == EAGAIN || e == EINTR)
                break;
            zmq_msg_close(&topic);
            zmq_msg_close(&body);
            return -e;
        }
        n++;
        t->m.feed_msgs++;
        if (!zmq_msg_more(&topic)) {
            t->m.feed_bad++; /* one frame: not a feed message */
            continue;
        }
        /* The rest of a message is already here (ZeroMQ delivers whole messages). */
        if (zmq_msg_recv(&body, t->sub, ZMQ_DONTWAIT) < 0) {
            t->m.feed_bad++;
            continue;
        }
        if (zmq_msg_more(&body)) {
            while (zmq_msg_more(&body) && zmq_msg_recv(&body, t->sub, ZMQ_DONTWAIT) >= 0)
                ;
            t->m.feed_bad++;
            continue;
        }
        tui_feed_apply(t, zmq_msg_data(&topic), zmq_msg_size(&topic), zmq_msg_data(&body), zmq_msg_size(&body));
    }
    zmq_msg_close(&topic);
    zmq_msg_close(&body);
    return n;
}
