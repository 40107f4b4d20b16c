/* Unit: farm_curve. Certificates are written and read back, bad ones are
 * refused with a reason, and the ZAP handler is exercised with real CURVE
 * sockets in one process: a key in the right folder gets through, a key in
 * the other folder or in none does not, a key added while running is taken
 * within the re-read interval, a removed one is dropped, and czmq never
 * touches the process's signal handlers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "farm_curve.h"
#include "farm_err.h"
#include "farm_time.h"

static char s_dir[64];

static int setup(void **state) {
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/farm-curve-XXXXXX");
    assert_non_null(mkdtemp(s_dir));
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void s_write(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void on_int(int sig) { (void)sig; }

static void test_keygen_and_read(void **state) {
    (void)state;
    struct sigaction sa = {0}, now;
    sa.sa_handler = on_int;
    assert_int_equal(sigaction(SIGINT, &sa, NULL), 0);
    char pub[FARM_CURVE_Z85], pub2[FARM_CURVE_Z85], sec[FARM_CURVE_Z85], why[600], dir[128], path[200];
    snprintf(dir, sizeof dir, "%s/a/b", s_dir);
    assert_int_equal(farm_curve_keygen(dir, "alice", false, pub, why, sizeof why), 0);
    assert_int_equal(strlen(pub), 40);
    snprintf(path, sizeof path, "%s/alice.cert", dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    char secret[220];
    snprintf(secret, sizeof secret, "%s_secret", path);
    assert_int_equal(stat(secret, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* Read back, with and without the secret half. */
    assert_int_equal(farm_curve_cert_read(path, true, pub2, sec, why, sizeof why), 0);
    assert_string_equal(pub, pub2);
    assert_int_equal(strlen(sec), 40);
    assert_int_equal(farm_curve_cert_read(secret, true, pub2, sec, why, sizeof why), 0);
    assert_string_equal(pub, pub2);
    /* A second keygen of the same name is refused, --force replaces. */
    assert_int_equal(farm_curve_keygen(dir, "alice", false, pub2, why, sizeof why), FARM_EBADREQ);
    assert_non_null(strstr(why, "already exists"));
    assert_int_equal(farm_curve_keygen(dir, "alice", true, pub2, why, sizeof why), 0);
    assert_string_not_equal(pub, pub2);
    /* Bad names. */
    assert_int_equal(farm_curve_keygen(dir, "../x", false, pub, why, sizeof why), FARM_EBADREQ);
    assert_int_equal(farm_curve_keygen(dir, "", false, pub, why, sizeof why), FARM_EBADREQ);
    /* The public half alone has no secret. */
    unlink(secret);
    assert_int_equal(farm_curve_cert_read(path, false, pub, sec, why, sizeof why), 0);
    assert_string_equal(sec, "");
    assert_int_equal(farm_curve_cert_read(path, true, pub, sec, why, sizeof why), FARM_EBADREQ);
    assert_non_null(strstr(why, "no secret key"));
    /* Garbage and bad Z85 are refused. */
    snprintf(path, sizeof path, "%s/junk.cert", s_dir);
    s_write(path, "hello\n");
    assert_int_equal(farm_curve_cert_read(path, false, pub, NULL, why, sizeof why), FARM_EBADREQ);
    s_write(path, "curve\n    public-key = \"~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~\"\n");
    assert_int_equal(farm_curve_cert_read(path, false, pub, NULL, why, sizeof why), FARM_EBADREQ);
    assert_non_null(strstr(why, "Z85"));
    assert_int_equal(farm_curve_cert_read("/nonexistent/x.cert", false, pub, NULL, why, sizeof why), FARM_EBADREQ);
    /* czmq left our signal handler alone. */
    assert_int_equal(sigaction(SIGINT, NULL, &now), 0);
    assert_ptr_equal(now.sa_handler, on_int);
}

static void test_client_setup(void **state) {
    (void)state;
    char pub[FARM_CURVE_Z85], spub[FARM_CURVE_Z85], why[600], cert[200], server[200];
    assert_int_equal(farm_curve_keygen(s_dir, "c", false, pub, why, sizeof why), 0);
    assert_int_equal(farm_curve_keygen(s_dir, "server", false, spub, why, sizeof why), 0);
    snprintf(cert, sizeof cert, "%s/c.cert", s_dir);
    snprintf(server, sizeof server, "%s/server.cert", s_dir);
    unsetenv("FARM_CURVE_SERVER");
    unsetenv("FARM_CURVE_CERT");
    assert_int_equal(farm_curve_client_setup(NULL, NULL, why, sizeof why), 0);
    assert_null(farm_curve_client_keys());
    assert_int_equal(farm_curve_client_setup(spub, NULL, why, sizeof why), FARM_EBADREQ);
    assert_non_null(strstr(why, "--curve-cert"));
    assert_int_equal(farm_curve_client_setup(NULL, cert, why, sizeof why), FARM_EBADREQ);
    assert_non_null(strstr(why, "--curve-server"));
    assert_int_equal(farm_curve_client_setup("not-a-key", cert, why, sizeof why), FARM_EBADREQ);
    /* A key as text, or the server's certificate file. */
    assert_int_equal(farm_curve_client_setup(spub, cert, why, sizeof why), 0);
    assert_non_null(farm_curve_client_keys());
    assert_string_equal(farm_curve_client_keys()->server_key, spub);
    assert_string_equal(farm_curve_client_keys()->public_key, pub);
    assert_int_equal(farm_curve_client_setup(server, cert, why, sizeof why), 0);
    assert_string_equal(farm_curve_client_keys()->server_key, spub);
    /* The environment fills in what flags leave out. */
    setenv("FARM_CURVE_SERVER", spub, 1);
    setenv("FARM_CURVE_CERT", cert, 1);
    assert_int_equal(farm_curve_client_setup(NULL, NULL, why, sizeof why), 0);
    assert_non_null(farm_curve_client_keys());
    unsetenv("FARM_CURVE_SERVER");
    unsetenv("FARM_CURVE_CERT");
    assert_int_equal(farm_curve_client_setup(NULL, NULL, why, sizeof why), 0);
    assert_null(farm_curve_client_keys());
}

/* One request on a fresh REQ with keys k to ep; true when answered in ms. */
static bool s_ask(void *ctx, const char *ep, const farm_curve_keys_t *k, int ms) {
    void *req = zmq_socket(ctx, ZMQ_REQ);
    int linger = 0;
    assert_int_equal(zmq_setsockopt(req, ZMQ_LINGER, &linger, sizeof linger), 0);
    assert_int_equal(farm_curve_keys_apply(k, req), 0);
    assert_int_equal(zmq_connect(req, ep), 0);
    assert_int_equal(zmq_send(req, "ping", 4, 0), 4);
    zmq_pollitem_t it = {req, 0, ZMQ_POLLIN, 0};
    bool got = zmq_poll(&it, 1, ms) == 1;
    if (got) {
        char buf[8];
        assert_int_equal(zmq_recv(req, buf, sizeof buf, 0), 4);
    }
    zmq_close(req);
    return got;
}

typedef struct {
    void *rep[3];
    volatile int stop;
} s_echo_t;

/* Answer on the three server sockets until stopped (runs in the test's thread via polling). */
static void s_serve(s_echo_t *e, int ms) {
    int64_t end = farm_mono_ms() + ms;
    while (farm_mono_ms() < end) {
        zmq_pollitem_t it[3] = {{e->rep[0], 0, ZMQ_POLLIN, 0}, {e->rep[1], 0, ZMQ_POLLIN, 0}, {e->rep[2], 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(it, 3, 5) <= 0)
            return;
        for (int i = 0; i < 3; i++)
            if (it[i].revents & ZMQ_POLLIN) {
                char buf[8];
                if (zmq_recv(e->rep[i], buf, sizeof buf, 0) >= 0)
                    zmq_send(e->rep[i], "pong", 4, 0);
            }
    }
}

#include <pthread.h>
#include <stdatomic.h>
typedef struct {
    void *ctx;
    const char *ep;
    farm_curve_keys_t k;
    int ms;
    bool got;
    atomic_int done; /* the asking thread has its answer (or gave up) */
} s_ask_t;

static void *s_ask_run(void *arg) {
    s_ask_t *a = arg;
    a->got = s_ask(a->ctx, a->ep, &a->k, a->ms);
    atomic_store(&a->done, 1);
    return NULL;
}

/* Ask ep with k from a thread while serving; returns whether answered. */
static bool s_try(void *ctx, s_echo_t *e, const char *ep, const farm_curve_keys_t *k, int ms) {
    s_ask_t a = {ctx, ep, *k, ms, false, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, s_ask_run, &a), 0);
    int64_t end = farm_mono_ms() + ms + 200;
    while (farm_mono_ms() < end && !atomic_load(&a.done))
        s_serve(e, 20);
    pthread_join(t, NULL);
    return a.got;
}

static void test_zap(void **state) {
    (void)state;
    char why[600], spub[FARM_CURVE_Z85], cpub[FARM_CURVE_Z85], wpub[FARM_CURVE_Z85], xpub[FARM_CURVE_Z85];
    char clients[128], workers[128], other[128], path[256];
    snprintf(clients, sizeof clients, "%s/clients", s_dir);
    snprintf(workers, sizeof workers, "%s/workers", s_dir);
    snprintf(other, sizeof other, "%s/elsewhere", s_dir);
    assert_int_equal(farm_curve_keygen(s_dir, "server", false, spub, why, sizeof why), 0);
    assert_int_equal(farm_curve_keygen(clients, "c1", false, cpub, why, sizeof why), 0);
    assert_int_equal(farm_curve_keygen(workers, "w1", false, wpub, why, sizeof why), 0);
    assert_int_equal(farm_curve_keygen(other, "x", false, xpub, why, sizeof why), 0);
    /* Secret halves stay with their owners; the head keeps public ones. */
    farm_curve_keys_t kc, kw, kx;
    snprintf(path, sizeof path, "%s/c1.cert", clients);
    assert_int_equal(farm_curve_keys_load(&kc, spub, path, why, sizeof why), 0);
    snprintf(path, sizeof path, "%s/w1.cert", workers);
    assert_int_equal(farm_curve_keys_load(&kw, spub, path, why, sizeof why), 0);
    snprintf(path, sizeof path, "%s/x.cert", other);
    assert_int_equal(farm_curve_keys_load(&kx, spub, path, why, sizeof why), 0);

    void *ctx = zmq_ctx_new();
    assert_non_null(ctx);
    farm_curve_server_t *a = farm_curve_server_new(ctx, "/nonexistent-dir", "test", why, sizeof why);
    assert_null(a);
    a = farm_curve_server_new(ctx, s_dir, "test", why, sizeof why);
    assert_non_null(a);
    /* A second handler on one context cannot bind. */
    farm_curve_server_t *b = farm_curve_server_new(ctx, s_dir, "test", why, sizeof why);
    assert_null(b);
    s_echo_t e = {0};
    const char *domains[3] = {FARM_CURVE_CLIENTS, FARM_CURVE_WORKERS, FARM_CURVE_FEED};
    /* Not inproc: libzmq runs no security handshake there. */
    char ep0[128], ep1[128], ep2[128];
    snprintf(ep0, sizeof ep0, "ipc://%s/clients.sock", s_dir);
    snprintf(ep1, sizeof ep1, "ipc://%s/workers.sock", s_dir);
    snprintf(ep2, sizeof ep2, "ipc://%s/feed.sock", s_dir);
    const char *eps[3] = {ep0, ep1, ep2};
    for (int i = 0; i < 3; i++) {
        e.rep[i] = zmq_socket(ctx, ZMQ_REP);
        int linger = 0;
        zmq_setsockopt(e.rep[i], ZMQ_LINGER, &linger, sizeof linger);
        assert_int_equal(farm_curve_server_apply(a, e.rep[i], domains[i]), 0);
        assert_int_equal(zmq_bind(e.rep[i], eps[i]), 0);
    }
    assert_int_equal(farm_curve_server_apply(a, e.rep[0], "nope"), -EINVAL);
    /* clients/ for the front door, workers/ for dispatch, both for the feed. */
    assert_true(s_try(ctx, &e, eps[0], &kc, 1000));
    assert_false(s_try(ctx, &e, eps[0], &kw, 300));
    assert_false(s_try(ctx, &e, eps[0], &kx, 300));
    assert_true(s_try(ctx, &e, eps[1], &kw, 1000));
    assert_false(s_try(ctx, &e, eps[1], &kc, 300));
    assert_true(s_try(ctx, &e, eps[2], &kc, 1000));
    assert_true(s_try(ctx, &e, eps[2], &kw, 1000));
    assert_false(s_try(ctx, &e, eps[2], &kx, 300));
    /* The head's own key goes everywhere. */
    assert_true(s_try(ctx, &e, eps[1], farm_curve_server_self(a), 1000));
    /* A key copied in while running is taken without a restart ... */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cp '%s/x.cert' '%s/x.cert'", other, clients);
    assert_int_equal(system(cmd), 0);
    int64_t t0 = farm_mono_ms();
    bool in = false;
    while (!in && farm_mono_ms() - t0 < 3000)
        in = s_try(ctx, &e, eps[0], &kx, 300);
    assert_true(in);
    /* ... and a removed one is dropped. */
    snprintf(path, sizeof path, "%s/x.cert", clients);
    assert_int_equal(unlink(path), 0);
    t0 = farm_mono_ms();
    bool out = false;
    while (!out && farm_mono_ms() - t0 < 3000)
        out = !s_try(ctx, &e, eps[0], &kx, 300);
    assert_true(out);
    /* Plain (NULL mechanism) clients get nothing. */
    void *req = zmq_socket(ctx, ZMQ_REQ);
    int linger = 0;
    zmq_setsockopt(req, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_connect(req, eps[0]), 0);
    assert_int_equal(zmq_send(req, "ping", 4, 0), 4);
    s_serve(&e, 300);
    zmq_pollitem_t it = {req, 0, ZMQ_POLLIN, 0};
    assert_int_equal(zmq_poll(&it, 1, 100), 0);
    zmq_close(req);
    for (int i = 0; i < 3; i++)
        zmq_close(e.rep[i]);
    farm_curve_server_destroy(&a);
    farm_curve_server_destroy(&a);
    assert_null(a);
    assert_int_equal(zmq_ctx_term(ctx), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keygen_and_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_setup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zap, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
