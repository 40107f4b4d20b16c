/* Integration: `farm metrics` and `farm wait` against a real farm.
 *
 * metrics: every sample line is valid Prometheus text under its own # HELP
 * and # TYPE, the figures agree with the front door's stats and workers
 * replies, --out replaces its file atomically (no temporary left) and
 * writes farm_up 0 when the farm does not answer.
 *
 * wait: woken by the status feed, so a wait with a 10 s poll interval ends
 * within moments of the job's end; exits 0 / 1 as the final state says;
 * prints one line and nothing else when piped; and still ends by polling
 * when the feed is off or points nowhere.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

static char s_out[65536];

static int setup(void **state) {
    h_t *h = h_new();
    h_start_vent(h, "--backoff-base-ms", "50", NULL);
    h_start_sink(h, NULL);
    h_start_worker(h, "w1", 2, "--allow-exec", NULL);
    h_start_worker(h, "w2", 3, "--allow-exec", NULL);
    h_wait_up(h, 2);
    *state = h;
    return 0;
}

static int teardown(void **state) {
    h_t *h = *state;
    h_free(&h);
    return 0;
}

static void s_has(const char *hay, const char *needle, const char *what) {
    if (!strstr(hay, needle))
        fail_msg("%s: '%s' not in:\n%s", what, needle, hay);
}

/* Every line is a comment or a sample of the family its # TYPE announced. */
static void s_check_format(const char *text) {
    regex_t sample, help, type;
    assert_int_equal(regcomp(&sample,
                             "^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{([a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\",?)*\\})? "
                             "(-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?|NaN|[-+]Inf)$",
                             REG_EXTENDED),
                     0);
    assert_int_equal(regcomp(&help, "^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$", REG_EXTENDED), 0);
    assert_int_equal(regcomp(&type, "^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (gauge|counter)$", REG_EXTENDED), 0);
    char copy[65536], family[128] = "", helped[128] = "";
    snprintf(copy, sizeof copy, "%s", text);
    int samples = 0;
    for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        regmatch_t m[2];
        if (regexec(&help, l, 2, m, 0) == 0) {
            snprintf(helped, sizeof helped, "%.*s", (int)(m[1].rm_eo - m[1].rm_so), l + m[1].rm_so);
        } else if (regexec(&type, l, 2, m, 0) == 0) {
            snprintf(family, sizeof family, "%.*s", (int)(m[1].rm_eo - m[1].rm_so), l + m[1].rm_so);
            if (strcmp(family, helped) != 0)
                fail_msg("# TYPE %s without its # HELP just before", family);
        } else if (regexec(&sample, l, 2, m, 0) == 0) {
            if ((size_t)(m[1].rm_eo - m[1].rm_so) != strlen(family) || strncmp(l, family, strlen(family)) != 0)
                fail_msg("sample outside its family (%s): %s", family, l);
            samples++;
        } else {
            fail_msg("not Prometheus text: '%s'", l);
        }
    }
    assert_true(samples > 10);
    regfree(&sample);
    regfree(&help);
    regfree(&type);
}

static void test_metrics(void **state) {
    h_t *h = *state;
    int64_t job = h_int(h_ok(h, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"noop\"},{\"type\":\"noop\"},{\"type\":"
                                "\"noop\"},{\"type\":\"exec\",\"max_attempts\":1,\"args\":{\"argv\":[\"false\"]}}]}"),
                        "job");
    assert_string_equal(h_wait_job(h, job, 10000), "failed");
    int rc = h_sh(s_out, sizeof s_out, "'%s' --server '%s' metrics 2>&1", h_bin("farm"), h->ep.front);
    if (rc != 0)
        fail_msg("farm metrics exited %d: %s", rc, s_out);
    s_check_format(s_out);
    s_has(s_out, "# TYPE farm_tasks gauge\n", "tasks family");
    s_has(s_out, "\nfarm_up 1\n", "up");
    s_has(s_out, "\nfarm_tasks{state=\"completed\"} 3\n", "completed count");
    s_has(s_out, "\nfarm_tasks{state=\"failed\"} 1\n", "failed count");
    s_has(s_out, "\nfarm_tasks{state=\"pending\"} 0\n", "pending count");
    s_has(s_out, "\nfarm_jobs 1\n", "jobs");
    s_has(s_out, "\nfarm_workers{state=\"alive\"} 2\n", "workers");
    s_has(s_out, "\nfarm_workers{state=\"lost\"} 0\n", "lost workers");
    s_has(s_out, "\nfarm_slots 5\n", "slots");
    s_has(s_out, "farm_throughput_tasks_per_second{window=\"10s\"} ", "throughput");
    s_has(s_out, "farm_latency_ms{quantile=\"0.5\"} ", "latency p50");
    s_has(s_out, "farm_latency_ms{quantile=\"0.99\"} ", "latency p99");
    s_has(s_out, "farm_worker_slots{worker=\"w1\",host=\"", "per-worker slots");
    s_has(s_out, "\"} 2\n", "w1's two slots");
    s_has(s_out, "# TYPE farm_worker_completed_total counter\n", "counter type");
    s_has(s_out, "farm_worker_failed_total{worker=\"w2\"", "per-worker failures");
    /* The per-worker completed counts add up to what the farm says. */
    const msgpack_object *w = h_get(h_ok(h, "{\"op\":\"workers\"}"), "workers");
    int64_t total = 0;
    for (uint32_t i = 0; i < w->via.array.size; i++)
        total += h_int(&w->via.array.ptr[i], "completed");
    int64_t sum = 0;
    for (const char *p = s_out; (p = strstr(p, "\nfarm_worker_completed_total{")); p++) {
        const char *sp = strchr(p, '}');
        assert_non_null(sp);
        sum += atoll(sp + 2);
    }
    assert_int_equal(sum, total);
    /* --json does not apply. */
    rc = h_sh(s_out, sizeof s_out, "'%s' --server '%s' --json metrics 2>&1", h_bin("farm"), h->ep.front);
    assert_int_equal(rc, 2);
}

static void test_metrics_out(void **state) {
    h_t *h = *state;
    char dir[300], path[320];
    snprintf(dir, sizeof dir, "%s/textfile", h->dir);
    snprintf(path, sizeof path, "%s/farm.prom", dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    int rc = h_sh(s_out, sizeof s_out, "'%s' --server '%s' metrics --out '%s' 2>&1 && ls '%s'", h_bin("farm"),
                  h->ep.front, path, dir);
    if (rc != 0)
        fail_msg("metrics --out exited %d: %s", rc, s_out);
    assert_string_equal(s_out, "farm.prom\n"); /* nothing on stdout, no temporary left */
    assert_int_equal(h_sh(s_out, sizeof s_out, "cat '%s'", path), 0);
    s_check_format(s_out);
    s_has(s_out, "\nfarm_up 1\n", "up in the file");
    /* A farm that does not answer: the file says so, the exit status too. */
    rc = h_sh(s_out, sizeof s_out, "'%s' --server tcp://127.0.0.1:1 --timeout 200 --retries 0 metrics --out '%s' "
                                   "2>/dev/null; echo rc=$?; cat '%s'; ls '%s' | wc -l",
              h_bin("farm"), path, path, dir);
    s_has(s_out, "rc=3\n", "exit status when the farm does not answer");
    s_has(s_out, "\nfarm_up 0\n", "farm_up 0");
    assert_null(strstr(s_out, "farm_tasks"));
    s_has(s_out, "\n1\n", "one file in the folder");
}

/* Submit one exec task running `sh -c SCRIPT`; returns its job. */
static int64_t s_submit(h_t *h, const char *script) {
    return h_int(h_ok(h, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"exec\",\"max_attempts\":1,\"args\":{\"argv\":"
                         "[\"sh\",\"-c\",\"%s\"]}}]}",
                      script),
                 "job");
}

static void test_wait_feed(void **state) {
    h_t *h = *state;
    /* A poll every 10 s: only the feed can end this wait promptly. */
    int64_t job = s_submit(h, "sleep 0.8");
    int64_t t0 = h_now();
    int rc = h_sh(s_out, sizeof s_out, "'%s' --server '%s' --feed '%s' wait --poll-ms 10000 --job %lld 2>&1",
                  h_bin("farm"), h->ep.front, h->ep.feed, (long long)job);
    int64_t took = h_now() - t0;
    if (rc != 0)
        fail_msg("wait exited %d: %s", rc, s_out);
    if (took > 5000)
        fail_msg("wait took %lld ms: the feed did not wake it", (long long)took);
    /* Piped: the final line alone, no progress line. */
    char want[128];
    snprintf(want, sizeof want, "job %lld: completed (1 task: 1 completed, 0 failed, 0 cancelled)\n", (long long)job);
    assert_string_equal(s_out, want);
    /* A task, failing: exit 1, from the front door's state. */
    job = s_submit(h, "sleep 0.5; exit 3");
    const msgpack_object *r = h_ok(h, "{\"op\":\"list\",\"job\":%lld}", (long long)job);
    int64_t task = h_int(r, "tasks.0.id");
    t0 = h_now();
    rc = h_sh(s_out, sizeof s_out, "'%s' --server '%s' --feed '%s' wait --poll-ms 10000 %lld 2>&1", h_bin("farm"),
              h->ep.front, h->ep.feed, (long long)task);
    assert_int_equal(rc, 1);
    assert_true(h_now() - t0 < 5000);
    s_has(s_out, "failed", "the failed task");
}

static void test_wait_fallback(void **state) {
    h_t *h = *state;
    /* No feed at all: polling alone. */
    int64_t job = s_submit(h, "sleep 0.3");
    int rc = h_sh(s_out, sizeof s_out, "'%s' --server '%s' --feed none wait --poll-ms 100 --job %lld 2>&1",
                  h_bin("farm"), h->ep.front, (long long)job);
    assert_int_equal(rc, 0);
    s_has(s_out, "completed", "polling without a feed");
    /* A feed that points nowhere: the poll still finds the end. */
    job = s_submit(h, "sleep 0.3; exit 1");
    rc = h_sh(s_out, sizeof s_out, "'%s' --server '%s' --feed tcp://127.0.0.1:1 wait --poll-ms 200 --job %lld 2>&1",
              h_bin("farm"), h->ep.front, (long long)job);
    assert_int_equal(rc, 1);
    s_has(s_out, "failed", "polling past a dead feed");
    /* FARM_FEED is read like --feed. */
    job = s_submit(h, "true");
    rc = h_sh(s_out, sizeof s_out, "FARM_FEED='%s' '%s' --server '%s' wait --poll-ms 10000 --job %lld 2>&1",
              h->ep.feed, h_bin("farm"), h->ep.front, (long long)job);
    assert_int_equal(rc, 0);
    rc = h_sh(s_out, sizeof s_out, "FARM_FEED='not an endpoint' '%s' --server '%s' wait --job %lld 2>&1",
              h_bin("farm"), h->ep.front, (long long)job);
    assert_int_equal(rc, 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_feed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_fallback, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
