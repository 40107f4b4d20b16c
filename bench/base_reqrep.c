/* base_reqrep: the bare ZeroMQ REQ/REP round trip the farm's submit
 * latency is held against. The request is byte for byte what farm-bench
 * sends for a one-task no-op submit (bench_pack_submit with a key of the
 * same width); a REP server in its own process answers each with a fixed
 * reply shaped and sized like the ventilator's submit reply, without
 * looking at the request. Socket set-up as the farm's: the REP through
 * farm_sock_new with the front door's HWM (1000) and LINGER 0, the REQ
 * with farm_client's HWM and LINGER 0; TCP on loopback.
 *
 * usage: base_reqrep [--n N] [--port P] [--gap-us G]
 * prints: n=N req_bytes=B rep_bytes=B p50_us=X p99_us=Y
 * (after 200 unmeasured warm-up round trips). Back to back, or with
 * --gap-us one request every G us (each timed from its send), the pattern
 * of farm-bench latency --paced, whose submits are held against it.
 */
#include "bench.h"

#include "farm_client.h"
#include "farm_msg.h"
#include "farm_sock.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#define S_WARMUP 200

static void s_server(const char *ep) {
    msgpack_sbuffer rep;
    msgpack_sbuffer_init(&rep);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &rep, msgpack_sbuffer_write);
    /* {"ok": true, "job": J, "tasks": [T], "duplicate": false}: the submit reply */
    msgpack_pack_map(&pk, 4);
    farm_pack_kv_bool(&pk, "ok", true);
    farm_pack_kv_int(&pk, "job", 1000);
    farm_pack_str(&pk, "tasks");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_int64(&pk, 1000);
    farm_pack_kv_bool(&pk, "duplicate", false);
    void *ctx = zmq_ctx_new();
    void *s = ctx ? farm_sock_new(ctx, ZMQ_REP, 1000, 0) : NULL;
    if (!s || farm_sock_attach(s, ep, true))
        _exit(1);
    char buf[65536];
    for (;;) {
        if (zmq_recv(s, buf, sizeof buf, 0) < 0) {
            if (errno == EINTR)
                continue;
            _exit(1);
        }
        while (zmq_send(s, rep.data, rep.size, 0) < 0)
            if (errno != EINTR)
                _exit(1);
    }
}

int main(int argc, char **argv) {
    int64_t n = 10000, port = 0, gap_us = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--n"))
            n = bench_int("--n", v, 1, 10000000), i++;
        else if (!strcmp(argv[i], "--port"))
            port = bench_int("--port", v, 1024, 65000), i++;
        else if (!strcmp(argv[i], "--gap-us"))
            gap_us = bench_int("--gap-us", v, 1, 10000000), i++;
        else {
            fprintf(stderr, "usage: base_reqrep [--n N] [--port P] [--gap-us G]\n");
            return 2;
        }
    }
    if (!port)
        port = 40000 + getpid() % 20000;
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%" PRId64, port);
    pid_t srv = fork();
    if (srv == 0)
        s_server(ep);

    msgpack_sbuffer task, req;
    msgpack_sbuffer_init(&task);
    msgpack_sbuffer_init(&req);
    char key[64];
    bench_key(key, sizeof key, 0);
    if (bench_task_from_json(&task, "{\"type\":\"noop\"}"))
        return 1;
    bench_pack_submit(&req, task.data, task.size, 1, key);

    int status = 1, linger = 0, hwm = FARM_CLIENT_HWM, rcvtimeo = 10000;
    bench_samples_t rtt = {0};
    size_t rep_bytes = 0;
    void *ctx = zmq_ctx_new();
    void *s = ctx ? zmq_socket(ctx, ZMQ_REQ) : NULL;
    if (!s || zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm) || zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(s, ZMQ_RCVTIMEO, &rcvtimeo, sizeof rcvtimeo) || zmq_connect(s, ep))
        goto out;
    char buf[4096];
    int64_t start = 0; /* the end of the warm-up: the schedule counts from there */
    for (int64_t i = 0; i < n + S_WARMUP; i++) {
        if (i == S_WARMUP)
            start = bench_now_us();
        if (gap_us && i >= S_WARMUP) {
            int64_t at = start + (i - S_WARMUP + 1) * gap_us, now = bench_now_us();
            if (at > now)
                bench_sleep_us(at - now);
        }
        int64_t t0 = bench_now_us();
        if (zmq_send(s, req.data, req.size, 0) < 0)
            goto out;
        int r = zmq_recv(s, buf, sizeof buf, 0);
        if (r < 0)
            goto out;
        int64_t t1 = bench_now_us();
        rep_bytes = (size_t)r;
        if (i >= S_WARMUP && bench_samples_add(&rtt, t1 - t0))
            goto out;
    }
    status = 0;
out:
    kill(srv, SIGKILL);
    waitpid(srv, NULL, 0);
    if (s)
        zmq_close(s);
    if (ctx)
        zmq_ctx_term(ctx);
    if (status) {
        fprintf(stderr, "base_reqrep: failed: %s\n", zmq_strerror(errno));
        return 1;
    }
    int64_t p50 = bench_samples_pct(&rtt, 50), p99 = bench_samples_pct(&rtt, 99);
    printf("n=%" PRId64 " req_bytes=%zu rep_bytes=%zu p50_us=%" PRId64 " p99_us=%" PRId64 "\n", n, req.size,
           rep_bytes, p50, p99);
    bench_samples_free(&rtt);
    msgpack_sbuffer_destroy(&task);
    msgpack_sbuffer_destroy(&req);
    return 0;
}
