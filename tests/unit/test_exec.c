/*
 * test_exec.c - cmocka tests of worker/worker_exec.c.
 *
 * Every run carries a safety timeout so that a regression cannot hang the
 * suite; the only deliberate delay is the cancel thread's 200 ms. Checks that
 * a killed background process is gone poll for at most 2 s, because signal
 * delivery to a process we do not own is asynchronous (and a reparented zombie
 * may linger when PID 1 does not reap, so zombies count as gone).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "worker_exec.h"

#define SAFETY_TIMEOUT_MS 10000

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static worker_exec_opts_t base_opts(char *const *argv)
{
    worker_exec_opts_t o;
    memset(&o, 0, sizeof o);
    o.argv = argv;
    o.out_limit = 1 << 20;
    o.timeout_ms = SAFETY_TIMEOUT_MS;
    o.cancel_fd = -1;
    return o;
}

/* Alive and not a zombie. */
static int pid_alive(pid_t pid)
{
    if (kill(pid, 0) != 0)
        return errno != ESRCH;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *rp = strrchr(buf, ')');
    if (rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'))
        return 0;
    return 1;
}

static int wait_gone(pid_t pid, int max_ms)
{
    int64_t end = now_ms() + max_ms;
    while (pid_alive(pid)) {
        if (now_ms() >= end)
            return 0;
        sleep_ms(10);
    }
    return 1;
}

/* ------------------------------------------------------------------------ */

static void test_echo(void **state)
{
    char *argv[] = { "echo", "hello", "world", NULL };
    worker_exec_opts_t o = base_opts(argv);
    worker_exec_result_t r;
    assert_int_equal(worker_exec_run(&o, &r), 0);
    assert_int_equal(r.exit_code, 0);
    assert_int_equal(r.signal, 0);
    assert_int_equal(r.out_len, 12);
    assert_string_equal(r.out, "hello world\n");
    assert_null(r.err);
    assert_int_equal(r.err_len, 0);
    assert_false(r.truncated);
    assert_false(r.timed_out);
    assert_false(r.cancelled);
    assert_true(r.duration_ms >= 0 && r.duration_ms < 2000);
    worker_exec_result_free(&r);
    worker_exec_result_free(&r); /* idempotent */
}

static void test_exit_code(void **state)
{
    char *argv[] = { "sh", "-c", "exit 3", NULL };
    worker_exec_opts_t o = base_opts(argv);
    worker_exec_result_t r;
    assert_int_equal(worker_exec_run(&o, &r), 0);
    assert_int_equal(r.exit_code, 3);
    assert_int_equal(r.signal, 0);
    assert_null(r.out);
    worker_exec_result_free(&r);
}

static void test_killed_by_signal(void **state)
{
    char *argv[] = { "sh", "-c", "kill -9 $$", NULL };
    worker_exec_opts_t o = base_opts(argv);
    worker_exec_result_t r;
    assert_int_equal(worker_exec_run(&o, &r), 0);
    assert_int_equal(r.exit_code, -1);
    assert_int_equal(r.signal, 9);
    assert_false(r.timed_out);
    worker_exec_result_free(&r);
}

static void test_stderr(void **state)
{
    char *argv[] = { "sh", "-c", "echo oops >&2; echo fine", NULL };
    worker_exec_opts_t o = base_opts(argv);
    worker_exec_result_t r;
    assert_int_equal(worker_exec_run(&o, &r), 0);
    assert_int_equal(r.exit_code, 0);
    assert_string_equal(r.err, "oops\n");
    assert_int_equal(r.err_len, 5);
    assert_string_equal(r.out, "fine\n");
    worker_exec_result_free(&r);
}

static void fill_pattern(unsigned char *buf, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (unsigned char)x;
    }
}

static void test_stdin_roundtrip(void **state)
{
    const size_t n = 1 << 20;
    unsigned char *data = malloc(n);
    assert_non_null(data);
    fill_pattern(data, n, 7);
    char *argv[] = { "cat", NULL };
    worker_exec_opts_t o = base_opts(argv);
    o.stdin_data = data;
    o.stdin_len = n;
    o.out_limit = n;
    worker_exec_result_t r;
    assert_int_equal(worker_exec_run(&o, &r), 0);
    assert_int_equal(r.exit_code, 0);
    assert_int_equal(r.out_len, n);
    assert_false(r.truncated);
    assert_memory_equal(r.out, data, n);
    assert_int_equal(r.out[n], '\0');
    worker_exec_result_free(&r);
    free(data);
}

static void test_stdin_epipe(void **state)
{
    const size_t n = 4 << 20;
    unsigned char *data = calloc(1, n);
    assert_non_null(data);
    /* The child closes its stdin at once: our writes hit EPIPE. */
    char *argv[] = { "sh", "-c", "exec 0<&-; sleep 0.2; echo done", NULL };
    worker_exec_opts_t o = base_opts(argv);
    o.stdin_data = data;
    o.stdin_len = n;
    worker_exec_result_t r;
    assert_int_equal(worker_exec_run(&o, &r), 0);
    assert_int_equal(r.exit_code, 0);
    assert_string_equal(r.out, "done\n");
    sigset_t pending;
    assert_int_equal(sigpending(&pending), 0);
    assert_int_equal(sigismember(&pending, SIGPIPE), 0);
    worker_exec_result_free(&r);
    free(data);
}

static void test_no_stdin_gets_eof(void **state)
{
    char *argv[] = { "cat", NULL };
    worker_exec_opts_t o = base_opts(argv);
    worker_exec_result_t r;
    assert_int_equal(worker_exec_run(&o, &r), 0);
    assert_int_equal(r.exit_code, 0);
    assert_null(r.out);
    assert_false(r.timed_out);
    worker_exec_result_free(&r);
}

static void test_truncation(void **state)
{
    char *argv[] = { "sh", "-c", "yes | head -c 3000000", NULL };
    worker_exec_opts_t o = base_opts(argv);
    o.out_limit = 1000;
    worker_exec_result_t r;
    assert_int_equal(worker_exec_run(&o, &r), 0);
    assert_int_equal(r.exit_code, 0);
    assert_int_equal(r.out_len, 1000);
    assert_true(r.truncated);
    for (size_t i = 0; i < r.out_len; i++)
        assert_int_equal(r.out[i], i % 2 ? '\n' : 'y');
    assert_int_equal(r.out[1000], '\0');
    worker_exec_result_free(&r);
}

static void test_timeout(void **state)
{
    char *argv[] = { "sleep", "10", NULL };
    worker_exec_opts_t o = base_opts(argv);
    o.timeout_ms = 200;
    worker_exec_result_t r;
    int64_t t0 = now_ms();
    assert_int_equal(worker_exec_run(&o, &r), 0);
    int64_t el = now_ms() - t0;
    assert_true(el >= 150 && el < 2500);
    assert_true(r.timed_out);
    assert_false(r.cancelled);
    assert_int_equal(r.exit_code, -1);
    assert_int_equal(r.signal, SIGTERM);
    assert_true(r.duration_ms >= 150 && r.duration_ms < 2500);
    worker_exec_result_free(&r);
}

static void test_term_ignored_gets_kill(void **state)
{
    char *argv[] = { "sh", "-c", "trap '' TERM; sleep 10", NULL };
    worker_exec_opts_t o = base_opts(argv);
    o.timeout_ms = 200;
    o.kill_grace_ms = 300;
    worker_exec_result_t r;
    int64_t t0 = now_ms();
    assert_int_equal(worker_exec_run(&o, &r), 0);
    int64_t el = now_ms() - t0;
    assert_true(el >= 450 && el < 2500);
    assert_true(r.timed_out);
    assert_int_equal(r.exit_code, -1);
    assert_int_equal(r.signal, SIGKILL);
    worker_exec_result_free(&r);
}

static void test_process_group_killed(void **state)
{
    char *argv[] = { "sh", "-c", "sleep 30 & echo $! >&2; sleep 30", NULL };
    worker_exec_opts_t o = base_opts(argv);
    /* Long enough for the shell to print its child's pid on a loaded machine. */
    o.timeout_ms = 1000;
    worker_exec_result_t r;
    int64_t t0 = now_ms();
    assert_int_equal(worker_exec_run(&o, &r), 0);
    assert_true(now_ms() - t0 < 5000);
    assert_true(r.timed_out);
    assert_non_null(r.err);
    pid_t bg = (pid_t)atoi(r.err);
    assert_true(bg > 1);
    assert_true(wait_gone(bg, 2000));
    worker_exec_result_free(&r);
}

static void test_leader_exits_background_holds_pipe(void **state)
{
    /* The leader exits at once; its background child keeps stdout open. */
    char *argv[] = { "sh", "-c", "sleep 30 & echo $!", NULL };
    worker_exec_opts_t o = base_opts(argv);
    worker_exec_result_t r;
    int64_t t0 = now_ms();
    assert_int_equal(worker_exec_run(&o, &r), 0);
    assert_true(now_ms() - t0 < 1500);
    assert_int_equal(r.exit_code, 0);
    assert_int_equal(r.signal, 0);
    assert_false(r.timed_out);
    assert_non_null(r.out);
    pid_t bg = (pid_t)atoi(r.out);
    assert_true(bg > 1);
    assert_true(wait_gone(bg, 2000));
    worker_exec_result_free(&r);
}

static void *cancel_thread(void *arg)
{
    int fd = *(int *)arg;
    sleep_ms(200); /* the deliberate cancel delay */
    ssize_t w = write(fd, "x", 1);
    (void)w;
    return NULL;
}

static void test_cancel(void **state)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, cancel_thread, &p[1]), 0);
    char *argv[] = { "sleep", "10", NULL };
    worker_exec_opts_t o = base_opts(argv);
    o.cancel_fd = p[0];
    worker_exec_result_t r;
    int64_t t0 = now_ms();
    int rc = worker_exec_run(&o, &r);
    int64_t el = now_ms() - t0;
    assert_int_equal(pthread_join(th, NULL), 0);
    close(p[0]);
    close(p[1]);
    assert_int_equal(rc, 0);
    assert_true(el >= 150 && el < 2500);
    assert_true(r.cancelled);
    assert_false(r.timed_out);
    assert_int_equal(r.exit_code, -1);
    assert_int_equal(r.signal, SIGTERM);
    worker_exec_result_free(&r);
}

typedef struct {
    int n;
    int pct[16];
    char msg[16][64];
} progress_log_t;

static void on_progress(void *ud, int pct, const char *msg)
{
    progress_log_t *log = ud;
    if (log->n < 16) {
        log->pct[log->n] = pct;
        snprintf(log->msg[log->n], sizeof log->msg[0], "%s", msg);
    }
    log->n++;
}

static void test_progress(void **state)
{
    char *argv[] = { "sh", "-c",
                     "echo \"10 starting\" >&$FARM_PROGRESS_FD; echo \"50\" >&3; "
                     "echo \"garbage\" >&3; echo \"100 done\" >&3",
                     NULL };
    progress_log_t log;
    memset(&log, 0, sizeof log);
    worker_exec_opts_t o = base_opts(argv);
    o.on_progress = on_progress;
    o.ud = &log;
    worker_exec_result_t r;
    assert_int_equal(worker_exec_run(&o, &r), 0);
    assert_int_equal(r.exit_code, 0);
    assert_int_equal(log.n, 3);
    assert_int_equal(log.pct[0], 10);
    assert_string_equal(log.msg[0], "starting");
    assert_int_equal(log.pct[1], 50);
    assert_string_equal(log.msg[1], "");
    assert_int_equal(log.pct[2], 100);
    assert_string_equal(log.msg[2], "done");
    worker_exec_result_free(&r);
}

static void test_progress_edge_cases(void **state)
{
    char *argv[] = { "sh", "-c",
                     "head -c 600 /dev/zero | tr '\\000' x >&3; echo >&3; "
                     "echo '70   after  ' >&3; echo '  -5' >&3; echo '250 over' >&3; "
                     "echo '12abc' >&3; echo '' >&3; printf '33 no newline' >&3",
                     NULL };
    progress_log_t log;
    memset(&log, 0, sizeof log);
    worker_exec_opts_t o = base_opts(argv);
    o.on_progress = on_progress;
    o.ud = &log;
    worker_exec_result_t r;
    assert_int_equal(worker_exec_run(&o, &r), 0);
    assert_int_equal(r.exit_code, 0);
    assert_int_equal(log.n, 3);
    assert_int_equal(log.pct[0], 70);
    assert_string_equal(log.msg[0], "after");
    assert_int_equal(log.pct[1], 0);
    assert_string_equal(log.msg[1], "");
    assert_int_equal(log.pct[2], 100);
    assert_string_equal(log.msg[2], "over");
    worker_exec_result_free(&r);
}

static void test_env_extra(void **state)
{
    char *argv[] = { "sh", "-c", "echo \"$FOO:$BAR:$FARM_PROGRESS_FD\"", NULL };
    char *env[] = { "FOO=one", "BAR=x", "FOO=two", "FARM_PROGRESS_FD=9", NULL };
    worker_exec_opts_t o = base_opts(argv);
    o.env_extra = env;
    worker_exec_result_t r;
    assert_int_equal(worker_exec_run(&o, &r), 0);
    assert_string_equal(r.out, "two:x:3\n");
    worker_exec_result_free(&r);
}

static void test_env_override_parent(void **state)
{
    assert_int_equal(setenv("FARM_TEST_VAR", "parent", 1), 0);
    char *argv[] = { "sh", "-c", "echo \"$FARM_TEST_VAR\"", NULL };
    worker_exec_opts_t o = base_opts(argv);
    worker_exec_result_t r;
    assert_int_equal(worker_exec_run(&o, &r), 0);
    assert_string_equal(r.out, "parent\n");
    worker_exec_result_free(&r);

    char *env[] = { "FARM_TEST_VAR=child", NULL };
    o.env_extra = env;
    assert_int_equal(worker_exec_run(&o, &r), 0);
    assert_string_equal(r.out, "child\n");
    worker_exec_result_free(&r);
    assert_int_equal(unsetenv("FARM_TEST_VAR"), 0);
}

static void test_cwd(void **state)
{
    char *argv[] = { "pwd", NULL };
    worker_exec_opts_t o = base_opts(argv);
    o.cwd = "/tmp";
    worker_exec_result_t r;
    assert_int_equal(worker_exec_run(&o, &r), 0);
    assert_int_equal(r.exit_code, 0);
    assert_string_equal(r.out, "/tmp\n");
    worker_exec_result_free(&r);
}

static void test_bad_cwd(void **state)
{
    char *argv[] = { "pwd", NULL };
    worker_exec_opts_t o = base_opts(argv);
    o.cwd = "/nonexistent-farm-dir";
    worker_exec_result_t r;
    assert_true(worker_exec_run(&o, &r) < 0);
    assert_int_equal(r.exit_code, -1);
    assert_non_null(strstr(r.error, "/nonexistent-farm-dir"));
    worker_exec_result_free(&r);
}

static void test_spawn_failure(void **state)
{
    char *argv[] = { "nosuchprog-farm-test", NULL };
    worker_exec_opts_t o = base_opts(argv);
    worker_exec_result_t r;
    int rc = worker_exec_run(&o, &r);
    assert_int_equal(rc, -ENOENT);
    assert_int_equal(r.exit_code, -1);
    assert_null(r.out);
    assert_null(r.err);
    assert_non_null(strstr(r.error, "spawn 'nosuchprog-farm-test'"));
    assert_non_null(strstr(r.error, "No such file or directory"));
    worker_exec_result_free(&r);
}

static void test_invalid_args(void **state)
{
    worker_exec_result_t r;
    worker_exec_opts_t o = base_opts(NULL);
    assert_int_equal(worker_exec_run(&o, &r), -EINVAL);
    assert_true(r.error[0] != '\0');
    char *empty[] = { "", NULL };
    o.argv = empty;
    assert_int_equal(worker_exec_run(&o, &r), -EINVAL);
    char *argv[] = { "true", NULL };
    o.argv = argv;
    o.timeout_ms = -1;
    assert_int_equal(worker_exec_run(&o, &r), -EINVAL);
    assert_int_equal(worker_exec_run(NULL, &r), -EINVAL);
    assert_int_equal(worker_exec_run(&o, NULL), -EINVAL);

    worker_exec_result_t z;
    memset(&z, 0, sizeof z);
    worker_exec_result_free(&z);
    worker_exec_result_free(&z);
    worker_exec_result_free(NULL);
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static void test_fds_not_leaked(void **state)
{
    /* The child sees exactly 0..3; the parent ends up with what it had. */
    int before = count_fds();
    assert_true(before > 0);
    char *argv[] = { "sh", "-c", "ls /proc/$$/fd", NULL };
    worker_exec_opts_t o = base_opts(argv);
    worker_exec_result_t r;
    assert_int_equal(worker_exec_run(&o, &r), 0);
    assert_string_equal(r.out, "0\n1\n2\n3\n");
    worker_exec_result_free(&r);
    char *missing[] = { "nosuchprog-farm-test", NULL };
    o.argv = missing;
    assert_true(worker_exec_run(&o, &r) < 0);
    worker_exec_result_free(&r);
    assert_int_equal(count_fds(), before);
}

/* ------------------------------------------------------------------------ */

#define NTHREADS 8
#define THREAD_BYTES (256 * 1024)

typedef struct {
    int idx;
    unsigned char *in;
    char tag[32];
    int rc;
    worker_exec_result_t r;
} job_t;

static void *job_thread(void *arg)
{
    job_t *j = arg;
    char *argv[] = { "sh", "-c", "echo \"$TAG\" >&2; echo 50 >&3; cat", NULL };
    char envtag[48];
    snprintf(envtag, sizeof envtag, "TAG=%s", j->tag);
    char *env[] = { envtag, NULL };
    worker_exec_opts_t o = base_opts(argv);
    o.env_extra = env;
    o.stdin_data = j->in;
    o.stdin_len = THREAD_BYTES;
    j->rc = worker_exec_run(&o, &j->r);
    return NULL;
}

static void test_concurrent(void **state)
{
    job_t jobs[NTHREADS];
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].idx = i;
        jobs[i].in = malloc(THREAD_BYTES);
        assert_non_null(jobs[i].in);
        fill_pattern(jobs[i].in, THREAD_BYTES, (uint32_t)(100 + i));
        snprintf(jobs[i].tag, sizeof jobs[i].tag, "job-%d", i);
    }
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, job_thread, &jobs[i]), 0);
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < NTHREADS; i++) {
        char expect[48];
        snprintf(expect, sizeof expect, "%s\n", jobs[i].tag);
        assert_int_equal(jobs[i].rc, 0);
        assert_int_equal(jobs[i].r.exit_code, 0);
        assert_int_equal(jobs[i].r.out_len, THREAD_BYTES);
        assert_memory_equal(jobs[i].r.out, jobs[i].in, THREAD_BYTES);
        assert_string_equal(jobs[i].r.err, expect);
        worker_exec_result_free(&jobs[i].r);
        free(jobs[i].in);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo),
        cmocka_unit_test(test_exit_code),
        cmocka_unit_test(test_killed_by_signal),
        cmocka_unit_test(test_stderr),
        cmocka_unit_test(test_stdin_roundtrip),
        cmocka_unit_test(test_stdin_epipe),
        cmocka_unit_test(test_no_stdin_gets_eof),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_term_ignored_gets_kill),
        cmocka_unit_test(test_process_group_killed),
        cmocka_unit_test(test_leader_exits_background_holds_pipe),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_progress),
        cmocka_unit_test(test_progress_edge_cases),
        cmocka_unit_test(test_env_extra),
        cmocka_unit_test(test_env_override_parent),
        cmocka_unit_test(test_cwd),
        cmocka_unit_test(test_bad_cwd),
        cmocka_unit_test(test_spawn_failure),
        cmocka_unit_test(test_invalid_args),
        cmocka_unit_test(test_fds_not_leaked),
        cmocka_unit_test(test_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
