/* Multi-host fault test: a head and three worker hosts, each in a network
 * namespace this test creates, joined by a bridge in a fifth namespace.
 * One worker host's link is cut mid-run: the ventilator declares it lost,
 * its tasks finish on the other hosts, and when the link comes back the
 * host rejoins and takes work again. Addresses are 10.77.0.0/24 inside the
 * test's own namespaces; nothing leaves this machine. Needs root (ip netns);
 * without it the test says it skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "lan.h"

static lan_t s_lan; /* the head and three worker hosts, f<host><pid> */

static int setup(void **state) {
    static const char *const hosts[] = {"head", "h1", "h2", "h3"};
    static const int addr[] = {1, 11, 12, 13};
    if (lan_up(&s_lan, "f", "10.77.0", hosts, addr, 4)) {
        lan_down(&s_lan);
        print_message("test_netns: SKIPPED: cannot create network namespaces here (%s)\n",
                      geteuid() != 0 ? "not root" : "ip netns failed");
        *state = NULL;
        return 0;
    }
    /* The test itself lives on the head host, so its client reaches the front door there. */
    *state = lan_enter_head(&s_lan);
    return 0;
}

static int teardown(void **state) {
    h_t *h = *state;
    if (h)
        h_free(&h);
    lan_down(&s_lan);
    return 0;
}

static void s_start_worker(h_t *h, const char *host) {
    char ns[64];
    lan_ns(&s_lan, host, ns, sizeof ns);
    const char *argv[] = {"ip", "netns", "exec", ns, h_bin("farm-worker"), "--connect", "10.77.0.1",
                          "--name", host, "--slots", "2", NULL};
    h_start_cmd(h, host, argv);
}

/* Tasks of job still running or retrying on host, from list. */
static int s_on_host(h_t *h, int64_t job, const char *host, const char *state) {
    const msgpack_object *r = h_ok(h, "{\"op\":\"list\",\"job\":%lld,\"state\":\"%s\",\"limit\":1000}", (long long)job, state);
    const msgpack_object *t = h_get(r, "tasks");
    int n = 0;
    for (uint32_t i = 0; i < t->via.array.size; i++)
        n += strcmp(h_str(&t->via.array.ptr[i], "worker"), host) == 0;
    return n;
}

static void test_link_cut_and_rejoin(void **state) {
    h_t *h = *state;
    if (!h) {
        skip();
        return;
    }
    h_start_vent(h, "--insecure", "--lost-after-ms", "1500", "--backoff-base-ms", "50", NULL);
    h_start_sink(h, "--insecure", NULL);
    s_start_worker(h, "h1");
    s_start_worker(h, "h2");
    s_start_worker(h, "h3");
    int64_t end = h_now() + 10000;
    while (h_call(h, "{\"op\":\"health\"}") != 0)
        assert_true(h_now() < end);
    assert_true(h_wait_workers(h, 3, 15000));
    char req[8192];
    int n = snprintf(req, sizeof req, "{\"op\":\"submit\",\"tasks\":[");
    for (int i = 0; i < 36; i++)
        n += snprintf(req + n, sizeof req - (size_t)n, "%s{\"type\":\"sleep\",\"args\":{\"ms\":400}}", i ? "," : "");
    snprintf(req + n, sizeof req - (size_t)n, "]}");
    int64_t job = h_int(h_ok(h, "%s", req), "job");
    /* Cut h3 while it runs tasks of the job. */
    end = h_now() + 10000;
    while (s_on_host(h, job, "h3", "running") == 0)
        assert_true(h_now() < end);
    lan_link(&s_lan, "h3", false);
    /* It is declared lost, and the job still completes on h1 and h2. */
    end = h_now() + 10000;
    bool lost = false;
    while (!lost && h_now() < end) {
        const msgpack_object *r = h_ok(h, "{\"op\":\"workers\"}");
        for (uint32_t i = 0; i < h_get(r, "workers")->via.array.size; i++) {
            char p[64];
            snprintf(p, sizeof p, "workers.%u.id", i);
            if (strcmp(h_str(r, p), "h3") == 0) {
                snprintf(p, sizeof p, "workers.%u.state", i);
                lost = strcmp(h_str(r, p), "lost") == 0;
            }
        }
    }
    assert_true(lost);
    assert_string_equal(h_wait_job(h, job, 30000), "completed");
    /* Every task is completed, with exactly one result; those cut off on h3 finished elsewhere
     * unless h3's own result arrived first after the link came back. */
    const msgpack_object *r = h_ok(h, "{\"op\":\"status\",\"job\":%lld}", (long long)job);
    assert_int_equal(h_int(r, "job.counts.completed"), 36);
    r = h_ok(h, "{\"op\":\"list\",\"job\":%lld,\"limit\":1000}", (long long)job);
    int retried_elsewhere = 0;
    for (uint32_t i = 0; i < 36; i++) {
        const msgpack_object *t = &h_get(r, "tasks")->via.array.ptr[i];
        if (h_int(t, "attempts") > 1 && strcmp(h_str(t, "worker"), "h3") != 0)
            retried_elsewhere++;
    }
    assert_true(retried_elsewhere >= 1);
    /* The link comes back: h3 rejoins and takes work again. */
    lan_link(&s_lan, "h3", true);
    assert_true(h_wait_workers(h, 3, 20000));
    n = snprintf(req, sizeof req, "{\"op\":\"submit\",\"tasks\":[");
    for (int i = 0; i < 30; i++)
        n += snprintf(req + n, sizeof req - (size_t)n, "%s{\"type\":\"sleep\",\"args\":{\"ms\":200}}", i ? "," : "");
    snprintf(req + n, sizeof req - (size_t)n, "]}");
    int64_t job2 = h_int(h_ok(h, "%s", req), "job");
    assert_string_equal(h_wait_job(h, job2, 30000), "completed");
    assert_true(s_on_host(h, job2, "h3", "completed") >= 1);
    print_message("test_netns: %d tasks of the cut host finished elsewhere; h3 ran %d after rejoining\n",
                  retried_elsewhere, s_on_host(h, job2, "h3", "completed"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_link_cut_and_rejoin, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
