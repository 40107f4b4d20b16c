/* Unit: the ingest, interest and text handlers and their pure parts.
 *
 * The handlers only see farm_plugin.h, so this test implements that API
 * itself: a fake task context records progress, failures and kept records,
 * and can be told to stop. The handlers run here exactly as on a worker,
 * minus threads and sockets. Numbers are checked against independent
 * computations: the closed forms of compound interest and of annuities,
 * the reference outputs of splitmix64 and xoshiro256**, and the normal
 * distribution's moments and quantiles.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "farm_json.h"
#include "farm_msg.h"
#include "farm_proto.h"
#include "handler_ingest.h"
#include "handler_interest.h"
#include "handler_text.h"

/* ---- a fake task context ------------------------------------------------ */

#define T_MSGS_MAX 256
#define T_RECS_MAX 2000

struct farm_task_ctx {
    int pct[T_MSGS_MAX];            /* progress reports, in order */
    char msg[T_MSGS_MAX][256];      /* their messages ("" none) */
    int nprog;
    bool stop;                      /* farm_task_stopping() */
    int stop_after_prog;            /* > 0: stop once this many progress reports came */
    char error[1024];               /* farm_task_fail() */
    void *ud;                       /* farm_task_handler_data() */
    int64_t rec_idx[T_RECS_MAX];    /* farm_task_record() indexes, in order */
    int nrecs;
};

void farm_task_progress(farm_task_ctx_t *ctx, int pct, const char *msg) {
    if (ctx->nprog < T_MSGS_MAX) {
        ctx->pct[ctx->nprog] = pct;
        snprintf(ctx->msg[ctx->nprog], sizeof ctx->msg[0], "%s", msg ? msg : "");
        ctx->nprog++;
    }
    if (ctx->stop_after_prog > 0 && ctx->nprog >= ctx->stop_after_prog)
        ctx->stop = true;
}
bool farm_task_stopping(const farm_task_ctx_t *ctx) { return ctx->stop; }
int farm_task_stop_fd(const farm_task_ctx_t *ctx) { (void)ctx; return -1; }
int64_t farm_task_deadline_ms(const farm_task_ctx_t *ctx) { (void)ctx; return 0; }
int64_t farm_task_timeout_ms(const farm_task_ctx_t *ctx) { (void)ctx; return 0; }
int64_t farm_task_id(const farm_task_ctx_t *ctx) { (void)ctx; return 1; }
int64_t farm_task_job(const farm_task_ctx_t *ctx) { (void)ctx; return 1; }
int64_t farm_task_attempt(const farm_task_ctx_t *ctx) { (void)ctx; return 1; }
void *farm_task_handler_data(const farm_task_ctx_t *ctx) { return ctx->ud; }
void farm_task_fail(farm_task_ctx_t *ctx, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->error, sizeof ctx->error, fmt, ap);
    va_end(ap);
}
int farm_task_record(farm_task_ctx_t *ctx, int64_t idx, const msgpack_object *record) {
    if (!record || idx < 0 || ctx->nrecs == T_RECS_MAX)
        return -1;
    ctx->rec_idx[ctx->nrecs++] = idx;
    return 0;
}

/* A handler's run, with its args as JSON and its result decoded. */
typedef struct {
    farm_task_ctx_t ctx;
    int rc;
    msgpack_zone zone;
    msgpack_object result;
    msgpack_sbuffer out;
    msgpack_sbuffer in;
} t_run_t;

static void t_run_json(t_run_t *r, farm_handler_fn fn, void *ud, const char *json) {
    memset(&r->ctx, 0, sizeof r->ctx);
    r->ctx.ud = ud;
    msgpack_sbuffer_init(&r->in);
    msgpack_sbuffer_init(&r->out);
    assert_true(msgpack_zone_init(&r->zone, 4096));
    msgpack_packer pk;
    msgpack_packer_init(&pk, &r->in, msgpack_sbuffer_write);
    char err[256];
    if (farm_json_to_msgpack(json, strlen(json), &pk, err, sizeof err) != 0)
        fail_msg("bad JSON in test: %s", err);
    farm_error_t e;
    msgpack_object args;
    assert_int_equal(farm_msg_unpack(r->in.data, r->in.size, &r->zone, &args, &e), 0);
    msgpack_packer rp;
    msgpack_packer_init(&rp, &r->out, msgpack_sbuffer_write);
    r->rc = fn(&r->ctx, &args, &rp);
    r->result.type = MSGPACK_OBJECT_NIL;
    if (r->out.size)
        assert_int_equal(farm_msg_unpack(r->out.data, r->out.size, &r->zone, &r->result, &e), 0);
}

static void t_run_free(t_run_t *r) {
    msgpack_zone_destroy(&r->zone);
    msgpack_sbuffer_destroy(&r->in);
    msgpack_sbuffer_destroy(&r->out);
}

/* Value at a dotted path ("rejections.0.index"). */
static const msgpack_object *t_get(const msgpack_object *o, const char *path) {
    char key[64];
    while (o && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        snprintf(key, sizeof key, "%.*s", (int)n, path);
        if (o->type == MSGPACK_OBJECT_ARRAY) {
            unsigned long i = strtoul(key, NULL, 10);
            o = i < o->via.array.size ? &o->via.array.ptr[i] : NULL;
        } else {
            o = farm_msg_get(o, key);
        }
        path += n + (dot ? 1 : 0);
    }
    if (!o)
        fail_msg("no %s", path);
    return o;
}

static int64_t t_int(const msgpack_object *o, const char *path) {
    const msgpack_object *v = t_get(o, path);
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (int64_t)v->via.u64;
    assert_int_equal(v->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    return v->via.i64;
}

static double t_num(const msgpack_object *o, const char *path) {
    const msgpack_object *v = t_get(o, path);
    if (v->type == MSGPACK_OBJECT_FLOAT64 || v->type == MSGPACK_OBJECT_FLOAT32)
        return v->via.f64;
    return (double)t_int(o, path);
}

static const char *t_str(const msgpack_object *o, const char *path) {
    static char buf[4][8192];
    static int k;
    const msgpack_object *v = t_get(o, path);
    assert_int_equal(v->type, MSGPACK_OBJECT_STR);
    return farm_str_copy(buf[k++ % 4], sizeof buf[0], (farm_str_t){v->via.str.ptr, v->via.str.size});
}

static void t_close(double got, double want, double rel) {
    double tol = rel * fmax(1.0, fabs(want));
    if (!(fabs(got - want) <= tol))
        fail_msg("got %.12g, want %.12g (tolerance %.3g)", got, want, tol);
}

/* ---- schemas ------------------------------------------------------------ */

/* Check one record (JSON) against a schema (JSON: a name in quotes or a map). */
static bool t_check(const char *schema_json, const char *rec_json, char *reason, size_t n) {
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    char err[256];
    assert_int_equal(farm_json_to_msgpack(schema_json, strlen(schema_json), &pk, err, sizeof err), 0);
    size_t split = b.size;
    assert_int_equal(farm_json_to_msgpack(rec_json, strlen(rec_json), &pk, err, sizeof err), 0);
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    msgpack_object so, ro;
    farm_error_t e;
    assert_int_equal(farm_msg_unpack(b.data, split, &z, &so, &e), 0);
    assert_int_equal(farm_msg_unpack(b.data + split, b.size - split, &z, &ro, &e), 0);
    worker_schema_t *s = worker_schema_from(&so, err, sizeof err);
    if (!s)
        fail_msg("schema refused: %s", err);
    reason[0] = '\0';
    bool ok = worker_schema_check(s, &ro, reason, n);
    worker_schema_destroy(&s);
    assert_null(s);
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&b);
    return ok;
}

/* Expect the record to be rejected with a reason containing want. */
static void t_reject(const char *schema, const char *rec, const char *want) {
    char reason[WORKER_INGEST_REASON_MAX];
    if (t_check(schema, rec, reason, sizeof reason))
        fail_msg("%s was accepted", rec);
    if (!strstr(reason, want))
        fail_msg("%s: reason '%s' lacks '%s'", rec, reason, want);
}

static void t_accept(const char *schema, const char *rec) {
    char reason[WORKER_INGEST_REASON_MAX];
    if (!t_check(schema, rec, reason, sizeof reason))
        fail_msg("%s was rejected: %s", rec, reason);
}

static void test_student_schema(void **state) {
    (void)state;
    const char *st = "\"student\"";
    t_accept(st, "{\"id\":1,\"name\":\"Ada Lovelace\",\"email\":\"ada@school.example.org\",\"grade\":12}");
    t_accept(st, "{\"grade\":1,\"email\":\"o'brien+x@mail.co\",\"name\":\"B\",\"id\":99999}");
    t_reject(st, "{\"id\":0,\"name\":\"A\",\"email\":\"a@b.cd\",\"grade\":5}", "id is 0, below the minimum 1");
    t_reject(st, "{\"id\":-4,\"name\":\"A\",\"email\":\"a@b.cd\",\"grade\":5}", "below the minimum 1");
    t_reject(st, "{\"id\":\"7\",\"name\":\"A\",\"email\":\"a@b.cd\",\"grade\":5}", "id must be an integer, not a string");
    t_reject(st, "{\"id\":1.5,\"name\":\"A\",\"email\":\"a@b.cd\",\"grade\":5}", "id must be an integer, not a float");
    t_reject(st, "{\"id\":1,\"name\":\"\",\"email\":\"a@b.cd\",\"grade\":5}", "name has 0 characters, fewer than 1");
    t_reject(st, "{\"id\":1,\"name\":\"   \",\"email\":\"a@b.cd\",\"grade\":5}", "name must be a name that is not blank");
    t_reject(st, "{\"id\":1,\"name\":\"A\",\"email\":\"not-an-address\",\"grade\":5}",
             "email must be a plausible e-mail address");
    t_reject(st, "{\"id\":1,\"name\":\"A\",\"email\":\"a@b\",\"grade\":5}", "plausible e-mail");
    t_reject(st, "{\"id\":1,\"name\":\"A\",\"email\":\"a b@c.org\",\"grade\":5}", "plausible e-mail");
    t_reject(st, "{\"id\":1,\"name\":\"A\",\"email\":\"a@b.cd\",\"grade\":13}", "grade is 13, above the maximum 12");
    t_reject(st, "{\"id\":1,\"name\":\"A\",\"email\":\"a@b.cd\",\"grade\":0}", "grade is 0, below the minimum 1");
    t_reject(st, "{\"id\":1,\"name\":\"A\",\"email\":\"a@b.cd\"}", "missing required field 'grade'");
    t_reject(st, "{\"id\":1,\"name\":\"A\",\"email\":\"a@b.cd\",\"grade\":null}", "missing required field 'grade'");
    t_reject(st, "{\"id\":1,\"name\":\"A\",\"email\":\"a@b.cd\",\"grade\":3,\"age\":9}", "unknown field 'age'");
    t_reject(st, "[1,2]", "record must be a map, not an array");
    t_reject(st, "17", "record must be a map, not an integer");
    /* Lengths are in characters: 100 two-byte characters pass, 101 do not. */
    char rec[1024], name[512] = "";
    for (int i = 0; i < 100; i++)
        strcat(name, "\xc3\xa9");
    snprintf(rec, sizeof rec, "{\"id\":1,\"name\":\"%s\",\"email\":\"a@b.cd\",\"grade\":5}", name);
    t_accept(st, rec);
    strcat(name, "e");
    snprintf(rec, sizeof rec, "{\"id\":1,\"name\":\"%s\",\"email\":\"a@b.cd\",\"grade\":5}", name);
    t_reject(st, rec, "name has 101 characters, more than 100");
}

static void test_student_schema_raw(void **state) {
    (void)state;
    /* What JSON cannot say: a repeated key, bytes that are not UTF-8, a
     * key that is not a string. */
    char err[256];
    msgpack_object name = {.type = MSGPACK_OBJECT_STR, .via.str = {.size = 7, .ptr = "student"}};
    worker_schema_t *s = worker_schema_from(&name, err, sizeof err);
    assert_non_null(s);
    assert_string_equal(worker_schema_name(s), "student");
    msgpack_object_kv kv[5];
    const char *keys[] = {"id", "name", "email", "grade", "id"};
    for (int i = 0; i < 5; i++) {
        kv[i].key.type = MSGPACK_OBJECT_STR;
        kv[i].key.via.str.ptr = keys[i];
        kv[i].key.via.str.size = (uint32_t)strlen(keys[i]);
        kv[i].val.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        kv[i].val.via.u64 = 3;
    }
    kv[1].val.type = kv[2].val.type = MSGPACK_OBJECT_STR;
    kv[1].val.via.str.ptr = "Bob";
    kv[1].val.via.str.size = 3;
    kv[2].val.via.str.ptr = "b@c.de";
    kv[2].val.via.str.size = 6;
    msgpack_object rec = {.type = MSGPACK_OBJECT_MAP, .via.map = {.size = 4, .ptr = kv}};
    char reason[WORKER_INGEST_REASON_MAX];
    assert_true(worker_schema_check(s, &rec, reason, sizeof reason));
    rec.via.map.size = 5;
    assert_false(worker_schema_check(s, &rec, reason, sizeof reason));
    assert_string_equal(reason, "field 'id' appears twice");
    rec.via.map.size = 4;
    kv[1].val.via.str.ptr = "B\xff";
    kv[1].val.via.str.size = 2;
    assert_false(worker_schema_check(s, &rec, reason, sizeof reason));
    assert_string_equal(reason, "name must be valid UTF-8 text without NUL bytes");
    kv[1].val.via.str.ptr = "B\0b";
    kv[1].val.via.str.size = 3;
    assert_false(worker_schema_check(s, &rec, reason, sizeof reason));
    kv[1].val.via.str.ptr = "Bob";
    kv[1].val.via.str.size = 3;
    kv[0].key.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    assert_false(worker_schema_check(s, &rec, reason, sizeof reason));
    assert_string_equal(reason, "record has a key that is not a string");
    /* An unknown key's name is quoted as printable ASCII only. */
    kv[0].key.type = MSGPACK_OBJECT_STR;
    kv[0].key.via.str.ptr = "\x1b[2Jx";
    kv[0].key.via.str.size = 5;
    assert_false(worker_schema_check(s, &rec, reason, sizeof reason));
    assert_string_equal(reason, "unknown field '?[2Jx'");
    worker_schema_destroy(&s);
    worker_schema_destroy(&s); /* safe twice */
}

static const char *s_inline =
    "{\"name\":\"product\",\"fields\":["
    "{\"name\":\"sku\",\"type\":\"str\",\"required\":true,\"pattern\":\"[A-Z]{3}-[0-9]{4}\"},"
    "{\"name\":\"price\",\"type\":\"float\",\"required\":true,\"min\":0,\"max\":1000.5},"
    "{\"name\":\"qty\",\"type\":\"int\",\"min\":-5,\"max\":5},"
    "{\"name\":\"label\",\"type\":\"str\",\"min_len\":2,\"max_len\":4},"
    "{\"name\":\"active\",\"type\":\"bool\"}]}";

static void test_inline_schema(void **state) {
    (void)state;
    t_accept(s_inline, "{\"sku\":\"ABC-1234\",\"price\":10}");
    t_accept(s_inline, "{\"sku\":\"ABC-1234\",\"price\":1000.5,\"qty\":-5,\"label\":\"abcd\",\"active\":false}");
    t_accept(s_inline, "{\"sku\":\"ABC-1234\",\"price\":0.25,\"qty\":null}");
    /* The pattern must match the whole value. */
    t_reject(s_inline, "{\"sku\":\"xABC-1234\",\"price\":1}", "sku does not match the pattern [A-Z]{3}-[0-9]{4}");
    t_reject(s_inline, "{\"sku\":\"ABC-12345\",\"price\":1}", "does not match the pattern");
    t_reject(s_inline, "{\"sku\":\"ABC-1234\"}", "missing required field 'price'");
    t_reject(s_inline, "{\"sku\":\"ABC-1234\",\"price\":1000.75}", "price is 1000.75, above the maximum 1000.5");
    t_reject(s_inline, "{\"sku\":\"ABC-1234\",\"price\":-0.5}", "price is -0.5, below the minimum 0");
    t_reject(s_inline, "{\"sku\":\"ABC-1234\",\"price\":\"1\"}", "price must be a finite number, not a string");
    t_reject(s_inline, "{\"sku\":\"ABC-1234\",\"price\":1,\"qty\":6}", "qty is 6, above the maximum 5");
    t_reject(s_inline, "{\"sku\":\"ABC-1234\",\"price\":1,\"label\":\"a\"}", "label has 1 characters, fewer than 2");
    t_reject(s_inline, "{\"sku\":\"ABC-1234\",\"price\":1,\"label\":\"abcde\"}", "more than 4");
    t_reject(s_inline, "{\"sku\":\"ABC-1234\",\"price\":1,\"active\":1}", "active must be a boolean, not an integer");
    t_reject(s_inline, "{\"sku\":5,\"price\":1}", "sku must be a string, not an integer");
}

/* Expect schema_json to be refused with a message containing want. */
static void t_bad_schema(const char *schema_json, const char *want) {
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    char err[512];
    assert_int_equal(farm_json_to_msgpack(schema_json, strlen(schema_json), &pk, err, sizeof err), 0);
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    msgpack_object o;
    farm_error_t e;
    assert_int_equal(farm_msg_unpack(b.data, b.size, &z, &o, &e), 0);
    worker_schema_t *s = worker_schema_from(&o, err, sizeof err);
    if (s)
        fail_msg("schema %s was accepted", schema_json);
    if (!strstr(err, want))
        fail_msg("%s: message '%s' lacks '%s'", schema_json, err, want);
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&b);
}

static void test_inline_schema_refused(void **state) {
    (void)state;
    t_bad_schema("\"teacher\"", "no built-in schema 'teacher' (known: student)");
    t_bad_schema("42", "args.schema must be a schema name or a map");
    t_bad_schema("{}", "args.schema.fields is missing");
    t_bad_schema("{\"fields\":[]}", "args.schema.fields is too short");
    t_bad_schema("{\"fields\":[{\"name\":\"a\",\"type\":\"date\"}]}", "args.schema.fields[0].type must be int, float, str or bool");
    t_bad_schema("{\"fields\":[{\"type\":\"int\"}]}", "args.schema.fields[0].name is missing");
    t_bad_schema("{\"fields\":[{\"name\":\"a\",\"type\":\"int\"},{\"name\":\"a\",\"type\":\"str\"}]}",
                 "args.schema.fields[1].name: field 'a' is declared twice");
    t_bad_schema("{\"fields\":[{\"name\":\"a\",\"type\":\"int\",\"min\":5,\"max\":1}]}", "min 5 is greater than max 1");
    t_bad_schema("{\"fields\":[{\"name\":\"a\",\"type\":\"int\",\"min\":1.5}]}", "must be integers");
    t_bad_schema("{\"fields\":[{\"name\":\"a\",\"type\":\"str\",\"min\":1}]}", "use min_len and max_len");
    t_bad_schema("{\"fields\":[{\"name\":\"a\",\"type\":\"int\",\"pattern\":\"x\"}]}", "apply to str fields only");
    t_bad_schema("{\"fields\":[{\"name\":\"a\",\"type\":\"str\",\"min_len\":3,\"max_len\":2}]}",
                 "min_len 3 is greater than max_len 2");
    t_bad_schema("{\"fields\":[{\"name\":\"a\",\"type\":\"str\",\"pattern\":\"([a-z\"}]}",
                 "args.schema.fields[0].pattern is not a valid extended regular expression");
    char big[4096];
    snprintf(big, sizeof big, "{\"fields\":[{\"name\":\"a\",\"type\":\"str\",\"pattern\":\"%0257d\"}]}", 0);
    t_bad_schema(big, "args.schema.fields[0].pattern is too long (at most 256)");
    /* 65 fields: over the limit of 64. */
    size_t off = (size_t)snprintf(big, sizeof big, "{\"fields\":[");
    for (int i = 0; i < 65; i++)
        off += (size_t)snprintf(big + off, sizeof big - off, "%s{\"name\":\"f%d\",\"type\":\"int\"}", i ? "," : "", i);
    snprintf(big + off, sizeof big - off, "]}");
    t_bad_schema(big, "args.schema.fields is too long (at most 64)");
}

/* ---- the ingest handler ------------------------------------------------- */

/* JSON of n student records; every 7th has grade 13. */
static char *t_students(int n, const char *extra_args) {
    size_t cap = (size_t)n * 96 + 256;
    char *j = malloc(cap);
    assert_non_null(j);
    size_t off = (size_t)snprintf(j, cap, "{\"schema\":\"student\"%s,\"records\":[", extra_args);
    for (int i = 0; i < n; i++)
        off += (size_t)snprintf(j + off, cap - off,
                                "%s{\"id\":%d,\"name\":\"Student %d\",\"email\":\"s%d@school.example.org\",\"grade\":%d}",
                                i ? "," : "", i + 1, i, i, i % 7 == 3 ? 13 : 1 + i % 12);
    snprintf(j + off, cap - off, "]}");
    return j;
}

static void test_ingest_handler(void **state) {
    (void)state;
    worker_ingest_cfg_t cfg = {.pause_ms = 0};
    char *json = t_students(250, "");
    t_run_t r;
    t_run_json(&r, worker_ingest_run, &cfg, json);
    free(json);
    assert_int_equal(r.rc, 0);
    int bad = 0;
    for (int i = 0; i < 250; i++)
        bad += i % 7 == 3;
    assert_string_equal(t_str(&r.result, "schema"), "student");
    assert_int_equal(t_int(&r.result, "total"), 250);
    assert_int_equal(t_int(&r.result, "accepted"), 250 - bad);
    assert_int_equal(t_int(&r.result, "rejected"), bad);
    const msgpack_object *rej = t_get(&r.result, "rejections");
    assert_int_equal(rej->via.array.size, bad);
    assert_int_equal(t_int(&r.result, "rejections.0.index"), 3);
    assert_string_equal(t_str(&r.result, "rejections.0.reason"), "grade is 13, above the maximum 12");
    assert_int_equal(t_int(&r.result, "rejections.1.index"), 10);
    /* Progress after each 100, then the rest. */
    assert_int_equal(r.ctx.nprog, 3);
    assert_string_equal(r.ctx.msg[0], "validated 100/250");
    assert_int_equal(r.ctx.pct[0], 40);
    assert_string_equal(r.ctx.msg[1], "validated 200/250");
    assert_string_equal(r.ctx.msg[2], "validated 250/250");
    assert_int_equal(r.ctx.pct[2], 100);
    /* Exactly the accepted records are kept, under their index. */
    assert_int_equal(r.ctx.nrecs, 250 - bad);
    for (int i = 0, k = 0; i < 250; i++)
        if (i % 7 != 3)
            assert_int_equal(r.ctx.rec_idx[k++], i);
    t_run_free(&r);

    /* Empty input is a success with nothing kept. */
    t_run_json(&r, worker_ingest_run, &cfg, "{\"schema\":\"student\",\"records\":[]}");
    assert_int_equal(r.rc, 0);
    assert_int_equal(t_int(&r.result, "accepted"), 0);
    assert_int_equal(r.ctx.nrecs, 0);
    t_run_free(&r);

    /* An inline schema is named in the result. */
    t_run_json(&r, worker_ingest_run, &cfg,
               "{\"schema\":{\"name\":\"pts\",\"fields\":[{\"name\":\"x\",\"type\":\"int\",\"required\":true}]},"
               "\"records\":[{\"x\":1},{\"y\":2},{\"x\":\"3\"}]}");
    assert_int_equal(r.rc, 0);
    assert_string_equal(t_str(&r.result, "schema"), "pts");
    assert_int_equal(t_int(&r.result, "accepted"), 1);
    assert_string_equal(t_str(&r.result, "rejections.0.reason"), "unknown field 'y'");
    assert_string_equal(t_str(&r.result, "rejections.1.reason"), "x must be an integer, not a string");
    t_run_free(&r);
}

static void test_ingest_handler_errors(void **state) {
    (void)state;
    struct {
        const char *args, *want;
    } cases[] = {
        {"null", "ingest: args must be a map with schema and records"},
        {"{\"records\":[]}", "ingest: args.schema is missing"},
        {"{\"schema\":\"student\"}", "ingest: args.records is missing"},
        {"{\"schema\":\"student\",\"records\":{}}", "ingest: args.records must be an array"},
        {"{\"schema\":\"nobody\",\"records\":[]}", "ingest: args.schema: no built-in schema 'nobody'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        t_run_t r;
        t_run_json(&r, worker_ingest_run, NULL, cases[i].args);
        assert_int_not_equal(r.rc, 0);
        if (!strstr(r.ctx.error, cases[i].want))
            fail_msg("%s: '%s' lacks '%s'", cases[i].args, r.ctx.error, cases[i].want);
        assert_int_equal(r.ctx.nrecs, 0);
        t_run_free(&r);
    }
    /* Over the limit: the worker refuses too, naming it. */
    char *json = t_students(FARM_INGEST_MAX_RECORDS + 1, "");
    t_run_t r;
    t_run_json(&r, worker_ingest_run, NULL, json);
    free(json);
    assert_int_not_equal(r.rc, 0);
    assert_string_equal(r.ctx.error, "ingest: args.records has 1001 entries, over the limit max_records=1000");
    t_run_free(&r);
}

static void test_ingest_stop(void **state) {
    (void)state;
    char *json = t_students(500, "");
    t_run_t r;
    /* t_run_json resets the context, so this runs the handler by hand and
     * stops it from the second progress report on. */
    memset(&r, 0, sizeof r);
    msgpack_sbuffer_init(&r.in);
    msgpack_sbuffer_init(&r.out);
    msgpack_zone_init(&r.zone, 4096);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &r.in, msgpack_sbuffer_write);
    char err[128];
    assert_int_equal(farm_json_to_msgpack(json, strlen(json), &pk, err, sizeof err), 0);
    free(json);
    msgpack_object args;
    farm_error_t e;
    assert_int_equal(farm_msg_unpack(r.in.data, r.in.size, &r.zone, &args, &e), 0);
    r.ctx.stop_after_prog = 2;
    msgpack_packer rp;
    msgpack_packer_init(&rp, &r.out, msgpack_sbuffer_write);
    assert_int_not_equal(worker_ingest_run(&r.ctx, &args, &rp), 0);
    assert_string_equal(r.ctx.error, "ingest: stopped after 200 of 500 records");
    assert_int_equal(r.out.size, 0);
    t_run_free(&r);
}

/* ---- interest ----------------------------------------------------------- */

/* The closed form: P(1+r/n)^(nt) + C((1+r/n)^(nt) - 1)/(r/n), or P + Cnt at r = 0. */
static double t_closed(double P, double r, int n, int t, double C) {
    if (r == 0)
        return P + C * n * t;
    double g = pow(1 + r / n, (double)n * t);
    return P * g + C * (g - 1) / (r / n);
}

static void test_interest_schedule(void **state) {
    (void)state;
    struct {
        double P, r;
        int n, t;
        double C;
    } cases[] = {
        {1000, 0.05, 12, 10, 0},   {1000, 0.05, 12, 10, 100}, {25000, 0.07, 1, 30, 0}, {0, 0.03, 365, 40, 5},
        {5000, 0, 4, 20, 50},      {100, -0.02, 12, 15, 10},  {1e6, 0.12, 365, 200, 0}, {1, 1.0, 1, 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        worker_interest_t p = {cases[i].P, cases[i].r, cases[i].t, cases[i].n, cases[i].C};
        worker_interest_year_t *ys = calloc((size_t)p.years, sizeof *ys);
        double final = worker_interest_schedule(&p, ys);
        t_close(final, t_closed(p.principal, p.rate, p.per_year, p.years, p.contribution), 1e-6);
        for (int y = 1; y <= p.years; y++) {
            t_close(ys[y - 1].balance, t_closed(p.principal, p.rate, p.per_year, y, p.contribution), 1e-6);
            assert_int_equal(ys[y - 1].year, y);
            t_close(ys[y - 1].contributed, p.principal + p.contribution * p.per_year * y, 1e-12);
        }
        /* A year's interest is the growth not paid in. */
        double prev = p.principal;
        for (int y = 0; y < p.years; y++) {
            t_close(ys[y].interest, ys[y].balance - prev - p.contribution * p.per_year, 1e-9);
            prev = ys[y].balance;
        }
        free(ys);
    }
    /* 1000 at 5 % monthly for 10 years: the textbook 1647.01. */
    worker_interest_t p = {1000, 0.05, 10, 12, 0};
    t_close(worker_interest_schedule(&p, NULL), 1647.00949769, 1e-9);
}

static void test_interest_handler_schedule(void **state) {
    (void)state;
    t_run_t r;
    t_run_json(&r, worker_interest_run, NULL,
               "{\"principal\":1000,\"rate\":0.05,\"years\":10,\"compounding\":12,\"contribution\":100}");
    assert_int_equal(r.rc, 0);
    assert_string_equal(t_str(&r.result, "mode"), "schedule");
    double want = t_closed(1000, 0.05, 12, 10, 100);
    t_close(t_num(&r.result, "final"), want, 1e-6);
    t_close(t_num(&r.result, "contributed"), 1000 + 100 * 12 * 10, 1e-12);
    t_close(t_num(&r.result, "interest"), want - 13000, 1e-6);
    assert_int_equal(t_get(&r.result, "schedule")->via.array.size, 10);
    assert_int_equal(t_int(&r.result, "schedule.9.year"), 10);
    t_close(t_num(&r.result, "schedule.9.balance"), want, 1e-6);
    t_close(t_num(&r.result, "schedule.0.balance"), t_closed(1000, 0.05, 12, 1, 100), 1e-6);
    t_run_free(&r);
}

static void test_rng(void **state) {
    (void)state;
    /* splitmix64 from 0: its published first outputs. */
    uint64_t st = 0;
    assert_true(worker_splitmix64(&st) == 0xE220A8397B1DCDAFULL);
    assert_true(worker_splitmix64(&st) == 0x6E789E6AA1B965F4ULL);
    assert_true(worker_splitmix64(&st) == 0x06C45D188009454FULL);
    /* xoshiro256** from {1, 2, 3, 4}: the reference implementation's outputs. */
    worker_rng_t r = {.s = {1, 2, 3, 4}};
    assert_true(worker_rng_next(&r) == 11520);
    assert_true(worker_rng_next(&r) == 0);
    assert_true(worker_rng_next(&r) == 1509978240);
    /* Seeded streams repeat; different seeds differ. */
    worker_rng_t a, b, c;
    worker_rng_seed(&a, 42);
    worker_rng_seed(&b, 42);
    worker_rng_seed(&c, 43);
    bool differ = false;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = worker_rng_next(&a);
        assert_true(x == worker_rng_next(&b));
        differ |= x != worker_rng_next(&c);
    }
    assert_true(differ);
    /* Uniforms in [0, 1); normals with the moments and quantile asked. */
    worker_rng_seed(&a, 7);
    const int n = 200000;
    double sum = 0, sq = 0;
    int below = 0;
    for (int i = 0; i < n; i++) {
        double u = worker_rng_uniform(&a);
        assert_true(u >= 0 && u < 1);
    }
    for (int i = 0; i < n; i++) {
        double z = worker_rng_normal(&a, 2.0, 3.0);
        sum += z;
        sq += (z - 2.0) * (z - 2.0);
        below += z < 2.0 - 1.6448536 * 3.0; /* the 5 % quantile */
    }
    t_close(sum / n, 2.0, 0.01);
    t_close(sqrt(sq / n), 3.0, 0.01);
    t_close((double)below / n, 0.05, 0.003);
}

static void test_percentile(void **state) {
    (void)state;
    double x[] = {1, 2, 3, 4, 5};
    assert_true(worker_percentile(x, 5, 0) == 1);
    assert_true(worker_percentile(x, 5, 50) == 3);
    assert_true(worker_percentile(x, 5, 100) == 5);
    assert_true(worker_percentile(x, 5, 25) == 2);
    t_close(worker_percentile(x, 5, 10), 1.4, 1e-12);
    double one = 7;
    assert_true(worker_percentile(&one, 1, 95) == 7);
}

static int t_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void test_monte_carlo(void **state) {
    (void)state;
    /* No deviation: every simulation is the closed form. */
    worker_mc_t m = {.plan = {1000, 0, 10, 12, 50}, .mean = 0.06, .stddev = 0, .simulations = 100, .seed = 1};
    double *f = malloc(100000 * sizeof *f);
    assert_int_equal(worker_interest_mc(&m, f, NULL, NULL), 100);
    for (int i = 0; i < 100; i++)
        t_close(f[i], t_closed(1000, 0.06, 12, 10, 50), 1e-9);
    /* One year, compounded once, no contributions: final = P(1 + r) with r
     * normal, so its percentiles are P(1 + mean + z_p sd). */
    m = (worker_mc_t){.plan = {1000, 0, 1, 1, 0}, .mean = 0.05, .stddev = 0.1, .simulations = 100000, .seed = 9};
    assert_int_equal(worker_interest_mc(&m, f, NULL, NULL), 100000);
    double *g = malloc(100000 * sizeof *g);
    memcpy(g, f, 100000 * sizeof *g);
    qsort(g, 100000, sizeof *g, t_cmp_double);
    t_close(worker_percentile(g, 100000, 50), 1050, 0.002);
    t_close(worker_percentile(g, 100000, 5), 1000 * (1.05 - 1.6448536 * 0.1), 0.004);
    t_close(worker_percentile(g, 100000, 95), 1000 * (1.05 + 1.6448536 * 0.1), 0.004);
    /* Same seed, same draws. */
    double *h = malloc(100000 * sizeof *h);
    assert_int_equal(worker_interest_mc(&m, h, NULL, NULL), 100000);
    assert_memory_equal(f, h, 100000 * sizeof *h);
    m.seed = 10;
    assert_int_equal(worker_interest_mc(&m, h, NULL, NULL), 100000);
    assert_memory_not_equal(f, h, 100000 * sizeof *h);
    free(f);
    free(g);
    free(h);
}

static void test_interest_handler_mc(void **state) {
    (void)state;
    const char *args = "{\"mode\":\"montecarlo\",\"principal\":10000,\"years\":20,\"compounding\":12,"
                       "\"contribution\":100,\"simulations\":5000,\"mean\":0.05,\"stddev\":0.15,\"seed\":1234,"
                       "\"percentiles\":[5,50,95]}";
    t_run_t a, b;
    t_run_json(&a, worker_interest_run, NULL, args);
    t_run_json(&b, worker_interest_run, NULL, args);
    assert_int_equal(a.rc, 0);
    assert_int_equal(b.rc, 0);
    /* Deterministic: the same bytes for the same seed. */
    assert_int_equal(a.out.size, b.out.size);
    assert_memory_equal(a.out.data, b.out.data, a.out.size);
    assert_string_equal(t_str(&a.result, "mode"), "montecarlo");
    assert_int_equal(t_int(&a.result, "simulations"), 5000);
    assert_int_equal(t_int(&a.result, "seed"), 1234);
    double p5 = t_num(&a.result, "percentiles.p5"), p50 = t_num(&a.result, "percentiles.p50"),
           p95 = t_num(&a.result, "percentiles.p95");
    assert_true(t_num(&a.result, "min") <= p5 && p5 < p50 && p50 < p95 && p95 <= t_num(&a.result, "max"));
    /* The median is near the plan at the mean rate (within a few percent). */
    t_close(p50, t_closed(10000, 0.05, 12, 20, 100), 0.1);
    /* Progress every 1 %, ending at 100. */
    assert_true(a.ctx.nprog >= 100);
    assert_string_equal(a.ctx.msg[0], "simulated 50/5000");
    assert_int_equal(a.ctx.pct[a.ctx.nprog - 1], 100);
    assert_string_equal(a.ctx.msg[a.ctx.nprog - 1], "simulated 5000/5000");
    t_run_free(&a);
    t_run_free(&b);
    /* A zero deviation gives the closed form at every percentile. */
    t_run_json(&a, worker_interest_run, NULL,
               "{\"mode\":\"montecarlo\",\"principal\":500,\"years\":5,\"compounding\":4,\"simulations\":10,"
               "\"mean\":0.08,\"stddev\":0}");
    assert_int_equal(a.rc, 0);
    const char *ps[] = {"percentiles.p5", "percentiles.p25", "percentiles.p50", "percentiles.p75", "percentiles.p95"};
    for (int i = 0; i < 5; i++)
        t_close(t_num(&a.result, ps[i]), t_closed(500, 0.08, 4, 5, 0), 1e-9);
    t_run_free(&a);
}

static void test_interest_errors(void **state) {
    (void)state;
    struct {
        const char *args, *want;
    } cases[] = {
        {"null", "interest: args must be a map"},
        {"{\"rate\":0.05,\"years\":10}", "interest: args.principal is missing"},
        {"{\"principal\":100,\"years\":10}", "interest: args.rate is missing"},
        {"{\"principal\":100,\"rate\":0.05,\"years\":0}", "interest: args.years is out of range (1..200)"},
        {"{\"principal\":100,\"rate\":0.05,\"years\":5,\"compounding\":366}", "args.compounding is out of range"},
        {"{\"principal\":-1,\"rate\":0.05,\"years\":5}", "interest: args.principal must be a number in 0..1e+15"},
        {"{\"principal\":\"x\",\"rate\":0.05,\"years\":5}", "args.principal must be a number"},
        {"{\"principal\":1,\"rate\":-2,\"years\":5}", "args.rate must be a number in -1..10"},
        {"{\"principal\":1,\"rate\":0.1,\"years\":5,\"mode\":\"magic\"}", "args.mode must be schedule or montecarlo"},
        {"{\"mode\":\"montecarlo\",\"principal\":1,\"years\":5}", "interest: args.mean is missing"},
        {"{\"mode\":\"montecarlo\",\"principal\":1,\"years\":5,\"mean\":0.1,\"stddev\":-1}", "args.stddev must be"},
        {"{\"mode\":\"montecarlo\",\"principal\":1,\"years\":5,\"mean\":0.1,\"stddev\":1,\"simulations\":1000001}",
         "args.simulations is out of range"},
        {"{\"mode\":\"montecarlo\",\"principal\":1,\"years\":200,\"compounding\":365,\"mean\":0.1,\"stddev\":1,"
         "\"simulations\":1000000}",
         "simulations x years x compounding is 73000000000, over the limit max_steps=4000000000"},
        {"{\"mode\":\"montecarlo\",\"principal\":1,\"years\":5,\"mean\":0.1,\"stddev\":1,\"percentiles\":[50,101]}",
         "args.percentiles[1] must be an integer 0..100"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        t_run_t r;
        t_run_json(&r, worker_interest_run, NULL, cases[i].args);
        assert_int_not_equal(r.rc, 0);
        if (!strstr(r.ctx.error, cases[i].want))
            fail_msg("%s: '%s' lacks '%s'", cases[i].args, r.ctx.error, cases[i].want);
        t_run_free(&r);
    }
}

/* ---- text --------------------------------------------------------------- */

static void test_text_counts_and_case(void **state) {
    (void)state;
    const char *t = "Hello, world! It's a fine day.\n\nÉmile says: don't panic.";
    assert_int_equal(worker_text_words(t, strlen(t)), 10);
    assert_int_equal(worker_text_words("", 0), 0);
    assert_int_equal(worker_text_words("  ... !!", 8), 0);
    assert_int_equal(worker_text_words("l'été est là", strlen("l'été est là")), 3);
    char *out;
    size_t n;
    assert_int_equal(worker_text_case(t, strlen(t), WORKER_CASE_UPPER, &out, &n), 0);
    assert_string_equal(out, "HELLO, WORLD! IT'S A FINE DAY.\n\nÉMILE SAYS: DON'T PANIC.");
    assert_int_equal(n, strlen(out));
    free(out);
    assert_int_equal(worker_text_case(t, strlen(t), WORKER_CASE_LOWER, &out, &n), 0);
    assert_string_equal(out, "hello, world! it's a fine day.\n\némile says: don't panic.");
    free(out);
    assert_int_equal(worker_text_case("hELLO wORLD o'neil ÉCOLE", strlen("hELLO wORLD o'neil ÉCOLE"),
                                      WORKER_CASE_TITLE, &out, &n), 0);
    assert_string_equal(out, "Hello World O'neil École");
    free(out);
    assert_int_equal(worker_text_case("", 0, WORKER_CASE_TITLE, &out, &n), 0);
    assert_string_equal(out, "");
    assert_int_equal(n, 0);
    free(out);
}

static void test_text_top_words(void **state) {
    (void)state;
    const char *t = "The cat and the dog. The CAT sat; a dog ran. Cat!";
    worker_word_t *w;
    size_t n;
    assert_int_equal(worker_text_top(t, strlen(t), 3, false, &w, &n), 0);
    assert_int_equal(n, 3);
    /* cat 3 and the 3: a tie broken by bytes; then dog 2. */
    assert_string_equal(w[0].word, "cat");
    assert_int_equal(w[0].count, 3);
    assert_string_equal(w[1].word, "the");
    assert_int_equal(w[1].count, 3);
    assert_string_equal(w[2].word, "dog");
    assert_int_equal(w[2].count, 2);
    worker_text_words_free(w, n);
    assert_int_equal(worker_text_top(t, strlen(t), 1000, true, &w, &n), 0);
    assert_int_equal(n, 4); /* cat dog sat ran: the, and, a are stop words */
    assert_string_equal(w[0].word, "cat");
    assert_string_equal(w[1].word, "dog");
    assert_string_equal(w[2].word, "ran");
    assert_string_equal(w[3].word, "sat");
    worker_text_words_free(w, n);
    assert_int_equal(worker_text_top("", 0, 10, false, &w, &n), 0);
    assert_int_equal(n, 0);
    worker_text_words_free(w, n);
}

static void test_text_summary(void **state) {
    (void)state;
    const char *t = "Rivers carry water to the sea. Rivers shape valleys, and rivers feed farms along the water. "
                    "Bananas are yellow.\n\nThe sea is salty! Did the water in rivers come from rain? "
                    "Nobody asked";
    char *out;
    size_t n;
    int64_t ns;
    /* Scores (content-word frequency / 4, the count of "rivers"): 2.5, 4,
     * 0.5, 0.75, 2.25, 0.5. */
    assert_int_equal(worker_text_summary(t, strlen(t), 1, &out, &n, &ns), 0);
    assert_int_equal(ns, 6);
    assert_string_equal(out, "Rivers shape valleys, and rivers feed farms along the water.");
    free(out);
    assert_int_equal(worker_text_summary(t, strlen(t), 3, &out, &n, &ns), 0);
    assert_string_equal(out, "Rivers carry water to the sea. Rivers shape valleys, and rivers feed farms along the "
                             "water. Did the water in rivers come from rain?");
    assert_int_equal(n, strlen(out));
    free(out);
    assert_int_equal(worker_text_summary(t, strlen(t), 100, &out, &n, &ns), 0);
    /* All of it, white space collapsed. */
    assert_string_equal(out, "Rivers carry water to the sea. Rivers shape valleys, and rivers feed farms along the "
                             "water. Bananas are yellow. The sea is salty! Did the water in rivers come from rain? "
                             "Nobody asked");
    free(out);
    assert_int_equal(worker_text_summary("", 0, 3, &out, &n, &ns), 0);
    assert_int_equal(ns, 0);
    assert_string_equal(out, "");
    free(out);
}

static void test_text_handler(void **state) {
    (void)state;
    t_run_t r;
    t_run_json(&r, worker_text_run, NULL,
               "{\"text\":\"One fish. Two fish! Red fish, blue fish.\",\"ops\":[\"words\",\"chars\",\"upper\","
               "\"lower\",\"title\",\"top_words\",\"summary\"],\"top\":2,\"sentences\":1}");
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.result.via.map.size, 7);
    assert_int_equal(t_int(&r.result, "words"), 8);
    assert_int_equal(t_int(&r.result, "chars"), 40);
    assert_string_equal(t_str(&r.result, "upper"), "ONE FISH. TWO FISH! RED FISH, BLUE FISH.");
    assert_string_equal(t_str(&r.result, "lower"), "one fish. two fish! red fish, blue fish.");
    assert_string_equal(t_str(&r.result, "title"), "One Fish. Two Fish! Red Fish, Blue Fish.");
    assert_string_equal(t_str(&r.result, "top_words.0.word"), "fish");
    assert_int_equal(t_int(&r.result, "top_words.0.count"), 4);
    assert_string_equal(t_str(&r.result, "top_words.1.word"), "blue");
    assert_int_equal(t_get(&r.result, "top_words")->via.array.size, 2);
    assert_string_equal(t_str(&r.result, "summary"), "Red fish, blue fish.");
    t_run_free(&r);
    /* Default ops: words and chars. */
    t_run_json(&r, worker_text_run, NULL, "{\"text\":\"caf\xc3\xa9 au lait\"}");
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.result.via.map.size, 2);
    assert_int_equal(t_int(&r.result, "words"), 3);
    assert_int_equal(t_int(&r.result, "chars"), 12);
    t_run_free(&r);
    struct {
        const char *args, *want;
    } cases[] = {
        {"{}", "text: args.text is missing"},
        {"{\"text\":1}", "text: args.text must be"},
        {"{\"text\":\"a\",\"ops\":[\"rot13\"]}", "text: args.ops[0] must be one of words, chars"},
        {"{\"text\":\"a\",\"ops\":[\"words\",\"words\"]}", "text: args.ops[1]: words is asked twice"},
        {"{\"text\":\"a\",\"ops\":[]}", "args.ops is too short"},
        {"{\"text\":\"a\",\"top\":1001}", "args.top is out of range (1..1000)"},
        {"{\"text\":\"a\",\"sentences\":0}", "args.sentences is out of range (1..100)"},
        {"{\"text\":\"\\u0000\"}", "text: args.text must be valid UTF-8 without NUL bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        t_run_json(&r, worker_text_run, NULL, cases[i].args);
        assert_int_not_equal(r.rc, 0);
        if (!strstr(r.ctx.error, cases[i].want))
            fail_msg("%s: '%s' lacks '%s'", cases[i].args, r.ctx.error, cases[i].want);
        assert_int_equal(r.out.size, 0);
        t_run_free(&r);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_student_schema),
        cmocka_unit_test(test_student_schema_raw),
        cmocka_unit_test(test_inline_schema),
        cmocka_unit_test(test_inline_schema_refused),
        cmocka_unit_test(test_ingest_handler),
        cmocka_unit_test(test_ingest_handler_errors),
        cmocka_unit_test(test_ingest_stop),
        cmocka_unit_test(test_interest_schedule),
        cmocka_unit_test(test_interest_handler_schedule),
        cmocka_unit_test(test_rng),
        cmocka_unit_test(test_percentile),
        cmocka_unit_test(test_monte_carlo),
        cmocka_unit_test(test_interest_handler_mc),
        cmocka_unit_test(test_interest_errors),
        cmocka_unit_test(test_text_counts_and_case),
        cmocka_unit_test(test_text_top_words),
        cmocka_unit_test(test_text_summary),
        cmocka_unit_test(test_text_handler),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
