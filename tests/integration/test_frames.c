/* Integration: several reports in one frame reach the sink (the workers
 * send them so under load), and bytes that cannot be read end the frame
 * without losing what came before them.
 *
 * A ventilator and a sink with no worker: submitted no-ops stay pending
 * until results forged here, packed several to a frame and sent straight
 * to the sink's results socket, complete them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <zmq.h>

#include "farm_proto.h"
#include "harness.h"

/* Send one frame holding an ok result for each task of ids[0..n), with
 * `garbage` bytes after the first `cut` of them. */
static void s_send_frame(void *push, const int64_t *ids, size_t n, size_t cut, const char *garbage) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (size_t i = 0; i < n; i++) {
        if (i == cut && garbage)
            msgpack_sbuffer_write(&sb, garbage, strlen(garbage));
        farm_pack_start(&pk, ids[i], 1, "forger", 1000);
        farm_pack_result(&pk, ids[i], 1, "forger", true, false, NULL, 0, NULL, 1000, 1001);
    }
    assert_int_equal(zmq_send(push, sb.data, sb.size, 0), (int)sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void test_frames(void **state) {
    (void)state;
    h_t *h = h_new();
    h_start_vent(h, NULL);
    h_start_sink(h, NULL);
    const msgpack_object *r = h_ok(h, "{\"op\":\"submit\",\"tasks\":[{\"type\":\"noop\"},{\"type\":\"noop\"},"
                                      "{\"type\":\"noop\"},{\"type\":\"noop\"},{\"type\":\"noop\"}]}");
    int64_t t[5];
    for (int i = 0; i < 5; i++) {
        char path[16];
        snprintf(path, sizeof path, "tasks.%d", i);
        t[i] = h_int(r, path);
    }
    void *ctx = zmq_ctx_new();
    void *push = zmq_socket(ctx, ZMQ_PUSH);
    int linger = 5000;
    assert_int_equal(zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof linger), 0);
    assert_int_equal(zmq_connect(push, h->ep.results), 0);

    /* Three results in one frame, 0xc1 (never MessagePack) after two. */
    s_send_frame(push, t, 3, 2, "\xc1\x01\x02");
    assert_true(h_wait_task(h, t[0], "completed", 10000));
    assert_true(h_wait_task(h, t[1], "completed", 10000));
    /* The third came after the garbage: dropped, still pending. A frame
     * sent later is stored only after this one, so once the next is in,
     * the third's fate is final. */
    s_send_frame(push, &t[3], 2, 0, NULL);
    assert_true(h_wait_task(h, t[3], "completed", 10000));
    assert_true(h_wait_task(h, t[4], "completed", 10000));
    r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)t[2]);
    assert_string_equal(h_str(r, "task.state"), "pending");
    /* Sent again alone, it completes: the sink lived through the garbage. */
    s_send_frame(push, &t[2], 1, 1, NULL);
    assert_true(h_wait_task(h, t[2], "completed", 10000));
    r = h_ok(h, "{\"op\":\"status\",\"task\":%lld}", (long long)t[0]);
    assert_string_equal(h_str(r, "task.worker"), "forger");

    zmq_close(push);
    zmq_ctx_term(ctx);
    h_free(&h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
