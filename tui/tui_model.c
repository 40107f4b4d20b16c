/* tui_model: what the monitor knows about the farm.
 *
 * The same upserts serve both sources: a front-door reply (the truth,
 * polled at most twice a second) and the feed (live, lossy by design). A
 * JOBVIEW or worker map is applied the same way wherever it came from;
 * each record keeps when it was last touched, so a jobs sweep that began
 * before the feed announced a job does not delete it when the sweep ends.
 *
 * Decoding is defensive throughout: every field is looked up by key and
 * type-checked, a record without its id is ignored, and strings are
 * copied for display (control characters replaced) into fixed buffers.
 * Jobs are kept sorted by id, newest first, and found by binary search,
 * so a feed of job views costs O(log n) each; inserting a new (newest)
 * job is a memmove at the front, cheap for the thousands of jobs a screen
 * could show.
 */
#include "tui.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool s_utf8;

void tui_text_utf8(bool on) { s_utf8 = on; }

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t s_utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, min = 0x10000;
    else
        return 0;
    if (len > n)
        return 0;
    unsigned cp = c & (0xff >> (len + 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

void tui_text_copy(char *dst, size_t n, const char *s, size_t len) {
    if (n == 0)
        return;
    size_t o = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; s && i < len && o + 1 < n;) {
        unsigned c = u[i];
        if (c >= 0x80) {
            size_t l = s_utf8 ? s_utf8_len(u + i, len - i) : 0;
            if (l == 0) {
                dst[o++] = '?';
                i++;
                continue;
            }
            if (o + l >= n)
                break; /* never half a character */
            memcpy(dst + o, u + i, l);
            o += l;
            i += l;
            continue;
        }
        dst[o++] = c == '\t' ? ' ' : (c < 0x20 || c == 0x7f) ? '?' : (char)c;
        i++;
    }
    dst[o] = '\0';
}

bool tui_get_int(const msgpack_object *o, const char *key, int64_t *v) {
    const msgpack_object *x = o ? farm_msg_get(o, key) : NULL;
    if (!x)
        return false;
    if (x->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *v = x->via.u64 > INT64_MAX ? INT64_MAX : (int64_t)x->via.u64;
        return true;
    }
    if (x->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *v = x->via.i64;
        return true;
    }
    return false;
}

bool tui_get_num(const msgpack_object *o, const char *key, double *v) {
    const msgpack_object *x = o ? farm_msg_get(o, key) : NULL;
    if (!x)
        return false;
    switch (x->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER: *v = (double)x->via.u64; return true;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: *v = (double)x->via.i64; return true;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: *v = x->via.f64; return *v == *v; /* not NaN */
    default: return false;
    }
}

bool tui_get_str(const msgpack_object *o, const char *key, char *dst, size_t n) {
    const msgpack_object *x = o ? farm_msg_get(o, key) : NULL;
    if (n)
        dst[0] = '\0';
    if (!x)
        return false;
    if (x->type == MSGPACK_OBJECT_STR) {
        tui_text_copy(dst, n, x->via.str.ptr, x->via.str.size);
        return true;
    }
    if (x->type == MSGPACK_OBJECT_BIN) {
        tui_text_copy(dst, n, x->via.bin.ptr, x->via.bin.size);
        return true;
    }
    return false;
}

/* Update dst from the string at key when there is one; else leave it. */
static void s_upd_str(const msgpack_object *o, const char *key, char *dst, size_t n) {
    char tmp[TUI_TEXT_MAX];
    if (n <= sizeof tmp && tui_get_str(o, key, tmp, n))
        memcpy(dst, tmp, n);
}

/* State number of the string at key, or -1. */
static int s_get_state(const msgpack_object *o, const char *key) {
    const msgpack_object *x = o ? farm_msg_get(o, key) : NULL;
    if (!x || x->type != MSGPACK_OBJECT_STR)
        return -1;
    return farm_state_parse(x->via.str.ptr, x->via.str.size);
}

int tui_lines_add(tui_lines_t *l, const char *fmt, ...) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int rc = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (rc < 0)
        return -ENOMEM;
    l->v[l->n++] = s;
    return 0;
}

void tui_lines_clear(tui_lines_t *l) {
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

char *tui_fmt_dur(char *buf, size_t n, int64_t ms) {
    if (ms < 0)
        snprintf(buf, n, "-");
    else if (ms < 1000)
        snprintf(buf, n, "%lldms", (long long)ms);
    else if (ms < 60000)
        snprintf(buf, n, "%llds", (long long)(ms / 1000));
    else if (ms < 3600000)
        snprintf(buf, n, "%lldm%02llds", (long long)(ms / 60000), (long long)(ms / 1000 % 60));
    else if (ms < 86400000)
        snprintf(buf, n, "%lldh%02lldm", (long long)(ms / 3600000), (long long)(ms / 60000 % 60));
    else
        snprintf(buf, n, "%lldd%02lldh", (long long)(ms / 86400000), (long long)(ms / 3600000 % 24));
    return buf;
}

char *tui_fmt_count(char *buf, size_t n, int64_t v) {
    if (v < 10000)
        snprintf(buf, n, "%lld", (long long)v);
    else if (v < 1000000)
        snprintf(buf, n, "%.1fk", (double)v / 1e3);
    else if (v < 1000000000)
        snprintf(buf, n, "%.2fM", (double)v / 1e6);
    else
        snprintf(buf, n, "%.2fG", (double)v / 1e9);
    return buf;
}

/* ---- model ------------------------------------------------------------- */

void tui_model_init(tui_model_t *m) {
    memset(m, 0, sizeof *m);
    m->spark_completed = -1;
    m->sweep = 1;
}

void tui_model_free(tui_model_t *m) {
    free(m->jobs);
    free(m->workers);
    memset(m, 0, sizeof *m);
}

static void s_spark_push(tui_model_t *m, double v) {
    m->spark[m->spark_head] = v;
    m->spark_head = (m->spark_head + 1) % TUI_SPARK_MAX;
    if (m->spark_n < TUI_SPARK_MAX)
        m->spark_n++;
    m->rate_now = v;
}

void tui_model_stats(tui_model_t *m, const msgpack_object *o, bool from_feed, int64_t now_mono) {
    if (!o || o->type != MSGPACK_OBJECT_MAP)
        return;
    const msgpack_object *c = farm_msg_get(o, "counts");
    if (c && c->type == MSGPACK_OBJECT_MAP)
        for (int i = 0; i < FARM_STATE_COUNT; i++) {
            int64_t v;
            if (tui_get_int(c, farm_state_name(i), &v) && v >= 0)
                m->counts[i] = v;
        }
    tui_get_int(o, "jobs", &m->njobs);
    tui_get_int(o, "workers", &m->nworkers);
    tui_get_int(o, "slots", &m->slots);
    tui_get_int(o, "busy", &m->busy);
    tui_get_int(o, "uptime_s", &m->uptime_s);
    const msgpack_object *tp = farm_msg_get(o, "throughput");
    tui_get_num(tp, "10s", &m->tp10);
    tui_get_num(tp, "60s", &m->tp60);
    const msgpack_object *lat = farm_msg_get(o, "latency_ms");
    tui_get_int(lat, "p50", &m->p50);
    tui_get_int(lat, "p99", &m->p99);
    m->have_stats = true;
    if (!from_feed)
        return;
    m->feed_stats_mono = now_mono;
    /* A sample is the completed tasks since the previous stats message
     * per second; when that is unknown (first message, a delete or retry
     * made the count go down, a long gap) the 10-second mean stands in. */
    int64_t done = m->counts[FARM_TASK_COMPLETED];
    int64_t dt = now_mono - m->spark_mono;
    double v = m->tp10;
    if (m->spark_completed >= 0 && done >= m->spark_completed && dt >= 200 && dt <= 5000)
        v = (double)(done - m->spark_completed) * 1000.0 / (double)dt;
    if (v < 0)
        v = 0;
    s_spark_push(m, v);
    m->spark_completed = done;
    m->spark_mono = now_mono;
}

/* Index of job id, or where it would go (jobs sorted by id descending). */
static size_t s_job_pos(const tui_model_t *m, int64_t id, bool *found) {
    size_t lo = 0, hi = m->njob;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->jobs[mid].id == id) {
            *found = true;
            return mid;
        }
        if (m->jobs[mid].id > id)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

tui_job_t *tui_model_job_find(tui_model_t *m, int64_t id) {
    bool found;
    size_t i = s_job_pos(m, id, &found);
    return found ? &m->jobs[i] : NULL;
}

tui_job_t *tui_model_job(tui_model_t *m, const msgpack_object *o, int64_t now_mono) {
    int64_t id;
    if (!o || o->type != MSGPACK_OBJECT_MAP || !tui_get_int(o, "id", &id) || id <= 0)
        return NULL;
    bool found;
    size_t i = s_job_pos(m, id, &found);
    if (!found) {
        if (m->njob == m->capjob) {
            size_t cap = m->capjob ? m->capjob * 2 : 64;
            tui_job_t *p = realloc(m->jobs, cap * sizeof *p);
            if (!p)
                return NULL;
            m->jobs = p;
            m->capjob = cap;
        }
        memmove(&m->jobs[i + 1], &m->jobs[i], (m->njob - i) * sizeof *m->jobs);
        m->njob++;
        memset(&m->jobs[i], 0, sizeof m->jobs[i]);
        m->jobs[i].id = id;
        m->jobs[i].state = -1;
    }
    tui_job_t *j = &m->jobs[i];
    const msgpack_object *name = farm_msg_get(o, "name");
    if (name && name->type == MSGPACK_OBJECT_NIL)
        j->name[0] = '\0';
    else
        s_upd_str(o, "name", j->name, sizeof j->name);
    int st = s_get_state(o, "state");
    if (st >= 0)
        j->state = st;
    int64_t v;
    if (tui_get_int(o, "total", &v) && v >= 0)
        j->total = v;
    if (tui_get_int(o, "progress", &v) && v >= 0 && v <= 100)
        j->progress = v;
    tui_get_int(o, "created_ms", &j->created_ms);
    if (!tui_get_int(o, "finished_ms", &j->finished_ms))
        j->finished_ms = 0;
    const msgpack_object *c = farm_msg_get(o, "counts");
    if (c && c->type == MSGPACK_OBJECT_MAP)
        for (int k = 0; k < FARM_STATE_COUNT; k++)
            if (tui_get_int(c, farm_state_name(k), &v) && v >= 0)
                j->counts[k] = v;
    j->touched_mono = now_mono;
    return j;
}

void tui_model_sweep_end(tui_model_t *m) {
    size_t o = 0;
    for (size_t i = 0; i < m->njob; i++) {
        tui_job_t *j = &m->jobs[i];
        if (j->sweep == m->sweep || j->touched_mono >= m->sweep_start_mono)
            m->jobs[o++] = *j;
    }
    m->njob = o;
    m->jobs_loaded = true;
    m->sweep++;
    m->sweep_after = 0;
}

/* Index of worker id, or where it would go (sorted by name). */
static size_t s_worker_pos(const tui_model_t *m, const char *id, bool *found) {
    size_t lo = 0, hi = m->nworker;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->workers[mid].id, id);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

tui_worker_t *tui_model_worker(tui_model_t *m, const msgpack_object *o, uint32_t gen) {
    char id[TUI_NAME_MAX];
    if (!o || o->type != MSGPACK_OBJECT_MAP || !tui_get_str(o, "id", id, sizeof id) || !id[0])
        return NULL;
    bool found;
    size_t i = s_worker_pos(m, id, &found);
    if (!found) {
        if (m->nworker == m->capworker) {
            size_t cap = m->capworker ? m->capworker * 2 : 32;
            tui_worker_t *p = realloc(m->workers, cap * sizeof *p);
            if (!p)
                return NULL;
            m->workers = p;
            m->capworker = cap;
        }
        memmove(&m->workers[i + 1], &m->workers[i], (m->nworker - i) * sizeof *m->workers);
        m->nworker++;
        memset(&m->workers[i], 0, sizeof m->workers[i]);
        memcpy(m->workers[i].id, id, sizeof id);
        m->workers[i].state = TUI_W_UNKNOWN;
    }
    tui_worker_t *w = &m->workers[i];
    s_upd_str(o, "host", w->host, sizeof w->host);
    tui_get_int(o, "pid", &w->pid);
    tui_get_int(o, "slots", &w->slots);
    tui_get_int(o, "busy", &w->busy);
    tui_get_int(o, "last_seen_ms", &w->last_seen_ms);
    tui_get_int(o, "completed", &w->completed);
    tui_get_int(o, "failed", &w->failed);
    char st[16];
    if (tui_get_str(o, "state", st, sizeof st)) {
        w->state = TUI_W_UNKNOWN;
#define XX(e, s)                                                                                                       \
    if (strcmp(st, s) == 0)                                                                                            \
        w->state = TUI_W_##e;
        TUI_WSTATE_MAP(XX)
#undef XX
    }
    if (gen)
        w->gen = gen;
    return w;
}

void tui_model_workers_prune(tui_model_t *m, uint32_t gen) {
    size_t o = 0;
    for (size_t i = 0; i < m->nworker; i++)
        if (m->workers[i].gen == gen)
            m->workers[o++] = m->workers[i];
    m->nworker = o;
}

tui_fail_t *tui_model_fail(tui_model_t *m, int64_t task, int64_t job, int64_t attempt, int state,
                           const char *worker, int64_t ms) {
    /* One entry per task: its latest failed attempt. A later attempt
     * replaces the entry (its reason is asked again); the same attempt
     * seen twice (feed and front door) changes nothing but a final state. */
    for (size_t i = 0; i < m->nfail; i++) {
        tui_fail_t *f = &m->fails[i];
        if (f->task != task)
            continue;
        if (attempt <= f->attempt) {
            if (state == FARM_TASK_FAILED)
                f->state = state;
            return f;
        }
        memmove(&m->fails[i], &m->fails[i + 1], (m->nfail - i - 1) * sizeof m->fails[0]);
        m->nfail--;
        break;
    }
    /* Newest first: find where ms goes. */
    size_t pos = 0;
    while (pos < m->nfail && m->fails[pos].ms > ms)
        pos++;
    if (pos >= TUI_FAIL_MAX)
        return NULL;
    size_t n = m->nfail < TUI_FAIL_MAX ? m->nfail : TUI_FAIL_MAX - 1;
    memmove(&m->fails[pos + 1], &m->fails[pos], (n - pos) * sizeof m->fails[0]);
    m->nfail = n + 1;
    tui_fail_t *f = &m->fails[pos];
    memset(f, 0, sizeof *f);
    f->task = task;
    f->job = job;
    f->attempt = attempt;
    f->state = state;
    f->ms = ms;
    snprintf(f->worker, sizeof f->worker, "%s", worker ? worker : "");
    return f;
}

void tui_model_fail_reason(tui_model_t *m, int64_t task, const char *error) {
    for (size_t i = 0; i < m->nfail; i++)
        if (m->fails[i].task == task && !m->fails[i].has_error) {
            snprintf(m->fails[i].error, sizeof m->fails[i].error, "%s", error);
            m->fails[i].has_error = true;
        }
}
