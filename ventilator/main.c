/* farm-ventilator: the head's front door and dispatcher.
 *
 * main parses flags, opens the store, binds the front door (REP) and the
 * dispatch ROUTER, connects a PUSH to the sink for feed events, and runs
 * one poll loop: requests are answered one at a time, worker messages
 * update credit, then one dispatch round sends what the credit allows.
 * A tick every 100 ms finds lost workers and due retries; once a second
 * the stats go to the feed. SIGTERM/SIGINT end the loop cleanly and the
 * database is checkpointed on the way out.
 */
#include "vent.h"

#include "farm_curve.h"
#include "farm_err.h"
#include "farm_log.h"
#include "farm_proto.h"
#include "farm_sock.h"
#include "farm_time.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

typedef struct {
    const char *db;
    farm_endpoints_t ep;
    farm_limits_t limits;
    farm_backoff_t backoff;
    int64_t lost_after_ms;
    bool insecure, sync_full;
    const char *curve; /* --curve DIR, or NULL */
} s_opts_t;

static void s_usage(FILE *f) {
    farm_limits_t l;
    farm_limits_default(&l);
    fprintf(f,
            "usage: farm-ventilator --db FILE [options]\n"
            "\n"
            "The farm's front door (REQ/REP) and dispatcher. Stores every submission in FILE\n"
            "(SQLite, WAL) before it answers, and sends tasks to workers with free slots.\n"
            "\n"
            "  --db FILE               the farm's database (required; created if missing)\n"
            "  --front EP              front door to bind        (tcp://127.0.0.1:%d)\n"
            "  --dispatch EP           dispatch socket to bind   (tcp://127.0.0.1:%d)\n"
            "  --results EP            the sink's results socket (tcp://127.0.0.1:%d)\n"
            "  --feed EP               the sink's status feed    (tcp://127.0.0.1:%d; unused here)\n"
            "  --lost-after-ms N       silence after which a worker is lost (5000)\n"
            "  --backoff-base-ms N     first retry delay (1000)\n"
            "  --backoff-factor X      growth of the delay per attempt (2)\n"
            "  --backoff-cap-ms N      longest retry delay (300000)\n"
            "  --backoff-jitter PCT    random spread of the delay, percent (20)\n"
            "  --max-frame BYTES       largest request (%" PRId64 ")\n"
            "  --max-batch N           tasks in one submit (%" PRId64 ")\n"
            "  --max-args BYTES        bytes of one task's args (%" PRId64 ")\n"
            "  --max-name BYTES        bytes of a job name (%" PRId64 ")\n"
            "  --max-key BYTES         bytes of an idempotency key (%" PRId64 ")\n"
            "  --max-pending N         stored pending tasks before submit answers busy (%" PRId64 ")\n"
            "  --sync-full             fsync every commit (survives power loss, slower)\n"
            "  --curve DIR             CURVE: DIR/server.cert (+ _secret) is the head's key pair; only keys\n"
            "                          in DIR/clients/*.cert may use the front door, only keys in\n"
            "                          DIR/workers/*.cert may take tasks; re-read while running\n"
            "  --insecure              allow binding a non-loopback address without CURVE\n"
            "  --log-level LEVEL       debug, info, warn or error (info)\n"
            "  --help                  this text\n",
            FARM_PORT_FRONT, FARM_PORT_DISPATCH, FARM_PORT_RESULTS, FARM_PORT_FEED, l.max_frame, l.max_batch,
            l.max_args, l.max_name, l.max_key, l.max_pending);
}

static int s_int(const char *flag, const char *v, int64_t min, int64_t max, int64_t *out) {
    if (farm_parse_size(v, out) || *out < min || *out > max) {
        fprintf(stderr, "farm-ventilator: %s needs a number from %" PRId64 " to %" PRId64 ", not '%s'\n", flag, min,
                max, v);
        return -1;
    }
    return 0;
}

static int s_parse(int argc, char **argv, s_opts_t *o) {
    enum { O_DB = 256, O_FRONT, O_DISPATCH, O_RESULTS, O_FEED, O_LOST, O_BBASE, O_BFACTOR, O_BCAP, O_BJITTER,
           O_FRAME, O_BATCH, O_ARGS, O_NAME, O_KEY, O_PENDING, O_SYNC, O_INSECURE, O_LOG, O_HELP, O_CURVE };
    static const struct option opts[] = {
        {"db", 1, 0, O_DB}, {"front", 1, 0, O_FRONT}, {"dispatch", 1, 0, O_DISPATCH}, {"results", 1, 0, O_RESULTS},
        {"feed", 1, 0, O_FEED}, {"lost-after-ms", 1, 0, O_LOST}, {"backoff-base-ms", 1, 0, O_BBASE},
        {"backoff-factor", 1, 0, O_BFACTOR}, {"backoff-cap-ms", 1, 0, O_BCAP}, {"backoff-jitter", 1, 0, O_BJITTER},
        {"max-frame", 1, 0, O_FRAME}, {"max-batch", 1, 0, O_BATCH}, {"max-args", 1, 0, O_ARGS},
        {"max-name", 1, 0, O_NAME}, {"max-key", 1, 0, O_KEY}, {"max-pending", 1, 0, O_PENDING},
        {"sync-full", 0, 0, O_SYNC}, {"insecure", 0, 0, O_INSECURE}, {"log-level", 1, 0, O_LOG},
        {"help", 0, 0, O_HELP}, {"curve", 1, 0, O_CURVE}, {0, 0, 0, 0}};
    int c;
    int64_t x;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_DB: o->db = optarg; break;
        case O_FRONT: bad = farm_endpoint_set(o->ep.front, optarg); break;
        case O_DISPATCH: bad = farm_endpoint_set(o->ep.dispatch, optarg); break;
        case O_RESULTS: bad = farm_endpoint_set(o->ep.results, optarg); break;
        case O_FEED: bad = farm_endpoint_set(o->ep.feed, optarg); break;
        case O_LOST: bad = s_int("--lost-after-ms", optarg, 100, 86400000, &o->lost_after_ms); break;
        case O_BBASE: bad = s_int("--backoff-base-ms", optarg, 0, 86400000, &o->backoff.base_ms); break;
        case O_BCAP: bad = s_int("--backoff-cap-ms", optarg, 0, 86400000, &o->backoff.cap_ms); break;
        case O_BJITTER:
            bad = s_int("--backoff-jitter", optarg, 0, 100, &x);
            o->backoff.jitter_pct = (int)x;
            break;
        case O_BFACTOR: {
            char *end;
            o->backoff.factor = strtod(optarg, &end);
            bad = *end || o->backoff.factor < 1.0 || o->backoff.factor > 100.0;
            break;
        }
        case O_FRAME: bad = s_int("--max-frame", optarg, 1024, INT32_MAX, &o->limits.max_frame); break;
        case O_BATCH: bad = s_int("--max-batch", optarg, 1, 1000000, &o->limits.max_batch); break;
        case O_ARGS: bad = s_int("--max-args", optarg, 16, INT32_MAX, &o->limits.max_args); break;
        case O_NAME: bad = s_int("--max-name", optarg, 1, 65536, &o->limits.max_name); break;
        case O_KEY: bad = s_int("--max-key", optarg, 1, 65536, &o->limits.max_key); break;
        case O_PENDING: bad = s_int("--max-pending", optarg, 1, INT64_MAX / 2, &o->limits.max_pending); break;
        case O_SYNC: o->sync_full = true; break;
        case O_INSECURE: o->insecure = true; break;
        case O_CURVE: o->curve = optarg; bad = !*optarg; break;
        case O_LOG: {
            farm_log_level_t lv;
            bad = farm_log_parse_level(optarg, &lv);
            if (!bad)
                farm_log_set_level(lv);
            break;
        }
        case O_HELP: s_usage(stdout); exit(0);
        default: s_usage(stderr); return -1;
        }
        if (bad) {
            fprintf(stderr, "farm-ventilator: bad value '%s' for --%s\n", optarg, opts[c - O_DB].name);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "farm-ventilator: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!o->db) {
        fprintf(stderr, "farm-ventilator: --db FILE is required (see --help)\n");
        return -1;
    }
    const char *binds[] = {o->ep.front, o->ep.dispatch};
    for (size_t i = 0; i < 2; i++)
        if (!o->insecure && !o->curve && !farm_endpoint_is_local(binds[i])) {
            fprintf(stderr,
                    "farm-ventilator: refusing to bind %s: it is reachable from other machines and CURVE is off.\n"
                    "  Use --curve DIR to authenticate workers and clients, or --insecure to accept anyone who can\n"
                    "  reach the port (anyone could then submit tasks, and exec tasks run commands).\n",
                    binds[i]);
            return -1;
        }
    return 0;
}

/* Make the front door and dispatch CURVE servers and the report socket a
 * client of the sink with the head's own key. Returns 0 or -1, logged. */
static int s_curve_apply(farm_curve_server_t *curve, void *front, vent_t *v) {
    int rc = farm_curve_server_apply(curve, front, FARM_CURVE_CLIENTS);
    if (!rc)
        rc = farm_curve_server_apply(curve, v->dispatch, FARM_CURVE_WORKERS);
    if (!rc)
        rc = farm_curve_keys_apply(farm_curve_server_self(curve), v->report);
    if (rc)
        farm_log(FARM_LOG_ERROR, "vent", "op=curve err=\"%s\"", zmq_strerror(-rc));
    return rc ? -1 : 0;
}

/* Answer one front-door request. */
static void s_on_front(vent_t *v, void *front) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, front, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return;
    }
    msgpack_sbuffer reply;
    msgpack_sbuffer_init(&reply);
    if (farm_sock_drain(front) > 0) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &reply, msgpack_sbuffer_write);
        farm_error_t e;
        farm_error_set(&e, FARM_EBADREQ, NULL, "a request is exactly one frame");
        farm_pack_error(&pk, &e);
    } else {
        vent_front_handle(v, zmq_msg_data(&m), zmq_msg_size(&m), &reply);
    }
    zmq_msg_close(&m);
    if (zmq_send(front, reply.data, reply.size, 0) < 0)
        farm_log(FARM_LOG_WARN, "vent", "op=reply err=\"%s\"", zmq_strerror(errno));
    msgpack_sbuffer_destroy(&reply);
}

/* Has socket s a message waiting? Asking processes the socket's pending
 * commands, which re-arms its ZMQ_FD. An error (a signal) answers no: the
 * FD then still signals whatever is waiting. */
static bool s_readable(void *s) {
    int ev = 0;
    size_t sz = sizeof ev;
    if (zmq_getsockopt(s, ZMQ_EVENTS, &ev, &sz)) {
        if (errno != EINTR)
            farm_log(FARM_LOG_WARN, "vent", "op=events err=\"%s\"", zmq_strerror(errno));
        return false;
    }
    return ev & ZMQ_POLLIN;
}

/* Take one message from a worker. */
static void s_on_worker(vent_t *v) {
    zmq_msg_t rid, body;
    zmq_msg_init(&rid);
    zmq_msg_init(&body);
    if (zmq_msg_recv(&rid, v->dispatch, ZMQ_DONTWAIT) >= 0) {
        if (zmq_msg_more(&rid) && zmq_msg_recv(&body, v->dispatch, 0) >= 0) {
            if (farm_sock_drain(v->dispatch) == 0)
                vent_sched_on_worker(v, zmq_msg_data(&rid), zmq_msg_size(&rid), zmq_msg_data(&body),
                                     zmq_msg_size(&body));
        }
    }
    zmq_msg_close(&rid);
    zmq_msg_close(&body);
}

int main(int argc, char **argv) {
    s_opts_t o = {.lost_after_ms = 5000, .backoff = {1000, 2.0, 300000, 20}};
    farm_endpoints_default(&o.ep);
    farm_limits_default(&o.limits);
    if (s_parse(argc, argv, &o))
        return 2;
    farm_proto_set_limits(&o.limits);
    farm_heap_tune();
    if (farm_signals_install()) {
        farm_log(FARM_LOG_ERROR, "vent", "op=signals err=\"%s\"", strerror(errno));
        return 1;
    }
    int err = 0, status = 1;
    farm_curve_server_t *curve = NULL;
    vent_t v = {.limits = o.limits, .lost_after_ms = o.lost_after_ms, .epoch = farm_now_ms(),
                .started_mono = farm_mono_ms(), .work_maybe = true};
    msgpack_sbuffer_init(&v.events);
    void *ctx = zmq_ctx_new(), *front = NULL;
    v.store = farm_store_open(o.db, o.sync_full, &err);
    if (!ctx || !v.store)
        goto out;
    char why[1024];
    if (o.curve && !(curve = farm_curve_server_new(ctx, o.curve, "vent", why, sizeof why))) {
        fprintf(stderr, "farm-ventilator: %s\n", why);
        status = 2;
        goto out;
    }
    farm_store_on_change(v.store, vent_on_change, &v);
    if (farm_store_set_backoff(v.store, &o.backoff))
        goto out;
    vent_sched_restore(&v);
    front = farm_sock_new(ctx, ZMQ_REP, 1000, 0);
    v.dispatch = farm_sock_new(ctx, ZMQ_ROUTER, 10000, 0);
    v.report = farm_sock_new(ctx, ZMQ_PUSH, 10000, 0);
    int one = 1;
    if (!front || !v.dispatch || !v.report ||
        zmq_setsockopt(v.dispatch, ZMQ_ROUTER_MANDATORY, &one, sizeof one) ||
        /* Feed events are for watching: none queue up while the sink is away. */
        zmq_setsockopt(v.report, ZMQ_IMMEDIATE, &one, sizeof one) ||
        farm_sock_maxmsg(front, o.limits.max_frame * 2) || farm_sock_maxmsg(v.dispatch, 16 << 20) /* a heartbeat lists what a worker holds */ ||
        (curve && s_curve_apply(curve, front, &v)) ||
        farm_sock_attach(front, o.ep.front, true) || farm_sock_attach(v.dispatch, o.ep.dispatch, true) ||
        farm_sock_attach(v.report, o.ep.results, false))
        goto out;
    farm_log(FARM_LOG_INFO, "vent", "event=start front=%s dispatch=%s db=%s epoch=%" PRId64 " curve=%s", o.ep.front,
             o.ep.dispatch, o.db, v.epoch, curve ? "on" : "off");
    int fd[2];
    size_t fdsz = sizeof fd[0];
    if (zmq_getsockopt(front, ZMQ_FD, &fd[0], &fdsz) || zmq_getsockopt(v.dispatch, ZMQ_FD, &fd[1], &fdsz)) {
        farm_log(FARM_LOG_ERROR, "vent", "op=fd err=\"%s\"", zmq_strerror(errno));
        goto out;
    }
    /* The loop sleeps in poll(2) on the two sockets' ZMQ_FDs rather than in
     * zmq_poll, which asks every socket for its events before and after
     * each sleep: two system calls a socket, and a system call is the cost
     * that counts on a busy two-core head (a submit's reply waits for them).
     * A socket's FD only says "look again"; once looked at (ZMQ_EVENTS) it
     * signals again only for what arrives later. So a socket is looked at
     * until it has nothing, and again after anything was sent on it (a send
     * may take the commands that would have signalled): the front door's
     * reply is followed by a look, and so is any send on the dispatch
     * socket, wherever it happens (a cancel at the front door sends stops
     * to workers): dispatch_seen is the count of sends at its last look. */
    bool front_may = true, dispatch_may = true;
    uint64_t dispatch_seen = v.dispatch_sends;
    int64_t next_tick = farm_mono_ms(), next_stats = next_tick;
    while (!farm_sock_stopping()) {
        /* Bounded batches so neither socket starves the other. */
        for (int i = 0; front_may && i < 64; i++) {
            if (!(front_may = s_readable(front)))
                break;
            s_on_front(&v, front);
        }
        for (int i = 0; dispatch_may && i < 4096; i++) {
            dispatch_seen = v.dispatch_sends;
            if (!(dispatch_may = s_readable(v.dispatch)))
                break;
            s_on_worker(&v);
        }
        int64_t now = farm_mono_ms();
        if (now >= next_tick) {
            vent_sched_tick(&v);
            next_tick = now + 100;
        }
        vent_sched_dispatch(&v);
        vent_flush_events(&v);
        if (now >= next_stats) {
            msgpack_sbuffer b;
            msgpack_sbuffer_init(&b);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
            vent_pack_stats(&v, &pk, false);
            vent_publish(&v, "stats", &b);
            msgpack_sbuffer_destroy(&b);
            next_stats = now + 1000;
        }
        if (v.dispatch_sends != dispatch_seen)
            dispatch_may = true;
        if (front_may || dispatch_may)
            continue;
        struct pollfd p[2] = {{fd[0], POLLIN, 0}, {fd[1], POLLIN, 0}};
        now = farm_mono_ms();
        int n = poll(p, 2, next_tick > now ? (int)(next_tick - now) : 0);
        if (n < 0 && errno != EINTR) {
            farm_log(FARM_LOG_ERROR, "vent", "op=poll err=\"%s\"", strerror(errno));
            goto out;
        }
        front_may = n > 0 && p[0].revents;
        dispatch_may = n > 0 && p[1].revents;
    }
    farm_log(FARM_LOG_INFO, "vent", "event=stop");
    status = 0;
out:
    if (front)
        zmq_close(front);
    if (v.dispatch)
        zmq_close(v.dispatch);
    if (v.report)
        zmq_close(v.report);
    farm_curve_server_destroy(&curve);
    if (ctx)
        zmq_ctx_term(ctx);
    farm_store_close(&v.store, true);
    vent_sched_destroy(&v);
    msgpack_sbuffer_destroy(&v.events);
    return status;
}
