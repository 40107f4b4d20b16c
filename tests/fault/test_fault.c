/* Fault tests: the promises of DESIGN.md section 4, proven by killing real
 * processes. Each test runs a real farm (harness), breaks it, restarts
 * what it broke, and then checks the database itself: every accepted task
 * final, exactly one result per task, nothing duplicated, and
 * PRAGMA integrity_check = ok. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

/* Slots of the processes the tests start, by h_start order. */
enum { VENT, SINK, W1, W2, W3 };

static int teardown(void **state) {
    h_t *h = *state;
    h_free(&h);
    return 0;
}

/* A farm that declares workers lost fast and retries fast. */
static h_t *s_farm(int nworkers) {
    h_t *h = h_new();
    h_start_vent(h, "--lost-after-ms", "1500", "--backoff-base-ms", "50", "--backoff-cap-ms", "500", NULL);
    h_start_sink(h, NULL);
    for (int i = 0; i < nworkers; i++) {
        char name[16];
        snprintf(name, sizeof name, "w%d", i + 1);
        h_start_worker(h, name, 2, "--allow-exec", NULL);
    }
    h_wait_up(h, nworkers);
    return h;
}

/* One integer from the database (sqlite3 shell, read-only). */
static int64_t s_sql(h_t *h, const char *sql) {
    char out[256];
    int st = h_sh(out, sizeof out, "sqlite3 -readonly '%s' '%s'", h->db, sql);
    if (st != 0)
        fail_msg("sqlite3 failed (%d) on: %s: %s", st, sql, out);
    return strtoll(out, NULL, 10);
}

static void s_check_db(h_t *h, int64_t tasks) {
    char out[256];
    assert_int_equal(h_sh(out, sizeof out, "sqlite3 -readonly '%s' 'PRAGMA integrity_check'", h->db), 0);
    assert_string_equal(out, "ok\n");
    assert_int_equal(s_sql(h, "SELECT count(*) FROM tasks"), tasks);
    /* Exactly one result per task, and no task without one. */
    assert_int_equal(s_sql(h, "SELECT count(*) FROM results"), tasks);
    assert_int_equal(s_sql(h, "SELECT count(*) FROM tasks t WHERE NOT EXISTS (SELECT 1 FROM results r WHERE r.task = t.id)"), 0);
    /* The counters and the failures table the trigger keeps agree with the rows. */
    assert_int_equal(s_sql(h, "SELECT count(*) FROM bad"), s_sql(h, "SELECT count(*) FROM tasks WHERE state >= 4"));
    assert_int_equal(s_sql(h, "SELECT n0+n1+n2+n3+n4+n5 FROM totals"), tasks);
    assert_int_equal(s_sql(h, "SELECT count(*) FROM jobs j WHERE n0+n1+n2+n3+n4+n5 != total OR total != (SELECT count(*) FROM tasks t WHERE t.job = j.id)"), 0);
}

/* Completed tasks per the front door, or -1 while it does not answer. */
static int64_t s_completed(h_t *h) {
    if (h_call(h, "{\"op\":\"stats\"}") != 0)
        return -1;
    return h_int(&h->reply, "counts.completed");
}

static bool s_wait_completed(h_t *h, int64_t n, int deadline_ms) {
    int64_t end = h_now() + deadline_ms;
    while (h_now() < end)
        if (s_completed(h) >= n)
            return true;
    return false;
}

/* Submit `batches` jobs of a mix of noop, short sleeps and exec `true`, each
 * with an idempotency key, resending through any outage. */
static void s_submit_mix(h_t *h, int batches, int per) {
    for (int b = 0; b < batches; b++) {
        char req[65536];
        int n = snprintf(req, sizeof req, "{\"op\":\"submit\",\"key\":\"mix-%d\",\"max_attempts\":20,\"tasks\":[", b);
        for (int i = 0; i < per; i++) {
            const char *t = i % 10 == 0 ? "{\"type\":\"exec\",\"args\":{\"argv\":[\"true\"]}}"
                            : i % 3 == 0 ? "{\"type\":\"sleep\",\"args\":{\"ms\":5}}"
                                         : "{\"type\":\"noop\"}";
            n += snprintf(req + n, sizeof req - (size_t)n, "%s%s", i ? "," : "", t);
        }
        snprintf(req + n, sizeof req - (size_t)n, "]}");
        int64_t end = h_now() + 30000;
        while (h_call(h, "%s", req) != 0)
            assert_true(h_now() < end);
    }
}

static void test_kill9_each_process(void **state) {
    h_t *h = *state = s_farm(3);
    const int batches = 6, per = 500, total = batches * per;
    s_submit_mix(h, batches, per);
    /* Kill each kind of process mid-run and bring it back. */
    assert_true(s_wait_completed(h, 400, 60000));
    assert_int_equal(h_stop(h, VENT, SIGKILL, 5000), 128 + SIGKILL);
    h_start_vent(h, "--lost-after-ms", "1500", "--backoff-base-ms", "50", "--backoff-cap-ms", "500", NULL);
    assert_true(s_wait_completed(h, 1200, 60000));
    assert_int_equal(h_stop(h, SINK, SIGKILL, 5000), 128 + SIGKILL);
    h_start_sink(h, NULL);
    assert_true(s_wait_completed(h, 2000, 60000));
    assert_int_equal(h_stop(h, W2, SIGKILL, 5000), 128 + SIGKILL);
    assert_true(s_wait_completed(h, total, 120000));
    /* Everything final, completed once. */
    const msgpack_object *r = h_ok(h, "{\"op\":\"stats\"}");
    assert_int_equal(h_int(r, "counts.completed"), total);
    assert_int_equal(h_int(r, "jobs"), batches);
    s_check_db(h, total);
    print_message("kill -9 run: %d tasks, %lld duplicate results counted\n", total,
                  (long long)s_sql(h, "SELECT coalesce(sum(dups), 0) FROM results"));
}

static void test_poison_task_fails(void **state) {
    h_t *h = *state = s_farm(3);
    /* Each attempt kills the worker running it. */
    const msgpack_object *r = h_ok(h, "{\"op\":\"submit\",\"max_attempts\":2,\"tasks\":[{\"type\":\"exec\",\"args\":"
                                      "{\"argv\":[\"sh\",\"-c\",\"kill -9 $PPID; sleep 5\"]}}]}");
    int64_t task = h_int(r, "tasks.0");
    assert_true(h_wait_task(h, task, "failed", 30000));
    r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)task);
    assert_int_equal(h_int(r, "task.attempts"), 2);
    assert_true(strstr(h_str(r, "task.error"), "lost") != NULL);
    assert_int_equal(h_get(r, "task.history")->via.array.size, 2);
    /* It took two workers with it, and the farm still runs work. */
    r = h_ok(h, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"noop\"}]}");
    assert_true(h_wait_task(h, h_int(r, "tasks.0"), "completed", 10000));
}

static void test_results_wait_out_sink_outage(void **state) {
    h_t *h = *state = s_farm(2);
    assert_int_equal(h_stop(h, SINK, SIGKILL, 5000), 128 + SIGKILL);
    const msgpack_object *r = h_ok(h, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"sleep\",\"args\":{\"ms\":10}},"
                                      "{\"type\":\"sleep\",\"args\":{\"ms\":10}},{\"type\":\"noop\"},{\"type\":\"noop\"},"
                                      "{\"type\":\"exec\",\"args\":{\"argv\":[\"echo\",\"held\"]}}]}");
    int64_t job = h_int(r, "job"), echo = h_int(r, "tasks.4");
    /* The workers run them while the sink is away, and keep the results. */
    int64_t end = h_now() + 20000, done = 0;
    while (done < 5 && h_now() < end) {
        r = h_ok(h, "{\"op\":\"workers\"}");
        done = h_int(r, "workers.0.completed") + h_int(r, "workers.1.completed");
    }
    assert_int_equal(done, 5);
    r = h_ok(h, "{\"op\":\"status\",\"job\":%lld}", (long long)job);
    assert_int_equal(h_int(r, "job.counts.completed"), 0);
    h_start_sink(h, NULL);
    assert_string_equal(h_wait_job(h, job, 20000), "completed");
    r = h_ok(h, "{\"op\":\"result\",\"task\":%lld}", (long long)echo);
    assert_string_equal(h_str(r, "result.stdout"), "held\n");
    s_check_db(h, 5);
}

static void test_drain_and_clean_exit(void **state) {
    h_t *h = *state = s_farm(2);
    const msgpack_object *r = h_ok(h, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"sleep\",\"args\":{\"ms\":1500}}]}");
    int64_t task = h_int(r, "tasks.0");
    assert_true(h_wait_task(h, task, "running", 10000));
    r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)task);
    int slot = strcmp(h_str(r, "task.worker"), "w1") == 0 ? W1 : W2, other = slot == W1 ? W2 : W1;
    /* SIGTERM: it takes nothing new, finishes what runs, exits 0. */
    assert_int_equal(kill(h->procs[slot].pid, SIGTERM), 0);
    int64_t end = h_now() + 5000;
    bool draining = false;
    while (!draining && h_now() < end) {
        r = h_ok(h, "{\"op\":\"workers\"}");
        for (int i = 0; i < 2; i++)
            draining |= strcmp(h_str(r, i ? "workers.1.state" : "workers.0.state"), "draining") == 0;
    }
    assert_true(draining);
    r = h_ok(h, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"noop\"},{\"type\":\"noop\"},{\"type\":\"noop\"}]}");
    int64_t job = h_int(r, "job");
    assert_string_equal(h_wait_job(h, job, 10000), "completed");
    r = h_ok(h, "{\"op\":\"list\",\"job\":%lld}", (long long)job);
    for (int i = 0; i < 3; i++) {
        char p[32];
        snprintf(p, sizeof p, "tasks.%d.worker", i);
        assert_string_equal(h_str(r, p), h->procs[other].name);
    }
    assert_int_equal(h_stop(h, slot, 0, 10000), 0); /* exits 0 by itself */
    r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)task);
    assert_string_equal(h_str(r, "task.state"), "completed");
    assert_int_equal(h_int(r, "task.attempts"), 1);
    /* Ventilator and sink stop cleanly on SIGTERM and leave a checkpointed database. */
    assert_int_equal(h_stop(h, VENT, SIGTERM, 10000), 0);
    assert_int_equal(h_stop(h, SINK, SIGTERM, 10000), 0);
    char wal[256];
    snprintf(wal, sizeof wal, "%s-wal", h->db);
    struct stat st;
    assert_true(stat(wal, &st) != 0 || st.st_size == 0);
    char out[64];
    assert_int_equal(h_sh(out, sizeof out, "sqlite3 -readonly '%s' 'PRAGMA integrity_check'", h->db), 0);
    assert_string_equal(out, "ok\n");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_kill9_each_process, teardown),
        cmocka_unit_test_teardown(test_poison_task_fails, teardown),
        cmocka_unit_test_teardown(test_results_wait_out_sink_outage, teardown),
        cmocka_unit_test_teardown(test_drain_and_clean_exit, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
