/* Integration: plugins loaded by real workers (farm-worker --plugin).
 *
 * The plugins are built by tests/CMakeLists.txt next to this program:
 * example_plugin.so (the documented example), bad_no_entry.so and
 * bad_version.so (refused at load) and bad_misbehave.so, whose types pack
 * garbage, pack two values, fail silently or abort. A refusal must stop the
 * worker with exit status 2 and a message that says why; a misbehaving
 * handler must fail its attempt with a clear error and leave the worker
 * serving; a crashing one takes down only its worker, and its task is
 * retried on another worker and ends failed once max_attempts are spent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "farm_err.h"
#include "harness.h"

#define T_PLUGIN(name) FARM_PLUGIN_DIR "/" name ".so"

static h_t *t_farm(int nworkers, const char *const *plugins) {
    h_t *h = h_new();
    h_start_vent(h, "--lost-after-ms", "1000", "--backoff-base-ms", "50", NULL);
    h_start_sink(h, NULL);
    for (int i = 0; i < nworkers; i++) {
        char name[16];
        snprintf(name, sizeof name, "w%d", i + 1);
        h_start_worker(h, name, 1, "--plugin", plugins[0], "--plugin", plugins[1], NULL);
    }
    h_wait_up(h, nworkers);
    return h;
}

static const char *const s_both[] = {T_PLUGIN("example_plugin"), T_PLUGIN("bad_misbehave")};

static int setup(void **state) {
    *state = t_farm(1, s_both);
    return 0;
}

static int teardown(void **state) {
    h_t *h = *state;
    h_free(&h);
    return 0;
}

static bool t_has_type(const msgpack_object *types, const char *t) {
    for (uint32_t i = 0; types && i < types->via.array.size; i++) {
        const msgpack_object *o = &types->via.array.ptr[i];
        if (o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(t) && memcmp(o->via.str.ptr, t, strlen(t)) == 0)
            return true;
    }
    return false;
}

static void test_example_plugin(void **state) {
    h_t *h = *state;
    /* The worker advertises the plugins' types after the built-ins. */
    const msgpack_object *r = h_ok(h, "{\"op\":\"workers\"}");
    const msgpack_object *types = h_get(r, "workers.0.types");
    const char *want[] = {"noop", "sleep", "ingest", "interest", "text", "example.reverse", "bad.garbage", "bad.crash"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!t_has_type(types, want[i]))
            fail_msg("type %s not advertised", want[i]);
    r = h_ok(h, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"example.reverse\",\"args\":{\"text\":\"stressed\"}}]}");
    int64_t job = h_int(r, "job"), task = h_int(r, "tasks.0");
    assert_string_equal(h_wait_job(h, job, 10000), "completed");
    r = h_ok(h, "{\"op\":\"result\",\"task\":%lld}", (long long)task);
    assert_string_equal(h_str(r, "result.reversed"), "desserts");
    assert_int_equal(h_int(r, "result.length"), 8);
    r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)task);
    assert_int_equal(h_int(r, "task.progress"), 100);
    /* Bad args are the plugin's to refuse, as an error result. */
    r = h_ok(h, "{\"op\":\"submit\",\"max_attempts\":1,\"tasks\":[{\"type\":\"example.reverse\",\"args\":{\"text\":5}}]}");
    job = h_int(r, "job");
    task = h_int(r, "tasks.0");
    assert_string_equal(h_wait_job(h, job, 10000), "failed");
    r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)task);
    assert_string_equal(h_str(r, "task.error"), "example.reverse: args.text must be a string");
}

static void test_misbehaving_handlers(void **state) {
    h_t *h = *state;
    const msgpack_object *r = h_ok(h, "{\"op\":\"submit\",\"max_attempts\":1,\"tasks\":[{\"type\":\"bad.garbage\"},"
                                      "{\"type\":\"bad.two\"},{\"type\":\"bad.fail\"}]}");
    int64_t job = h_int(r, "job"), first = h_int(r, "tasks.0");
    assert_string_equal(h_wait_job(h, job, 10000), "failed");
    const char *want[] = {"bad.garbage: the handler did not pack exactly one result value",
                          "bad.two: the handler did not pack exactly one result value", "bad.fail failed"};
    for (int i = 0; i < 3; i++) {
        r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)(first + i));
        assert_string_equal(h_str(r, "task.state"), "failed");
        assert_string_equal(h_str(r, "task.error"), want[i]);
        assert_int_equal(h_int(r, "task.attempts"), 1);
    }
    /* The worker is still there and still works. */
    r = h_ok(h, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"bad.noop\"},{\"type\":\"noop\"}]}");
    assert_string_equal(h_wait_job(h, h_int(r, "job"), 10000), "completed");
    r = h_ok(h, "{\"op\":\"workers\"}");
    assert_string_equal(h_str(r, "workers.0.state"), "alive");
}

/* Run farm-worker with args; expect exit status 2 and msg in its output. */
static void t_refused(const char *args, const char *msg) {
    char out[4096];
    int st = h_sh(out, sizeof out, "'%s' %s --list-types 2>&1", h_bin("farm-worker"), args);
    if (st != 2)
        fail_msg("farm-worker %s exited %d, not 2: %s", args, st, out);
    if (!strstr(out, msg))
        fail_msg("farm-worker %s said '%s', not '%s'", args, out, msg);
    assert_null(strstr(out, "noop\n")); /* it listed nothing */
}

static void test_refusals(void **state) {
    (void)state;
    t_refused("--plugin " T_PLUGIN("bad_no_entry"),
              "--plugin " T_PLUGIN("bad_no_entry") " refused: not a farm plugin: no entry point farm_plugin_api_version");
    t_refused("--plugin " T_PLUGIN("bad_version"),
              "refused: plugin API version mismatch: the plugin was built for version 42, this worker speaks "
              "version 1");
    t_refused("--plugin /nonexistent/plugin.so", "--plugin /nonexistent/plugin.so refused: cannot load:");
    t_refused("--plugin " T_PLUGIN("example_plugin") " --plugin " T_PLUGIN("example_plugin"),
              "refused: handler 0: type \"example.reverse\" is already offered by this worker");
    /* A good plugin after the built-ins. */
    char out[4096];
    int st = h_sh(out, sizeof out, "'%s' --plugin %s --list-types 2>/dev/null", h_bin("farm-worker"),
                  T_PLUGIN("example_plugin"));
    assert_int_equal(st, 0);
    assert_string_equal(out, "noop\nsleep\ningest\ninterest\ntext\nexample.reverse\n");
}

/* A handler that aborts kills its worker; the ventilator declares it lost,
 * retries the task on the other worker, which dies too, and the task fails
 * for good after max_attempts = 2. */
static void test_crash_is_poison(void **state) {
    (void)state;
    h_t *h = t_farm(2, s_both);
    const msgpack_object *r = h_ok(h, "{\"op\":\"submit\",\"max_attempts\":2,\"tasks\":[{\"type\":\"bad.crash\"}]}");
    int64_t job = h_int(r, "job"), task = h_int(r, "tasks.0");
    assert_string_equal(h_wait_job(h, job, 30000), "failed");
    r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)task);
    assert_int_equal(h_int(r, "task.attempts"), 2);
    assert_non_null(strstr(h_str(r, "task.error"), "lost"));
    const msgpack_object *hist = h_get(r, "task.history");
    assert_int_equal(hist->via.array.size, 2);
    char first[64];
    snprintf(first, sizeof first, "%s", h_str(hist, "0.worker"));
    assert_string_not_equal(first, h_str(hist, "1.worker"));
    /* Both workers died of the abort, nothing else did. */
    for (int i = 0; i < h->nprocs; i++) {
        if (strncmp(h->procs[i].name, "w", 1) != 0)
            continue;
        assert_int_equal(h_stop(h, i, SIGKILL, 5000), 128 + SIGABRT);
    }
    h_ok(h, "{\"op\":\"health\"}");
    /* The farm goes on with a healthy worker. */
    h_start_worker(h, "w3", 1, NULL);
    assert_true(h_wait_workers(h, 1, 10000));
    r = h_ok(h, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"noop\"}]}");
    assert_string_equal(h_wait_job(h, h_int(r, "job"), 10000), "completed");
    h_free(&h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_example_plugin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misbehaving_handlers, setup, teardown),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_crash_is_poison),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
