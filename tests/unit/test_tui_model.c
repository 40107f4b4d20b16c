/* Unit: farm-tui's model and feed decoding, without a terminal.
 *
 * The feed is untrusted input: every message shape the spec allows must
 * land in the model, and anything else (garbage bytes, truncated
 * MessagePack, wrong types, terminal escapes in names) must be ignored or
 * made harmless, never crash. The mutation loop at the end feeds tens of
 * thousands of damaged messages through the real decoder (run it under
 * FARM_SANITIZE=ON to make that claim mean something).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "farm_json.h"
#include "tui.h"

/* JSON -> MessagePack for readable fixtures. */
static void s_pack(msgpack_sbuffer *b, const char *json) {
    msgpack_sbuffer_init(b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, msgpack_sbuffer_write);
    char err[256];
    if (farm_json_to_msgpack(json, strlen(json), &pk, err, sizeof err) != 0)
        fail_msg("bad fixture: %s: %s", err, json);
}

static void s_feed(tui_t *t, const char *topic, const char *json) {
    msgpack_sbuffer b;
    s_pack(&b, json);
    tui_feed_apply(t, topic, strlen(topic), b.data, b.size);
    msgpack_sbuffer_destroy(&b);
}

static int setup(void **state) {
    tui_t *t = calloc(1, sizeof *t);
    assert_non_null(t);
    tui_model_init(&t->m);
    assert_true(msgpack_zone_init(&t->zone, 4096));
    tui_text_utf8(true);
    *state = t;
    return 0;
}

static int teardown(void **state) {
    tui_t *t = *state;
    tui_model_free(&t->m);
    msgpack_zone_destroy(&t->zone);
    free(t);
    return 0;
}

static void test_jobs_newest_first(void **state) {
    tui_t *t = *state;
    s_feed(t, "job", "{\"id\":5,\"name\":\"five\",\"state\":\"running\",\"total\":10,\"progress\":40,"
                     "\"counts\":{\"pending\":1,\"running\":5,\"retrying\":0,\"completed\":4,\"failed\":0,\"cancelled\":0},"
                     "\"created_ms\":1000,\"finished_ms\":null}");
    s_feed(t, "job", "{\"id\":9,\"name\":null,\"state\":\"pending\",\"total\":1,\"progress\":0}");
    s_feed(t, "job", "{\"id\":7,\"name\":\"seven\",\"state\":\"completed\",\"total\":2,\"progress\":100,\"finished_ms\":5}");
    assert_int_equal(t->m.njob, 3);
    assert_int_equal(t->m.jobs[0].id, 9);
    assert_int_equal(t->m.jobs[1].id, 7);
    assert_int_equal(t->m.jobs[2].id, 5);
    tui_job_t *j = tui_model_job_find(&t->m, 5);
    assert_non_null(j);
    assert_string_equal(j->name, "five");
    assert_int_equal(j->state, FARM_TASK_RUNNING);
    assert_int_equal(j->progress, 40);
    assert_int_equal(j->counts[FARM_TASK_COMPLETED], 4);
    assert_int_equal(j->finished_ms, 0);
    assert_string_equal(tui_model_job_find(&t->m, 9)->name, "");
    /* An update moves nothing and changes what it names. */
    s_feed(t, "job", "{\"id\":5,\"progress\":60,\"state\":\"running\"}");
    assert_int_equal(t->m.njob, 3);
    assert_int_equal(tui_model_job_find(&t->m, 5)->progress, 60);
    assert_string_equal(tui_model_job_find(&t->m, 5)->name, "five");
    /* Out-of-range values are ignored, a missing id is no job. */
    s_feed(t, "job", "{\"id\":5,\"progress\":1000,\"total\":-3}");
    assert_int_equal(tui_model_job_find(&t->m, 5)->progress, 60);
    assert_int_equal(tui_model_job_find(&t->m, 5)->total, 10);
    s_feed(t, "job", "{\"name\":\"no id\"}");
    s_feed(t, "job", "{\"id\":-4}");
    s_feed(t, "job", "{\"id\":\"12\"}");
    assert_int_equal(t->m.njob, 3);
    assert_int_equal(t->m.feed_bad, 3);
}

static void test_sweep_drops_deleted_jobs(void **state) {
    tui_t *t = *state;
    tui_model_t *m = &t->m;
    msgpack_sbuffer b;
    msgpack_zone z;
    msgpack_object o;
    farm_error_t e;
    assert_true(msgpack_zone_init(&z, 1024));
    const char *jobs[] = {"{\"id\":1}", "{\"id\":2}", "{\"id\":3}"};
    m->sweep_start_mono = 100;
    for (int i = 0; i < 3; i++) {
        s_pack(&b, jobs[i]);
        assert_int_equal(farm_msg_unpack(b.data, b.size, &z, &o, &e), 0);
        tui_job_t *j = tui_model_job(m, &o, 50); /* touched before the sweep began */
        j->sweep = m->sweep;
        msgpack_sbuffer_destroy(&b);
    }
    tui_model_sweep_end(m);
    assert_int_equal(m->njob, 3);
    assert_true(m->jobs_loaded);
    /* Next sweep sees only 3; 2 is new from the feed meanwhile; 1 is gone. */
    m->sweep_start_mono = 200;
    tui_model_job_find(m, 3)->sweep = m->sweep;
    tui_model_job_find(m, 2)->touched_mono = 250;
    tui_model_sweep_end(m);
    assert_int_equal(m->njob, 2);
    assert_null(tui_model_job_find(m, 1));
    assert_non_null(tui_model_job_find(m, 2));
    msgpack_zone_destroy(&z);
}

static void test_workers_and_stats(void **state) {
    tui_t *t = *state;
    s_feed(t, "worker", "{\"id\":\"zulu\",\"host\":\"h1\",\"pid\":3,\"slots\":4,\"busy\":2,\"types\":[\"noop\"],"
                        "\"state\":\"alive\",\"last_seen_ms\":99,\"completed\":10,\"failed\":1}");
    s_feed(t, "worker", "{\"id\":\"alpha\",\"state\":\"draining\"}");
    s_feed(t, "worker", "{\"id\":\"mike\",\"state\":\"sleeping\"}");
    assert_int_equal(t->m.nworker, 3);
    assert_string_equal(t->m.workers[0].id, "alpha");
    assert_int_equal(t->m.workers[0].state, TUI_W_DRAINING);
    assert_int_equal(t->m.workers[1].state, TUI_W_UNKNOWN);
    assert_int_equal(t->m.workers[2].slots, 4);
    assert_int_equal(t->m.workers[2].completed, 10);
    s_feed(t, "worker", "{\"id\":\"zulu\",\"state\":\"lost\"}");
    assert_int_equal(t->m.workers[2].state, TUI_W_LOST);

    s_feed(t, "stats", "{\"counts\":{\"pending\":5,\"running\":1,\"retrying\":0,\"completed\":100,\"failed\":2,"
                       "\"cancelled\":0},\"jobs\":3,\"workers\":2,\"slots\":8,\"busy\":1,"
                       "\"throughput\":{\"10s\":12.5,\"60s\":3},\"latency_ms\":{\"p50\":7,\"p99\":70},\"uptime_s\":9}");
    assert_true(t->m.have_stats);
    assert_int_equal(t->m.counts[FARM_TASK_COMPLETED], 100);
    assert_int_equal(t->m.slots, 8);
    assert_true(t->m.tp10 > 12.4 && t->m.tp10 < 12.6);
    assert_int_equal(t->m.p99, 70);
    assert_int_equal(t->m.spark_n, 1);
    assert_true(t->m.feed_stats_mono > 0);
    /* Wrong types change nothing. */
    s_feed(t, "stats", "{\"counts\":[1,2],\"slots\":\"many\",\"throughput\":{\"10s\":\"fast\"}}");
    assert_int_equal(t->m.slots, 8);
    assert_int_equal(t->m.counts[FARM_TASK_COMPLETED], 100);
    assert_true(t->m.tp10 > 12.4 && t->m.tp10 < 12.6);
}

static void test_failures_from_task_events(void **state) {
    tui_t *t = *state;
    s_feed(t, "task", "{\"events\":[{\"id\":11,\"job\":1,\"state\":\"running\",\"progress\":0,\"attempt\":1,"
                      "\"worker\":\"w1\",\"ms\":100},{\"id\":11,\"job\":1,\"state\":\"retrying\",\"progress\":0,"
                      "\"attempt\":1,\"worker\":\"w1\",\"ms\":200},{\"id\":12,\"job\":1,\"state\":\"failed\",\"progress\":0,"
                      "\"attempt\":3,\"worker\":null,\"ms\":300}]}");
    assert_int_equal(t->m.nfail, 2);
    assert_int_equal(t->m.fails[0].task, 12); /* newest first */
    assert_int_equal(t->m.fails[0].state, FARM_TASK_FAILED);
    assert_int_equal(t->m.fails[1].task, 11);
    assert_string_equal(t->m.fails[1].worker, "w1");
    /* The same task's final failure replaces its retrying entry. */
    s_feed(t, "task", "{\"events\":[{\"id\":11,\"job\":1,\"state\":\"failed\",\"attempt\":2,\"ms\":400}]}");
    assert_int_equal(t->m.nfail, 2);
    assert_int_equal(t->m.fails[0].task, 11);
    assert_int_equal(t->m.fails[0].state, FARM_TASK_FAILED);
    assert_int_equal(t->m.fails[0].attempt, 2);
    tui_model_fail_reason(&t->m, 11, "exit code 7");
    assert_true(t->m.fails[0].has_error);
    assert_string_equal(t->m.fails[0].error, "exit code 7");
    /* Bad events in a batch are skipped, good ones kept. */
    s_feed(t, "task", "{\"events\":[1,\"x\",{\"id\":\"13\"},{\"id\":14,\"state\":\"exploded\"},"
                      "{\"id\":15,\"state\":\"failed\",\"ms\":500}]}");
    assert_int_equal(t->m.nfail, 3);
    assert_int_equal(t->m.fails[0].task, 15);
    /* The panel keeps a bounded number. */
    for (int i = 0; i < TUI_FAIL_MAX + 50; i++) {
        char ev[200];
        snprintf(ev, sizeof ev, "{\"events\":[{\"id\":%d,\"state\":\"failed\",\"attempt\":1,\"ms\":%d}]}", 1000 + i,
                 1000 + i);
        s_feed(t, "task", ev);
    }
    assert_int_equal(t->m.nfail, TUI_FAIL_MAX);
    assert_int_equal(t->m.fails[0].task, 1000 + TUI_FAIL_MAX + 49);
}

static void test_text_is_made_harmless(void **state) {
    tui_t *t = *state;
    s_feed(t, "job", "{\"id\":1,\"name\":\"evil\\u001b[2J\\u0007name\\ttab\"}");
    const char *name = tui_model_job_find(&t->m, 1)->name;
    assert_null(strchr(name, '\x1b'));
    assert_null(strchr(name, '\a'));
    assert_string_equal(name, "evil?[2J?name tab");
    char out[16];
    tui_text_copy(out, sizeof out, "\xc3\xa9t\xc3\xa9", 5); /* "été" */
    assert_string_equal(out, "\xc3\xa9t\xc3\xa9");
    tui_text_copy(out, sizeof out, "a\xff\xc3", 3); /* invalid and truncated UTF-8 */
    assert_string_equal(out, "a??");
    tui_text_copy(out, 4, "\xe2\x82\xac\xe2\x82\xac", 6); /* never half a character */
    assert_string_equal(out, "\xe2\x82\xac");
    tui_text_utf8(false);
    tui_text_copy(out, sizeof out, "\xc3\xa9", 2); /* without UTF-8 every high byte is one '?' */
    assert_string_equal(out, "??");
    tui_text_utf8(true);
}

static void test_garbage_never_crashes(void **state) {
    tui_t *t = *state;
    static const char *const topics[] = {"task", "job", "worker", "stats", "ack/w1", "", "tasks"};
    static const char *const seeds[] = {
        "{\"events\":[{\"id\":1,\"job\":1,\"state\":\"failed\",\"progress\":5,\"attempt\":1,\"worker\":\"w\",\"ms\":1}]}",
        "{\"id\":3,\"name\":\"n\",\"state\":\"running\",\"total\":4,\"progress\":50,\"counts\":{\"pending\":1},"
        "\"created_ms\":1}",
        "{\"id\":\"w\",\"host\":\"h\",\"slots\":2,\"busy\":1,\"state\":\"alive\",\"last_seen_ms\":5}",
        "{\"counts\":{\"completed\":3},\"throughput\":{\"10s\":1.5,\"60s\":2},\"latency_ms\":{\"p50\":1}}",
    };
    /* Plain garbage first. */
    const char *raw[] = {"", "\xc1", "\x81", "\x91\x80", "\xdf\xff\xff\xff\xff", "\x81\xa6" "events\xdd\xff\xff\xff\xff",
                         "\x82\xa2id\x01\xa2id\x02"};
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++)
        for (size_t k = 0; k < sizeof topics / sizeof topics[0]; k++)
            tui_feed_apply(t, topics[k], strlen(topics[k]), raw[i], strlen(raw[i]));
    /* Then mutations of valid messages: flipped bytes, cuts, splices. */
    srand(42);
    unsigned char buf[1024];
    for (int round = 0; round < 30000; round++) {
        size_t s = (size_t)rand() % 4;
        msgpack_sbuffer b;
        s_pack(&b, seeds[s]);
        size_t n = b.size < sizeof buf ? b.size : sizeof buf;
        memcpy(buf, b.data, n);
        msgpack_sbuffer_destroy(&b);
        int muts = 1 + rand() % 4;
        for (int k = 0; k < muts; k++) {
            switch (rand() % 3) {
            case 0: buf[(size_t)rand() % n] = (unsigned char)rand(); break;
            case 1: n = n > 1 ? (size_t)rand() % n + 1 : n; break;
            default: buf[(size_t)rand() % n] ^= (unsigned char)(1u << (rand() % 8)); break;
            }
        }
        const char *topic = round % 7 == 0 ? topics[rand() % 7] : topics[s];
        tui_feed_apply(t, topic, strlen(topic), buf, n);
    }
    /* Still consistent: jobs sorted newest first, counts bounded. */
    for (size_t i = 1; i < t->m.njob; i++)
        assert_true(t->m.jobs[i - 1].id > t->m.jobs[i].id);
    assert_true(t->m.nfail <= TUI_FAIL_MAX);
    for (size_t i = 0; i < t->m.njob; i++)
        assert_true(t->m.jobs[i].progress >= 0 && t->m.jobs[i].progress <= 100);
    assert_true(t->m.feed_bad > 0);
}

static void test_formats(void **state) {
    (void)state;
    char b[32];
    assert_string_equal(tui_fmt_dur(b, sizeof b, 850), "850ms");
    assert_string_equal(tui_fmt_dur(b, sizeof b, 5000), "5s");
    assert_string_equal(tui_fmt_dur(b, sizeof b, 192000), "3m12s");
    assert_string_equal(tui_fmt_dur(b, sizeof b, 7500000), "2h05m");
    assert_string_equal(tui_fmt_dur(b, sizeof b, 3 * 86400000LL + 4 * 3600000LL), "3d04h");
    assert_string_equal(tui_fmt_dur(b, sizeof b, -1), "-");
    assert_string_equal(tui_fmt_count(b, sizeof b, 9999), "9999");
    assert_string_equal(tui_fmt_count(b, sizeof b, 12345), "12.3k");
    assert_string_equal(tui_fmt_count(b, sizeof b, 4560000), "4.56M");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_jobs_newest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_drops_deleted_jobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workers_and_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failures_from_task_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_is_made_harmless, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_never_crashes, setup, teardown),
        cmocka_unit_test(test_formats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
