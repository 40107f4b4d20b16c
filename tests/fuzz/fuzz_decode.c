/* libFuzzer target: the decoding of every message kind.
 *
 * One input is unpacked once (farm_msg_unpack, with its pre-scan) and the
 * object is then read by every decoder of farm_proto.h: the front-door
 * requests (head, submit and each of its tasks, ids, list, jobs) and the
 * internal messages (hb, welcome/task/cancel, start/prog/result/pub), as
 * the ventilator, workers and sink would. Whatever a decoder accepts is
 * read whole (every borrowed string and object is touched, so ASan sees an
 * out-of-bounds borrow), and the properties the farm relies on are
 * checked: a decoder that fails sets a code and a message, an object that
 * unpacked packs again to the same bytes and unpacks again.
 */
#include "farm_config.h"
#include "farm_err.h"
#include "farm_log.h"
#include "farm_msg.h"
#include "farm_proto.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static volatile uint64_t s_sink; /* keeps the touches from being optimised away */

static void s_touch(farm_str_t s) {
    uint64_t h = 0;
    for (uint32_t i = 0; s.ptr && i < s.len; i++)
        h = h * 31 + (unsigned char)s.ptr[i];
    s_sink += h;
}

static void s_touch_obj(const msgpack_object *o, int depth) {
    if (!o || depth > 40)
        return;
    switch (o->type) {
    case MSGPACK_OBJECT_STR: s_touch((farm_str_t){o->via.str.ptr, o->via.str.size}); break;
    case MSGPACK_OBJECT_BIN: s_touch((farm_str_t){o->via.bin.ptr, o->via.bin.size}); break;
    case MSGPACK_OBJECT_ARRAY:
        for (uint32_t i = 0; i < o->via.array.size; i++)
            s_touch_obj(&o->via.array.ptr[i], depth + 1);
        break;
    case MSGPACK_OBJECT_MAP:
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            s_touch_obj(&o->via.map.ptr[i].key, depth + 1);
            s_touch_obj(&o->via.map.ptr[i].val, depth + 1);
        }
        break;
    default: s_sink += o->via.u64; break;
    }
}

/* A failed decode must say what and why. */
static void s_check(int rc, const farm_error_t *e) {
    if (rc && (rc != e->code || !e->message[0] || strnlen(e->message, sizeof e->message) == sizeof e->message ||
               strnlen(e->field, sizeof e->field) == sizeof e->field))
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int init;
    if (!init) {
        farm_log_set_level(FARM_LOG_ERROR);
        farm_limits_t l;
        farm_limits_default(&l);
        farm_proto_set_limits(&l);
        init = 1;
    }
    msgpack_zone z;
    if (!msgpack_zone_init(&z, 2048))
        return 0;
    msgpack_object o;
    farm_error_t e;
    int rc = farm_msg_unpack(data, size, &z, &o, &e);
    s_check(rc, &e);
    if (rc == 0) {
        s_touch_obj(&o, 0);
        /* Packing what unpacked gives the same value back. */
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
        if (msgpack_pack_object(&pk, o) != 0)
            __builtin_trap();
        msgpack_zone z2;
        msgpack_object o2;
        if (msgpack_zone_init(&z2, 2048)) {
            /* Compared as bytes: a NaN is not equal to itself as a value. */
            msgpack_sbuffer b2;
            msgpack_sbuffer_init(&b2);
            msgpack_packer pk2;
            msgpack_packer_init(&pk2, &b2, msgpack_sbuffer_write);
            if (farm_msg_unpack(b.data, b.size, &z2, &o2, &e) != 0 || msgpack_pack_object(&pk2, o2) != 0 ||
                b2.size != b.size || memcmp(b2.data, b.data, b.size) != 0)
                __builtin_trap();
            msgpack_sbuffer_destroy(&b2);
            msgpack_zone_destroy(&z2);
        }
        msgpack_sbuffer_destroy(&b);

        uint64_t present;
        farm_req_head_t head;
        if (!(rc = farm_req_head_decode(&o, &head, &e)))
            s_touch(head.op);
        s_check(rc, &e);
        farm_req_submit_t sub;
        if (!(rc = farm_req_submit_decode(&o, &sub, &present, &e))) {
            s_touch(sub.name);
            s_touch(sub.key);
            for (uint32_t i = 0; i < sub.tasks->via.array.size; i++) {
                farm_req_task_t t;
                uint64_t has;
                int trc = farm_req_task_decode(&sub.tasks->via.array.ptr[i], &t, &has, "tasks[0]", &e);
                s_check(trc, &e);
                if (!trc) {
                    s_touch(t.type);
                    s_touch_obj(t.args, 0);
                    if (!farm_type_valid(t.type))
                        __builtin_trap(); /* the table's bounds and the charset agree */
                }
            }
        }
        s_check(rc, &e);
        farm_req_task_t t;
        uint64_t has;
        s_check(farm_req_task_decode(&o, &t, &has, NULL, &e), &e);
        farm_req_ids_t ids;
        s_check(farm_req_ids_decode(&o, &ids, &present, &e), &e);
        farm_req_list_t list;
        if (!(rc = farm_req_list_decode(&o, &list, &e))) {
            s_touch(list.state);
            s_touch(list.type);
            if (list.limit < 1 || list.limit > 1000)
                __builtin_trap();
        }
        s_check(rc, &e);
        farm_req_jobs_t jobs;
        s_check(farm_req_jobs_decode(&o, &jobs, &e), &e);
        farm_msg_hb_t hb;
        if (!(rc = farm_msg_hb_decode(&o, &hb, &e))) {
            s_touch(hb.m);
            s_touch(hb.id);
            s_touch(hb.host);
            s_touch(hb.state);
            s_touch_obj(hb.types, 0);
            s_touch_obj(hb.held, 0);
        }
        s_check(rc, &e);
        farm_msg_task_t tm;
        if (!(rc = farm_msg_task_decode(&o, &tm, &e))) {
            s_touch(tm.m);
            s_touch(tm.type);
            s_touch_obj(tm.args, 0);
        }
        s_check(rc, &e);
        farm_msg_report_t r;
        if (!(rc = farm_msg_report_decode(&o, &r, &e))) {
            s_touch(r.m);
            s_touch(r.worker);
            s_touch(r.msg);
            s_touch(r.error);
            s_touch(r.topic);
            s_touch_obj(r.result, 0);
            s_touch_obj(r.body, 0);
            s_touch_obj(r.records, 0);
        }
        s_check(rc, &e);
    }
    msgpack_zone_destroy(&z);
    return 0;
}
