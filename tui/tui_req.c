/* tui_req: what the monitor asks the front door, and what it does with
 * the answers.
 *
 * The poll cycle (every TUI_POLL_MS) asks for stats, workers and one page
 * of jobs: each at most twice a second, and never a second copy while
 * the first is still queued or in flight, so a farm that does not answer
 * accumulates nothing. The jobs list is read as a sweep of pages; when a
 * sweep ends, jobs it did not see are dropped (they were deleted), unless
 * the feed touched them meanwhile. The first full sweep is read page after
 * page at once (the initial picture); later sweeps go a page per cycle.
 * Open views refresh once a second; actions go ahead of everything.
 *
 * Replies are decoded defensively (tui_get_*): a reply with the wrong
 * shape updates nothing. Whether the front door answered at all sets its
 * connection state in the header.
 */
#include "tui.h"

#include "farm_err.h"
#include "farm_json.h"
#include "farm_time.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_JOBS_PAGE 500   /* jobs per page of the sweep */
#define S_REASONS 3       /* reason requests queued at most */
#define S_SEED_JOBS 3     /* newest jobs with failures whose failed tasks seed the panel */
#define S_TAIL_LINES 200  /* lines kept of stdout and of stderr */
#define S_STATS_EVERY_MS 500    /* stats from the front door at most this often */
#define S_WORKERS_EVERY_MS 1000 /* workers (their heartbeat ages) */
#define S_SWEEP_EVERY_MS 2000   /* a new jobs sweep (the feed keeps jobs live between) */
#define S_PAGE_EVERY_MS 500     /* the next page of a sweep after the first */
#define S_VIEW_EVERY_MS 1000    /* refresh of an open job page or task */
#define S_BACKOFF_MIN_MS 1000   /* polling pause after a request timed out, doubling */
#define S_BACKOFF_MAX_MS 8000

/* ---- building requests ------------------------------------------------- */

typedef struct {
    msgpack_sbuffer b;
    msgpack_packer pk;
} s_req_t;

static void s_begin(s_req_t *r, const char *op, uint32_t nkeys) {
    msgpack_sbuffer_init(&r->b);
    msgpack_packer_init(&r->pk, &r->b, msgpack_sbuffer_write);
    msgpack_pack_map(&r->pk, nkeys + 1);
    farm_pack_kv_str(&r->pk, "op", op);
}

static void s_send(tui_t *t, s_req_t *r, tui_rq_kind_t kind, int64_t a, int64_t b, int prio, const char *text) {
    if (tui_door_push(t->door, kind, a, b, prio, text, &r->b) != 0)
        tui_msg(t, true, "out of memory queueing a request");
    msgpack_sbuffer_destroy(&r->b);
}

static void s_req_simple(tui_t *t, tui_rq_kind_t kind, const char *op) {
    if (tui_door_pending(t->door, kind, -1))
        return;
    t->poll_at[kind == TUI_RQ_STATS ? 0 : 1] = INT64_MAX; /* until its reply schedules the next */
    s_req_t r;
    s_begin(&r, op, 0);
    s_send(t, &r, kind, 0, 0, TUI_PRIO_POLL, NULL);
}

static void s_req_jobs(tui_t *t) {
    if (tui_door_pending(t->door, TUI_RQ_JOBS, -1))
        return;
    if (t->m.sweep_after == 0)
        t->m.sweep_start_mono = farm_mono_ms();
    t->poll_at[2] = INT64_MAX; /* until its reply schedules the next */
    s_req_t r;
    s_begin(&r, "jobs", 2);
    farm_pack_kv_int(&r.pk, "after", t->m.sweep_after);
    farm_pack_kv_int(&r.pk, "limit", S_JOBS_PAGE);
    s_send(t, &r, TUI_RQ_JOBS, t->m.sweep_after, 0, TUI_PRIO_POLL, NULL);
}

static void s_req_job(tui_t *t, int64_t job, int prio) {
    if (tui_door_pending(t->door, TUI_RQ_JOB, job))
        return;
    s_req_t r;
    s_begin(&r, "status", 1);
    farm_pack_kv_int(&r.pk, "job", job);
    s_send(t, &r, TUI_RQ_JOB, job, 0, prio, NULL);
}

void tui_req_job_page(tui_t *t) {
    tui_jobview_t *v = &t->jv;
    if (!v->job || tui_door_pending(t->door, TUI_RQ_JV_TASKS, v->job))
        return;
    s_req_t r;
    s_begin(&r, "list", 3);
    farm_pack_kv_int(&r.pk, "job", v->job);
    farm_pack_kv_int(&r.pk, "after", v->afters[v->page]);
    farm_pack_kv_int(&r.pk, "limit", TUI_PAGE);
    s_send(t, &r, TUI_RQ_JV_TASKS, v->job, v->afters[v->page], TUI_PRIO_VIEW, NULL);
}

void tui_req_task(tui_t *t, bool result) {
    int64_t id = t->tv.task;
    if (!id)
        return;
    if (!tui_door_pending(t->door, TUI_RQ_TV_STATUS, id)) {
        s_req_t r;
        s_begin(&r, "status", 1);
        farm_pack_kv_int(&r.pk, "task", id);
        s_send(t, &r, TUI_RQ_TV_STATUS, id, 0, TUI_PRIO_VIEW, NULL);
    }
    if (result && !tui_door_pending(t->door, TUI_RQ_TV_RESULT, id)) {
        s_req_t r;
        s_begin(&r, "result", 1);
        farm_pack_kv_int(&r.pk, "task", id);
        s_send(t, &r, TUI_RQ_TV_RESULT, id, 0, TUI_PRIO_VIEW, NULL);
    }
}

void tui_req_action(tui_t *t, tui_act_t act, bool job, int64_t id, const char *what) {
    s_req_t r;
    s_begin(&r, act == TUI_ACT_CANCEL ? "cancel" : "retry", 1);
    farm_pack_kv_int(&r.pk, job ? "job" : "task", id);
    /* b: 1 for a job, 0 for a task; the reply handler refreshes accordingly. */
    s_send(t, &r, TUI_RQ_ACTION, id, job ? 1 : 0, TUI_PRIO_ACTION, what);
    tui_msg(t, false, "%s ...", what);
}

void tui_req_reasons(tui_t *t) {
    size_t queued = 0;
    for (size_t i = 0; i < t->m.nfail; i++)
        if (t->m.fails[i].asked && !t->m.fails[i].has_error && tui_door_pending(t->door, TUI_RQ_REASON, t->m.fails[i].task))
            queued++;
    /* Newest first: those are the ones on screen. */
    for (size_t i = 0; i < t->m.nfail && queued < S_REASONS; i++) {
        tui_fail_t *f = &t->m.fails[i];
        if (f->has_error || f->asked)
            continue;
        f->asked = true;
        s_req_t r;
        s_begin(&r, "status", 1);
        farm_pack_kv_int(&r.pk, "task", f->task);
        s_send(t, &r, TUI_RQ_REASON, f->task, 0, TUI_PRIO_LOW, NULL);
        queued++;
    }
}

void tui_req_poll(tui_t *t, int64_t now_mono) {
    t->next_poll_mono = now_mono + TUI_POLL_MS;
    t->poll_n++;
    if (now_mono < t->backoff_until)
        return;
    if (now_mono >= t->poll_at[0])
        s_req_simple(t, TUI_RQ_STATS, "stats");
    if (now_mono >= t->poll_at[1])
        s_req_simple(t, TUI_RQ_WORKERS, "workers");
    if (now_mono >= t->poll_at[2])
        s_req_jobs(t);
    if (now_mono >= t->view_at) {
        t->view_at = now_mono + S_VIEW_EVERY_MS;
        if (t->screen == TUI_S_JOB || (t->screen == TUI_S_TASK && t->jv.job))
            tui_req_job_page(t);
        if (t->screen == TUI_S_TASK && t->tv.task && !farm_state_final(t->tv.state))
            tui_req_task(t, t->tv.result_loaded == false);
    }
    tui_req_reasons(t);
}

/* When the next request of a polled kind may go. The monitor must not
 * load the farm it watches: a kind is asked again after its base interval
 * or four times its last latency, whichever is longer, so the TUI keeps
 * the front door busy a quarter of the time at most; and while the front
 * door does not answer at all, polling backs off up to S_BACKOFF_MAX_MS
 * (a request that timed out here is still being served there). */
static void s_schedule(tui_t *t, const tui_reply_t *r, int64_t now) {
    bool silent = r->rc == FARM_ETIMEOUT;
    if (silent) {
        t->backoff_ms = t->backoff_ms ? t->backoff_ms * 2 : S_BACKOFF_MIN_MS;
        if (t->backoff_ms > S_BACKOFF_MAX_MS)
            t->backoff_ms = S_BACKOFF_MAX_MS;
        t->backoff_until = now + t->backoff_ms;
    } else {
        t->backoff_ms = 0;
        t->backoff_until = 0;
    }
    int k = r->kind == TUI_RQ_STATS ? 0 : r->kind == TUI_RQ_WORKERS ? 1 : r->kind == TUI_RQ_JOBS ? 2 : -1;
    if (k < 0)
        return;
    /* (called after the reply was applied: sweep_after is 0 when a sweep just ended) */
    int64_t base = k == 0 ? S_STATS_EVERY_MS : k == 1 ? S_WORKERS_EVERY_MS
                   : !t->m.jobs_loaded ? 0 /* the initial picture: read on at once */
                   : t->m.sweep_after == 0 ? S_SWEEP_EVERY_MS : S_PAGE_EVERY_MS;
    int64_t gap = 4 * r->latency_ms;
    t->poll_at[k] = now + (gap > base ? gap : base);
    if (t->poll_at[k] < t->next_poll_mono)
        t->next_poll_mono = t->poll_at[k]; /* wake the loop for it */
}

/* ---- replies ----------------------------------------------------------- */

static const msgpack_object *s_array(const msgpack_object *o, const char *key) {
    const msgpack_object *a = o ? farm_msg_get(o, key) : NULL;
    return a && a->type == MSGPACK_OBJECT_ARRAY ? a : NULL;
}

static void s_on_jobs(tui_t *t, const tui_reply_t *r) {
    if (r->a != t->m.sweep_after)
        return; /* a page of a sweep that was restarted */
    const msgpack_object *jobs = s_array(&r->obj, "jobs");
    if (!jobs)
        return;
    int64_t now = farm_mono_ms();
    for (uint32_t i = 0; i < jobs->via.array.size; i++) {
        tui_job_t *j = tui_model_job(&t->m, &jobs->via.array.ptr[i], now);
        if (j)
            j->sweep = t->m.sweep;
    }
    int64_t next;
    if (tui_get_int(&r->obj, "next", &next) && next > t->m.sweep_after) {
        t->m.sweep_after = next; /* the next page when s_schedule says */
        return;
    }
    bool first = !t->m.jobs_loaded;
    tui_model_sweep_end(&t->m);
    if (first && !t->m.fails_seeded) {
        /* Seed the failures panel from the newest jobs that have failures. */
        t->m.fails_seeded = true;
        int asked = 0;
        for (size_t i = 0; i < t->m.njob && asked < S_SEED_JOBS; i++) {
            if (t->m.jobs[i].counts[FARM_TASK_FAILED] == 0)
                continue;
            s_req_t q;
            s_begin(&q, "list", 3);
            farm_pack_kv_int(&q.pk, "job", t->m.jobs[i].id);
            farm_pack_kv_str(&q.pk, "state", "failed");
            farm_pack_kv_int(&q.pk, "limit", 50);
            s_send(t, &q, TUI_RQ_FAILED, t->m.jobs[i].id, 0, TUI_PRIO_POLL, NULL);
            asked++;
        }
    }
}

static void s_on_workers(tui_t *t, const tui_reply_t *r) {
    const msgpack_object *ws = s_array(&r->obj, "workers");
    if (!ws)
        return;
    uint32_t gen = ++t->m.worker_gen;
    if (gen == 0)
        gen = ++t->m.worker_gen;
    for (uint32_t i = 0; i < ws->via.array.size; i++)
        tui_model_worker(&t->m, &ws->via.array.ptr[i], gen);
    tui_model_workers_prune(&t->m, gen);
}

/* A TASKVIEW into a tui_task_t. */
static bool s_task(const msgpack_object *o, tui_task_t *k) {
    memset(k, 0, sizeof *k);
    if (!o || o->type != MSGPACK_OBJECT_MAP || !tui_get_int(o, "id", &k->id) || k->id <= 0)
        return false;
    tui_get_int(o, "job", &k->job);
    tui_get_int(o, "attempts", &k->attempts);
    tui_get_int(o, "max_attempts", &k->max_attempts);
    tui_get_int(o, "progress", &k->progress);
    char st[16];
    k->state = tui_get_str(o, "state", st, sizeof st) ? farm_state_parse(st, strlen(st)) : -1;
    tui_get_str(o, "type", k->type, sizeof k->type);
    tui_get_str(o, "worker", k->worker, sizeof k->worker);
    if (!tui_get_str(o, "error", k->note, sizeof k->note))
        tui_get_str(o, "message", k->note, sizeof k->note);
    return true;
}

static void s_on_failed(tui_t *t, const tui_reply_t *r) {
    const msgpack_object *ts = s_array(&r->obj, "tasks");
    for (uint32_t i = 0; ts && i < ts->via.array.size; i++) {
        const msgpack_object *o = &ts->via.array.ptr[i];
        tui_task_t k;
        if (!s_task(o, &k))
            continue;
        int64_t fin = 0;
        tui_get_int(o, "finished_ms", &fin);
        tui_fail_t *f = tui_model_fail(&t->m, k.id, k.job, k.attempts, FARM_TASK_FAILED, k.worker, fin);
        char err[TUI_TEXT_MAX];
        if (f && tui_get_str(o, "error", err, sizeof err))
            tui_model_fail_reason(&t->m, k.id, err);
    }
}

static void s_on_reason(tui_t *t, const tui_reply_t *r) {
    if (r->rc == FARM_ENOTFOUND) {
        tui_model_fail_reason(&t->m, r->a, "(task deleted)");
        return;
    }
    if (r->rc != 0) {
        /* No answer: ask again in a later cycle. */
        for (size_t i = 0; i < t->m.nfail; i++)
            if (t->m.fails[i].task == r->a)
                t->m.fails[i].asked = false;
        return;
    }
    const msgpack_object *task = farm_msg_get(&r->obj, "task");
    /* A final task has no current worker: the last attempt's worker is the one. */
    const msgpack_object *h = s_array(task, "history");
    char worker[TUI_NAME_MAX] = "";
    if (!tui_get_str(task, "worker", worker, sizeof worker) && h && h->via.array.size)
        tui_get_str(&h->via.array.ptr[h->via.array.size - 1], "worker", worker, sizeof worker);
    for (size_t i = 0; worker[0] && i < t->m.nfail; i++)
        if (t->m.fails[i].task == r->a && !t->m.fails[i].worker[0])
            memcpy(t->m.fails[i].worker, worker, sizeof worker);
    char err[TUI_TEXT_MAX];
    if (tui_get_str(task, "error", err, sizeof err))
        tui_model_fail_reason(&t->m, r->a, err);
    else
        tui_model_fail_reason(&t->m, r->a, "(no reason recorded)");
}

static void s_on_jv_tasks(tui_t *t, const tui_reply_t *r) {
    tui_jobview_t *v = &t->jv;
    if (r->a != v->job || r->b != v->afters[v->page])
        return; /* for a page no longer shown */
    if (r->rc != 0) {
        tui_msg(t, true, "tasks of job %lld: %s", (long long)r->a, r->err.message);
        return;
    }
    const msgpack_object *ts = s_array(&r->obj, "tasks");
    if (!ts)
        return;
    tui_task_t *p = realloc(v->tasks, (ts->via.array.size ? ts->via.array.size : 1) * sizeof *p);
    if (!p)
        return;
    v->tasks = p;
    v->n = 0;
    for (uint32_t i = 0; i < ts->via.array.size; i++)
        if (s_task(&ts->via.array.ptr[i], &v->tasks[v->n]))
            v->n++;
    int64_t next;
    v->next = tui_get_int(&r->obj, "next", &next) && next > 0 ? next : 0;
    v->loaded = true;
    if (v->sel >= (int)v->n)
        v->sel = v->n ? (int)v->n - 1 : 0;
}

/* Wall time as local HH:MM:SS plus how long ago. */
static const char *s_when(char *buf, size_t n, const msgpack_object *o, const char *key) {
    int64_t ms;
    if (!tui_get_int(o, key, &ms) || ms <= 0)
        return "-";
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    char hms[16] = "?", ago[32];
    if (localtime_r(&s, &tm))
        strftime(hms, sizeof hms, "%H:%M:%S", &tm);
    snprintf(buf, n, "%s (%s ago)", hms, tui_fmt_dur(ago, sizeof ago, farm_now_ms() - ms));
    return buf;
}

static void s_on_tv_status(tui_t *t, const tui_reply_t *r) {
    tui_taskview_t *v = &t->tv;
    if (r->a != v->task)
        return;
    tui_lines_t *l = &v->status;
    tui_lines_clear(l);
    v->status_loaded = true;
    if (r->rc != 0) {
        tui_lines_add(l, "task %lld: %s", (long long)r->a, r->err.message);
        return;
    }
    const msgpack_object *o = farm_msg_get(&r->obj, "task");
    tui_task_t k;
    if (!s_task(o, &k)) {
        tui_lines_add(l, "task %lld: the reply has no task view", (long long)r->a);
        return;
    }
    bool was_final = farm_state_final(v->state);
    v->state = k.state;
    v->job = k.job;
    char b1[64], b2[64], b3[64], msg[TUI_TEXT_MAX], err[TUI_TEXT_MAX];
    int64_t prio = 0, s = 0, f = 0;
    tui_get_int(o, "priority", &prio);
    tui_lines_add(l, "task %lld   job %lld   type %s   state %s", (long long)k.id, (long long)k.job, k.type,
                  farm_state_name(k.state));
    tui_lines_add(l, "attempts %lld of %lld   progress %lld%%   priority %lld   worker %s", (long long)k.attempts,
                  (long long)k.max_attempts, (long long)k.progress, (long long)prio, k.worker[0] ? k.worker : "-");
    tui_lines_add(l, "created %s   started %s   finished %s", s_when(b1, sizeof b1, o, "created_ms"),
                  s_when(b2, sizeof b2, o, "started_ms"), s_when(b3, sizeof b3, o, "finished_ms"));
    if (tui_get_int(o, "started_ms", &s) && tui_get_int(o, "finished_ms", &f))
        tui_lines_add(l, "duration %s", tui_fmt_dur(b1, sizeof b1, f - s));
    if (tui_get_str(o, "message", msg, sizeof msg))
        tui_lines_add(l, "message: %s", msg);
    if (tui_get_str(o, "error", err, sizeof err))
        tui_lines_add(l, "error: %s", err);
    const msgpack_object *h = s_array(o, "history");
    if (h && h->via.array.size) {
        tui_lines_add(l, "%s", "");
        tui_lines_add(l, "attempt history:");
        tui_lines_add(l, "  %-3s %-16s %-22s %-9s %s", "#", "WORKER", "STARTED", "DURATION", "ERROR");
        for (uint32_t i = 0; i < h->via.array.size; i++) {
            const msgpack_object *e = &h->via.array.ptr[i];
            int64_t a = 0;
            char w[TUI_NAME_MAX], er[TUI_TEXT_MAX];
            tui_get_int(e, "attempt", &a);
            if (!tui_get_str(e, "worker", w, sizeof w))
                snprintf(w, sizeof w, "-");
            if (!tui_get_str(e, "error", er, sizeof er))
                snprintf(er, sizeof er, "-");
            bool hs = tui_get_int(e, "started_ms", &s), hf = tui_get_int(e, "finished_ms", &f);
            tui_lines_add(l, "  %-3lld %-16.16s %-22s %-9s %s", (long long)a, w, s_when(b1, sizeof b1, e, "started_ms"),
                          hs && hf ? tui_fmt_dur(b2, sizeof b2, f - s) : "-", er);
        }
    }
    if (farm_state_final(k.state) && !was_final)
        tui_req_task(t, true); /* it just ended: its result is in */
}

/* Split text (len bytes) into display lines, keeping the last max lines. */
static void s_tail(tui_lines_t *l, const char *text, size_t len, size_t max) {
    size_t nl = 0, start = 0;
    for (size_t i = 0; i < len; i++)
        nl += text[i] == '\n';
    size_t lines = nl + (len && text[len - 1] != '\n' ? 1 : 0);
    size_t skip = lines > max ? lines - max : 0;
    if (skip)
        tui_lines_add(l, "    ... %zu earlier lines", skip);
    size_t idx = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || text[i] == '\n') {
            if (i == len && i == start)
                break;
            if (idx++ >= skip) {
                char line[512];
                tui_text_copy(line, sizeof line, text + start, i - start);
                tui_lines_add(l, "    %s", line);
            }
            start = i + 1;
        }
    }
}

static void s_output(tui_lines_t *l, const msgpack_object *res, const char *key) {
    const msgpack_object *x = farm_msg_get(res, key);
    const char *p = NULL;
    size_t n = 0;
    if (x && x->type == MSGPACK_OBJECT_BIN)
        p = x->via.bin.ptr, n = x->via.bin.size;
    else if (x && x->type == MSGPACK_OBJECT_STR)
        p = x->via.str.ptr, n = x->via.str.size;
    else
        return;
    tui_lines_add(l, "%s (%zu bytes%s):", key, n, n ? ", last lines" : "");
    s_tail(l, p, n, S_TAIL_LINES);
}

static void s_on_tv_result(tui_t *t, const tui_reply_t *r) {
    tui_taskview_t *v = &t->tv;
    if (r->a != v->task)
        return;
    tui_lines_t *l = &v->result;
    tui_lines_clear(l);
    v->result_loaded = true;
    if (r->rc != 0) {
        tui_lines_add(l, "result: %s", r->err.message);
        return;
    }
    const msgpack_object *res = farm_msg_get(&r->obj, "result");
    if (!res || res->type == MSGPACK_OBJECT_NIL) {
        tui_lines_add(l, "result: none yet");
        return;
    }
    int64_t code, sig = 0, dur = 0;
    if (res->type == MSGPACK_OBJECT_MAP && tui_get_int(res, "exit_code", &code)) {
        tui_get_int(res, "signal", &sig);
        tui_get_int(res, "duration_ms", &dur);
        const msgpack_object *tr = farm_msg_get(res, "truncated");
        char d[32];
        tui_lines_add(l, "result: exit code %lld, signal %lld, ran %s%s", (long long)code, (long long)sig,
                      tui_fmt_dur(d, sizeof d, dur),
                      tr && tr->type == MSGPACK_OBJECT_BOOLEAN && tr->via.boolean ? ", output truncated" : "");
        s_output(l, res, "stdout");
        s_output(l, res, "stderr");
        return;
    }
    /* Any other handler's result: as JSON, folded into lines. */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        tui_lines_add(l, "result: (cannot show: %s)", strerror(errno));
        return;
    }
    int rc = farm_json_write(f, res, 2);
    if (fclose(f) != 0 || rc != 0) {
        free(buf);
        tui_lines_add(l, "result: (cannot show)");
        return;
    }
    tui_lines_add(l, "result:");
    s_tail(l, buf, len, S_TAIL_LINES);
    free(buf);
}

static void s_on_action(tui_t *t, const tui_reply_t *r) {
    bool job = r->b == 1;
    if (r->rc != 0) {
        tui_msg(t, true, "%s: %s%s%s", r->text, farm_err_name(r->rc), r->err.message[0] ? ": " : "",
                r->err.message);
    } else {
        int64_t n = 0;
        const char *key = strncmp(r->text, "cancel", 6) == 0 ? "cancelled" : "retried";
        tui_get_int(&r->obj, key, &n);
        tui_msg(t, false, "%s: %lld task%s %s", r->text, (long long)n, n == 1 ? "" : "s", key);
    }
    /* Show the effect without waiting for the next cycle. */
    if (job)
        s_req_job(t, r->a, TUI_PRIO_VIEW);
    if (t->jv.job)
        tui_req_job_page(t);
    if (t->tv.task)
        tui_req_task(t, true);
}

void tui_req_reply(tui_t *t, tui_reply_t *r) {
    /* Whether the front door answered at all. */
    if (r->rc == FARM_ETIMEOUT || (r->rc < 0 && r->rc > FARM_E__FIRST) || r->rc == FARM_EPROTO) {
        t->m.door_state = -1;
        snprintf(t->m.door_err, sizeof t->m.door_err, "%s", r->err.message);
    } else {
        t->m.door_state = 1;
        t->m.door_err[0] = '\0';
    }
    bool ok = r->rc == 0 && r->obj.type == MSGPACK_OBJECT_MAP;
    switch (r->kind) {
    case TUI_RQ_STATS:
        if (ok)
            tui_model_stats(&t->m, &r->obj, false, farm_mono_ms());
        break;
    case TUI_RQ_WORKERS:
        if (ok)
            s_on_workers(t, r);
        break;
    case TUI_RQ_JOBS:
        if (ok)
            s_on_jobs(t, r);
        break;
    case TUI_RQ_JOB:
        if (ok) {
            tui_job_t *j = tui_model_job(&t->m, farm_msg_get(&r->obj, "job"), farm_mono_ms());
            if (j)
                j->sweep = t->m.sweep;
        }
        break;
    case TUI_RQ_FAILED:
        if (ok)
            s_on_failed(t, r);
        break;
    case TUI_RQ_REASON: s_on_reason(t, r); break;
    case TUI_RQ_JV_TASKS: s_on_jv_tasks(t, r); break;
    case TUI_RQ_TV_STATUS: s_on_tv_status(t, r); break;
    case TUI_RQ_TV_RESULT: s_on_tv_result(t, r); break;
    case TUI_RQ_ACTION: s_on_action(t, r); break;
    }
    s_schedule(t, r, farm_mono_ms());
}
