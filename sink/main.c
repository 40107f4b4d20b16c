/* farm-sink: stores results and progress, publishes the status feed.
 *
 * main parses flags, opens the store, binds the results PULL and the feed
 * PUB, and loops: take up to a batch of reports, store them in one
 * transaction, then acknowledge and publish. Batching is what lets one
 * SQLite writer keep up with many workers: the cost of a commit is paid
 * once per batch, not once per result.
 */
#include "sink.h"

#include "farm_curve.h"
#include "farm_err.h"
#include "farm_log.h"
#include "farm_proto.h"
#include "farm_sock.h"
#include "farm_time.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define SINK_BATCH 4096
/* Between background checkpoints of the WAL. Each one syncs the WAL and
 * the database file, and commits made around a sync wait for it, so longer
 * intervals help the one-task submit p99 (no worker: 450-550 us at 100 ms,
 * 360-390 at 300 ms, 260-320 at 1 s, against a bare round trip p99 of
 * ~200 us). But each checkpoint then has more to do and stalls the sink
 * longer, and the reports that pile up meanwhile raise its heap's high
 * water mark late in a run: 1M no-ops at 1 s grew the sink by up to 2.5 MB
 * from the run's second quarter to its last (at 100 ms: under 0.6 MB in
 * three runs) and ran 64k tasks/s against 65.7-68k at 100 ms. Throughput
 * and flat memory are the promises; the short interval keeps them. */
#define SINK_CHECKPOINT_MS 100
#define SINK_BATCH_BYTES (4 << 20) /* frames carry several reports: bound a transaction by bytes too */

static void s_usage(FILE *f) {
    fprintf(f,
            "usage: farm-sink --db FILE [options]\n"
            "\n"
            "The farm's collector: stores what workers report in FILE (SQLite, WAL, shared with\n"
            "the ventilator) and publishes the status feed.\n"
            "\n"
            "  --db FILE           the farm's database (required)\n"
            "  --results EP        results socket to bind (tcp://127.0.0.1:%d)\n"
            "  --feed EP           status feed to bind    (tcp://127.0.0.1:%d)\n"
            "  --front EP          accepted for symmetry, unused here\n"
            "  --dispatch EP       accepted for symmetry, unused here\n"
            "  --max-frame BYTES   largest report accepted (64M)\n"
            "  --sync-full         fsync every commit (survives power loss, slower)\n"
            "  --curve DIR         CURVE: DIR/server.cert (+ _secret) is the head's key pair; only keys in\n"
            "                      DIR/workers/*.cert may report, DIR/clients/*.cert and\n"
            "                      DIR/workers/*.cert may read the feed; re-read while running\n"
            "  --insecure          allow binding a non-loopback address without CURVE\n"
            "  --log-level LEVEL   debug, info, warn or error (info)\n"
            "  --help              this text\n",
            FARM_PORT_RESULTS, FARM_PORT_FEED);
}

int main(int argc, char **argv) {
    enum { O_DB = 256, O_RESULTS, O_FEED, O_FRONT, O_DISPATCH, O_FRAME, O_SYNC, O_INSECURE, O_LOG, O_HELP, O_CURVE };
    static const struct option opts[] = {
        {"db", 1, 0, O_DB}, {"results", 1, 0, O_RESULTS}, {"feed", 1, 0, O_FEED}, {"front", 1, 0, O_FRONT},
        {"dispatch", 1, 0, O_DISPATCH}, {"max-frame", 1, 0, O_FRAME}, {"sync-full", 0, 0, O_SYNC},
        {"insecure", 0, 0, O_INSECURE}, {"log-level", 1, 0, O_LOG}, {"help", 0, 0, O_HELP}, {"curve", 1, 0, O_CURVE}, {0, 0, 0, 0}};
    const char *db = NULL, *curve_dir = NULL;
    farm_endpoints_t ep;
    farm_endpoints_default(&ep);
    int64_t max_frame = 64 << 20;
    bool sync_full = false, insecure = false;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_DB: db = optarg; break;
        case O_RESULTS: bad = farm_endpoint_set(ep.results, optarg); break;
        case O_FEED: bad = farm_endpoint_set(ep.feed, optarg); break;
        case O_FRONT: bad = farm_endpoint_set(ep.front, optarg); break;
        case O_DISPATCH: bad = farm_endpoint_set(ep.dispatch, optarg); break;
        case O_FRAME: bad = farm_parse_size(optarg, &max_frame) || max_frame < 1024; break;
        case O_SYNC: sync_full = true; break;
        case O_INSECURE: insecure = true; break;
        case O_CURVE: curve_dir = optarg; bad = !*optarg; break;
        case O_LOG: {
            farm_log_level_t lv;
            if (!(bad = farm_log_parse_level(optarg, &lv)))
                farm_log_set_level(lv);
            break;
        }
        case O_HELP: s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
        if (bad) {
            fprintf(stderr, "farm-sink: bad value '%s' for --%s\n", optarg, opts[c - O_DB].name);
            return 2;
        }
    }
    if (optind < argc || !db) {
        fprintf(stderr, optind < argc ? "farm-sink: unexpected argument '%s'\n" : "farm-sink: --db FILE is required%s\n",
                optind < argc ? argv[optind] : " (see --help)");
        return 2;
    }
    const char *binds[] = {ep.results, ep.feed};
    for (int i = 0; i < 2; i++)
        if (!insecure && !curve_dir && !farm_endpoint_is_local(binds[i])) {
            fprintf(stderr,
                    "farm-sink: refusing to bind %s: it is reachable from other machines and CURVE is off.\n"
                    "  Use --curve DIR to authenticate workers, or --insecure to accept anyone who can reach it.\n",
                    binds[i]);
            return 2;
        }
    farm_heap_tune();
    if (farm_signals_install())
        return 1;

    int status = 1, err = 0;
    static zmq_msg_t batch[SINK_BATCH]; /* the reports of one transaction */
    sink_t s = {.sec = farm_now_ms() / 1000};
    farm_checkpointer_t *ckpt = NULL;
    farm_curve_server_t *curve = NULL;
    msgpack_sbuffer_init(&s.events);
    void *ctx = zmq_ctx_new();
    s.store = farm_store_open(db, sync_full, &err);
    /* Checkpoints on a thread of their own: no commit pays for one. */
    ckpt = s.store ? farm_checkpointer_start(db, SINK_CHECKPOINT_MS) : NULL;
    if (!ctx || !s.store)
        goto out;
    char why[1024];
    if (curve_dir && !(curve = farm_curve_server_new(ctx, curve_dir, "sink", why, sizeof why))) {
        fprintf(stderr, "farm-sink: %s\n", why);
        status = 2;
        goto out;
    }
    farm_store_on_change(s.store, sink_on_change, &s);
    /* Results wait in the workers, not here: a modest HWM bounds memory. */
    s.pull = farm_sock_new(ctx, ZMQ_PULL, 10000, 0);
    s.pub = farm_sock_new(ctx, ZMQ_PUB, 100000, 0);
    if (!s.pull || !s.pub || farm_sock_maxmsg(s.pull, max_frame) ||
        (curve && (farm_curve_server_apply(curve, s.pull, FARM_CURVE_WORKERS) ||
                   farm_curve_server_apply(curve, s.pub, FARM_CURVE_FEED))) ||
        farm_sock_attach(s.pull, ep.results, true) ||
        farm_sock_attach(s.pub, ep.feed, true))
        goto out;
    farm_log(FARM_LOG_INFO, "sink", "event=start results=%s feed=%s db=%s curve=%s", ep.results, ep.feed, db,
             curve ? "on" : "off");
    int64_t next_jobs = farm_mono_ms();
    while (!farm_sock_stopping()) {
        zmq_pollitem_t items[] = {{s.pull, 0, ZMQ_POLLIN, 0}};
        int rc = zmq_poll(items, 1, 100);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            farm_log(FARM_LOG_ERROR, "sink", "op=poll err=\"%s\"", zmq_strerror(errno));
            goto out;
        }
        if (items[0].revents & ZMQ_POLLIN) {
            /* Take what is there (up to a batch), then store it in one transaction. */
            size_t n = 0, bytes = 0;
            while (n < SINK_BATCH && bytes < SINK_BATCH_BYTES) {
                zmq_msg_init(&batch[n]);
                if (zmq_msg_recv(&batch[n], s.pull, ZMQ_DONTWAIT) < 0) {
                    zmq_msg_close(&batch[n]);
                    break;
                }
                if (farm_sock_drain(s.pull) > 0) {
                    farm_log(FARM_LOG_WARN, "sink", "event=bad_report err=\"more than one frame\"");
                    zmq_msg_close(&batch[n]);
                    continue;
                }
                bytes += zmq_msg_size(&batch[n]);
                n++;
            }
            sink_batch_scan(&s, batch, n);
            bool ok = farm_store_begin(s.store) == 0;
            for (size_t i = 0; ok && i < n; i++)
                if (sink_apply(&s, zmq_msg_data(&batch[i]), zmq_msg_size(&batch[i])))
                    ok = false;
            for (size_t i = 0; i < n; i++)
                zmq_msg_close(&batch[i]);
            if (ok && farm_store_commit(s.store) == 0) {
                sink_acks_flush(&s, true);
                sink_events_flush(&s, true);
            } else {
                /* Nothing of the batch is kept; unacknowledged results come again. */
                farm_store_rollback(s.store);
                sink_acks_flush(&s, false);
                sink_events_flush(&s, false);
                farm_log(FARM_LOG_WARN, "sink", "event=batch_rolled_back");
            }
        }
        int64_t now = farm_mono_ms();
        if (now >= next_jobs) {
            sink_jobs_flush(&s);
            next_jobs = now + 100;
        }
        sink_perf_flush(&s, false);
    }
    sink_perf_flush(&s, true);
    farm_log(FARM_LOG_INFO, "sink", "event=stop duplicates=%" PRId64, s.duplicates);
    status = 0;
out:
    if (s.pull)
        zmq_close(s.pull);
    if (s.pub)
        zmq_close(s.pub);
    farm_curve_server_destroy(&curve);
    if (ctx)
        zmq_ctx_term(ctx);
    farm_checkpointer_stop(&ckpt);
    farm_store_close(&s.store, true);
    msgpack_sbuffer_destroy(&s.events);
    free(s.dirty);
    free(s.acks);
    free(s.done);
    return status;
}
