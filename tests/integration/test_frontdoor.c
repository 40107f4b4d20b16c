/* Integration: every front-door op against the real ventilator, sink and
 * workers, with the exact reply shapes and error codes of the spec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "farm_err.h"
#include "harness.h"

static int setup(void **state) {
    h_t *h = h_new();
    /* Small limits so every limit can be hit cheaply. */
    h_start_vent(h, "--max-batch", "50", "--max-args", "1000", "--max-name", "20", "--max-key", "16",
                 "--max-pending", "60", "--backoff-base-ms", "50", NULL);
    h_start_sink(h, NULL);
    h_start_worker(h, "w1", 2, "--allow-exec", NULL);
    h_wait_up(h, 1);
    *state = h;
    return 0;
}

static int teardown(void **state) {
    h_t *h = *state;
    h_free(&h);
    return 0;
}

static void test_health_stats_workers(void **state) {
    h_t *h = *state;
    const msgpack_object *r = h_ok(h, "{\"op\":\"health\"}");
    assert_string_equal(h_str(r, "status"), "ok");
    assert_string_equal(h_str(r, "version"), "0.1.0");
    assert_true(h_int(r, "uptime_s") >= 0);
    r = h_ok(h, "{\"op\":\"stats\"}");
    const char *states[] = {"pending", "running", "retrying", "completed", "failed", "cancelled"};
    for (int i = 0; i < 6; i++) {
        char p[64];
        snprintf(p, sizeof p, "counts.%s", states[i]);
        assert_int_equal(h_int(r, p), 0);
    }
    assert_int_equal(h_int(r, "workers"), 1);
    assert_int_equal(h_int(r, "slots"), 2);
    assert_int_equal(h_int(r, "busy"), 0);
    assert_non_null(h_get(r, "throughput.10s"));
    assert_non_null(h_get(r, "throughput.60s"));
    assert_int_equal(h_int(r, "latency_ms.p50"), 0);
    r = h_ok(h, "{\"op\":\"workers\"}");
    assert_int_equal(h_get(r, "workers")->via.array.size, 1);
    assert_string_equal(h_str(r, "workers.0.id"), "w1");
    assert_string_equal(h_str(r, "workers.0.state"), "alive");
    assert_int_equal(h_int(r, "workers.0.slots"), 2);
    assert_true(h_int(r, "workers.0.pid") > 0);
    const msgpack_object *types = h_get(r, "workers.0.types");
    bool exec = false;
    for (uint32_t i = 0; i < types->via.array.size; i++)
        exec |= types->via.array.ptr[i].via.str.size == 4 && memcmp(types->via.array.ptr[i].via.str.ptr, "exec", 4) == 0;
    assert_true(exec);
}

static void test_submit_and_complete(void **state) {
    h_t *h = *state;
    const msgpack_object *r =
        h_ok(h, "{\"op\":\"submit\",\"name\":\"batch\",\"tasks\":[{\"type\":\"noop\"},{\"type\":\"sleep\",\"args\":"
                "{\"ms\":30}},{\"type\":\"noop\",\"priority\":5}]}");
    int64_t job = h_int(r, "job");
    assert_true(job > 0);
    assert_false(h_get(r, "duplicate")->via.boolean);
    const msgpack_object *ids = h_get(r, "tasks");
    assert_int_equal(ids->via.array.size, 3);
    int64_t t0 = h_int(r, "tasks.0"), t2 = h_int(r, "tasks.2");
    assert_true(h_int(r, "tasks.1") == t0 + 1 && t2 == t0 + 2);
    assert_string_equal(h_wait_job(h, job, 10000), "completed");
    r = h_ok(h, "{\"op\":\"status\",\"job\":%lld}", (long long)job);
    assert_string_equal(h_str(r, "job.name"), "batch");
    assert_int_equal(h_int(r, "job.total"), 3);
    assert_int_equal(h_int(r, "job.counts.completed"), 3);
    assert_int_equal(h_int(r, "job.counts.pending"), 0);
    assert_int_equal(h_int(r, "job.progress"), 100);
    assert_true(h_int(r, "job.finished_ms") >= h_int(r, "job.created_ms"));
    r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)t2);
    assert_string_equal(h_str(r, "task.type"), "noop");
    assert_string_equal(h_str(r, "task.state"), "completed");
    assert_int_equal(h_int(r, "task.priority"), 5);
    assert_int_equal(h_int(r, "task.attempts"), 1);
    assert_int_equal(h_int(r, "task.max_attempts"), 3);
    assert_int_equal(h_int(r, "task.progress"), 100);
    assert_string_equal(h_str(r, "task.worker"), "w1");
    assert_true(h_int(r, "task.finished_ms") >= h_int(r, "task.created_ms"));
    assert_true(h_nil(r, "task.error"));
    r = h_ok(h, "{\"op\":\"result\",\"task\":%lld}", (long long)t0);
    assert_string_equal(h_str(r, "state"), "completed");
    assert_true(h_nil(r, "error"));
    assert_non_null(h_get(r, "result"));
    /* Completions show in stats. */
    r = h_ok(h, "{\"op\":\"stats\"}");
    assert_int_equal(h_int(r, "counts.completed"), 3);
    assert_int_equal(h_int(r, "jobs"), 1);
}

static void test_idempotent_submit(void **state) {
    h_t *h = *state;
    const msgpack_object *r = h_ok(h, "{\"op\":\"submit\",\"key\":\"k-1\",\"tasks\":[{\"type\":\"noop\"},{\"type\":\"noop\"}]}");
    int64_t job = h_int(r, "job"), a = h_int(r, "tasks.0"), b = h_int(r, "tasks.1");
    r = h_ok(h, "{\"op\":\"submit\",\"key\":\"k-1\",\"tasks\":[{\"type\":\"noop\"}]}");
    assert_true(h_get(r, "duplicate")->via.boolean);
    assert_int_equal(h_int(r, "job"), job);
    assert_int_equal(h_get(r, "tasks")->via.array.size, 2);
    assert_int_equal(h_int(r, "tasks.0"), a);
    assert_int_equal(h_int(r, "tasks.1"), b);
    r = h_ok(h, "{\"op\":\"stats\"}");
    assert_int_equal(h_int(r, "jobs"), 1);
}

/* Expect an error reply with code (wire name) and field ("" for none). */
static void expect_err(h_t *h, const char *code, const char *field, const char *msg_part, const char *json) {
    int rc = h_call(h, "%s", json);
    if (rc == 0)
        fail_msg("expected %s for %s, got ok", code, json);
    assert_string_equal(h_str(&h->reply, "error.code"), code);
    assert_false(h_get(&h->reply, "ok")->via.boolean);
    if (*field)
        assert_string_equal(h_str(&h->reply, "error.field"), field);
    else
        assert_null(h_get(&h->reply, "error.field"));
    if (msg_part && !strstr(h_str(&h->reply, "error.message"), msg_part))
        fail_msg("message '%s' lacks '%s'", h_str(&h->reply, "error.message"), msg_part);
}

static void test_errors(void **state) {
    h_t *h = *state;
    expect_err(h, "unknown_op", "op", "frobnicate", "{\"op\":\"frobnicate\"}");
    expect_err(h, "bad_request", "op", "missing", "{\"v\":1}");
    expect_err(h, "unsupported_version", "v", NULL, "{\"op\":\"health\",\"v\":2}");
    expect_err(h, "bad_request", "", "map", "[1,2,3]");
    expect_err(h, "bad_request", "tasks", "missing", "{\"op\":\"submit\"}");
    expect_err(h, "bad_request", "tasks", "too short", "{\"op\":\"submit\",\"tasks\":[]}");
    expect_err(h, "bad_request", "tasks[1].type", NULL, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"noop\"},{\"type\":\"No Op\"}]}");
    expect_err(h, "bad_request", "tasks[0].priority", "range", "{\"op\":\"submit\",\"tasks\":[{\"type\":\"noop\",\"priority\":101}]}");
    expect_err(h, "bad_request", "tasks[0].max_attempts", NULL, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"noop\",\"max_attempts\":0}]}");
    expect_err(h, "bad_request", "tasks[0].timeout_ms", NULL, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"noop\",\"timeout_ms\":-1}]}");
    expect_err(h, "bad_request", "priority", "integer", "{\"op\":\"submit\",\"priority\":\"high\",\"tasks\":[{\"type\":\"noop\"}]}");
    expect_err(h, "too_large", "name", "max_name", "{\"op\":\"submit\",\"name\":\"123456789012345678901\",\"tasks\":[{\"type\":\"noop\"}]}");
    expect_err(h, "too_large", "key", "max_key", "{\"op\":\"submit\",\"key\":\"12345678901234567\",\"tasks\":[{\"type\":\"noop\"}]}");
    expect_err(h, "too_large", "tasks[0].args", "max_args", "{\"op\":\"submit\",\"tasks\":[{\"type\":\"noop\",\"args\":\"" 
               "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
               "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
               "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
               "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
               "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
               "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
               "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
               "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
               "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
               "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}]}");
    /* 51 tasks: over max_batch=50. */
    char big[4096] = "{\"op\":\"submit\",\"tasks\":[";
    for (int i = 0; i < 51; i++)
        strcat(big, i ? ",{\"type\":\"noop\"}" : "{\"type\":\"noop\"}");
    strcat(big, "]}");
    expect_err(h, "too_large", "tasks", "max_batch", big);
    expect_err(h, "not_found", "task", NULL, "{\"op\":\"status\",\"task\":999999}");
    expect_err(h, "not_found", "job", NULL, "{\"op\":\"status\",\"job\":999999}");
    expect_err(h, "bad_request", "task", "not both", "{\"op\":\"status\",\"task\":1,\"job\":1}");
    expect_err(h, "bad_request", "task", NULL, "{\"op\":\"status\"}");
    expect_err(h, "bad_request", "task", "range", "{\"op\":\"status\",\"task\":0}");
    expect_err(h, "bad_request", "state", NULL, "{\"op\":\"list\",\"state\":\"sleeping\"}");
    expect_err(h, "bad_request", "limit", NULL, "{\"op\":\"list\",\"limit\":1001}");
    expect_err(h, "bad_request", "job", NULL, "{\"op\":\"delete\",\"task\":1}");
    expect_err(h, "not_found", "job", NULL, "{\"op\":\"delete\",\"job\":424242}");
    /* Nothing of the failed submits was stored. */
    const msgpack_object *r = h_ok(h, "{\"op\":\"stats\"}");
    assert_int_equal(h_int(r, "jobs"), 0);
    assert_int_equal(h_int(r, "counts.pending"), 0);
}

static void test_garbage_frames(void **state) {
    h_t *h = *state;
    void *ctx = zmq_ctx_new();
    void *req = zmq_socket(ctx, ZMQ_REQ);
    int linger = 0, tmo = 5000;
    zmq_setsockopt(req, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(req, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    assert_int_equal(zmq_connect(req, h->ep.front), 0);
    const char *garbage[] = {"", "\xc1", "\xde\xad\xbe\xef", "\x92\x01", "\x81\xa2op\xa6submit\x00",
                             "\xdf\xff\xff\xff\xff", "\x81\x01\x02"};
    size_t lens[] = {0, 1, 4, 2, 11, 5, 3};
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        assert_int_equal(zmq_send(req, garbage[i], lens[i], 0), (int)lens[i]);
        char buf[512];
        int n = zmq_recv(req, buf, sizeof buf, 0);
        assert_true(n > 0);
        msgpack_zone z;
        msgpack_zone_init(&z, 1024);
        msgpack_object o;
        farm_error_t e;
        assert_int_equal(farm_msg_unpack(buf, (size_t)n, &z, &o, &e), 0);
        assert_false(farm_msg_get(&o, "ok")->via.boolean);
        const msgpack_object *code = farm_msg_get(farm_msg_get(&o, "error"), "code");
        assert_true(code && code->type == MSGPACK_OBJECT_STR);
        assert_true(farm_str_eq((farm_str_t){code->via.str.ptr, code->via.str.size}, "bad_request"));
        msgpack_zone_destroy(&z);
    }
    /* Two frames in one request. */
    assert_int_equal(zmq_send(req, "\x80", 1, ZMQ_SNDMORE), 1);
    assert_int_equal(zmq_send(req, "\x80", 1, 0), 1);
    char buf[512];
    int n = zmq_recv(req, buf, sizeof buf, 0);
    assert_true(n > 0 && memmem(buf, (size_t)n, "one frame", 9));
    zmq_close(req);
    zmq_ctx_term(ctx);
    /* Still up. */
    h_ok(h, "{\"op\":\"health\"}");
}

static void test_list_jobs_pagination(void **state) {
    h_t *h = *state;
    const msgpack_object *r = h_ok(h, "{\"op\":\"submit\",\"name\":\"a\",\"tasks\":[{\"type\":\"noop\"},{\"type\":\"noop\"},"
                                      "{\"type\":\"noop\"},{\"type\":\"noop\"},{\"type\":\"noop\"}]}");
    int64_t job = h_int(r, "job"), first = h_int(r, "tasks.0");
    assert_string_equal(h_wait_job(h, job, 10000), "completed");
    h_ok(h, "{\"op\":\"submit\",\"name\":\"b\",\"tasks\":[{\"type\":\"never-offered\"}]}");
    int64_t after = 0, seen = 0;
    for (int page = 0; page < 5; page++) {
        r = h_ok(h, "{\"op\":\"list\",\"job\":%lld,\"after\":%lld,\"limit\":2}", (long long)job, (long long)after);
        const msgpack_object *t = h_get(r, "tasks");
        for (uint32_t i = 0; i < t->via.array.size; i++) {
            assert_int_equal(h_int(&t->via.array.ptr[i], "id"), first + seen);
            assert_string_equal(h_str(&t->via.array.ptr[i], "state"), "completed");
            seen++;
        }
        if (h_nil(r, "next"))
            break;
        after = h_int(r, "next");
    }
    assert_int_equal(seen, 5);
    r = h_ok(h, "{\"op\":\"list\",\"type\":\"never-offered\"}");
    assert_int_equal(h_get(r, "tasks")->via.array.size, 1);
    /* A task no live worker can run stays pending and says why. */
    assert_string_equal(h_str(r, "tasks.0.state"), "pending");
    assert_string_equal(h_str(r, "tasks.0.message"), "no live worker offers type \"never-offered\"");
    r = h_ok(h, "{\"op\":\"list\",\"state\":\"completed\",\"limit\":1000}");
    assert_int_equal(h_get(r, "tasks")->via.array.size, 5);
    r = h_ok(h, "{\"op\":\"jobs\"}");
    assert_int_equal(h_get(r, "jobs")->via.array.size, 2);
    assert_true(h_nil(r, "next"));
    r = h_ok(h, "{\"op\":\"jobs\",\"state\":\"pending\"}");
    assert_int_equal(h_get(r, "jobs")->via.array.size, 1);
    assert_string_equal(h_str(r, "jobs.0.name"), "b");
    r = h_ok(h, "{\"op\":\"jobs\",\"limit\":1}");
    assert_int_equal(h_int(r, "next"), job);
}

static void test_cancel_retry_delete(void **state) {
    h_t *h = *state;
    const msgpack_object *r = h_ok(h, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"nobody\"},{\"type\":\"nobody\"},"
                                      "{\"type\":\"sleep\",\"args\":{\"ms\":20000}}]}");
    int64_t job = h_int(r, "job"), t0 = h_int(r, "tasks.0"), t2 = h_int(r, "tasks.2");
    assert_true(h_wait_task(h, t2, "running", 10000));
    /* (delete of a job with live tasks is checked below) */
    (void)job;
    r = h_ok(h, "{\"op\":\"cancel\",\"task\":%lld}", (long long)t0);
    assert_int_equal(h_int(r, "cancelled"), 1);
    assert_true(h_wait_task(h, t0, "cancelled", 1000));
    int rc = h_call(h, "{\"op\":\"cancel\",\"task\":%lld}", (long long)t0);
    assert_int_equal(rc, FARM_ECONFLICT);
    assert_string_equal(h_str(&h->reply, "error.code"), "conflict");
    rc = h_call(h, "{\"op\":\"delete\",\"job\":%lld}", (long long)job);
    assert_string_equal(h_str(&h->reply, "error.code"), "conflict");
    /* Cancel the job: the pending one at once, the running one on its worker. */
    r = h_ok(h, "{\"op\":\"cancel\",\"job\":%lld}", (long long)job);
    assert_int_equal(h_int(r, "cancelled"), 2);
    assert_true(h_wait_task(h, t2, "cancelled", 5000));
    assert_string_equal(h_wait_job(h, job, 5000), "cancelled");
    r = h_ok(h, "{\"op\":\"retry\",\"task\":%lld}", (long long)t0);
    assert_int_equal(h_int(r, "retried"), 1);
    r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)t0);
    assert_string_equal(h_str(r, "task.state"), "pending");
    assert_int_equal(h_int(r, "task.attempts"), 0);
    h_ok(h, "{\"op\":\"cancel\",\"job\":%lld}", (long long)job);
    r = h_ok(h, "{\"op\":\"delete\",\"job\":%lld}", (long long)job);
    assert_int_equal(h_int(r, "deleted"), 3);
    rc = h_call(h, "{\"op\":\"status\",\"task\":%lld}", (long long)t0);
    assert_int_equal(rc, FARM_ENOTFOUND);
}

static void test_busy(void **state) {
    h_t *h = *state;
    /* max_pending is 60: fill it with tasks nobody runs. */
    char big[4096] = "{\"op\":\"submit\",\"tasks\":[";
    for (int i = 0; i < 40; i++)
        strcat(big, i ? ",{\"type\":\"nobody\"}" : "{\"type\":\"nobody\"}");
    strcat(big, "]}");
    h_ok(h, "%s", big);
    int rc = h_call(h, "%s", big);
    assert_int_equal(rc, FARM_EBUSY);
    assert_string_equal(h_str(&h->reply, "error.code"), "busy");
    assert_true(strstr(h_str(&h->reply, "error.message"), "max_pending") != NULL);
    const msgpack_object *r = h_ok(h, "{\"op\":\"stats\"}");
    assert_int_equal(h_int(r, "counts.pending"), 40);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_health_stats_workers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_and_complete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotent_submit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_jobs_pagination, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_retry_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
