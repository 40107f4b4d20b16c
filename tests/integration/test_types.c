/* Integration: the ingest, interest and text types on a real farm.
 *
 * Each test submits through the front door and checks what a user sees
 * (results, rejections, progress, errors) and, for ingest, what the sink
 * stored: the test opens the farm's database read-only with sqlite3 once
 * the job is final and reads the records table. Workers run with
 * --ingest-pause-ms 0 except in the progress test, which needs the pause
 * to watch "validated 300/1000" go by through `status`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "farm_client.h"
#include "farm_err.h"
#include "farm_proto.h"
#include "harness.h"

/* A farm of two one-slot workers; pause: their --ingest-pause-ms. */
static h_t *t_farm(int nworkers, const char *pause) {
    h_t *h = h_new();
    h_start_vent(h, NULL);
    h_start_sink(h, NULL);
    for (int i = 0; i < nworkers; i++) {
        char name[16];
        snprintf(name, sizeof name, "w%d", i + 1);
        h_start_worker(h, name, 1, "--ingest-pause-ms", pause, NULL);
    }
    h_wait_up(h, nworkers);
    return h;
}

static int setup(void **state) {
    *state = t_farm(2, "0");
    return 0;
}

static int teardown(void **state) {
    h_t *h = *state;
    h_free(&h);
    return 0;
}

/* Submit a request packed by the caller (too big for h_call's JSON). */
static const msgpack_object *t_call_raw(h_t *h, const msgpack_sbuffer *req) {
    msgpack_zone_clear(&h->zone);
    memset(&h->err, 0, sizeof h->err);
    int rc = farm_client_callv(h->client, req, &h->zone, &h->reply, &h->err);
    if (rc)
        fail_msg("request failed: %s: %s (field %s)", farm_err_name(rc), h->err.message, h->err.field);
    return &h->reply;
}

static void t_kv_str(msgpack_packer *pk, const char *k, const char *v) {
    farm_pack_kv_str(pk, k, v);
}

/* Pack a submit of one ingest task of n student records; every 97th has
 * grade 13, every 101st a bad email. */
static void t_pack_students(msgpack_sbuffer *b, int n) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    t_kv_str(&pk, "op", "submit");
    farm_pack_str(&pk, "tasks");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 3);
    t_kv_str(&pk, "type", "ingest");
    farm_pack_kv_int(&pk, "timeout_ms", 60000);
    farm_pack_str(&pk, "args");
    msgpack_pack_map(&pk, 2);
    t_kv_str(&pk, "schema", "student");
    farm_pack_str(&pk, "records");
    msgpack_pack_array(&pk, (size_t)n);
    for (int i = 0; i < n; i++) {
        char name[32], email[64];
        snprintf(name, sizeof name, "Student %d", i);
        snprintf(email, sizeof email, i % 101 == 50 ? "student%d.school" : "student%d@school.example.org", i);
        msgpack_pack_map(&pk, 4);
        farm_pack_kv_int(&pk, "id", i + 1);
        t_kv_str(&pk, "name", name);
        t_kv_str(&pk, "email", email);
        farm_pack_kv_int(&pk, "grade", i % 97 == 13 ? 13 : 1 + i % 12);
    }
}

static bool t_bad_student(int i) { return i % 97 == 13 || i % 101 == 50; }

/* ---- the database, read-only ---------------------------------------------- */

/* One integer from SQL with one bound int64 (?1). */
static int64_t t_db_int(h_t *h, const char *sql, int64_t arg) {
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(h->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_bind_int64(st, 1, arg);
    int64_t v = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* The stored record idx of task, decoded, checked to be a student with id
 * want_id and the given name. */
static void t_db_student(h_t *h, int64_t task, int64_t idx, int64_t want_id, const char *want_name) {
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(h->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT data FROM records WHERE task = ?1 AND idx = ?2", -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, task);
    sqlite3_bind_int64(st, 2, idx);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    msgpack_object o;
    farm_error_t e;
    assert_int_equal(farm_msg_unpack(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), &z, &o, &e), 0);
    assert_int_equal(h_int(&o, "id"), want_id);
    assert_string_equal(h_str(&o, "name"), want_name);
    msgpack_zone_destroy(&z);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* ---- ingest ------------------------------------------------------------- */

static void test_ingest_student(void **state) {
    h_t *h = *state;
    const msgpack_object *r = h_ok(
        h, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"ingest\",\"args\":{\"schema\":\"student\",\"records\":["
           "{\"id\":1,\"name\":\"Ada\",\"email\":\"ada@school.org\",\"grade\":7},"
           "{\"id\":0,\"name\":\"Zero\",\"email\":\"z@school.org\",\"grade\":7},"
           "{\"id\":3,\"name\":\"Cy\",\"email\":\"cy@school\",\"grade\":7},"
           "{\"id\":4,\"name\":\"Di\",\"email\":\"di@school.org\",\"grade\":12},"
           "{\"id\":5,\"name\":\"\",\"email\":\"e@school.org\",\"grade\":1},"
           "{\"id\":6,\"name\":\"Fa\",\"email\":\"fa@school.org\"},"
           "\"not a record\","
           "{\"id\":8,\"name\":\"Gus\",\"email\":\"gus@school.org\",\"grade\":1,\"shoe\":42}]}}]}");
    int64_t job = h_int(r, "job"), task = h_int(r, "tasks.0");
    assert_string_equal(h_wait_job(h, job, 20000), "completed");
    r = h_ok(h, "{\"op\":\"result\",\"task\":%lld}", (long long)task);
    assert_string_equal(h_str(r, "state"), "completed");
    assert_string_equal(h_str(r, "result.schema"), "student");
    assert_int_equal(h_int(r, "result.total"), 8);
    assert_int_equal(h_int(r, "result.accepted"), 2);
    assert_int_equal(h_int(r, "result.rejected"), 6);
    static const struct {
        int index;
        const char *reason;
    } want[] = {
        {1, "id is 0, below the minimum 1"},
        {2, "email must be a plausible e-mail address"},
        {4, "name has 0 characters, fewer than 1"},
        {5, "missing required field 'grade'"},
        {6, "record must be a map, not a string"},
        {7, "unknown field 'shoe'"},
    };
    assert_int_equal(h_get(r, "result.rejections")->via.array.size, 6);
    for (int i = 0; i < 6; i++) {
        char p[64];
        snprintf(p, sizeof p, "result.rejections.%d.index", i);
        assert_int_equal(h_int(r, p), want[i].index);
        snprintf(p, sizeof p, "result.rejections.%d.reason", i);
        assert_string_equal(h_str(r, p), want[i].reason);
    }
    /* The accepted ones are stored under their index, and only they. */
    assert_int_equal(t_db_int(h, "SELECT count(*) FROM records WHERE task = ?1", task), 2);
    t_db_student(h, task, 0, 1, "Ada");
    t_db_student(h, task, 3, 4, "Di");
    assert_int_equal(t_db_int(h, "SELECT count(*) FROM records WHERE task != ?1", task), 0);
}

static void test_ingest_inline_schema(void **state) {
    h_t *h = *state;
    const msgpack_object *r = h_ok(
        h, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"ingest\",\"args\":{\"schema\":{\"name\":\"sensor\",\"fields\":["
           "{\"name\":\"code\",\"type\":\"str\",\"required\":true,\"pattern\":\"[A-Z]{2}[0-9]+\"},"
           "{\"name\":\"temp\",\"type\":\"float\",\"min\":-40,\"max\":85},"
           "{\"name\":\"ok\",\"type\":\"bool\"}]},\"records\":["
           "{\"code\":\"AB12\",\"temp\":21.5,\"ok\":true},"
           "{\"code\":\"ab12\"},"
           "{\"code\":\"CD9\",\"temp\":90},"
           "{\"code\":\"EF1\",\"ok\":\"yes\"}]}}]}");
    int64_t job = h_int(r, "job"), task = h_int(r, "tasks.0");
    assert_string_equal(h_wait_job(h, job, 20000), "completed");
    r = h_ok(h, "{\"op\":\"result\",\"task\":%lld}", (long long)task);
    assert_string_equal(h_str(r, "result.schema"), "sensor");
    assert_int_equal(h_int(r, "result.accepted"), 1);
    assert_string_equal(h_str(r, "result.rejections.0.reason"), "code does not match the pattern [A-Z]{2}[0-9]+");
    assert_string_equal(h_str(r, "result.rejections.1.reason"), "temp is 90, above the maximum 85");
    assert_string_equal(h_str(r, "result.rejections.2.reason"), "ok must be a boolean, not a string");
    assert_int_equal(t_db_int(h, "SELECT count(*) FROM records WHERE task = ?1", task), 1);
}

static void test_ingest_limit_at_submit(void **state) {
    h_t *h = *state;
    /* 1001 records: refused at submit, naming the task, the field and the limit. */
    char *json = malloc(16384);
    assert_non_null(json);
    size_t off = (size_t)snprintf(json, 16384, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"noop\"},{\"type\":\"noop\"},"
                                               "{\"type\":\"noop\"},{\"type\":\"ingest\",\"args\":{\"schema\":\"student\","
                                               "\"records\":[");
    for (int i = 0; i < 1001; i++)
        off += (size_t)snprintf(json + off, 16384 - off, "%s{}", i ? "," : "");
    snprintf(json + off, 16384 - off, "]}}]}");
    assert_int_equal(h_call(h, "%s", json), FARM_EBADREQ);
    assert_string_equal(h_str(&h->reply, "error.code"), "bad_request");
    assert_string_equal(h_str(&h->reply, "error.field"), "tasks[3].args.records");
    assert_string_equal(h_str(&h->reply, "error.message"),
                        "tasks[3].args.records has 1001 entries, over the limit max_records=1000");
    /* records that are not an array are refused too. */
    assert_int_equal(h_call(h, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"ingest\",\"args\":{\"schema\":\"student\","
                               "\"records\":{}}}]}"),
                     FARM_EBADREQ);
    assert_string_equal(h_str(&h->reply, "error.field"), "tasks[0].args.records");
    /* Nothing was stored. */
    const msgpack_object *r = h_ok(h, "{\"op\":\"stats\"}");
    assert_int_equal(h_int(r, "jobs"), 0);
    /* Exactly 1000 is accepted (the records themselves are judged later). */
    off = (size_t)snprintf(json, 16384, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"ingest\",\"args\":{\"schema\":"
                                        "\"student\",\"records\":[");
    for (int i = 0; i < 1000; i++)
        off += (size_t)snprintf(json + off, 16384 - off, "%s{}", i ? "," : "");
    snprintf(json + off, 16384 - off, "]}}]}");
    r = h_ok(h, "%s", json);
    free(json);
    int64_t job = h_int(r, "job"), task = h_int(r, "tasks.0");
    assert_string_equal(h_wait_job(h, job, 20000), "completed");
    r = h_ok(h, "{\"op\":\"result\",\"task\":%lld}", (long long)task);
    assert_int_equal(h_int(r, "result.accepted"), 0);
    assert_int_equal(h_int(r, "result.rejected"), 1000);
    assert_string_equal(h_str(r, "result.rejections.999.reason"), "missing required field 'id'");
}

static void test_ingest_bad_args(void **state) {
    h_t *h = *state;
    const msgpack_object *r = h_ok(
        h, "{\"op\":\"submit\",\"max_attempts\":1,\"tasks\":["
           "{\"type\":\"ingest\",\"args\":{\"schema\":\"teacher\",\"records\":[]}},"
           "{\"type\":\"ingest\",\"args\":{\"schema\":{\"fields\":[{\"name\":\"x\",\"type\":\"str\",\"pattern\":\"(\"}]},"
           "\"records\":[]}},"
           "{\"type\":\"ingest\"}]}");
    int64_t job = h_int(r, "job"), t0 = h_int(r, "tasks.0"), t1 = h_int(r, "tasks.1"), t2 = h_int(r, "tasks.2");
    assert_string_equal(h_wait_job(h, job, 20000), "failed");
    r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)t0);
    assert_string_equal(h_str(r, "task.error"), "ingest: args.schema: no built-in schema 'teacher' (known: student)");
    r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)t1);
    assert_non_null(strstr(h_str(r, "task.error"),
                           "ingest: args.schema.fields[0].pattern is not a valid extended regular expression"));
    r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)t2);
    assert_string_equal(h_str(r, "task.error"), "ingest: args must be a map with schema and records");
}

/* A second result for a completed ingest task (a worker resending after a
 * crash, or a retried attempt) stores no record: the first result wins. */
static void test_ingest_stored_once(void **state) {
    h_t *h = *state;
    const msgpack_object *r = h_ok(
        h, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"ingest\",\"args\":{\"schema\":\"student\",\"records\":["
           "{\"id\":1,\"name\":\"Ada\",\"email\":\"ada@school.org\",\"grade\":7}]}}]}");
    int64_t job = h_int(r, "job"), task = h_int(r, "tasks.0");
    assert_string_equal(h_wait_job(h, job, 20000), "completed");
    assert_int_equal(t_db_int(h, "SELECT count(*) FROM records WHERE task = ?1", task), 1);
    /* Forge the duplicates a worker could send: same attempt and a later
     * one, each with a changed record 0 and a new record 5. */
    void *ctx = zmq_ctx_new();
    void *push = zmq_socket(ctx, ZMQ_PUSH);
    int linger = 5000;
    zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_connect(push, h->ep.results), 0);
    for (int attempt = 1; attempt <= 2; attempt++) {
        msgpack_sbuffer recs, msg;
        msgpack_sbuffer_init(&recs);
        msgpack_sbuffer_init(&msg);
        msgpack_packer rp, mp;
        msgpack_packer_init(&rp, &recs, msgpack_sbuffer_write);
        msgpack_pack_array(&rp, 2);
        for (int idx = 0; idx <= 5; idx += 5) {
            msgpack_pack_array(&rp, 2);
            msgpack_pack_int(&rp, idx);
            msgpack_pack_bin(&rp, 2);
            msgpack_pack_bin_body(&rp, "\x81\xa0", 2); /* not what was stored */
        }
        msgpack_packer_init(&mp, &msg, msgpack_sbuffer_write);
        farm_pack_result_records(&mp, task, attempt, "w9", true, false, NULL, 0, NULL, 1, 2, recs.data, recs.size);
        assert_int_equal(zmq_send(push, msg.data, msg.size, 0), (int)msg.size);
        msgpack_sbuffer_destroy(&recs);
        msgpack_sbuffer_destroy(&msg);
    }
    /* Wait until the sink counted both, then look. */
    int64_t end = h_now() + 10000;
    while (t_db_int(h, "SELECT dups FROM results WHERE task = ?1", task) < 2) {
        assert_true(h_now() < end);
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(t_db_int(h, "SELECT count(*) FROM records WHERE task = ?1", task), 1);
    t_db_student(h, task, 0, 1, "Ada");
    zmq_close(push);
    zmq_ctx_term(ctx);
}

/* 1000 records with a 300 ms external call every 100: progress is seen
 * through status as it goes, and every accepted record is stored once. */
static void test_ingest_progress(void **state) {
    (void)state;
    h_t *h = t_farm(1, "300");
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    t_pack_students(&b, 1000);
    const msgpack_object *r = t_call_raw(h, &b);
    msgpack_sbuffer_destroy(&b);
    int64_t job = h_int(r, "job"), task = h_int(r, "tasks.0");
    bool seen[11] = {0};
    int last_pct = -1;
    int64_t end = h_now() + 30000;
    for (;;) {
        assert_true(h_now() < end);
        r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)task);
        const char *st = h_str(r, "task.state");
        if (strcmp(st, "completed") == 0)
            break;
        assert_true(strcmp(st, "pending") == 0 || strcmp(st, "running") == 0);
        int pct = (int)h_int(r, "task.progress");
        assert_true(pct >= last_pct); /* never goes back */
        last_pct = pct;
        const char *msg = h_str(r, "task.message");
        int done, total;
        if (sscanf(msg, "validated %d/%d", &done, &total) == 2) {
            assert_int_equal(total, 1000);
            assert_int_equal(done % 100, 0);
            assert_int_equal(pct, done / 10);
            seen[done / 100] = true;
        }
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    /* Each step stays up for a 300 ms pause: a 20 ms poll sees most. */
    assert_true(seen[3]); /* "validated 300/1000" */
    int nseen = 0;
    for (int i = 1; i <= 10; i++)
        nseen += seen[i];
    assert_true(nseen >= 8);
    r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)task);
    assert_int_equal(h_int(r, "task.progress"), 100);
    assert_int_equal(h_int(r, "task.attempts"), 1);
    int bad = 0;
    for (int i = 0; i < 1000; i++)
        bad += t_bad_student(i);
    r = h_ok(h, "{\"op\":\"result\",\"task\":%lld}", (long long)task);
    assert_int_equal(h_int(r, "result.accepted"), 1000 - bad);
    assert_int_equal(h_int(r, "result.rejected"), bad);
    assert_int_equal(h_int(r, "result.rejections.0.index"), 13);
    assert_string_equal(h_str(r, "result.rejections.0.reason"), "grade is 13, above the maximum 12");
    assert_int_equal(h_int(r, "result.rejections.1.index"), 50);
    assert_string_equal(h_str(r, "result.rejections.1.reason"), "email must be a plausible e-mail address");
    assert_int_equal(t_db_int(h, "SELECT count(*) FROM records WHERE task = ?1", task), 1000 - bad);
    assert_int_equal(t_db_int(h, "SELECT count(*) FROM records WHERE task = ?1 AND idx IN (13, 50)", task), 0);
    t_db_student(h, task, 999, 1000, "Student 999");
    assert_string_equal(h_wait_job(h, job, 1000), "completed");
    h_free(&h);
}

/* A cancel cuts an ingest short, even in its pause, and stores nothing:
 * records only go with a successful result. */
static void test_ingest_cancel(void **state) {
    (void)state;
    h_t *h = t_farm(1, "300");
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    t_pack_students(&b, 1000);
    const msgpack_object *r = t_call_raw(h, &b);
    msgpack_sbuffer_destroy(&b);
    int64_t job = h_int(r, "job"), task = h_int(r, "tasks.0");
    int64_t end = h_now() + 20000;
    for (;;) {
        assert_true(h_now() < end);
        r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)task);
        if (h_int(r, "task.progress") >= 20)
            break;
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    int64_t t0 = h_now();
    h_ok(h, "{\"op\":\"cancel\",\"task\":%lld}", (long long)task);
    assert_string_equal(h_wait_job(h, job, 10000), "cancelled");
    assert_true(h_now() - t0 < 2000); /* not the 2.4 s the rest would take */
    r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)task);
    assert_true(h_int(r, "task.progress") < 100);
    /* The worker's report of the stopped attempt reaches the sink, which
     * keeps no record of it. */
    end = h_now() + 10000;
    while (t_db_int(h, "SELECT count(*) FROM attempts WHERE task = ?1 AND finished_ms IS NOT NULL", task) < 1) {
        assert_true(h_now() < end);
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(t_db_int(h, "SELECT count(*) FROM records WHERE task = ?1", task), 0);
    h_free(&h);
}

/* ---- interest ----------------------------------------------------------- */

static double t_num(const msgpack_object *o, const char *path) {
    const msgpack_object *v = h_get(o, path);
    if (!v)
        fail_msg("no %s", path);
    if (v->type == MSGPACK_OBJECT_FLOAT64 || v->type == MSGPACK_OBJECT_FLOAT32)
        return v->via.f64;
    return (double)h_int(o, path);
}

static void t_close(double got, double want, double rel) {
    if (!(fabs(got - want) <= rel * fmax(1, fabs(want))))
        fail_msg("got %.12g, want %.12g", got, want);
}

static double t_closed(double P, double r, int n, int t, double C) {
    double g = pow(1 + r / n, (double)n * t);
    return P * g + C * (g - 1) / (r / n);
}

static void test_interest(void **state) {
    h_t *h = *state;
    const char *mc = "{\"type\":\"interest\",\"args\":{\"mode\":\"montecarlo\",\"principal\":10000,\"years\":30,"
                     "\"compounding\":12,\"contribution\":200,\"simulations\":20000,\"mean\":0.06,\"stddev\":0.12,"
                     "\"seed\":77}}";
    const msgpack_object *r = h_ok(
        h, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"interest\",\"args\":{\"principal\":2500,\"rate\":0.045,"
           "\"years\":25,\"compounding\":12,\"contribution\":150}},%s,%s,"
           "{\"type\":\"interest\",\"args\":{\"mode\":\"montecarlo\",\"principal\":2500,\"years\":25,\"contribution\":150,"
           "\"simulations\":100,\"mean\":0.045,\"stddev\":0}}]}",
        mc, mc);
    int64_t job = h_int(r, "job"), ts = h_int(r, "tasks.0"), m1 = h_int(r, "tasks.1"), m2 = h_int(r, "tasks.2"),
            m0 = h_int(r, "tasks.3");
    assert_string_equal(h_wait_job(h, job, 60000), "completed");
    double want = t_closed(2500, 0.045, 12, 25, 150);
    r = h_ok(h, "{\"op\":\"result\",\"task\":%lld}", (long long)ts);
    t_close(t_num(r, "result.final"), want, 1e-6);
    assert_int_equal(h_get(r, "result.schedule")->via.array.size, 25);
    t_close(t_num(r, "result.schedule.24.balance"), want, 1e-6);
    t_close(t_num(r, "result.schedule.9.balance"), t_closed(2500, 0.045, 12, 10, 150), 1e-6);
    t_close(t_num(r, "result.contributed"), 2500 + 150 * 12 * 25, 1e-12);
    /* A zero deviation reproduces the closed form at every percentile. */
    r = h_ok(h, "{\"op\":\"result\",\"task\":%lld}", (long long)m0);
    t_close(t_num(r, "result.percentiles.p5"), want, 1e-9);
    t_close(t_num(r, "result.percentiles.p95"), want, 1e-9);
    /* The same seed on two workers (or one, twice) gives the same numbers. */
    r = h_ok(h, "{\"op\":\"result\",\"task\":%lld}", (long long)m1);
    double a[5];
    const char *ps[] = {"p5", "p25", "p50", "p75", "p95"};
    for (int i = 0; i < 5; i++) {
        char p[64];
        snprintf(p, sizeof p, "result.percentiles.%s", ps[i]);
        a[i] = t_num(r, p);
        if (i)
            assert_true(a[i] > a[i - 1]);
    }
    assert_int_equal(h_int(r, "result.seed"), 77);
    r = h_ok(h, "{\"op\":\"result\",\"task\":%lld}", (long long)m2);
    for (int i = 0; i < 5; i++) {
        char p[64];
        snprintf(p, sizeof p, "result.percentiles.%s", ps[i]);
        assert_true(t_num(r, p) == a[i]);
    }
    r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)m1);
    assert_int_equal(h_int(r, "task.progress"), 100);
}

/* CPU-heavy Monte Carlo tasks spread over both workers. */
static void test_interest_spread(void **state) {
    h_t *h = *state;
    char json[4096] = "{\"op\":\"submit\",\"tasks\":[";
    for (int i = 0; i < 4; i++) {
        char t[300];
        snprintf(t, sizeof t, "%s{\"type\":\"interest\",\"args\":{\"mode\":\"montecarlo\",\"principal\":1000,"
                              "\"years\":20,\"compounding\":12,\"simulations\":150000,\"mean\":0.05,\"stddev\":0.1,"
                              "\"seed\":%d}}", i ? "," : "", i);
        strcat(json, t);
    }
    strcat(json, "]}");
    const msgpack_object *r = h_ok(h, "%s", json);
    int64_t job = h_int(r, "job"), first = h_int(r, "tasks.0");
    assert_string_equal(h_wait_job(h, job, 120000), "completed");
    bool w1 = false, w2 = false;
    for (int i = 0; i < 4; i++) {
        r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)(first + i));
        const char *w = h_str(r, "task.worker");
        w1 |= strcmp(w, "w1") == 0;
        w2 |= strcmp(w, "w2") == 0;
    }
    assert_true(w1 && w2);
}

static void test_interest_bad_args(void **state) {
    h_t *h = *state;
    const msgpack_object *r = h_ok(
        h, "{\"op\":\"submit\",\"max_attempts\":1,\"tasks\":[{\"type\":\"interest\",\"args\":{\"principal\":1,"
           "\"rate\":0.1,\"years\":0}},{\"type\":\"interest\",\"args\":{\"mode\":\"montecarlo\",\"principal\":1,"
           "\"years\":200,\"compounding\":365,\"simulations\":1000000,\"mean\":0.1,\"stddev\":0.1}}]}");
    int64_t job = h_int(r, "job"), t0 = h_int(r, "tasks.0"), t1 = h_int(r, "tasks.1");
    assert_string_equal(h_wait_job(h, job, 20000), "failed");
    r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)t0);
    assert_string_equal(h_str(r, "task.error"), "interest: args.years is out of range (1..200)");
    r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)t1);
    assert_non_null(strstr(h_str(r, "task.error"), "over the limit max_steps=4000000000"));
}

/* ---- text --------------------------------------------------------------- */

static void test_text(void **state) {
    h_t *h = *state;
    const msgpack_object *r = h_ok(
        h, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"text\",\"args\":{\"text\":\"The farm runs tasks. Workers run "
           "the tasks! A sink stores results.\\n\\nTasks never get lost.\",\"ops\":[\"words\",\"chars\",\"upper\","
           "\"title\",\"top_words\",\"summary\"],\"top\":2,\"sentences\":2,\"skip_stopwords\":true}},"
           "{\"type\":\"text\",\"args\":{\"text\":\"x\",\"ops\":[\"shout\"]},\"max_attempts\":1}]}");
    int64_t job = h_int(r, "job"), t0 = h_int(r, "tasks.0"), t1 = h_int(r, "tasks.1");
    assert_string_equal(h_wait_job(h, job, 20000), "failed");
    r = h_ok(h, "{\"op\":\"result\",\"task\":%lld}", (long long)t0);
    assert_string_equal(h_str(r, "state"), "completed");
    assert_int_equal(h_int(r, "result.words"), 16);
    assert_int_equal(h_int(r, "result.chars"), 89);
    assert_string_equal(h_str(r, "result.upper"),
                        "THE FARM RUNS TASKS. WORKERS RUN THE TASKS! A SINK STORES RESULTS.\n\nTASKS NEVER GET LOST.");
    assert_string_equal(h_str(r, "result.title"),
                        "The Farm Runs Tasks. Workers Run The Tasks! A Sink Stores Results.\n\nTasks Never Get Lost.");
    assert_string_equal(h_str(r, "result.top_words.0.word"), "tasks");
    assert_int_equal(h_int(r, "result.top_words.0.count"), 3);
    assert_string_equal(h_str(r, "result.top_words.1.word"), "farm");
    /* Scores: 5/3, 5/3, 1, 2: the last sentence, and the first of the tie. */
    assert_string_equal(h_str(r, "result.summary"), "The farm runs tasks. Tasks never get lost.");
    r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)t1);
    assert_string_equal(h_str(r, "task.state"), "failed");
    assert_non_null(strstr(h_str(r, "task.error"), "text: args.ops[0] must be one of words, chars"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ingest_student, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_inline_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_limit_at_submit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_bad_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_stored_once, setup, teardown),
        cmocka_unit_test(test_ingest_progress),
        cmocka_unit_test(test_ingest_cancel),
        cmocka_unit_test_setup_teardown(test_interest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interest_spread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interest_bad_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
