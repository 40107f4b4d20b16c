/* Integration: garbage at every socket of a running head (issue 7).
 *
 * Thousands of frames, random and mutated from valid messages (a seeded
 * PRNG, so a failure is repeatable; FARM_GARBAGE_SEED picks another seed),
 * are thrown at the ventilator's front door (REQ: every one must be
 * answered, with a well-formed reply), its dispatch socket (DEALER: forged
 * and mangled worker messages) and the sink's results socket (PUSH: forged
 * and mangled reports). Afterwards both processes are alive and answer, a
 * normal job still completes, both stop cleanly (exit 0), and the database
 * passes PRAGMA integrity_check. Bounded: the whole test takes seconds.
 *
 * Mangled messages that happen to be valid are real requests (a submit
 * stores tasks, a forged worker takes credit): that is what CURVE is for.
 * So before the normal job, every job the garbage created is cancelled, and
 * the normal job's tasks have attempts to spare for forged workers that
 * vanish with their tasks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <zmq.h>

#include "farm_err.h"
#include "farm_json.h"
#include "farm_msg.h"
#include "farm_proto.h"
#include "harness.h"

#define S_FRONT_N 3000 /* requests to the front door */
#define S_PER_REQUEST 2 /* worker frames and report frames sent along with each */

static uint64_t s_rng;

static uint64_t s_rand(void) {
    uint64_t x = s_rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return s_rng = x;
}

static size_t s_below(size_t n) { return n ? (size_t)(s_rand() % n) : 0; }

/* ---- seeds: valid messages of every kind ----------------------------------- */

typedef struct {
    char *data;
    size_t len;
} s_buf_t;

typedef struct {
    s_buf_t *v;
    size_t n, cap;
} s_set_t;

static void s_add(s_set_t *s, const void *data, size_t len) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 32;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        assert_non_null(s->v);
    }
    s->v[s->n].data = malloc(len ? len : 1);
    assert_non_null(s->v[s->n].data);
    memcpy(s->v[s->n].data, data, len);
    s->v[s->n++].len = len;
}

static void s_set_free(s_set_t *s) {
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i].data);
    free(s->v);
}

static void s_add_json(s_set_t *s, const char *json) {
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    char err[128];
    if (farm_json_to_msgpack(json, strlen(json), &pk, err, sizeof err) != 0)
        fail_msg("seed %s: %s", json, err);
    s_add(s, b.data, b.size);
    msgpack_sbuffer_destroy(&b);
}

static void s_front_seeds(s_set_t *s) {
    static const char *const reqs[] = {
        "{\"op\":\"submit\",\"name\":\"g\",\"key\":\"k\",\"priority\":1,\"tasks\":[{\"type\":\"noop\"},"
        "{\"type\":\"sleep\",\"args\":{\"ms\":1},\"priority\":-3,\"max_attempts\":2,\"timeout_ms\":100,\"delay_ms\":5}]}",
        "{\"op\":\"submit\",\"tasks\":[{\"type\":\"exec\",\"args\":{\"argv\":[\"true\"],\"env\":{\"A\":\"b\"}}}]}",
        "{\"op\":\"submit\",\"tasks\":[{\"type\":\"ingest\",\"args\":{\"schema\":\"student\",\"records\":[{\"id\":1}]}}]}",
        "{\"op\":\"status\",\"task\":1}", "{\"op\":\"status\",\"job\":1}", "{\"op\":\"result\",\"task\":2}",
        "{\"op\":\"list\",\"job\":1,\"state\":\"pending\",\"type\":\"noop\",\"after\":0,\"limit\":10}",
        "{\"op\":\"jobs\",\"state\":\"running\",\"after\":0,\"limit\":5}", "{\"op\":\"cancel\",\"task\":1}",
        "{\"op\":\"cancel\",\"job\":1}", "{\"op\":\"retry\",\"job\":1}", "{\"op\":\"delete\",\"job\":1}",
        "{\"op\":\"stats\"}", "{\"op\":\"workers\"}", "{\"op\":\"health\",\"v\":1}",
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++)
        s_add_json(s, reqs[i]);
}

static void s_pack_done(s_set_t *s, msgpack_sbuffer *b) {
    s_add(s, b->data, b->size);
    b->size = 0;
}

static void s_worker_seeds(s_set_t *s) {
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    const char *types[] = {"noop", "sleep", "exec"};
    int64_t held[] = {1, 2, 3};
    farm_msg_hb_t hb = {.m = {"hb", 2}, .id = {"fake-1", 6}, .host = {"h", 1}, .pid = 42, .slots = 4, .free = 4,
                        .epoch = 1, .seq = 0, .state = {"alive", 5}};
    farm_pack_hb(&pk, &hb, types, 3, held, 3);
    s_pack_done(s, &b);
    hb.state = (farm_str_t){"draining", 8};
    hb.free = 0;
    farm_pack_hb(&pk, &hb, types, 1, NULL, 0);
    s_pack_done(s, &b);
    farm_pack_ready(&pk, 2, 1, 5, 0, 0, 0);
    s_pack_done(s, &b);
    msgpack_sbuffer_destroy(&b);
}

static void s_report_seeds(s_set_t *s) {
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    farm_pack_start(&pk, 1, 1, "fake-1", 1000);
    s_pack_done(s, &b);
    farm_pack_prog(&pk, 1, 1, 50, "half", 1001);
    s_pack_done(s, &b);
    static const char result[] = "\x81\xa1x\x01";
    farm_pack_result(&pk, 1, 1, "fake-1", true, false, result, sizeof result - 1, NULL, 1000, 1002);
    s_pack_done(s, &b);
    farm_pack_result(&pk, 2, 1, "fake-1", false, false, NULL, 0, "boom", 1000, 1002);
    s_pack_done(s, &b);
    static const char records[] = "\x91\x92\x00\xc4\x02\x81\x00";
    farm_pack_result_records(&pk, 3, 1, "fake-1", true, false, NULL, 0, NULL, 1, 2, records, sizeof records - 1);
    s_pack_done(s, &b);
    static const char body[] = "\x81\xa2id\x01";
    farm_pack_pub(&pk, "job", body, sizeof body - 1);
    s_pack_done(s, &b);
    farm_pack_pub(&pk, "ack/w1", body, sizeof body - 1);
    s_pack_done(s, &b);
    msgpack_sbuffer_destroy(&b);
}

/* ---- mutation ------------------------------------------------------------------- */

static const unsigned char s_magic[] = {0x00, 0x01, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2,
                                        0xc3, 0xc4, 0xc6, 0xcc, 0xcf, 0xd3, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf,
                                        0xe0, 0xff};

/* A new frame into out (capacity cap): random bytes, or a seed mutated. */
static size_t s_garbage(const s_set_t *seeds, unsigned char *out, size_t cap) {
    size_t n;
    if (s_below(8) == 0) { /* pure noise */
        n = s_below(s_below(10) == 0 ? cap : 64);
        for (size_t i = 0; i < n; i++)
            out[i] = (unsigned char)s_rand();
        return n;
    }
    const s_buf_t *b = &seeds->v[s_below(seeds->n)];
    n = b->len < cap ? b->len : cap;
    memcpy(out, b->data, n);
    int rounds = 1 + (int)s_below(4);
    for (int r = 0; r < rounds; r++) {
        switch (s_below(7)) {
        case 0: /* flip a bit */
            if (n)
                out[s_below(n)] ^= (unsigned char)(1u << s_below(8));
            break;
        case 1: /* an interesting byte */
            if (n)
                out[s_below(n)] = s_magic[s_below(sizeof s_magic)];
            break;
        case 2: /* cut */
            n = s_below(n + 1);
            break;
        case 3: /* insert random bytes */
            for (size_t k = s_below(8); k > 0 && n < cap; k--) {
                size_t at = s_below(n + 1);
                memmove(out + at + 1, out + at, n - at);
                out[at] = (unsigned char)s_rand();
                n++;
            }
            break;
        case 4: { /* repeat a slice */
            if (!n)
                break;
            size_t from = s_below(n), len = 1 + s_below(n - from);
            if (n + len <= cap) {
                memmove(out + n, out + from, len);
                n += len;
            }
            break;
        }
        case 5: { /* splice another seed's tail */
            const s_buf_t *o = &seeds->v[s_below(seeds->n)];
            size_t at = s_below(n + 1), from = s_below(o->len + 1);
            size_t len = o->len - from;
            if (at + len > cap)
                len = cap - at;
            memcpy(out + at, o->data + from, len);
            n = at + len;
            break;
        }
        default: /* a big number in a random place */
            if (n >= 9) {
                size_t at = s_below(n - 8);
                out[at] = 0xcf;
                for (int k = 1; k < 9; k++)
                    out[at + k] = 0xff;
            }
            break;
        }
    }
    return n;
}

/* ---- the test ------------------------------------------------------------------- */

static bool s_alive(h_t *h, int i) {
    int st;
    return h->procs[i].pid && waitpid(h->procs[i].pid, &st, WNOHANG) == 0;
}

static void s_check_reply(const void *data, size_t len, size_t i) {
    msgpack_zone z;
    assert_true(msgpack_zone_init(&z, 1024));
    msgpack_object o;
    farm_error_t e;
    if (farm_msg_unpack(data, len, &z, &o, &e) != 0)
        fail_msg("request %zu: the reply is not MessagePack: %s", i, e.message);
    const msgpack_object *ok = farm_msg_get(&o, "ok");
    if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN)
        fail_msg("request %zu: reply without a boolean ok", i);
    if (!ok->via.boolean) {
        const msgpack_object *c = farm_msg_get(farm_msg_get(&o, "error"), "code");
        if (!c || c->type != MSGPACK_OBJECT_STR)
            fail_msg("request %zu: error reply without a code", i);
    }
    msgpack_zone_destroy(&z);
}

static void test_garbage(void **state) {
    (void)state;
    h_t *h = h_new();
    const char *seed_env = getenv("FARM_GARBAGE_SEED");
    s_rng = seed_env ? strtoull(seed_env, NULL, 0) : 0x5eed5eed1234ull;
    if (!s_rng)
        s_rng = 1;
    fprintf(stderr, "garbage: seed 0x%llx\n", (unsigned long long)s_rng);
    int vent = h_start_vent(h, "--lost-after-ms", "800", "--backoff-base-ms", "50", "--max-frame", "65536", NULL);
    int sink = h_start_sink(h, NULL);
    int64_t end = h_now() + 10000;
    while (h_call(h, "{\"op\":\"health\"}") != 0)
        assert_true(h_now() < end);

    s_set_t front = {0}, worker = {0}, report = {0};
    s_front_seeds(&front);
    s_worker_seeds(&worker);
    s_report_seeds(&report);
    unsigned char *buf = malloc(70000);
    assert_non_null(buf);
    void *ctx = zmq_ctx_new();
    int linger = 0, hwm = 100000;
    void *req = zmq_socket(ctx, ZMQ_REQ);
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    void *push = zmq_socket(ctx, ZMQ_PUSH);
    void *socks[] = {req, dealer, push};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(zmq_setsockopt(socks[i], ZMQ_LINGER, &linger, sizeof linger), 0);
        assert_int_equal(zmq_setsockopt(socks[i], ZMQ_SNDHWM, &hwm, sizeof hwm), 0);
    }
    assert_int_equal(zmq_setsockopt(dealer, ZMQ_ROUTING_ID, "fake-1#0", 8), 0);
    assert_int_equal(zmq_connect(req, h->ep.front), 0);
    assert_int_equal(zmq_connect(dealer, h->ep.dispatch), 0);
    assert_int_equal(zmq_connect(push, h->ep.results), 0);

    int64_t t0 = h_now();
    size_t replies = 0, sent_w = 0, sent_r = 0;
    for (size_t i = 0; i < S_FRONT_N; i++) {
        size_t n = s_garbage(&front, buf, 70000);
        bool two = s_below(50) == 0;
        if (two)
            assert_true(zmq_send(req, buf, n / 2, ZMQ_SNDMORE) >= 0);
        assert_true(zmq_send(req, two ? buf + n / 2 : buf, two ? n - n / 2 : n, 0) >= 0);
        /* Interleave the other two sockets, so the head sees all three at once. */
        for (int k = 0; k < S_PER_REQUEST; k++) {
            n = s_garbage(&worker, buf, 2048);
            if (s_below(30) == 0 && zmq_send(dealer, buf, n / 2, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
                zmq_send(dealer, buf + n / 2, n - n / 2, ZMQ_DONTWAIT);
            else if (zmq_send(dealer, buf, n, ZMQ_DONTWAIT) >= 0)
                sent_w++;
            n = s_garbage(&report, buf, 4096);
            if (zmq_send(push, buf, n, ZMQ_DONTWAIT) >= 0)
                sent_r++;
        }
        zmq_pollitem_t it = {req, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 5000) != 1)
            fail_msg("request %zu got no reply (seed 0x%llx)", i, (unsigned long long)s_rng);
        zmq_msg_t m;
        zmq_msg_init(&m);
        assert_true(zmq_msg_recv(&m, req, 0) >= 0);
        assert_false(zmq_msg_more(&m));
        s_check_reply(zmq_msg_data(&m), zmq_msg_size(&m), i);
        zmq_msg_close(&m);
        replies++;
        /* Whatever the head sends the forged worker is read and dropped. */
        while (zmq_msg_init(&m) == 0 && zmq_msg_recv(&m, dealer, ZMQ_DONTWAIT) >= 0)
            zmq_msg_close(&m);
        zmq_msg_close(&m);
    }
    fprintf(stderr, "garbage: %zu front requests answered, %zu worker and %zu report frames, %lld ms\n", replies,
            sent_w, sent_r, (long long)(h_now() - t0));
    assert_true(sent_w > S_FRONT_N && sent_r > S_FRONT_N);
    /* Let the sockets empty before they close (LINGER 0 would drop the rest). */
    h_ok(h, "{\"op\":\"health\"}");
    for (int i = 0; i < 3; i++)
        zmq_close(socks[i]);
    zmq_ctx_term(ctx);
    free(buf);
    s_set_free(&front);
    s_set_free(&worker);
    s_set_free(&report);

    /* Both alive and answering. */
    assert_true(s_alive(h, vent));
    assert_true(s_alive(h, sink));
    const msgpack_object *r = h_ok(h, "{\"op\":\"health\"}");
    assert_string_equal(h_str(r, "status"), "ok");
    /* Cancel whatever the garbage managed to submit. */
    for (int page = 0; page < 100; page++) {
        r = h_ok(h, "{\"op\":\"jobs\",\"state\":\"pending\",\"limit\":1000}");
        const msgpack_object *jobs = h_get(r, "jobs");
        if (!jobs->via.array.size) {
            r = h_ok(h, "{\"op\":\"jobs\",\"state\":\"running\",\"limit\":1000}");
            jobs = h_get(r, "jobs");
            if (!jobs->via.array.size)
                break;
        }
        int64_t ids[1000];
        uint32_t nj = jobs->via.array.size;
        for (uint32_t i = 0; i < nj; i++)
            ids[i] = h_int(&jobs->via.array.ptr[i], "id");
        for (uint32_t i = 0; i < nj; i++)
            (void)h_call(h, "{\"op\":\"cancel\",\"job\":%lld}", (long long)ids[i]);
    }
    /* A normal job still runs to completion. */
    h_start_worker(h, "w1", 4, NULL);
    assert_true(h_wait_workers(h, 1, 10000));
    r = h_ok(h, "{\"op\":\"submit\",\"priority\":100,\"max_attempts\":20,\"tasks\":[{\"type\":\"noop\"},"
                "{\"type\":\"sleep\",\"args\":{\"ms\":10}},{\"type\":\"noop\"}]}");
    const char *st = h_wait_job(h, h_int(r, "job"), 30000);
    assert_string_equal(st, "completed");
    /* Clean stops, and a consistent database. */
    assert_int_equal(h_stop(h, vent, SIGTERM, 10000), 0);
    assert_int_equal(h_stop(h, sink, SIGTERM, 10000), 0);
    char out[4096];
    int rc = h_sh(out, sizeof out, "sqlite3 '%s' 'PRAGMA integrity_check;' 2>&1", h->db);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "ok\n");
    h_free(&h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
