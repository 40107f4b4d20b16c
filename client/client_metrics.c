/* client_metrics: `farm metrics`, the farm's figures for Prometheus.
 *
 * One `stats` and one `workers` request, printed in the Prometheus text
 * exposition format (version 0.0.4) for a node exporter's textfile
 * collector: every family with its # HELP and # TYPE lines, label values
 * escaped (\\, \" and \n), numbers in C-locale notation. Both replies are
 * read whole before anything is written, so a malformed reply never
 * leaves half a file. The names:
 *
 *   farm_up                               1 when the farm answered (0 in --out
 *                                         files written after a failure)
 *   farm_tasks{state}                     tasks stored in each state (gauge)
 *   farm_jobs                             jobs stored
 *   farm_throughput_tasks_per_second{window="10s"|"60s"}
 *   farm_latency_ms{quantile="0.5"|"0.99"} submission to final state, last 60 s
 *   farm_workers{state="alive"|"draining"|"lost"}
 *   farm_slots, farm_slots_busy           over the live workers
 *   farm_uptime_seconds                   of the ventilator
 *   farm_worker_slots{worker,host}, farm_worker_busy{worker,host},
 *   farm_worker_up{worker,host}           1 alive or draining, 0 lost
 *   farm_worker_last_seen_seconds{worker,host}   age of its last heartbeat
 *   farm_worker_completed_total{worker,host}, farm_worker_failed_total{worker,host}
 *
 * The latency quantiles are gauges: the farm computes them over a sliding
 * window, and a summary would promise _sum and _count it does not have.
 *
 * With --out FILE the text goes to FILE.tmp.PID beside it, is flushed and
 * fsync'd, then renamed over FILE, so the collector never reads a half
 * written file (it ignores names that do not end in .prom). When the farm
 * does not answer, --out still replaces FILE, with farm_up 0 alone, so the
 * collector stops exporting stale figures; the exit status says 3.
 */
#include "client.h"
#include "farm_state.h"
#include "farm_time.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Write s as a label value: \ " and newline escaped, other bytes as they are. */
static void s_label(FILE *f, farm_str_t s) {
    for (uint32_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (c == '\\' || c == '"')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else
            fputc(c, f);
    }
}

static void s_family(FILE *f, const char *name, const char *type, const char *help) {
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A double as Prometheus reads it (C locale: the client never sets one). */
static void s_num(FILE *f, double v) {
    if (v != v)
        fputs("NaN", f);
    else
        fprintf(f, "%.6g", v);
}

typedef struct {
    farm_str_t id, host, state;
    int64_t slots, busy, seen, done, fail;
    bool has_seen;
} s_worker_t;

/* What the two replies said, copied out of the reply zone. */
typedef struct {
    int64_t counts[FARM_STATE_COUNT], jobs, slots, busy, up, p50, p99;
    double t10, t60;
    bool h10, h60, h50, h99;
    s_worker_t *w;
    size_t nw;
    char *strings; /* the workers' strings, copied (w[] points here) */
} s_figs_t;

/* stats, then workers: fill fg. Returns CLI_OK or the exit code after a message. */
static int s_fetch(cli_t *cli, s_figs_t *fg) {
    cli_req_t q;
    const msgpack_object *reply;
    cli_req_init(&q, 2, "stats");
    int rc = cli_call(cli, &q, &reply);
    cli_req_free(&q);
    if (rc)
        return rc;
    cli_rd_t r = {0};
    const msgpack_object *counts = cli_rd_map(&r, reply, "counts", true);
    for (int i = 0; i < FARM_STATE_COUNT; i++)
        cli_rd_int(&r, counts, farm_state_name(i), true, &fg->counts[i]);
    cli_rd_int(&r, reply, "jobs", true, &fg->jobs);
    cli_rd_int(&r, reply, "slots", true, &fg->slots);
    cli_rd_int(&r, reply, "busy", true, &fg->busy);
    cli_rd_int(&r, reply, "uptime_s", true, &fg->up);
    const msgpack_object *tp = cli_rd_map(&r, reply, "throughput", false);
    fg->h10 = tp && cli_rd_num(&r, tp, "10s", false, &fg->t10);
    fg->h60 = tp && cli_rd_num(&r, tp, "60s", false, &fg->t60);
    const msgpack_object *lat = cli_rd_map(&r, reply, "latency_ms", false);
    fg->h50 = lat && cli_rd_int(&r, lat, "p50", false, &fg->p50);
    fg->h99 = lat && cli_rd_int(&r, lat, "p99", false, &fg->p99);
    if (r.bad)
        return cli_malformed(r.why);

    cli_req_init(&q, 2, "workers");
    rc = cli_call(cli, &q, &reply);
    cli_req_free(&q);
    if (rc)
        return rc;
    const msgpack_object *ws = cli_rd_array(&r, reply, "workers", true);
    size_t n = ws ? ws->via.array.size : 0, bytes = 0;
    fg->w = calloc(n ? n : 1, sizeof *fg->w);
    if (!fg->w) {
        fprintf(stderr, "farm: out of memory\n");
        return CLI_FARM;
    }
    for (size_t i = 0; i < n && !r.bad; i++) {
        const msgpack_object *o = &ws->via.array.ptr[i];
        s_worker_t *w = &fg->w[i];
        cli_rd_str(&r, o, "id", true, &w->id);
        cli_rd_str(&r, o, "host", false, &w->host);
        cli_rd_str(&r, o, "state", true, &w->state);
        cli_rd_int(&r, o, "slots", true, &w->slots);
        cli_rd_int(&r, o, "busy", true, &w->busy);
        w->has_seen = cli_rd_int(&r, o, "last_seen_ms", false, &w->seen);
        cli_rd_int(&r, o, "completed", false, &w->done);
        cli_rd_int(&r, o, "failed", false, &w->fail);
        bytes += (size_t)w->id.len + w->host.len + w->state.len;
    }
    if (r.bad)
        return cli_malformed(r.why);
    /* Copy the strings: the reply lives only until the next request. */
    fg->strings = malloc(bytes ? bytes : 1);
    if (!fg->strings) {
        fprintf(stderr, "farm: out of memory\n");
        return CLI_FARM;
    }
    char *p = fg->strings;
    for (size_t i = 0; i < n; i++) {
        farm_str_t *ss[] = {&fg->w[i].id, &fg->w[i].host, &fg->w[i].state};
        for (size_t k = 0; k < 3; k++) {
            if (ss[k]->len)
                memcpy(p, ss[k]->ptr, ss[k]->len);
            ss[k]->ptr = p;
            p += ss[k]->len;
        }
    }
    fg->nw = n;
    return CLI_OK;
}

/* Every family of a worker, labelled {worker="..",host=".."}. */
static void s_worker_line(FILE *f, const char *name, const s_worker_t *w, double v) {
    fprintf(f, "%s{worker=\"", name);
    s_label(f, w->id);
    fputs("\",host=\"", f);
    s_label(f, w->host);
    fputs("\"} ", f);
    s_num(f, v);
    fputc('\n', f);
}

static void s_write(FILE *f, const s_figs_t *fg) {
    s_family(f, "farm_up", "gauge", "1 when the farm's front door answered.");
    fputs("farm_up 1\n", f);
    s_family(f, "farm_tasks", "gauge", "Tasks stored, by state.");
    for (int i = 0; i < FARM_STATE_COUNT; i++)
        fprintf(f, "farm_tasks{state=\"%s\"} %" PRId64 "\n", farm_state_name(i), fg->counts[i]);
    s_family(f, "farm_jobs", "gauge", "Jobs stored.");
    fprintf(f, "farm_jobs %" PRId64 "\n", fg->jobs);
    s_family(f, "farm_throughput_tasks_per_second", "gauge", "Tasks completed per second over a window.");
    if (fg->h10) {
        fputs("farm_throughput_tasks_per_second{window=\"10s\"} ", f);
        s_num(f, fg->t10);
        fputc('\n', f);
    }
    if (fg->h60) {
        fputs("farm_throughput_tasks_per_second{window=\"60s\"} ", f);
        s_num(f, fg->t60);
        fputc('\n', f);
    }
    s_family(f, "farm_latency_ms", "gauge", "Submission to final state over the last 60 s, milliseconds.");
    if (fg->h50)
        fprintf(f, "farm_latency_ms{quantile=\"0.5\"} %" PRId64 "\n", fg->p50);
    if (fg->h99)
        fprintf(f, "farm_latency_ms{quantile=\"0.99\"} %" PRId64 "\n", fg->p99);
    static const char *const wstates[] = {"alive", "draining", "lost"};
    s_family(f, "farm_workers", "gauge", "Workers known to the farm, by state.");
    for (size_t k = 0; k < 3; k++) {
        int64_t c = 0;
        for (size_t i = 0; i < fg->nw; i++)
            c += farm_str_eq(fg->w[i].state, wstates[k]);
        fprintf(f, "farm_workers{state=\"%s\"} %" PRId64 "\n", wstates[k], c);
    }
    s_family(f, "farm_slots", "gauge", "Task slots of the live workers.");
    fprintf(f, "farm_slots %" PRId64 "\n", fg->slots);
    s_family(f, "farm_slots_busy", "gauge", "Slots running a task.");
    fprintf(f, "farm_slots_busy %" PRId64 "\n", fg->busy);
    s_family(f, "farm_uptime_seconds", "gauge", "Seconds since the ventilator started.");
    fprintf(f, "farm_uptime_seconds %" PRId64 "\n", fg->up);
    if (fg->nw == 0)
        return;
    int64_t now = farm_now_ms();
    s_family(f, "farm_worker_up", "gauge", "1 when the worker is alive or draining, 0 when lost.");
    for (size_t i = 0; i < fg->nw; i++)
        s_worker_line(f, "farm_worker_up", &fg->w[i], farm_str_eq(fg->w[i].state, "lost") ? 0 : 1);
    s_family(f, "farm_worker_slots", "gauge", "Task slots of the worker.");
    for (size_t i = 0; i < fg->nw; i++)
        s_worker_line(f, "farm_worker_slots", &fg->w[i], (double)fg->w[i].slots);
    s_family(f, "farm_worker_busy", "gauge", "Slots of the worker running a task.");
    for (size_t i = 0; i < fg->nw; i++)
        s_worker_line(f, "farm_worker_busy", &fg->w[i], (double)fg->w[i].busy);
    s_family(f, "farm_worker_last_seen_seconds", "gauge", "Seconds since the worker's last heartbeat.");
    for (size_t i = 0; i < fg->nw; i++)
        if (fg->w[i].has_seen)
            s_worker_line(f, "farm_worker_last_seen_seconds", &fg->w[i],
                          (double)(now - fg->w[i].seen > 0 ? now - fg->w[i].seen : 0) / 1000.0);
    s_family(f, "farm_worker_completed_total", "counter", "Tasks the worker completed.");
    for (size_t i = 0; i < fg->nw; i++)
        s_worker_line(f, "farm_worker_completed_total", &fg->w[i], (double)fg->w[i].done);
    s_family(f, "farm_worker_failed_total", "counter", "Attempts that failed on the worker.");
    for (size_t i = 0; i < fg->nw; i++)
        s_worker_line(f, "farm_worker_failed_total", &fg->w[i], (double)fg->w[i].fail);
}

/* Write the text (fg NULL: farm_up 0 alone) to path through a temporary
 * file and a rename. Returns 0 or CLI_FARM after a message. */
static int s_write_file(const char *path, const s_figs_t *fg) {
    char tmp[4096];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp) {
        fprintf(stderr, "farm metrics: --out %s: name too long\n", path);
        return CLI_FARM;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        fprintf(stderr, "farm metrics: --out %s: %s\n", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        return CLI_FARM;
    }
    if (fg) {
        s_write(f, fg);
    } else {
        s_family(f, "farm_up", "gauge", "1 when the farm's front door answered.");
        fputs("farm_up 0\n", f);
    }
    int err = 0;
    if (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0)
        err = errno ? errno : EIO;
    if (fclose(f) != 0 && !err)
        err = errno ? errno : EIO;
    if (!err && rename(tmp, path) != 0)
        err = errno;
    if (err) {
        fprintf(stderr, "farm metrics: --out %s: %s\n", path, strerror(err));
        (void)unlink(tmp);
        return CLI_FARM;
    }
    return CLI_OK;
}

int cli_cmd_metrics(cli_t *cli, int argc, char **argv) {
    static const cli_help_t help = {
        "[OPTIONS]", "Print the farm's figures in Prometheus text format.",
        "One stats and one workers request: tasks by state, jobs, throughput, latency\n"
        "quantiles, workers by state, slots, and per worker slots, busy, heartbeat age and\n"
        "completed/failed counters. For a node exporter's textfile collector, e.g. every\n"
        "minute from cron or a systemd timer:\n"
        "  farm metrics --out /var/lib/node_exporter/textfile_collector/farm.prom\n"
        "--out writes a temporary file beside FILE and renames it over FILE, so the\n"
        "collector never reads half a file; when the farm does not answer FILE gets\n"
        "farm_up 0 alone (and the exit status is 3).\n"};
    const char *out = NULL;
    const cli_opt_t opts[] = {
        {"out", CLI_OPT_STR, &out, 0, 0, "FILE", "write to FILE atomically instead of stdout"},
    };
    char *pos[argc];
    int npos;
    int rc = cli_parse(cli, &help, opts, 1, argc, argv, pos, &npos, NULL, NULL);
    if (rc != CLI_CONTINUE)
        return rc;
    if (npos)
        return cli_usage(cli, "unexpected argument '%s'", pos[0]);
    if (out && !*out)
        return cli_usage(cli, "--out needs a file name");
    if (cli->json)
        return cli_usage(cli, "--json does not apply: the output is Prometheus text");
    s_figs_t fg = {0};
    rc = s_fetch(cli, &fg);
    if (rc == CLI_OK) {
        if (out) {
            rc = s_write_file(out, &fg);
        } else {
            s_write(stdout, &fg);
            if (fflush(stdout) != 0 || ferror(stdout)) {
                fprintf(stderr, "farm metrics: writing to stdout: %s\n", strerror(errno ? errno : EIO));
                rc = CLI_FARM;
            }
        }
    } else if (out && rc == CLI_FARM) {
        (void)s_write_file(out, NULL);
    }
    free(fg.w);
    free(fg.strings);
    return rc;
}
