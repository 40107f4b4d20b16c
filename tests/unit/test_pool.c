/* test_pool: the worker's slot pool (worker/worker_slot.c) keeps account
 * of the tasks it holds: worker_pool_has (is a task sent again already
 * here?) and the busy/queued counts, which the duplicate check, credit and
 * drain rest on. Checked against a plain list kept by the test, through
 * queueing, giving back, cancelling, running and the main thread taking
 * the results; thousands of ids, so the set grows and deletes in every
 * pattern.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "farm_proto.h"
#include "worker_slot.h"

static int s_noop(farm_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *result) {
    (void)ctx, (void)args, (void)result;
    return 0;
}
static const farm_handler_t s_handler = {"noop", s_noop, NULL};

/* Queue task id (priority 0) in p. */
static void push(worker_pool_t *p, int64_t id) {
    farm_msg_task_t t = {.epoch = 1, .seq = 1, .id = id, .job = 1, .type = {"noop", 4}, .attempt = 1};
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    farm_pack_task(&pk, &t, NULL, 0);
    assert_int_equal(worker_pool_push(p, &t, &s_handler, b.data, b.size), 0);
    msgpack_sbuffer_destroy(&b);
}

/* Distinct ids spread over the range the wire allows (0..INT64_MAX). */
static int64_t id_of(int64_t i) { return i % 3 == 0 ? INT64_MAX - i * 7919 : i * 1000003 + 17; }

static void expect(worker_pool_t *p, const int64_t *ids, const char *in, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (worker_pool_has(p, ids[i]) != (in[i] != 0))
            fail_msg("task %lld: has=%d, expected %d", (long long)ids[i], !in[i], in[i]);
}

/* Each test: a pool of 2 slots and the eventfd it wakes. */
typedef struct {
    int fd;
    worker_pool_t *p;
} fx_t;

static int setup(void **state) {
    static fx_t f;
    f.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    f.p = f.fd >= 0 ? worker_pool_new(2, "w", f.fd) : NULL;
    *state = &f;
    return f.p ? 0 : -1;
}

static int teardown(void **state) {
    fx_t *f = *state;
    worker_pool_destroy(&f->p);
    return close(f->fd);
}

/* Closed pool (no slot takes anything): queue, give back, cancel. */
static void test_queue_give_back_cancel(void **state) {
    worker_pool_t *p = ((fx_t *)*state)->p;
    worker_pool_set_open(p, false);
    enum { N = 5000 };
    static int64_t ids[N];
    static char in[N];
    for (int64_t i = 0; i < N; i++) {
        ids[i] = id_of(i);
        push(p, ids[i]);
        in[i] = 1;
    }
    expect(p, ids, in, N);
    int64_t busy, queued;
    worker_pool_counts(p, &busy, &queued);
    assert_int_equal(busy, 0);
    assert_int_equal(queued, N);
    /* Give back 1000 from the tail of the queue. */
    int64_t back[1000], att[1000];
    assert_int_equal(worker_pool_take_back(p, 1000, back, att), 1000);
    for (int k = 0; k < 1000; k++)
        for (int64_t i = 0; i < N; i++)
            if (ids[i] == back[k])
                in[i] = 0;
    expect(p, ids, in, N);
    /* Cancel every seventh still queued. */
    int64_t left = N - 1000;
    for (int64_t i = 0; i < N; i += 7)
        if (in[i]) {
            int64_t a = 0;
            assert_int_equal(worker_pool_cancel(p, ids[i], &a), 1);
            assert_int_equal(a, 1);
            in[i] = 0;
            left--;
        }
    expect(p, ids, in, N);
    assert_false(worker_pool_has(p, 123456789));
    worker_pool_counts(p, &busy, &queued);
    assert_int_equal(queued, left);
    /* What went can come again. */
    for (int64_t i = 0; i < N; i++)
        if (!in[i]) {
            push(p, ids[i]);
            in[i] = 1;
        }
    expect(p, ids, in, N);
}

/* Open pool: tasks run; a finished task is still here until the main
 * thread takes its result, and counts as busy till then. */
static void test_results_leave_when_taken(void **state) {
    worker_pool_t *p = ((fx_t *)*state)->p;
    enum { N = 300 };
    int64_t ids[N];
    char in[N];
    for (int64_t i = 0; i < N; i++) {
        ids[i] = id_of(i);
        push(p, ids[i]);
        in[i] = 1;
    }
    int64_t busy = 0, queued = 0, taken = 0;
    struct timespec ts = {0, 1000000};
    for (int k = 0; k < 10000 && taken < N; k++) { /* bounded: 10 s */
        expect(p, ids, in, N);
        worker_pool_counts(p, &busy, &queued);
        assert_int_equal(busy + queued, N - taken);
        worker_event_t *e = worker_pool_events(p);
        for (worker_event_t *x = e; x; x = x->next)
            if (x->kind == WORKER_EV_RESULT) {
                if (!x->ok)
                    fail_msg("task %lld failed: %s", (long long)x->task, x->error);
                for (int64_t i = 0; i < N; i++)
                    if (ids[i] == x->task) {
                        assert_int_equal(in[i], 1);
                        in[i] = 0;
                    }
                taken++;
            }
        worker_events_free(e);
        if (taken < N)
            nanosleep(&ts, NULL);
    }
    assert_int_equal(taken, N);
    expect(p, ids, in, N);
    worker_pool_counts(p, &busy, &queued);
    assert_int_equal(busy, 0);
    assert_int_equal(queued, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_queue_give_back_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_results_leave_when_taken, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
