/* Integration: farm-tui as a person uses it, in tmux at a fixed size.
 *
 * Each test starts a real farm (ventilator, sink, two workers), runs
 * farm-tui in a detached tmux session on a socket of its own, and reads
 * the screen with capture-pane, polling with deadlines: it never sleeps
 * to synchronise. Keys go in with send-keys. What a test claims through
 * the screen it checks through the front door where it can (a cancel
 * typed in the TUI must show as cancelled tasks in the farm). The tmux
 * server is killed at the end of every test; without tmux the tests skip.
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
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "harness.h"

#define T_COLS 100
#define T_LINES 30

typedef struct {
    h_t *h;
    char sock[64];        /* tmux -L name */
    char screen[65536];   /* the last capture */
    bool tmux;            /* the session was started */
} t_t;

static bool s_have_tmux(void) {
    char out[256];
    return h_sh(out, sizeof out, "command -v tmux >/dev/null 2>&1") == 0;
}

/* Run a tmux command on the test's server; returns its exit status. */
static int s_tmux(t_t *t, char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int s_tmux(t_t *t, char *out, size_t n, const char *fmt, ...) {
    char cmd[2048], buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return h_sh(out ? out : buf, out ? n : sizeof buf, "tmux -L %s %s 2>&1", t->sock, cmd);
}

static const char *s_capture(t_t *t) {
    if (s_tmux(t, t->screen, sizeof t->screen, "capture-pane -p -t tui") != 0)
        t->screen[0] = '\0';
    return t->screen;
}

static void s_pause(void) {
    struct timespec ts = {0, 50 * 1000000}; /* poll interval, not synchronisation */
    nanosleep(&ts, NULL);
}

/* Poll the screen until it contains text. */
static bool s_wait_text(t_t *t, const char *text, int deadline_ms) {
    int64_t end = h_now() + deadline_ms;
    do {
        if (strstr(s_capture(t), text))
            return true;
        s_pause();
    } while (h_now() < end);
    return false;
}

static void s_expect(t_t *t, const char *text, int deadline_ms) {
    if (!s_wait_text(t, text, deadline_ms))
        fail_msg("the screen never showed \"%s\"; it shows:\n%s", text, t->screen);
}

/* The line of the last capture that contains text (static copy), or NULL. */
static const char *s_line(t_t *t, const char *text) {
    static char line[1024];
    const char *p = strstr(t->screen, text);
    if (!p)
        return NULL;
    const char *b = p, *e = p;
    while (b > t->screen && b[-1] != '\n')
        b--;
    while (*e && *e != '\n')
        e++;
    snprintf(line, sizeof line, "%.*s", (int)(e - b), b);
    return line;
}

/* Poll the screen until the line that contains key also contains want: a
 * row that appears, or changes, a moment after something else did (the
 * jobs panel follows job events, which the sink sends every 100 ms). */
static void s_expect_line(t_t *t, const char *key, const char *want, int deadline_ms) {
    int64_t end = h_now() + deadline_ms;
    for (;;) {
        s_capture(t);
        const char *l = s_line(t, key);
        if (l && strstr(l, want))
            return;
        if (h_now() > end)
            fail_msg("no line with \"%s\" showed \"%s\"; the screen shows:\n%s", key, want, t->screen);
        s_pause();
    }
}

static void s_keys(t_t *t, const char *keys) { assert_int_equal(s_tmux(t, NULL, 0, "send-keys -t tui %s", keys), 0); }

/* "#{format}" of the pane into out. */
static const char *s_pane(t_t *t, const char *format) {
    static char out[256];
    if (s_tmux(t, out, sizeof out, "display-message -p -t tui '%s'", format) != 0)
        return "";
    out[strcspn(out, "\n")] = '\0';
    return out;
}

/* Wait until farm-tui has exited and return its exit status, which the
 * pane's shell writes to tui.status (tmux's own #{pane_dead_status} is
 * not reliable: the pane can turn dead on end of file without a status). */
static int s_wait_exit(t_t *t, int deadline_ms) {
    int64_t end = h_now() + deadline_ms;
    char path[400];
    snprintf(path, sizeof path, "%s/tui.status", t->h->dir);
    for (;;) {
        FILE *f = fopen(path, "r");
        int st = -1;
        if (f) {
            if (fscanf(f, "%d", &st) != 1)
                st = -1;
            fclose(f);
        }
        if (st >= 0)
            return st;
        if (h_now() > end)
            fail_msg("farm-tui did not exit; the screen shows:\n%s", s_capture(t));
        s_pause();
    }
}

static int setup(void **state) {
    if (!s_have_tmux()) {
        *state = NULL;
        return 0;
    }
    t_t *t = calloc(1, sizeof *t);
    assert_non_null(t);
    static int n;
    snprintf(t->sock, sizeof t->sock, "farm-tui-test-%d-%d", (int)getpid(), n++);
    t->h = h_new();
    h_start_farm(t->h, 2, 2);
    h_t *h = t->h;
    char out[1024];
    int rc = h_sh(out, sizeof out,
                  "TERM=xterm-256color tmux -L %s -f /dev/null new-session -d -s tui -x %d -y %d "
                  "'%s --front %s --feed %s --dispatch %s --results %s --refresh-ms 100 2>>%s/tui.err; "
                  "echo $? >%s/tui.status' "
                  "\\; set-option -g remain-on-exit on 2>&1",
                  t->sock, T_COLS, T_LINES, h_bin("farm-tui"), h->ep.front, h->ep.feed, h->ep.dispatch, h->ep.results,
                  h->dir, h->dir);
    if (rc != 0)
        fail_msg("tmux new-session failed (%d): %s", rc, out);
    t->tmux = true;
    *state = t;
    return 0;
}

static int teardown(void **state) {
    t_t *t = *state;
    if (!t)
        return 0;
    if (t->tmux) {
        char out[512];
        s_tmux(t, out, sizeof out, "kill-server");
    }
    char err[4096];
    if (h_sh(err, sizeof err, "cat %s/tui.err 2>/dev/null", t->h->dir) == 0 && err[0])
        fprintf(stderr, "---- farm-tui stderr ----\n%s\n", err);
    h_free(&t->h);
    free(t);
    return 0;
}

#define T_START(state)                                                                                                 \
    t_t *t = *(state);                                                                                                 \
    if (!t)                                                                                                            \
        skip();                                                                                                        \
    h_t *h = t->h

/* Does the farm's feed itself publish stats? For the diagnosis of a
 * failure: tells a fault of the TUI from one of the farm. */
static const char *s_feed_probe(h_t *h) {
    void *ctx = zmq_ctx_new();
    void *sub = zmq_socket(ctx, ZMQ_SUB);
    int linger = 0, tmo = 500;
    zmq_setsockopt(sub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sub, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "stats", 5);
    zmq_connect(sub, h->ep.feed);
    const char *verdict = "the farm's feed published no stats within 3 s either";
    int64_t end = h_now() + 3000;
    char buf[64];
    while (h_now() < end)
        if (zmq_recv(sub, buf, sizeof buf, 0) >= 0) {
            verdict = "the farm's feed does publish stats";
            break;
        }
    zmq_close(sub);
    zmq_ctx_term(ctx);
    return verdict;
}

/* The first screen: both connections up, the workers listed. */
static void s_ready(t_t *t) {
    s_expect(t, "front door ok", 15000);
    if (!s_wait_text(t, "feed ok", 15000))
        fail_msg("the screen never showed \"feed ok\" (%s); it shows:\n%s", s_feed_probe(t->h), t->screen);
    s_expect(t, "Workers 2", 15000);
    assert_non_null(s_line(t, "w1"));
    assert_non_null(s_line(t, "w2"));
    assert_non_null(strstr(s_line(t, "w1"), "alive"));
}

/* The percentage in the jobs panel's row of job name, or -1. */
static int s_job_pct(t_t *t, const char *name) {
    s_capture(t);
    const char *l = s_line(t, name);
    const char *pct = l ? strchr(l, '%') : NULL;
    if (!pct)
        return -1;
    const char *d = pct;
    while (d > l && d[-1] >= '0' && d[-1] <= '9')
        d--;
    return d == pct ? -1 : atoi(d);
}

static void test_live_screen_and_actions(void **state) {
    T_START(state);
    s_ready(t);

    /* A job whose progress moves: 8 sleeps of 2 s on 4 slots. */
    char tasks[2048] = "";
    for (int i = 0; i < 8; i++)
        strcat(tasks, i ? ",{\"type\":\"sleep\",\"args\":{\"ms\":2000}}" : "{\"type\":\"sleep\",\"args\":{\"ms\":2000}}");
    int64_t slow = h_int(h_ok(h, "{\"op\":\"submit\",\"name\":\"progress-job\",\"tasks\":[%s]}", tasks), "job");
    s_expect(t, "progress-job", 10000);
    int seen[101] = {0}, distinct = 0, mid = 0;
    int64_t end = h_now() + 30000;
    for (;;) {
        int p = s_job_pct(t, "progress-job");
        if (p >= 0 && p <= 100 && !seen[p]) {
            seen[p] = 1;
            distinct++;
            mid += p > 0 && p < 100;
        }
        if (p == 100 || h_now() > end)
            break;
        s_pause();
    }
    if (!(seen[100] && distinct >= 3 && mid >= 1))
        fail_msg("progress did not move to 100%% through values between (%d distinct, %d between); screen:\n%s",
                 distinct, mid, t->screen);
    assert_string_equal(h_wait_job(h, slow, 10000), "completed");

    /* A failing task: its reason shows in the failures panel. */
    const msgpack_object *r = h_ok(h, "{\"op\":\"submit\",\"name\":\"failing-job\",\"max_attempts\":1,\"tasks\":[{\"type\":"
                                      "\"exec\",\"args\":{\"argv\":[\"sh\",\"-c\",\"echo boom-on-stderr >&2; exit 7\"]}}]}");
    int64_t fjob = h_int(r, "job"), ftask = h_int(r, "tasks.0");
    assert_string_equal(h_wait_job(h, fjob, 10000), "failed");
    s_expect(t, "exit code 7", 10000);
    char id[32];
    snprintf(id, sizeof id, "%lld", (long long)ftask);
    const char *fl = s_line(t, "exit code 7");
    assert_non_null(strstr(fl, id));
    assert_non_null(strstr(fl, "failed"));
    s_expect_line(t, "failing-job", "failed", 10000);

    /* Open it from the failures panel: history and the stderr tail. */
    s_keys(t, "Tab Tab Enter");
    s_expect(t, "attempt history", 5000);
    s_expect(t, "boom-on-stderr", 5000);
    assert_non_null(s_line(t, "error: exit code 7"));
    s_keys(t, "Escape");
    s_expect(t, "Latest failures", 5000);
    s_keys(t, "Tab"); /* back to the jobs panel */

    /* Open a job: its tasks, paged. */
    s_keys(t, "g Enter");
    s_expect(t, "Job ", 5000);
    s_expect(t, "TASK TYPE", 5000);
    s_keys(t, "Escape");
    s_expect(t, "Jobs 2", 5000);

    /* Cancel a running job with c, confirm with y; the front door agrees. */
    r = h_ok(h, "{\"op\":\"submit\",\"name\":\"long-job\",\"tasks\":[{\"type\":\"sleep\",\"args\":{\"ms\":60000}},"
                "{\"type\":\"sleep\",\"args\":{\"ms\":60000}},{\"type\":\"sleep\",\"args\":{\"ms\":60000}}]}");
    int64_t long_job = h_int(r, "job");
    assert_true(h_wait_task(h, h_int(r, "tasks.0"), "running", 10000));
    s_expect_line(t, "long-job", "running", 10000);
    s_keys(t, "g c");
    char ask[64];
    snprintf(ask, sizeof ask, "Cancel job %lld (long-job)?", (long long)long_job);
    s_expect(t, ask, 5000);
    s_keys(t, "y");
    s_expect(t, "tasks cancelled", 5000);
    assert_string_equal(h_wait_job(h, long_job, 10000), "cancelled");
    r = h_ok(h, "{\"op\":\"status\",\"job\":%lld}", (long long)long_job);
    assert_int_equal(h_int(r, "job.counts.cancelled"), 3);
    s_expect_line(t, "long-job", "cancelled", 10000);
}

static void test_resize_and_quit(void **state) {
    T_START(state);
    (void)h;
    s_ready(t);
    /* Below 80x24 it says so. */
    assert_int_equal(s_tmux(t, NULL, 0, "resize-window -t tui -x 70 -y 20"), 0);
    s_expect(t, "window too small: 70x20", 5000);
    /* Larger: the layout follows (the clock sits at the new right edge,
     * the status line on the new last row). */
    assert_int_equal(s_tmux(t, NULL, 0, "resize-window -t tui -x 140 -y 45"), 0);
    int64_t end = h_now() + 5000;
    for (;;) {
        s_capture(t);
        const char *l0 = s_line(t, "farm-tui");
        int lines = 0;
        for (const char *p = t->screen; *p; p++)
            lines += *p == '\n';
        if (l0 && strlen(l0) == 140 && lines >= 45 && strstr(t->screen, "Workers 2") && strstr(t->screen, "q quit"))
            break;
        if (h_now() > end)
            fail_msg("the layout did not follow a resize to 140x45:\n%s", t->screen);
        s_pause();
    }
    /* Back to the test size. */
    assert_int_equal(s_tmux(t, NULL, 0, "resize-window -t tui -x %d -y %d", T_COLS, T_LINES), 0);
    end = h_now() + 5000;
    while (!(s_capture(t), s_line(t, "farm-tui") && strlen(s_line(t, "farm-tui")) == T_COLS)) {
        if (h_now() > end)
            fail_msg("the layout did not follow a resize back:\n%s", t->screen);
        s_pause();
    }
    /* Help opens and closes. */
    s_keys(t, "?");
    s_expect(t, "Press any key to close", 5000);
    s_keys(t, "x");
    end = h_now() + 5000;
    while (strstr(s_capture(t), "Press any key to close")) {
        if (h_now() > end)
            fail_msg("help did not close");
        s_pause();
    }
    /* The filter: a name that matches nothing. */
    s_keys(t, "/ zzz-none Enter");
    s_expect(t, "filter: zzz-none", 5000);
    s_keys(t, "Escape");
    /* q quits with status 0 and leaves the alternate screen. */
    s_keys(t, "q");
    assert_int_equal(s_wait_exit(t, 5000), 0);
    assert_string_equal(s_pane(t, "#{alternate_on}"), "0");
}

static void test_reconnect_and_signal(void **state) {
    T_START(state);
    s_ready(t);
    /* The sink goes away: the feed shows it is reconnecting, then recovers. */
    assert_int_equal(h_stop(h, 1, SIGTERM, 10000), 0);
    s_expect(t, "feed reconnecting", 10000);
    h_start_sink(h, NULL);
    s_expect(t, "feed ok", 15000);
    /* The ventilator goes away: the front door has no reply, then answers again. */
    assert_int_equal(h_stop(h, 0, SIGTERM, 10000), 0);
    s_expect(t, "front door no reply", 10000);
    h_start_vent(h, NULL);
    s_expect(t, "front door ok", 15000);
    s_expect(t, "feed ok", 15000);
    /* Work submitted now still shows: the TUI was never restarted. */
    h_ok(h, "{\"op\":\"submit\",\"name\":\"after-restart\",\"tasks\":[{\"type\":\"noop\"}]}");
    s_expect(t, "after-restart", 10000);
    /* SIGTERM: it exits 128+15 with the terminal restored. farm-tui is
     * the child of the pane's shell. */
    char out[64];
    assert_int_equal(h_sh(out, sizeof out, "pgrep -P %s -x farm-tui", s_pane(t, "#{pane_pid}")), 0);
    pid_t pid = (pid_t)atoi(out);
    assert_true(pid > 0);
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(s_wait_exit(t, 5000), 143);
    assert_string_equal(s_pane(t, "#{alternate_on}"), "0");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_live_screen_and_actions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resize_and_quit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_and_signal, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
