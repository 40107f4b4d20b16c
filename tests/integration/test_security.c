/* Integration: safe defaults and limits (issue 7).
 *
 * - Binding anything but loopback without CURVE is refused (exit 2, with a
 *   message that explains --curve and --insecure); --insecure allows it.
 * - exec is off unless --allow-exec; --allow-exec=LIST runs only the named
 *   programs and fails the attempt of anything else with a clear error; a
 *   worker running as root warns once before its first exec task.
 * - The limits not covered by test_frontdoor: the frame size (a too_large
 *   reply naming max_frame up to the socket's own limit, and the socket
 *   dropping what is bigger, the ventilator still answering), the captured
 *   output (truncated, and the worker's log names max_output), and flags out
 *   of range.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "farm_err.h"
#include "farm_msg.h"
#include "harness.h"

static int s_count_in_log(h_t *h, int i, const char *text) {
    FILE *f = fopen(h->procs[i].log, "r");
    if (!f)
        return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, text) != NULL;
    fclose(f);
    return n;
}

static bool s_log_has(h_t *h, int i, const char *text, int ms) {
    int64_t end = h_now() + ms;
    do {
        if (s_count_in_log(h, i, text) > 0)
            return true;
        struct timespec ts = {0, 50 * 1000000}; /* poll interval */
        nanosleep(&ts, NULL);
    } while (h_now() < end);
    return false;
}

static int setup(void **state) {
    *state = h_new();
    return 0;
}

static int teardown(void **state) {
    h_t *h = *state;
    h_free(&h);
    return 0;
}

/* ---- loopback ----------------------------------------------------------- */

static void s_expect_refused(h_t *h, const char *cmd) {
    char out[4096];
    int st = h_sh(out, sizeof out, "%s 2>&1", cmd);
    if (st != 2)
        fail_msg("expected exit 2 from %s, got %d: %s", cmd, st, out);
    if (!strstr(out, "refusing to bind") || !strstr(out, "--curve DIR") || !strstr(out, "--insecure"))
        fail_msg("unhelpful refusal from %s: %s", cmd, out);
}

static void test_loopback_refusal(void **state) {
    h_t *h = *state;
    char cmd[1024];
    const char *fport = strrchr(h->ep.front, ':') + 1, *dport = strrchr(h->ep.dispatch, ':') + 1;
    const char *rport = strrchr(h->ep.results, ':') + 1, *pport = strrchr(h->ep.feed, ':') + 1;
    const char *hosts[] = {"0.0.0.0", "*", "[::]", "192.0.2.1"};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        snprintf(cmd, sizeof cmd, "%s --db '%s' --front 'tcp://%s:%s' --dispatch tcp://127.0.0.1:%s",
                 h_bin("farm-ventilator"), h->db, hosts[i], fport, dport);
        s_expect_refused(h, cmd);
        snprintf(cmd, sizeof cmd, "%s --db '%s' --front tcp://127.0.0.1:%s --dispatch 'tcp://%s:%s'",
                 h_bin("farm-ventilator"), h->db, fport, hosts[i], dport);
        s_expect_refused(h, cmd);
        snprintf(cmd, sizeof cmd, "%s --db '%s' --results 'tcp://%s:%s' --feed tcp://127.0.0.1:%s", h_bin("farm-sink"),
                 h->db, hosts[i], rport, pport);
        s_expect_refused(h, cmd);
        snprintf(cmd, sizeof cmd, "%s --db '%s' --results tcp://127.0.0.1:%s --feed 'tcp://%s:%s'", h_bin("farm-sink"),
                 h->db, rport, hosts[i], pport);
        s_expect_refused(h, cmd);
    }
    /* With --insecure both start on every address and the farm works. */
    char front[64], results[64];
    snprintf(front, sizeof front, "tcp://0.0.0.0:%s", fport);
    snprintf(results, sizeof results, "tcp://0.0.0.0:%s", rport);
    int v = h_start_vent(h, "--front", front, "--insecure", NULL);
    int s = h_start_sink(h, "--results", results, "--insecure", NULL);
    h_start_worker(h, "w1", 1, NULL);
    h_wait_up(h, 1);
    const msgpack_object *r = h_ok(h, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"noop\"}]}");
    assert_string_equal(h_wait_job(h, h_int(r, "job"), 10000), "completed");
    /* All of 127.0.0.0/8 and ipc are local: no flag needed. */
    assert_int_equal(h_stop(h, v, SIGTERM, 10000), 0);
    assert_int_equal(h_stop(h, s, SIGTERM, 10000), 0);
    snprintf(front, sizeof front, "tcp://127.0.0.2:%s", fport);
    v = h_start_vent(h, "--front", front, NULL);
    char ipc[200];
    snprintf(ipc, sizeof ipc, "ipc://%s/feed.sock", h->dir);
    s = h_start_sink(h, "--feed", ipc, NULL);
    assert_true(s_log_has(h, v, "event=start front=tcp://127.0.0.2:", 10000));
    assert_true(s_log_has(h, s, "event=start results=tcp://127.0.0.1:", 10000));
}

/* ---- exec --------------------------------------------------------------- */

static int64_t s_exec(h_t *h, const char *argv) {
    const msgpack_object *r =
        h_ok(h, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"exec\",\"max_attempts\":1,\"args\":{\"argv\":%s}}]}", argv);
    return h_int(r, "tasks.0");
}

static void s_expect_state(h_t *h, int64_t task, const char *state, const char *error_part) {
    if (!h_wait_task(h, task, state, 10000)) {
        h_call(h, "{\"op\":\"status\",\"task\":%lld}", (long long)task);
        fail_msg("task %lld: expected %s, is %s (%s)", (long long)task, state, h_str(&h->reply, "task.state"),
                 h_str(&h->reply, "task.error"));
    }
    if (error_part) {
        const msgpack_object *r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)task);
        if (!strstr(h_str(r, "task.error"), error_part))
            fail_msg("task %lld: error '%s' lacks '%s'", (long long)task, h_str(r, "task.error"), error_part);
    }
}

static void test_exec_allow_list(void **state) {
    h_t *h = *state;
    h_start_vent(h, NULL);
    h_start_sink(h, NULL);
    int w = h_start_worker(h, "w1", 2, "--allow-exec=true,/bin/echo", "--allow-exec=printf", NULL);
    h_wait_up(h, 1);
    assert_true(s_log_has(h, w, "allow=\"true,/bin/echo,printf\"", 2000));
    int64_t ok1 = s_exec(h, "[\"true\"]");
    int64_t ok2 = s_exec(h, "[\"/bin/echo\",\"hi\"]");
    int64_t ok3 = s_exec(h, "[\"printf\",\"x\"]");
    int64_t bad1 = s_exec(h, "[\"rm\",\"-rf\",\"/nonexistent-farm-test\"]");
    int64_t bad2 = s_exec(h, "[\"/bin/true\"]");     /* a name does not allow a path */
    int64_t bad3 = s_exec(h, "[\"echo\",\"hi\"]");   /* a path does not allow the name */
    int64_t bad4 = s_exec(h, "[\"./true\"]");
    int64_t bad5 = s_exec(h, "[\"sh\",\"-c\",\"true\"]");
    s_expect_state(h, ok1, "completed", NULL);
    s_expect_state(h, ok2, "completed", NULL);
    s_expect_state(h, ok3, "completed", NULL);
    s_expect_state(h, bad1, "failed", "exec: program 'rm' is not in this worker's allow-list");
    s_expect_state(h, bad2, "failed", "exec: program '/bin/true' is not in this worker's allow-list");
    s_expect_state(h, bad3, "failed", "program 'echo' is not");
    s_expect_state(h, bad4, "failed", "program './true' is not");
    s_expect_state(h, bad5, "failed", "program 'sh' is not");
    /* The task's own PATH cannot swap the program behind a name. */
    char dir[300], out[512];
    snprintf(dir, sizeof dir, "%s/evil", h->dir);
    assert_int_equal(h_sh(out, sizeof out, "mkdir -p '%s' && printf '#!/bin/sh\\necho evil\\n' > '%s/true' && chmod +x '%s/true'",
                          dir, dir, dir), 0);
    const msgpack_object *r = h_ok(h, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"exec\",\"max_attempts\":1,\"args\":"
                                      "{\"argv\":[\"true\"],\"env\":{\"PATH\":\"%s\"}}}]}", dir);
    int64_t t = h_int(r, "tasks.0");
    s_expect_state(h, t, "completed", NULL);
    r = h_ok(h, "{\"op\":\"result\",\"task\":%lld}", (long long)t);
    assert_null(strstr(h_str(r, "result.stdout"), "evil"));
    /* Root: one warning, before the first exec task ran, never again. */
    if (geteuid() == 0)
        assert_int_equal(s_count_in_log(h, w, "event=exec-as-root"), 1);
    else
        assert_int_equal(s_count_in_log(h, w, "event=exec-as-root"), 0);
}

static void test_exec_off_by_default(void **state) {
    h_t *h = *state;
    h_start_vent(h, NULL);
    h_start_sink(h, NULL);
    int w = h_start_worker(h, "w1", 1, NULL);
    h_wait_up(h, 1);
    int64_t t = s_exec(h, "[\"true\"]");
    const msgpack_object *r = h_ok(h, "{\"op\":\"workers\"}");
    const msgpack_object *types = h_get(r, "workers.0.types");
    for (uint32_t i = 0; i < types->via.array.size; i++)
        assert_false(farm_str_eq((farm_str_t){types->via.array.ptr[i].via.str.ptr, types->via.array.ptr[i].via.str.size},
                                 "exec"));
    r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)t);
    assert_string_equal(h_str(r, "task.state"), "pending");
    assert_string_equal(h_str(r, "task.message"), "no live worker offers type \"exec\"");
    assert_int_equal(s_count_in_log(h, w, "exec-enabled"), 0);
    /* Bad allow-lists stop the worker before it connects. */
    char out[2048];
    const char *bad[] = {"--allow-exec --allow-exec=true", "--allow-exec=bin/sh", "--allow-exec=", "--allow-exec=a,,b",
                         "--allow-exec sh"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st = h_sh(out, sizeof out, "%s --dispatch %s --results %s --feed %s %s 2>&1", h_bin("farm-worker"),
                      h->ep.dispatch, h->ep.results, h->ep.feed, bad[i]);
        if (st != 2 || !strstr(out, "allow-exec"))
            fail_msg("'%s': exit %d: %s", bad[i], st, out);
    }
}

/* ---- limits ------------------------------------------------------------- */

/* Send one frame of n bytes (a msgpack str holding it, so it is valid
 * MessagePack) to the front door; returns the reply's error code, "" for
 * ok, or "(none)" when no reply came in ms. */
static const char *s_frame(h_t *h, size_t n, int ms, char *msg, size_t msgn) {
    static char code[64];
    void *ctx = zmq_ctx_new();
    void *req = zmq_socket(ctx, ZMQ_REQ);
    int linger = 0;
    zmq_setsockopt(req, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_connect(req, h->ep.front), 0);
    char *buf = malloc(n);
    assert_non_null(buf);
    memset(buf, 'x', n);
    buf[0] = (char)0xdb; /* str32 of n - 5 bytes */
    uint32_t len = (uint32_t)(n - 5);
    buf[1] = (char)(len >> 24), buf[2] = (char)(len >> 16), buf[3] = (char)(len >> 8), buf[4] = (char)len;
    assert_int_equal(zmq_send(req, buf, n, 0), (int)n);
    free(buf);
    zmq_pollitem_t it = {req, 0, ZMQ_POLLIN, 0};
    snprintf(code, sizeof code, "(none)");
    if (zmq_poll(&it, 1, ms) == 1) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        assert_true(zmq_msg_recv(&m, req, 0) > 0);
        msgpack_zone z;
        msgpack_zone_init(&z, 1024);
        msgpack_object o;
        farm_error_t e;
        assert_int_equal(farm_msg_unpack(zmq_msg_data(&m), zmq_msg_size(&m), &z, &o, &e), 0);
        const msgpack_object *c = farm_msg_get(farm_msg_get(&o, "error"), "code");
        const msgpack_object *t = farm_msg_get(farm_msg_get(&o, "error"), "message");
        farm_str_copy(code, sizeof code, c ? (farm_str_t){c->via.str.ptr, c->via.str.size} : (farm_str_t){"", 0});
        farm_str_copy(msg, msgn, t ? (farm_str_t){t->via.str.ptr, t->via.str.size} : (farm_str_t){"", 0});
        msgpack_zone_destroy(&z);
        zmq_msg_close(&m);
    }
    zmq_close(req);
    zmq_ctx_term(ctx);
    return code;
}

static void test_frame_limit(void **state) {
    h_t *h = *state;
    h_start_vent(h, "--max-frame", "4096", NULL);
    h_start_sink(h, "--max-frame", "4096", NULL);
    int64_t end = h_now() + 10000;
    while (h_call(h, "{\"op\":\"health\"}") != 0)
        assert_true(h_now() < end);
    char msg[256];
    /* Under the limit: an ordinary bad_request (not a map). */
    assert_string_equal(s_frame(h, 4000, 3000, msg, sizeof msg), "bad_request");
    /* Over max_frame, under the socket's limit (2 x max_frame): named. */
    assert_string_equal(s_frame(h, 5000, 3000, msg, sizeof msg), "too_large");
    assert_non_null(strstr(msg, "max_frame=4096"));
    assert_string_equal(s_frame(h, 8192, 3000, msg, sizeof msg), "too_large");
    /* Over the socket's limit: libzmq drops the connection, nothing is read. */
    assert_string_equal(s_frame(h, 8193 + 64, 700, msg, sizeof msg), "(none)");
    /* ... and the front door still answers everyone else. */
    h_ok(h, "{\"op\":\"health\"}");
    /* A report over the sink's --max-frame is dropped at its socket; the sink lives on. */
    void *ctx = zmq_ctx_new();
    void *push = zmq_socket(ctx, ZMQ_PUSH);
    int linger = 500;
    zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_connect(push, h->ep.results), 0);
    char *big = calloc(1, 10000);
    assert_int_equal(zmq_send(push, big, 10000, 0), 10000);
    free(big);
    zmq_close(push);
    zmq_ctx_term(ctx);
    h_start_worker(h, "w1", 1, NULL);
    h_wait_up(h, 1);
    const msgpack_object *r = h_ok(h, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"noop\"}]}");
    assert_string_equal(h_wait_job(h, h_int(r, "job"), 10000), "completed");
    /* Flags out of range are refused at start. */
    char out[1024];
    int st = h_sh(out, sizeof out, "%s --db '%s' --max-frame 10 2>&1", h_bin("farm-ventilator"), h->db);
    assert_int_equal(st, 2);
    assert_non_null(strstr(out, "--max-frame"));
    st = h_sh(out, sizeof out, "%s --db '%s' --max-batch 0 2>&1", h_bin("farm-ventilator"), h->db);
    assert_int_equal(st, 2);
    st = h_sh(out, sizeof out, "%s --max-output 1G 2>&1", h_bin("farm-worker"));
    assert_int_equal(st, 2);
    assert_non_null(strstr(out, "--max-output"));
}

static void test_output_limit(void **state) {
    h_t *h = *state;
    h_start_vent(h, NULL);
    h_start_sink(h, NULL);
    int w = h_start_worker(h, "w1", 1, "--allow-exec", "--max-output", "100", NULL);
    h_wait_up(h, 1);
    int64_t t = s_exec(h, "[\"sh\",\"-c\",\"i=0; while [ $i -lt 100 ]; do echo 0123456789; i=$((i+1)); done; "
                          "echo err >&2\"]");
    s_expect_state(h, t, "completed", NULL);
    const msgpack_object *r = h_ok(h, "{\"op\":\"result\",\"task\":%lld}", (long long)t);
    const msgpack_object *out = h_get(r, "result.stdout");
    assert_int_equal(out->via.bin.size, 100);
    assert_true(h_get(r, "result.truncated")->via.boolean);
    assert_string_equal(h_str(r, "result.stderr"), "err\n");
    char line[128];
    snprintf(line, sizeof line, "event=output-truncated task=%lld limit=max_output max_output=100", (long long)t);
    assert_true(s_log_has(h, w, line, 3000));
    /* Under the limit: not truncated, nothing logged. */
    t = s_exec(h, "[\"echo\",\"short\"]");
    s_expect_state(h, t, "completed", NULL);
    r = h_ok(h, "{\"op\":\"result\",\"task\":%lld}", (long long)t);
    assert_false(h_get(r, "result.truncated")->via.boolean);
    assert_int_equal(s_count_in_log(h, w, "event=output-truncated"), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_loopback_refusal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exec_allow_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exec_off_by_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frame_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_limit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
