/* Fault test of scripts/farm-workers: workers started on other machines.
 *
 * A head and two worker hosts, each a network namespace this test creates
 * (joined by a bridge in a fourth), stand in for machines; the launcher
 * reaches them with --via 'ip netns exec {host}' where it would use ssh.
 * It starts a worker on each host from a host file, the workers connect
 * back to the head's address, tasks run on every host (each task reports
 * the address of the namespace it ran in), `status` sees them running,
 * `stop` drains them, and `status` then sees them stopped. Addresses are
 * 10.78.0.0/24 inside the test's own namespaces; nothing leaves this
 * machine. Needs root (ip netns); without it the test says it skipped.
 */
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

static lan_t s_lan; /* the head and two worker hosts, l<host><pid> */
static char s_hostfile[300], s_rdir[300];
static char s_out[16384];

/* Run the launcher with `action`; output in s_out, returns its status. */
static int s_launcher(const char *action) {
    return h_sh(s_out, sizeof s_out,
                "'%s/scripts/farm-workers' --via 'ip netns exec {host}' --head 10.78.0.1 --bin '%s/worker' "
                "--remote-dir '%s' --allow-exec --wait 20 --timeout 30 --farm '%s' --server 10.78.0.1:5555 "
                "'%s' %s 2>&1",
                FARM_SRC_DIR, FARM_BIN_DIR, s_rdir, h_bin("farm"), s_hostfile, action);
}

static int setup(void **state) {
    static const char *const hosts[] = {"head", "h1", "h2"};
    static const int addr[] = {1, 11, 12};
    if (lan_up(&s_lan, "l", "10.78.0", hosts, addr, 3)) {
        lan_down(&s_lan);
        print_message("test_launcher: SKIPPED: cannot create network namespaces here (%s)\n",
                      geteuid() != 0 ? "not root" : "ip netns failed");
        *state = NULL;
        return 0;
    }
    /* The test lives on the head host, so its client reaches the front door there. */
    h_t *h = lan_enter_head(&s_lan);
    snprintf(s_hostfile, sizeof s_hostfile, "%s/hosts", h->dir);
    snprintf(s_rdir, sizeof s_rdir, "%s/remote", h->dir);
    FILE *f = fopen(s_hostfile, "w");
    assert_non_null(f);
    fprintf(f, "# the test's worker hosts\nlh1%s 2\n\nlh2%s 2   # two slots each\n", s_lan.tag, s_lan.tag);
    assert_int_equal(fclose(f), 0);
    *state = h;
    return 0;
}

/* Workers the launcher started are not the test's children: stop them by
 * their pid files, whatever the test did. */
static void s_kill_leftovers(void) {
    char out[256];
    h_sh(out, sizeof out, "for f in '%s'/farm-worker-*.pid; do [ -f \"$f\" ] && kill -KILL $(cat \"$f\") 2>/dev/null; "
                          "done; true",
         s_rdir);
}

static int teardown(void **state) {
    h_t *h = *state;
    if (h) {
        s_kill_leftovers();
        h_free(&h);
    }
    lan_down(&s_lan);
    return 0;
}

/* The names the workers have: the hosts as the file gives them. */
static void s_names(char h1[32], char h2[32]) {
    lan_ns(&s_lan, "h1", h1, 32);
    lan_ns(&s_lan, "h2", h2, 32);
}

static void test_launcher(void **state) {
    h_t *h = *state;
    if (!h) {
        skip();
        return;
    }
    h_start_vent(h, "--insecure", "--backoff-base-ms", "50", NULL);
    h_start_sink(h, "--insecure", NULL);
    int64_t end = h_now() + 10000;
    while (h_call(h, "{\"op\":\"health\"}") != 0)
        assert_true(h_now() < end);
    char n1[32], n2[32];
    s_names(n1, n2);

    int rc = s_launcher("start");
    if (rc != 0)
        fail_msg("farm-workers start exited %d:\n%s", rc, s_out);
    if (!strstr(s_out, "started") || !strstr(s_out, n1) || !strstr(s_out, n2))
        fail_msg("start did not report both hosts:\n%s", s_out);
    assert_true(h_wait_workers(h, 2, 15000));
    /* A second start finds them running and starts nothing. */
    rc = s_launcher("start");
    assert_int_equal(rc, 0);
    if (!strstr(s_out, "already running"))
        fail_msg("a second start:\n%s", s_out);

    /* Tasks that report the address they ran at: every host takes some. */
    char req[8192];
    int n = snprintf(req, sizeof req, "{\"op\":\"submit\",\"tasks\":[");
    for (int i = 0; i < 16; i++)
        n += snprintf(req + n, sizeof req - (size_t)n,
                      "%s{\"type\":\"exec\",\"args\":{\"argv\":[\"sh\",\"-c\",\"sleep 0.3; ip -4 -o addr show dev "
                      "eth0\"]}}",
                      i ? "," : "");
    snprintf(req + n, sizeof req - (size_t)n, "]}");
    int64_t job = h_int(h_ok(h, "%s", req), "job");
    assert_string_equal(h_wait_job(h, job, 30000), "completed");
    const msgpack_object *r = h_ok(h, "{\"op\":\"list\",\"job\":%lld,\"limit\":100}", (long long)job);
    const msgpack_object *ts = h_get(r, "tasks");
    assert_int_equal(ts->via.array.size, 16);
    int64_t ids[16];
    char workers[16][64];
    for (int i = 0; i < 16; i++) {
        ids[i] = h_int(&ts->via.array.ptr[i], "id");
        snprintf(workers[i], sizeof workers[i], "%s", h_str(&ts->via.array.ptr[i], "worker"));
    }
    int on1 = 0, on2 = 0;
    for (int i = 0; i < 16; i++) {
        r = h_ok(h, "{\"op\":\"result\",\"task\":%lld}", (long long)ids[i]);
        const char *out = h_str(r, "result.stdout");
        bool is1 = strcmp(workers[i], n1) == 0, is2 = strcmp(workers[i], n2) == 0;
        if (!is1 && !is2)
            fail_msg("task %lld ran on '%s', not a launched worker", (long long)ids[i], workers[i]);
        /* It ran in the namespace of the host the launcher started it on. */
        if (!strstr(out, is1 ? "10.78.0.11/" : "10.78.0.12/"))
            fail_msg("task %lld on %s saw: %s", (long long)ids[i], workers[i], out);
        on1 += is1;
        on2 += is2;
    }
    assert_true(on1 > 0 && on2 > 0);

    rc = s_launcher("status");
    if (rc != 0 || !strstr(s_out, "running") || !strstr(s_out, "the head's view"))
        fail_msg("status exited %d:\n%s", rc, s_out);
    rc = s_launcher("stop");
    if (rc != 0 || !strstr(s_out, "stopped"))
        fail_msg("stop exited %d:\n%s", rc, s_out);
    rc = s_launcher("status");
    assert_int_equal(rc, 1);
    if (strstr(s_out, ": running"))
        fail_msg("still running after stop:\n%s", s_out);
    /* The head saw them go: no worker is alive any more. */
    end = h_now() + 15000;
    for (;;) {
        const msgpack_object *w = h_get(h_ok(h, "{\"op\":\"workers\"}"), "workers");
        int alive = 0;
        for (uint32_t i = 0; i < w->via.array.size; i++)
            alive += strcmp(h_str(&w->via.array.ptr[i], "state"), "alive") == 0;
        if (alive == 0)
            break;
        assert_true(h_now() < end);
    }
    print_message("test_launcher: %d tasks ran on %s, %d on %s\n", on1, n1, on2, n2);
}

/* What the launcher refuses before touching any host, and a host it
 * cannot reach. Needs no namespace and no root. */
static void test_usage(void **state) {
    (void)state;
    char dir[] = "/tmp/farm-launcher-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char bad[300];
    snprintf(bad, sizeof bad, "%s/hosts", dir);
    const struct {
        const char *file, *action, *says;
        int rc;
    } cases[] = {
        {"hostA 0\n", "start", "slots must be", 2},
        {"hostA 2 3\n", "start", "expected 'host [slots]'", 2},
        {"hostA\nhostA 2\n", "status", "twice", 2},
        {"# nothing\n\n", "status", "names no host", 2},
        {"hostA\n", "restart", "unknown action", 2},
        /* A namespace that does not exist: reported, and the status is 1. */
        {"farm-no-such-host\n", "status", "farm-no-such-host:", 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        FILE *f = fopen(bad, "w");
        assert_non_null(f);
        fputs(cases[k].file, f);
        assert_int_equal(fclose(f), 0);
        int rc = h_sh(s_out, sizeof s_out,
                      "'%s/scripts/farm-workers' --via 'ip netns exec {host}' --timeout 5 --farm /nonexistent "
                      "'%s' %s 2>&1",
                      FARM_SRC_DIR, bad, cases[k].action);
        if (rc != cases[k].rc || !strstr(s_out, cases[k].says))
            fail_msg("case %zu: exit %d (want %d), output:\n%s", k, rc, cases[k].rc, s_out);
    }
    int rc = h_sh(s_out, sizeof s_out, "'%s/scripts/farm-workers' --help 2>&1", FARM_SRC_DIR);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(s_out, "--via TEMPLATE"));
    rc = h_sh(s_out, sizeof s_out, "'%s/scripts/farm-workers' 2>&1", FARM_SRC_DIR);
    assert_int_equal(rc, 2);
    rc = h_sh(s_out, sizeof s_out, "rm -rf '%s'", dir);
    assert_int_equal(rc, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_launcher, setup, teardown),
        cmocka_unit_test(test_usage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
