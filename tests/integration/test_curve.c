/* Integration: CURVE (issue 7). A head started with --curve DIR serves only
 * the keys in DIR/clients (front door, feed) and DIR/workers (dispatch,
 * results, feed); anyone else gets nothing through and is logged; a key
 * copied into the folder works within about a second, without a restart.
 * Keys are made with `farm keygen`, as an operator would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "farm_client.h"
#include "farm_curve.h"
#include "farm_err.h"
#include "farm_proto.h"
#include "harness.h"

typedef struct {
    h_t *h;
    char keys[200];    /* the head's DIR */
    char outside[200]; /* pairs the head does not know */
    char server[260];  /* DIR/server.cert */
    int vent, sink;    /* process slots */
} s_t;

static const char *s_path(const char *dir, const char *name) {
    static char buf[4][300];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, sizeof buf[0], "%s/%s.cert", dir, name);
    return b;
}

/* `farm keygen NAME --dir DIR` through the real command. */
static void s_keygen(const char *dir, const char *name) {
    char out[1024];
    int st = h_sh(out, sizeof out, "%s keygen --dir '%s' %s 2>&1", h_bin("farm"), dir, name);
    if (st != 0)
        fail_msg("farm keygen %s: exit %d: %s", name, st, out);
    assert_non_null(strstr(out, "public-key: "));
}

static farm_curve_keys_t s_keys(s_t *s, const char *cert) {
    farm_curve_keys_t k;
    char why[600];
    if (farm_curve_keys_load(&k, s->server, cert, why, sizeof why) != 0)
        fail_msg("keys %s: %s", cert, why);
    return k;
}

/* Is text in the log of process slot i (within ms)? */
static bool s_log_has(h_t *h, int i, const char *text, int ms) {
    int64_t end = h_now() + ms;
    do {
        FILE *f = fopen(h->procs[i].log, "r");
        if (f) {
            char line[2048];
            bool found = false;
            while (!found && fgets(line, sizeof line, f))
                found = strstr(line, text) != NULL;
            fclose(f);
            if (found)
                return true;
        }
        struct timespec ts = {0, 50 * 1000000}; /* poll interval */
        nanosleep(&ts, NULL);
    } while (h_now() < end);
    return false;
}

static int setup(void **state) {
    s_t *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->h = h_new();
    snprintf(s->keys, sizeof s->keys, "%s/curve", s->h->dir);
    snprintf(s->outside, sizeof s->outside, "%s/outside", s->h->dir);
    snprintf(s->server, sizeof s->server, "%s/server.cert", s->keys);
    s_keygen(s->keys, "server");
    char d[260];
    snprintf(d, sizeof d, "%s/clients", s->keys);
    s_keygen(d, "alice");
    snprintf(d, sizeof d, "%s/workers", s->keys);
    s_keygen(d, "w1");
    s_keygen(s->outside, "mallory");
    s_keygen(s->outside, "eve");
    s->vent = h_start_vent(s->h, "--curve", s->keys, "--lost-after-ms", "2000", NULL);
    s->sink = h_start_sink(s->h, "--curve", s->keys, NULL);
    /* The harness's client speaks as alice. */
    char cert[300];
    snprintf(cert, sizeof cert, "%s/clients/alice.cert", s->keys);
    farm_curve_keys_t k = s_keys(s, cert);
    assert_int_equal(farm_client_set_curve(s->h->client, &k), 0);
    int64_t end = h_now() + 10000;
    while (h_call(s->h, "{\"op\":\"health\"}") != 0)
        assert_true(h_now() < end);
    *state = s;
    return 0;
}

static int teardown(void **state) {
    s_t *s = *state;
    h_free(&s->h);
    free(s);
    return 0;
}

static int s_start_worker(s_t *s, const char *name, const char *cert) {
    return h_start_worker(s->h, name, 2, "--curve-server", s->server, "--curve-cert", cert, NULL);
}

/* A client (fresh socket, short timeout) with keys k (NULL: plain). */
static int s_health_as(s_t *s, const farm_curve_keys_t *k, farm_error_t *e) {
    farm_client_t *c = farm_client_new(s->h->ep.front, 700, 0);
    assert_non_null(c);
    if (k)
        assert_int_equal(farm_client_set_curve(c, k), 0);
    msgpack_zone z;
    assert_true(msgpack_zone_init(&z, 1024));
    msgpack_object r;
    static const char req[] = "\x81\xa2op\xa6health";
    int rc = farm_client_call(c, req, sizeof req - 1, &z, &r, e);
    msgpack_zone_destroy(&z);
    farm_client_destroy(&c);
    return rc;
}

static void test_authorised(void **state) {
    s_t *s = *state;
    h_t *h = s->h;
    int w1 = s_start_worker(s, "w1", s_path(s->keys, "workers/w1"));
    assert_true(h_wait_workers(h, 1, 10000));
    const msgpack_object *r = h_ok(h, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"noop\"},{\"type\":\"sleep\",\"args\":{\"ms\":20}}]}");
    int64_t job = h_int(r, "job");
    /* Results travel worker -> sink (workers domain), acks sink -> worker (feed). */
    assert_string_equal(h_wait_job(h, job, 10000), "completed");
    /* The farm command, with flags and with the environment. */
    char out[4096];
    int st = h_sh(out, sizeof out, "%s --server %s --curve-server '%s' --curve-cert '%s' --timeout 2000 health 2>&1",
                  h_bin("farm"), h->ep.front, s->server, s_path(s->keys, "clients/alice"));
    if (st != 0)
        fail_msg("farm health with CURVE: exit %d: %s", st, out);
    char key[FARM_CURVE_Z85], why[600];
    assert_int_equal(farm_curve_cert_read(s->server, false, key, NULL, why, sizeof why), 0);
    st = h_sh(out, sizeof out,
              "FARM_CURVE_SERVER='%s' FARM_CURVE_CERT='%s' %s --server %s --timeout 2000 --json status --job %lld 2>&1",
              key, s_path(s->keys, "clients/alice"), h_bin("farm"), h->ep.front, (long long)job);
    if (st != 0)
        fail_msg("farm status with CURVE from the environment: exit %d: %s", st, out);
    assert_non_null(strstr(out, "\"completed\""));
    /* Half a configuration is a usage error, before anything is sent. */
    st = h_sh(out, sizeof out, "%s --server %s --curve-server '%s' health 2>&1", h_bin("farm"), h->ep.front, s->server);
    assert_int_equal(st, 2);
    assert_non_null(strstr(out, "--curve-cert"));
    /* A refused key or no key at all: no reply, exit 3 (timeout). */
    st = h_sh(out, sizeof out, "%s --server %s --curve-server '%s' --curve-cert '%s' --timeout 500 --retries 0 health 2>&1",
              h_bin("farm"), h->ep.front, s->server, s_path(s->outside, "mallory"));
    assert_int_equal(st, 3);
    assert_non_null(strstr(out, "CURVE"));
    /* Everything stops cleanly, ZAP handler and handshake watches included. */
    assert_int_equal(h_stop(h, w1, SIGTERM, 10000), 0);
    assert_int_equal(h_stop(h, s->vent, SIGTERM, 10000), 0);
    assert_int_equal(h_stop(h, s->sink, SIGTERM, 10000), 0);
}

static void test_unauthorised_client(void **state) {
    s_t *s = *state;
    h_t *h = s->h;
    farm_error_t e;
    farm_curve_keys_t alice = s_keys(s, s_path(s->keys, "clients/alice"));
    farm_curve_keys_t mallory = s_keys(s, s_path(s->outside, "mallory"));
    farm_curve_keys_t w1 = s_keys(s, s_path(s->keys, "workers/w1"));
    assert_int_equal(s_health_as(s, &alice, &e), 0);
    /* Another key, no key, a worker's key at the front door: no reply. */
    assert_int_equal(s_health_as(s, &mallory, &e), FARM_ETIMEOUT);
    assert_non_null(strstr(e.message, "CURVE"));
    assert_int_equal(s_health_as(s, NULL, &e), FARM_ETIMEOUT);
    assert_int_equal(s_health_as(s, &w1, &e), FARM_ETIMEOUT);
    /* Right key pair but the wrong server key: no reply either. */
    farm_curve_keys_t wrong = alice;
    memcpy(wrong.server_key, mallory.public_key, sizeof wrong.server_key);
    assert_int_equal(s_health_as(s, &wrong, &e), FARM_ETIMEOUT);
    /* The head logs the refusal with the domain and the key; peers that show
     * no key (no CURVE, wrong server key) with the domain and the endpoint. */
    assert_true(s_log_has(h, s->vent, "event=curve-refused domain=clients endpoint=tcp://127.0.0.1:", 3000));
    char line[200];
    snprintf(line, sizeof line, "event=curve-refused domain=clients address=127.0.0.1 key=%s", mallory.public_key);
    assert_true(s_log_has(h, s->vent, line, 3000));
    snprintf(line, sizeof line, "domain=clients address=127.0.0.1 key=%s", w1.public_key);
    assert_true(s_log_has(h, s->vent, line, 3000));
    /* Nothing of them reached the front door: still no job, still answering. */
    const msgpack_object *r = h_ok(h, "{\"op\":\"stats\"}");
    assert_int_equal(h_int(r, "jobs"), 0);

    /* The feed: alice hears the stats; mallory hears nothing. */
    void *ctx = zmq_ctx_new();
    void *subs[2];
    const farm_curve_keys_t *ks[2] = {&alice, &mallory};
    for (int i = 0; i < 2; i++) {
        subs[i] = zmq_socket(ctx, ZMQ_SUB);
        int linger = 0;
        zmq_setsockopt(subs[i], ZMQ_LINGER, &linger, sizeof linger);
        assert_int_equal(farm_curve_keys_apply(ks[i], subs[i]), 0);
        assert_int_equal(zmq_setsockopt(subs[i], ZMQ_SUBSCRIBE, "stats", 5), 0);
        assert_int_equal(zmq_connect(subs[i], h->ep.feed), 0);
    }
    int got[2] = {0, 0};
    /* Stats come every second: wait for alice's, and as long again for mallory's. */
    int64_t t0 = h_now(), end = t0 + 3500;
    while (h_now() < end && !(got[0] > 0 && h_now() - t0 > 1500)) {
        zmq_pollitem_t it[2] = {{subs[0], 0, ZMQ_POLLIN, 0}, {subs[1], 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(it, 2, 100) <= 0)
            continue;
        for (int i = 0; i < 2; i++)
            if (it[i].revents & ZMQ_POLLIN) {
                zmq_msg_t m;
                zmq_msg_init(&m);
                if (zmq_msg_recv(&m, subs[i], 0) >= 0 && !zmq_msg_more(&m))
                    got[i]++;
                else if (zmq_msg_more(&m)) {
                    zmq_msg_t b;
                    zmq_msg_init(&b);
                    zmq_msg_recv(&b, subs[i], 0);
                    zmq_msg_close(&b);
                    got[i]++;
                }
                zmq_msg_close(&m);
            }
    }
    assert_true(got[0] > 0);
    assert_int_equal(got[1], 0);
    snprintf(line, sizeof line, "domain=feed address=127.0.0.1 key=%s", mallory.public_key);
    assert_true(s_log_has(h, s->sink, line, 3000));
    for (int i = 0; i < 2; i++)
        zmq_close(subs[i]);
    zmq_ctx_term(ctx);
}

static void test_unauthorised_worker(void **state) {
    s_t *s = *state;
    h_t *h = s->h;
    /* eve's key is nowhere; alice's key is a client's, not a worker's. */
    s_start_worker(s, "eve", s_path(s->outside, "eve"));
    int alice_w = h->nprocs;
    s_start_worker(s, "alice-w", s_path(s->keys, "clients/alice"));
    const msgpack_object *r = h_ok(h, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"noop\"}]}");
    int64_t task = h_int(r, "tasks.0");
    farm_curve_keys_t eve = s_keys(s, s_path(s->outside, "eve"));
    char line[200];
    snprintf(line, sizeof line, "event=curve-refused domain=workers address=127.0.0.1 key=%s", eve.public_key);
    assert_true(s_log_has(h, s->vent, line, 5000));
    assert_true(s_log_has(h, s->sink, "event=curve-refused domain=workers", 5000));
    /* The worker says why it gets nothing. */
    int eve_slot = alice_w - 1;
    assert_true(s_log_has(h, eve_slot, "event=refused peer=ventilator", 5000));
    assert_true(s_log_has(h, alice_w, "event=refused peer=ventilator", 5000));
    /* No task reaches them: it stays pending, no worker is known. */
    r = h_ok(h, "{\"op\":\"workers\"}");
    assert_int_equal(h_get(r, "workers")->via.array.size, 0);
    r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)task);
    assert_string_equal(h_str(r, "task.state"), "pending");
    assert_int_equal(h_int(r, "task.attempts"), 0);

    /* A result pushed with eve's key is not accepted by the sink. */
    void *ctx = zmq_ctx_new();
    void *push = zmq_socket(ctx, ZMQ_PUSH);
    int linger = 0;
    zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(farm_curve_keys_apply(&eve, push), 0);
    assert_int_equal(zmq_connect(push, h->ep.results), 0);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    farm_pack_start(&pk, task, 1, "eve", 1);
    zmq_send(push, b.data, b.size, ZMQ_DONTWAIT);
    b.size = 0;
    farm_pack_result(&pk, task, 1, "eve", true, false, NULL, 0, NULL, 1, 2);
    zmq_send(push, b.data, b.size, ZMQ_DONTWAIT);
    msgpack_sbuffer_destroy(&b);
    struct timespec ts = {1, 0}; /* time for a delivery that must not happen */
    nanosleep(&ts, NULL);
    r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)task);
    assert_string_equal(h_str(r, "task.state"), "pending");
    zmq_close(push);
    zmq_ctx_term(ctx);

    /* The authorised worker then runs it. */
    s_start_worker(s, "w1", s_path(s->keys, "workers/w1"));
    assert_true(h_wait_task(h, task, "completed", 10000));
    r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)task);
    assert_string_equal(h_str(r, "task.worker"), "w1");
}

static void test_key_added_live(void **state) {
    s_t *s = *state;
    h_t *h = s->h;
    farm_error_t e;
    farm_curve_keys_t mallory = s_keys(s, s_path(s->outside, "mallory"));
    assert_int_equal(s_health_as(s, &mallory, &e), FARM_ETIMEOUT);
    /* Copy only the public half into clients/, as an operator would. */
    char out[512];
    assert_int_equal(h_sh(out, sizeof out, "cp '%s' '%s/clients/'", s_path(s->outside, "mallory"), s->keys), 0);
    int64_t t0 = h_now();
    int rc;
    while ((rc = s_health_as(s, &mallory, &e)) != 0 && h_now() - t0 < 5000)
        ;
    assert_int_equal(rc, 0);
    assert_true(h_now() - t0 < 3500);
    assert_true(s_log_has(h, s->vent, "event=curve-keys domain=clients", 1000));
    /* And removed again: refused again, still without a restart. */
    char p[300];
    snprintf(p, sizeof p, "%s/clients/mallory.cert", s->keys);
    assert_int_equal(unlink(p), 0);
    t0 = h_now();
    while ((rc = s_health_as(s, &mallory, &e)) == 0 && h_now() - t0 < 5000)
        ;
    assert_int_equal(rc, FARM_ETIMEOUT);
    /* The same for a worker key. */
    s_start_worker(s, "eve", s_path(s->outside, "eve"));
    assert_int_equal(h_sh(out, sizeof out, "cp '%s' '%s/workers/'", s_path(s->outside, "eve"), s->keys), 0);
    assert_true(h_wait_workers(h, 1, 10000));
}

/* With CURVE the head may bind every address without --insecure. */
static void test_curve_binds_any(void **state) {
    s_t *s = *state;
    h_t *h = s->h;
    h_stop(h, s->vent, SIGTERM, 10000);
    char front[64];
    const char *port = strrchr(h->ep.front, ':') + 1;
    snprintf(front, sizeof front, "tcp://0.0.0.0:%s", port);
    s->vent = h_start(h, "farm-ventilator", "vent", "--db", h->db, "--front", front, "--curve", s->keys, NULL);
    int64_t end = h_now() + 10000;
    while (h_call(h, "{\"op\":\"health\"}") != 0)
        assert_true(h_now() < end);
    assert_true(s_log_has(h, s->vent, "curve=on", 1000));
    /* A head without its own certificate refuses to start. */
    char bad[260];
    snprintf(bad, sizeof bad, "%s/empty", h->dir);
    char out[2048];
    int st = h_sh(out, sizeof out, "mkdir -p '%s' && %s --db '%s/x.db' --front tcp://127.0.0.1:1 --curve '%s' 2>&1", bad,
                  h_bin("farm-ventilator"), h->dir, bad);
    assert_int_equal(st, 2);
    assert_non_null(strstr(out, "server.cert"));
    st = h_sh(out, sizeof out, "%s --db '%s/x.db' --results tcp://127.0.0.1:1 --feed tcp://127.0.0.1:2 --curve '%s' 2>&1",
              h_bin("farm-sink"), h->dir, bad);
    assert_int_equal(st, 2);
    assert_non_null(strstr(out, "farm keygen server"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_authorised, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unauthorised_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unauthorised_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_added_live, setup, teardown),
        cmocka_unit_test_setup_teardown(test_curve_binds_any, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
