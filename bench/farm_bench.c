/* farm-bench: the load generator of scripts/bench. It talks to a running
 * farm only through the front door (farm_client, as the `farm` command
 * does) and the status feed, and prints one `key=value` line per run.
 *
 *   throughput  one client submits N tasks, B per request (each request
 *               keyed, as the `farm` command sends them), and polls
 *               `stats` every P ms until every one is final or the time
 *               cap passes. Rate = tasks final / (last poll that saw them
 *               - first submit); a capped run reports what completed by
 *               the cap. While it runs it samples the resident memory
 *               (VmRSS, and its anonymous part RssAnon) of the pids
 *               given at every poll: peak, and growth from the run's
 *               second quarter to its last.
 *   latency     N sequential one-task no-op submits (round trip of each,
 *               after 200 unmeasured), back to back: each while the farm
 *               runs the task before it. With --paced P --gap-us G, then
 *               P submits on a fixed schedule, one every G us, each timed
 *               from its scheduled moment (a late start counts against
 *               it), which the farm between them spends running the
 *               task. Then M sequential tasks timed from sending the
 *               submit to the arrival of their `completed` event on the
 *               status feed (falling back to polling `status` if the feed,
 *               which may drop, never says).
 *   status      N `status` calls on random stored task ids and N `list`
 *               pages of 100 rows after random ids (after 100 unmeasured
 *               of each); assumes ids 1..total, as a farm that never
 *               deleted a job has.
 *   idle        wait (up to --cap-s) until nothing is pending, running or
 *               retrying: what a capped run left behind is done.
 *   makespan    one job of N sleep tasks whose lengths are drawn
 *               log-uniform from MIN..MAX ms with a fixed seed (one of
 *               them MAX), timed from the submit to the last `completed`
 *               event, against the ideal max(total work / slots, longest)
 *               and against fifo_ms, what a dispatcher with no overhead
 *               taking the tasks in submission order would need.
 *               --priority longest gives each task a priority from its
 *               length class (0..100 on the log scale of MIN..MAX), as a
 *               user who knows the sizes would; order_ms is then the
 *               no-overhead schedule in that order (priority, then
 *               submission), which the farm's dispatch follows.
 *
 * Every loop is bounded by a count or a deadline; every wait has one.
 */
#include "bench.h"

#include "farm_client.h"
#include "farm_err.h"
#include "farm_msg.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_TIMEOUT_MS 60000 /* one front-door request */
#define S_WARMUP 200       /* unmeasured submits before the latency samples (as base_reqrep) */
#define S_MAX_SAMPLES 4096 /* RSS samples kept */

typedef struct {
    const char *front, *feed, *task_json;
    int64_t n, m, batch, cap_s, poll_ms, slots, seed, min_ms, max_ms, paced, gap_us;
    bool longest_first; /* makespan: priorities by length class, longest first */
    long vent_pid, sink_pid;
} s_opts_t;

typedef struct {
    farm_client_t *c;
    msgpack_zone z;
    msgpack_object r;
} s_conn_t;

static void s_die(const char *what, int rc, const farm_error_t *e) {
    fprintf(stderr, "farm-bench: %s: %s (%s)\n", what, e ? e->message : "", farm_err_name(rc));
    exit(1);
}

static int s_conn_open(s_conn_t *k, const char *front) {
    k->c = farm_client_new(front, S_TIMEOUT_MS, 2);
    if (!k->c || !msgpack_zone_init(&k->z, 65536)) {
        fprintf(stderr, "farm-bench: cannot open a client of %s\n", front);
        return -1;
    }
    return 0;
}

static void s_conn_close(s_conn_t *k) {
    farm_client_destroy(&k->c);
    msgpack_zone_destroy(&k->z);
}

/* One request; the reply is in k->r until the next call. */
static int s_call(s_conn_t *k, const void *req, size_t len, farm_error_t *e) {
    msgpack_zone_clear(&k->z);
    return farm_client_call(k->c, req, len, &k->z, &k->r, e);
}

static int64_t s_get_int(const msgpack_object *o, const char *key) {
    const msgpack_object *v = farm_msg_get(o, key);
    if (!v)
        return 0;
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (int64_t)v->via.u64;
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return v->via.i64;
    return 0;
}

static void s_pack_op(msgpack_sbuffer *sb, const char *op, const char *k1, int64_t v1, const char *k2, int64_t v2) {
    msgpack_packer pk;
    msgpack_sbuffer_clear(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2 + (k1 != NULL) + (k2 != NULL));
    farm_pack_kv_str(&pk, "op", op);
    farm_pack_kv_int(&pk, "v", 1);
    if (k1)
        farm_pack_kv_int(&pk, k1, v1);
    if (k2)
        farm_pack_kv_int(&pk, k2, v2);
}

/* Task counts of the whole farm from `stats`. */
typedef struct {
    int64_t pending, running, retrying, completed, failed, cancelled;
} s_counts_t;

static int s_stats(s_conn_t *k, s_counts_t *c) {
    static msgpack_sbuffer sb;
    static bool init;
    if (!init) {
        msgpack_sbuffer_init(&sb);
        s_pack_op(&sb, "stats", NULL, 0, NULL, 0);
        init = true;
    }
    farm_error_t e;
    int rc = s_call(k, sb.data, sb.size, &e);
    if (rc)
        s_die("stats", rc, &e);
    const msgpack_object *m = farm_msg_get(&k->r, "counts");
    c->pending = s_get_int(m, "pending");
    c->running = s_get_int(m, "running");
    c->retrying = s_get_int(m, "retrying");
    c->completed = s_get_int(m, "completed");
    c->failed = s_get_int(m, "failed");
    c->cancelled = s_get_int(m, "cancelled");
    return 0;
}

static int64_t s_final(const s_counts_t *c) { return c->completed + c->failed + c->cancelled; }

/* Submit the prepared request, retrying `busy` every 50 ms until deadline
 * (monotonic us). Returns 0, or 1 when the deadline passed first. */
static int s_submit(s_conn_t *k, const msgpack_sbuffer *req, int64_t deadline) {
    for (;;) {
        farm_error_t e;
        int rc = s_call(k, req->data, req->size, &e);
        if (rc == 0)
            return 0;
        if (rc != FARM_EBUSY)
            s_die("submit", rc, &e);
        if (bench_now_us() >= deadline)
            return 1;
        bench_sleep_us(50000);
    }
}

/* ---- resident memory -------------------------------------------------- */

/* Series: 0 ventilator VmRSS, 1 its RssAnon, 2 sink VmRSS, 3 its RssAnon. */
typedef struct {
    int64_t t[S_MAX_SAMPLES];
    int64_t kb[4][S_MAX_SAMPLES];
    size_t n;
} s_rss_t;

static void s_rss_sample(s_rss_t *r, const s_opts_t *o, int64_t t) {
    if (r->n == S_MAX_SAMPLES) { /* keep every other sample: still spans the run */
        for (size_t i = 0; i < S_MAX_SAMPLES / 2; i++) {
            r->t[i] = r->t[2 * i];
            for (int k = 0; k < 4; k++)
                r->kb[k][i] = r->kb[k][2 * i];
        }
        r->n = S_MAX_SAMPLES / 2;
    }
    r->t[r->n] = t;
    for (int k = 0; k < 4; k++)
        r->kb[k][r->n] = -1;
    if (o->vent_pid)
        bench_rss_kb(o->vent_pid, &r->kb[0][r->n], &r->kb[1][r->n]);
    if (o->sink_pid)
        bench_rss_kb(o->sink_pid, &r->kb[2][r->n], &r->kb[3][r->n]);
    r->n++;
}

/* Peak, and growth: the peak of the run's last quarter minus the peak of
 * its second quarter (by time). The first quarter is left out: caches and
 * buffers filling at the start are not growth; a leak shows between the
 * later quarters. */
static void s_rss_print(const s_rss_t *r, int which, const char *name) {
    int64_t peak = -1, q2 = -1, q4 = -1;
    if (r->n > 0) {
        int64_t t0 = r->t[0], span = r->t[r->n - 1] - t0;
        for (size_t i = 0; i < r->n; i++) {
            int64_t kb = r->kb[which][i], at = r->t[i] - t0;
            if (kb > peak)
                peak = kb;
            if (at >= span / 4 && at <= span / 2 && kb > q2)
                q2 = kb;
            if (at >= span - span / 4 && kb > q4)
                q4 = kb;
        }
    }
    printf(" %s_peak_kb=%" PRId64 " %s_growth_kb=%" PRId64, name, peak, name, q2 >= 0 && q4 >= 0 ? q4 - q2 : 0);
}

/* ---- throughput ------------------------------------------------------- */

static int s_throughput(const s_opts_t *o) {
    s_conn_t k;
    if (s_conn_open(&k, o->front))
        return 1;
    msgpack_sbuffer task, req;
    msgpack_sbuffer_init(&task);
    msgpack_sbuffer_init(&req);
    if (bench_task_from_json(&task, o->task_json))
        return 1;
    static s_rss_t rss;
    s_counts_t c;
    s_stats(&k, &c);
    int64_t base = s_final(&c), base_failed = c.failed + c.cancelled;
    int64_t t0 = bench_now_us(), deadline = t0 + o->cap_s * 1000000, poll_us = o->poll_ms * 1000;
    int64_t next_poll = t0 + poll_us, sent = 0, done = 0, t_submitted = 0, t_end = 0, reqs = 0;
    bool capped = false;
    s_rss_sample(&rss, o, t0);
    while (sent < o->n) {
        int64_t b = o->n - sent < o->batch ? o->n - sent : o->batch;
        char key[64];
        bench_key(key, sizeof key, (uint64_t)reqs++);
        msgpack_sbuffer_clear(&req);
        bench_pack_submit(&req, task.data, task.size, (size_t)b, key);
        if (s_submit(&k, &req, deadline)) {
            capped = true;
            break;
        }
        sent += b;
        int64_t now = bench_now_us();
        if (now >= next_poll) {
            s_stats(&k, &c);
            done = s_final(&c) - base;
            s_rss_sample(&rss, o, now);
            next_poll = now + poll_us;
        }
        if (now >= deadline) {
            capped = sent < o->n;
            break;
        }
    }
    t_submitted = bench_now_us();
    while (!capped) {
        s_stats(&k, &c);
        int64_t now = bench_now_us(); /* after the reply: the tasks were final by then */
        done = s_final(&c) - base;
        s_rss_sample(&rss, o, now);
        if (done >= sent) {
            t_end = now;
            break;
        }
        if (now >= deadline) {
            capped = true;
            break;
        }
        bench_sleep_us(next_poll - bench_now_us());
        next_poll += poll_us;
    }
    if (capped) { /* what finished by the cap, over the time to the cap */
        t_end = bench_now_us();
        s_stats(&k, &c);
        done = s_final(&c) - base;
    }
    double el = (double)(t_end - t0) / 1e6;
    printf("n=%" PRId64 " submitted=%" PRId64 " done=%" PRId64 " failed=%" PRId64 " capped=%d elapsed_s=%.3f"
           " submit_s=%.3f rate=%.0f",
           o->n, sent, done, c.failed + c.cancelled - base_failed, capped ? 1 : 0, el,
           (double)(t_submitted - t0) / 1e6, (double)done / el);
    s_rss_print(&rss, 0, "vent_rss");
    s_rss_print(&rss, 1, "vent_anon");
    s_rss_print(&rss, 2, "sink_rss");
    s_rss_print(&rss, 3, "sink_anon");
    printf(" rss_samples=%zu\n", rss.n);
    msgpack_sbuffer_destroy(&task);
    msgpack_sbuffer_destroy(&req);
    s_conn_close(&k);
    return 0;
}

/* ---- the feed ----------------------------------------------------------- */

typedef struct {
    void *ctx, *sub;
} s_feed_t;

static int s_feed_open(s_feed_t *f, const char *ep) {
    int hwm = 1000000, linger = 0;
    f->ctx = zmq_ctx_new();
    f->sub = f->ctx ? zmq_socket(f->ctx, ZMQ_SUB) : NULL;
    if (!f->sub || zmq_setsockopt(f->sub, ZMQ_RCVHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(f->sub, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_setsockopt(f->sub, ZMQ_SUBSCRIBE, "task", 4) || zmq_connect(f->sub, ep)) {
        fprintf(stderr, "farm-bench: cannot subscribe to %s: %s\n", ep, zmq_strerror(errno));
        return -1;
    }
    return 0;
}

static void s_feed_close(s_feed_t *f) {
    if (f->sub)
        zmq_close(f->sub);
    if (f->ctx)
        zmq_ctx_term(f->ctx);
}

typedef void(s_event_fn)(void *ud, int64_t id, bool completed, int64_t t_us);

/* Wait up to wait_ms for one feed message and hand each task event in it
 * to fn with the local receive time. Returns messages read (0 or 1). */
static int s_feed_read(s_feed_t *f, long wait_ms, s_event_fn *fn, void *ud) {
    zmq_pollitem_t it = {.socket = f->sub, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, wait_ms) <= 0)
        return 0;
    zmq_msg_t topic, body;
    zmq_msg_init(&topic);
    zmq_msg_init(&body);
    int got = 0;
    if (zmq_msg_recv(&topic, f->sub, ZMQ_DONTWAIT) >= 0 && zmq_msg_more(&topic) &&
        zmq_msg_recv(&body, f->sub, 0) >= 0) {
        int64_t t = bench_now_us();
        got = 1;
        msgpack_zone z;
        msgpack_object o;
        farm_error_t e;
        if (msgpack_zone_init(&z, 4096)) {
            if (farm_msg_unpack(zmq_msg_data(&body), zmq_msg_size(&body), &z, &o, &e) == 0) {
                const msgpack_object *ev = farm_msg_get(&o, "events");
                for (uint32_t i = 0; ev && ev->type == MSGPACK_OBJECT_ARRAY && i < ev->via.array.size; i++) {
                    const msgpack_object *x = &ev->via.array.ptr[i];
                    const msgpack_object *st = farm_msg_get(x, "state");
                    bool completed = st && st->type == MSGPACK_OBJECT_STR &&
                                     farm_str_eq((farm_str_t){st->via.str.ptr, st->via.str.size}, "completed");
                    fn(ud, s_get_int(x, "id"), completed, t);
                }
            }
            msgpack_zone_destroy(&z);
        }
    }
    zmq_msg_close(&topic);
    zmq_msg_close(&body);
    return got;
}

/* Drain whatever the feed holds now (bounded). */
static void s_ignore(void *ud, int64_t id, bool completed, int64_t t) {
    (void)ud, (void)id, (void)completed, (void)t;
}
static void s_feed_drain(s_feed_t *f) {
    for (int i = 0; i < 1000000 && s_feed_read(f, 0, s_ignore, NULL); i++)
        ;
}

/* Submit one task of `task` (packed spec); its id into *id. */
static int64_t s_submit_one(s_conn_t *k, const msgpack_sbuffer *task, uint64_t n) {
    static msgpack_sbuffer req;
    static bool init;
    if (!init) {
        msgpack_sbuffer_init(&req);
        init = true;
    }
    char key[64];
    bench_key(key, sizeof key, n);
    msgpack_sbuffer_clear(&req);
    bench_pack_submit(&req, task->data, task->size, 1, key);
    farm_error_t e;
    int rc = s_call(k, req.data, req.size, &e);
    if (rc)
        s_die("submit", rc, &e);
    const msgpack_object *ids = farm_msg_get(&k->r, "tasks");
    if (!ids || ids->type != MSGPACK_OBJECT_ARRAY || ids->via.array.size != 1)
        s_die("submit reply without one task id", FARM_EPROTO, NULL);
    return (int64_t)ids->via.array.ptr[0].via.u64;
}

/* Wait (bounded) until the farm has nothing pending or running. */
static void s_wait_idle(s_conn_t *k, int64_t max_ms) {
    s_counts_t c;
    for (int64_t end = bench_now_us() + max_ms * 1000; bench_now_us() < end;) {
        s_stats(k, &c);
        if (c.pending + c.running + c.retrying == 0)
            return;
        bench_sleep_us(10000);
    }
    fprintf(stderr, "farm-bench: the farm did not go idle within %" PRId64 " ms\n", max_ms);
}

/* Is task id completed, by `status`? false also when the call fails. */
static bool s_task_completed(s_conn_t *k, int64_t id) {
    static msgpack_sbuffer sb;
    static bool init;
    if (!init) {
        msgpack_sbuffer_init(&sb);
        init = true;
    }
    s_pack_op(&sb, "status", "task", id, NULL, 0);
    farm_error_t e;
    if (s_call(k, sb.data, sb.size, &e))
        return false;
    const msgpack_object *st = farm_msg_get(farm_msg_get(&k->r, "task"), "state");
    return st && st->type == MSGPACK_OBJECT_STR && farm_str_eq((farm_str_t){st->via.str.ptr, st->via.str.size},
                                                               "completed");
}

/* ---- latency ------------------------------------------------------------ */

typedef struct {
    int64_t want, t;
} s_one_t;

static void s_on_one(void *ud, int64_t id, bool completed, int64_t t) {
    s_one_t *w = ud;
    if (completed && id == w->want && !w->t)
        w->t = t;
}

static int s_latency(const s_opts_t *o) {
    s_conn_t k;
    s_feed_t f = {0};
    if (s_conn_open(&k, o->front) || s_feed_open(&f, o->feed))
        return 1;
    msgpack_sbuffer task;
    msgpack_sbuffer_init(&task);
    if (bench_task_from_json(&task, "{\"type\":\"noop\"}"))
        return 1;
    bench_samples_t sub = {0}, e2e = {0};
    uint64_t seq = 0;
    for (int64_t i = 0; i < S_WARMUP + o->n; i++) {
        int64_t t0 = bench_now_us();
        (void)s_submit_one(&k, &task, seq++);
        int64_t t1 = bench_now_us();
        if (i >= S_WARMUP)
            bench_samples_add(&sub, t1 - t0);
        if (i % 256 == 0)
            s_feed_drain(&f);
    }
    bench_samples_t pac = {0};
    if (o->paced > 0) {
        if (o->m > 0)
            s_wait_idle(&k, 30000);
        int64_t t0 = bench_now_us() + o->gap_us;
        for (int64_t i = 0; i < o->paced; i++) {
            int64_t at = t0 + i * o->gap_us, now = bench_now_us();
            if (at > now)
                bench_sleep_us(at - now);
            int64_t t1 = bench_now_us();
            (void)s_submit_one(&k, &task, seq++);
            bench_samples_add(&pac, bench_now_us() - t1);
            if (i % 256 == 0)
                s_feed_drain(&f);
        }
    }
    if (o->m > 0) /* --m 0: submits only (a farm without workers never goes idle) */
        s_wait_idle(&k, 30000);
    s_feed_drain(&f);
    int64_t fallbacks = 0;
    for (int64_t i = 0; i < o->m; i++) {
        s_one_t w = {0, 0};
        int64_t t0 = bench_now_us();
        w.want = s_submit_one(&k, &task, seq++);
        int64_t deadline = t0 + 5000000;
        for (int64_t now = bench_now_us(); !w.t && now < deadline; now = bench_now_us())
            s_feed_read(&f, (long)((deadline - now) / 1000) + 1, s_on_one, &w);
        if (!w.t) { /* the feed dropped it: ask the front door (1 ms polls, bounded) */
            fprintf(stderr, "farm-bench: no completed event for task %" PRId64 " in 5 s; polling status\n", w.want);
            fallbacks++;
            for (int j = 0; j < 10000 && !w.t; j++) {
                if (s_task_completed(&k, w.want))
                    w.t = bench_now_us();
                else
                    bench_sleep_us(1000);
            }
            if (!w.t)
                s_die("a latency task never completed", FARM_ETIMEOUT, NULL);
        }
        bench_samples_add(&e2e, w.t - t0);
        bench_sleep_us(2000); /* an idle farm between tasks */
    }
    printf("n=%" PRId64 " m=%" PRId64 " submit_p50_us=%" PRId64 " submit_p99_us=%" PRId64 " e2e_p50_us=%" PRId64
           " e2e_p99_us=%" PRId64 " feed_fallbacks=%" PRId64,
           o->n, o->m, bench_samples_pct(&sub, 50), bench_samples_pct(&sub, 99), bench_samples_pct(&e2e, 50),
           bench_samples_pct(&e2e, 99), fallbacks);
    if (o->paced > 0)
        printf(" paced=%" PRId64 " gap_us=%" PRId64 " paced_p50_us=%" PRId64 " paced_p99_us=%" PRId64, o->paced,
               o->gap_us, bench_samples_pct(&pac, 50), bench_samples_pct(&pac, 99));
    printf("\n");
    bench_samples_free(&sub);
    bench_samples_free(&pac);
    bench_samples_free(&e2e);
    msgpack_sbuffer_destroy(&task);
    s_feed_close(&f);
    s_conn_close(&k);
    return 0;
}

/* ---- status and list ------------------------------------------------------ */

static int s_status(const s_opts_t *o) {
    s_conn_t k;
    if (s_conn_open(&k, o->front))
        return 1;
    s_counts_t c;
    s_stats(&k, &c);
    int64_t total = c.pending + c.running + c.retrying + c.completed + c.failed + c.cancelled;
    if (total < 1) {
        fprintf(stderr, "farm-bench: status needs stored tasks\n");
        return 1;
    }
    bench_rng_t rng;
    bench_rng_seed(&rng, (uint64_t)o->seed);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    bench_samples_t st = {0}, li = {0};
    for (int pass = 0; pass < 2; pass++)
        for (int64_t i = -100; i < o->n; i++) { /* 100 unmeasured first */
            if (pass == 0)
                s_pack_op(&sb, "status", "task", 1 + (int64_t)(bench_rng_next(&rng) % (uint64_t)total), NULL, 0);
            else
                s_pack_op(&sb, "list", "after",
                          (int64_t)(bench_rng_next(&rng) % (uint64_t)(total > 100 ? total - 100 : 1)), "limit",
                          100);
            farm_error_t e;
            int64_t t0 = bench_now_us();
            int rc = s_call(&k, sb.data, sb.size, &e);
            int64_t t1 = bench_now_us();
            if (rc)
                s_die(pass ? "list" : "status", rc, &e);
            if (i >= 0)
                bench_samples_add(pass ? &li : &st, t1 - t0);
        }
    printf("stored=%" PRId64 " n=%" PRId64 " status_p50_us=%" PRId64 " status_p99_us=%" PRId64 " list_p50_us=%" PRId64
           " list_p99_us=%" PRId64 "\n",
           total, o->n, bench_samples_pct(&st, 50), bench_samples_pct(&st, 99), bench_samples_pct(&li, 50),
           bench_samples_pct(&li, 99));
    bench_samples_free(&st);
    bench_samples_free(&li);
    msgpack_sbuffer_destroy(&sb);
    s_conn_close(&k);
    return 0;
}

/* ---- makespan ----------------------------------------------------------- */

typedef struct {
    int64_t lo, n, count, last;
    unsigned char *seen;
} s_many_t;

static void s_on_many(void *ud, int64_t id, bool completed, int64_t t) {
    s_many_t *w = ud;
    if (!completed || id < w->lo || id >= w->lo + w->n || w->seen[id - w->lo])
        return;
    w->seen[id - w->lo] = 1;
    w->count++;
    w->last = t;
}

/* The makespan of tasks ms[order[0..n)] taken in that order onto the first
 * free of `slots` slots, with no overhead at all. */
static int64_t s_schedule(const int64_t *ms, const int64_t *order, int64_t n, int64_t slots) {
    int64_t *free_at = calloc((size_t)slots, sizeof *free_at), span = 0;
    if (!free_at)
        return -1;
    for (int64_t i = 0; i < n; i++) {
        int64_t best = 0;
        for (int64_t j = 1; j < slots; j++)
            if (free_at[j] < free_at[best])
                best = j;
        free_at[best] += ms[order[i]];
        if (free_at[best] > span)
            span = free_at[best];
    }
    free(free_at);
    return span;
}

static int s_makespan(const s_opts_t *o) {
    s_conn_t k;
    s_feed_t f = {0};
    if (s_conn_open(&k, o->front) || s_feed_open(&f, o->feed))
        return 1;
    bench_rng_t rng;
    bench_rng_seed(&rng, (uint64_t)o->seed);
    int64_t *ms = calloc((size_t)o->n, sizeof *ms), sum = 0, longest = 0;
    s_many_t w = {.n = o->n, .seen = calloc((size_t)o->n, 1)};
    if (!ms || !w.seen)
        return 1;
    double lmin = log((double)o->min_ms), lmax = log((double)o->max_ms);
    for (int64_t i = 0; i < o->n; i++)
        ms[i] = (int64_t)llround(exp(lmin + bench_rng_unit(&rng) * (lmax - lmin)));
    int64_t longest_at = (int64_t)(bench_rng_next(&rng) % (uint64_t)o->n);
    ms[longest_at] = o->max_ms; /* at least one of the longest */
    msgpack_sbuffer req;
    msgpack_sbuffer_init(&req);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &req, msgpack_sbuffer_write);
    char key[64];
    bench_key(key, sizeof key, 0);
    msgpack_pack_map(&pk, 4);
    farm_pack_kv_str(&pk, "op", "submit");
    farm_pack_kv_int(&pk, "v", 1);
    farm_pack_kv_str(&pk, "key", key);
    farm_pack_str(&pk, "tasks");
    msgpack_pack_array(&pk, (size_t)o->n);
    int64_t *prio = calloc((size_t)o->n, sizeof *prio);
    if (!prio)
        return 1;
    for (int64_t i = 0; i < o->n; i++)
        prio[i] = !o->longest_first || lmax <= lmin ? 0 : (int64_t)floor(100.0 * (log((double)ms[i]) - lmin) / (lmax - lmin));
    for (int64_t i = 0; i < o->n; i++) {
        msgpack_pack_map(&pk, o->longest_first ? 3 : 2);
        if (o->longest_first)
            farm_pack_kv_int(&pk, "priority", prio[i]);
        farm_pack_kv_str(&pk, "type", "sleep");
        farm_pack_str(&pk, "args");
        msgpack_pack_map(&pk, 1);
        farm_pack_kv_int(&pk, "ms", ms[i]);
        sum += ms[i];
        if (ms[i] > longest)
            longest = ms[i];
    }
    /* Let the subscription reach the sink before anything happens. */
    s_counts_t c;
    s_stats(&k, &c);
    bench_sleep_us(300000);
    s_feed_drain(&f);
    farm_error_t e;
    int64_t t0 = bench_now_us();
    int rc = s_call(&k, req.data, req.size, &e);
    if (rc)
        s_die("submit", rc, &e);
    const msgpack_object *ids = farm_msg_get(&k.r, "tasks");
    int64_t job = s_get_int(&k.r, "job");
    if (!ids || ids->type != MSGPACK_OBJECT_ARRAY || ids->via.array.size != (uint32_t)o->n)
        s_die("submit reply", FARM_EPROTO, NULL);
    w.lo = (int64_t)ids->via.array.ptr[0].via.u64;
    for (uint32_t i = 0; i < ids->via.array.size; i++)
        if ((int64_t)ids->via.array.ptr[i].via.u64 != w.lo + (int64_t)i)
            s_die("task ids of one job are not consecutive", FARM_EPROTO, NULL);
    int64_t deadline = t0 + 120000000, next_poll = t0 + 250000, t_end = 0;
    bool by_feed = true;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    while (w.count < o->n) {
        int64_t now = bench_now_us();
        if (now >= deadline)
            s_die("makespan batch not done in 120 s", FARM_ETIMEOUT, NULL);
        s_feed_read(&f, 50, s_on_many, &w);
        if (w.count < o->n && bench_now_us() >= next_poll) { /* the feed may drop: check the truth */
            s_pack_op(&sb, "status", "job", job, NULL, 0);
            if ((rc = s_call(&k, sb.data, sb.size, &e)))
                s_die("status", rc, &e);
            int64_t done = s_get_int(farm_msg_get(farm_msg_get(&k.r, "job"), "counts"), "completed");
            if (done >= o->n) {
                t_end = bench_now_us();
                by_feed = false;
                break;
            }
            next_poll = bench_now_us() + 250000;
        }
    }
    if (by_feed)
        t_end = w.last;
    int64_t slots = o->slots, ideal = sum / slots > longest ? (sum + slots - 1) / slots : longest;
    /* What a dispatcher with no overhead at all, taking the tasks in
     * submission order onto the first free slot, would need: the part of
     * the gap to the ideal that is the order's, not the farm's. */
    int64_t *order = calloc((size_t)o->n, sizeof *order);
    if (!order)
        return 1;
    for (int64_t i = 0; i < o->n; i++)
        order[i] = i;
    int64_t fifo = s_schedule(ms, order, o->n, slots);
    /* The dispatch order: priority, then submission (a stable insertion sort). */
    for (int64_t i = 1; i < o->n; i++)
        for (int64_t j = i; j > 0 && prio[order[j]] > prio[order[j - 1]]; j--) {
            int64_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    int64_t in_order = s_schedule(ms, order, o->n, slots);
    free(order);
    free(prio);
    double span = (double)(t_end - t0) / 1000.0;
    printf("n=%" PRId64 " slots=%" PRId64 " sum_ms=%" PRId64 " longest_ms=%" PRId64 " ideal_ms=%" PRId64
           " longest_at=%" PRId64 " fifo_ms=%" PRId64 " order_ms=%" PRId64 " makespan_ms=%.1f ratio=%.3f by_feed=%d\n",
           o->n, slots, sum, longest, ideal, longest_at + 1, fifo, in_order, span, span / (double)ideal,
           by_feed ? 1 : 0);
    free(ms);
    free(w.seen);
    msgpack_sbuffer_destroy(&req);
    msgpack_sbuffer_destroy(&sb);
    s_feed_close(&f);
    s_conn_close(&k);
    return 0;
}

/* ---- main --------------------------------------------------------------- */

static const char s_usage[] =
    "usage: farm-bench MODE --front EP [options]\n"
    "  throughput --n N --batch B [--task JSON] [--cap-s S] [--poll-ms P] [--vent-pid P] [--sink-pid P]\n"
    "  latency    --feed EP --n N --m M [--paced P --gap-us G]\n"
    "  status     --n N [--seed S]\n"
    "  idle       [--cap-s S]\n"
    "  makespan   --feed EP --n N --slots S [--seed S] [--min-ms A] [--max-ms B] [--priority longest|none]\n"
    "Prints one line of key=value pairs (see bench/farm_bench.c).\n";

int main(int argc, char **argv) {
    s_opts_t o = {.front = "tcp://127.0.0.1:5555", .feed = "tcp://127.0.0.1:5559",
                  .task_json = "{\"type\":\"noop\"}", .n = 1000, .m = 200, .batch = 1000, .cap_s = 3600,
                  .poll_ms = 50, .slots = 8, .seed = 42, .min_ms = 10, .max_ms = 1000, .gap_us = 2000};
    if (argc < 2) {
        fputs(s_usage, stderr);
        return 2;
    }
    const char *mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fputs(s_usage, stderr);
            return 2;
        }
        i++;
        if (!strcmp(a, "--front")) o.front = v;
        else if (!strcmp(a, "--feed")) o.feed = v;
        else if (!strcmp(a, "--task")) o.task_json = v;
        else if (!strcmp(a, "--n")) o.n = bench_int(a, v, 1, 100000000);
        else if (!strcmp(a, "--m")) o.m = bench_int(a, v, 0, 100000000);
        else if (!strcmp(a, "--paced")) o.paced = bench_int(a, v, 0, 100000000);
        else if (!strcmp(a, "--gap-us")) o.gap_us = bench_int(a, v, 1, 10000000);
        else if (!strcmp(a, "--batch")) o.batch = bench_int(a, v, 1, 1000000);
        else if (!strcmp(a, "--cap-s")) o.cap_s = bench_int(a, v, 1, 86400);
        else if (!strcmp(a, "--poll-ms")) o.poll_ms = bench_int(a, v, 1, 10000);
        else if (!strcmp(a, "--slots")) o.slots = bench_int(a, v, 1, 100000);
        else if (!strcmp(a, "--seed")) o.seed = bench_int(a, v, 0, INT64_MAX);
        else if (!strcmp(a, "--min-ms")) o.min_ms = bench_int(a, v, 1, 3600000);
        else if (!strcmp(a, "--max-ms")) o.max_ms = bench_int(a, v, 1, 3600000);
        else if (!strcmp(a, "--priority")) {
            if (strcmp(v, "longest") && strcmp(v, "none")) {
                fprintf(stderr, "farm-bench: --priority: longest or none\n");
                return 2;
            }
            o.longest_first = !strcmp(v, "longest");
        }
        else if (!strcmp(a, "--vent-pid")) o.vent_pid = (long)bench_int(a, v, 1, INT32_MAX);
        else if (!strcmp(a, "--sink-pid")) o.sink_pid = (long)bench_int(a, v, 1, INT32_MAX);
        else {
            fprintf(stderr, "farm-bench: unknown option %s\n%s", a, s_usage);
            return 2;
        }
    }
    if (o.min_ms > o.max_ms) {
        fprintf(stderr, "farm-bench: --min-ms is over --max-ms\n");
        return 2;
    }
    if (!strcmp(mode, "throughput"))
        return s_throughput(&o);
    if (!strcmp(mode, "latency"))
        return s_latency(&o);
    if (!strcmp(mode, "status"))
        return s_status(&o);
    if (!strcmp(mode, "idle")) {
        s_conn_t k;
        if (s_conn_open(&k, o.front))
            return 1;
        s_wait_idle(&k, o.cap_s * 1000);
        s_conn_close(&k);
        return 0;
    }
    if (!strcmp(mode, "makespan"))
        return s_makespan(&o);
    fputs(s_usage, stderr);
    return 2;
}
