/* client_cmd: the commands that ask and show (status, result, list, jobs,
 * cancel, retry, delete, stats, workers, health).
 *
 * Each follows one shape: parse flags, pack one request, call, then either
 * print the reply as JSON (--json) or read it with the checking reader
 * into a table and print the table. Fields the spec says are always there
 * are read as required, the nil-able ones as optional, and keys this
 * client does not know are shown generically at the end of key/value
 * views, so a newer server's additions are visible rather than dropped.
 */
#include "client.h"
#include "farm_err.h"
#include "farm_json.h"
#include "farm_proto.h"
#include "farm_state.h"
#include "farm_time.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define NOPTS(a) (sizeof(a) / sizeof((a)[0]))

/* Keys not in `known` (NULL-terminated) as generic key/value rows. */
static void s_kv_extra(cli_table_t *t, const msgpack_object *m, const char *const *known) {
    if (!m || m->type != MSGPACK_OBJECT_MAP)
        return;
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR)
            continue;
        farm_str_t ks = {k->via.str.ptr, k->via.str.size};
        bool skip = false;
        for (const char *const *p = known; *p && !skip; p++)
            skip = farm_str_eq(ks, *p);
        if (skip)
            continue;
        char key[80], val[400];
        cli_fmt_text(key, sizeof key, ks, 40);
        cli_table_kv(t, key, "%s", cli_fmt_value(val, sizeof val, &m->via.map.ptr[i].val, 200));
    }
}

static const char *s_text(char *buf, size_t n, bool have, farm_str_t s, size_t max) {
    if (!have)
        return "-";
    return cli_fmt_text(buf, n, s, max);
}

static const char *s_time(char *buf, size_t n, bool have, int64_t ms, int64_t now) {
    return have ? cli_fmt_time(buf, n, ms, now) : "-";
}

static int s_finish(cli_table_t *t, cli_rd_t *r) {
    if (r->bad) {
        cli_table_free(t);
        return cli_malformed(r->why);
    }
    int rc = cli_table_print(t, stdout, 0);
    cli_table_free(t);
    return rc;
}

/* ---- status ----------------------------------------------------------- */

int cli_print_task(cli_t *cli, const msgpack_object *v) {
    (void)cli;
    static const char *const known[] = {"id", "job", "type", "state", "priority", "attempts", "max_attempts",
                                        "progress", "message", "worker", "created_ms", "started_ms",
                                        "finished_ms", "error", "history", NULL};
    cli_rd_t r = {0};
    int64_t id = 0, job = 0, prio = 0, att = 0, maxatt = 0, prog = 0, created = 0, started = 0, finished = 0;
    farm_str_t type = {0}, state = {0}, msg = {0}, worker = {0}, err = {0};
    cli_rd_int(&r, v, "id", true, &id);
    cli_rd_int(&r, v, "job", true, &job);
    cli_rd_str(&r, v, "type", true, &type);
    cli_rd_str(&r, v, "state", true, &state);
    cli_rd_int(&r, v, "priority", true, &prio);
    cli_rd_int(&r, v, "attempts", true, &att);
    cli_rd_int(&r, v, "max_attempts", true, &maxatt);
    cli_rd_int(&r, v, "progress", true, &prog);
    bool has_msg = cli_rd_str(&r, v, "message", false, &msg);
    bool has_worker = cli_rd_str(&r, v, "worker", false, &worker);
    cli_rd_int(&r, v, "created_ms", true, &created);
    bool has_started = cli_rd_int(&r, v, "started_ms", false, &started);
    bool has_finished = cli_rd_int(&r, v, "finished_ms", false, &finished);
    bool has_err = cli_rd_str(&r, v, "error", false, &err);
    const msgpack_object *hist = cli_rd_array(&r, v, "history", false);

    int64_t now = farm_now_ms();
    char b1[128], big[2048];
    cli_table_t t, h;
    cli_table_init(&t, 2, NULL);
    cli_table_init(&h, 6, "rlllrl");
    cli_table_kv(&t, "task", "%" PRId64, id);
    cli_table_kv(&t, "job", "%" PRId64, job);
    cli_table_kv(&t, "type", "%s", cli_fmt_text(b1, sizeof b1, type, 0));
    cli_table_kv(&t, "state", "%s", cli_fmt_text(b1, sizeof b1, state, 0));
    cli_table_kv(&t, "priority", "%" PRId64, prio);
    cli_table_kv(&t, "attempts", "%" PRId64 " of %" PRId64, att, maxatt);
    cli_table_kv(&t, "progress", "%" PRId64 "%%", prog);
    cli_table_kv(&t, "message", "%s", s_text(big, sizeof big, has_msg, msg, 0));
    cli_table_kv(&t, "worker", "%s", s_text(b1, sizeof b1, has_worker, worker, 0));
    cli_table_kv(&t, "created", "%s", cli_fmt_time(b1, sizeof b1, created, now));
    cli_table_kv(&t, "started", "%s", s_time(b1, sizeof b1, has_started, started, now));
    cli_table_kv(&t, "finished", "%s", s_time(b1, sizeof b1, has_finished, finished, now));
    if (has_started && has_finished)
        cli_table_kv(&t, "duration", "%s", cli_fmt_dur(b1, sizeof b1, finished - started));
    cli_table_kv(&t, "error", "%s", s_text(big, sizeof big, has_err, err, 0));
    s_kv_extra(&t, v, known);

    if (hist && hist->via.array.size > 0) {
        const char *head[] = {"ATTEMPT", "WORKER", "STARTED", "FINISHED", "DURATION", "ERROR"};
        cli_table_add(&h, head);
        for (uint32_t i = 0; i < hist->via.array.size && !r.bad; i++) {
            const msgpack_object *e = &hist->via.array.ptr[i];
            int64_t a = 0, s = 0, f = 0;
            farm_str_t w = {0}, er = {0};
            bool hs = false, hf = false, hw, he;
            char ca[24], cw[128], cs[64], cf[64], cd[32], ce[256];
            cli_rd_int(&r, e, "attempt", true, &a);
            hw = cli_rd_str(&r, e, "worker", false, &w);
            hs = cli_rd_int(&r, e, "started_ms", false, &s);
            hf = cli_rd_int(&r, e, "finished_ms", false, &f);
            he = cli_rd_str(&r, e, "error", false, &er);
            snprintf(ca, sizeof ca, "%" PRId64, a);
            const char *row[] = {ca,
                                 s_text(cw, sizeof cw, hw, w, 40),
                                 hs ? cli_fmt_age(cs, sizeof cs, s, now) : "-",
                                 hf ? cli_fmt_age(cf, sizeof cf, f, now) : "-",
                                 hs && hf ? cli_fmt_dur(cd, sizeof cd, f - s) : "-",
                                 s_text(ce, sizeof ce, he, er, 80)};
            cli_table_add(&h, row);
        }
    }
    if (r.bad) {
        cli_table_free(&h);
        return s_finish(&t, &r);
    }
    int rc = s_finish(&t, &r);
    if (rc == CLI_OK && h.nrows > 0) {
        printf("\nhistory:\n");
        rc = cli_table_print(&h, stdout, 2);
    }
    cli_table_free(&h);
    return rc;
}

/* Read the six counts of a JOBVIEW's "counts" map into c. */
static void s_counts(cli_rd_t *r, const msgpack_object *v, int64_t c[FARM_STATE_COUNT]) {
    const msgpack_object *m = cli_rd_map(r, v, "counts", true);
    for (int i = 0; i < FARM_STATE_COUNT; i++) {
        c[i] = 0;
        if (m)
            cli_rd_int(r, m, farm_state_name(i), true, &c[i]);
    }
}

int cli_print_job(cli_t *cli, const msgpack_object *v) {
    (void)cli;
    static const char *const known[] = {"id", "name", "state", "progress", "total", "counts",
                                        "created_ms", "finished_ms", NULL};
    cli_rd_t r = {0};
    int64_t id = 0, prog = 0, total = 0, created = 0, finished = 0, c[FARM_STATE_COUNT];
    farm_str_t name = {0}, state = {0};
    cli_rd_int(&r, v, "id", true, &id);
    bool has_name = cli_rd_str(&r, v, "name", false, &name);
    cli_rd_str(&r, v, "state", true, &state);
    cli_rd_int(&r, v, "progress", true, &prog);
    cli_rd_int(&r, v, "total", true, &total);
    s_counts(&r, v, c);
    cli_rd_int(&r, v, "created_ms", true, &created);
    bool has_finished = cli_rd_int(&r, v, "finished_ms", false, &finished);

    int64_t now = farm_now_ms();
    char b[512];
    cli_table_t t;
    cli_table_init(&t, 2, NULL);
    cli_table_kv(&t, "job", "%" PRId64, id);
    cli_table_kv(&t, "name", "%s", s_text(b, sizeof b, has_name, name, 0));
    cli_table_kv(&t, "state", "%s", cli_fmt_text(b, sizeof b, state, 0));
    cli_table_kv(&t, "progress", "%" PRId64 "%%", prog);
    cli_table_kv(&t, "tasks", "%" PRId64, total);
    for (int i = 0; i < FARM_STATE_COUNT; i++) {
        char key[32];
        snprintf(key, sizeof key, "  %s", farm_state_name(i));
        cli_table_kv(&t, key, "%" PRId64, c[i]);
    }
    cli_table_kv(&t, "created", "%s", cli_fmt_time(b, sizeof b, created, now));
    cli_table_kv(&t, "finished", "%s", s_time(b, sizeof b, has_finished, finished, now));
    if (has_finished)
        cli_table_kv(&t, "duration", "%s", cli_fmt_dur(b, sizeof b, finished - created));
    s_kv_extra(&t, v, known);
    return s_finish(&t, &r);
}

int cli_cmd_status(cli_t *cli, int argc, char **argv) {
    static const cli_help_t help = {"[OPTIONS] ID | --job ID", "Show one task, with its attempt history, or one job.",
                                    NULL};
    cli_int_t job = {0}, task = {0};
    const cli_opt_t opts[] = {
        {"job", CLI_OPT_INT, &job, 1, INT64_MAX, "ID", "show this job instead of a task"},
        {"task", CLI_OPT_INT, &task, 1, INT64_MAX, "ID", "the task (same as the positional ID)"},
    };
    char *pos[argc];
    int npos;
    int rc = cli_parse(cli, &help, opts, NOPTS(opts), argc, argv, pos, &npos, NULL, NULL);
    if (rc != CLI_CONTINUE)
        return rc;
    int64_t id;
    bool is_job;
    if (cli_task_or_job(cli, pos, npos, &job, &task, &id, &is_job))
        return CLI_USAGE;
    cli_req_t q;
    cli_req_init(&q, 3, "status");
    farm_pack_kv_int(&q.pk, is_job ? "job" : "task", id);
    const msgpack_object *reply;
    rc = cli_call(cli, &q, &reply);
    cli_req_free(&q);
    if (rc)
        return rc;
    if (cli->json)
        return cli_print_json(reply);
    cli_rd_t r = {0};
    const msgpack_object *v = cli_rd_map(&r, reply, is_job ? "job" : "task", true);
    if (r.bad)
        return cli_malformed(r.why);
    return is_job ? cli_print_job(cli, v) : cli_print_task(cli, v);
}

/* ---- result ----------------------------------------------------------- */

static bool s_write_all(FILE *f, farm_str_t s) {
    return s.len == 0 || fwrite(s.ptr, 1, s.len, f) == s.len;
}

int cli_cmd_result(cli_t *cli, int argc, char **argv) {
    static const cli_help_t help = {
        "[OPTIONS] ID", "Show the result of a task.",
        "For an exec task the task's stdout is written to stdout and its stderr to stderr,\n"
        "byte for byte; the state, exit code and duration go to stderr around them, so\n"
        "`farm result 5 > out` captures exactly what the task printed. Other results are\n"
        "shown as JSON.\n"};
    char *pos[argc];
    int npos;
    int rc = cli_parse(cli, &help, NULL, 0, argc, argv, pos, &npos, NULL, NULL);
    if (rc != CLI_CONTINUE)
        return rc;
    if (npos != 1)
        return cli_usage(cli, npos ? "give one task ID" : "which task? give a task ID");
    int64_t id;
    if (cli_parse_id(cli, "task ID", pos[0], &id))
        return CLI_USAGE;
    cli_req_t q;
    cli_req_init(&q, 3, "result");
    farm_pack_kv_int(&q.pk, "task", id);
    const msgpack_object *reply;
    rc = cli_call(cli, &q, &reply);
    cli_req_free(&q);
    if (rc)
        return rc;
    if (cli->json)
        return cli_print_json(reply);

    cli_rd_t r = {0};
    farm_str_t state = {0}, err = {0};
    cli_rd_str(&r, reply, "state", true, &state);
    bool has_err = cli_rd_str(&r, reply, "error", false, &err);
    const msgpack_object *res = cli_rd_any(reply, "result");
    bool exec = res && res->type == MSGPACK_OBJECT_MAP && farm_msg_get(res, "exit_code");
    int64_t code = 0, sig = 0, dur = 0;
    farm_str_t out = {"", 0}, errout = {"", 0};
    bool trunc = false, has_dur = false;
    if (exec) {
        cli_rd_int(&r, res, "exit_code", true, &code);
        cli_rd_int(&r, res, "signal", false, &sig);
        cli_rd_bytes(&r, res, "stdout", false, &out);
        cli_rd_bytes(&r, res, "stderr", false, &errout);
        cli_rd_bool(&r, res, "truncated", false, &trunc);
        has_dur = cli_rd_int(&r, res, "duration_ms", false, &dur);
    }
    if (r.bad)
        return cli_malformed(r.why);

    char st[64], eb[1024];
    cli_fmt_text(st, sizeof st, state, 0);
    if (!exec) {
        printf("state   %s\n", st);
        if (has_err)
            printf("error   %s\n", cli_fmt_text(eb, sizeof eb, err, 0));
        if (!res) {
            printf("result  none yet\n");
            return CLI_OK;
        }
        printf("result  ");
        if (farm_json_write(stdout, res, 2) != 0 || putchar('\n') == EOF) {
            fprintf(stderr, "farm: writing to stdout failed\n");
            return CLI_FARM;
        }
        return CLI_OK;
    }
    fprintf(stderr, "task %" PRId64 ": %s\n", id, st);
    if (fflush(stderr) != 0 || !s_write_all(stdout, out) || fflush(stdout) != 0) {
        fprintf(stderr, "farm: writing to stdout failed\n");
        return CLI_FARM;
    }
    (void)s_write_all(stderr, errout);
    /* Start the trailer on its own line when the output left one open on
     * the terminal. */
    bool open_line = (errout.len && errout.ptr[errout.len - 1] != '\n') ||
                     (!errout.len && cli->tty && out.len && out.ptr[out.len - 1] != '\n');
    char d[32] = "";
    if (has_dur)
        cli_fmt_dur(d, sizeof d, dur);
    fprintf(stderr, "%sexit code %" PRId64, open_line ? "\n" : "", code);
    if (sig)
        fprintf(stderr, ", signal %" PRId64, sig);
    if (has_dur)
        fprintf(stderr, ", %s", d);
    if (trunc)
        fprintf(stderr, ", output truncated");
    fputc('\n', stderr);
    if (has_err)
        fprintf(stderr, "error: %s\n", cli_fmt_text(eb, sizeof eb, err, 0));
    return CLI_OK;
}

/* ---- list and jobs ---------------------------------------------------- */

static int s_check_state(const cli_t *cli, const char *s) {
    if (s && farm_state_parse(s, strlen(s)) < 0)
        return cli_usage(cli, "--state: '%s' is not a state (pending, running, retrying, completed, failed, cancelled)",
                         s);
    return 0;
}

static void s_task_row(cli_table_t *t, cli_rd_t *r, const msgpack_object *v) {
    int64_t id = 0, job = 0, prog = 0, att = 0, maxatt = 0;
    farm_str_t type = {0}, state = {0}, worker = {0}, err = {0};
    cli_rd_int(r, v, "id", true, &id);
    cli_rd_int(r, v, "job", true, &job);
    cli_rd_str(r, v, "type", true, &type);
    cli_rd_str(r, v, "state", true, &state);
    cli_rd_int(r, v, "progress", true, &prog);
    cli_rd_int(r, v, "attempts", true, &att);
    cli_rd_int(r, v, "max_attempts", true, &maxatt);
    bool hw = cli_rd_str(r, v, "worker", false, &worker);
    bool he = cli_rd_str(r, v, "error", false, &err);
    if (r->bad)
        return;
    char ci[24], cj[24], cty[80], cs[40], cp[16], ca[48], cw[80], ce[256];
    snprintf(ci, sizeof ci, "%" PRId64, id);
    snprintf(cj, sizeof cj, "%" PRId64, job);
    snprintf(cp, sizeof cp, "%" PRId64 "%%", prog);
    snprintf(ca, sizeof ca, "%" PRId64 "/%" PRId64, att, maxatt);
    const char *row[] = {ci, cj, cli_fmt_text(cty, sizeof cty, type, 24), cli_fmt_text(cs, sizeof cs, state, 12),
                         cp, ca, s_text(cw, sizeof cw, hw, worker, 30), s_text(ce, sizeof ce, he, err, 60)};
    cli_table_add(t, row);
}

static void s_job_row(cli_table_t *t, cli_rd_t *r, const msgpack_object *v) {
    int64_t id = 0, total = 0, prog = 0, c[FARM_STATE_COUNT];
    farm_str_t name = {0}, state = {0};
    cli_rd_int(r, v, "id", true, &id);
    bool hn = cli_rd_str(r, v, "name", false, &name);
    cli_rd_str(r, v, "state", true, &state);
    cli_rd_int(r, v, "total", true, &total);
    cli_rd_int(r, v, "progress", true, &prog);
    s_counts(r, v, c);
    if (r->bad)
        return;
    char n[8][24], cn[128], cs[40];
    snprintf(n[0], sizeof n[0], "%" PRId64, id);
    snprintf(n[1], sizeof n[1], "%" PRId64, total);
    for (int i = 0; i < FARM_STATE_COUNT; i++)
        snprintf(n[2 + i], sizeof n[2 + i], "%" PRId64, c[i]);
    char cp[16];
    snprintf(cp, sizeof cp, "%" PRId64 "%%", prog);
    const char *row[] = {n[0], s_text(cn, sizeof cn, hn, name, 30), cli_fmt_text(cs, sizeof cs, state, 12),
                         n[1], n[2 + FARM_TASK_PENDING], n[2 + FARM_TASK_RUNNING], n[2 + FARM_TASK_RETRYING],
                         n[2 + FARM_TASK_COMPLETED], n[2 + FARM_TASK_FAILED], n[2 + FARM_TASK_CANCELLED], cp};
    cli_table_add(t, row);
}

/* The paging loop of list and jobs. Filters are packed by pack_filters;
 * nfilters counts them. */
typedef struct {
    const char *op;      /* "list" or "jobs" */
    const char *items;   /* reply key of the array */
    const char *noun;    /* "tasks" or "jobs", for "no tasks" */
    int64_t after;       /* first page's after */
    cli_int_t limit;
    bool all;
    int64_t job;         /* list: 0 none */
    const char *state, *type;
    void (*row)(cli_table_t *t, cli_rd_t *r, const msgpack_object *v);
} s_page_t;

static int s_pages(cli_t *cli, s_page_t *p, cli_table_t *t) {
    int64_t after = p->after, next = 0;
    bool has_next = false;
    cli_rd_t r = {0};
    for (;;) {
        size_t n = 3 + (p->limit.set) + (p->job > 0) + (p->state != NULL) + (p->type != NULL);
        cli_req_t q;
        cli_req_init(&q, n, p->op);
        farm_pack_kv_int(&q.pk, "after", after);
        if (p->limit.set)
            farm_pack_kv_int(&q.pk, "limit", p->limit.v);
        if (p->job > 0)
            farm_pack_kv_int(&q.pk, "job", p->job);
        if (p->state)
            farm_pack_kv_str(&q.pk, "state", p->state);
        if (p->type)
            farm_pack_kv_str(&q.pk, "type", p->type);
        const msgpack_object *reply;
        int rc = cli_call(cli, &q, &reply);
        cli_req_free(&q);
        if (rc)
            return rc;
        if (cli->json && (rc = cli_print_json(reply)) != CLI_OK)
            return rc;
        const msgpack_object *items = cli_rd_array(&r, reply, p->items, true);
        has_next = cli_rd_int(&r, reply, "next", false, &next);
        for (uint32_t i = 0; items && i < items->via.array.size && !r.bad; i++)
            p->row(t, &r, &items->via.array.ptr[i]);
        if (!r.bad && has_next && next <= after)
            cli_rd_fail(&r, "\"next\" (%" PRId64 ") does not move past \"after\" (%" PRId64 ")", next, after);
        if (r.bad)
            return cli_malformed(r.why);
        if (!p->all || !has_next)
            break;
        after = next;
    }
    if (cli->json)
        return CLI_OK;
    if (t->nrows <= 1)
        printf("no %s\n", p->noun);
    else if (cli_table_print(t, stdout, 0) != CLI_OK)
        return CLI_FARM;
    if (has_next && !p->all)
        fprintf(stderr, "farm: more %s follow: add --after %" PRId64 ", or --all\n", p->noun, next);
    return CLI_OK;
}

int cli_cmd_list(cli_t *cli, int argc, char **argv) {
    static const cli_help_t help = {"[OPTIONS]", "List tasks, oldest first, one page (or all with --all).", NULL};
    cli_int_t job = {0}, after = {0}, limit = {0};
    const char *state = NULL, *type = NULL;
    bool all = false;
    const cli_opt_t opts[] = {
        {"job", CLI_OPT_INT, &job, 1, INT64_MAX, "ID", "only tasks of this job"},
        {"state", CLI_OPT_STR, &state, 0, 0, "S", "only tasks in this state"},
        {"type", CLI_OPT_STR, &type, 0, 0, "T", "only tasks of this type"},
        {"after", CLI_OPT_INT, &after, 0, INT64_MAX, "N", "start after task id N"},
        {"limit", CLI_OPT_INT, &limit, 1, 1000, "N", "tasks per page, 1..1000 (server default 100)"},
        {"all", CLI_OPT_FLAG, &all, 0, 0, NULL, "follow the pages to the end"},
    };
    char *pos[argc];
    int npos;
    int rc = cli_parse(cli, &help, opts, NOPTS(opts), argc, argv, pos, &npos, NULL, NULL);
    if (rc != CLI_CONTINUE)
        return rc;
    if (npos)
        return cli_usage(cli, "unexpected argument '%s'", pos[0]);
    if (s_check_state(cli, state))
        return CLI_USAGE;
    if (type && !farm_type_valid((farm_str_t){type, (uint32_t)strlen(type)}))
        return cli_usage(cli, "--type: '%s' is not a task type (1-64 of [a-z0-9_.-])", type);
    cli_table_t t;
    cli_table_init(&t, 8, "rrllrrll");
    const char *head[] = {"ID", "JOB", "TYPE", "STATE", "PROG", "ATT", "WORKER", "ERROR"};
    cli_table_add(&t, head);
    s_page_t p = {"list", "tasks", "tasks", after.v, limit, all, job.v, state, type, s_task_row};
    rc = s_pages(cli, &p, &t);
    cli_table_free(&t);
    return rc;
}

int cli_cmd_jobs(cli_t *cli, int argc, char **argv) {
    static const cli_help_t help = {"[OPTIONS]", "List jobs, oldest first, one page (or all with --all).", NULL};
    cli_int_t after = {0}, limit = {0};
    const char *state = NULL;
    bool all = false;
    const cli_opt_t opts[] = {
        {"state", CLI_OPT_STR, &state, 0, 0, "S", "only jobs in this state"},
        {"after", CLI_OPT_INT, &after, 0, INT64_MAX, "N", "start after job id N"},
        {"limit", CLI_OPT_INT, &limit, 1, 1000, "N", "jobs per page, 1..1000 (server default 100)"},
        {"all", CLI_OPT_FLAG, &all, 0, 0, NULL, "follow the pages to the end"},
    };
    char *pos[argc];
    int npos;
    int rc = cli_parse(cli, &help, opts, NOPTS(opts), argc, argv, pos, &npos, NULL, NULL);
    if (rc != CLI_CONTINUE)
        return rc;
    if (npos)
        return cli_usage(cli, "unexpected argument '%s'", pos[0]);
    if (s_check_state(cli, state))
        return CLI_USAGE;
    cli_table_t t;
    cli_table_init(&t, 11, "rllrrrrrrrr");
    const char *head[] = {"ID", "NAME", "STATE", "TOTAL", "PEND", "RUN", "RETRY", "DONE", "FAIL", "CANC", "PROG%"};
    cli_table_add(&t, head);
    s_page_t p = {"jobs", "jobs", "jobs", after.v, limit, all, 0, state, NULL, s_job_row};
    rc = s_pages(cli, &p, &t);
    cli_table_free(&t);
    return rc;
}

/* ---- cancel, retry, delete -------------------------------------------- */

/* One op on a task or a job that answers with a count under `key`. */
static int s_count_op(cli_t *cli, const char *op, const char *key, const char *verb, int64_t id, bool is_job) {
    cli_req_t q;
    cli_req_init(&q, 3, op);
    farm_pack_kv_int(&q.pk, is_job ? "job" : "task", id);
    const msgpack_object *reply;
    int rc = cli_call(cli, &q, &reply);
    cli_req_free(&q);
    if (rc)
        return rc;
    if (cli->json)
        return cli_print_json(reply);
    cli_rd_t r = {0};
    int64_t n = 0;
    cli_rd_int(&r, reply, key, true, &n);
    if (r.bad)
        return cli_malformed(r.why);
    printf("%s %" PRId64 " task%s\n", verb, n, n == 1 ? "" : "s");
    return CLI_OK;
}

static int s_task_job_cmd(cli_t *cli, int argc, char **argv, const cli_help_t *help, const char *key,
                          const char *verb) {
    cli_int_t job = {0}, task = {0};
    const cli_opt_t opts[] = {
        {"job", CLI_OPT_INT, &job, 1, INT64_MAX, "ID", "every task of this job"},
        {"task", CLI_OPT_INT, &task, 1, INT64_MAX, "ID", "the task (same as the positional ID)"},
    };
    char *pos[argc];
    int npos;
    int rc = cli_parse(cli, help, opts, NOPTS(opts), argc, argv, pos, &npos, NULL, NULL);
    if (rc != CLI_CONTINUE)
        return rc;
    int64_t id;
    bool is_job;
    if (cli_task_or_job(cli, pos, npos, &job, &task, &id, &is_job))
        return CLI_USAGE;
    return s_count_op(cli, cli->cmd, key, verb, id, is_job);
}

int cli_cmd_cancel(cli_t *cli, int argc, char **argv) {
    static const cli_help_t help = {
        "[OPTIONS] ID | --job ID", "Cancel a task, or every unfinished task of a job.",
        "Pending and retrying tasks are cancelled at once, running ones when their worker\n"
        "confirms. Cancelling a finished task is an error (conflict).\n"};
    return s_task_job_cmd(cli, argc, argv, &help, "cancelled", "cancelled");
}

int cli_cmd_retry(cli_t *cli, int argc, char **argv) {
    static const cli_help_t help = {
        "[OPTIONS] ID | --job ID", "Run a failed or cancelled task again (or all such tasks of a job).",
        "The tasks go back to pending with a fresh attempt budget.\n"};
    return s_task_job_cmd(cli, argc, argv, &help, "retried", "retried");
}

int cli_cmd_delete(cli_t *cli, int argc, char **argv) {
    static const cli_help_t help = {"[OPTIONS] JOB", "Delete a finished job with its tasks and results.",
                                    "A job with a task that is not final cannot be deleted (conflict).\n"};
    cli_int_t job = {0};
    const cli_opt_t opts[] = {
        {"job", CLI_OPT_INT, &job, 1, INT64_MAX, "ID", "the job (same as the positional JOB)"},
    };
    char *pos[argc];
    int npos;
    int rc = cli_parse(cli, &help, opts, NOPTS(opts), argc, argv, pos, &npos, NULL, NULL);
    if (rc != CLI_CONTINUE)
        return rc;
    int64_t id = job.v;
    if (npos + job.set != 1)
        return cli_usage(cli, npos + job.set ? "give one job ID" : "which job? give a job ID");
    if (npos && cli_parse_id(cli, "job ID", pos[0], &id))
        return CLI_USAGE;
    return s_count_op(cli, "delete", "deleted", "deleted", id, true);
}

/* ---- stats, workers, health ------------------------------------------- */

/* Commands without flags of their own: parse, send {"op": op}, get reply. */
static int s_simple(cli_t *cli, int argc, char **argv, const cli_help_t *help, const msgpack_object **reply) {
    char *pos[argc];
    int npos;
    int rc = cli_parse(cli, help, NULL, 0, argc, argv, pos, &npos, NULL, NULL);
    if (rc != CLI_CONTINUE)
        return rc;
    if (npos)
        return cli_usage(cli, "unexpected argument '%s'", pos[0]);
    cli_req_t q;
    cli_req_init(&q, 2, cli->cmd);
    rc = cli_call(cli, &q, reply);
    cli_req_free(&q);
    if (rc)
        return rc;
    return cli->json ? cli_print_json(*reply) : CLI_CONTINUE;
}

int cli_cmd_stats(cli_t *cli, int argc, char **argv) {
    static const cli_help_t help = {"[OPTIONS]", "Show the farm's counters, throughput and latency.", NULL};
    static const char *const known[] = {"ok", "counts", "jobs", "workers", "slots", "busy",
                                        "throughput", "latency_ms", "uptime_s", NULL};
    const msgpack_object *reply;
    int rc = s_simple(cli, argc, argv, &help, &reply);
    if (rc != CLI_CONTINUE)
        return rc;
    cli_rd_t r = {0};
    int64_t c[FARM_STATE_COUNT], jobs = 0, workers = 0, slots = 0, busy = 0, up = 0, p50 = 0, p99 = 0;
    double t10 = 0, t60 = 0;
    s_counts(&r, reply, c); /* the same six-state map as a JOBVIEW's */
    cli_rd_int(&r, reply, "jobs", true, &jobs);
    cli_rd_int(&r, reply, "workers", true, &workers);
    cli_rd_int(&r, reply, "slots", true, &slots);
    cli_rd_int(&r, reply, "busy", true, &busy);
    const msgpack_object *tp = cli_rd_map(&r, reply, "throughput", true);
    bool h10 = cli_rd_num(&r, tp, "10s", false, &t10);
    bool h60 = cli_rd_num(&r, tp, "60s", false, &t60);
    const msgpack_object *lat = cli_rd_map(&r, reply, "latency_ms", false);
    bool h50 = lat && cli_rd_int(&r, lat, "p50", false, &p50);
    bool h99 = lat && cli_rd_int(&r, lat, "p99", false, &p99);
    cli_rd_int(&r, reply, "uptime_s", true, &up);
    if (r.bad)
        return cli_malformed(r.why);
    cli_table_t t;
    char a[32], b[32];
    cli_table_init(&t, 2, NULL);
    for (int i = 0; i < FARM_STATE_COUNT; i++)
        cli_table_kv(&t, farm_state_name(i), "%" PRId64, c[i]);
    cli_table_kv(&t, "jobs", "%" PRId64, jobs);
    cli_table_kv(&t, "workers", "%" PRId64, workers);
    cli_table_kv(&t, "slots", "%" PRId64 " (%" PRId64 " busy)", slots, busy);
    if (h10 || h60)
        cli_table_kv(&t, "throughput", "%.2f/s over 10s, %.2f/s over 60s", h10 ? t10 : 0.0, h60 ? t60 : 0.0);
    else
        cli_table_kv(&t, "throughput", "-");
    cli_table_kv(&t, "latency", "p50 %s, p99 %s", h50 ? cli_fmt_dur(a, sizeof a, p50) : "-",
                 h99 ? cli_fmt_dur(b, sizeof b, p99) : "-");
    cli_table_kv(&t, "uptime", "%s", cli_fmt_dur(a, sizeof a, up > INT64_MAX / 1000 ? -1 : up * 1000));
    s_kv_extra(&t, reply, known);
    return s_finish(&t, &r);
}

int cli_cmd_workers(cli_t *cli, int argc, char **argv) {
    static const cli_help_t help = {"[OPTIONS]", "List the workers the farm knows.", NULL};
    const msgpack_object *reply;
    int rc = s_simple(cli, argc, argv, &help, &reply);
    if (rc != CLI_CONTINUE)
        return rc;
    cli_rd_t r = {0};
    const msgpack_object *ws = cli_rd_array(&r, reply, "workers", true);
    cli_table_t t;
    cli_table_init(&t, 10, "llrrrlrrrl");
    const char *head[] = {"ID", "HOST", "PID", "SLOTS", "BUSY", "STATE", "SEEN", "DONE", "FAIL", "TYPES"};
    cli_table_add(&t, head);
    int64_t now = farm_now_ms();
    for (uint32_t i = 0; ws && i < ws->via.array.size && !r.bad; i++) {
        const msgpack_object *w = &ws->via.array.ptr[i];
        farm_str_t id = {0}, host = {0}, state = {0};
        int64_t pid = 0, slots = 0, busy = 0, seen = 0, done = 0, fail = 0;
        cli_rd_str(&r, w, "id", true, &id);
        bool hh = cli_rd_str(&r, w, "host", false, &host);
        bool hp = cli_rd_int(&r, w, "pid", false, &pid);
        cli_rd_int(&r, w, "slots", true, &slots);
        cli_rd_int(&r, w, "busy", true, &busy);
        cli_rd_str(&r, w, "state", true, &state);
        bool hs = cli_rd_int(&r, w, "last_seen_ms", false, &seen);
        cli_rd_int(&r, w, "completed", false, &done);
        cli_rd_int(&r, w, "failed", false, &fail);
        const msgpack_object *types = cli_rd_array(&r, w, "types", false);
        char types_s[512] = "-", one[80];
        size_t o = 0;
        for (uint32_t k = 0; types && k < types->via.array.size && !r.bad; k++) {
            const msgpack_object *ty = &types->via.array.ptr[k];
            if (ty->type != MSGPACK_OBJECT_STR) {
                cli_rd_fail(&r, "\"types\" holds a value that is not a string");
                break;
            }
            cli_fmt_text(one, sizeof one, (farm_str_t){ty->via.str.ptr, ty->via.str.size}, 64);
            int n = snprintf(types_s + o, sizeof types_s - o, "%s%s", k ? "," : "", one); /* overwrites "-" */
            if (n < 0 || (size_t)n >= sizeof types_s - o)
                break;
            o += (size_t)n;
        }
        if (r.bad)
            break;
        char ci[128], ch[128], cp[24], cs[24], cb[24], cst[32], cse[48], cd[24], cf[24], ct[128];
        snprintf(cp, sizeof cp, "%" PRId64, pid);
        snprintf(cs, sizeof cs, "%" PRId64, slots);
        snprintf(cb, sizeof cb, "%" PRId64, busy);
        snprintf(cd, sizeof cd, "%" PRId64, done);
        snprintf(cf, sizeof cf, "%" PRId64, fail);
        const char *row[] = {cli_fmt_text(ci, sizeof ci, id, 40),
                             s_text(ch, sizeof ch, hh, host, 40),
                             hp ? cp : "-",
                             cs,
                             cb,
                             cli_fmt_text(cst, sizeof cst, state, 12),
                             hs ? cli_fmt_age(cse, sizeof cse, seen, now) : "-",
                             cd,
                             cf,
                             cli_fmt_text(ct, sizeof ct, (farm_str_t){types_s, (uint32_t)strlen(types_s)}, 60)};
        cli_table_add(&t, row);
    }
    if (!r.bad && t.nrows <= 1) {
        cli_table_free(&t);
        printf("no workers\n");
        return CLI_OK;
    }
    return s_finish(&t, &r);
}

int cli_cmd_health(cli_t *cli, int argc, char **argv) {
    static const cli_help_t help = {"[OPTIONS]", "Check that the farm answers, and show its version and uptime.",
                                    NULL};
    static const char *const known[] = {"ok", "status", "version", "uptime_s", NULL};
    const msgpack_object *reply;
    int rc = s_simple(cli, argc, argv, &help, &reply);
    if (rc != CLI_CONTINUE)
        return rc;
    cli_rd_t r = {0};
    farm_str_t status = {0}, version = {0};
    int64_t up = 0;
    cli_rd_str(&r, reply, "status", true, &status);
    bool hv = cli_rd_str(&r, reply, "version", false, &version);
    bool hu = cli_rd_int(&r, reply, "uptime_s", false, &up);
    if (r.bad)
        return cli_malformed(r.why);
    char a[128], b[128];
    cli_table_t t;
    cli_table_init(&t, 2, NULL);
    cli_table_kv(&t, "status", "%s", cli_fmt_text(a, sizeof a, status, 0));
    cli_table_kv(&t, "version", "%s", s_text(b, sizeof b, hv, version, 40));
    cli_table_kv(&t, "uptime", "%s", hu ? cli_fmt_dur(a, sizeof a, up > INT64_MAX / 1000 ? -1 : up * 1000) : "-");
    cli_table_kv(&t, "server", "%s", cli->server);
    s_kv_extra(&t, reply, known);
    return s_finish(&t, &r);
}
