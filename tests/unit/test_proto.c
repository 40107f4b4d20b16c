/* test_proto: unit tests of the MessagePack codec (farm_msg, farm_proto),
 * the error table (farm_err), task states (farm_state) and the shared
 * configuration helpers (farm_config).
 *
 * Everything runs against the real msgpack-c: messages are packed either
 * with the farm's own packers (internal messages, round trips) or by hand
 * with msgpack_pack_* through a small format-driven helper (front-door
 * requests and every rejection), then unpacked with farm_msg_unpack and
 * decoded with the table-driven decoders. Rejections check the code, the
 * field to blame and a substring of the message.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "farm_config.h"
#include "farm_err.h"
#include "farm_msg.h"
#include "farm_proto.h"
#include "farm_state.h"

/* ======================================================================
 * helpers
 * ====================================================================== */

/* Pack values described by fmt (spaces ignored):
 *   m  map header        (int n)          a  array header  (int n)
 *   s  str               (const char *)   S  str with size (const char *, int n)
 *   b  bin               (const void *, int n)
 *   i  int               (int)            I  int64         (long long)
 *   U  uint64            (unsigned long long)
 *   d  double (double)   F  float32 (double)
 *   n  nil    t  true    f  false                                         */
static void vpackf(msgpack_packer *pk, const char *fmt, va_list ap) {
    for (const char *c = fmt; *c; c++) {
        switch (*c) {
        case ' ': break;
        case 'm': msgpack_pack_map(pk, (size_t)va_arg(ap, int)); break;
        case 'a': msgpack_pack_array(pk, (size_t)va_arg(ap, int)); break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            msgpack_pack_str(pk, strlen(s));
            msgpack_pack_str_body(pk, s, strlen(s));
            break;
        }
        case 'S': {
            const char *s = va_arg(ap, const char *);
            int n = va_arg(ap, int);
            msgpack_pack_str(pk, (size_t)n);
            msgpack_pack_str_body(pk, s, (size_t)n);
            break;
        }
        case 'b': {
            const void *p = va_arg(ap, const void *);
            int n = va_arg(ap, int);
            msgpack_pack_bin(pk, (size_t)n);
            msgpack_pack_bin_body(pk, p, (size_t)n);
            break;
        }
        case 'i': msgpack_pack_int64(pk, va_arg(ap, int)); break;
        case 'I': msgpack_pack_int64(pk, (int64_t)va_arg(ap, long long)); break;
        case 'U': msgpack_pack_uint64(pk, (uint64_t)va_arg(ap, unsigned long long)); break;
        case 'd': msgpack_pack_double(pk, va_arg(ap, double)); break;
        case 'F': msgpack_pack_float(pk, (float)va_arg(ap, double)); break;
        case 'n': msgpack_pack_nil(pk); break;
        case 't': msgpack_pack_true(pk); break;
        case 'f': msgpack_pack_false(pk); break;
        default: fail_msg("bad pack format char '%c' in \"%s\"", *c, fmt);
        }
    }
}

static void packf(msgpack_packer *pk, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vpackf(pk, fmt, ap);
    va_end(ap);
}

/* One message: the bytes, and the object unpacked from them. */
typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_zone z;
    msgpack_object o;
    farm_error_t e;
} msg_t;

static void msg_init(msg_t *m) {
    memset(m, 0, sizeof *m);
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
    assert_true(msgpack_zone_init(&m->z, 2048));
}

static void msg_free(msg_t *m) {
    msgpack_zone_destroy(&m->z);
    msgpack_sbuffer_destroy(&m->sb);
}

/* Unpack what was packed; must succeed and leave e untouched. */
static const msgpack_object *msg_unpack(msg_t *m) {
    m->e.code = 12345;
    int rc = farm_msg_unpack(m->sb.data, m->sb.size, &m->z, &m->o, &m->e);
    if (rc != 0)
        fail_msg("farm_msg_unpack failed (%d): %s", rc, m->e.message);
    assert_int_equal(m->e.code, 12345);
    return &m->o;
}

static void expect_err_at(const char *file, int line, const farm_error_t *e, int rc, int code, const char *field,
                          const char *sub) {
    if (rc != code || e->code != code || strcmp(e->field, field) != 0 || !strstr(e->message, sub))
        fail_msg("%s:%d: want rc=%d (%s) field=\"%s\" message~\"%s\"; got rc=%d code=%d (%s) field=\"%s\" "
                 "message=\"%s\"",
                 file, line, code, farm_err_name(code), field, sub, rc, e->code, farm_err_name(e->code), e->field,
                 e->message);
}
#define EXPECT_ERR(e, rc, code, field, sub) expect_err_at(__FILE__, __LINE__, e, rc, code, field, sub)

/* Which decoder a packed message goes through. */
typedef enum { D_HEAD, D_SUBMIT, D_IDS, D_LIST, D_JOBS, D_HB, D_TASKMSG, D_REPORT } dec_t;

#define MAX_TASKS 16

/* A decoded submit, tasks included, the way the ventilator reads it. */
typedef struct {
    farm_req_submit_t r;
    uint64_t present;
    size_t ntasks;
    farm_req_task_t t[MAX_TASKS];
    uint64_t has[MAX_TASKS];
} submit_t;

static int decode_submit(const msgpack_object *o, submit_t *s, farm_error_t *e) {
    memset(s, 0, sizeof *s);
    int rc = farm_req_submit_decode(o, &s->r, &s->present, e);
    if (rc)
        return rc;
    s->ntasks = s->r.tasks->via.array.size;
    for (size_t i = 0; i < s->ntasks; i++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "tasks[%zu]", i);
        farm_req_task_t tmp;
        uint64_t has_tmp;
        farm_req_task_t *t = i < MAX_TASKS ? &s->t[i] : &tmp;
        uint64_t *has = i < MAX_TASKS ? &s->has[i] : &has_tmp;
        if ((rc = farm_req_task_decode(&s->r.tasks->via.array.ptr[i], t, has, prefix, e)))
            return rc;
    }
    return 0;
}

static int decode_any(dec_t d, const msgpack_object *o, farm_error_t *e) {
    union {
        farm_req_head_t head;
        submit_t submit;
        farm_req_ids_t ids;
        farm_req_list_t list;
        farm_req_jobs_t jobs;
        farm_msg_hb_t hb;
        farm_msg_task_t task;
        farm_msg_report_t report;
    } u;
    uint64_t present;
    switch (d) {
    case D_HEAD: return farm_req_head_decode(o, &u.head, e);
    case D_SUBMIT: return decode_submit(o, &u.submit, e);
    case D_IDS: return farm_req_ids_decode(o, &u.ids, &present, e);
    case D_LIST: return farm_req_list_decode(o, &u.list, e);
    case D_JOBS: return farm_req_jobs_decode(o, &u.jobs, e);
    case D_HB: return farm_msg_hb_decode(o, &u.hb, e);
    case D_TASKMSG: return farm_msg_task_decode(o, &u.task, e);
    case D_REPORT: return farm_msg_report_decode(o, &u.report, e);
    }
    return -1;
}

/* Pack fmt, unpack it (must work), decode with d: must fail with code,
 * field and a message containing sub. */
static void reject_at(const char *file, int line, dec_t d, int code, const char *field, const char *sub,
                      const char *fmt, ...) {
    msg_t m;
    msg_init(&m);
    va_list ap;
    va_start(ap, fmt);
    vpackf(&m.pk, fmt, ap);
    va_end(ap);
    const msgpack_object *o = msg_unpack(&m);
    int rc = decode_any(d, o, &m.e);
    farm_error_t e = m.e;
    msg_free(&m); /* before any failure, so a failing case leaks nothing */
    expect_err_at(file, line, &e, rc, code, field, sub);
}
#define REJECT(d, code, field, sub, ...) reject_at(__FILE__, __LINE__, d, code, field, sub, __VA_ARGS__)

/* Pack fmt, unpack, decode with d: must succeed. */
static void accept_at(const char *file, int line, dec_t d, const char *fmt, ...) {
    msg_t m;
    msg_init(&m);
    va_list ap;
    va_start(ap, fmt);
    vpackf(&m.pk, fmt, ap);
    va_end(ap);
    const msgpack_object *o = msg_unpack(&m);
    int rc = decode_any(d, o, &m.e);
    farm_error_t e = m.e;
    msg_free(&m);
    if (rc != 0)
        fail_msg("%s:%d: decode failed rc=%d field=\"%s\" message=\"%s\"", file, line, rc, e.field, e.message);
}
#define ACCEPT(d, ...) accept_at(__FILE__, __LINE__, d, __VA_ARGS__)

/* Raw bytes through farm_msg_unpack: must fail. */
static void reject_raw_at(const char *file, int line, const void *buf, size_t len, int code, const char *sub) {
    msgpack_zone z;
    assert_true(msgpack_zone_init(&z, 2048));
    msgpack_object o;
    farm_error_t e;
    memset(&e, 0x5a, sizeof e);
    int rc = farm_msg_unpack(buf, len, &z, &o, &e);
    expect_err_at(file, line, &e, rc, code, "", sub);
    msgpack_zone_destroy(&z);
}
#define REJECT_RAW(buf, len, code, sub) reject_raw_at(__FILE__, __LINE__, buf, len, code, sub)

/* Re-pack a decoded object and compare with the bytes it came from. */
static void assert_obj_bytes(const msgpack_object *o, const msgpack_sbuffer *want) {
    assert_non_null(o);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(msgpack_pack_object(&pk, *o), 0);
    assert_int_equal(sb.size, want->size);
    assert_memory_equal(sb.data, want->data, want->size);
    msgpack_sbuffer_destroy(&sb);
}

/* A rich value exercising every msgpack type, into sb. */
static void pack_rich(msgpack_sbuffer *sb) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    static const unsigned char bin[] = {0x00, 0xff, 0xc1, 0x80, 0x0a};
    char long_str[300];
    memset(long_str, 'z', sizeof long_str);
    packf(&pk, "m s a s s", 10, "argv", 3, "sh", "-c");
    packf(&pk, "S", long_str, (int)sizeof long_str);
    packf(&pk, "s b", "stdin", bin, (int)sizeof bin);
    packf(&pk, "s m s I s U s I", "ints", 3, "neg", -9223372036854775807LL - 1, "big", 18446744073709551615ULL, "mid",
          -200LL);
    packf(&pk, "s d s F", "dbl", 3.25, "flt", 1.5);
    packf(&pk, "s t s f s n", "yes", "no", "none");
    packf(&pk, "s a a m", "empty", 2, 0, 0);
    packf(&pk, "s S", "nul", "a\0b", 3);
}

/* A string of n copies of c (n < 1024), NUL terminated, in buf. */
static const char *rep(char *buf, char c, size_t n) {
    assert_true(n < 1024);
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

static void set_default_limits(void) {
    farm_limits_t l;
    farm_limits_default(&l);
    farm_proto_set_limits(&l);
}

static int setup_limits(void **state) {
    set_default_limits();
    return 0;
}

static int teardown_limits(void **state) {
    set_default_limits();
    return 0;
}

static bool obj_str_eq(const msgpack_object *o, const char *s) {
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

/* ======================================================================
 * internal messages: round trips
 * ====================================================================== */

static void test_rt_hb(void **state) {
    msg_t m;
    msg_init(&m);
    farm_msg_hb_t in;
    memset(&in, 0, sizeof in);
    in.id = (farm_str_t){"w1@node7", 8};
    in.host = (farm_str_t){"node7.example", 13};
    in.pid = 4242;
    in.slots = 8;
    in.free = 3;
    in.epoch = INT64_MAX;
    in.seq = 99;
    in.state = (farm_str_t){"draining", 8};
    in.completed = 1000000007;
    in.failed = 5;
    const char *types[] = {"exec", "ingest", "a.b-c_9"};
    const int64_t held[] = {1, 301, INT64_MAX};
    farm_pack_hb(&m.pk, &in, types, 3, held, 3);

    farm_msg_hb_t r;
    memset(&r, 0xa5, sizeof r);
    assert_int_equal(farm_msg_hb_decode(msg_unpack(&m), &r, &m.e), 0);
    assert_true(farm_str_eq(r.m, "hb"));
    assert_true(farm_str_eq(r.id, "w1@node7"));
    assert_true(farm_str_eq(r.host, "node7.example"));
    assert_int_equal(r.pid, 4242);
    assert_int_equal(r.slots, 8);
    assert_int_equal(r.free, 3);
    assert_int_equal(r.epoch, INT64_MAX);
    assert_int_equal(r.seq, 99);
    assert_true(farm_str_eq(r.state, "draining"));
    assert_int_equal(r.completed, 1000000007);
    assert_int_equal(r.done, 1000000012); /* completed + failed */
    assert_int_equal(r.failed, 5);
    assert_non_null(r.types);
    assert_int_equal(r.types->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(r.types->via.array.size, 3);
    for (size_t i = 0; i < 3; i++)
        assert_true(obj_str_eq(&r.types->via.array.ptr[i], types[i]));
    assert_non_null(r.held);
    assert_int_equal(r.held->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(r.held->via.array.size, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(r.held->via.array.ptr[i].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        assert_int_equal(r.held->via.array.ptr[i].via.u64, (uint64_t)held[i]);
    }
    msg_free(&m);
}

/* An hb with no strings and empty arrays: nil strings read as absent. */
static void test_rt_hb_empty(void **state) {
    msg_t m;
    msg_init(&m);
    farm_msg_hb_t in;
    memset(&in, 0, sizeof in);
    farm_pack_hb(&m.pk, &in, NULL, 0, NULL, 0);
    farm_msg_hb_t r;
    memset(&r, 0xa5, sizeof r);
    assert_int_equal(farm_msg_hb_decode(msg_unpack(&m), &r, &m.e), 0);
    assert_true(farm_str_eq(r.m, "hb"));
    assert_null(r.id.ptr);
    assert_null(r.host.ptr);
    assert_null(r.state.ptr);
    assert_int_equal(r.pid, 0);
    assert_int_equal(r.slots, 0);
    assert_int_equal(r.free, 0);
    assert_int_equal(r.epoch, 0);
    assert_int_equal(r.seq, 0);
    assert_int_equal(r.completed, 0);
    assert_int_equal(r.failed, 0);
    assert_non_null(r.types);
    assert_int_equal(r.types->via.array.size, 0);
    assert_non_null(r.held);
    assert_int_equal(r.held->via.array.size, 0);
    msg_free(&m);
}

static void test_rt_ready(void **state) {
    msg_t m;
    msg_init(&m);
    farm_pack_ready(&m.pk, 2, 1700000000123, 77, 1, 3, 12345);
    farm_msg_hb_t r;
    memset(&r, 0xa5, sizeof r);
    assert_int_equal(farm_msg_hb_decode(msg_unpack(&m), &r, &m.e), 0);
    assert_true(farm_str_eq(r.m, "ready"));
    assert_int_equal(r.done, 12345);
    assert_int_equal(r.free, 2);
    assert_int_equal(r.epoch, 1700000000123);
    assert_int_equal(r.seq, 77);
    /* everything else reads as its default */
    assert_null(r.id.ptr);
    assert_null(r.host.ptr);
    assert_null(r.state.ptr);
    assert_null(r.types);
    assert_null(r.held);
    assert_int_equal(r.pid, 0);
    assert_int_equal(r.slots, 0);
    assert_int_equal(r.completed, 0);
    assert_int_equal(r.failed, 0);
    assert_int_equal(r.idle, 1);
    assert_int_equal(r.queued, 3);
    assert_int_equal(m.o.via.map.size, 7);
    msg_free(&m);
}

static void test_rt_give_revoke(void **state) {
    msg_t m;
    msg_init(&m);
    int64_t ids[3] = {7, 8, 9};
    farm_pack_give(&m.pk, ids, 3, 1700000000123, 12, 5, 0, 2);
    farm_msg_hb_t r;
    assert_int_equal(farm_msg_hb_decode(msg_unpack(&m), &r, &m.e), 0);
    assert_true(farm_str_eq(r.m, "give"));
    assert_int_equal(r.held->via.array.size, 3);
    assert_int_equal(r.held->via.array.ptr[2].via.u64, 9);
    assert_int_equal(r.seq, 12);
    assert_int_equal(r.free, 5);
    assert_int_equal(r.queued, 2);
    msg_free(&m);
    msg_init(&m);
    farm_pack_revoke(&m.pk, 4);
    farm_msg_task_t t;
    assert_int_equal(farm_msg_task_decode(msg_unpack(&m), &t, &m.e), 0);
    assert_true(farm_str_eq(t.m, "revoke"));
    assert_int_equal(t.n, 4);
    msg_free(&m);
}

static void test_rt_welcome(void **state) {
    msg_t m;
    msg_init(&m);
    farm_pack_welcome(&m.pk, 1700000000999);
    farm_msg_task_t r;
    memset(&r, 0xa5, sizeof r);
    assert_int_equal(farm_msg_task_decode(msg_unpack(&m), &r, &m.e), 0);
    assert_true(farm_str_eq(r.m, "welcome"));
    assert_int_equal(r.epoch, 1700000000999);
    assert_int_equal(r.seq, 0);
    assert_int_equal(r.id, 0);
    assert_int_equal(r.job, 0);
    assert_null(r.type.ptr);
    assert_null(r.args);
    assert_int_equal(r.attempt, 0);
    assert_int_equal(r.timeout_ms, 0);
    msg_free(&m);
}

static void test_rt_task(void **state) {
    msgpack_sbuffer args;
    msgpack_sbuffer_init(&args);
    pack_rich(&args);

    msg_t m;
    msg_init(&m);
    farm_msg_task_t in;
    memset(&in, 0, sizeof in);
    in.epoch = 1700000000000;
    in.seq = 12;
    in.id = 301;
    in.job = 17;
    in.type = (farm_str_t){"exec", 4};
    in.attempt = 2;
    in.timeout_ms = 30000;
    farm_pack_task(&m.pk, &in, args.data, args.size);

    farm_msg_task_t r;
    memset(&r, 0xa5, sizeof r);
    assert_int_equal(farm_msg_task_decode(msg_unpack(&m), &r, &m.e), 0);
    assert_true(farm_str_eq(r.m, "task"));
    assert_int_equal(r.epoch, 1700000000000);
    assert_int_equal(r.seq, 12);
    assert_int_equal(r.id, 301);
    assert_int_equal(r.job, 17);
    assert_true(farm_str_eq(r.type, "exec"));
    assert_int_equal(r.attempt, 2);
    assert_int_equal(r.timeout_ms, 30000);
    assert_int_equal(r.args->type, MSGPACK_OBJECT_MAP);
    assert_obj_bytes(r.args, &args);
    msg_free(&m);
    msgpack_sbuffer_destroy(&args);
}

/* args NULL (or empty) packs nil, which decodes as absent. */
static void test_rt_task_nil_args(void **state) {
    for (int k = 0; k < 2; k++) {
        msg_t m;
        msg_init(&m);
        farm_msg_task_t in;
        memset(&in, 0, sizeof in);
        in.id = 1;
        in.type = (farm_str_t){"ingest", 6};
        farm_pack_task(&m.pk, &in, k == 0 ? NULL : "\xc0", 0);
        farm_msg_task_t r;
        memset(&r, 0xa5, sizeof r);
        assert_int_equal(farm_msg_task_decode(msg_unpack(&m), &r, &m.e), 0);
        assert_true(farm_str_eq(r.type, "ingest"));
        assert_int_equal(r.id, 1);
        assert_null(r.args);
        const msgpack_object *a = farm_msg_get(&m.o, "args");
        assert_non_null(a);
        assert_int_equal(a->type, MSGPACK_OBJECT_NIL);
        msg_free(&m);
    }
    /* a scalar args value survives too */
    msgpack_sbuffer args;
    msgpack_sbuffer_init(&args);
    msgpack_packer apk;
    msgpack_packer_init(&apk, &args, msgpack_sbuffer_write);
    msgpack_pack_int64(&apk, -5);
    msg_t m;
    msg_init(&m);
    farm_msg_task_t in;
    memset(&in, 0, sizeof in);
    in.type = (farm_str_t){"x", 1};
    farm_pack_task(&m.pk, &in, args.data, args.size);
    farm_msg_task_t r;
    assert_int_equal(farm_msg_task_decode(msg_unpack(&m), &r, &m.e), 0);
    assert_int_equal(r.args->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    assert_int_equal(r.args->via.i64, -5);
    assert_obj_bytes(r.args, &args);
    msg_free(&m);
    msgpack_sbuffer_destroy(&args);
}

static void test_rt_cancel(void **state) {
    msg_t m;
    msg_init(&m);
    farm_pack_cancel(&m.pk, 9007199254740993LL);
    farm_msg_task_t r;
    memset(&r, 0xa5, sizeof r);
    assert_int_equal(farm_msg_task_decode(msg_unpack(&m), &r, &m.e), 0);
    assert_true(farm_str_eq(r.m, "cancel"));
    assert_int_equal(r.id, 9007199254740993LL);
    assert_int_equal(r.epoch, 0);
    assert_int_equal(r.seq, 0);
    assert_int_equal(r.job, 0);
    assert_null(r.type.ptr);
    assert_null(r.args);
    assert_int_equal(r.attempt, 0);
    assert_int_equal(r.timeout_ms, 0);
    msg_free(&m);
}

static void assert_report_blank(const farm_msg_report_t *r, bool skip_common) {
    if (!skip_common) {
        assert_int_equal(r->task, 0);
        assert_int_equal(r->attempt, 0);
        assert_null(r->worker.ptr);
    }
    assert_false(r->ok);
    assert_false(r->cancelled);
    assert_null(r->result);
    assert_null(r->error.ptr);
    assert_int_equal(r->started_ms, 0);
    assert_int_equal(r->finished_ms, 0);
    assert_null(r->topic.ptr);
    assert_null(r->body);
}

static void test_rt_start(void **state) {
    msg_t m;
    msg_init(&m);
    farm_pack_start(&m.pk, 301, 3, "w1@node7", 1700000000555);
    farm_msg_report_t r;
    memset(&r, 0xa5, sizeof r);
    assert_int_equal(farm_msg_report_decode(msg_unpack(&m), &r, &m.e), 0);
    assert_true(farm_str_eq(r.m, "start"));
    assert_int_equal(r.task, 301);
    assert_int_equal(r.attempt, 3);
    assert_true(farm_str_eq(r.worker, "w1@node7"));
    assert_int_equal(r.ms, 1700000000555);
    assert_int_equal(r.pct, 0);
    assert_null(r.msg.ptr);
    assert_report_blank(&r, true);
    msg_free(&m);

    /* worker NULL packs nil: absent */
    msg_init(&m);
    farm_pack_start(&m.pk, 1, 1, NULL, 0);
    assert_int_equal(farm_msg_report_decode(msg_unpack(&m), &r, &m.e), 0);
    assert_null(r.worker.ptr);
    msg_free(&m);
}

static void test_rt_prog(void **state) {
    msg_t m;
    msg_init(&m);
    farm_pack_prog(&m.pk, 302, 1, 42, "resizing 42/100", 1700000000777);
    farm_msg_report_t r;
    memset(&r, 0xa5, sizeof r);
    assert_int_equal(farm_msg_report_decode(msg_unpack(&m), &r, &m.e), 0);
    assert_true(farm_str_eq(r.m, "prog"));
    assert_int_equal(r.task, 302);
    assert_int_equal(r.attempt, 1);
    assert_int_equal(r.pct, 42);
    assert_true(farm_str_eq(r.msg, "resizing 42/100"));
    assert_int_equal(r.ms, 1700000000777);
    assert_report_blank(&r, true);
    assert_null(r.worker.ptr);
    msg_free(&m);

    /* pct is clamped to 0..100; msg NULL packs nil; "" is present */
    static const struct {
        int in, want;
    } pcts[] = {{-5, 0}, {0, 0}, {100, 100}, {101, 100}, {1000, 100}};
    for (size_t i = 0; i < sizeof pcts / sizeof pcts[0]; i++) {
        msg_init(&m);
        farm_pack_prog(&m.pk, 1, 1, pcts[i].in, i % 2 ? "" : NULL, 0);
        memset(&r, 0xa5, sizeof r);
        assert_int_equal(farm_msg_report_decode(msg_unpack(&m), &r, &m.e), 0);
        assert_int_equal(r.pct, pcts[i].want);
        if (i % 2) {
            assert_non_null(r.msg.ptr);
            assert_int_equal(r.msg.len, 0);
            assert_true(farm_str_eq(r.msg, ""));
        } else {
            assert_null(r.msg.ptr);
        }
        msg_free(&m);
    }
}

static void test_rt_result_ok(void **state) {
    msgpack_sbuffer res;
    msgpack_sbuffer_init(&res);
    msgpack_packer rpk;
    msgpack_packer_init(&rpk, &res, msgpack_sbuffer_write);
    static const char out[] = "hello\n\x00\xff";
    packf(&rpk, "m s i s i s b s b s f s I", 6, "exit_code", 0, "signal", 0, "stdout", out, (int)sizeof out - 1,
          "stderr", "", 0, "truncated", "duration_ms", 1234LL);

    msg_t m;
    msg_init(&m);
    farm_pack_result(&m.pk, 301, 2, "w1@node7", true, false, res.data, res.size, NULL, 1700000000000,
                     1700000001234);
    farm_msg_report_t r;
    memset(&r, 0xa5, sizeof r);
    assert_int_equal(farm_msg_report_decode(msg_unpack(&m), &r, &m.e), 0);
    assert_true(farm_str_eq(r.m, "result"));
    assert_int_equal(r.task, 301);
    assert_int_equal(r.attempt, 2);
    assert_true(farm_str_eq(r.worker, "w1@node7"));
    assert_true(r.ok);
    assert_false(r.cancelled);
    assert_null(r.error.ptr);
    assert_int_equal(r.started_ms, 1700000000000);
    assert_int_equal(r.finished_ms, 1700000001234);
    assert_int_equal(r.ms, 0);
    assert_int_equal(r.pct, 0);
    assert_null(r.msg.ptr);
    assert_null(r.topic.ptr);
    assert_null(r.body);
    assert_int_equal(r.result->type, MSGPACK_OBJECT_MAP);
    assert_obj_bytes(r.result, &res);
    const msgpack_object *so = farm_msg_get(r.result, "stdout");
    assert_non_null(so);
    assert_int_equal(so->type, MSGPACK_OBJECT_BIN);
    assert_int_equal(so->via.bin.size, sizeof out - 1);
    assert_memory_equal(so->via.bin.ptr, out, sizeof out - 1);
    msg_free(&m);
    msgpack_sbuffer_destroy(&res);
}

static void test_rt_result_failed(void **state) {
    msg_t m;
    msg_init(&m);
    farm_pack_result(&m.pk, 7, 3, "w2", false, true, NULL, 0, "cancelled by request: SIGTERM", 5, 6);
    farm_msg_report_t r;
    memset(&r, 0xa5, sizeof r);
    assert_int_equal(farm_msg_report_decode(msg_unpack(&m), &r, &m.e), 0);
    assert_true(farm_str_eq(r.m, "result"));
    assert_int_equal(r.task, 7);
    assert_int_equal(r.attempt, 3);
    assert_true(farm_str_eq(r.worker, "w2"));
    assert_false(r.ok);
    assert_true(r.cancelled);
    assert_null(r.result);
    assert_true(farm_str_eq(r.error, "cancelled by request: SIGTERM"));
    assert_int_equal(r.started_ms, 5);
    assert_int_equal(r.finished_ms, 6);
    msg_free(&m);

    /* a big error text (under the 65536 bound) and a bin body */
    char *big = malloc(60000);
    assert_non_null(big);
    memset(big, 'e', 59999);
    big[59999] = '\0';
    msg_init(&m);
    farm_pack_result(&m.pk, 8, 1, "w3", false, false, "\xc4\x01\x00", 3, big, 0, 0);
    assert_int_equal(farm_msg_report_decode(msg_unpack(&m), &r, &m.e), 0);
    assert_int_equal(r.error.len, 59999);
    assert_memory_equal(r.error.ptr, big, 59999);
    assert_int_equal(r.result->type, MSGPACK_OBJECT_BIN);
    assert_int_equal(r.result->via.bin.size, 1);
    msg_free(&m);
    free(big);
}

static void test_rt_result_records(void **state) {
    /* records: [[0, bin({"id": 1})], [7, bin("x")]] */
    static const char recs[] = "\x92\x92\x00\xc4\x05\x81\xa2id\x01\x92\x07\xc4\x01x";
    msg_t m;
    msg_init(&m);
    farm_pack_result_records(&m.pk, 9, 1, "w1", true, false, "\xc0", 1, NULL, 1, 2, recs, sizeof recs - 1);
    farm_msg_report_t r;
    memset(&r, 0xa5, sizeof r);
    assert_int_equal(farm_msg_report_decode(msg_unpack(&m), &r, &m.e), 0);
    assert_int_equal(r.task, 9);
    assert_true(r.ok);
    assert_non_null(r.records);
    assert_int_equal(r.records->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(r.records->via.array.size, 2);
    const msgpack_object *p = r.records->via.array.ptr[1].via.array.ptr;
    assert_int_equal(p[0].via.u64, 7);
    assert_int_equal(p[1].type, MSGPACK_OBJECT_BIN);
    assert_memory_equal(p[1].via.bin.ptr, "x", 1);
    msg_free(&m);
    /* Without records the key is absent, as farm_pack_result packs it. */
    msg_init(&m);
    farm_pack_result_records(&m.pk, 9, 1, "w1", true, false, NULL, 0, NULL, 1, 2, NULL, 0);
    assert_int_equal(farm_msg_report_decode(msg_unpack(&m), &r, &m.e), 0);
    assert_null(r.records);
    assert_null(farm_msg_get(msg_unpack(&m), "records"));
    msg_free(&m);
}

static void test_rt_pub(void **state) {
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer bpk;
    msgpack_packer_init(&bpk, &body, msgpack_sbuffer_write);
    packf(&bpk, "m s a m s i s i s s s i s i s s s I", 1, "events", 1, 7, "id", 301, "job", 17, "state", "running",
          "progress", 50, "attempt", 1, "worker", "w1", "ms", 1700000000000LL);

    msg_t m;
    msg_init(&m);
    farm_pack_pub(&m.pk, "task", body.data, body.size);
    farm_msg_report_t r;
    memset(&r, 0xa5, sizeof r);
    assert_int_equal(farm_msg_report_decode(msg_unpack(&m), &r, &m.e), 0);
    assert_true(farm_str_eq(r.m, "pub"));
    assert_true(farm_str_eq(r.topic, "task"));
    assert_int_equal(r.body->type, MSGPACK_OBJECT_MAP);
    assert_obj_bytes(r.body, &body);
    assert_int_equal(r.task, 0);
    assert_int_equal(r.attempt, 0);
    assert_int_equal(r.ms, 0);
    assert_int_equal(r.pct, 0);
    assert_null(r.worker.ptr);
    assert_null(r.msg.ptr);
    assert_false(r.ok);
    assert_false(r.cancelled);
    assert_null(r.result);
    assert_null(r.error.ptr);
    msg_free(&m);
    msgpack_sbuffer_destroy(&body);

    /* no body: nil */
    msg_init(&m);
    farm_pack_pub(&m.pk, "stats", NULL, 0);
    assert_int_equal(farm_msg_report_decode(msg_unpack(&m), &r, &m.e), 0);
    assert_true(farm_str_eq(r.topic, "stats"));
    assert_null(r.body);
    msg_free(&m);
}

/* Internal decoders validate too. */
static void test_internal_reject(void **state) {
    char b300[1024];
    REJECT(D_HB, FARM_EBADREQ, "free", "free is missing", "m s s", 1, "m", "hb");
    REJECT(D_HB, FARM_EBADREQ, "m", "m is missing", "m s i", 1, "free", 1);
    REJECT(D_HB, FARM_EBADREQ, "slots", "out of range (0..4096)", "m s s s i s i", 3, "m", "hb", "free", 0, "slots",
           4097);
    REJECT(D_HB, FARM_EBADREQ, "free", "out of range", "m s s s i", 2, "m", "hb", "free", -1);
    REJECT(D_HB, FARM_EBADREQ, "types", "must be an array", "m s s s i s s", 3, "m", "hb", "free", 0, "types",
           "exec");
    REJECT(D_HB, FARM_EBADREQ, "host", "too long (at most 255)", "m s s s i s s", 3, "m", "hb", "free", 0, "host",
           rep(b300, 'h', 256));
    REJECT(D_HB, FARM_EBADREQ, "m", "too long", "m s s s i", 2, "m", rep(b300, 'm', 17), "free", 0);
    REJECT(D_TASKMSG, FARM_EBADREQ, "m", "m is missing", "m s i", 1, "id", 3);
    REJECT(D_TASKMSG, FARM_EBADREQ, "id", "must be an integer", "m s s s s", 2, "m", "task", "id", "3");
    REJECT(D_TASKMSG, FARM_EBADREQ, "type", "too short", "m s s s s", 2, "m", "task", "type", "");
    REJECT(D_REPORT, FARM_EBADREQ, "pct", "out of range (0..100)", "m s s s i", 2, "m", "prog", "pct", 101);
    REJECT(D_REPORT, FARM_EBADREQ, "ok", "must be a boolean", "m s s s i", 2, "m", "result", "ok", 1);
    REJECT(D_REPORT, FARM_EBADREQ, "cancelled", "must be a boolean", "m s s s s", 2, "m", "result", "cancelled",
           "true");
    REJECT(D_REPORT, FARM_EBADREQ, "topic", "too short", "m s s s s", 2, "m", "pub", "topic", "");
    REJECT(D_REPORT, FARM_EBADREQ, "", "the message must be a map", "a s", 1, "result");
    ACCEPT(D_REPORT, "m s s s i s s", 3, "m", "prog", "pct", 100, "msg", "");
}

/* ======================================================================
 * front door: accepted requests
 * ====================================================================== */

static void test_head(void **state) {
    msg_t m;
    farm_req_head_t h;

    msg_init(&m);
    packf(&m.pk, "m s s", 1, "op", "status");
    memset(&h, 0xa5, sizeof h);
    assert_int_equal(farm_req_head_decode(msg_unpack(&m), &h, &m.e), 0);
    assert_true(farm_str_eq(h.op, "status"));
    assert_int_equal(h.v, 1);
    msg_free(&m);

    /* v given, and v nil (absent: default 1), with other keys around */
    msg_init(&m);
    packf(&m.pk, "m s i s s s I", 3, "v", 2, "op", "submit", "task", 301LL);
    assert_int_equal(farm_req_head_decode(msg_unpack(&m), &h, &m.e), 0);
    assert_true(farm_str_eq(h.op, "submit"));
    assert_int_equal(h.v, 2);
    msg_free(&m);

    msg_init(&m);
    packf(&m.pk, "m s s s n", 2, "op", "health", "v", 0);
    assert_int_equal(farm_req_head_decode(msg_unpack(&m), &h, &m.e), 0);
    assert_true(farm_str_eq(h.op, "health"));
    assert_int_equal(h.v, 1);
    msg_free(&m);

    /* v has no range at this layer: the server answers unsupported_version */
    msg_init(&m);
    packf(&m.pk, "m s s s I", 2, "op", "x", "v", -9223372036854775807LL - 1);
    assert_int_equal(farm_req_head_decode(msg_unpack(&m), &h, &m.e), 0);
    assert_int_equal(h.v, INT64_MIN);
    msg_free(&m);

    /* op of 64 bytes is the longest */
    char b[128];
    msg_init(&m);
    packf(&m.pk, "m s s", 1, "op", rep(b, 'o', 64));
    assert_int_equal(farm_req_head_decode(msg_unpack(&m), &h, &m.e), 0);
    assert_int_equal(h.op.len, 64);
    msg_free(&m);
}

/* Submit: top-level defaults, per-task overrides, present bits. */
static void test_submit_defaults(void **state) {
    msg_t m;
    msg_init(&m);
    packf(&m.pk, "m s s s s s s s i s i s I s I", 8, "op", "submit", "name", "nightly-resize", "key", "client-chosen",
          "priority", 5, "max_attempts", 7, "timeout_ms", 60000LL, "delay_ms", 250LL);
    /* tasks after the scalars: order of keys does not matter */
    packf(&m.pk, "s a", "tasks", 4);
    packf(&m.pk, "m s s", 1, "type", "exec");                                 /* inherits all */
    packf(&m.pk, "m s s s i s i", 3, "type", "ingest", "priority", -100, "max_attempts", 1); /* overrides two */
    packf(&m.pk, "m s s s I s I s i s i", 5, "type", "a.b_c-9", "timeout_ms", 0LL, "delay_ms", 0LL, "priority", 0,
          "max_attempts", 3); /* explicit values equal to the defaults still count as present */
    packf(&m.pk, "m s s s n s n s n s n s n", 6, "type", "exec", "args", "priority", "max_attempts", "timeout_ms",
          "delay_ms"); /* nil: absent, inherits */

    submit_t s;
    assert_int_equal(decode_submit(msg_unpack(&m), &s, &m.e), 0);
    assert_true(farm_str_eq(s.r.name, "nightly-resize"));
    assert_true(farm_str_eq(s.r.key, "client-chosen"));
    assert_int_equal(s.r.priority, 5);
    assert_int_equal(s.r.max_attempts, 7);
    assert_int_equal(s.r.timeout_ms, 60000);
    assert_int_equal(s.r.delay_ms, 250);
    assert_int_equal(s.ntasks, 4);
    assert_int_equal(s.r.tasks->type, MSGPACK_OBJECT_ARRAY);

    const uint64_t all = FARM_TASK_HAS_PRIORITY | FARM_TASK_HAS_MAX_ATTEMPTS | FARM_TASK_HAS_TIMEOUT |
                         FARM_TASK_HAS_DELAY;
    /* task 0: only type */
    assert_true(farm_str_eq(s.t[0].type, "exec"));
    assert_null(s.t[0].args);
    assert_int_equal(s.has[0] & all, 0);
    assert_int_equal(s.has[0], 1); /* bit 0: type */
    assert_int_equal(s.t[0].priority, 0);
    assert_int_equal(s.t[0].max_attempts, 3);
    assert_int_equal(s.t[0].timeout_ms, 0);
    assert_int_equal(s.t[0].delay_ms, 0);
    /* task 1 */
    assert_true(farm_str_eq(s.t[1].type, "ingest"));
    assert_int_equal(s.has[1] & all, FARM_TASK_HAS_PRIORITY | FARM_TASK_HAS_MAX_ATTEMPTS);
    assert_int_equal(s.t[1].priority, -100);
    assert_int_equal(s.t[1].max_attempts, 1);
    /* task 2 */
    assert_true(farm_str_eq(s.t[2].type, "a.b_c-9"));
    assert_int_equal(s.has[2] & all, all);
    assert_int_equal(s.t[2].priority, 0);
    assert_int_equal(s.t[2].max_attempts, 3);
    assert_int_equal(s.t[2].timeout_ms, 0);
    assert_int_equal(s.t[2].delay_ms, 0);
    /* task 3: all nil */
    assert_int_equal(s.has[3], 1);
    assert_null(s.t[3].args);

    /* the effective values, as the ventilator computes them */
    struct {
        int64_t pri, att, to, de;
    } want[4] = {{5, 7, 60000, 250}, {-100, 1, 60000, 250}, {0, 3, 0, 0}, {5, 7, 60000, 250}};
    for (size_t i = 0; i < 4; i++) {
        int64_t pri = s.has[i] & FARM_TASK_HAS_PRIORITY ? s.t[i].priority : s.r.priority;
        int64_t att = s.has[i] & FARM_TASK_HAS_MAX_ATTEMPTS ? s.t[i].max_attempts : s.r.max_attempts;
        int64_t to = s.has[i] & FARM_TASK_HAS_TIMEOUT ? s.t[i].timeout_ms : s.r.timeout_ms;
        int64_t de = s.has[i] & FARM_TASK_HAS_DELAY ? s.t[i].delay_ms : s.r.delay_ms;
        assert_int_equal(pri, want[i].pri);
        assert_int_equal(att, want[i].att);
        assert_int_equal(to, want[i].to);
        assert_int_equal(de, want[i].de);
    }
    msg_free(&m);
}

static void test_submit_minimal(void **state) {
    msg_t m;
    msg_init(&m);
    packf(&m.pk, "m s s s a m s s", 2, "op", "submit", "tasks", 1, 1, "type", "exec");
    submit_t s;
    assert_int_equal(decode_submit(msg_unpack(&m), &s, &m.e), 0);
    assert_null(s.r.name.ptr);
    assert_null(s.r.key.ptr);
    assert_int_equal(s.r.priority, 0);
    assert_int_equal(s.r.max_attempts, 3);
    assert_int_equal(s.r.timeout_ms, 0);
    assert_int_equal(s.r.delay_ms, 0);
    assert_int_equal(s.present, 1); /* only tasks */
    assert_int_equal(s.ntasks, 1);
    assert_true(farm_str_eq(s.t[0].type, "exec"));
    msg_free(&m);

    /* a key given twice at top level is refused */
    msg_init(&m);
    packf(&m.pk, "m s a m s s s s s i s i s i s I s I", 7, "tasks", 1, 1, "type", "x", "name", "", "priority", -100,
          "max_attempts", 100, "timeout_ms", 0, "delay_ms", 4611686018427387903LL, "timeout_ms",
          4611686018427387903LL);
    int rc = decode_submit(msg_unpack(&m), &s, &m.e); /* timeout_ms twice */
    EXPECT_ERR(&m.e, rc, FARM_EBADREQ, "timeout_ms", "timeout_ms appears twice");
    msg_free(&m);

    /* name "" is present and empty (not absent); the bounds of the defaults */
    msg_init(&m);
    packf(&m.pk, "m s a m s s s s s i s i s I s I", 6, "tasks", 1, 1, "type", "x", "name", "", "priority", -100,
          "max_attempts", 100, "timeout_ms", 4611686018427387903LL, "delay_ms", 4611686018427387903LL);
    assert_int_equal(decode_submit(msg_unpack(&m), &s, &m.e), 0);
    assert_non_null(s.r.name.ptr);
    assert_int_equal(s.r.name.len, 0);
    assert_int_equal(s.r.priority, -100);
    assert_int_equal(s.r.max_attempts, 100);
    assert_int_equal(s.r.timeout_ms, INT64_MAX / 2);
    assert_int_equal(s.r.delay_ms, INT64_MAX / 2);
    msg_free(&m);
}

/* args may be anything; it is borrowed intact. */
static void test_submit_args_any(void **state) {
    msgpack_sbuffer rich;
    msgpack_sbuffer_init(&rich);
    pack_rich(&rich);

    msg_t m;
    msg_init(&m);
    packf(&m.pk, "m s s s a", 2, "op", "submit", "tasks", 10);
    packf(&m.pk, "m s s s i", 2, "type", "t", "args", -1);
    packf(&m.pk, "m s s s U", 2, "type", "t", "args", 18446744073709551615ULL);
    packf(&m.pk, "m s s s s", 2, "type", "t", "args", "a string");
    packf(&m.pk, "m s s s b", 2, "type", "t", "args", "\x01\x02", 2);
    packf(&m.pk, "m s s s t", 2, "type", "t", "args");
    packf(&m.pk, "m s s s d", 2, "type", "t", "args", 2.5);
    packf(&m.pk, "m s s s a i s", 2, "type", "t", "args", 2, 1, "two");
    packf(&m.pk, "m s s s m i i", 2, "type", "t", "args", 1, 1, 2); /* non-str keys inside args are fine */
    packf(&m.pk, "m s s s n", 2, "type", "t", "args");
    packf(&m.pk, "m s s s", 2, "type", "t", "args");
    msgpack_sbuffer_write(&m.sb, rich.data, rich.size);

    submit_t s;
    assert_int_equal(decode_submit(msg_unpack(&m), &s, &m.e), 0);
    assert_int_equal(s.ntasks, 10);
    assert_int_equal(s.t[0].args->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    assert_int_equal(s.t[0].args->via.i64, -1);
    assert_int_equal(s.t[1].args->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(s.t[1].args->via.u64, UINT64_MAX);
    assert_true(obj_str_eq(s.t[2].args, "a string"));
    assert_int_equal(s.t[3].args->type, MSGPACK_OBJECT_BIN);
    assert_int_equal(s.t[3].args->via.bin.size, 2);
    assert_int_equal(s.t[4].args->type, MSGPACK_OBJECT_BOOLEAN);
    assert_true(s.t[4].args->via.boolean);
    assert_int_equal(s.t[5].args->type, MSGPACK_OBJECT_FLOAT64);
    assert_true(s.t[5].args->via.f64 == 2.5);
    assert_int_equal(s.t[6].args->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(s.t[6].args->via.array.size, 2);
    assert_int_equal(s.t[7].args->type, MSGPACK_OBJECT_MAP);
    assert_null(s.t[8].args);
    assert_int_equal(s.t[9].args->type, MSGPACK_OBJECT_MAP);
    assert_obj_bytes(s.t[9].args, &rich);
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(s.has[i] & 2, i == 8 ? 0 : 2); /* bit 1: args */
    msg_free(&m);
    msgpack_sbuffer_destroy(&rich);
}

static void test_ids(void **state) {
    msg_t m;
    farm_req_ids_t r;
    uint64_t present;

    msg_init(&m);
    packf(&m.pk, "m s s s i", 2, "op", "status", "task", 301);
    assert_int_equal(farm_req_ids_decode(msg_unpack(&m), &r, &present, &m.e), 0);
    assert_int_equal(present, 1);
    assert_int_equal(r.task, 301);
    assert_int_equal(r.job, 0);
    msg_free(&m);

    msg_init(&m);
    packf(&m.pk, "m s s s I", 2, "op", "cancel", "job", 9223372036854775807LL);
    assert_int_equal(farm_req_ids_decode(msg_unpack(&m), &r, &present, &m.e), 0);
    assert_int_equal(present, 2);
    assert_int_equal(r.job, INT64_MAX);
    assert_int_equal(r.task, 0);
    msg_free(&m);

    msg_init(&m);
    packf(&m.pk, "m s s s i s i", 3, "op", "retry", "job", 17, "task", 1);
    assert_int_equal(farm_req_ids_decode(msg_unpack(&m), &r, &present, &m.e), 0);
    assert_int_equal(present, 3);
    assert_int_equal(r.job, 17);
    assert_int_equal(r.task, 1);
    msg_free(&m);

    msg_init(&m);
    packf(&m.pk, "m s s s n s n", 3, "op", "delete", "job", "task");
    present = 99;
    assert_int_equal(farm_req_ids_decode(msg_unpack(&m), &r, &present, &m.e), 0);
    assert_int_equal(present, 0);
    msg_free(&m);

    /* present may be NULL */
    msg_init(&m);
    packf(&m.pk, "m s i", 1, "task", 5);
    assert_int_equal(farm_req_ids_decode(msg_unpack(&m), &r, NULL, &m.e), 0);
    assert_int_equal(r.task, 5);
    msg_free(&m);
}

static void test_list(void **state) {
    msg_t m;
    farm_req_list_t r;

    msg_init(&m);
    packf(&m.pk, "m s s", 1, "op", "list");
    memset(&r, 0xa5, sizeof r);
    assert_int_equal(farm_req_list_decode(msg_unpack(&m), &r, &m.e), 0);
    assert_int_equal(r.job, 0);
    assert_null(r.state.ptr);
    assert_null(r.type.ptr);
    assert_int_equal(r.after, 0);
    assert_int_equal(r.limit, 100);
    msg_free(&m);

    msg_init(&m);
    packf(&m.pk, "m s s s i s s s s s i s i", 6, "op", "list", "job", 17, "state", "failed", "type", "exec", "after",
          400, "limit", 1000);
    assert_int_equal(farm_req_list_decode(msg_unpack(&m), &r, &m.e), 0);
    assert_int_equal(r.job, 17);
    assert_true(farm_str_eq(r.state, "failed"));
    assert_true(farm_str_eq(r.type, "exec"));
    assert_int_equal(r.after, 400);
    assert_int_equal(r.limit, 1000);
    msg_free(&m);

    REJECT(D_LIST, FARM_EBADREQ, "limit", "appears twice", "m s s s i s i", 3, "op", "list", "limit", 1, "limit", 2);

    msg_init(&m);
    packf(&m.pk, "m s s s n s n", 3, "op", "list", "limit", "state");
    memset(&r, 0xa5, sizeof r);
    assert_int_equal(farm_req_list_decode(msg_unpack(&m), &r, &m.e), 0);
    assert_int_equal(r.limit, 100);
    assert_null(r.state.ptr);
    msg_free(&m);
}

static void test_jobs(void **state) {
    msg_t m;
    farm_req_jobs_t r;

    msg_init(&m);
    packf(&m.pk, "m s s", 1, "op", "jobs");
    memset(&r, 0xa5, sizeof r);
    assert_int_equal(farm_req_jobs_decode(msg_unpack(&m), &r, &m.e), 0);
    assert_null(r.state.ptr);
    assert_int_equal(r.after, 0);
    assert_int_equal(r.limit, 100);
    msg_free(&m);

    msg_init(&m);
    packf(&m.pk, "m s s s s s i s i", 4, "op", "jobs", "state", "running", "after", 12, "limit", 1);
    assert_int_equal(farm_req_jobs_decode(msg_unpack(&m), &r, &m.e), 0);
    assert_true(farm_str_eq(r.state, "running"));
    assert_int_equal(r.after, 12);
    assert_int_equal(r.limit, 1);
    msg_free(&m);
}

/* ======================================================================
 * front door: rejections
 * ====================================================================== */

static void test_reject_not_msgpack(void **state) {
    static const unsigned char c1[] = {0xc1};                    /* never used */
    static const unsigned char c1map[] = {0x81, 0xa2, 'o', 'p', 0xc1};
    static const unsigned char trunc_map[] = {0x82, 0xa2, 'o', 'p'}; /* map of 2, 1 key */
    static const unsigned char trunc_str[] = {0xa5, 'a', 'b'};
    static const unsigned char trunc_arr32[] = {0xdd, 0x00, 0x10, 0x00, 0x00}; /* 1M entries, none there */
    static const char text[] = "{\"op\":\"submit\"}";
    REJECT_RAW(c1, sizeof c1, FARM_EBADREQ, "not MessagePack");
    REJECT_RAW(c1map, sizeof c1map, FARM_EBADREQ, "not MessagePack");
    REJECT_RAW(trunc_map, sizeof trunc_map, FARM_EBADREQ, "not MessagePack");
    REJECT_RAW(trunc_str, sizeof trunc_str, FARM_EBADREQ, "not MessagePack");
    REJECT_RAW(trunc_arr32, sizeof trunc_arr32, FARM_EBADREQ, "not MessagePack");
    REJECT_RAW("", 0, FARM_EBADREQ, "not MessagePack");
    /* JSON text: '{' (0x7b) is a positive fixint, so one int then trailing bytes */
    REJECT_RAW(text, sizeof text - 1, FARM_EBADREQ, "trailing bytes");
    unsigned char noise[257];
    for (size_t i = 0; i < sizeof noise; i++)
        noise[i] = (unsigned char)(0xc1 ^ (i * 37));
    REJECT_RAW(noise, sizeof noise, FARM_EBADREQ, "not MessagePack");
}

static void test_reject_trailing(void **state) {
    msg_t m;
    msg_init(&m);
    packf(&m.pk, "m s s", 1, "op", "health");
    msgpack_zone z;
    msgpack_object o;
    farm_error_t e;
    /* the exact message alone is fine */
    assert_true(msgpack_zone_init(&z, 1024));
    assert_int_equal(farm_msg_unpack(m.sb.data, m.sb.size, &z, &o, &e), 0);
    assert_int_equal(o.type, MSGPACK_OBJECT_MAP);
    msgpack_zone_destroy(&z);
    /* any byte after it, valid or not, is an error */
    packf(&m.pk, "n");
    REJECT_RAW(m.sb.data, m.sb.size, FARM_EBADREQ, "trailing bytes");
    packf(&m.pk, "m", 0);
    REJECT_RAW(m.sb.data, m.sb.size, FARM_EBADREQ, "trailing bytes");
    msg_free(&m);
    msg_init(&m);
    packf(&m.pk, "m s s", 1, "op", "health");
    msgpack_sbuffer_write(&m.sb, "\xc1", 1);
    REJECT_RAW(m.sb.data, m.sb.size, FARM_EBADREQ, "trailing bytes");
    msg_free(&m);
}

static void test_reject_not_map(void **state) {
    REJECT(D_HEAD, FARM_EBADREQ, "", "the message must be a map", "a s s", 2, "op", "submit");
    REJECT(D_HEAD, FARM_EBADREQ, "", "must be a map", "i", 42);
    REJECT(D_HEAD, FARM_EBADREQ, "", "must be a map", "n");
    REJECT(D_HEAD, FARM_EBADREQ, "", "must be a map", "s", "submit");
    REJECT(D_SUBMIT, FARM_EBADREQ, "", "must be a map", "a", 0);
    REJECT(D_IDS, FARM_EBADREQ, "", "must be a map", "t");
    REJECT(D_LIST, FARM_EBADREQ, "", "must be a map", "b", "x", 1);
    REJECT(D_JOBS, FARM_EBADREQ, "", "must be a map", "d", 1.0);
    /* a task that is not a map names its place */
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks[1]", "tasks[1] must be a map", "m s a m s s s", 1, "tasks", 2, 1, "type",
           "exec", "exec");
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks[0]", "tasks[0] must be a map", "m s a n", 1, "tasks", 1);
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks[0]", "tasks[0] must be a map", "m s a a s s", 1, "tasks", 1, 2, "type",
           "exec");
}

static void test_reject_key_not_string(void **state) {
    REJECT(D_HEAD, FARM_EBADREQ, "", "has a key that is not a string", "m s s i s", 2, "op", "status", 1, "x");
    REJECT(D_HEAD, FARM_EBADREQ, "", "not a string", "m n s", 1, "x");
    REJECT(D_HEAD, FARM_EBADREQ, "", "not a string", "m b s s s", 2, "op", 2, "status", "op", "status");
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks[0]", "tasks[0] has a key that is not a string", "m s a m s s i i", 1,
           "tasks", 1, 2, "type", "exec", 7, 7);
}

static void test_reject_missing(void **state) {
    REJECT(D_HEAD, FARM_EBADREQ, "op", "op is missing", "m", 0);
    REJECT(D_HEAD, FARM_EBADREQ, "op", "op is missing", "m s i", 1, "v", 1);
    REJECT(D_HEAD, FARM_EBADREQ, "op", "op is missing", "m s s", 1, "OP", "status"); /* keys are case-sensitive */
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks", "tasks is missing", "m s s", 1, "op", "submit");
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks[2].type", "tasks[2].type is missing", "m s s s a m s s m s s m s s", 2, "op",
           "submit", "tasks", 3, 1, "type", "a", 1, "type", "b", 1, "typ", "c");
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks[0].type", "tasks[0].type is missing", "m s a m", 1, "tasks", 1, 0);
}

static void test_reject_types(void **state) {
    REJECT(D_HEAD, FARM_EBADREQ, "op", "op must be a string", "m s i", 1, "op", 1);
    REJECT(D_HEAD, FARM_EBADREQ, "op", "op must be a string", "m s b", 1, "op", "submit", 6);
    REJECT(D_HEAD, FARM_EBADREQ, "op", "op must be a string", "m s a s", 1, "op", 1, "submit");
    REJECT(D_HEAD, FARM_EBADREQ, "v", "v must be an integer", "m s s s s", 2, "op", "x", "v", "1");
    REJECT(D_HEAD, FARM_EBADREQ, "v", "v must be an integer", "m s s s d", 2, "op", "x", "v", 1.0);
    REJECT(D_HEAD, FARM_EBADREQ, "v", "v must be an integer", "m s s s t", 2, "op", "x", "v");
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks", "tasks must be an array", "m s m s s", 1, "tasks", 1, "type", "exec");
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks", "tasks must be an array", "m s s", 1, "tasks", "exec");
    REJECT(D_SUBMIT, FARM_EBADREQ, "priority", "priority must be an integer", "m s a m s s s s", 2, "tasks", 1, 1,
           "type", "exec", "priority", "5");
    REJECT(D_SUBMIT, FARM_EBADREQ, "name", "name must be a string", "m s a m s s s i", 2, "tasks", 1, 1, "type",
           "exec", "name", 5);
    REJECT(D_SUBMIT, FARM_EBADREQ, "key", "key must be a string", "m s a m s s s f", 2, "tasks", 1, 1, "type",
           "exec", "key");
    REJECT(D_SUBMIT, FARM_EBADREQ, "max_attempts", "must be an integer", "m s a m s s s d", 2, "tasks", 1, 1, "type",
           "exec", "max_attempts", 3.0);
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks[0].type", "tasks[0].type must be a string", "m s a m s i", 1, "tasks", 1, 1,
           "type", 1);
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks[0].priority", "tasks[0].priority must be an integer",
           "m s a m s s s s", 1, "tasks", 1, 2, "type", "exec", "priority", "high");
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks[1].timeout_ms", "must be an integer", "m s a m s s m s s s a", 1, "tasks",
           2, 1, "type", "a", 2, "type", "b", "timeout_ms", 0);
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks[0].delay_ms", "must be an integer", "m s a m s s s t", 1, "tasks", 1, 2,
           "type", "exec", "delay_ms");
    REJECT(D_IDS, FARM_EBADREQ, "task", "task must be an integer", "m s s", 1, "task", "301");
    REJECT(D_IDS, FARM_EBADREQ, "job", "job must be an integer", "m s d", 1, "job", 17.0);
    REJECT(D_LIST, FARM_EBADREQ, "limit", "limit must be an integer", "m s d", 1, "limit", 10.0);
    REJECT(D_LIST, FARM_EBADREQ, "state", "state must be a string", "m s i", 1, "state", 3);
    REJECT(D_LIST, FARM_EBADREQ, "type", "type must be a string", "m s a", 1, "type", 0);
    REJECT(D_LIST, FARM_EBADREQ, "after", "after must be an integer", "m s s", 1, "after", "0");
    REJECT(D_JOBS, FARM_EBADREQ, "state", "state must be a string", "m s t", 1, "state");
    REJECT(D_JOBS, FARM_EBADREQ, "after", "after must be an integer", "m s F", 1, "after", 1.0);
}

static void test_reject_range(void **state) {
    /* top-level task defaults */
    REJECT(D_SUBMIT, FARM_EBADREQ, "priority", "priority is out of range (-100..100)", "m s a m s s s i", 2, "tasks",
           1, 1, "type", "exec", "priority", 101);
    REJECT(D_SUBMIT, FARM_EBADREQ, "priority", "out of range (-100..100)", "m s a m s s s i", 2, "tasks", 1, 1, "type",
           "exec", "priority", -101);
    REJECT(D_SUBMIT, FARM_EBADREQ, "max_attempts", "max_attempts is out of range (1..100)", "m s a m s s s i", 2,
           "tasks", 1, 1, "type", "exec", "max_attempts", 0);
    REJECT(D_SUBMIT, FARM_EBADREQ, "max_attempts", "out of range (1..100)", "m s a m s s s i", 2, "tasks", 1, 1,
           "type", "exec", "max_attempts", 101);
    REJECT(D_SUBMIT, FARM_EBADREQ, "timeout_ms", "timeout_ms is out of range", "m s a m s s s i", 2, "tasks", 1, 1,
           "type", "exec", "timeout_ms", -1);
    REJECT(D_SUBMIT, FARM_EBADREQ, "delay_ms", "delay_ms is out of range", "m s a m s s s I", 2, "tasks", 1, 1, "type",
           "exec", "delay_ms", 4611686018427387904LL);
    /* the same bounds per task */
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks[0].priority", "tasks[0].priority is out of range (-100..100)",
           "m s a m s s s i", 1, "tasks", 1, 2, "type", "exec", "priority", 101);
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks[0].priority", "out of range", "m s a m s s s i", 1, "tasks", 1, 2, "type",
           "exec", "priority", -101);
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks[1].max_attempts", "tasks[1].max_attempts is out of range (1..100)",
           "m s a m s s m s s s i", 1, "tasks", 2, 1, "type", "a", 2, "type", "b", "max_attempts", 0);
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks[0].max_attempts", "out of range (1..100)", "m s a m s s s i", 1, "tasks", 1,
           2, "type", "exec", "max_attempts", 101);
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks[0].timeout_ms", "out of range", "m s a m s s s i", 1, "tasks", 1, 2, "type",
           "exec", "timeout_ms", -1);
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks[0].delay_ms", "out of range", "m s a m s s s i", 1, "tasks", 1, 2, "type",
           "exec", "delay_ms", -1);
    /* u64 above INT64_MAX never wraps to a negative value */
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks[0].priority", "out of range", "m s a m s s s U", 1, "tasks", 1, 2, "type",
           "exec", "priority", 18446744073709551615ULL);
    REJECT(D_SUBMIT, FARM_EBADREQ, "timeout_ms", "out of range", "m s a m s s s U", 2, "tasks", 1, 1, "type", "exec",
           "timeout_ms", 9223372036854775808ULL);
    /* ids */
    REJECT(D_IDS, FARM_EBADREQ, "task", "task is out of range (1..9223372036854775807)", "m s i", 1, "task", 0);
    REJECT(D_IDS, FARM_EBADREQ, "task", "out of range", "m s i", 1, "task", -1);
    REJECT(D_IDS, FARM_EBADREQ, "task", "out of range", "m s I", 1, "task", -9223372036854775807LL - 1);
    REJECT(D_IDS, FARM_EBADREQ, "task", "out of range", "m s U", 1, "task", 9223372036854775808ULL);
    REJECT(D_IDS, FARM_EBADREQ, "job", "job is out of range", "m s i", 1, "job", 0);
    REJECT(D_IDS, FARM_EBADREQ, "job", "out of range", "m s U", 1, "job", 18446744073709551615ULL);
    ACCEPT(D_IDS, "m s U", 1, "task", 9223372036854775807ULL);
    /* list and jobs */
    REJECT(D_LIST, FARM_EBADREQ, "limit", "limit is out of range (1..1000)", "m s i", 1, "limit", 0);
    REJECT(D_LIST, FARM_EBADREQ, "limit", "out of range (1..1000)", "m s i", 1, "limit", 1001);
    REJECT(D_LIST, FARM_EBADREQ, "limit", "out of range", "m s i", 1, "limit", -1);
    REJECT(D_LIST, FARM_EBADREQ, "job", "out of range", "m s i", 1, "job", 0);
    REJECT(D_LIST, FARM_EBADREQ, "after", "out of range", "m s i", 1, "after", -1);
    REJECT(D_LIST, FARM_EBADREQ, "state", "too short", "m s s", 1, "state", "");
    REJECT(D_JOBS, FARM_EBADREQ, "limit", "out of range (1..1000)", "m s i", 1, "limit", 0);
    REJECT(D_JOBS, FARM_EBADREQ, "limit", "out of range (1..1000)", "m s i", 1, "limit", 1001);
    REJECT(D_JOBS, FARM_EBADREQ, "after", "out of range", "m s i", 1, "after", -5);
    ACCEPT(D_LIST, "m s i s i s i", 3, "limit", 1000, "after", 0, "job", 1);
    ACCEPT(D_JOBS, "m s i", 1, "limit", 1);
    /* op length */
    char b[128];
    REJECT(D_HEAD, FARM_EBADREQ, "op", "op is too short (at least 1)", "m s s", 1, "op", "");
    REJECT(D_HEAD, FARM_EBADREQ, "op", "op is too long (at most 64)", "m s s", 1, "op", rep(b, 'o', 65));
}

static void test_reject_duplicate(void **state) {
    REJECT(D_HEAD, FARM_EBADREQ, "op", "op appears twice", "m s s s s", 2, "op", "status", "op", "submit");
    REJECT(D_HEAD, FARM_EBADREQ, "op", "op appears twice", "m s s s n", 2, "op", "status", "op");
    REJECT(D_HEAD, FARM_EBADREQ, "v", "v appears twice", "m s s s i s i", 3, "op", "x", "v", 1, "v", 1);
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks[0].type", "tasks[0].type appears twice", "m s a m s s s s", 1, "tasks", 1,
           2, "type", "a", "type", "a");
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks", "tasks appears twice", "m s a m s s s a m s s", 2, "tasks", 1, 1, "type",
           "a", "tasks", 1, 1, "type", "b");
    /* unknown keys may repeat: they are ignored */
    ACCEPT(D_HEAD, "m s s s i s i", 3, "op", "x", "zz", 1, "zz", 2);
}

/* A duplicate key is a duplicate whatever its first value: {"op": nil,
 * "op": "x"} must be refused like {"op": "x", "op": nil} is. */
static void test_reject_duplicate_nil_first(void **state) {
    REJECT(D_HEAD, FARM_EBADREQ, "op", "op appears twice", "m s n s s", 2, "op", "op", "status");
    REJECT(D_LIST, FARM_EBADREQ, "limit", "limit appears twice", "m s n s i", 2, "limit", "limit", 5);
}

static void test_reject_empty_tasks(void **state) {
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks", "tasks is too short (at least 1)", "m s s s a", 2, "op", "submit", "tasks",
           0);
}

static void test_limits(void **state) {
    farm_limits_t l;
    farm_limits_default(&l);
    l.max_batch = 3;
    farm_proto_set_limits(&l);
    ACCEPT(D_SUBMIT, "m s a m s s m s s m s s", 1, "tasks", 3, 1, "type", "a", 1, "type", "b", 1, "type", "c");
    REJECT(D_SUBMIT, FARM_ETOOLARGE, "tasks", "tasks has 4 entries, over the limit max_batch=3",
           "m s a m s s m s s m s s m s s", 1, "tasks", 4, 1, "type", "a", 1, "type", "b", 1, "type", "c", 1, "type",
           "d");
    /* a batch over the limit is too_large even when its tasks are invalid */
    REJECT(D_SUBMIT, FARM_ETOOLARGE, "tasks", "max_batch", "m s a i i i i i", 1, "tasks", 5, 1, 2, 3, 4, 5);

    /* name and key limits, default then configured */
    char b[1024];
    set_default_limits();
    ACCEPT(D_SUBMIT, "m s a m s s s s", 2, "tasks", 1, 1, "type", "a", "name", rep(b, 'n', 200));
    REJECT(D_SUBMIT, FARM_ETOOLARGE, "name", "name has 201 bytes, over the limit max_name=200", "m s a m s s s s", 2,
           "tasks", 1, 1, "type", "a", "name", rep(b, 'n', 201));
    ACCEPT(D_SUBMIT, "m s a m s s s s", 2, "tasks", 1, 1, "type", "a", "key", rep(b, 'k', 128));
    REJECT(D_SUBMIT, FARM_ETOOLARGE, "key", "key has 129 bytes, over the limit max_key=128", "m s a m s s s s", 2,
           "tasks", 1, 1, "type", "a", "key", rep(b, 'k', 129));
    REJECT(D_SUBMIT, FARM_EBADREQ, "key", "key is too short (at least 1)", "m s a m s s s s", 2, "tasks", 1, 1, "type",
           "a", "key", "");

    farm_limits_default(&l);
    l.max_name = 10;
    l.max_key = 4;
    l.max_batch = 10;
    farm_proto_set_limits(&l);
    ACCEPT(D_SUBMIT, "m s a m s s s s s s", 3, "tasks", 1, 1, "type", "a", "name", "0123456789", "key", "abcd");
    REJECT(D_SUBMIT, FARM_ETOOLARGE, "name", "over the limit max_name=10", "m s a m s s s s", 2, "tasks", 1, 1, "type",
           "a", "name", "0123456789a");
    REJECT(D_SUBMIT, FARM_ETOOLARGE, "key", "over the limit max_key=4", "m s a m s s s s", 2, "tasks", 1, 1, "type",
           "a", "key", "abcde");

    /* back to the defaults: 10,000 tasks pass, 10,001 do not */
    set_default_limits();
    for (int n = 10000; n <= 10001; n++) {
        msg_t m;
        msg_init(&m);
        packf(&m.pk, "m s a", 1, "tasks", n);
        for (int i = 0; i < n; i++)
            packf(&m.pk, "m s s", 1, "type", "t");
        submit_t s;
        int rc = decode_submit(msg_unpack(&m), &s, &m.e);
        if (n == 10000) {
            assert_int_equal(rc, 0);
            assert_int_equal(s.ntasks, 10000);
        } else {
            EXPECT_ERR(&m.e, rc, FARM_ETOOLARGE, "tasks", "over the limit max_batch=10000");
        }
        msg_free(&m);
    }
}

static void test_reject_type_chars(void **state) {
    char b[128];
    static const char *const bad[] = {"Exec", "a b", "exec!", "ex/ec", "é", "tab\t", "UPPER", "a,b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        REJECT(D_SUBMIT, FARM_EBADREQ, "tasks[0].type", "tasks[0].type must be 1-64 bytes of [a-z0-9_.-]",
               "m s a m s s", 1, "tasks", 1, 1, "type", bad[i]);
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks[0].type", "[a-z0-9_.-]", "m s a m s S", 1, "tasks", 1, 1, "type", "a\0b", 3);
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks[0].type", "tasks[0].type is too short (at least 1)", "m s a m s s", 1,
           "tasks", 1, 1, "type", "");
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks[0].type", "tasks[0].type is too long (at most 64)", "m s a m s s", 1,
           "tasks", 1, 1, "type", rep(b, 'a', 65));
    /* the first bad task is the one named */
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks[1].type", "tasks[1].type must be", "m s a m s s m s s m s s", 1, "tasks", 3,
           1, "type", "ok", 1, "type", "No", 1, "type", "No");
    ACCEPT(D_SUBMIT, "m s a m s s m s s m s s", 1, "tasks", 3, 1, "type", rep(b, 'a', 64), 1, "type",
           "abcdefghijklmnopqrstuvwxyz0123456789_.-", 1, "type", "-");
}

static void test_type_valid(void **state) {
    assert_true(farm_type_valid((farm_str_t){"exec", 4}));
    assert_true(farm_type_valid((farm_str_t){"a.b-c_d9", 8}));
    assert_true(farm_type_valid((farm_str_t){"exec!", 4})); /* only len bytes count */
    assert_false(farm_type_valid((farm_str_t){NULL, 0}));
    assert_false(farm_type_valid((farm_str_t){"", 0}));
    assert_false(farm_type_valid((farm_str_t){"Exec", 4}));
    assert_false(farm_type_valid((farm_str_t){"a b", 3}));
    assert_false(farm_type_valid((farm_str_t){"a\0b", 3}));
    assert_false(farm_type_valid((farm_str_t){"\xc3\xa9", 2}));
    char b[128];
    assert_true(farm_type_valid((farm_str_t){rep(b, 'x', 64), 64}));
    assert_false(farm_type_valid((farm_str_t){rep(b, 'x', 65), 65}));
}

static void test_nil_is_absent(void **state) {
    /* required nil: missing */
    REJECT(D_HEAD, FARM_EBADREQ, "op", "op is missing", "m s n", 1, "op");
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks", "tasks is missing", "m s s s n", 2, "op", "submit", "tasks");
    REJECT(D_SUBMIT, FARM_EBADREQ, "tasks[0].type", "tasks[0].type is missing", "m s a m s n s i", 1, "tasks", 1, 2,
           "type", "priority", 1);
    REJECT(D_HB, FARM_EBADREQ, "free", "free is missing", "m s s s n", 2, "m", "hb", "free");
    /* optional nil: default, and not present */
    msg_t m;
    msg_init(&m);
    packf(&m.pk, "m s a m s s s n s n s n s n s n", 6, "tasks", 1, 1, "type", "a", "name", "key", "priority",
          "max_attempts", "timeout_ms");
    submit_t s;
    assert_int_equal(decode_submit(msg_unpack(&m), &s, &m.e), 0);
    assert_int_equal(s.present, 1);
    assert_null(s.r.name.ptr);
    assert_null(s.r.key.ptr);
    assert_int_equal(s.r.priority, 0);
    assert_int_equal(s.r.max_attempts, 3);
    assert_int_equal(s.r.timeout_ms, 0);
    msg_free(&m);

    msg_init(&m);
    packf(&m.pk, "m s s s n", 2, "m", "result", "ok");
    farm_msg_report_t r;
    memset(&r, 0xa5, sizeof r);
    assert_int_equal(farm_msg_report_decode(msg_unpack(&m), &r, &m.e), 0);
    assert_false(r.ok);
    msg_free(&m);
}

static void test_unknown_keys(void **state) {
    msg_t m;
    msg_init(&m);
    packf(&m.pk, "m s s s a m s s s m s i s a s d", 5, "op", "submit", "tasks", 1, 3, "type", "exec", "future",
          1, "x", 1, "comment", 0, "weight", 0.5);
    packf(&m.pk, "s b s t", "blob", "\x00", 1, "extra");
    submit_t s;
    assert_int_equal(decode_submit(msg_unpack(&m), &s, &m.e), 0);
    assert_int_equal(s.ntasks, 1);
    assert_true(farm_str_eq(s.t[0].type, "exec"));
    assert_int_equal(s.has[0], 1);
    msg_free(&m);

    /* a key that only prefixes or extends a field name is unknown */
    ACCEPT(D_HEAD, "m s s s s s i s i", 4, "op", "x", "o", "y", "vv", 1, "v ", 2);
    ACCEPT(D_IDS, "m s i s i", 2, "tasks", 0, "jobs", -1);
    ACCEPT(D_LIST, "m s i s i", 2, "limits", 0, "Limit", 5000);
}

/* Nesting deeper than msgpack-c's parser stack (32) makes msgpack_unpack
 * return NOMEM, which farm_msg_unpack reports as too_large "message too
 * large to decode" - for a frame of a few dozen bytes that is over no
 * configured limit. The spec wants too_large only for a configured limit,
 * and its message to name it; otherwise it is a bad_request. */
static void test_deep_nesting(void **state) {
    unsigned char buf[128];
    size_t n = 0;
    /* {"tasks": [{"type": "a", "args": [[[...nil...]]]}]} */
    buf[n++] = 0x81;
    buf[n++] = 0xa5;
    memcpy(buf + n, "tasks", 5);
    n += 5;
    buf[n++] = 0x91;
    buf[n++] = 0x82;
    buf[n++] = 0xa4;
    memcpy(buf + n, "type", 4);
    n += 4;
    buf[n++] = 0xa1;
    buf[n++] = 'a';
    buf[n++] = 0xa4;
    memcpy(buf + n, "args", 4);
    n += 4;
    size_t head = n;
    /* depth so far: map, array, map = 3 levels; args arrays up to 29 more still parse */
    for (int i = 0; i < 29; i++)
        buf[n++] = 0x91;
    buf[n++] = 0xc0;
    msgpack_zone z;
    msgpack_object o;
    farm_error_t e;
    assert_true(msgpack_zone_init(&z, 2048));
    assert_int_equal(farm_msg_unpack(buf, n, &z, &o, &e), 0);
    msgpack_zone_destroy(&z);

    n = head;
    for (int i = 0; i < 40; i++)
        buf[n++] = 0x91;
    buf[n++] = 0xc0;
    assert_true(msgpack_zone_init(&z, 2048));
    memset(&e, 0, sizeof e);
    int rc = farm_msg_unpack(buf, n, &z, &o, &e);
    msgpack_zone_destroy(&z);
    assert_int_not_equal(rc, 0);
    assert_int_equal(rc, e.code);
    if (rc == FARM_ETOOLARGE && !strstr(e.message, "max_") && !strstr(e.message, "limit") &&
        !strstr(e.message, "deep") && !strstr(e.message, "nest") && !strstr(e.message, "depth"))
        fail_msg("a %zu-byte frame nested 43 deep gave too_large \"%s\": names no limit, says nothing of nesting", n,
                 e.message);
    if (rc != FARM_ETOOLARGE)
        assert_int_equal(rc, FARM_EBADREQ);
}

/* ======================================================================
 * error replies
 * ====================================================================== */

/* Unpack a packed error reply and check it. field NULL: must be absent. */
static void check_error_reply(const msgpack_sbuffer *sb, const char *code, const char *message, const char *field) {
    msgpack_zone z;
    msgpack_object o;
    farm_error_t e;
    assert_true(msgpack_zone_init(&z, 1024));
    assert_int_equal(farm_msg_unpack(sb->data, sb->size, &z, &o, &e), 0);
    assert_int_equal(o.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(o.via.map.size, 2);
    const msgpack_object *ok = farm_msg_get(&o, "ok");
    assert_non_null(ok);
    assert_int_equal(ok->type, MSGPACK_OBJECT_BOOLEAN);
    assert_false(ok->via.boolean);
    const msgpack_object *err = farm_msg_get(&o, "error");
    assert_non_null(err);
    assert_int_equal(err->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(err->via.map.size, field ? 3 : 2);
    assert_true(obj_str_eq(farm_msg_get(err, "code"), code));
    assert_true(obj_str_eq(farm_msg_get(err, "message"), message));
    if (field)
        assert_true(obj_str_eq(farm_msg_get(err, "field"), field));
    else
        assert_null(farm_msg_get(err, "field"));
    msgpack_zone_destroy(&z);
}

static void test_pack_error(void **state) {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    farm_error_t e;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(farm_error_set(&e, FARM_ENOTFOUND, "task", "no task %d", 301), FARM_ENOTFOUND);
    assert_int_equal(e.code, FARM_ENOTFOUND);
    assert_string_equal(e.field, "task");
    assert_string_equal(e.message, "no task 301");
    farm_pack_error(&pk, &e);
    check_error_reply(&sb, "not_found", "no task 301", "task");
    msgpack_sbuffer_destroy(&sb);

    /* no field: omitted */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    farm_error_set(&e, FARM_ENOTFOUND, NULL, "no job 17");
    assert_string_equal(e.field, "");
    farm_pack_error(&pk, &e);
    check_error_reply(&sb, "not_found", "no job 17", NULL);
    msgpack_sbuffer_destroy(&sb);

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    farm_error_set(&e, FARM_EBADREQ, "", "x");
    farm_pack_error(&pk, &e);
    check_error_reply(&sb, "bad_request", "x", NULL);
    msgpack_sbuffer_destroy(&sb);

    /* empty message: the code's own text */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    farm_error_set(&e, FARM_EBUSY, NULL, "%s", "");
    farm_pack_error(&pk, &e);
    check_error_reply(&sb, "busy", "the farm refuses new work for now", NULL);
    msgpack_sbuffer_destroy(&sb);

    /* a decoder's error, straight to the wire */
    msg_t m;
    msg_init(&m);
    packf(&m.pk, "m s a m s s", 1, "tasks", 1, 1, "type", "Bad");
    submit_t s;
    assert_int_equal(decode_submit(msg_unpack(&m), &s, &m.e), FARM_EBADREQ);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    farm_pack_error(&pk, &m.e);
    check_error_reply(&sb, "bad_request", "tasks[0].type must be 1-64 bytes of [a-z0-9_.-]", "tasks[0].type");
    msgpack_sbuffer_destroy(&sb);
    msg_free(&m);

    /* -errno: "internal" with strerror's text */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    farm_error_set(&e, -EIO, NULL, "%s", "");
    farm_pack_error(&pk, &e);
    check_error_reply(&sb, "internal", strerror(EIO), NULL);
    msgpack_sbuffer_destroy(&sb);

    /* long field and message are cut, never overflow */
    char longf[300];
    memset(longf, 'f', sizeof longf - 1);
    longf[sizeof longf - 1] = '\0';
    farm_error_set(&e, FARM_EBADREQ, longf, "%s%s", longf, longf);
    assert_int_equal(strlen(e.field), sizeof e.field - 1);
    assert_int_equal(strlen(e.message), sizeof e.message - 1);
}

/* ======================================================================
 * small helpers of farm_msg
 * ====================================================================== */

static void test_msg_helpers(void **state) {
    assert_true(farm_str_eq((farm_str_t){"abc", 3}, "abc"));
    assert_false(farm_str_eq((farm_str_t){"abc", 2}, "abc"));
    assert_false(farm_str_eq((farm_str_t){"abcd", 4}, "abc"));
    assert_false(farm_str_eq((farm_str_t){NULL, 0}, ""));
    assert_true(farm_str_eq((farm_str_t){"", 0}, ""));

    char dst[4];
    assert_string_equal(farm_str_copy(dst, sizeof dst, (farm_str_t){"ab", 2}), "ab");
    assert_string_equal(farm_str_copy(dst, sizeof dst, (farm_str_t){"abcdef", 6}), "abc");
    assert_string_equal(farm_str_copy(dst, sizeof dst, (farm_str_t){NULL, 5}), "");

    msg_t m;
    msg_init(&m);
    packf(&m.pk, "m i s s s s i", 3, 1, "one", "k", "v", "kk", 2);
    const msgpack_object *o = msg_unpack(&m);
    assert_true(obj_str_eq(farm_msg_get(o, "k"), "v"));
    assert_int_equal(farm_msg_get(o, "kk")->via.i64, 2);
    assert_null(farm_msg_get(o, "one"));
    assert_null(farm_msg_get(o, "x"));
    assert_null(farm_msg_get(NULL, "k"));
    assert_null(farm_msg_get(&o->via.map.ptr[0].val, "k"));
    msg_free(&m);

    /* raw: NULL or empty packs nil; bytes are appended as they are */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    farm_pack_raw(&pk, NULL, 5);
    farm_pack_raw(&pk, "\x01", 0);
    farm_pack_raw(&pk, "\x92\x01\x02", 3);
    assert_int_equal(sb.size, 5);
    assert_memory_equal(sb.data, "\xc0\xc0\x92\x01\x02", 5);
    msgpack_sbuffer_destroy(&sb);

    /* kv helpers */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 8);
    farm_pack_kv_str(&pk, "s", "v");
    farm_pack_kv_str(&pk, "sn", NULL);
    farm_pack_kv_strn(&pk, "n", "abcdef", 3);
    farm_pack_kv_int(&pk, "i", INT64_MIN);
    farm_pack_kv_bool(&pk, "b", true);
    farm_pack_kv_nil(&pk, "z");
    farm_pack_kv_double(&pk, "d", 0.125);
    farm_pack_kv_bin(&pk, "bin", "\x00\x01", 2);
    msgpack_zone z;
    msgpack_object u;
    farm_error_t e;
    assert_true(msgpack_zone_init(&z, 1024));
    assert_int_equal(farm_msg_unpack(sb.data, sb.size, &z, &u, &e), 0);
    assert_true(obj_str_eq(farm_msg_get(&u, "s"), "v"));
    assert_int_equal(farm_msg_get(&u, "sn")->type, MSGPACK_OBJECT_NIL);
    assert_true(obj_str_eq(farm_msg_get(&u, "n"), "abc"));
    assert_int_equal(farm_msg_get(&u, "i")->via.i64, INT64_MIN);
    assert_true(farm_msg_get(&u, "b")->via.boolean);
    assert_int_equal(farm_msg_get(&u, "z")->type, MSGPACK_OBJECT_NIL);
    assert_true(farm_msg_get(&u, "d")->via.f64 == 0.125);
    assert_int_equal(farm_msg_get(&u, "bin")->type, MSGPACK_OBJECT_BIN);
    assert_int_equal(farm_msg_get(&u, "bin")->via.bin.size, 2);
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&sb);
}

/* ======================================================================
 * farm_err
 * ====================================================================== */

static void test_err_table(void **state) {
    static const struct {
        int code;
        const char *name, *msg;
    } tab[] = {
#define XX(e, n, m) {FARM_E##e, n, m},
        FARM_ERR_MAP(XX)
#undef XX
    };
    size_t n = sizeof tab / sizeof tab[0];
    assert_int_equal(n, 12);
    for (size_t i = 0; i < n; i++) {
        assert_true(tab[i].code < 0);
        assert_string_equal(farm_err_name(tab[i].code), tab[i].name);
        assert_int_equal(farm_err_from_name(tab[i].name, strlen(tab[i].name)), tab[i].code);
        assert_string_equal(farm_strerror(tab[i].code), tab[i].msg);
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(tab[i].code, tab[j].code);
            assert_string_not_equal(tab[i].name, tab[j].name);
        }
    }
    /* the wire codes of the spec */
    assert_string_equal(farm_err_name(FARM_EBADREQ), "bad_request");
    assert_string_equal(farm_err_name(FARM_EUNKNOWNOP), "unknown_op");
    assert_string_equal(farm_err_name(FARM_EVERSION), "unsupported_version");
    assert_string_equal(farm_err_name(FARM_ETOOLARGE), "too_large");
    assert_string_equal(farm_err_name(FARM_ENOTFOUND), "not_found");
    assert_string_equal(farm_err_name(FARM_ECONFLICT), "conflict");
    assert_string_equal(farm_err_name(FARM_EBUSY), "busy");
    assert_string_equal(farm_err_name(FARM_EUNAUTH), "unauthorized");
    assert_string_equal(farm_err_name(FARM_EINTERNAL), "internal");
    /* unknowns */
    assert_int_equal(farm_err_from_name("nope", 4), FARM_EINTERNAL);
    assert_int_equal(farm_err_from_name("", 0), FARM_EINTERNAL);
    assert_int_equal(farm_err_from_name("bad", 3), FARM_EINTERNAL);
    assert_int_equal(farm_err_from_name("bad_requestX", 11), FARM_EBADREQ); /* len bytes only */
    assert_int_equal(farm_err_from_name("BAD_REQUEST", 11), FARM_EINTERNAL);
    assert_string_equal(farm_err_name(-ENOENT), "internal");
    assert_string_equal(farm_err_name(12345), "internal");
}

static void test_strerror(void **state) {
    assert_string_equal(farm_strerror(-ENOENT), strerror(ENOENT));
    assert_string_equal(farm_strerror(-EACCES), strerror(EACCES));
    assert_string_equal(farm_strerror(-ENOMEM), strerror(ENOMEM));
    assert_string_equal(farm_strerror(0), "ok");
    assert_string_equal(farm_strerror(1), "unknown error");
    assert_string_equal(farm_strerror(-100000), "unknown error");
    assert_non_null(farm_strerror(FARM_E__FIRST));
    assert_non_null(farm_strerror(FARM_E__LAST));
}

/* ======================================================================
 * farm_state
 * ====================================================================== */

static void test_state(void **state) {
    static const struct {
        int st;
        const char *name;
        bool final;
    } tab[] = {
        {FARM_TASK_PENDING, "pending", false},   {FARM_TASK_RUNNING, "running", false},
        {FARM_TASK_RETRYING, "retrying", false}, {FARM_TASK_COMPLETED, "completed", true},
        {FARM_TASK_FAILED, "failed", true},      {FARM_TASK_CANCELLED, "cancelled", true},
    };
    assert_int_equal(FARM_STATE_COUNT, 6);
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(tab[i].st, (int)i); /* numbers are stored: never change */
        assert_string_equal(farm_state_name(tab[i].st), tab[i].name);
        assert_int_equal(farm_state_parse(tab[i].name, strlen(tab[i].name)), tab[i].st);
        assert_int_equal(farm_state_final(tab[i].st), tab[i].final);
    }
    assert_string_equal(farm_state_name(-1), "unknown");
    assert_string_equal(farm_state_name(6), "unknown");
    assert_int_equal(farm_state_parse("unknown", 7), -1);
    assert_int_equal(farm_state_parse("", 0), -1);
    assert_int_equal(farm_state_parse("pend", 4), -1);
    assert_int_equal(farm_state_parse("Pending", 7), -1);
    assert_int_equal(farm_state_parse("pendingX", 7), FARM_TASK_PENDING); /* len bytes only */
    assert_int_equal(farm_state_parse("failed ", 7), -1);
    assert_false(farm_state_final(-1));
    assert_false(farm_state_final(6));
}

/* ======================================================================
 * farm_config
 * ====================================================================== */

static void test_endpoint_set(void **state) {
    char ep[FARM_EP_MAX];
    static const struct {
        const char *in, *want;
    } ok[] = {
        {"host:1234", "tcp://host:1234"},
        {"127.0.0.1:5555", "tcp://127.0.0.1:5555"},
        {"[::1]:5555", "tcp://[::1]:5555"},
        {"*:5555", "tcp://*:5555"},
        {"tcp://h:1", "tcp://h:1"},
        {"tcp://10.0.0.1:5557", "tcp://10.0.0.1:5557"},
        {"ipc:///tmp/farm.sock", "ipc:///tmp/farm.sock"},
        {"inproc://front", "inproc://front"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        memset(ep, 'x', sizeof ep);
        assert_int_equal(farm_endpoint_set(ep, ok[i].in), 0);
        assert_string_equal(ep, ok[i].want);
    }
    static const char *const bad[] = {"", "host", ":1234", "host:", "localhost"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        strcpy(ep, "keep");
        if (farm_endpoint_set(ep, bad[i]) != FARM_EBADREQ)
            fail_msg("farm_endpoint_set(\"%s\") was accepted", bad[i]);
        assert_string_equal(ep, "keep");
    }
    strcpy(ep, "keep");
    assert_int_equal(farm_endpoint_set(ep, NULL), FARM_EBADREQ);
    assert_string_equal(ep, "keep");
    /* length: the result must fit with its tcp:// */
    char v[FARM_EP_MAX + 10];
    memset(v, 'h', sizeof v);
    v[FARM_EP_MAX - 8 - 2] = ':';
    v[FARM_EP_MAX - 8 - 1] = '1';
    v[FARM_EP_MAX - 8] = '\0'; /* 248 bytes */
    assert_int_equal(farm_endpoint_set(ep, v), 0);
    assert_int_equal(strlen(ep), 248 + 6);
    assert_memory_equal(ep, "tcp://", 6);
    memset(v, 'h', sizeof v);
    v[FARM_EP_MAX - 7 - 2] = ':';
    v[FARM_EP_MAX - 7 - 1] = '1';
    v[FARM_EP_MAX - 7] = '\0'; /* 249 bytes */
    strcpy(ep, "keep");
    assert_int_equal(farm_endpoint_set(ep, v), FARM_EBADREQ);
    assert_string_equal(ep, "keep");
}

static void test_endpoints_host(void **state) {
    farm_endpoints_t ep;
    assert_int_equal(farm_endpoints_from_host(&ep, "head.example"), 0);
    assert_string_equal(ep.front, "tcp://head.example:5555");
    assert_string_equal(ep.dispatch, "tcp://head.example:5557");
    assert_string_equal(ep.results, "tcp://head.example:5558");
    assert_string_equal(ep.feed, "tcp://head.example:5559");
    assert_int_equal(farm_endpoints_from_host(&ep, "10.1.2.3"), 0);
    assert_string_equal(ep.front, "tcp://10.1.2.3:5555");
    assert_string_equal(ep.feed, "tcp://10.1.2.3:5559");

    farm_endpoints_default(&ep);
    assert_string_equal(ep.front, "tcp://127.0.0.1:5555");
    assert_string_equal(ep.dispatch, "tcp://127.0.0.1:5557");
    assert_string_equal(ep.results, "tcp://127.0.0.1:5558");
    assert_string_equal(ep.feed, "tcp://127.0.0.1:5559");
    assert_true(farm_endpoint_is_local(ep.front));
    assert_true(farm_endpoint_is_local(ep.dispatch));
    assert_true(farm_endpoint_is_local(ep.results));
    assert_true(farm_endpoint_is_local(ep.feed));

    assert_int_equal(farm_endpoints_from_host(&ep, ""), FARM_EBADREQ);
    assert_int_equal(farm_endpoints_from_host(&ep, NULL), FARM_EBADREQ);
    char b[1024];
    assert_int_equal(farm_endpoints_from_host(&ep, rep(b, 'h', 200)), 0);
    assert_int_equal(strlen(ep.front), 6 + 200 + 5);
    assert_int_equal(farm_endpoints_from_host(&ep, rep(b, 'h', 201)), FARM_EBADREQ);
}

static void test_parse_size(void **state) {
    static const struct {
        const char *in;
        int64_t want;
    } ok[] = {
        {"0", 0},
        {"123", 123},
        {"1k", 1024},
        {"1K", 1024},
        {"64k", 65536},
        {"2M", 2 * 1024 * 1024},
        {"64M", 64LL * 1024 * 1024},
        {"3G", 3LL * 1024 * 1024 * 1024},
        {"9223372036854775807", INT64_MAX},
        {"8589934591G", 8589934591LL * 1024 * 1024 * 1024},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t v = -7;
        if (farm_parse_size(ok[i].in, &v) != 0)
            fail_msg("farm_parse_size(\"%s\") rejected", ok[i].in);
        assert_int_equal(v, ok[i].want);
    }
    static const char *const bad[] = {"",    "k",         "M",     "-1",   "-1k",   "1x",
                                      "1kk", "1.5M",      "1 M",   "1k ",  "0x10",  "abc",
                                      "1T",  "99999999999999999999", "9223372036854775807k",
                                      "8589934592G", "9007199254740992M"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v = -7;
        if (farm_parse_size(bad[i], &v) != FARM_EBADREQ)
            fail_msg("farm_parse_size(\"%s\") accepted (%" PRId64 ")", bad[i], v);
        assert_int_equal(v, -7);
    }
    int64_t v = -7;
    assert_int_equal(farm_parse_size(NULL, &v), FARM_EBADREQ);
    assert_int_equal(v, -7);
}

static void test_endpoint_is_local(void **state) {
    static const char *const local[] = {
        "tcp://127.0.0.1:5555", "tcp://127.1.2.3:1",  "tcp://127.0.0.1:*", "tcp://localhost:5555",
        "tcp://[::1]:5555",     "ipc:///tmp/farm",    "ipc://@abstract",   "inproc://front",
    };
    for (size_t i = 0; i < sizeof local / sizeof local[0]; i++)
        if (!farm_endpoint_is_local(local[i]))
            fail_msg("\"%s\" should be local", local[i]);
    static const char *const remote[] = {
        "tcp://0.0.0.0:5555",          "tcp://*:5555",           "tcp://10.0.0.1:5555",
        "tcp://127.0.0.1.evil.com:5555", "tcp://example.com:5555", "tcp://localhost.evil.com:1",
        "tcp://[::]:5555",             "tcp://[::2]:5555",       "tcp://128.0.0.1:5555",
        "tcp://127:5555",              "tcp://eth0:5555",        "tcp://1127.0.0.1:5555",
        "tcp://127.0.0.1",             "udp://127.0.0.1:5555",   "127.0.0.1:5555",
        "tcp://127.0.0.1;10.0.0.1:5555", "tcp://10.0.0.1:0;127.0.0.1:5555", "",
    };
    for (size_t i = 0; i < sizeof remote / sizeof remote[0]; i++)
        if (farm_endpoint_is_local(remote[i]))
            fail_msg("\"%s\" should not be local", remote[i]);
}

static void test_limits_default(void **state) {
    farm_limits_t l;
    memset(&l, 0, sizeof l);
    farm_limits_default(&l);
    assert_int_equal(l.max_frame, 64 * 1024 * 1024);
    assert_int_equal(l.max_batch, 10000);
    assert_int_equal(l.max_args, 1024 * 1024);
    assert_int_equal(l.max_name, 200);
    assert_int_equal(l.max_key, 128);
    assert_int_equal(l.max_output, 1024 * 1024);
    assert_int_equal(l.max_pending, 5000000);
}

/* Several messages in one frame: farm_msg_unpack_next walks them in order,
 * and bytes that are not MessagePack stop it without moving past them. */
static void test_unpack_next(void **state) {
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    farm_pack_start(&pk, 7, 1, "w1", 1000);
    size_t first = sb.size;
    farm_pack_result(&pk, 7, 1, "w1", true, false, NULL, 0, NULL, 1000, 1001);
    size_t second = sb.size;
    msgpack_sbuffer_write(&sb, "\xc1\x80", 2); /* 0xc1 is never MessagePack */
    msgpack_zone z;
    assert_true(msgpack_zone_init(&z, 2048));
    msgpack_object o;
    farm_error_t e;
    farm_msg_report_t m;
    size_t off = 0;
    assert_int_equal(farm_msg_unpack_next(sb.data, sb.size, &off, &z, &o, &e), 0);
    assert_int_equal(off, first);
    assert_int_equal(farm_msg_report_decode(&o, &m, &e), 0);
    assert_true(farm_str_eq(m.m, "start"));
    assert_int_equal(farm_msg_unpack_next(sb.data, sb.size, &off, &z, &o, &e), 0);
    assert_int_equal(off, second);
    assert_int_equal(farm_msg_report_decode(&o, &m, &e), 0);
    assert_true(farm_str_eq(m.m, "result"));
    assert_int_equal(m.task, 7);
    assert_int_equal(farm_msg_unpack_next(sb.data, sb.size, &off, &z, &o, &e), FARM_EBADREQ);
    assert_int_equal(off, second); /* not moved past what it could not read */
    off = sb.size;
    assert_int_equal(farm_msg_unpack_next(sb.data, sb.size, &off, &z, &o, &e), FARM_EBADREQ); /* at the end */
    /* A truncated second message: the first still reads, the second fails. */
    off = 0;
    assert_int_equal(farm_msg_unpack_next(sb.data, second - 1, &off, &z, &o, &e), 0);
    assert_int_equal(farm_msg_unpack_next(sb.data, second - 1, &off, &z, &o, &e), FARM_EBADREQ);
    assert_int_equal(off, first);
    /* farm_msg_unpack still wants exactly one value. */
    assert_int_equal(farm_msg_unpack(sb.data, second, &z, &o, &e), FARM_EBADREQ);
    assert_non_null(strstr(e.message, "trailing bytes"));
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&sb);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rt_hb),
        cmocka_unit_test(test_rt_hb_empty),
        cmocka_unit_test(test_rt_ready),
        cmocka_unit_test(test_rt_give_revoke),
        cmocka_unit_test(test_rt_welcome),
        cmocka_unit_test(test_rt_task),
        cmocka_unit_test(test_rt_task_nil_args),
        cmocka_unit_test(test_rt_cancel),
        cmocka_unit_test(test_rt_start),
        cmocka_unit_test(test_rt_prog),
        cmocka_unit_test(test_rt_result_ok),
        cmocka_unit_test(test_rt_result_failed),
        cmocka_unit_test(test_rt_result_records),
        cmocka_unit_test(test_rt_pub),
        cmocka_unit_test(test_internal_reject),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_submit_defaults),
        cmocka_unit_test(test_submit_minimal),
        cmocka_unit_test(test_submit_args_any),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_jobs),
        cmocka_unit_test(test_reject_not_msgpack),
        cmocka_unit_test(test_reject_trailing),
        cmocka_unit_test(test_reject_not_map),
        cmocka_unit_test(test_reject_key_not_string),
        cmocka_unit_test(test_reject_missing),
        cmocka_unit_test(test_reject_types),
        cmocka_unit_test(test_reject_range),
        cmocka_unit_test(test_reject_duplicate),
        cmocka_unit_test(test_reject_duplicate_nil_first),
        cmocka_unit_test(test_reject_empty_tasks),
        cmocka_unit_test_teardown(test_limits, teardown_limits),
        cmocka_unit_test(test_reject_type_chars),
        cmocka_unit_test(test_type_valid),
        cmocka_unit_test(test_nil_is_absent),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_pack_error),
        cmocka_unit_test(test_msg_helpers),
        cmocka_unit_test(test_err_table),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_state),
        cmocka_unit_test(test_endpoint_set),
        cmocka_unit_test(test_endpoints_host),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_endpoint_is_local),
        cmocka_unit_test(test_limits_default),
        cmocka_unit_test(test_unpack_next),
    };
    return cmocka_run_group_tests(tests, setup_limits, NULL);
}
