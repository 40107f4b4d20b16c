/* Integration: exec tasks end to end, through the real ventilator, sink and
 * workers: captured output, exit codes and the failed-attempt path, retries,
 * timeouts that kill the whole process group, progress through
 * FARM_PROGRESS_FD, the FARM_* variables, env/cwd/stdin, the output limit,
 * and a farm whose only worker refuses exec.
 *
 * Every wait is a poll of the front door (or of a file or a pid) with a
 * deadline; the scripts the tasks run are short and the one that must stay
 * running waits (bounded) for a file the test creates.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "farm_client.h"
#include "farm_err.h"
#include "farm_msg.h"
#include "harness.h"

/* ---- helpers ---------------------------------------------------------- */

static void s_pause_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L}; /* poll interval, not synchronisation */
    nanosleep(&ts, NULL);
}

/* Submit one exec task: argv is a JSON array, extra more task keys
 * (",\"max_attempts\":1" or ""). Returns the task id; *job gets the job. */
static int64_t s_exec(h_t *h, int64_t *job, const char *argv, const char *extra) {
    const msgpack_object *r =
        h_ok(h, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"exec\",\"args\":{\"argv\":%s}%s}]}", argv, extra);
    if (job)
        *job = h_int(r, "job");
    return h_int(r, "tasks.0");
}

/* The bytes at path, which must be a MessagePack bin. */
static const char *s_bin(const msgpack_object *o, const char *path, size_t *len) {
    const msgpack_object *v = h_get(o, path);
    if (!v)
        fail_msg("no %s in reply", path);
    if (v->type != MSGPACK_OBJECT_BIN)
        fail_msg("%s is not bin (type %d)", path, v->type);
    *len = v->via.bin.size;
    return v->via.bin.ptr;
}

static void s_bin_eq(const msgpack_object *o, const char *path, const char *want) {
    size_t n;
    const char *p = s_bin(o, path, &n);
    if (n != strlen(want) || memcmp(p, want, n) != 0)
        fail_msg("%s is '%.*s', expected '%s'", path, (int)n, p, want);
}

static bool s_bool(const msgpack_object *o, const char *path) {
    const msgpack_object *v = h_get(o, path);
    if (!v || v->type != MSGPACK_OBJECT_BOOLEAN)
        fail_msg("%s is not a boolean", path);
    return v->via.boolean;
}

/* Read a small text file; returns false when it does not exist (yet). */
static bool s_read_file(const char *path, char *buf, size_t n) {
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t got = fread(buf, 1, n - 1, f);
    buf[got] = '\0';
    fclose(f);
    return true;
}

/* A process is gone when it does not exist or is only a zombie left for
 * its (re)parent to reap. */
static bool s_pid_gone(pid_t pid) {
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return true;
    char path[64], stat[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    if (!s_read_file(path, stat, sizeof stat))
        return true;
    const char *close_paren = strrchr(stat, ')');
    return close_paren && close_paren[1] == ' ' && (close_paren[2] == 'Z' || close_paren[2] == 'X');
}

/* ---- fixtures --------------------------------------------------------- */

/* The farm is started by each test, not by a cmocka setup: a setup that
 * fails gets no teardown, which would leave its processes and memory. */
static int setup(void **state) {
    *state = h_new();
    return 0;
}

static int teardown(void **state) {
    h_t *h = *state;
    h_free(&h);
    return 0;
}

/* One worker that runs exec, 2 slots, output cut at 1000 bytes. */
static h_t *s_farm(void **state) {
    h_t *h = *state;
    h_start_vent(h, "--backoff-base-ms", "50", NULL);
    h_start_sink(h, NULL);
    h_start_worker(h, "w1", 2, "--allow-exec", "--max-output", "1000", "--kill-grace-ms", "500", NULL);
    h_wait_up(h, 1);
    return h;
}

/* Only a worker without --allow-exec. */
static h_t *s_farm_plain(void **state) {
    h_t *h = *state;
    h_start_vent(h, NULL);
    h_start_sink(h, NULL);
    h_start_worker(h, "plain", 1, NULL);
    h_wait_up(h, 1);
    return h;
}

/* ---- tests ------------------------------------------------------------ */

static void test_output_captured(void **state) {
    h_t *h = s_farm(state);
    int64_t t = s_exec(h, NULL, "[\"sh\",\"-c\",\"echo out; echo err >&2\"]", "");
    assert_true(h_wait_task(h, t, "completed", 10000));
    const msgpack_object *r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)t);
    assert_int_equal(h_int(r, "task.attempts"), 1);
    assert_string_equal(h_str(r, "task.worker"), "w1");
    assert_true(h_nil(r, "task.error"));
    r = h_ok(h, "{\"op\":\"result\",\"task\":%lld}", (long long)t);
    assert_string_equal(h_str(r, "state"), "completed");
    assert_true(h_nil(r, "error"));
    assert_int_equal(h_int(r, "result.exit_code"), 0);
    assert_int_equal(h_int(r, "result.signal"), 0);
    s_bin_eq(r, "result.stdout", "out\n");
    s_bin_eq(r, "result.stderr", "err\n");
    assert_false(s_bool(r, "result.truncated"));
    int64_t d = h_int(r, "result.duration_ms");
    assert_true(d >= 0 && d < 10000);
}

static void test_nonzero_exit(void **state) {
    h_t *h = s_farm(state);
    int64_t t = s_exec(h, NULL, "[\"sh\",\"-c\",\"echo partial; echo bad >&2; exit 3\"]", ",\"max_attempts\":1");
    assert_true(h_wait_task(h, t, "failed", 10000));
    const msgpack_object *r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)t);
    assert_string_equal(h_str(r, "task.error"), "exit code 3");
    assert_int_equal(h_int(r, "task.attempts"), 1);
    assert_false(h_nil(r, "task.finished_ms"));
    /* The failed attempt's output is kept. */
    r = h_ok(h, "{\"op\":\"result\",\"task\":%lld}", (long long)t);
    assert_string_equal(h_str(r, "state"), "failed");
    assert_string_equal(h_str(r, "error"), "exit code 3");
    assert_int_equal(h_int(r, "result.exit_code"), 3);
    assert_int_equal(h_int(r, "result.signal"), 0);
    s_bin_eq(r, "result.stdout", "partial\n");
    s_bin_eq(r, "result.stderr", "bad\n");
}

static void test_retried_then_failed(void **state) {
    h_t *h = s_farm(state);
    /* Each attempt leaves its number in a file, so the attempts are seen
     * to have run, not just counted. */
    char argv[512];
    snprintf(argv, sizeof argv, "[\"sh\",\"-c\",\"echo $FARM_ATTEMPT >> %s/attempts; exit 1\"]", h->dir);
    int64_t t = s_exec(h, NULL, argv, ",\"max_attempts\":2");
    assert_true(h_wait_task(h, t, "failed", 10000));
    const msgpack_object *r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)t);
    assert_int_equal(h_int(r, "task.attempts"), 2);
    assert_int_equal(h_int(r, "task.max_attempts"), 2);
    assert_string_equal(h_str(r, "task.error"), "exit code 1");
    const msgpack_object *hist = h_get(r, "task.history");
    assert_non_null(hist);
    assert_int_equal(hist->via.array.size, 2);
    for (uint32_t i = 0; i < 2; i++) {
        assert_int_equal(h_int(&hist->via.array.ptr[i], "attempt"), i + 1);
        assert_string_equal(h_str(&hist->via.array.ptr[i], "error"), "exit code 1");
    }
    char path[300], text[64];
    snprintf(path, sizeof path, "%s/attempts", h->dir);
    assert_true(s_read_file(path, text, sizeof text));
    assert_string_equal(text, "1\n2\n");
}

static void test_timeout_kills_group(void **state) {
    h_t *h = s_farm(state);
    char argv[512];
    snprintf(argv, sizeof argv, "[\"sh\",\"-c\",\"sleep 30 & echo $! > %s/bg.tmp && mv %s/bg.tmp %s/bg; sleep 30\"]",
             h->dir, h->dir, h->dir);
    int64_t t0 = h_now();
    int64_t t = s_exec(h, NULL, argv, ",\"timeout_ms\":300,\"max_attempts\":1");
    assert_true(h_wait_task(h, t, "failed", 10000));
    /* Well before either sleep would have ended on its own. */
    assert_true(h_now() - t0 < 10000);
    const msgpack_object *r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)t);
    const char *err = h_str(r, "task.error");
    if (!strstr(err, "timeout"))
        fail_msg("error '%s' does not mention the timeout", err);
    r = h_ok(h, "{\"op\":\"result\",\"task\":%lld}", (long long)t);
    assert_int_equal(h_int(r, "result.exit_code"), -1);
    assert_int_equal(h_int(r, "result.signal"), SIGTERM);
    /* The attempt's clock starts when the slot takes the task, a little
     * before the spawn that duration_ms is measured from. */
    int64_t d = h_int(r, "result.duration_ms");
    if (d < 250 || d >= 5000)
        fail_msg("duration_ms %lld of a task killed at timeout_ms 300", (long long)d);
    /* The background sleep was in the group: it is gone too. */
    char path[300], text[64];
    snprintf(path, sizeof path, "%s/bg", h->dir);
    if (!s_read_file(path, text, sizeof text))
        fail_msg("the script did not record its background pid");
    pid_t bg = (pid_t)atol(text);
    assert_true(bg > 1);
    int64_t end = h_now() + 3000;
    while (!s_pid_gone(bg)) {
        if (h_now() > end)
            fail_msg("background process %ld of the timed-out task is still alive", (long)bg);
        s_pause_ms(10);
    }
}

static void test_progress(void **state) {
    h_t *h = s_farm(state);
    /* The script reports 50% and then waits (at most 20 s, so a failed test
     * leaves nothing behind for long) until the test creates the file go. */
    char go[300], tmp[300];
    snprintf(go, sizeof go, "%s/go", h->dir);
    snprintf(tmp, sizeof tmp, "%s/go.tmp", h->dir);
    char argv[800];
    snprintf(argv, sizeof argv,
             "[\"sh\",\"-c\",\"echo '50 half' >&$FARM_PROGRESS_FD; i=0; while [ ! -e %s ] && [ $i -lt 400 ]; do "
             "sleep 0.05; i=$((i+1)); done; echo done $(cat %s)\"]",
             go, go);
    int64_t t = s_exec(h, NULL, argv, "");
    /* While the script waits, its progress shows. */
    int64_t end = h_now() + 10000;
    for (;;) {
        const msgpack_object *r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)t);
        if (h_int(r, "task.progress") == 50) {
            assert_string_equal(h_str(r, "task.state"), "running");
            assert_string_equal(h_str(r, "task.message"), "half");
            break;
        }
        if (h_now() > end)
            fail_msg("no progress 50 seen; state %s progress %lld", h_str(r, "task.state"),
                     (long long)h_int(r, "task.progress"));
        s_pause_ms(20);
    }
    /* Still running, still at 50: nothing moves until the test says so. */
    const msgpack_object *r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)t);
    assert_string_equal(h_str(r, "task.state"), "running");
    assert_int_equal(h_int(r, "task.progress"), 50);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs("go", f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, go), 0);
    assert_true(h_wait_task(h, t, "completed", 10000));
    r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)t);
    assert_int_equal(h_int(r, "task.progress"), 100);
    r = h_ok(h, "{\"op\":\"result\",\"task\":%lld}", (long long)t);
    s_bin_eq(r, "result.stdout", "done go\n");
}

/* The FARM_* variables, a task's env (which cannot fake them), cwd and a
 * bin stdin. The request is packed by hand: JSON has no bin. */
static void test_env_cwd_stdin(void **state) {
    h_t *h = s_farm(state);
    char dir[PATH_MAX];
    assert_non_null(realpath(h->dir, dir));
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    farm_pack_kv_str(&pk, "op", "submit");
    farm_pack_str(&pk, "tasks");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 2);
    farm_pack_kv_str(&pk, "type", "exec");
    farm_pack_str(&pk, "args");
    msgpack_pack_map(&pk, 4);
    farm_pack_str(&pk, "argv");
    msgpack_pack_array(&pk, 3);
    farm_pack_str(&pk, "sh");
    farm_pack_str(&pk, "-c");
    farm_pack_str(&pk, "echo \"$FARM_TASK_ID $FARM_JOB_ID $FARM_ATTEMPT $FOO\"; pwd; cat");
    farm_pack_str(&pk, "env");
    msgpack_pack_map(&pk, 2);
    farm_pack_kv_str(&pk, "FOO", "bar baz");
    farm_pack_kv_str(&pk, "FARM_TASK_ID", "666");
    farm_pack_kv_str(&pk, "cwd", dir);
    farm_pack_kv_bin(&pk, "stdin", "line one\nline two", 17);
    msgpack_zone_clear(&h->zone);
    int rc = farm_client_callv(h->client, &b, &h->zone, &h->reply, &h->err);
    msgpack_sbuffer_destroy(&b);
    if (rc)
        fail_msg("submit failed: %s: %s", farm_err_name(rc), h->err.message);
    int64_t job = h_int(&h->reply, "job"), t = h_int(&h->reply, "tasks.0");
    assert_true(h_wait_task(h, t, "completed", 10000));
    const msgpack_object *r = h_ok(h, "{\"op\":\"result\",\"task\":%lld}", (long long)t);
    char want[PATH_MAX + 200];
    snprintf(want, sizeof want, "%lld %lld 1 bar baz\n%s\nline one\nline two", (long long)t, (long long)job, dir);
    s_bin_eq(r, "result.stdout", want);
}

static void test_output_truncated(void **state) {
    h_t *h = s_farm(state);
    int64_t t = s_exec(h, NULL, "[\"head\",\"-c\",\"5000\",\"/dev/zero\"]", "");
    assert_true(h_wait_task(h, t, "completed", 10000));
    const msgpack_object *r = h_ok(h, "{\"op\":\"result\",\"task\":%lld}", (long long)t);
    assert_int_equal(h_int(r, "result.exit_code"), 0);
    assert_true(s_bool(r, "result.truncated"));
    size_t n;
    const char *out = s_bin(r, "result.stdout", &n);
    assert_int_equal(n, 1000);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(out[i], 0);
    s_bin_eq(r, "result.stderr", "");
}

static void test_exec_refused_without_allow_exec(void **state) {
    h_t *h = s_farm_plain(state);
    int64_t t = s_exec(h, NULL, "[\"echo\",\"ran\"]", "");
    const msgpack_object *r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)t);
    assert_string_equal(h_str(r, "task.state"), "pending");
    assert_string_equal(h_str(r, "task.message"), "no live worker offers type \"exec\"");
    /* The worker is idle and takes other work: a noop submitted after the
     * exec task completes while the exec task still waits. */
    r = h_ok(h, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"noop\"}]}");
    int64_t noop = h_int(r, "tasks.0");
    assert_true(h_wait_task(h, noop, "completed", 10000));
    assert_string_equal(h_str(&h->reply, "task.worker"), "plain");
    r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)t);
    assert_string_equal(h_str(r, "task.state"), "pending");
    assert_int_equal(h_int(r, "task.attempts"), 0);
    assert_true(h_nil(r, "task.worker"));
    /* A worker that allows exec runs it. */
    h_start_worker(h, "w2", 1, "--allow-exec", NULL);
    assert_true(h_wait_task(h, t, "completed", 10000));
    r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)t);
    assert_string_equal(h_str(r, "task.worker"), "w2");
    r = h_ok(h, "{\"op\":\"result\",\"task\":%lld}", (long long)t);
    s_bin_eq(r, "result.stdout", "ran\n");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_output_captured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nonzero_exit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retried_then_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_kills_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_cwd_stdin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exec_refused_without_allow_exec, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
