/* libFuzzer target: the sink's handling of reports against a real store.
 *
 * Reports come from the network (any worker, or anyone who can reach the
 * results port when CURVE is off), so each input is one report frame,
 * applied as farm-sink does: noted by sink_batch_scan, applied by
 * sink_apply inside a transaction, committed (or rolled back when it asks),
 * then the acks and feed events flushed (no sockets: sink_publish's sends
 * fail and are dropped; the log is quiet below errors). The database holds
 * job 1 with tasks 1..8: 1-4 leased to worker "fake-1" (the seeds' worker),
 * 5-6 to "w1", 7-8 pending; it is rebuilt every 20000 inputs so the ids the
 * seeds name keep meaning something, and checked with integrity_check.
 */
#include "sink.h"

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
#include <zmq.h>

static sink_t s_s;
static char s_dir[64], s_db[128];

static void s_close(void) {
    farm_store_close(&s_s.store, false);
    const char *ext[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s%s", s_db, ext[i]);
        (void)unlink(p);
    }
}

static void s_cleanup(void) {
    s_close();
    (void)rmdir(s_dir);
    msgpack_sbuffer_destroy(&s_s.events);
    free(s_s.dirty);
    free(s_s.acks);
    free(s_s.done);
}

static void s_open(void) {
    int err = 0;
    s_s.store = farm_store_open(s_db, false, &err);
    if (!s_s.store)
        abort();
    farm_store_on_change(s_s.store, sink_on_change, &s_s);
    int64_t job, id, attempt, now = farm_now_ms();
    farm_task_spec_t t = {.type = {"noop", 4}, .max_attempts = 3};
    if (farm_store_begin(s_s.store) || farm_store_job_insert(s_s.store, (farm_str_t){"j", 1}, (farm_str_t){0}, now, 8, &job))
        abort();
    for (int i = 0; i < 8; i++)
        if (farm_store_task_insert(s_s.store, job, &t, now, &id))
            abort();
    for (int64_t task = 1; task <= 6; task++)
        if (farm_store_claim(s_s.store, task, task <= 4 ? "fake-1" : "w1", &attempt))
            abort();
    if (farm_store_commit(s_s.store))
        abort();
    sink_events_flush(&s_s, false);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static uint64_t runs;
    if (!s_s.store) {
        farm_log_set_level(FARM_LOG_ERROR);
        farm_limits_t l;
        farm_limits_default(&l);
        farm_proto_set_limits(&l);
        snprintf(s_dir, sizeof s_dir, "/tmp/farm-fuzz-XXXXXX");
        if (!mkdtemp(s_dir))
            abort();
        snprintf(s_db, sizeof s_db, "%s/farm.db", s_dir);
        msgpack_sbuffer_init(&s_s.events);
        s_s.sec = farm_now_ms() / 1000;
        s_open();
        atexit(s_cleanup);
    }
    zmq_msg_t m;
    if (zmq_msg_init_size(&m, size) != 0)
        return 0;
    if (size)
        memcpy(zmq_msg_data(&m), data, size);
    if (farm_store_begin(s_s.store) != 0)
        __builtin_trap();
    sink_batch_scan(&s_s, &m, 1);
    int rc = sink_apply(&s_s, zmq_msg_data(&m), zmq_msg_size(&m));
    if (rc == 0 && farm_store_commit(s_s.store) == 0) {
        sink_acks_flush(&s_s, true);
        sink_events_flush(&s_s, true);
    } else {
        farm_store_rollback(s_s.store);
        sink_acks_flush(&s_s, false);
        sink_events_flush(&s_s, false);
    }
    zmq_msg_close(&m);
    sink_jobs_flush(&s_s);
    sink_perf_flush(&s_s, false);
    if (++runs % 20000 == 0) {
        if (farm_store_check(s_s.store) != 0)
            __builtin_trap();
        s_close();
        s_open();
    }
    return 0;
}
