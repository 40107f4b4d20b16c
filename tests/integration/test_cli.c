/* Integration: the `farm` command against a real farm.
 *
 * Each check runs the built binary through /bin/sh with --server pointing
 * at the test's front door, and asserts on its exit status (0 ok, 1 the
 * awaited work failed or was cancelled, 2 usage, 3 the farm said no or did
 * not answer), on what it printed to stdout and on what it said on stderr.
 * What the CLI claims is cross-checked through the front door directly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

/* What one run of the CLI did. */
typedef struct {
    int rc;
    char out[32768];
    char err[8192];
} s_run_t;

static s_run_t s_r;

/* Run `farm --server FRONT ARGS` (ARGS printf-style, already shell-quoted)
 * with stdout in s_r.out and stderr in s_r.err; returns the exit status. */
static int s_farm(h_t *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int s_farm(h_t *h, const char *fmt, ...) {
    char args[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    char errpath[300];
    snprintf(errpath, sizeof errpath, "%s/cli.stderr", h->dir);
    s_r.rc = h_sh(s_r.out, sizeof s_r.out, "'%s' --server '%s' %s 2>'%s'", h_bin("farm"), h->ep.front, args, errpath);
    s_r.err[0] = '\0';
    FILE *f = fopen(errpath, "r");
    if (f) {
        size_t n = fread(s_r.err, 1, sizeof s_r.err - 1, f);
        s_r.err[n] = '\0';
        fclose(f);
    }
    return s_r.rc;
}

/* Fail with everything the run printed. */
static void s_expect(int rc, const char *what) {
    if (s_r.rc != rc)
        fail_msg("%s: exit %d, expected %d\nstdout: %s\nstderr: %s", what, s_r.rc, rc, s_r.out, s_r.err);
}

static void s_has(const char *text, const char *part, const char *what) {
    if (!strstr(text, part))
        fail_msg("%s: '%s' not in:\n%s", what, part, text);
}

/* A line of text whose whitespace-separated words include every one of
 * words (NULL-terminated), in that order. */
static bool s_row(const char *text, const char *const *words) {
    const char *line = text;
    while (*line) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        char buf[1024];
        snprintf(buf, sizeof buf, "%.*s", (int)(len < sizeof buf ? len : sizeof buf - 1), line);
        size_t k = 0;
        char *save, *tok = strtok_r(buf, " \t", &save);
        for (; tok && words[k]; tok = strtok_r(NULL, " \t", &save))
            if (strcmp(tok, words[k]) == 0)
                k++;
        if (!words[k])
            return true;
        if (!eol)
            break;
        line = eol + 1;
    }
    return false;
}

#define S_ROW(text, ...)                                                                        \
    do {                                                                                        \
        const char *const w_[] = {__VA_ARGS__, NULL};                                           \
        if (!s_row(text, w_))                                                                   \
            fail_msg("no line with %s ... in:\n%s", w_[0], text);                               \
    } while (0)

/* The farm is started by each test, not by a cmocka setup: a setup that
 * fails gets no teardown, which would leave its processes and memory. */
static int setup(void **state) {
    *state = h_new();
    return 0;
}

static h_t *s_start_farm(void **state) {
    h_t *h = *state;
    h_start_vent(h, NULL);
    h_start_sink(h, NULL);
    h_start_worker(h, "w1", 2, "--allow-exec", NULL);
    h_wait_up(h, 1);
    return h;
}

static int teardown(void **state) {
    h_t *h = *state;
    h_free(&h);
    return 0;
}

/* submit, wait (completed, failed, cancelled) and result. */
static void test_submit_wait_result(void **state) {
    h_t *h = s_start_farm(state);
    s_farm(h, "submit -- echo hi");
    s_expect(0, "submit -- echo hi");
    long long job, task;
    if (sscanf(s_r.out, "job %lld: 1 task (%lld)", &job, &task) != 2)
        fail_msg("submit printed '%s'", s_r.out);
    const msgpack_object *r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", task);
    assert_int_equal(h_int(r, "task.job"), job);
    assert_string_equal(h_str(r, "task.type"), "exec");

    s_farm(h, "wait --timeout-wait 20000 --job %lld", job);
    s_expect(0, "wait for a completed job");
    s_has(s_r.out, "completed", "wait --job");
    s_farm(h, "wait --timeout-wait 20000 %lld", task);
    s_expect(0, "wait for a completed task");

    s_farm(h, "result %lld", task);
    s_expect(0, "result");
    assert_string_equal(s_r.out, "hi\n"); /* stdout is the task's stdout, byte for byte */
    s_has(s_r.err, "exit code 0", "result's trailer");

    s_farm(h, "--json submit -- echo hi");
    s_expect(0, "--json submit");
    s_has(s_r.out, "\"ok\":true", "--json submit");
    const char *j = strstr(s_r.out, "\"job\":");
    assert_non_null(j);
    long long job2 = atoll(j + 6);
    assert_true(job2 > job);
    s_farm(h, "wait --timeout-wait 20000 --job %lld", job2);
    s_expect(0, "wait for the --json job");

    /* A failed job: exit 1. */
    s_farm(h, "submit --max-attempts 1 -- false");
    s_expect(0, "submit false");
    long long fjob;
    assert_int_equal(sscanf(s_r.out, "job %lld:", &fjob), 1);
    s_farm(h, "wait --timeout-wait 20000 --job %lld", fjob);
    s_expect(1, "wait for a failed job");
    s_has(s_r.out, "failed", "wait for a failed job");
    r = h_ok(h, "{\"op\":\"status\",\"job\":%lld}", fjob);
    assert_string_equal(h_str(r, "job.state"), "failed");

    /* A cancelled job: exit 1. */
    s_farm(h, "submit --type nobody");
    s_expect(0, "submit --type nobody");
    long long cjob;
    assert_int_equal(sscanf(s_r.out, "job %lld:", &cjob), 1);
    s_farm(h, "cancel --job %lld", cjob);
    s_expect(0, "cancel --job");
    s_has(s_r.out, "cancelled 1 task", "cancel --job");
    s_farm(h, "wait --timeout-wait 20000 --job %lld", cjob);
    s_expect(1, "wait for a cancelled job");
    s_has(s_r.out, "cancelled", "wait for a cancelled job");
}

/* status, list, jobs, stats, workers, health print what the farm holds. */
static void test_views(void **state) {
    h_t *h = s_start_farm(state);
    const msgpack_object *r = h_ok(h, "{\"op\":\"submit\",\"name\":\"viewjob\",\"tasks\":[{\"type\":\"exec\",\"args\":"
                                      "{\"argv\":[\"echo\",\"x\"]}},{\"type\":\"noop\"}]}");
    long long job = h_int(r, "job"), t = h_int(r, "tasks.0");
    assert_string_equal(h_wait_job(h, job, 10000), "completed");
    char ids[32], jobs[32];
    snprintf(ids, sizeof ids, "%lld", t);
    snprintf(jobs, sizeof jobs, "%lld", job);

    s_farm(h, "status %lld", t);
    s_expect(0, "status");
    S_ROW(s_r.out, "task", ids);
    S_ROW(s_r.out, "job", jobs);
    S_ROW(s_r.out, "type", "exec");
    S_ROW(s_r.out, "state", "completed");
    S_ROW(s_r.out, "attempts", "1", "of", "3");
    S_ROW(s_r.out, "progress", "100%");
    S_ROW(s_r.out, "worker", "w1");
    s_has(s_r.out, "history:", "status");
    S_ROW(s_r.out, "1", "w1"); /* the one attempt */

    s_farm(h, "status --job %lld", job);
    s_expect(0, "status --job");
    S_ROW(s_r.out, "name", "viewjob");
    S_ROW(s_r.out, "state", "completed");
    S_ROW(s_r.out, "tasks", "2");
    S_ROW(s_r.out, "completed", "2");
    S_ROW(s_r.out, "failed", "0");

    s_farm(h, "list");
    s_expect(0, "list");
    S_ROW(s_r.out, "ID", "JOB", "TYPE", "STATE");
    S_ROW(s_r.out, ids, jobs, "exec", "completed", "100%", "1/3", "w1");
    s_farm(h, "list --type noop");
    s_expect(0, "list --type noop");
    for (const char *l = s_r.out; l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        long long id;
        if (sscanf(l, "%lld", &id) == 1 && id == t)
            fail_msg("list --type noop shows the exec task:\n%s", s_r.out);
    }
    S_ROW(s_r.out, "noop", "completed");

    s_farm(h, "jobs");
    s_expect(0, "jobs");
    S_ROW(s_r.out, jobs, "viewjob", "completed", "2", "0", "0", "0", "2", "0", "0", "100%");

    s_farm(h, "stats");
    s_expect(0, "stats");
    S_ROW(s_r.out, "completed", "2");
    S_ROW(s_r.out, "pending", "0");
    S_ROW(s_r.out, "jobs", "1");
    S_ROW(s_r.out, "workers", "1");
    S_ROW(s_r.out, "slots", "2", "(0", "busy)");

    s_farm(h, "workers");
    s_expect(0, "workers");
    char pid[32];
    snprintf(pid, sizeof pid, "%ld", (long)h->procs[2].pid);
    S_ROW(s_r.out, "w1", pid, "2", "0", "alive");
    s_has(s_r.out, "exec", "workers' TYPES");

    s_farm(h, "health");
    s_expect(0, "health");
    S_ROW(s_r.out, "status", "ok");
    S_ROW(s_r.out, "version", "0.1.0");
    S_ROW(s_r.out, "server", h->ep.front);
}

/* --file: one job, one task per non-empty line. */
static void test_submit_file(void **state) {
    h_t *h = s_start_farm(state);
    char path[300];
    snprintf(path, sizeof path, "%s/tasks.jsonl", h->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"type\":\"noop\"}\n"
          "\n"
          "{\"type\":\"sleep\",\"args\":{\"ms\":10},\"priority\":5}\n"
          "  {\"type\":\"exec\",\"args\":{\"argv\":[\"echo\",\"from file\"]}}  \n",
          f);
    assert_int_equal(fclose(f), 0);
    s_farm(h, "submit --name filejob --file '%s'", path);
    s_expect(0, "submit --file");
    long long job, a, b;
    if (sscanf(s_r.out, "job %lld: 3 tasks (%lld..%lld)", &job, &a, &b) != 3)
        fail_msg("submit --file printed '%s'", s_r.out);
    assert_int_equal(b, a + 2);
    assert_string_equal(h_wait_job(h, job, 10000), "completed");
    const msgpack_object *r = h_ok(h, "{\"op\":\"status\",\"job\":%lld}", job);
    assert_int_equal(h_int(r, "job.total"), 3);
    assert_string_equal(h_str(r, "job.name"), "filejob");
    r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", a + 1);
    assert_string_equal(h_str(r, "task.type"), "sleep");
    assert_int_equal(h_int(r, "task.priority"), 5);
    s_farm(h, "result %lld", b);
    s_expect(0, "result of the file's exec task");
    assert_string_equal(s_r.out, "from file\n");
    r = h_ok(h, "{\"op\":\"stats\"}");
    assert_int_equal(h_int(r, "jobs"), 1);
}

/* Usage errors exit 2 and send nothing. */
static void test_usage_errors(void **state) {
    h_t *h = s_start_farm(state);
    s_farm(h, "frobnicate");
    s_expect(2, "unknown command");
    s_has(s_r.err, "unknown command 'frobnicate'", "unknown command");
    s_farm(h, "status --bogus 1");
    s_expect(2, "unknown flag");
    s_has(s_r.err, "--bogus", "unknown flag");
    s_farm(h, "--bogus health");
    s_expect(2, "unknown global flag");
    s_farm(h, "status");
    s_expect(2, "status without an id");
    s_farm(h, "result");
    s_expect(2, "result without an id");
    s_farm(h, "wait");
    s_expect(2, "wait without an id");
    s_farm(h, "status abc");
    s_expect(2, "status with a non-numeric id");
    s_farm(h, "submit");
    s_expect(2, "submit with nothing to submit");
    s_farm(h, "submit --priority 101 -- true");
    s_expect(2, "submit --priority out of range");
    s_farm(h, "%s", "");
    s_expect(2, "no command");
    char path[300];
    snprintf(path, sizeof path, "%s/bad.jsonl", h->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"type\":\"noop\"}\n{\"type\":\"noop\",\n{\"type\":\"noop\"}\n", f);
    assert_int_equal(fclose(f), 0);
    s_farm(h, "submit --file '%s'", path);
    s_expect(2, "a bad JSON line");
    s_has(s_r.err, "line 2", "a bad JSON line");
    snprintf(path, sizeof path, "%s/nosuch.jsonl", h->dir);
    s_farm(h, "submit --file '%s'", path);
    s_expect(2, "a missing file");
    /* Nothing reached the farm. */
    const msgpack_object *r = h_ok(h, "{\"op\":\"stats\"}");
    assert_int_equal(h_int(r, "jobs"), 0);
}

static int s_unused_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd); /* nobody listens on it now */
    return ntohs(a.sin_port);
}

/* No reply and error replies exit 3. */
static void test_farm_errors(void **state) {
    h_t *h = s_start_farm(state);
    char out[4096];
    char errpath[300];
    snprintf(errpath, sizeof errpath, "%s/noreply.stderr", h->dir);
    int64_t t0 = h_now();
    int rc = h_sh(out, sizeof out, "'%s' --timeout 300 --server tcp://127.0.0.1:%d health 2>'%s'", h_bin("farm"),
                  s_unused_port(), errpath);
    int64_t took = h_now() - t0;
    assert_int_equal(rc, 3);
    /* Three attempts of 300 ms, not the default 5 s each. */
    if (took > 4000)
        fail_msg("no reply took %lld ms", (long long)took);
    FILE *f = fopen(errpath, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    fclose(f);
    s_has(out, "no reply", "a farm that does not answer");

    s_farm(h, "status 999999");
    s_expect(3, "status of a missing task");
    s_has(s_r.err, "not_found", "status of a missing task");
    s_farm(h, "--json status 999999");
    s_expect(3, "--json status of a missing task");
    s_has(s_r.out, "\"code\":\"not_found\"", "--json error reply");
    s_farm(h, "cancel 999999");
    s_expect(3, "cancel of a missing task");
    s_has(s_r.err, "not_found", "cancel of a missing task");
}

/* FARM_SERVER names the farm when --server does not. */
static void test_farm_server_env(void **state) {
    h_t *h = s_start_farm(state);
    char out[4096];
    int rc = h_sh(out, sizeof out, "FARM_SERVER='%s' '%s' health 2>&1", h->ep.front, h_bin("farm"));
    if (rc != 0)
        fail_msg("FARM_SERVER health: exit %d: %s", rc, out);
    S_ROW(out, "status", "ok");
    S_ROW(out, "server", h->ep.front);
    /* --server wins over the environment. */
    rc = h_sh(out, sizeof out, "FARM_SERVER=tcp://127.0.0.1:1 '%s' --server '%s' health 2>&1", h_bin("farm"),
              h->ep.front);
    assert_int_equal(rc, 0);
    rc = h_sh(out, sizeof out, "FARM_SERVER='not an endpoint' '%s' health 2>&1", h_bin("farm"));
    assert_int_equal(rc, 2);
}

/* Every command's --help exits 0 and shows its usage. */
static void test_help(void **state) {
    h_t *h = *state; /* no farm: help never touches the network */
    const char *cmds[] = {"submit", "status", "result", "list", "jobs", "wait", "cancel",
                          "retry", "delete", "stats", "workers", "health"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        s_farm(h, "%s --help", cmds[i]);
        s_expect(0, cmds[i]);
        char want[64];
        snprintf(want, sizeof want, "usage: farm %s", cmds[i]);
        s_has(s_r.out, want, cmds[i]);
    }
    s_farm(h, "--help");
    s_expect(0, "--help");
    s_has(s_r.out, "commands:", "--help");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        s_has(s_r.out, cmds[i], "--help lists every command");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_submit_wait_result, setup, teardown),
        cmocka_unit_test_setup_teardown(test_views, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_farm_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_farm_server_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
