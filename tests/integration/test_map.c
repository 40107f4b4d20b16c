/* Integration: `farm map` against a real farm.
 *
 * Each check runs the built `farm` binary through /bin/sh (or, for Ctrl-C,
 * as a child of the test that receives SIGINT), with --server and --feed
 * pointing at the test's farm of two workers with two slots each, and
 * asserts on its exit status, its stdout and stderr, the joblog it wrote,
 * and, through the front door, on the jobs and tasks it made: replacement
 * strings, output order, GNU parallel's exit statuses, the joblog format,
 * --resume after a partial run and after Ctrl-C, --halt, batches, retries,
 * the per-task timeout and priority.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

/* What one run of `farm map` did. */
typedef struct {
    int rc;
    char out[65536];
    char err[16384];
} s_run_t;

static s_run_t s_r;

/* Run `farm --server FRONT --feed FEED ARGS` with stdin from `input` (NULL:
 * /dev/null); stdout into s_r.out, stderr into s_r.err. Returns the status. */
static int s_farm(h_t *h, const char *input, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int s_farm(h_t *h, const char *input, const char *fmt, ...) {
    char args[4096], errpath[300], inpath[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(errpath, sizeof errpath, "%s/cli.stderr", h->dir);
    snprintf(inpath, sizeof inpath, "%s/cli.stdin", h->dir);
    FILE *f = fopen(inpath, "w");
    assert_non_null(f);
    if (input)
        fputs(input, f);
    assert_int_equal(fclose(f), 0);
    s_r.rc = h_sh(s_r.out, sizeof s_r.out, "'%s' --server '%s' --feed '%s' %s <'%s' 2>'%s'", h_bin("farm"),
                  h->ep.front, h->ep.feed, args, inpath, errpath);
    s_r.err[0] = '\0';
    f = fopen(errpath, "r");
    if (f) {
        size_t n = fread(s_r.err, 1, sizeof s_r.err - 1, f);
        s_r.err[n] = '\0';
        fclose(f);
    }
    return s_r.rc;
}

static void s_expect(int rc, const char *what) {
    if (s_r.rc != rc)
        fail_msg("%s: exit %d, expected %d\nstdout: %s\nstderr: %s", what, s_r.rc, rc, s_r.out, s_r.err);
}

static void s_out_is(const char *want, const char *what) {
    if (strcmp(s_r.out, want) != 0)
        fail_msg("%s: stdout\n%s\nexpected\n%s\nstderr: %s", what, s_r.out, want, s_r.err);
}

static void s_has(const char *hay, const char *needle, const char *what) {
    if (!strstr(hay, needle))
        fail_msg("%s: '%s' not in:\n%s", what, needle, hay);
}

/* The lines of s_r.out sorted, joined with '\n' (for checks that ignore order). */
static int s_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
static const char *s_sorted(void) {
    static char buf[65536];
    char copy[65536], *lines[4096];
    snprintf(copy, sizeof copy, "%s", s_r.out);
    size_t n = 0;
    for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l && n < 4096; l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    qsort(lines, n, sizeof *lines, s_cmp);
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s\n", lines[i]);
    return buf;
}

/* The job of the given name (the newest one), 0 when none. */
static int64_t s_job_named(h_t *h, const char *name, int *count) {
    const msgpack_object *r = h_ok(h, "{\"op\":\"jobs\",\"limit\":1000}");
    const msgpack_object *js = h_get(r, "jobs");
    int64_t job = 0;
    int n = 0;
    for (uint32_t i = 0; js && i < js->via.array.size; i++) {
        const msgpack_object *v = &js->via.array.ptr[i];
        if (!h_nil(v, "name") && strcmp(h_str(v, "name"), name) == 0) {
            job = h_int(v, "id");
            n++;
        }
    }
    if (count)
        *count = n;
    return job;
}

static int setup(void **state) {
    h_t *h = h_new();
    h_start_vent(h, "--backoff-base-ms", "50", NULL);
    h_start_sink(h, NULL);
    h_start_worker(h, "w1", 2, "--allow-exec", NULL);
    h_start_worker(h, "w2", 2, "--allow-exec", NULL);
    h_wait_up(h, 2);
    *state = h;
    return 0;
}

static int teardown(void **state) {
    h_t *h = *state;
    h_free(&h);
    return 0;
}

/* {} {.} {/} {//} {/.} {#} as GNU parallel has them, inside arguments too;
 * no replacement string appends the input; inputs stay one argument each
 * and no shell sees them. */
static void test_substitution(void **state) {
    h_t *h = *state;
    s_farm(h, NULL,
           "map --keep-order -- printf '<%%s> <%%s> <%%s> <%%s> <%%s> <%%s>\\n' {} {.} {/} {//} {/.} {#} "
           "::: x/y.tar.gz .bashrc a.b/c dir/ / ''");
    s_expect(0, "substitution");
    s_out_is("<x/y.tar.gz> <x/y.tar> <y.tar.gz> <x> <y.tar> <1>\n"
             "<.bashrc> <> <.bashrc> <.> <> <2>\n"
             "<a.b/c> <a.b/c> <c> <a.b> <c> <3>\n"
             "<dir/> <dir/> <> <.> <> <4>\n"
             "</> </> <> </> <> <5>\n"
             "<> <> <> <.> <> <6>\n",
           "the replacement strings");
    /* From stdin, one input per line; none in the command: appended. */
    s_farm(h, "a b\nit's $HOME\n\nlast", "map --keep-order -- printf '[%%s]\\n'");
    s_expect(0, "appended input");
    s_out_is("[a b]\n[it's $HOME]\n[]\n[last]\n", "inputs from stdin, appended");
    /* Inside an argument, and a shell only when the command is one. */
    s_farm(h, "dir/img.tif\n", "map -- sh -c 'echo \"$1\" $0' out-{#}-{/.}.png {.}.png");
    s_expect(0, "embedded");
    s_out_is("dir/img.png out-1-img.png\n", "replacement inside arguments");
    /* Nothing to do is success, as parallel. */
    s_farm(h, "", "map -- echo");
    s_expect(0, "no inputs");
    s_out_is("", "no inputs, no output");
}

/* Output as tasks complete, or in input order with --keep-order; stderr
 * to stderr. */
static void test_order(void **state) {
    h_t *h = *state;
    const char *cmd = "sh -c 'sleep $1; echo $1; echo e$1 >&2' sh {} ::: 0.9 0.45 0";
    s_farm(h, NULL, "map -- %s", cmd);
    s_expect(0, "completion order");
    s_out_is("0\n0.45\n0.9\n", "output as tasks complete");
    s_has(s_r.err, "e0.9", "a task's stderr goes to stderr");
    assert_null(strstr(s_r.out, "e0"));
    s_farm(h, NULL, "map --keep-order -- %s", cmd);
    s_expect(0, "keep order");
    s_out_is("0.9\n0.45\n0\n", "output in input order");
}

/* GNU parallel's exit statuses: the number of failed tasks, 101 for more
 * than 100; 255 for other errors. */
static void test_exit_status(void **state) {
    h_t *h = *state;
    s_farm(h, NULL, "map -- sh -c 'echo $1; exit $1' sh ::: 0 3 0 1 0");
    s_expect(2, "two failures");
    assert_string_equal(s_sorted(), "0\n0\n0\n1\n3\n");
    char in[1024] = "";
    for (int i = 1; i <= 102; i++)
        snprintf(in + strlen(in), sizeof in - strlen(in), "%d\n", i);
    /* Polling only (no feed): the fallback reaches the same end. */
    s_farm(h, in, "--feed none map -- false");
    s_expect(101, "more than 100 failures");
    s_farm(h, NULL, "map --retries 200 -- true ::: a");
    s_expect(255, "usage error");
    s_farm(h, NULL, "map -- ");
    s_expect(255, "no command");
    s_farm(h, NULL, "map echo x");
    s_expect(255, "command without --");
    s_farm(h, NULL, "--server tcp://127.0.0.1:1 --timeout 300 --retries 0 map -- true ::: a");
    s_expect(255, "no farm");
    s_farm(h, NULL, "map --help");
    s_expect(0, "help");
    s_has(s_r.out, "exit status (as GNU parallel)", "help names the exit statuses");
}

/* The joblog: parallel's header and nine tab-separated columns. */
static void test_joblog(void **state) {
    h_t *h = *state;
    char path[300];
    snprintf(path, sizeof path, "%s/joblog", h->dir);
    time_t before = time(NULL);
    s_farm(h, NULL, "map --joblog '%s' -- sh -c 'echo hi; exit $1' sh ::: 0 3 'a b'", path);
    s_expect(2, "joblog run"); /* 3 and "a b" (exit: bad number) fail */
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[1024];
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n");
    regex_t re;
    assert_int_equal(regcomp(&re,
                             "^([0-9]+)\t(w1|w2)\t([0-9]+)\\.[0-9]{3}\t( {5}[0-9]\\.[0-9]{3})\t0\t([0-9]+)\t(-?[0-9]+)"
                             "\t0\t(.*)\n$",
                             REG_EXTENDED),
                     0);
    bool seen[4] = {false};
    int lines = 0;
    while (fgets(line, sizeof line, f)) {
        regmatch_t m[8];
        if (regexec(&re, line, 8, m, 0) != 0)
            fail_msg("joblog line does not match parallel's format: %s", line);
        int seq = atoi(line + m[1].rm_so);
        long start = atol(line + m[3].rm_so);
        int recv = atoi(line + m[5].rm_so), code = atoi(line + m[6].rm_so);
        const char *cmd = line + m[7].rm_so;
        assert_true(seq >= 1 && seq <= 3);
        assert_false(seen[seq]);
        seen[seq] = true;
        assert_true(start >= before - 5 && start <= time(NULL) + 5);
        assert_int_equal(recv, 3); /* "hi\n" */
        if (seq == 1) {
            assert_int_equal(code, 0);
            assert_string_equal(cmd, "sh -c 'echo hi; exit $1' sh 0\n");
        } else if (seq == 2) {
            assert_int_equal(code, 3);
            assert_string_equal(cmd, "sh -c 'echo hi; exit $1' sh 3\n");
        } else {
            assert_int_not_equal(code, 0);
            assert_string_equal(cmd, "sh -c 'echo hi; exit $1' sh 'a b'\n");
        }
        lines++;
    }
    regfree(&re);
    fclose(f);
    assert_int_equal(lines, 3);
    /* "+FILE" appends, without a second header. */
    char plus[310];
    snprintf(plus, sizeof plus, "+%s", path);
    s_farm(h, NULL, "map --joblog '%s' -- true ::: x", plus);
    s_expect(0, "appending joblog");
    char out[4096];
    assert_int_equal(h_sh(out, sizeof out, "grep -c . '%s'; grep -c '^Seq' '%s'", path, path), 0);
    assert_string_equal(out, "5\n1\n");
}

/* --resume: a partial run, then only what did not complete runs again. */
static void test_resume(void **state) {
    h_t *h = *state;
    char mark[300], cmd[600];
    snprintf(mark, sizeof mark, "%s/mark", h->dir);
    snprintf(cmd, sizeof cmd,
             "map --keep-order --resume --name resume-test -- sh -c "
             "'[ $1 -le 3 ] || [ -e %s ] || exit 1; echo ran $1' sh {} ::: 1 2 3 4 5 6",
             mark);
    s_farm(h, NULL, "%s", cmd);
    s_expect(3, "first run: three fail");
    s_out_is("ran 1\nran 2\nran 3\n", "first run");
    s_has(s_r.err, "no earlier run", "first --resume starts a run");
    int njobs;
    int64_t job = s_job_named(h, "resume-test", &njobs);
    assert_int_equal(njobs, 1);
    char out[64];
    assert_int_equal(h_sh(out, sizeof out, "touch '%s'", mark), 0);
    s_farm(h, NULL, "%s", cmd);
    s_expect(0, "resumed run");
    s_out_is("ran 4\nran 5\nran 6\n", "only what had failed runs again");
    s_has(s_r.err, "resuming job", "the note says which job");
    /* The same job, now complete: no new job was made. */
    assert_int_equal(s_job_named(h, "resume-test", &njobs), job);
    assert_int_equal(njobs, 1);
    const msgpack_object *r = h_ok(h, "{\"op\":\"status\",\"job\":%lld}", (long long)job);
    assert_string_equal(h_str(r, "job.state"), "completed");
    assert_int_equal(h_int(r, "job.total"), 6);
    /* Nothing left: --resume does nothing, as parallel with a full joblog. */
    s_farm(h, NULL, "%s", cmd);
    s_expect(0, "resume of a complete run");
    s_out_is("", "nothing runs again");
    /* A run without --resume is a new run of everything... */
    char plain[700];
    snprintf(plain, sizeof plain, "map --keep-order --name resume-test -- sh -c "
                                  "'[ $1 -le 3 ] || [ -e %s ] || exit 1; echo ran $1' sh {} ::: 1 2 3 4 5 6",
             mark);
    s_farm(h, NULL, "%s", plain);
    s_expect(0, "plain rerun");
    s_out_is("ran 1\nran 2\nran 3\nran 4\nran 5\nran 6\n", "a plain run runs everything");
    int64_t job2 = s_job_named(h, "resume-test", &njobs);
    assert_int_equal(njobs, 2);
    assert_true(job2 > job);
    /* ...and --resume now finds that latest run, complete: nothing to do; no probe job is left. */
    s_farm(h, NULL, "%s", cmd);
    s_expect(0, "resume after the plain rerun");
    s_out_is("", "the latest run is complete");
    s_has(s_r.err, "run 2", "the latest run is run 2");
    assert_int_equal(s_job_named(h, "farm map probe", &njobs), 0);
    assert_int_equal(s_job_named(h, "resume-test", &njobs), job2);
    assert_int_equal(njobs, 2);
}

/* Ctrl-C cancels the run's job through the front door and exits 130;
 * --resume then runs what was cancelled. */
static void test_ctrl_c(void **state) {
    h_t *h = *state;
    char mark[300], script[600];
    snprintf(mark, sizeof mark, "%s/go", h->dir);
    snprintf(script, sizeof script, "if [ -e %s ]; then echo done $1; else sleep 60; fi", mark);
    const char *argv[] = {h_bin("farm"), "--server", h->ep.front, "--feed", h->ep.feed, "map", "--name", "ctrlc",
                          "--", "sh", "-c", script, "sh", "{}", ":::", "1", "2", "3", "4", "5", "6", NULL};
    char bin[512];
    snprintf(bin, sizeof bin, "%s", argv[0]);
    argv[0] = bin;
    int slot = h_start_cmd(h, "map", argv);
    /* Wait until its tasks run. */
    int64_t end = h_now() + 15000, job = 0;
    for (;;) {
        assert_true(h_now() < end);
        job = s_job_named(h, "ctrlc", NULL);
        if (job && h_int(h_ok(h, "{\"op\":\"status\",\"job\":%lld}", (long long)job), "job.counts.running") >= 4)
            break;
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    int64_t t0 = h_now();
    int st = h_stop(h, slot, SIGINT, 15000);
    assert_int_equal(st, 130);
    assert_true(h_now() - t0 < 5000);
    char log[4096];
    assert_int_equal(h_sh(log, sizeof log, "cat '%s'", h->procs[slot].log), 0);
    s_has(log, "interrupted: cancelled 6 unfinished tasks", "the note on stderr");
    assert_string_equal(h_wait_job(h, job, 15000), "cancelled");
    const msgpack_object *r = h_ok(h, "{\"op\":\"status\",\"job\":%lld}", (long long)job);
    assert_int_equal(h_int(r, "job.counts.cancelled"), 6);
    /* The same command with --resume runs the cancelled tasks. */
    assert_int_equal(h_sh(log, sizeof log, "touch '%s'", mark), 0);
    s_farm(h, NULL, "map --keep-order --resume --name ctrlc -- sh -c '%s' sh {} ::: 1 2 3 4 5 6", script);
    s_expect(0, "resume after Ctrl-C");
    s_out_is("done 1\ndone 2\ndone 3\ndone 4\ndone 5\ndone 6\n", "the cancelled tasks ran");
    s_has(s_r.err, "0 of 6 completed earlier, 6 to run again", "resume note");
    int n;
    assert_int_equal(s_job_named(h, "ctrlc", &n), job);
    assert_int_equal(n, 1);
}

/* --halt now,fail=N: cancel the rest at the N-th failure and exit. */
static void test_halt(void **state) {
    h_t *h = *state;
    int64_t t0 = h_now();
    s_farm(h, NULL,
           "map --name halt1 --halt now,fail=1 -- sh -c 'if [ $1 = 1 ]; then echo bad; exit 7; fi; sleep 60' sh {} "
           "::: 1 2 3 4 5 6");
    s_expect(7, "fail=1 exits with the failing task's status");
    assert_true(h_now() - t0 < 10000);
    s_out_is("bad\n", "the failing task's output");
    s_has(s_r.err, "halting after 1 failed task", "halt note");
    int64_t job = s_job_named(h, "halt1", NULL);
    assert_string_equal(h_wait_job(h, job, 15000), "failed");
    const msgpack_object *r = h_ok(h, "{\"op\":\"status\",\"job\":%lld}", (long long)job);
    assert_int_equal(h_int(r, "job.counts.failed"), 1);
    assert_int_equal(h_int(r, "job.counts.cancelled"), 5);
    /* fail=2: the number of failures. */
    s_farm(h, NULL,
           "map --name halt2 --halt now,fail=2 -- sh -c 'if [ $1 -le 2 ]; then exit 9; fi; sleep 60' sh {} "
           "::: 1 2 3 4 5 6");
    s_expect(2, "fail=2 exits with the count");
    assert_string_equal(h_wait_job(h, s_job_named(h, "halt2", NULL), 15000), "failed");
    s_farm(h, NULL, "map --halt soon,fail=1 -- true ::: a");
    s_expect(255, "unsupported --halt");
}

/* Batches: one job each, the same name, output in order across them. */
static void test_batches(void **state) {
    h_t *h = *state;
    s_farm(h, "a\nb\nc\nd\ne\n", "map --keep-order --batch 2 --name batches -- echo");
    s_expect(0, "batches");
    s_out_is("a\nb\nc\nd\ne\n", "order across batches");
    int n;
    s_job_named(h, "batches", &n);
    assert_int_equal(n, 3);
}

/* --retries N is max_attempts N+1; --timeout per attempt; --priority. */
static void test_task_options(void **state) {
    h_t *h = *state;
    int64_t t0 = h_now();
    s_farm(h, NULL, "map --name opts --retries 1 --priority 7 --timeout 300ms -- sleep 30 ::: 1");
    s_expect(1, "a task that times out twice");
    assert_true(h_now() - t0 < 15000);
    s_has(s_r.err, "input 1 (1): failed", "the failure is named");
    int64_t job = s_job_named(h, "opts", NULL);
    const msgpack_object *r = h_ok(h, "{\"op\":\"list\",\"job\":%lld}", (long long)job);
    assert_int_equal(h_int(r, "tasks.0.attempts"), 2);
    assert_int_equal(h_int(r, "tasks.0.max_attempts"), 2);
    assert_int_equal(h_int(r, "tasks.0.priority"), 7);
    /* Without --retries a task runs once, as with parallel. */
    s_farm(h, NULL, "map --name once -- false ::: 1");
    s_expect(1, "one failure");
    r = h_ok(h, "{\"op\":\"list\",\"job\":%lld}", (long long)s_job_named(h, "once", NULL));
    assert_int_equal(h_int(r, "tasks.0.max_attempts"), 1);
    s_farm(h, NULL, "map --timeout soon -- true ::: 1");
    s_expect(255, "bad --timeout");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_substitution, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_joblog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ctrl_c, setup, teardown),
        cmocka_unit_test_setup_teardown(test_halt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_options, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
