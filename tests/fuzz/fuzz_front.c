/* libFuzzer target: the ventilator's front door against a real store.
 *
 * Each input is one request frame, handled by vent_front_handle exactly as
 * farm-ventilator does, on a vent_t with a real SQLite store in a temporary
 * folder and no sockets (vent.h: dispatch and report may be NULL; no
 * worker ever registers, so nothing is sent). The properties of the spec
 * are checked on every reply: exactly one MessagePack map with a boolean
 * "ok", an "error" map with a string "code" when ok is false, and the store
 * still passes its consistency check now and then. Small limits keep the
 * database small however long the run: a batch of at most 64 tasks, at
 * most 5000 pending (then submits are busy), and every 20000 inputs the
 * jobs are deleted.
 */
#include "vent.h"

#include "farm_err.h"
#include "farm_log.h"
#include "farm_msg.h"
#include "farm_proto.h"
#include "farm_time.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static vent_t s_v;
static char s_dir[64];

static void s_cleanup(void) {
    farm_store_close(&s_v.store, false);
    msgpack_sbuffer_destroy(&s_v.events);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_front: could not remove %s\n", s_dir);
}

static void s_init(void) {
    farm_log_set_level(FARM_LOG_ERROR);
    snprintf(s_dir, sizeof s_dir, "/tmp/farm-fuzz-XXXXXX");
    if (!mkdtemp(s_dir))
        abort();
    char db[128];
    snprintf(db, sizeof db, "%s/farm.db", s_dir);
    int err = 0;
    farm_limits_default(&s_v.limits);
    s_v.limits.max_batch = 64;
    s_v.limits.max_pending = 5000;
    s_v.limits.max_args = 64 * 1024;
    farm_proto_set_limits(&s_v.limits);
    s_v.store = farm_store_open(db, false, &err);
    if (!s_v.store)
        abort();
    s_v.lost_after_ms = 5000;
    s_v.epoch = farm_now_ms();
    s_v.started_mono = farm_mono_ms();
    msgpack_sbuffer_init(&s_v.events);
    farm_store_on_change(s_v.store, vent_on_change, &s_v);
    atexit(s_cleanup);
}

/* The reply must be what the spec promises for any request. */
static void s_check_reply(const msgpack_sbuffer *reply) {
    msgpack_zone z;
    if (!msgpack_zone_init(&z, 4096))
        return;
    msgpack_object o;
    farm_error_t e;
    if (farm_msg_unpack(reply->data, reply->size, &z, &o, &e) != 0 || o.type != MSGPACK_OBJECT_MAP)
        __builtin_trap();
    const msgpack_object *ok = farm_msg_get(&o, "ok");
    if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN)
        __builtin_trap();
    if (!ok->via.boolean) {
        const msgpack_object *err = farm_msg_get(&o, "error");
        const msgpack_object *code = farm_msg_get(err, "code");
        const msgpack_object *msg = farm_msg_get(err, "message");
        if (!code || code->type != MSGPACK_OBJECT_STR || !msg || msg->type != MSGPACK_OBJECT_STR)
            __builtin_trap();
        if (farm_err_from_name(code->via.str.ptr, code->via.str.size) == FARM_EINTERNAL &&
            !farm_str_eq((farm_str_t){code->via.str.ptr, code->via.str.size}, "internal"))
            __builtin_trap(); /* only the spec's codes */
    }
    msgpack_zone_destroy(&z);
}

/* One request through the front door, built here; returns the reply. */
static void s_ask(msgpack_sbuffer *reply, const char *op, int64_t job) {
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    farm_pack_kv_str(&pk, "op", op);
    if (job)
        farm_pack_kv_int(&pk, "job", job);
    else
        farm_pack_kv_int(&pk, "limit", 1000);
    reply->size = 0;
    vent_front_handle(&s_v, b.data, b.size, reply);
    msgpack_sbuffer_destroy(&b);
}

/* Keep the database small: cancel and delete every job the inputs made,
 * through the front door itself. */
static void s_purge(void) {
    msgpack_sbuffer reply, r2;
    msgpack_sbuffer_init(&reply);
    msgpack_sbuffer_init(&r2);
    for (int round = 0; round < 1000; round++) {
        s_ask(&reply, "jobs", 0);
        msgpack_zone z;
        msgpack_object o;
        farm_error_t e;
        if (!msgpack_zone_init(&z, 4096))
            break;
        const msgpack_object *jobs = NULL;
        if (farm_msg_unpack(reply.data, reply.size, &z, &o, &e) == 0)
            jobs = farm_msg_get(&o, "jobs");
        uint32_t n = jobs && jobs->type == MSGPACK_OBJECT_ARRAY ? jobs->via.array.size : 0;
        for (uint32_t i = 0; i < n; i++) {
            const msgpack_object *id = farm_msg_get(&jobs->via.array.ptr[i], "id");
            if (!id || id->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                __builtin_trap();
            s_ask(&r2, "cancel", (int64_t)id->via.u64);
            s_ask(&r2, "delete", (int64_t)id->via.u64);
        }
        msgpack_zone_destroy(&z);
        vent_flush_events(&s_v);
        if (n == 0)
            break;
    }
    msgpack_sbuffer_destroy(&reply);
    msgpack_sbuffer_destroy(&r2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static uint64_t runs;
    if (!s_v.store)
        s_init();
    msgpack_sbuffer reply;
    msgpack_sbuffer_init(&reply);
    vent_front_handle(&s_v, data, size, &reply);
    s_check_reply(&reply);
    msgpack_sbuffer_destroy(&reply);
    vent_flush_events(&s_v); /* no report socket: the events are dropped */
    if (++runs % 2000 == 0 && farm_store_check(s_v.store) != 0)
        __builtin_trap();
    if (runs % 20000 == 0)
        s_purge();
    return 0;
}
