/* Integration: the status feed (spec section 4) as any SUB socket sees it.
 *
 * A plain libzmq SUB subscribes to the sink's feed with the four public
 * topics and checks what arrives: the stats message every second (the
 * stats reply without "ok"), batched task events that reach "completed",
 * job views ending in the completed job, and worker messages when a worker
 * joins and when one killed with SIGKILL is declared lost. Every message
 * must be exactly two frames, a topic and a MessagePack map. The SUB's
 * subscription is known to be live once the first stats message arrives,
 * so every test waits for one before it makes anything happen.
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
#include <zmq.h>

#include "farm_err.h"
#include "farm_msg.h"
#include "harness.h"

/* A farm and a SUB on its feed. */
typedef struct {
    h_t *h;
    void *ctx, *sub;
} s_fix_t;

/* One feed message: the topic and the decoded body (valid until s_msg_free). */
typedef struct {
    char topic[64];
    char *data;
    size_t len;
    msgpack_zone zone;
    msgpack_object body;
} s_msg_t;

static void s_msg_free(s_msg_t *m) {
    if (m->data) {
        free(m->data);
        msgpack_zone_destroy(&m->zone);
    }
    memset(m, 0, sizeof *m);
}

/* Receive the next feed message before the monotonic deadline `end`.
 * Returns false on timeout; fails the test on a malformed message. */
static bool s_recv(s_fix_t *f, s_msg_t *m, int64_t end) {
    s_msg_free(m);
    int64_t left = end - h_now();
    if (left <= 0)
        return false;
    zmq_pollitem_t it = {f->sub, 0, ZMQ_POLLIN, 0};
    int n = zmq_poll(&it, 1, (long)left);
    assert_true(n >= 0);
    if (n == 0)
        return false;
    zmq_msg_t a, b;
    zmq_msg_init(&a);
    zmq_msg_init(&b);
    assert_true(zmq_msg_recv(&a, f->sub, 0) >= 0);
    if (!zmq_msg_more(&a))
        fail_msg("a feed message of one frame (%zu bytes)", zmq_msg_size(&a));
    assert_true(zmq_msg_recv(&b, f->sub, 0) >= 0);
    if (zmq_msg_more(&b))
        fail_msg("a feed message of more than two frames");
    size_t tl = zmq_msg_size(&a);
    assert_true(tl > 0 && tl < sizeof m->topic);
    memcpy(m->topic, zmq_msg_data(&a), tl);
    m->topic[tl] = '\0';
    m->len = zmq_msg_size(&b);
    m->data = malloc(m->len ? m->len : 1);
    assert_non_null(m->data);
    memcpy(m->data, zmq_msg_data(&b), m->len);
    zmq_msg_close(&a);
    zmq_msg_close(&b);
    assert_true(msgpack_zone_init(&m->zone, 4096));
    farm_error_t e;
    if (farm_msg_unpack(m->data, m->len, &m->zone, &m->body, &e) != 0)
        fail_msg("topic %s: body is not MessagePack: %s", m->topic, e.message);
    if (m->body.type != MSGPACK_OBJECT_MAP)
        fail_msg("topic %s: body is not a map", m->topic);
    if (strcmp(m->topic, "task") && strcmp(m->topic, "job") && strcmp(m->topic, "worker") && strcmp(m->topic, "stats"))
        fail_msg("topic '%s' was not subscribed to", m->topic);
    return true;
}

/* Receive until a message of `topic` arrives (others are skipped). */
static bool s_recv_topic(s_fix_t *f, s_msg_t *m, const char *topic, int64_t end) {
    while (s_recv(f, m, end))
        if (strcmp(m->topic, topic) == 0)
            return true;
    return false;
}

/* The map has exactly the keys named (NULL-terminated). */
static void s_keys_exactly(const msgpack_object *o, const char *what, const char *const *keys) {
    assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
    size_t n = 0;
    for (; keys[n]; n++)
        if (!farm_msg_get(o, keys[n]))
            fail_msg("%s lacks \"%s\"", what, keys[n]);
    if (o->via.map.size != n)
        fail_msg("%s has %u keys, expected %zu", what, o->via.map.size, n);
}

static const char *const s_states[] = {"pending", "running", "retrying", "completed", "failed", "cancelled", NULL};

static bool s_is_state(const char *s) {
    for (int i = 0; s_states[i]; i++)
        if (strcmp(s, s_states[i]) == 0)
            return true;
    return false;
}

/* The farm is started by each test, not by a cmocka setup: a setup that
 * fails gets no teardown, which would leave its processes and memory. */
static int setup(void **state) {
    s_fix_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->h = h_new();
    *state = f;
    return 0;
}

static int teardown(void **state) {
    s_fix_t *f = *state;
    if (f->sub)
        zmq_close(f->sub);
    if (f->ctx)
        zmq_ctx_term(f->ctx);
    h_free(&f->h);
    free(f);
    return 0;
}

/* Start the farm and subscribe to its feed. */
static s_fix_t *s_start(void **state) {
    s_fix_t *f = *state;
    h_t *h = f->h;
    h_start_vent(h, "--lost-after-ms", "1000", NULL);
    h_start_sink(h, NULL);
    /* Heartbeats well inside lost-after-ms, so only a killed worker is lost. */
    h_start_worker(h, "w1", 2, "--heartbeat-ms", "200", NULL);
    h_wait_up(h, 1);
    f->ctx = zmq_ctx_new();
    assert_non_null(f->ctx);
    f->sub = zmq_socket(f->ctx, ZMQ_SUB);
    assert_non_null(f->sub);
    int linger = 0;
    zmq_setsockopt(f->sub, ZMQ_LINGER, &linger, sizeof linger);
    const char *topics[] = {"task", "job", "worker", "stats"};
    for (int i = 0; i < 4; i++)
        assert_int_equal(zmq_setsockopt(f->sub, ZMQ_SUBSCRIBE, topics[i], strlen(topics[i])), 0);
    assert_int_equal(zmq_connect(f->sub, h->ep.feed), 0);
    return f;
}

/* A stats message within 3 s of subscribing, shaped like the stats reply
 * without "ok". */
static void test_stats(void **state) {
    s_fix_t *f = s_start(state);
    s_msg_t m = {0};
    if (!s_recv_topic(f, &m, "stats", h_now() + 3000))
        fail_msg("no stats message within 3 s");
    const msgpack_object *b = &m.body;
    const char *const keys[] = {"counts", "jobs", "workers", "slots", "busy", "throughput", "latency_ms", "uptime_s", NULL};
    s_keys_exactly(b, "stats", keys);
    assert_null(farm_msg_get(b, "ok"));
    s_keys_exactly(h_get(b, "counts"), "stats.counts", s_states);
    for (int i = 0; s_states[i]; i++) {
        char p[64];
        snprintf(p, sizeof p, "counts.%s", s_states[i]);
        assert_int_equal(h_int(b, p), 0);
    }
    assert_int_equal(h_int(b, "jobs"), 0);
    assert_true(h_int(b, "workers") >= 0 && h_int(b, "slots") >= 0 && h_int(b, "busy") >= 0);
    const char *const tp[] = {"10s", "60s", NULL};
    s_keys_exactly(h_get(b, "throughput"), "stats.throughput", tp);
    const char *const lat[] = {"p50", "p99", NULL};
    s_keys_exactly(h_get(b, "latency_ms"), "stats.latency_ms", lat);
    assert_true(h_int(b, "latency_ms.p50") >= 0);
    assert_true(h_int(b, "uptime_s") >= 0);
    /* Every second: more follow, and (the ventilator's PUSH keeps what it
     * made before the sink was up, so the first may predate the worker)
     * within a few seconds one counts the worker and its two idle slots. */
    int64_t end = h_now() + 3000;
    for (;;) {
        if (!s_recv_topic(f, &m, "stats", end))
            fail_msg("no stats message with the worker within 3 s");
        if (h_int(&m.body, "workers") == 1)
            break;
    }
    assert_int_equal(h_int(&m.body, "slots"), 2);
    assert_int_equal(h_int(&m.body, "busy"), 0);
    assert_null(farm_msg_get(&m.body, "ok"));
    s_msg_free(&m);
}

/* Task events reach completed for every task; the job's views end with
 * the completed job. */
static void test_task_and_job_events(void **state) {
    s_fix_t *f = s_start(state);
    h_t *h = f->h;
    s_msg_t m = {0};
    assert_true(s_recv_topic(f, &m, "stats", h_now() + 3000));
    const msgpack_object *r = h_ok(h, "{\"op\":\"submit\",\"name\":\"fed\",\"tasks\":[{\"type\":\"noop\"},"
                                      "{\"type\":\"sleep\",\"args\":{\"ms\":30}},{\"type\":\"noop\"}]}");
    int64_t job = h_int(r, "job"), first = h_int(r, "tasks.0");
    bool completed[3] = {false};
    bool job_done = false;
    int nev = 0, njob = 0;
    int64_t end = h_now() + 10000;
    while (!(completed[0] && completed[1] && completed[2] && job_done)) {
        if (!s_recv(f, &m, end))
            fail_msg("feed: completed %d%d%d, job completed %d after %d task events and %d job views", completed[0],
                     completed[1], completed[2], job_done, nev, njob);
        if (strcmp(m.topic, "task") == 0) {
            const char *const keys[] = {"events", NULL};
            s_keys_exactly(&m.body, "task message", keys);
            const msgpack_object *ev = h_get(&m.body, "events");
            assert_int_equal(ev->type, MSGPACK_OBJECT_ARRAY);
            assert_true(ev->via.array.size > 0);
            for (uint32_t i = 0; i < ev->via.array.size; i++) {
                const msgpack_object *e = &ev->via.array.ptr[i];
                const char *const ek[] = {"id", "job", "state", "progress", "attempt", "worker", "ms", NULL};
                s_keys_exactly(e, "task event", ek);
                int64_t id = h_int(e, "id");
                const char *st = h_str(e, "state");
                assert_true(s_is_state(st));
                int64_t prog = h_int(e, "progress");
                assert_true(prog >= 0 && prog <= 100);
                assert_true(h_int(e, "attempt") >= 0);
                assert_true(h_int(e, "ms") > 0);
                const msgpack_object *w = h_get(e, "worker");
                assert_true(w->type == MSGPACK_OBJECT_NIL || w->type == MSGPACK_OBJECT_STR);
                if (id < first || id >= first + 3)
                    fail_msg("an event for task %lld, not one of ours", (long long)id);
                assert_int_equal(h_int(e, "job"), job);
                nev++;
                if (strcmp(st, "completed") == 0) {
                    completed[id - first] = true;
                    assert_int_equal(prog, 100);
                    assert_int_equal(h_int(e, "attempt"), 1);
                    assert_string_equal(h_str(e, "worker"), "w1");
                }
            }
        } else if (strcmp(m.topic, "job") == 0) {
            const msgpack_object *b = &m.body;
            const char *const keys[] = {"id", "name", "created_ms", "finished_ms", "total", "counts", "progress", "state", NULL};
            s_keys_exactly(b, "job view", keys);
            s_keys_exactly(h_get(b, "counts"), "job view counts", s_states);
            assert_int_equal(h_int(b, "id"), job);
            assert_string_equal(h_str(b, "name"), "fed");
            assert_int_equal(h_int(b, "total"), 3);
            assert_true(s_is_state(h_str(b, "state")));
            njob++;
            /* The latest view decides. */
            job_done = strcmp(h_str(b, "state"), "completed") == 0;
            if (job_done) {
                assert_int_equal(h_int(b, "progress"), 100);
                assert_int_equal(h_int(b, "counts.completed"), 3);
                assert_false(h_nil(b, "finished_ms"));
            }
        }
    }
    assert_true(nev >= 3);
    s_msg_free(&m);
}

/* Worker messages: one when a worker joins (alive), one when a worker
 * killed with SIGKILL is declared lost. */
static void test_worker_events(void **state) {
    s_fix_t *f = s_start(state);
    h_t *h = f->h;
    s_msg_t m = {0};
    assert_true(s_recv_topic(f, &m, "stats", h_now() + 3000));
    int w2 = h_start_worker(h, "w2", 3, "--heartbeat-ms", "200", NULL);
    const char *const keys[] = {"id", "host", "pid", "slots", "busy", "types", "state", "last_seen_ms",
                                "completed", "failed", NULL};
    int64_t end = h_now() + 10000;
    for (;;) {
        if (!s_recv_topic(f, &m, "worker", end))
            fail_msg("no worker message for w2 joining");
        if (strcmp(h_str(&m.body, "id"), "w2") == 0)
            break;
    }
    s_keys_exactly(&m.body, "worker message", keys);
    assert_string_equal(h_str(&m.body, "state"), "alive");
    assert_int_equal(h_int(&m.body, "pid"), h->procs[w2].pid);
    assert_int_equal(h_int(&m.body, "slots"), 3);
    assert_int_equal(h_get(&m.body, "types")->type, MSGPACK_OBJECT_ARRAY);
    /* Kill it without a word: the ventilator notices the silence. */
    assert_int_equal(h_stop(h, w2, SIGKILL, 5000), 128 + SIGKILL);
    int64_t killed = h_now();
    end = killed + 10000;
    for (;;) {
        if (!s_recv_topic(f, &m, "worker", end))
            fail_msg("no worker message saying w2 is lost");
        if (strcmp(h_str(&m.body, "id"), "w2") != 0)
            fail_msg("unexpected worker message about %s (%s)", h_str(&m.body, "id"), h_str(&m.body, "state"));
        if (strcmp(h_str(&m.body, "state"), "lost") == 0)
            break;
    }
    s_keys_exactly(&m.body, "worker message", keys);
    assert_int_equal(h_int(&m.body, "busy"), 0);
    /* lost-after-ms is 1000: not much later than that. */
    assert_true(h_now() - killed < 5000);
    /* The front door agrees. */
    const msgpack_object *r = h_ok(h, "{\"op\":\"workers\"}");
    const msgpack_object *ws = h_get(r, "workers");
    bool seen = false;
    for (uint32_t i = 0; i < ws->via.array.size; i++)
        if (strcmp(h_str(&ws->via.array.ptr[i], "id"), "w2") == 0) {
            assert_string_equal(h_str(&ws->via.array.ptr[i], "state"), "lost");
            seen = true;
        } else {
            assert_string_equal(h_str(&ws->via.array.ptr[i], "state"), "alive");
        }
    assert_true(seen);
    s_msg_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_and_job_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_events, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
