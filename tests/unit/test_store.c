/* Unit tests of farm_store against a real SQLite database in a temp
 * folder: every state transition, first result wins, the attempt history,
 * cancel/retry/delete rules, pagination and the dispatch order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "farm_err.h"
#include "farm_msg.h"
#include "farm_state.h"
#include "farm_store.h"

typedef struct {
    char dir[64];
    char path[128];
    farm_store_t *s;
    int changes;           /* change hook calls */
    int last_state;        /* state of the last change */
    int64_t stopped[16];   /* tasks the cancel asked to stop */
    int nstopped;
} fx_t;

static void on_change(void *ud, const farm_change_t *c) {
    fx_t *f = ud;
    f->changes++;
    f->last_state = c->state;
}

static int setup(void **state) {
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/farm-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/farm.db", f->dir);
    int err = 0;
    f->s = farm_store_open(f->path, false, &err);
    assert_non_null(f->s);
    farm_store_on_change(f->s, on_change, f);
    farm_backoff_t b = {1000, 2.0, 300000, 0};
    assert_int_equal(farm_store_set_backoff(f->s, &b), 0);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx_t *f = *state;
    farm_store_close(&f->s, true);
    farm_store_close(&f->s, true); /* safe twice */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static farm_str_t S(const char *s) { return (farm_str_t){s, s ? (uint32_t)strlen(s) : 0}; }

/* Submit n tasks of type with the given priorities (NULL: 0) in one job. */
static int64_t submit(fx_t *f, const char *type, int n, const int *prio, int64_t delay, int64_t max_attempts,
                      const char *key, int64_t *ids) {
    assert_int_equal(farm_store_begin(f->s), 0);
    int64_t job;
    assert_int_equal(farm_store_job_insert(f->s, S("job"), S(key), 1000, n, &job), 0);
    for (int i = 0; i < n; i++) {
        farm_task_spec_t t = {.type = S(type), .priority = prio ? prio[i] : 0, .max_attempts = max_attempts,
                              .delay_ms = delay};
        assert_int_equal(farm_store_task_insert(f->s, job, &t, 1000, &ids[i]), 0);
    }
    assert_int_equal(farm_store_commit(f->s), 0);
    return job;
}

/* Decode a packed view and return the value of key (zone owned by caller). */
static msgpack_object view(msgpack_sbuffer *b, msgpack_zone *z) {
    msgpack_object o;
    farm_error_t e;
    assert_int_equal(farm_msg_unpack(b->data, b->size, z, &o, &e), 0);
    return o;
}

static int64_t geti(const msgpack_object *o, const char *k) {
    const msgpack_object *v = farm_msg_get(o, k);
    assert_non_null(v);
    if (v->type == MSGPACK_OBJECT_NIL)
        return -999;
    assert_true(v->type == MSGPACK_OBJECT_POSITIVE_INTEGER || v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER);
    return v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int64_t)v->via.u64 : v->via.i64;
}

static void gets(const msgpack_object *o, const char *k, char *out, size_t n) {
    const msgpack_object *v = farm_msg_get(o, k);
    assert_non_null(v);
    if (v->type == MSGPACK_OBJECT_NIL) {
        snprintf(out, n, "(nil)");
        return;
    }
    assert_int_equal(v->type, MSGPACK_OBJECT_STR);
    farm_str_copy(out, n, (farm_str_t){v->via.str.ptr, v->via.str.size});
}

/* The state name and attempts of a task, from its TASKVIEW. */
static void task_state(fx_t *f, int64_t id, char *state, int64_t *attempts) {
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    assert_int_equal(farm_store_pack_task(f->s, id, true, NULL, NULL, &pk), 0);
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    msgpack_object o = view(&b, &z);
    gets(&o, "state", state, 16);
    if (attempts)
        *attempts = geti(&o, "attempts");
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&b);
}

static void assert_state(fx_t *f, int64_t id, const char *want) {
    char st[16];
    task_state(f, id, st, NULL);
    assert_string_equal(st, want);
}

static int64_t claim(fx_t *f, int64_t id, const char *worker) {
    int64_t attempt = 0;
    assert_int_equal(farm_store_begin(f->s), 0);
    assert_int_equal(farm_store_claim(f->s, id, worker, &attempt), 0);
    assert_int_equal(farm_store_commit(f->s), 0);
    return attempt;
}

static farm_result_outcome_t report(fx_t *f, int64_t id, int64_t attempt, const char *worker, bool ok,
                                    const char *error, bool cancelled) {
    static const unsigned char res[] = {0x81, 0xa1, 'x', 0x01}; /* {"x": 1} */
    farm_result_in_t r = {.task = id, .attempt = attempt, .worker = worker, .ok = ok, .cancelled = cancelled,
                          .result = res, .result_len = sizeof res, .error = error, .started_ms = 1500,
                          .finished_ms = 2000};
    farm_result_outcome_t out;
    int64_t created = 0;
    assert_int_equal(farm_store_begin(f->s), 0);
    assert_int_equal(farm_store_result(f->s, &r, 2000, &out, &created), 0);
    assert_int_equal(farm_store_commit(f->s), 0);
    if (out == FARM_RESULT_STORED && ok)
        assert_int_equal(created, 1000);
    return out;
}

static void start(fx_t *f, int64_t id, int64_t attempt, const char *worker) {
    assert_int_equal(farm_store_begin(f->s), 0);
    assert_int_equal(farm_store_started(f->s, id, attempt, worker, 1500), 0);
    assert_int_equal(farm_store_commit(f->s), 0);
}

static void counts(fx_t *f, int64_t want[6]) {
    int64_t c[6], jobs;
    assert_int_equal(farm_store_counts(f->s, c, &jobs), 0);
    for (int i = 0; i < 6; i++)
        assert_int_equal(c[i], want[i]);
}

static void test_happy_path(void **state) {
    fx_t *f = *state;
    int64_t ids[2];
    int64_t job = submit(f, "noop", 2, NULL, 0, 3, NULL, ids);
    counts(f, (int64_t[]){2, 0, 0, 0, 0, 0});
    assert_int_equal(claim(f, ids[0], "w1"), 1);
    assert_state(f, ids[0], "pending"); /* dispatched, not started */
    start(f, ids[0], 1, "w1");
    assert_state(f, ids[0], "running");
    assert_int_equal(f->last_state, FARM_TASK_RUNNING);
    assert_int_equal(farm_store_begin(f->s), 0);
    assert_int_equal(farm_store_progress(f->s, ids[0], 1, 40, S("forty"), 1600), 0);
    assert_int_equal(farm_store_commit(f->s), 0);
    /* The job's progress is the mean of its tasks': (40 + 0) / 2. */
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    assert_int_equal(farm_store_pack_job(f->s, job, &pk), 0);
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    msgpack_object o = view(&b, &z);
    assert_int_equal(geti(&o, "progress"), 20);
    char s[32];
    gets(&o, "state", s, sizeof s);
    assert_string_equal(s, "running");
    assert_int_equal(geti(&o, "finished_ms"), -999);
    assert_int_equal(report(f, ids[0], 1, "w1", true, NULL, false), FARM_RESULT_STORED);
    assert_state(f, ids[0], "completed");
    counts(f, (int64_t[]){1, 0, 0, 1, 0, 0});
    /* The second task completes without its start report (lost): still counted. */
    assert_int_equal(claim(f, ids[1], "w2"), 1);
    assert_int_equal(report(f, ids[1], 1, "w2", true, NULL, false), FARM_RESULT_STORED);
    counts(f, (int64_t[]){0, 0, 0, 2, 0, 0});
    b.size = 0;
    assert_int_equal(farm_store_pack_job(f->s, job, &pk), 0);
    o = view(&b, &z);
    gets(&o, "state", s, sizeof s);
    assert_string_equal(s, "completed");
    assert_int_equal(geti(&o, "progress"), 100);
    assert_int_equal(geti(&o, "finished_ms"), 2000);
    const msgpack_object *c = farm_msg_get(&o, "counts");
    assert_non_null(c);
    assert_int_equal(c->via.map.size, 6);
    assert_int_equal(geti(c, "completed"), 2);
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&b);
    assert_int_equal(farm_store_check(f->s), 0);
}

static void test_first_result_wins(void **state) {
    fx_t *f = *state;
    int64_t id;
    submit(f, "noop", 1, NULL, 0, 3, NULL, &id);
    claim(f, id, "w1");
    assert_int_equal(report(f, id, 1, "w1", true, NULL, false), FARM_RESULT_STORED);
    assert_int_equal(report(f, id, 1, "w1", true, NULL, false), FARM_RESULT_DUPLICATE);
    assert_int_equal(report(f, id, 2, "w2", false, "late failure", false), FARM_RESULT_DUPLICATE);
    assert_state(f, id, "completed");
    counts(f, (int64_t[]){0, 0, 0, 1, 0, 0});
}

static void test_retry_then_dead_letter(void **state) {
    fx_t *f = *state;
    int64_t id;
    submit(f, "noop", 1, NULL, 0, 2, NULL, &id);
    assert_int_equal(claim(f, id, "w1"), 1);
    start(f, id, 1, "w1");
    assert_int_equal(report(f, id, 1, "w1", false, "boom 1", false), FARM_RESULT_STORED);
    assert_state(f, id, "retrying");
    /* Not dispatchable during back-off (1 s from t=2000). */
    int64_t n = 0;
    assert_int_equal(farm_store_promote_due(f->s, 2500, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(farm_store_next_due(f->s, 2500), 3000);
    assert_int_equal(farm_store_promote_due(f->s, 3000, &n), 0);
    assert_int_equal(n, 1);
    assert_state(f, id, "pending");
    assert_int_equal(claim(f, id, "w2"), 2);
    start(f, id, 2, "w2");
    /* A stale report of attempt 1 changes nothing. */
    assert_int_equal(report(f, id, 1, "w1", false, "old", false), FARM_RESULT_STALE);
    assert_state(f, id, "running");
    assert_int_equal(report(f, id, 2, "w2", false, "boom 2", false), FARM_RESULT_STORED);
    assert_state(f, id, "failed");
    counts(f, (int64_t[]){0, 0, 0, 0, 1, 0});
    /* The history keeps every attempt's worker and error. */
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    assert_int_equal(farm_store_pack_task(f->s, id, true, NULL, NULL, &pk), 0);
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    msgpack_object o = view(&b, &z);
    char s[64];
    gets(&o, "error", s, sizeof s);
    assert_string_equal(s, "boom 2");
    const msgpack_object *h = farm_msg_get(&o, "history");
    assert_non_null(h);
    assert_int_equal(h->via.array.size, 2);
    gets(&h->via.array.ptr[0], "error", s, sizeof s);
    assert_string_equal(s, "old"); /* the last word on attempt 1 */
    gets(&h->via.array.ptr[1], "worker", s, sizeof s);
    assert_string_equal(s, "w2");
    msgpack_zone_clear(&z);
    /* The dead letter's result holds the last attempt's output. */
    b.size = 0;
    assert_int_equal(farm_store_pack_result(f->s, id, &pk), 0);
    o = view(&b, &z);
    const msgpack_object *r = farm_msg_get(&o, "result");
    assert_non_null(r);
    assert_int_equal(r->type, MSGPACK_OBJECT_MAP);
    msgpack_zone_clear(&z);
    /* retry brings it back with a fresh budget; attempt numbers go on, so
     * the history keeps every attempt and no old report passes for a new one. */
    assert_int_equal(farm_store_retry(f->s, id, 0, 5000, &n), 0);
    assert_int_equal(n, 1);
    int64_t attempts;
    char st[16];
    task_state(f, id, st, &attempts);
    assert_string_equal(st, "pending");
    assert_int_equal(attempts, 2);
    assert_int_equal(claim(f, id, "w3"), 3);
    start(f, id, 3, "w3");
    assert_int_equal(report(f, id, 3, "w3", false, "boom 3", false), FARM_RESULT_STORED);
    assert_state(f, id, "retrying"); /* the budget of 2 counts from the retry */
    b.size = 0;
    assert_int_equal(farm_store_pack_task(f->s, id, true, NULL, NULL, &pk), 0);
    o = view(&b, &z);
    assert_int_equal(farm_msg_get(&o, "history")->via.array.size, 3);
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&b);
    /* A late success of an old attempt is accepted: the task had no result. */
    assert_int_equal(report(f, id, 2, "w2", true, NULL, false), FARM_RESULT_STORED);
    assert_state(f, id, "completed");
    /* Retrying a completed task is a conflict. */
    assert_int_equal(farm_store_retry(f->s, id, 0, 5000, &n), FARM_ECONFLICT);
    assert_int_equal(farm_store_retry(f->s, 999, 0, 5000, &n), FARM_ENOTFOUND);
}

static void stop_cb(void *ud, int64_t task, const char *worker) {
    fx_t *f = ud;
    assert_string_equal(worker, "w1");
    f->stopped[f->nstopped++] = task;
}

static void test_cancel(void **state) {
    fx_t *f = *state;
    int64_t ids[3], n;
    int64_t job = submit(f, "noop", 3, NULL, 0, 3, NULL, ids);
    claim(f, ids[1], "w1");
    start(f, ids[1], 1, "w1");
    claim(f, ids[2], "w1"); /* dispatched, not started */
    assert_int_equal(farm_store_cancel(f->s, 0, job, 3000, stop_cb, f, &n), 0);
    assert_int_equal(n, 3);
    assert_state(f, ids[0], "cancelled");
    assert_state(f, ids[1], "running"); /* until its worker confirms */
    assert_int_equal(f->nstopped, 2);
    assert_int_equal(f->stopped[0], ids[1]);
    assert_int_equal(report(f, ids[1], 1, "w1", false, "stopped", true), FARM_RESULT_STORED);
    assert_state(f, ids[1], "cancelled");
    /* The dispatched one ends cancelled when its worker lets it go. */
    assert_int_equal(farm_store_begin(f->s), 0);
    assert_int_equal(farm_store_release(f->s, ids[2], "w1", "gone", true, 3500), 0);
    assert_int_equal(farm_store_commit(f->s), 0);
    assert_state(f, ids[2], "cancelled");
    counts(f, (int64_t[]){0, 0, 0, 0, 0, 3});
    assert_int_equal(farm_store_cancel(f->s, ids[0], 0, 4000, NULL, NULL, &n), FARM_ECONFLICT);
    assert_int_equal(farm_store_cancel(f->s, 0, 12345, 4000, NULL, NULL, &n), FARM_ENOTFOUND);
    assert_int_equal(farm_store_retry(f->s, 0, job, 5000, &n), 0);
    assert_int_equal(n, 3);
    counts(f, (int64_t[]){3, 0, 0, 0, 0, 0});
}

/* A cancelled task whose worker still finishes it successfully (the
 * cancel released it before the result came) stays cancelled, output
 * kept, and a resend of that result is a duplicate. Retried, the new
 * attempt's result completes it: the old output does not pass for a first
 * result that already won. */
static void test_cancel_late_ok_then_retry(void **state) {
    fx_t *f = *state;
    int64_t ids[1], n;
    int64_t job = submit(f, "noop", 1, NULL, 0, 3, NULL, ids);
    claim(f, ids[0], "w1");
    assert_int_equal(farm_store_cancel(f->s, 0, job, 3000, NULL, NULL, &n), 0);
    assert_int_equal(farm_store_begin(f->s), 0);
    assert_int_equal(farm_store_release(f->s, ids[0], "w1", "gone", true, 3500), 0);
    assert_int_equal(farm_store_commit(f->s), 0);
    assert_state(f, ids[0], "cancelled");
    assert_int_equal(report(f, ids[0], 1, "w1", true, NULL, false), FARM_RESULT_STALE);
    assert_state(f, ids[0], "cancelled");
    assert_int_equal(report(f, ids[0], 1, "w1", true, NULL, false), FARM_RESULT_DUPLICATE);
    assert_int_equal(farm_store_retry(f->s, ids[0], 0, 5000, &n), 0);
    assert_state(f, ids[0], "pending");
    assert_int_equal(claim(f, ids[0], "w2"), 2);
    start(f, ids[0], 2, "w2");
    assert_int_equal(report(f, ids[0], 2, "w2", true, NULL, false), FARM_RESULT_STORED);
    assert_state(f, ids[0], "completed");
    assert_int_equal(report(f, ids[0], 2, "w2", true, NULL, false), FARM_RESULT_DUPLICATE);
}

static void test_release_lost_worker(void **state) {
    fx_t *f = *state;
    int64_t ids[3], n;
    submit(f, "noop", 3, NULL, 0, 1, NULL, ids);
    claim(f, ids[0], "w1");
    start(f, ids[0], 1, "w1");
    claim(f, ids[1], "w1");
    assert_int_equal(farm_store_release_worker(f->s, "w1", "worker lost", 3000, &n), 0);
    assert_int_equal(n, 2);
    /* Running, one attempt allowed: the attempt counts, it fails. */
    assert_state(f, ids[0], "failed");
    /* Dispatched with no start report: it may have started (and killed the
     * worker) before its report got out, so the attempt counts too. */
    assert_state(f, ids[1], "failed");
    /* A live worker that says it does not hold a dispatched task never
     * started it: back to pending, no attempt spent. */
    claim(f, ids[2], "w2");
    assert_int_equal(farm_store_begin(f->s), 0);
    assert_int_equal(farm_store_release(f->s, ids[2], "w2", "not held", false, 3000), 0);
    assert_int_equal(farm_store_commit(f->s), 0);
    int64_t attempts;
    char st[16];
    task_state(f, ids[2], st, &attempts);
    assert_string_equal(st, "pending");
    assert_int_equal(attempts, 0);
    assert_int_equal(claim(f, ids[2], "w3"), 1);
}

static void test_delete(void **state) {
    fx_t *f = *state;
    int64_t ids[2], n;
    int64_t job = submit(f, "noop", 2, NULL, 0, 3, NULL, ids);
    assert_int_equal(farm_store_delete_job(f->s, job, &n), FARM_ECONFLICT);
    assert_int_equal(farm_store_cancel(f->s, 0, job, 3000, NULL, NULL, &n), 0);
    assert_int_equal(farm_store_delete_job(f->s, job, &n), 0);
    assert_int_equal(n, 2);
    counts(f, (int64_t[]){0, 0, 0, 0, 0, 0});
    assert_int_equal(farm_store_job_exists(f->s, job), FARM_ENOTFOUND);
    assert_int_equal(farm_store_delete_job(f->s, job, &n), FARM_ENOTFOUND);
    assert_int_equal(farm_store_check(f->s), 0);
}

/* Records collected by records_each. */
typedef struct {
    int n;
    int64_t idx[8];
    char data[8][16];
} recs_t;

static int on_record(void *ud, int64_t idx, const void *data, size_t len) {
    recs_t *r = ud;
    if (r->n < 8) {
        r->idx[r->n] = idx;
        snprintf(r->data[r->n], sizeof r->data[0], "%.*s", (int)len, (const char *)data);
    }
    r->n++;
    return 0;
}

static void test_records(void **state) {
    fx_t *f = *state;
    int64_t id, n;
    int64_t job = submit(f, "ingest", 1, NULL, 0, 3, NULL, &id);
    claim(f, id, "w1");
    assert_int_equal(report(f, id, 1, "w1", true, NULL, false), FARM_RESULT_STORED);
    assert_int_equal(farm_store_begin(f->s), 0);
    assert_int_equal(farm_store_records_put(f->s, id, 0, "rec0", 4), 0);
    assert_int_equal(farm_store_records_put(f->s, id, 5, "rec5", 4), 0);
    /* A second store of a record is a no-op: the first bytes stay. */
    assert_int_equal(farm_store_records_put(f->s, id, 0, "other", 5), 0);
    assert_int_equal(farm_store_records_put(f->s, id, -1, "x", 1), FARM_EBADREQ);
    assert_int_equal(farm_store_records_put(f->s, id, 1, "", 0), FARM_EBADREQ);
    assert_int_equal(farm_store_commit(f->s), 0);
    recs_t r = {0};
    assert_int_equal(farm_store_records_each(f->s, id, on_record, &r), 0);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.idx[0], 0);
    assert_string_equal(r.data[0], "rec0");
    assert_int_equal(r.idx[1], 5);
    assert_string_equal(r.data[1], "rec5");
    /* Deleting the job deletes its records. */
    assert_int_equal(farm_store_delete_job(f->s, job, &n), 0);
    memset(&r, 0, sizeof r);
    assert_int_equal(farm_store_records_each(f->s, id, on_record, &r), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(farm_store_check(f->s), 0);
}

static void test_idempotency_key(void **state) {
    fx_t *f = *state;
    int64_t ids[2], job;
    int64_t j1 = submit(f, "noop", 2, NULL, 0, 3, "k1", ids);
    assert_int_equal(farm_store_job_by_key(f->s, S("k1"), &job), 0);
    assert_int_equal(job, j1);
    assert_int_equal(farm_store_job_by_key(f->s, S("k2"), &job), FARM_ENOTFOUND);
}

typedef struct {
    int64_t ids[16];
    int n;
} got_t;

static int collect(void *ud, const farm_ready_t *t) {
    got_t *g = ud;
    g->ids[g->n++] = t->id;
    return 0;
}

static void test_dispatch_order(void **state) {
    fx_t *f = *state;
    int prio[5] = {0, 5, 0, 5, -3};
    int64_t ids[5], other, delayed;
    submit(f, "noop", 5, prio, 0, 3, NULL, ids);
    submit(f, "exec", 1, NULL, 0, 3, NULL, &other);
    submit(f, "noop", 1, (int[]){100}, 10000, 3, NULL, &delayed);
    got_t g = {0};
    assert_int_equal(farm_store_ready(f->s, "noop", 2000, 10, collect, &g), 0);
    /* Priority first, then submission order; other types and delayed tasks wait. */
    assert_int_equal(g.n, 5);
    int64_t want[5] = {ids[1], ids[3], ids[0], ids[2], ids[4]};
    for (int i = 0; i < 5; i++)
        assert_int_equal(g.ids[i], want[i]);
    claim(f, ids[1], "w");
    g.n = 0;
    assert_int_equal(farm_store_ready(f->s, "noop", 2000, 2, collect, &g), 0);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.ids[0], ids[3]);
    assert_int_equal(g.ids[1], ids[0]);
    /* Once due, the delayed high-priority task comes first. */
    g.n = 0;
    assert_int_equal(farm_store_ready(f->s, "noop", 11000, 1, collect, &g), 0);
    assert_int_equal(g.ids[0], delayed);
    int64_t a;
    assert_int_equal(farm_store_begin(f->s), 0);
    assert_int_equal(farm_store_claim(f->s, ids[1], "w2", &a), FARM_ECONFLICT);
    farm_store_rollback(f->s);
}

typedef struct {
    int64_t task[8], attempt[8];
    size_t n;
} claimed_t;

static void on_claimed(void *ud, int64_t task, int64_t attempt) {
    claimed_t *c = ud;
    assert_true(c->n < 8);
    c->task[c->n] = task;
    c->attempt[c->n++] = attempt;
}

/* Leasing several tasks in one statement: only the dispatchable ones are
 * leased and named back, each with its attempt; the rest are left alone. */
static void test_claim_many(void **state) {
    fx_t *f = *state;
    int64_t ids[4];
    submit(f, "noop", 4, NULL, 0, 3, NULL, ids);
    assert_int_equal(claim(f, ids[1], "w1"), 1); /* already leased */
    claimed_t c = {.n = 0};
    int64_t want[] = {ids[0], ids[1], ids[2], 999999};
    assert_int_equal(farm_store_begin(f->s), 0);
    assert_int_equal(farm_store_claim_many(f->s, want, 4, "w2", on_claimed, &c), 0);
    assert_int_equal(farm_store_commit(f->s), 0);
    assert_int_equal(c.n, 2);
    for (size_t i = 0; i < c.n; i++) {
        assert_true(c.task[i] == ids[0] || c.task[i] == ids[2]);
        assert_int_equal(c.attempt[i], 1);
    }
    char st[16];
    int64_t attempts;
    task_state(f, ids[1], st, &attempts);
    assert_int_equal(attempts, 1); /* not leased twice */
    task_state(f, ids[3], st, &attempts);
    assert_string_equal(st, "pending");
    assert_int_equal(attempts, 0);
    /* Leased to w2: a second lease of the same tasks names none back. */
    c.n = 0;
    assert_int_equal(farm_store_begin(f->s), 0);
    assert_int_equal(farm_store_claim_many(f->s, want, 3, "w3", on_claimed, &c), 0);
    assert_int_equal(farm_store_commit(f->s), 0);
    assert_int_equal(c.n, 0);
}

static void test_pagination(void **state) {
    fx_t *f = *state;
    int64_t ids[7], n;
    int64_t job = submit(f, "noop", 7, NULL, 0, 3, NULL, ids);
    assert_int_equal(farm_store_cancel(f->s, ids[2], 0, 3000, NULL, NULL, &n), 0);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_zone z;
    msgpack_zone_init(&z, 4096);
    int64_t after = 0, seen = 0;
    for (int page = 0; page < 10; page++) {
        b.size = 0;
        assert_int_equal(farm_store_pack_list(f->s, job, -1, S(NULL), after, 3, NULL, NULL, &pk), 0);
        msgpack_object o = view(&b, &z);
        const msgpack_object *t = farm_msg_get(&o, "tasks");
        for (uint32_t i = 0; i < t->via.array.size; i++)
            assert_int_equal(geti(&t->via.array.ptr[i], "id"), ids[seen++]);
        after = geti(&o, "next");
        if (after == -999)
            break;
        assert_int_equal(t->via.array.size, 3);
    }
    assert_int_equal(seen, 7);
    /* Filters: by state (cancelled uses its own index), by type. */
    b.size = 0;
    assert_int_equal(farm_store_pack_list(f->s, 0, FARM_TASK_CANCELLED, S(NULL), 0, 100, NULL, NULL, &pk), 0);
    msgpack_object o = view(&b, &z);
    assert_int_equal(farm_msg_get(&o, "tasks")->via.array.size, 1);
    b.size = 0;
    assert_int_equal(farm_store_pack_list(f->s, 0, -1, S("exec"), 0, 100, NULL, NULL, &pk), 0);
    o = view(&b, &z);
    assert_int_equal(farm_msg_get(&o, "tasks")->via.array.size, 0);
    b.size = 0;
    assert_int_equal(farm_store_pack_jobs(f->s, FARM_TASK_RUNNING, 0, 100, &pk), 0);
    o = view(&b, &z);
    assert_int_equal(farm_msg_get(&o, "jobs")->via.array.size, 1); /* a final task makes it running */
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&b);
}

/* The background checkpointer runs beside a writer (its own connection,
 * PASSIVE checkpoints every millisecond here): writes go on, nothing is
 * damaged, and it stops and joins cleanly, twice-safe. */
static void test_checkpointer(void **state) {
    fx_t *f = *state;
    farm_checkpointer_t *c = farm_checkpointer_start(f->path, 1);
    assert_non_null(c);
    int64_t ids[50];
    for (int i = 0; i < 40; i++)
        submit(f, "noop", 50, NULL, 0, 3, NULL, ids);
    counts(f, (int64_t[]){2000, 0, 0, 0, 0, 0});
    farm_checkpointer_stop(&c);
    assert_null(c);
    farm_checkpointer_stop(&c);
    assert_int_equal(farm_store_check(f->s), 0);
    assert_null(farm_checkpointer_start("/nonexistent-dir/farm.db", 100));
}

static void test_reopen_keeps_everything(void **state) {
    fx_t *f = *state;
    int64_t ids[3];
    submit(f, "noop", 3, NULL, 0, 3, NULL, ids);
    claim(f, ids[0], "w1");
    report(f, ids[0], 1, "w1", true, NULL, false);
    farm_store_close(&f->s, false);
    int err;
    f->s = farm_store_open(f->path, false, &err);
    assert_non_null(f->s);
    counts(f, (int64_t[]){2, 0, 0, 1, 0, 0});
    assert_state(f, ids[0], "completed");
    assert_int_equal(farm_store_check(f->s), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_happy_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_result_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_then_dead_letter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_late_ok_then_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_lost_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pagination, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpointer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_everything, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
