/* client_wait: `farm wait`, until a task or job is final.
 *
 * Woken by the status feed, answered by the front door: the command
 * subscribes to the feed's "task" (and for a job "job") topics and, after
 * each event about what it waits for, asks the front door for the status;
 * when no event comes it still asks every --poll-ms (1 s by default). The
 * feed drops messages for slow subscribers by design and may be absent
 * (another port, a firewall, an ipc front door), so the feed only decides
 * *when* to ask; the state shown and the exit code always come from a
 * front-door reply. On a terminal one progress line is rewritten in place
 * (\r, padded over the previous text and cut to the terminal's width so
 * it never wraps); piped, nothing is shown but the final line, so logs stay
 * clean. The exit code is the outcome: 0 completed, 1 failed or cancelled,
 * 3 when the farm stops answering or --timeout-wait runs out.
 */
#include "client.h"
#include "farm_err.h"
#include "farm_state.h"
#include "farm_time.h"

#include <inttypes.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

typedef struct {
    bool on;      /* drawing progress (terminal, not --json) */
    size_t shown; /* characters of the line on screen now */
} s_line_t;

static void s_draw(s_line_t *l, const char *text) {
    struct winsize ws;
    size_t cols = 80;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1)
        cols = ws.ws_col;
    char cut[512];
    cli_fmt_text(cut, sizeof cut, (farm_str_t){text, (uint32_t)strlen(text)}, cols - 1);
    size_t w = 0;
    for (const char *p = cut; *p; p++)
        w += ((unsigned char)*p & 0xC0) != 0x80;
    printf("\r%s%*s", cut, l->shown > w ? (int)(l->shown - w) : 0, "");
    fflush(stdout);
    l->shown = w;
}

static void s_clear(s_line_t *l) {
    if (!l->on || !l->shown)
        return;
    printf("\r%*s\r", (int)l->shown, "");
    fflush(stdout);
    l->shown = 0;
}

/* Is feed message (topic, body) about task or job `id`? */
static bool s_relevant(const char *topic, const msgpack_object *body, int64_t id, bool is_job) {
    cli_rd_t r = {0};
    int64_t v = 0;
    if (strcmp(topic, "job") == 0)
        return is_job && cli_rd_int(&r, body, "id", true, &v) && v == id;
    if (strcmp(topic, "task") != 0)
        return false;
    const msgpack_object *ev = cli_rd_array(&r, body, "events", true);
    for (uint32_t i = 0; ev && i < ev->via.array.size; i++) {
        cli_rd_t er = {0};
        if (cli_rd_int(&er, &ev->via.array.ptr[i], is_job ? "job" : "id", true, &v) && v == id)
            return true;
    }
    return false;
}

static int s_wait(cli_t *cli, cli_feed_t *feed, int64_t id, bool is_job, int64_t poll_ms, int64_t wait_ms);

int cli_wait(cli_t *cli, int64_t id, bool is_job, int64_t poll_ms, int64_t wait_ms) {
    static const char *const job_topics[] = {"job", "task"}, *const task_topics[] = {"task"};
    /* Subscribe before the first status request, so no change after it is missed. */
    cli_feed_t *feed = cli_feed_open(cli, is_job ? job_topics : task_topics, is_job ? 2 : 1);
    int rc = s_wait(cli, feed, id, is_job, poll_ms, wait_ms);
    cli_feed_close(&feed);
    return rc;
}

static int s_wait(cli_t *cli, cli_feed_t *feed, int64_t id, bool is_job, int64_t poll_ms, int64_t wait_ms) {
    const char *noun = is_job ? "job" : "task";
    s_line_t line = {cli->tty && !cli->json, 0};
    int64_t start = farm_mono_ms();
    for (;;) {
        cli_req_t q;
        cli_req_init(&q, 3, "status");
        farm_pack_kv_int(&q.pk, noun, id);
        const msgpack_object *reply;
        farm_error_t e;
        int rc = cli_send(cli, &q, &reply, &e);
        cli_req_free(&q);
        if (rc) {
            s_clear(&line);
            return cli_report(cli, rc, &e, reply);
        }
        cli_rd_t r = {0};
        const msgpack_object *v = cli_rd_map(&r, reply, noun, true);
        farm_str_t state = {0}, msg = {0}, err = {0};
        int64_t prog = 0, att = 0, maxatt = 0, total = 0, c[FARM_STATE_COUNT] = {0};
        cli_rd_str(&r, v, "state", true, &state);
        cli_rd_int(&r, v, "progress", true, &prog);
        bool has_msg = false, has_err = false;
        if (is_job) {
            cli_rd_int(&r, v, "total", true, &total);
            const msgpack_object *counts = cli_rd_map(&r, v, "counts", true);
            for (int i = 0; i < FARM_STATE_COUNT; i++)
                cli_rd_int(&r, counts, farm_state_name(i), true, &c[i]);
        } else {
            cli_rd_int(&r, v, "attempts", true, &att);
            cli_rd_int(&r, v, "max_attempts", true, &maxatt);
            has_msg = cli_rd_str(&r, v, "message", false, &msg);
            has_err = cli_rd_str(&r, v, "error", false, &err);
        }
        if (r.bad) {
            s_clear(&line);
            return cli_malformed(r.why);
        }
        int st = farm_state_parse(state.ptr, state.len);
        char sname[40], detail[600], text[800];
        cli_fmt_text(sname, sizeof sname, state, 20);
        int64_t elapsed = farm_mono_ms() - start;
        if (is_job && farm_state_final(st))
            snprintf(detail, sizeof detail,
                     "%" PRId64 " task%s: %" PRId64 " completed, %" PRId64 " failed, %" PRId64 " cancelled", total,
                     total == 1 ? "" : "s", c[FARM_TASK_COMPLETED], c[FARM_TASK_FAILED], c[FARM_TASK_CANCELLED]);
        else if (is_job) /* the progress line: short, as in `farm jobs` */
            snprintf(detail, sizeof detail,
                     "%" PRId64 " task%s: pend %" PRId64 ", run %" PRId64 ", retry %" PRId64 ", done %" PRId64
                     ", fail %" PRId64 ", canc %" PRId64,
                     total, total == 1 ? "" : "s", c[FARM_TASK_PENDING], c[FARM_TASK_RUNNING], c[FARM_TASK_RETRYING],
                     c[FARM_TASK_COMPLETED], c[FARM_TASK_FAILED], c[FARM_TASK_CANCELLED]);
        else {
            char m[400];
            if (has_err && farm_state_final(st))
                snprintf(detail, sizeof detail, "attempt %" PRId64 " of %" PRId64 ": %s", att, maxatt,
                         cli_fmt_text(m, sizeof m, err, 300));
            else
                snprintf(detail, sizeof detail, "attempt %" PRId64 " of %" PRId64 "%s%s", att, maxatt,
                         has_msg ? ": " : "", has_msg ? cli_fmt_text(m, sizeof m, msg, 300) : "");
        }
        if (farm_state_final(st)) {
            s_clear(&line);
            if (cli->json) {
                if ((rc = cli_print_json(reply)) != CLI_OK)
                    return rc;
            } else {
                printf("%s %" PRId64 ": %s (%s)\n", noun, id, sname, detail);
            }
            return st == FARM_TASK_COMPLETED ? CLI_OK : CLI_FAILED;
        }
        if (line.on) {
            char age[32];
            cli_fmt_dur(age, sizeof age, elapsed);
            snprintf(text, sizeof text, "%s %" PRId64 ": %s %" PRId64 "%% [%s] %s", noun, id, sname, prog, age,
                     detail);
            s_draw(&line, text);
        }
        if (wait_ms > 0 && elapsed >= wait_ms) {
            s_clear(&line);
            fprintf(stderr, "farm: %s %" PRId64 " is still %s after %" PRId64 " ms\n", noun, id, sname, wait_ms);
            return CLI_FARM;
        }
        /* Until an event about it, the poll interval, or the end of --timeout-wait. */
        int64_t next = farm_mono_ms() + poll_ms;
        if (wait_ms > 0 && start + wait_ms < next)
            next = start + wait_ms;
        const char *topic;
        const msgpack_object *body;
        while (cli_feed_next(feed, next, &topic, &body) == 1 && !s_relevant(topic, body, id, is_job))
            ;
    }
}

int cli_cmd_wait(cli_t *cli, int argc, char **argv) {
    static const cli_help_t help = {
        "[OPTIONS] ID | --job ID", "Wait until a task or a job is final.",
        "Shows a progress line on a terminal; prints the final state. Exit status 0 when it\n"
        "completed, 1 when it failed or was cancelled, 3 when the farm stops answering or\n"
        "--timeout-wait runs out. With --json prints the final status reply.\n"
        "Listens to the status feed (--feed) to ask the front door as soon as something\n"
        "changes, and asks every --poll-ms anyway: the state always comes from the front door.\n"};
    cli_int_t job = {0}, task = {0}, poll = {1000, false}, wait = {0};
    const cli_opt_t opts[] = {
        {"job", CLI_OPT_INT, &job, 1, INT64_MAX, "ID", "wait for this job instead of a task"},
        {"task", CLI_OPT_INT, &task, 1, INT64_MAX, "ID", "the task (same as the positional ID)"},
        {"poll-ms", CLI_OPT_INT, &poll, 10, 3600000, "MS", "ask at least this often (default 1000)"},
        {"timeout-wait", CLI_OPT_INT, &wait, 0, INT64_MAX, "MS", "give up after MS (default 0: never)"},
    };
    char *pos[argc];
    int npos;
    int rc = cli_parse(cli, &help, opts, sizeof opts / sizeof opts[0], argc, argv, pos, &npos, NULL, NULL);
    if (rc != CLI_CONTINUE)
        return rc;
    int64_t id;
    bool is_job;
    if (cli_task_or_job(cli, pos, npos, &job, &task, &id, &is_job))
        return CLI_USAGE;
    return cli_wait(cli, id, is_job, poll.v, wait.v);
}
