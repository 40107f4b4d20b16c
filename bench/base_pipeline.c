/* base_pipeline: the bare ZeroMQ pipeline the farm's throughput is held
 * against. A ventilator PUSHes N messages the size of a no-op task message
 * to W worker processes (PULL), each of which PUSHes a message the size of
 * a no-op result to a sink (PULL) that counts them. No decoding, no
 * database, no credit: only the transport the farm is built on, with the
 * farm's socket set-up (farm_sock_new: explicit HWM both ways, LINGER 0)
 * and the farm's high-water marks (ventilator and sink 10000, worker 1000),
 * over TCP on loopback, one process per role as in a farm.
 *
 * usage: base_pipeline [--n N] [--workers W] [--port P]
 * prints: n=N workers=W task_bytes=B result_bytes=B elapsed_s=S rate=R (messages/s)
 * Time runs from the first send to the sink's last receive (one monotonic
 * clock shared by the processes).
 */
#include "bench.h"

#include "farm_proto.h"
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

#define S_VENT_HWM 10000  /* ventilator dispatch ROUTER (ventilator/main.c) */
#define S_WORKER_HWM 1000 /* worker sockets (worker/worker_link.c) */
#define S_SINK_HWM 10000  /* sink results PULL (sink/main.c) */

static void s_pack_sizes(msgpack_sbuffer *task, msgpack_sbuffer *result) {
    msgpack_packer pk;
    int64_t now = 1795347150411; /* a wall time in ms: the farm sends these */
    farm_msg_task_t t = {.epoch = now, .seq = 123456, .id = 123456, .job = 124, .type = {"noop", 4},
                         .attempt = 1, .timeout_ms = 0};
    msgpack_packer_init(&pk, task, msgpack_sbuffer_write);
    farm_pack_task(&pk, &t, NULL, 0);
    msgpack_packer_init(&pk, result, msgpack_sbuffer_write);
    farm_pack_result(&pk, 123456, 1, "w1", true, false, NULL, 0, NULL, now, now);
}

static void s_worker(const char *in_ep, const char *out_ep, const msgpack_sbuffer *result) {
    void *ctx = zmq_ctx_new();
    void *in = farm_sock_new(ctx, ZMQ_PULL, S_WORKER_HWM, 0);
    void *out = farm_sock_new(ctx, ZMQ_PUSH, S_WORKER_HWM, 0);
    if (!in || !out || farm_sock_attach(in, in_ep, false) || farm_sock_attach(out, out_ep, false))
        _exit(1);
    char buf[4096];
    for (;;) {
        if (zmq_recv(in, buf, sizeof buf, 0) < 0) {
            if (errno == EINTR)
                continue;
            _exit(1);
        }
        while (zmq_send(out, result->data, result->size, 0) < 0)
            if (errno != EINTR)
                _exit(1);
    }
}

/* The sink counts n results and writes the time of the last one to fd. */
static void s_sink(void *pull, int64_t n, int fd) {
    char buf[4096];
    for (int64_t i = 0; i < n;) {
        if (zmq_recv(pull, buf, sizeof buf, 0) < 0) {
            if (errno == EINTR)
                continue;
            _exit(1);
        }
        i++;
    }
    int64_t t = bench_now_us();
    _exit(write(fd, &t, sizeof t) == (ssize_t)sizeof t ? 0 : 1);
}

int main(int argc, char **argv) {
    int64_t n = 1000000, workers = 2, port = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--n"))
            n = bench_int("--n", v, 1, INT32_MAX), i++;
        else if (!strcmp(argv[i], "--workers"))
            workers = bench_int("--workers", v, 1, 64), i++;
        else if (!strcmp(argv[i], "--port"))
            port = bench_int("--port", v, 1024, 65000), i++;
        else {
            fprintf(stderr, "usage: base_pipeline [--n N] [--workers W] [--port P]\n");
            return 2;
        }
    }
    if (!port)
        port = 40000 + getpid() % 20000;
    char vent_ep[64], sink_ep[64];
    snprintf(vent_ep, sizeof vent_ep, "tcp://127.0.0.1:%" PRId64, port);
    snprintf(sink_ep, sizeof sink_ep, "tcp://127.0.0.1:%" PRId64, port + 1);
    msgpack_sbuffer task, result;
    msgpack_sbuffer_init(&task);
    msgpack_sbuffer_init(&result);
    s_pack_sizes(&task, &result);

    int fds[2];
    if (pipe(fds))
        return 1;
    /* The sink binds before anyone connects; it reports through the pipe. */
    pid_t sink = fork();
    if (sink == 0) {
        void *ctx = zmq_ctx_new();
        void *pull = farm_sock_new(ctx, ZMQ_PULL, S_SINK_HWM, 0);
        if (!pull || farm_sock_attach(pull, sink_ep, true))
            _exit(1);
        s_sink(pull, n, fds[1]);
    }
    /* Workers fork before the parent makes its context (a ZeroMQ context
     * does not survive fork); they connect and retry until it binds. */
    pid_t wp[64];
    for (int64_t w = 0; w < workers; w++) {
        wp[w] = fork();
        if (wp[w] == 0)
            s_worker(vent_ep, sink_ep, &result);
    }
    int64_t t0 = 0, t1 = 0;
    int status = 0;
    void *ctx = zmq_ctx_new();
    void *push = ctx ? farm_sock_new(ctx, ZMQ_PUSH, S_VENT_HWM, 0) : NULL;
    if (!push || farm_sock_attach(push, vent_ep, true)) {
        status = 1;
        goto out;
    }
    /* Every worker connected before the first send, so PUSH spreads the load. */
    bench_sleep_us(300000);
    t0 = bench_now_us();
    for (int64_t i = 0; i < n; i++)
        while (zmq_send(push, task.data, task.size, 0) < 0)
            if (errno != EINTR) {
                status = 1;
                goto out;
            }
    if (read(fds[0], &t1, sizeof t1) != (ssize_t)sizeof t1)
        status = 1;
out:
    for (int64_t w = 0; w < workers; w++)
        kill(wp[w], SIGKILL);
    kill(sink, SIGKILL);
    for (int64_t w = 0; w < workers; w++)
        waitpid(wp[w], NULL, 0);
    waitpid(sink, NULL, 0);
    if (push)
        zmq_close(push);
    if (ctx)
        zmq_ctx_term(ctx);
    if (status) {
        fprintf(stderr, "base_pipeline: failed\n");
        return 1;
    }
    double s = (double)(t1 - t0) / 1e6;
    printf("n=%" PRId64 " workers=%" PRId64 " task_bytes=%zu result_bytes=%zu elapsed_s=%.4f rate=%.0f\n", n,
           workers, task.size, result.size, s, (double)n / s);
    msgpack_sbuffer_destroy(&task);
    msgpack_sbuffer_destroy(&result);
    return 0;
}
